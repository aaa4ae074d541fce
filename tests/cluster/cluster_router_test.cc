// Tests of cluster/cluster_router.h and cluster/peer_link.h: routers of three "nodes" in one
// process, each with its own gRPC server on 127.0.0.1, fed membership and a partition map by
// hand (no etcd).
#include "cluster/cluster_router.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
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
    std::unique_lock lock(mu_);
    blocked_cv_.wait(lock, [this] { return !blocked_; });
    if (scope.plain) got_.push_back(m.topic() + "=" + m.payload());
    for (const auto& [group, filter] : scope.shared) {
      shared_.push_back(group + "|" + filter + "|" + m.payload());
    }
  }
  void OnRelayOpen(const std::string& origin, int64_t origin_lease,
                   Router::RelayOpenArgs args) override {
    std::lock_guard lock(mu_);
    relay_.push_back("open " + origin + " " + std::to_string(args.conn) + " " + args.client_id +
                     " " + args.data);
  }
  void OnRelayData(const std::string& origin, int64_t origin_lease, uint64_t conn, bool upstream,
                   std::string data, bool close, bool not_leader,
                   int64_t consumed) override {
    std::lock_guard lock(mu_);
    relay_.push_back(std::string(upstream ? "up " : "down ") + origin + " " +
                     std::to_string(conn) + " " + data + (close ? " close" : "") +
                     (not_leader ? " not_leader" : "") +
                     (consumed >= 0 ? " consumed=" + std::to_string(consumed) : ""));
  }
  void OnRelayCongestion(const std::string& origin, int64_t origin_lease, uint64_t conn,
                         bool congested) override {
    std::lock_guard lock(mu_);
    relay_.push_back("congested " + origin + " " + std::to_string(conn) +
                     (congested ? " yes" : " no"));
  }
  void OnNodeGone(const std::string& node) override {
    std::lock_guard lock(mu_);
    relay_.push_back("gone " + node);
  }
  void OnPartitionsLost(const std::vector<uint32_t>& lost, uint32_t partitions) override {
    std::lock_guard lock(mu_);
    std::string s = "lost";
    for (uint32_t p : lost) s += " " + std::to_string(p);
    relay_.push_back(s + " of " + std::to_string(partitions));
  }
  std::vector<records::Message> RetainedSnapshot() override {
    std::lock_guard lock(mu_);
    return retained_;
  }
  // Hand-off: this node's sessions of every partition are `sessions_`; events go to handoff_.
  void HandoffFreeze(uint32_t p, uint32_t partitions, std::function<void(Sessions)> done) override {
    Sessions headers;
    {
      std::lock_guard lock(mu_);
      handoff_.push_back("freeze " + std::to_string(p));
      for (const auto& s : sessions_) {
        records::SessionTransfer h;
        *h.mutable_session() = s.session();
        *h.mutable_subscriptions() = s.subscriptions();
        headers.push_back(std::move(h));
      }
    }
    done(std::move(headers));
  }
  void HandoffPrepare(uint32_t p, uint32_t partitions, Sessions offered,
                      Router::Done done) override {
    {
      std::lock_guard lock(mu_);
      std::string e = "prepare " + std::to_string(p);
      for (const auto& s : offered) e += " " + s.session().client_id();
      handoff_.push_back(e);
    }
    done(prepare_status_);
  }
  void HandoffExport(uint32_t p, uint32_t partitions, std::function<void(Sessions)> done) override {
    Sessions all;
    {
      std::lock_guard lock(mu_);
      handoff_.push_back("export " + std::to_string(p));
      // What reached this node before the export is part of it (as in the broker).
      all = sessions_;
      for (auto& s : all) {
        for (const std::string& m : got_) {
          records::Message* rec = s.add_messages();
          rec->set_payload(m);
          records::QueueEntry* e = s.add_entries();
          e->set_message_id(static_cast<uint64_t>(s.messages_size() - 1));
        }
      }
    }
    done(std::move(all));
  }
  void HandoffImport(uint32_t p, uint32_t partitions, Sessions sessions,
                     Router::Done done) override {
    {
      std::lock_guard lock(mu_);
      std::string e = "import " + std::to_string(p);
      for (const auto& s : sessions) {
        e += " " + s.session().client_id() + "(" + std::to_string(s.entries_size()) + ")";
        for (const auto& m : s.messages()) imported_.push_back(m.payload());
      }
      handoff_.push_back(e);
    }
    done(absl::OkStatus());
  }
  void HandoffFinish(uint32_t p, uint32_t partitions, bool outgoing, bool moved) override {
    std::lock_guard lock(mu_);
    handoff_.push_back(std::string("finish ") + std::to_string(p) +
                       (outgoing ? " out" : " in") + (moved ? " moved" : " cancelled"));
  }
  void AddSession(const std::string& client_id, const std::string& filter) {
    std::lock_guard lock(mu_);
    records::SessionTransfer s;
    s.mutable_session()->set_client_id(client_id);
    s.add_subscriptions()->set_filter(filter);
    sessions_.push_back(std::move(s));
  }
  void set_prepare_status(absl::Status st) {
    std::lock_guard lock(mu_);
    prepare_status_ = std::move(st);
  }
  void OnRetainedSyncStarted(bool again) override {
    std::lock_guard lock(mu_);
    synced_.push_back(again ? "started again" : "started");
  }
  void OnRetainedSync(std::vector<records::Message> chunk, bool last,
                      const std::string& from) override {
    std::lock_guard lock(mu_);
    synced_.push_back(from + " " + std::to_string(chunk.size()) + (last ? " last" : ""));
    for (auto& m : chunk) synced_messages_.push_back(m.topic());
  }
  // A copy of `field`, taken under the lock (the routers call in on their own threads).
  template <typename T>
  T Read(const T& field) {
    std::lock_guard lock(mu_);
    return field;
  }
  void SetRetained(std::vector<records::Message> all) {
    std::lock_guard lock(mu_);
    retained_ = std::move(all);
  }
  // While blocked, DeliverLocal waits (the peer stream that calls it stops).
  void Block(bool blocked) {
    {
      std::lock_guard lock(mu_);
      blocked_ = blocked;
    }
    blocked_cv_.notify_all();
  }
  std::vector<std::string> synced() { return Read(synced_); }
  std::vector<std::string> synced_messages() { return Read(synced_messages_); }
  std::vector<std::string> relay() { return Read(relay_); }
  std::vector<std::string> handoff() { return Read(handoff_); }
  std::vector<std::string> imported() { return Read(imported_); }
  std::vector<std::string> shared() { return Read(shared_); }
  std::vector<std::string> got() { return Read(got_); }
  size_t size() { return Read(got_).size(); }

 private:
  std::mutex mu_;
  std::condition_variable blocked_cv_;
  bool blocked_ = false;
  std::vector<std::string> got_;
  std::vector<std::string> shared_;  // "group|filter|payload" for each shared pick
  std::vector<std::string> relay_;   // relay calls, in order
  std::vector<records::Message> retained_;
  std::vector<std::string> synced_;
  std::vector<std::string> synced_messages_;
  std::vector<std::string> handoff_;   // hand-off calls, in order
  std::vector<std::string> imported_;  // payloads of imported messages
  Sessions sessions_;
  absl::Status prepare_status_;
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

