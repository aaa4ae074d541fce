#include "broker/app/app.h"

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "broker/app/admin_server.h"
#include "broker/app/config.h"
#include "broker/app/cpus.h"
#include "broker/app/metrics.h"
#include "broker/net/listener.h"
#include "broker/net/worker.h"
#include "broker/session/broker_core.h"
#include "broker/session/connection_handler.h"
#include "cluster/cluster_node.h"
#include "common/host_port.h"
#include "common/clock.h"
#include "common/log.h"
#include "storage/retained_index.h"
#include "storage/storage.h"

namespace shardmq::broker::app {
namespace {

absl::Status ApplyFlags(const Flags& flags, config::Config* cfg) {
  if (flags.mqtt) cfg->mutable_mqtt()->set_listen(*flags.mqtt);
  if (flags.admin) cfg->mutable_admin()->set_listen(*flags.admin);
  if (flags.data_dir) cfg->set_data_dir(*flags.data_dir);
  if (flags.log_level) cfg->set_log_level(*flags.log_level);
  if (flags.node_id) cfg->set_node_id(*flags.node_id);
  if (flags.role) cfg->mutable_cluster()->set_role(*flags.role);
  if (flags.cluster_addr) cfg->mutable_cluster()->set_cluster_addr(*flags.cluster_addr);
  if (flags.etcd) {
    cfg->mutable_cluster()->clear_etcd();
    cfg->mutable_cluster()->add_etcd(*flags.etcd);  // split on commas by ApplyDefaults
  }
  if (flags.workers) {
    unsigned n = 0;
    const std::string& s = *flags.workers;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || p != s.data() + s.size()) {
      return absl::InvalidArgumentError("--workers: not a number: " + s);
    }
    cfg->set_workers(n);
  }
  return absl::OkStatus();
}

absl::Status PrepareDataDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::FailedPreconditionError("data_dir " + dir + ": " + ec.message());
  if (access(dir.c_str(), W_OK) != 0) {
    return absl::FailedPreconditionError("data_dir " + dir + " is not writable");
  }
  return absl::OkStatus();
}

absl::Status WriteReadyFile(const std::string& path, uint16_t mqtt, uint16_t admin,
                            uint16_t cluster) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "{\"mqtt\":" << mqtt << ",\"admin\":" << admin;
    if (cluster != 0) out << ",\"cluster\":" << cluster;
    out << "}\n";
    if (!out) return absl::InternalError("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError("cannot rename " + tmp + " to " + path);
  }
  return absl::OkStatus();
}

}  // namespace

