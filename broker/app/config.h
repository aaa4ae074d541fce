// Node configuration: JSON file -> config::Config -> defaults -> ValidateConfig (the only
// validator). See proto/config.proto for every field, its unit, default and bounds.
#pragma once

#include <string>

#include "common/status.h"
#include "proto/config.pb.h"

namespace shardmq::broker::app {

// Parses the JSON text (proto3 JSON mapping; unknown fields are errors).
absl::StatusOr<config::Config> ParseConfig(const std::string& json);
// Reads and parses a config file. NotFound/InvalidArgument errors name the file.
absl::StatusOr<config::Config> LoadConfigFile(const std::string& path);
// Fills every unset optional field with its documented default.
void ApplyDefaults(config::Config* config);
// Checks bounds. The error message names the offending field, e.g. "mqtt.max_packet_size".
absl::Status ValidateConfig(const config::Config& config);

}  // namespace shardmq::broker::app
