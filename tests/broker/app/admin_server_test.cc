// AdminServer over real loopback sockets. The client below writes raw HTTP bytes and parses
// responses by hand, independently of Beast, so the server's HTTP library does not grade itself.
#include "broker/app/admin_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace shardmq::broker::app {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Bounds every blocking read so a broken server fails a test instead of hanging it.
constexpr int kClientTimeoutSeconds = 5;

struct HttpResponse {
  std::string version;  // "HTTP/1.1"
  int status = 0;
  std::map<std::string, std::string> headers;  // Names lower-cased.
  std::string body;

  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A blocking HTTP/1.1 client on one TCP connection.
class TestClient {
 public:
  // Connects to 127.0.0.1:port (or [::1]:port for AF_INET6).
  explicit TestClient(uint16_t port, int family = AF_INET) {
    fd_ = ::socket(family, SOCK_STREAM, 0);
    if (fd_ < 0) return;
    timeval tv{};
    tv.tv_sec = kClientTimeoutSeconds;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int rc = -1;
    if (family == AF_INET6) {
      sockaddr_in6 addr{};
      addr.sin6_family = AF_INET6;
      addr.sin6_port = htons(port);
      addr.sin6_addr = in6addr_loopback;
      rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    } else {
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(port);
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    }
    if (rc != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~TestClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  bool connected() const { return fd_ >= 0; }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one response (which must carry Content-Length). nullopt on EOF, error or timeout.
  std::optional<HttpResponse> ReadResponse() {
    size_t header_end;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    HttpResponse response;
    std::istringstream head(buffer_.substr(0, header_end));
    std::string line;
    std::getline(head, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream status_line(line);
    status_line >> response.version >> response.status;
    while (std::getline(head, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const size_t colon = line.find(':');
      if (colon == std::string::npos) return std::nullopt;
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      response.headers[Lower(line.substr(0, colon))] = value;
    }
    const std::string length_text = response.Header("content-length");
    if (length_text.empty()) return std::nullopt;
    const size_t length = std::stoul(length_text);
    const size_t body_start = header_end + 4;
    while (buffer_.size() < body_start + length) {
      if (!Fill()) return std::nullopt;
    }
    response.body = buffer_.substr(body_start, length);
    buffer_.erase(0, body_start + length);
    return response;
  }

  // True if the server closes the connection (EOF or reset) with nothing more to read,
  // false if data arrives or the read times out.
  bool ClosedByServer() {
    if (!buffer_.empty()) return false;
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  bool Fill() {
    char chunk[4096];
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buffer_;
};

std::string GetRequest(std::string_view target, std::string_view extra_headers = "") {
  return std::string("GET ") + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" +
         std::string(extra_headers) + "\r\n";
}

// One request on a fresh connection.
std::optional<HttpResponse> Fetch(uint16_t port, const std::string& raw_request) {
  TestClient client(port);
  if (!client.connected() || !client.Send(raw_request)) return std::nullopt;
  return client.ReadResponse();
}

std::optional<HttpResponse> Get(uint16_t port, std::string_view target) {
  return Fetch(port, GetRequest(target, "Connection: close\r\n"));
}

AdminServer::Options LoopbackOptions() {
  AdminServer::Options options;
  options.listen = "127.0.0.1:0";
  return options;
}

// Checks the Prometheus text format 0.0.4 line by line: HELP/TYPE comments, samples that belong
// to the family announced by the last TYPE line, no family announced twice, trailing newline.
void ExpectValidExposition(const std::string& body) {
  ASSERT_FALSE(body.empty());
  ASSERT_EQ(body.back(), '\n');
  const std::string name = "[a-zA-Z_:][a-zA-Z0-9_:]*";
  const std::string label = "[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\\n]|\\\\[\\\\\"n])*\"";
  const std::string value = "([-+]?[0-9]*\\.?[0-9]+([eE][-+]?[0-9]+)?|[-+]?Inf|NaN)";
  const std::regex help_re("# HELP (" + name + ") .*");
  const std::regex type_re("# TYPE (" + name + ") (counter|gauge|histogram|summary|untyped)");
  const std::regex sample_re("(" + name + ")(\\{(" + label + ")(," + label + ")*,?\\})? " + value +
                             "( -?[0-9]+)?");
  std::set<std::string> typed;
  std::string family;
  std::string type;
  std::istringstream lines(body);
  std::string line;
  while (std::getline(lines, line)) {
    SCOPED_TRACE(line);
    std::smatch m;
    if (line.empty()) continue;
    if (std::regex_match(line, m, help_re)) continue;
    if (std::regex_match(line, m, type_re)) {
      family = m[1];
      type = m[2];
      EXPECT_TRUE(typed.insert(family).second) << "family announced twice";
      continue;
    }
    ASSERT_TRUE(std::regex_match(line, m, sample_re)) << "not a valid sample line";
    const std::string sample = m[1];
    std::set<std::string> allowed = {family};
    if (type == "histogram") {
      allowed = {family + "_bucket", family + "_sum", family + "_count"};
    } else if (type == "summary") {
      allowed.insert({family + "_sum", family + "_count"});
    }
    EXPECT_TRUE(allowed.count(sample)) << "sample outside its family " << family;
  }
}

// Returns the path of an executable named `name` on PATH, or "".
std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path == nullptr ? "/usr/bin:/bin" : path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

class AdminServerTest : public ::testing::Test {
 protected:
  AdminServerTest()
      : core_registry_(std::make_shared<prometheus::Registry>()),
        net_registry_(std::make_shared<prometheus::Registry>()) {
    prometheus::BuildCounter()
        .Name("shardmq_admin_test_requests_total")
        .Help("Requests counted by the test.")
        .Register(*core_registry_)
        .Add({{"kind", "probe"}})
        .Increment(3);
    prometheus::BuildGauge()
        .Name("shardmq_admin_test_connections")
        .Help("Connections open in the test.")
        .Register(*net_registry_)
        .Add({})
        .Set(2);
    prometheus::BuildHistogram()
        .Name("shardmq_admin_test_latency_seconds")
        .Help("Latency observed by the test.")
        .Register(*net_registry_)
        .Add({{"op", "publish"}}, prometheus::Histogram::BucketBoundaries{0.1, 1})
        .Observe(0.5);
  }

  std::unique_ptr<AdminServer> StartServer(AdminServer::Options options = LoopbackOptions()) {
    auto server = std::make_unique<AdminServer>(
        std::move(options),
        std::vector<std::shared_ptr<prometheus::Collectable>>{core_registry_, net_registry_},
        [this] { return ready_.load(); });
    const absl::Status status = server->Start();
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_NE(server->port(), 0);
    return server;
  }

  std::shared_ptr<prometheus::Registry> core_registry_;
  std::shared_ptr<prometheus::Registry> net_registry_;
  std::atomic<bool> ready_{false};
};

TEST_F(AdminServerTest, LivezReturnsOk) {
  auto server = StartServer();
  auto response = Get(server->port(), "/livez");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "ok");
  EXPECT_THAT(response->Header("content-type"), StartsWith("text/plain"));
}

TEST_F(AdminServerTest, ReadyzFollowsReadyCallback) {
  auto server = StartServer();
  auto response = Get(server->port(), "/readyz");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 503);
  EXPECT_EQ(response->body, "not ready");

  ready_ = true;
  response = Get(server->port(), "/readyz");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "ready");

  ready_ = false;
  response = Get(server->port(), "/readyz");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 503);
}

TEST_F(AdminServerTest, EmptyReadyCallbackMeansReady) {
  AdminServer server(LoopbackOptions(), {}, nullptr);
  ASSERT_TRUE(server.Start().ok());
  auto response = Get(server.port(), "/readyz");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "ready");
}

TEST_F(AdminServerTest, MetricsExposesEveryRegistry) {
  auto server = StartServer();
  auto response = Get(server->port(), "/metrics");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_THAT(response->Header("content-type"), StartsWith("text/plain; version=0.0.4"));
  EXPECT_THAT(response->body, HasSubstr("# TYPE shardmq_admin_test_requests_total counter\n"));
  EXPECT_THAT(response->body, HasSubstr("shardmq_admin_test_requests_total{kind=\"probe\"} 3\n"));
  EXPECT_THAT(response->body, HasSubstr("# TYPE shardmq_admin_test_connections gauge\n"));
  EXPECT_THAT(response->body,
              HasSubstr("shardmq_admin_test_latency_seconds_count{op=\"publish\"} 1"));
  ExpectValidExposition(response->body);
}

TEST_F(AdminServerTest, MetricsReflectLaterUpdates) {
  auto server = StartServer();
  auto& counter = prometheus::BuildCounter()
                      .Name("shardmq_admin_test_late_total")
                      .Help("Registered after Start.")
                      .Register(*core_registry_)
                      .Add({});
  counter.Increment(7);
  auto response = Get(server->port(), "/metrics");
  ASSERT_TRUE(response.has_value());
  EXPECT_THAT(response->body, HasSubstr("shardmq_admin_test_late_total 7\n"));
}

TEST_F(AdminServerTest, MetricsPassPromtoolCheck) {
  const std::string promtool = FindOnPath("promtool");
  if (promtool.empty()) GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  auto server = StartServer();
  auto response = Get(server->port(), "/metrics");
  ASSERT_TRUE(response.has_value());
  ASSERT_EQ(response->status, 200);

  const std::string file =
      ::testing::TempDir() + "admin_server_test_metrics_" + std::to_string(::getpid()) + ".prom";
  {
    std::ofstream out(file, std::ios::binary);
    out << response->body;
    ASSERT_TRUE(out.good());
  }
  const std::string command = promtool + " check metrics < '" + file + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char chunk[512];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), pipe)) > 0) output.append(chunk, n);
  const int rc = ::pclose(pipe);
  std::remove(file.c_str());
  EXPECT_EQ(rc, 0) << "promtool check metrics said:\n" << output << "\non:\n" << response->body;
}

