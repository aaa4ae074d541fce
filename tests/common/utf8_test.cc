#include "common/utf8.h"

#include <string>
#include <string_view>

#include "gtest/gtest.h"

namespace shardmq::utf8 {
namespace {

using namespace std::string_view_literals;

struct Case {
  std::string_view name;
  std::string_view input;
  bool valid;
};

// Byte strings are spelled with explicit escapes; "sv" keeps embedded NULs.
const Case kCases[] = {
    {"empty", ""sv, true},
    {"ascii", "sport/tennis/player1"sv, true},
    {"ascii long (fast path)", "abcdefghijklmnopqrstuvwxyz0123456789/+#$"sv, true},
    {"2-byte min U+0080", "\xC2\x80"sv, true},
    {"2-byte max U+07FF", "\xDF\xBF"sv, true},
    {"3-byte min U+0800", "\xE0\xA0\x80"sv, true},
    {"3-byte U+D7FF (below surrogates)", "\xED\x9F\xBF"sv, true},
    {"3-byte U+E000 (above surrogates)", "\xEE\x80\x80"sv, true},
    {"3-byte U+FEFF (BOM, allowed by s1.5.4)", "\xEF\xBB\xBF"sv, true},
    {"3-byte max U+FFFF", "\xEF\xBF\xBF"sv, true},
    {"4-byte min U+10000", "\xF0\x90\x80\x80"sv, true},
    {"4-byte U+1F600", "\xF0\x9F\x98\x80"sv, true},
    {"4-byte max U+10FFFF", "\xF4\x8F\xBF\xBF"sv, true},
    {"mixed", "caf\xC3\xA9/\xE6\x97\xA5\xE6\x9C\xAC/\xF0\x9F\x98\x80/end"sv, true},
    {"multi-byte right after 8 ascii", "abcdefgh\xC3\xA9/bcdefghij"sv, true},
    {"U+0001 control (allowed)", "\x01"sv, true},
    {"U+007F DEL (allowed)", "\x7F"sv, true},

    // U+0000.
    {"nul alone", "\0"sv, false},
    {"nul in short", "a\0b"sv, false},
    {"nul in 8-byte block", "abc\0defghijk"sv, false},
    {"nul at end of long", "abcdefghijklmnop\0"sv, false},
    {"overlong nul C0 80", "\xC0\x80"sv, false},
    // Overlong encodings.
    {"overlong 2-byte C1 BF", "\xC1\xBF"sv, false},
    {"overlong 3-byte E0 9F BF", "\xE0\x9F\xBF"sv, false},
    {"overlong 3-byte E0 80 80", "\xE0\x80\x80"sv, false},
    {"overlong 4-byte F0 8F BF BF", "\xF0\x8F\xBF\xBF"sv, false},
    // Surrogates U+D800..U+DFFF.
    {"surrogate U+D800", "\xED\xA0\x80"sv, false},
    {"surrogate U+DBFF", "\xED\xAF\xBF"sv, false},
    {"surrogate U+DC00", "\xED\xB0\x80"sv, false},
    {"surrogate U+DFFF", "\xED\xBF\xBF"sv, false},
    {"surrogate pair (CESU-8)", "\xED\xA0\xBD\xED\xB8\x80"sv, false},
    // Above U+10FFFF.
    {"U+110000", "\xF4\x90\x80\x80"sv, false},
    {"lead F5", "\xF5\x80\x80\x80"sv, false},
    {"lead F8 (5-byte form)", "\xF8\x88\x80\x80\x80"sv, false},
    {"lead FC (6-byte form)", "\xFC\x84\x80\x80\x80\x80"sv, false},
    {"byte FE", "\xFE"sv, false},
    {"byte FF", "\xFF"sv, false},
    // Stray continuation bytes.
    {"lone continuation 80", "\x80"sv, false},
    {"lone continuation BF", "a\xBF"sv, false},
    {"extra continuation", "\xC3\xA9\xA9"sv, false},
    // Truncated sequences.
    {"truncated 2-byte", "\xC3"sv, false},
    {"truncated 3-byte", "\xE6\x97"sv, false},
    {"truncated 4-byte", "\xF0\x9F\x98"sv, false},
    {"truncated at end of long", "abcdefghijklmnop\xE6\x97"sv, false},
    // Bad continuation bytes.
    {"2-byte with ascii second", "\xC3\x41"sv, false},
    {"3-byte with bad third", "\xE6\x97\x41"sv, false},
    {"4-byte with lead as fourth", "\xF0\x9F\x98\xC3"sv, false},
    {"3-byte with nul second", "\xE6\0\x80"sv, false},
};

TEST(Utf8Test, Table) {
  for (const Case& c : kCases) {
    EXPECT_EQ(IsValidMqttString(c.input), c.valid) << c.name;
  }
}

// Every code point round-trips through a reference encoder: valid iff not U+0000 and not a
// surrogate. Also checks each position of the fast path by padding with ASCII.
TEST(Utf8Test, AllCodePoints) {
  auto encode = [](char32_t cp) {
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
  };
  int failures = 0;
  for (char32_t cp = 0; cp <= 0x10FFFF && failures < 10; ++cp) {
    const bool want = cp != 0 && !(cp >= 0xD800 && cp <= 0xDFFF);
    const std::string padded = std::string(cp % 11, 'x') + encode(cp) + std::string(cp % 7, 'y');
    if (IsValidMqttString(padded) != want) {
      ADD_FAILURE() << "code point U+" << std::hex << static_cast<uint32_t>(cp);
      ++failures;
    }
  }
}

// Overlong forms of every code point that has a shorter encoding.
TEST(Utf8Test, RejectsAllOverlongForms) {
  for (uint32_t cp = 0; cp < 0x80; ++cp) {  // as 2 bytes
    const char s[] = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    EXPECT_FALSE(IsValidMqttString(std::string_view(s, sizeof(s)))) << cp;
  }
  for (uint32_t cp = 0; cp < 0x800; cp += 7) {  // as 3 bytes
    const char s[] = {static_cast<char>(0xE0), static_cast<char>(0x80 | (cp >> 6)),
                      static_cast<char>(0x80 | (cp & 0x3F))};
    EXPECT_FALSE(IsValidMqttString(std::string_view(s, sizeof(s)))) << cp;
  }
  for (uint32_t cp = 0; cp < 0x10000; cp += 97) {  // as 4 bytes
    const char s[] = {static_cast<char>(0xF0), static_cast<char>(0x80 | (cp >> 12)),
                      static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
                      static_cast<char>(0x80 | (cp & 0x3F))};
    EXPECT_FALSE(IsValidMqttString(std::string_view(s, sizeof(s)))) << cp;
  }
}

// A NUL or a high byte at every offset of a long ASCII string is caught, whatever its position
// relative to the 8-byte blocks.
TEST(Utf8Test, FastPathCatchesEveryOffset) {
  for (size_t len = 1; len <= 40; ++len) {
    for (size_t i = 0; i < len; ++i) {
      std::string s(len, 'a');
      s[i] = '\0';
      EXPECT_FALSE(IsValidMqttString(s)) << "nul at " << i << " of " << len;
      s[i] = '\x80';
      EXPECT_FALSE(IsValidMqttString(s)) << "0x80 at " << i << " of " << len;
      s[i] = '\x01';
      EXPECT_TRUE(IsValidMqttString(s)) << "0x01 at " << i << " of " << len;
      s[i] = '\x7F';
      EXPECT_TRUE(IsValidMqttString(s)) << "0x7F at " << i << " of " << len;
    }
  }
}

}  // namespace
}  // namespace shardmq::utf8
