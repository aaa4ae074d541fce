#include "broker/app/cpus.h"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

namespace shardmq::broker::app {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

// The cgroup v2 path of this process ("0::/some/path" in /proc/self/cgroup), "" if none.
std::string OwnCgroup() {
  std::istringstream lines(ReadFile("/proc/self/cgroup"));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return "";
}

}  // namespace

int CpusFromCgroupMax(std::string_view cpu_max) {
  while (!cpu_max.empty() && (cpu_max.back() == '\n' || cpu_max.back() == ' ')) {
    cpu_max.remove_suffix(1);
  }
  const size_t space = cpu_max.find(' ');
  if (space == std::string_view::npos) return 0;
  uint64_t quota = 0;
  uint64_t period = 0;
  if (!ParseU64(cpu_max.substr(0, space), &quota) ||
      !ParseU64(cpu_max.substr(space + 1), &period) || quota == 0 || period == 0) {
    return 0;  // "max ..." (no limit) or not a quota
  }
  return static_cast<int>(std::min<uint64_t>((quota + period - 1) / period, 1u << 16));
}

int UsableCpus() {
  int cpus = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = CPU_COUNT(&set);
  if (cpus <= 0) cpus = 1;
  // The quota may be set on any ancestor (inside a container, "/" is the container's cgroup).
  std::string cg = OwnCgroup();
  for (;;) {
    const std::string dir = "/sys/fs/cgroup" + (cg == "/" ? std::string() : cg);
    if (const int limit = CpusFromCgroupMax(ReadFile(dir + "/cpu.max")); limit > 0) {
      cpus = std::min(cpus, limit);
    }
    if (cg.empty() || cg == "/") break;
    const size_t slash = cg.rfind('/');
    cg = slash == 0 || slash == std::string::npos ? "/" : cg.substr(0, slash);
  }
  return std::max(cpus, 1);
}

int DefaultWorkers(int usable_cpus) { return std::max(1, usable_cpus - 1); }

}  // namespace shardmq::broker::app
