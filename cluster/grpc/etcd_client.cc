// EtcdClient over gRPC (proto/etcd.proto stubs), synchronous API with a deadline per call.
// With several endpoints, a call that finds its endpoint unavailable tries the next one; the
// one that answered is tried first next time.
#include "cluster/etcd_client.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/str_join.h"
#include "common/host_port.h"
#include "common/log.h"
#include "proto/etcd.grpc.pb.h"

namespace shardmq::cluster {
namespace {

namespace pb = ::etcdserverpb;

absl::Status FromGrpc(const grpc::Status& st, std::string_view what) {
  if (st.ok()) return absl::OkStatus();
  // gRPC and Abseil share the canonical code numbers.
  return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                      std::string("etcd ") + std::string(what) + ": " + st.error_message());
}

bool Retryable(const grpc::Status& st) {
  return st.error_code() == grpc::StatusCode::UNAVAILABLE ||
         st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

EtcdKeyValue FromPb(const pb::KeyValue& kv) {
  EtcdKeyValue out;
  out.key = kv.key();
  out.value = kv.value();
  out.create_revision = kv.create_revision();
  out.mod_revision = kv.mod_revision();
  out.version = kv.version();
  out.lease = kv.lease();
  return out;
}

struct Endpoint {
  std::string target;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Lease::Stub> lease;
  std::unique_ptr<pb::Watch::Stub> watch;
};

class GrpcWatch;

class GrpcEtcdClient final : public EtcdClient {
 public:
  explicit GrpcEtcdClient(const EtcdOptions& options) : timeout_(options.timeout) {
    for (const std::string& target : options.endpoints) {
      Endpoint ep;
      ep.target = target;
      ep.channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
      ep.kv = pb::KV::NewStub(ep.channel);
      ep.lease = pb::Lease::NewStub(ep.channel);
      ep.watch = pb::Watch::NewStub(ep.channel);
      endpoints_.push_back(std::move(ep));
    }
  }

  // Runs fn(endpoint, context) on the current endpoint, then on the others while they answer
  // UNAVAILABLE or time out.
  template <typename Fn>
  absl::Status Call(std::string_view what, Fn&& fn) {
    const size_t n = endpoints_.size();
    const size_t first = current_.load(std::memory_order_relaxed);
    grpc::Status st;
    for (size_t i = 0; i < n; ++i) {
      const size_t idx = (first + i) % n;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
      st = fn(endpoints_[idx], ctx);
      if (st.ok() || !Retryable(st)) {
        current_.store(idx, std::memory_order_relaxed);
        return FromGrpc(st, what);
      }
    }
    return FromGrpc(st, what);
  }

  absl::StatusOr<EtcdRange> Range(pb::RangeRequest req) {
    pb::RangeResponse resp;
    absl::Status st = Call("range", [&](Endpoint& ep, grpc::ClientContext& ctx) {
      return ep.kv->Range(&ctx, req, &resp);
    });
    if (!st.ok()) return st;
    EtcdRange out;
    out.revision = resp.header().revision();
    for (const pb::KeyValue& kv : resp.kvs()) out.kvs.push_back(FromPb(kv));
    return out;
  }

  absl::StatusOr<EtcdRange> Get(std::string_view key) override {
    pb::RangeRequest req;
    req.set_key(std::string(key));
    return Range(std::move(req));
  }

  absl::StatusOr<EtcdRange> GetPrefix(std::string_view prefix) override {
    pb::RangeRequest req;
    req.set_key(std::string(prefix));
    req.set_range_end(PrefixRangeEnd(prefix));
    return Range(std::move(req));
  }

  absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value,
                              int64_t lease) override {
    pb::PutRequest req;
    req.set_key(std::string(key));
    req.set_value(std::string(value));
    req.set_lease(lease);
    pb::PutResponse resp;
    absl::Status st = Call("put", [&](Endpoint& ep, grpc::ClientContext& ctx) {
      return ep.kv->Put(&ctx, req, &resp);
    });
    if (!st.ok()) return st;
    return resp.header().revision();
  }

  absl::StatusOr<int64_t> Delete(std::string_view key) override {
    pb::DeleteRangeRequest req;
    req.set_key(std::string(key));
    pb::DeleteRangeResponse resp;
    absl::Status st = Call("delete", [&](Endpoint& ep, grpc::ClientContext& ctx) {
      return ep.kv->DeleteRange(&ctx, req, &resp);
    });
    if (!st.ok()) return st;
    return resp.deleted();
  }

  absl::StatusOr<pb::TxnResponse> Txn(const pb::TxnRequest& req) {
    pb::TxnResponse resp;
    absl::Status st = Call("txn", [&](Endpoint& ep, grpc::ClientContext& ctx) {
      return ep.kv->Txn(&ctx, req, &resp);
    });
    if (!st.ok()) return st;
    return resp;
  }

  static pb::Compare ModRevisionIs(std::string_view key, int64_t rev) {
    pb::Compare c;
    c.set_key(std::string(key));
    c.set_target(pb::Compare::MOD);
    c.set_result(pb::Compare::EQUAL);
    c.set_mod_revision(rev);  // an absent key has mod revision 0
    return c;
  }

  absl::StatusOr<bool> CompareAndPut(std::string_view key, std::string_view value,
                                     int64_t expected_mod_revision, int64_t lease,
                                     EtcdKeyValue* current) override {
    pb::TxnRequest req;
    *req.add_compare() = ModRevisionIs(key, expected_mod_revision);
    pb::PutRequest* put = req.add_success()->mutable_request_put();
    put->set_key(std::string(key));
    put->set_value(std::string(value));
    put->set_lease(lease);
    req.add_failure()->mutable_request_range()->set_key(std::string(key));
    auto resp = Txn(req);
    if (!resp.ok()) return resp.status();
    if (!resp->succeeded() && current != nullptr) {
      *current = EtcdKeyValue{};
      current->key = std::string(key);
      if (resp->responses_size() > 0 && resp->responses(0).response_range().kvs_size() > 0) {
        *current = FromPb(resp->responses(0).response_range().kvs(0));
      }
    }
    return resp->succeeded();
  }

  absl::StatusOr<bool> PutIfAll(const std::vector<Condition>& conditions, std::string_view key,
                                std::string_view value, int64_t lease) override {
    pb::TxnRequest req;
    for (const Condition& c : conditions) *req.add_compare() = ModRevisionIs(c.key, c.mod_revision);
    pb::PutRequest* put = req.add_success()->mutable_request_put();
    put->set_key(std::string(key));
    put->set_value(std::string(value));
    put->set_lease(lease);
    auto resp = Txn(req);
    if (!resp.ok()) return resp.status();
    return resp->succeeded();
  }

  absl::StatusOr<bool> CompareAndDelete(std::string_view key,
                                        int64_t expected_mod_revision) override {
    pb::TxnRequest req;
    *req.add_compare() = ModRevisionIs(key, expected_mod_revision);
    req.add_success()->mutable_request_delete_range()->set_key(std::string(key));
    auto resp = Txn(req);
    if (!resp.ok()) return resp.status();
    return resp->succeeded();
  }

  absl::StatusOr<int64_t> GrantLease(int64_t ttl_s) override {
    pb::LeaseGrantRequest req;
    req.set_ttl(ttl_s);
    pb::LeaseGrantResponse resp;
    absl::Status st = Call("lease grant", [&](Endpoint& ep, grpc::ClientContext& ctx) {
      return ep.lease->LeaseGrant(&ctx, req, &resp);
    });
    if (!st.ok()) return st;
    if (!resp.error().empty()) return absl::UnavailableError("etcd lease grant: " + resp.error());
    return resp.id();
  }

  absl::Status RevokeLease(int64_t lease) override {
    pb::LeaseRevokeRequest req;
    req.set_id(lease);
    pb::LeaseRevokeResponse resp;
    return Call("lease revoke", [&](Endpoint& ep, grpc::ClientContext& ctx) {
      return ep.lease->LeaseRevoke(&ctx, req, &resp);
    });
  }

  absl::StatusOr<int64_t> KeepAlive(int64_t lease) override {
    pb::LeaseKeepAliveResponse resp;
    absl::Status st = Call("lease keepalive", [&](Endpoint& ep, grpc::ClientContext& ctx) {
      auto stream = ep.lease->LeaseKeepAlive(&ctx);
      pb::LeaseKeepAliveRequest req;
      req.set_id(lease);
      if (!stream->Write(req) || !stream->Read(&resp)) {
        stream->WritesDone();
        grpc::Status fin = stream->Finish();
        return fin.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream closed") : fin;
      }
      stream->WritesDone();
      ctx.TryCancel();  // one round trip is all we wanted
      stream->Finish().error_code();  // CANCELLED, by us
      return grpc::Status::OK;
    });
    if (!st.ok()) return st;
    return resp.ttl();
  }

  std::unique_ptr<Watch> WatchPrefix(std::string prefix, int64_t start_revision,
                                     WatchCallback callback) override;

  std::vector<Endpoint>& endpoints() { return endpoints_; }
  size_t current() const { return current_.load(std::memory_order_relaxed); }

 private:
  std::vector<Endpoint> endpoints_;
  std::atomic<size_t> current_{0};
  const std::chrono::milliseconds timeout_;
};

class GrpcWatch final : public EtcdClient::Watch {
 public:
  GrpcWatch(GrpcEtcdClient& client, std::string prefix, int64_t start_revision,
            EtcdClient::WatchCallback callback)
      : client_(client),
        prefix_(std::move(prefix)),
        next_revision_(start_revision),
        callback_(std::move(callback)) {
    thread_ = std::thread([this] { Run(); });
  }

