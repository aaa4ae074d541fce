// A network worker: one thread running one Boost.Asio io_context. Connections are pinned to the
// worker that accepted them for life; work crosses workers only by Post() (one lock per posted
// batch inside Asio, never per message: callers batch).
#pragma once

#include <atomic>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace shardmq::broker::net {

class Worker {
 public:
  explicit Worker(int index);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  int index() const { return index_; }
  boost::asio::io_context& io() { return io_; }

  void Start();
  // Lets the loop finish once it has no more work; Join() waits for the thread.
  void Stop();
  void Join();

  // Runs `fn` on this worker's thread (FIFO among tasks posted from one thread).
  template <typename Fn>
  void Post(Fn&& fn) {
    boost::asio::post(io_, std::forward<Fn>(fn));
  }

  // The worker whose thread is calling, or nullptr on other threads.
  static Worker* Current();

 private:
  const int index_;
  boost::asio::io_context io_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread thread_;
};

}  // namespace shardmq::broker::net
