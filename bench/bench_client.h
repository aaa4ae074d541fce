// One MQTT client connection of the load generator: a publisher, a subscriber or an idle
// connection (conn mode), over TCP or TLS.
//
// Owned by a worker and driven only on that worker's io_context thread: not thread-safe. Handlers
// capture `this`; the owner keeps the client alive until its io_context has stopped running.
//
// Writes are batched: whatever is queued while a write is in progress goes out in the next single
// async_write. The hot path does not allocate: PUBLISH packets are encoded straight into the
// reused write buffer from a prebuilt header and payload, and the QoS 1/2 in-flight map reuses its
// slots. (Received PUBLISH packets are decoded by broker/codec, which copies the payload: one
// allocation per received message above 15 bytes.)
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "bench/bench_options.h"
#include "bench/seq_tracker.h"
#include "bench/worker_stats.h"
#include "broker/codec/packets.h"
#include "common/status.h"

namespace shardmq::bench {

// Client-side TLS settings shared by all connections (an OpenSSL context, kept out of this
// header). Thread-safe after Create: connections on every worker use it.
class TlsContext {
 public:
  // InvalidArgumentError when a certificate or key file cannot be loaded.
  static absl::StatusOr<std::unique_ptr<TlsContext>> Create(const Options& options);
  ~TlsContext();

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  explicit TlsContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What a worker shares with all of its clients.
struct ClientEnv {
  const Options& options;
  boost::asio::io_context& io;
  boost::asio::ip::tcp::endpoint endpoint;
  TlsContext* tls = nullptr;  // nullptr: plain TCP
  WorkerStats& stats;
};

struct ClientSpec {
  enum class Role { kPublisher, kSubscriber, kIdle };
  Role role = Role::kIdle;
  uint32_t index = 0;  // client index: publisher id in the payload stamp
  std::string client_id;
  std::string publish_topic;         // publishers
  std::vector<std::string> filters;  // subscribers
};

class BenchClient {
 public:
  BenchClient(ClientEnv& env, ClientSpec spec);
  ~BenchClient();
  BenchClient(const BenchClient&) = delete;
  BenchClient& operator=(const BenchClient&) = delete;

  // Connects: TCP, TLS handshake, CONNECT/CONNACK, then SUBSCRIBE/SUBACK for a subscriber.
  // `done(true)` once ready, `done(false)` on failure or after --connect-timeout; called exactly
  // once, never from inside Connect().
  void Connect(std::function<void(bool ok)> done);

  // Publishers: starts publishing. `start_ns` (steady clock) is when the first message is due;
  // with --rate, message k is due at start_ns + k / rate.
  void StartPublishing(int64_t start_ns);
  // Publishers: sends nothing new (acknowledgements are still processed).
  void StopPublishing();
  // Sends DISCONNECT once what is queued has been written, then closes. Idempotent.
  void Disconnect();
  // Closes the socket now.
  void Abort();
  // Once a second from the worker: keepalive (PINGREQ when nothing was written for half the
  // keepalive; fails the connection when a PINGRESP is a whole keepalive late).
  void Tick(int64_t now_ns);

  const ClientSpec& spec() const { return spec_; }
  bool ready() const { return state_ == State::kReady; }
  bool closed() const { return state_ == State::kClosed; }
  uint64_t sent() const { return seq_; }
  uint64_t acked() const { return acked_; }
  // Subscribers: per publisher id.
  const absl::flat_hash_map<uint32_t, SeqTracker>& trackers() const { return trackers_; }

 private:
  enum class State { kIdle, kConnecting, kWaitConnack, kSubscribing, kReady, kClosing, kClosed };
  struct InFlight {
    int64_t sent_ns = 0;
    bool released = false;  // QoS 2: PUBREC received, PUBREL sent
  };
  struct TlsStream;

  boost::asio::ip::tcp::socket& Socket();
  template <typename Handler>
  void AsyncReadSome(boost::asio::mutable_buffer buffer, Handler&& handler);
  template <typename Handler>
  void AsyncWrite(boost::asio::const_buffer buffer, Handler&& handler);

  void OnTcpConnected(const boost::system::error_code& ec);
  void SendConnect();
  void Ready();
  void Fail(std::string_view why);
  void CloseSocket();
  void DoRead();
  void OnRead(const boost::system::error_code& ec, size_t n);
  // False when the connection failed while handling it.
  bool HandlePacket(broker::codec::Packet& packet);
  void OnConnack(const broker::codec::Connack& connack);
  void OnSuback(const broker::codec::Suback& suback);
  void OnPublish(const broker::codec::Publish& publish);
  void OnPubResponse(const broker::codec::PubResponse& response);
  void SendPubResponse(broker::codec::PacketType type, uint16_t packet_id);
  void Pump();
  void ArmRateTimer(int64_t due_ns);
  uint64_t DueCount(int64_t now_ns) const;
  void FinishPublishing();
  void Flush();
  void OnWrite(const boost::system::error_code& ec);

  ClientEnv& env_;
  const Options& options_;
  const ClientSpec spec_;
  const broker::codec::ProtocolVersion version_;
  State state_ = State::kIdle;
  boost::asio::ip::tcp::socket socket_;  // unused with TLS (the TLS stream owns its socket)
  std::unique_ptr<TlsStream> tls_;
  boost::asio::steady_timer timer_;  // connect timeout, then the publish rate
  bool timer_armed_ = false;
  std::function<void(bool)> connect_done_;
  int64_t connect_start_ns_ = 0;

  std::vector<uint8_t> rbuf_;
  size_t rlen_ = 0;
  std::string wbuf_;      // being written
  std::string wpending_;  // queued while a write is in progress
  bool writing_ = false;
  int64_t last_write_ns_ = 0;
  int64_t last_read_ns_ = 0;
  int64_t ping_sent_ns_ = 0;  // 0 = no PINGREQ outstanding
  uint16_t keepalive_s_ = 0;

  // Publisher.
  broker::codec::Publish publish_header_;  // topic, QoS; packet_id set per message
  std::string payload_;
  bool publishing_ = false;
  bool publisher_done_ = false;
  int64_t start_ns_ = 0;
  double interval_ns_ = 0;  // 1e9 / rate
  uint32_t seq_ = 0;
  uint64_t acked_ = 0;
  uint32_t window_ = 0;
  uint16_t next_packet_id_ = 0;
  absl::flat_hash_map<uint16_t, InFlight> inflight_;

  // Subscriber.
  uint16_t pending_subacks_ = 0;
  uint64_t received_ = 0;
  bool subscriber_done_ = false;
  absl::flat_hash_map<uint32_t, SeqTracker> trackers_;
  uint32_t last_publisher_ = 0;
  SeqTracker* last_tracker_ = nullptr;

  broker::codec::Packet response_;  // a PubResponse, reused for every PUBACK/PUBREC/...
  std::string scratch_;
};

}  // namespace shardmq::bench