  ~GrpcWatch() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
      if (ctx_ != nullptr) ctx_->TryCancel();
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void Run() {
    size_t endpoint = client_.current();
    while (true) {
      grpc::ClientContext ctx;
      {
        std::lock_guard lock(mu_);
        if (stop_) return;
        ctx_ = &ctx;
      }
      Endpoint& ep = client_.endpoints()[endpoint % client_.endpoints().size()];
      auto stream = ep.watch->Watch(&ctx);
      pb::WatchRequest req;
      pb::WatchCreateRequest* create = req.mutable_create_request();
      create->set_key(prefix_);
      create->set_range_end(PrefixRangeEnd(prefix_));
      create->set_start_revision(next_revision_);
      bool healthy = false;
      if (stream->Write(req)) {
        pb::WatchResponse resp;
        while (stream->Read(&resp)) {
          healthy = true;
          if (resp.compact_revision() > 0) {
            // The history from next_revision_ is gone: the caller re-reads; resume from now.
            next_revision_ = resp.header().revision() + 1;
            callback_({}, resp.header().revision(), /*compacted=*/true);
            break;
          }
          if (resp.canceled()) break;
          if (resp.events_size() == 0) continue;  // created, or progress
          std::vector<EtcdEvent> events;
          events.reserve(static_cast<size_t>(resp.events_size()));
          int64_t last = 0;
          for (const pb::Event& e : resp.events()) {
            EtcdEvent ev;
            ev.type = e.type() == pb::Event::DELETE ? EtcdEvent::Type::kDelete
                                                    : EtcdEvent::Type::kPut;
            ev.kv = FromPb(e.kv());
            last = std::max(last, e.kv().mod_revision());
            events.push_back(std::move(ev));
          }
          next_revision_ = last + 1;
          callback_(events, std::max(last, resp.header().revision()), /*compacted=*/false);
        }
      }
      {
        std::lock_guard lock(mu_);
        ctx_ = nullptr;
      }
      ctx.TryCancel();
      stream->Finish().error_code();  // the reason is not needed: we reconnect either way
      std::unique_lock lock(mu_);
      if (stop_) return;
      if (!healthy) ++endpoint;  // this endpoint did not answer: try the next one
      cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stop_; });
    }
  }

  GrpcEtcdClient& client_;
  const std::string prefix_;
  int64_t next_revision_;
  const EtcdClient::WatchCallback callback_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  grpc::ClientContext* ctx_ = nullptr;
  std::thread thread_;
};

