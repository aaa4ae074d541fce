// Bounds-checked reader over the bytes of one MQTT packet (internal to broker/codec).
//
// Every read checks the bytes left first and fails without moving when they are too few, so no
// input can make it read outside [data, data + size). A failed read always means the packet is
// malformed (a field runs past the end of the packet): MQTT 5 s1.5, MQTT 3.1.1 s1.5.
// Big-endian integers (MQTT 5 s1.5.2, s1.5.3); Variable Byte Integers per MQTT 5 s1.5.5.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace shardmq::broker::codec {

// Largest value a Variable Byte Integer can hold (4 bytes of 7 bits): MQTT 5 s1.5.5.
inline constexpr uint32_t kMaxVarInt = 268435455;

enum class VarIntStatus {
  kOk,
  kNeedMore,   // every byte present so far has the continuation bit set (at most 3 of them)
  kMalformed,  // a 4th byte with the continuation bit, or a non-minimal encoding
};

// Parses a Variable Byte Integer at the front of [data, data + size). On kOk sets `*value` and
// `*length` (1..4 bytes). MQTT 5 s1.5.5: at most 4 bytes, and "the encoded value MUST use the
// minimum number of bytes necessary", so a last byte of 0x00 after a continuation byte is rejected.
inline VarIntStatus ParseVarInt(const uint8_t* data, size_t size, uint32_t* value, size_t* length) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) {
    if (i == size) return VarIntStatus::kNeedMore;
    const uint8_t b = data[i];
    v |= static_cast<uint32_t>(b & 0x7F) << (7 * i);
    if ((b & 0x80) == 0) {
      if (i > 0 && b == 0) return VarIntStatus::kMalformed;  // non-minimal
      *value = v;
      *length = i + 1;
      return VarIntStatus::kOk;
    }
  }
  return VarIntStatus::kMalformed;  // continuation bit set on the 4th byte
}

class ByteReader {
 public:
  ByteReader() = default;
  ByteReader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool empty() const { return p_ == end_; }

  bool ReadU8(uint8_t* v) {
    if (p_ == end_) return false;
    *v = *p_++;
    return true;
  }
  bool ReadU16(uint16_t* v) {
    if (remaining() < 2) return false;
    *v = static_cast<uint16_t>((p_[0] << 8) | p_[1]);
    p_ += 2;
    return true;
  }
  bool ReadU32(uint32_t* v) {
    if (remaining() < 4) return false;
    *v = (static_cast<uint32_t>(p_[0]) << 24) | (static_cast<uint32_t>(p_[1]) << 16) |
         (static_cast<uint32_t>(p_[2]) << 8) | static_cast<uint32_t>(p_[3]);
    p_ += 4;
    return true;
  }
  // False if truncated, longer than 4 bytes or non-minimal: all malformed inside a packet.
  bool ReadVarInt(uint32_t* v) {
    size_t length = 0;
    if (ParseVarInt(p_, remaining(), v, &length) != VarIntStatus::kOk) return false;
    p_ += length;
    return true;
  }
  // Two-byte length then that many bytes (UTF-8 string or Binary Data, MQTT 5 s1.5.4, s1.5.6).
  // The bytes are not validated here. `out` points into the packet.
  bool ReadLengthPrefixed(std::string_view* out) {
    uint16_t length = 0;
    if (remaining() < 2) return false;
    length = static_cast<uint16_t>((p_[0] << 8) | p_[1]);
    if (remaining() - 2 < length) return false;
    *out = std::string_view(reinterpret_cast<const char*>(p_ + 2), length);
    p_ += 2 + static_cast<size_t>(length);
    return true;
  }
  // Everything left (PUBLISH payload, SUBACK reason codes).
  std::string_view ReadRest() {
    std::string_view rest(reinterpret_cast<const char*>(p_), remaining());
    p_ = end_;
    return rest;
  }
  // Moves the next `n` bytes into `*sub` (a property block). False if fewer than `n` are left.
  bool Split(size_t n, ByteReader* sub) {
    if (remaining() < n) return false;
    *sub = ByteReader(p_, n);
    p_ += n;
    return true;
  }

 private:
  const uint8_t* p_ = nullptr;
  const uint8_t* end_ = nullptr;
};

}  // namespace shardmq::broker::codec
