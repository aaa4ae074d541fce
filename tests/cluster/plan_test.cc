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
  std::map<uint32_t, v1::HandoffRecord> ready;  // handoffs/<p>
  bool Plan(const v1::PartitionMapRecord& current, v1::PartitionMapRecord* next) const {
    return PlanPartitionMap(current, stores, alive, kPartitions, kVnodes, next, ready);
  }
  // Every listed move's new leader says it holds the sessions (as after the hand-offs).
  void CopyAll(const v1::PartitionMapRecord& map) {
    for (const v1::PartitionMove& m : map.moves()) {
      v1::HandoffRecord& r = ready[m.partition()];
      r.set_partition(m.partition());
      r.set_from(m.from());
      r.set_to(m.to());
      r.set_epoch(map.assignments(m.partition()).epoch());
      r.set_from_lease(alive.at(m.from()).lease());
    }
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

TEST(PlanPartitionMapTest, AJoiningNodeTakesItsRingShareCopyThenFlip) {
  World w;
  w.Store("a");
  w.Store("b");
  w.Store("c");
  v1::PartitionMapRecord first, second, third, fourth;
  ASSERT_TRUE(w.Plan({}, &first));
  EXPECT_EQ(first.moves_size(), 0);  // nothing to copy from: placed at once
  w.Store("d");
  // The live leaders keep their partitions while the moves are listed.
  ASSERT_TRUE(w.Plan(first, &second));
  ASSERT_GT(second.moves_size(), 0);
  EXPECT_LT(second.moves_size(), static_cast<int>(kPartitions) / 2);
  for (uint32_t p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(second.assignments(p).leader(), first.assignments(p).leader());
    EXPECT_EQ(second.assignments(p).epoch(), first.assignments(p).epoch());
  }
  for (const v1::PartitionMove& m : second.moves()) {
    EXPECT_EQ(m.to(), "d");
    EXPECT_EQ(m.from(), first.assignments(m.partition()).leader());
  }
  EXPECT_FALSE(w.Plan(second, &third)) << "nothing changes until a copy is ready";
  // A record for another epoch (an earlier hand-off) does not flip anything.
  const uint32_t some = second.moves(0).partition();
  w.ready[some].set_partition(some);
  w.ready[some].set_from(second.moves(0).from());
  w.ready[some].set_to("d");
  w.ready[some].set_epoch(second.assignments(some).epoch() + 7);
  EXPECT_FALSE(w.Plan(second, &third));
  // Nor does a record of the old leader's previous incarnation (it restarted since the copy).
  w.CopyAll(second);
  const std::string from = second.moves(0).from();
  w.alive[from].set_lease(w.alive[from].lease() + 1);
  ASSERT_TRUE(w.Plan(second, &third));  // the moves of other leaders flip
  for (const v1::PartitionMove& m : third.moves()) EXPECT_EQ(m.from(), from);
  EXPECT_GT(third.moves_size(), 0);
  w.alive[from].set_lease(w.alive[from].lease() - 1);
  w.ready.clear();
  // Once d holds the copies, exactly the moved partitions flip, each with a new epoch.
  w.CopyAll(second);
  ASSERT_TRUE(w.Plan(second, &third));
  EXPECT_EQ(third.moves_size(), 0);
  int moved = 0;
  for (uint32_t p = 0; p < kPartitions; ++p) {
    if (third.assignments(p).leader() == first.assignments(p).leader()) {
      EXPECT_EQ(third.assignments(p).epoch(), first.assignments(p).epoch());
    } else {
      ++moved;
      EXPECT_EQ(third.assignments(p).leader(), "d");
      EXPECT_EQ(third.assignments(p).epoch(), first.assignments(p).epoch() + 1);
    }
  }
  EXPECT_EQ(moved, second.moves_size());
  EXPECT_FALSE(w.Plan(third, &fourth));
}

TEST(PlanPartitionMapTest, AMoveIsCancelledWhenItsTargetDies) {
  World w;
  w.Store("a");
  w.Store("b");
  v1::PartitionMapRecord first, second, third;
  ASSERT_TRUE(w.Plan({}, &first));
  w.Store("c");
  ASSERT_TRUE(w.Plan(first, &second));
  ASSERT_GT(second.moves_size(), 0);
  w.alive.erase("c");
  ASSERT_TRUE(w.Plan(second, &third));
  EXPECT_EQ(third.moves_size(), 0);
  for (uint32_t p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(third.assignments(p).leader(), first.assignments(p).leader());
  }
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
  for (const v1::PartitionMove& m : second.moves()) {
    EXPECT_EQ(m.from(), "b");
    EXPECT_EQ(m.to(), "a");
  }
  PartitionMap before;
  before.record = first;
  EXPECT_EQ(static_cast<uint32_t>(second.moves_size()), before.CountLedBy("b"));
  w.CopyAll(second);
  v1::PartitionMapRecord third;
  ASSERT_TRUE(w.Plan(second, &third));
  for (const auto& a : third.assignments()) EXPECT_EQ(a.leader(), "a");
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