TEST_F(AdminServerTest, QueryStringIsIgnored) {
  auto server = StartServer();
  auto response = Get(server->port(), "/livez?verbose=1");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
}

TEST_F(AdminServerTest, UnknownPathIs404) {
  auto server = StartServer();
  for (const char* target : {"/", "/nope", "/livez/", "/metricsx"}) {
    SCOPED_TRACE(target);
    auto response = Get(server->port(), target);
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 404);
  }
}

TEST_F(AdminServerTest, NonGetIs405) {
  auto server = StartServer();
  for (const char* request :
       {"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "DELETE /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "PUT /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"}) {
    SCOPED_TRACE(request);
    auto response = Fetch(server->port(), request);
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 405);
    EXPECT_EQ(response->Header("allow"), "GET");
  }
}

TEST_F(AdminServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  auto server = StartServer();
  TestClient client(server->port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(client.Send(GetRequest("/livez")));
  auto first = client.ReadResponse();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->status, 200);
  EXPECT_NE(Lower(first->Header("connection")), "close");

  ASSERT_TRUE(client.Send(GetRequest("/metrics")));
  auto second = client.ReadResponse();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->status, 200);
  EXPECT_THAT(second->body, HasSubstr("shardmq_admin_test_requests_total"));
}

TEST_F(AdminServerTest, PipelinedRequestsAreAnsweredInOrder) {
  auto server = StartServer();
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(GetRequest("/livez") + GetRequest("/nope") + GetRequest("/readyz")));
  auto first = client.ReadResponse();
  auto second = client.ReadResponse();
  auto third = client.ReadResponse();
  ASSERT_TRUE(first && second && third);
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(second->status, 404);
  EXPECT_EQ(third->status, 503);
}

