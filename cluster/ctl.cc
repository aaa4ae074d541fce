#include "cluster/ctl.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/etcd_client.h"
#include "cluster/membership.h"
#include "cluster/node_server.h"
#include "cluster/records_json.h"

namespace shardmq::cluster {
namespace {

constexpr const char* kUsage = R"(Usage: shardmq ctl status --etcd ENDPOINTS [--prefix PREFIX] [--json]
       shardmq ctl drain NODE --etcd ENDPOINTS [--prefix PREFIX] [--wait] [--timeout SECONDS]
       shardmq ctl undrain NODE --etcd ENDPOINTS [--prefix PREFIX]
       shardmq ctl remove NODE --etcd ENDPOINTS [--prefix PREFIX]

status   the cluster kept in etcd under PREFIX (default /shardmq/): the partition count, the
         controller, the partition map's revision, every store and live node with its role,
         addresses, the partitions it leads and the map revision it has applied (asked over
         its gRPC port), and the partition moves in progress.
drain    marks store node NODE as draining: the controller moves its partitions to the other
         store nodes. With --wait, returns once NODE leads none (exit 1 after --timeout,
         default 60 s). A node that is not alive keeps its partitions until it returns.
undrain  marks NODE active again: it takes its share of the partitions back.
remove   takes store node NODE, which must not be alive, out of the ring for good: its
         partitions are placed on the other store nodes at once (new epochs), and what its disk
         holds for them is not served any more (no replicas). For a node that is lost and not
         coming back; a live node is drained instead. If NODE is started again, it rejoins as
         a new store node.

