// The column-family registry: every RocksDB column family shardmq uses, one per record kind.
// The names are part of the on-disk format (a database missing one is refused); never rename or
// reuse one. Adding a family means a new format version (meta "format").
//
// Each family also has a Kind that selects its tuning (rocks_storage.cc, storage/README.md):
//   kState  long-lived records updated in place (sessions, subscriptions, wills, retained);
//   kChurn  records written and deleted again within seconds in a steady state (message bodies
//           and their recipients, done marks, inflight, incoming QoS 2 ids): deletion-heavy;
//   kMeta   a handful of small records.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace shardmq::storage::rocks {

enum class Family : uint8_t {
  kSessions = 0,
  kSubscriptions,
  kInflight,
  kIncomingQos2,
  kMessages,
  kRecipients,
  kDone,
  kRetained,
  kWills,
  kMeta,
};

enum class FamilyKind : uint8_t { kState, kChurn, kMeta };

struct FamilyInfo {
  Family family;
  std::string_view name;
  FamilyKind kind;
};

// Indexed by static_cast<size_t>(Family).
inline constexpr std::array<FamilyInfo, 10> kFamilies = {{
    {Family::kSessions, "sessions", FamilyKind::kState},
    {Family::kSubscriptions, "subscriptions", FamilyKind::kState},
    {Family::kInflight, "inflight", FamilyKind::kChurn},
    {Family::kIncomingQos2, "incoming_qos2", FamilyKind::kChurn},
    {Family::kMessages, "messages", FamilyKind::kChurn},
    {Family::kRecipients, "recipients", FamilyKind::kChurn},
    {Family::kDone, "done", FamilyKind::kChurn},
    {Family::kRetained, "retained", FamilyKind::kState},
    {Family::kWills, "wills", FamilyKind::kState},
    {Family::kMeta, "meta", FamilyKind::kMeta},
}};

inline constexpr size_t kFamilyCount = kFamilies.size();

constexpr const FamilyInfo& InfoOf(Family family) { return kFamilies[static_cast<size_t>(family)]; }

// Families whose keys are be32(partition) + client_id + '\0' + suffix: DeleteSession removes
// everything of a client in these with one DeleteRange each.
// (`done` marks are keyed by message, not client: they go with the message, DeleteMessage.)
inline constexpr std::array<Family, 3> kPerClientRangeFamilies = {
    Family::kSubscriptions, Family::kInflight, Family::kIncomingQos2};

// The meta family's keys.
inline constexpr std::string_view kFormatKey = "format";
// The on-disk format this code reads and writes (records::Format.version). Version 1 (up to
// 2026-11) stored one `queue` record per queued delivery; version 2 stores a message's
// recipients once (`recipients`) and a `done` mark per finished delivery. A version-1 directory
// is refused (FailedPrecondition naming both versions); there is no converter.
inline constexpr uint32_t kFormatVersion = 2;

namespace internal {
constexpr bool RegistryIsIndexed() {
  for (size_t i = 0; i < kFamilies.size(); ++i) {
    if (static_cast<size_t>(kFamilies[i].family) != i) return false;
  }
  return true;
}
}  // namespace internal
static_assert(internal::RegistryIsIndexed(), "kFamilies must be in Family order");

}  // namespace shardmq::storage::rocks
