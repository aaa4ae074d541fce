#include "broker/net/worker.h"

#include <pthread.h>

#include <string>

#include "common/log.h"

namespace shardmq::broker::net {
namespace {
thread_local Worker* t_current = nullptr;
}

Worker::Worker(int index) : index_(index), guard_(boost::asio::make_work_guard(io_)) {}

Worker::~Worker() {
  Stop();
  Join();
}

void Worker::Start() {
  thread_ = std::thread([this] {
    t_current = this;
    std::string name = "shardmq-w" + std::to_string(index_);
    pthread_setname_np(pthread_self(), name.c_str());
    io_.run();
    t_current = nullptr;
  });
}

void Worker::Stop() {
  guard_.reset();
  io_.stop();
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

Worker* Worker::Current() { return t_current; }

}  // namespace shardmq::broker::net
