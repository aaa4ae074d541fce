// A real etcd (Debian's etcd-server, /usr/bin/etcd) for tests: one member on free loopback ports,
// its data in a directory the test owns. Kill() and Restart() (same ports, same data) let tests
// break and restore the connection; the destructor stops the process it started (by PID).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shardmq::test {

class EtcdProcess {
 public:
  static constexpr const char* kBinary = "/usr/bin/etcd";

  // Starts etcd with its data in `dir` and waits until its client port accepts connections.
  static absl::StatusOr<std::unique_ptr<EtcdProcess>> Start(const std::string& dir) {
    if (access(kBinary, X_OK) != 0) {
      return absl::FailedPreconditionError(std::string(kBinary) +
                                           " not found (Debian package etcd-server)");
    }
    absl::Status last;
    for (int attempt = 0; attempt < 5; ++attempt) {  // a free port can be taken meanwhile
      std::unique_ptr<EtcdProcess> p(new EtcdProcess(dir, FreePort(), FreePort()));
      last = p->Launch();
      if (last.ok()) return p;
    }
    return last;
  }

  ~EtcdProcess() { Kill(); }

  // "127.0.0.1:PORT", the client endpoint.
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(client_port_); }
  uint16_t client_port() const { return client_port_; }
  pid_t pid() const { return pid_; }

  // Stops etcd at once (SIGKILL) and reaps it.
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  // Starts it again on the same ports with the same data.
  absl::Status Restart() {
    Kill();
    return Launch();
  }

 private:
  EtcdProcess(std::string dir, uint16_t client_port, uint16_t peer_port)
      : dir_(std::move(dir)), client_port_(client_port), peer_port_(peer_port) {}

  static uint16_t FreePort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
  }

  static bool Accepts(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    close(fd);
    return ok;
  }

  absl::Status Launch() {
    const std::string client = "http://127.0.0.1:" + std::to_string(client_port_);
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    std::vector<std::string> args = {
        kBinary,
        "--name", "test",
        "--data-dir", dir_ + "/etcd",
        "--listen-client-urls", client,
        "--advertise-client-urls", client,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--initial-cluster", "test=" + peer,
        // A single member elects itself; short timeouts make that quick.
        "--heartbeat-interval", "20",
        "--election-timeout", "200",
        "--logger", "zap",
        "--log-level", "error",
        "--log-outputs", dir_ + "/etcd.log",
    };
    pid_ = fork();
    if (pid_ < 0) return absl::InternalError("fork failed");
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(kBinary, argv.data());
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return absl::UnavailableError("etcd exited at start; see " + dir_ + "/etcd.log");
      }
      if (Accepts(client_port_)) return absl::OkStatus();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Kill();
    return absl::DeadlineExceededError("etcd did not listen within 15 s");
  }

  std::string dir_;
  uint16_t client_port_;
  uint16_t peer_port_;
  pid_t pid_ = -1;
};

}  // namespace shardmq::test
