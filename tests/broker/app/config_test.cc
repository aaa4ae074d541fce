// Tests of broker/app/config.h: JSON parsing, defaults (checked against the "Default ..." lines
// of proto/config.proto, so the schema's documentation and ApplyDefaults cannot drift apart),
// validation bounds and error messages, and loading from a file.
#include "broker/app/config.h"

#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_util.h"

#ifndef SHARDMQ_CONFIG_PROTO_PATH
#error "SHARDMQ_CONFIG_PROTO_PATH must name proto/config.proto"
#endif

namespace shardmq::broker::app {
namespace {

using ::testing::HasSubstr;

config::Config Defaulted() {
  config::Config c;
  ApplyDefaults(&c);
  return c;
}

// ---------------------------------------------------------------------------------------------
// ParseConfig

TEST(ConfigTest, ParsesSnakeCaseKeys) {
  auto cfg = ParseConfig(R"({
    "node_id": "n1",
    "data_dir": "/var/lib/shardmq",
    "workers": 4,
    "log_level": "debug",
    "mqtt": {
      "listen": "0.0.0.0:1883",
      "max_packet_size": 4096,
      "receive_maximum": 10,
      "max_inflight_out": 20,
      "topic_alias_maximum": 0,
      "max_keepalive": 600,
      "allow_zero_keepalive": false,
      "v3_session_expiry": 7200,
      "max_session_expiry": 86400,
      "max_queued_messages": 50,
      "max_queued_bytes": "123456789012",
      "sys_interval": 0,
      "connect_timeout": 5,
      "max_retained_messages": 0
    },
    "admin": {"listen": "[::1]:9090"}
  })");
  ASSERT_OK(cfg);
  EXPECT_EQ(cfg->node_id(), "n1");
  EXPECT_EQ(cfg->data_dir(), "/var/lib/shardmq");
  EXPECT_EQ(cfg->workers(), 4u);
  EXPECT_EQ(cfg->log_level(), "debug");
  const config::MqttConfig& m = cfg->mqtt();
  EXPECT_EQ(m.listen(), "0.0.0.0:1883");
  EXPECT_EQ(m.max_packet_size(), 4096u);
  EXPECT_EQ(m.receive_maximum(), 10u);
  EXPECT_EQ(m.max_inflight_out(), 20u);
  EXPECT_TRUE(m.has_topic_alias_maximum());  // explicit 0 is kept as set
  EXPECT_EQ(m.topic_alias_maximum(), 0u);
  EXPECT_EQ(m.max_keepalive(), 600u);
  EXPECT_TRUE(m.has_allow_zero_keepalive());
  EXPECT_FALSE(m.allow_zero_keepalive());
  EXPECT_EQ(m.v3_session_expiry(), 7200u);
  EXPECT_EQ(m.max_session_expiry(), 86400u);
  EXPECT_EQ(m.max_queued_messages(), 50u);
  EXPECT_EQ(m.max_queued_bytes(), 123456789012u);
  EXPECT_TRUE(m.has_sys_interval());
  EXPECT_EQ(m.sys_interval(), 0u);
  EXPECT_EQ(m.connect_timeout(), 5u);
  EXPECT_TRUE(m.has_max_retained_messages());
  EXPECT_EQ(m.max_retained_messages(), 0u);
  EXPECT_EQ(cfg->admin().listen(), "[::1]:9090");
  EXPECT_OK(ValidateConfig(*cfg));
}

TEST(ConfigTest, ParsesLowerCamelCaseKeys) {
  auto cfg = ParseConfig(R"({
    "nodeId": "n2",
    "dataDir": "/tmp/d",
    "logLevel": "warning",
    "mqtt": {
      "maxPacketSize": 2048,
      "receiveMaximum": 7,
      "maxInflightOut": 3,
      "topicAliasMaximum": 9,
      "maxKeepalive": 30,
      "allowZeroKeepalive": false,
      "v3SessionExpiry": 11,
      "maxSessionExpiry": 12,
      "maxQueuedMessages": 13,
      "maxQueuedBytes": 14,
      "sysInterval": 15,
      "connectTimeout": 16,
      "maxRetainedMessages": 17
    }
  })");
  ASSERT_OK(cfg);
  EXPECT_EQ(cfg->node_id(), "n2");
  EXPECT_EQ(cfg->data_dir(), "/tmp/d");
  EXPECT_EQ(cfg->log_level(), "warning");
  const config::MqttConfig& m = cfg->mqtt();
  EXPECT_EQ(m.max_packet_size(), 2048u);
  EXPECT_EQ(m.receive_maximum(), 7u);
  EXPECT_EQ(m.max_inflight_out(), 3u);
  EXPECT_EQ(m.topic_alias_maximum(), 9u);
  EXPECT_EQ(m.max_keepalive(), 30u);
  EXPECT_TRUE(m.has_allow_zero_keepalive());
  EXPECT_FALSE(m.allow_zero_keepalive());
  EXPECT_EQ(m.v3_session_expiry(), 11u);
  EXPECT_EQ(m.max_session_expiry(), 12u);
  EXPECT_EQ(m.max_queued_messages(), 13u);
  EXPECT_EQ(m.max_queued_bytes(), 14u);
  EXPECT_EQ(m.sys_interval(), 15u);
  EXPECT_EQ(m.connect_timeout(), 16u);
  EXPECT_EQ(m.max_retained_messages(), 17u);
  EXPECT_FALSE(m.has_listen());
  EXPECT_FALSE(cfg->has_workers());
}