records::Message Qos0(const std::string& topic, const std::string& payload) {
  records::Message m = Msg(topic, payload);
  m.set_qos(0);
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
  // The next map (revision 2), in which partition `p` moved to c with epoch 1; b and c get it,
  // a does not (yet).
  PartitionMap MoveToC(uint32_t p) {
    PartitionMap next = map_;
    next.revision = 2;
    next.record.mutable_assignments(static_cast<int>(p))->set_leader("c");
    next.record.mutable_assignments(static_cast<int>(p))->set_epoch(1);
    node("b").router.OnMap(next);
    node("c").router.OnMap(next);
    return next;
  }
  // a, b and c joined in that order; c comes back with a new lease (so it asks a for the
  // retained messages) before a has seen it go or return (a has no link to c). Returns the
  // member records with c's new lease, for a to learn them later.
  std::map<std::string, v1::MemberRecord> CComesBackUnseenByA(int64_t lease) {
    auto members = members_;
    members["a"].set_joined_revision(5);
    members["b"].set_joined_revision(6);
    members["c"].set_joined_revision(7);
    for (auto& n : nodes_) n->router.OnMembers(members);
    auto without_c = members;
    without_c.erase("c");
    node("a").router.OnMembers(without_c);
    members["c"].set_lease(lease);
    members["c"].set_joined_revision(20);
    node("c").router.SetLease(lease);
    node("c").router.OnMembers(members);
    return members;
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


// ---- Quiet topics (proto QuietGrant): a QoS 0 publish nobody else subscribes to stays on its
// node, and stops doing so before any other node's route for it is acknowledged.

TEST_F(ClusterRouterTest, AQuietTopicIsNotForwardedUntilAnotherNodeSubscribes) {
  const std::string t = TopicOwnedBy("c", "quiet/");
  // b publishes QoS 0 to a topic no other node subscribes to: c, its owner, tells b so.
  ASSERT_OK(ForwardSync(node("b"), Qos0(t, "first")));
  ASSERT_TRUE(test::WaitFor([&] { return node("b").router.stats().quiet_topics == 1; }, 5s));
  EXPECT_EQ(node("c").router.stats().quiet_grants, 1u);
  const uint64_t forwarded = node("b").router.stats().forwarded;
  ASSERT_OK(ForwardSync(node("b"), Qos0(t, "skipped")));
  EXPECT_EQ(node("b").router.stats().forwarded, forwarded);
  EXPECT_EQ(node("b").router.stats().forwards_skipped, 1u);
  // QoS 1 and retained publishes always go to the owner.
  ASSERT_OK(ForwardSync(node("b"), Msg(t, "qos1")));
  ASSERT_OK(ForwardSync(node("b"), Msg(t, "retained", true)));
  EXPECT_EQ(node("b").router.stats().forwarded, forwarded + 2);
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.size() == 1; }, 5s));  // retained
  // a subscribes: its route is acknowledged only once b has stopped skipping the topic, so the
  // very next publish from b reaches a.
  ASSERT_OK(AddRouteSync(node("a"), t));
  EXPECT_EQ(node("b").router.stats().quiet_topics, 0u);
  EXPECT_GE(node("c").router.stats().quiet_revokes, 1u);
  ASSERT_OK(ForwardSync(node("b"), Qos0(t, "after")));
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.size() == 2; }, 5s));
  EXPECT_THAT(node("a").inbox.got(), ::testing::ElementsAre(t + "=retained", t + "=after"));
  // And the owner grants no more while a's route is there.
  ASSERT_OK(ForwardSync(node("b"), Qos0(t, "again")));
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.size() == 3; }, 5s));
  EXPECT_EQ(node("b").router.stats().quiet_topics, 0u);
}

TEST_F(ClusterRouterTest, AWildcardRouteElsewhereEndsTheGrantsItMatchesButNotTheSubscribersOwn) {
  const std::string t = TopicOwnedBy("c", "quiet/w/");
  const std::string other = TopicOwnedBy("c", "loud/");
  ASSERT_OK(ForwardSync(node("b"), Qos0(t, "1")));
  ASSERT_OK(ForwardSync(node("b"), Qos0(other, "1")));
  ASSERT_TRUE(test::WaitFor([&] { return node("b").router.stats().quiet_topics == 2; }, 5s))
      << node("b").router.stats().quiet_topics << " " << node("c").router.stats().quiet_grants
      << " " << t << " " << other;
  // b's own plain subscription keeps the topic quiet: b delivers to its own subscribers.
  ASSERT_OK(AddRouteSync(node("b"), t));
  ASSERT_OK(AddRouteSync(node("b"), "quiet/#"));
  EXPECT_EQ(node("b").router.stats().quiet_topics, 2u);
  EXPECT_EQ(node("c").router.stats().quiet_revokes, 0u);
  // A wildcard route of a that matches t ends b's grants before it is acknowledged.
  ASSERT_OK(AddRouteSync(node("a"), "quiet/+/#"));
  EXPECT_GE(node("c").router.stats().quiet_revokes, 1u);
  // Every grant of b's from c ends (one call), `other` too; c grants that again later.
  EXPECT_EQ(node("b").router.stats().quiet_topics, 0u);
  ASSERT_OK(ForwardSync(node("b"), Qos0(t, "2")));
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.size() == 1; }, 5s))
      << node("c").router.stats().owner_routes << " fw " << node("b").router.stats().forwarded
      << " sk " << node("b").router.stats().forwards_skipped << " ro "
      << node("c").router.stats().routed_out;
  EXPECT_THAT(node("a").inbox.got(), ::testing::ElementsAre(t + "=2"));
}

