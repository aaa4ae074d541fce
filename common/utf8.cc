// MQTT UTF-8 validation (3.1.1 s1.5.3, 5.0 s1.5.4) over RFC 3629 s4's table of well-formed
// byte sequences:
//
//   U+0000..U+007F     00..7F  (00 rejected: MQTT forbids U+0000)
//   U+0080..U+07FF     C2..DF  80..BF
//   U+0800..U+0FFF     E0      A0..BF  80..BF      (A0 lower bound: no overlong forms)
//   U+1000..U+CFFF     E1..EC  80..BF  80..BF
//   U+D000..U+D7FF     ED      80..9F  80..BF      (9F upper bound: no surrogates)
//   U+E000..U+FFFF     EE..EF  80..BF  80..BF
//   U+10000..U+3FFFF   F0      90..BF  80..BF  80..BF  (90 lower bound: no overlong forms)
//   U+40000..U+FFFFF   F1..F3  80..BF  80..BF  80..BF
//   U+100000..U+10FFFF F4      80..8F  80..BF  80..BF  (8F upper bound: nothing above U+10FFFF)
//
// Everything else (C0, C1, F5..FF, stray continuation bytes, truncated sequences) is invalid.
// Topic names and client ids are mostly ASCII, so 8 bytes are checked at a time first.
#include "common/utf8.h"

#include <cstdint>
#include <cstring>

namespace shardmq::utf8 {
namespace {

constexpr uint64_t kHighBits = 0x8080808080808080ULL;
constexpr uint64_t kLowBits = 0x0101010101010101ULL;

// True if all 8 bytes at `p` are ASCII and none is zero.
inline bool IsAsciiNonZero8(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  // v & 0x80.. is non-zero iff some byte is >= 0x80; (v - 0x01..) & ~v & 0x80.. is non-zero iff
  // some byte is zero (the classic "haszero" bit trick).
  return ((v & kHighBits) | ((v - kLowBits) & ~v & kHighBits)) == 0;
}

inline bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

}  // namespace

bool IsValidMqttString(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char* const end = p + s.size();

  while (p < end) {
    if (end - p >= 8 && IsAsciiNonZero8(p)) {
      p += 8;
      continue;
    }
    const unsigned char c = *p;
    if (c < 0x80) {
      if (c == 0) return false;
      ++p;
      continue;
    }
    // Multi-byte sequence: the lead byte fixes the length and the allowed range of the 2nd byte.
    size_t len;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;  // 80..C1 (stray continuation or overlong 2-byte lead) or F5..FF
    }
    if (static_cast<size_t>(end - p) < len) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (size_t i = 2; i < len; ++i) {
      if (!IsContinuation(p[i])) return false;
    }
    p += len;
  }
  return true;
}

}  // namespace shardmq::utf8
