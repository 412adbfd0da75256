// The producer and consumer loops that the kill loops and the soak run in
// child processes, and the board through which a child tells its parent
// how far it got (a page of anonymous shared memory mapped before the fork,
// so a count survives the child's SIGKILL).
#pragma once

#include <sys/mman.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "shmbus/shmbus.hpp"
#include "soak/verify.hpp"

namespace shmbus::soak {

// One child's progress. W: the child (relaxed or release, as noted); R: the
// parent, after the child is dead or while it runs (a snapshot).
struct alignas(128) Board {
  // Set once the child holds its role (a Publisher or a Subscriber).
  std::atomic<std::uint32_t> ready{0};
  // 1 while a producer is inside a burst of back-to-back publishes.
  std::atomic<std::uint32_t> in_burst{0};
  // Progress stage of a creating child (kill_loop create).
  std::atomic<std::uint32_t> stage{0};
  std::atomic<std::uint32_t> took_over{0};
  // Messages published (Ok returned); stored after each publish, so a child
  // killed between a publish and this store published one more.
  std::atomic<std::uint64_t> committed{0};
  std::atomic<std::uint64_t> would_block{0};
  std::atomic<std::uint64_t> timeouts{0};
  // Consumers: messages read and verification failures.
  std::atomic<std::uint64_t> consumed{0};
  std::atomic<std::uint64_t> violations{0};
  // W: the parent. Stop (producers then publish the end marker).
  std::atomic<std::uint32_t> stop{0};
  // W: the parent. Nonzero: a consumer stops reading (holds its slot).
  std::atomic<std::uint32_t> stall{0};

