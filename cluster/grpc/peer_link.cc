#include "cluster/peer_link.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "common/log.h"
#include "proto/cluster.grpc.pb.h"

namespace shardmq::cluster {
namespace {

class GrpcPeerLink final : public PeerLink {
 public:
  GrpcPeerLink(std::string self_id, int64_t self_lease, std::string peer_id, std::string address)
      : self_id_(std::move(self_id)),
        self_lease_(self_lease),
        peer_id_(std::move(peer_id)),
        address_(std::move(address)) {
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(kMaxPeerMessageBytes);
    args.SetMaxReceiveMessageSize(kMaxPeerMessageBytes);
    channel_ = grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
    stub_ = v1::Peer::NewStub(channel_);
    writer_ = std::thread([this] { WriteLoop(); });
  }

  ~GrpcPeerLink() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      if (ctx_ != nullptr) ctx_->TryCancel();
    }
    cv_.notify_all();
    writer_.join();
    {
      // Revoke calls still out end now (cancelled: their `done` gets Unavailable).
      std::unique_lock lock(mu_);
      for (grpc::ClientContext* c : calls_) c->TryCancel();
      calls_cv_.wait(lock, [this] { return calls_.empty(); });
    }
    // Whatever is left was never acknowledged.
    std::deque<Pending> queued;
    std::deque<Inflight> inflight;
    {
      std::lock_guard lock(mu_);
      queued.swap(queue_);
      inflight.swap(inflight_);
    }
    const absl::Status gone = absl::UnavailableError("link to " + peer_id_ + " closed");
    for (Inflight& f : inflight) {
      if (f.pending.done) f.pending.done(gone);
    }
    for (Pending& p : queued) {
      if (p.done) p.done(gone);
    }
    std::vector<RoomWaiter> waiters;
    {
      std::lock_guard lock(mu_);
      waiters.swap(room_waiters_);
    }
    for (RoomWaiter& w : waiters) w.fn();
  }

  using PeerLink::Send;
  void Send(v1::PeerItem item, Done done, bool resend) override {
    {
      std::lock_guard lock(mu_);
      if (queue_.size() >= kMaxQueued) {
        if (done) {
          done(absl::ResourceExhaustedError("forward queue to " + peer_id_ + " is full"));
        }
        return;
      }
      queue_.push_back(Pending{std::move(item), std::move(done), resend ? 0 : -1});
    }
    cv_.notify_all();
  }

  void Revoke(uint64_t upto, Done done) override {
    struct Call {
      grpc::ClientContext ctx;
      v1::RevokeRequest request;
      v1::RevokeResponse response;
    };
    auto call = std::make_shared<Call>();
    call->request.set_sender(self_id_);
    call->request.set_sender_lease(self_lease_);
    call->request.set_upto(upto);
    call->ctx.set_deadline(std::chrono::system_clock::now() + kRevokeTimeout);
    {
      std::lock_guard lock(mu_);
      if (stopping_) {
        if (done) done(absl::UnavailableError("link to " + peer_id_ + " closed"));
        return;
      }
      calls_.insert(&call->ctx);
    }
    stub_->async()->Revoke(&call->ctx, &call->request, &call->response,
                           [this, call, done = std::move(done)](grpc::Status st) {
                             if (done) {
                               done(st.ok() ? absl::OkStatus()
                                            : absl::UnavailableError(
                                                  "revoke at " + peer_id_ + ": " +
                                                  st.error_message()));
                             }
                             std::lock_guard lock(mu_);
                             calls_.erase(&call->ctx);
                             calls_cv_.notify_all();
                           });
  }

  size_t queued() const override {
    std::lock_guard lock(mu_);
    return queue_.size();
  }

