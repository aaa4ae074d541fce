// Tests of cluster/etcd_client.h against a real etcd (Debian etcd-server) started per test.
#include "cluster/etcd_client.h"

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

class EtcdClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto etcd = test::EtcdProcess::Start(dir_.path().string());
    ASSERT_OK(etcd);
    etcd_ = std::move(*etcd);
    EtcdOptions opts;
    opts.endpoints = {etcd_->endpoint()};
    auto client = EtcdClient::Connect(opts);
    ASSERT_OK(client);
    client_ = std::move(*client);
  }

  test::ScopedTempDir dir_{"etcd_client_test"};
  std::unique_ptr<test::EtcdProcess> etcd_;
  std::unique_ptr<EtcdClient> client_;
};

TEST(EtcdEndpointsTest, ParsesListsAndRejectsBadEntries) {
  auto ok = ParseEtcdEndpoints("127.0.0.1:2379, http://localhost:2380/");
  ASSERT_OK(ok);
  EXPECT_THAT(*ok, ::testing::ElementsAre("127.0.0.1:2379", "localhost:2380"));
  EXPECT_FALSE(ParseEtcdEndpoints("").ok());
  auto bad = ParseEtcdEndpoints("127.0.0.1:2379,nonsense");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("nonsense"));
  EXPECT_FALSE(ParseEtcdEndpoints("https://h:2379").ok());  // TLS to etcd: not yet
}

TEST(EtcdEndpointsTest, PrefixRangeEnd) {
  EXPECT_EQ(PrefixRangeEnd("/a/"), "/a0");
  EXPECT_EQ(PrefixRangeEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixRangeEnd(std::string("\xff", 1)), std::string(1, '\0'));
}

TEST(EtcdEndpointsTest, ConnectFailsClearlyWhenNothingListens) {
  EtcdOptions opts;
  opts.endpoints = {"127.0.0.1:1"};
  opts.timeout = 300ms;
  auto client = EtcdClient::Connect(opts);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(client.status().message()), ::testing::HasSubstr("127.0.0.1:1"));
}

TEST_F(EtcdClientTest, PutGetPrefixDelete) {
  auto r1 = client_->Put("/t/a", "1");
  ASSERT_OK(r1);
  auto r2 = client_->Put("/t/b", "2");
  ASSERT_OK(r2);
  EXPECT_GT(*r2, *r1);
  ASSERT_OK(client_->Put("/u/c", "3"));

  auto one = client_->Get("/t/a");
  ASSERT_OK(one);
  ASSERT_EQ(one->kvs.size(), 1u);
  EXPECT_EQ(one->kvs[0].value, "1");
  EXPECT_EQ(one->kvs[0].mod_revision, *r1);

  auto prefix = client_->GetPrefix("/t/");
  ASSERT_OK(prefix);
  ASSERT_EQ(prefix->kvs.size(), 2u);
  EXPECT_EQ(prefix->kvs[0].key, "/t/a");
  EXPECT_EQ(prefix->kvs[1].key, "/t/b");
  EXPECT_GE(prefix->revision, *r2);

  auto deleted = client_->Delete("/t/a");
  ASSERT_OK(deleted);
  EXPECT_EQ(*deleted, 1);
  auto gone = client_->Get("/t/a");
  ASSERT_OK(gone);
  EXPECT_TRUE(gone->kvs.empty());
}

TEST_F(EtcdClientTest, CompareAndPutOnModRevision) {
  EtcdKeyValue current;
  auto created = client_->CompareAndPut("/cas", "v1", 0, 0, &current);
  ASSERT_OK(created);
  EXPECT_TRUE(*created);
  // "Must not exist" now fails and reports what is there.
  auto again = client_->CompareAndPut("/cas", "v2", 0, 0, &current);
  ASSERT_OK(again);
  EXPECT_FALSE(*again);
  EXPECT_EQ(current.value, "v1");
  // The right revision wins once; the same revision again loses.
  auto swapped = client_->CompareAndPut("/cas", "v2", current.mod_revision);
  ASSERT_OK(swapped);
  EXPECT_TRUE(*swapped);
  auto stale = client_->CompareAndPut("/cas", "v3", current.mod_revision);
  ASSERT_OK(stale);
  EXPECT_FALSE(*stale);
  auto value = client_->Get("/cas");
  ASSERT_OK(value);
  EXPECT_EQ(value->kvs[0].value, "v2");

  // Several conditions: all must hold.
  auto other = client_->Get("/cas");
  ASSERT_OK(other);
  auto both = client_->PutIfAll({{"/cas", other->kvs[0].mod_revision}, {"/absent", 0}}, "/x", "1");
  ASSERT_OK(both);
  EXPECT_TRUE(*both);
  auto one_fails = client_->PutIfAll({{"/cas", other->kvs[0].mod_revision}, {"/x", 0}}, "/y", "1");
  ASSERT_OK(one_fails);
  EXPECT_FALSE(*one_fails);
}

