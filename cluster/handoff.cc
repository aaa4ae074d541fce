// Partition hand-off, copy-then-flip (the steps: proto/cluster.proto, HandoffOffer). The old
// leader drives it; the broker does the session work (LocalDelivery::Handoff*); the controller
// flips the partition once the new leader has written handoffs/<p> (Membership).
#include <thread>

#include "cluster/cluster_router.h"
#include "common/log.h"

namespace shardmq::cluster {
namespace {


v1::PeerItem StepItem(uint32_t p, uint64_t epoch, uint64_t attempt, v1::HandoffStep::Kind kind,
                      std::string reason = "") {
  v1::PeerItem item;
  v1::HandoffStep* s = item.mutable_handoff_step();
  s->set_partition(p);
  s->set_epoch(epoch);
  s->set_attempt(attempt);
  s->set_kind(kind);
  s->set_reason(std::move(reason));
  return item;
}

// HandoffData items stay well under PeerLink::kMaxBatchBytes where they can.
constexpr size_t kDataChunkBytes = 512 << 10;

}  // namespace

ClusterRouter::Handoff* ClusterRouter::AtStageLocked(uint32_t p, uint64_t attempt,
                                                     Handoff::Stage stage) {
  auto it = handoffs_.find(p);
  if (it == handoffs_.end() || it->second.attempt != attempt || it->second.stage != stage) {
    return nullptr;
  }
  return &it->second;
}

void ClusterRouter::DeliveryBarrier() {
  std::lock_guard one(barrier_mu_);
  int old;
  {
    std::lock_guard lock(mu_);
    old = static_cast<int>(delivery_epoch_ & 1);
    ++delivery_epoch_;
  }
  // Publishes routed from now on take the other slot; wait for the ones routed before.
  while (tickets_[old].load(std::memory_order_acquire) != 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

void ClusterRouter::HandoffsOnMapLocked(std::vector<std::function<void()>>* after) {
  const uint32_t parts = map_.record.partitions();
  frozen_.resize(parts, false);
  std::map<uint32_t, const v1::PartitionMove*> mine;
  for (const v1::PartitionMove& m : map_.record.moves()) {
    if (m.from() == self_ || m.to() == self_) mine[m.partition()] = &m;
  }
  // Hand-offs under way: flipped (done), no longer planned (cancelled), or still on.
  int done = 0;
  int cancelled = 0;
  for (auto it = handoffs_.begin(); it != handoffs_.end();) {
    const uint32_t p = it->first;
    Handoff& h = it->second;
    const bool flipped = p < parts && map_.EpochOf(p) > h.epoch &&
                         map_.LeaderOf(p) == (h.outgoing ? h.peer : self_);
    auto m = mine.find(p);
    const bool planned =
        p < parts && map_.EpochOf(p) == h.epoch && m != mine.end() &&
        (h.outgoing ? m->second->to() == h.peer : m->second->from() == h.peer);
    // The new leader may hear of the move (the offer) before its map lists it.
    const bool not_yet = !h.outgoing && map_.revision < h.planned_at;
    if (!flipped && (planned || not_yet)) {
      ++it;
      continue;
    }
    const bool outgoing = h.outgoing;
    if (outgoing) frozen_[p] = false;
    if (flipped) {
      ++(outgoing ? stats_.handoffs_out : stats_.handoffs_in);
    } else {
      ++stats_.handoffs_cancelled;
    }
    SHARDMQ_LOG(DEBUG) << "partition " << p << ": hand-off " << (outgoing ? "to " : "from ")
                       << h.peer << (flipped ? " done (flipped)" : " cancelled (no longer planned)");
    ++(flipped ? done : cancelled);
    after->push_back([this, p, parts, outgoing, flipped] {
      local_.HandoffFinish(p, parts, outgoing, flipped);
    });
    if (!outgoing && handoff_clear_) after->push_back([clear = handoff_clear_, p] { clear(p); });
    it = handoffs_.erase(it);
  }
  int started = 0;
  for (const auto& [p, m] : mine) {
    if (m->from() == self_ && !handoffs_.contains(p) && p < parts && map_.LeaderOf(p) == self_) {
      StartHandoffLocked(p, m->to(), after);
      ++started;
    }
  }
  if (done + cancelled + started > 0) {
    SHARDMQ_LOG(INFO) << "partition map revision " << map_.revision << ": " << started
                      << " hand-off(s) started, " << done << " done (flipped), " << cancelled
                      << " cancelled; " << handoffs_.size() << " under way";
  }
}

void ClusterRouter::StartHandoffLocked(uint32_t p, const std::string& to,
                                       std::vector<std::function<void()>>* after) {
  Handoff& h = handoffs_[p];
  h = Handoff{};
  h.outgoing = true;
  h.peer = to;
  h.epoch = map_.EpochOf(p);
  h.planned_at = map_.revision;
  h.attempt = ++handoff_attempts_;
  h.stage = Handoff::Stage::kFreezing;
  frozen_[p] = true;
  const uint32_t parts = map_.record.partitions();
  // A step that never completes (an item lost with a broken stream after its ack) would hold
  // the partition frozen: start again. Once the data is sent, the new leader has it and the
  // flip is the controller's (the record is written until it succeeds).
  LaterLocked(
      [this, p, attempt = h.attempt] {
        {
          std::lock_guard lock(mu_);
          auto it = handoffs_.find(p);
          if (it == handoffs_.end() || it->second.attempt != attempt ||
              it->second.stage == Handoff::Stage::kSent) {
            return;
          }
        }
        RestartHandoff(p, attempt, "stuck for " + std::to_string(kHandoffTimeout.count() / 1000) +
                                       " s");
      },
      kHandoffTimeout);
  SHARDMQ_LOG(DEBUG) << "partition " << p << ": handing its sessions off to " << to
                    << " (attempt " << h.attempt << ")";
  after->push_back([this, p, parts, to, epoch = h.epoch, attempt = h.attempt,
                    revision = h.planned_at] {
    local_.HandoffFreeze(p, parts, [this, p, to, epoch, attempt,
                                    revision](LocalDelivery::Sessions headers) {
      std::vector<Outgoing> out;
      {
        std::lock_guard lock(mu_);
        Handoff* h = AtStageLocked(p, attempt, Handoff::Stage::kFreezing);
        if (h == nullptr) return;
        h->stage = Handoff::Stage::kOffered;
        v1::PeerItem item;
        v1::HandoffOffer* o = item.mutable_handoff_offer();
        o->set_partition(p);
        o->set_epoch(epoch);
        o->set_map_revision(revision);
        o->set_attempt(attempt);
        for (records::SessionTransfer& s : headers) *o->add_sessions() = std::move(s);
        out.push_back(Outgoing{to, std::move(item), [this, p, attempt](const absl::Status& st) {
                                 if (!st.ok()) RestartHandoff(p, attempt, std::string(st.message()));
                               }});
      }
      Send(std::move(out));
    });
  });
}

void ClusterRouter::RestartHandoff(uint32_t p, uint64_t attempt, const std::string& why) {
  Later([this, p, attempt, why] {
    std::vector<std::function<void()>> after;
    {
      std::lock_guard lock(mu_);
      auto it = handoffs_.find(p);
      if (it == handoffs_.end() || !it->second.outgoing || it->second.attempt != attempt) return;
      SHARDMQ_LOG(WARNING) << "partition " << p << ": hand-off to " << it->second.peer
                           << " failed (" << why << "); starting it again";
      const std::string to = it->second.peer;
      StartHandoffLocked(p, to, &after);
    }
    for (auto& fn : after) fn();
  });
}

void ClusterRouter::SendBarriersLocked(uint32_t p, Handoff& h, std::vector<Outgoing>* out,
                                       std::vector<std::function<void()>>* after) {
  h.stage = Handoff::Stage::kBarrier;
  h.barrier.clear();
  for (const auto& [id, m] : members_) {
    if (m.role() != "frontend") h.barrier.insert(id);
  }
  h.barrier.insert(self_);
  const uint64_t attempt = h.attempt;
  for (const std::string& id : h.barrier) {
    if (id == self_) continue;
    out->push_back(Outgoing{id, StepItem(p, h.epoch, attempt, v1::HandoffStep::BARRIER),
                            [this, p, attempt](const absl::Status& st) {
                              if (!st.ok()) RestartHandoff(p, attempt, std::string(st.message()));
                            }});
  }
  // This node as an owner: its own routing to itself.
  after->push_back([this, p, attempt] {
    DeliveryBarrier();
    std::vector<std::function<void()>> more;
    {
      std::lock_guard lock(mu_);
      Handoff* h = AtStageLocked(p, attempt, Handoff::Stage::kBarrier);
      if (h == nullptr) return;
      h->barrier.erase(self_);
      if (h->barrier.empty()) BarrierDoneLocked(p, *h, &more);
    }
    for (auto& fn : more) fn();
  });
}

void ClusterRouter::BarrierDoneLocked(uint32_t p, Handoff& h,
                                      std::vector<std::function<void()>>* after) {
  h.stage = Handoff::Stage::kExporting;
  const uint32_t parts = map_.record.partitions();
  after->push_back([this, p, parts, epoch = h.epoch, attempt = h.attempt, to = h.peer] {
    local_.HandoffExport(p, parts, [this, p, epoch, attempt, to](LocalDelivery::Sessions s) {
      SendHandoffData(p, epoch, attempt, to, std::move(s));
    });
  });
}

void ClusterRouter::SendHandoffData(uint32_t p, uint64_t epoch, uint64_t attempt,
                                    const std::string& to, LocalDelivery::Sessions sessions) {
  std::vector<Outgoing> out;
  {
    std::lock_guard lock(mu_);
    Handoff* h = AtStageLocked(p, attempt, Handoff::Stage::kExporting);
    if (h == nullptr) return;
    h->stage = Handoff::Stage::kSent;
    stats_.handoff_sessions_out += sessions.size();
    size_t i = 0;
    do {
      v1::PeerItem item;
      v1::HandoffData* d = item.mutable_handoff_data();
      d->set_partition(p);
      d->set_epoch(epoch);
      d->set_attempt(attempt);
      size_t bytes = 0;
      while (i < sessions.size() && (bytes == 0 || bytes < kDataChunkBytes)) {
        bytes += sessions[i].ByteSizeLong() + 1;
        *d->add_sessions() = std::move(sessions[i++]);
      }
      d->set_last(i >= sessions.size());
      Done done;
      if (d->last()) {
        done = [this, p, attempt](const absl::Status& st) {
          if (!st.ok()) RestartHandoff(p, attempt, std::string(st.message()));
        };
      }
      out.push_back(Outgoing{to, std::move(item), std::move(done)});
    } while (i < sessions.size());
    if (!sessions.empty()) {
      SHARDMQ_LOG(INFO) << "partition " << p << ": sent " << sessions.size()
                        << " session(s) to " << to;
    }
  }
  Send(std::move(out));
}

void ClusterRouter::MarkHandoffReady(uint32_t p, const std::string& from, int64_t from_lease,
                                     uint64_t epoch, uint64_t attempt, int tries) {
  HandoffReady ready;
  {
    std::lock_guard lock(mu_);
    Handoff* h = AtStageLocked(p, attempt, Handoff::Stage::kReady);
    if (h == nullptr) return;
    ready = handoff_ready_;
  }
  if (!ready) return;
  // The controller flips the partition once it sees the record. A failed write (etcd briefly
  // unreachable) is tried again while the hand-off is still on.
  const absl::Status st = ready(p, from, from_lease, epoch);
  if (st.ok()) return;
  if (tries % 50 == 0) {
    SHARDMQ_LOG(WARNING) << "partition " << p << ": could not write its hand-off record ("
                         << st.message() << "); trying again";
  }
  Later([this, p, from, from_lease, epoch, attempt, tries] {
    MarkHandoffReady(p, from, from_lease, epoch, attempt, tries + 1);
  });
}

void ClusterRouter::HandoffsOnMembersLocked(std::vector<std::function<void()>>* after) {
  for (auto& [p, h] : handoffs_) {
    if (!h.outgoing || h.stage != Handoff::Stage::kBarrier) continue;
    // A store node that left routes nothing more: its answer is not needed.
    for (auto it = h.barrier.begin(); it != h.barrier.end();) {
      it = (*it != self_ && !members_.contains(*it)) ? h.barrier.erase(it) : std::next(it);
    }
    if (h.barrier.empty()) BarrierDoneLocked(p, h, after);
  }
}

absl::Status ClusterRouter::HandleHandoff(const std::string& sender, int64_t sender_lease,
                                          const v1::PeerItem& item) {
  std::vector<Outgoing> out;
  std::vector<std::function<void()>> after;
  switch (item.kind_case()) {
    case v1::PeerItem::kHandoffOffer: {
      const v1::HandoffOffer& o = item.handoff_offer();
      const uint32_t p = o.partition();
      uint32_t parts = 0;
      bool earlier = false;
      std::function<void(uint32_t)> clear;
      {
        std::lock_guard lock(mu_);
        clear = handoff_clear_;
        parts = map_.record.partitions();
        if (parts == 0 || p >= parts) {
          out.push_back(Resending(sender, StepItem(p, o.epoch(), o.attempt(),
                                                  v1::HandoffStep::CANCEL, "no partition map yet")));
        } else {
          auto old = handoffs_.find(p);
          earlier = old != handoffs_.end() && !old->second.outgoing;
          Handoff& h = handoffs_[p];
          h = Handoff{};
          h.outgoing = false;
          h.peer = sender;
          h.peer_lease = sender_lease;
          h.epoch = o.epoch();
          h.planned_at = o.map_revision();
          h.attempt = o.attempt();
          h.stage = Handoff::Stage::kPreparing;
        }
      }
      if (!out.empty()) {
        Send(std::move(out));
        return absl::OkStatus();
      }
      if (o.sessions_size() > 0) {
        SHARDMQ_LOG(INFO) << "partition " << p << ": taking " << o.sessions_size()
                          << " session(s) over from " << sender << " (attempt " << o.attempt()
                          << ")";
      }
      if (earlier) {
        // An earlier attempt's copies go; so does its record, if it got that far.
        if (clear) clear(p);
        local_.HandoffFinish(p, parts, /*outgoing=*/false, /*moved=*/false);
      }
      local_.HandoffPrepare(
          p, parts, {o.sessions().begin(), o.sessions().end()},
          [this, p, sender, epoch = o.epoch(), attempt = o.attempt(),
           parts](const absl::Status& st) {
            std::vector<Outgoing> reply;
            bool drop = false;
            {
              std::lock_guard lock(mu_);
              auto it = handoffs_.find(p);
              if (it == handoffs_.end() || it->second.outgoing || it->second.peer != sender ||
                  it->second.attempt != attempt || it->second.stage != Handoff::Stage::kPreparing) {
                return;
              }
              if (st.ok()) {
                it->second.stage = Handoff::Stage::kPrepared;
                reply.push_back(Resending(sender, StepItem(p, epoch, attempt,
                                                          v1::HandoffStep::ROUTES_READY)));
              } else {
                handoffs_.erase(it);
                drop = true;
                reply.push_back(Resending(
                    sender, StepItem(p, epoch, attempt, v1::HandoffStep::CANCEL,
                                     std::string(st.message()))));
              }
            }
            if (drop) {
              SHARDMQ_LOG(WARNING) << "partition " << p << ": could not register the routes of "
                                   << "the sessions from " << sender << ": " << st.message();
              local_.HandoffFinish(p, parts, /*outgoing=*/false, /*moved=*/false);
            }
            Send(std::move(reply));
          });
      return absl::OkStatus();
    }
    case v1::PeerItem::kHandoffStep: {
      const v1::HandoffStep& s = item.handoff_step();
      const uint32_t p = s.partition();
      if (s.kind() == v1::HandoffStep::BARRIER) {
        // As an owner: answer after every delivery routed before this point is on its link
        // (the answer then follows them on the stream to the sender).
        DeliveryBarrier();
        out.push_back(Resending(sender, StepItem(p, s.epoch(), s.attempt(),
                                                v1::HandoffStep::BARRIER_REPLY)));
        break;
      }
      std::lock_guard lock(mu_);
      auto it = handoffs_.find(p);
      if (it == handoffs_.end() || !it->second.outgoing || it->second.attempt != s.attempt()) {
        break;  // an answer to an earlier attempt
      }
      Handoff& h = it->second;
      if (s.kind() == v1::HandoffStep::ROUTES_READY && h.stage == Handoff::Stage::kOffered &&
          sender == h.peer) {
        SendBarriersLocked(p, h, &out, &after);
      } else if (s.kind() == v1::HandoffStep::BARRIER_REPLY && h.stage == Handoff::Stage::kBarrier) {
        h.barrier.erase(sender);
        if (h.barrier.empty()) BarrierDoneLocked(p, h, &after);
      } else if (s.kind() == v1::HandoffStep::CANCEL && sender == h.peer) {
        const uint64_t attempt = h.attempt;
        const std::string reason = s.reason();
        LaterLocked([this, p, attempt, reason] { RestartHandoff(p, attempt, reason); });
      }
      break;
    }
    case v1::PeerItem::kHandoffData: {
      const v1::HandoffData& d = item.handoff_data();
      const uint32_t p = d.partition();
      LocalDelivery::Sessions sessions;
      uint32_t parts = 0;
      {
        std::lock_guard lock(mu_);
        auto it = handoffs_.find(p);
        if (it == handoffs_.end() || it->second.outgoing || it->second.peer != sender ||
            it->second.attempt != d.attempt() || it->second.stage != Handoff::Stage::kPrepared) {
          break;
        }
        Handoff& h = it->second;
        for (const records::SessionTransfer& s : d.sessions()) h.data.push_back(s);
        if (!d.last()) break;
        h.stage = Handoff::Stage::kImporting;
        sessions = std::move(h.data);
        h.data.clear();
        parts = map_.record.partitions();
      }
      const size_t n = sessions.size();
      local_.HandoffImport(
          p, parts, std::move(sessions),
          [this, p, sender, sender_lease, n, epoch = d.epoch(),
           attempt = d.attempt()](const absl::Status& st) {
            std::vector<Outgoing> cancel;
            {
              std::lock_guard lock(mu_);
              Handoff* h = AtStageLocked(p, attempt, Handoff::Stage::kImporting);
              if (h == nullptr) return;
              if (st.ok()) {
                h->stage = Handoff::Stage::kReady;
                stats_.handoff_sessions_in += n;
              } else {
                // Stays in kImporting: the old leader's restart (after the cancel) replaces it.
                cancel.push_back(Resending(
                    sender, StepItem(p, epoch, attempt, v1::HandoffStep::CANCEL,
                                     "storing the sessions failed: " +
                                         std::string(st.message()))));
              }
            }
            if (!cancel.empty()) {
              Send(std::move(cancel));
              return;
            }
            if (n > 0) {
              SHARDMQ_LOG(INFO) << "partition " << p << ": holds the " << n
                                << " session(s) from " << sender << "; waiting for the flip";
            }
            // etcd is written off this (worker) thread.
            Later([this, p, sender, sender_lease, epoch, attempt] {
              MarkHandoffReady(p, sender, sender_lease, epoch, attempt, 0);
            });
          });
      return absl::OkStatus();
    }
    default:
      break;
  }
  Send(std::move(out));
  for (auto& fn : after) fn();
  return absl::OkStatus();
}

}  // namespace shardmq::cluster
