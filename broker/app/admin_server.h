// HTTP/1.1 admin endpoint: liveness, readiness and Prometheus metrics.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "prometheus/collectable.h"

namespace shardmq::broker::app {

// Serves, on its own thread and io_context (admin traffic never touches the network workers):
//   GET /livez    200 "ok" while the process runs.
//   GET /readyz   200 "ready" while `ready()` returns true, else 503 "not ready".
//   GET /metrics  200, Prometheus text exposition format 0.0.4 of every collectable.
// Any other method is 405 (with "Allow: GET"); any other path is 404. A query string is ignored.
// Requests with a body get 413, headers over 8 KiB get 431, malformed requests get 400; each of
// these closes the connection. Keep-alive is supported. A connection that does not deliver a
// complete request within `read_timeout` (including idle time between keep-alive requests) is
// closed. Connections beyond `max_connections` are accepted and closed at once.
//
// Owned by app::Run. Start/Stop/port may be called from any thread, but not concurrently with
// the destructor and never from inside `ready` or a collectable. `ready` and each Collect() run on
// the admin thread: they must be thread-safe and must not throw or block for long.
// No method throws.
class AdminServer {
 public:
  struct Options {
    // HOST:PORT. HOST is an IPv4 address, an IPv6 address in brackets ("[::1]:8080"), or
    // "localhost" (127.0.0.1; no DNS lookup). Port 0 picks an ephemeral port (see port()).
    std::string listen = "127.0.0.1:8080";
    // Connections served at once; more are closed right after accept.
    std::size_t max_connections = 64;
    // Time allowed to receive one whole request, counted from the end of the previous response
    // (so it is also the keep-alive idle timeout), and to send one response.
    std::chrono::milliseconds read_timeout = std::chrono::seconds(10);
  };

  // `collectables` are usually prometheus::Registry instances; null entries are ignored.
  // An empty `ready` means always ready.
  AdminServer(Options options, std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
              std::function<bool()> ready);
  ~AdminServer();  // Stops and joins.

  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds, listens and starts the admin thread. On error nothing is left running:
  //   InvalidArgumentError  `listen` is not a valid HOST:PORT (the message names it).
  //   UnavailableError      the address cannot be bound, e.g. in use (the message names it).
  //   FailedPreconditionError  already started.
  //   InternalError         the event loop or thread could not be created.
  absl::Status Start();

  // The bound port (the ephemeral one for port 0). 0 before a successful Start.
  uint16_t port() const;

  // Closes the listener and every connection and joins the admin thread. Idempotent. After
  // Stop, Start may be called again.
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardmq::broker::app
