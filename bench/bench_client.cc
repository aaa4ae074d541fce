#include "bench/bench_client.h"

#include <openssl/ssl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "bench/payload.h"
#include "broker/codec/decoder.h"
#include "broker/codec/encoder.h"
#include "common/log.h"

namespace shardmq::bench {

namespace asio = boost::asio;
namespace codec = broker::codec;
using asio::ip::tcp;

// ---------------------------------------------------------------------------------------------
// TLS

struct TlsContext::Impl {
  asio::ssl::context ctx{asio::ssl::context::tls_client};
  std::string host;  // for SNI and certificate name checks
  bool verify = true;
};

TlsContext::TlsContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsContext::~TlsContext() = default;

absl::StatusOr<std::unique_ptr<TlsContext>> TlsContext::Create(const Options& options) {
  auto impl = std::make_unique<Impl>();
  impl->host = options.host;
  impl->verify = !options.insecure;
  boost::system::error_code ec;
  impl->ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                            asio::ssl::context::no_sslv3,
                        ec);
  for (const std::string* file : {&options.cafile, &options.certfile, &options.keyfile}) {
    if (!file->empty() && ::access(file->c_str(), R_OK) != 0) {
      return absl::InvalidArgumentError("cannot read " + *file + ": " + std::strerror(errno));
    }
  }
  if (!options.cafile.empty()) {
    impl->ctx.load_verify_file(options.cafile, ec);
    if (ec) {
      return absl::InvalidArgumentError("--cafile " + options.cafile + ": " + ec.message());
    }
  } else {
    impl->ctx.set_default_verify_paths(ec);
    if (ec) return absl::InvalidArgumentError("system CA store: " + ec.message());
  }
  if (!options.certfile.empty()) {
    impl->ctx.use_certificate_chain_file(options.certfile, ec);
    if (ec) return absl::InvalidArgumentError("--cert " + options.certfile + ": " + ec.message());
    impl->ctx.use_private_key_file(options.keyfile, asio::ssl::context::pem, ec);
    if (ec) return absl::InvalidArgumentError("--key " + options.keyfile + ": " + ec.message());
  }
  impl->ctx.set_verify_mode(impl->verify ? asio::ssl::verify_peer : asio::ssl::verify_none, ec);
  return std::unique_ptr<TlsContext>(new TlsContext(std::move(impl)));
}

struct BenchClient::TlsStream {
  TlsStream(asio::io_context& io, TlsContext::Impl& tls) : stream(io, tls.ctx) {}
  asio::ssl::stream<tcp::socket> stream;
};

// ---------------------------------------------------------------------------------------------

namespace {

// Per-connection problems are logged, but only the first few of them: a broker that refuses
// 10,000 connections must not bury the summary.
constexpr int kMaxLoggedErrors = 10;
std::atomic<int> g_logged_errors{0};

void LogClientError(const std::string& client_id, std::string_view why) {
  const int n = g_logged_errors.fetch_add(1, std::memory_order_relaxed);
  if (n < kMaxLoggedErrors) {
    SHARDMQ_LOG(WARNING) << "bench client " << client_id << ": " << why;
  } else if (n == kMaxLoggedErrors) {
    SHARDMQ_LOG(WARNING) << "bench: further client errors are counted, not logged";
  }
}

std::string Hex(uint8_t byte) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", byte);
  return buf;
}

// Encoded PUBLISH packets are collected up to this many bytes before a write is started, and a
// publisher stops filling its buffer there until the write completes (TCP backpressure).
constexpr size_t kMaxBatchBytes = 64 * 1024;
// SUBSCRIBE packets carry at most this many filters (fan-in subscribes to every topic).
constexpr size_t kFiltersPerSubscribe = 100;

}  // namespace

BenchClient::BenchClient(ClientEnv& env, ClientSpec spec)
    : env_(env),
      options_(env.options),
      spec_(std::move(spec)),
      version_(env.options.version),
      socket_(env.io),
      timer_(env.io),
      response_(codec::PubResponse{}) {
  if (env_.tls != nullptr) tls_ = std::make_unique<TlsStream>(env_.io, env_.tls->impl());
  // Small buffers for idle connections: conn mode holds many of them.
  switch (spec_.role) {
    case ClientSpec::Role::kIdle:
      rbuf_.resize(1024);
      break;
    case ClientSpec::Role::kPublisher:
      rbuf_.resize(16 * 1024);
      break;
    case ClientSpec::Role::kSubscriber:
      rbuf_.resize(64 * 1024);
      break;
  }
  if (spec_.role == ClientSpec::Role::kPublisher) {
    publish_header_.topic = spec_.publish_topic;
    publish_header_.qos = options_.qos;
    payload_.assign(options_.size, 'x');
    window_ = options_.inflight;
    if (options_.qos > 0) inflight_.reserve(window_);
  }
}

