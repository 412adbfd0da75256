// sio-conformance-server: answers as the reference servers of the official protocol test
// suites (socketio/engine.io-protocol and socketio/socket.io-protocol, test-suite/) do.
//
//   /engine.io/  Engine.IO only: every message (text or binary) is echoed back.
//   /socket.io/  Socket.IO: namespaces "/" and "/custom"; on connect emit("auth", <auth>);
//                "message" -> emit("message-back", ...same args); "message-with-ack" -> ack
//                with the same args. CONNECT must come within 1 s (the suites' setting).
//
// Prints "listening on <address>:<port>" once bound; stops on SIGINT/SIGTERM.
#include <utility>  // before Asio (g++ 12 + C++20)

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <iostream>

#include "shmbus/bridge/net/http_server.hpp"
#include "shmbus/bridge/socketio/engineio.hpp"
#include "shmbus/bridge/socketio/socketio_server.hpp"

namespace {

using namespace shmbus::bridge;

class EchoListener final : public sio::EngineListener {
 public:
  void on_open(sio::EngineSession&) override {}
  void on_message(sio::EngineSession& session, std::string_view data, bool binary) override {
    if (binary) {
      (void)session.send(std::make_shared<const std::string>(data), true);
    } else {
      auto packet = std::make_shared<std::string>();
      packet->reserve(data.size() + 1);
      *packet += '4';
      *packet += data;
      (void)session.send(std::move(packet), false);
    }
  }
  void on_close(sio::EngineSession&, sio::CloseReason) override {}
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Engine.IO v4 / Socket.IO v5 server for the official protocol test suites"};
  std::string address = "127.0.0.1";
  std::uint16_t port = 3000;
  long ping_interval_ms = 300;
  long ping_timeout_ms = 200;
  std::size_t max_payload = 1'000'000;
  long connect_timeout_ms = 1000;
  long auth_delay_ms = 5;
  app.add_option("--address", address, "listen address")->capture_default_str();
  app.add_option("--port", port, "listen port (0: any free port)")->capture_default_str();
  app.add_option("--ping-interval-ms", ping_interval_ms, "Engine.IO pingInterval")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--ping-timeout-ms", ping_timeout_ms, "Engine.IO pingTimeout")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-payload", max_payload, "Engine.IO maxPayload (bytes)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--connect-timeout-ms", connect_timeout_ms, "Socket.IO connect timeout")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  // The suites' client (ws 8.5) emits every frame of one TCP read synchronously, before the
  // test's next `await` has registered its listener: if the "auth" event arrives in the same
  // read as the CONNECT reply, the test never sees it. The reference Node server leaves an
  // event-loop turn between the two writes; this gap does the same job with a wider margin.
  app.add_option("--auth-delay-ms", auth_delay_ms,
                 "delay between the CONNECT reply and the \"auth\" event (see source)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);

  boost::asio::io_context io{1};
  net::ServerOptions http_options;
  http_options.address = address;
  http_options.port = port;
  http_options.max_body = max_payload + 1024;  // Engine.IO answers above maxPayload itself
  http_options.websocket.max_message = max_payload + 1024;
  net::HttpServer http(io, http_options);

  sio::EngineOptions engine;
  engine.ping_interval = std::chrono::milliseconds(ping_interval_ms);
  engine.ping_timeout = std::chrono::milliseconds(ping_timeout_ms);
  engine.max_payload = max_payload;
  engine.cors_origin = "*";

  EchoListener echo;
  auto eio = std::make_shared<sio::EngineIoServer>(io, engine, echo);
  http.mount("/engine.io/", eio);

  sio::SocketIoOptions sio_options;
  sio_options.engine = engine;
  sio_options.namespaces = {"/", "/custom"};
  sio_options.connect_timeout = std::chrono::milliseconds(connect_timeout_ms);
  sio::SocketIoServer server(http, sio_options);
  std::unordered_map<sio::SocketId, std::string> nsp_of;
  server.on_connected = [&](sio::SocketId id, std::string_view nsp, const sio::json& auth) {
    nsp_of[id] = std::string(nsp);
    auto timer = std::make_shared<boost::asio::steady_timer>(io);
    timer->expires_after(std::chrono::milliseconds(auth_delay_ms));
    timer->async_wait([&server, id, timer, args = sio::json::array({auth})](
                          const boost::system::error_code& ec) mutable {
      if (!ec) server.emit(id, "auth", std::move(args));
    });
  };
  server.on_disconnect = [&](sio::SocketId id, std::string_view) { nsp_of.erase(id); };
  server.on_event = [&](sio::SocketId id, std::string_view event, sio::json& args, sio::Ack ack) {
    if (nsp_of[id] != "/") return;  // the reference /custom namespace only greets
    if (event == "message") {
      server.emit(id, "message-back", std::move(args));
    } else if (event == "message-with-ack" && ack) {
      ack(std::move(args));
    }
  };

  try {
    const auto bound = http.start();
    std::cout << "listening on " << address << ':' << bound << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "sio-conformance-server: " << e.what() << '\n';
    return 1;
  }
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    eio->detach();
    server.close_all();
    http.stop();
  });
  io.run();
  return 0;
}
