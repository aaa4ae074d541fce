// MQTT topic names and topic filters: validation, shared-subscription parsing and matching.
//
// MQTT 3.1.1 s4.7 / MQTT 5 s4.7: levels are separated by '/'; '+' matches exactly one level,
// '#' matches any number of levels (including the parent level: "a/#" matches "a") and must be
// last; wildcards must occupy a whole level. Topics starting with '$' are not matched by a filter
// whose first level is '+' or '#' (s4.7.2). "$share/<group>/<filter>" is a shared subscription
// (MQTT 5 s4.8.2; also accepted from 3.1.1 clients).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace shardmq::topic {

// A valid topic name: 1..65535 bytes, no '+' or '#', no U+0000.
// (UTF-8 well-formedness is checked by the codec.)
bool IsValidTopicName(std::string_view topic);

// A valid topic filter (without any $share prefix): 1..65535 bytes, no U+0000, wildcards only as
// whole levels, '#' only last.
bool IsValidFilter(std::string_view filter);

// True if the filter contains '+' or '#'.
bool HasWildcard(std::string_view filter);

struct SharedFilter {
  std::string_view group;   // share name: non-empty, no '/', '+' or '#'
  std::string_view filter;  // the topic filter after "$share/<group>/"; valid per IsValidFilter
};

enum class ParseSharedResult { kNotShared, kShared, kInvalid };

// Splits "$share/<group>/<filter>". kNotShared when the string does not start with "$share/";
// kInvalid when it does but the group or the filter is invalid; kShared fills `out`.
ParseSharedResult ParseShared(std::string_view full_filter, SharedFilter* out);

// True if `topic` (a valid topic name) matches `filter` (a valid non-shared filter), applying the
// '$' rule above.
bool Matches(std::string_view filter, std::string_view topic);

}  // namespace shardmq::topic
