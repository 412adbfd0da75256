// Request/reply over topic pairs with correlation ids and timeouts.
#include <sys/wait.h>
#include <unistd.h>

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
std::string text(std::span<const std::byte> d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

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
  // Nobody polls the responder yet, so it has not found this client: the call
  // times out, and says that no responder serves its request topic.
  const Reply r1 = cli.call(bytes("first"), 20ms);
  EXPECT_EQ(r1.status, RpcStatus::NoResponder);
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
  EXPECT_EQ(text(r2.payload), "re:second")
      << "the reply to 'first' must not be taken for this call's";
  EXPECT_NE(r2.correlation, r1.correlation);
  EXPECT_EQ(cli.late_replies(), 1u);
}

// Serves `srv` until `done()` or 20 s pass.
template <class Handler, class Done>
void serve(Responder& srv, Handler&& handler, Done&& done) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    srv.poll(handler);
    (void)srv.wait(5ms);
  }
}

TEST(Rpc, ARequestSentBeforeAnyResponderExistsIsAnswered) {
  ScopedBus sb;
  Bus bus = sb.open();
  Requester cli(bus, "late", {}, "c");
  Reply r;
  std::thread caller([&] { r = cli.call(bytes("early"), 20s); });
  // The request is in the ring before the responder starts.
  ASSERT_TRUE(eventually([&] {
    return bus.has_topic("late.req.c") && bus.open_topic("late.req.c").head_hint() == 1;
  }));
  Responder srv(bus, "late");
  std::vector<std::string> seen;
  serve(
      srv,
      [&](const Message& req, ReplyWriter& out) {
        seen.push_back(text(req.data));
        EXPECT_EQ(out.reply(bytes("re:" + text(req.data))), PublishResult::Ok);
      },
      [&] { return !seen.empty(); });
  caller.join();
  ASSERT_EQ(r.status, RpcStatus::Ok) << to_string(r.status);
  EXPECT_EQ(text(r.payload), "re:early");
  EXPECT_EQ(seen, std::vector<std::string>({"early"}));
}

TEST(Rpc, ARestartedResponderServesWhatIsUnansweredAndNothingTwice) {
  ScopedBus sb;
  Bus bus = sb.open();
  Requester cli(bus, "restart", {}, "c");
  {
    Responder first(bus, "restart");
    std::thread server([&] {
      int n = 0;
      serve(
          first,
          [&](const Message&, ReplyWriter& out) {
            n += out.reply(bytes("one")) == PublishResult::Ok;
          },
          [&] { return n == 1; });
    });
    ASSERT_EQ(cli.call(bytes("answered"), 10s).status, RpcStatus::Ok);
    server.join();
  }
  // The service is down: this request waits, unanswered.
  EXPECT_EQ(cli.call(bytes("pending"), 5ms).status, RpcStatus::NoResponder);
  Responder second(bus, "restart");  // a restarted service
  std::vector<std::string> seen;
  serve(
      second,
      [&](const Message& req, ReplyWriter& out) {
        seen.push_back(text(req.data));
        (void)out.reply(bytes("two"));
      },
      [&] { return !seen.empty(); });
  EXPECT_EQ(seen, std::vector<std::string>({"pending"})) << "'answered' must not be served twice";
  EXPECT_EQ(cli.call(bytes("after"), 50ms).status, RpcStatus::Timeout)
      << "registered but not polled: a responder is there, it is slow";
}

TEST(Rpc, RequestsOlderThanTheTtlAreSkippedAndCounted) {
  ScopedBus sb;
  Bus bus = sb.open();
  RpcConfig config;
  config.request_ttl = 1ns;  // every request is stale by the time it is read
  Requester cli(bus, "ttl", config, "c");
  EXPECT_EQ(cli.call(bytes("stale"), 1ms).status, RpcStatus::NoResponder);
  Responder srv(bus, "ttl", config);
  int handled = 0;
  serve(
      srv, [&](const Message&, ReplyWriter&) { ++handled; },
      [&] { return srv.expired_requests() != 0; });
  EXPECT_EQ(handled, 0);
  EXPECT_EQ(srv.expired_requests(), 1u);
}

TEST(Rpc, AClientsTopicsAreRemovedWhenItGoesAndTheResponderDropsIt) {
  ScopedBus sb;
  Bus bus = sb.open();
  Responder srv(bus, "gone");
  {
    Requester cli(bus, "gone", {}, "c");
    std::thread server([&] {
      int n = 0;
      serve(
          srv,
          [&](const Message&, ReplyWriter& out) {
            n += out.reply(bytes("x")) == PublishResult::Ok;
          },
          [&] { return n == 1; });
    });
    ASSERT_EQ(cli.call(bytes("q"), 10s).status, RpcStatus::Ok);
    server.join();
    EXPECT_EQ(srv.clients(), 1u);
  }
  EXPECT_FALSE(bus.has_topic("gone.req.c"));
  EXPECT_FALSE(bus.has_topic("gone.rep.c"));
  (void)srv.wait(1ms);  // rescans the directory
  EXPECT_EQ(srv.clients(), 0u);
}

TEST(Rpc, ACrashedClientIsDroppedAndItsTopicsRemoved) {
  ScopedBus sb;
  Bus bus = sb.open();
  Responder srv(bus, "crash");
  const pid_t child = ::fork();
  if (child == 0) {
    Bus b = Bus::open(bus.name());
    auto* cli = new Requester(b, "crash", {}, "c");  // never destroyed: the process dies
    (void)cli->call(bytes("from the grave"), 1ms);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  std::vector<std::string> seen;
  serve(
      srv,
      [&](const Message& req, ReplyWriter& out) {
        seen.push_back(text(req.data));
        (void)out.reply(bytes("nobody listens"));
      },
      [&] { return !seen.empty(); });
  EXPECT_EQ(seen, std::vector<std::string>({"from the grave"})) << "served while within its ttl";
  ASSERT_TRUE(eventually([&] {
    (void)srv.wait(1ms);
    return srv.clients() == 0;
  }));
  EXPECT_FALSE(bus.has_topic("crash.req.c"));
  EXPECT_FALSE(bus.has_topic("crash.rep.c"));
}

TEST(Rpc, TypedPairsRecordTheirTypesOnBothTopics) {
  ScopedBus sb;
  Bus bus = sb.open();
  Requester cli(bus, "px", RpcConfig::typed<md::Quote, risk::Exposure>(), "c");
  EXPECT_EQ(bus.open_topic("px.req.c").type_name(), "shmbus.md.Quote");
  EXPECT_EQ(bus.open_topic("px.rep.c").type_name(), "shmbus.risk.Exposure");
  // A typed responder of other types does not take the client; an untyped one does.
  Responder other(bus, "px", RpcConfig::typed<md::Trade, risk::Exposure>());
  EXPECT_EQ(other.clients(), 0u);
  Responder any(bus, "px");
  EXPECT_EQ(any.clients(), 1u);
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
