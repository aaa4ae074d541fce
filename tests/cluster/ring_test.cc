// Tests of cluster/ring.h: determinism, the fixed placement of known inputs (the hash is part of
// the cluster's wire contract), and the consistent-hashing property the rebalancer relies on.
#include "cluster/ring.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shardmq::cluster {
namespace {

std::vector<std::string> Nodes(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back("store-" + std::to_string(i));
  return out;
}

TEST(RingTest, EmptyRingPlacesNothing) {
  Ring ring({});
  EXPECT_TRUE(ring.empty());
  EXPECT_THAT(ring.Place(4), ::testing::Each(""));
}

TEST(RingTest, OneNodeOwnsEverything) {
  Ring ring({"a"});
  EXPECT_THAT(ring.Place(256), ::testing::Each("a"));
}

TEST(RingTest, MemberOrderAndDuplicatesDoNotMatter) {
  Ring a({"n1", "n2", "n3"});
  Ring b({"n3", "n1", "n2", "n1"});
  EXPECT_EQ(a.nodes(), b.nodes());
  EXPECT_EQ(a.Place(256), b.Place(256));
}

TEST(RingTest, PointsArePinned) {
  // The positions are xxHash64 (seed 0) of fixed byte strings: every node of every version must
  // compute the same ones, or two nodes would disagree on who owns a partition.
  // Golden values, computed independently with `xxhsum -H1` (Debian package xxhash):
  //   printf '\0\0\0\0' | xxhsum -H1;  printf '\0\0\0\1' | xxhsum -H1;  printf 'n1#0' | xxhsum -H1
  EXPECT_EQ(Ring::PartitionPoint(0), 0x3aefa6fd5cf2deb4ULL);
  EXPECT_EQ(Ring::PartitionPoint(1), 0x5b1bd2a964692595ULL);
  EXPECT_EQ(Ring::VnodePoint("n1", 0), 0xd894fa02c36ac9deULL);
}

TEST(RingTest, OwnerIsTheFirstPointAtOrAfterThePartition) {
  Ring ring({"a", "b"}, /*vnodes=*/4);
  // Brute force over all points: the owner of a position is the node of the smallest point
  // >= it, or of the smallest point overall when none is.
  std::vector<std::pair<uint64_t, std::string>> points;
  for (const char* n : {"a", "b"}) {
    for (uint32_t i = 0; i < 4; ++i) points.emplace_back(Ring::VnodePoint(n, i), n);
  }
  std::sort(points.begin(), points.end());
  for (uint32_t p = 0; p < 64; ++p) {
    const uint64_t pos = Ring::PartitionPoint(p);
    auto it = std::find_if(points.begin(), points.end(),
                           [pos](const auto& pt) { return pt.first >= pos; });
    const std::string& want = it == points.end() ? points.front().second : it->second;
    EXPECT_EQ(ring.OwnerOfPartition(p), want) << "partition " << p;
  }
}

TEST(RingTest, PartitionsAreSpreadOverTheNodes) {
  const uint32_t partitions = 256;
  for (int n : {2, 3, 5}) {
    Ring ring(Nodes(n));
    std::map<std::string, int> count;
    for (const std::string& owner : ring.Place(partitions)) ++count[owner];
    ASSERT_EQ(count.size(), static_cast<size_t>(n));
    const double fair = static_cast<double>(partitions) / n;
    for (const auto& [node, c] : count) {
      EXPECT_GT(c, fair * 0.6) << node << " of " << n;
      EXPECT_LT(c, fair * 1.4) << node << " of " << n;
    }
  }
}

TEST(RingTest, AddingOneNodeToNMovesAboutOneOverNPlusOneAllToTheNewNode) {
  const uint32_t partitions = 256;
  for (int n = 1; n <= 8; ++n) {
    std::vector<std::string> members = Nodes(n);
    const std::vector<std::string> before = Ring(members).Place(partitions);
    members.push_back("store-new");
    const std::vector<std::string> after = Ring(members).Place(partitions);
    int moved = 0;
    for (uint32_t p = 0; p < partitions; ++p) {
      if (before[p] == after[p]) continue;
      ++moved;
      EXPECT_EQ(after[p], "store-new") << "partition " << p << " moved between old nodes";
    }
    const double expected = static_cast<double>(partitions) / (n + 1);
    EXPECT_GT(moved, expected * 0.6) << n << " -> " << n + 1 << " nodes";
    EXPECT_LT(moved, expected * 1.4) << n << " -> " << n + 1 << " nodes";
  }
}

TEST(RingTest, RemovingANodeMovesOnlyItsPartitions) {
  const uint32_t partitions = 256;
  const std::vector<std::string> before = Ring(Nodes(4)).Place(partitions);
  std::vector<std::string> members = Nodes(4);
  members.erase(members.begin() + 2);  // store-2 leaves
  const std::vector<std::string> after = Ring(members).Place(partitions);
  for (uint32_t p = 0; p < partitions; ++p) {
    if (before[p] == "store-2") {
      EXPECT_NE(after[p], "store-2");
    } else {
      EXPECT_EQ(after[p], before[p]) << "partition " << p;
    }
  }
}

}  // namespace
}  // namespace shardmq::cluster