std::unique_ptr<EtcdClient::Watch> GrpcEtcdClient::WatchPrefix(std::string prefix,
                                                               int64_t start_revision,
                                                               WatchCallback callback) {
  return std::make_unique<GrpcWatch>(*this, std::move(prefix), start_revision,
                                     std::move(callback));
}

}  // namespace

std::string PrefixRangeEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    unsigned char last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key (etcd: range_end "\0" = no upper bound)
}

absl::StatusOr<std::vector<std::string>> ParseEtcdEndpoints(std::string_view list) {
  std::vector<std::string> out;
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view item = trim(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (item.empty()) continue;
    if (item.starts_with("https://")) {
      return absl::InvalidArgumentError("etcd endpoint \"" + std::string(item) +
                                        "\": TLS to etcd is not supported yet");
    }
    if (item.starts_with("http://")) item.remove_prefix(7);
    if (item.ends_with("/")) item.remove_suffix(1);
    auto hp = ParseHostPort(item);
    if (!hp.ok() || hp->port == 0) {
      return absl::InvalidArgumentError("etcd endpoint \"" + std::string(item) +
                                        "\" is not HOST:PORT");
    }
    out.emplace_back(item);
  }
  if (out.empty()) return absl::InvalidArgumentError("no etcd endpoint given");
  return out;
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Connect(const EtcdOptions& options) {
  if (options.endpoints.empty()) return absl::InvalidArgumentError("no etcd endpoint given");
  auto client = std::make_unique<GrpcEtcdClient>(options);
  // One read proves an endpoint answers.
  auto probe = client->Get("/shardmq-connect-probe");
  if (!probe.ok()) {
    return absl::UnavailableError("cannot reach etcd at " +
                                  absl::StrJoin(options.endpoints, ",") + ": " +
                                  std::string(probe.status().message()));
  }
  return client;
}

}  // namespace shardmq::cluster
