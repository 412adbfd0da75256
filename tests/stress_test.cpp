// Threaded stress: one producer thread, several consumer threads, real
// contention on the ring. Time-bounded by message counts (scaled down under
// sanitizers). What these cannot prove: that every interleaving is correct —
// they sample interleavings; TSan runs them to catch races the samples hit,
// and the deterministic tests in ring_test pin the edge states.
#include <functional>
#include <thread>

#include "test_util.hpp"

namespace shmbus::test {
namespace {

using namespace std::chrono_literals;

std::uint64_t scaled(std::uint64_t n) {
  return std::max<std::uint64_t>(
      1000, static_cast<std::uint64_t>(static_cast<double>(n) * stress_scale()));
}

// Four consumers check every message of a reliable topic (payload, order,
// no gap, no drop) while `produce` publishes 1..total on it however it does.
void check_reliable_delivery(const char* topic, std::uint64_t total,
                             const std::function<void(Publisher&)>& produce) {
  ScopedBus sb;
  Bus bus = sb.open();
  Topic t = bus.topic(topic, config(Policy::Reliable, 1024, 128, 8));
  constexpr int kConsumers = 4;
  std::vector<Subscriber> subs;
  for (int i = 0; i < kConsumers; ++i) subs.emplace_back(t);

  struct Result {
    std::uint64_t received = 0;
    std::uint64_t out_of_order = 0;
    std::uint64_t corrupt = 0;
    std::uint64_t gaps = 0;
  };
  std::vector<Result> results(kConsumers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kConsumers; ++i) {
    threads.emplace_back([&, i] {
      Subscriber& s = subs[static_cast<std::size_t>(i)];
      Result& r = results[static_cast<std::size_t>(i)];
      s.on_gap([&](const Gap&) { ++r.gaps; });
      std::uint64_t expect = 1;
      while (r.received < total) {
        const std::size_t n = s.poll(
            [&](const Message& m) {
              std::uint64_t v = 0;
              if (!check_payload(m.data, v)) ++r.corrupt;
              if (m.meta.seq != expect || v != expect) ++r.out_of_order;
              expect = m.meta.seq + 1;
              ++r.received;
            },
            256);
        // Vary consumer speed so the producer meets a full ring often.
        if (n == 0 && (i & 1) != 0) std::this_thread::yield();
        if (n == 0 && r.gaps != 0) break;
      }
    });
  }
  Publisher pub(t);
  produce(pub);
  for (auto& th : threads) th.join();
  for (int i = 0; i < kConsumers; ++i) {
    const Result& r = results[static_cast<std::size_t>(i)];
    EXPECT_EQ(r.received, total) << "consumer " << i;
    EXPECT_EQ(r.out_of_order, 0u) << "consumer " << i;
    EXPECT_EQ(r.corrupt, 0u) << "consumer " << i;
    EXPECT_EQ(r.gaps, 0u) << "consumer " << i;
    EXPECT_EQ(subs[static_cast<std::size_t>(i)].drops(), 0u);
  }
  EXPECT_GT(snapshot(t).would_block, 0u) << "the test should have exercised a full ring";
}

TEST(Stress, ReliableDeliversEveryMessageInOrderToEveryConsumer) {
  const std::uint64_t total = scaled(1'000'000);
  check_reliable_delivery("stress.rel", total, [total](Publisher& pub) {
    std::vector<std::byte> buf(96);
    for (std::uint64_t v = 1; v <= total; ++v) {
      fill_payload(buf.data(), buf.size(), v);
      ASSERT_EQ(pub.publish(buf, 30s), PublishResult::Ok) << "at " << v;
    }
  });
}

// Batches of 1 to 37 messages (partial ones on a full ring go on where they
// stopped): every message exactly once, in order, intact.
TEST(Stress, ReliableBatchesDeliverEveryMessageInOrderToEveryConsumer) {
  const std::uint64_t total = scaled(1'000'000);
  check_reliable_delivery("stress.batch", total, [total](Publisher& pub) {
    std::uint64_t v = 1;
    std::uint64_t batch = 1;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (v <= total) {
      const std::size_t want = static_cast<std::size_t>(std::min(batch, total - v + 1));
      const std::uint64_t first = v;
      const std::size_t n =
          pub.try_publish_batch(want, [first](std::size_t i, std::span<std::byte> slot) noexcept {
            fill_payload(slot.data(), 96, first + i);
            return std::size_t{96};
          });
      v += n;
      batch = batch % 37 + 1;
      if (n == 0) {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "stuck at " << v;
        std::this_thread::yield();
      }
    }
  });
}

TEST(Stress, LossySlowConsumerReportsExactlyWhatItLost) {
  ScopedBus sb;
  Bus bus = sb.open();
  const std::uint64_t total = scaled(1'000'000);
  // 1 KiB slots: large payloads make a torn read likely if the seqlock
  // validation were wrong; every delivered payload is checksummed.
  Topic t = bus.topic("stress.lossy", config(Policy::Lossy, 64, 1024, 8));
  Subscriber fast(t);
  Subscriber slow(t);
  struct Result {
    std::uint64_t received = 0;
    std::uint64_t lost = 0;
    std::uint64_t corrupt = 0;
    std::uint64_t accounting_errors = 0;
    std::uint64_t last = 0;
  };
  std::atomic<bool> done{false};
  const auto consume = [&](Subscriber& s, Result& r, bool slow_handler) {
    std::uint64_t expect = 1;
    s.on_gap([&](const Gap& g) {
      if (g.first != expect) ++r.accounting_errors;
      r.lost += g.count;
      expect = g.first + g.count;
    });
    for (;;) {
      const std::size_t n = s.poll(
          [&](const Message& m) {
            std::uint64_t v = 0;
            if (!check_payload(m.data, v) || v != m.meta.seq) ++r.corrupt;
            if (m.meta.seq != expect) ++r.accounting_errors;
            expect = m.meta.seq + 1;
            r.last = m.meta.seq;
            ++r.received;
            if (slow_handler) {
              shmbus::test::burn(2000);
            }
          },
          64);
      if (n == 0 && done.load(std::memory_order_acquire) && !s.ready()) break;
    }
  };
  Result rf;
  Result rs;
  std::thread tf([&] { consume(fast, rf, false); });
  std::thread ts([&] { consume(slow, rs, true); });
  Publisher pub(t);
  std::vector<std::byte> buf(t.max_payload());
  for (std::uint64_t v = 1; v <= total; ++v) {
    fill_payload(buf.data(), buf.size(), v);
    ASSERT_EQ(pub.try_publish(buf), PublishResult::Ok);  // lossy: never blocks
  }
  done.store(true, std::memory_order_release);
  tf.join();
  ts.join();
  for (const Result* r : {&rf, &rs}) {
    EXPECT_EQ(r->corrupt, 0u);
    EXPECT_EQ(r->accounting_errors, 0u);
    EXPECT_EQ(r->last, total) << "the newest message is always delivered in the end";
    EXPECT_EQ(r->received + r->lost, total) << "every sequence is delivered or reported lost";
  }
  EXPECT_GT(rs.lost, 0u) << "the slow consumer should have been lapped";
  EXPECT_EQ(slow.drops(), rs.lost);
  const TopicSnapshot snap = snapshot(t);
  std::uint64_t table_drops = 0;
  for (const auto& c : snap.consumers) table_drops += c.drops;
  EXPECT_EQ(table_drops, rf.lost + rs.lost) << "drops are recorded in the consumer table";
}

TEST(Stress, ConsumersJoiningAndLeavingNeverMissTheirDueMessages) {
  // Reliable topic, consumers come and go while the producer runs: each one
  // must receive, gap-free, everything from its first message to the end.
  ScopedBus sb;
  Bus bus = sb.open();
  const std::uint64_t total = scaled(400'000);
  Topic t = bus.topic("stress.join", config(Policy::Reliable, 64, 64, 16));
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> failures{0};
  std::atomic<std::uint64_t> sessions{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      while (!done.load(std::memory_order_acquire)) {
        Subscriber s(t);
        std::uint64_t expect = s.next_sequence();
        s.on_gap([&](const Gap&) { failures.fetch_add(1); });
        for (int k = 0; k < 2000 && !done.load(std::memory_order_acquire); ++k) {
          s.poll(
              [&](const Message& m) {
                std::uint64_t v = 0;
                if (m.meta.seq != expect || !check_payload(m.data, v) || v != m.meta.seq)
                  failures.fetch_add(1);
                expect = m.meta.seq + 1;
              },
              32);
        }
        sessions.fetch_add(1);
      }
    });
  }
  Publisher pub(t);
  std::vector<std::byte> buf(32);
  for (std::uint64_t v = 1; v <= total; ++v) {
    fill_payload(buf.data(), buf.size(), v);
    ASSERT_EQ(pub.publish(buf, 30s), PublishResult::Ok);
  }
  done.store(true);
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0u);
  EXPECT_GT(sessions.load(), 3u);
}

}  // namespace
}  // namespace shmbus::test
