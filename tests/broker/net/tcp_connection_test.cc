// Tests of broker/net/tcp_connection.h over a real loopback socket: HoldReading stops OnData
// until released, and nothing sent meanwhile is lost.
#include "broker/net/tcp_connection.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "tests/support/test_util.h"

namespace shardmq::broker::net {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

class Sink : public ConnectionCallbacks {
 public:
  size_t OnData(std::span<const uint8_t> data, size_t* wanted) override {
    *wanted = 0;
    got.append(reinterpret_cast<const char*>(data.data()), data.size());
    ++calls;
    return data.size();
  }
  void OnClosed() override { closed = true; }
  std::string got;  // touched on the io thread only (read after it stopped)
  std::atomic<int> calls{0};
  std::atomic<bool> closed{false};
};

TEST(TcpConnectionTest, HeldReadingDeliversNothingUntilReleasedAndLosesNothing) {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  asio::ip::tcp::socket client(io);
  client.connect(acceptor.local_endpoint());
  asio::ip::tcp::socket server(io);
  acceptor.accept(server);
  ConnectionLimits limits;
  auto conn = std::make_shared<TcpConnection>(std::move(server), 1, limits);
  auto sink = std::make_shared<Sink>();
  conn->Start(sink);
  conn->HoldReading(true);

  asio::write(client, asio::buffer(std::string("held bytes")));
  // Run the loop for a while: the bytes wait in the socket.
  io.run_for(300ms);
  EXPECT_EQ(sink->calls.load(), 0);
  EXPECT_TRUE(sink->got.empty());

  conn->HoldReading(false);
  asio::write(client, asio::buffer(std::string(" and more")));
  ASSERT_TRUE(test::WaitFor([&] {
    io.restart();
    io.run_for(20ms);
    return sink->got == "held bytes and more";
  }, 5s));
  conn->Close();
  io.restart();
  io.run_for(100ms);
}

}  // namespace
}  // namespace shardmq::broker::net
