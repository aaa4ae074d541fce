// RocksDB-only behaviour of storage/rocksdb/rocks_storage.cc: durability across reopen and a
// crash, group commit, the on-disk key layout, and what opening refuses (always leaving the
// files exactly as they were).
#include "storage/rocksdb/rocks_storage.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/rocksdb/column_families.h"
#include "storage/rocksdb/keys.h"
#include "storage/storage.h"
#include "tests/storage/storage_test_util.h"
#include "tests/support/test_util.h"

namespace shardmq::storage {
namespace {

namespace fs = std::filesystem;
using fixtures::ClientIds;
using fixtures::Describe;
using fixtures::EntryIds;
using fixtures::FindSession;
using fixtures::MakeEntry;
using fixtures::MakeMessage;
using fixtures::MakeQueued;
using fixtures::MakeSession;
using fixtures::MakeSub;
using fixtures::MakeWill;
using fixtures::RecipientsOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class RocksStorageTest : public ::testing::Test {
 protected:
  StorageOptions Options(uint32_t partitions = 256,
                         Durability durability = Durability::kWal) const {
    StorageOptions o;
    o.data_dir = dir_.Join("data");
    o.partitions = partitions;
    o.durability = durability;
    return o;
  }

  std::unique_ptr<Storage> Open(const StorageOptions& options) {
    auto opened = OpenRocksStorage(options);
    EXPECT_OK(opened);
    return opened.ok() ? std::move(opened).value() : nullptr;
  }

  // Creates a database with a few records and closes it.
  void CreateDatabase(uint32_t partitions = 256) {
    std::unique_ptr<Storage> s = Open(Options(partitions));
    ASSERT_NE(s, nullptr);
    Batch b;
    b.PutSession(MakeSession("c"));
    b.PutSubscription("c", MakeSub("a/#"));
    b.PutMessage(1, MakeMessage("t", "x"), RecipientsOf({"c"}));
    b.PutRetained(MakeMessage("r", "v"));
    ASSERT_OK(s->CommitSync(std::move(b)));
    ASSERT_OK(rocks::FlushForTesting(*s));  // so that there are SST files to damage
    s->Close();
  }

  shardmq::test::ScopedTempDir dir_;
};

// ---- Durability ----

Batch Everything() {
  Batch b;
  for (const char* cid : {"dev-1", "dev-2", "dev-3"}) {
    b.PutSession(MakeSession(cid, 123));
    b.PutSubscription(cid, MakeSub("fleet/+/temp", 1, 4));
    b.PutSubscription(cid, MakeSub("$share/g/alerts/#", 2));
    b.PutWill(cid, MakeWill(cid));
    b.PutIncomingQos2(cid, 7);
    b.PutIncomingQos2(cid, 65000);
  }
  for (uint64_t id = 1; id <= 5; ++id) {
    Recipients recipients;
    recipients.Add("dev-1", 1, id % 2 == 0, {4});
    if (id == 3) recipients.Add("dev-2", 2, false, {});
    b.PutMessage(id, MakeMessage("fleet/" + std::to_string(id) + "/temp", "v"), recipients);
  }
  b.PutInflight("dev-2", 3, MakeEntry(3, 2, records::QueueEntry::RELEASED, 17));
  b.DeleteEntry("dev-1", "fleet/3/temp", 3);  // dev-2 still needs message 3
  b.PutRetained(MakeMessage("fleet/7/temp", "21.5"));
  b.PutRetained(MakeMessage("$SYS/uptime", "1"));
  return b;
}

TEST_F(RocksStorageTest, ReopenAfterCloseBringsEverythingBack) {
  std::string expected;
  {
    std::unique_ptr<Storage> s = Open(Options());
    ASSERT_NE(s, nullptr);
    ASSERT_OK(s->CommitSync(Everything()));
    auto snapshot = s->Load();
    ASSERT_OK(snapshot);
    expected = Describe(*snapshot);
    s->Close();
  }
  std::unique_ptr<Storage> s = Open(Options());
  ASSERT_NE(s, nullptr);
  auto snapshot = s->Load();
  ASSERT_OK(snapshot);
  EXPECT_EQ(Describe(*snapshot), expected);
  EXPECT_EQ(snapshot->sessions.size(), 3u);
  EXPECT_EQ(snapshot->max_message_id, 5u);
  // The recipients' delivery options and the done mark came back too.
  const StoredSession* dev1 = FindSession(*snapshot, "dev-1");
  ASSERT_NE(dev1, nullptr);
  EXPECT_THAT(EntryIds(*dev1), ElementsAre(1, 2, 4, 5));
  EXPECT_THAT(dev1->entries[1].second, fixtures::EqualsProto(MakeQueued(2, 1, true, {4})));
  const StoredSession* dev2 = FindSession(*snapshot, "dev-2");
  ASSERT_NE(dev2, nullptr);
  EXPECT_THAT(dev2->entries,
              ElementsAre(::testing::Pair(
                  3u, fixtures::EqualsProto(MakeEntry(3, 2, records::QueueEntry::RELEASED, 17)))));
}

// A clean Close flushes the memtables, so the next start-up has no write-ahead log to replay:
// every *.log file left behind is empty, while the data is in table files.
TEST_F(RocksStorageTest, CloseFlushesSoTheWriteAheadLogIsEmpty) {
  {
    std::unique_ptr<Storage> s = Open(Options());
    ASSERT_NE(s, nullptr);
    ASSERT_OK(s->CommitSync(Everything()));
    s->Close();
  }
  uintmax_t wal_bytes = 0;
  int tables = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.Join("data"))) {
    if (entry.path().extension() == ".log") wal_bytes += entry.file_size();
    if (entry.path().extension() == ".sst") ++tables;
  }
  EXPECT_EQ(wal_bytes, 0u);
  EXPECT_GT(tables, 0);
  std::unique_ptr<Storage> s = Open(Options());
  ASSERT_NE(s, nullptr);
  auto snapshot = s->Load();
  ASSERT_OK(snapshot);
  EXPECT_EQ(snapshot->sessions.size(), 3u);
}

