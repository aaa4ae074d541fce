// The invariants the codec fuzzer checks on every input, shared by the libFuzzer target
// (codec_fuzz.cc, clang only) and the CodecFuzzRegressionTest gtest that replays the checked-in
// corpus with any compiler.
//
// For each way a connection can see the bytes (before CONNECT, and after a 3.1, 3.1.1 or 5.0
// CONNECT), Decode must:
//  - never crash, leak or read out of bounds (the sanitizers check that);
//  - on kNeedMore consume nothing, with `needed` either 0 or larger than the input;
//  - on kPacket consume between 2 bytes and the input size, and decode the same packet from just
//    those bytes, kNeedMore from one byte fewer, and kPacketTooLarge with a limit one byte smaller;
//  - on kPacket give a packet that encodes (EncodedSize == encoded length) to bytes that decode to
//    the same packet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <variant>

#include "broker/codec/decoder.h"
#include "broker/codec/encoder.h"
#include "broker/codec/packets.h"

namespace shardmq::broker::codec::fuzz {

// Returns "" when every invariant holds, else a description of the first one broken.
inline std::string CheckCodecInvariants(std::span<const uint8_t> data) {
  const std::optional<ProtocolVersion> versions[] = {std::nullopt, ProtocolVersion::kV31,
                                                     ProtocolVersion::kV311, ProtocolVersion::kV5};
  const DecoderLimits limits;
  for (const auto& version : versions) {
    std::ostringstream where;
    where << "version " << (version ? static_cast<int>(*version) : 0) << ": ";
    DecodeResult r = Decode(data, version, limits);
    switch (r.status) {
      case DecodeResult::Status::kError:
        continue;
      case DecodeResult::Status::kNeedMore:
        if (r.consumed != 0) return where.str() + "kNeedMore consumed bytes";
        if (r.needed != 0 && r.needed <= data.size()) {
          where << "kNeedMore with needed=" << r.needed << " <= input size " << data.size();
          return where.str();
        }
        continue;
      case DecodeResult::Status::kPacket:
        break;
    }
    if (r.consumed < 2 || r.consumed > data.size()) {
      where << "kPacket consumed " << r.consumed << " of " << data.size();
      return where.str();
    }
    // The packet alone decodes the same; one byte less is incomplete; a limit one byte smaller
    // rejects it.
    std::span<const uint8_t> exact = data.first(r.consumed);
    DecodeResult again = Decode(exact, version, limits);
    if (again.status != DecodeResult::Status::kPacket || again.consumed != r.consumed ||
        !(again.packet == r.packet)) {
      return where.str() + "decoding only the consumed bytes gives a different result";
    }
    DecodeResult shorter = Decode(data.first(r.consumed - 1), version, limits);
    if (shorter.status != DecodeResult::Status::kNeedMore) {
      return where.str() + "the packet minus its last byte is not kNeedMore";
    }
    DecodeResult too_large = Decode(
        exact, version, DecoderLimits{.max_packet_size = static_cast<uint32_t>(r.consumed - 1)});
    if (too_large.status != DecodeResult::Status::kError ||
        too_large.error != ReasonCode::kPacketTooLarge) {
      return where.str() + "a limit one byte below the packet size does not give kPacketTooLarge";
    }

    // Encode -> Decode gives the same packet. CONNECT is encoded for the level it carries.
    ProtocolVersion encode_version = version.value_or(ProtocolVersion::kV311);
    if (const auto* connect = std::get_if<Connect>(&r.packet)) encode_version = connect->version;
    std::string encoded;
    Encode(r.packet, encode_version, &encoded);
    if (EncodedSize(r.packet, encode_version) != encoded.size()) {
      where << "EncodedSize " << EncodedSize(r.packet, encode_version) << " != encoded size "
            << encoded.size();
      return where.str();
    }
    if (const auto* publish = std::get_if<Publish>(&r.packet)) {
      std::string fast;
      EncodePublish(*publish, publish->payload, encode_version, &fast);
      if (fast != encoded) return where.str() + "EncodePublish differs from Encode";
      if (PublishSize(*publish, publish->payload.size(), encode_version) != encoded.size()) {
        return where.str() + "PublishSize differs from the encoded size";
      }
    }
    DecodeResult re = Decode(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size()),
        version, limits);
    if (re.status != DecodeResult::Status::kPacket) {
      return where.str() + "re-encoded packet does not decode";
    }
    if (re.consumed != encoded.size()) return where.str() + "re-encoded packet not fully consumed";
    if (!(re.packet == r.packet)) return where.str() + "re-encoded packet decodes differently";
  }
  return "";
}

}  // namespace shardmq::broker::codec::fuzz
