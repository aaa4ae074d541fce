// Filter/topic match expectations shared by topic_test.cc (topic::Matches) and
// topic_tree_test.cc (FilterTrie, TopicTree): MQTT s4.7 examples plus edge cases.
#pragma once

#include <string_view>

namespace shardmq::topic::testdata {

struct MatchCase {
  std::string_view filter;
  std::string_view topic;
  bool match;
};

inline constexpr MatchCase kMatchCases[] = {
    // s4.7.1.2: multi-level wildcard.
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/tennis/player1/#", "sport/tennis/player2", false},
    {"sport/tennis/player1/#", "sport/tennis", false},
    {"sport/#", "sport", true},
    {"sport/#", "sport/", true},
    {"sport/#", "sports", false},
    {"#", "sport", true},
    {"#", "sport/tennis/player1", true},
    {"#", "/", true},
    {"#", "/a", true},
    // s4.7.1.3: single-level wildcard.
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"+", "sport", true},
    {"+", "/finance", false},
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+/+", "/", true},
    {"+", "/", false},
    {"+/tennis/#", "sport/tennis", true},
    {"+/tennis/#", "sport/tennis/player1/ranking", true},
    {"+/tennis/#", "sport/golf", false},
    {"sport/+/player1", "sport/tennis/player1", true},
    {"sport/+/player1", "sport//player1", true},
    {"sport/+/player1", "sport/tennis/player2", false},
    // s4.7.2: '$' topics.
    {"#", "$SYS/monitor/Clients", false},
    {"#", "$SYS", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"+", "$SYS", false},
    {"+/#", "$SYS/x", false},
    {"$SYS/#", "$SYS/monitor/Clients", true},
    {"$SYS/#", "$SYS/x", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"$SYS/+", "$SYS/x", true},
    {"$SYS", "$SYS", true},
    {"a/$SYS", "a/$SYS", true},
    {"+/$SYS", "a/$SYS", true},
    {"a/+", "a/$x", true},  // only the first level is special
    {"a/#", "a/$x/y", true},
    // s4.7.3: case sensitive, spaces are characters, "/" makes a level.
    {"ACCOUNTS", "Accounts", false},
    {"Accounts payable", "Accounts payable", true},
    {"/finance", "finance", false},
    {"finance", "/finance", false},
    // Empty levels.
    {"a//b", "a//b", true},
    {"a//b", "a/b", false},
    {"a/+/b", "a//b", true},
    {"a/+", "a/", true},
    {"a/+", "a", false},
    {"a/+/+", "a/b", false},
    {"a/#", "a", true},
    {"a/#", "a/", true},
    {"a/#", "a//", true},
    {"a/b/#", "a", false},
    {"a/", "a", false},
    {"a", "a/", false},
    {"/", "/", true},
    {"/#", "/", true},
    {"/#", "a", false},
    {"+/#", "a", true},
    {"+/+/#", "a", false},
    // Exact.
    {"a/b/c", "a/b/c", true},
    {"a/b/c", "a/b", false},
    {"a/b", "a/b/c", false},
    {"a/b/c", "a/b/d", false},
};

}  // namespace shardmq::topic::testdata
