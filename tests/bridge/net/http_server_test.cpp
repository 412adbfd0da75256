// HttpServer on an ephemeral loopback port: routes, 404/405/413, a mounted prefix answering
// later (long-polling style) or never (500), WebSocket upgrade with echo and a bounded queue,
// the connection limit, and stop().
#include <utility>  // before Asio (g++ 12 + C++20)

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "shmbus/bridge/net/http_server.hpp"

namespace shmbus::bridge::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

Response request(std::uint16_t port, http::verb method, const std::string& target,
                 std::string body = {}) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.expires_after(10s);
  stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  Request req{method, target, 11};
  req.set(http::field::host, "x");
  req.body() = std::move(body);
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buf;
  Response res;
  beast::error_code ec;
  http::read(stream, buf, res, ec);
  if (ec) res.result(http::status::unknown);
  return res;
}

// Echoes WebSocket messages; answers plain requests from another thread, later.
class TestPrefix final : public PrefixHandler, public WsHandler {
 public:
  explicit TestPrefix(HttpServer& server) : server_(server) {}
  void on_request(Request&& req, Responder responder) override {
    if (req.target() == "/p/drop") return;  // dropped unanswered: the server answers 500
    // Hand the responder to another thread, which posts the answer back (long polling).
    auto shared = std::make_shared<Responder>(std::move(responder));
    auto keep = std::make_shared<Request>(std::move(req));
    workers_.emplace_back([this, shared, keep] {
      std::this_thread::sleep_for(20ms);  // the answer really comes later
      server_.post([shared, keep] {
        shared->send(
            make_response(*keep, http::status::ok, "later:" + std::string(keep->target())));
      });
    });
  }
  void on_upgrade(Request&& req, Upgrader upgrader) override {
    if (req.target() == "/p/refuse") {
      return upgrader.reject(make_response(req, http::status::forbidden, "no"));
    }
    conn_ = upgrader.accept(std::shared_ptr<WsHandler>(this, [](WsHandler*) {}));
  }
  void on_ws_message(WsConnection& c, std::string_view data, bool binary) override {
    (void)c.send(std::make_shared<const std::string>(data), binary);
  }
  void on_ws_close(WsConnection&, WsCloseCause cause) override {
    last_close_ = cause;
    conn_.reset();
  }
  ~TestPrefix() override {
    for (auto& t : workers_) t.join();
  }
  std::shared_ptr<WsConnection> conn_;
  std::atomic<WsCloseCause> last_close_{WsCloseCause::Error};

 private:
  HttpServer& server_;
  std::vector<std::thread> workers_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.max_body = 1000;
    o.max_connections = 8;
    o.websocket.max_queue = 4;
    o.websocket.max_message = 100'000;
    server_ = std::make_unique<HttpServer>(io_, o);
    server_->route(http::verb::get, "/health", [](const Request& r) {
      return make_response(r, http::status::ok, "{\"ok\":true}", "application/json");
    });
    server_->route(http::verb::post, "/echo",
                   [](const Request& r) { return make_response(r, http::status::ok, r.body()); });
    prefix_ = std::make_shared<TestPrefix>(*server_);
    server_->mount("/p/", prefix_);
    port_ = server_->start();
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    server_->stop();
    thread_.join();  // returns once every session is gone
    prefix_.reset();
  }
  asio::io_context io_{1};
  std::unique_ptr<HttpServer> server_;
  std::shared_ptr<TestPrefix> prefix_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

TEST_F(HttpServerTest, RoutesAndErrors) {
  EXPECT_NE(port_, 0);
  const auto health = request(port_, http::verb::get, "/health?x=1");
  EXPECT_EQ(health.result(), http::status::ok);
  EXPECT_EQ(health.body(), "{\"ok\":true}");
  EXPECT_EQ(request(port_, http::verb::post, "/echo", "abc").body(), "abc");
  EXPECT_EQ(request(port_, http::verb::get, "/nope").result(), http::status::not_found);
  EXPECT_EQ(request(port_, http::verb::post, "/health").result(), http::status::method_not_allowed);
  EXPECT_EQ(request(port_, http::verb::post, "/echo", std::string(1001, 'x')).result(),
            http::status::payload_too_large);
  EXPECT_GE(server_->stats().bad_requests.load(), 1u);
}

TEST_F(HttpServerTest, PrefixAnswersLaterOrFiveHundredWhenDropped) {
  const auto later = request(port_, http::verb::get, "/p/abc?q=1");
  EXPECT_EQ(later.result(), http::status::ok);
  EXPECT_EQ(later.body(), "later:/p/abc?q=1");
  EXPECT_EQ(request(port_, http::verb::get, "/p").body(), "later:/p");  // bare prefix
  EXPECT_EQ(request(port_, http::verb::get, "/p/drop").result(),
            http::status::internal_server_error);
}

