// What only the in-memory fake (storage/memory/memory_storage.cc) promises; the shared contract
// is in storage_contract_test.cc, which runs against this fake too.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/storage.h"
#include "tests/storage/storage_test_util.h"
#include "tests/support/test_util.h"

namespace shardmq::storage {
namespace {

using fixtures::FindSession;
using fixtures::MakeMessage;
using fixtures::MakeSession;
using fixtures::RecipientsOf;

TEST(MemoryStorageTest, DoneRunsOnTheCallingThreadBeforeCommitReturns) {
  std::unique_ptr<Storage> storage = CreateInMemoryStorage();
  bool called = false;
  std::thread::id where;
  Batch b;
  b.PutSession(MakeSession("c"));
  storage->Commit(std::move(b), [&](absl::Status s) {
    EXPECT_OK(s);
    called = true;
    where = std::this_thread::get_id();
  });
  EXPECT_TRUE(called);
  EXPECT_EQ(where, std::this_thread::get_id());
}

TEST(MemoryStorageTest, DoneMayCommitAgain) {
  std::unique_ptr<Storage> storage = CreateInMemoryStorage();
  bool inner = false;
  Batch b;
  b.PutSession(MakeSession("outer"));
  storage->Commit(std::move(b), [&](absl::Status s) {
    EXPECT_OK(s);
    Batch next;
    next.PutSession(MakeSession("inner"));
    EXPECT_OK(storage->CommitSync(std::move(next)));  // no lock is held while done runs
    inner = true;
  });
  EXPECT_TRUE(inner);
  auto snapshot = storage->Load();
  ASSERT_OK(snapshot);
  EXPECT_EQ(snapshot->sessions.size(), 2u);
}

TEST(MemoryStorageTest, ConcurrentCommittersOnDifferentSessions) {
  std::unique_ptr<Storage> storage = CreateInMemoryStorage();
  constexpr int kThreads = 4;
  constexpr uint64_t kOps = 1000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string cid = "client-" + std::to_string(t);
      for (uint64_t i = 1; i <= kOps; ++i) {
        const uint64_t id = t * kOps + i;
        Batch b;
        if (i == 1) b.PutSession(MakeSession(cid));
        b.PutMessage(id, MakeMessage("t", "p"), RecipientsOf({cid}));
        if (i % 2 == 0) {  // keep the odd ones
          b.DeleteEntry(cid, "t", id);
          b.DeleteMessage("t", id);
        }
        EXPECT_OK(storage->CommitSync(std::move(b)));
      }
    });
  }
  for (std::thread& th : threads) th.join();
  auto snapshot = storage->Load();
  ASSERT_OK(snapshot);
  for (int t = 0; t < kThreads; ++t) {
    const StoredSession* s = FindSession(*snapshot, "client-" + std::to_string(t));
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->entries.size(), kOps / 2);
  }
  EXPECT_EQ(snapshot->messages.size(), kThreads * kOps / 2);
}

}  // namespace
}  // namespace shardmq::storage