TEST(ConfigTest, EmptyObjectLeavesEverythingUnset) {
  auto cfg = ParseConfig("{}");
  ASSERT_OK(cfg);
  EXPECT_FALSE(cfg->has_node_id());
  EXPECT_FALSE(cfg->has_data_dir());
  EXPECT_FALSE(cfg->has_workers());
  EXPECT_FALSE(cfg->has_log_level());
  EXPECT_FALSE(cfg->has_mqtt());
  EXPECT_FALSE(cfg->has_admin());
}

TEST(ConfigTest, UnknownFieldIsAnError) {
  for (const char* json : {R"({"bogus": 1})", R"({"mqtt": {"max_packet_sise": 100}})",
                           R"({"admin": {"listen": "127.0.0.1:1", "port": 2}})"}) {
    auto cfg = ParseConfig(json);
    EXPECT_TRUE(absl::IsInvalidArgument(cfg.status())) << json << " -> " << cfg.status();
  }
}

TEST(ConfigTest, MalformedJsonOrWrongTypeIsAnError) {
  for (const char* json : {
           "",
           "{",
           "[]",
           R"({"workers": "many"})",
           R"({"workers": -1})",
           R"({"workers": 1.5})",
           R"({"mqtt": {"max_packet_size": 4294967296}})",  // > uint32
           // (protobuf 3.21 accepts the strings "true"/"false"/"yes"/"no"/... for bools)
           R"({"mqtt": {"allow_zero_keepalive": "banana"}})",
           R"({"mqtt": {"allow_zero_keepalive": 1}})",
           R"({"mqtt": {"max_packet_size": true}})",
           R"({"mqtt": "127.0.0.1:1883"})",
           R"({"log_level": 3})",
       }) {
    auto cfg = ParseConfig(json);
    EXPECT_TRUE(absl::IsInvalidArgument(cfg.status())) << json << " -> " << cfg.status();
  }
}

// ---------------------------------------------------------------------------------------------
// ApplyDefaults

TEST(ConfigTest, ApplyDefaultsSetsDocumentedValues) {
  const config::Config c = Defaulted();
  EXPECT_FALSE(c.node_id().empty());
  EXPECT_EQ(c.data_dir(), "./data");
  EXPECT_EQ(c.workers(), 0u);
  EXPECT_EQ(c.log_level(), "info");
  const config::MqttConfig& m = c.mqtt();
  EXPECT_EQ(m.listen(), "127.0.0.1:1883");
  EXPECT_EQ(m.max_packet_size(), 1048576u);
  EXPECT_EQ(m.receive_maximum(), 1024u);
  EXPECT_EQ(m.max_inflight_out(), 32u);
  EXPECT_EQ(m.topic_alias_maximum(), 64u);
  EXPECT_EQ(m.max_keepalive(), 65535u);
  EXPECT_TRUE(m.allow_zero_keepalive());
  EXPECT_EQ(m.v3_session_expiry(), 0u);
  EXPECT_EQ(m.max_session_expiry(), 0u);
  EXPECT_EQ(m.max_queued_messages(), 1000u);
  EXPECT_EQ(m.max_queued_bytes(), 104857600u);
  EXPECT_EQ(m.sys_interval(), 10u);
  EXPECT_EQ(m.connect_timeout(), 10u);
  EXPECT_EQ(m.max_retained_messages(), 1000000u);
  EXPECT_EQ(c.admin().listen(), "127.0.0.1:8080");
}