TEST_F(ClusterRouterTest, ASharedSubscriptionOnThePublishersOwnNodeEndsItsGrant) {
  // Shared subscriptions are the owner's to pick, even when the only members are on the
  // publisher's node.
  const std::string t = TopicOwnedBy("c", "quiet/s/");
  ASSERT_OK(ForwardSync(node("b"), Qos0(t, "1")));
  ASSERT_TRUE(test::WaitFor([&] { return node("b").router.stats().quiet_topics == 1; }, 5s));
  ASSERT_OK(AddRouteSync(node("b"), t, "g"));
  EXPECT_EQ(node("b").router.stats().quiet_topics, 0u);
  ASSERT_OK(ForwardSync(node("b"), Qos0(t, "2")));
  ASSERT_TRUE(test::WaitFor([&] { return node("b").inbox.shared().size() == 1; }, 5s));
  EXPECT_THAT(node("b").inbox.shared(), ::testing::ElementsAre("g|" + t + "|2"));
}

TEST_F(ClusterRouterTest, AnOwnersOwnSubscriptionEndsTheGrantsBeforeItIsAcknowledged) {
  const std::string t = TopicOwnedBy("c", "quiet/o/");
  ASSERT_OK(ForwardSync(node("b"), Qos0(t, "1")));
  ASSERT_TRUE(test::WaitFor([&] { return node("b").router.stats().quiet_topics == 1; }, 5s));
  ASSERT_OK(AddRouteSync(node("c"), t));  // in process at the owner
  EXPECT_EQ(node("b").router.stats().quiet_topics, 0u);
  ASSERT_OK(ForwardSync(node("b"), Qos0(t, "2")));
  ASSERT_TRUE(test::WaitFor([&] { return node("c").inbox.size() == 1; }, 5s));
}

TEST_F(ClusterRouterTest, AGrantEndsWithTheOwnersEpochOrItsStream) {
  const std::string t = TopicOwnedBy("c", "quiet/e/");
  ASSERT_OK(ForwardSync(node("b"), Qos0(t, "1")));
  ASSERT_TRUE(test::WaitFor([&] { return node("b").router.stats().quiet_topics == 1; }, 5s));
  // A new epoch of the topic's partition (c still leads it): the grant was for the old one.
  PartitionMap next = map_;
  next.revision = 2;
  const uint32_t p = PartitionOf(t, kPartitions);
  next.record.mutable_assignments(static_cast<int>(p))->set_epoch(1);
  for (auto& n : nodes_) n->router.OnMap(next);
  EXPECT_EQ(node("b").router.stats().quiet_topics, 0u);
  const uint64_t forwarded = node("b").router.stats().forwarded;
  ASSERT_OK(ForwardSync(node("b"), Qos0(t, "2")));
  EXPECT_EQ(node("b").router.stats().forwarded, forwarded + 1);
  ASSERT_TRUE(test::WaitFor([&] { return node("b").router.stats().quiet_topics == 1; }, 5s));
  // c's process ends (b has not heard of it from the membership yet): the stream the grant
  // came on ends, and the grant with it.
  for (auto& n : nodes_) {
    if (n->id == "c") n = std::make_unique<TestNode>("c");
  }
  ASSERT_TRUE(test::WaitFor([&] { return node("b").router.stats().quiet_topics == 0; }, 5s));
}


// ---- QoS 1/2 messages across a broken stream: sent again, and kept once.

records::Message WithOrigin(records::Message m, uint64_t origin, uint64_t seq) {
  m.set_origin(origin);
  m.set_origin_seq(seq);
  return m;
}

TEST_F(ClusterRouterTest, AQos2PublishOrAQos1DeliveryThatComesTwiceIsHandledOnce) {
  const std::string t = TopicOwnedBy("c", "twice/");
  ASSERT_OK(AddRouteSync(node("a"), t));
  records::Message m = WithOrigin(Msg(t, "p"), 42, 7);
  m.set_qos(2);
  v1::PeerItem publish;
  *publish.mutable_publish()->mutable_message() = m;
  publish.mutable_publish()->set_map_revision(map_.revision);
  publish.mutable_publish()->set_epoch(map_.EpochOf(PartitionOf(t, kPartitions)));
  const int64_t b_lease = members_["b"].lease();
  ASSERT_OK(node("c").router.Handle("b", b_lease, publish));
  ASSERT_OK(node("c").router.Handle("b", b_lease, publish));  // the same publish again
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.size() == 1; }, 5s));
  EXPECT_EQ(node("c").router.stats().duplicates_dropped, 1u);
  // A QoS 1 delivery: the same.
  v1::PeerItem deliver;
  *deliver.mutable_deliver()->mutable_message() = WithOrigin(Msg(t, "d"), 42, 8);
  deliver.mutable_deliver()->set_plain(true);
  const int64_t c_lease = members_["c"].lease();
  ASSERT_OK(node("a").router.Handle("c", c_lease, deliver));
  ASSERT_OK(node("a").router.Handle("c", c_lease, deliver));
  EXPECT_EQ(node("a").router.stats().duplicates_dropped, 1u);
  // The same ids from another sender incarnation are another sender's.
  ASSERT_OK(node("a").router.Handle("c", c_lease + 1000, deliver));
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.size() == 3; }, 5s));
  EXPECT_THAT(node("a").inbox.got(), ::testing::ElementsAre(t + "=p", t + "=d", t + "=d"));
}

