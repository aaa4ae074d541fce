#include "tests/support/test_util.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"

namespace shardmq::test {
namespace {

TEST(TestUtilTest, OkMacrosAcceptOkStatusAndStatusOr) {
  ASSERT_OK(absl::OkStatus());
  EXPECT_OK(absl::StatusOr<int>(3));
}

TEST(TestUtilTest, OkMacrosPrintTheStatus) {
  EXPECT_NONFATAL_FAILURE(EXPECT_OK(absl::NotFoundError("no such session")), "no such session");
  EXPECT_NONFATAL_FAILURE(EXPECT_OK(absl::StatusOr<int>(absl::InternalError("disk gone"))),
                          "INTERNAL: disk gone");
  EXPECT_FATAL_FAILURE(ASSERT_OK(absl::AbortedError("stop")), "ABORTED: stop");
}

TEST(TestUtilTest, ScopedTempDirIsCreatedAndRemovedRecursively) {
  std::filesystem::path kept;
  {
    ScopedTempDir dir;
    kept = dir.path();
    ASSERT_FALSE(kept.empty());
    EXPECT_TRUE(std::filesystem::is_directory(kept));
    std::filesystem::create_directories(kept / "a" / "b");
    std::ofstream(dir.Join("a/b/file")) << "data";
    EXPECT_TRUE(std::filesystem::exists(kept / "a" / "b" / "file"));
  }
  EXPECT_FALSE(std::filesystem::exists(kept));
}

TEST(TestUtilTest, ScopedTempDirsAreDistinct) {
  ScopedTempDir a;
  ScopedTempDir b;
  EXPECT_NE(a.path(), b.path());
}

TEST(TestUtilTest, WaitForReturnsOnceTrue) {
  std::atomic<bool> flag{false};
  std::thread setter([&flag] { flag = true; });
  EXPECT_TRUE(WaitFor([&flag] { return flag.load(); }, std::chrono::seconds(10)));
  setter.join();
}

TEST(TestUtilTest, WaitForTimesOut) {
  int calls = 0;
  EXPECT_FALSE(WaitFor(
      [&calls] {
        ++calls;
        return false;
      },
      std::chrono::milliseconds(20)));
  EXPECT_GE(calls, 2);
}

}  // namespace
}  // namespace shardmq::test