TEST_F(EtcdClientTest, KeysUnderALeaseVanishWhenItIsRevoked) {
  auto lease = client_->GrantLease(30);
  ASSERT_OK(lease);
  ASSERT_OK(client_->Put("/leased", "x", *lease));
  auto ttl = client_->KeepAlive(*lease);
  ASSERT_OK(ttl);
  EXPECT_GT(*ttl, 0);
  ASSERT_OK(client_->RevokeLease(*lease));
  auto gone = client_->Get("/leased");
  ASSERT_OK(gone);
  EXPECT_TRUE(gone->kvs.empty());
  // A revoked lease cannot be kept alive.
  auto after = client_->KeepAlive(*lease);
  EXPECT_TRUE(!after.ok() || *after <= 0);
}

TEST_F(EtcdClientTest, KeysUnderALeaseExpireWithoutKeepAlive) {
  auto lease = client_->GrantLease(1);
  ASSERT_OK(lease);
  ASSERT_OK(client_->Put("/short", "x", *lease));
  EXPECT_TRUE(test::WaitFor(
      [&] {
        auto r = client_->Get("/short");
        return r.ok() && r->kvs.empty();
      },
      10s, 100ms));
}

struct Recorder {
  std::mutex mu;
  std::vector<std::string> seen;  // "put key=value" / "delete key"
  void Add(const std::vector<EtcdEvent>& events) {
    std::lock_guard lock(mu);
    for (const EtcdEvent& e : events) {
      seen.push_back(e.type == EtcdEvent::Type::kPut ? "put " + e.kv.key + "=" + e.kv.value
                                                     : "delete " + e.kv.key);
    }
  }
  size_t size() {
    std::lock_guard lock(mu);
    return seen.size();
  }
  std::vector<std::string> copy() {
    std::lock_guard lock(mu);
    return seen;
  }
};

TEST_F(EtcdClientTest, WatchDeliversPutsAndDeletesUnderThePrefixInOrder) {
  auto start = client_->Put("/w/before", "0");
  ASSERT_OK(start);
  Recorder rec;
  auto watch = client_->WatchPrefix("/w/", *start + 1,
                                    [&](const std::vector<EtcdEvent>& ev, int64_t, bool) {
                                      rec.Add(ev);
                                    });
  ASSERT_OK(client_->Put("/w/a", "1"));
  ASSERT_OK(client_->Put("/other", "x"));  // outside the prefix
  ASSERT_OK(client_->Put("/w/a", "2"));
  ASSERT_OK(client_->Delete("/w/a"));
  ASSERT_TRUE(test::WaitFor([&] { return rec.size() >= 3; }, 10s));
  EXPECT_THAT(rec.copy(), ::testing::ElementsAre("put /w/a=1", "put /w/a=2", "delete /w/a"));
}

TEST_F(EtcdClientTest, WatchResumesAfterEtcdRestartsWithoutLosingOrRepeatingEvents) {
  auto start = client_->Put("/r/start", "0");
  ASSERT_OK(start);
  Recorder rec;
  auto watch = client_->WatchPrefix("/r/", *start + 1,
                                    [&](const std::vector<EtcdEvent>& ev, int64_t, bool) {
                                      rec.Add(ev);
                                    });
  ASSERT_OK(client_->Put("/r/1", "a"));
  ASSERT_TRUE(test::WaitFor([&] { return rec.size() >= 1; }, 10s));
  ASSERT_OK(etcd_->Restart());  // the watch stream breaks
  // Writes while the watcher reconnects.
  ASSERT_TRUE(test::WaitFor([&] { return client_->Put("/r/2", "b").ok(); }, 15s, 100ms));
  ASSERT_OK(client_->Put("/r/3", "c"));
  ASSERT_TRUE(test::WaitFor([&] { return rec.size() >= 3; }, 15s));
  EXPECT_THAT(rec.copy(), ::testing::ElementsAre("put /r/1=a", "put /r/2=b", "put /r/3=c"));
}

}  // namespace
}  // namespace shardmq::cluster
