// Admin HTTP server on Boost.Beast.
//
// Threading: one thread runs `ioc_`; the acceptor, every Session and `active_connections_` live
// on it. Stop() stops the io_context, joins the thread and then destroys the io_context while
// Impl is still whole: that destroys the pending handlers and with them the Sessions (each holds
// only a reference to Impl), so no Session outlives Impl.
//
// Exceptions: every Asio/Beast call that has an error_code overload uses it. The remaining ones
// cannot fail in practice: timer expires_after() (the reactor's cancel never reports an error)
// and allocation (fatal by house rule). io_context and std::thread construction can throw on
// resource exhaustion; Start() converts that into a Status.
#include "broker/app/admin_server.h"

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <iterator>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "common/log.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace shardmq::broker::app {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Request = http::request<http::empty_body>;
using Response = http::response<http::string_body>;

// Admin requests are a request line plus a few headers; 8 KiB is Beast's and nginx's default.
constexpr std::uint32_t kMaxHeaderBytes = 8 * 1024;
// Read buffer cap: a full header block plus pipelined bytes of the next request.
constexpr std::size_t kMaxBufferBytes = 2 * kMaxHeaderBytes;
// After an error response, how long and how much we drain before closing (see LingerClose).
constexpr auto kLingerTimeout = std::chrono::seconds(1);
constexpr std::size_t kMaxLingerBytes = 64 * 1024;
// Backoff before accepting again after an accept error such as EMFILE (avoids a busy loop).
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);
// At most one "connection limit reached" warning per interval.
constexpr auto kLimitWarningInterval = std::chrono::seconds(10);

constexpr std::string_view kTextPlain = "text/plain; charset=utf-8";
// Prometheus text exposition format 0.0.4.
constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

absl::StatusOr<tcp::endpoint> ParseListenAddress(std::string_view listen) {
  auto invalid = [listen](std::string_view why) {
    return absl::InvalidArgumentError(
        std::string("invalid admin listen address \"").append(listen).append("\": ").append(why));
  };
  std::string_view host;
  std::string_view port_text;
  const bool bracketed = !listen.empty() && listen.front() == '[';
  if (bracketed) {
    const std::size_t close = listen.find(']');
    if (close == std::string_view::npos) return invalid("missing ']'");
    if (close + 1 >= listen.size() || listen[close + 1] != ':') {
      return invalid("expected [IPV6]:PORT");
    }
    host = listen.substr(1, close - 1);
    port_text = listen.substr(close + 2);
  } else {
    const std::size_t colon = listen.rfind(':');
    if (colon == std::string_view::npos) return invalid("expected HOST:PORT");
    host = listen.substr(0, colon);
    port_text = listen.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return invalid("an IPv6 address must be in brackets, e.g. [::1]:8080");
    }
  }
  if (host.empty()) return invalid("empty host");
  if (port_text.empty() || port_text.size() > 5) return invalid("port must be 0-65535");
  uint32_t port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') return invalid("port must be 0-65535");
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port > 65535) return invalid("port must be 0-65535");

  asio::ip::address address;
  if (!bracketed && host == "localhost") {
    address = asio::ip::address_v4::loopback();
  } else {
    beast::error_code ec;
    address = asio::ip::make_address(std::string(host).c_str(), ec);
    if (ec) return invalid("host must be an IPv4 address, [IPv6 address] or localhost");
    if (bracketed != address.is_v6()) {
      return invalid("only IPv6 addresses go in brackets");
    }
  }
  return tcp::endpoint(address, static_cast<uint16_t>(port));
}

Response MakeResponse(http::status status, unsigned version, bool keep_alive,
                      std::string_view content_type, std::string body) {
  Response res(status, version);
  res.set(http::field::content_type, beast::string_view(content_type.data(), content_type.size()));
  res.keep_alive(keep_alive);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

bool IsHttpParseError(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category();
}

}  // namespace

class AdminServer::Impl {
 public:
  Impl(Options options, std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
       std::function<bool()> ready)
      : options_(std::move(options)), ready_(std::move(ready)) {
    for (auto& collectable : collectables) {
      if (collectable != nullptr) collectables_.push_back(std::move(collectable));
    }
  }

  ~Impl() { Stop(); }

  absl::Status Start();
  void Stop();
  uint16_t port() const { return port_.load(std::memory_order_acquire); }

 private:
  class Session;

  // Undoes a partial Start and returns an error naming the address.
  absl::Status FailStart(std::string_view what, std::string_view detail);
  // Admin thread only, from here on.
  void Accept();
  void OnAccept(const beast::error_code& ec, tcp::socket socket);
  Response Handle(const Request& request) const;
  std::string SerializeMetrics() const;

  const Options options_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  const std::function<bool()> ready_;

