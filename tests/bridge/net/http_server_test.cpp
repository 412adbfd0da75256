// HttpServer on an ephemeral loopback port: routes, 404/405/413, a mounted prefix answering
// later (long-polling style) or never (500), WebSocket upgrade with echo and a bounded queue,
// the connection limit, and stop(). The WebSocket framing against RFC 6455 with a raw client
// that writes frames byte by byte: every frame a server must refuse, UTF-8 text across
// fragments, both close handshakes.
#include <utility>  // before Asio (g++ 12 + C++20)

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/socket.h>

#include "shmbus/bridge/net/http_server.hpp"

namespace shmbus::bridge::net {

// gtest names the cause in a failure message (found by ADL: in the enum's namespace).
void PrintTo(WsCloseCause cause, std::ostream* os);
void PrintTo(WsCloseCause cause, std::ostream* os) {
  *os << to_string(cause);
}

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
    if (data == "close-me") {
      (void)c.send(std::make_shared<const std::string>("bye"), false);
      return c.close(4001);
    }
    (void)c.send(std::make_shared<const std::string>(data), binary);
  }
  void on_ws_close(WsConnection&, WsCloseCause cause) override {
    last_close_ = cause;
    closes_.fetch_add(1);  // after last_close_: a reader that sees the count sees the cause
    conn_.reset();
  }
  ~TestPrefix() override {
    for (auto& t : workers_) t.join();
  }
  std::shared_ptr<WsConnection> conn_;
  std::atomic<WsCloseCause> last_close_{WsCloseCause::Error};
  std::atomic<int> closes_{0};

 private:
  HttpServer& server_;
  std::vector<std::thread> workers_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  HttpServerTest() {
    options_.max_body = 1000;
    options_.max_connections = 8;
    options_.websocket.max_queue = 4;
    options_.websocket.max_message = 100'000;
  }
  void SetUp() override {
    server_ = std::make_unique<HttpServer>(io_, options_);
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
  // Waits for the server's next on_ws_close after `closes_before` of them; its cause.
  std::optional<WsCloseCause> next_close(int closes_before) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (prefix_->closes_.load() <= closes_before) {
      if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(2ms);
    }
    return prefix_->last_close_.load();
  }
  ServerOptions options_;
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

// ------------------------------------------------------------------ RFC 6455, byte by byte

// A client frame as bytes: `first` is the FIN/RSV/opcode byte; masked unless told otherwise;
// `form` forces the 16-bit (126) or 64-bit (127) length form for a short payload.
std::string frame(std::uint8_t first, std::string_view payload, bool mask = true, int form = 0) {
  std::string f(1, static_cast<char>(first));
  const std::uint64_t n = payload.size();
  const auto m = static_cast<std::uint8_t>(mask ? 0x80 : 0);
  if (form == 0) form = n < 126 ? 0 : n <= 0xFFFF ? 126 : 127;
  if (form == 0) {
    f += static_cast<char>(m | n);
  } else if (form == 126) {
    f += static_cast<char>(m | 126);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n & 0xFF);
  } else {
    f += static_cast<char>(m | 127);
    for (int i = 7; i >= 0; --i) f += static_cast<char>((n >> (8 * i)) & 0xFF);
  }
  if (!mask) return f + std::string(payload);
  const char key[4] = {0x12, 0x34, 0x56, 0x78};
  f.append(key, 4);
  for (std::size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ key[i % 4]);
  return f;
}

std::string close_body(std::uint16_t code, std::string_view reason = {}) {
  return std::string{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)} +
         std::string(reason);
}

// A WebSocket client that sends whatever bytes it is given and reads the server's frames
// (unmasked) itself; every read has a deadline (poll before recv).
class RawFrameClient {
 public:
  struct Frame {
    std::uint8_t first;  // FIN, RSV, opcode
    std::string payload;
    [[nodiscard]] std::uint8_t opcode() const { return first & 0x0FU; }
    [[nodiscard]] int close_code() const {
      if (payload.size() < 2) return -1;
      return (static_cast<std::uint8_t>(payload[0]) << 8) | static_cast<std::uint8_t>(payload[1]);
    }
  };

