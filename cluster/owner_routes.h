// What a topic owner knows of the other nodes' subscribers: which nodes have local subscribers
// to which filters (the exact filters of the partitions it leads, and every wildcard filter).
// Routes are per node, not per session: a node registers a filter once, for all its sessions.
//
// A node's routes belong to one incarnation (its membership lease): a route from a newer lease
// first drops everything the node registered before it restarted.
//
// Not thread-safe (ClusterRouter guards it). Pure: unit-tested alone.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/topic_tree.h"

namespace shardmq::cluster {

class OwnerRoutes {
 public:
  void Add(const std::string& node, int64_t lease, const std::string& filter);
  void Remove(const std::string& node, int64_t lease, const std::string& filter);
  // Drops every route of `node` (it left the cluster).
  void DropNode(const std::string& node);
  // Nodes with a route matching `topic`, sorted, without duplicates.
  std::vector<std::string> Match(std::string_view topic) const;
  size_t route_count() const { return trie_.size(); }
  // Nodes holding at least one route.
  std::vector<std::string> nodes() const;

 private:
  // Makes `lease` the node's current incarnation, dropping the routes of an earlier one.
  void Incarnation(const std::string& node, int64_t lease);

  struct NodeState {
    int64_t lease = 0;
    std::set<std::string> filters;
  };
  topic::FilterTrie<std::string, char> trie_;  // filter -> node -> (unused)
  std::map<std::string, NodeState> nodes_;
};

}  // namespace shardmq::cluster
