// Accepts TCP connections and spreads them round-robin over the workers.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "broker/net/tcp_connection.h"
#include "broker/net/transport.h"
#include "broker/net/worker.h"
#include "common/status.h"

namespace shardmq::broker::net {

class Listener {
 public:
  // Creates the session-layer callbacks of a new connection; runs on `worker`.
  using Factory =
      std::function<std::shared_ptr<ConnectionCallbacks>(Transport& transport, Worker& worker)>;

  Listener(std::vector<Worker*> workers, Factory factory, ConnectionLimits limits);

  // Binds and listens on HOST:PORT (port 0 = ephemeral). Call before the workers start.
  absl::Status Listen(const std::string& host_port);
  uint16_t port() const { return port_; }
  // Starts accepting (on the first worker's loop).
  void Start();
  // Stops accepting new connections. Safe from any thread.
  void Stop();

 private:
  void DoAccept();

  std::vector<Worker*> workers_;
  Factory factory_;
  ConnectionLimits limits_;
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  size_t next_ = 0;
  std::atomic<uint64_t> next_id_{1};
  std::unique_ptr<boost::asio::steady_timer> backoff_;
};

}  // namespace shardmq::broker::net
