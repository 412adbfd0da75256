#pragma once
// SocketIoEndpoint: bus topics to Socket.IO clients and back, on the bridge's HTTP server
// (the same port as /health and /metrics), with the protocol layer of tools/bridge/socketio.
//
// Design
//
//   bus ring ──(one reader per topic, thread "sio-reader")──> envelope JSON, encoded ONCE
//        │                                                        │ post (bounded backlog)
//        │                                                        v
//        │                                       io thread: send(packet) to every subscribed
//        │                                       socket -> per-client bounded queue
//   POST /publish, `publish` event (io thread) ──> JsonCodec ──> the bridge's Publisher
//
//   Readers. One Subscriber per topic per bridge, whatever the number of clients, created
//   when the first client's pattern matches the topic and closed when the last one goes.
//   On a LOSSY topic it registers as a consumer named "bus-bridge:<name>:sio" (bus-inspect
//   shows its lag and drops; a lossy reader never holds the producer). On a RELIABLE topic
//   it reads as an OBSERVER (unregistered): the producer never waits for Socket.IO clients,
//   and if the bridge itself falls a ring behind it skips ahead and the gap is reported to
//   the clients (event `gap`) and counted. The reader never waits on a client: it hands each
//   packet to the io thread, and when more than kMaxBacklog packets wait there it skips
//   the message for the clients it was for, adding it to their `missed` count.
//
//   Slow clients. Each client has at most `queue` packets waiting; a send beyond it is
//   refused by the protocol layer and counted as missed for that client. Every
//   `missed_notice_ms` a client with new misses receives `missed` {"count","total"} (when
//   its queue has room again); past `disconnect_after` misses it is disconnected and
//   counted (shmbus_bridge_sio_slow_disconnects_total). Other clients and the bus go on.
//
//   Publishing. The bridge is the topic's producer (Bridge::bus_publisher): when another
//   live process owns the topic, the publish fails with that producer named. Publishing
//   never blocks the io thread: a reliable topic held by a slow consumer answers an error.
//
// Client protocol (event -> ack)
//   subscribe   ["md.*", ...] | "md.*" | {"topics":[...], "binary":bool}
//               -> {"ok":true,"topics":[topics matched now]} | {"ok":false,"error"}
//               then one event per message: name = topic, argument = the JSON envelope
//               (admin/envelope.hpp); in binary mode the envelope's "data" is the raw
//               FlatBuffer as a binary attachment. Topics created later are picked up.
//   unsubscribe same argument -> {"ok":true,"patterns":[patterns still subscribed]}
//   publish     {"topic","message","producer","message_id"} -> {"ok":true,"seq":N} |
//               {"ok":false,"error":"..."}
//   consumed    anything: counted per client name (auth {"consumer": name}) in /metrics
//
// Threading: callbacks of SocketIoServer and HTTP routes run on the io thread and own the
// client table; the reader thread owns the Subscribers; they share only the subscription
// list (mutex + version) and counters (atomics).
#include <memory>
#include <string>

#include "component.hpp"
#include "config.hpp"
#include "socketio_config.hpp"

namespace shmbus::bridge {

class SocketIoEndpoint final : public Component {
 public:
  explicit SocketIoEndpoint(SocketIoConfig config);
  ~SocketIoEndpoint() override;

  [[nodiscard]] std::string name() const override { return "socketio"; }
  void start(Bridge& bridge) override;
  void request_stop() override;
  void stop() override;
  void health(nlohmann::json& out) const override;
  [[nodiscard]] bool healthy() const override { return true; }
  void collect(transport::MetricsRegistry& metrics) override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The endpoint when the configuration enables it (a `socketio:` section), else null.
// Throws ConfigError on a bad section.
[[nodiscard]] std::unique_ptr<Component> make_socketio_endpoint(const Config& config);

}  // namespace shmbus::bridge