TEST(ConfigTest, NodeIdDefaultsToHostName) {
  char host[256] = {0};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  const std::string expected = host[0] != '\0' ? host : "shardmq";
  EXPECT_EQ(Defaulted().node_id(), expected);
}

// Every field with presence (every `optional` field of the schema) is set by ApplyDefaults, in
// every message, so a field added to config.proto without a default fails here.
TEST(ConfigTest, ApplyDefaultsSetsEveryOptionalField) {
  config::Config c = Defaulted();
  std::vector<const google::protobuf::Message*> stack = {&c};
  int checked = 0;
  while (!stack.empty()) {
    const google::protobuf::Message* msg = stack.back();
    stack.pop_back();
    const google::protobuf::Descriptor* d = msg->GetDescriptor();
    const google::protobuf::Reflection* r = msg->GetReflection();
    for (int i = 0; i < d->field_count(); ++i) {
      const google::protobuf::FieldDescriptor* f = d->field(i);
      if (f->is_repeated()) continue;
      if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
        EXPECT_TRUE(r->HasField(*msg, f)) << f->full_name();
        stack.push_back(&r->GetMessage(*msg, f));
        continue;
      }
      EXPECT_TRUE(r->HasField(*msg, f)) << f->full_name() << " has no default";
      ++checked;
    }
  }
  // Config scalars + MqttConfig + AdminConfig + StorageConfig + ClusterConfig
  EXPECT_EQ(checked, 4 + 15 + 1 + 2 + 7);
}

// The value of a scalar field as it would be written after "Default" in config.proto.
std::string DocText(const google::protobuf::Message& msg, const google::protobuf::FieldDescriptor* f) {
  const google::protobuf::Reflection* r = msg.GetReflection();
  switch (f->cpp_type()) {
    case google::protobuf::FieldDescriptor::CPPTYPE_STRING:
      return "\"" + r->GetString(msg, f) + "\"";
    case google::protobuf::FieldDescriptor::CPPTYPE_BOOL:
      return r->GetBool(msg, f) ? "true" : "false";
    case google::protobuf::FieldDescriptor::CPPTYPE_UINT32:
      return std::to_string(r->GetUInt32(msg, f));
    case google::protobuf::FieldDescriptor::CPPTYPE_UINT64:
      return std::to_string(r->GetUInt64(msg, f));
    default:
      return "<unsupported type " + std::string(f->cpp_type_name()) + ">";
  }
}

// Reads "Default <value>" from the comment above each field of proto/config.proto and checks
// that ApplyDefaults produces that value. Returns message name -> field name -> documented text.
std::map<std::string, std::map<std::string, std::string>> DocumentedDefaults() {
  std::ifstream in(SHARDMQ_CONFIG_PROTO_PATH);
  EXPECT_TRUE(in.good()) << "cannot read " << SHARDMQ_CONFIG_PROTO_PATH;
  const std::regex message_re(R"(^\s*message\s+(\w+)\s*\{)");
  const std::regex field_re(R"(^\s*(?:optional\s+)?\w+\s+(\w+)\s*=\s*\d+\s*;)");
  const std::regex default_re(R"re(Default:?\s+("[^"]*"|\w+))re");
  std::map<std::string, std::map<std::string, std::string>> out;
  std::string message;
  std::string comment;
  std::string line;
  while (std::getline(in, line)) {
    std::smatch match;
    if (std::regex_search(line, match, message_re)) {
      message = match[1].str();
      comment.clear();
    } else if (const size_t pos = line.find("//"); pos != std::string::npos &&
                                                  line.find_first_not_of(" \t") == pos) {
      comment += line.substr(pos + 2) + " ";
    } else if (std::regex_search(line, match, field_re)) {
      std::smatch def;
      out[message][match[1].str()] =
          std::regex_search(comment, def, default_re) ? def[1].str() : std::string("<none>");
      comment.clear();
    } else {
      comment.clear();
    }
  }
  return out;
}