  void reset() noexcept {
    ready = 0;
    in_burst = 0;
    stage = 0;
    took_over = 0;
    committed = 0;
    would_block = 0;
    timeouts = 0;
    consumed = 0;
    violations = 0;
    stop = 0;
    stall = 0;
  }
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// `n` boards in a MAP_SHARED anonymous mapping, inherited by forked children.
class Boards {
 public:
  explicit Boards(std::size_t n) : n_(n) {
    void* p = ::mmap(nullptr, n * sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                     -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap of the shared progress boards failed");
    b_ = static_cast<Board*>(p);
    for (std::size_t i = 0; i < n; ++i) new (&b_[i]) Board();
  }
  ~Boards() { ::munmap(b_, n_ * sizeof(Board)); }
  Boards(const Boards&) = delete;
  Boards& operator=(const Boards&) = delete;
  Board& operator[](std::size_t i) noexcept { return b_[i]; }

 private:
  Board* b_ = nullptr;
  std::size_t n_ = 0;
};

inline void sleep_us(std::uint64_t us) {
  const timespec ts{static_cast<time_t>(us / 1'000'000),
                    static_cast<long>((us % 1'000'000) * 1000)};
  ::nanosleep(&ts, nullptr);
}

enum class PublishMode : std::uint8_t {
  Try,    // try_claim, stamp in place, commit; retry on WouldBlock
  Block,  // publish(copy, timeout); retry on Timeout
};

struct ProduceOptions {
  PublishMode mode = PublishMode::Try;
  std::uint32_t burst_max = 64;      // messages per burst: 1..burst_max
  std::uint32_t pause_max_us = 200;  // pause between bursts: 0..pause_max_us
  std::uint64_t limit = 0;           // stop after this many (0: until told)
  std::chrono::milliseconds block_timeout{200};
  // Try mode: every `hold_every`-th message (0: none) keeps its claim open
  // for `hold_us` after writing, as a producer building a large message in
  // place would: a kill then lands mid-write more often.
  std::uint32_t hold_every = 0;
  std::uint32_t hold_us = 0;
};

// Publishes stamped messages of generation `gen` in bursts until b.stop is
// set (or `limit` is reached), then the end marker. Returns 0, or 1 if the
// end marker could not be published within 30 s.
inline int produce(Publisher& pub, std::uint64_t gen, Board& b, const ProduceOptions& o,
                   std::uint64_t seed) {
  std::mt19937_64 rng(seed ^ (gen * 0x9E3779B97F4A7C15ULL));
  const std::size_t max = pub.max_payload();
  std::vector<std::byte> buf(max);
  std::uint64_t index = 0;
  auto one = [&](std::uint64_t correlation) -> bool {
    const std::size_t size = stamp_size(gen, index, max);
    for (;;) {
      if (o.mode == PublishMode::Try) {
        Claim c = pub.try_claim(size);
        if (c) {
          stamp(c.data(), size, gen, index, c.sequence());
          if (o.hold_every != 0 && index % o.hold_every == 0) {
            const auto until =
                std::chrono::steady_clock::now() + std::chrono::microseconds(o.hold_us);
            while (std::chrono::steady_clock::now() < until) {
            }
          }
          c.commit(size, correlation);
          break;
        }
        b.would_block.fetch_add(1, std::memory_order_relaxed);
      } else {
        stamp(buf.data(), size, gen, index, pub.next_sequence());
        const PublishResult r =
            pub.publish(std::span<const std::byte>(buf.data(), size), o.block_timeout, correlation);
        if (r == PublishResult::Ok) break;
        b.timeouts.fetch_add(1, std::memory_order_relaxed);
      }
      // Blocked: the end marker goes on waiting; ordinary messages give up
      // when told to stop (the end marker is then the next one).
      if (correlation == 0 && b.stop.load(std::memory_order_relaxed) != 0) return false;
    }
    ++index;
    b.committed.store(index, std::memory_order_release);
    return true;
  };
  while (b.stop.load(std::memory_order_relaxed) == 0 && (o.limit == 0 || index < o.limit)) {
    const std::uint64_t burst = 1 + rng() % o.burst_max;
    b.in_burst.store(1, std::memory_order_relaxed);
    for (std::uint64_t i = 0; i < burst; ++i)
      if (!one(0)) break;
    b.in_burst.store(0, std::memory_order_relaxed);
    if (o.pause_max_us > 0) sleep_us(rng() % (o.pause_max_us + 1));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::size_t size = stamp_size(gen, index, max);
    stamp(buf.data(), size, gen, index, pub.next_sequence());
    if (pub.publish(std::span<const std::byte>(buf.data(), size), std::chrono::milliseconds(200),
                    kEndMarker) == PublishResult::Ok) {
      b.committed.store(index + 1, std::memory_order_release);
      return 0;
    }
  }
  return 1;
}

struct ConsumeOptions {
  // Microseconds of work per message (a slow consumer), 0: none.
  std::uint32_t work_us = 0;
};

// Reads and verifies until the end marker (returns 0 if the stream was
// clean), or forever if killed first; b.stall set: stops reading, holding
// its place. Counts go to the board as it reads, so they survive a kill.
inline int consume(Subscriber& sub, Board& b, const ConsumeOptions& o, bool reliable,
                   std::uint64_t first) {
  StreamVerifier v(sub.topic().max_payload(), reliable, first);
  sub.on_gap([&](const Gap& g) {
    v.on_gap(g.first, g.count);
    b.violations.store(v.clean() ? 0 : 1, std::memory_order_relaxed);
  });
  bool end = false;
  while (!end) {
    if (b.stall.load(std::memory_order_relaxed) != 0) {
      sleep_us(500);
      continue;
    }
    (void)sub.wait(std::chrono::milliseconds(50));
    sub.poll(
        [&](const Message& m) {
          v.on_message(m.meta.seq, m.data);
          if (m.meta.correlation == kEndMarker) end = true;
          b.consumed.fetch_add(1, std::memory_order_relaxed);
          if (!v.clean()) b.violations.store(1, std::memory_order_relaxed);
          if (o.work_us > 0) sleep_us(o.work_us);
        },
        64);
  }
  return v.clean() ? 0 : 1;
}

// A verifying consumer in the orchestrating process: a registered
// Subscriber on the topic and the stream verifier, fed as it reads.
class Checker {
 public:
  Checker(Bus& bus, const std::string& topic, const TopicConfig& c, const std::string& name)
      : sub_(bus.subscriber(topic, c, options(name))),
        v_(sub_.topic().max_payload(), c.policy == Policy::Reliable, sub_.next_sequence()) {
    sub_.on_gap([this](const Gap& g) { v_.on_gap(g.first, g.count); });
  }
  // Reads everything ready; returns how many messages.
  std::size_t pump() {
    std::size_t total = 0;
    for (;;) {
      const std::size_t n = sub_.poll(
          [this](const Message& m) {
            v_.on_message(m.meta.seq, m.data);
            if (m.meta.correlation == kEndMarker) end_ = true;
          },
          256);
      total += n;
      if (n == 0) return total;
    }
  }
  // Reads (busily) for `d`; with `stall`, reads nothing for that long.
  void pump_for(std::chrono::microseconds d, bool stall = false) {
    const auto until = std::chrono::steady_clock::now() + d;
    if (stall) {
      while (std::chrono::steady_clock::now() < until) sleep_us(100);
      return;
    }
    do {
      (void)pump();
    } while (std::chrono::steady_clock::now() < until);
  }
  // Pumps until `cond` or `timeout`; returns cond().
  bool pump_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!cond() && std::chrono::steady_clock::now() < until) (void)pump();
    return cond();
  }
  // The end marker was delivered.
  [[nodiscard]] bool end() const noexcept { return end_; }
  [[nodiscard]] const StreamVerifier& verifier() const noexcept { return v_; }
  [[nodiscard]] const Topic& topic() const noexcept { return sub_.topic(); }

 private:
  static SubscriberOptions options(const std::string& name) {
    SubscriberOptions o;
    o.name = name;
    return o;
  }
  Subscriber sub_;
  StreamVerifier v_;
  bool end_ = false;
};

}  // namespace shmbus::soak