TEST_F(ClusterRouterTest, AQos2PublishSentAgainToAnOwnerWhoseTopicHasMovedSinceIsNotRoutedTwice) {
  const std::string t = TopicOwnedBy("b", "moved/");
  const uint32_t p = PartitionOf(t, kPartitions);
  ASSERT_OK(AddRouteSync(node("a"), t));
  auto publish = [&](const std::string& payload, uint64_t seq) {
    records::Message m = WithOrigin(Msg(t, payload), 42, seq);
    m.set_qos(2);
    v1::PeerItem item;
    *item.mutable_publish()->mutable_message() = m;
    item.mutable_publish()->set_map_revision(map_.revision);
    item.mutable_publish()->set_epoch(map_.EpochOf(p));
    return item;
  };
  const int64_t c_lease = members_["c"].lease();
  ASSERT_OK(node("b").router.Handle("c", c_lease, publish("p", 7)));
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.size() == 1; }, 5s));
  MoveToC(p);
  // c's stream to b broke before b's acknowledgement, so c sends it again, at the old epoch.
  // b routed it while it led the partition: it is acknowledged, not refused (a refusal would
  // send it on to the new leader, which would route it a second time).
  EXPECT_OK(node("b").router.Handle("c", c_lease, publish("p", 7)));
  EXPECT_EQ(node("b").router.stats().duplicates_dropped, 1u);
  // A publish b has not routed is refused: b no longer leads the partition.
  EXPECT_EQ(node("b").router.Handle("c", c_lease, publish("q", 8)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(node("a").inbox.got(), ::testing::ElementsAre(t + "=p"));
}

TEST_F(ClusterRouterTest, Qos2MessagesInFlightWhenStreamsBreakAreSentAgainAndDeliveredOnceInOrder) {
  const std::string t = TopicOwnedBy("c", "broken/");
  ASSERT_OK(AddRouteSync(node("a"), t));
  constexpr int kCount = 3000;
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  // Both hops break while messages are in flight on them, 4 times each: b -> c (the owner)
  // and c -> a (the subscriber's node). (A message is sent again at most 5 times.)
  std::atomic<bool> done{false};
  std::atomic<int> breaks{0};
  std::thread breaker([&] {
    int bc = 0;
    int ca = 0;
    for (int i = 0; !done && (bc < 4 || ca < 4) && i < 20000; ++i) {
      if (bc < 4 && node("b").router.BreakLinkForTest("c") > 0) ++bc;
      if (ca < 4 && node("c").router.BreakLinkForTest("a") > 0) ++ca;
      std::this_thread::sleep_for(1ms);
    }
    breaks = bc + ca;
  });
  for (int i = 0; i < kCount; ++i) {
    records::Message m = WithOrigin(Msg(t, std::to_string(i)), 99, static_cast<uint64_t>(i + 1));
    m.set_qos(2);
    node("b").router.Forward(m, [&](const absl::Status& st) {
      (st.ok() ? ok : failed).fetch_add(1);
    });
    if (i % 20 == 19) std::this_thread::sleep_for(1ms);
  }
  const bool all_answered = test::WaitFor([&] { return ok + failed == kCount; }, 30s);
  done = true;
  breaker.join();
  ASSERT_TRUE(all_answered);
  EXPECT_EQ(failed.load(), 0);
  // The breaks did catch messages in flight (else this test shows nothing).
  EXPECT_GT(breaks.load(), 0);
  EXPECT_GT(node("b").router.stats().items_resent + node("c").router.stats().items_resent, 0u);
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.size() >= kCount; }, 30s));
  std::this_thread::sleep_for(200ms);  // anything more that comes would be a duplicate
  const std::vector<std::string> got = node("a").inbox.got();
  ASSERT_EQ(got.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(got[i], t + "=" + std::to_string(i)) << i;
  RecordProperty("resent", std::to_string(node("b").router.stats().items_resent +
                                          node("c").router.stats().items_resent));
  RecordProperty("dropped", std::to_string(node("c").router.stats().duplicates_dropped +
                                           node("a").router.stats().duplicates_dropped));
}


// A client id whose session partition `owner` leads.
std::string ClientOwnedBy(const PartitionMap& map, const std::string& owner) {
  for (int i = 0; i < 1000; ++i) {
    std::string id = "client-" + std::to_string(i);
    if (map.LeaderOf(PartitionOf(id, kPartitions)) == owner) return id;
  }
  ADD_FAILURE() << "no client id owned by " << owner;
  return "";
}

TEST_F(ClusterRouterTest, AQos0DropAtAFullLinkIsCountedForItsThreadAndItsLinksRoomIsAwaited) {
  // c takes b's QoS 0 publishes for a topic c owns and subscribes to; c stops handling its
  // stream from b, so b's link to c fills and drops them.
  const std::string topic = TopicOwnedBy("c", "flood/");
  ASSERT_OK(AddRouteSync(node("c"), topic));
  ClusterRouter& b = node("b").router;
  EXPECT_EQ(b.Qos0DropsOnThisThread(), 0u);
  struct Unblock {  // an assertion that fails must not leave c's stream stuck at teardown
    Inbox& inbox;
    ~Unblock() { inbox.Block(false); }
  } unblock{node("c").inbox};
  node("c").inbox.Block(true);
  const uint64_t before = b.stats().qos0_dropped;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int sent = 0;
  while (b.Qos0DropsOnThisThread() == 0 && sent < 2000000 &&
         std::chrono::steady_clock::now() < deadline) {
    b.Forward(Qos0(topic, std::string(100, 'x')), nullptr);
    ++sent;
  }
  ASSERT_EQ(b.Qos0DropsOnThisThread(), 1u) << sent << " publishes";
  EXPECT_EQ(b.stats().qos0_dropped, before + 1);
  // Another thread dropped nothing.
  std::thread([&b] { EXPECT_EQ(b.Qos0DropsOnThisThread(), 0u); }).join();
  // The first drop can come while the link still drains into gRPC's window and the sockets:
  // go on until nothing has left the link for 500 ms (every publish dropped meanwhile).
  auto stuck_since = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    const uint64_t drops = b.Qos0DropsOnThisThread();
    b.Forward(Qos0(topic, std::string(100, 'x')), nullptr);
    const auto now = std::chrono::steady_clock::now();
    if (b.Qos0DropsOnThisThread() == drops) {
      stuck_since = now;  // this one was queued: the link took some
    } else if (now - stuck_since >= std::chrono::milliseconds(500)) {
      break;
    }
  }
  ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the link never stayed full";
  // The link stays full while c does not read: the resume waits.
  std::promise<void> room;
  b.WhenRoomAfterDrop([&room] { room.set_value(); });
  auto resumed = room.get_future();
  EXPECT_EQ(resumed.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  // c reads again: the link drains, and the resume runs.
  node("c").inbox.Block(false);
  EXPECT_EQ(resumed.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  // With cluster.qos0_overload = "drop" nothing is counted for the broker to hold.
  b.set_hold_qos0_publishers(false);
  const uint64_t counted = b.Qos0DropsOnThisThread();
  node("c").inbox.Block(true);
  const uint64_t dropped = b.stats().qos0_dropped;
  sent = 0;
  while (b.stats().qos0_dropped == dropped && sent < 2000000 &&
         std::chrono::steady_clock::now() < deadline) {
    b.Forward(Qos0(topic, std::string(100, 'x')), nullptr);
    ++sent;
  }
  EXPECT_GT(b.stats().qos0_dropped, dropped) << sent << " publishes";
  EXPECT_EQ(b.Qos0DropsOnThisThread(), counted);
  node("c").inbox.Block(false);
}

TEST_F(ClusterRouterTest, ASessionIsPlacedOnTheLeaderOfItsClientIdsPartition) {
  const std::string on_b = ClientOwnedBy(map_, "b");
  auto here = node("b").router.PlaceSession(on_b);
  ASSERT_OK(here.status());
  EXPECT_TRUE(here->local);
  auto there = node("a").router.PlaceSession(on_b);
  ASSERT_OK(there.status());
  EXPECT_FALSE(there->local);
  EXPECT_EQ(there->node, "b");
  EXPECT_EQ(there->revision, 1);
  // b is gone: its sessions are unavailable, with the reason.
  auto members = members_;
  members.erase("b");
  node("a").router.OnMembers(members);
  auto down = node("a").router.PlaceSession(on_b);
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(down.status().message()), ::testing::HasSubstr("owner b is down"));
}