  explicit RawFrameClient(std::uint16_t port) : socket_(io_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    send(
        "GET /p/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    std::size_t end = std::string::npos;
    while ((end = in_.find("\r\n\r\n")) == std::string::npos && fill(in_.size() + 1)) {
    }
    upgraded_ = end != std::string::npos && in_.rfind("HTTP/1.1 101", 0) == 0;
    if (end != std::string::npos) in_.erase(0, end + 4);
  }
  [[nodiscard]] bool upgraded() const { return upgraded_; }

  // The server may have closed already (a refused frame): a failed write is no error here.
  void send(const std::string& bytes) {
    beast::error_code ec;
    asio::write(socket_, asio::buffer(bytes), ec);
  }

  std::optional<Frame> read_frame() {
    if (!fill(2)) return std::nullopt;
    std::uint64_t len = static_cast<std::uint8_t>(in_[1]) & 0x7FU;
    std::size_t header = 2;
    if (len >= 126) {
      header = len == 126 ? 4 : 10;
      if (!fill(header)) return std::nullopt;
      len = 0;
      for (std::size_t i = 2; i < header; ++i) len = (len << 8) | static_cast<std::uint8_t>(in_[i]);
    }
    if (!fill(header + len)) return std::nullopt;
    Frame f{static_cast<std::uint8_t>(in_[0]), in_.substr(header, len)};
    in_.erase(0, header + len);
    return f;
  }

  // Frames until a close frame (skipping data frames); its close code, -1 if none came.
  int read_close_code() {
    for (;;) {
      auto f = read_frame();
      if (!f) return -1;
      if (f->opcode() == 0x8) return f->close_code();
    }
  }

  // True once the server has ended the TCP connection (EOF or reset) within the deadline.
  bool server_hung_up(std::chrono::milliseconds timeout = 10s) {
    in_.clear();
    while (fill(in_.size() + 1, timeout)) in_.clear();
    return eof_;
  }

  // Nothing arrives and the connection stays open for `d`.
  bool quiet_for(std::chrono::milliseconds d) { return !fill(in_.size() + 1, d) && !eof_; }

 private:
  bool fill(std::size_t need, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (in_.size() < need) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd pfd{socket_.native_handle(), POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) return false;
      char buf[65536];
      const ssize_t n = ::recv(socket_.native_handle(), buf, sizeof buf, 0);
      if (n <= 0) {
        eof_ = true;
        return false;
      }
      in_.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }

  asio::io_context io_;
  tcp::socket socket_;
  std::string in_;
  bool upgraded_ = false;
  bool eof_ = false;
};

// Every frame RFC 6455 says a server must refuse: the connection fails with the right close
// code (1002 protocol error, 1007 not UTF-8, 1009 too big), the TCP connection ends, the
// handler hears the cause, and the server goes on serving a client that behaves.
TEST_F(HttpServerTest, WebSocketRefusesEveryFrameRfc6455Forbids) {
  struct Case {
    std::string name;
    std::string bytes;
    int code;
    WsCloseCause cause;
  };
  const std::string big(60'000, 'b');
  std::string huge_length = frame(0x82, "");  // a 64-bit length of 2^63, no payload
  huge_length[1] = static_cast<char>(0x80 | 127);
  huge_length.insert(2, std::string("\x80\0\0\0\0\0\0\0", 8));
  std::vector<Case> cases = {
      {"unmasked text frame", frame(0x81, "hi", false), 1002, WsCloseCause::ProtocolError},
      {"RSV1 set (no extension negotiated)", frame(0xC1, "hi"), 1002, WsCloseCause::ProtocolError},
      {"RSV2 set", frame(0xA1, "hi"), 1002, WsCloseCause::ProtocolError},
      {"RSV3 set", frame(0x91, "hi"), 1002, WsCloseCause::ProtocolError},
      {"RSV1 on a ping", frame(0xC9, ""), 1002, WsCloseCause::ProtocolError},
      {"ping of 126 bytes", frame(0x89, std::string(126, 'p')), 1002, WsCloseCause::ProtocolError},
      {"fragmented ping", frame(0x09, "p"), 1002, WsCloseCause::ProtocolError},
      {"fragmented close", frame(0x08, close_body(1000)), 1002, WsCloseCause::ProtocolError},
      {"continuation with no message", frame(0x80, "x"), 1002, WsCloseCause::ProtocolError},
      {"text frame inside a fragmented message", frame(0x01, "a") + frame(0x81, "b"), 1002,
       WsCloseCause::ProtocolError},
      {"binary frame inside a fragmented message", frame(0x02, "a") + frame(0x82, "b"), 1002,
       WsCloseCause::ProtocolError},
      {"16-bit length form for 5 bytes", frame(0x81, "hello", true, 126), 1002,
       WsCloseCause::ProtocolError},
      {"64-bit length form for 5 bytes", frame(0x81, "hello", true, 127), 1002,
       WsCloseCause::ProtocolError},
      {"64-bit length of 2^63", huge_length, 1009, WsCloseCause::TooLarge},
      {"one frame above max_message", frame(0x82, std::string(100'001, 'x')), 1009,
       WsCloseCause::TooLarge},
      {"fragments adding up to more than max_message", frame(0x02, big) + frame(0x80, big), 1009,
       WsCloseCause::TooLarge},
      {"close with a 1-byte body", frame(0x88, "\x03"), 1002, WsCloseCause::ProtocolError},
      {"close reason not UTF-8", frame(0x88, close_body(1000, "\xC0\x80")), 1007,
       WsCloseCause::InvalidUtf8},
      {"text not UTF-8 (overlong)", frame(0x81, "\xC0\x80"), 1007, WsCloseCause::InvalidUtf8},
      {"text with a surrogate", frame(0x81, "a\xED\xA0\x80z"), 1007, WsCloseCause::InvalidUtf8},
      {"text above U+10FFFF", frame(0x81, "\xF4\x90\x80\x80"), 1007, WsCloseCause::InvalidUtf8},
      {"text whose last fragment ends inside a character",
       frame(0x01, "ok\xE2") + frame(0x80, "\x82"), 1007, WsCloseCause::InvalidUtf8},
      {"text fragment invalid after a valid one",
       frame(0x01, "ok") + frame(0x00, "\xFF") + frame(0x80, "!"), 1007, WsCloseCause::InvalidUtf8},
  };
  for (const int op : {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    cases.push_back({"reserved opcode " + std::to_string(op),
                     frame(static_cast<std::uint8_t>(0x80 | op), ""), 1002,
                     WsCloseCause::ProtocolError});
  }
  for (const int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535}) {
    cases.push_back({"close code " + std::to_string(code),
                     frame(0x88, close_body(static_cast<std::uint16_t>(code))), 1002,
                     WsCloseCause::ProtocolError});
  }
  for (const auto& c : cases) {
    const int before = prefix_->closes_.load();
    RawFrameClient client(port_);
    ASSERT_TRUE(client.upgraded()) << c.name;
    client.send(c.bytes);
    EXPECT_EQ(client.read_close_code(), c.code) << c.name;
    EXPECT_TRUE(client.server_hung_up()) << c.name;
    EXPECT_EQ(next_close(before), c.cause) << c.name;
    // A client that behaves is still served.
    RawFrameClient good(port_);
    good.send(frame(0x81, "still here"));
    const auto echo = good.read_frame();
    ASSERT_TRUE(echo.has_value()) << c.name;
    EXPECT_EQ(echo->payload, "still here") << c.name;
    const int before_good = prefix_->closes_.load();
    good.send(frame(0x88, close_body(1000)));
    EXPECT_EQ(good.read_close_code(), 1000);
    EXPECT_EQ(next_close(before_good), WsCloseCause::Remote);
  }
}

// What RFC 6455 allows is accepted: text split inside a character across fragments with a ping
// between them, binary bytes that are not UTF-8, empty fragments, every valid close code, a
// close with no body (answered 1000), and the peer's close echoed with its code.
TEST_F(HttpServerTest, WebSocketAcceptsWhatRfc6455Allows) {
  RawFrameClient c(port_);
  ASSERT_TRUE(c.upgraded());
  c.send(frame(0x01, "price \xE2") + frame(0x89, "mid-message ping") + frame(0x00, "") +
         frame(0x00, "\x82") +
         frame(0x80,
               "\xAC"
               "1"));
  auto pong = c.read_frame();
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->first, 0x8A);
  EXPECT_EQ(pong->payload, "mid-message ping");
  auto text = c.read_frame();
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(text->first, 0x81);  // one whole text frame
  EXPECT_EQ(text->payload,
            "price \xE2\x82\xAC"
            "1");
  c.send(frame(0x82, "\xFF\xC0\x80"));
  auto bin = c.read_frame();
  ASSERT_TRUE(bin.has_value());
  EXPECT_EQ(bin->first, 0x82);
  EXPECT_EQ(bin->payload, "\xFF\xC0\x80");
  const int before = prefix_->closes_.load();
  c.send(frame(0x88, close_body(4000, "bye \xE2\x82\xAC")));
  EXPECT_EQ(c.read_close_code(), 4000);
  EXPECT_TRUE(c.server_hung_up());
  EXPECT_EQ(next_close(before), WsCloseCause::Remote);

  for (const int code :
       {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999}) {
    RawFrameClient k(port_);
    k.send(frame(0x88, close_body(static_cast<std::uint16_t>(code))));
    EXPECT_EQ(k.read_close_code(), code);
    EXPECT_TRUE(k.server_hung_up()) << code;
  }
  RawFrameClient empty(port_);
  empty.send(frame(0x88, ""));
  EXPECT_EQ(empty.read_close_code(), 1000);
}

// The server closes: queued messages go out first, then its close frame; the TCP connection
// stays open until the client answers with its own close frame (RFC 6455 7.1.1), and the
// handler hears of it only then.
TEST_F(HttpServerTest, WebSocketServerCloseWaitsForTheClientsClose) {
  RawFrameClient c(port_);
  const int before = prefix_->closes_.load();
  c.send(frame(0x81, "close-me"));
  auto bye = c.read_frame();
  ASSERT_TRUE(bye.has_value());
  EXPECT_EQ(bye->payload, "bye");
  auto close = c.read_frame();
  ASSERT_TRUE(close.has_value());
  EXPECT_EQ(close->first, 0x88);
  EXPECT_EQ(close->close_code(), 4001);
  EXPECT_TRUE(c.quiet_for(200ms));  // waiting for our answer
  EXPECT_EQ(prefix_->closes_.load(), before);
  c.send(frame(0x88, close_body(4001)));
  EXPECT_TRUE(c.server_hung_up());
  EXPECT_EQ(next_close(before), WsCloseCause::Local);
}

class HttpServerShortCloseTest : public HttpServerTest {
 protected:
  HttpServerShortCloseTest() { options_.websocket.handshake_timeout = 300ms; }
};

// A client that never answers the server's close frame is dropped after handshake_timeout.
TEST_F(HttpServerShortCloseTest, ServerCloseUnansweredEndsAfterTheTimeout) {
  RawFrameClient c(port_);
  const int before = prefix_->closes_.load();
  c.send(frame(0x81, "close-me"));
  EXPECT_EQ(c.read_close_code(), 4001);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.server_hung_up());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 200ms);
  EXPECT_EQ(next_close(before), WsCloseCause::Local);
}

class HttpServerCoalesceTest : public HttpServerTest {
 protected:
  HttpServerCoalesceTest() {
    options_.websocket.coalesce = 200ms;
    options_.websocket.coalesce_bytes = 1000;
  }
};

// Under load (a write less than `coalesce` ago) small frames wait for the flush tick; the first
// frame after a quiet spell goes at once, and coalesce_bytes waiting go at once too.
TEST_F(HttpServerCoalesceTest, BusyClientsFramesWaitForTheTickUnlessEnoughBytesWait) {
  using clock = std::chrono::steady_clock;
  RawFrameClient c(port_);
  ASSERT_TRUE(c.upgraded());
  c.send(frame(0x81, "a") + frame(0x81, "b") + frame(0x81, "c"));
  auto first = c.read_frame();
  const auto t_first = clock::now();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->payload, "a");
  auto second = c.read_frame();
  auto third = c.read_frame();
  const auto waited = clock::now() - t_first;
  ASSERT_TRUE(second.has_value() && third.has_value());
  EXPECT_EQ(second->payload + third->payload, "bc");
  EXPECT_GE(waited, 100ms) << "b and c were not held for the flush tick";
  EXPECT_LT(waited, 5s);

