#include "bench/load_generator.h"

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "bench/bench_client.h"
#include "bench/payload.h"
#include "bench/worker_stats.h"

namespace shardmq::bench {

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using Role = ClientSpec::Role;

// Connects in progress per worker, whatever --connect-rate says: more only overflows the
// broker's listen backlog.
constexpr size_t kMaxPendingConnects = 256;
// How often the driving thread looks at the workers' counters.
constexpr auto kPollInterval = std::chrono::milliseconds(10);
// After DISCONNECT, how long brokers get to close before the sockets are cut.
constexpr int64_t kDisconnectGraceNs = 3'000'000'000;

int64_t SecondsToNs(double s) { return static_cast<int64_t>(s * 1e9); }

std::string Fmt(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

// One thread running one io_context, and the clients that live on it.
class Worker {
 public:
  Worker(const Options& options, const tcp::endpoint& endpoint, TlsContext* tls)
      : env_{options, io_, endpoint, tls, stats_},
        tick_(io_),
        connect_timer_(io_),
        guard_(io_.get_executor()) {}
  ~Worker() { Join(); }

  // Before Start() only.
  void Add(ClientSpec spec) {
    clients_.push_back(std::make_unique<BenchClient>(env_, std::move(spec)));
  }

  void Start() {
    thread_ = std::thread([this] { io_.run(); });
    Post([this] { Tick(); });
  }
  template <typename F>
  void Post(F&& f) {
    asio::post(io_, std::forward<F>(f));
  }
  // Ends the thread (pending handlers are dropped, not run). Any thread.
  void Stop() {
    guard_.reset();
    io_.stop();
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

  // Worker thread: connects every client with `role`, at most `rate` new connections a second
  // (0 = no limit), at most kMaxPendingConnects at a time.
  void ConnectAll(Role role, double rate) {
    connect_queue_.clear();
    for (auto& c : clients_) {
      if (c->spec().role == role) connect_queue_.push_back(c.get());
    }
    next_connect_ = 0;
    connect_rate_ = rate;
    connect_start_ns_ = SteadyNowNs();
    ConnectNext();
  }

  // Worker thread. `start_ns`: when the first message is due; with --rate, publisher k of
  // `publishers` starts k/publishers of an interval later, so they do not send in lockstep.
  void StartPublishing(int64_t start_ns, uint32_t publishers) {
    const Options& o = env_.options;
    for (auto& c : clients_) {
      if (c->spec().role != Role::kPublisher) continue;
      int64_t offset = 0;
      if (o.rate > 0) {
        const double ordinal = c->spec().index - o.start_index;
        offset = static_cast<int64_t>(1e9 / o.rate * ordinal / std::max<uint32_t>(publishers, 1));
      }
      c->StartPublishing(start_ns + offset);
    }
  }
  void StopPublishing() {
    for (auto& c : clients_) c->StopPublishing();
  }
  void DisconnectAll() {
    connect_queue_.clear();  // no new connects
    for (auto& c : clients_) c->Disconnect();
  }
  void AbortAll() {
    for (auto& c : clients_) c->Abort();
  }

  WorkerStats& stats() { return stats_; }
  // After Join() only.
  const std::vector<std::unique_ptr<BenchClient>>& clients() const { return clients_; }

 private:
  void Tick() {
    const int64_t now = SteadyNowNs();
    for (auto& c : clients_) c->Tick(now);
    tick_.expires_after(std::chrono::seconds(1));
    tick_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) Tick();
    });
  }

