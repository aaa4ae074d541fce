// The stamp at the front of every bench payload: what a subscriber needs to measure end-to-end
// latency and to detect loss and duplicates without any side channel to the publisher.
//
// Layout (16 bytes, host byte order: publisher and subscriber run on the same machine, which the
// steady-clock latency needs anyway):
//   0..7   send time, steady-clock nanoseconds (CLOCK_MONOTONIC: shared by all processes)
//   8..11  publisher id (the publishing client's index)
//   12..15 sequence number, 0, 1, 2, ... per publisher
// The rest of the payload (--size minus 16) is filler.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace shardmq::bench {

inline constexpr size_t kStampSize = 16;

struct Stamp {
  int64_t send_ns = 0;
  uint32_t publisher = 0;
  uint32_t seq = 0;
};

// Steady-clock nanoseconds, the time base of Stamp::send_ns.
inline int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Writes `stamp` over the first kStampSize bytes of `out`.
inline void WriteStamp(const Stamp& stamp, char* out) {
  std::memcpy(out, &stamp.send_ns, 8);
  std::memcpy(out + 8, &stamp.publisher, 4);
  std::memcpy(out + 12, &stamp.seq, 4);
}

// Reads the stamp of `payload`. False if the payload is too short to be a bench payload.
inline bool ReadStamp(std::string_view payload, Stamp* stamp) {
  if (payload.size() < kStampSize) return false;
  std::memcpy(&stamp->send_ns, payload.data(), 8);
  std::memcpy(&stamp->publisher, payload.data() + 8, 4);
  std::memcpy(&stamp->seq, payload.data() + 12, 4);
  return true;
}

}  // namespace shardmq::bench
