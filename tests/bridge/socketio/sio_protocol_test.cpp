// Byte-exact protocol checks with a raw HTTP / WebSocket client (no Socket.IO library): the
// cases of the official Engine.IO v4 / Socket.IO v5 test suites, plus the limits (payload
// size, sessions, send queue), heartbeat timeout, and a malformed client not disturbing others.
#include "sio_test_util.hpp"

#include <atomic>

namespace shmbus::bridge::test {
namespace {

using sio::json;

std::string sid_of_open(const std::string& open_packet) {
  EXPECT_EQ(open_packet.substr(0, 1), "0");
  return json::parse(open_packet.substr(1)).at("sid").get<std::string>();
}

std::string polling(const std::string& sid = {}) {
  return "/socket.io/?EIO=4&transport=polling" + (sid.empty() ? "" : "&sid=" + sid);
}

class ProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& s = h_.server();
    s.on_event = [this](sio::SocketId id, std::string_view event, json& args, sio::Ack ack) {
      if (event == "message") h_.server().emit(id, "message-back", std::move(args));
      if (ack) ack(json::array({"acked"}));
    };
    s.on_connected = [this](sio::SocketId id, std::string_view, const json&) {
      std::lock_guard lock(m_);
      sockets_.push_back(id);
    };
    s.on_overflow = [this](sio::SocketId, std::uint64_t dropped, std::size_t) {
      overflow_calls_.fetch_add(1);
      last_dropped_.store(dropped);
    };
  }
  void start() { h_.start(); }

  ServerHarness h_;
  std::mutex m_;
  std::vector<sio::SocketId> sockets_;
  std::atomic<int> overflow_calls_{0};
  std::atomic<std::uint64_t> last_dropped_{0};
};

// ------------------------------------------------------------------ handshake errors

TEST_F(ProtocolTest, HandshakeErrorsCarryTheProtocolCodes) {
  start();
  const auto port = h_.port();
  struct Case {
    http::verb method;
    std::string target;
    int code;
  };
  const std::vector<Case> cases{
      {http::verb::get, "/socket.io/?EIO=3&transport=polling", 5},
      {http::verb::get, "/socket.io/?EIO=abc&transport=polling", 5},
      {http::verb::get, "/socket.io/?transport=polling", 5},
      {http::verb::get, "/socket.io/?EIO=4", 0},
      {http::verb::get, "/socket.io/?EIO=4&transport=abc", 0},
      {http::verb::get, "/socket.io/?EIO=4&transport=polling&sid=nope", 1},
      {http::verb::post, "/socket.io/?EIO=4&transport=polling", 2},
      {http::verb::put, "/socket.io/?EIO=4&transport=polling", 2},
      {http::verb::get, "/socket.io/?EIO=4&transport=websocket", 3},  // no upgrade header
  };
  for (const auto& c : cases) {
    const auto res = http_request(port, c.method, c.target);
    EXPECT_EQ(res.result_int(), 400u) << c.target;
    const auto body = json::parse(res.body(), nullptr, false);
    ASSERT_TRUE(body.is_object()) << res.body();
    EXPECT_EQ(body.at("code"), c.code) << c.target;
    EXPECT_TRUE(body.at("message").is_string());
  }
  const auto res = http_request(port, http::verb::get, "/socket.io/?EIO=3&transport=polling");
  EXPECT_EQ(json::parse(res.body()).at("message"), "Unsupported protocol version");
}

TEST_F(ProtocolTest, WebSocketUpgradeWithBadEioIsRefused400) {
  start();
  const auto eio3 = upgrade_request(h_.port(), "/socket.io/?EIO=3&transport=websocket");
  EXPECT_EQ(eio3.result_int(), 400u);
  EXPECT_EQ(json::parse(eio3.body()).at("code"), 5);
  const auto sid = upgrade_request(h_.port(), "/socket.io/?EIO=4&transport=websocket&sid=nope");
  EXPECT_EQ(sid.result_int(), 400u);
  EXPECT_EQ(json::parse(sid.body()).at("code"), 1);
  RawWs ws(h_.port(), "/socket.io/?EIO=3&transport=websocket");
  EXPECT_FALSE(ws.ok());
}

// ------------------------------------------------------------------ polling + upgrade

