// broker/app/cpus.cc: cgroup CPU quota parsing and the default worker count.
#include "broker/app/cpus.h"

#include <sched.h>

#include "gtest/gtest.h"

namespace shardmq::broker::app {
namespace {

TEST(CpusTest, CgroupQuotaRoundsUp) {
  EXPECT_EQ(CpusFromCgroupMax("200000 100000\n"), 2);
  EXPECT_EQ(CpusFromCgroupMax("150000 100000"), 2);   // 1.5 CPUs: a worker needs a whole one
  EXPECT_EQ(CpusFromCgroupMax("50000 100000\n"), 1);  // 500m
  EXPECT_EQ(CpusFromCgroupMax("400000 100000"), 4);
}

TEST(CpusTest, NoQuotaOrGarbageIsNoLimit) {
  EXPECT_EQ(CpusFromCgroupMax("max 100000\n"), 0);
  EXPECT_EQ(CpusFromCgroupMax(""), 0);
  EXPECT_EQ(CpusFromCgroupMax("100000"), 0);
  EXPECT_EQ(CpusFromCgroupMax("0 100000"), 0);
  EXPECT_EQ(CpusFromCgroupMax("100000 0"), 0);
  EXPECT_EQ(CpusFromCgroupMax("-5 100000"), 0);
  EXPECT_EQ(CpusFromCgroupMax("12x 100000"), 0);
}

TEST(CpusTest, DefaultWorkersLeaveOneCpu) {
  EXPECT_EQ(DefaultWorkers(1), 1);
  EXPECT_EQ(DefaultWorkers(2), 1);
  EXPECT_EQ(DefaultWorkers(8), 7);
  EXPECT_EQ(DefaultWorkers(0), 1);
}

TEST(CpusTest, UsableCpusIsWithinTheAffinityMask) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  const int usable = UsableCpus();
  EXPECT_GE(usable, 1);
  EXPECT_LE(usable, CPU_COUNT(&set));
}

}  // namespace
}  // namespace shardmq::broker::app