TEST_F(ClusterRouterTest, ARelayedConnectionCarriesBytesBothWaysInOrder) {
  const std::string id = ClientOwnedBy(map_, "b");
  auto place = node("a").router.PlaceSession(id);
  ASSERT_OK(place.status());
  Router::RelayOpenArgs args;
  args.conn = 7;
  args.client_id = id;
  args.data = "CONNECT";
  node("a").router.RelayOpen(*place, args, nullptr);
  for (int i = 0; i < 50; ++i) {
    node("a").router.RelaySend("b", 7, /*upstream=*/true, "u" + std::to_string(i), false, nullptr);
  }
  node("a").router.RelaySend("b", 7, true, "", /*close=*/true, nullptr);
  ASSERT_TRUE(test::WaitFor([&] { return node("b").inbox.relay().size() == 52; }, 5s));
  std::vector<std::string> got = node("b").inbox.relay();
  EXPECT_EQ(got[0], "open a 7 " + id + " CONNECT");
  for (int i = 0; i < 50; ++i) EXPECT_EQ(got[i + 1], "up a 7 u" + std::to_string(i));
  EXPECT_EQ(got[51], "up a 7  close");
  node("b").router.RelaySend("a", 7, /*upstream=*/false, "CONNACK", false, nullptr,
                             /*consumed=*/7);
  node("b").router.RelaySend("a", 7, /*upstream=*/false, "", false, nullptr, /*consumed=*/0);
  node("b").router.RelaySend("a", 7, /*upstream=*/false, "PUBACK", false, nullptr);
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.relay().size() == 3; }, 5s));
  EXPECT_THAT(node("a").inbox.relay(),
              ::testing::ElementsAre("down b 7 CONNACK consumed=7", "down b 7  consumed=0",
                                     "down b 7 PUBACK"));
  node("a").router.RelayCongestion("b", 7, true);
  node("a").router.RelayCongestion("b", 7, false);
  ASSERT_TRUE(test::WaitFor([&] { return node("b").inbox.relay().size() == 54; }, 5s));
  EXPECT_EQ(node("b").inbox.relay()[52], "congested a 7 yes");
  EXPECT_EQ(node("b").inbox.relay()[53], "congested a 7 no");
  EXPECT_EQ(node("b").router.stats().relays_in, 1u);
  EXPECT_EQ(node("a").router.stats().relays_out, 1u);
}

TEST_F(ClusterRouterTest, AnOpenAtAnEpochTheReceiverDoesNotLeadIsRefused) {
  const std::string id = ClientOwnedBy(map_, "b");
  const uint32_t p = PartitionOf(id, kPartitions);
  // The partition moved from b to c (epoch 1); a still has the old map.
  const PartitionMap next = MoveToC(p);
  auto stale = node("a").router.PlaceSession(id);
  ASSERT_OK(stale.status());
  ASSERT_EQ(stale->node, "b");
  Router::RelayOpenArgs args;
  args.conn = 9;
  args.client_id = id;
  args.data = "CONNECT";
  node("a").router.RelayOpen(*stale, args, nullptr);
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.relay().size() == 1; }, 5s));
  EXPECT_EQ(node("a").inbox.relay()[0], "down b 9  close not_leader");
  // b accepted nothing; it was told it lost the partition (its clients there are disconnected).
  EXPECT_THAT(node("b").inbox.relay(),
              ::testing::ElementsAre("lost " + std::to_string(p) + " of 16"));
  EXPECT_TRUE(node("c").inbox.relay().empty());
  EXPECT_EQ(node("b").router.stats().fenced, 1u);
  // A sender with the old map reaching the new leader is refused as well (epoch 0 != 1) ...
  Router::Placement wrong = *stale;
  wrong.node = "c";
  node("a").router.RelayOpen(wrong, args, nullptr);
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.relay().size() == 2; }, 5s));
  EXPECT_EQ(node("a").inbox.relay()[1], "down c 9  close not_leader");
  // ... and accepted once the sender has the new map.
  node("a").router.OnMap(next);
  auto fresh = node("a").router.PlaceSession(id);
  ASSERT_OK(fresh.status());
  EXPECT_EQ(fresh->node, "c");
  EXPECT_EQ(fresh->epoch, 1u);
  node("a").router.RelayOpen(*fresh, args, nullptr);
  ASSERT_TRUE(test::WaitFor([&] { return node("c").inbox.relay().size() == 1; }, 5s));
  EXPECT_EQ(node("c").inbox.relay()[0], "open a 9 " + id + " CONNECT");  // c gained, lost none
}

