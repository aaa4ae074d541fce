#include "cluster/owner_routes.h"

#include <algorithm>

namespace shardmq::cluster {

void OwnerRoutes::Incarnation(const std::string& node, int64_t lease) {
  NodeState& st = nodes_[node];
  if (lease == st.lease) return;
  // Lease ids are not ordered by time, so any other lease is taken as the newest: a node
  // only ever sends with its current lease, and an old stream's items cannot arrive after the
  // new incarnation's (the old process is gone).
  for (const auto& [filter, group] : st.routes) trie_.Erase(filter, TrieKey(node, group));
  st.routes.clear();
  st.lease = lease;
}

void OwnerRoutes::Add(const std::string& node, int64_t lease, const std::string& filter,
                      const std::string& group) {
  Incarnation(node, lease);
  if (nodes_[node].routes.emplace(filter, group).second) {
    trie_.Insert(filter, TrieKey(node, group), Route{node, group, filter});
  }
}

void OwnerRoutes::Remove(const std::string& node, int64_t lease, const std::string& filter,
                         const std::string& group) {
  auto it = nodes_.find(node);
  if (it == nodes_.end() || it->second.lease != lease) return;
  if (it->second.routes.erase({filter, group}) > 0) trie_.Erase(filter, TrieKey(node, group));
}

void OwnerRoutes::DropNode(const std::string& node) {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return;
  for (const auto& [filter, group] : it->second.routes) trie_.Erase(filter, TrieKey(node, group));
  nodes_.erase(it);
}

OwnerRoutes::Matches OwnerRoutes::MatchAll(std::string_view topic) const {
  Matches out;
  trie_.MatchFilters(topic, [&](const auto& entries) {
    for (const auto& [key, route] : entries) {
      if (route.group.empty()) {
        out.plain.push_back(route.node);
      } else {
        out.shared[{route.group, route.filter}].push_back(route.node);
      }
    }
  });
  std::sort(out.plain.begin(), out.plain.end());
  out.plain.erase(std::unique(out.plain.begin(), out.plain.end()), out.plain.end());
  for (auto& [key, nodes] : out.shared) std::sort(nodes.begin(), nodes.end());
  return out;
}

std::vector<std::string> OwnerRoutes::nodes() const {
  std::vector<std::string> out;
  for (const auto& [node, st] : nodes_) {
    if (!st.routes.empty()) out.push_back(node);
  }
  return out;
}

}  // namespace shardmq::cluster
