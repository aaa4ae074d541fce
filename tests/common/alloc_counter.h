// Counts heap allocations made through global operator new, so tests can assert that a hot-path
// call does not allocate. alloc_counter.cc replaces the global operators for the whole test
// binary; they only count and forward to malloc/free.
#pragma once

#include <cstddef>

namespace shardmq::test {

// Number of global operator new calls so far, from every thread.
size_t AllocationCount();

}  // namespace shardmq::test