  void WhenQueuedBelow(size_t n, std::function<void()> fn) override {
    {
      std::lock_guard lock(mu_);
      if (!stopping_ && queue_.size() >= n) {
        room_waiters_.push_back(RoomWaiter{n, std::move(fn)});
        return;
      }
    }
    fn();
  }
  const std::string& peer_id() const override { return peer_id_; }
  const std::string& address() const override { return address_; }
  uint64_t batches_sent() const override { return batches_.load(); }
  uint64_t items_sent() const override { return items_.load(); }
  uint64_t items_resent() const override { return resent_.load(); }
  size_t BreakStreamForTest() override {
    std::lock_guard lock(mu_);
    if (ctx_ == nullptr || broken_ || inflight_.empty()) return 0;
    ctx_->TryCancel();
    return inflight_.size();
  }

 private:
  // About the encoded size of an item, cheaply (the big parts only).
  static size_t ApproxBytes(const v1::PeerItem& item) {
    switch (item.kind_case()) {
      case v1::PeerItem::kPublish:
        return item.publish().message().payload().size() + item.publish().message().topic().size();
      case v1::PeerItem::kDeliver:
        return item.deliver().message().payload().size() + item.deliver().message().topic().size();
      case v1::PeerItem::kRelayOpen:
        return item.relay_open().data().size();
      case v1::PeerItem::kRelay:
        return item.relay().data().size();
      case v1::PeerItem::kHandoffOffer:
      case v1::PeerItem::kHandoffData:
      case v1::PeerItem::kRetainedSyncChunk:
        return item.ByteSizeLong();
      default:
        return 16;
    }
  }

  struct Pending {
    v1::PeerItem item;
    Done done;
    int resends = -1;  // -1: not sent again after a break; else how many times it was
  };
  struct Inflight {
    uint64_t seq = 0;
    Pending pending;  // its item kept only if it is sent again after a break
  };
  using Stream = grpc::ClientReaderWriter<v1::PeerBatch, v1::PeerAck>;
  struct RoomWaiter {
    size_t below = 0;
    std::function<void()> fn;
  };

  // The waiters (WhenQueuedBelow) whose bound the queue is under now. Under mu_.
  std::vector<std::function<void()>> TakeRoomWaitersLocked() {
    std::vector<std::function<void()>> ready;
    if (room_waiters_.empty()) return ready;
    auto keep = room_waiters_.begin();
    for (auto it = room_waiters_.begin(); it != room_waiters_.end(); ++it) {
      if (queue_.size() < it->below) {
        ready.push_back(std::move(it->fn));
      } else {
        if (keep != it) *keep = std::move(*it);
        ++keep;
      }
    }
    room_waiters_.erase(keep, room_waiters_.end());
    return ready;
  }

