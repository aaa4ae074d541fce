// Placement of partitions on store nodes: a consistent-hash ring with virtual nodes.
//
// Each store node puts `vnodes` points on a 64-bit ring (xxHash64 of "<node id>#<i>"); partition p
// sits at xxHash64 of its 4-byte big-endian number and belongs to the node of the first point at
// or after it (wrapping). Adding one node to N takes over the arcs in front of its own points, so
// about 1/(N+1) of the partitions move, every one of them to the new node; removing a node hands
// each of its partitions to the next point's node and moves nothing else.
//
// Pure and deterministic: every node computes the same placement from the same member list, in
// any order. The hash and the key formats are part of the cluster's wire contract (a controller
// of one version and nodes of another must agree), like common/hash.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shardmq::cluster {

class Ring {
 public:
  static constexpr uint32_t kDefaultVnodes = 128;

  // `nodes` in any order, duplicates ignored. An empty ring owns nothing.
  explicit Ring(std::vector<std::string> nodes, uint32_t vnodes = kDefaultVnodes);

  bool empty() const { return points_.empty(); }
  const std::vector<std::string>& nodes() const { return nodes_; }

  // The node owning ring position `point`. Requires !empty().
  const std::string& OwnerOfPoint(uint64_t point) const;
  // The node owning partition `partition`. Requires !empty().
  const std::string& OwnerOfPartition(uint32_t partition) const;
  // Owners of partitions 0 .. partitions-1 (empty strings if the ring is empty).
  std::vector<std::string> Place(uint32_t partitions) const;

  // Ring position of a partition and of a node's i-th virtual node.
  static uint64_t PartitionPoint(uint32_t partition);
  static uint64_t VnodePoint(const std::string& node, uint32_t index);

 private:
  struct Point {
    uint64_t position;
    uint32_t node;  // index into nodes_
  };
  std::vector<std::string> nodes_;  // sorted, unique
  std::vector<Point> points_;       // sorted by position (ties: by node id)
};

}  // namespace shardmq::cluster
