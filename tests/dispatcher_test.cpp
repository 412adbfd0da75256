// Handler registration per topic and type, and the run loop.
#include <thread>

#include "shmbus/core/internals.hpp"
#include "shmbus/messages.hpp"
#include "test_util.hpp"

namespace shmbus::test {
namespace {

using namespace std::chrono_literals;

void publish_quote(Publisher& p, const char* sym, double bid) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(md::CreateQuoteDirect(fbb, sym, 0, "XNAS", 0, 0, 0, bid), md::QuoteIdentifier());
  ASSERT_EQ(p.try_publish(fbb), PublishResult::Ok);
}

void publish_trade(Publisher& p, const char* sym, double px) {
  flatbuffers::FlatBufferBuilder fbb;
  md::TradeBuilder b(fbb);
  b.add_price(px);
  const auto s = fbb.CreateString(sym);
  (void)s;
  fbb.Finish(b.Finish(), md::TradeIdentifier());
  ASSERT_EQ(p.try_publish(fbb), PublishResult::Ok);
}

class DispatcherTest : public ::testing::TestWithParam<Idle> {};

TEST_P(DispatcherTest, RoutesEachTopicToItsTypedHandlerOnItsOwnThread) {
  ScopedBus sb;
  Bus bus = sb.open();
  Publisher quotes = bus.publisher<md::Quote>("md.quotes");
  Publisher trades = bus.publisher<md::Trade>("md.trades");
  DispatcherOptions o;
  o.name = "strategy";
  o.idle = GetParam();
  Dispatcher d(bus, o);
  std::atomic<int> nq{0};
  std::atomic<int> nt{0};
  std::atomic<double> last_bid{0};
  std::atomic<double> last_px{0};
  const auto main_thread = std::this_thread::get_id();
  std::atomic<bool> on_main{false};
  d.on<md::Quote>("md.quotes", [&](const md::Quote& q, const MessageMeta& m) {
    EXPECT_EQ(m.topic, "md.quotes");
    last_bid = q.bid_px();
    on_main = on_main || std::this_thread::get_id() == main_thread;
    ++nq;
  });
  d.on<md::Trade>("md.trades", [&](const md::Trade& t, const MessageMeta& m) {
    EXPECT_EQ(m.type, "shmbus.md.Trade");
    last_px = t.price();
    ++nt;
  });
  EXPECT_EQ(d.subscriptions(), 2u);
  d.start();
  for (int i = 1; i <= 100; ++i) {
    publish_quote(quotes, "AAPL", i);
    if (i % 2 == 0) publish_trade(trades, "AAPL", i + 0.5);
  }
  ASSERT_TRUE(eventually([&] { return nq == 100 && nt == 50; }, 20s));
  d.stop();
  EXPECT_FALSE(d.running());
  EXPECT_EQ(last_bid.load(), 100.0);
  EXPECT_EQ(last_px.load(), 100.5);
  EXPECT_FALSE(on_main.load());
  EXPECT_EQ(d.delivered(), 150u);
  EXPECT_EQ(d.drops(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Idle, DispatcherTest,
                         ::testing::Values(Idle::Spin, Idle::Yield, Idle::Block),
                         [](const ::testing::TestParamInfo<Idle>& i) {
                           return i.param == Idle::Spin    ? "Spin"
                                  : i.param == Idle::Yield ? "Yield"
                                                           : "Block";
                         });

TEST(Dispatcher, OwnLoopCanBlockInWaitAndIsWokenByAPublish) {
  ScopedBus sb;
  Bus bus = sb.open();
  Publisher p = bus.publisher("own", config(Policy::Lossy, 16));
  Dispatcher d(bus);
  int got = 0;
  d.on_message("own", [&](const Message&) { ++got; });
  EXPECT_FALSE(d.wait(5ms)) << "nothing published: times out";
  std::thread publisher([&] {
    // Publish once the loop below is asleep (counted as a sleeper on the topic).
    auto& w = detail::Internals::state(p.topic())->header->wait;
    ASSERT_TRUE(eventually([&] { return w.sleepers.load() > 0; }));
    ASSERT_EQ(p.try_publish(as_bytes("x", 1)), PublishResult::Ok);
  });
  EXPECT_TRUE(d.wait(30s));
  EXPECT_EQ(d.poll_once(), 1u);
  EXPECT_EQ(got, 1);
  publisher.join();
}

TEST(Dispatcher, RegisteringTheWrongTypeForATopicIsTypeMismatch) {
  ScopedBus sb;
  Bus bus = sb.open();
  (void)bus.topic<md::Quote>("md.quotes");
  Dispatcher d(bus);
  try {
    d.on<md::Trade>("md.quotes", [](const md::Trade&, const MessageMeta&) {});
    FAIL() << "expected TypeMismatch";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::TypeMismatch);
  }
  EXPECT_EQ(d.subscriptions(), 0u);
}

TEST(Dispatcher, GapsReachTheGapHandler) {
  ScopedBus sb;
  Bus bus = sb.open();
  Publisher p = bus.publisher("ticks", config(Policy::Lossy, 4));
  Dispatcher d(bus);
  std::vector<std::uint64_t> seqs;
  std::vector<Gap> gaps;
  d.on_message("ticks", [&](const Message& m) { seqs.push_back(m.meta.seq); });
  d.on_gap([&](const Gap& g) { gaps.push_back(g); });
  for (int i = 0; i < 10; ++i) ASSERT_EQ(p.try_publish(as_bytes("x", 1)), PublishResult::Ok);
  while (d.poll_once() != 0) {
  }
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_EQ(gaps[0].first, 1u);
  EXPECT_EQ(gaps[0].count, 9u);
  EXPECT_EQ(seqs, std::vector<std::uint64_t>({10}));
  EXPECT_EQ(d.drops(), 9u);
}

TEST(Dispatcher, StopsCleanlyWhileBlockedAndWhenNeverStarted) {
  ScopedBus sb;
  Bus bus = sb.open();
  {
    DispatcherOptions o;
    o.idle = Idle::Block;
    Dispatcher d(bus, o);
    d.on_message("quiet", [](const Message&) {});
    d.start();
    ASSERT_TRUE(eventually([&] { return d.running(); }));
    d.stop();  // must return although no message ever arrives
    EXPECT_FALSE(d.running());
  }
  Dispatcher never(bus);
  never.stop();
  SUCCEED();
}

}  // namespace
}  // namespace shmbus::test