TEST_F(RocksStorageTest, DestructorClosesAndKeepsAsyncCommits) {
  std::atomic<int> ok{0};
  {
    std::unique_ptr<Storage> s = Open(Options(16, Durability::kFsync));
    ASSERT_NE(s, nullptr);
    for (int i = 0; i < 100; ++i) {
      Batch b;
      b.PutSession(MakeSession("c" + std::to_string(i)));
      s->Commit(std::move(b), [&](absl::Status st) {
        if (st.ok()) ok.fetch_add(1);
      });
    }
  }  // no Close: the destructor drains the queue
  EXPECT_EQ(ok.load(), 100);
  std::unique_ptr<Storage> s = Open(Options(16));
  ASSERT_NE(s, nullptr);
  auto snapshot = s->Load();
  ASSERT_OK(snapshot);
  EXPECT_EQ(snapshot->sessions.size(), 100u);
}

// The crash test's child: the test binary re-executed (fork + exec, so the child starts with no
// threads or locks inherited from earlier tests) with SHARDMQ_CRASH_CHILD_DIR set. It opens the
// storage, commits with Durability::kWal, waits for every `done`, then dies without Close (no
// flush, no destructors).
constexpr int kCrashBatches = 300;
constexpr char kCrashChildEnv[] = "SHARDMQ_CRASH_CHILD_DIR";

TEST(RocksCrashChild, CommitThenDie) {
  const char* dir = std::getenv(kCrashChildEnv);
  if (dir == nullptr)
    GTEST_SKIP() << "runs only as the child of AcknowledgedWalCommitsSurviveACrash";
  StorageOptions options;
  options.data_dir = dir;
  options.durability = Durability::kWal;
  auto opened = OpenRocksStorage(options);
  if (!opened.ok()) ::_exit(2);
  Storage& s = **opened;
  std::atomic<int> acked{0};
  std::atomic<bool> failed{false};
  for (int i = 0; i < kCrashBatches; ++i) {
    Batch b;
    const std::string cid = "c" + std::to_string(i % 10);
    b.PutSession(MakeSession(cid, i));
    b.PutMessage(i + 1, MakeMessage("t/" + std::to_string(i), "p"), RecipientsOf({cid}));
    s.Commit(std::move(b), [&](absl::Status st) {
      if (!st.ok()) failed = true;
      acked.fetch_add(1);
    });
  }
  const bool all = shardmq::test::WaitFor([&] { return acked.load() == kCrashBatches; },
                                          std::chrono::seconds(60));
  ::_exit(!all ? 4 : failed ? 3 : 0);  // a crash: the storage is never closed
}

TEST_F(RocksStorageTest, AcknowledgedWalCommitsSurviveACrash) {
  const StorageOptions options = Options(256, Durability::kWal);
  // Everything the child needs is built before fork(): after it, only exec.
  const std::string env_entry = std::string(kCrashChildEnv) + "=" + options.data_dir;
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
  envp.push_back(const_cast<char*>(env_entry.c_str()));
  envp.push_back(nullptr);
  std::string arg0 = "storage_test";
  std::string arg1 = "--gtest_filter=RocksCrashChild.CommitThenDie";
  std::vector<char*> argv = {arg0.data(), arg1.data(), nullptr};

  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execve("/proc/self/exe", argv.data(), envp.data());
    ::_exit(127);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  ASSERT_EQ(WEXITSTATUS(status), 0);

  std::unique_ptr<Storage> s = Open(options);
  ASSERT_NE(s, nullptr);
  auto snapshot = s->Load();
  ASSERT_OK(snapshot);
  EXPECT_EQ(snapshot->sessions.size(), 10u);
  EXPECT_EQ(snapshot->messages.size(), static_cast<size_t>(kCrashBatches));
  EXPECT_EQ(snapshot->max_message_id, static_cast<uint64_t>(kCrashBatches));
  for (int c = 0; c < 10; ++c) {
    const StoredSession* stored = FindSession(*snapshot, "c" + std::to_string(c));
    ASSERT_NE(stored, nullptr);
    EXPECT_EQ(stored->entries.size(), static_cast<size_t>(kCrashBatches / 10));
    EXPECT_EQ(stored->session.disconnected_at_ms(), static_cast<uint64_t>(kCrashBatches - 10 + c));
  }
}

// ---- Group commit ----

// Blocks the writer thread inside the `done` of a first batch until Release(), so that the
// batches committed meanwhile are all queued when it resumes: grouping without timing luck.
class WriterGate {
 public:
  absl::AnyInvocable<void(absl::Status)> Done() {
    return [this](absl::Status s) {
      EXPECT_OK(s);
      std::unique_lock lock(mu_);
      entered_ = true;
      cv_.notify_all();
      cv_.wait(lock, [this] { return released_; });
    };
  }
  void WaitEntered() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return entered_; });
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool released_ = false;
};

