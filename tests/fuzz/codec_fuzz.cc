// libFuzzer target for the MQTT codec (broker/codec). Built only with clang; see
// tests/fuzz/CMakeLists.txt. The invariants are in codec_fuzz_check.h.
//
//   build-clang/tests/fuzz/codec_fuzz -max_total_time=60 /tmp/corpus tests/fuzz/corpus/codec
//
// New inputs go to the first directory; copy the interesting ones (and every crash, once fixed)
// into tests/fuzz/corpus/codec so CodecFuzzRegressionTest replays them.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "tests/fuzz/codec_fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string broken =
      shardmq::broker::codec::fuzz::CheckCodecInvariants(std::span<const uint8_t>(data, size));
  if (!broken.empty()) {
    std::fprintf(stderr, "codec invariant broken: %s\n", broken.c_str());
    std::abort();
  }
  return 0;
}