BenchClient::~BenchClient() = default;

tcp::socket& BenchClient::Socket() { return tls_ ? tls_->stream.next_layer() : socket_; }

template <typename Handler>
void BenchClient::AsyncReadSome(asio::mutable_buffer buffer, Handler&& handler) {
  if (tls_) {
    tls_->stream.async_read_some(buffer, std::forward<Handler>(handler));
  } else {
    socket_.async_read_some(buffer, std::forward<Handler>(handler));
  }
}

template <typename Handler>
void BenchClient::AsyncWrite(asio::const_buffer buffer, Handler&& handler) {
  if (tls_) {
    asio::async_write(tls_->stream, buffer, std::forward<Handler>(handler));
  } else {
    asio::async_write(socket_, buffer, std::forward<Handler>(handler));
  }
}

// ---------------------------------------------------------------------------------------------
// Connecting

void BenchClient::Connect(std::function<void(bool)> done) {
  connect_done_ = std::move(done);
  state_ = State::kConnecting;
  connect_start_ns_ = SteadyNowNs();
  if (env_.stats.first_connect_ns == 0) env_.stats.first_connect_ns = connect_start_ns_;
  timer_.expires_after(
      std::chrono::nanoseconds(static_cast<int64_t>(options_.connect_timeout_s * 1e9)));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || state_ == State::kReady || state_ == State::kClosed) return;
    Fail("connect timed out after " + std::to_string(options_.connect_timeout_s) + " s");
  });
  Socket().async_connect(env_.endpoint,
                         [this](const boost::system::error_code& ec) { OnTcpConnected(ec); });
}

void BenchClient::OnTcpConnected(const boost::system::error_code& ec) {
  if (state_ != State::kConnecting) return;
  if (ec) {
    Fail("TCP connect: " + ec.message());
    return;
  }
  boost::system::error_code ignored;
  Socket().set_option(tcp::no_delay(true), ignored);
  if (!tls_) {
    SendConnect();
    return;
  }
  auto& tls = env_.tls->impl();
  // SNI, and the name the certificate must carry.
  SSL_set_tlsext_host_name(tls_->stream.native_handle(), tls.host.c_str());
  if (tls.verify) tls_->stream.set_verify_callback(asio::ssl::host_name_verification(tls.host));
  tls_->stream.async_handshake(asio::ssl::stream_base::client,
                               [this](const boost::system::error_code& hec) {
                                 if (state_ != State::kConnecting) return;
                                 if (hec) {
                                   Fail("TLS handshake: " + hec.message());
                                   return;
                                 }
                                 SendConnect();
                               });
}

void BenchClient::SendConnect() {
  codec::Connect connect;
  connect.clean_start = options_.clean;
  connect.keep_alive = options_.keepalive_s;
  connect.client_id = spec_.client_id;
  if (!options_.username.empty()) connect.username = options_.username;
  if (!options_.password.empty()) connect.password = options_.password;
  if (version_ == codec::ProtocolVersion::kV5) {
    // Let the broker keep as many QoS 1/2 messages in flight to us as it likes.
    connect.properties.receive_maximum = 65535;
    if (!options_.clean) connect.properties.session_expiry_interval = options_.session_expiry_s;
  }
  keepalive_s_ = options_.keepalive_s;
  codec::Encode(codec::Packet(std::move(connect)), version_, &wpending_);
  state_ = State::kWaitConnack;
  last_read_ns_ = SteadyNowNs();
  Flush();
  DoRead();
}

