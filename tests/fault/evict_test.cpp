// Stall eviction on reliable topics (TopicConfig::evict_after): a frozen
// consumer is evicted and told exactly what it lost; without the option it
// holds the producer and shows as stalled; a slow consumer that advances is
// never evicted; a consumer advancing right at the bound never delivers a
// torn or repeated message.
#include "fault_util.hpp"
#include "inspect_harness.hpp"
#include "shmbus/admin/snapshot.hpp"

#include <atomic>
#include <random>
#include <sstream>
#include <thread>

namespace shmbus::test {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kSlots = 64;
constexpr std::size_t kPayload = 32;
constexpr std::uint64_t kStop = ~std::uint64_t{0} >> 1;

TopicConfig evict_config(std::chrono::nanoseconds after) {
  TopicConfig c = config(Policy::Reliable, kSlots, 64, 8);
  c.evict_after = after;
  return c;
}

PublishResult send(Publisher& pub, std::uint64_t value, std::chrono::nanoseconds timeout = 10s) {
  std::byte buf[kPayload];
  fill_payload(buf, sizeof buf, value);
  return pub.publish(std::span<const std::byte>(buf, sizeof buf), timeout);
}

std::optional<ConsumerSnapshot> consumer_named(const Bus& bus, const std::string& topic,
                                               const std::string& name) {
  for (const ConsumerSnapshot& c : snapshot(bus.open_topic(topic)).consumers)
    if (c.name == name) return c;
  return std::nullopt;
}

// A consumer child: reports "got N" once it has N messages, then every gap as
// "gap <reason> <first> <count>", and at the stop message "done <delivered>
// <bad> <out-of-order>"; it checks every payload and the sequence order.
int consume(Child& self, const std::string& bus_name, const std::string& name,
            std::uint64_t report_at) {
  Bus b = Bus::open(bus_name);
  SubscriberOptions o;
  o.name = name;
  Subscriber s = b.subscriber("orders", o);
  std::uint64_t expect = s.next_sequence();
  std::uint64_t delivered = 0, bad = 0, disorder = 0;
  s.on_gap([&](const Gap& g) {
    if (g.first != expect) ++disorder;
    expect = g.first + g.count;
    self.report("gap " + std::string(g.reason == GapReason::Evicted ? "evicted " : "lapped ") +
                std::to_string(g.first) + " " + std::to_string(g.count));
  });
  self.report("ready");
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  bool stop = false;
  while (!stop && std::chrono::steady_clock::now() < deadline) {
    (void)s.wait(100ms);
    (void)s.poll(
        [&](const Message& m) {
          std::uint64_t v = 0;
          if (!check_payload(m.data, v)) {
            ++bad;
            return;
          }
          if (m.meta.seq != expect) ++disorder;
          expect = m.meta.seq + 1;
          if (v == kStop) {
            stop = true;
            return;
          }
          if (++delivered == report_at) self.report("got " + std::to_string(delivered));
        },
        16);
  }
  self.report("done " + std::to_string(delivered) + " " + std::to_string(bad) + " " +
              std::to_string(disorder));
  return stop ? 0 : 1;
}

// The consumer `consume()`s the first 10 messages (values from `value`), runs dry (its cursor
// is batched: wait until it published it), is frozen (SIGSTOP), then a full ring is published
// behind it. `value` is left at the next value to send.
void freeze_behind_a_full_ring(Bus& bus, Publisher& pub, Child& consumer, std::uint64_t& value) {
  ASSERT_EQ(consumer.line(), "ready");
  for (int i = 0; i < 10; ++i) ASSERT_EQ(send(pub, value++), PublishResult::Ok);
  ASSERT_EQ(consumer.line(), "got 10");
  ASSERT_TRUE(eventually([&] { return consumer_named(bus, "orders", "frozen")->lag == 0; }, 10s));
  ASSERT_TRUE(consumer.stop()) << "the consumer did not stop";
  for (std::uint32_t i = 0; i < kSlots; ++i) ASSERT_EQ(send(pub, value++), PublishResult::Ok);
}

TEST(FaultEvict, ConfigIsCheckedAndPartOfTheTopicsIdentity) {
  ScopedBus sb("fe");
  Bus bus = sb.open();
  TopicConfig lossy = config(Policy::Lossy, kSlots);
  lossy.evict_after = 100ms;
  EXPECT_THROW((void)bus.topic("md", lossy), Error);
  EXPECT_THROW((void)bus.topic("orders", evict_config(10us)), Error);
  const Topic t = bus.topic("orders", evict_config(250ms));
  EXPECT_EQ(t.evict_after(), 250ms);
  try {
    (void)bus.topic("orders", evict_config(0ns));
    ADD_FAILURE() << "a different evict_after was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::TopicMismatch);
    EXPECT_NE(std::string(e.what()).find("evict_after 250000000 ns"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(snapshot(t).evict_after_ns, 250'000'000u);
}

// The frozen consumer: the producer goes on within the bound plus a margin,
// the eviction is counted and shown; once thawed, the consumer learns it was
// evicted, with the exact count, delivers nothing torn, and rejoins at live.
TEST(FaultEvict, FrozenConsumerIsEvictedAndToldExactlyWhatItLost) {
  constexpr auto kAfter = 200ms;
  ScopedBus sb("fe");
  Bus bus = sb.open();
  Publisher pub = bus.publisher("orders", evict_config(kAfter));
  Child consumer([&](Child& self) { return consume(self, sb.name(), "frozen", 10); });
  std::uint64_t value = 1;
  // A full ring behind the frozen consumer: the next publish is held.
  ASSERT_NO_FATAL_FAILURE(freeze_behind_a_full_ring(bus, pub, consumer, value));
  EXPECT_EQ(pub.try_publish(as_bytes("x", 1)), PublishResult::WouldBlock);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(send(pub, value++), PublishResult::Ok);
  const auto held = std::chrono::steady_clock::now() - start;
  std::printf(
      "held %lld ms by the frozen consumer (evict_after %lld ms)\n",
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(held).count()),
      static_cast<long long>(kAfter.count()));
  EXPECT_GE(held, kAfter - 10ms);  // CLOCK_MONOTONIC_COARSE: a tick of slack
  EXPECT_LT(held, kAfter + 3s);    // a loaded machine's margin
  // Never held again by it: three more rings go through.
  for (std::uint32_t i = 0; i < 3 * kSlots; ++i)
    ASSERT_EQ(send(pub, value++, 1s), PublishResult::Ok);
  const std::uint64_t head = value - 1;

  const TopicSnapshot snap = snapshot(bus.open_topic("orders"));
  EXPECT_EQ(snap.evictions, 1u);
  const auto frozen = consumer_named(bus, "orders", "frozen");
  ASSERT_TRUE(frozen.has_value());
  EXPECT_TRUE(frozen->evicted);
  EXPECT_FALSE(frozen->stalled);
  const Json listed = inspect_json({"list", sb.name()});
  const Json& jt = topic_in(listed, "orders");
  EXPECT_EQ(jt["evictions"], 1);
  EXPECT_EQ(jt["evict_after_ns"], 200'000'000);
  EXPECT_EQ(consumer_in(jt, "frozen")["evicted"], true);
  const Result text = inspect({"list", sb.name()});
  EXPECT_NE(text.out.find("evicted"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("orders: evicts consumers stalled 200 ms; 1 evicted so far"),
            std::string::npos)
      << text.out;

  consumer.kill(SIGCONT);
  // Due message 11; rejoined at head + 1: everything in between is lost.
  EXPECT_EQ(consumer.line(), "gap evicted 11 " + std::to_string(head - 10));
  // Registered again and gating: the next messages arrive, in order.
  ASSERT_TRUE(eventually(
      [&] {
        const auto c = consumer_named(bus, "orders", "frozen");
        return c && !c->evicted;
      },
      10s));
  for (int i = 0; i < 5; ++i) ASSERT_EQ(send(pub, value++), PublishResult::Ok);
  ASSERT_EQ(send(pub, kStop), PublishResult::Ok);
  EXPECT_EQ(consumer.line(), "done 15 0 0");  // 10 before, 5 after; none bad, none out of order
  EXPECT_EQ(consumer.wait(), 0);
  EXPECT_EQ(snapshot(bus.open_topic("orders")).evictions, 1u);
}

// Without the option the frozen consumer holds the producer (the reliable
// guarantee) and tools show it as stalled once its heartbeat is stale.
TEST(FaultEvict, WithoutOptInTheProducerStaysHeldAndTheConsumerShowsStalled) {
  ScopedBus sb("fe");
  Bus bus = sb.open();
  Publisher pub = bus.publisher("orders", config(Policy::Reliable, kSlots, 64, 8));
  Child consumer([&](Child& self) { return consume(self, sb.name(), "frozen", 10); });
  std::uint64_t value = 1;
  ASSERT_NO_FATAL_FAILURE(freeze_behind_a_full_ring(bus, pub, consumer, value));
  EXPECT_EQ(send(pub, value, 700ms), PublishResult::Timeout);
  EXPECT_TRUE(eventually(
      [&] {
        const auto c = consumer_named(bus, "orders", "frozen");
        return c && c->stalled;
      },
      10s))
      << "a frozen consumer with messages waiting was never shown stalled";
  const auto frozen = consumer_named(bus, "orders", "frozen");
  EXPECT_FALSE(frozen->evicted);
  EXPECT_EQ(frozen->lag, kSlots);
  const Json listed = inspect_json({"list", sb.name()});
  EXPECT_EQ(consumer_in(topic_in(listed, "orders"), "frozen")["stalled"], true);
  EXPECT_EQ(topic_in(listed, "orders")["evictions"], 0);
  const Result text = inspect({"list", sb.name()});
  EXPECT_NE(text.out.find("stalled"), std::string::npos) << text.out;
  EXPECT_EQ(snapshot(bus.open_topic("orders")).evictions, 0u);

  consumer.kill(SIGCONT);
  ASSERT_EQ(send(pub, value++), PublishResult::Ok);
  ASSERT_EQ(send(pub, kStop), PublishResult::Ok);
  EXPECT_EQ(consumer.line(), "done 75 0 0");  // nothing lost
  EXPECT_EQ(consumer.wait(), 0);
}

// A consumer slower than the producer but advancing well within the bound
// holds the producer back and is never evicted.
TEST(FaultEvict, SlowButAdvancingConsumerIsNeverEvicted) {
  ScopedBus sb("fe");
  Bus bus = sb.open();
  Publisher pub = bus.publisher("orders", evict_config(500ms));
  Child consumer([&](Child& self) {
    Bus b = Bus::open(sb.name());
    SubscriberOptions o;
    o.name = "slow";
    Subscriber s = b.subscriber("orders", o);
    std::uint64_t expect = 1, got = 0, gaps = 0, bad = 0;
    s.on_gap([&](const Gap&) { ++gaps; });
    self.report("ready");
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    bool stop = false;
    while (!stop && std::chrono::steady_clock::now() < deadline) {
      (void)s.wait(100ms);
      (void)s.poll([&](const Message& m) {
        std::uint64_t v = 0;
        if (!check_payload(m.data, v) || m.meta.seq != expect) ++bad;
        expect = m.meta.seq + 1;
        if (v == kStop) {
          stop = true;
          return;
        }
        ++got;
        // Slowness simulated, not synchronisation: 10 ms a message.
        std::this_thread::sleep_for(10ms);
      });
    }
    self.report(std::to_string(got) + " " + std::to_string(gaps) + " " + std::to_string(bad));
    return 0;
  });
  ASSERT_EQ(consumer.line(), "ready");
  const std::uint64_t n = kSlots + 40;
  std::uint64_t held_ms = 0;
  for (std::uint64_t v = 1; v <= n; ++v) {
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(send(pub, v), PublishResult::Ok);
    held_ms += static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count());
  }
  ASSERT_EQ(send(pub, kStop), PublishResult::Ok);
  EXPECT_EQ(consumer.line(30s), std::to_string(n) + " 0 0");
  EXPECT_EQ(consumer.wait(), 0);
  EXPECT_EQ(snapshot(bus.open_topic("orders")).evictions, 0u);
  EXPECT_GT(held_ms, 100u) << "the slow consumer never held the producer: nothing was tested";
}

// A consumer that pauses for about the bound, again and again, while the
// producer streams: evictions race with its advances. Whatever wins, every
// message it delivers is whole, in order, never twice, and delivered + lost
// is exactly what was published.
TEST(FaultEvict, AdvancingAtTheBoundNeverTearsOrRepeats) {
  constexpr auto kAfter = 5ms;
  ScopedBus sb("fe");
  Bus bus = sb.open();
  Publisher pub = bus.publisher("orders", evict_config(kAfter));
  const auto n = static_cast<std::uint64_t>(std::max(400.0, 4000 * stress_scale()));
  SubscriberOptions o;
  o.name = "racer";
  Subscriber s = bus.subscriber("orders", o);
  std::uint64_t delivered = 0, lost = 0, bad = 0, disorder = 0, evicted_gaps = 0;
  // The reader's next due sequence: the producer keeps within two rings of
  // it, so each eviction is of a consumer pausing at the bound, not one left
  // behind for good.
  std::atomic<std::uint64_t> progress{1};
  std::thread reader([&] {
    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> pause_us(0, 10'000);
    std::uint64_t expect = 1;  // also past a gap: the last message may be lost
    s.on_gap([&](const Gap& g) {
      if (g.first != expect) ++disorder;
      if (g.reason == GapReason::Evicted) ++evicted_gaps;
      lost += g.count;
      expect = g.first + g.count;
      progress.store(expect);
    });
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (expect <= n && std::chrono::steady_clock::now() < deadline) {
      (void)s.wait(50ms);
      (void)s.poll(
          [&](const Message& m) {
            std::uint64_t v = 0;
            if (!check_payload(m.data, v)) {
              ++bad;
              return;
            }
            if (m.meta.seq != expect || v != m.meta.seq) ++disorder;
            expect = m.meta.seq + 1;
            progress.store(expect);
            ++delivered;
            // Every 8th message: a pause of 0..2x the bound (simulated work).
            if ((m.meta.seq & 7) == 0) std::this_thread::sleep_for(1us * pause_us(rng));
          },
          4);
    }
  });
  for (std::uint64_t v = 1; v <= n; ++v) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (progress.load() + 2 * kSlots < v && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    if (send(pub, v, 30s) != PublishResult::Ok) {
      ADD_FAILURE() << "publish " << v << " failed";
      break;  // the reader ends at its deadline
    }
  }
  reader.join();
  const std::uint64_t evictions = snapshot(bus.open_topic("orders")).evictions;
  std::printf("%llu published: %llu delivered, %llu lost in %llu evictions\n",
              static_cast<unsigned long long>(n), static_cast<unsigned long long>(delivered),
              static_cast<unsigned long long>(lost), static_cast<unsigned long long>(evictions));
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(disorder, 0u);
  EXPECT_EQ(delivered + lost, n);
  EXPECT_EQ(evicted_gaps, s.evictions());
  EXPECT_LE(s.evictions(), evictions);
  EXPECT_GT(evictions, 0u) << "no eviction happened: the race was not exercised";
  EXPECT_EQ(s.drops(), lost);
}

}  // namespace
}  // namespace shmbus::test
