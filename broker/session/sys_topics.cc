#include "broker/session/sys_topics.h"

#include <string>

#include "broker/session/broker_core.h"
#include "broker/session/session.h"

#ifndef SHARDMQ_VERSION
#define SHARDMQ_VERSION "0.0.0"
#endif

namespace shardmq::broker::session {

SysTopics::SysTopics(BrokerCore& broker) : broker_(broker) {}

void SysTopics::Start() {
  timer_ = std::make_unique<boost::asio::steady_timer>(broker_.core(0).worker().io());
  PublishAll();
  Arm();
}

void SysTopics::Stop() { timer_.reset(); }

void SysTopics::Arm() {
  timer_->expires_after(std::chrono::seconds(broker_.mqtt().sys_interval()));
  timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec || !timer_) return;
    PublishAll();
    Arm();
  });
}

void SysTopics::PublishAll() {
  WorkerCore& core = broker_.core(0);
  BrokerCore::Totals t = broker_.GetTotals();
  int64_t uptime_s = (broker_.clock().NowMs() - broker_.started_at_ms()) / 1000;
  auto publish = [&](const char* name, std::string value) {
    auto m = std::make_shared<Message>();
    m->topic = std::string("$SYS/broker/") + name;
    m->payload = std::move(value);
    m->qos = 0;
    m->retain = true;
    core.Publish(std::move(m));
  };
  publish("version", std::string("shardmq ") + SHARDMQ_VERSION);
  publish("uptime", std::to_string(uptime_s) + " seconds");
  publish("clients/connected", std::to_string(t.clients_connected));
  publish("messages/received", std::to_string(t.messages_received));
  publish("messages/sent", std::to_string(t.messages_sent));
  publish("bytes/received", std::to_string(t.bytes_received));
  publish("bytes/sent", std::to_string(t.bytes_sent));
  publish("subscriptions/count", std::to_string(t.subscriptions));
  publish("sessions/count", std::to_string(t.sessions));
  publish("messages/dropped", std::to_string(t.dropped));
  publish("retained messages/count", std::to_string(broker_.retained().Count()));
}

void BrokerCore::StartSysTopics() {
  if (mqtt().sys_interval() == 0) return;
  sys_ = std::make_unique<SysTopics>(*this);
  core(0).worker().Post([this] { sys_->Start(); });
}

void BrokerCore::StopSysTopics() {
  if (sys_) sys_->Stop();
}

}  // namespace shardmq::broker::session