TEST_F(RocksStorageTest, GroupCommitWritesConcurrentCommittersTogetherInCommitOrder) {
  std::unique_ptr<Storage> s = Open(Options(256, Durability::kFsync));
  ASSERT_NE(s, nullptr);
  WriterGate gate;
  s->Commit(Batch{}, gate.Done());
  gate.WaitEntered();
  const rocks::WriteStats before = rocks::GetWriteStatsForTesting(*s);

  constexpr int kThreads = 8;
  constexpr int kPerThread = 100;
  // Commit order is the order of `seq`: a test mutex makes "take a number, Commit" atomic.
  std::mutex order_mu;
  int next_seq = 0;
  std::mutex done_mu;
  std::vector<int> done_order;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::lock_guard lock(order_mu);
        const int seq = next_seq++;
        Batch b;
        b.PutSession(MakeSession("shared", seq));  // the last committed must win
        b.PutSession(MakeSession("t" + std::to_string(t), i));
        s->Commit(std::move(b), [&, seq](absl::Status st) {
          EXPECT_OK(st);
          std::lock_guard dl(done_mu);
          done_order.push_back(seq);
        });
      }
    });
  }
  for (std::thread& th : threads) th.join();
  // The final (empty) batch is queued before the writer is released, so all 801 are waiting
  // when it looks: a CommitSync after Release could come after the writer took the 800.
  std::promise<absl::Status> last;
  s->Commit(Batch{}, [&last](absl::Status st) { last.set_value(std::move(st)); });
  gate.Release();
  ASSERT_OK(last.get_future().get());

  const rocks::WriteStats after = rocks::GetWriteStatsForTesting(*s);
  // 800 queued batches plus the final (empty) CommitSync's: one WAL write and one fsync.
  EXPECT_EQ(after.writes - before.writes, 1u);
  EXPECT_EQ(after.batches - before.batches, static_cast<uint64_t>(kThreads * kPerThread + 1));
  {
    std::lock_guard dl(done_mu);
    ASSERT_EQ(done_order.size(), static_cast<size_t>(kThreads * kPerThread));
    for (int i = 0; i < kThreads * kPerThread; ++i) EXPECT_EQ(done_order[i], i);
  }
  auto snapshot = s->Load();
  ASSERT_OK(snapshot);
  EXPECT_EQ(FindSession(*snapshot, "shared")->session.disconnected_at_ms(),
            static_cast<uint64_t>(kThreads * kPerThread - 1));
}

TEST_F(RocksStorageTest, GroupCommitIsBoundedInBatches) {
  std::unique_ptr<Storage> s = Open(Options());
  ASSERT_NE(s, nullptr);
  WriterGate gate;
  s->Commit(Batch{}, gate.Done());
  gate.WaitEntered();
  const rocks::WriteStats before = rocks::GetWriteStatsForTesting(*s);
  const int n = static_cast<int>(2 * rocks::kMaxGroupBatches + 10);
  std::atomic<int> done{0};
  for (int i = 0; i < n; ++i) {
    Batch b;
    b.PutIncomingQos2("c", static_cast<uint16_t>(i));
    s->Commit(std::move(b), [&](absl::Status st) {
      EXPECT_OK(st);
      done.fetch_add(1);
    });
  }
  // The last batch is queued before the writer resumes (a CommitSync after Release could come
  // after the writer took the third group, making a fourth write).
  std::promise<void> last;
  s->Commit(Batch{}, [&](absl::Status st) {
    EXPECT_OK(st);
    last.set_value();
  });
  gate.Release();
  last.get_future().wait();
  EXPECT_EQ(done.load(), n);
  // 2058 + 1 batches in groups of at most 1024: 3 writes.
  EXPECT_EQ(rocks::GetWriteStatsForTesting(*s).writes - before.writes, 3u);
}

TEST_F(RocksStorageTest, GroupCommitIsBoundedInBytes) {
  std::unique_ptr<Storage> s = Open(Options());
  ASSERT_NE(s, nullptr);
  WriterGate gate;
  s->Commit(Batch{}, gate.Done());
  gate.WaitEntered();
  const rocks::WriteStats before = rocks::GetWriteStatsForTesting(*s);
  const std::string payload(rocks::kMaxGroupBytes / 4, 'x');  // 4 batches fill a group
  for (int i = 0; i < 10; ++i) {
    Batch b;
    b.PutMessage(i + 1, MakeMessage("t", payload));
    s->Commit(std::move(b), [](absl::Status st) { EXPECT_OK(st); });
  }
  std::promise<void> last;  // queued before the writer resumes, as above
  s->Commit(Batch{}, [&](absl::Status st) {
    EXPECT_OK(st);
    last.set_value();
  });
  gate.Release();
  last.get_future().wait();
  // 4 + 4 + 2 (+ the empty last batch with the last two).
  EXPECT_EQ(rocks::GetWriteStatsForTesting(*s).writes - before.writes, 3u);
}

TEST_F(RocksStorageTest, CommitSyncFromADoneCallbackFailsInsteadOfDeadlocking) {
  std::unique_ptr<Storage> s = Open(Options());
  ASSERT_NE(s, nullptr);
  absl::Status inner = absl::OkStatus();
  Batch b;
  b.PutSession(MakeSession("c"));
  s->Commit(std::move(b), [&](absl::Status st) {
    EXPECT_OK(st);
    inner = s->CommitSync(Batch{});
  });
  ASSERT_OK(s->CommitSync(Batch{}));
  EXPECT_TRUE(absl::IsFailedPrecondition(inner)) << inner;
}