  std::atomic<uint16_t> port_{0};
  std::mutex mu_;  // Serializes Start and Stop; guards the members below it.
  std::unique_ptr<asio::io_context> ioc_;
  std::optional<tcp::acceptor> acceptor_;
  std::optional<asio::steady_timer> accept_retry_timer_;
  std::thread thread_;

  // Admin thread only (or Stop's thread after the join).
  std::size_t active_connections_ = 0;
  std::size_t rejected_since_warning_ = 0;
  std::optional<std::chrono::steady_clock::time_point> last_limit_warning_;
};

// One HTTP connection. Kept alive by the shared_ptr in its pending handler; it goes away when no
// operation is pending, i.e. once it stops reading and writing.
class AdminServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Impl& server, tcp::socket socket)
      : server_(server), stream_(std::move(socket)), buffer_(kMaxBufferBytes) {
    ++server_.active_connections_;
  }
  ~Session() { --server_.active_connections_; }

  void Start() { ReadRequest(); }

 private:
  void ReadRequest() {
    parser_.emplace();
    parser_->header_limit(kMaxHeaderBytes);
    parser_->body_limit(0);  // Admin requests have no body: Content-Length > 0 fails at once.
    stream_.expires_after(server_.options_.read_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnRead(ec); });
  }

  void OnRead(const beast::error_code& ec) {
    if (!ec) {
      Write(server_.Handle(parser_->get()), /*linger=*/false);
      return;
    }
    // end_of_stream: the client closed between requests. partial_message: it closed mid-request.
    // Timeouts (Beast has already closed the socket), resets and aborts are not answered either.
    if (!IsHttpParseError(ec) || ec == http::error::end_of_stream ||
        ec == http::error::partial_message) {
      Close();
      return;
    }
    http::status status = http::status::bad_request;
    std::string body = "bad request";
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      status = http::status::request_header_fields_too_large;
      body = "request headers too large";
    } else if (ec == http::error::body_limit || ec == http::error::unexpected_body) {
      status = http::status::payload_too_large;
      body = "request body not allowed";
    }
    Write(MakeResponse(status, 11, /*keep_alive=*/false, kTextPlain, std::move(body)),
          /*linger=*/true);
  }

  void Write(Response response, bool linger) {
    response_ = std::move(response);  // Must outlive async_write.
    stream_.expires_after(server_.options_.read_timeout);
    http::async_write(stream_, response_,
                      [self = shared_from_this(), linger](beast::error_code ec, std::size_t) {
                        self->OnWrite(ec, linger);
                      });
  }

  void OnWrite(const beast::error_code& ec, bool linger) {
    if (ec) {
      Close();
    } else if (linger) {
      LingerClose();
    } else if (!response_.keep_alive()) {
      Close();
    } else {
      ReadRequest();
    }
  }

  // After an error response the client may still be sending (an oversized header, a body).
  // Closing with unread input makes the kernel send RST, which can discard our response before
  // the client reads it. So: half-close, then drain (bounded in time and bytes) until EOF.
  void LingerClose() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    buffer_.clear();
    stream_.expires_after(kLingerTimeout);
    Drain();
  }

  void Drain() {
    if (drained_bytes_ >= kMaxLingerBytes) {
      stream_.close();
      return;
    }
    stream_.async_read_some(buffer_.prepare(kMaxBufferBytes),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->drained_bytes_ += n;
                              if (ec) {
                                self->stream_.close();
                                return;
                              }
                              self->Drain();
                            });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  Impl& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  Response response_;
  std::size_t drained_bytes_ = 0;
};

absl::Status AdminServer::Impl::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (ioc_ != nullptr) return absl::FailedPreconditionError("admin server already started");
  SHARDMQ_ASSIGN_OR_RETURN(const tcp::endpoint endpoint, ParseListenAddress(options_.listen));

  try {
    ioc_ = std::make_unique<asio::io_context>(1);
  } catch (const std::exception& e) {
    return absl::InternalError(std::string("admin server cannot create its event loop: ") +
                               e.what());
  }
  acceptor_.emplace(*ioc_);
  accept_retry_timer_.emplace(*ioc_);
  beast::error_code ec;
  acceptor_->open(endpoint.protocol(), ec);
  if (ec) return FailStart("open socket", ec.message());
  // Lets a restarted broker bind while old connections sit in TIME_WAIT. On Linux this does not
  // allow two listeners on one port.
  acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) return FailStart("set SO_REUSEADDR", ec.message());
  acceptor_->bind(endpoint, ec);
  if (ec) return FailStart("bind", ec.message());
  acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return FailStart("listen", ec.message());
  const tcp::endpoint bound = acceptor_->local_endpoint(ec);
  if (ec) return FailStart("read bound address", ec.message());
  port_.store(bound.port(), std::memory_order_release);

  Accept();  // Queued now, run by the admin thread.
  try {
    thread_ = std::thread([this] { ioc_->run(); });
  } catch (const std::system_error& e) {
    return FailStart("start thread", e.what());
  }
  SHARDMQ_LOG(INFO) << "admin server listening on " << bound;
  return absl::OkStatus();
}

