// Level tries for MQTT topics, used on the broker hot path.
//
// FilterTrie: subscriptions keyed by topic filter; Match() finds every filter that matches a
// published topic name. TopicTree: values keyed by concrete topic name (retained messages);
// ForEachMatching() finds every stored topic a new subscription's filter matches.
//
// Both follow the rules in common/topic.h (MQTT s4.7): levels split on '/', empty levels are
// levels, '+' is one level, '#' is the rest including the parent ("a/#" matches "a"), and a
// first-level '+' or '#' does not match topics starting with '$' (s4.7.2). Results agree with
// topic::Matches(); tests/common/topic_tree_test.cc cross-checks them on random input.
//
// Every walk uses an explicit stack with inline storage (no recursion), so a client that
// subscribes to or publishes on a 32768-level topic cannot overflow the thread's stack; the
// destructors tear the tree down iteratively for the same reason. Erase prunes nodes left empty,
// so memory follows the live entries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "common/string_map.h"

namespace shardmq::topic {

namespace topic_tree_internal {

// Splits `rest` at its first '/'. Sets `level` to the text before it and `rest` to the text
// after it. Returns false when `level` was the last level (no '/' left).
inline bool NextLevel(std::string_view& rest, std::string_view& level) {
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    level = rest;
    rest = {};
    return false;
  }
  level = rest.substr(0, slash);
  rest = rest.substr(slash + 1);
  return true;
}

inline bool StartsWithDollar(std::string_view s) { return !s.empty() && s.front() == '$'; }

template <typename Node>
using ChildMap = StringMap<std::unique_ptr<Node>>;  // looked up by level, no std::string built

// Inline capacity of the walk stacks: enough for topics up to ~this many levels without
// touching the heap.
inline constexpr size_t kInlineDepth = 32;

}  // namespace topic_tree_internal

// Subscriptions indexed by topic filter: for each filter, a map Key -> Value (e.g. session id ->
// subscription options). Keys are unique per filter, not globally: one key may sit under many
// filters.
//
// Filters passed in are plain (no "$share/" prefix) and valid per topic::IsValidFilter(); the
// trie does not re-validate them. Shared subscriptions are stored by their inner filter (see
// topic::ParseShared); telling groups apart is up to the Key. A pointer returned by Find() stays
// valid until the next Insert() under the same filter or the Erase() of that entry.
//
// Not thread-safe: one instance per worker thread. `fn` passed to Match() must not modify the
// trie.
template <typename Key, typename Value, typename KeyHash = std::hash<Key>>
class FilterTrie {
 private:
  // Spreads weak hashes (std::hash of integers and pointers is the identity) over all bits;
  // absl's tables take their per-slot tag from the low 7 bits.
  struct EntryHash {
    [[no_unique_address]] KeyHash hash;
    size_t operator()(const Key& key) const {
      uint64_t x = static_cast<uint64_t>(hash(key));
      x ^= x >> 33;
      x *= 0xff51afd7ed558ccdULL;  // MurmurHash3 fmix64
      x ^= x >> 33;
      return static_cast<size_t>(x);
    }
  };

 public:
  // The entries of one filter, by key.
  using Entries = absl::flat_hash_map<Key, Value, EntryHash>;

  FilterTrie() = default;
  FilterTrie(const FilterTrie&) = delete;
  FilterTrie& operator=(const FilterTrie&) = delete;
  FilterTrie(FilterTrie&& other) noexcept
      : root_(std::move(other.root_)), size_(std::exchange(other.size_, 0)) {
    other.Clear();  // leaves `other` empty and usable whatever the maps' moved-from state
  }
  FilterTrie& operator=(FilterTrie&& other) noexcept {
    if (this != &other) {
      Clear();
      root_ = std::move(other.root_);
      size_ = std::exchange(other.size_, 0);
      other.Clear();
    }
    return *this;
  }
  ~FilterTrie() { Clear(); }

  // Adds the entry of `key` under `filter`, or replaces its value. Returns true if it was new.
  bool Insert(std::string_view filter, const Key& key, Value value) {
    Node* node = &root_;
    std::string_view rest = filter;
    std::string_view level;
    bool more = true;
    while (more) {
      more = topic_tree_internal::NextLevel(rest, level);
      std::unique_ptr<Node>* slot;
      if (level == "+") {
        slot = &node->plus;
      } else if (level == "#") {
        slot = &node->hash;
      } else {
        auto it = node->children.find(level);
        if (it == node->children.end()) {
          it = node->children.emplace(std::string(level), nullptr).first;
        }
        slot = &it->second;
      }
      if (*slot == nullptr) *slot = std::make_unique<Node>();
      node = slot->get();
    }
    const bool inserted = node->entries.insert_or_assign(key, std::move(value)).second;
    if (inserted) ++size_;
    return inserted;
  }