TEST_F(RocksStorageTest, CommitFromADoneCallbackIsQueued) {
  std::unique_ptr<Storage> s = Open(Options());
  ASSERT_NE(s, nullptr);
  std::atomic<bool> second{false};
  Batch b;
  b.PutSession(MakeSession("first"));
  s->Commit(std::move(b), [&](absl::Status st) {
    EXPECT_OK(st);
    Batch next;
    next.PutSession(MakeSession("second"));
    s->Commit(std::move(next), [&](absl::Status st2) {
      EXPECT_OK(st2);
      second = true;
    });
  });
  ASSERT_TRUE(shardmq::test::WaitFor([&] { return second.load(); }, std::chrono::seconds(10)));
  auto snapshot = s->Load();
  ASSERT_OK(snapshot);
  EXPECT_THAT(ClientIds(*snapshot), ElementsAre("first", "second"));
}

// ---- The key layout on disk ----

std::vector<std::string> Keys(Storage& s, rocks::Family family) {
  auto keys = rocks::ListKeysForTesting(s, rocks::InfoOf(family).name);
  EXPECT_OK(keys);
  return keys.ok() ? *keys : std::vector<std::string>{};
}

TEST_F(RocksStorageTest, KeysOnDiskFollowKeysH) {
  constexpr uint32_t kP = 256;
  std::unique_ptr<Storage> s = Open(Options(kP));
  ASSERT_NE(s, nullptr);
  Batch b;
  b.PutSession(MakeSession("dev-1"));
  b.PutSubscription("dev-1", MakeSub("fleet/+/temp"));
  b.PutWill("dev-1", MakeWill("dev-1"));
  b.PutMessage(42, MakeMessage("fleet/7/temp", "x"), RecipientsOf({"dev-1", "dev-2"}));
  b.PutMessage(43, MakeMessage("fleet/7/temp", "y"), RecipientsOf({"dev-1"}));
  b.PutInflight("dev-1", 43, MakeEntry(43, 1, records::QueueEntry::SENT, 1));
  b.PutIncomingQos2("dev-1", 7);
  b.PutRetained(MakeMessage("fleet/7/temp", "21.5"));
  ASSERT_OK(s->CommitSync(std::move(b)));

  const uint32_t pc = PartitionOf("dev-1", kP);
  const uint32_t pt = PartitionOf("fleet/7/temp", kP);
  using rocks::Family;
  EXPECT_THAT(Keys(*s, Family::kSessions), ElementsAre(keys::ClientKey(pc, "dev-1")));
  EXPECT_THAT(Keys(*s, Family::kWills), ElementsAre(keys::ClientKey(pc, "dev-1")));
  EXPECT_THAT(Keys(*s, Family::kSubscriptions),
              ElementsAre(keys::SubscriptionKey(pc, "dev-1", "fleet/+/temp")));
  EXPECT_THAT(Keys(*s, Family::kInflight), ElementsAre(keys::EntryKey(pc, "dev-1", 43)));
  EXPECT_THAT(Keys(*s, Family::kIncomingQos2), ElementsAre(keys::IncomingQos2Key(pc, "dev-1", 7)));
  EXPECT_THAT(Keys(*s, Family::kMessages),
              ElementsAre(keys::MessageKey(pt, 42), keys::MessageKey(pt, 43)));
  // One recipients record per message (not one record per delivery), under the body's key.
  EXPECT_THAT(Keys(*s, Family::kRecipients),
              ElementsAre(keys::MessageKey(pt, 42), keys::MessageKey(pt, 43)));
  EXPECT_THAT(Keys(*s, Family::kDone), IsEmpty());
  EXPECT_THAT(Keys(*s, Family::kRetained), ElementsAre(keys::RetainedKey(pt, "fleet/7/temp")));
  EXPECT_THAT(Keys(*s, Family::kMeta), ElementsAre("format"));

  // DeleteEntry writes the done mark (topic-keyed) and deletes the in-flight record.
  Batch finish;
  finish.DeleteEntry("dev-2", "fleet/7/temp", 42);
  finish.DeleteEntry("dev-1", "fleet/7/temp", 43);
  ASSERT_OK(s->CommitSync(std::move(finish)));
  EXPECT_THAT(Keys(*s, Family::kDone),
              ElementsAre(keys::DoneKey(pt, 42, "dev-2"), keys::DoneKey(pt, 43, "dev-1")));
  EXPECT_THAT(Keys(*s, Family::kInflight), IsEmpty());
  EXPECT_EQ(Keys(*s, Family::kRecipients).size(), 2u);  // recipient lists are written once

  // DeleteSession leaves no key of the client in any per-client family; done marks and
  // recipient lists are keyed by message and stay.
  Batch del;
  del.DeleteSession("dev-1");
  ASSERT_OK(s->CommitSync(std::move(del)));
  for (Family f : {Family::kSessions, Family::kWills, Family::kSubscriptions, Family::kInflight,
                   Family::kIncomingQos2}) {
    EXPECT_THAT(Keys(*s, f), IsEmpty()) << rocks::InfoOf(f).name;
  }
  EXPECT_EQ(Keys(*s, Family::kDone).size(), 2u);
  // The bodies stay until DeleteMessage or Load's collection ("dev-1" of 42 is an orphan now).
  EXPECT_EQ(Keys(*s, Family::kMessages).size(), 2u);
  EXPECT_EQ(Keys(*s, Family::kRecipients).size(), 2u);
  ASSERT_OK(s->Load());
  for (Family f : {Family::kMessages, Family::kRecipients, Family::kDone}) {
    EXPECT_THAT(Keys(*s, f), IsEmpty()) << rocks::InfoOf(f).name;
  }
  EXPECT_EQ(Keys(*s, Family::kRetained).size(), 1u);
}

