#include "common/hash.h"

#include <xxhash.h>

namespace shardmq {
uint64_t Hash64(std::string_view key) { return XXH64(key.data(), key.size(), 0); }
}  // namespace shardmq
