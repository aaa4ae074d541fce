// $SYS/broker/... statistics, published retained by the broker every mqtt.sys_interval seconds
// (names follow Mosquitto's, so existing dashboards work).
#pragma once

#include <memory>

#include <boost/asio/steady_timer.hpp>

namespace shardmq::broker::session {

class BrokerCore;

// Runs on worker 0; Start and Stop must be called there.
class SysTopics {
 public:
  explicit SysTopics(BrokerCore& broker);
  void Start();
  void Stop();

 private:
  void PublishAll();
  void Arm();

  BrokerCore& broker_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
};

}  // namespace shardmq::broker::session