void BenchClient::OnConnack(const codec::Connack& connack) {
  if (state_ != State::kWaitConnack) {
    Fail("unexpected CONNACK");
    return;
  }
  if (connack.reason_code != 0) {
    Fail("CONNACK refused with " + Hex(connack.reason_code));
    return;
  }
  const int64_t now = SteadyNowNs();
  env_.stats.connect_ns.Record(static_cast<uint64_t>(now - connect_start_ns_));
  const codec::Properties& p = connack.properties;
  if (p.server_keep_alive) keepalive_s_ = *p.server_keep_alive;  // MQTT 5 s3.2.2.3.14
  if (spec_.role == ClientSpec::Role::kPublisher) {
    if (p.receive_maximum) window_ = std::min<uint32_t>(window_, *p.receive_maximum);
    if (p.maximum_qos && options_.qos > *p.maximum_qos) {
      Fail("the broker's Maximum QoS is " + std::to_string(*p.maximum_qos));
      return;
    }
  }
  // Publishers, idle connections, and subscribers without filters (--no-subscribe) are ready.
  if (spec_.role != ClientSpec::Role::kSubscriber || spec_.filters.empty()) {
    Ready();
    return;
  }
  // SUBSCRIBE in chunks; packet ids 1, 2, ... (no publishes yet on this connection).
  state_ = State::kSubscribing;
  for (size_t i = 0; i < spec_.filters.size(); i += kFiltersPerSubscribe) {
    codec::Subscribe subscribe;
    subscribe.packet_id = static_cast<uint16_t>(++pending_subacks_);
    for (size_t j = i; j < std::min(spec_.filters.size(), i + kFiltersPerSubscribe); ++j) {
      codec::SubscriptionRequest request;
      request.filter = spec_.filters[j];
      request.max_qos = options_.qos;
      subscribe.subscriptions.push_back(std::move(request));
    }
    codec::Encode(codec::Packet(std::move(subscribe)), version_, &wpending_);
  }
  Flush();
}

void BenchClient::OnSuback(const codec::Suback& suback) {
  if (state_ != State::kSubscribing || suback.packet_id == 0 ||
      suback.packet_id > spec_.filters.size()) {
    Fail("unexpected SUBACK");
    return;
  }
  for (uint8_t code : suback.reason_codes) {
    if (code >= 0x80) {
      Fail("SUBACK refused a subscription with " + Hex(code));
      return;
    }
    if (code < options_.qos) {
      // Not an error: the broker may downgrade; the run measures what it gets.
      LogClientError(spec_.client_id, "subscription granted at QoS " + std::to_string(code));
    }
  }
  if (--pending_subacks_ == 0) Ready();
}

void BenchClient::Ready() {
  state_ = State::kReady;
  timer_.cancel();
  env_.stats.connected.Add();
  env_.stats.last_connected_ns = SteadyNowNs();
  auto done = std::move(connect_done_);
  connect_done_ = nullptr;
  if (done) done(true);
}

void BenchClient::Fail(std::string_view why) {
  if (state_ == State::kClosed) return;
  const bool was_ready = state_ == State::kReady || state_ == State::kClosing;
  LogClientError(spec_.client_id, why);
  CloseSocket();
  if (was_ready) {
    env_.stats.errors.Add();
    env_.stats.closed.Add();
  } else {
    env_.stats.connect_failed.Add();
  }
  // A dead publisher's messages will never be acknowledged; a dead client is done.
  env_.stats.inflight.Sub(inflight_.size());
  inflight_.clear();
  if (spec_.role == ClientSpec::Role::kPublisher && was_ready) FinishPublishing();
  if (spec_.role == ClientSpec::Role::kSubscriber && was_ready && !subscriber_done_) {
    subscriber_done_ = true;
    env_.stats.subscribers_done.Add();
  }
  auto done = std::move(connect_done_);
  connect_done_ = nullptr;
  if (done) done(false);
}

void BenchClient::CloseSocket() {
  state_ = State::kClosed;
  publishing_ = false;
  timer_.cancel();
  boost::system::error_code ignored;
  Socket().shutdown(tcp::socket::shutdown_both, ignored);
  Socket().close(ignored);
}

void BenchClient::Disconnect() {
  if (state_ == State::kClosed || state_ == State::kClosing) return;
  if (state_ != State::kReady) {
    Abort();
    return;
  }
  StopPublishing();
  state_ = State::kClosing;
  codec::Encode(codec::Packet(codec::Disconnect{}), version_, &wpending_);
  Flush();
}

