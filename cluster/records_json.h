// The JSON form of the records the cluster keeps in etcd (proto/cluster.proto): proto3 JSON, so
// `etcdctl get --prefix /shardmq/` is readable. Written by membership and `shardmq ctl`.
#pragma once

#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include <string>

namespace shardmq::cluster {

// Every field printed, defaults included (a store's ACTIVE state is 0).
inline std::string RecordToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = true;
  // Cannot fail for our messages (no Any fields to resolve).
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  return out;
}

// Fields this version does not know (written by a newer node) are skipped.
inline bool RecordFromJson(const std::string& json, google::protobuf::Message* m) {
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  return google::protobuf::util::JsonStringToMessage(json, m, opts).ok();
}

}  // namespace shardmq::cluster
