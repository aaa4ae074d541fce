// A std::deque that allocates nothing until the first element arrives. libstdc++'s deque
// allocates its map and a 512-byte node in its default constructor; a session of an idle
// connection has an empty queue, and a broker holds hundreds of thousands of them.
#pragma once

#include <deque>
#include <memory>

namespace shardmq::broker::session {

template <typename T>
class LazyDeque {
 public:
  using iterator = typename std::deque<T>::iterator;
  using const_iterator = typename std::deque<T>::const_iterator;

  bool empty() const { return d_ == nullptr || d_->empty(); }
  size_t size() const { return d_ == nullptr ? 0 : d_->size(); }
  iterator begin() { return d_ == nullptr ? iterator() : d_->begin(); }
  iterator end() { return d_ == nullptr ? iterator() : d_->end(); }
  const_iterator begin() const { return d_ == nullptr ? const_iterator() : d_->cbegin(); }
  const_iterator end() const { return d_ == nullptr ? const_iterator() : d_->cend(); }
  T& front() { return d_->front(); }
  T& back() { return d_->back(); }
  void pop_back() { d_->pop_back(); }
  void push_back(T value) {
    if (d_ == nullptr) d_ = std::make_unique<std::deque<T>>();
    d_->push_back(std::move(value));
  }
  void pop_front() { d_->pop_front(); }
  void erase(iterator first, iterator last) {
    if (d_ != nullptr) d_->erase(first, last);
  }

 private:
  std::unique_ptr<std::deque<T>> d_;
};

}  // namespace shardmq::broker::session