  // Removes the entry of `key` under `filter`. Returns true if there was one. Nodes left without
  // entries or children are freed.
  bool Erase(std::string_view filter, const Key& key) {
    struct Step {
      Node* parent;
      std::string_view level;  // points into `filter`
    };
    absl::InlinedVector<Step, topic_tree_internal::kInlineDepth> path;
    Node* node = &root_;
    std::string_view rest = filter;
    std::string_view level;
    bool more = true;
    while (more) {
      more = topic_tree_internal::NextLevel(rest, level);
      Node* child = Child(*node, level);
      if (child == nullptr) return false;
      path.push_back(Step{node, level});
      node = child;
    }
    if (node->entries.erase(key) == 0) return false;
    --size_;
    // Prune bottom-up; each freed node is already childless, so no deep destructor recursion.
    for (size_t i = path.size(); i-- > 0;) {
      Node& parent = *path[i].parent;
      const std::string_view lvl = path[i].level;
      if (lvl == "+") {
        if (!parent.plus->Empty()) break;
        parent.plus.reset();
      } else if (lvl == "#") {
        if (!parent.hash->Empty()) break;
        parent.hash.reset();
      } else {
        auto it = parent.children.find(lvl);
        if (!it->second->Empty()) break;
        parent.children.erase(it);
      }
    }
    return true;
  }

  // Returns the value of `key` under `filter`, or nullptr.
  const Value* Find(std::string_view filter, const Key& key) const {
    const Node* node = &root_;
    std::string_view rest = filter;
    std::string_view level;
    bool more = true;
    while (more) {
      more = topic_tree_internal::NextLevel(rest, level);
      node = Child(*node, level);
      if (node == nullptr) return nullptr;
    }
    auto it = node->entries.find(key);
    return it == node->entries.end() ? nullptr : &it->second;
  }

  // Calls fn(const Key&, const Value&) once for every entry whose filter matches `topic` (a
  // valid topic name). Order is unspecified. Does not allocate unless the walk needs more than
  // kInlineDepth pending nodes.
  template <typename Fn>
  void Match(std::string_view topic, Fn&& fn) const {
    MatchFilters(topic, [&fn](const Entries& entries) {
      for (const auto& [key, value] : entries) fn(key, value);
    });
  }

  // Calls fn(const Entries&) once for every filter that matches `topic` and holds entries, with
  // all of that filter's entries. Order is unspecified.
  template <typename Fn>
  void MatchFilters(std::string_view topic, Fn&& fn) const {
    struct Frame {
      const Node* node;
      std::string_view rest;  // the topic levels below `node`, if `more`
      bool more;              // false once every topic level has been consumed
    };
    absl::InlinedVector<Frame, topic_tree_internal::kInlineDepth> stack;
    const bool dollar = topic_tree_internal::StartsWithDollar(topic);
    stack.push_back(Frame{&root_, topic, true});
    while (!stack.empty()) {
      const Frame frame = stack.back();
      stack.pop_back();
      const Node& node = *frame.node;
      if (!frame.more) {
        EmitFilter(node, fn);
        // "a/#" matches "a" (s4.7.1.2).
        if (node.hash != nullptr) EmitFilter(*node.hash, fn);
        continue;
      }
      // s4.7.2: no first-level wildcard for '$' topics.
      const bool wildcards = !(dollar && &node == &root_);
      std::string_view rest = frame.rest;
      std::string_view level;
      const bool more = topic_tree_internal::NextLevel(rest, level);
      if (wildcards && node.hash != nullptr) EmitFilter(*node.hash, fn);
      if (wildcards && node.plus != nullptr) stack.push_back(Frame{node.plus.get(), rest, more});
      if (node.children.empty()) continue;  // skip hashing the level when there is nothing to find
      if (auto it = node.children.find(level); it != node.children.end()) {
        stack.push_back(Frame{it->second.get(), rest, more});
      }
    }
  }

  // Number of (filter, key) entries.
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Number of level nodes below the root. O(nodes): for tests, debugging and memory gauges.
  size_t NodeCount() const {
    size_t count = 0;
    std::vector<const Node*> stack = {&root_};
    while (!stack.empty()) {
      const Node* node = stack.back();
      stack.pop_back();
      for (const auto& [level, child] : node->children) stack.push_back(child.get());
      if (node->plus) stack.push_back(node->plus.get());
      if (node->hash) stack.push_back(node->hash.get());
      count += node->children.size() + (node->plus ? 1 : 0) + (node->hash ? 1 : 0);
    }
    return count;
  }

