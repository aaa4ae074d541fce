// Per-worker replica of the subscription routes and session locations.
//
// Every network worker holds a full copy, so matching a publish needs no lock: changes are
// broadcast to every worker by BrokerCore (a subscription change is acknowledged to the client
// only once every replica has applied it, so a publish that follows a SUBACK is never missed).
//
// Ordering across replicas is made safe by versions: each session instance has a generation
// (unique per instance), and each change of its location carries an increasing version; an
// older change that arrives late is ignored.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "broker/session/message.h"
#include "common/shared_string.h"
#include "common/string_map.h"
#include "common/topic_tree.h"

namespace shardmq::broker::session {

struct RouteEntry {
  SharedString client_id;  // shared by every replica and every delivery made from it
  uint64_t session_gen = 0;
  std::string group;  // shared subscription group, "" if not shared
  std::string filter; // topic filter without any $share prefix
  uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  uint32_t subscription_id = 0;
};

struct SessionLocation {
  int worker = 0;
  bool online = false;
  bool persistent = false;  // QoS 1/2 deliveries to it are stored before the publisher's ack
  uint64_t gen = 0;
  uint64_t version = 0;
};

class RouteTable {
 public:
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
  const SessionLocation* LocationOf(const SharedString& client_id) const {
    auto it = locations_.find(client_id.view(), client_id.hash());
    return it == locations_.end() ? nullptr : &it->second;
  }

  // Computes the deliveries of `message`: one per subscribed session (max QoS and all
  // subscription identifiers of its matching subscriptions), plus one per matching shared
  // group (round-robin among online members). Appends to `out`.
  void Match(const MessagePtr& message, std::vector<Delivery>* out);

  size_t route_count() const { return routes_.size(); }
  size_t session_count() const { return locations_.size(); }

 private:
  static std::string Key(std::string_view client_id, std::string_view group);

  topic::FilterTrie<std::string, RouteEntry> routes_;
  StringMap<SessionLocation> locations_;
  absl::flat_hash_map<std::string, uint64_t> round_robin_;  // group + '\0' + filter -> counter
  std::vector<const RouteEntry*> matched_;                  // Match's scratch
};

}  // namespace shardmq::broker::session
