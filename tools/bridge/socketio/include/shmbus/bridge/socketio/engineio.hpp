#pragma once
// EngineIoServer: Engine.IO v4 sessions over HTTP long-polling and WebSocket.
//
// Design
//   Mounted on an HttpServer prefix (e.g. "/engine.io/" or "/socket.io/"). A session starts
//   with a handshake (GET ?EIO=4&transport=polling, or a WebSocket upgrade without sid) and
//   is then driven by:
//     polling   GET  -> waits for packets (one pending GET at most: a second closes the
//                       session), answered with the buffered packets joined by \x1e
//               POST -> packets from the client, answered "ok"
//     upgrade   WebSocket with the sid: "2probe" -> "3probe" (a pending GET answered with
//               noop "6"), "5" -> the session moves to the WebSocket with its buffer
//     websocket one Engine.IO packet per frame; binary messages as binary frames
//   Heartbeat: the server sends "2" every ping_interval; no "3" within ping_timeout closes.
//   Errors before a session exists are HTTP 400 with {"code":N,"message":...} (0 unknown
//   transport, 1 unknown sid, 2 bad handshake method, 3 bad request, 5 unsupported protocol
//   version); 503 with code 4 when the session limits are reached.
//
//   Send path: send()/send_group() queue whole Engine.IO packets (shared strings, so one
//   broadcast is encoded once). Each session holds at most max_queued_packets; beyond that
//   the send is refused (QueueFull) and the caller counts and decides: nothing is dropped
//   silently here.
//
// Threading: all on the io thread of the HttpServer (see http_server.hpp).

#include <utility>  // before Asio (g++ 12 + C++20)

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>

#include "shmbus/bridge/net/http_server.hpp"
#include "shmbus/bridge/socketio/codec.hpp"

namespace shmbus::bridge::sio {

using net::SendResult;

struct EngineOptions {
  std::chrono::milliseconds ping_interval{25'000};
  std::chrono::milliseconds ping_timeout{20'000};
  std::size_t max_payload = 1'000'000;  // bytes of one POST body or one WebSocket message
  std::size_t max_sessions = 10'000;
  // Sessions on the polling transport at once (never upgraded); WebSocket-capable clients
  // leave this pool within one round trip.
  std::size_t max_polling_sessions = 1'000;
  std::size_t max_queued_packets = 4'096;  // per session, waiting for the client
  bool allow_polling = true;
  bool allow_websocket = true;
  std::string cors_origin;  // non-empty: Access-Control-Allow-Origin on polling answers
};

enum class CloseReason : std::uint8_t {
  ClientClose,      // close packet, or the WebSocket closed by the client
  PingTimeout,      // no pong within ping_timeout
  ParseError,       // malformed Engine.IO or Socket.IO packet, or WebSocket frame (a frame
                    // RFC 6455 forbids, a text message that is not UTF-8)
  PayloadTooLarge,  // above max_payload
  DuplicatePoll,    // a second GET while one was pending
  TransportError,   // network error or timeout on the transport
  ServerClose,      // the application closed it (e.g. a slow client cut off)
  ConnectTimeout,   // Socket.IO: no CONNECT in time
  Shutdown,         // server stopping
  kCount
};
[[nodiscard]] std::string_view to_string(CloseReason reason) noexcept;

// Counters readable from any thread (relaxed: tallies for /metrics, publish nothing else).
struct EngineStats {
  std::atomic<std::uint64_t> sessions_open{0};
  std::atomic<std::uint64_t> sessions_total{0};
  std::atomic<std::uint64_t> polling_open{0};
  std::atomic<std::uint64_t> websocket_open{0};
  std::atomic<std::uint64_t> upgrades{0};
  std::atomic<std::uint64_t> handshake_errors{0};  // HTTP 400/503 answers
  std::atomic<std::uint64_t> packets_in{0};
  std::atomic<std::uint64_t> packets_out{0};
  std::atomic<std::uint64_t> dropped_queue_full{0};
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(CloseReason::kCount)> closed{};
};

class EngineSession {
 public:
  virtual ~EngineSession() = default;
  [[nodiscard]] virtual std::uint64_t id() const noexcept = 0;  // unique in this process
  [[nodiscard]] virtual const std::string& sid() const noexcept = 0;
  [[nodiscard]] virtual bool on_websocket() const noexcept = 0;
  // A whole Engine.IO packet ("4..." text) or the bytes of a binary message.
  [[nodiscard]] virtual SendResult send(Frame packet, bool binary) = 0;
  // A text packet and its binary attachments, queued all or none.
  [[nodiscard]] virtual SendResult send_group(const Frame& text,
                                              const std::vector<Frame>& binaries) = 0;
  [[nodiscard]] virtual std::size_t queued() const noexcept = 0;
  virtual void close(CloseReason reason) = 0;
};

class EngineListener {
 public:
  virtual ~EngineListener() = default;
  virtual void on_open(EngineSession& session) = 0;
  // An Engine.IO "message": text without its "4", or binary bytes. Valid during the call.
  virtual void on_message(EngineSession& session, std::string_view data, bool binary) = 0;
  // Once per session; the session is gone after the call.
  virtual void on_close(EngineSession& session, CloseReason reason) = 0;
};

class EngineIoServer final : public net::PrefixHandler {
 public:
  EngineIoServer(boost::asio::io_context& io, EngineOptions options, EngineListener& listener);
  ~EngineIoServer() override;

  void on_request(net::Request&& request, net::Responder responder) override;
  void on_upgrade(net::Request&& request, net::Upgrader upgrader) override;

  // io thread. Null when the session is gone.
  [[nodiscard]] EngineSession* find(std::uint64_t id) noexcept;
  // Closes every session (Shutdown). io thread.
  void close_all();
  // Closes every session and stops calling the listener (its owner is going away); later
  // requests are answered 503. io thread.
  void detach();

  [[nodiscard]] const EngineStats& stats() const noexcept { return stats_; }
  [[nodiscard]] const EngineOptions& options() const noexcept { return options_; }

  class Session;

 private:
  friend class Session;
  std::shared_ptr<Session> create_session(bool websocket);
  void remove_session(Session& session);
  std::string new_sid();

  boost::asio::io_context& io_;
  EngineOptions options_;
  EngineListener* listener_;  // null once detached
  EngineStats stats_;
  std::unordered_map<std::string, std::shared_ptr<Session>> by_sid_;
  std::unordered_map<std::uint64_t, Session*> by_id_;
  std::uint64_t next_id_ = 1;
  std::mt19937_64 rng_;
};

}  // namespace shmbus::bridge::sio
