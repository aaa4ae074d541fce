// "HOST:PORT" parsing for listen addresses: "127.0.0.1:1883", "[::1]:1883", "localhost:0".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace shardmq {

struct HostPort {
  std::string host;  // without brackets
  uint16_t port = 0;
};

// InvalidArgumentError naming the text when it is not HOST:PORT with a port 0..65535.
absl::StatusOr<HostPort> ParseHostPort(std::string_view text);
// "host:port", with [brackets] around an IPv6 host.
std::string FormatHostPort(std::string_view host, uint16_t port);

}  // namespace shardmq
