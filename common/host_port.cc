#include "common/host_port.h"

#include <charconv>

namespace shardmq {

absl::StatusOr<HostPort> ParseHostPort(std::string_view text) {
  auto bad = [&](const char* why) {
    return absl::InvalidArgumentError("invalid address \"" + std::string(text) + "\": " + why +
                                      " (want HOST:PORT)");
  };
  HostPort out;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad("bad bracketed IPv6 host");
    }
    out.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("missing port");
    out.host = std::string(text.substr(0, colon));
    if (out.host.find(':') != std::string::npos) return bad("IPv6 hosts need [brackets]");
    port = text.substr(colon + 1);
  }
  if (out.host.empty()) return bad("empty host");
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value > 65535) {
    return bad("port must be 0..65535");
  }
  out.port = static_cast<uint16_t>(value);
  return out;
}

std::string FormatHostPort(std::string_view host, uint16_t port) {
  const std::string p = std::to_string(port);
  if (host.find(':') != std::string_view::npos) return "[" + std::string(host) + "]:" + p;
  return std::string(host) + ":" + p;
}

}  // namespace shardmq
