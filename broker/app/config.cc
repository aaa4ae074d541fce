#include "broker/app/config.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <google/protobuf/util/json_util.h>

#include "cluster/etcd_client.h"
#include "common/host_port.h"
#include "common/log.h"
#include "common/topic.h"

namespace shardmq::broker::app {

absl::StatusOr<config::Config> ParseConfig(const std::string& json) {
  config::Config cfg;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(json, &cfg, opts);
  if (!st.ok()) {
    return absl::InvalidArgumentError("config: " + std::string(st.message()));
  }
  return cfg;
}

absl::StatusOr<config::Config> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("config file " + path + ": cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  auto cfg = ParseConfig(ss.str());
  if (!cfg.ok()) {
    return absl::InvalidArgumentError(path + ": " + std::string(cfg.status().message()));
  }
  return cfg;
}

void ApplyDefaults(config::Config* c) {
  if (!c->has_node_id()) {
    char host[256] = {0};
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == 0) std::snprintf(host, 8, "shardmq");
    c->set_node_id(host);
  }
  if (!c->has_data_dir()) c->set_data_dir("./data");
  if (!c->has_workers()) c->set_workers(0);
  if (!c->has_log_level()) c->set_log_level("info");
  config::MqttConfig* m = c->mutable_mqtt();
  if (!m->has_listen()) m->set_listen("127.0.0.1:1883");
  if (!m->has_max_packet_size()) m->set_max_packet_size(1048576);
  if (!m->has_receive_maximum()) m->set_receive_maximum(1024);
  if (!m->has_max_inflight_out()) m->set_max_inflight_out(32);
  if (!m->has_topic_alias_maximum()) m->set_topic_alias_maximum(64);
  if (!m->has_max_keepalive()) m->set_max_keepalive(65535);
  if (!m->has_allow_zero_keepalive()) m->set_allow_zero_keepalive(true);
  if (!m->has_v3_session_expiry()) m->set_v3_session_expiry(0);
  if (!m->has_max_session_expiry()) m->set_max_session_expiry(0);
  if (!m->has_max_queued_messages()) m->set_max_queued_messages(1000);
  if (!m->has_max_queued_bytes()) m->set_max_queued_bytes(100ull << 20);
  if (!m->has_sys_interval()) m->set_sys_interval(10);
  if (!m->has_connect_timeout()) m->set_connect_timeout(10);
  if (!m->has_max_retained_messages()) m->set_max_retained_messages(1000000);
  if (!m->has_max_retained_payload()) m->set_max_retained_payload(1048576);
  config::StorageConfig* st = c->mutable_storage();
  if (!st->has_durability()) st->set_durability("wal");
  if (!st->has_partitions()) st->set_partitions(256);
  config::AdminConfig* a = c->mutable_admin();
  if (!a->has_listen()) a->set_listen("127.0.0.1:8080");
  config::ClusterConfig* cl = c->mutable_cluster();
  if (!cl->has_role()) cl->set_role("all");
  if (!cl->has_cluster_addr()) cl->set_cluster_addr("127.0.0.1:7883");
  if (!cl->has_lease_ttl()) cl->set_lease_ttl(5);
  if (!cl->has_etcd_prefix()) cl->set_etcd_prefix("/shardmq/");
  if (!cl->has_vnodes()) cl->set_vnodes(128);
  if (!cl->has_drain_timeout()) cl->set_drain_timeout(30);
  if (!cl->has_qos0_overload()) cl->set_qos0_overload("hold");
  // "http://host:port" -> "host:port", and comma-separated entries split (the --etcd flag).
  // An entry that does not parse is kept as written, for ValidateConfig to name.
  std::vector<std::string> endpoints;
  for (const std::string& e : cl->etcd()) {
    auto parsed = cluster::ParseEtcdEndpoints(e);
    if (parsed.ok()) {
      endpoints.insert(endpoints.end(), parsed->begin(), parsed->end());
    } else {
      endpoints.push_back(e);
    }
  }
  cl->clear_etcd();
  for (std::string& e : endpoints) cl->add_etcd(std::move(e));
}

