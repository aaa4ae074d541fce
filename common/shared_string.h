// An immutable string shared by reference count: copying one copies a pointer, not the bytes.
// For identifiers copied on the per-message path (the client id of every delivery), where a
// std::string copy would allocate (ids longer than the 15-byte small-string buffer) on the
// routing worker and free on the session's worker. It also carries its StringHash, computed
// once, so hash-map look-ups by it (StringMap::find(s, s.hash())) do not hash the bytes again.
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <string_view>

#include "common/string_map.h"

namespace shardmq {

class SharedString {
 public:
  SharedString() = default;
  SharedString(std::string s)  // NOLINT(google-explicit-constructor): a string is a value
      : p_(s.empty() ? nullptr : std::make_shared<const Rep>(std::move(s))) {}
  SharedString(const char* s) : SharedString(std::string(s)) {}  // NOLINT

  const std::string& str() const { return p_ ? p_->s : Empty().s; }
  operator const std::string&() const { return str(); }  // NOLINT: reads as the string
  operator std::string_view() const { return str(); }    // NOLINT
  std::string_view view() const { return str(); }
  bool empty() const { return str().empty(); }
  size_t size() const { return str().size(); }
  // StringHash{}(view()), computed when the string was made.
  size_t hash() const { return p_ ? p_->hash : Empty().hash; }

  friend bool operator==(const SharedString& a, const SharedString& b) {
    return a.p_ == b.p_ || a.str() == b.str();
  }
  friend bool operator==(const SharedString& a, std::string_view b) { return a.view() == b; }
  friend bool operator==(const SharedString& a, const std::string& b) { return a.str() == b; }
  friend bool operator==(const SharedString& a, const char* b) { return a.view() == b; }
  friend bool operator<(const SharedString& a, const SharedString& b) { return a.str() < b.str(); }
  friend std::ostream& operator<<(std::ostream& os, const SharedString& s) { return os << s.str(); }

 private:
  struct Rep {
    explicit Rep(std::string v) : s(std::move(v)), hash(StringHash{}(s)) {}
    std::string s;
    size_t hash;
  };
  static const Rep& Empty() {
    static const Rep empty{std::string()};
    return empty;
  }
  std::shared_ptr<const Rep> p_;
};

}  // namespace shardmq
