#include "common/topic.h"

#include <string>
#include <string_view>

#include "gtest/gtest.h"
#include "tests/common/match_cases.h"

namespace shardmq::topic {
namespace {

using namespace std::string_view_literals;

struct ValidityCase {
  std::string_view input;
  bool valid;
};

TEST(TopicTest, IsValidTopicName) {
  const ValidityCase cases[] = {
      {"a", true},
      {"sport/tennis/player1", true},
      {"/", true},
      {"//", true},
      {"/finance", true},
      {"finance/", true},
      {"a//b", true},
      {"Accounts payable", true},  // s4.7.3: spaces are allowed
      {"$SYS/broker/load", true},
      {"$share/g/a", true},  // only filters are parsed for $share
      {"caf\xC3\xA9", true},
      {"", false},  // s4.7.3: at least one character
      {"+", false},
      {"#", false},
      {"a/+", false},
      {"a/#", false},
      {"a+b", false},
      {"sport/tennis#", false},
      {"a\0b"sv, false},
  };
  for (const ValidityCase& c : cases) {
    EXPECT_EQ(IsValidTopicName(c.input), c.valid) << '"' << c.input << '"';
  }
}

TEST(TopicTest, IsValidFilter) {
  const ValidityCase cases[] = {
      // MQTT s4.7.1.2 / s4.7.1.3 examples.
      {"sport/tennis/player1/#", true},
      {"sport/#", true},
      {"#", true},
      {"sport/tennis#", false},
      {"sport/tennis/#/ranking", false},
      {"+", true},
      {"+/tennis/#", true},
      {"sport+", false},
      {"sport/+/player1", true},
      {"/+", true},
      {"+/+", true},
      // Edge cases.
      {"/", true},
      {"a//b", true},
      {"a/+/#", true},
      {"+/#", true},
      {"/#", true},
      {"#/", false},
      {"a/#/b", false},
      {"##", false},
      {"++", false},
      {"a+", false},
      {"+a", false},
      {"a/+b/c", false},
      {"a/b+/c", false},
      {"a#", false},
      {"a/#b", false},
      {"a/b#", false},
      {"", false},
      {"a\0b"sv, false},
      {"$SYS/#", true},
      {"$share/g/a", true},  // IsValidFilter does not know about $share
  };
  for (const ValidityCase& c : cases) {
    EXPECT_EQ(IsValidFilter(c.input), c.valid) << '"' << c.input << '"';
  }
}

TEST(TopicTest, LengthLimit) {
  const std::string max(65535, 'a');
  const std::string over(65536, 'a');
  EXPECT_TRUE(IsValidTopicName(max));
  EXPECT_FALSE(IsValidTopicName(over));
  EXPECT_TRUE(IsValidFilter(max));
  EXPECT_FALSE(IsValidFilter(over));
}

TEST(TopicTest, HasWildcard) {
  EXPECT_TRUE(HasWildcard("#"));
  EXPECT_TRUE(HasWildcard("+"));
  EXPECT_TRUE(HasWildcard("a/+/b"));
  EXPECT_TRUE(HasWildcard("a/#"));
  EXPECT_FALSE(HasWildcard("a/b"));
  EXPECT_FALSE(HasWildcard("/"));
  EXPECT_FALSE(HasWildcard("$SYS/x"));
}

TEST(TopicTest, ParseShared) {
  struct Case {
    std::string_view input;
    ParseSharedResult want;
    std::string_view group;
    std::string_view filter;
  };
  using R = ParseSharedResult;
  const Case cases[] = {
      // MQTT 5 s4.8.2 examples.
      {"$share/consumer1/sport/tennis/+", R::kShared, "consumer1", "sport/tennis/+"},
      {"$share/consumer2/sport/tennis/+", R::kShared, "consumer2", "sport/tennis/+"},
      {"$share/consumer1//finance", R::kShared, "consumer1", "/finance"},
      {"$share/consumer1/+/finance", R::kShared, "consumer1", "+/finance"},
      // More valid ones.
      {"$share/g/#", R::kShared, "g", "#"},
      {"$share/g/+", R::kShared, "g", "+"},
      {"$share/g/$SYS/#", R::kShared, "g", "$SYS/#"},
      {"$share/g/a/", R::kShared, "g", "a/"},
      {"$share/g$/a", R::kShared, "g$", "a"},
      // Not shared.
      {"sport/tennis", R::kNotShared, "", ""},
      {"$share", R::kNotShared, "", ""},
      {"$shared/g/a", R::kNotShared, "", ""},
      {"$SHARE/g/a", R::kNotShared, "", ""},
      {"share/g/a", R::kNotShared, "", ""},
      {"#", R::kNotShared, "", ""},
      // Invalid.
      {"$share/", R::kInvalid, "", ""},
      {"$share/g", R::kInvalid, "", ""},
      {"$share/g/", R::kInvalid, "", ""},
      {"$share//a", R::kInvalid, "", ""},
      {"$share//", R::kInvalid, "", ""},
      {"$share/g+/a", R::kInvalid, "", ""},
      {"$share/+/a", R::kInvalid, "", ""},
      {"$share/#/a", R::kInvalid, "", ""},
      {"$share/g#/a", R::kInvalid, "", ""},
      {"$share/g/a/#/b", R::kInvalid, "", ""},
      {"$share/g/a+", R::kInvalid, "", ""},
      {"$share/g\0h/a"sv, R::kInvalid, "", ""},
      {"$share/g/a\0"sv, R::kInvalid, "", ""},
  };
  for (const Case& c : cases) {
    SharedFilter out{"untouched", "untouched"};
    EXPECT_EQ(ParseShared(c.input, &out), c.want) << '"' << c.input << '"';
    if (c.want == R::kShared) {
      EXPECT_EQ(out.group, c.group) << '"' << c.input << '"';
      EXPECT_EQ(out.filter, c.filter) << '"' << c.input << '"';
      // Views into the input, not copies.
      EXPECT_GE(out.group.data(), c.input.data());
      EXPECT_LE(out.filter.data() + out.filter.size(), c.input.data() + c.input.size());
    } else {
      EXPECT_EQ(out.group, "untouched") << '"' << c.input << '"';
    }
  }
}

TEST(TopicTest, ParseSharedAcceptsNullOut) {
  EXPECT_EQ(ParseShared("$share/g/a", nullptr), ParseSharedResult::kShared);
  EXPECT_EQ(ParseShared("a", nullptr), ParseSharedResult::kNotShared);
  EXPECT_EQ(ParseShared("$share/g", nullptr), ParseSharedResult::kInvalid);
}

TEST(TopicTest, Matches) {
  for (const testdata::MatchCase& c : testdata::kMatchCases) {
    ASSERT_TRUE(IsValidFilter(c.filter)) << c.filter;
    ASSERT_TRUE(IsValidTopicName(c.topic)) << c.topic;
    EXPECT_EQ(Matches(c.filter, c.topic), c.match)
        << "filter \"" << c.filter << "\" topic \"" << c.topic << '"';
  }
}

// A filter without wildcards matches exactly the topic equal to it.
TEST(TopicTest, LiteralFilterMatchesOnlyItself) {
  const std::string_view topics[] = {"a", "a/b", "/", "a//b", "$SYS/x", "a/"};
  for (std::string_view f : topics) {
    for (std::string_view t : topics) {
      EXPECT_EQ(Matches(f, t), f == t) << f << " vs " << t;
    }
  }
}

}  // namespace
}  // namespace shardmq::topic
