#include "storage/retained_index.h"

#include <utility>

namespace shardmq::storage {

absl::Status RetainedIndex::Set(const records::Message& message) {
  std::lock_guard lock(mu_);
  if (message.payload().empty()) {  // MQTT s3.3.1.3: a zero-byte retained message clears the topic
    tree_.Erase(message.topic());
    return absl::OkStatus();
  }
  if (limits_.max_payload_bytes != 0 && message.payload().size() > limits_.max_payload_bytes) {
    return absl::ResourceExhaustedError("retained payload larger than max_payload_bytes");
  }
  if (limits_.max_messages != 0 && tree_.size() >= limits_.max_messages &&
      tree_.Get(message.topic()) == nullptr) {
    return absl::ResourceExhaustedError("retained message limit reached");
  }
  tree_.Set(message.topic(), message);
  return absl::OkStatus();
}

std::vector<records::Message> RetainedIndex::Match(std::string_view filter, int64_t now_ms,
                                                   std::vector<std::string>* expired) {
  std::lock_guard lock(mu_);
  std::vector<records::Message> out;
  std::vector<std::string> gone;
  tree_.ForEachMatching(filter, [&](std::string_view topic, const records::Message& m) {
    // expiry_at_ms 0 = never; a message expires at exactly its expiry time.
    if (m.expiry_at_ms() != 0 && now_ms >= 0 && m.expiry_at_ms() <= static_cast<uint64_t>(now_ms)) {
      gone.emplace_back(topic);
    } else {
      out.push_back(m);
    }
  });
  // Erase after the walk: the tree must not change while ForEachMatching runs.
  for (const std::string& topic : gone) tree_.Erase(topic);
  if (expired != nullptr) {
    for (std::string& topic : gone) expired->push_back(std::move(topic));
  }
  return out;
}

std::vector<records::Message> RetainedIndex::All(int64_t now_ms) {
  std::lock_guard lock(mu_);
  std::vector<records::Message> out;
  out.reserve(tree_.size());
  tree_.ForEach([&](std::string_view, const records::Message& m) {
    if (m.expiry_at_ms() == 0 || now_ms < 0 || m.expiry_at_ms() > static_cast<uint64_t>(now_ms)) {
      out.push_back(m);
    }
  });
  return out;
}

std::vector<std::string> RetainedIndex::Topics() {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  out.reserve(tree_.size());
  tree_.ForEach([&](std::string_view topic, const records::Message&) { out.emplace_back(topic); });
  return out;
}

size_t RetainedIndex::Count() {
  std::lock_guard lock(mu_);
  return tree_.size();
}

}  // namespace shardmq::storage
