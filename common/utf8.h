// UTF-8 rules of MQTT (3.1.1 s1.5.3, 5.0 s1.5.4): well-formed UTF-8 (RFC 3629), no code points
// U+D800..U+DFFF (surrogates, which well-formed UTF-8 cannot encode anyway), no U+0000, no
// overlong encodings, nothing above U+10FFFF.
#pragma once

#include <string_view>

namespace shardmq::utf8 {

// True if `s` is a valid MQTT UTF-8 string by the rules above.
bool IsValidMqttString(std::string_view s);

}  // namespace shardmq::utf8
