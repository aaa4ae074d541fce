#include "common/hash.h"

#include <cstdint>
#include <string_view>

#include "gtest/gtest.h"

namespace shardmq {
namespace {

// Hash64 is part of the on-disk and wire format: pin it to published xxHash64 (seed 0) values.
// Expected values cross-checked with an independent implementation of the xxHash64 spec.
TEST(HashTest, MatchesXxHash64SeedZero) {
  struct Case {
    std::string_view input;
    uint64_t want;
  };
  const Case cases[] = {
      {"", 0xEF46DB3751D8E999ULL},
      {"a", 0xD24EC4F1A98C6E5BULL},
      {"abc", 0x44BC2CF5AD770999ULL},
      {"sport/tennis/player1", 0x66B1E6CD2ACB4DA1ULL},
      // >= 32 bytes: exercises the 4-lane main loop.
      {"The quick brown fox jumps over the lazy dog", 0x0B242D361FDA71BCULL},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Hash64(c.input), c.want) << "input: \"" << c.input << "\"";
  }
}

TEST(HashTest, PartitionOfIsHashModuloPartitions) {
  EXPECT_EQ(PartitionOf("abc", 7), 0x44BC2CF5AD770999ULL % 7);
  EXPECT_EQ(PartitionOf("", 1), 0u);
}

}  // namespace
}  // namespace shardmq
