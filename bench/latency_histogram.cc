#include "bench/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace shardmq::bench {

namespace {

constexpr uint64_t kSubBuckets = uint64_t{1} << LatencyHistogram::kSubBucketBits;

}  // namespace

LatencyHistogram::LatencyHistogram() : counts_(BucketIndex(kMaxValue) + 1, 0) {}

size_t LatencyHistogram::BucketIndex(uint64_t value) {
  if (value < kSubBuckets) return static_cast<size_t>(value);
  // value is in [2^msb, 2^(msb+1)); shifted right by (msb - kSubBucketBits) it falls in
  // [kSubBuckets, 2 * kSubBuckets), whose offset picks one of the 128 buckets of that group.
  const int msb = 63 - std::countl_zero(value);
  const int shift = msb - kSubBucketBits;
  const uint64_t group = static_cast<uint64_t>(shift) + 1;
  return static_cast<size_t>(group * kSubBuckets + ((value >> shift) - kSubBuckets));
}

uint64_t LatencyHistogram::BucketLow(size_t index) {
  const uint64_t group = index / kSubBuckets;
  const uint64_t sub = index % kSubBuckets;
  if (group == 0) return sub;
  return (kSubBuckets + sub) << (group - 1);
}

uint64_t LatencyHistogram::BucketWidth(size_t index) {
  const uint64_t group = index / kSubBuckets;
  return group == 0 ? 1 : uint64_t{1} << (group - 1);
}

void LatencyHistogram::Record(uint64_t value) {
  value = std::min(value, kMaxValue);
  ++counts_[BucketIndex(value)];
  if (count_ == 0 || value < min_) min_ = value;
  if (value > max_) max_ = value;
  ++count_;
  sum_ += static_cast<long double>(value);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  if (count_ == 0 || other.min_ < min_) min_ = other.min_;
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  sum_ += other.sum_;
}

double LatencyHistogram::mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_ / static_cast<long double>(count_));
}

uint64_t LatencyHistogram::ValueAtQuantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const uint64_t mid = BucketLow(i) + (BucketWidth(i) - 1) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

}  // namespace shardmq::bench