void BenchClient::Abort() {
  if (state_ == State::kClosed) return;
  const bool counted = state_ == State::kReady || state_ == State::kClosing;
  CloseSocket();
  if (counted) env_.stats.closed.Add();
  auto done = std::move(connect_done_);
  connect_done_ = nullptr;
  if (done) {
    env_.stats.connect_failed.Add();
    done(false);
  }
}

void BenchClient::Tick(int64_t now_ns) {
  if (state_ != State::kReady || keepalive_s_ == 0) return;
  const int64_t keepalive_ns = int64_t{keepalive_s_} * 1'000'000'000;
  if (ping_sent_ns_ != 0 && now_ns - ping_sent_ns_ > keepalive_ns &&
      last_read_ns_ < ping_sent_ns_) {
    Fail("no PINGRESP within the keepalive interval");
    return;
  }
  if (ping_sent_ns_ == 0 && now_ns - last_write_ns_ >= keepalive_ns / 2) {
    codec::Encode(codec::Packet(codec::Pingreq{}), version_, &wpending_);
    ping_sent_ns_ = now_ns;
    Flush();
  }
}

// ---------------------------------------------------------------------------------------------
// Reading

void BenchClient::DoRead() {
  if (state_ == State::kClosed) return;
  if (rlen_ == rbuf_.size()) rbuf_.resize(rbuf_.size() * 2);
  AsyncReadSome(asio::buffer(rbuf_.data() + rlen_, rbuf_.size() - rlen_),
                [this](const boost::system::error_code& ec, size_t n) { OnRead(ec, n); });
}

void BenchClient::OnRead(const boost::system::error_code& ec, size_t n) {
  if (state_ == State::kClosed) return;
  if (ec) {
    if (state_ == State::kClosing) {
      // Our DISCONNECT went out and the broker closed: the normal end.
      CloseSocket();
      env_.stats.closed.Add();
      return;
    }
    Fail(ec == asio::error::eof ? "connection closed by the broker" : "read: " + ec.message());
    return;
  }
  rlen_ += n;
  last_read_ns_ = SteadyNowNs();
  size_t offset = 0;
  const codec::DecoderLimits limits;
  while (offset < rlen_) {
    codec::DecodeResult r = codec::Decode(
        std::span<const uint8_t>(rbuf_.data() + offset, rlen_ - offset), version_, limits);
    if (r.status == codec::DecodeResult::Status::kNeedMore) {
      if (r.needed > rbuf_.size()) rbuf_.resize(r.needed);
      break;
    }
    if (r.status == codec::DecodeResult::Status::kError) {
      Fail("protocol error: undecodable packet from the broker (" +
           Hex(static_cast<uint8_t>(r.error)) + ")");
      return;
    }
    offset += r.consumed;
    if (!HandlePacket(r.packet)) return;
  }
  if (offset > 0) {
    std::memmove(rbuf_.data(), rbuf_.data() + offset, rlen_ - offset);
    rlen_ -= offset;
  }
  if (publishing_) Pump();  // acknowledgements opened the window
  Flush();                  // acknowledgements we owe
  DoRead();
}

bool BenchClient::HandlePacket(codec::Packet& packet) {
  if (auto* publish = std::get_if<codec::Publish>(&packet)) {
    OnPublish(*publish);
  } else if (auto* response = std::get_if<codec::PubResponse>(&packet)) {
    OnPubResponse(*response);
  } else if (auto* connack = std::get_if<codec::Connack>(&packet)) {
    OnConnack(*connack);
  } else if (auto* suback = std::get_if<codec::Suback>(&packet)) {
    OnSuback(*suback);
  } else if (std::holds_alternative<codec::Pingresp>(packet)) {
    ping_sent_ns_ = 0;
  } else if (auto* disconnect = std::get_if<codec::Disconnect>(&packet)) {
    Fail("DISCONNECT from the broker with " + Hex(static_cast<uint8_t>(disconnect->reason)));
  } else {
    Fail("protocol error: unexpected packet type from the broker");
  }
  return state_ != State::kClosed;
}

