#include "broker/session/relayed_connection.h"

#include <span>

#include "broker/session/broker_core.h"
#include "broker/session/connection_handler.h"
#include "common/log.h"

namespace shardmq::broker::session {
namespace {

// Below this many unacknowledged bytes the handler hears of progress (OnWritten), so a session
// marked congested is cleared (its hysteresis is a quarter of 4 MiB).
constexpr int64_t kReportAbove = 512 << 10;
// What a congested front-end socket counts as (more than ConnectionHandler's 4 MiB threshold).
constexpr size_t kFrontendCongestedBytes = (4 << 20) + 1;
// Upstream credit (RelayData.consumed) goes back at least every this many handled bytes, with
// the next reply or on its own; well under the front-end's 1 MiB window.
constexpr uint64_t kCreditEvery = 64 << 10;

}  // namespace

RelayedConnection::RelayedConnection(WorkerCore& core, std::string origin, std::string key,
                                     uint64_t conn, std::string peer, uint64_t id)
    : core_(core),
      origin_(std::move(origin)),
      key_(std::move(key)),
      conn_(conn),
      peer_(std::move(peer)),
      id_(id) {}

RelayedConnection::~RelayedConnection() = default;

void RelayedConnection::Start(std::shared_ptr<ConnectionHandler> handler, std::string_view data) {
  handler_ = std::move(handler);
  handler_->Start();
  Take(data);  // the open's bytes: the front-end does not count them against its window
  if (!closed_) ScheduleFlush();  // the first reply says this node grants credit
}

void RelayedConnection::Receive(std::string_view data) {
  if (held_) {
    held_in_.append(data);
    return;
  }
  Take(data);
  if (closed_) return;
  consumed_ += data.size();
  if (consumed_ >= kCreditEvery) ScheduleFlush();
}

void RelayedConnection::HoldReading(bool hold) {
  if (hold == held_ || closed_) return;
  held_ = hold;
  if (hold || held_in_.empty()) return;
  std::string data = std::move(held_in_);
  held_in_.clear();
  Receive(data);
}

void RelayedConnection::Take(std::string_view data) {
  if (closed_ || handler_ == nullptr) return;
  auto self = shared_from_this();
  in_.append(data);
  size_t wanted = 0;
  const size_t used = handler_->OnData(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(in_.data()), in_.size()),
      &wanted);
  if (!closed_) in_.erase(0, used);
}

void RelayedConnection::Lost() {
  if (closed_) return;
  if (handler_ != nullptr) {
    // What the front-end passed before the close is handled, held (HoldReading) or not.
    auto self = shared_from_this();
    handler_->EndOfInput();
    HoldReading(false);
    if (closed_) return;
  }
  closed_ = true;
  out_.clear();
  Finish();
}

void RelayedConnection::Send(std::string_view bytes) {
  if (closed_) return;
  out_.append(bytes);
  ScheduleFlush();
}

void RelayedConnection::ScheduleFlush() {
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  core_.worker().Post([self = shared_from_this()] {
    self->flush_scheduled_ = false;
    if (!self->closed_) self->Flush(false);
  });
}

void RelayedConnection::Close() {
  if (closed_) return;
  closed_ = true;
  Flush(true);
  // OnClosed follows Close, as for a socket; never inside the handler's own call.
  core_.worker().Post([self = shared_from_this()] { self->Finish(); });
}

size_t RelayedConnection::PendingWriteBytes() const {
  // Congested at the front-end: as full as a socket the session layer treats as congested.
  const size_t front = frontend_congested_ ? kFrontendCongestedBytes : 0;
  return front + out_.size() + static_cast<size_t>(std::max<int64_t>(0, unacked_->load()));
}

void RelayedConnection::SetFrontendCongested(bool congested) {
  if (congested == frontend_congested_ || closed_) return;
  frontend_congested_ = congested;
  if (!congested && handler_) handler_->OnWritten(PendingWriteBytes());
}

void RelayedConnection::Flush(bool close) {
  cluster::Router* router = core_.broker().router();
  const bool credit = !credit_announced_ || consumed_ > 0;
  if (router == nullptr || (out_.empty() && !close && !credit)) return;
  const int64_t consumed = credit ? static_cast<int64_t>(consumed_) : -1;
  credit_announced_ = true;
  consumed_ = 0;
  const int64_t n = static_cast<int64_t>(out_.size());
  unacked_->fetch_add(n);
  std::weak_ptr<RelayedConnection> weak = weak_from_this();
  WorkerCore* core = &core_;
  router->RelaySend(
      origin_, conn_, /*upstream=*/false, std::move(out_), close,
      [weak, core, n, unacked = unacked_](const absl::Status& st) {
        const int64_t before = unacked->fetch_sub(n);
        if (!st.ok()) {
          // The front-end did not get our bytes: the connection cannot go on.
          core->worker().Post([weak] {
            if (auto self = weak.lock()) {
              SHARDMQ_LOG(DEBUG) << "relayed connection " << self->key_ << " lost its front-end";
              self->Lost();
            }
          });
        } else if (before > kReportAbove && before - n <= kReportAbove) {
          core->worker().Post([weak] {
            auto self = weak.lock();
            if (self && !self->closed_ && self->handler_) {
              self->handler_->OnWritten(self->PendingWriteBytes());
            }
          });
        }
      },
      consumed);
  out_.clear();
}

void RelayedConnection::Finish() {
  auto self = shared_from_this();
  if (handler_) {
    auto handler = std::move(handler_);
    handler->OnClosed();
  }
  core_.ForgetRelayed(key_);
}

}  // namespace shardmq::broker::session
