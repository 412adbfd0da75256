// SocketIoServer against REAL, unmodified clients with their default options, run as child
// processes against a server started in-process on an ephemeral loopback port:
//   - Debian's python3-socketio under /usr/bin/python3 (polling first, then the upgrade)
//   - npm's socket.io-client@4 under node: default options (polling, then upgrade) and
//     WebSocket-only
// Each client: connect with auth, a rejected token, emit with ack (JSON and binary), a binary
// server emit, a stream of server emits from another thread received in order, a server
// emit_with_ack answered by the client, disconnect.
#include "sio_test_util.hpp"

#include <atomic>
#include <cstdlib>
#include <vector>

namespace shmbus::bridge::test {
namespace {

constexpr int kTicks = 500;

// The application side: auth check, echo with ack, binaries, an any-thread stream.
class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& s = h_.server();
    s.on_connect = [](const sio::ConnectRequest& r) {
      if (r.auth.is_object() && r.auth.value("token", "") == "secret") {
        return sio::ConnectResult::accept();
      }
      return sio::ConnectResult::reject("bad token");
    };
    s.on_connected = [this](sio::SocketId, std::string_view, const sio::json&) { ++connected_; };
    s.on_disconnect = [this](sio::SocketId, std::string_view reason) {
      std::lock_guard lock(mutex_);
      disconnect_reasons_.emplace_back(reason);
    };
    s.on_event = [this](sio::SocketId id, std::string_view event, sio::json& args, sio::Ack ack) {
      auto& srv = h_.server();
      if (event == "echo" && ack) {
        ack(std::move(args));
      } else if (event == "emit-binary") {
        srv.emit(id, "binary-back", std::move(args));
        if (ack) ack(sio::json::array());
      } else if (event == "stream") {
        // Emits from a thread that is not the io thread: the cross-thread path, in order.
        const int n = args.at(0).get<int>();
        std::lock_guard lock(mutex_);
        streamers_.emplace_back([&srv, id, n] {
          for (int i = 0; i < n; ++i) srv.emit(id, "tick", sio::json::array({i}));
        });
      } else if (event == "server-ack") {
        const int x = args.at(0).get<int>();
        srv.emit_with_ack(id, "question", sio::json::array({x}), [&srv, id](sio::json reply) {
          srv.emit(id, "answer-received", std::move(reply));
        });
      }
    };
    h_.start();
  }

  void TearDown() override {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      threads.swap(streamers_);
    }
    for (auto& t : threads) t.join();
    h_.stop();
  }

  // Asserts what every client must have seen.
  void expect_full_session(const sio::json& r) {
    ASSERT_FALSE(r.is_discarded());
    EXPECT_FALSE(r.contains("connect_error")) << r.dump();
    EXPECT_EQ(r.at("ack"), (sio::json{{"a", 1}, {"b", {1, 2}}}));
    EXPECT_EQ(r.at("binary_ack"), (sio::json{0, 1, 254, 255}));
    EXPECT_EQ(r.at("binary_event"), (sio::json{7, 8}));
    EXPECT_TRUE(r.at("ticks_complete").get<bool>());
    const auto& ticks = r.at("ticks");
    ASSERT_EQ(ticks.size(), static_cast<std::size_t>(kTicks));
    for (int i = 0; i < kTicks; ++i) ASSERT_EQ(ticks[static_cast<std::size_t>(i)], i) << i;
    EXPECT_TRUE(r.at("answered").get<bool>());
    EXPECT_EQ(r.at("answer"), 42);
    EXPECT_EQ(r.at("transport"), "websocket");
    // The client's disconnect reaches the application.
    EXPECT_TRUE(wait_until(
        [this] {
          std::lock_guard lock(mutex_);
          return !disconnect_reasons_.empty();
        },
        5000ms))
        << "sessions open " << h_.server().engine_stats().sessions_open.load() << ", websocket "
        << h_.server().engine_stats().websocket_open.load() << ", sockets "
        << h_.server().stats().sockets_open.load();
  }

  static std::string node_dir() { return SIO_NODE_DIR; }

  static void ensure_node_modules() { test::ensure_node_modules(node_dir()); }

  std::string node_client(const std::string& token, const std::string& mode) {
    return "env NODE_PATH=" + node_dir() + "/node_modules node " SIO_TEST_DIR "/node_client.js " +
           h_.url() + " " + token + " " + std::to_string(kTicks) + " " + mode;
  }

  // Real clients under load (500 events handled in Python threads, sanitizer builds) may
  // answer a ping late: a generous pingTimeout here; the timeout itself is tested in
  // sio_protocol_test.
  static sio::SocketIoOptions client_options() {
    auto o = ServerHarness::default_options();
    o.engine.ping_interval = 1000ms;
    o.engine.ping_timeout = 5000ms;
    return o;
  }
  ServerHarness h_{client_options()};
  std::atomic<int> connected_{0};
  std::mutex mutex_;
  std::vector<std::string> disconnect_reasons_;
  std::vector<std::thread> streamers_;
};

