// The seam between a front-end and the owner of a topic's partition (DESIGN.md sections 3-4).
//
// A publish is handed to the owner of partition(topic), which stores or clears the retained
// message, matches routes and dispatches the deliveries, and reports when the publish's durable
// effects are committed, so the publisher's PUBACK/PUBREC can wait for them. On one node the
// owner is the worker's own core (LocalTopicOwner below: a direct call, no serialisation); in a
// cluster a gRPC client to the partition's leader implements the same interface.
#pragma once

#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "broker/session/message.h"

namespace shardmq::broker::session {

class WorkerCore;

class TopicOwner {
 public:
  using Done = absl::AnyInvocable<void(const absl::Status&)>;
  virtual ~TopicOwner() = default;
  // Takes `message` (decoded once, shared by every local delivery). `done`, if set, runs on the
  // calling worker once every durable effect of the publish is committed, or with the error;
  // the done callbacks of one worker run in the order of their publishes.
  virtual void Publish(std::shared_ptr<Message> message, Done done) = 0;
};

// The in-process owner: this worker's core.
class LocalTopicOwner final : public TopicOwner {
 public:
  explicit LocalTopicOwner(WorkerCore& core) : core_(core) {}
  void Publish(std::shared_ptr<Message> message, Done done) override;

 private:
  WorkerCore& core_;
};

}  // namespace shardmq::broker::session
