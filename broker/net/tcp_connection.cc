#include "broker/net/tcp_connection.h"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <cstring>

namespace shardmq::broker::net {

namespace asio = boost::asio;

TcpConnection::TcpConnection(asio::ip::tcp::socket socket, uint64_t id, ConnectionLimits limits)
    : socket_(std::move(socket)), id_(id), limits_(limits) {
  boost::system::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  if (!ec) peer_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
}

TcpConnection::~TcpConnection() = default;

void TcpConnection::Start(std::shared_ptr<ConnectionCallbacks> callbacks) {
  callbacks_ = std::move(callbacks);
  rbuf_.resize(4096);
  DoRead();
}

void TcpConnection::DoRead() {
  if (closing_ || closed_ || read_in_progress_ || read_paused_) return;
  size_t want = std::max<size_t>(wanted_, rlen_ + 4096);
  if (rbuf_.size() < want) rbuf_.resize(want);
  read_in_progress_ = true;
  socket_.async_read_some(
      asio::buffer(rbuf_.data() + rlen_, rbuf_.size() - rlen_),
      [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
        self->OnRead(ec, n);
      });
}

void TcpConnection::OnRead(const boost::system::error_code& ec, size_t n) {
  read_in_progress_ = false;
  if (closed_) return;
  if (ec) {
    Shutdown();
    return;
  }
  if (closing_) return;  // data after Close() is ignored
  rlen_ += n;
  size_t consumed = callbacks_->OnData(std::span<const uint8_t>(rbuf_.data(), rlen_), &wanted_);
  if (closed_) return;
  if (consumed > 0) {
    std::memmove(rbuf_.data(), rbuf_.data() + consumed, rlen_ - consumed);
    rlen_ -= consumed;
  }
  // Give memory back after a large packet.
  if (rlen_ == 0 && rbuf_.size() > 65536 && wanted_ <= 65536) {
    rbuf_.resize(4096);
    rbuf_.shrink_to_fit();
  }
  if (PendingWriteBytes() > limits_.write_high_watermark) {
    read_paused_ = true;  // resumes in OnWrite once below the low watermark
    return;
  }
  DoRead();
}

void TcpConnection::Send(std::string_view bytes) {
  if (closed_ || closing_) return;
  if (write_in_progress_) {
    pending_.append(bytes);
    return;
  }
  writing_.append(bytes);
  // Defer the actual write to the end of the current handler so many small sends in one
  // handler go out in one write.
  write_in_progress_ = true;
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->DoWrite(); });
}

void TcpConnection::DoWrite() {
  if (closed_) return;
  if (writing_.empty()) {
    write_in_progress_ = false;
    if (closing_) Shutdown();
    return;
  }
  asio::async_write(socket_, asio::buffer(writing_),
                    [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
                      self->OnWrite(ec, n);
                    });
}

void TcpConnection::OnWrite(const boost::system::error_code& ec, size_t) {
  if (closed_) return;
  if (ec) {
    write_in_progress_ = false;
    Shutdown();
    return;
  }
  writing_.clear();
  writing_.swap(pending_);
  if (writing_.capacity() > (1 << 20) && writing_.empty()) std::string().swap(writing_);
  if (read_paused_ && PendingWriteBytes() < limits_.write_low_watermark) {
    read_paused_ = false;
    DoRead();
  }
  DoWrite();
}

void TcpConnection::Close() {
  if (closing_ || closed_) return;
  closing_ = true;
  if (!write_in_progress_) {
    Shutdown();
    return;
  }
  // DoWrite() shuts down once everything queued has been written; a peer that does not read
  // gets cut off after the linger time.
  linger_ = std::make_unique<asio::steady_timer>(socket_.get_executor());
  linger_->expires_after(limits_.close_linger);
  linger_->async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->Shutdown();
  });
}

void TcpConnection::Shutdown() {
  if (closed_) return;
  closed_ = true;
  if (linger_) linger_->cancel();
  boost::system::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  writing_.clear();
  pending_.clear();
  auto cb = std::move(callbacks_);
  if (cb) {
    cb->OnClosed();
    // Release the callbacks later: we may be inside one of their own calls.
    asio::post(socket_.get_executor(), [cb = std::move(cb)] {});
  }
}

}  // namespace shardmq::broker::net
