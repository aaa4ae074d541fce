// Per-worker replica of the subscription routes and session locations.
//
// Every network worker holds a full copy, so matching a publish needs no lock: changes are
// broadcast to every worker by BrokerCore (a subscription change is acknowledged to the client
// only once every replica has applied it, so a publish that follows a SUBACK is never missed).
//
// Ordering across replicas is made safe by versions: each session instance has a generation
// (unique per instance), and each change of its location carries an increasing version; an
// older change that arrives late is ignored.
//
// Each client id the replica knows has one LocationSlot, at a fixed address: its location (when
// one is set), and the worker's own Session for it when the session lives on this worker. Every
// route holds a pointer to its client's slot, so routing a publish reaches the location and the
// session without a look-up by client id. A slot lives while a location is set, a route names
// it or a session of this worker is attached; a slot that ends is kept until CollectGarbage, so
// slot pointers taken during a Match stay valid until the caller's publish is done.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "broker/session/message.h"
#include "cluster/router.h"
#include "common/shared_string.h"
#include "common/string_map.h"
#include "common/topic_tree.h"

namespace shardmq::broker::session {

struct LocationSlot;
class Session;

struct RouteEntry {
  SharedString client_id;  // shared by every replica and every delivery made from it
  uint64_t session_gen = 0;
  std::string group;  // shared subscription group, "" if not shared
  std::string filter; // topic filter without any $share prefix
  uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  uint32_t subscription_id = 0;
  LocationSlot* slot = nullptr;  // set by RouteTable::Add
};

struct SessionLocation {
  int worker = 0;
  bool online = false;
  bool persistent = false;  // QoS 1/2 deliveries to it are stored before the publisher's ack
  uint64_t gen = 0;
  uint64_t version = 0;
};

// What one replica knows of one client id (see the top of this file).
struct LocationSlot {
  SessionLocation loc;       // valid when `present`
  bool present = false;      // a location is set
  uint32_t refs = 0;         // routes naming the client id
  Session* local = nullptr;  // the session, while it is resident on this replica's worker
};

class RouteTable {
 public:
  RouteTable() = default;
  RouteTable(const RouteTable&) = delete;
  RouteTable& operator=(const RouteTable&) = delete;

  // Adds or replaces the route of (entry.client_id, entry.group) under entry.filter, unless a
  // newer session generation already holds it.
  void Add(const RouteEntry& entry);
  // Removes the route of (client_id, group) under filter if its generation is <= gen.
  void Remove(std::string_view client_id, std::string_view group, std::string_view filter,
              uint64_t gen);

  // Applies a location change if it is newer than what is held.
  void SetLocation(const std::string& client_id, const SessionLocation& loc);
  // Forgets the location if it belongs to generation <= gen.
  void RemoveLocation(const std::string& client_id, uint64_t gen);
  const SessionLocation* Location(std::string_view client_id) const;
  // The same, without hashing the id again (the per-delivery look-up).
  // The location in a slot, or nullptr if none is set.
  static const SessionLocation* LocationIn(const LocationSlot* slot) {
    return slot != nullptr && slot->present ? &slot->loc : nullptr;
  }

  // Records that `session` (of this replica's worker) is resident here, until DetachSession.
  void AttachSession(const std::string& client_id, Session* session);
  void DetachSession(std::string_view client_id);
  // The slot of `client_id`, or nullptr.
  LocationSlot* Slot(std::string_view client_id) const;

  // Computes the deliveries of `message`: one per subscribed session (max QoS and all
  // subscription identifiers of its matching subscriptions), plus one per matching shared
  // group (round-robin among online members). Appends to `out`, and each delivery's slot to
  // `slots` if given (valid until CollectGarbage).
  // `scope` (cluster mode; nullptr = everything): deliver to non-shared routes only if
  // scope->plain, and only to the shared subscriptions (group, filter) it lists.
  void Match(const MessagePtr& message, std::vector<Delivery>* out,
             std::vector<LocationSlot*>* slots = nullptr,
             const cluster::LocalDelivery::Scope* scope = nullptr);
  // Frees the slots that ended since the last call. Call when no slot pointer from Match is
  // held any more.
  void CollectGarbage() {
    if (!ended_.empty()) ended_.clear();
  }

  size_t route_count() const { return routes_.size(); }
  // Client ids with a location set.
  size_t session_count() const { return present_; }
  // Slots held (for tests): client ids with a location, a route or an attached session.
  size_t slot_count() const { return locations_.size(); }

 private:
  static std::string Key(std::string_view client_id, std::string_view group);
  // Finds or creates the slot of `client_id` (no reference taken).
  LocationSlot& SlotFor(std::string_view client_id);
  // Finds or creates the slot of `client_id` and takes a reference on it.
  LocationSlot* Acquire(std::string_view client_id);
  // Drops a reference (or, with refs == 0, just re-checks) and ends the slot if nothing holds it.
  void Unref(std::string_view client_id, LocationSlot* slot);
  void EndIfUnused(std::string_view client_id, LocationSlot* slot);

  topic::FilterTrie<std::string, RouteEntry> routes_;
  StringMap<std::unique_ptr<LocationSlot>> locations_;
  size_t present_ = 0;
  std::vector<std::unique_ptr<LocationSlot>> ended_;
  absl::flat_hash_map<std::string, uint64_t> round_robin_;  // group + '\0' + filter -> counter
  std::vector<const RouteEntry*> matched_;                  // Match's scratch
};

}  // namespace shardmq::broker::session
