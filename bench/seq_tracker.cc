#include "bench/seq_tracker.h"

namespace shardmq::bench {

SeqTracker::Result SeqTracker::Observe(uint32_t seq32) {
  const uint64_t seq = seq32;
  if (!any_) {
    any_ = true;
    first_ = seq;
    next_ = seq + 1;
    Set(seq);
    ++distinct_;
    return Result::kNew;
  }
  if (seq >= next_) {
    // Slide the window up to seq: the slots entering it belong to sequence numbers not yet seen.
    if (seq - next_ >= kWindow) {
      bits_.fill(0);
    } else {
      for (uint64_t s = next_; s < seq; ++s) Clear(s);
    }
    Clear(seq);
    Set(seq);
    next_ = seq + 1;
    ++distinct_;
    return Result::kNew;
  }
  if (next_ - seq > kWindow) {
    ++stale_;
    ++duplicates_;
    return Result::kDuplicate;
  }
  if (Test(seq)) {
    ++duplicates_;
    return Result::kDuplicate;
  }
  Set(seq);
  if (seq < first_) first_ = seq;
  ++distinct_;
  ++reordered_;
  return Result::kReordered;
}

uint64_t SeqTracker::gaps() const {
  if (!any_) return 0;
  const uint64_t span = next_ - first_;
  return span > distinct_ ? span - distinct_ : 0;
}

}  // namespace shardmq::bench
