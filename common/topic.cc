// Topic rules (MQTT 3.1.1 s4.7, MQTT 5 s4.7 and s4.8.2):
//  - Topic names and filters are 1..65535 bytes (s4.7.3) and contain no U+0000 (s1.5.4).
//  - Topic names contain no wildcard characters (s4.7.1).
//  - '+' and '#' occupy a whole level; '#' is the last level (s4.7.1.2, s4.7.1.3).
//  - Levels may be empty: "a//b", "/" and "/a" are valid and differ from "a/b" and "a".
//  - "a/#" matches "a" (s4.7.1.2); "a/+" matches "a/" but not "a" (s4.7.1.3).
//  - A filter whose first level is '+' or '#' does not match topic names beginning with '$'
//    (s4.7.2), so "#" does not see "$SYS/..." while "$SYS/#" does.
//  - "$share/<ShareName>/<filter>": ShareName is at least one character and has no '/', '+' or
//    '#'; the filter follows the '/' after it (MQTT 5 s4.8.2).
#include "common/topic.h"

namespace shardmq::topic {
namespace {

constexpr size_t kMaxLength = 65535;
constexpr std::string_view kSharePrefix = "$share/";

}  // namespace

bool IsValidTopicName(std::string_view topic) {
  if (topic.empty() || topic.size() > kMaxLength) return false;
  for (char c : topic) {
    if (c == '+' || c == '#' || c == '\0') return false;
  }
  return true;
}

bool IsValidFilter(std::string_view filter) {
  if (filter.empty() || filter.size() > kMaxLength) return false;
  size_t level_start = 0;
  for (size_t i = 0; i < filter.size(); ++i) {
    const char c = filter[i];
    if (c == '/') {
      level_start = i + 1;
    } else if (c == '+') {
      // Alone in its level: preceded by '/' or the start, followed by '/' or the end.
      if (i != level_start) return false;
      if (i + 1 < filter.size() && filter[i + 1] != '/') return false;
    } else if (c == '#') {
      // Alone in the last level.
      if (i != level_start || i + 1 != filter.size()) return false;
    } else if (c == '\0') {
      return false;
    }
  }
  return true;
}

bool HasWildcard(std::string_view filter) {
  return filter.find_first_of("+#") != std::string_view::npos;
}

ParseSharedResult ParseShared(std::string_view full_filter, SharedFilter* out) {
  if (!full_filter.starts_with(kSharePrefix)) return ParseSharedResult::kNotShared;
  const std::string_view rest = full_filter.substr(kSharePrefix.size());
  const size_t slash = rest.find('/');
  // "$share/g" has no filter at all (MQTT 5 s4.8.2: the ShareName is followed by '/' and a filter).
  if (slash == std::string_view::npos) return ParseSharedResult::kInvalid;
  const std::string_view group = rest.substr(0, slash);
  if (group.empty()) return ParseSharedResult::kInvalid;
  // '/' is excluded by construction. U+0000 is not in the spec's ShareName rule but is
  // forbidden in every MQTT string, so reject it here as well.
  if (group.find_first_of(std::string_view("+#\0", 3)) != std::string_view::npos) {
    return ParseSharedResult::kInvalid;
  }
  const std::string_view filter = rest.substr(slash + 1);
  if (!IsValidFilter(filter)) return ParseSharedResult::kInvalid;
  if (out != nullptr) {
    out->group = group;
    out->filter = filter;
  }
  return ParseSharedResult::kShared;
}

bool Matches(std::string_view filter, std::string_view topic) {
  // s4.7.2: a leading wildcard never matches a '$' topic. In a valid filter a leading '+' or
  // '#' is necessarily the whole first level.
  if (!topic.empty() && topic.front() == '$' && !filter.empty() &&
      (filter.front() == '+' || filter.front() == '#')) {
    return false;
  }
  size_t f = 0;
  size_t t = 0;
  while (true) {
    const size_t f_end = filter.find('/', f);
    const std::string_view f_level = filter.substr(f, f_end - f);  // npos - f clamps to the end
    if (f_level == "#") return true;  // matches this and all remaining levels (at least one)
    const size_t t_end = topic.find('/', t);
    const std::string_view t_level = topic.substr(t, t_end - t);
    if (f_level != "+" && f_level != t_level) return false;
    const bool filter_done = f_end == std::string_view::npos;
    const bool topic_done = t_end == std::string_view::npos;
    if (topic_done) {
      // Out of topic levels: match if the filter is out too, or only a final "#" is left
      // ("a/#" matches "a", s4.7.1.2).
      return filter_done || filter.substr(f_end + 1) == "#";
    }
    if (filter_done) return false;
    f = f_end + 1;
    t = t_end + 1;
  }
}

}  // namespace shardmq::topic
