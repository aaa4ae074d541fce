#include "cluster/node_server.h"

#include <grpcpp/grpcpp.h>

#include "cluster/peer_link.h"
#include "proto/cluster.grpc.pb.h"

namespace shardmq::cluster {
namespace {

class NodeService final : public v1::Node::Service {
 public:
  explicit NodeService(NodeServer::StatusFn status) : status_(std::move(status)) {}
  grpc::Status Health(grpc::ServerContext*, const v1::HealthRequest*,
                      v1::HealthResponse* response) override {
    *response = status_();
    return grpc::Status::OK;
  }

 private:
  NodeServer::StatusFn status_;
};

class PeerService final : public v1::Peer::Service {
 public:
  explicit PeerService(PeerHandler* handler) : handler_(handler) {}
  grpc::Status Stream(grpc::ServerContext*,
                      grpc::ServerReaderWriter<v1::PeerAck, v1::PeerBatch>* stream) override {
    if (handler_ == nullptr) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "this node takes no peer streams");
    }
    v1::PeerBatch batch;
    std::string sender;
    int64_t sender_lease = 0;
    while (stream->Read(&batch)) {
      if (sender.empty()) {
        sender = batch.sender();
        sender_lease = batch.sender_lease();
      }
      v1::PeerAck ack;
      uint64_t seq = batch.first_seq();
      for (const v1::PeerItem& item : batch.items()) {
        absl::Status st = handler_->Handle(batch.sender(), batch.sender_lease(), item);
        if (!st.ok()) {
          v1::PeerRefusal* r = ack.add_refused();
          r->set_seq(seq);
          r->set_reason(std::string(st.message()));
        }
        ++seq;
      }
      if (batch.items_size() == 0) continue;
      ack.set_seq(batch.first_seq() + static_cast<uint64_t>(batch.items_size()) - 1);
      if (!stream->Write(ack)) break;
    }
    if (!sender.empty()) handler_->StreamEnded(sender, sender_lease);
    return grpc::Status::OK;
  }

  grpc::Status Revoke(grpc::ServerContext*, const v1::RevokeRequest* request,
                      v1::RevokeResponse*) override {
    if (handler_ == nullptr) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "this node takes no peer calls");
    }
    handler_->HandleRevoke(*request);
    return grpc::Status::OK;
  }

 private:
  PeerHandler* handler_;
};

class GrpcNodeServer final : public NodeServer {
 public:
  GrpcNodeServer(StatusFn status, PeerHandler* peers)
      : service_(std::move(status)), peer_service_(peers) {}
  ~GrpcNodeServer() override { Stop(); }

  absl::Status Listen(const std::string& listen) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    builder.RegisterService(&peer_service_);
    // A peer batch holds up to PeerLink::kMaxBatchBytes of items, or one larger item (an MQTT
    // message may be up to 256 MiB).
    builder.SetMaxReceiveMessageSize(kMaxPeerMessageBytes);
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port == 0) {
      return absl::UnavailableError("cluster.cluster_addr " + listen +
                                    ": cannot listen (address in use or not local?)");
    }
    port_ = static_cast<uint16_t>(port);
    return absl::OkStatus();
  }
  uint16_t port() const override { return port_; }
  void Stop() override {
    if (server_ == nullptr) return;
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    server_->Wait();
    server_.reset();
  }

 private:
  NodeService service_;
  PeerService peer_service_;
  std::unique_ptr<grpc::Server> server_;
  uint16_t port_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<NodeServer>> NodeServer::Start(const std::string& listen,
                                                              StatusFn status,
                                                              PeerHandler* peers) {
  auto server = std::make_unique<GrpcNodeServer>(std::move(status), peers);
  absl::Status st = server->Listen(listen);
  if (!st.ok()) return st;
  return server;
}

absl::StatusOr<v1::HealthResponse> QueryHealth(const std::string& address,
                                               std::chrono::milliseconds timeout) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = v1::Node::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  v1::HealthResponse resp;
  grpc::Status st = stub->Health(&ctx, v1::HealthRequest(), &resp);
  if (!st.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                        "health of " + address + ": " + st.error_message());
  }
  return resp;
}

}  // namespace shardmq::cluster
