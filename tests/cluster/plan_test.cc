// Tests of PlanPartitionMap (cluster/membership.h): the controller's placement rules, without etcd.
#include <map>
#include <string>
#include <vector>

#include "cluster/membership.h"
#include "cluster/ring.h"
#include "gtest/gtest.h"

namespace shardmq::cluster {
namespace {

constexpr uint32_t kPartitions = 64;
constexpr uint32_t kVnodes = 32;

struct World {
  std::map<std::string, v1::StoreRecord> stores;
  std::map<std::string, v1::MemberRecord> alive;

  void Store(const std::string& id, bool live = true,
             v1::StoreRecord::State state = v1::StoreRecord::ACTIVE) {
    stores[id].set_node_id(id);
    stores[id].set_state(state);
    if (live) alive[id].set_node_id(id);
  }
  bool Plan(const v1::PartitionMapRecord& current, v1::PartitionMapRecord* next) const {
    return PlanPartitionMap(current, stores, alive, kPartitions, kVnodes, next);
  }
};

TEST(PlanPartitionMapTest, FirstMapPlacesEveryPartitionOnItsRingOwnerAtEpochOne) {
  World w;
  w.Store("a");
  w.Store("b");
  w.Store("c");
  v1::PartitionMapRecord next;
  ASSERT_TRUE(w.Plan({}, &next));
  ASSERT_EQ(next.assignments_size(), static_cast<int>(kPartitions));
  EXPECT_EQ(next.partitions(), kPartitions);
  const std::vector<std::string> owners = Ring({"a", "b", "c"}, kVnodes).Place(kPartitions);
  for (uint32_t p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(next.assignments(p).leader(), owners[p]);
    EXPECT_EQ(next.assignments(p).epoch(), 1u);
  }
}

TEST(PlanPartitionMapTest, NothingChangesWhenTheMapIsCurrent) {
  World w;
  w.Store("a");
  w.Store("b");
  v1::PartitionMapRecord first, second;
  ASSERT_TRUE(w.Plan({}, &first));
  EXPECT_FALSE(w.Plan(first, &second));
}

TEST(PlanPartitionMapTest, AJoiningNodeTakesItsRingShareAndOnlyMovedPartitionsGetANewEpoch) {
  World w;
  w.Store("a");
  w.Store("b");
  w.Store("c");
  v1::PartitionMapRecord first, second;
  ASSERT_TRUE(w.Plan({}, &first));
  w.Store("d");
  ASSERT_TRUE(w.Plan(first, &second));
  int moved = 0;
  for (uint32_t p = 0; p < kPartitions; ++p) {
    if (second.assignments(p).leader() == first.assignments(p).leader()) {
      EXPECT_EQ(second.assignments(p).epoch(), first.assignments(p).epoch());
    } else {
      ++moved;
      EXPECT_EQ(second.assignments(p).leader(), "d");
      EXPECT_EQ(second.assignments(p).epoch(), first.assignments(p).epoch() + 1);
    }
  }
  EXPECT_GT(moved, 0);
  EXPECT_LT(moved, static_cast<int>(kPartitions) / 2);
}

TEST(PlanPartitionMapTest, ADeadRegisteredLeaderKeepsItsPartitions) {
  // Without replicas a partition's data is on its leader's disk: it waits for the node.
  World w;
  w.Store("a");
  w.Store("b");
  v1::PartitionMapRecord first, second;
  ASSERT_TRUE(w.Plan({}, &first));
  w.alive.erase("b");  // b's lease expired; its store record stays
  w.Store("c");        // and a node joins meanwhile
  w.Plan(first, &second);
  for (uint32_t p = 0; p < kPartitions; ++p) {
    if (first.assignments(p).leader() == "b") {
      EXPECT_EQ(second.assignments(p).leader(), "b") << "partition " << p;
      EXPECT_EQ(second.assignments(p).epoch(), first.assignments(p).epoch());
    }
  }
}

TEST(PlanPartitionMapTest, NoPartitionGoesToADeadNode) {
  World w;
  w.Store("a");
  w.Store("b", /*live=*/false);
  v1::PartitionMapRecord next;
  ASSERT_TRUE(w.Plan({}, &next));
  for (const auto& a : next.assignments()) EXPECT_NE(a.leader(), "b");
}

TEST(PlanPartitionMapTest, ADrainingNodeHandsEveryPartitionToTheActiveOnes) {
  World w;
  w.Store("a");
  w.Store("b");
  v1::PartitionMapRecord first, second;
  ASSERT_TRUE(w.Plan({}, &first));
  w.stores["b"].set_state(v1::StoreRecord::DRAINING);
  ASSERT_TRUE(w.Plan(first, &second));
  for (const auto& a : second.assignments()) EXPECT_EQ(a.leader(), "a");
}

TEST(PlanPartitionMapTest, ALeaderThatLeftTheRingIsReplaced) {
  World w;
  w.Store("a");
  w.Store("b");
  v1::PartitionMapRecord first, second;
  ASSERT_TRUE(w.Plan({}, &first));
  w.stores.erase("b");
  w.alive.erase("b");
  ASSERT_TRUE(w.Plan(first, &second));
  for (const auto& a : second.assignments()) EXPECT_EQ(a.leader(), "a");
}

TEST(PlanPartitionMapTest, WithoutStoreNodesNothingIsPlaced) {
  World w;
  v1::PartitionMapRecord next;
  w.Plan({}, &next);
  ASSERT_EQ(next.assignments_size(), static_cast<int>(kPartitions));
  for (const auto& a : next.assignments()) EXPECT_EQ(a.leader(), "");
}

}  // namespace
}  // namespace shardmq::cluster