  void ConnectNext() {
    while (next_connect_ < connect_queue_.size() && pending_connects_ < kMaxPendingConnects) {
      if (connect_rate_ > 0) {
        // Connection k is due at start + k / rate.
        const int64_t due =
            connect_start_ns_ +
            static_cast<int64_t>(static_cast<double>(next_connect_) * 1e9 / connect_rate_);
        if (due > SteadyNowNs()) {
          if (!connect_timer_armed_) {
            connect_timer_armed_ = true;
            connect_timer_.expires_at(
                asio::steady_timer::time_point(std::chrono::nanoseconds(due)));
            connect_timer_.async_wait([this](const boost::system::error_code& ec) {
              connect_timer_armed_ = false;
              if (!ec) ConnectNext();
            });
          }
          return;
        }
      }
      BenchClient* client = connect_queue_[next_connect_++];
      ++pending_connects_;
      client->Connect([this](bool) {
        --pending_connects_;
        ConnectNext();
      });
    }
  }

  // Declaration order is destruction order reversed: clients go before the io_context.
  asio::io_context io_{1};  // run by one thread
  WorkerStats stats_;
  ClientEnv env_;
  asio::steady_timer tick_;
  asio::steady_timer connect_timer_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::vector<std::unique_ptr<BenchClient>> clients_;
  std::vector<BenchClient*> connect_queue_;
  size_t next_connect_ = 0;
  size_t pending_connects_ = 0;
  bool connect_timer_armed_ = false;
  double connect_rate_ = 0;
  int64_t connect_start_ns_ = 0;
  std::thread thread_;
};

// The clients of a run, by role.
struct Plan {
  std::vector<ClientSpec> subscribers;
  std::vector<ClientSpec> publishers;
  std::vector<ClientSpec> idle;
};

Plan MakePlan(const Options& o) {
  auto make = [&o](Role role, const char* tag, uint32_t i) {
    ClientSpec spec;
    spec.role = role;
    spec.index = o.start_index + i;
    spec.client_id = o.client_prefix + tag + std::to_string(spec.index);
    return spec;
  };
  auto publisher = [&](uint32_t i) {
    ClientSpec spec = make(Role::kPublisher, "pub", i);
    spec.publish_topic = ExpandTopic(o.topic, spec.index);
    return spec;
  };
  auto subscriber = [&](uint32_t i, std::vector<std::string> filters) {
    ClientSpec spec = make(Role::kSubscriber, "sub", i);
    spec.filters = std::move(filters);
    return spec;
  };
  Plan plan;
  const uint32_t n = o.clients;
  switch (o.mode) {
    case Mode::kPub:
      for (uint32_t i = 0; i < n; ++i) plan.publishers.push_back(publisher(i));
      break;
    case Mode::kSub:
      for (uint32_t i = 0; i < n; ++i) {
        // --no-subscribe: no filters, the session (if resumed) has its own.
        std::vector<std::string> filters;
        if (!o.no_subscribe) filters.push_back(ExpandTopic(o.topic, o.start_index + i));
        plan.subscribers.push_back(subscriber(i, std::move(filters)));
      }
      break;
    case Mode::kConn:
      for (uint32_t i = 0; i < n; ++i) plan.idle.push_back(make(Role::kIdle, "conn", i));
      break;
    case Mode::kPubSub:
      switch (o.topology) {
        case Topology::kPairs:
          for (uint32_t i = 0; i < n; ++i) {
            plan.publishers.push_back(publisher(i));
            plan.subscribers.push_back(subscriber(i, {plan.publishers.back().publish_topic}));
          }
          break;
        case Topology::kFanIn: {
          std::vector<std::string> filters;
          for (uint32_t i = 0; i < n; ++i) {
            plan.publishers.push_back(publisher(i));
            filters.push_back(plan.publishers.back().publish_topic);
          }
          if (!o.sub_topic.empty()) {
            filters = {o.sub_topic};  // matches them all (validated)
          } else {
            std::sort(filters.begin(), filters.end());
            filters.erase(std::unique(filters.begin(), filters.end()), filters.end());
          }
          plan.subscribers.push_back(subscriber(0, std::move(filters)));
          break;
        }
        case Topology::kFanOut:
          plan.publishers.push_back(publisher(0));
          for (uint32_t i = 0; i < n; ++i) {
            plan.subscribers.push_back(subscriber(
                i, {o.sub_topic.empty() ? plan.publishers.back().publish_topic : o.sub_topic}));
          }
          break;
      }
      break;
  }
  return plan;
}

