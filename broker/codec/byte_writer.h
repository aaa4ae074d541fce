// Appending writer for MQTT encodings (internal to broker/codec).
//
// The encoder computes each packet's size first and reserves the whole packet once (see
// ReserveFor), so these appends never reallocate. Writers check nothing: their inputs were sized
// by the encoder itself. Lengths that do not fit their field are a caller bug (asserted in debug
// builds), like Mosquitto's lib/packet_datatypes.c.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "broker/codec/byte_reader.h"

namespace shardmq::broker::codec {

// Bytes needed to encode `v` as a Variable Byte Integer (MQTT 5 s1.5.5).
inline constexpr size_t VarIntSize(size_t v) {
  return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

// Makes room for `extra` more bytes in `out` with one allocation at most, growing geometrically
// so that appending many packets to one write buffer stays linear.
inline void ReserveFor(std::string* out, size_t extra) {
  const size_t need = out->size() + extra;
  if (need > out->capacity()) out->reserve(std::max(need, out->capacity() * 2));
}

class ByteWriter {
 public:
  explicit ByteWriter(std::string* out) : out_(out) {}

  void U8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void U16(uint16_t v) {
    const char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
    out_->append(b, 2);
  }
  void U32(uint32_t v) {
    const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
    out_->append(b, 4);
  }
  void VarInt(size_t v) {
    assert(v <= kMaxVarInt);  // a Remaining Length or property value above 268435455 is a bug
    char b[4];
    size_t n = 0;
    do {
      uint8_t byte = static_cast<uint8_t>(v & 0x7F);
      v >>= 7;
      if (v != 0) byte |= 0x80;
      b[n++] = static_cast<char>(byte);
    } while (v != 0 && n < 4);
    out_->append(b, n);
  }
  // Two-byte length then the bytes (UTF-8 string or Binary Data).
  void LengthPrefixed(std::string_view s) {
    assert(s.size() <= 0xFFFF);  // strings and binary fields are at most 65535 bytes
    U16(static_cast<uint16_t>(s.size()));
    out_->append(s.data(), s.size());
  }
  void Raw(std::string_view s) { out_->append(s.data(), s.size()); }

 private:
  std::string* out_;
};

}  // namespace shardmq::broker::codec