TEST_F(ClusterRouterTest, ANodeWhoseLeaseMayHaveExpiredActsForNoPartition) {
  std::atomic<bool> valid{true};
  node("b").router.set_lease_check([&valid] { return valid.load(); });
  const std::string id = ClientOwnedBy(map_, "b");
  const std::string t = TopicOwnedBy("b", "fenced/");
  ASSERT_OK(node("b").router.PlaceSession(id).status());
  valid = false;  // e.g. the process was stopped past its lease
  EXPECT_EQ(node("b").router.PlaceSession(id).status().code(), absl::StatusCode::kUnavailable);
  absl::Status st = ForwardSync(node("b"), Msg(t, "x"));
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("lease may have expired"));
  // A relayed open from another node is refused too.
  auto place = node("a").router.PlaceSession(id);
  ASSERT_OK(place.status());
  Router::RelayOpenArgs args;
  args.conn = 3;
  args.client_id = id;
  node("a").router.RelayOpen(*place, args, nullptr);
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.relay().size() == 1; }, 5s));
  EXPECT_THAT(node("a").inbox.relay()[0], ::testing::HasSubstr("not_leader"));
  EXPECT_GE(node("b").router.stats().fenced, 3u);
  valid = true;
  EXPECT_OK(ForwardSync(node("b"), Msg(t, "y")));
}

TEST_F(ClusterRouterTest, ANodeThatLeavesOrRestartsIsReportedGone) {
  auto members = members_;
  members.erase("c");
  node("a").router.OnMembers(members);
  members["c"] = members_["c"];
  members["c"].set_lease(555);  // back as a new incarnation
  node("a").router.OnMembers(members);
  // Only c, and c again for its new incarnation; nothing for b.
  EXPECT_THAT(node("a").inbox.relay(), ::testing::ElementsAre("gone c"));
  members["c"].set_lease(556);
  node("a").router.OnMembers(members);
  EXPECT_THAT(node("a").inbox.relay(), ::testing::ElementsAre("gone c", "gone c"));
}


TEST_F(ClusterRouterTest, PublishesAndRoutesRefusedByAFormerLeaderGoToTheNewOneOnceKnown) {
  const std::string t = TopicOwnedBy("b", "moved/");
  const PartitionMap next = MoveToC(PartitionOf(t, kPartitions));
  // a still has the old map: b refuses its route and its publish, and a keeps trying.
  std::promise<absl::Status> routed;
  node("a").router.AddRoute(t, "", [&routed](const absl::Status& st) { routed.set_value(st); });
  std::promise<absl::Status> forwarded;
  node("a").router.Forward(Msg(t, "x"),
                           [&forwarded](const absl::Status& st) { forwarded.set_value(st); });
  auto route_done = routed.get_future();
  auto forward_done = forwarded.get_future();
  // Neither can finish while a's map names b: b refuses every attempt.
  EXPECT_EQ(route_done.wait_for(500ms), std::future_status::timeout);
  EXPECT_EQ(forward_done.wait_for(1ms), std::future_status::timeout);
  EXPECT_GE(node("b").router.stats().fenced, 2u);
  EXPECT_EQ(node("b").router.stats().owner_routes, 0u);  // b took nothing
  node("a").router.OnMap(next);
  ASSERT_OK(route_done.get());
  ASSERT_OK(forward_done.get());
  EXPECT_EQ(node("c").router.stats().owner_routes, 1u);
  EXPECT_EQ(node("b").router.stats().owner_routes, 0u);
  ASSERT_OK(ForwardSync(node("b"), Msg(t, "y")));  // through c, to a's route
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.size() == 1; }, 5s));
  EXPECT_EQ(node("a").inbox.got()[0], t + "=y");
}

TEST_F(ClusterRouterTest, ARefusalThatOutlastsTheRetriesFailsWithTheReason) {
  const std::string t = TopicOwnedBy("b", "stuck/");
  const uint32_t p = PartitionOf(t, kPartitions);
  PartitionMap next = map_;
  next.revision = 2;
  next.record.mutable_assignments(static_cast<int>(p))->set_epoch(7);  // a never learns it
  node("b").router.OnMap(next);
  absl::Status st = ForwardSync(node("a"), Msg(t, "x"));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("does not lead partition"));
  EXPECT_EQ(node("b").router.stats().fenced,
            static_cast<uint64_t>(ClusterRouter::kMaxRefusedRetries) + 1);
}


TEST_F(ClusterRouterTest, ARejoiningNodeCatchesUpOnRetainedMessagesFromTheOldestMember) {
  std::vector<records::Message> all;
  for (int i = 0; i < 1200; ++i) all.push_back(Msg("r/" + std::to_string(i), "v", true));
  node("a").inbox.SetRetained(all);
  node("b").inbox.SetRetained({Msg("r/b-only", "v", true)});
  auto members = members_;
  members["a"].set_joined_revision(5);
  members["b"].set_joined_revision(6);
  members["c"].set_joined_revision(7);
  for (auto& n : nodes_) n->router.OnMembers(members);
  // Nobody asks: every node already saw its own first lease (in SetUp) with no joined
  // revisions known, and a and b joined before c.
  EXPECT_TRUE(node("a").inbox.synced().empty());
  // c comes back with a new lease (it was paused): it asks a, the member that joined first.
  members["c"].set_lease(777);
  members["c"].set_joined_revision(20);
  node("c").router.SetLease(777);
  for (auto& n : nodes_) n->router.OnMembers(members);
  ASSERT_TRUE(test::WaitFor([&] { return node("c").inbox.synced().size() == 4; }, 5s));
  EXPECT_THAT(node("c").inbox.synced(),
              ::testing::ElementsAre("started", "a 500", "a 500", "a 200 last"));
  EXPECT_EQ(node("c").inbox.synced_messages().size(), 1200u);
  EXPECT_EQ(node("c").router.stats().retained_syncs, 1u);
  // The first member to join has nobody to learn from.
  EXPECT_TRUE(node("a").inbox.synced().empty());
  EXPECT_TRUE(node("b").inbox.synced().empty());
}


TEST_F(ClusterRouterTest, AnAnswerToARetainedCatchUpThatFindsNoLinkIsSentAgain) {
  // The asker has just come back: the member it asks does not know it yet, so has no link to
  // it when the question arrives. The answer must get there once the link exists.
  node("a").inbox.SetRetained({Msg("r/1", "v", true), Msg("r/2", "v", true)});
  auto members = CComesBackUnseenByA(778);
  ASSERT_TRUE(test::WaitFor([&] { return !node("c").inbox.synced().empty(); }, 5s));
  std::this_thread::sleep_for(500ms);
  EXPECT_THAT(node("c").inbox.synced(), ::testing::ElementsAre("started"));  // nothing yet
  node("a").router.OnMembers(members);  // now a knows c
  ASSERT_TRUE(test::WaitFor([&] { return node("c").inbox.synced().size() == 2; }, 4s));
  EXPECT_THAT(node("c").inbox.synced(), ::testing::ElementsAre("started", "a 2 last"));
  EXPECT_EQ(node("c").router.stats().retained_syncs, 1u);
}