TEST_F(AdminServerTest, ConnectionCloseIsHonoured) {
  auto server = StartServer();
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(GetRequest("/livez", "Connection: close\r\n")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(Lower(response->Header("connection")), "close");
  EXPECT_TRUE(client.ClosedByServer());
}

TEST_F(AdminServerTest, Http10ClosesAfterResponse) {
  auto server = StartServer();
  TestClient client(server->port());
  ASSERT_TRUE(client.Send("GET /livez HTTP/1.0\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->version, "HTTP/1.0");
  EXPECT_EQ(response->status, 200);
  EXPECT_TRUE(client.ClosedByServer());
}

TEST_F(AdminServerTest, RequestBodyIs413AndCloses) {
  auto server = StartServer();
  TestClient client(server->port());
  ASSERT_TRUE(client.Send("GET /livez HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 413);
  EXPECT_TRUE(client.ClosedByServer());
}

TEST_F(AdminServerTest, ChunkedBodyIs413) {
  auto server = StartServer();
  auto response = Fetch(server->port(),
                        "POST /metrics HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "5\r\nhello\r\n0\r\n\r\n");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 413);
}

TEST_F(AdminServerTest, OversizedHeadersAre431) {
  auto server = StartServer();
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(GetRequest("/livez", "X-Filler: " + std::string(9000, 'a') + "\r\n")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 431);
  EXPECT_TRUE(client.ClosedByServer());
}

TEST_F(AdminServerTest, MalformedRequestIs400) {
  auto server = StartServer();
  TestClient client(server->port());
  ASSERT_TRUE(client.Send("this is not http\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 400);
  EXPECT_TRUE(client.ClosedByServer());
}

TEST_F(AdminServerTest, IdleConnectionIsClosedAfterReadTimeout) {
  AdminServer::Options options = LoopbackOptions();
  options.read_timeout = std::chrono::milliseconds(200);
  auto server = StartServer(options);

  TestClient client(server->port());
  ASSERT_TRUE(client.Send(GetRequest("/livez")));
  ASSERT_TRUE(client.ReadResponse().has_value());
  // Keep-alive, then silence: the server must close well within the client's 5 s read timeout.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.ClosedByServer());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(kClientTimeoutSeconds));
}

TEST_F(AdminServerTest, IncompleteRequestIsClosedAfterReadTimeout) {
  AdminServer::Options options = LoopbackOptions();
  options.read_timeout = std::chrono::milliseconds(200);
  auto server = StartServer(options);
  TestClient client(server->port());
  ASSERT_TRUE(client.Send("GET /livez HTTP/1.1\r\nHost: t\r\n"));  // Never finished.
  EXPECT_TRUE(client.ClosedByServer());
}

TEST_F(AdminServerTest, ConnectionsBeyondLimitAreClosed) {
  AdminServer::Options options = LoopbackOptions();
  options.max_connections = 1;
  auto server = StartServer(options);

  auto holder = std::make_unique<TestClient>(server->port());
  ASSERT_TRUE(holder->Send(GetRequest("/livez")));
  ASSERT_TRUE(holder->ReadResponse().has_value());  // Now the one slot is certainly taken.

  TestClient rejected(server->port());
  ASSERT_TRUE(rejected.connected());       // The kernel completes the handshake...
  EXPECT_TRUE(rejected.ClosedByServer());  // ...then the server closes it.

  // Freeing the slot lets new connections in, once the server has seen the close.
  holder.reset();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  bool served = false;
  while (!served && std::chrono::steady_clock::now() < deadline) {
    auto response = Get(server->port(), "/livez");
    served = response.has_value() && response->status == 200;
  }
  EXPECT_TRUE(served);
}

TEST_F(AdminServerTest, StopClosesOpenConnections) {
  auto server = StartServer();
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(GetRequest("/livez")));
  ASSERT_TRUE(client.ReadResponse().has_value());
  server->Stop();
  EXPECT_TRUE(client.ClosedByServer());
  EXPECT_FALSE(TestClient(server->port()).connected());
}

TEST_F(AdminServerTest, StopIsIdempotentAndStartWorksAgain) {
  auto server = StartServer();
  server->Stop();
  server->Stop();
  ASSERT_TRUE(server->Start().ok());
  auto response = Get(server->port(), "/livez");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
}

TEST_F(AdminServerTest, StartTwiceFails) {
  auto server = StartServer();
  const absl::Status status = server->Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
}

TEST_F(AdminServerTest, PortIsZeroBeforeStart) {
  AdminServer server(LoopbackOptions(), {}, nullptr);
  EXPECT_EQ(server.port(), 0);
}

TEST_F(AdminServerTest, LocalhostMeansIpv4Loopback) {
  AdminServer::Options options;
  options.listen = "localhost:0";
  auto server = StartServer(options);
  auto response = Get(server->port(), "/livez");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
}

TEST_F(AdminServerTest, Ipv6LoopbackInBrackets) {
  {
    const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_loopback;
    const bool ipv6 = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    if (fd >= 0) ::close(fd);
    if (!ipv6) GTEST_SKIP() << "no IPv6 loopback here";
  }
  AdminServer::Options options;
  options.listen = "[::1]:0";
  auto server = StartServer(options);
  TestClient client(server->port(), AF_INET6);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send(GetRequest("/livez")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
}

TEST_F(AdminServerTest, InvalidListenAddressIsRejected) {
  for (const std::string listen :
       {"", "127.0.0.1", "127.0.0.1:", ":8080", "127.0.0.1:65536", "127.0.0.1:80x", "127.0.0.1:-1",
        "127.0.0.1:123456", "::1:8080", "[::1]", "[::1:8080", "[::1]8080", "[127.0.0.1]:8080",
        "example.com:8080", "256.0.0.1:80", "[]:80"}) {
    SCOPED_TRACE(listen);
    AdminServer server(AdminServer::Options{.listen = listen}, {}, nullptr);
    const absl::Status status = server.Start();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("\"" + listen + "\""));
    EXPECT_EQ(server.port(), 0);
  }
}

TEST_F(AdminServerTest, AddressInUseIsReported) {
  auto first = StartServer();
  const std::string listen = "127.0.0.1:" + std::to_string(first->port());
  AdminServer second(AdminServer::Options{.listen = listen}, {}, nullptr);
  const absl::Status status = second.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(listen));
  EXPECT_EQ(second.port(), 0);
  // The first server is unaffected.
  auto response = Get(first->port(), "/livez");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
}

}  // namespace
}  // namespace shardmq::broker::app
