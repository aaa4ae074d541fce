// Helpers shared by the storage tests: record builders, a proto matcher and a canonical text form
// of a Snapshot (sorted, so two snapshots compare equal whatever their order of sessions,
// messages or retained messages, and a mismatch prints readably).
#pragma once

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "proto/records.pb.h"
#include "storage/batch.h"
#include "storage/storage.h"

namespace shardmq::storage::fixtures {

MATCHER_P(EqualsProto, expected, "equals " + expected.ShortDebugString()) {
  return google::protobuf::util::MessageDifferencer::Equals(arg, expected);
}

inline records::Session MakeSession(const std::string& client_id, uint64_t disconnected_at = 0) {
  records::Session s;
  s.set_client_id(client_id);
  s.set_protocol_version(5);
  s.set_expiry_interval_s(3600);
  s.set_disconnected_at_ms(disconnected_at);
  return s;
}

inline records::Subscription MakeSub(const std::string& filter, uint32_t qos = 1,
                                     uint32_t subscription_id = 0) {
  records::Subscription sub;
  sub.set_filter(filter);
  sub.set_qos(qos);
  sub.set_subscription_id(subscription_id);
  return sub;
}

inline records::Message MakeMessage(const std::string& topic, const std::string& payload,
                                    uint32_t qos = 1) {
  records::Message m;
  m.set_topic(topic);
  m.set_payload(payload);
  m.set_qos(qos);
  return m;
}

inline records::Will MakeWill(const std::string& client_id, uint32_t delay_s = 5) {
  records::Will w;
  *w.mutable_message() = MakeMessage("wills/" + client_id, "gone-" + client_id);
  w.set_delay_interval_s(delay_s);
  return w;
}

// A queue entry for message `id` (message_id set, as Load returns it).
inline records::QueueEntry MakeEntry(uint64_t id, uint32_t qos = 1,
                                     records::QueueEntry::State state = records::QueueEntry::QUEUED,
                                     uint32_t packet_id = 0) {
  records::QueueEntry e;
  e.set_message_id(id);
  e.set_qos(qos);
  e.set_state(state);
  e.set_packet_id(packet_id);
  return e;
}

// The QUEUED entry Load returns for a recipient (storage::Recipients::Add) of message `id`
// that is neither in flight nor done.
inline records::QueueEntry MakeQueued(uint64_t id, uint32_t qos = 1, bool retain = false,
                                      std::initializer_list<uint32_t> subscription_ids = {}) {
  records::QueueEntry e = MakeEntry(id, qos);
  e.set_retain(retain);
  for (uint32_t sid : subscription_ids) e.add_subscription_ids(sid);
  return e;
}

// Recipients `client_ids`, each with the same delivery options.
inline Recipients RecipientsOf(std::initializer_list<std::string> client_ids, uint32_t qos = 1,
                               bool retain = false) {
  Recipients r;
  for (const std::string& cid : client_ids) r.Add(cid, qos, retain);
  return r;
}

// The stored session of `client_id` in `snapshot`, or nullptr.
inline const StoredSession* FindSession(const Snapshot& snapshot, const std::string& client_id) {
  for (const StoredSession& s : snapshot.sessions) {
    if (s.session.client_id() == client_id) return &s;
  }
  return nullptr;
}

inline std::vector<uint64_t> EntryIds(const StoredSession& s) {
  std::vector<uint64_t> ids;
  for (const auto& [id, entry] : s.entries) ids.push_back(id);
  return ids;
}

inline std::vector<std::string> Filters(const StoredSession& s) {
  std::vector<std::string> out;
  for (const records::Subscription& sub : s.subscriptions) out.push_back(sub.filter());
  std::sort(out.begin(), out.end());
  return out;
}

inline std::vector<std::string> ClientIds(const Snapshot& snapshot) {
  std::vector<std::string> out;
  for (const StoredSession& s : snapshot.sessions) out.push_back(s.session.client_id());
  std::sort(out.begin(), out.end());
  return out;
}

// Canonical text of a snapshot: sessions by client id, subscriptions by filter, entries in their
// (already defined) order, messages by id, retained by topic.
inline std::string Describe(const Snapshot& snapshot) {
  std::map<std::string, std::string> sessions;
  for (const StoredSession& s : snapshot.sessions) {
    std::string text = "session " + s.session.ShortDebugString() + "\n";
    std::vector<std::string> subs;
    for (const records::Subscription& sub : s.subscriptions) {
      subs.push_back("  sub " + sub.ShortDebugString() + "\n");
    }
    std::sort(subs.begin(), subs.end());
    for (const std::string& sub : subs) text += sub;
    if (s.will.has_value()) text += "  will " + s.will->ShortDebugString() + "\n";
    for (const auto& [id, entry] : s.entries) {
      text += "  entry " + std::to_string(id) + " " + entry.ShortDebugString() + "\n";
    }
    for (uint16_t pid : s.incoming_qos2) text += "  qos2 " + std::to_string(pid) + "\n";
    sessions[s.session.client_id()] = text;
  }
  std::string out;
  for (const auto& [cid, text] : sessions) out += text;
  std::map<uint64_t, std::string> messages;
  for (const auto& [id, m] : snapshot.messages) messages[id] = m.ShortDebugString();
  for (const auto& [id, text] : messages)
    out += "message " + std::to_string(id) + " " + text + "\n";
  std::map<std::string, std::string> retained;
  for (const records::Message& m : snapshot.retained) retained[m.topic()] = m.ShortDebugString();
  for (const auto& [topic, text] : retained) out += "retained " + text + "\n";
  out += "max_message_id " + std::to_string(snapshot.max_message_id) + "\n";
  return out;
}

}  // namespace shardmq::storage::fixtures