TEST_F(ClientTest, PythonSocketioDefaultOptionsPollingThenUpgrade) {
  const auto r = run_command("/usr/bin/python3 " SIO_TEST_DIR "/py_client.py " + h_.url() +
                             " secret " + std::to_string(kTicks));
  ASSERT_EQ(r.status, 0) << r.output;
  SCOPED_TRACE("client output:\n" + r.output);
  expect_full_session(result_of(r.output));
  EXPECT_GE(h_.server().engine_stats().upgrades.load(), 1u) << "the client never upgraded";
  EXPECT_EQ(connected_.load(), 1);
}

TEST_F(ClientTest, PythonSocketioBadTokenRejectedWithReason) {
  const auto r = run_command("/usr/bin/python3 " SIO_TEST_DIR "/py_client.py " + h_.url() +
                             " wrong " + std::to_string(kTicks));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = result_of(r.output);
  ASSERT_FALSE(j.is_discarded()) << r.output;
  ASSERT_TRUE(j.contains("connect_error")) << j.dump();
  EXPECT_NE(j.at("connect_error").get<std::string>().find("bad token"), std::string::npos)
      << j.dump();
  EXPECT_EQ(connected_.load(), 0);
  EXPECT_GE(h_.server().stats().connect_rejected.load(), 1u);
}

TEST_F(ClientTest, NodeSocketioClientDefaultOptionsPollingThenUpgrade) {
  ensure_node_modules();
  const auto r = run_command(node_client("secret", "default"));
  ASSERT_EQ(r.status, 0) << r.output;
  SCOPED_TRACE("client output:\n" + r.output);
  const auto j = result_of(r.output);
  expect_full_session(j);
  EXPECT_TRUE(j.value("upgraded", false));
  EXPECT_GE(h_.server().engine_stats().upgrades.load(), 1u);
}

TEST_F(ClientTest, NodeSocketioClientWebsocketOnly) {
  ensure_node_modules();
  const auto r = run_command(node_client("secret", "websocket"));
  ASSERT_EQ(r.status, 0) << r.output;
  SCOPED_TRACE("client output:\n" + r.output);
  expect_full_session(result_of(r.output));
  EXPECT_EQ(h_.server().engine_stats().upgrades.load(), 0u);
}

TEST_F(ClientTest, NodeSocketioClientBadTokenRejectedWithReason) {
  ensure_node_modules();
  const auto r = run_command(node_client("wrong", "websocket"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = result_of(r.output);
  ASSERT_FALSE(j.is_discarded()) << r.output;
  EXPECT_EQ(j.value("connect_error", ""), "bad token") << j.dump();
  EXPECT_EQ(connected_.load(), 0);
}

}  // namespace
}  // namespace shmbus::bridge::test
