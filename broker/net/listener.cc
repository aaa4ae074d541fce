#include "broker/net/listener.h"

#include <boost/asio/ip/address.hpp>

#include "common/host_port.h"
#include "common/log.h"

namespace shardmq::broker::net {

namespace asio = boost::asio;
using asio::ip::tcp;

Listener::Listener(std::vector<Worker*> workers, Factory factory, ConnectionLimits limits)
    : workers_(std::move(workers)),
      factory_(std::move(factory)),
      limits_(limits),
      acceptor_(workers_.front()->io()) {}

absl::Status Listener::Listen(const std::string& host_port) {
  SHARDMQ_ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(host_port));
  boost::system::error_code ec;
  tcp::resolver resolver(workers_.front()->io());
  auto results = resolver.resolve(hp.host, std::to_string(hp.port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return absl::InvalidArgumentError("cannot resolve listen address " + host_port + ": " +
                                      ec.message());
  }
  tcp::endpoint ep = results.begin()->endpoint();
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError("cannot listen on " + host_port + ": " + ec.message());
  }
  port_ = acceptor_.local_endpoint(ec).port();
  return absl::OkStatus();
}

void Listener::Start() {
  workers_.front()->Post([this] { DoAccept(); });
}

void Listener::Stop() {
  workers_.front()->Post([this] {
    boost::system::error_code ec;
    acceptor_.close(ec);
  });
}

void Listener::DoAccept() {
  Worker* target = workers_[next_++ % workers_.size()];
  acceptor_.async_accept(target->io(), [this, target](const boost::system::error_code& ec,
                                                      tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      // EMFILE and friends: back off briefly instead of spinning on the error.
      SHARDMQ_LOG(WARNING) << "accept failed: " << ec.message() << "; pausing 100 ms";
      backoff_ = std::make_unique<asio::steady_timer>(workers_.front()->io());
      backoff_->expires_after(std::chrono::milliseconds(100));
      backoff_->async_wait([this](const boost::system::error_code& wait_ec) {
        if (!wait_ec && acceptor_.is_open()) DoAccept();
      });
      return;
    } else {
      uint64_t id = next_id_.fetch_add(1, std::memory_order_relaxed);
      target->Post([this, target, id, s = std::move(socket)]() mutable {
        auto conn = std::make_shared<TcpConnection>(std::move(s), id, limits_);
        auto callbacks = factory_(*conn, *target);
        conn->Start(std::move(callbacks));
      });
    }
    DoAccept();
  });
}

}  // namespace shardmq::broker::net
