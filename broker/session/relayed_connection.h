// A client connection relayed from a front-end (cluster mode): the client's session lives on
// this node (S = leader(partition(client id))), the socket on another node, which passes the
// client's bytes here and writes ours back (Router::RelayOpen, proto/cluster.proto RelayOpen).
// To the session layer it is a Transport like a TCP connection, so the whole protocol (takeover,
// queues, in-flight and QoS 2 state, keepalive, wills) runs here exactly as for a local client.
//
// Used only on its worker's thread (the one the relay's items are posted to).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "broker/net/transport.h"

namespace shardmq::broker::session {

class ConnectionHandler;
class WorkerCore;

class RelayedConnection final : public net::Transport,
                                public std::enable_shared_from_this<RelayedConnection> {
 public:
  // `origin`: the front-end's node id; `conn`: its id for the connection.
  RelayedConnection(WorkerCore& core, std::string origin, std::string key, uint64_t conn,
                    std::string peer, uint64_t id);
  ~RelayedConnection() override;

  // Hands the first bytes (the CONNECT and what followed) to `handler`.
  void Start(std::shared_ptr<ConnectionHandler> handler, std::string_view data);
  // More bytes from the client.
  void Receive(std::string_view data);
  // The front-end closed the connection, or it is gone: a network loss (the will is due).
  void Lost();

  // net::Transport. Sends are gathered and passed to the front-end once per event-loop turn.
  void Send(std::string_view bytes) override;
  void Close() override;
  // Bytes not yet acknowledged by the front-end (the link's backlog stands in for the socket's:
  // the front-end writes them to its socket as they arrive).
  size_t PendingWriteBytes() const override;
  // While held, bytes from the front-end wait here, neither handled nor reported consumed, so
  // the front-end's window fills and it stops reading the client's socket.
  void HoldReading(bool hold) override;
  const std::string& peer() const override { return peer_; }
  uint64_t id() const override { return id_; }

  // The front-end's socket to the client is congested (or no longer): PendingWriteBytes counts
  // it as full meanwhile.
  void SetFrontendCongested(bool congested);

  const std::string& origin() const { return origin_; }
  const std::string& key() const { return key_; }

 private:
  void Take(std::string_view data);  // passes client bytes to the handler
  void ScheduleFlush();               // Flush once this event-loop turn is over
  void Flush(bool close);
  void Finish();  // OnClosed to the handler, and out of the worker's table

  WorkerCore& core_;
  const std::string origin_;
  const std::string key_;  // the worker's table key (origin, its lease, conn)
  const uint64_t conn_;
  const std::string peer_;
  const uint64_t id_;
  std::shared_ptr<ConnectionHandler> handler_;
  std::string in_;   // client bytes not consumed yet (an incomplete packet)
  bool held_ = false;      // HoldReading
  std::string held_in_;    // client bytes that came while held
  std::string out_;  // bytes for the client, not yet passed on
  bool flush_scheduled_ = false;
  bool closed_ = false;
  bool frontend_congested_ = false;
  uint64_t consumed_ = 0;         // client bytes handled since the last credit report
  bool credit_announced_ = false;  // a reply has carried RelayData.consumed
  std::shared_ptr<std::atomic<int64_t>> unacked_ = std::make_shared<std::atomic<int64_t>>(0);
};

}  // namespace shardmq::broker::session
