#include "broker/session/route_table.h"

#include <algorithm>

namespace shardmq::broker::session {

std::string RouteTable::Key(std::string_view client_id, std::string_view group) {
  // Client ids and group names cannot contain U+0000, so '\0' separates them unambiguously.
  if (group.empty()) return std::string(client_id);
  std::string key(group);
  key.push_back('\0');
  key.append(client_id);
  return key;
}

LocationSlot& RouteTable::SlotFor(std::string_view client_id) {
  auto it = locations_.find(client_id);
  if (it == locations_.end()) {
    it = locations_.try_emplace(client_id, std::make_unique<LocationSlot>()).first;
  }
  return *it->second;
}

LocationSlot* RouteTable::Acquire(std::string_view client_id) {
  LocationSlot& slot = SlotFor(client_id);
  ++slot.refs;
  return &slot;
}

void RouteTable::Unref(std::string_view client_id, LocationSlot* slot) {
  if (slot->refs > 0) --slot->refs;
  EndIfUnused(client_id, slot);
}

void RouteTable::EndIfUnused(std::string_view client_id, LocationSlot* slot) {
  if (slot->present || slot->refs > 0 || slot->local != nullptr) return;
  auto it = locations_.find(client_id);
  if (it == locations_.end() || it->second.get() != slot) return;
  ended_.push_back(std::move(it->second));  // freed by CollectGarbage
  locations_.erase(it);
}

LocationSlot* RouteTable::Slot(std::string_view client_id) const {
  auto it = locations_.find(client_id);
  return it == locations_.end() ? nullptr : it->second.get();
}

void RouteTable::Add(const RouteEntry& entry) {
  std::string key = Key(entry.client_id, entry.group);
  const RouteEntry* existing = routes_.Find(entry.filter, key);
  if (existing != nullptr && existing->session_gen > entry.session_gen) return;
  RouteEntry e = entry;
  // A replaced route (same client id and group) keeps its slot and its reference.
  e.slot = existing != nullptr ? existing->slot : Acquire(entry.client_id.view());
  routes_.Insert(entry.filter, key, std::move(e));
}

void RouteTable::Remove(std::string_view client_id, std::string_view group,
                        std::string_view filter, uint64_t gen) {
  std::string key = Key(client_id, group);
  const RouteEntry* existing = routes_.Find(filter, key);
  if (existing == nullptr || existing->session_gen > gen) return;
  LocationSlot* slot = existing->slot;
  routes_.Erase(filter, key);
  Unref(client_id, slot);
}

void RouteTable::SetLocation(const std::string& client_id, const SessionLocation& loc) {
  LocationSlot& slot = SlotFor(client_id);
  if (!slot.present) {
    slot.present = true;
    slot.loc = loc;
    ++present_;
    return;
  }
  SessionLocation& cur = slot.loc;
  if (loc.gen > cur.gen || (loc.gen == cur.gen && loc.version > cur.version)) cur = loc;
}

void RouteTable::RemoveLocation(const std::string& client_id, uint64_t gen) {
  LocationSlot* slot = Slot(client_id);
  if (slot == nullptr || !slot->present || slot->loc.gen > gen) return;
  slot->present = false;
  --present_;
  EndIfUnused(client_id, slot);
}

const SessionLocation* RouteTable::Location(std::string_view client_id) const {
  return LocationIn(Slot(client_id));
}

void RouteTable::AttachSession(const std::string& client_id, Session* session) {
  SlotFor(client_id).local = session;
}

void RouteTable::DetachSession(std::string_view client_id) {
  LocationSlot* slot = Slot(client_id);
  if (slot == nullptr) return;
  slot->local = nullptr;
  EndIfUnused(client_id, slot);
}

void RouteTable::Match(const MessagePtr& message, std::vector<Delivery>* out,
                       std::vector<LocationSlot*>* slots,
                       const cluster::LocalDelivery::Scope* scope) {
  const bool plain = scope == nullptr || scope->plain;
  auto group_in_scope = [scope](const RouteEntry& e) {
    if (scope == nullptr) return true;
    for (const auto& [group, filter] : scope->shared) {
      if (group == e.group && filter == e.filter) return true;
    }
    return false;
  };
  const Message& m = *message;
  struct Group {
    std::vector<const RouteEntry*> members;
  };
  absl::flat_hash_map<std::string, Group> groups;
  // Non-shared routes that match, and whether they come from more than one filter: only then
  // can a session have several matching subscriptions, which are merged into one delivery with
  // the maximum QoS and every subscription identifier (MQTT 5 s3.3.4). One filter holds one
  // route per session.
  matched_.clear();
  int filters = 0;
  routes_.MatchFilters(m.topic, [&](const auto& entries) {
    bool counted = false;
    for (const auto& [key, e] : entries) {
      if (!e.group.empty()) {
        if (!group_in_scope(e)) continue;
        std::string gkey = e.group;
        gkey.push_back('\0');
        gkey.append(e.filter);
        groups[gkey].members.push_back(&e);
        continue;
      }
      if (!plain) continue;
      if (e.no_local && e.client_id == m.publisher) continue;
      if (!counted) {
        counted = true;
        ++filters;
      }
      matched_.push_back(&e);
    }
  });
  const bool several_filters = filters > 1;
  out->reserve(out->size() + matched_.size() + groups.size());
  if (slots != nullptr) slots->reserve(out->capacity());
  auto deliver = [&](const RouteEntry& e) {
    Delivery& d = out->emplace_back();
    d.client_id = e.client_id;
    d.session_gen = e.session_gen;
    d.message = message;
    d.qos = std::min(m.qos, e.qos);
    d.retain = e.retain_as_published && m.retain;
    if (e.subscription_id != 0) d.subscription_ids.push_back(e.subscription_id);
    if (slots != nullptr) slots->push_back(e.slot);
  };
  if (!several_filters) {
    for (const RouteEntry* e : matched_) deliver(*e);
  } else {
    absl::flat_hash_map<std::string_view, size_t> by_session;  // client id -> index in `out`
    by_session.reserve(matched_.size());
    for (const RouteEntry* e : matched_) {
      auto [it, inserted] = by_session.try_emplace(e->client_id, out->size());
      if (inserted) {
        deliver(*e);
        continue;
      }
      Delivery& d = (*out)[it->second];
      d.qos = std::max(d.qos, std::min(m.qos, e->qos));
      d.retain = d.retain || (e->retain_as_published && m.retain);
      if (e->subscription_id != 0) d.subscription_ids.push_back(e->subscription_id);
    }
  }

  for (auto& [gkey, group] : groups) {
    auto& members = group.members;
    // Stable order so round-robin is fair regardless of hash iteration order.
    std::sort(members.begin(), members.end(),
              [](const RouteEntry* a, const RouteEntry* b) { return a->client_id < b->client_id; });
    uint64_t& counter = round_robin_[gkey];
    const RouteEntry* chosen = nullptr;
    for (size_t i = 0; i < members.size(); ++i) {
      const RouteEntry* candidate = members[(counter + i) % members.size()];
      const SessionLocation* loc = LocationIn(candidate->slot);
      if (loc != nullptr && loc->online) {
        chosen = candidate;
        counter += i + 1;
        break;
      }
    }
    if (chosen == nullptr) {
      // No member online: the message goes to one member's session queue (QoS > 0 only).
      chosen = members[counter % members.size()];
      ++counter;
    }
    deliver(*chosen);
  }
}

}  // namespace shardmq::broker::session