  // Removes every entry.
  void Clear() {
    std::vector<std::unique_ptr<Node>> pending;
    TakeChildren(root_, pending);
    while (!pending.empty()) {
      std::unique_ptr<Node> node = std::move(pending.back());
      pending.pop_back();
      TakeChildren(*node, pending);
    }  // each node dies childless
    root_.entries.clear();
    size_ = 0;
  }

 private:
  struct Node {
    topic_tree_internal::ChildMap<Node> children;  // literal levels
    std::unique_ptr<Node> plus;                    // the '+' level
    std::unique_ptr<Node> hash;                    // the '#' level (never has children)
    Entries entries;

    bool Empty() const { return entries.empty() && children.empty() && !plus && !hash; }
  };

  // The child of `node` for filter level `level`, or nullptr. Works for const and non-const.
  template <typename N>
  static N* Child(N& node, std::string_view level) {
    if (level == "+") return node.plus.get();
    if (level == "#") return node.hash.get();
    auto it = node.children.find(level);
    return it == node.children.end() ? nullptr : it->second.get();
  }

  static void TakeChildren(Node& node, std::vector<std::unique_ptr<Node>>& out) {
    for (auto& [level, child] : node.children) out.push_back(std::move(child));
    node.children.clear();
    if (node.plus) out.push_back(std::move(node.plus));
    if (node.hash) out.push_back(std::move(node.hash));
  }

  template <typename Fn>
  static void EmitFilter(const Node& node, Fn& fn) {
    if (!node.entries.empty()) fn(node.entries);
  }

  Node root_;
  size_t size_ = 0;
};

// Values indexed by concrete topic name (e.g. retained messages), with filter lookup.
//
// Topics passed to Set/Erase/Get are valid topic names (topic::IsValidTopicName); filters passed
// to ForEachMatching are valid plain filters (topic::IsValidFilter). Neither is re-validated.
// A pointer returned by Get() stays valid until that topic is erased (Set() on the same topic
// replaces the value in place).
//
// Not thread-safe: one instance per worker thread. `fn` passed to ForEachMatching() must not
// modify the tree.
template <typename Value>
class TopicTree {
 public:
  TopicTree() = default;
  TopicTree(const TopicTree&) = delete;
  TopicTree& operator=(const TopicTree&) = delete;
  TopicTree(TopicTree&& other) noexcept
      : root_(std::move(other.root_)), size_(std::exchange(other.size_, 0)) {
    other.Clear();  // leaves `other` empty and usable whatever the maps' moved-from state
  }
  TopicTree& operator=(TopicTree&& other) noexcept {
    if (this != &other) {
      Clear();
      root_ = std::move(other.root_);
      size_ = std::exchange(other.size_, 0);
      other.Clear();
    }
    return *this;
  }
  ~TopicTree() { Clear(); }

  // Stores `value` under `topic`, replacing any previous value.
  void Set(std::string_view topic, Value value) {
    Node* node = &root_;
    std::string_view rest = topic;
    std::string_view level;
    bool more = true;
    while (more) {
      more = topic_tree_internal::NextLevel(rest, level);
      auto it = node->children.find(level);
      if (it == node->children.end()) {
        it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
      }
      node = it->second.get();
    }
    if (node->slot.has_value()) {
      node->slot->value = std::move(value);
    } else {
      node->slot.emplace(Slot{std::string(topic), std::move(value)});
      ++size_;
    }
  }

  // Removes the value of `topic`. Returns true if there was one. Nodes left without a value or
  // children are freed.
  bool Erase(std::string_view topic) {
    struct Step {
      Node* parent;
      std::string_view level;
    };
    absl::InlinedVector<Step, topic_tree_internal::kInlineDepth> path;
    Node* node = &root_;
    std::string_view rest = topic;
    std::string_view level;
    bool more = true;
    while (more) {
      more = topic_tree_internal::NextLevel(rest, level);
      auto it = node->children.find(level);
      if (it == node->children.end()) return false;
      path.push_back(Step{node, level});
      node = it->second.get();
    }
    if (!node->slot.has_value()) return false;
    node->slot.reset();
    --size_;
    // Prune bottom-up; each freed node is already childless, so no deep destructor recursion.
    // `level` views point into `topic`, not into the keys being erased.
    for (size_t i = path.size(); i-- > 0;) {
      Node& parent = *path[i].parent;
      auto it = parent.children.find(path[i].level);
      if (!it->second->Empty()) break;
      parent.children.erase(it);
    }
    return true;
  }