// The families of a message from PutMessage to collection: three recipients, finished one by
// one; Load's collection leaves nothing of it on disk.
TEST_F(RocksStorageTest, FinishedMessagesLeaveNoKeys) {
  std::unique_ptr<Storage> s = Open(Options(1));  // everything in partition 0
  ASSERT_NE(s, nullptr);
  using rocks::Family;
  Batch b;
  for (const char* cid : {"a", "b", "c"}) b.PutSession(MakeSession(cid));
  Recipients recipients;
  recipients.Add("a", 0, false);
  recipients.Add("b", 1, true, {5});
  recipients.Add("c", 2, false, {1, 200, 70000});
  b.PutMessage(10, MakeMessage("t", "x"), recipients);
  ASSERT_OK(s->CommitSync(std::move(b)));
  Batch progress;
  progress.DeleteEntry("a", "t", 10);
  progress.PutInflight("b", 10, MakeEntry(10, 1, records::QueueEntry::SENT, 17));
  ASSERT_OK(s->CommitSync(std::move(progress)));
  ASSERT_OK(s->Load());  // nothing to collect yet
  EXPECT_THAT(Keys(*s, Family::kMessages), ElementsAre(keys::MessageKey(0, 10)));
  EXPECT_THAT(Keys(*s, Family::kRecipients), ElementsAre(keys::MessageKey(0, 10)));
  EXPECT_THAT(Keys(*s, Family::kDone), ElementsAre(keys::DoneKey(0, 10, "a")));
  EXPECT_THAT(Keys(*s, Family::kInflight), ElementsAre(keys::EntryKey(0, "b", 10)));

  Batch rest;
  rest.DeleteEntry("b", "t", 10);
  rest.DeleteEntry("c", "t", 10);
  ASSERT_OK(s->CommitSync(std::move(rest)));
  EXPECT_THAT(Keys(*s, Family::kDone), ElementsAre(keys::DoneKey(0, 10, "a"),
                                                   keys::DoneKey(0, 10, "b"),
                                                   keys::DoneKey(0, 10, "c")));
  EXPECT_THAT(Keys(*s, Family::kInflight), IsEmpty());
  auto snapshot = s->Load();
  ASSERT_OK(snapshot);
  EXPECT_THAT(snapshot->messages, IsEmpty());
  for (Family f : {Family::kMessages, Family::kRecipients, Family::kDone, Family::kInflight}) {
    EXPECT_THAT(Keys(*s, f), IsEmpty()) << rocks::InfoOf(f).name;
  }
  EXPECT_EQ(Keys(*s, Family::kSessions).size(), 3u);
}

// DeleteMessage is one range over the message's done marks: exactly those of (p, id), also for
// the largest id, none of the neighbouring ids.
TEST_F(RocksStorageTest, DeleteMessageRemovesItsDoneMarksOnly) {
  constexpr uint64_t kMax = ~uint64_t{0};
  std::unique_ptr<Storage> s = Open(Options(1));  // every topic in partition 0
  ASSERT_NE(s, nullptr);
  using rocks::Family;
  Batch b;
  for (const char* cid : {"a", "b", "c"}) b.PutSession(MakeSession(cid));
  for (uint64_t id : {uint64_t{4}, uint64_t{5}, uint64_t{6}, kMax - 1, kMax}) {
    b.PutMessage(id, MakeMessage("t", "x"), RecipientsOf({"a", "b", "c"}));
    b.DeleteEntry("a", "t", id);
    b.DeleteEntry("b", "t", id);
  }
  ASSERT_OK(s->CommitSync(std::move(b)));
  EXPECT_EQ(Keys(*s, Family::kDone).size(), 10u);

  Batch del;
  del.DeleteMessage("t", 5);
  del.DeleteMessage("t", kMax);
  ASSERT_OK(s->CommitSync(std::move(del)));
  EXPECT_THAT(Keys(*s, Family::kDone),
              ElementsAre(keys::DoneKey(0, 4, "a"), keys::DoneKey(0, 4, "b"),
                          keys::DoneKey(0, 6, "a"), keys::DoneKey(0, 6, "b"),
                          keys::DoneKey(0, kMax - 1, "a"), keys::DoneKey(0, kMax - 1, "b")));
  const std::vector<std::string> left = {keys::MessageKey(0, 4), keys::MessageKey(0, 6),
                                         keys::MessageKey(0, kMax - 1)};
  EXPECT_EQ(Keys(*s, Family::kMessages), left);
  EXPECT_EQ(Keys(*s, Family::kRecipients), left);

  auto snapshot = s->Load();
  ASSERT_OK(snapshot);
  EXPECT_THAT(EntryIds(*FindSession(*snapshot, "c")), ElementsAre(4, 6, kMax - 1));
  EXPECT_THAT(FindSession(*snapshot, "a")->entries, IsEmpty());
  EXPECT_EQ(snapshot->max_message_id, kMax - 1);  // kMax was deleted whole
}

