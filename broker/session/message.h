// A published message as the broker passes it around: decoded once, immutable, shared by every
// local delivery (std::shared_ptr<const Message>).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "broker/codec/packets.h"
#include "broker/session/subscription_ids.h"
#include "common/shared_string.h"
#include "proto/records.pb.h"

namespace shardmq::broker::session {

struct Message {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  // Pass-through MQTT 5 properties only: payload format indicator, content type, response
  // topic, correlation data, user properties. Message expiry is held as expiry_at_ms.
  codec::Properties properties;
  int64_t expiry_at_ms = 0;  // wall clock ms; 0 = never expires
  std::string publisher;     // client id of the publisher ("" for the broker itself)
  // Cluster mode: the publish's identity (records::Message.origin); 0 = none.
  uint64_t origin = 0;
  uint64_t origin_seq = 0;
  // Durable body: id in storage (0 = not stored) and how many of the stored deliveries it lists
  // are not finished; the one that drops it to zero deletes the body in the same batch.
  uint64_t id = 0;
  mutable std::atomic<int32_t> durable_refs{0};

  Message() = default;
  Message(const Message& other)
      : topic(other.topic),
        payload(other.payload),
        qos(other.qos),
        retain(other.retain),
        properties(other.properties),
        expiry_at_ms(other.expiry_at_ms),
        publisher(other.publisher),
        origin(other.origin),
        origin_seq(other.origin_seq) {}  // a copy is a new, unstored message (same publish)
};
using MessagePtr = std::shared_ptr<const Message>;

// One message for one session, as decided by routing.
struct Delivery {
  SharedString client_id;
  uint64_t session_gen = 0;  // the session instance the route belonged to
  MessagePtr message;
  uint8_t qos = 0;           // after downgrade to the subscription's maximum
  bool retain = false;       // retain flag to send
  bool forwarded = false;    // re-sent by the session's previous worker during a move
  bool retain_on_subscribe = false;  // a retained message sent because of a SUBSCRIBE
  bool durable = false;      // stored: message->id lists this client id as a recipient
  SubscriptionIds subscription_ids;
};

// Conversions to and from the stored form (storage/ records).
records::Message ToRecord(const Message& message);
Message FromRecord(const records::Message& record);

}  // namespace shardmq::broker::session
