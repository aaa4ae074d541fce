// General test helpers shared by every test binary: Status assertions, a per-test temporary
// directory and a polling wait.
//
// Header-only; part of shardmq_test_support. The namespace is shardmq::test, not
// shardmq::testing, which would shadow ::testing inside namespace shardmq.
// Thread-compatible: each helper object belongs to the test that created it.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace shardmq::test {

namespace internal {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// gtest predicate formatter: prints the expression and the whole Status (code, message, payloads).
template <typename T>
::testing::AssertionResult IsOk(const char* expr, const T& value) {
  const absl::Status& status = GetStatus(value);
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr << " is not OK: " << status.ToString();
}

}  // namespace internal

// Creates a fresh directory under $TMPDIR (or /tmp) and removes it, recursively, on destruction.
// Fails the current test (ADD_FAILURE) if the directory cannot be created; path() is then empty.
class ScopedTempDir {
 public:
  explicit ScopedTempDir(std::string prefix = "shardmq_test") {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
    std::string templ = base + "/" + prefix + ".XXXXXX";
    if (char* made = ::mkdtemp(templ.data()); made != nullptr) {
      path_ = made;
    } else {
      ADD_FAILURE() << "mkdtemp(" << templ << ") failed: " << std::strerror(errno);
    }
  }
  ~ScopedTempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);  // best effort: a leftover dir must not fail the test
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // path() / name, as a string.
  std::string Join(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Polls `pred` until it returns true or `timeout` passes; returns the last result of `pred`.
// `pred` is always evaluated at least once, and once more after the deadline, so a condition that
// became true just at the deadline is not reported as a timeout. Polling sleeps are short and only
// bound the polling rate; they are not used as synchronization.
inline bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                    std::chrono::milliseconds poll_interval = std::chrono::milliseconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(poll_interval);
  }
  return pred();
}

}  // namespace shardmq::test

// ASSERT_OK(expr) / EXPECT_OK(expr): `expr` is an absl::Status or absl::StatusOr<T>; on failure
// the message shows the expression and the full Status.
#define ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::shardmq::test::internal::IsOk, expr)
#define EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::shardmq::test::internal::IsOk, expr)
