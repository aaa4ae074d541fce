#include "cluster/owner_routes.h"

#include <algorithm>

namespace shardmq::cluster {

void OwnerRoutes::Incarnation(const std::string& node, int64_t lease) {
  NodeState& st = nodes_[node];
  if (lease == st.lease) return;
  // Lease ids are not ordered by time, so any other lease is taken as the newest: a node
  // only ever sends with its current lease, and an old stream's items cannot arrive after the
  // new incarnation's (the old process is gone).
  for (const std::string& f : st.filters) trie_.Erase(f, node);
  st.filters.clear();
  st.lease = lease;
}

void OwnerRoutes::Add(const std::string& node, int64_t lease, const std::string& filter) {
  Incarnation(node, lease);
  if (nodes_[node].filters.insert(filter).second) trie_.Insert(filter, node, 0);
}

void OwnerRoutes::Remove(const std::string& node, int64_t lease, const std::string& filter) {
  auto it = nodes_.find(node);
  if (it == nodes_.end() || it->second.lease != lease) return;
  if (it->second.filters.erase(filter) > 0) trie_.Erase(filter, node);
}

void OwnerRoutes::DropNode(const std::string& node) {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return;
  for (const std::string& f : it->second.filters) trie_.Erase(f, node);
  nodes_.erase(it);
}

std::vector<std::string> OwnerRoutes::Match(std::string_view topic) const {
  std::vector<std::string> out;
  trie_.Match(topic, [&](const std::string& node, char) { out.push_back(node); });
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<std::string> OwnerRoutes::nodes() const {
  std::vector<std::string> out;
  for (const auto& [node, st] : nodes_) {
    if (!st.filters.empty()) out.push_back(node);
  }
  return out;
}

}  // namespace shardmq::cluster
