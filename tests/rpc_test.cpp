// Request/reply over topic pairs with correlation ids and timeouts.
#include <thread>

#include "shmbus/messages.hpp"
#include "test_util.hpp"

namespace shmbus::test {
namespace {

using namespace std::chrono_literals;

std::vector<std::byte> bytes(const std::string& s) {
  std::vector<std::byte> v(s.size());
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}
std::string text(std::span<const std::byte> d) { return {reinterpret_cast<const char*>(d.data()), d.size()}; }

TEST(Rpc, CallGetsTheReplyToItsOwnRequest) {
  ScopedBus sb;
  Bus bus = sb.open();
  Responder srv(bus, "echo");
  std::atomic<bool> stop{false};
  std::thread server([&] {
    while (!stop) {
      srv.poll([](const Message& req, ReplyWriter& out) {
        EXPECT_NE(req.meta.correlation, 0u);
        EXPECT_EQ(out.reply(bytes("re:" + text(req.data))), PublishResult::Ok);
      });
      (void)srv.wait(5ms);
    }
  });
  Requester a(bus, "echo", {}, "client-a");
  Requester b(bus, "echo", {}, "client-b");
  for (int i = 0; i < 50; ++i) {
    const Reply ra = a.call(bytes("a" + std::to_string(i)), 10s);
    ASSERT_EQ(ra.status, RpcStatus::Ok) << to_string(ra.status);
    EXPECT_EQ(text(ra.payload), "re:a" + std::to_string(i));
    const Reply rb = b.call(bytes("b" + std::to_string(i)), 10s);
    ASSERT_EQ(rb.status, RpcStatus::Ok);
    EXPECT_EQ(text(rb.payload), "re:b" + std::to_string(i));
    EXPECT_NE(ra.correlation, rb.correlation);
  }
  stop = true;
  server.join();
  EXPECT_EQ(srv.clients(), 2u);
  EXPECT_EQ(a.late_replies(), 0u);
}

TEST(Rpc, TypedRequestAndReply) {
  ScopedBus sb;
  Bus bus = sb.open();
  Responder srv(bus, "risk.exposure");
  Requester cli(bus, "risk.exposure", {}, "strat");
  std::thread server([&] {
    for (int handled = 0; handled == 0;) {
      handled += static_cast<int>(srv.poll([](const Message& req, ReplyWriter& out) {
        const auto& q = req.as<md::Quote>();
        flatbuffers::FlatBufferBuilder fbb;
        risk::ExposureBuilder eb(fbb);
        eb.add_gross(q.bid_px() * 2);
        fbb.Finish(eb.Finish(), risk::ExposureIdentifier());
        (void)out.reply(fbb);
      }));
      if (handled == 0) (void)srv.wait(10ms);
    }
  });
  flatbuffers::FlatBufferBuilder req;
  req.Finish(md::CreateQuoteDirect(req, "AAPL", 0, nullptr, 0, 0, 0, 21.0), md::QuoteIdentifier());
  const Reply r = cli.call(req, 10s);
  server.join();
  ASSERT_EQ(r.status, RpcStatus::Ok);
  EXPECT_EQ(r.as<risk::Exposure>().gross(), 42.0);
  EXPECT_GT(r.ts_ns, 0);
}

TEST(Rpc, TimeoutAndALateReplyIsNeverMistakenForANewOne) {
  ScopedBus sb;
  Bus bus = sb.open();
  Responder srv(bus, "slow");
  Requester cli(bus, "slow", {}, "c");
  // Nobody polls the responder yet: the call times out.
  const Reply r1 = cli.call(bytes("first"), 20ms);
  EXPECT_EQ(r1.status, RpcStatus::Timeout);
  // Now it serves, and answers the old request too (it is in the backlog of
  // a client that appeared after the responder started).
  std::atomic<int> answered{0};
  std::thread server([&] {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (answered < 2 && std::chrono::steady_clock::now() < deadline) {
      answered += static_cast<int>(srv.poll([](const Message& req, ReplyWriter& out) {
        (void)out.reply(bytes("re:" + text(req.data)));
      }));
      (void)srv.wait(5ms);
    }
  });
  const Reply r2 = cli.call(bytes("second"), 10s);
  server.join();
  EXPECT_EQ(answered.load(), 2);
  ASSERT_EQ(r2.status, RpcStatus::Ok);
  EXPECT_EQ(text(r2.payload), "re:second") << "the reply to 'first' must not be taken for this call's";
  EXPECT_NE(r2.correlation, r1.correlation);
  EXPECT_EQ(cli.late_replies(), 1u);
}

TEST(Rpc, ClientsPresentWhenTheResponderStartsAreServedFromTheirNextRequest) {
  ScopedBus sb;
  Bus bus = sb.open();
  Requester cli(bus, "restart", {}, "c");
  EXPECT_EQ(cli.call(bytes("before"), 5ms).status, RpcStatus::Timeout);
  Responder srv(bus, "restart");  // e.g. a restarted service: old requests are not replayed
  std::vector<std::string> seen;
  std::thread server([&] {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (seen.empty() && std::chrono::steady_clock::now() < deadline) {
      srv.poll([&](const Message& req, ReplyWriter& out) {
        seen.push_back(text(req.data));
        (void)out.reply(bytes("ok"));
      });
      (void)srv.wait(5ms);
    }
  });
  EXPECT_EQ(cli.call(bytes("after"), 10s).status, RpcStatus::Ok);
  server.join();
  EXPECT_EQ(seen, std::vector<std::string>({"after"}));
}

TEST(Rpc, RequestTooLargeIsSendFailed) {
  ScopedBus sb;
  Bus bus = sb.open();
  Requester cli(bus, "big", {}, "c");
  const Reply r = cli.call(std::vector<std::byte>(4096), 1s);
  EXPECT_EQ(r.status, RpcStatus::SendFailed);
  EXPECT_EQ(r.send_result, PublishResult::TooLarge);
}

}  // namespace
}  // namespace shmbus::test
