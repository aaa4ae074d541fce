// The seam between the network layer (net/) and the MQTT session layer (session/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace shardmq::broker::net {

// A client connection as the session layer sees it. Used only on the connection's worker thread.
class Transport {
 public:
  virtual ~Transport() = default;
  // Queues bytes for writing.
  virtual void Send(std::string_view bytes) = 0;
  // Writes what is queued, then closes. No OnData after this call; OnClosed follows.
  virtual void Close() = 0;
  // Bytes queued but not yet written to the socket.
  virtual size_t PendingWriteBytes() const = 0;
  // Flow control from the session layer: while held, nothing more is read from the peer (the
  // peer's sends then block in TCP). Independent of the write watermarks' own pause.
  virtual void HoldReading(bool hold) { (void)hold; }
  virtual const std::string& peer() const = 0;
  virtual uint64_t id() const = 0;
};

// What the network layer calls. Implemented by the session layer; called on the worker thread.
class ConnectionCallbacks {
 public:
  virtual ~ConnectionCallbacks() = default;
  // Bytes arrived; `data` holds everything received and not yet consumed. Returns how many bytes
  // from the front were consumed; the rest is passed again with more data. `*wanted` may be set to
  // the size the next packet needs in all (buffer sizing hint).
  virtual size_t OnData(std::span<const uint8_t> data, size_t* wanted) = 0;
  // The connection is closed (by the peer, an error, or Close()). Exactly once; the Transport must
  // not be used afterwards.
  virtual void OnClosed() = 0;
  // A write to the socket completed; `pending_bytes` are still queued.
  virtual void OnWritten(size_t pending_bytes) { (void)pending_bytes; }
};

}  // namespace shardmq::broker::net