// max_message_id counts a key of any message-keyed family, even one whose body is missing
// (ids must never be reused, or a stale done mark or recipient list would apply to a new
// message).
TEST_F(RocksStorageTest, MaxMessageIdCountsRecipientsAndDoneKeysWithoutBody) {
  {
    std::unique_ptr<Storage> s = Open(Options(1));
    ASSERT_NE(s, nullptr);
    Batch b;
    b.PutSession(MakeSession("c"));
    b.PutMessage(7, MakeMessage("t", "x"), RecipientsOf({"c"}));
    ASSERT_OK(s->CommitSync(std::move(b)));
    s->Close();
  }
  // A recipient list without a body (id 500) and a done mark without a body (id 400).
  ASSERT_OK(rocks::PutRawForTesting(Options(1).data_dir, "recipients", keys::MessageKey(0, 500),
                                    RecipientsOf({"c"}).encoded()));
  ASSERT_OK(rocks::PutRawForTesting(Options(1).data_dir, "done", keys::DoneKey(0, 400, "c"), ""));
  std::unique_ptr<Storage> s = Open(Options(1));
  ASSERT_NE(s, nullptr);
  auto snapshot = s->Load();
  ASSERT_OK(snapshot);
  EXPECT_EQ(snapshot->max_message_id, 500u);
  // Nothing to deliver without a body.
  EXPECT_THAT(FindSession(*snapshot, "c")->entries,
              ElementsAre(::testing::Pair(7u, fixtures::EqualsProto(MakeQueued(7)))));
  EXPECT_THAT(snapshot->messages, ElementsAre(::testing::Pair(7u, ::testing::_)));
  // Both were collected.
  EXPECT_THAT(Keys(*s, rocks::Family::kRecipients), ElementsAre(keys::MessageKey(0, 7)));
  EXPECT_THAT(Keys(*s, rocks::Family::kDone), IsEmpty());
  snapshot = s->Load();
  ASSERT_OK(snapshot);
  EXPECT_EQ(snapshot->max_message_id, 7u);
}

TEST_F(RocksStorageTest, LoadDeletesOrphanRecordsFromDisk) {
  std::unique_ptr<Storage> s = Open(Options(1));
  ASSERT_NE(s, nullptr);
  Batch b;
  b.PutSubscription("ghost", MakeSub("x"));
  b.PutWill("ghost", MakeWill("ghost"));
  b.PutMessage(1, MakeMessage("t", "x"), RecipientsOf({"ghost"}));
  b.PutInflight("ghost", 2, MakeEntry(2, 1, records::QueueEntry::SENT, 1));
  b.PutIncomingQos2("ghost", 3);
  b.PutSession(MakeSession("ghostly"));  // shares the prefix and the partition; kept
  b.PutSubscription("ghostly", MakeSub("y"));
  ASSERT_OK(s->CommitSync(std::move(b)));
  ASSERT_OK(s->Load());
  using rocks::Family;
  // The orphan recipient's done mark went with its (collected) message.
  for (Family f : {Family::kWills, Family::kInflight, Family::kIncomingQos2, Family::kMessages,
                   Family::kRecipients, Family::kDone}) {
    EXPECT_THAT(Keys(*s, f), IsEmpty()) << rocks::InfoOf(f).name;
  }
  EXPECT_THAT(Keys(*s, Family::kSubscriptions),
              ElementsAre(keys::SubscriptionKey(0, "ghostly", "y")));
  EXPECT_THAT(Keys(*s, Family::kSessions), ElementsAre(keys::ClientKey(0, "ghostly")));
}

// An orphan recipient of a message that another session still needs: Load writes its done mark
// (so a session created later under that id does not get the message).
TEST_F(RocksStorageTest, LoadWritesTheDoneMarkOfAnOrphanRecipient) {
  std::unique_ptr<Storage> s = Open(Options(1));
  ASSERT_NE(s, nullptr);
  Batch b;
  b.PutSession(MakeSession("alive"));
  b.PutMessage(3, MakeMessage("t", "x"), RecipientsOf({"alive", "ghost"}));
  ASSERT_OK(s->CommitSync(std::move(b)));
  EXPECT_THAT(Keys(*s, rocks::Family::kDone), IsEmpty());
  ASSERT_OK(s->Load());
  EXPECT_THAT(Keys(*s, rocks::Family::kDone), ElementsAre(keys::DoneKey(0, 3, "ghost")));
  EXPECT_THAT(Keys(*s, rocks::Family::kMessages), ElementsAre(keys::MessageKey(0, 3)));
  ASSERT_OK(s->Load());  // and the next Load keeps it as it is
  EXPECT_THAT(Keys(*s, rocks::Family::kDone), ElementsAre(keys::DoneKey(0, 3, "ghost")));
}

// ---- Opening and refusing ----