TEST_F(ClusterRouterTest, ARetainedCatchUpThatHearsNothingAsksAgain) {
  // The member asked cannot answer for longer than it keeps trying: the asker asks again after
  // kSyncSilence, telling the broker it is the same catch-up (publishes seen since the first ask
  // still win over the answer).
  node("a").inbox.SetRetained({Msg("r/1", "v", true)});
  auto members = CComesBackUnseenByA(779);
  ASSERT_TRUE(test::WaitFor([&] { return node("c").inbox.synced().size() == 2; },
                            ClusterRouter::kSyncSilence + 5s));
  EXPECT_THAT(node("c").inbox.synced(), ::testing::ElementsAre("started", "started again"));
  node("a").router.OnMembers(members);
  ASSERT_TRUE(test::WaitFor([&] { return node("c").inbox.synced().size() == 3; }, 5s));
  EXPECT_EQ(node("c").inbox.synced().back(), "a 1 last");
  EXPECT_EQ(node("c").router.stats().retained_syncs, 1u);
}


TEST_F(ClusterRouterTest, ANewLeaderRoutesAPartitionOnlyOnceEveryMembersRoutesAreIn) {
  const std::string t = TopicOwnedBy("b", "gate/");
  ASSERT_OK(AddRouteSync(node("a"), t));  // a's route is at b
  // The partition moves to c (revision 2). b and c have the new map; a does not yet, so its
  // route is not at c.
  const PartitionMap next = MoveToC(PartitionOf(t, kPartitions));
  std::promise<absl::Status> remote;
  node("b").router.Forward(Msg(t, "from-b"),
                           [&remote](const absl::Status& st) { remote.set_value(st); });
  std::promise<absl::Status> local;
  node("c").router.Forward(Msg(t, "from-c"),
                           [&local](const absl::Status& st) { local.set_value(st); });
  auto remote_done = remote.get_future();
  auto local_done = local.get_future();
  // c holds both: routing them now would acknowledge messages that reach nobody.
  EXPECT_EQ(remote_done.wait_for(500ms), std::future_status::timeout);
  EXPECT_EQ(local_done.wait_for(1ms), std::future_status::timeout);
  EXPECT_TRUE(node("a").inbox.got().empty());
  node("a").router.OnMap(next);  // a registers its route at c, then says so (RoutesSynced)
  ASSERT_OK(remote_done.get());
  ASSERT_OK(local_done.get());
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.size() == 2; }, 5s));
  EXPECT_THAT(node("a").inbox.got(),
              ::testing::UnorderedElementsAre(t + "=from-b", t + "=from-c"));
  EXPECT_GE(node("c").router.stats().route_waits, 2u);
}

TEST_F(ClusterRouterTest, HeldPublishesOfAGainedPartitionKeepTheirOrder) {
  const std::string t = TopicOwnedBy("b", "gate-order/");
  ASSERT_OK(AddRouteSync(node("a"), t));
  const PartitionMap next = MoveToC(PartitionOf(t, kPartitions));
  constexpr int kCount = 300;
  std::atomic<int> acked{0};
  for (int i = 0; i < kCount; ++i) {
    node("b").router.Forward(Msg(t, std::to_string(i)), [&acked](const absl::Status& st) {
      if (st.ok()) acked.fetch_add(1);
    });
  }
  node("a").router.OnMap(next);
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.size() == kCount; }, 10s));
  std::vector<std::string> got = node("a").inbox.got();
  for (int i = 0; i < kCount; ++i) EXPECT_EQ(got[i], t + "=" + std::to_string(i));
  EXPECT_TRUE(test::WaitFor([&] { return acked.load() == kCount; }, 5s));
}

// ---- Partition hand-off (copy-then-flip)

class HandoffTest : public ClusterRouterTest {
 protected:
  // Map revision `revision`: the current assignments with the move p: from -> to listed.
  PartitionMap WithMove(int64_t revision, uint32_t p, const std::string& from,
                        const std::string& to) {
    PartitionMap next = map_;
    next.revision = revision;
    v1::PartitionMove* m = next.record.add_moves();
    m->set_partition(p);
    m->set_from(from);
    m->set_to(to);
    return next;
  }
  // Map revision `revision`: p led by `to` at the next epoch, no moves.
  PartitionMap Flipped(int64_t revision, uint32_t p, const std::string& to) {
    PartitionMap next = map_;
    next.revision = revision;
    next.record.mutable_assignments(static_cast<int>(p))->set_leader(to);
    next.record.mutable_assignments(static_cast<int>(p))->set_epoch(map_.EpochOf(p) + 1);
    return next;
  }
  void ApplyToAll(const PartitionMap& map) {
    for (auto& n : nodes_) n->router.OnMap(map);
  }
  struct Ready {
    std::mutex mu;
    std::vector<std::string> calls;  // "p from epoch"
    std::vector<uint32_t> cleared;
  };
  void HookReady(TestNode& n, Ready& r) {
    n.router.set_handoff_hooks(
        [&r](uint32_t p, const std::string& from, int64_t from_lease, uint64_t epoch) {
          std::lock_guard lock(r.mu);
          r.calls.push_back(std::to_string(p) + " " + from + "@" + std::to_string(from_lease) +
                            " " + std::to_string(epoch));
          return absl::OkStatus();
        },
        [&r](uint32_t p) {
          std::lock_guard lock(r.mu);
          r.cleared.push_back(p);
        });
  }
  static size_t Count(Ready& r) {
    std::lock_guard lock(r.mu);
    return r.calls.size();
  }
};