TEST(ConfigTest, ApplyDefaultsMatchesConfigProtoComments) {
  const auto documented = DocumentedDefaults();
  ASSERT_EQ(documented.count("Config"), 1u);
  ASSERT_EQ(documented.count("MqttConfig"), 1u);
  ASSERT_EQ(documented.count("AdminConfig"), 1u);

  const config::Config c = Defaulted();
  const std::map<std::string, const google::protobuf::Message*> messages = {
      {"Config", &c}, {"MqttConfig", &c.mqtt()}, {"AdminConfig", &c.admin()},
      {"StorageConfig", &c.storage()}, {"ClusterConfig", &c.cluster()}};
  int compared = 0;
  for (const auto& [message_name, fields] : documented) {
    ASSERT_EQ(messages.count(message_name), 1u) << message_name;
    const google::protobuf::Message& msg = *messages.at(message_name);
    for (const auto& [field_name, doc] : fields) {
      const google::protobuf::FieldDescriptor* f =
          msg.GetDescriptor()->FindFieldByName(field_name);
      ASSERT_NE(f, nullptr) << message_name << "." << field_name;
      if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
      if (message_name == "Config" && field_name == "node_id") {
        EXPECT_EQ(doc, "the") << "node_id: \"Default: the host name\" (see NodeIdDefaultsToHostName)";
        continue;
      }
      EXPECT_EQ(DocText(msg, f), doc) << message_name << "." << field_name;
      ++compared;
    }
  }
  EXPECT_EQ(compared, 3 + 15 + 1 + 2 + 7);  // every scalar except node_id
}

TEST(ConfigTest, ApplyDefaultsKeepsExplicitValues) {
  auto cfg = ParseConfig(R"({
    "node_id": "mine", "data_dir": "/d", "workers": 3, "log_level": "error",
    "mqtt": {"listen": "127.0.0.1:0", "max_packet_size": 64, "allow_zero_keepalive": false,
             "topic_alias_maximum": 0, "sys_interval": 0, "max_queued_bytes": 0,
             "max_retained_messages": 0, "v3_session_expiry": 5},
    "admin": {"listen": "127.0.0.1:0"}
  })");
  ASSERT_OK(cfg);
  config::Config c = *cfg;
  ApplyDefaults(&c);
  EXPECT_EQ(c.node_id(), "mine");
  EXPECT_EQ(c.data_dir(), "/d");
  EXPECT_EQ(c.workers(), 3u);
  EXPECT_EQ(c.log_level(), "error");
  EXPECT_EQ(c.mqtt().listen(), "127.0.0.1:0");
  EXPECT_EQ(c.mqtt().max_packet_size(), 64u);
  EXPECT_FALSE(c.mqtt().allow_zero_keepalive());
  EXPECT_EQ(c.mqtt().topic_alias_maximum(), 0u);
  EXPECT_EQ(c.mqtt().sys_interval(), 0u);
  EXPECT_EQ(c.mqtt().max_queued_bytes(), 0u);
  EXPECT_EQ(c.mqtt().max_retained_messages(), 0u);
  EXPECT_EQ(c.mqtt().v3_session_expiry(), 5u);
  EXPECT_EQ(c.admin().listen(), "127.0.0.1:0");
  // Unset ones still get defaults.
  EXPECT_EQ(c.mqtt().receive_maximum(), 1024u);
  EXPECT_EQ(c.mqtt().connect_timeout(), 10u);
}

TEST(ConfigTest, ApplyDefaultsIsIdempotent) {
  config::Config once = Defaulted();
  config::Config twice = once;
  ApplyDefaults(&twice);
  EXPECT_EQ(once.SerializeAsString(), twice.SerializeAsString());
}

