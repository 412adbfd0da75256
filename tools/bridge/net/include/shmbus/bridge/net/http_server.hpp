#pragma once
// HttpServer: HTTP/1.1 and WebSocket on Boost.Beast, for bus-bridge's endpoints.
//
// Design
//   One session object per TCP connection (modelled on Beast's advanced_server example).
//   A connection starts as an HttpSession: it reads one request at a time (no pipelining),
//   with a deadline on every read, and answers it through
//     - an exact route  (method + path -> synchronous handler returning a Response), or
//     - a mounted prefix (an upgrade-capable handler such as Engine.IO at /socket.io/): the
//       handler gets a Responder it may answer later (long polling), or, for a WebSocket
//       upgrade request, an Upgrader that accepts (-> WsConnection) or rejects with a Response.
//   An accepted upgrade moves the TCP stream into a WsSession (websocket.hpp).
//
// Threading
//   Everything runs on the io_context given to the constructor, which must be run by exactly
//   ONE thread (the "io thread"). Sessions, routes, prefix handlers and WebSocket callbacks
//   are all invoked on it, so none of them needs a lock or a strand. Other threads (the bus
//   reader) hand work over with post(); stop() may be called from any thread.
//
// Limits (ServerOptions): connections at once (excess ones are closed at accept, counted),
//   request header + body size (413 beyond), a deadline to read each request and an idle
//   deadline between keep-alive requests, WebSocket message size and per-connection queue.

#include <utility>  // before Asio: g++ 12 + C++20 needs std::exchange declared first

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shmbus/bridge/net/websocket.hpp"

namespace shmbus::bridge::net {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

struct ServerOptions {
  std::string address = "127.0.0.1";   // loopback unless the operator says otherwise
  std::uint16_t port = 0;              // 0: the OS picks one; start() returns it
  std::size_t max_connections = 4096;  // HTTP and WebSocket connections at once
  std::size_t max_header = 16 * 1024;
  std::size_t max_body = 1024 * 1024;                 // request body; larger -> 413 and close
  std::chrono::milliseconds request_timeout{30'000};  // to read one whole request
  std::chrono::milliseconds idle_timeout{60'000};     // keep-alive: wait for the next one
  std::chrono::milliseconds write_timeout{30'000};    // to write one HTTP response
  WsOptions websocket{};
};

// Counters, written on the io thread, readable from any thread (relaxed: monotonic tallies
// and gauges shown in /metrics; no other data is published through them).
struct ServerStats {
  std::atomic<std::uint64_t> connections_open{0};
  std::atomic<std::uint64_t> connections_total{0};
  std::atomic<std::uint64_t> connections_rejected{0};  // over max_connections
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> bad_requests{0};  // unparsable, too large, timed out mid-request
  std::atomic<std::uint64_t> websocket_upgrades{0};
};

class HttpSession;

// Answers one request, once. Move-only. Dropping it unanswered answers 500, so a request is
// never left hanging. Must be used on the io thread.
class Responder {
 public:
  Responder() = default;
  explicit Responder(std::shared_ptr<HttpSession> session) : session_(std::move(session)) {}
  Responder(Responder&&) noexcept = default;
  Responder& operator=(Responder&& other) noexcept;
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  ~Responder();

  // Sends the response; false if already answered or the connection is gone.
  bool send(Response response);
  [[nodiscard]] bool pending() const noexcept { return session_ != nullptr; }

 private:
  std::shared_ptr<HttpSession> session_;
};

// Decides a WebSocket upgrade request, once. Move-only; dropping it undecided rejects 500.
class Upgrader {
 public:
  Upgrader() = default;
  explicit Upgrader(std::shared_ptr<HttpSession> session) : session_(std::move(session)) {}
  Upgrader(Upgrader&&) noexcept = default;
  Upgrader& operator=(Upgrader&& other) noexcept;
  Upgrader(const Upgrader&) = delete;
  Upgrader& operator=(const Upgrader&) = delete;
  ~Upgrader();

  // Completes the handshake (101) and hands the connection's messages to `handler`.
  // Messages may be sent on the returned connection at once (queued until the handshake is
  // done). Null if the connection is gone.
  std::shared_ptr<WsConnection> accept(std::shared_ptr<WsHandler> handler);
  // Answers the upgrade request with a plain HTTP response instead (e.g. 400).
  void reject(Response response);

 private:
  std::shared_ptr<HttpSession> session_;
};

// A handler mounted on a path prefix; sees both plain requests and upgrade requests.
class PrefixHandler {
 public:
  virtual ~PrefixHandler() = default;
  virtual void on_request(Request&& request, Responder responder) = 0;
  virtual void on_upgrade(Request&& request, Upgrader upgrader) = 0;
};

using RouteHandler = std::function<Response(const Request&)>;

// Builds a response with the request's version and keep-alive, the body and content type set.
[[nodiscard]] Response make_response(const Request& request, http::status status, std::string body,
                                     std::string_view content_type = "text/plain; charset=UTF-8");

// The path of a request target without its query ("/a/b?x=1" -> "/a/b").
[[nodiscard]] std::string_view target_path(std::string_view target) noexcept;
// The value of one query parameter, percent-decoding not applied (Engine.IO's are plain).
// Returns false when the parameter is absent.
[[nodiscard]] bool query_param(std::string_view target, std::string_view name,
                               std::string_view& value) noexcept;

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Registration: before start(), on the thread that owns the server.
  void route(http::verb method, std::string path, RouteHandler handler);
  // `prefix` such as "/socket.io/": matches paths starting with it, and the prefix without its
  // trailing slash.
  void mount(std::string prefix, std::shared_ptr<PrefixHandler> handler);

  // Binds and listens; returns the bound port. Throws std::system_error naming the address
  // and port when binding fails.
  std::uint16_t start();
  // Closes the listener and every connection. Any thread; returns before the sessions have
  // finished closing (they finish on the io thread).
  void stop();

  // Runs fn on the io thread. Thread-safe.
  template <class F>
  void post(F&& fn) {
    boost::asio::post(io_, std::forward<F>(fn));
  }

  [[nodiscard]] boost::asio::io_context& context() noexcept { return io_; }
  [[nodiscard]] const ServerStats& stats() const noexcept;
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

  struct State;  // shared with the sessions (routes, options, counters, live sessions)

 private:
  boost::asio::io_context& io_;
  std::shared_ptr<State> state_;
  std::uint16_t port_ = 0;
};

}  // namespace shmbus::bridge::net
