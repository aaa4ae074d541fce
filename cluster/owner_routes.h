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
#include <utility>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/topic_tree.h"

namespace shardmq::cluster {

class OwnerRoutes {
 public:
  // `group`: the shared subscription's group ("" = a plain route).
  void Add(const std::string& node, int64_t lease, const std::string& filter,
           const std::string& group = "");
  void Remove(const std::string& node, int64_t lease, const std::string& filter,
              const std::string& group = "");
  // Drops every route of `node` (it left the cluster).
  void DropNode(const std::string& node);
  struct Matches {
    std::vector<std::string> plain;  // nodes with a plain route matching, sorted, unique
    // (group, filter) -> nodes with members of $share/<group>/<filter>, sorted
    std::map<std::pair<std::string, std::string>, std::vector<std::string>> shared;
  };
  Matches MatchAll(std::string_view topic) const;
  // Nodes with a plain route matching `topic`, sorted, without duplicates.
  std::vector<std::string> Match(std::string_view topic) const { return MatchAll(topic).plain; }
  size_t route_count() const { return trie_.size(); }
  // Nodes holding at least one route.
  std::vector<std::string> nodes() const;

 private:
  // Makes `lease` the node's current incarnation, dropping the routes of an earlier one.
  void Incarnation(const std::string& node, int64_t lease);

  struct NodeState {
    int64_t lease = 0;
    std::set<std::pair<std::string, std::string>> routes;  // (filter, group)
  };
  struct Route {
    std::string node;
    std::string group;
    std::string filter;
  };
  // Trie key: the node id, or group + '\0' + node id for a shared route (a node holds one route
  // per filter and group).
  static std::string TrieKey(const std::string& node, const std::string& group) {
    return group.empty() ? node : group + '\0' + node;
  }
  topic::FilterTrie<std::string, Route> trie_;
  std::map<std::string, NodeState> nodes_;
};

}  // namespace shardmq::cluster