// ---------------------------------------------------------------------------------------------
// ValidateConfig

TEST(ConfigTest, DefaultsAreValid) { EXPECT_OK(ValidateConfig(Defaulted())); }

struct BoundCase {
  const char* field;  // as named in the error message
  std::function<void(config::Config*, uint64_t)> set;
  uint64_t lo;
  uint64_t hi;
};

std::vector<BoundCase> BoundedFields() {
  using C = config::Config;
  return {
      {"workers", [](C* c, uint64_t v) { c->set_workers(v); }, 0, 256},
      {"mqtt.max_packet_size",
       [](C* c, uint64_t v) { c->mutable_mqtt()->set_max_packet_size(v); }, 64, 268435460},
      {"mqtt.receive_maximum",
       [](C* c, uint64_t v) { c->mutable_mqtt()->set_receive_maximum(v); }, 1, 65535},
      {"mqtt.max_inflight_out",
       [](C* c, uint64_t v) { c->mutable_mqtt()->set_max_inflight_out(v); }, 1, 65535},
      {"mqtt.topic_alias_maximum",
       [](C* c, uint64_t v) { c->mutable_mqtt()->set_topic_alias_maximum(v); }, 0, 65535},
      {"mqtt.max_keepalive", [](C* c, uint64_t v) { c->mutable_mqtt()->set_max_keepalive(v); }, 1,
       65535},
      {"mqtt.max_queued_messages",
       [](C* c, uint64_t v) { c->mutable_mqtt()->set_max_queued_messages(v); }, 1, 10000000},
      {"mqtt.connect_timeout",
       [](C* c, uint64_t v) { c->mutable_mqtt()->set_connect_timeout(v); }, 1, 3600},
      {"cluster.lease_ttl", [](C* c, uint64_t v) { c->mutable_cluster()->set_lease_ttl(v); }, 2,
       60},
      {"cluster.vnodes", [](C* c, uint64_t v) { c->mutable_cluster()->set_vnodes(v); }, 1, 1024},
      {"cluster.drain_timeout",
       [](C* c, uint64_t v) { c->mutable_cluster()->set_drain_timeout(v); }, 0, 3600},
  };
}

TEST(ConfigTest, BoundedFieldsAcceptTheirBounds) {
  for (const BoundCase& b : BoundedFields()) {
    for (uint64_t v : {b.lo, b.hi}) {
      config::Config c = Defaulted();
      b.set(&c, v);
      EXPECT_OK(ValidateConfig(c)) << b.field << " = " << v;
    }
  }
}

TEST(ConfigTest, OutOfBoundsErrorNamesTheField) {
  for (const BoundCase& b : BoundedFields()) {
    std::vector<uint64_t> bad = {b.hi + 1, 0xFFFFFFFFu};
    if (b.lo > 0) bad.push_back(b.lo - 1);
    for (uint64_t v : bad) {
      config::Config c = Defaulted();
      b.set(&c, v);
      absl::Status st = ValidateConfig(c);
      EXPECT_TRUE(absl::IsInvalidArgument(st)) << b.field << " = " << v << ": " << st;
      EXPECT_THAT(std::string(st.message()), HasSubstr(b.field)) << b.field << " = " << v;
      EXPECT_THAT(std::string(st.message()), HasSubstr(std::to_string(v)));
    }
  }
}

TEST(ConfigTest, UnboundedFieldsAcceptAnyValue) {
  for (uint64_t v : {uint64_t{0}, uint64_t{0xFFFFFFFFu}}) {
    config::Config c = Defaulted();
    c.mutable_mqtt()->set_v3_session_expiry(v);
    c.mutable_mqtt()->set_max_session_expiry(v);
    c.mutable_mqtt()->set_max_retained_messages(v);
    c.mutable_mqtt()->set_max_queued_bytes(v == 0 ? 0 : ~uint64_t{0});
    c.mutable_mqtt()->set_sys_interval(0);  // 0 disables
    c.mutable_mqtt()->set_allow_zero_keepalive(v == 0);
    EXPECT_OK(ValidateConfig(c)) << v;
  }
}