absl::Status AdminServer::Impl::FailStart(std::string_view what, std::string_view detail) {
  // Runs before the thread exists: nothing else touches these.
  accept_retry_timer_.reset();
  acceptor_.reset();
  ioc_.reset();
  port_.store(0, std::memory_order_release);
  // Debian's Abseil has its own string_view, so absl::StrCat does not take std::string_view.
  return absl::UnavailableError(std::string("admin server cannot ")
                                    .append(what)
                                    .append(" on \"")
                                    .append(options_.listen)
                                    .append("\": ")
                                    .append(detail));
}

void AdminServer::Impl::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  if (ioc_ == nullptr) return;
  ioc_->stop();
  if (thread_.joinable()) thread_.join();
  // Order matters: io objects before their io_context, and the io_context (which destroys the
  // pending handlers and so the Sessions) while Impl is still whole.
  accept_retry_timer_.reset();
  acceptor_.reset();
  ioc_.reset();
  SHARDMQ_LOG(INFO) << "admin server on port " << port() << " stopped";
}

void AdminServer::Impl::Accept() {
  acceptor_->async_accept(
      [this](beast::error_code ec, tcp::socket socket) { OnAccept(ec, std::move(socket)); });
}

void AdminServer::Impl::OnAccept(const beast::error_code& ec, tcp::socket socket) {
  if (ec == asio::error::operation_aborted) return;  // Acceptor closed.
  if (ec) {
    // E.g. EMFILE: the pending connection stays in the backlog, so retry after a pause.
    SHARDMQ_LOG(WARNING) << "admin server accept failed: " << ec.message();
    accept_retry_timer_->expires_after(kAcceptRetryDelay);
    accept_retry_timer_->async_wait([this](beast::error_code wait_ec) {
      if (!wait_ec) Accept();
    });
    return;
  }
  if (active_connections_ >= options_.max_connections) {
    // Closing at once (rather than leaving it in the backlog) gives probes a fast, clear failure.
    beast::error_code ignored;
    socket.close(ignored);
    ++rejected_since_warning_;
    const auto now = std::chrono::steady_clock::now();
    if (!last_limit_warning_ || now - *last_limit_warning_ >= kLimitWarningInterval) {
      SHARDMQ_LOG(WARNING) << "admin server at its limit of " << options_.max_connections
                           << " connections; closed " << rejected_since_warning_
                           << " new connection(s)";
      last_limit_warning_ = now;
      rejected_since_warning_ = 0;
    }
  } else {
    std::make_shared<Session>(*this, std::move(socket))->Start();
  }
  Accept();
}

Response AdminServer::Impl::Handle(const Request& request) const {
  const unsigned version = request.version();
  const bool keep_alive = request.keep_alive();
  if (request.method() != http::verb::get) {
    Response res = MakeResponse(http::status::method_not_allowed, version, keep_alive, kTextPlain,
                                "method not allowed");
    res.set(http::field::allow, "GET");
    return res;
  }
  std::string_view path(request.target().data(), request.target().size());
  path = path.substr(0, path.find('?'));
  if (path == "/livez") {
    return MakeResponse(http::status::ok, version, keep_alive, kTextPlain, "ok");
  }
  if (path == "/readyz") {
    if (!ready_ || ready_()) {
      return MakeResponse(http::status::ok, version, keep_alive, kTextPlain, "ready");
    }
    return MakeResponse(http::status::service_unavailable, version, keep_alive, kTextPlain,
                        "not ready");
  }
  if (path == "/metrics") {
    return MakeResponse(http::status::ok, version, keep_alive, kMetricsContentType,
                        SerializeMetrics());
  }
  return MakeResponse(http::status::not_found, version, keep_alive, kTextPlain, "not found");
}

std::string AdminServer::Impl::SerializeMetrics() const {
  std::vector<prometheus::MetricFamily> families;
  for (const auto& collectable : collectables_) {
    std::vector<prometheus::MetricFamily> collected = collectable->Collect();
    families.insert(families.end(), std::make_move_iterator(collected.begin()),
                    std::make_move_iterator(collected.end()));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return std::move(out).str();
}

AdminServer::AdminServer(Options options,
                         std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
                         std::function<bool()> ready)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(collectables), std::move(ready))) {
}

AdminServer::~AdminServer() = default;  // ~Impl stops and joins.

absl::Status AdminServer::Start() { return impl_->Start(); }

uint16_t AdminServer::port() const { return impl_->port(); }

void AdminServer::Stop() { impl_->Stop(); }

}  // namespace shardmq::broker::app
