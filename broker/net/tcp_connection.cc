#include "broker/net/tcp_connection.h"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace shardmq::broker::net {

namespace asio = boost::asio;

TcpConnection::TcpConnection(asio::ip::tcp::socket socket, uint64_t id,
                             const ConnectionLimits& limits)
    : socket_(std::move(socket)), id_(id), limits_(limits) {
  boost::system::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  if (!ec) peer_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
}

TcpConnection::~TcpConnection() = default;

void TcpConnection::Start(std::shared_ptr<ConnectionCallbacks> callbacks) {
  callbacks_ = std::move(callbacks);
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  DoRead();
}

// An idle connection owns no read buffer: it waits for readability, then reads into one buffer
// per worker thread, and only the bytes of an incomplete packet are copied into rbuf_.
void TcpConnection::DoRead() {
  if (closing_ || closed_ || read_in_progress_ || read_paused_ || read_held_) return;
  read_in_progress_ = true;
  socket_.async_wait(asio::ip::tcp::socket::wait_read,
                     [self = shared_from_this()](const boost::system::error_code& ec) {
                       self->OnReadable(ec);
                     });
}

void TcpConnection::OnReadable(const boost::system::error_code& ec) {
  read_in_progress_ = false;
  if (closed_) return;
  if (ec) {
    Shutdown();
    return;
  }
  if (closing_) return;  // data after Close() is ignored
  ReadNow();
}

void TcpConnection::ReadNow() {
  static constexpr size_t kScratchSize = 64 * 1024;
  thread_local std::vector<uint8_t> scratch(kScratchSize);
  boost::system::error_code ec;
  std::span<const uint8_t> data;
  size_t n = 0;
  size_t room = 0;
  const bool direct = rlen_ > 0 && wanted_ > rlen_ + kScratchSize / 2;
  if (direct) {
    // The rest of a large packet: read straight into its buffer.
    rbuf_.resize(wanted_);
    room = rbuf_.size() - rlen_;
    n = socket_.read_some(asio::buffer(rbuf_.data() + rlen_, room), ec);
  } else {
    room = scratch.size();
    n = socket_.read_some(asio::buffer(scratch), ec);
  }
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    DoRead();
    return;
  }
  if (ec) {
    Shutdown();
    return;
  }
  const bool from_scratch = !direct && rlen_ == 0;
  if (direct) {
    rlen_ += static_cast<uint32_t>(n);
    data = std::span<const uint8_t>(rbuf_.data(), rlen_);
  } else if (rlen_ > 0) {
    rbuf_.resize(rlen_);
    rbuf_.insert(rbuf_.end(), scratch.begin(), scratch.begin() + static_cast<ptrdiff_t>(n));
    rlen_ += static_cast<uint32_t>(n);
    data = std::span<const uint8_t>(rbuf_.data(), rlen_);
  } else {
    data = std::span<const uint8_t>(scratch.data(), n);
  }
  size_t wanted = 0;
  const size_t consumed = callbacks_->OnData(data, &wanted);
  wanted_ = static_cast<uint32_t>(std::min<size_t>(wanted, UINT32_MAX));
  if (closed_) return;
  const size_t left = data.size() - consumed;
  if (from_scratch) {
    if (left > 0) rbuf_.assign(scratch.begin() + static_cast<ptrdiff_t>(consumed),
                               scratch.begin() + static_cast<ptrdiff_t>(n));
    rlen_ = static_cast<uint32_t>(left);
  } else {
    if (consumed > 0) std::memmove(rbuf_.data(), rbuf_.data() + consumed, left);
    rlen_ = static_cast<uint32_t>(left);
    rbuf_.resize(rlen_);
  }
  if (rlen_ == 0) std::vector<uint8_t>().swap(rbuf_);  // idle again: own no buffer
  if (closing_) return;
  if (PendingWriteBytes() > limits_.write_high_watermark) {
    read_paused_ = true;  // resumes in OnWrite once below the low watermark
    return;
  }
  if (n == room) {
    // The buffer was filled: there is probably more. Read again after the handlers already
    // queued on this worker, so one busy connection cannot starve the others.
    read_in_progress_ = true;
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->read_in_progress_ = false;
      if (self->closed_ || self->closing_ || self->read_paused_ || self->read_held_) return;
      self->ReadNow();
    });
    return;
  }
  DoRead();
}

void TcpConnection::HoldReading(bool hold) {
  if (hold == read_held_ || closed_) return;
  read_held_ = hold;
  if (hold) {
    // Pending operations are what keeps a connection alive; a held one may have none.
    held_self_ = shared_from_this();
    return;
  }
  auto self = std::move(held_self_);
  DoRead();  // a no-op while a read is under way or the write watermark pauses it
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
  // pending_ now holds the buffer just written: keep it for the next burst while data flows,
  // give it back once the connection is idle (and never keep a large one).
  if (writing_.empty() || pending_.capacity() > (1 << 20)) std::string().swap(pending_);
  if (callbacks_) callbacks_->OnWritten(PendingWriteBytes());
  if (closed_) return;
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
  if (cb) cb->OnClosed();
  // Release the callbacks (and a held reference to this connection) later: we may be inside
  // one of their own calls.
  if (cb || held_self_) {
    asio::post(socket_.get_executor(), [cb = std::move(cb), self = std::move(held_self_)] {});
  }
}

}  // namespace shardmq::broker::net
