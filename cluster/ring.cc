#include "cluster/ring.h"

#include <algorithm>
#include <tuple>

#include "common/hash.h"

namespace shardmq::cluster {

Ring::Ring(std::vector<std::string> nodes, uint32_t vnodes) : nodes_(std::move(nodes)) {
  std::sort(nodes_.begin(), nodes_.end());
  nodes_.erase(std::unique(nodes_.begin(), nodes_.end()), nodes_.end());
  points_.reserve(nodes_.size() * vnodes);
  for (uint32_t n = 0; n < nodes_.size(); ++n) {
    for (uint32_t i = 0; i < vnodes; ++i) points_.push_back(Point{VnodePoint(nodes_[n], i), n});
  }
  // Ties (two nodes hashing to the same position) are broken by node id, which is sorted, so
  // the order does not depend on the order the members were listed in.
  std::sort(points_.begin(), points_.end(), [](const Point& a, const Point& b) {
    return std::tie(a.position, a.node) < std::tie(b.position, b.node);
  });
}

uint64_t Ring::PartitionPoint(uint32_t partition) {
  const char be[4] = {static_cast<char>(partition >> 24), static_cast<char>(partition >> 16),
                      static_cast<char>(partition >> 8), static_cast<char>(partition)};
  return Hash64(std::string_view(be, sizeof be));
}

uint64_t Ring::VnodePoint(const std::string& node, uint32_t index) {
  return Hash64(node + "#" + std::to_string(index));
}

const std::string& Ring::OwnerOfPoint(uint64_t point) const {
  auto it = std::lower_bound(points_.begin(), points_.end(), point,
                             [](const Point& p, uint64_t v) { return p.position < v; });
  if (it == points_.end()) it = points_.begin();  // wrap around
  return nodes_[it->node];
}

const std::string& Ring::OwnerOfPartition(uint32_t partition) const {
  return OwnerOfPoint(PartitionPoint(partition));
}

std::vector<std::string> Ring::Place(uint32_t partitions) const {
  std::vector<std::string> owners(partitions);
  if (empty()) return owners;
  for (uint32_t p = 0; p < partitions; ++p) owners[p] = OwnerOfPartition(p);
  return owners;
}

}  // namespace shardmq::cluster
