// Start order between processes must not decide whether a system works: a
// subscriber that starts first (without a configuration) must not fix the
// topic's geometry, and on a reliable topic no message may be lost whichever
// side starts first.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "shmbus/core/internals.hpp"
#include "shmbus/messages.hpp"
#include "test_util.hpp"

namespace shmbus::test {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kMessages = 5000;

TopicConfig reliable_orders() {
  TopicConfig c;
  c.policy = Policy::Reliable;
  c.slot_size = 128;
  c.slot_count = 16;  // far fewer slots than messages: gating must hold
  return c;
}

// Publishes kMessages self-checking payloads, waiting on a full ring.
void publish_all(Publisher& pub) {
  std::vector<std::byte> buf(24);
  for (std::uint64_t v = 1; v <= kMessages; ++v) {
    fill_payload(buf.data(), buf.size(), v);
    ASSERT_EQ(pub.publish(buf, 20s), PublishResult::Ok) << "message " << v;
  }
}

// Receives until kMessages arrived or 30 s passed; returns the values in order.
std::vector<std::uint64_t> receive_all(Subscriber& sub, std::uint64_t* gaps) {
  std::vector<std::uint64_t> got;
  sub.on_gap([gaps](const Gap& g) { *gaps += g.count; });
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (got.size() < kMessages && std::chrono::steady_clock::now() < deadline) {
    sub.poll(
        [&](const Message& m) {
          std::uint64_t v = 0;
          EXPECT_TRUE(check_payload(m.data, v));
          EXPECT_EQ(m.meta.seq, v);
          got.push_back(v);
        },
        256);
    (void)sub.wait(10ms);
  }
  return got;
}

void expect_every_message(const std::vector<std::uint64_t>& got, std::uint64_t gaps) {
  ASSERT_EQ(got.size(), kMessages);
  for (std::uint64_t i = 0; i < kMessages; ++i) ASSERT_EQ(got[i], i + 1);
  EXPECT_EQ(gaps, 0u);
}

TEST(StartOrder, ASubscriberWithoutConfigDoesNotFixTheGeometry) {
  ScopedBus sb;
  Bus bus = sb.open();
  Subscriber sub = bus.subscriber("orders.geometry");  // no config: provisional
  Publisher pub = bus.publisher("orders.geometry", reliable_orders());
  EXPECT_EQ(pub.topic().policy(), Policy::Reliable);
  EXPECT_EQ(pub.topic().slot_count(), 16u);
  EXPECT_EQ(pub.topic().slot_size(), 128u);
  // The subscriber follows to the defined topic when idle (it checks every
  // few hundred empty polls; ready() says at once that there is work).
  EXPECT_TRUE(sub.ready());
  for (int i = 0; i < 1000 && sub.topic().policy() != Policy::Reliable; ++i)
    (void)sub.poll([](const Message&) {});
  EXPECT_EQ(sub.topic().policy(), Policy::Reliable);
  EXPECT_EQ(sub.topic().slot_count(), 16u);
  EXPECT_TRUE(sub.registered());
  EXPECT_EQ(snapshot(pub.topic()).consumers.size(), 1u) << "registered once, in the defined topic";
}

TEST(StartOrder, SubscriberFirstThenReliablePublisherLosesNothing) {
  ScopedBus sb;
  Bus bus = sb.open();
  Subscriber sub = bus.subscriber("orders.sub-first");
  std::uint64_t gaps = 0;
  std::vector<std::uint64_t> got;
  std::thread consumer([&] { got = receive_all(sub, &gaps); });
  Publisher pub = bus.publisher("orders.sub-first", reliable_orders());
  publish_all(pub);
  consumer.join();
  expect_every_message(got, gaps);
}

TEST(StartOrder, PublisherFirstThenSubscriberLosesNothingPublishedAfterIt) {
  ScopedBus sb;
  Bus bus = sb.open();
  Publisher pub = bus.publisher("orders.pub-first", reliable_orders());
  Subscriber sub = bus.subscriber("orders.pub-first");
  std::uint64_t gaps = 0;
  std::vector<std::uint64_t> got;
  std::thread consumer([&] { got = receive_all(sub, &gaps); });
  publish_all(pub);
  consumer.join();
  expect_every_message(got, gaps);
}

// The user's program from the first-hour report: a Dispatcher on a typed,
// reliable orders topic started before the gateway that publishes them, in
// another process.
TEST(StartOrder, DispatcherInAnotherProcessStartedFirstGetsEveryOrder) {
  ScopedBus sb;
  int ready[2];
  int result[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(result), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(ready[0]);
    ::close(result[0]);
    Bus bus = Bus::open_or_create(sb.name());
    DispatcherOptions o;
    o.name = "risk";
    o.idle = Idle::Block;
    Dispatcher d(bus, o);
    std::atomic<std::uint64_t> next{1};
    std::atomic<bool> ok{true};
    d.on<oms::NewOrder>("orders.new", [&](const oms::NewOrder& order, const MessageMeta& m) {
      if (order.seq() != next || m.seq != next) ok = false;
      ++next;
    });
    (void)!::write(ready[1], "r", 1);
    d.start();
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (next <= kMessages && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    d.stop();
    const char verdict = ok && next == kMessages + 1 && d.drops() == 0 ? 'y' : 'n';
    (void)!::write(result[1], &verdict, 1);
    ::_exit(0);
  }
  ::close(ready[1]);
  ::close(result[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  Bus bus = Bus::open_or_create(sb.name());
  TopicConfig cfg = reliable_orders();
  cfg.slot_size = 256;
  Publisher pub = bus.publisher<oms::NewOrder>("orders.new", cfg);
  for (std::uint64_t i = 1; i <= kMessages; ++i) {
    flatbuffers::FlatBufferBuilder fbb;
    const std::string id = "ord-" + std::to_string(i);
    const auto cl_ord_id = fbb.CreateString(id);
    const auto symbol = fbb.CreateString("AAPL");
    oms::NewOrderBuilder b(fbb);
    b.add_cl_ord_id(cl_ord_id);
    b.add_symbol(symbol);
    b.add_seq(i);
    fbb.Finish(b.Finish(), oms::NewOrderIdentifier());
    ASSERT_EQ(pub.publish(fbb, 20s), PublishResult::Ok) << "order " << i;
  }
  ASSERT_EQ(::read(result[0], &c, 1), 1);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_EQ(c, 'y') << "the dispatcher missed or reordered orders";
}

TEST(StartOrder, APublisherOfAnotherTypeThanTheWaitingSubscribersIsRefused) {
  ScopedBus sb;
  Bus bus = sb.open();
  Subscriber sub = bus.subscriber<md::Quote>("md.typed");
  try {
    Publisher pub = bus.publisher<md::Trade>("md.typed", reliable_orders());
    FAIL() << "a Trade publisher defined a topic Quote subscribers wait on";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::TypeMismatch) << e.what();
    EXPECT_NE(std::string(e.what()).find("shmbus.md.Quote"), std::string::npos) << e.what();
  }
}

TEST(StartOrder, ATopicOnceProducedOnIsNoLongerProvisional) {
  ScopedBus sb;
  Bus bus = sb.open();
  Subscriber sub = bus.subscriber("raw.defaults");
  {
    Publisher first = bus.publisher("raw.defaults");  // the defaults: nothing to define
    ASSERT_EQ(first.try_publish(std::vector<std::byte>(8)), PublishResult::Ok);
  }
  try {
    Publisher second = bus.publisher("raw.defaults", reliable_orders());
    FAIL() << "a topic with messages was defined afresh";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::TopicMismatch) << e.what();
  }
}

TEST(StartOrder, ManySubscribersJoiningWhileTheTopicIsDefinedAllFollow) {
  ScopedBus sb;
  for (int round = 0; round < static_cast<int>(20 * stress_scale()) + 2; ++round) {
    Bus bus = sb.open();
    const std::string name = "race." + std::to_string(round);
    Subscriber first = bus.subscriber(name);
    std::vector<Subscriber> late;
    std::thread joiner([&] {
      for (int i = 0; i < 4; ++i) late.push_back(bus.subscriber(name));
    });
    Publisher pub = bus.publisher(name, reliable_orders());
    joiner.join();
    std::vector<std::byte> buf(24);
    fill_payload(buf.data(), buf.size(), 1);
    ASSERT_EQ(pub.publish(buf, 10s), PublishResult::Ok);
    const auto got_one = [](Subscriber& s) {
      bool got = false;
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      while (!got && std::chrono::steady_clock::now() < deadline) {
        s.poll([&](const Message& m) { got = m.meta.seq == 1; });
        (void)s.wait(1ms);
      }
      return got;
    };
    EXPECT_TRUE(got_one(first)) << "round " << round;
    for (Subscriber& s : late) EXPECT_TRUE(got_one(s)) << "round " << round;
  }
}

}  // namespace
}  // namespace shmbus::test
