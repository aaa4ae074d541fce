#include "common/topic_tree.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/topic.h"
#include "gtest/gtest.h"
#include "tests/common/alloc_counter.h"
#include "tests/common/match_cases.h"

namespace shardmq::topic {
namespace {

using testdata::kMatchCases;
using testdata::MatchCase;

using Trie = FilterTrie<int, std::string>;

// Keys matched by `topic`, sorted; fails the test on a duplicate callback.
std::vector<int> MatchKeys(const Trie& trie, std::string_view topic) {
  std::vector<int> keys;
  trie.Match(topic, [&](const int& key, const std::string&) { keys.push_back(key); });
  std::sort(keys.begin(), keys.end());
  EXPECT_TRUE(std::adjacent_find(keys.begin(), keys.end()) == keys.end()) << "duplicate match";
  return keys;
}

// Topics matched by `filter`, sorted; fails the test on a duplicate callback.
template <typename V>
std::vector<std::string> MatchTopics(const TopicTree<V>& tree, std::string_view filter) {
  std::vector<std::string> topics;
  tree.ForEachMatching(filter,
                       [&](std::string_view topic, const V&) { topics.emplace_back(topic); });
  std::sort(topics.begin(), topics.end());
  EXPECT_TRUE(std::adjacent_find(topics.begin(), topics.end()) == topics.end())
      << "duplicate match";
  return topics;
}

// ---------------------------------------------------------------------------------------------
// FilterTrie

TEST(FilterTrieTest, InsertFindReplace) {
  Trie trie;
  EXPECT_TRUE(trie.empty());
  EXPECT_EQ(trie.Find("a/b", 1), nullptr);

  EXPECT_TRUE(trie.Insert("a/b", 1, "one"));
  EXPECT_TRUE(trie.Insert("a/b", 2, "two"));
  EXPECT_TRUE(trie.Insert("a/+", 1, "plus"));
  EXPECT_TRUE(trie.Insert("a/#", 1, "hash"));
  EXPECT_EQ(trie.size(), 4u);

  ASSERT_NE(trie.Find("a/b", 1), nullptr);
  EXPECT_EQ(*trie.Find("a/b", 1), "one");
  EXPECT_EQ(*trie.Find("a/b", 2), "two");
  EXPECT_EQ(*trie.Find("a/+", 1), "plus");
  EXPECT_EQ(*trie.Find("a/#", 1), "hash");
  EXPECT_EQ(trie.Find("a/+", 2), nullptr);
  EXPECT_EQ(trie.Find("a", 1), nullptr);  // interior node, no entry
  EXPECT_EQ(trie.Find("a/b/c", 1), nullptr);
  EXPECT_EQ(trie.Find("a/c", 1), nullptr);

  EXPECT_FALSE(trie.Insert("a/b", 1, "uno"));  // replace
  EXPECT_EQ(*trie.Find("a/b", 1), "uno");
  EXPECT_EQ(trie.size(), 4u);
}

TEST(FilterTrieTest, EraseAndPrune) {
  Trie trie;
  trie.Insert("a/b/c", 1, "x");
  trie.Insert("a/b", 2, "y");
  trie.Insert("a/+/#", 3, "z");
  trie.Insert("/", 4, "w");
  EXPECT_EQ(trie.NodeCount(), 3u + 2u + 2u);  // a,b,c  +,#  "",""

  EXPECT_FALSE(trie.Erase("a/b/c", 2));    // wrong key
  EXPECT_FALSE(trie.Erase("a/b/c/d", 1));  // no such filter
  EXPECT_FALSE(trie.Erase("a", 1));        // interior node
  EXPECT_FALSE(trie.Erase("x/+", 1));
  EXPECT_EQ(trie.size(), 4u);

  EXPECT_TRUE(trie.Erase("a/b/c", 1));
  EXPECT_FALSE(trie.Erase("a/b/c", 1));
  EXPECT_EQ(trie.size(), 3u);
  EXPECT_EQ(trie.NodeCount(), 2u + 2u + 2u);  // "c" pruned, "a/b" still has an entry
  EXPECT_EQ(*trie.Find("a/b", 2), "y");

  EXPECT_TRUE(trie.Erase("a/+/#", 3));
  EXPECT_EQ(trie.NodeCount(), 2u + 2u);  // '#' and '+' pruned
  EXPECT_TRUE(trie.Erase("a/b", 2));
  EXPECT_EQ(trie.NodeCount(), 2u);
  EXPECT_TRUE(trie.Erase("/", 4));
  EXPECT_EQ(trie.NodeCount(), 0u);
  EXPECT_TRUE(trie.empty());
  EXPECT_TRUE(MatchKeys(trie, "a/b").empty());
}

TEST(FilterTrieTest, EraseKeepsSiblingsAndOtherKeys) {
  Trie trie;
  trie.Insert("a/b", 1, "x");
  trie.Insert("a/b", 2, "y");
  trie.Insert("a/c", 1, "z");
  EXPECT_TRUE(trie.Erase("a/b", 1));
  EXPECT_EQ(MatchKeys(trie, "a/b"), std::vector<int>{2});
  EXPECT_EQ(MatchKeys(trie, "a/c"), std::vector<int>{1});
  EXPECT_TRUE(trie.Erase("a/b", 2));
  EXPECT_EQ(trie.NodeCount(), 2u);  // a, c
  EXPECT_EQ(MatchKeys(trie, "a/c"), std::vector<int>{1});
}

TEST(FilterTrieTest, MatchTable) {
  for (const MatchCase& c : kMatchCases) {
    Trie trie;
    trie.Insert(c.filter, 7, "v");
    const std::vector<int> want = c.match ? std::vector<int>{7} : std::vector<int>{};
    EXPECT_EQ(MatchKeys(trie, c.topic), want)
        << "filter \"" << c.filter << "\" topic \"" << c.topic << '"';
  }
}

// All table filters in one trie: each topic gets exactly the keys of the filters that match it.
TEST(FilterTrieTest, MatchTableCombined) {
  Trie trie;
  std::map<std::string, int> key_of;
  for (const MatchCase& c : kMatchCases) {
    auto [it, inserted] = key_of.emplace(std::string(c.filter), static_cast<int>(key_of.size()));
    if (inserted) trie.Insert(c.filter, it->second, std::string(c.filter));
  }
  for (const MatchCase& c : kMatchCases) {
    std::vector<int> want;
    for (const auto& [filter, key] : key_of) {
      if (Matches(filter, c.topic)) want.push_back(key);
    }
    std::sort(want.begin(), want.end());
    EXPECT_EQ(MatchKeys(trie, c.topic), want) << "topic \"" << c.topic << '"';
  }
}

TEST(FilterTrieTest, MatchPassesStoredValue) {
  Trie trie;
  trie.Insert("a/+", 1, "plus");
  trie.Insert("a/#", 2, "hash");
  trie.Insert("a/b", 3, "exact");
  std::map<int, std::string> got;
  trie.Match("a/b", [&](const int& key, const std::string& value) { got[key] = value; });
  EXPECT_EQ(got, (std::map<int, std::string>{{1, "plus"}, {2, "hash"}, {3, "exact"}}));
}

TEST(FilterTrieTest, DollarRule) {
  Trie trie;
  trie.Insert("#", 1, "");
  trie.Insert("+/x", 2, "");
  trie.Insert("+", 3, "");
  trie.Insert("$SYS/#", 4, "");
  trie.Insert("$SYS/+", 5, "");
  trie.Insert("+/#", 6, "");
  trie.Insert("$SYS", 7, "");
  EXPECT_EQ(MatchKeys(trie, "$SYS/x"), (std::vector<int>{4, 5}));
  EXPECT_EQ(MatchKeys(trie, "$SYS"), (std::vector<int>{4, 7}));
  EXPECT_EQ(MatchKeys(trie, "SYS/x"), (std::vector<int>{1, 2, 6}));
  EXPECT_EQ(MatchKeys(trie, "SYS"), (std::vector<int>{1, 3, 6}));
}

TEST(FilterTrieTest, HashMatchesParentLevel) {
  Trie trie;
  trie.Insert("sport/#", 1, "");
  trie.Insert("sport/+", 2, "");
  EXPECT_EQ(MatchKeys(trie, "sport"), std::vector<int>{1});
  EXPECT_EQ(MatchKeys(trie, "sport/"), (std::vector<int>{1, 2}));
  EXPECT_EQ(MatchKeys(trie, "sport/tennis"), (std::vector<int>{1, 2}));
  EXPECT_EQ(MatchKeys(trie, "sport/tennis/x"), std::vector<int>{1});
  EXPECT_TRUE(MatchKeys(trie, "sports").empty());
}

TEST(FilterTrieTest, MatchDoesNotAllocate) {
  Trie trie;
  trie.Insert("sport/tennis/+", 1, "");
  trie.Insert("sport/#", 2, "");
  trie.Insert("+/+/+", 3, "");
  trie.Insert("#", 4, "");
  trie.Insert("a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p", 5, "");
  int count = 0;
  auto fn = [&count](const int&, const std::string&) { ++count; };
  const size_t before = shardmq::test::AllocationCount();
  trie.Match("sport/tennis/player1", fn);
  trie.Match("a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p", fn);
  trie.Match("$SYS/broker/load", fn);
  const size_t after = shardmq::test::AllocationCount();
  EXPECT_EQ(after, before);
  EXPECT_EQ(count, 4 + 2);
}

TEST(FilterTrieTest, MoveAndClear) {
  Trie trie;
  trie.Insert("a/b", 1, "x");
  trie.Insert("a/#", 2, "y");
  Trie moved(std::move(trie));
  EXPECT_EQ(moved.size(), 2u);
  EXPECT_EQ(MatchKeys(moved, "a/b"), (std::vector<int>{1, 2}));
  EXPECT_EQ(trie.size(), 0u);  // NOLINT(bugprone-use-after-move): documented empty state
  EXPECT_TRUE(MatchKeys(trie, "a/b").empty());
  trie.Insert("c", 3, "z");  // still usable
  Trie assigned;
  assigned.Insert("q", 9, "q");
  assigned = std::move(moved);
  EXPECT_EQ(assigned.size(), 2u);
  EXPECT_EQ(assigned.Find("q", 9), nullptr);
  assigned.Clear();
  EXPECT_TRUE(assigned.empty());
  EXPECT_EQ(assigned.NodeCount(), 0u);
}

// A maximal-length filter (32768 levels) must not overflow the stack on insert, match, erase
// or destruction.
TEST(FilterTrieTest, VeryDeepFilter) {
  std::string deep = "a";
  while (deep.size() + 2 <= 65535) deep += "/a";
  {
    Trie trie;
    EXPECT_TRUE(trie.Insert(deep, 1, ""));
    EXPECT_TRUE(trie.Insert(deep + "/#", 2, ""));
    EXPECT_EQ(MatchKeys(trie, deep), (std::vector<int>{1, 2}));
    EXPECT_TRUE(trie.Erase(deep, 1));
    EXPECT_EQ(trie.size(), 1u);
  }  // destroyed with a 32768-level chain
  Trie trie;
  trie.Insert(deep, 1, "");
  EXPECT_TRUE(trie.Erase(deep, 1));
  EXPECT_EQ(trie.NodeCount(), 0u);
}

// Pointer keys: the entry hash must cope with std::hash<T*> being the identity.
TEST(FilterTrieTest, PointerKeys) {
  std::vector<int> sessions(1000);
  FilterTrie<const int*, int> trie;
  for (size_t i = 0; i < sessions.size(); ++i) {
    EXPECT_TRUE(trie.Insert("t", &sessions[i], static_cast<int>(i)));
  }
  size_t hits = 0;
  trie.Match("t", [&](const int* const& key, const int& value) {
    EXPECT_EQ(key, &sessions[static_cast<size_t>(value)]);
    ++hits;
  });
  EXPECT_EQ(hits, sessions.size());
  for (int& s : sessions) EXPECT_TRUE(trie.Erase("t", &s));
  EXPECT_TRUE(trie.empty());
}

// ---------------------------------------------------------------------------------------------
// TopicTree

TEST(TopicTreeTest, SetGetReplace) {
  TopicTree<std::string> tree;
  EXPECT_EQ(tree.Get("a"), nullptr);
  tree.Set("a/b", "x");
  tree.Set("a", "y");
  tree.Set("/", "z");
  tree.Set("a//b", "w");
  EXPECT_EQ(tree.size(), 4u);
  EXPECT_EQ(*tree.Get("a/b"), "x");
  EXPECT_EQ(*tree.Get("a"), "y");
  EXPECT_EQ(*tree.Get("/"), "z");
  EXPECT_EQ(*tree.Get("a//b"), "w");
  EXPECT_EQ(tree.Get("a/"), nullptr);
  EXPECT_EQ(tree.Get(""), nullptr);
  EXPECT_EQ(tree.Get("a/b/c"), nullptr);
  tree.Set("a/b", "x2");
  EXPECT_EQ(*tree.Get("a/b"), "x2");
  EXPECT_EQ(tree.size(), 4u);
}

TEST(TopicTreeTest, EraseAndPrune) {
  TopicTree<int> tree;
  tree.Set("a/b/c", 1);
  tree.Set("a", 2);
  EXPECT_EQ(tree.NodeCount(), 3u);
  EXPECT_FALSE(tree.Erase("a/b"));  // interior node without a value
  EXPECT_FALSE(tree.Erase("a/b/c/d"));
  EXPECT_FALSE(tree.Erase("x"));
  EXPECT_TRUE(tree.Erase("a/b/c"));
  EXPECT_FALSE(tree.Erase("a/b/c"));
  EXPECT_EQ(tree.NodeCount(), 1u);  // "a" keeps its value
  EXPECT_EQ(*tree.Get("a"), 2);
  EXPECT_TRUE(tree.Erase("a"));
  EXPECT_EQ(tree.NodeCount(), 0u);
  EXPECT_TRUE(tree.empty());
}

TEST(TopicTreeTest, MatchTable) {
  for (const MatchCase& c : kMatchCases) {
    TopicTree<int> tree;
    tree.Set(c.topic, 1);
    const std::vector<std::string> want =
        c.match ? std::vector<std::string>{std::string(c.topic)} : std::vector<std::string>{};
    EXPECT_EQ(MatchTopics(tree, c.filter), want)
        << "filter \"" << c.filter << "\" topic \"" << c.topic << '"';
  }
}

TEST(TopicTreeTest, MatchTableCombined) {
  TopicTree<int> tree;
  std::set<std::string> topics;
  for (const MatchCase& c : kMatchCases) {
    tree.Set(c.topic, 1);
    topics.emplace(c.topic);
  }
  for (const MatchCase& c : kMatchCases) {
    std::vector<std::string> want;
    for (const std::string& t : topics) {
      if (Matches(c.filter, t)) want.push_back(t);
    }
    EXPECT_EQ(MatchTopics(tree, c.filter), want) << "filter \"" << c.filter << '"';
  }
}

TEST(TopicTreeTest, DollarRule) {
  TopicTree<int> tree;
  tree.Set("$SYS/x", 1);
  tree.Set("$SYS", 2);
  tree.Set("SYS/x", 3);
  tree.Set("a/$b", 4);
  using V = std::vector<std::string>;
  EXPECT_EQ(MatchTopics(tree, "#"), (V{"SYS/x", "a/$b"}));
  EXPECT_EQ(MatchTopics(tree, "+/x"), (V{"SYS/x"}));
  EXPECT_EQ(MatchTopics(tree, "+"), V{});
  EXPECT_EQ(MatchTopics(tree, "+/#"), (V{"SYS/x", "a/$b"}));
  EXPECT_EQ(MatchTopics(tree, "$SYS/#"), (V{"$SYS", "$SYS/x"}));
  EXPECT_EQ(MatchTopics(tree, "$SYS/+"), (V{"$SYS/x"}));
  EXPECT_EQ(MatchTopics(tree, "a/+"), (V{"a/$b"}));
  EXPECT_EQ(MatchTopics(tree, "a/#"), (V{"a/$b"}));
}

TEST(TopicTreeTest, ForEachMatchingPassesValue) {
  TopicTree<std::string> tree;
  tree.Set("a/b", "x");
  tree.Set("a/c", "y");
  std::map<std::string, std::string> got;
  tree.ForEachMatching("a/+", [&](std::string_view topic, const std::string& value) {
    got[std::string(topic)] = value;
  });
  EXPECT_EQ(got, (std::map<std::string, std::string>{{"a/b", "x"}, {"a/c", "y"}}));
  std::set<std::string> all;
  tree.ForEach([&](std::string_view topic, const std::string&) { all.emplace(topic); });
  EXPECT_EQ(all, (std::set<std::string>{"a/b", "a/c"}));
}

TEST(TopicTreeTest, VeryDeepTopic) {
  std::string deep = "a";
  while (deep.size() + 2 <= 65535) deep += "/a";
  {
    TopicTree<int> tree;
    tree.Set(deep, 1);
    tree.Set("a", 2);
    EXPECT_EQ(MatchTopics(tree, "#").size(), 2u);
    EXPECT_EQ(MatchTopics(tree, "a/#").size(), 2u);
    EXPECT_EQ(MatchTopics(tree, deep), std::vector<std::string>{deep});
  }  // destroyed with a 32768-level chain
  TopicTree<int> tree;
  tree.Set(deep, 1);
  EXPECT_TRUE(tree.Erase(deep));
  EXPECT_EQ(tree.NodeCount(), 0u);
}

TEST(TopicTreeTest, MoveAndClear) {
  TopicTree<int> tree;
  tree.Set("a/b", 1);
  TopicTree<int> moved(std::move(tree));
  EXPECT_EQ(*moved.Get("a/b"), 1);
  EXPECT_TRUE(tree.empty());  // NOLINT(bugprone-use-after-move): documented empty state
  EXPECT_EQ(tree.Get("a/b"), nullptr);
  TopicTree<int> assigned;
  assigned.Set("q", 2);
  assigned = std::move(moved);
  EXPECT_EQ(assigned.Get("q"), nullptr);
  EXPECT_EQ(*assigned.Get("a/b"), 1);
  assigned.Clear();
  EXPECT_TRUE(assigned.empty());
  EXPECT_EQ(assigned.NodeCount(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Randomized cross-check against topic::Matches.

class RandomTopics {
 public:
  explicit RandomTopics(uint32_t seed) : rng_(seed) {}

  std::string Topic() {
    static constexpr std::string_view kLevels[] = {"", "a", "b", "c", "$s", "$"};
    return Join(kLevels, /*wildcards=*/false);
  }

  std::string Filter() {
    static constexpr std::string_view kLevels[] = {"", "a", "b", "c", "$s", "$", "+", "+"};
    return Join(kLevels, /*wildcards=*/true);
  }

  size_t Below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

 private:
  template <size_t N>
  std::string Join(const std::string_view (&levels)[N], bool wildcards) {
    std::string out;
    while (out.empty()) {  // a single empty level is not a valid topic or filter
      const size_t count = 1 + Below(5);
      for (size_t i = 0; i < count; ++i) {
        if (i > 0) out += '/';
        if (wildcards && i + 1 == count && Below(4) == 0) {
          out += '#';
        } else {
          out += levels[Below(N)];
        }
      }
    }
    return out;
  }

  std::mt19937 rng_;
};

TEST(TopicTreeRandomTest, FilterTrieAgreesWithMatches) {
  RandomTopics gen(20240601);
  Trie trie;
  std::set<std::pair<std::string, int>> entries;  // (filter, key)
  for (int i = 0; i < 400; ++i) {
    std::string filter = gen.Filter();
    ASSERT_TRUE(IsValidFilter(filter)) << filter;
    const int key = static_cast<int>(gen.Below(8));
    EXPECT_EQ(trie.Insert(filter, key, filter), entries.emplace(filter, key).second);
  }
  ASSERT_EQ(trie.size(), entries.size());

  auto check = [&](int rounds) {
    for (int i = 0; i < rounds; ++i) {
      const std::string topic = gen.Topic();
      ASSERT_TRUE(IsValidTopicName(topic)) << topic;
      std::multiset<std::pair<std::string, int>> want;
      for (const auto& [filter, key] : entries) {
        if (Matches(filter, topic)) want.emplace(filter, key);
      }
      std::multiset<std::pair<std::string, int>> got;
      trie.Match(topic,
                 [&](const int& key, const std::string& filter) { got.emplace(filter, key); });
      ASSERT_EQ(got, want) << "topic \"" << topic << '"';
    }
  };
  check(1000);

  // Erase about half, then check again, including that pruning left nothing behind at the end.
  for (auto it = entries.begin(); it != entries.end();) {
    if (gen.Below(2) == 0) {
      EXPECT_TRUE(trie.Erase(it->first, it->second));
      it = entries.erase(it);
    } else {
      ++it;
    }
  }
  ASSERT_EQ(trie.size(), entries.size());
  check(1000);
  for (const auto& [filter, key] : entries) EXPECT_TRUE(trie.Erase(filter, key));
  EXPECT_TRUE(trie.empty());
  EXPECT_EQ(trie.NodeCount(), 0u);
}

TEST(TopicTreeRandomTest, TopicTreeAgreesWithMatches) {
  RandomTopics gen(7);
  TopicTree<std::string> tree;
  std::set<std::string> topics;
  for (int i = 0; i < 300; ++i) {
    std::string topic = gen.Topic();
    tree.Set(topic, topic);
    topics.insert(std::move(topic));
  }
  ASSERT_EQ(tree.size(), topics.size());

  auto check = [&](int rounds) {
    for (int i = 0; i < rounds; ++i) {
      const std::string filter = gen.Filter();
      ASSERT_TRUE(IsValidFilter(filter)) << filter;
      std::vector<std::string> want;
      for (const std::string& t : topics) {
        if (Matches(filter, t)) want.push_back(t);
      }
      std::vector<std::string> got;
      tree.ForEachMatching(filter, [&](std::string_view topic, const std::string& value) {
        EXPECT_EQ(topic, value);
        got.emplace_back(topic);
      });
      std::sort(got.begin(), got.end());
      ASSERT_EQ(got, want) << "filter \"" << filter << '"';
    }
  };
  check(1000);

  for (auto it = topics.begin(); it != topics.end();) {
    if (gen.Below(2) == 0) {
      EXPECT_TRUE(tree.Erase(*it));
      it = topics.erase(it);
    } else {
      ++it;
    }
  }
  ASSERT_EQ(tree.size(), topics.size());
  check(1000);
  for (const std::string& t : topics) EXPECT_TRUE(tree.Erase(t));
  EXPECT_TRUE(tree.empty());
  EXPECT_EQ(tree.NodeCount(), 0u);
}

}  // namespace
}  // namespace shardmq::topic
