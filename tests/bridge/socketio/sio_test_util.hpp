#pragma once
// Shared by the Socket.IO tests: a server on an ephemeral loopback port with its own io thread,
// a child-process runner, and a tiny synchronous HTTP / WebSocket client (Beast) for
// byte-exact protocol checks.
#include <utility>  // before Asio (g++ 12 + C++20)

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "shmbus/bridge/net/http_server.hpp"
#include "shmbus/bridge/socketio/socketio_server.hpp"

namespace shmbus::bridge::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// Polls `cond` until true or the deadline passes (no sleeps as synchronisation).
inline bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return cond();
}

// Runs a shell command line (bounded by `timeout 90`), returns {exit status, stdout+stderr}.
struct ProcessResult {
  int status = -1;
  std::string output;
};
inline ProcessResult run_command(const std::string& command) {
  ProcessResult r;
  FILE* pipe = ::popen(("timeout 90 " + command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
  r.status = ::pclose(pipe);
  return r;
}

// The JSON after "RESULT " in a client's output (discarded JSON if absent).
// npm ci into `dir` (the build tree's copy of tests' package.json) once; flock: ctest may run
// several such tests at once. A missing node/npm or registry is a FAILURE with the reason,
// never a skip.
inline void ensure_node_modules(const std::string& dir) {
  const auto r =
      run_command("flock " + dir + "/.npm-lock sh -c 'cd " + dir +
                  " && (test -d node_modules/socket.io-client || npm ci --no-audit --no-fund)'");
  ASSERT_EQ(r.status, 0) << "npm ci failed in " << dir
                         << " (node and npm are required for the socket.io-client tests; "
                            "is the npm registry reachable?):\n"
                         << r.output;
}

inline sio::json result_of(const std::string& output) {
  const auto pos = output.rfind("RESULT ");
  if (pos == std::string::npos) return sio::json(sio::json::value_t::discarded);
  const auto end = output.find('\n', pos);
  return sio::json::parse(output.substr(pos + 7, end == std::string::npos ? end : end - pos - 7),
                          nullptr, false);
}

// A SocketIoServer on 127.0.0.1:<ephemeral>, its io_context run by one thread.
class ServerHarness {
 public:
  explicit ServerHarness(sio::SocketIoOptions options = default_options(),
                         net::ServerOptions http_options = {})
      : http_(io_, with_port0(std::move(http_options))), server_(http_, std::move(options)) {}

  static sio::SocketIoOptions default_options() {
    sio::SocketIoOptions o;
    o.engine.ping_interval = 300ms;
    o.engine.ping_timeout = 200ms;
    o.engine.max_payload = 100'000;
    o.namespaces = {"/", "/custom"};
    o.connect_timeout = 2000ms;
    return o;
  }

  // Call after setting the callbacks.
  void start() {
    port_ = http_.start();
    thread_ = std::thread([this] { io_.run(); });
  }

  ~ServerHarness() { stop(); }

  void stop() {
    if (!thread_.joinable()) return;
    http_.post([this] {
      server_.close_all();
      http_.stop();
    });
    // Let the closes go out, then end the loop even if timers remain.
    wait_until([this] { return http_.stats().connections_open.load() == 0; }, 2000ms);
    io_.stop();
    thread_.join();
  }

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  sio::SocketIoServer& server() { return server_; }
  net::HttpServer& http() { return http_; }
  asio::io_context& io() { return io_; }

 private:
  static net::ServerOptions with_port0(net::ServerOptions o) {
    o.address = "127.0.0.1";
    o.port = 0;
    return o;
  }
  asio::io_context io_{1};
  net::HttpServer http_;
  sio::SocketIoServer server_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

// One synchronous HTTP exchange on a fresh connection. `headers` are set last (they may
// replace the default Content-Type, e.g. application/json, or add an Authorization).
using HttpHeaders = std::vector<std::pair<http::field, std::string>>;
inline http::response<http::string_body> http_request(std::uint16_t port, http::verb method,
                                                      const std::string& target,
                                                      std::string body = {},
                                                      const HttpHeaders& headers = {}) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.expires_after(10s);
  stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::content_type, "text/plain;charset=UTF-8");
  for (const auto& [field, value] : headers) req.set(field, value);
  req.body() = std::move(body);
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  beast::error_code ec;
  http::read(stream, buf, res, ec);
  if (ec) res.result(http::status::unknown);
  return res;
}

// A WebSocket upgrade request written by hand, to read a refusal's status and body.
inline http::response<http::string_body> upgrade_request(std::uint16_t port,
                                                         const std::string& target) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.expires_after(10s);
  stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::connection, "Upgrade");
  req.set(http::field::upgrade, "websocket");
  req.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  req.set(http::field::sec_websocket_version, "13");
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  beast::error_code ec;
  http::read(stream, buf, res, ec);
  if (ec) res.result(http::status::unknown);
  return res;
}

// A raw WebSocket client (no Engine.IO logic): reads and writes frames as they are. With
// `receive_buffer` > 0 its socket's receive buffer is that small and fixed (no autotuning), so
// a client that stops reading makes the server's queue for it fill quickly.
class RawWs {
 public:
  explicit RawWs(std::uint16_t port, const std::string& target, int receive_buffer = 0) : ws_(io_) {
    auto& lowest = beast::get_lowest_layer(ws_);
    if (receive_buffer > 0) {
      lowest.socket().open(tcp::v4());
      lowest.socket().set_option(asio::socket_base::receive_buffer_size(receive_buffer));
    }
    lowest.expires_after(10s);
    lowest.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    ws_.handshake(response_, "127.0.0.1", target, ec_);
    lowest.expires_never();
  }
  [[nodiscard]] bool ok() const { return !ec_; }
  [[nodiscard]] unsigned status() const { return response_.result_int(); }
  const websocket::response_type& response() const { return response_; }

  // Next frame; empty optional on close/error/timeout.
  std::optional<std::string> read(std::chrono::milliseconds timeout = 5000ms) {
    beast::get_lowest_layer(ws_).expires_after(timeout);
    beast::flat_buffer buf;
    ws_.read(buf, ec_);
    if (ec_) return std::nullopt;
    last_binary_ = !ws_.got_text();
    return beast::buffers_to_string(buf.data());
  }
  [[nodiscard]] bool last_binary() const { return last_binary_; }
  // Reads frames, skipping pings ("2"), until one differs.
  std::optional<std::string> read_skip_pings(std::chrono::milliseconds timeout = 5000ms) {
    for (;;) {
      auto f = read(timeout);
      if (!f || *f != "2") return f;
    }
  }
  bool write(const std::string& data, bool binary = false) {
    ws_.binary(binary);
    beast::get_lowest_layer(ws_).expires_after(5s);
    ws_.write(asio::buffer(data), ec_);
    return !ec_;
  }
  // One text message in several frames (fragments), as given.
  bool write_fragments(const std::vector<std::string>& parts) {
    ws_.binary(false);
    beast::get_lowest_layer(ws_).expires_after(5s);
    for (std::size_t i = 0; i < parts.size() && !ec_; ++i) {
      ws_.write_some(i + 1 == parts.size(), asio::buffer(parts[i]), ec_);
    }
    return !ec_;
  }
  [[nodiscard]] beast::error_code error() const { return ec_; }
  // The code of the server's close frame, once read() has failed with websocket::error::closed.
  [[nodiscard]] unsigned close_code() const { return ws_.reason().code; }

 private:
  asio::io_context io_;
  websocket::stream<beast::tcp_stream> ws_;
  websocket::response_type response_;
  beast::error_code ec_;
  bool last_binary_ = false;
};

}  // namespace shmbus::bridge::test
