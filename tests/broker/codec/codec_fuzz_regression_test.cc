// Replays every file of the checked-in fuzz corpus (tests/fuzz/corpus/codec) through the fuzzer's
// invariants, so the corpus and past crashes are exercised by every compiler, not only by the
// clang-only libFuzzer target.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/fuzz/codec_fuzz_check.h"

namespace shardmq::broker::codec {
namespace {

std::vector<std::filesystem::path> CorpusFiles() {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(SHARDMQ_CODEC_FUZZ_CORPUS_DIR)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(CodecFuzzRegressionTest, CorpusIsPresent) {
  EXPECT_GE(CorpusFiles().size(), 20u) << "corpus dir " << SHARDMQ_CODEC_FUZZ_CORPUS_DIR;
}

TEST(CodecFuzzRegressionTest, EveryCorpusFileKeepsTheInvariants) {
  for (const auto& path : CorpusFiles()) {
    std::ifstream in(path, std::ios::binary);
    ASSERT_TRUE(in) << path;
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    EXPECT_EQ(fuzz::CheckCodecInvariants(std::span<const uint8_t>(bytes.data(), bytes.size())), "")
        << path.filename();
  }
}

}  // namespace
}  // namespace shardmq::broker::codec