  // One stream's life: open, write batches while the reader completes acks, until it breaks.
  void WriteLoop() {
    while (true) {
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
      }
      grpc::ClientContext ctx;
      // A channel in transient failure (the peer restarting, or this process just resumed from
      // a pause) waits for the connection instead of failing the stream at once; a peer that is
      // gone for good is dropped by the router when its lease expires, which fails what waits.
      ctx.set_wait_for_ready(true);
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;
        ctx_ = &ctx;
        broken_ = false;
      }
      std::unique_ptr<Stream> stream = stub_->Stream(&ctx);
      std::thread reader([this, s = stream.get()] { ReadLoop(s); });
      while (true) {
        v1::PeerBatch batch;
        std::vector<std::function<void()>> room;
        {
          std::unique_lock lock(mu_);
          cv_.wait(lock, [this] { return stopping_ || broken_ || !queue_.empty(); });
          if (stopping_ || broken_) break;
          batch.set_sender(self_id_);
          batch.set_sender_lease(self_lease_);
          batch.set_first_seq(next_seq_);
          const size_t n = std::min(queue_.size(), kMaxBatchItems);
          batch.mutable_items()->Reserve(static_cast<int>(n));
          size_t bytes = 0;
          for (size_t i = 0; i < n; ++i) {
            Pending& p = queue_.front();
            // Large items (big messages, hand-off data) go in smaller batches.
            bytes += ApproxBytes(p.item);
            if (i > 0 && bytes > kMaxBatchBytes) break;
            if (p.resends >= 0) {
              *batch.add_items() = p.item;
            } else {
              *batch.add_items() = std::move(p.item);
            }
            inflight_.push_back(Inflight{next_seq_++, std::move(p)});
            queue_.pop_front();
          }
          room = TakeRoomWaitersLocked();
        }
        for (auto& fn : room) fn();
        if (!stream->Write(batch)) {
          std::lock_guard lock(mu_);
          broken_ = true;
          break;
        }
        batches_.fetch_add(1, std::memory_order_relaxed);
        items_.fetch_add(static_cast<uint64_t>(batch.items_size()), std::memory_order_relaxed);
      }
      ctx.TryCancel();
      reader.join();
      stream->Finish().error_code();  // the reason does not change what we do: retry
      std::deque<Inflight> failed;
      bool stop = false;
      {
        std::lock_guard lock(mu_);
        ctx_ = nullptr;
        failed.swap(inflight_);
        stop = stopping_;
        // Items to send again go first on the next stream, in their order.
        for (auto it = failed.rbegin(); it != failed.rend(); ++it) {
          Pending& p = it->pending;
          if (stop || p.resends < 0 || p.resends >= kMaxResends) continue;
          ++p.resends;
          queue_.push_front(std::move(p));
          p.done = nullptr;
          resent_.fetch_add(1, std::memory_order_relaxed);
        }
      }
      if (!failed.empty()) {
        const absl::Status st =
            absl::UnavailableError("stream to " + peer_id_ + " at " + address_ + " broke");
        for (Inflight& f : failed) {
          if (f.pending.done) f.pending.done(st);
        }
      }
      if (stop) return;
      // Back off a little before reopening, unless told to stop.
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stopping_; });
    }
  }

  void ReadLoop(Stream* stream) {
    v1::PeerAck ack;
    while (stream->Read(&ack)) {
      std::vector<std::pair<uint64_t, Done>> acked;
      {
        std::lock_guard lock(mu_);
        while (!inflight_.empty() && inflight_.front().seq <= ack.seq()) {
          acked.emplace_back(inflight_.front().seq, std::move(inflight_.front().pending.done));
          inflight_.pop_front();
        }
      }
      int r = 0;  // refusals come in sequence order
      for (auto& [seq, done] : acked) {
        while (r < ack.refused_size() && ack.refused(r).seq() < seq) ++r;
        if (r < ack.refused_size() && ack.refused(r).seq() == seq) {
          if (done) done(absl::FailedPreconditionError(ack.refused(r).reason()));
        } else if (done) {
          done(absl::OkStatus());
        }
      }
    }
    {
      std::lock_guard lock(mu_);
      broken_ = true;
    }
    cv_.notify_all();
  }

  const std::string self_id_;
  const int64_t self_lease_;
  const std::string peer_id_;
  const std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Peer::Stub> stub_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool broken_ = false;
  grpc::ClientContext* ctx_ = nullptr;
  std::deque<Pending> queue_;
  std::deque<Inflight> inflight_;
  std::vector<RoomWaiter> room_waiters_;  // WhenQueuedBelow
  std::set<grpc::ClientContext*> calls_;  // Revoke calls not answered yet
  std::condition_variable calls_cv_;
  uint64_t next_seq_ = 1;
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> items_{0};
  std::atomic<uint64_t> resent_{0};
  std::thread writer_;
};

}  // namespace

std::unique_ptr<PeerLink> PeerLink::Create(std::string self_id, int64_t self_lease,
                                           std::string peer_id, std::string address) {
  return std::make_unique<GrpcPeerLink>(std::move(self_id), self_lease, std::move(peer_id),
                                        std::move(address));
}

}  // namespace shardmq::cluster