  // After a quiet spell longer than the window: at once again; and 1000 bytes waiting are
  // written without waiting for the tick.
  std::this_thread::sleep_for(300ms);  // the quiet spell itself is what is tested
  const std::string big(600, 'x');
  const auto t0 = clock::now();
  c.send(frame(0x81, big) + frame(0x81, big) + frame(0x81, big));
  for (int i = 0; i < 3; ++i) {
    auto f = c.read_frame();
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->payload, big);
  }
  EXPECT_LT(clock::now() - t0, 150ms) << "600 + 600 bytes waiting should not wait for the tick";
}

class HttpServerWriteBudgetTest : public HttpServerTest {
 protected:
  HttpServerWriteBudgetTest() {
    options_.websocket.coalesce = std::chrono::microseconds(0);  // no per-client window
    options_.websocket.max_writes_per_s = 10;                    // one busy client: a 100 ms window
    options_.websocket.coalesce_max = 1s;
  }
};

// Server-wide coalescing: with a budget of 10 writes/s and one client written to lately, a
// frame that follows a write by less than 100 ms waits for the tick — even though the
// per-client window is off — while a frame after a quiet spell goes at once.
TEST_F(HttpServerWriteBudgetTest, FramesWaitWhenTheServersWriteBudgetIsSpent) {
  using clock = std::chrono::steady_clock;
  RawFrameClient c(port_);
  ASSERT_TRUE(c.upgraded());
  // The first write counts this client as busy; the window follows from it.
  c.send(frame(0x81, "a"));
  auto a = c.read_frame();
  ASSERT_TRUE(a.has_value());
  std::this_thread::sleep_for(150ms);  // longer than the window: the quiet spell is the test
  const auto t0 = clock::now();
  c.send(frame(0x81, "b"));
  auto b = c.read_frame();
  const auto t_b = clock::now();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->payload, "b");
  EXPECT_LT(t_b - t0, 80ms) << "a frame after a quiet spell should go at once";
  c.send(frame(0x81, "c"));
  auto f = c.read_frame();
  const auto waited = clock::now() - t_b;
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->payload, "c");
  EXPECT_GE(waited, 60ms) << "c followed b by less than the window: it should wait for the tick";
  EXPECT_LT(waited, 5s);
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