  // Returns the value stored under `topic`, or nullptr.
  const Value* Get(std::string_view topic) const {
    const Node* node = Descend(topic);
    return node != nullptr && node->slot.has_value() ? &node->slot->value : nullptr;
  }

  // Calls fn(std::string_view topic, const Value&) once for every stored topic that `filter`
  // matches. Order is unspecified. The topic view is valid until that topic is erased.
  template <typename Fn>
  void ForEachMatching(std::string_view filter, Fn&& fn) const {
    struct Frame {
      const Node* node;
      std::string_view rest;  // the filter levels below `node`, if `more`
      bool more;              // false once every filter level has been consumed
    };
    absl::InlinedVector<Frame, topic_tree_internal::kInlineDepth> stack;
    stack.push_back(Frame{&root_, filter, true});
    while (!stack.empty()) {
      const Frame frame = stack.back();
      stack.pop_back();
      const Node& node = *frame.node;
      if (!frame.more) {
        Emit(node, fn);
        continue;
      }
      // s4.7.2: first-level wildcards skip '$' topics.
      const bool skip_dollar = &node == &root_;
      std::string_view rest = frame.rest;
      std::string_view level;
      const bool more = topic_tree_internal::NextLevel(rest, level);
      if (level == "#") {
        // This node ("a/#" matches "a") and everything below it.
        EmitSubtree(node, skip_dollar, fn);
      } else if (level == "+") {
        for (const auto& [name, child] : node.children) {
          if (skip_dollar && topic_tree_internal::StartsWithDollar(name)) continue;
          stack.push_back(Frame{child.get(), rest, more});
        }
      } else if (auto it = node.children.find(level); it != node.children.end()) {
        stack.push_back(Frame{it->second.get(), rest, more});
      }
    }
  }

  // Calls fn(std::string_view topic, const Value&) for every stored topic, in unspecified order.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    EmitSubtree(root_, /*skip_dollar=*/false, fn);
  }

  // Number of stored topics.
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Number of level nodes below the root. O(nodes): for tests, debugging and memory gauges.
  size_t NodeCount() const {
    size_t count = 0;
    std::vector<const Node*> stack = {&root_};
    while (!stack.empty()) {
      const Node* node = stack.back();
      stack.pop_back();
      for (const auto& [level, child] : node->children) stack.push_back(child.get());
      count += node->children.size();
    }
    return count;
  }

  // Removes every topic.
  void Clear() {
    std::vector<std::unique_ptr<Node>> pending;
    TakeChildren(root_, pending);
    while (!pending.empty()) {
      std::unique_ptr<Node> node = std::move(pending.back());
      pending.pop_back();
      TakeChildren(*node, pending);
    }  // each node dies childless
    root_.slot.reset();
    size_ = 0;
  }

 private:
  struct Slot {
    std::string topic;  // the full topic name, so matches need not rebuild it from levels
    Value value;
  };

  struct Node {
    topic_tree_internal::ChildMap<Node> children;
    std::optional<Slot> slot;

    bool Empty() const { return !slot.has_value() && children.empty(); }
  };

  const Node* Descend(std::string_view topic) const {
    const Node* node = &root_;
    std::string_view rest = topic;
    std::string_view level;
    bool more = true;
    while (more) {
      more = topic_tree_internal::NextLevel(rest, level);
      auto it = node->children.find(level);
      if (it == node->children.end()) return nullptr;
      node = it->second.get();
    }
    return node;
  }

  template <typename Fn>
  static void Emit(const Node& node, Fn& fn) {
    if (node.slot.has_value()) fn(std::string_view(node.slot->topic), node.slot->value);
  }

  // Emits `top` and all its descendants; with `skip_dollar`, children of `top` whose level
  // starts with '$' (and their subtrees) are left out.
  template <typename Fn>
  static void EmitSubtree(const Node& top, bool skip_dollar, Fn& fn) {
    absl::InlinedVector<const Node*, topic_tree_internal::kInlineDepth> stack;
    Emit(top, fn);
    for (const auto& [name, child] : top.children) {
      if (skip_dollar && topic_tree_internal::StartsWithDollar(name)) continue;
      stack.push_back(child.get());
    }
    while (!stack.empty()) {
      const Node* node = stack.back();
      stack.pop_back();
      Emit(*node, fn);
      for (const auto& [name, child] : node->children) stack.push_back(child.get());
    }
  }

  static void TakeChildren(Node& node, std::vector<std::unique_ptr<Node>>& out) {
    for (auto& [level, child] : node.children) out.push_back(std::move(child));
    node.children.clear();
  }

  Node root_;
  size_t size_ = 0;
};

}  // namespace shardmq::topic