void BenchClient::OnPublish(const codec::Publish& publish) {
  if (state_ != State::kReady && state_ != State::kClosing) {
    // MQTT allows messages before SUBACK (s3.8.4), e.g. from a persistent session.
    if (state_ != State::kSubscribing) {
      Fail("PUBLISH before CONNACK");
      return;
    }
  }
  WorkerStats& stats = env_.stats;
  const int64_t now = last_read_ns_;  // the time the bytes were read
  stats.received.Add();
  if (stats.first_receive_ns.load(std::memory_order_relaxed) == 0) {
    stats.first_receive_ns.store(now, std::memory_order_relaxed);
  }
  stats.last_receive_ns.store(now, std::memory_order_relaxed);
  Stamp stamp;
  if (!ReadStamp(publish.payload, &stamp)) {
    stats.foreign.Add();
  } else {
    if (now >= stamp.send_ns) stats.latency_ns.Record(static_cast<uint64_t>(now - stamp.send_ns));
    if (last_tracker_ == nullptr || stamp.publisher != last_publisher_) {
      last_tracker_ = &trackers_[stamp.publisher];  // a new key may move the others, not this
      last_publisher_ = stamp.publisher;
    }
    switch (last_tracker_->Observe(stamp.seq)) {
      case SeqTracker::Result::kNew:
        stats.received_unique.Add();
        break;
      case SeqTracker::Result::kReordered:
        stats.received_unique.Add();
        stats.reordered.Add();
        break;
      case SeqTracker::Result::kDuplicate:
        stats.duplicates.Add();
        break;
    }
  }
  if (publish.qos == 1) SendPubResponse(codec::PacketType::kPuback, publish.packet_id);
  if (publish.qos == 2) SendPubResponse(codec::PacketType::kPubrec, publish.packet_id);
  ++received_;
  // --count bounds a subscriber only in sub mode (in pubsub it counts per publisher).
  if (options_.mode == Mode::kSub && options_.count > 0 && received_ >= options_.count &&
      !subscriber_done_) {
    subscriber_done_ = true;
    stats.subscribers_done.Add();
  }
}

void BenchClient::OnPubResponse(const codec::PubResponse& response) {
  WorkerStats& stats = env_.stats;
  if (response.type == codec::PacketType::kPubrel) {
    // QoS 2 receiver: the message was counted at PUBLISH; complete the exchange.
    SendPubResponse(codec::PacketType::kPubcomp, response.packet_id);
    return;
  }
  auto it = inflight_.find(response.packet_id);
  if (it == inflight_.end()) {
    Fail("protocol error: acknowledgement for unknown packet id " +
         std::to_string(response.packet_id));
    return;
  }
  const bool rejected = static_cast<uint8_t>(response.reason) >= 0x80;
  const bool done_qos1 = response.type == codec::PacketType::kPuback && options_.qos == 1;
  const bool done_qos2 =
      response.type == codec::PacketType::kPubcomp && options_.qos == 2 && it->second.released;
  if (response.type == codec::PacketType::kPubrec && options_.qos == 2 && !it->second.released) {
    if (rejected) {  // MQTT 5 s4.3.3: a PUBREC >= 0x80 ends the exchange
      stats.rejected.Add();
      inflight_.erase(it);
      stats.inflight.Sub(1);
      return;
    }
    it->second.released = true;
    SendPubResponse(codec::PacketType::kPubrel, response.packet_id);
    return;
  }
  if (!done_qos1 && !done_qos2) {
    Fail("protocol error: unexpected acknowledgement type");
    return;
  }
  if (rejected) {
    stats.rejected.Add();
  } else {
    ++acked_;
    stats.acked.Add();
    const int64_t now = last_read_ns_;
    stats.last_ack_ns.store(now, std::memory_order_relaxed);
    if (now >= it->second.sent_ns) {
      stats.ack_latency_ns.Record(static_cast<uint64_t>(now - it->second.sent_ns));
    }
  }
  inflight_.erase(it);
  stats.inflight.Sub(1);
}

void BenchClient::SendPubResponse(codec::PacketType type, uint16_t packet_id) {
  if (state_ == State::kClosing) return;  // nothing may follow our DISCONNECT
  auto& r = std::get<codec::PubResponse>(response_);
  r.type = type;
  r.packet_id = packet_id;
  codec::Encode(response_, version_, &wpending_);
}

// ---------------------------------------------------------------------------------------------
// Publishing