TEST(ConfigTest, BadListenAddressNamesTheField) {
  for (const char* addr : {"", "nonsense", "127.0.0.1", "127.0.0.1:65536", ":1883",
                           "::1:1883", "[::1]", "127.0.0.1:port"}) {
    config::Config c = Defaulted();
    c.mutable_mqtt()->set_listen(addr);
    absl::Status st = ValidateConfig(c);
    EXPECT_TRUE(absl::IsInvalidArgument(st)) << "mqtt.listen \"" << addr << "\": " << st;
    EXPECT_THAT(std::string(st.message()), HasSubstr("mqtt.listen")) << addr;

    c = Defaulted();
    c.mutable_admin()->set_listen(addr);
    st = ValidateConfig(c);
    EXPECT_TRUE(absl::IsInvalidArgument(st)) << "admin.listen \"" << addr << "\": " << st;
    EXPECT_THAT(std::string(st.message()), HasSubstr("admin.listen")) << addr;
  }
}

TEST(ConfigTest, ClusterSettings) {
  // --etcd "http://a:1,b:2" arrives as one entry: split, "http://" dropped.
  auto cfg = ParseConfig(R"({"cluster": {"etcd": ["http://a:2379/, b:2380", "c:1"]}})");
  ASSERT_OK(cfg);
  ApplyDefaults(&*cfg);
  EXPECT_THAT(std::vector<std::string>(cfg->cluster().etcd().begin(), cfg->cluster().etcd().end()),
              ::testing::ElementsAre("a:2379", "b:2380", "c:1"));
  EXPECT_OK(ValidateConfig(*cfg));

  struct Bad {
    const char* json;
    const char* field;
  };
  for (const Bad& b : std::vector<Bad>{
           {R"({"cluster": {"role": "relay"}})", "cluster.role"},
           {R"({"cluster": {"role": "frontend"}})", "cluster.etcd"},  // a front-end needs etcd
           {R"({"cluster": {"etcd": ["nonsense"]}})", "cluster.etcd[0]"},
           {R"({"cluster": {"etcd": ["a:0"]}})", "cluster.etcd[0]"},
           {R"({"cluster": {"cluster_addr": "nowhere"}})", "cluster.cluster_addr"},
           {R"({"cluster": {"etcd_prefix": "shardmq/"}})", "cluster.etcd_prefix"},
           {R"({"cluster": {"etcd_prefix": "/"}})", "cluster.etcd_prefix"},
           {R"({"cluster": {"qos0_overload": "block"}})", "cluster.qos0_overload"},
           {R"({"cluster": {"qos0_overload": "HOLD"}})", "cluster.qos0_overload"},
       }) {
    auto c = ParseConfig(b.json);
    ASSERT_OK(c) << b.json;
    ApplyDefaults(&*c);
    absl::Status st = ValidateConfig(*c);
    EXPECT_TRUE(absl::IsInvalidArgument(st)) << b.json << ": " << st;
    EXPECT_THAT(std::string(st.message()), HasSubstr(b.field)) << b.json;
  }
  for (const char* role : {"all", "store", "frontend"}) {
    config::Config c = Defaulted();
    c.mutable_cluster()->set_role(role);
    c.mutable_cluster()->add_etcd("127.0.0.1:2379");
    EXPECT_OK(ValidateConfig(c)) << role;
  }
  EXPECT_EQ(Defaulted().cluster().qos0_overload(), "hold");
  for (const char* policy : {"hold", "drop"}) {
    config::Config c = Defaulted();
    c.mutable_cluster()->set_qos0_overload(policy);
    EXPECT_OK(ValidateConfig(c)) << policy;
  }
}

TEST(ConfigTest, GoodListenAddressesAreValid) {
  for (const char* addr : {"0.0.0.0:1883", "127.0.0.1:0", "[::1]:0", "[::]:8883", "localhost:1"}) {
    config::Config c = Defaulted();
    c.mutable_mqtt()->set_listen(addr);
    c.mutable_admin()->set_listen(addr);
    EXPECT_OK(ValidateConfig(c)) << addr;
  }
}

TEST(ConfigTest, LogLevel) {
  for (const char* level : {"debug", "info", "warning", "error"}) {
    config::Config c = Defaulted();
    c.set_log_level(level);
    EXPECT_OK(ValidateConfig(c)) << level;
  }
  for (const char* level : {"", "verbose", "INFO", "warn", "fatal", " info"}) {
    config::Config c = Defaulted();
    c.set_log_level(level);
    absl::Status st = ValidateConfig(c);
    EXPECT_TRUE(absl::IsInvalidArgument(st)) << '"' << level << "\": " << st;
    EXPECT_THAT(std::string(st.message()), HasSubstr("log_level")) << level;
  }
}

TEST(ConfigTest, EmptyDataDirIsInvalid) {
  config::Config c = Defaulted();
  c.set_data_dir("");
  absl::Status st = ValidateConfig(c);
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("data_dir"));
}

