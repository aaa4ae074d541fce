#include "cluster/ctl.h"

#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/etcd_client.h"
#include "cluster/membership.h"
#include "cluster/node_server.h"

namespace shardmq::cluster {
namespace {

constexpr const char* kUsage = R"(Usage: shardmq ctl status --etcd ENDPOINTS [--prefix PREFIX] [--json]

Shows the cluster kept in etcd under PREFIX (default /shardmq/): the partition count, the
controller, the partition map's revision, every store and live node with its role, addresses,
the partitions it leads and the map revision it has applied (asked over its gRPC port), and the
partition moves in progress.

  --etcd ENDPOINTS   comma-separated HOST:PORT list (an http:// prefix is accepted)
  --prefix PREFIX    the cluster's etcd key prefix (cluster.etcd_prefix)
  --json             one JSON object instead of the table
)";

std::string Json(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

template <typename M>
bool Parse(const std::string& json, M* m) {
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  return google::protobuf::util::JsonStringToMessage(json, m, opts).ok();
}

struct NodeRow {
  std::string id;
  std::string role = "-";
  bool alive = false;
  std::string cluster_addr = "-";
  std::string mqtt_addr = "-";
  std::string store_state = "-";  // "active", "draining", or "-" (not a store)
  uint32_t led = 0;
  std::optional<int64_t> applied;  // map revision the node reports
  bool controller = false;
};

int Status(const std::vector<std::string>& endpoints, const std::string& prefix, bool json) {
  EtcdOptions eo;
  eo.endpoints = endpoints;
  auto etcd = EtcdClient::Connect(eo);
  if (!etcd.ok()) {
    std::fprintf(stderr, "shardmq ctl: %s\n", std::string(etcd.status().message()).c_str());
    return 1;
  }
  auto all = (*etcd)->GetPrefix(prefix);
  if (!all.ok()) {
    std::fprintf(stderr, "shardmq ctl: %s\n", std::string(all.status().message()).c_str());
    return 1;
  }
  v1::ClusterMeta meta;
  bool have_meta = false;
  v1::PartitionMapRecord map;
  int64_t map_revision = 0;
  std::string controller;
  std::map<std::string, NodeRow> rows;
  for (const EtcdKeyValue& kv : all->kvs) {
    const std::string_view name = std::string_view(kv.key).substr(prefix.size());
    if (name == "meta") {
      have_meta = Parse(kv.value, &meta);
    } else if (name == "partition_map") {
      if (Parse(kv.value, &map)) map_revision = kv.mod_revision;
    } else if (name == "controller") {
      v1::ControllerRecord c;
      if (Parse(kv.value, &c)) controller = c.node_id();
    } else if (name.starts_with("members/")) {
      v1::MemberRecord m;
      if (!Parse(kv.value, &m)) continue;
      NodeRow& r = rows[m.node_id()];
      r.id = m.node_id();
      r.role = m.role();
      r.alive = true;
      r.cluster_addr = m.cluster_addr();
      r.mqtt_addr = m.mqtt_addr();
    } else if (name.starts_with("stores/")) {
      v1::StoreRecord s;
      if (!Parse(kv.value, &s)) continue;
      NodeRow& r = rows[s.node_id()];
      r.id = s.node_id();
      r.store_state = s.state() == v1::StoreRecord::DRAINING ? "draining" : "active";
    }
  }
  if (!have_meta) {
    std::fprintf(stderr, "shardmq ctl: no cluster under %s in etcd %s\n", prefix.c_str(),
                 endpoints.front().c_str());
    return 1;
  }
  for (const v1::PartitionAssignment& a : map.assignments()) {
    if (!a.leader().empty()) {
      NodeRow& r = rows[a.leader()];
      r.id = a.leader();
      ++r.led;
    }
  }
  for (auto& [id, r] : rows) {
    r.controller = id == controller;
    if (!r.alive) continue;
    auto h = QueryHealth(r.cluster_addr, std::chrono::milliseconds(1000));
    if (h.ok()) r.applied = h->map_revision();
  }
  if (json) {
    std::string out = "{\"prefix\":" + Json(prefix) +
                      ",\"partitions\":" + std::to_string(meta.partitions()) +
                      ",\"map_revision\":" + std::to_string(map_revision) +
                      ",\"controller\":" + Json(controller) + ",\"nodes\":[";
    bool first = true;
    for (const auto& [id, r] : rows) {
      if (!first) out += ",";
      first = false;
      out += "{\"node_id\":" + Json(r.id) + ",\"role\":" + Json(r.role) +
             ",\"alive\":" + (r.alive ? "true" : "false") +
             ",\"cluster_addr\":" + Json(r.cluster_addr) + ",\"mqtt_addr\":" + Json(r.mqtt_addr) +
             ",\"store_state\":" + Json(r.store_state) +
             ",\"partitions_led\":" + std::to_string(r.led) + ",\"applied_revision\":" +
             (r.applied ? std::to_string(*r.applied) : std::string("null")) +
             ",\"controller\":" + (r.controller ? "true" : "false") + "}";
    }
    out += "],\"moves\":[";
    first = true;
    for (const v1::PartitionMove& m : map.moves()) {
      if (!first) out += ",";
      first = false;
      out += "{\"partition\":" + std::to_string(m.partition()) + ",\"from\":" + Json(m.from()) +
             ",\"to\":" + Json(m.to()) + "}";
    }
    out += "]}\n";
    std::fputs(out.c_str(), stdout);
    return 0;
  }
  std::printf("cluster %s: %u partitions, map revision %lld, controller %s\n", prefix.c_str(),
              meta.partitions(), static_cast<long long>(map_revision),
              controller.empty() ? "(none)" : controller.c_str());
  std::printf("%-20s %-9s %-6s %-22s %-22s %-9s %10s  %s\n", "NODE", "ROLE", "ALIVE",
              "CLUSTER ADDRESS", "MQTT ADDRESS", "STORE", "PARTITIONS", "MAP APPLIED");
  for (const auto& [id, r] : rows) {
    std::string applied = r.applied ? std::to_string(*r.applied) : (r.alive ? "?" : "-");
    std::printf("%-20s %-9s %-6s %-22s %-22s %-9s %10u  %s%s\n", r.id.c_str(), r.role.c_str(),
                r.alive ? "yes" : "no", r.cluster_addr.c_str(), r.mqtt_addr.c_str(),
                r.store_state.c_str(), r.led, applied.c_str(),
                r.controller ? "  (controller)" : "");
  }
  if (map.moves_size() == 0) {
    std::printf("moves in progress: none\n");
  } else {
    std::printf("moves in progress: %d\n", map.moves_size());
    for (const v1::PartitionMove& m : map.moves()) {
      std::printf("  partition %u: %s -> %s\n", m.partition(), m.from().c_str(), m.to().c_str());
    }
  }
  return 0;
}

}  // namespace

int RunCtl(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  std::optional<std::string> etcd;
  std::string prefix = "/shardmq/";
  bool json = false;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    std::optional<std::string> value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    if (arg == "--json") {
      json = true;
      continue;
    }
    if (arg != "--etcd" && arg != "--prefix") {
      std::fprintf(stderr, "shardmq ctl: unknown argument \"%s\"\n\n%s", argv[i], kUsage);
      return 2;
    }
    if (!value) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "shardmq ctl: %s needs a value\n", arg.c_str());
        return 2;
      }
      value = argv[++i];
    }
    if (arg == "--etcd") {
      etcd = *value;
    } else {
      prefix = *value;
    }
  }
  if (command != "status") {
    std::fprintf(stderr, "shardmq ctl: unknown command \"%s\"\n\n%s", command.c_str(), kUsage);
    return 2;
  }
  if (!etcd) {
    std::fprintf(stderr, "shardmq ctl: --etcd is required\n");
    return 2;
  }
  auto endpoints = ParseEtcdEndpoints(*etcd);
  if (!endpoints.ok()) {
    std::fprintf(stderr, "shardmq ctl: --etcd: %s\n",
                 std::string(endpoints.status().message()).c_str());
    return 2;
  }
  if (prefix.empty() || prefix.front() != '/' || prefix.back() != '/') {
    std::fprintf(stderr, "shardmq ctl: --prefix must start and end with /\n");
    return 2;
  }
  return Status(*endpoints, prefix, json);
}

}  // namespace shardmq::cluster
