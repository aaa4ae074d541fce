// Sends PeerItems to one peer node over one gRPC stream (Peer.Stream, proto/cluster.proto).
//
// Items are sent in the order of Send calls. An item the peer refused (PeerHandler::Handle,
// fencing) completes with FailedPrecondition and the peer's reason. Items that queue up while a batch is being written
// go out together as the next batch (up to kMaxBatchItems), so a busy link sends few large gRPC
// messages. Each item's `done` runs once the peer has acknowledged it (OK), or with Unavailable
// if the stream broke before the acknowledgement (the item may or may not have been handled;
// an item sent with `resend` is sent again instead),
// or with ResourceExhausted if more than kMaxQueued items were waiting (backpressure: the
// caller's publish fails instead of memory growing). A broken stream is reopened for the items
// that were still queued.
//
// Thread-safety: Send from any thread; it never blocks on the network. `done` runs on one of
// the link's threads: keep it short and post work to where it belongs.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "proto/cluster.pb.h"

namespace shardmq::cluster {

// The largest gRPC message between nodes: one item of the largest MQTT message (256 MiB) with
// room to spare.
inline constexpr int kMaxPeerMessageBytes = 300 << 20;

class PeerLink {
 public:
  using Done = std::function<void(const absl::Status&)>;
  static constexpr size_t kMaxBatchItems = 1024;
  static constexpr size_t kMaxBatchBytes = 1 << 20;  // a batch ends at the item that passes it
  static constexpr size_t kMaxQueued = 200000;

  // `self_id`/`self_lease` identify the sender in every batch; `address` is the peer's
  // cluster_addr.
  static std::unique_ptr<PeerLink> Create(std::string self_id, int64_t self_lease,
                                          std::string peer_id, std::string address);
  virtual ~PeerLink() = default;  // fails what is pending with Unavailable, joins its threads

  // `resend`: an item whose stream breaks before the peer acknowledged it is sent again first
  // on the next stream (in order with the other such items), up to kMaxResends times, instead
  // of failing with Unavailable: for items the peer recognises when they come twice (QoS 1/2
  // messages, by their origin id).
  static constexpr int kMaxResends = 5;
  virtual void Send(v1::PeerItem item, Done done, bool resend) = 0;
  void Send(v1::PeerItem item, Done done) { Send(std::move(item), std::move(done), false); }
  // Peer.Revoke, beside the stream (never behind its items): `done` with OK once the peer
  // has ended the grants, Unavailable if it did not answer within kRevokeTimeout.
  static constexpr std::chrono::milliseconds kRevokeTimeout{1000};
  virtual void Revoke(uint64_t upto, Done done) = 0;
  // Items waiting to be written (not yet in flight).
  virtual size_t queued() const = 0;
  // Runs `fn` once fewer than `n` items wait (at once if that is so already), or when the link
  // closes. On one of the link's threads or the caller's: keep it short.
  virtual void WhenQueuedBelow(size_t n, std::function<void()> fn) = 0;
  virtual const std::string& peer_id() const = 0;
  virtual const std::string& address() const = 0;
  virtual uint64_t batches_sent() const = 0;
  virtual uint64_t items_sent() const = 0;
  virtual uint64_t items_resent() const = 0;  // sent again after a stream broke
  // Tests: cancels the current stream, as a network failure would, if it has items in flight
  // (returns how many; 0: nothing done).
  virtual size_t BreakStreamForTest() = 0;
};

}  // namespace shardmq::cluster