// Every file under `dir`, with its size and content hash: "unchanged" means equal listings.
std::map<std::string, std::string> Fingerprint(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(entry.path(), dir).string();
    if (entry.is_directory()) {
      out[rel] = "dir";
      continue;
    }
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string content((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
    out[rel] = std::to_string(content.size()) + ":" + std::to_string(Hash64(content));
  }
  return out;
}

// Files of the database whose name starts with `prefix` or ends with `suffix`.
std::vector<fs::path> FilesMatching(const fs::path& dir, const std::string& prefix,
                                    const std::string& suffix) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if ((!prefix.empty() && name.rfind(prefix, 0) == 0) ||
        (!suffix.empty() && name.size() >= suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)) {
      out.push_back(entry.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Opening must fail with `code`, mention `needle`, and change no file.
void ExpectRefused(const StorageOptions& options, absl::StatusCode code,
                   const std::string& needle) {
  const auto before = Fingerprint(options.data_dir);
  auto opened = OpenRocksStorage(options);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), code) << opened.status();
  EXPECT_THAT(std::string(opened.status().message()), HasSubstr(needle));
  EXPECT_EQ(Fingerprint(options.data_dir), before);
  // A second attempt fails the same way (nothing was half-repaired).
  auto again = OpenRocksStorage(options);
  EXPECT_EQ(again.status().code(), code) << again.status();
  EXPECT_EQ(Fingerprint(options.data_dir), before);
}

TEST_F(RocksStorageTest, CreatesMissingDirectories) {
  StorageOptions options = Options();
  options.data_dir = dir_.Join("a/b/c");
  std::unique_ptr<Storage> s = Open(options);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(fs::exists(dir_.path() / "a/b/c/CURRENT"));
}

TEST_F(RocksStorageTest, CreatesInAnEmptyDirectoryOrOneWithOnlyLostAndFound) {
  fs::create_directories(dir_.path() / "data" / "lost+found");
  std::unique_ptr<Storage> s = Open(Options());
  ASSERT_NE(s, nullptr);
  s->Close();
  s = Open(Options());  // and opens it again
  ASSERT_NE(s, nullptr);
}

TEST_F(RocksStorageTest, RefusesInvalidOptions) {
  StorageOptions options = Options();
  options.partitions = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(OpenRocksStorage(options).status()));
  options = Options();
  options.data_dir.clear();
  EXPECT_TRUE(absl::IsInvalidArgument(OpenRocksStorage(options).status()));
}

TEST_F(RocksStorageTest, RefusesAFileAsDataDir) {
  std::ofstream(dir_.Join("data")) << "not a directory";
  EXPECT_TRUE(absl::IsFailedPrecondition(OpenRocksStorage(Options()).status()));
}

TEST_F(RocksStorageTest, RefusesADirectoryWithFilesButNoDatabase) {
  fs::create_directories(dir_.path() / "data");
  std::ofstream(dir_.Join("data/notes.txt")) << "something else lives here";
  ExpectRefused(Options(), absl::StatusCode::kFailedPrecondition,
                "is not a shardmq data directory");
  EXPECT_THAT(std::string(OpenRocksStorage(Options()).status().message()), HasSubstr("notes.txt"));
}

TEST_F(RocksStorageTest, RefusesAnotherFormatVersion) {
  CreateDatabase();
  records::Format format;
  format.set_version(3);
  format.set_partitions(256);
  ASSERT_OK(
      rocks::PutRawForTesting(Options().data_dir, "meta", "format", format.SerializeAsString()));
  ExpectRefused(Options(), absl::StatusCode::kFailedPrecondition, "format version 3");
  EXPECT_THAT(std::string(OpenRocksStorage(Options()).status().message()),
              HasSubstr("reads format version 2"));
}

// A version-1 directory (one `queue` record per delivery; no `recipients` or `done` family) is
// refused as such, not as a damaged version-2 one: there is no converter, the message must say
// which versions are involved. The test hooks cannot create v1's `queue` family, so the
// directory is a version-2 one with its format record set to 1, first with all families, then
// without the two families version 1 did not have.
TEST_F(RocksStorageTest, RefusesAVersion1Directory) {
  static_assert(rocks::kFormatVersion == 2);
  CreateDatabase();
  records::Format format;
  format.set_version(1);
  format.set_partitions(256);
  ASSERT_OK(
      rocks::PutRawForTesting(Options().data_dir, "meta", "format", format.SerializeAsString()));
  ExpectRefused(Options(), absl::StatusCode::kFailedPrecondition, "format version 1");
  EXPECT_THAT(std::string(OpenRocksStorage(Options()).status().message()),
              HasSubstr("reads format version 2"));

  ASSERT_OK(rocks::DropColumnFamilyForTesting(Options().data_dir, "recipients"));
  ASSERT_OK(rocks::DropColumnFamilyForTesting(Options().data_dir, "done"));
  ExpectRefused(Options(), absl::StatusCode::kFailedPrecondition, "format version 1");
  const std::string message(OpenRocksStorage(Options()).status().message());
  EXPECT_THAT(message, HasSubstr("format version 1"));
  EXPECT_THAT(message, HasSubstr("reads format version 2"));
}

TEST_F(RocksStorageTest, RefusesAnotherPartitionCount) {
  CreateDatabase(/*partitions=*/64);
  ExpectRefused(Options(256), absl::StatusCode::kFailedPrecondition, "created with 64 partitions");
  EXPECT_THAT(std::string(OpenRocksStorage(Options(256)).status().message()), HasSubstr("256"));
  // The right count still opens it.
  std::unique_ptr<Storage> s = Open(Options(64));
  ASSERT_NE(s, nullptr);
  auto snapshot = s->Load();
  ASSERT_OK(snapshot);
  EXPECT_THAT(ClientIds(*snapshot), ElementsAre("c"));
}

TEST_F(RocksStorageTest, RefusesADatabaseWithoutFormatRecord) {
  CreateDatabase();
  ASSERT_OK(rocks::DeleteRawForTesting(Options().data_dir, "meta", "format"));
  ExpectRefused(Options(), absl::StatusCode::kDataLoss, "no format record");
}

TEST_F(RocksStorageTest, RefusesAnUnparsableFormatRecord) {
  CreateDatabase();
  ASSERT_OK(rocks::PutRawForTesting(Options().data_dir, "meta", "format", "\xff\xff\xff"));
  ExpectRefused(Options(), absl::StatusCode::kDataLoss, "unparsable format record");
}