namespace {
absl::Status Range(const char* field, uint64_t value, uint64_t lo, uint64_t hi) {
  if (value < lo || value > hi) {
    return absl::InvalidArgumentError("config field " + std::string(field) + " = " +
                                      std::to_string(value) + " is out of bounds [" +
                                      std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return absl::OkStatus();
}
absl::Status Address(const char* field, const std::string& value) {
  auto hp = ParseHostPort(value);
  if (!hp.ok()) {
    return absl::InvalidArgumentError("config field " + std::string(field) + ": " +
                                      std::string(hp.status().message()));
  }
  return absl::OkStatus();
}
}  // namespace

absl::Status ValidateConfig(const config::Config& c) {
  const config::MqttConfig& m = c.mqtt();
  SHARDMQ_RETURN_IF_ERROR(Range("workers", c.workers(), 0, 256));
  log::Level level;
  if (!log::ParseLevel(c.log_level(), &level)) {
    return absl::InvalidArgumentError("config field log_level = \"" + c.log_level() +
                                      "\" is not one of debug, info, warning, error");
  }
  if (c.data_dir().empty()) return absl::InvalidArgumentError("config field data_dir is empty");
  SHARDMQ_RETURN_IF_ERROR(Address("mqtt.listen", m.listen()));
  SHARDMQ_RETURN_IF_ERROR(Address("admin.listen", c.admin().listen()));
  SHARDMQ_RETURN_IF_ERROR(Range("mqtt.max_packet_size", m.max_packet_size(), 64, 268435460));
  SHARDMQ_RETURN_IF_ERROR(Range("mqtt.receive_maximum", m.receive_maximum(), 1, 65535));
  SHARDMQ_RETURN_IF_ERROR(Range("mqtt.max_inflight_out", m.max_inflight_out(), 1, 65535));
  SHARDMQ_RETURN_IF_ERROR(Range("mqtt.topic_alias_maximum", m.topic_alias_maximum(), 0, 65535));
  SHARDMQ_RETURN_IF_ERROR(Range("mqtt.max_keepalive", m.max_keepalive(), 1, 65535));
  SHARDMQ_RETURN_IF_ERROR(Range("mqtt.max_queued_messages", m.max_queued_messages(), 1, 10000000));
  SHARDMQ_RETURN_IF_ERROR(Range("mqtt.connect_timeout", m.connect_timeout(), 1, 3600));
  SHARDMQ_RETURN_IF_ERROR(Range("mqtt.sys_interval", m.sys_interval(), 0, 86400));
  for (int i = 0; i < m.latest_only_filters_size(); ++i) {
    const std::string& f = m.latest_only_filters(i);
    if (!topic::IsValidFilter(f)) {
      return absl::InvalidArgumentError("config field mqtt.latest_only_filters[" +
                                        std::to_string(i) + "] = \"" + f +
                                        "\" is not a valid topic filter");
    }
  }
  const config::StorageConfig& st = c.storage();
  if (st.has_durability() && st.durability() != "wal" && st.durability() != "fsync") {
    return absl::InvalidArgumentError("config field storage.durability = \"" + st.durability() +
                                      "\" is not one of wal, fsync");
  }
  if (st.has_partitions()) {
    SHARDMQ_RETURN_IF_ERROR(Range("storage.partitions", st.partitions(), 1, 65536));
  }
  const config::ClusterConfig& cl = c.cluster();
  if (cl.has_role() && cl.role() != "all" && cl.role() != "frontend" && cl.role() != "store") {
    return absl::InvalidArgumentError("config field cluster.role = \"" + cl.role() +
                                      "\" is not one of all, frontend, store");
  }
  if (cl.has_cluster_addr()) SHARDMQ_RETURN_IF_ERROR(Address("cluster.cluster_addr", cl.cluster_addr()));
  for (int i = 0; i < cl.etcd_size(); ++i) {
    auto hp = ParseHostPort(cl.etcd(i));
    if (!hp.ok() || hp->port == 0) {
      return absl::InvalidArgumentError("config field cluster.etcd[" + std::to_string(i) +
                                        "] = \"" + cl.etcd(i) + "\" is not HOST:PORT");
    }
  }
  if (cl.has_lease_ttl()) SHARDMQ_RETURN_IF_ERROR(Range("cluster.lease_ttl", cl.lease_ttl(), 2, 60));
  if (cl.has_vnodes()) SHARDMQ_RETURN_IF_ERROR(Range("cluster.vnodes", cl.vnodes(), 1, 1024));
  if (cl.has_drain_timeout()) {
    SHARDMQ_RETURN_IF_ERROR(Range("cluster.drain_timeout", cl.drain_timeout(), 0, 3600));
  }
  if (cl.has_qos0_overload() && cl.qos0_overload() != "hold" && cl.qos0_overload() != "drop") {
    return absl::InvalidArgumentError("config field cluster.qos0_overload = \"" +
                                      cl.qos0_overload() + "\" is not one of hold, drop");
  }
  if (cl.has_etcd_prefix() &&
      (cl.etcd_prefix().size() < 2 || cl.etcd_prefix().front() != '/' ||
       cl.etcd_prefix().back() != '/')) {
    return absl::InvalidArgumentError("config field cluster.etcd_prefix = \"" +
                                      cl.etcd_prefix() + "\" must start and end with /");
  }
  if (cl.role() == "frontend" && cl.etcd_size() == 0) {
    return absl::InvalidArgumentError(
        "config field cluster.role = \"frontend\" needs cluster.etcd: a front-end alone has "
        "nowhere to send publishes");
  }
  return absl::OkStatus();
}

}  // namespace shardmq::broker::app