TEST_F(ProtocolTest, PollingHandshakeMessagesAndUpgrade) {
  start();
  const auto port = h_.port();
  auto open = http_request(port, http::verb::get, polling());
  ASSERT_EQ(open.result_int(), 200u);
  const auto handshake = json::parse(open.body().substr(1));
  EXPECT_EQ(handshake.at("upgrades"), json::array({"websocket"}));
  EXPECT_EQ(handshake.at("pingInterval"), 300);
  EXPECT_EQ(handshake.at("pingTimeout"), 200);
  EXPECT_EQ(handshake.at("maxPayload"), 100000);
  const std::string sid = handshake.at("sid");

  // Socket.IO CONNECT and an event in one payload; both answers in the next poll.
  auto post = http_request(port, http::verb::post, polling(sid),
                           "40\x1e"
                           "42[\"message\",1,\"2\"]");
  ASSERT_EQ(post.result_int(), 200u);
  EXPECT_EQ(post.body(), "ok");
  auto poll = http_request(port, http::verb::get, polling(sid));
  ASSERT_EQ(poll.result_int(), 200u);
  const auto sep = poll.body().find('\x1e');
  ASSERT_NE(sep, std::string::npos) << poll.body();
  EXPECT_EQ(poll.body().substr(0, 8), "40{\"sid\"");
  EXPECT_EQ(poll.body().substr(sep + 1), "42[\"message-back\",1,\"2\"]");

  // Upgrade: probe, the pending poll released with a noop, then "5".
  RawWs ws(port, "/socket.io/?EIO=4&transport=websocket&sid=" + sid);
  ASSERT_TRUE(ws.ok());
  ASSERT_TRUE(ws.write("2probe"));
  EXPECT_EQ(ws.read(), "3probe");
  auto noop = http_request(port, http::verb::get, polling(sid));
  EXPECT_EQ(noop.body(), "6");
  ASSERT_TRUE(ws.write("5"));
  ASSERT_TRUE(ws.write("42[\"message\",\"over ws\"]"));
  EXPECT_EQ(ws.read_skip_pings(), "42[\"message-back\",\"over ws\"]");
  // The polling side is closed for this session now.
  EXPECT_EQ(http_request(port, http::verb::get, polling(sid)).result_int(), 400u);
  EXPECT_EQ(h_.server().engine_stats().upgrades.load(), 1u);
}

TEST_F(ProtocolTest, DuplicatePollClosesTheSession) {
  start();
  const auto port = h_.port();
  const auto sid = sid_of_open(http_request(port, http::verb::get, polling()).body());
  std::string first_body;
  std::thread first([&] { first_body = http_request(port, http::verb::get, polling(sid)).body(); });
  // The first GET must be pending before the second arrives: wait for the request count.
  ASSERT_TRUE(wait_until([&] { return h_.http().stats().requests.load() >= 2; }, 2000ms));
  const auto second = http_request(port, http::verb::get, polling(sid));
  first.join();
  EXPECT_EQ(second.result_int(), 400u);
  EXPECT_EQ(first_body, "1");
  EXPECT_EQ(http_request(port, http::verb::get, polling(sid)).result_int(), 400u);
  EXPECT_EQ(h_.server()
                .engine_stats()
                .closed[static_cast<std::size_t>(sio::CloseReason::DuplicatePoll)]
                .load(),
            1u);
}

// ------------------------------------------------------------------ heartbeat

TEST_F(ProtocolTest, ClientThatStopsAnsweringPingsIsClosedAfterPingTimeout) {
  start();
  RawWs ws(h_.port(), "/socket.io/?EIO=4&transport=websocket");
  ASSERT_TRUE(ws.ok());
  ASSERT_EQ(ws.read()->substr(0, 1), "0");
  // Answer three pings: the session stays.
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(ws.read(2000ms), "2");
    ASSERT_TRUE(ws.write("3"));
  }
  const auto silent_from = std::chrono::steady_clock::now();
  EXPECT_EQ(ws.read(2000ms), "2");           // not answered
  EXPECT_EQ(ws.read(3000ms), std::nullopt);  // closed by the server
  const auto took = std::chrono::steady_clock::now() - silent_from;
  EXPECT_LT(took, 1500ms);
  EXPECT_EQ(h_.server()
                .engine_stats()
                .closed[static_cast<std::size_t>(sio::CloseReason::PingTimeout)]
                .load(),
            1u);
}

// ------------------------------------------------------------------ limits

