// The MQTT 5 subscription identifiers of one delivery: none or one in almost every case (one
// matching subscription), more only when several subscriptions of a session match. Held inline
// for zero or one id (12 bytes, no allocation); more go to a heap array. Every queued message of
// every session carries one, so its size is the queue's memory per message.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>

#include "absl/types/span.h"

namespace shardmq::broker::session {

class SubscriptionIds {
 public:
  SubscriptionIds() = default;
  SubscriptionIds(std::initializer_list<uint32_t> ids) {
    for (uint32_t id : ids) push_back(id);
  }
  SubscriptionIds(const SubscriptionIds& other) { *this = other; }
  SubscriptionIds(SubscriptionIds&& other) noexcept : heap_(other.heap_), one_(other.one_) {
    other.heap_ = nullptr;
    other.one_ = 0;
  }
  SubscriptionIds& operator=(const SubscriptionIds& other) {
    if (this == &other) return *this;
    clear();
    for (uint32_t id : other) push_back(id);
    return *this;
  }
  SubscriptionIds& operator=(SubscriptionIds&& other) noexcept {
    if (this == &other) return *this;
    delete[] heap_;
    heap_ = other.heap_;
    one_ = other.one_;
    other.heap_ = nullptr;
    other.one_ = 0;
    return *this;
  }
  ~SubscriptionIds() { delete[] heap_; }

  // Identifiers are 1..268,435,455 (MQTT 5 s3.8.2.1.2); 0 means "none" and is not stored.
  void push_back(uint32_t id) {
    if (id == 0) return;
    if (heap_ == nullptr && one_ == 0) {
      one_ = id;
      return;
    }
    // heap_[0] is the count, the ids follow. Grows by one each time: more than two matching
    // subscriptions per session is rare enough not to need a capacity.
    const uint32_t n = size();
    uint32_t* grown = new uint32_t[n + 2];
    grown[0] = n + 1;
    std::memcpy(grown + 1, data(), n * sizeof(uint32_t));
    grown[n + 1] = id;
    delete[] heap_;
    heap_ = grown;
    one_ = 0;
  }
  void clear() {
    delete[] heap_;
    heap_ = nullptr;
    one_ = 0;
  }

  uint32_t size() const { return heap_ != nullptr ? heap_[0] : (one_ != 0 ? 1 : 0); }
  bool empty() const { return size() == 0; }
  const uint32_t* data() const { return heap_ != nullptr ? heap_ + 1 : &one_; }
  const uint32_t* begin() const { return data(); }
  const uint32_t* end() const { return data() + size(); }
  operator absl::Span<const uint32_t>() const { return {data(), size()}; }  // NOLINT

  friend bool operator==(const SubscriptionIds& a, const SubscriptionIds& b) {
    return absl::Span<const uint32_t>(a) == absl::Span<const uint32_t>(b);
  }

 private:
  uint32_t* heap_ = nullptr;  // count then ids, when there are two or more
  uint32_t one_ = 0;          // the only id, when there is exactly one
};

}  // namespace shardmq::broker::session
