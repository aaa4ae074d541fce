// Tests of cluster/cluster_router.h and cluster/peer_link.h: routers of three "nodes" in one
// process, each with its own gRPC server on 127.0.0.1, fed membership and a partition map by
// hand (no etcd).
#include "cluster/cluster_router.h"

#include <algorithm>
#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cluster/node_server.h"
#include "cluster/ring.h"
#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_util.h"

namespace shardmq::cluster {
namespace {

using namespace std::chrono_literals;

constexpr uint32_t kPartitions = 16;

class Inbox : public LocalDelivery {
 public:
  void DeliverLocal(records::Message m, Scope scope) override {
    std::lock_guard lock(mu_);
    if (scope.plain) got_.push_back(m.topic() + "=" + m.payload());
    for (const auto& [group, filter] : scope.shared) {
      shared_.push_back(group + "|" + filter + "|" + m.payload());
    }
  }
  std::vector<std::string> shared() {
    std::lock_guard lock(mu_);
    return shared_;
  }
  std::vector<std::string> got() {
    std::lock_guard lock(mu_);
    return got_;
  }
  size_t size() {
    std::lock_guard lock(mu_);
    return got_.size();
  }

 private:
  std::mutex mu_;
  std::vector<std::string> got_;
  std::vector<std::string> shared_;  // "group|filter|payload" for each shared pick
};

struct TestNode {
  explicit TestNode(const std::string& id_) : id(id_), router(id_, inbox) {
    auto s = NodeServer::Start("127.0.0.1:0", [] { return v1::HealthResponse(); }, &router);
    EXPECT_TRUE(s.ok()) << s.status();
    server = std::move(*s);
  }
  ~TestNode() {
    router.Stop();
    server->Stop();
  }
  std::string id;
  Inbox inbox;
  ClusterRouter router;
  std::unique_ptr<NodeServer> server;
};

records::Message Msg(const std::string& topic, const std::string& payload, bool retain = false) {
  records::Message m;
  m.set_topic(topic);
  m.set_payload(payload);
  m.set_qos(1);
  m.set_retain(retain);
  return m;
}

class ClusterRouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* id : {"a", "b", "c"}) nodes_.push_back(std::make_unique<TestNode>(id));
    members_.clear();
    int64_t lease = 100;
    for (auto& n : nodes_) {
      v1::MemberRecord m;
      m.set_node_id(n->id);
      m.set_role("all");
      m.set_cluster_addr("127.0.0.1:" + std::to_string(n->server->port()));
      m.set_lease(++lease);
      members_[n->id] = m;
    }
    map_.revision = 1;
    map_.record.set_partitions(kPartitions);
    const std::vector<std::string> owners = Ring({"a", "b", "c"}, 16).Place(kPartitions);
    for (const std::string& o : owners) map_.record.add_assignments()->set_leader(o);
    for (auto& n : nodes_) {
      n->router.SetLease(members_[n->id].lease());
      n->router.OnMembers(members_);
      n->router.OnMap(map_);
    }
  }
  TestNode& node(const std::string& id) {
    for (auto& n : nodes_) {
      if (n->id == id) return *n;
    }
    return *nodes_[0];
  }
  // A topic whose partition `owner` leads.
  std::string TopicOwnedBy(const std::string& owner, const std::string& prefix) {
    for (int i = 0; i < 1000; ++i) {
      std::string t = prefix + std::to_string(i);
      if (map_.LeaderOf(PartitionOf(t, kPartitions)) == owner) return t;
    }
    ADD_FAILURE() << "no topic owned by " << owner;
    return "";
  }
  absl::Status AddRouteSync(TestNode& n, const std::string& filter,
                            const std::string& group = "") {
    std::promise<absl::Status> p;
    n.router.AddRoute(filter, group, [&p](const absl::Status& st) { p.set_value(st); });
    return p.get_future().get();
  }
  absl::Status ForwardSync(TestNode& n, const records::Message& m) {
    std::promise<absl::Status> p;
    n.router.Forward(m, [&p](const absl::Status& st) { p.set_value(st); });
    return p.get_future().get();
  }

  std::vector<std::unique_ptr<TestNode>> nodes_;
  std::map<std::string, v1::MemberRecord> members_;
  PartitionMap map_;
};

TEST_F(ClusterRouterTest, ExactRouteAtTheOwnerDeliversPublishesFromAnyNode) {
  // A topic owned by c; subscriber on a; publishers on b and on c itself.
  const std::string t = TopicOwnedBy("c", "exact/");
  ASSERT_OK(AddRouteSync(node("a"), t));
  EXPECT_EQ(node("c").router.stats().owner_routes, 1u);
  ASSERT_OK(ForwardSync(node("b"), Msg(t, "from-b")));
  ASSERT_OK(ForwardSync(node("c"), Msg(t, "from-c")));
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.size() == 2; }, 5s));
  EXPECT_THAT(node("a").inbox.got(), ::testing::ElementsAre(t + "=from-b", t + "=from-c"));
  EXPECT_EQ(node("b").inbox.size(), 0u);  // no route on b: nothing delivered there
}

TEST_F(ClusterRouterTest, WildcardRoutesGoToEveryStoreNode) {
  ASSERT_OK(AddRouteSync(node("a"), "w/+"));
  for (const char* id : {"a", "b", "c"}) {
    EXPECT_EQ(node(id).router.stats().owner_routes, 1u) << id;
  }
  for (const char* owner : {"a", "b", "c"}) {
    ASSERT_OK(ForwardSync(node("b"), Msg(TopicOwnedBy(owner, "w/"), owner)));
  }
  // The publisher's node delivers to its own subscribers itself; the owner never sends back.
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.size() == 3; }, 5s));
}