int Run(const Flags& flags) {
  // Signals are taken synchronously by this thread (sigwait); every thread started below
  // inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  config::Config cfg;
  if (flags.config_path) {
    auto loaded = LoadConfigFile(*flags.config_path);
    if (!loaded.ok()) {
      std::fprintf(stderr, "shardmq: %s\n", std::string(loaded.status().message()).c_str());
      return 2;
    }
    cfg = std::move(*loaded);
  }
  absl::Status st = ApplyFlags(flags, &cfg);
  if (st.ok()) {
    ApplyDefaults(&cfg);
    st = ValidateConfig(cfg);
  }
  if (!st.ok()) {
    std::fprintf(stderr, "shardmq: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  log::Level level;
  log::ParseLevel(cfg.log_level(), &level);
  log::SetLevel(level);

  st = PrepareDataDir(cfg.data_dir());
  if (!st.ok()) {
    SHARDMQ_LOG(ERROR) << st.message();
    return 1;
  }
  storage::StorageOptions storage_options;
  storage_options.data_dir = cfg.data_dir();
  storage_options.durability = cfg.storage().durability() == "fsync"
                                   ? storage::Durability::kFsync
                                   : storage::Durability::kWal;
  storage_options.partitions = cfg.storage().partitions();
  auto opened = storage::OpenRocksStorage(storage_options);
  if (!opened.ok()) {
    SHARDMQ_LOG(ERROR) << "cannot open data directory " << cfg.data_dir() << ": "
                       << opened.status().message();
    return 1;
  }
  std::unique_ptr<storage::Storage> storage = std::move(*opened);
  auto snapshot = storage->Load();
  if (!snapshot.ok()) {
    SHARDMQ_LOG(ERROR) << "cannot read data directory " << cfg.data_dir() << ": "
                       << snapshot.status().message();
    return 1;
  }
  storage::RetainedIndex retained(storage::RetainedIndex::Limits{
      cfg.mqtt().max_retained_messages(), cfg.mqtt().max_retained_payload()});

  int nworkers = static_cast<int>(cfg.workers());
  if (nworkers == 0) {
    const int cpus = UsableCpus();
    nworkers = DefaultWorkers(cpus);
    SHARDMQ_LOG(INFO) << "workers: " << nworkers << " (" << cpus
                      << " usable CPUs, one left to storage)";
  }
  std::vector<std::unique_ptr<net::Worker>> workers;
  std::vector<net::Worker*> worker_ptrs;
  for (int i = 0; i < nworkers; ++i) {
    workers.push_back(std::make_unique<net::Worker>(i));
    worker_ptrs.push_back(workers.back().get());
  }
  auto core = std::make_unique<session::BrokerCore>(cfg, *storage, retained,
                                                    SystemClock::Instance(), worker_ptrs);
  core->Recover(std::move(*snapshot));
  net::Listener listener(
      worker_ptrs,
      [&core](net::Transport& transport, net::Worker& worker) {
        auto handler =
            std::make_shared<session::ConnectionHandler>(core->core(worker.index()), transport);
        handler->Start();
        return handler;
      },
      net::ConnectionLimits{});
  st = listener.Listen(cfg.mqtt().listen());
  if (!st.ok()) {
    SHARDMQ_LOG(ERROR) << st.message();
    return 1;
  }

  // The cluster layer, when cluster.etcd is set (otherwise the node runs alone).
  std::unique_ptr<cluster::ClusterNode> cluster_node;
  if (cfg.cluster().etcd_size() > 0) {
    cluster::ClusterNodeOptions co;
    co.node_id = cfg.node_id();
    co.role = *cluster::ParseRole(cfg.cluster().role());  // validated
    co.cluster_listen = cfg.cluster().cluster_addr();
    auto mqtt_hp = ParseHostPort(cfg.mqtt().listen());
    co.mqtt_addr = FormatHostPort(mqtt_hp.ok() ? mqtt_hp->host : "127.0.0.1", listener.port());
    co.etcd.assign(cfg.cluster().etcd().begin(), cfg.cluster().etcd().end());
    co.prefix = cfg.cluster().etcd_prefix();
    co.lease_ttl_s = cfg.cluster().lease_ttl();
    co.partitions = cfg.storage().partitions();
    co.vnodes = cfg.cluster().vnodes();
    co.hold_qos0_publishers = cfg.cluster().qos0_overload() == "hold";
    auto started = cluster::ClusterNode::Start(std::move(co), *core);
    if (!started.ok()) {
      SHARDMQ_LOG(ERROR) << "cannot join the cluster: " << started.status().message();
      return 1;
    }
    cluster_node = std::move(*started);
    core->set_router(&cluster_node->router());
    core->RegisterRecoveredRoutes();
  }

  auto collector = std::make_shared<BrokerCollector>(*core);
  std::atomic<bool> ready{false};
  std::vector<std::shared_ptr<prometheus::Collectable>> collectors = {collector};
  if (cluster_node) collectors.push_back(std::make_shared<ClusterCollector>(*cluster_node));
  AdminServer admin(AdminServer::Options{cfg.admin().listen()}, collectors,
                    [&ready] { return ready.load(); });
  st = admin.Start();
  if (!st.ok()) {
    SHARDMQ_LOG(ERROR) << st.message();
    return 1;
  }

  for (int i = 0; i < nworkers; ++i) {
    session::WorkerCore& wc = core->core(i);
    wc.worker().Post([&wc] { wc.StartExpirySweeper(std::chrono::seconds(30)); });
  }
  for (auto& w : workers) w->Start();
  listener.Start();
  core->StartSysTopics();
  ready = true;
  SHARDMQ_LOG(INFO) << "shardmq " << SHARDMQ_VERSION << " node " << cfg.node_id()
                    << " listening: mqtt " << cfg.mqtt().listen() << " (port " << listener.port()
                    << "), admin " << cfg.admin().listen() << " (port " << admin.port() << "), "
                    << nworkers << " workers";
  if (flags.ready_file) {
    st = WriteReadyFile(*flags.ready_file, listener.port(), admin.port(),
                        cluster_node ? cluster_node->cluster_port() : 0);
    if (!st.ok()) {
      SHARDMQ_LOG(ERROR) << st.message();
      return 1;
    }
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  SHARDMQ_LOG(INFO) << "signal " << sig << ": shutting down";
  ready = false;
  // A store node hands its partitions over first (bounded by cluster.drain_timeout); then it
  // leaves the cluster: the lease is revoked, so the others see it go at once.
  core->StopPeerDeliveries();
  if (cluster_node) {
    if (cfg.cluster().drain_timeout() > 0 && cfg.cluster().role() != "frontend") {
      absl::Status drained =
          cluster_node->Drain(std::chrono::seconds(cfg.cluster().drain_timeout()));
      if (drained.ok()) {
        SHARDMQ_LOG(INFO) << "drained: this node leads no partition";
      } else {
        SHARDMQ_LOG(WARNING) << "exiting without a complete drain: " << drained.message();
      }
    }
    cluster_node->Stop();
  }
  listener.Stop();
  core->core(0).worker().Post([&core] { core->StopSysTopics(); });
  for (int i = 0; i < nworkers; ++i) {
    session::WorkerCore& wc = core->core(i);
    wc.worker().Post([&wc] {
      wc.StopExpirySweeper();
      wc.StopDeadlineTicker();
      wc.CloseAll();
    });
  }
  // Give the connections a moment to flush their DISCONNECT packets.
  for (int i = 0; i < 100 && core->GetTotals().connections_open > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Commit what the workers still hold, wait for it, then close the storage.
  for (int i = 0; i < nworkers; ++i) {
    session::WorkerCore& wc = core->core(i);
    std::promise<void> flushed;
    wc.worker().Post([&wc, &flushed] {
      wc.CommitPending();
      flushed.set_value();
    });
    flushed.get_future().wait();
  }
  storage->Close();
  for (auto& w : workers) w->Stop();
  for (auto& w : workers) w->Join();
  admin.Stop();
  SHARDMQ_LOG(INFO) << "stopped";
  return 0;
}

}  // namespace shardmq::broker::app
