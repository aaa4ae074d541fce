// Latency histogram with bounded memory, in the layout of HdrHistogram: values below 128 get one
// bucket each; above that, every power of two [2^k, 2^(k+1)) is split into 128 equal buckets, so
// a reported quantile is within 1/128 (0.8%) of the true value. Values are clamped to
// kMaxValue (2^42 - 1: 73 minutes in nanoseconds). 4,608 buckets: 36 KiB, whatever the count.
//
// Not thread-safe: each worker thread records into its own histogram; they are merged after the
// worker threads have stopped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace shardmq::bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 7;
  static constexpr uint64_t kMaxValue = (uint64_t{1} << 42) - 1;

  LatencyHistogram();

  // Adds one value (clamped to kMaxValue).
  void Record(uint64_t value);
  // Adds every value recorded in `other`.
  void Merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  // Exact smallest / largest recorded value (after clamping); 0 when empty.
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  // Exact mean of the recorded values; 0 when empty.
  double mean() const;
  // The value at quantile `q` (0..1; 0.99 = p99): the middle of the bucket holding the
  // ceil(q * count)-th smallest value, clamped to [min, max]. 0 when empty.
  uint64_t ValueAtQuantile(double q) const;

  // Bucket arithmetic, public for tests.
  static size_t BucketIndex(uint64_t value);
  static uint64_t BucketLow(size_t index);    // smallest value in the bucket
  static uint64_t BucketWidth(size_t index);  // number of values in the bucket

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t min_ = 0;
  uint64_t max_ = 0;
  long double sum_ = 0;
};

}  // namespace shardmq::bench