TEST_F(RocksStorageTest, RefusesAMissingColumnFamily) {
  CreateDatabase();
  ASSERT_OK(rocks::DropColumnFamilyForTesting(Options().data_dir, "done"));
  ExpectRefused(Options(), absl::StatusCode::kDataLoss, "column family 'done' is missing");
}

TEST_F(RocksStorageTest, RefusesARocksDbThatIsNotOurs) {
  CreateDatabase();
  ASSERT_OK(rocks::DropColumnFamilyForTesting(Options().data_dir, "meta"));
  ExpectRefused(Options(), absl::StatusCode::kFailedPrecondition,
                "is not a shardmq data directory");
}

TEST_F(RocksStorageTest, RefusesAGarbledCurrentFile) {
  CreateDatabase();
  std::ofstream(dir_.Join("data/CURRENT"), std::ios::trunc) << "garbage";
  ExpectRefused(Options(), absl::StatusCode::kDataLoss, "");
}

TEST_F(RocksStorageTest, RefusesACurrentFileNamingAMissingManifest) {
  CreateDatabase();
  std::ofstream(dir_.Join("data/CURRENT"), std::ios::trunc) << "MANIFEST-999999\n";
  ExpectRefused(Options(), absl::StatusCode::kDataLoss, "MANIFEST-999999");
}

TEST_F(RocksStorageTest, RefusesATruncatedManifest) {
  CreateDatabase();
  const auto manifests = FilesMatching(dir_.path() / "data", "MANIFEST-", "");
  ASSERT_FALSE(manifests.empty());
  for (const fs::path& m : manifests) fs::resize_file(m, fs::file_size(m) / 2);
  ExpectRefused(Options(), absl::StatusCode::kDataLoss, "");
}

TEST_F(RocksStorageTest, RefusesATruncatedTableFile) {
  CreateDatabase();
  const auto tables = FilesMatching(dir_.path() / "data", "", ".sst");
  ASSERT_FALSE(tables.empty());
  fs::resize_file(tables.front(), fs::file_size(tables.front()) - 10);
  ExpectRefused(Options(), absl::StatusCode::kDataLoss, "");
}

TEST_F(RocksStorageTest, RefusesAMissingTableFile) {
  CreateDatabase();
  const auto tables = FilesMatching(dir_.path() / "data", "", ".sst");
  ASSERT_FALSE(tables.empty());
  fs::rename(tables.front(), dir_.path() / "moved-away.sst");
  ExpectRefused(Options(), absl::StatusCode::kDataLoss, "");
}

// Flips bytes near the start of every table file: data blocks, found by block checksums.
void GarbleTables(const fs::path& dir) {
  for (const fs::path& table : FilesMatching(dir, "", ".sst")) {
    std::fstream f(table, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);
    f.write("\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a", 8);
  }
}

TEST_F(RocksStorageTest, RefusesGarbledTableData) {
  CreateDatabase();  // small tables: opening reads (and checks) them whole
  GarbleTables(dir_.path() / "data");
  ExpectRefused(Options(), absl::StatusCode::kDataLoss, "");
}

TEST_F(RocksStorageTest, GarbledDataFoundOnlyByLoadIsDataLoss) {
  {
    std::unique_ptr<Storage> s = Open(Options());
    ASSERT_NE(s, nullptr);
    Batch b;
    b.PutSession(MakeSession("c"));
    // Incompressible bodies, so the first data block is far from the table's tail.
    std::string payload(4096, '\0');
    uint64_t x = 88172645463325252ull;
    for (uint64_t id = 1; id <= 1000; ++id) {
      for (char& c : payload) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c = static_cast<char>(x);
      }
      b.PutMessage(id, MakeMessage("t", payload), RecipientsOf({"c"}));
    }
    ASSERT_OK(s->CommitSync(std::move(b)));
    ASSERT_OK(rocks::FlushForTesting(*s));
    s->Close();
  }
  // Garble the largest table (the message bodies): the format record and the table's index
  // stay readable, so opening succeeds and the first full read finds the damage.
  std::vector<fs::path> tables = FilesMatching(dir_.path() / "data", "", ".sst");
  ASSERT_FALSE(tables.empty());
  std::sort(tables.begin(), tables.end(), [](const fs::path& a, const fs::path& b) {
    return fs::file_size(a) > fs::file_size(b);
  });
  ASSERT_GT(fs::file_size(tables.front()), 1u << 20);
  {
    std::fstream f(tables.front(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);
    f.write("\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a", 8);
  }
  std::unique_ptr<Storage> s = Open(Options());
  ASSERT_NE(s, nullptr);
  auto snapshot = s->Load();
  EXPECT_TRUE(absl::IsDataLoss(snapshot.status())) << snapshot.status();
  EXPECT_THAT(std::string(snapshot.status().message()), HasSubstr("checksum mismatch"));
}

TEST_F(RocksStorageTest, RefusesADirectoryInUse) {
  std::unique_ptr<Storage> first = Open(Options());
  ASSERT_NE(first, nullptr);
  auto second = OpenRocksStorage(Options());
  EXPECT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsUnavailable(second.status())) << second.status();
  // The first is unharmed.
  Batch b;
  b.PutSession(MakeSession("still-here"));
  ASSERT_OK(first->CommitSync(std::move(b)));
  auto snapshot = first->Load();
  ASSERT_OK(snapshot);
  EXPECT_THAT(ClientIds(*snapshot), ElementsAre("still-here"));
}

}  // namespace
}  // namespace shardmq::storage