TEST_F(ClusterRouterTest, OrderIsKeptForThousandsOfPublishes) {
  const std::string t = TopicOwnedBy("c", "order/");
  ASSERT_OK(AddRouteSync(node("a"), t));
  constexpr int kCount = 5000;
  std::atomic<int> acked{0};
  for (int i = 0; i < kCount; ++i) {
    node("b").router.Forward(Msg(t, std::to_string(i)), [&](const absl::Status& st) {
      if (st.ok()) acked.fetch_add(1);
    });
  }
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.size() == kCount; }, 20s));
  EXPECT_TRUE(test::WaitFor([&] { return acked.load() == kCount; }, 5s));
  const std::vector<std::string> got = node("a").inbox.got();
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(got[i], t + "=" + std::to_string(i));
  EXPECT_EQ(node("b").router.stats().forwarded, static_cast<uint64_t>(kCount));
}

TEST_F(ClusterRouterTest, ASharedSubscriptionGetsEachMessageOnceAcrossNodes) {
  // Members of $share/g/s/+ on a and b; a plain subscriber of s/+ on b too.
  ASSERT_OK(AddRouteSync(node("a"), "s/+", "g"));
  ASSERT_OK(AddRouteSync(node("b"), "s/+", "g"));
  ASSERT_OK(AddRouteSync(node("b"), "s/+"));
  constexpr int kCount = 40;
  for (int i = 0; i < kCount; ++i) {
    // From every node in turn, a and b included: the origin leaves shared ones to the owner.
    const char* from = i % 3 == 0 ? "a" : i % 3 == 1 ? "b" : "c";
    ASSERT_OK(ForwardSync(node(from), Msg(TopicOwnedBy("c", "s/"), std::to_string(i))));
  }
  ASSERT_TRUE(test::WaitFor(
      [&] { return node("a").inbox.shared().size() + node("b").inbox.shared().size() == kCount; },
      10s));
  std::this_thread::sleep_for(200ms);  // no extra copies trickle in
  std::vector<std::string> all = node("a").inbox.shared();
  const std::vector<std::string> on_b = node("b").inbox.shared();
  all.insert(all.end(), on_b.begin(), on_b.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::unique(all.begin(), all.end()), all.end()) << "a message went to the group twice";
  EXPECT_EQ(all.size(), static_cast<size_t>(kCount));
  // Round-robin: both nodes' members get some.
  EXPECT_GT(node("a").inbox.shared().size(), 0u);
  EXPECT_GT(on_b.size(), 0u);
  for (const std::string& s : on_b) EXPECT_EQ(s.rfind("g|s/+|", 0), 0u) << s;
  // The plain subscriber on b gets what a and c published (b's own: delivered by b itself).
  EXPECT_TRUE(test::WaitFor([&] { return node("b").inbox.size() == kCount - kCount / 3; }, 5s));
}

TEST_F(ClusterRouterTest, RetainedPublishesReachEveryNode) {
  const std::string t = TopicOwnedBy("b", "ret/");
  ASSERT_OK(ForwardSync(node("a"), Msg(t, "kept", /*retain=*/true)));
  ASSERT_TRUE(test::WaitFor(
      [&] { return node("b").inbox.size() == 1 && node("c").inbox.size() == 1; }, 5s));
  EXPECT_EQ(node("a").inbox.size(), 0u);  // the origin had it already
}

TEST_F(ClusterRouterTest, RemovingTheLastLocalSubscriptionRemovesTheRoute) {
  const std::string t = TopicOwnedBy("b", "rm/");
  ASSERT_OK(AddRouteSync(node("a"), t));
  ASSERT_OK(AddRouteSync(node("a"), t));  // a second local subscription: counted
  node("a").router.RemoveRoute(t, "");
  ASSERT_OK(ForwardSync(node("c"), Msg(t, "1")));
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.size() == 1; }, 5s));
  node("a").router.RemoveRoute(t, "");  // the last one
  ASSERT_TRUE(test::WaitFor([&] { return node("b").router.stats().owner_routes == 0; }, 5s));
  ASSERT_OK(ForwardSync(node("c"), Msg(t, "2")));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(node("a").inbox.size(), 1u);
}

TEST_F(ClusterRouterTest, APublishOrRouteForADeadOwnerFailsWithTheReason) {
  const std::string t = TopicOwnedBy("c", "dead/");
  auto members = members_;
  members.erase("c");  // c's lease expired
  for (const char* id : {"a", "b"}) node(id).router.OnMembers(members);
  absl::Status st = ForwardSync(node("a"), Msg(t, "x"));
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("owner c is down"));
  st = AddRouteSync(node("a"), t);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("node c, is down"));
  EXPECT_EQ(node("a").router.stats().forward_errors, 1u);
}

TEST_F(ClusterRouterTest, ARestartedOwnerGetsTheRoutesAgain) {
  const std::string t = TopicOwnedBy("c", "again/");
  ASSERT_OK(AddRouteSync(node("a"), t));
  // c restarts: a new process (empty tables), a new lease.
  const uint16_t old_port = node("c").server->port();
  (void)old_port;
  for (auto& n : nodes_) {
    if (n->id == "c") n = std::make_unique<TestNode>("c");
  }
  members_["c"].set_lease(999);
  members_["c"].set_cluster_addr("127.0.0.1:" + std::to_string(node("c").server->port()));
  node("c").router.SetLease(999);
  for (auto& n : nodes_) {
    n->router.OnMembers(members_);
    n->router.OnMap(map_);
  }
  ASSERT_TRUE(test::WaitFor([&] { return node("c").router.stats().owner_routes == 1; }, 5s));
  ASSERT_OK(ForwardSync(node("b"), Msg(t, "after")));
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.size() == 1; }, 5s));
}

}  // namespace
}  // namespace shardmq::cluster
