// A plain TCP client connection on one worker: read buffer, double-buffered writes with
// high/low watermarks (reading pauses while the peer does not drain what we write).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "broker/net/transport.h"

namespace shardmq::broker::net {

struct ConnectionLimits {
  size_t write_high_watermark = 4 << 20;  // stop reading above this many queued bytes
  size_t write_low_watermark = 1 << 20;   // resume below this
  // After Close(), how long queued bytes may take to drain before the socket is cut.
  std::chrono::milliseconds close_linger{5000};
};

class TcpConnection final : public Transport, public std::enable_shared_from_this<TcpConnection> {
 public:
  // `limits` must outlive the connection (the listener's).
  TcpConnection(boost::asio::ip::tcp::socket socket, uint64_t id, const ConnectionLimits& limits);
  ~TcpConnection() override;

  // Starts reading; `callbacks` receives data until OnClosed. Call on the socket's worker.
  void Start(std::shared_ptr<ConnectionCallbacks> callbacks);

  // net::Transport
  void Send(std::string_view bytes) override;
  void Close() override;
  size_t PendingWriteBytes() const override { return writing_.size() + pending_.size(); }
  void HoldReading(bool hold) override;
  const std::string& peer() const override { return peer_; }
  uint64_t id() const override { return id_; }

 private:
  void DoRead();
  void OnReadable(const boost::system::error_code& ec);
  void ReadNow();
  void DoWrite();
  void OnWrite(const boost::system::error_code& ec, size_t n);
  void Shutdown();

  boost::asio::ip::tcp::socket socket_;
  const uint64_t id_;
  const ConnectionLimits& limits_;
  std::string peer_;
  std::shared_ptr<ConnectionCallbacks> callbacks_;
  std::vector<uint8_t> rbuf_;  // an incomplete packet's bytes; empty (unallocated) otherwise
  uint32_t rlen_ = 0;          // valid bytes in rbuf_ (a packet is at most 268,435,460 bytes)
  uint32_t wanted_ = 0;        // size hint for the next packet (bytes from its start)
  std::string writing_;   // being written by async_write
  std::string pending_;   // appended while a write is in progress
  bool write_in_progress_ = false;
  bool read_in_progress_ = false;
  bool read_paused_ = false;  // write watermarks
  bool read_held_ = false;    // HoldReading
  std::shared_ptr<TcpConnection> held_self_;  // keeps a held connection alive (no read pending)
  bool closing_ = false;  // Close() called: flush then shut down
  bool closed_ = false;   // socket closed and OnClosed delivered
  std::unique_ptr<boost::asio::steady_timer> linger_;
};

}  // namespace shardmq::broker::net