TEST_F(HttpServerTest, WebSocketEchoAndRefusal) {
  asio::io_context io;
  websocket::stream<beast::tcp_stream> ws(io);
  beast::get_lowest_layer(ws).expires_after(10s);
  beast::get_lowest_layer(ws).connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
  ws.handshake("x", "/p/ws");
  for (const bool binary : {false, true}) {
    ws.binary(binary);
    ws.write(asio::buffer(std::string("hello")));
    beast::flat_buffer buf;
    ws.read(buf);
    EXPECT_EQ(beast::buffers_to_string(buf.data()), "hello");
    EXPECT_EQ(ws.got_binary(), binary);
  }
  ws.close(websocket::close_code::normal);
  EXPECT_EQ(server_->stats().websocket_upgrades.load(), 1u);

  websocket::stream<beast::tcp_stream> refused(io);
  beast::get_lowest_layer(refused).connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
  websocket::response_type res;
  beast::error_code ec;
  refused.handshake(res, "x", "/p/refuse", ec);
  EXPECT_TRUE(ec);
}

// The server writes its frames itself (gathered writes) and parses the client's: pings get
// their pong, fragments are joined, every header length form (7, 16, 64 bits) goes both ways,
// and a message above max_message is refused with close code 1009.
TEST_F(HttpServerTest, WebSocketFramingPingFragmentsSizesAndTooLarge) {
  asio::io_context io;
  websocket::stream<beast::tcp_stream> ws(io);
  beast::get_lowest_layer(ws).expires_after(20s);
  beast::get_lowest_layer(ws).connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
  ws.handshake("x", "/p/ws");
  std::string pong;
  ws.control_callback([&](websocket::frame_type kind, beast::string_view payload) {
    if (kind == websocket::frame_type::pong) pong = std::string(payload);
  });
  ws.ping("are-you-there");
  ws.text(true);
  ws.write_some(false, asio::buffer(std::string("hel")));
  ws.write_some(true, asio::buffer(std::string("lo")));
  beast::flat_buffer buf;
  ws.read(buf);
  EXPECT_EQ(beast::buffers_to_string(buf.data()), "hello");
  EXPECT_EQ(pong, "are-you-there");  // the pong came before the echo
  for (const std::size_t size : {std::size_t{0}, std::size_t{125}, std::size_t{126},
                                 std::size_t{65535}, std::size_t{65536}, std::size_t{100000}}) {
    std::string big(size, 'x');
    for (std::size_t i = 0; i < size; ++i) big[i] = static_cast<char>('a' + i % 26);
    ws.binary(true);
    ws.write(asio::buffer(big));
    buf.clear();
    ws.read(buf);
    EXPECT_EQ(buf.size(), size);
    EXPECT_TRUE(beast::buffers_to_string(buf.data()) == big) << size;
  }
  ws.write(asio::buffer(std::string(100'001, 'y')));  // above WsOptions::max_message
  buf.clear();
  beast::error_code ec;
  ws.read(buf, ec);
  EXPECT_EQ(ec, websocket::error::closed);
  EXPECT_EQ(ws.reason().code, 1009);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (prefix_->last_close_.load() != WsCloseCause::TooLarge &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(prefix_->last_close_.load(), WsCloseCause::TooLarge);
}

TEST_F(HttpServerTest, ConnectionLimitClosesExtraConnections) {
  asio::io_context io;
  std::vector<std::unique_ptr<tcp::socket>> held;
  for (int i = 0; i < 8; ++i) {
    held.push_back(std::make_unique<tcp::socket>(io));
    held.back()->connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
  }
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (server_->stats().connections_open.load() < 8 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_EQ(server_->stats().connections_open.load(), 8u);
  EXPECT_EQ(request(port_, http::verb::get, "/health").result(), http::status::unknown);
  EXPECT_GE(server_->stats().connections_rejected.load(), 1u);
  held.clear();
  const auto deadline2 = std::chrono::steady_clock::now() + 5s;
  while (server_->stats().connections_open.load() > 0 &&
         std::chrono::steady_clock::now() < deadline2) {
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_EQ(request(port_, http::verb::get, "/health").result(), http::status::ok);
}

TEST(HttpServerStart, BindFailureNamesTheAddress) {
  asio::io_context io;
  ServerOptions o;
  o.address = "127.0.0.1";
  HttpServer first(io, o);
  o.port = first.start();
  HttpServer second(io, o);
  try {
    (void)second.start();
    FAIL() << "second bind on the same port succeeded";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(o.port)), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace shmbus::bridge::net