void BenchClient::StartPublishing(int64_t start_ns) {
  if (spec_.role != ClientSpec::Role::kPublisher || state_ != State::kReady) return;
  start_ns_ = start_ns;
  interval_ns_ = options_.rate > 0 ? 1e9 / options_.rate : 0;
  publishing_ = true;
  if (options_.rate > 0) {
    ArmRateTimer(start_ns_);
  } else {
    Pump();
  }
}

void BenchClient::StopPublishing() {
  if (!publishing_) return;
  publishing_ = false;
  if (timer_armed_) timer_.cancel();
}

uint64_t BenchClient::DueCount(int64_t now_ns) const {
  if (now_ns < start_ns_) return 0;
  return static_cast<uint64_t>(static_cast<double>(now_ns - start_ns_) / interval_ns_) + 1;
}

void BenchClient::ArmRateTimer(int64_t due_ns) {
  timer_armed_ = true;
  // At most one wakeup per millisecond: a fast publisher sends what is due in small bursts.
  due_ns = std::max(due_ns, SteadyNowNs() + 1'000'000);
  timer_.expires_at(asio::steady_timer::time_point(std::chrono::nanoseconds(due_ns)));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    timer_armed_ = false;
    if (ec || !publishing_) return;
    Pump();
  });
}

void BenchClient::Pump() {
  if (!publishing_ || state_ != State::kReady) return;
  const int64_t now = SteadyNowNs();
  // Sequence numbers are 32 bits: a publisher stops after 2^32 - 1 messages.
  uint64_t limit = options_.count > 0 ? options_.count : uint64_t{UINT32_MAX};
  if (options_.rate > 0) limit = std::min(limit, DueCount(now));
  const bool acked = options_.qos > 0;
  while (seq_ < limit && wpending_.size() < kMaxBatchBytes) {
    if (acked && inflight_.size() >= window_) break;
    // One timestamp per batch: the whole batch goes out in one write.
    WriteStamp(Stamp{now, spec_.index, seq_}, payload_.data());
    if (acked) {
      do {
        if (++next_packet_id_ == 0) next_packet_id_ = 1;
      } while (inflight_.contains(next_packet_id_));
      publish_header_.packet_id = next_packet_id_;
      inflight_.emplace(next_packet_id_, InFlight{now, false});
      env_.stats.inflight.Add();
    }
    codec::EncodePublish(publish_header_, payload_, version_, &wpending_);
    ++seq_;
    env_.stats.sent.Add();
    if (env_.stats.first_send_ns.load(std::memory_order_relaxed) == 0) {
      env_.stats.first_send_ns.store(now, std::memory_order_relaxed);
    }
  }
  Flush();
  if ((options_.count > 0 && seq_ >= options_.count) || seq_ == UINT32_MAX) {
    FinishPublishing();
    return;
  }
  // Rate-limited and everything due is sent: wait for the next message's time. (Otherwise a
  // write completion or an acknowledgement calls Pump again.)
  if (options_.rate > 0 && seq_ >= limit && !timer_armed_) {
    ArmRateTimer(start_ns_ + static_cast<int64_t>(static_cast<double>(seq_) * interval_ns_));
  }
}

void BenchClient::FinishPublishing() {
  StopPublishing();
  if (!publisher_done_) {
    publisher_done_ = true;
    env_.stats.publishers_done.Add();
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

void BenchClient::Flush() {
  if (writing_ || wpending_.empty() || state_ == State::kClosed) return;
  wbuf_.swap(wpending_);
  writing_ = true;
  last_write_ns_ = SteadyNowNs();
  AsyncWrite(asio::buffer(wbuf_),
             [this](const boost::system::error_code& ec, size_t) { OnWrite(ec); });
}

void BenchClient::OnWrite(const boost::system::error_code& ec) {
  writing_ = false;
  if (state_ == State::kClosed) return;
  if (ec && state_ == State::kClosing) {  // the broker closed first: still a normal end
    CloseSocket();
    env_.stats.closed.Add();
    return;
  }
  if (ec) {
    Fail("write: " + ec.message());
    return;
  }
  wbuf_.clear();
  if (state_ == State::kClosing && wpending_.empty()) {
    // DISCONNECT is out: half-close and let the broker close (OnRead sees EOF).
    boost::system::error_code ignored;
    if (!tls_) Socket().shutdown(tcp::socket::shutdown_send, ignored);
    return;
  }
  if (publishing_) {
    Pump();
  } else {
    Flush();
  }
}

}  // namespace shardmq::bench
