// Tests of cluster/membership.h against a real etcd: several members in one process, each with
// its own etcd client, as separate nodes would be.
#include "cluster/membership.h"

#include <atomic>
#include <set>
#include <thread>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/etcd_process.h"
#include "tests/support/test_util.h"

namespace shardmq::cluster {
namespace {

using namespace std::chrono_literals;

constexpr uint32_t kPartitions = 32;

class RecordingCallbacks : public MembershipCallbacks {
 public:
  void OnPartitionMap(const PartitionMap& map) override {
    std::lock_guard lock(mu_);
    if (map.revision <= last_.revision) ++out_of_order_;
    last_ = map;
    ++maps_;
  }
  void OnLeaseLost() override { ++lease_lost_; }
  PartitionMap last() {
    std::lock_guard lock(mu_);
    return last_;
  }
  int out_of_order() {
    std::lock_guard lock(mu_);
    return out_of_order_;
  }
  std::atomic<int> lease_lost_{0};

 private:
  std::mutex mu_;
  PartitionMap last_;
  int maps_ = 0;
  int out_of_order_ = 0;
};

class Node {
 public:
  Node(const std::string& endpoint, const std::string& id, Role role, uint32_t partitions,
       int64_t ttl = 2) {
    EtcdOptions opts;
    opts.endpoints = {endpoint};
    auto c = EtcdClient::Connect(opts);
    EXPECT_TRUE(c.ok()) << c.status();
    if (c.ok()) client = std::move(*c);
    MembershipOptions mo;
    mo.node_id = id;
    mo.role = role;
    mo.cluster_addr = "127.0.0.1:1";
    mo.mqtt_addr = "127.0.0.1:2";
    mo.lease_ttl_s = ttl;
    mo.partitions = partitions;
    mo.vnodes = 16;
    membership = std::make_unique<Membership>(*client, mo, callbacks);
  }
  std::unique_ptr<EtcdClient> client;
  RecordingCallbacks callbacks;
  std::unique_ptr<Membership> membership;
};

// Stands in for the data plane of `node` in a partition hand-off: whenever the map lists a move
// to it, says it holds the partition's sessions (handoffs/<p>), so the controller flips it.
class Copier {
 public:
  explicit Copier(Node& node, std::string id)
      : node_(node), id_(std::move(id)), thread_([this] { Run(); }) {}
  ~Copier() {
    stop_ = true;
    thread_.join();
  }
  int moves_seen() const { return moves_seen_.load(); }