// Reads the workers' counters from the driving thread, and prints the progress line.
class Monitor {
 public:
  Monitor(const Options& options, std::vector<std::unique_ptr<Worker>>& workers,
          std::FILE* progress, const std::atomic<bool>* stop)
      : options_(options), workers_(workers), progress_(progress), stop_(stop) {
    start_ns_ = last_ns_ = SteadyNowNs();
  }

  uint64_t Sum(Counter WorkerStats::*field) const {
    uint64_t total = 0;
    for (auto& w : workers_) total += (w->stats().*field).Get();
    return total;
  }

  bool Interrupted() const { return stop_ != nullptr && stop_->load(std::memory_order_relaxed); }

  enum class Wait { kDone, kDeadline, kInterrupted };
  // Polls until `done()` is true, `deadline_ns` (steady; 0 = none) passes, or (if
  // `interruptible`) an interrupt. Prints progress meanwhile.
  template <typename Pred>
  Wait WaitFor(Pred done, int64_t deadline_ns, bool interruptible = true) {
    while (true) {
      if (done()) return Wait::kDone;
      if (interruptible && Interrupted()) return Wait::kInterrupted;
      const int64_t now = SteadyNowNs();
      if (deadline_ns != 0 && now >= deadline_ns) return Wait::kDeadline;
      MaybePrint(now);
      // Polling, not signalling: the hot path must not pay for waking this thread.
      std::this_thread::sleep_for(kPollInterval);
    }
  }

 private:
  void MaybePrint(int64_t now) {
    if (progress_ == nullptr || now - last_ns_ < 1'000'000'000) return;
    const double dt = static_cast<double>(now - last_ns_) / 1e9;
    last_ns_ = now;
    const uint64_t sent = Sum(&WorkerStats::sent);
    const uint64_t received = Sum(&WorkerStats::received);
    const uint64_t connected = Sum(&WorkerStats::connected);
    const uint64_t closed = Sum(&WorkerStats::closed);
    const uint64_t failed = Sum(&WorkerStats::connect_failed);
    const uint64_t errors = Sum(&WorkerStats::errors);
    const double elapsed = static_cast<double>(now - start_ns_) / 1e9;
    std::string line = "bench " + Fmt("%5.0fs", elapsed);
    const bool pubs = options_.mode == Mode::kPub || options_.mode == Mode::kPubSub;
    const bool subs = options_.mode == Mode::kSub || options_.mode == Mode::kPubSub;
    if (pubs) line += "  sent/s " + Fmt("%.0f", static_cast<double>(sent - last_sent_) / dt);
    if (subs)
      line += "  recv/s " + Fmt("%.0f", static_cast<double>(received - last_received_) / dt);
    if (pubs && options_.qos > 0) {
      line += "  acked " + std::to_string(Sum(&WorkerStats::acked)) + "  inflight " +
              std::to_string(Sum(&WorkerStats::inflight));
    }
    line += "  conns " + std::to_string(connected - closed);
    if (options_.mode == Mode::kConn) {
      line += "/" + std::to_string(options_.clients) + "  conn/s " +
              Fmt("%.0f", static_cast<double>(connected - last_connected_) / dt);
    }
    line += "  failed " + std::to_string(failed) + "  errors " + std::to_string(errors) + "\n";
    std::fputs(line.c_str(), progress_);
    std::fflush(progress_);
    last_sent_ = sent;
    last_received_ = received;
    last_connected_ = connected;
  }

  const Options& options_;
  std::vector<std::unique_ptr<Worker>>& workers_;
  std::FILE* progress_;
  const std::atomic<bool>* stop_;
  int64_t start_ns_ = 0;
  int64_t last_ns_ = 0;
  uint64_t last_sent_ = 0;
  uint64_t last_received_ = 0;
  uint64_t last_connected_ = 0;
};

// Pubsub: messages the broker accepted that a subscriber which should have got them did not.
// Publisher p's accepted count is what it sent (QoS 0) or got acknowledged (QoS 1/2).
uint64_t CountLost(const Options& o, const std::vector<std::unique_ptr<Worker>>& workers) {
  absl::flat_hash_map<uint32_t, uint64_t> accepted;  // publisher id -> messages
  std::vector<const BenchClient*> subscribers;
  for (auto& w : workers) {
    for (auto& c : w->clients()) {
      if (c->spec().role == Role::kPublisher) {
        accepted[c->spec().index] = o.qos == 0 ? c->sent() : c->acked();
      } else if (c->spec().role == Role::kSubscriber) {
        subscribers.push_back(c.get());
      }
    }
  }
  uint64_t lost = 0;
  auto edge = [&lost, &accepted](const BenchClient& sub, uint32_t publisher) {
    const uint64_t expected = accepted[publisher];
    auto it = sub.trackers().find(publisher);
    const uint64_t got = it == sub.trackers().end() ? 0 : it->second.distinct();
    if (expected > got) lost += expected - got;
  };
  for (const BenchClient* sub : subscribers) {
    switch (o.topology) {
      case Topology::kPairs:
        edge(*sub, sub->spec().index);
        break;
      case Topology::kFanIn:
        for (auto& [publisher, count] : accepted) edge(*sub, publisher);
        break;
      case Topology::kFanOut:
        edge(*sub, o.start_index);
        break;
    }
  }
  return lost;
}

}  // namespace