// ---------------------------------------------------------------------------------------------
// LoadConfigFile

TEST(ConfigTest, LoadConfigFileMissingNamesTheFile) {
  test::ScopedTempDir dir;
  const std::string path = dir.Join("no-such-config.json");
  auto cfg = LoadConfigFile(path);
  EXPECT_TRUE(absl::IsNotFound(cfg.status())) << cfg.status();
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr(path));
}

TEST(ConfigTest, LoadConfigFileReadsJson) {
  test::ScopedTempDir dir;
  const std::string path = dir.Join("shardmq.json");
  {
    std::ofstream out(path);
    out << R"({"node_id": "from-file", "mqtt": {"listen": "127.0.0.1:0"}})";
  }
  auto cfg = LoadConfigFile(path);
  ASSERT_OK(cfg);
  EXPECT_EQ(cfg->node_id(), "from-file");
  EXPECT_EQ(cfg->mqtt().listen(), "127.0.0.1:0");
}

TEST(ConfigTest, LoadConfigFileBadJsonNamesTheFile) {
  test::ScopedTempDir dir;
  const std::string path = dir.Join("bad.json");
  {
    std::ofstream out(path);
    out << R"({"node_id": "x", "unknown_key": true})";
  }
  auto cfg = LoadConfigFile(path);
  EXPECT_TRUE(absl::IsInvalidArgument(cfg.status())) << cfg.status();
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr(path));
}

}  // namespace
}  // namespace shardmq::broker::app

namespace shardmq::broker::app {
namespace {

TEST(ConfigStorageTest, BadDurabilityAndPartitionsAndFiltersNameTheField) {
  struct Case {
    const char* json;
    const char* field;
  };
  const Case cases[] = {
      {R"({"storage": {"durability": "sometimes"}})", "storage.durability"},
      {R"({"storage": {"partitions": 0}})", "storage.partitions"},
      {R"({"storage": {"partitions": 70000}})", "storage.partitions"},
      {R"({"mqtt": {"latest_only_filters": ["ok/#", "bad/#/x"]}})",
       "mqtt.latest_only_filters[1]"},
  };
  for (const Case& c : cases) {
    auto cfg = ParseConfig(c.json);
    ASSERT_TRUE(cfg.ok()) << c.json;
    ApplyDefaults(&*cfg);
    absl::Status st = ValidateConfig(*cfg);
    EXPECT_FALSE(st.ok()) << c.json;
    EXPECT_NE(std::string(st.message()).find(c.field), std::string::npos)
        << c.json << " -> " << st.message();
  }
}

TEST(ConfigStorageTest, FsyncAndFiltersAreAccepted) {
  auto cfg = ParseConfig(
      R"({"storage": {"durability": "fsync", "partitions": 64},
          "mqtt": {"latest_only_filters": ["fleet/+/telemetry/#"]}})");
  ASSERT_TRUE(cfg.ok());
  ApplyDefaults(&*cfg);
  EXPECT_TRUE(ValidateConfig(*cfg).ok());
  EXPECT_EQ(cfg->storage().durability(), "fsync");
  EXPECT_EQ(cfg->storage().partitions(), 64u);
}

}  // namespace
}  // namespace shardmq::broker::app