  --etcd ENDPOINTS   comma-separated HOST:PORT list (an http:// prefix is accepted)
  --prefix PREFIX    the cluster's etcd key prefix (cluster.etcd_prefix)
  --json             status: one JSON object instead of the table
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

int Status(EtcdClient& etcd, const std::string& endpoint, const std::string& prefix, bool json) {
  auto all = etcd.GetPrefix(prefix);
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
      have_meta = RecordFromJson(kv.value, &meta);
    } else if (name == "partition_map") {
      if (RecordFromJson(kv.value, &map)) map_revision = kv.mod_revision;
    } else if (name == "controller") {
      v1::ControllerRecord c;
      if (RecordFromJson(kv.value, &c)) controller = c.node_id();
    } else if (name.starts_with("members/")) {
      v1::MemberRecord m;
      if (!RecordFromJson(kv.value, &m)) continue;
      NodeRow& r = rows[m.node_id()];
      r.id = m.node_id();
      r.role = m.role();
      r.alive = true;
      r.cluster_addr = m.cluster_addr();
      r.mqtt_addr = m.mqtt_addr();
    } else if (name.starts_with("stores/")) {
      v1::StoreRecord s;
      if (!RecordFromJson(kv.value, &s)) continue;
      NodeRow& r = rows[s.node_id()];
      r.id = s.node_id();
      r.store_state = s.state() == v1::StoreRecord::DRAINING ? "draining" : "active";
    }
  }
  if (!have_meta) {
    std::fprintf(stderr, "shardmq ctl: no cluster under %s in etcd %s\n", prefix.c_str(),
                 endpoint.c_str());
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
    out += "],\"leaders\":[";  // index = partition
    for (int i = 0; i < map.assignments_size(); ++i) {
      out += (i ? "," : "") + Json(map.assignments(i).leader());
    }
    out += "],\"epochs\":[";
    for (int i = 0; i < map.assignments_size(); ++i) {
      out += (i ? "," : "") + std::to_string(map.assignments(i).epoch());
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

// drain / undrain: sets the node's store record state with a compare-and-swap.
int SetStoreState(EtcdClient& etcd, const std::string& prefix, const std::string& node,
                  v1::StoreRecord::State state) {
  const std::string key = prefix + "stores/" + node;
  for (int attempt = 0; attempt < 10; ++attempt) {
    auto current = etcd.Get(key);
    if (!current.ok()) {
      std::fprintf(stderr, "shardmq ctl: %s\n", std::string(current.status().message()).c_str());
      return 1;
    }
    v1::StoreRecord rec;
    if (current->kvs.empty() || !RecordFromJson(current->kvs[0].value, &rec)) {
      std::fprintf(stderr, "shardmq ctl: %s is not a store node of the cluster under %s\n",
                   node.c_str(), prefix.c_str());
      return 1;
    }
    rec.set_state(state);
    auto written = etcd.CompareAndPut(key, RecordToJson(rec), current->kvs[0].mod_revision);
    if (!written.ok()) {
      std::fprintf(stderr, "shardmq ctl: %s\n", std::string(written.status().message()).c_str());
      return 1;
    }
    if (*written) return 0;  // else the record changed meanwhile: read it again
  }
  std::fprintf(stderr, "shardmq ctl: %s keeps changing; try again\n", key.c_str());
  return 1;
}

int Drain(EtcdClient& etcd, const std::string& prefix, const std::string& node, bool undrain,
          bool wait, int timeout_s) {
  int rc = SetStoreState(etcd, prefix, node,
                         undrain ? v1::StoreRecord::ACTIVE : v1::StoreRecord::DRAINING);
  if (rc != 0) return rc;
  std::printf("%s: %s\n", node.c_str(), undrain ? "active" : "draining");
  auto member = etcd.Get(prefix + "members/" + node);
  if (!undrain && member.ok() && member->kvs.empty()) {
    std::printf("%s is not alive: its partitions stay until it returns (no replicas)\n",
                node.c_str());
  }
  if (undrain || !wait) return 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  uint32_t led = 0;
  while (true) {
    auto map = etcd.Get(prefix + "partition_map");
    v1::PartitionMapRecord rec;
    if (map.ok() && !map->kvs.empty() && RecordFromJson(map->kvs[0].value, &rec)) {
      led = 0;
      for (const v1::PartitionAssignment& a : rec.assignments()) led += a.leader() == node;
      if (led == 0) {
        std::printf("%s leads no partition (map revision %lld)\n", node.c_str(),
                    static_cast<long long>(map->kvs[0].mod_revision));
        return 0;
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::fprintf(stderr, "shardmq ctl: %s still leads %u partitions after %d s\n", node.c_str(),
               led, timeout_s);
  return 1;
}

int Remove(EtcdClient& etcd, const std::string& prefix, const std::string& node) {
  auto member = etcd.Get(prefix + "members/" + node);
  if (!member.ok()) {
    std::fprintf(stderr, "shardmq ctl: %s\n", std::string(member.status().message()).c_str());
    return 1;
  }
  if (!member->kvs.empty()) {
    std::fprintf(stderr,
                 "shardmq ctl remove: %s is alive; drain it instead (shardmq ctl drain %s)\n",
                 node.c_str(), node.c_str());
    return 1;
  }
  const std::string key = prefix + "stores/" + node;
  auto current = etcd.Get(key);
  if (!current.ok()) {
    std::fprintf(stderr, "shardmq ctl: %s\n", std::string(current.status().message()).c_str());
    return 1;
  }
  if (current->kvs.empty()) {
    std::fprintf(stderr, "shardmq ctl: %s is not a store node of the cluster under %s\n",
                 node.c_str(), prefix.c_str());
    return 1;
  }
  auto removed = etcd.CompareAndDelete(key, current->kvs[0].mod_revision);
  if (!removed.ok() || !*removed) {
    std::fprintf(stderr, "shardmq ctl: %s changed meanwhile; try again\n", key.c_str());
    return 1;
  }
  std::printf("%s: removed; the controller places its partitions on the other store nodes\n",
              node.c_str());
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
  std::string node;
  bool json = false;
  bool wait = false;
  int timeout_s = 60;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (!arg.starts_with("--") && node.empty() &&
        (command == "drain" || command == "undrain" || command == "remove")) {
      node = arg;
      continue;
    }
    std::optional<std::string> value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    if (arg == "--json") {
      json = true;
      continue;
    }
    if (arg == "--wait") {
      wait = true;
      continue;
    }
    if (arg != "--etcd" && arg != "--prefix" && arg != "--timeout") {
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
    } else if (arg == "--timeout") {
      timeout_s = std::atoi(value->c_str());
      if (timeout_s <= 0) {
        std::fprintf(stderr, "shardmq ctl: --timeout must be a positive number of seconds\n");
        return 2;
      }
    } else {
      prefix = *value;
    }
  }
  if (command != "status" && command != "drain" && command != "undrain" &&
      command != "remove") {
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
  if (command != "status" && node.empty()) {
    std::fprintf(stderr, "shardmq ctl %s: which node? (shardmq ctl %s NODE --etcd ...)\n",
                 command.c_str(), command.c_str());
    return 2;
  }
  EtcdOptions eo;
  eo.endpoints = *endpoints;
  auto client = EtcdClient::Connect(eo);
  if (!client.ok()) {
    std::fprintf(stderr, "shardmq ctl: %s\n", std::string(client.status().message()).c_str());
    return 1;
  }
  if (command == "status") return Status(**client, endpoints->front(), prefix, json);
  if (command == "remove") return Remove(**client, prefix, node);
  return Drain(**client, prefix, node, command == "undrain", wait, timeout_s);
}

}  // namespace shardmq::cluster
