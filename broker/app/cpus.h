// How many CPUs this process may use, and the default number of network workers from it.
#pragma once

#include <string_view>

namespace shardmq::broker::app {

// CPU count of a cgroup v2 `cpu.max` file ("QUOTA PERIOD" in microseconds, as a Kubernetes CPU
// limit sets it; "max PERIOD" = no limit): ceil(QUOTA / PERIOD). 0 when there is no limit or the
// text does not parse.
int CpusFromCgroupMax(std::string_view cpu_max);

// CPUs this process may run on: the scheduler affinity mask, capped by the cgroup v2 CPU quota
// of its cgroup and every ancestor (std::thread::hardware_concurrency() sees neither). At least 1.
int UsableCpus();

// Network workers when the config says 0: one per usable CPU but one, which is left to the
// storage writer thread (on the path of every durable acknowledgement), RocksDB's flushes and
// compactions, and the admin thread. At least 1.
int DefaultWorkers(int usable_cpus);

}  // namespace shardmq::broker::app
