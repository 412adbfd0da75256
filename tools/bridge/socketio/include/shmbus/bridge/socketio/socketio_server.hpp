#pragma once
// SocketIoServer: Socket.IO v5 namespaces, events, acks and binary attachments on Engine.IO.
//
// Design
//   One Client per Engine.IO session; a Client holds one Socket per connected namespace.
//   Sockets are named by a SocketId (a process-unique integer), the handle the application
//   keeps and passes back from any thread.
//
//     client CONNECT  -> namespace configured? no: 44 "Invalid namespace"
//                        on_connect(request) -> accept: 40{"sid"}, then on_connected()
//                                               reject: 44{"message":reason}
//     client EVENT    -> on_event(socket, name, args, ack)     binary values as json::binary
//     client ACK      -> the callback given to emit_with_ack
//     client DISCONNECT / Engine.IO close -> on_disconnect(socket, reason)
//     no CONNECT within connect_timeout   -> the Engine.IO session is closed
//     malformed packet                    -> the Engine.IO session is closed (ParseError)
//
//   Sending: emit() encodes per call; for fan-out, encode once with encode_event() and hand
//   the same EncodedPacket to send()/broadcast(): every socket queues the same shared string.
//   Each Engine.IO session holds at most EngineOptions::max_queued_packets; a send beyond it
//   is dropped, counted, and reported to on_overflow(socket, dropped so far, queued) — the
//   application decides (tell the client, disconnect it).
//
// Threading
//   Callbacks run on the io thread. emit/send/broadcast/disconnect and Ack are callable from
//   any thread: off the io thread they are posted to it (in call order per calling thread),
//   on it they run at once. Counters are atomics readable from any thread.

#include <utility>  // before Asio (g++ 12 + C++20)

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "shmbus/bridge/net/http_server.hpp"
#include "shmbus/bridge/socketio/codec.hpp"
#include "shmbus/bridge/socketio/engineio.hpp"

namespace shmbus::bridge::sio {

using SocketId = std::uint64_t;

struct SocketIoOptions {
  EngineOptions engine{};
  std::string path = "/socket.io/";
  std::vector<std::string> namespaces{"/"};  // CONNECT to any other -> "Invalid namespace"
  std::chrono::milliseconds connect_timeout{45'000};
};

struct ConnectRequest {
  SocketId socket;
  std::string_view nsp;
  const json& auth;  // {} when the client sent none
};

struct ConnectResult {
  bool accepted = true;
  json error;  // the CONNECT_ERROR payload when rejected: {"message": ..., "data"?: ...}
  static ConnectResult accept() { return {}; }
  static ConnectResult reject(std::string message, json data = nullptr) {
    ConnectResult r{false, json{{"message", std::move(message)}}};
    if (!data.is_null()) r.error["data"] = std::move(data);
    return r;
  }
};

// Answers a client's ack request; at most once; any thread. Empty when none was asked for.
using Ack = std::function<void(json args)>;

// An event encoded once, sendable to many sockets of its namespace.
struct EncodedPacket {
  std::string nsp;
  Frame text;                   // "42..." / "45n-..." whole Engine.IO packet
  std::vector<Frame> binaries;  // attachments, in placeholder order
};

struct SocketIoStats {
  std::atomic<std::uint64_t> sockets_open{0};
  std::atomic<std::uint64_t> connects{0};
  std::atomic<std::uint64_t> connect_rejected{0};  // by namespace or by on_connect
  std::atomic<std::uint64_t> events_in{0};
  std::atomic<std::uint64_t> events_out{0};
  std::atomic<std::uint64_t> acks_in{0};
  std::atomic<std::uint64_t> acks_out{0};
  std::atomic<std::uint64_t> dropped{0};       // sends refused by a full queue
  std::atomic<std::uint64_t> parse_errors{0};  // sessions closed for malformed packets
  std::atomic<std::uint64_t> unroutable{0};    // packets for a namespace not connected
};

class SocketIoServer final : private EngineListener {
 public:
  // Mounts itself on `http` at options.path. Callbacks must be set before clients arrive.
  SocketIoServer(net::HttpServer& http, SocketIoOptions options);
  ~SocketIoServer() override;
  SocketIoServer(const SocketIoServer&) = delete;
  SocketIoServer& operator=(const SocketIoServer&) = delete;

  // ---------------------------------------------------------- callbacks (io thread)
  std::function<ConnectResult(const ConnectRequest&)> on_connect;  // unset: accept all
  std::function<void(SocketId, std::string_view nsp, const json& auth)> on_connected;
  // args: the event's arguments (an array, binary values as json binary).
  std::function<void(SocketId, std::string_view event, json& args, Ack ack)> on_event;
  std::function<void(SocketId, std::string_view reason)> on_disconnect;
  std::function<void(SocketId, std::uint64_t dropped_total, std::size_t queued)> on_overflow;

  // ---------------------------------------------------------- sending (any thread)
  // args: the argument list (array); any other value is a single argument.
  void emit(SocketId socket, std::string event, json args);
  void emit_with_ack(SocketId socket, std::string event, json args,
                     std::function<void(json args)> on_ack);
  [[nodiscard]] static std::shared_ptr<const EncodedPacket> encode(std::string_view nsp,
                                                                   std::string_view event,
                                                                   const json& args);
  void send(SocketId socket, std::shared_ptr<const EncodedPacket> packet);
  void send(std::vector<SocketId> sockets, std::shared_ptr<const EncodedPacket> packet);
  void broadcast(std::shared_ptr<const EncodedPacket> packet);  // every socket of its nsp
  // Sends DISCONNECT for the socket's namespace, then on_disconnect. With close_connection
  // the whole Engine.IO session is closed too (all its namespaces).
  void disconnect(SocketId socket, bool close_connection = false);

  // Closes every session. Any thread (posted).
  void close_all();

  [[nodiscard]] const SocketIoStats& stats() const noexcept { return stats_; }
  [[nodiscard]] const EngineStats& engine_stats() const noexcept { return engine_->stats(); }

 private:
  struct Socket;
  struct Client;

  void on_open(EngineSession& session) override;
  void on_message(EngineSession& session, std::string_view data, bool binary) override;
  void on_close(EngineSession& session, CloseReason reason) override;

  template <class F>
  void run(F&& fn);
  void handle_packet(Client& client, EngineSession& session, SioPacket& packet,
                     std::vector<std::string>& attachments);
  void handle_connect(Client& client, EngineSession& session, SioPacket& packet);
  void send_now(SocketId id, const EncodedPacket& packet);
  void remove_socket(SocketId id, std::string_view reason, bool notify_client);
  SendResult send_raw_counted(Socket& socket, const Frame& text, const std::vector<Frame>& binaries,
                              bool report_overflow);
  void protocol_error(EngineSession& session, CodecError error);

  boost::asio::io_context& io_;
  SocketIoOptions options_;
  SocketIoStats stats_;
  std::shared_ptr<EngineIoServer> engine_;  // mounted on the HttpServer (shared)
  std::shared_ptr<bool> alive_;             // posted work checks it: the server may be gone
  std::unordered_map<std::uint64_t, std::unique_ptr<Client>> clients_;  // by Engine.IO id
  std::unordered_map<SocketId, std::unique_ptr<Socket>> sockets_;
  std::unordered_map<std::string, std::unordered_set<SocketId>> by_nsp_;
  SocketId next_socket_ = 1;
  std::mt19937_64 rng_;
};

}  // namespace shmbus::bridge::sio
