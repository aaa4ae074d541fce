// Kept in its own translation unit so that the replaced operators are never inlined next to
// their callers (GCC's -Wmismatched-new-delete would then flag the malloc/free pairing).
#include "tests/common/alloc_counter.h"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<size_t> g_allocations{0};
}  // namespace

namespace shardmq::test {
size_t AllocationCount() { return g_allocations.load(std::memory_order_relaxed); }
}  // namespace shardmq::test

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