 private:
  void Run() {
    std::set<std::pair<uint32_t, uint64_t>> done;
    while (!stop_) {
      const PartitionMap map = node_.membership->map();
      for (const v1::PartitionMove& m : map.record.moves()) {
        if (m.to() != id_) continue;
        const uint64_t epoch = map.EpochOf(m.partition());
        if (!done.insert({m.partition(), epoch}).second) continue;
        ++moves_seen_;
        const auto members = node_.membership->members();
        auto from = members.find(m.from());
        ASSERT_NE(from, members.end());
        EXPECT_OK(node_.membership->MarkHandoffReady(m.partition(), m.from(),
                                                     from->second.lease(), epoch));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  Node& node_;
  const std::string id_;
  std::atomic<bool> stop_{false};
  std::atomic<int> moves_seen_{0};
  std::thread thread_;
};

class MembershipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto etcd = test::EtcdProcess::Start(dir_.path().string());
    ASSERT_OK(etcd);
    etcd_ = std::move(*etcd);
  }
  std::unique_ptr<Node> MakeNode(const std::string& id, Role role = Role::kAll,
                                 uint32_t partitions = kPartitions) {
    return std::make_unique<Node>(etcd_->endpoint(), id, role, partitions);
  }
  static bool AllPlaced(const PartitionMap& map, std::vector<std::string> on) {
    if (map.record.assignments_size() != static_cast<int>(kPartitions)) return false;
    for (const auto& a : map.record.assignments()) {
      if (std::find(on.begin(), on.end(), a.leader()) == on.end()) return false;
    }
    for (const std::string& n : on) {
      if (map.CountLedBy(n) == 0) return false;
    }
    return true;
  }

  test::ScopedTempDir dir_{"membership_test"};
  std::unique_ptr<test::EtcdProcess> etcd_;
};

TEST_F(MembershipTest, ThreeStoresElectOneControllerAndAllApplyTheSameMap) {
  std::vector<std::unique_ptr<Node>> nodes;
  for (const char* id : {"n1", "n2", "n3"}) {
    nodes.push_back(MakeNode(id));
    ASSERT_OK(nodes.back()->membership->Start());
  }
  ASSERT_TRUE(test::WaitFor(
      [&] {
        for (auto& n : nodes) {
          if (!AllPlaced(n->callbacks.last(), {"n1", "n2", "n3"})) return false;
        }
        return true;
      },
      15s, 20ms));
  int controllers = 0;
  for (auto& n : nodes) controllers += n->membership->is_controller() ? 1 : 0;
  EXPECT_EQ(controllers, 1);
  const int64_t rev = nodes[0]->callbacks.last().revision;
  for (auto& n : nodes) {
    EXPECT_EQ(n->callbacks.last().revision, rev);
    EXPECT_EQ(n->callbacks.out_of_order(), 0);
    EXPECT_EQ(n->membership->members().size(), 3u);
  }
}

TEST_F(MembershipTest, AFrontendHoldsNoPartitionsAndNeverControls) {
  auto store = MakeNode("s1", Role::kStore);
  auto front = MakeNode("f1", Role::kFrontend);
  ASSERT_OK(front->membership->Start());
  ASSERT_OK(store->membership->Start());
  ASSERT_TRUE(test::WaitFor([&] { return AllPlaced(front->callbacks.last(), {"s1"}); }, 15s));
  EXPECT_FALSE(front->membership->is_controller());
  EXPECT_TRUE(store->membership->is_controller());
}

TEST_F(MembershipTest, ControllerStopsAnotherTakesOverAndItsPartitionsStay) {
  auto a = MakeNode("a");
  auto b = MakeNode("b");
  ASSERT_OK(a->membership->Start());
  ASSERT_OK(b->membership->Start());
  ASSERT_TRUE(test::WaitFor([&] { return AllPlaced(b->callbacks.last(), {"a", "b"}); }, 15s));
  Node* controller = a->membership->is_controller() ? a.get() : b.get();
  Node* other = controller == a.get() ? b.get() : a.get();
  const std::string gone = controller->membership->options().node_id;
  const PartitionMap before = other->callbacks.last();
  controller->membership->Stop();  // leaves (lease revoked), store record stays
  ASSERT_TRUE(test::WaitFor([&] { return other->membership->is_controller(); }, 15s));
  // The departed store's partitions wait for it: no new map moves them.
  std::this_thread::sleep_for(500ms);
  const PartitionMap after = other->callbacks.last();
  for (uint32_t p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(after.LeaderOf(p), before.LeaderOf(p)) << "partition " << p;
  }
  EXPECT_GT(after.CountLedBy(gone), 0u);
}

TEST_F(MembershipTest, AJoiningStoreTakesSomePartitionsWithNewEpochs) {
  auto a = MakeNode("a");
  auto b = MakeNode("b");
  ASSERT_OK(a->membership->Start());
  ASSERT_OK(b->membership->Start());
  ASSERT_TRUE(test::WaitFor([&] { return AllPlaced(a->callbacks.last(), {"a", "b"}); }, 15s));
  const PartitionMap before = a->callbacks.last();
  auto c = MakeNode("c");
  ASSERT_OK(c->membership->Start());
  // Copy-then-flip: the moves to c are listed, the leaders stay, until c says it holds them.
  ASSERT_TRUE(test::WaitFor([&] { return c->membership->map().record.moves_size() > 0; }, 15s));
  const PartitionMap planned = c->membership->map();
  EXPECT_EQ(planned.CountLedBy("c"), 0u);
  for (const v1::PartitionMove& m : planned.record.moves()) {
    EXPECT_EQ(m.to(), "c");
    EXPECT_EQ(m.from(), before.LeaderOf(m.partition()));
  }
  Copier copier(*c, "c");
  ASSERT_TRUE(test::WaitFor(
      [&] {
        const PartitionMap m = a->callbacks.last();
        return AllPlaced(m, {"a", "b", "c"}) && m.record.moves_size() == 0;
      },
      15s));
  EXPECT_GT(copier.moves_seen(), 0);
  const PartitionMap after = a->callbacks.last();
  EXPECT_EQ(after.record.moves_size(), 0);
  EXPECT_GT(after.revision, before.revision);
  for (uint32_t p = 0; p < kPartitions; ++p) {
    if (after.LeaderOf(p) == before.LeaderOf(p)) {
      EXPECT_EQ(after.EpochOf(p), before.EpochOf(p));
    } else {
      EXPECT_EQ(after.LeaderOf(p), "c");
      EXPECT_GT(after.EpochOf(p), before.EpochOf(p));
    }
  }
}

TEST_F(MembershipTest, AStartingNodeGetsTheCurrentMapAtOnce) {
  auto a = MakeNode("a");
  ASSERT_OK(a->membership->Start());
  ASSERT_TRUE(test::WaitFor([&] { return AllPlaced(a->callbacks.last(), {"a"}); }, 15s));
  // A front-end changes nothing in the map, so no watch event will bring it: it must be
  // handed over from the initial read.
  auto f = MakeNode("f", Role::kFrontend);
  ASSERT_OK(f->membership->Start());
  EXPECT_EQ(f->callbacks.last().revision, a->callbacks.last().revision);
  EXPECT_TRUE(AllPlaced(f->callbacks.last(), {"a"}));
}

TEST_F(MembershipTest, DrainHandsEveryPartitionToTheOthersAndWaitsForTheMap) {
  auto a = MakeNode("a");
  auto b = MakeNode("b");
  ASSERT_OK(a->membership->Start());
  ASSERT_OK(b->membership->Start());
  ASSERT_TRUE(test::WaitFor([&] { return AllPlaced(b->callbacks.last(), {"a", "b"}); }, 15s));
  auto copier = std::make_unique<Copier>(*a, "a");
  ASSERT_OK(b->membership->Drain(10s));
  // Drain returned only once b's own view of the map shows it leads nothing.
  EXPECT_EQ(b->membership->map().CountLedBy("b"), 0u);
  EXPECT_TRUE(test::WaitFor([&] { return a->callbacks.last().CountLedBy("a") == kPartitions; },
                            15s));
  // The next incarnation of b is active again and takes its share back.
  b->membership->Stop();
  copier.reset();
  auto b2 = MakeNode("b");
  ASSERT_OK(b2->membership->Start());
  Copier back(*b2, "b");
  EXPECT_TRUE(test::WaitFor([&] { return AllPlaced(a->callbacks.last(), {"a", "b"}); }, 15s));
}

TEST_F(MembershipTest, DrainWithNowhereToGoFailsAtOnce) {
  auto a = MakeNode("a");
  ASSERT_OK(a->membership->Start());
  ASSERT_TRUE(test::WaitFor([&] { return AllPlaced(a->callbacks.last(), {"a"}); }, 15s));
  const auto start = std::chrono::steady_clock::now();
  absl::Status st = a->membership->Drain(30s);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(a->membership->map().CountLedBy("a"), kPartitions);
}

TEST_F(MembershipTest, ANodeWithAnotherPartitionCountIsRefused) {
  auto a = MakeNode("a");
  ASSERT_OK(a->membership->Start());
  auto b = MakeNode("b", Role::kAll, kPartitions * 2);
  absl::Status st = b->membership->Start();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("storage.partitions"));
}

TEST_F(MembershipTest, ALiveNodeIdCannotBeUsedTwice) {
  auto a = MakeNode("same");
  ASSERT_OK(a->membership->Start());
  auto b = MakeNode("same");
  absl::Status st = b->membership->Start();  // waits one TTL (2 s) for the key to free up
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("in use"));
}

TEST_F(MembershipTest, AMemberKeyDisappearsAfterItsLeaseIfTheNodeStopsRenewing) {
  auto a = MakeNode("a");
  auto b = MakeNode("b");
  ASSERT_OK(a->membership->Start());
  ASSERT_OK(b->membership->Start());
  ASSERT_TRUE(test::WaitFor([&] { return a->membership->members().size() == 2; }, 15s));
  // Simulate a dead node: b's etcd becomes unreachable to it is not possible in-process, so
  // revoke its lease behind its back, as an expiry would.
  ASSERT_OK(a->client->RevokeLease(b->membership->lease()));
  ASSERT_TRUE(test::WaitFor([&] { return a->membership->members().size() == 1; }, 15s));
  // b notices at its next keep-alive and rejoins with a new lease.
  ASSERT_TRUE(test::WaitFor([&] { return b->callbacks.lease_lost_.load() > 0; }, 15s));
  ASSERT_TRUE(test::WaitFor([&] { return a->membership->members().size() == 2; }, 15s));
}

}  // namespace
}  // namespace shardmq::cluster
