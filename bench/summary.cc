#include "bench/summary.h"

#include <cmath>
#include <cstdio>

namespace shardmq::bench {

namespace {

std::string Fmt(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

// JSON numbers: integers stay integers, others get 3 decimals; never NaN/inf.
std::string Num(double value) {
  if (!std::isfinite(value)) return "0";
  if (value == std::floor(value) && std::fabs(value) < 1e15) return Fmt("%.0f", value);
  return Fmt("%.3f", value);
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string JsonDistribution(const Distribution& d) {
  return "{\"count\":" + std::to_string(d.count) + ",\"min\":" + Num(d.min) +
         ",\"mean\":" + Num(d.mean) + ",\"p50\":" + Num(d.p50) + ",\"p99\":" + Num(d.p99) +
         ",\"p999\":" + Num(d.p999) + ",\"max\":" + Num(d.max) + "}";
}

std::string TextDistribution(const Distribution& d, const char* unit) {
  if (d.count == 0) return "-";
  const char* f = "%.1f";
  return "p50 " + Fmt(f, d.p50) + " p99 " + Fmt(f, d.p99) + " p999 " + Fmt(f, d.p999) + " max " +
         Fmt(f, d.max) + " mean " + Fmt(f, d.mean) + " " + unit + " (n=" + std::to_string(d.count) +
         ")";
}

}  // namespace

Distribution Distribution::From(const LatencyHistogram& h, double unit_ns) {
  Distribution d;
  d.count = h.count();
  if (d.count == 0) return d;
  d.min = static_cast<double>(h.min()) / unit_ns;
  d.mean = h.mean() / unit_ns;
  d.p50 = static_cast<double>(h.ValueAtQuantile(0.50)) / unit_ns;
  d.p99 = static_cast<double>(h.ValueAtQuantile(0.99)) / unit_ns;
  d.p999 = static_cast<double>(h.ValueAtQuantile(0.999)) / unit_ns;
  d.max = static_cast<double>(h.max()) / unit_ns;
  return d;
}

std::string FormatText(const Summary& s) {
  std::string out = "shardmq bench " + s.mode;
  if (!s.topology.empty()) out += " (" + s.topology + ")";
  out += ": MQTT " + s.version;
  if (s.publishers + s.subscribers > 0) out += ", QoS " + std::to_string(s.qos);
  if (s.publishers > 0) out += ", " + std::to_string(s.publishers) + " publishers";
  if (s.subscribers > 0) out += ", " + std::to_string(s.subscribers) + " subscribers";
  if (s.idle_connections > 0) out += ", " + std::to_string(s.idle_connections) + " connections";
  if (s.publishers > 0) {
    out += ", " + std::to_string(s.payload_size) + " B, rate " +
           (s.rate > 0 ? Fmt("%g", s.rate) + "/s per publisher" : std::string("unlimited"));
  }
  out += ", " + std::to_string(s.threads) + " threads\n";
  auto line = [&out](const char* name, const std::string& value) {
    out += "  ";
    out += name;
    out.append(14 - std::string_view(name).size(), ' ');
    out += value + "\n";
  };
  line("run", Fmt("%.2f s", s.run_s) + (s.interrupted ? " (interrupted)" : "") +
                  (s.publishers > 0 ? Fmt(", drain %.2f s", s.drain_s) : "") +
                  (s.drain_timed_out ? " (timed out)" : ""));
  if (s.publishers > 0) {
    line("sent", std::to_string(s.sent) + Fmt(" (%.0f msg/s)", s.send_rate));
    if (s.qos > 0) {
      line("acked", std::to_string(s.acked) +
                        (s.unacked > 0 ? ", " + std::to_string(s.unacked) + " unacked" : "") +
                        (s.rejected > 0 ? ", " + std::to_string(s.rejected) + " rejected" : ""));
      line("ack latency", TextDistribution(s.ack_latency_us, "us"));
    }
  }
  if (s.subscribers > 0) {
    line("received",
         std::to_string(s.received) + Fmt(" (%.0f msg/s)", s.recv_rate) +
             (s.foreign > 0 ? ", " + std::to_string(s.foreign) + " not from bench" : ""));
    line("lost", std::to_string(s.lost));
    line("duplicates", std::to_string(s.duplicates) +
                           (s.reordered > 0 ? ", reordered " + std::to_string(s.reordered) : ""));
    line("latency", TextDistribution(s.latency_us, "us"));
  }
  line("connect", std::to_string(s.connected) + " ok, " + std::to_string(s.connect_failed) +
                      " failed" + Fmt(", %.0f conn/s", s.connect_rate));
  line("connect time", TextDistribution(s.connect_ms, "ms"));
  line("errors", std::to_string(s.errors));
  return out;
}

std::string FormatJson(const Summary& s) {
  std::string out = "{";
  auto field = [&out](const char* name, const std::string& value) {
    if (out.size() > 1) out += ",";
    out += "\"";
    out += name;
    out += "\":" + value;
  };
  field("mode", Quote(s.mode));
  if (!s.topology.empty()) field("topology", Quote(s.topology));
  field("version", Quote(s.version));
  field("qos", std::to_string(s.qos));
  field("publishers", std::to_string(s.publishers));
  field("subscribers", std::to_string(s.subscribers));
  field("connections", std::to_string(s.idle_connections));
  field("threads", std::to_string(s.threads));
  field("size", std::to_string(s.payload_size));
  field("rate", Num(s.rate));
  field("run_s", Num(s.run_s));
  field("drain_s", Num(s.drain_s));
  field("ack_span_s", Fmt("%.6f", s.ack_span_s));
  field("interrupted", s.interrupted ? "true" : "false");
  field("drain_timed_out", s.drain_timed_out ? "true" : "false");
  field("sent", std::to_string(s.sent));
  field("acked", std::to_string(s.acked));
  field("unacked", std::to_string(s.unacked));
  field("rejected", std::to_string(s.rejected));
  field("received", std::to_string(s.received));
  field("received_unique", std::to_string(s.received_unique));
  field("lost", std::to_string(s.lost));
  field("duplicates", std::to_string(s.duplicates));
  field("reordered", std::to_string(s.reordered));
  field("foreign", std::to_string(s.foreign));
  field("send_rate", Num(s.send_rate));
  field("recv_rate", Num(s.recv_rate));
  field("latency_us", JsonDistribution(s.latency_us));
  field("ack_latency_us", JsonDistribution(s.ack_latency_us));
  field("connect_ms", JsonDistribution(s.connect_ms));
  field("connected", std::to_string(s.connected));
  field("connect_failed", std::to_string(s.connect_failed));
  field("connect_rate", Num(s.connect_rate));
  field("errors", std::to_string(s.errors));
  field("ok", s.ok() ? "true" : "false");
  return out + "}\n";
}

}  // namespace shardmq::bench
