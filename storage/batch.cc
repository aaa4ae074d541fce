// Batch validation shared by every Storage implementation.
#include <string_view>
#include <type_traits>
#include <variant>

#include "storage/batch.h"

namespace shardmq::storage {
namespace {

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

}  // namespace

absl::Status ValidateBatch(const Batch& batch) {
  for (const Batch::Op& any : batch.ops()) {
    const absl::Status status = std::visit(
        [](const auto& op) -> absl::Status {
          using T = std::decay_t<decltype(op)>;
          bool nul = false;
          if constexpr (std::is_same_v<T, Batch::PutSessionOp>) {
            nul = HasNul(op.session.client_id());
          } else if constexpr (std::is_same_v<T, Batch::PutSubscriptionOp>) {
            nul = HasNul(op.client_id) || HasNul(op.sub.filter());
          } else if constexpr (std::is_same_v<T, Batch::DeleteSubscriptionOp>) {
            nul = HasNul(op.client_id) || HasNul(op.filter);
          } else if constexpr (std::is_same_v<T, Batch::PutMessageOp> ||
                               std::is_same_v<T, Batch::PutRetainedOp>) {
            nul = HasNul(op.message.topic());
          } else if constexpr (std::is_same_v<T, Batch::DeleteMessageOp> ||
                               std::is_same_v<T, Batch::DeleteRetainedOp>) {
            nul = HasNul(op.topic);
          } else if constexpr (std::is_same_v<T, Batch::PutQueuedOp> ||
                               std::is_same_v<T, Batch::PutInflightOp>) {
            nul = HasNul(op.client_id);
            if (op.entry.message_id() != 0 && op.entry.message_id() != op.message_id) {
              return absl::InvalidArgumentError("queue entry message_id differs from its key");
            }
          } else {
            nul = HasNul(op.client_id);
          }
          if (nul) return absl::InvalidArgumentError("client id, topic or filter contains U+0000");
          return absl::OkStatus();
        },
        any);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace shardmq::storage
