// Push decoder for MQTT packets: a pure function of its input bytes (no sockets, threads,
// clocks or logging), so it can be fuzzed and tested alone.
//
// The caller keeps a byte buffer of what it has read and calls Decode() with it. Decode looks at
// the fixed header first: if the Remaining Length is not complete, or the whole packet has not
// arrived yet, it answers kNeedMore (and `needed`, once the length is known, tells how many bytes
// the packet needs in all so the caller can size its buffer). Limits are checked from the fixed
// header before anything is allocated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "broker/codec/packets.h"

namespace shardmq::broker::codec {

struct DecoderLimits {
  // Largest whole packet (fixed header included) accepted, in bytes. Larger -> kPacketTooLarge.
  uint32_t max_packet_size = 268435460;
};

struct DecodeResult {
  enum class Status {
    kNeedMore,  // not a whole packet yet; nothing consumed
    kPacket,    // `packet` holds one packet; `consumed` bytes were used
    kError,     // the input is not a valid packet; `error` says why; the connection must close
  };
  Status status = Status::kNeedMore;
  size_t consumed = 0;
  // With kNeedMore: total size of the packet being received, once the fixed header is complete.
  size_t needed = 0;
  Packet packet;
  // With kError: kMalformedPacket, kProtocolError, kPacketTooLarge, kUnsupportedProtocolVersion
  // (CONNECT with an unknown protocol level; protocol name "MQTT"/"MQIsdp" was valid), or
  // kTopicNameInvalid etc. as listed in decoder.cc.
  ReasonCode error = ReasonCode::kSuccess;
  // With kError on a CONNECT whose protocol level was read: that level (for choosing the CONNACK
  // format). Unset otherwise.
  std::optional<uint8_t> connect_level;
};

// Decodes one packet from the front of `data`.
// `version` is the connection's negotiated version; it is ignored for CONNECT, which carries its
// own. Before CONNECT has been accepted, pass the version std::nullopt: then only CONNECT is
// accepted and any other packet type is a kProtocolError.
DecodeResult Decode(std::span<const uint8_t> data, std::optional<ProtocolVersion> version,
                    const DecoderLimits& limits);

}  // namespace shardmq::broker::codec
