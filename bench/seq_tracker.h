// Per (subscriber, publisher) sequence bookkeeping: which of one publisher's sequence numbers a
// subscriber has seen, so that it can count distinct messages, duplicates, reordering and gaps.
//
// Bounded memory: a window of the kWindow sequence numbers below the highest one seen is kept as
// a bitmap. A message older than the window cannot be told apart from a duplicate and is counted
// as one (and as "stale"). MQTT keeps a publisher's messages in order per subscription (MQTT 5
// s4.6), so in a healthy run nothing ever arrives below the window.
//
// Not thread-safe; owned by one subscriber client.
#pragma once

#include <array>
#include <cstdint>

namespace shardmq::bench {

class SeqTracker {
 public:
  static constexpr uint32_t kWindow = 1024;

  enum class Result {
    kNew,        // first time seen, in order (above everything seen so far)
    kReordered,  // first time seen, but below the highest sequence seen
    kDuplicate,  // seen before (or older than the window)
  };

  Result Observe(uint32_t seq);

  // Distinct sequence numbers seen.
  uint64_t distinct() const { return distinct_; }
  uint64_t duplicates() const { return duplicates_; }
  uint64_t reordered() const { return reordered_; }
  // Messages older than the window (counted in duplicates() too).
  uint64_t stale() const { return stale_; }
  // Sequence numbers in [first seen, highest seen] that have not arrived: the loss a subscriber
  // can see without knowing what was sent. 0 before the first message.
  uint64_t gaps() const;
  // One past the highest sequence seen (0 before the first message).
  uint64_t end() const { return any_ ? uint64_t{next_} : 0; }

 private:
  bool Test(uint64_t seq) const { return (bits_[(seq / 64) % kWords] >> (seq % 64)) & 1; }
  void Set(uint64_t seq) { bits_[(seq / 64) % kWords] |= uint64_t{1} << (seq % 64); }
  void Clear(uint64_t seq) { bits_[(seq / 64) % kWords] &= ~(uint64_t{1} << (seq % 64)); }

  static constexpr uint32_t kWords = kWindow / 64;
  bool any_ = false;
  uint64_t first_ = 0;  // lowest sequence counted as seen
  uint64_t next_ = 0;   // highest sequence seen + 1
  uint64_t distinct_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t reordered_ = 0;
  uint64_t stale_ = 0;
  std::array<uint64_t, kWords>
      bits_{};  // bit (s % kWindow) = seen, for s in [next_ - kWindow, next_)
};

}  // namespace shardmq::bench
