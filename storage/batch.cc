// Batch validation shared by every Storage implementation.
#include <cstring>
#include <string_view>
#include <type_traits>
#include <variant>

#include "storage/batch.h"

#include <google/protobuf/io/coded_stream.h>

namespace shardmq::storage {
namespace {

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

using google::protobuf::io::CodedOutputStream;

// Protobuf wire format: tag = field << 3 | wire type (0 varint, 2 length-delimited).
constexpr uint8_t Tag(uint32_t field, uint32_t wire_type) {
  return static_cast<uint8_t>(field << 3 | wire_type);
}

uint32_t VarintSize(uint32_t v) { return static_cast<uint32_t>(CodedOutputStream::VarintSize32(v)); }

}  // namespace

void Recipients::Add(std::string_view client_id, uint32_t qos, bool retain,
                     absl::Span<const uint32_t> subscription_ids) {
  // records::Recipient, fields in number order, proto3 defaults (0, false, empty) left out.
  const auto cid_len = static_cast<uint32_t>(client_id.size());
  uint32_t ids_len = 0;
  for (uint32_t id : subscription_ids) ids_len += VarintSize(id);
  uint32_t len = 0;
  if (cid_len > 0) len += 1 + VarintSize(cid_len) + cid_len;
  if (qos != 0) len += 1 + VarintSize(qos);
  if (retain) len += 2;
  if (ids_len > 0) len += 1 + VarintSize(ids_len) + ids_len;

  // Written in place: the string grows once per recipient.
  const size_t start = encoded_.size();
  encoded_.resize(start + 1 + VarintSize(len) + len);
  auto* p = reinterpret_cast<uint8_t*>(encoded_.data() + start);
  *p++ = Tag(1, 2);  // Recipients.recipients
  p = CodedOutputStream::WriteVarint32ToArray(len, p);
  if (cid_len > 0) {
    *p++ = Tag(1, 2);
    p = CodedOutputStream::WriteVarint32ToArray(cid_len, p);
    std::memcpy(p, client_id.data(), cid_len);
    p += cid_len;
  }
  if (qos != 0) {
    *p++ = Tag(2, 0);
    p = CodedOutputStream::WriteVarint32ToArray(qos, p);
  }
  if (retain) {
    *p++ = Tag(3, 0);
    *p++ = 1;
  }
  if (ids_len > 0) {
    *p++ = Tag(4, 2);  // packed
    p = CodedOutputStream::WriteVarint32ToArray(ids_len, p);
    for (uint32_t id : subscription_ids) p = CodedOutputStream::WriteVarint32ToArray(id, p);
  }
  ++count_;
  invalid_ = invalid_ || client_id.empty() || HasNul(client_id);
}

void Recipients::Reserve(size_t recipients, size_t client_id_bytes) {
  encoded_.reserve(encoded_.size() + recipients * 8 + client_id_bytes);
}

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
          } else if constexpr (std::is_same_v<T, Batch::PutMessageOp>) {
            nul = HasNul(op.message.topic()) || op.recipients.HasInvalidClientId();
          } else if constexpr (std::is_same_v<T, Batch::PutRetainedOp>) {
            nul = HasNul(op.message.topic());
          } else if constexpr (std::is_same_v<T, Batch::DeleteEntryOp>) {
            nul = op.client_id.empty() || HasNul(op.client_id) || HasNul(op.topic);
          } else if constexpr (std::is_same_v<T, Batch::DeleteMessageOp> ||
                               std::is_same_v<T, Batch::DeleteRetainedOp>) {
            nul = HasNul(op.topic);
          } else if constexpr (std::is_same_v<T, Batch::PutInflightOp>) {
            nul = HasNul(op.client_id);
            if (op.entry.message_id() != 0 && op.entry.message_id() != op.message_id) {
              return absl::InvalidArgumentError("in-flight entry message_id differs from its key");
            }
          } else {
            nul = HasNul(op.client_id);
          }
          if (nul) return absl::InvalidArgumentError("client id, topic or filter contains U+0000 (or a queued delivery's client id is empty)");
          return absl::OkStatus();
        },
        any);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace shardmq::storage