TEST_F(HandoffTest, TheOldLeaderCopiesItsSessionsOverBeforeTheFlipAndDeletesThemAfter) {
  const std::string id = ClientOwnedBy(map_, "a");
  const uint32_t p = PartitionOf(id, kPartitions);
  node("a").inbox.AddSession(id, "ho/t");
  Ready ready;
  HookReady(node("c"), ready);
  ApplyToAll(WithMove(2, p, "a", "c"));
  ASSERT_TRUE(test::WaitFor([&] { return Count(ready) == 1; }, 10s));
  {
    std::lock_guard lock(ready.mu);
    // From a's current incarnation (its lease): a record of an earlier one flips nothing.
    EXPECT_EQ(ready.calls[0],
              std::to_string(p) + " a@" + std::to_string(members_["a"].lease()) + " 0");
  }
  EXPECT_THAT(node("a").inbox.handoff(),
              ::testing::ElementsAre("freeze " + std::to_string(p), "export " + std::to_string(p)));
  EXPECT_THAT(node("c").inbox.handoff(),
              ::testing::ElementsAre("prepare " + std::to_string(p) + " " + id,
                                     "import " + std::to_string(p) + " " + id + "(0)"));
  // Until the flip, a still leads p but turns its sessions' connections away: a local
  // connect is told to ask again shortly, a relayed one refused (the front-end asks again).
  auto local = node("a").router.PlaceSession(id);
  EXPECT_EQ(local.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(local.status().message()), ::testing::HasSubstr("moving to node c"));
  auto place = node("b").router.PlaceSession(id);
  ASSERT_OK(place.status());
  EXPECT_EQ(place->node, "a");
  Router::RelayOpenArgs args;
  args.conn = 9;
  args.client_id = id;
  node("b").router.RelayOpen(*place, args, nullptr);
  ASSERT_TRUE(test::WaitFor([&] { return node("b").inbox.relay().size() == 1; }, 5s));
  EXPECT_EQ(node("b").inbox.relay()[0], "down a 9  close not_leader");
  // The flip: a deletes its copy, c starts serving.
  ApplyToAll(Flipped(3, p, "c"));
  ASSERT_TRUE(test::WaitFor([&] { return node("c").inbox.handoff().size() == 3; }, 5s));
  EXPECT_EQ(node("c").inbox.handoff()[2], "finish " + std::to_string(p) + " in moved");
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.handoff().size() == 3; }, 5s));
  EXPECT_EQ(node("a").inbox.handoff()[2], "finish " + std::to_string(p) + " out moved");
  {
    std::lock_guard lock(ready.mu);
    EXPECT_THAT(ready.cleared, ::testing::ElementsAre(p));
  }
  EXPECT_EQ(node("a").router.stats().handoffs_out, 1u);
  EXPECT_EQ(node("c").router.stats().handoffs_in, 1u);
  EXPECT_EQ(node("c").router.stats().handoff_sessions_in, 1u);
}

TEST_F(HandoffTest, TheExportHoldsEveryMessageAnOwnerRoutedBeforeTheNewRoutesWereIn) {
  // a's session subscribes to a topic that b owns; b routes to a. Every publish b acknowledged
  // before the move must be in a's export: the barrier through b comes back to a only after
  // b's earlier deliveries (a 64 KiB payload keeps the stream busy).
  const std::string id = ClientOwnedBy(map_, "a");
  const uint32_t p = PartitionOf(id, kPartitions);
  const std::string t = TopicOwnedBy("b", "barrier/");
  node("a").inbox.AddSession(id, t);
  ASSERT_OK(AddRouteSync(node("a"), t));
  constexpr int kCount = 300;
  std::atomic<int> acked{0};
  const std::string big(64 << 10, 'x');
  for (int i = 0; i < kCount; ++i) {
    records::Message m = Msg(t, std::to_string(i) + big);
    node("c").router.Forward(m, [&acked](const absl::Status& st) {
      if (st.ok()) acked.fetch_add(1);
    });
  }
  ASSERT_TRUE(test::WaitFor([&] { return acked.load() == kCount; }, 20s));
  Ready ready;
  HookReady(node("c"), ready);
  ApplyToAll(WithMove(2, p, "a", "c"));
  ASSERT_TRUE(test::WaitFor([&] { return Count(ready) == 1; }, 20s));
  EXPECT_EQ(node("c").inbox.imported().size(), static_cast<size_t>(kCount));
}

TEST_F(HandoffTest, AMoveThatIsNoLongerPlannedIsCancelledOnBothSides) {
  const std::string id = ClientOwnedBy(map_, "a");
  const uint32_t p = PartitionOf(id, kPartitions);
  node("a").inbox.AddSession(id, "ho/c");
  Ready ready;
  HookReady(node("c"), ready);
  ApplyToAll(WithMove(2, p, "a", "c"));
  ASSERT_TRUE(test::WaitFor([&] { return Count(ready) == 1; }, 10s));
  PartitionMap same = map_;
  same.revision = 3;  // the move is gone (say c left) and p stays with a
  ApplyToAll(same);
  ASSERT_TRUE(test::WaitFor([&] { return node("a").inbox.handoff().size() == 3; }, 5s));
  EXPECT_EQ(node("a").inbox.handoff()[2], "finish " + std::to_string(p) + " out cancelled");
  ASSERT_TRUE(test::WaitFor([&] { return node("c").inbox.handoff().size() == 3; }, 5s));
  EXPECT_EQ(node("c").inbox.handoff()[2], "finish " + std::to_string(p) + " in cancelled");
  auto local = node("a").router.PlaceSession(id);
  ASSERT_OK(local.status());  // served again
  EXPECT_TRUE(local->local);
  EXPECT_EQ(node("a").router.stats().handoffs_cancelled, 1u);
}

TEST_F(HandoffTest, ANewLeaderThatCannotTakeTheSessionsMakesTheOldOneTryAgain) {
  const std::string id = ClientOwnedBy(map_, "a");
  const uint32_t p = PartitionOf(id, kPartitions);
  node("a").inbox.AddSession(id, "ho/r");
  node("c").inbox.set_prepare_status(absl::UnavailableError("no store node for the route"));
  Ready ready;
  HookReady(node("c"), ready);
  ApplyToAll(WithMove(2, p, "a", "c"));
  // The first attempt is refused; a starts over until c can take them.
  ASSERT_TRUE(test::WaitFor([&] { return node("c").inbox.handoff().size() >= 2; }, 5s));
  EXPECT_EQ(node("c").inbox.handoff()[1], "finish " + std::to_string(p) + " in cancelled");
  EXPECT_EQ(Count(ready), 0u);
  node("c").inbox.set_prepare_status(absl::OkStatus());
  ASSERT_TRUE(test::WaitFor([&] { return Count(ready) == 1; }, 10s));
}

}  // namespace
}  // namespace shardmq::cluster