LoadGenerator::LoadGenerator(Options options) : options_(std::move(options)) {}
LoadGenerator::~LoadGenerator() = default;

absl::StatusOr<Summary> LoadGenerator::Run(std::FILE* progress, const std::atomic<bool>* stop) {
  const Options& o = options_;
  // Resolve once, here: DNS never runs on a worker loop.
  tcp::endpoint endpoint;
  {
    asio::io_context io;
    tcp::resolver resolver(io);
    boost::system::error_code ec;
    auto results = resolver.resolve(o.host, std::to_string(o.port), ec);
    if (ec || results.empty()) {
      return absl::UnavailableError("cannot resolve " + o.host + ": " + ec.message());
    }
    endpoint = results.begin()->endpoint();
  }
  std::unique_ptr<TlsContext> tls;
  if (o.tls) {
    SHARDMQ_ASSIGN_OR_RETURN(tls, TlsContext::Create(o));
  }

  Plan plan = MakePlan(o);
  const uint32_t num_pubs = static_cast<uint32_t>(plan.publishers.size());
  const uint32_t num_subs = static_cast<uint32_t>(plan.subscribers.size());
  const uint32_t num_idle = static_cast<uint32_t>(plan.idle.size());
  std::vector<std::unique_ptr<Worker>> workers;
  for (uint32_t i = 0; i < o.threads + o.sub_threads; ++i) {
    workers.push_back(std::make_unique<Worker>(o, endpoint, tls.get()));
  }
  // With --sub-threads the subscribers get the last sub_threads workers to themselves.
  for (size_t i = 0; i < plan.subscribers.size(); ++i) {
    const size_t w = o.sub_threads > 0 ? o.threads + i % o.sub_threads : i % o.threads;
    workers[w]->Add(std::move(plan.subscribers[i]));
  }
  for (auto* group : {&plan.publishers, &plan.idle}) {
    for (size_t i = 0; i < group->size(); ++i) {
      workers[i % o.threads]->Add(std::move((*group)[i]));
    }
  }
  for (auto& w : workers) w->Start();

  Monitor monitor(o, workers, progress, stop);
  const double per_worker_rate = o.connect_rate / static_cast<double>(workers.size());
  auto attempts = [&monitor] {
    return monitor.Sum(&WorkerStats::connected) + monitor.Sum(&WorkerStats::connect_failed);
  };
  auto connect = [&](Role role, uint64_t total_after) {
    for (auto& w : workers) {
      Worker* worker = w.get();
      worker->Post([worker, role, per_worker_rate] { worker->ConnectAll(role, per_worker_rate); });
    }
    // Each connect ends by itself (--connect-timeout), so this wait is bounded.
    return monitor.WaitFor([&] { return attempts() >= total_after; }, 0);
  };

  // Connect: subscribers before publishers, so no message is published before its subscription.
  bool proceed = true;
  if (num_subs > 0) {
    proceed = connect(Role::kSubscriber, num_subs) == Monitor::Wait::kDone &&
              monitor.Sum(&WorkerStats::connect_failed) == 0;
  }
  if (proceed && num_pubs > 0) {
    proceed = connect(Role::kPublisher, uint64_t{num_subs} + num_pubs) == Monitor::Wait::kDone &&
              monitor.Sum(&WorkerStats::connect_failed) == 0;
  }
  if (proceed && num_idle > 0) {
    // conn mode measures failures rather than stopping at the first one.
    proceed = connect(Role::kIdle, num_idle) == Monitor::Wait::kDone;
  }

  // Run.
  const int64_t t0 = SteadyNowNs();
  int64_t t_stop = t0;
  int64_t t_drained = t0;
  bool drain_timed_out = false;
  if (proceed) {
    for (auto& w : workers) {
      Worker* worker = w.get();
      worker->Post([worker, t0, num_pubs] { worker->StartPublishing(t0, num_pubs); });
    }
    const int64_t deadline = o.duration_s > 0 ? t0 + SecondsToNs(o.duration_s) : 0;
    monitor.WaitFor(
        [&] {
          if (num_pubs > 0) return monitor.Sum(&WorkerStats::publishers_done) >= num_pubs;
          if (num_subs > 0) return monitor.Sum(&WorkerStats::subscribers_done) >= num_subs;
          return false;  // conn: hold until the deadline
        },
        deadline);
    t_stop = SteadyNowNs();
    for (auto& w : workers) {
      Worker* worker = w.get();
      worker->Post([worker] { worker->StopPublishing(); });
    }
    // Drain: acknowledgements, and in pubsub every accepted message to its subscribers. Also
    // after an interrupt (it is bounded), so that the loss count stays exact.
    if (num_pubs > 0) {
      const uint64_t fan =
          o.mode == Mode::kPubSub && o.topology == Topology::kFanOut ? num_subs : 1;
      drain_timed_out = monitor.WaitFor(
                            [&] {
                              if (monitor.Sum(&WorkerStats::inflight) > 0) return false;
                              if (o.mode != Mode::kPubSub) return true;
                              // In pubsub a subscriber is done only when its connection died.
                              if (monitor.Sum(&WorkerStats::subscribers_done) >= num_subs)
                                return true;
                              const uint64_t accepted = o.qos == 0
                                                            ? monitor.Sum(&WorkerStats::sent)
                                                            : monitor.Sum(&WorkerStats::acked);
                              return monitor.Sum(&WorkerStats::received_unique) >= accepted * fan;
                            },
                            SteadyNowNs() + SecondsToNs(o.drain_s),
                            /*interruptible=*/false) == Monitor::Wait::kDeadline;
    }
    t_drained = SteadyNowNs();
  }

  // Disconnect.
  for (auto& w : workers) {
    Worker* worker = w.get();
    worker->Post([worker] { worker->DisconnectAll(); });
  }
  const int64_t grace = SteadyNowNs() + kDisconnectGraceNs;
  while (monitor.Sum(&WorkerStats::closed) < monitor.Sum(&WorkerStats::connected) &&
         SteadyNowNs() < grace) {
    std::this_thread::sleep_for(kPollInterval);
  }
  for (auto& w : workers) {
    Worker* worker = w.get();
    worker->Post([worker] { worker->AbortAll(); });
  }
  for (auto& w : workers) w->Stop();
  for (auto& w : workers) w->Join();

  // Merge.
  Summary s;
  s.mode = std::string(ModeName(o.mode));
  if (o.mode == Mode::kPubSub) s.topology = std::string(TopologyName(o.topology));
  s.version = std::string(VersionName(o.version));
  s.publishers = num_pubs;
  s.subscribers = num_subs;
  s.idle_connections = num_idle;
  s.threads = o.threads;
  s.qos = o.qos;
  s.payload_size = o.size;
  s.rate = o.rate;
  s.run_s = static_cast<double>(t_stop - t0) / 1e9;
  s.drain_s = static_cast<double>(t_drained - t_stop) / 1e9;
  s.interrupted = monitor.Interrupted();
  s.drain_timed_out = drain_timed_out;
  s.sent = monitor.Sum(&WorkerStats::sent);
  s.acked = monitor.Sum(&WorkerStats::acked);
  s.rejected = monitor.Sum(&WorkerStats::rejected);
  // Never acknowledged: still in flight at the end, or lost with a dead connection.
  if (o.qos > 0) s.unacked = s.sent - std::min(s.sent, s.acked + s.rejected);
  s.received = monitor.Sum(&WorkerStats::received);
  s.received_unique = monitor.Sum(&WorkerStats::received_unique);
  s.duplicates = monitor.Sum(&WorkerStats::duplicates);
  s.reordered = monitor.Sum(&WorkerStats::reordered);
  s.foreign = monitor.Sum(&WorkerStats::foreign);
  s.connected = monitor.Sum(&WorkerStats::connected);
  s.connect_failed = monitor.Sum(&WorkerStats::connect_failed);
  s.errors = monitor.Sum(&WorkerStats::errors);
  if (s.run_s > 0) s.send_rate = static_cast<double>(s.sent) / s.run_s;

  LatencyHistogram latency, ack_latency, connect_time;
  int64_t first_receive = 0, last_receive = 0, first_connect = 0, last_connected = 0;
  int64_t first_send = 0, last_ack = 0;
  auto earliest = [](int64_t a, int64_t b) { return a == 0 ? b : (b == 0 ? a : std::min(a, b)); };
  for (auto& w : workers) {
    WorkerStats& ws = w->stats();
    latency.Merge(ws.latency_ns);
    ack_latency.Merge(ws.ack_latency_ns);
    connect_time.Merge(ws.connect_ns);
    first_receive = earliest(first_receive, ws.first_receive_ns.load());
    last_receive = std::max(last_receive, ws.last_receive_ns.load());
    first_send = earliest(first_send, ws.first_send_ns.load());
    last_ack = std::max(last_ack, ws.last_ack_ns.load());
    first_connect = earliest(first_connect, ws.first_connect_ns);
    last_connected = std::max(last_connected, ws.last_connected_ns);
  }
  s.latency_us = Distribution::From(latency, 1e3);
  s.ack_latency_us = Distribution::From(ack_latency, 1e3);
  s.connect_ms = Distribution::From(connect_time, 1e6);
  // pubsub: from the start of publishing; sub: from its first message (the publishers started
  // whenever they did).
  const int64_t recv_from = o.mode == Mode::kSub ? first_receive : t0;
  if (s.received > 0 && last_receive > recv_from) {
    s.recv_rate =
        static_cast<double>(s.received) / (static_cast<double>(last_receive - recv_from) / 1e9);
  }
  if (s.acked > 0 && last_ack > first_send && first_send != 0) {
    s.ack_span_s = static_cast<double>(last_ack - first_send) / 1e9;
  }
  if (s.connected > 0 && last_connected > first_connect) {
    s.connect_rate = static_cast<double>(s.connected) /
                     (static_cast<double>(last_connected - first_connect) / 1e9);
  }
  if (o.mode == Mode::kPubSub) {
    s.lost = CountLost(o, workers);
  } else if (o.mode == Mode::kSub) {
    for (auto& w : workers) {
      for (auto& c : w->clients()) {
        for (auto& [publisher, tracker] : c->trackers()) s.lost += tracker.gaps();
      }
    }
  }
  return s;
}

}  // namespace shardmq::bench
