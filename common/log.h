// Minimal leveled logging to stderr (Abseil logging is not in Debian bookworm's Abseil).
//   SHARDMQ_LOG(INFO) << "listening on " << addr;
// Lines are written whole (one write per line), so lines from several threads do not mix.
#pragma once

#include <sstream>
#include <string_view>

namespace shardmq::log {

enum class Level { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void SetLevel(Level level);
Level GetLevel();
// Parses "debug", "info", "warning", "error". Returns false if unknown.
bool ParseLevel(std::string_view text, Level* level);

class LineWriter {
 public:
  LineWriter(Level level, const char* file, int line);
  ~LineWriter();
  std::ostream& stream() { return stream_; }

 private:
  Level level_;
  std::ostringstream stream_;
};

inline bool Enabled(Level level) { return level >= GetLevel(); }

}  // namespace shardmq::log

#define SHARDMQ_LOG_LEVEL_DEBUG ::shardmq::log::Level::kDebug
#define SHARDMQ_LOG_LEVEL_INFO ::shardmq::log::Level::kInfo
#define SHARDMQ_LOG_LEVEL_WARNING ::shardmq::log::Level::kWarning
#define SHARDMQ_LOG_LEVEL_ERROR ::shardmq::log::Level::kError

// A for-loop (not if/else) so the macro is safe inside an unbraced if.
#define SHARDMQ_LOG(level)                                                          \
  for (bool shardmq_log_on_ = ::shardmq::log::Enabled(SHARDMQ_LOG_LEVEL_##level);   \
       shardmq_log_on_; shardmq_log_on_ = false)                                    \
  ::shardmq::log::LineWriter(SHARDMQ_LOG_LEVEL_##level, __FILE__, __LINE__).stream()
