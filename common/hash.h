// The stable hash of the cluster: xxHash64 with seed 0. Partition of a key is
// Hash64(key) % partitions. This function's output is part of the on-disk and wire format.
#pragma once

#include <cstdint>
#include <string_view>

namespace shardmq {

uint64_t Hash64(std::string_view key);

inline uint32_t PartitionOf(std::string_view key, uint32_t partitions) {
  return static_cast<uint32_t>(Hash64(key) % partitions);
}

}  // namespace shardmq