TEST_F(ProtocolTest, OversizePayloadRejectedOnBothTransports) {
  start();
  const auto port = h_.port();
  const std::string big = "4" + std::string(100'001, 'x');
  // WebSocket: the session is closed.
  RawWs ws(port, "/socket.io/?EIO=4&transport=websocket");
  ASSERT_TRUE(ws.ok());
  ASSERT_TRUE(ws.read().has_value());
  ws.write(big);
  EXPECT_EQ(ws.read_skip_pings(2000ms), std::nullopt);
  // Polling: 413 and the session is gone.
  const auto sid = sid_of_open(http_request(port, http::verb::get, polling()).body());
  EXPECT_EQ(http_request(port, http::verb::post, polling(sid), big).result_int(), 413u);
  EXPECT_EQ(http_request(port, http::verb::get, polling(sid)).result_int(), 400u);
  EXPECT_EQ(h_.server()
                .engine_stats()
                .closed[static_cast<std::size_t>(sio::CloseReason::PayloadTooLarge)]
                .load(),
            2u);
}

// RFC 6455 8.1: a text frame that is not UTF-8 fails that WebSocket (close code 1007, counted
// as a parse error), here with the bad bytes in the second fragment of an Engine.IO message;
// a client connected at the same time is still served.
TEST_F(ProtocolTest, TextFrameNotUtf8ClosesThatClientWith1007OthersServed) {
  start();
  const auto port = h_.port();
  RawWs good(port, "/socket.io/?EIO=4&transport=websocket");
  RawWs bad(port, "/socket.io/?EIO=4&transport=websocket");
  ASSERT_TRUE(good.read().has_value());
  ASSERT_TRUE(bad.read().has_value());
  good.write("40");
  ASSERT_EQ(good.read_skip_pings()->substr(0, 8), "40{\"sid\"");
  bad.write("40");
  ASSERT_TRUE(bad.read_skip_pings().has_value());
  // A valid message split inside a character is fine ...
  ASSERT_TRUE(bad.write_fragments({"42[\"message\",\"\xE2\x82", "\xAC\"]"}));
  EXPECT_EQ(bad.read_skip_pings(), "42[\"message-back\",\"\xE2\x82\xAC\"]");
  // ... a surrogate (never UTF-8) in the second fragment is not.
  ASSERT_TRUE(bad.write_fragments({"42[\"message\",\"", "\xED\xA0\x80\"]"}));
  EXPECT_EQ(bad.read_skip_pings(2000ms), std::nullopt);
  EXPECT_EQ(bad.error(), websocket::error::closed);
  EXPECT_EQ(bad.close_code(), 1007u);
  ASSERT_TRUE(wait_until(
      [&] {
        return h_.server()
                   .engine_stats()
                   .closed[static_cast<std::size_t>(sio::CloseReason::ParseError)]
                   .load() == 1;
      },
      5000ms));
  good.write("42[\"message\",\"still here\"]");
  EXPECT_EQ(good.read_skip_pings(), "42[\"message-back\",\"still here\"]");
}

TEST(ProtocolLimits, PollingSessionLimitAnswers503) {
  auto o = ServerHarness::default_options();
  o.engine.max_polling_sessions = 2;
  ServerHarness h(o);
  h.start();
  EXPECT_EQ(http_request(h.port(), http::verb::get, polling()).result_int(), 200u);
  EXPECT_EQ(http_request(h.port(), http::verb::get, polling()).result_int(), 200u);
  const auto third = http_request(h.port(), http::verb::get, polling());
  EXPECT_EQ(third.result_int(), 503u);
  EXPECT_EQ(json::parse(third.body()).at("code"), 4);
  // WebSocket-only sessions are outside the polling pool.
  RawWs ws(h.port(), "/socket.io/?EIO=4&transport=websocket");
  EXPECT_TRUE(ws.ok());
}

TEST_F(ProtocolTest, FullSendQueueDropsCountsAndReports) {
  start();
  const auto port = h_.port();
  const auto sid = sid_of_open(http_request(port, http::verb::get, polling()).body());
  ASSERT_EQ(http_request(port, http::verb::post, polling(sid), "40").body(), "ok");
  ASSERT_TRUE(wait_until(
      [&] {
        std::lock_guard l(m_);
        return sockets_.size() == 1;
      },
      2000ms));
  const sio::SocketId id = sockets_[0];
  // The client does not poll: the CONNECT reply plus 4095 events fill the 4096 slots.
  const auto max = h_.server().engine_stats().sessions_open.load() == 1 ? 4096 : 0;
  for (int i = 0; i < max + 10; ++i) h_.server().emit(id, "e", json::array({i}));
  ASSERT_TRUE(wait_until([&] { return h_.server().stats().dropped.load() == 11; }, 5000ms))
      << h_.server().stats().dropped.load();
  EXPECT_EQ(overflow_calls_.load(), 11);
  EXPECT_EQ(last_dropped_.load(), 11u);
  // The packets that fit arrive, in order, ending with the last accepted one.
  const auto poll = http_request(port, http::verb::get, polling(sid));
  const auto& body = poll.body();
  EXPECT_EQ(static_cast<int>(std::count(body.begin(), body.end(), '\x1e')), max - 1);
  EXPECT_NE(body.find("42[\"e\",4094]"), std::string::npos);
  EXPECT_EQ(body.find("42[\"e\",4095]"), std::string::npos);
}

// ------------------------------------------------------------------ Socket.IO layer

TEST_F(ProtocolTest, NamespacesAcksBinariesAndMalformedClientAlone) {
  start();
  const auto port = h_.port();
  RawWs good(port, "/socket.io/?EIO=4&transport=websocket");
  RawWs bad(port, "/socket.io/?EIO=4&transport=websocket");
  ASSERT_TRUE(good.read().has_value());
  ASSERT_TRUE(bad.read().has_value());

  good.write("40/random,");
  EXPECT_EQ(good.read_skip_pings(), "44/random,{\"message\":\"Invalid namespace\"}");
  good.write("40/custom,{\"token\":\"abc\"}");
  EXPECT_EQ(good.read_skip_pings()->substr(0, 16), "40/custom,{\"sid\"");
  good.write("40");
  EXPECT_EQ(good.read_skip_pings()->substr(0, 8), "40{\"sid\"");

  // Ack with an id, in a namespace.
  good.write("42/custom,17[\"x\"]");
  EXPECT_EQ(good.read_skip_pings(), "43/custom,17[\"acked\"]");
  // Binary event: two attachments echoed back as binary frames after the text.
  good.write(
      "452-[\"message\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]");
  good.write(std::string("\x01\x02\x03", 3), true);
  good.write(std::string("\x04\x05", 2), true);
  EXPECT_EQ(good.read_skip_pings(),
            "452-[\"message-back\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,"
            "\"num\":1}]");
  EXPECT_EQ(good.read_skip_pings(), std::string("\x01\x02\x03", 3));
  EXPECT_TRUE(good.last_binary());
  EXPECT_EQ(good.read_skip_pings(), std::string("\x04\x05", 2));

  // A malformed packet closes that client only.
  bad.write("40");
  ASSERT_TRUE(bad.read_skip_pings().has_value());
  bad.write("42{}");
  EXPECT_EQ(bad.read_skip_pings(2000ms), std::nullopt);
  EXPECT_EQ(h_.server().stats().parse_errors.load(), 1u);
  good.write("42[\"message\",\"still here\"]");
  EXPECT_EQ(good.read_skip_pings(), "42[\"message-back\",\"still here\"]");
}

TEST_F(ProtocolTest, BroadcastEncodesOnceForEverySocketOfTheNamespace) {
  start();
  std::vector<std::unique_ptr<RawWs>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<RawWs>(h_.port(), "/socket.io/?EIO=4&transport=websocket"));
    ASSERT_TRUE(clients.back()->read().has_value());
    clients.back()->write("40");
    ASSERT_TRUE(clients.back()->read_skip_pings().has_value());
  }
  const auto packet = sio::SocketIoServer::encode("/", "news", json::array({1, "two"}));
  EXPECT_EQ(*packet->text, "42[\"news\",1,\"two\"]");
  const auto before = h_.server().stats().events_out.load();
  h_.server().broadcast(packet);  // from this (non-io) thread
  for (auto& c : clients) EXPECT_EQ(c->read_skip_pings(), "42[\"news\",1,\"two\"]");
  // The io thread counts after its loop; a client may read its copy first.
  EXPECT_TRUE(
      wait_until([&] { return h_.server().stats().events_out.load() - before == 3u; }, 2000ms))
      << "events_out advanced by " << h_.server().stats().events_out.load() - before;
}

TEST(ProtocolTimeouts, NoConnectWithinConnectTimeoutCloses) {
  auto o = ServerHarness::default_options();
  o.connect_timeout = 700ms;
  ServerHarness h(o);
  h.start();
  RawWs ws(h.port(), "/socket.io/?EIO=4&transport=websocket");
  ASSERT_TRUE(ws.read().has_value());
  const auto start = std::chrono::steady_clock::now();
  for (;;) {  // answer pings so that only the connect timeout can close it
    auto f = ws.read(3000ms);
    if (!f) break;
    if (*f == "2") ws.write("3");
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2000ms);
  EXPECT_EQ(h.server()
                .engine_stats()
                .closed[static_cast<std::size_t>(sio::CloseReason::ConnectTimeout)]
                .load(),
            1u);
}

}  // namespace
}  // namespace shmbus::bridge::test
