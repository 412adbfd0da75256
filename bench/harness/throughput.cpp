#include "throughput.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <new>
#include <stdexcept>

#include <shmbus/shmbus.hpp>

#include "children.hpp"

namespace busbench {

namespace {

constexpr int kMaxConsumers = 4;

struct alignas(128) ConsumerSlot {
  ConsumerFigures figures;
  std::uint64_t last_tick = 0;
  char error[256] = {};
};

struct TpShared {
  std::atomic<std::uint32_t> ready{0};
  std::atomic<std::uint32_t> abort{0};
  // W: producer, once, before its first publish. R: consumers, after their last delivery.
  alignas(128) std::atomic<std::uint64_t> start_tick{0};
  std::uint64_t end_tick = 0;
  std::uint64_t would_block = 0;
  std::int64_t producer_switches = 0;
  char producer_error[256] = {};
  ConsumerSlot consumer[kMaxConsumers];
};

// Message with sequence n: word 0 is n, word k is n * kGolden + k.
inline void fill(std::byte* d, std::size_t bytes, std::uint64_t n) noexcept {
  std::memcpy(d, &n, 8);
  const std::uint64_t base = n * kGolden;
  for (std::size_t k = 1; k < bytes / 8; ++k) {
    const std::uint64_t w = base + k;
    std::memcpy(d + 8 * k, &w, 8);
  }
}
inline bool check(std::span<const std::byte> d, std::size_t bytes, std::uint64_t n) noexcept {
  if (d.size() != bytes) return false;
  std::uint64_t w0 = 0;
  std::memcpy(&w0, d.data(), 8);
  std::uint64_t diff = w0 ^ n;
  const std::uint64_t base = n * kGolden;
  for (std::size_t k = 1; k < bytes / 8; ++k) {
    std::uint64_t w = 0;
    std::memcpy(&w, d.data() + 8 * k, 8);
    diff |= w ^ (base + k);
  }
  return diff == 0;
}

void wait_ready(TpShared& sh, std::uint32_t n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (std::uint32_t spins = 0; sh.ready.load(std::memory_order_acquire) < n; ++spins) {
    if (sh.abort.load(std::memory_order_acquire) != 0)
      throw std::runtime_error("another process failed");
    if ((spins & 0xffffu) == 0 && std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error("the others did not get ready within 60 s");
  }
}

void produce(TpShared& sh, const ThroughputSpec& spec, const std::string& bus_name,
             const shmbus::TopicConfig& cfg) {
  shmbus::Bus bus = shmbus::Bus::open(bus_name);
  shmbus::Publisher pub(bus.topic("tp", cfg), shmbus::PublisherOptions{"producer"});
  sh.ready.fetch_add(1, std::memory_order_acq_rel);
  wait_ready(sh, static_cast<std::uint32_t>(spec.consumers) + 1);
  const Switches s0 = Switches::now();
  std::uint64_t blocked = 0;
  const std::size_t bytes = spec.bytes;
  sh.start_tick.store(TickClock::now(), std::memory_order_release);
  if (spec.batch > 1) {
    // Batches: the same messages, spec.batch a call, one stamp each batch.
    for (std::uint64_t i = 0; i < spec.messages;) {
      const std::uint64_t first = pub.next_sequence();
      const std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(spec.batch, spec.messages - i));
      const std::size_t n = pub.try_publish_batch(
          want, [first, bytes](std::size_t k, std::span<std::byte> slot) noexcept {
            fill(slot.data(), bytes, first + k);
            return bytes;
          });
      i += n;
      if (n != 0) [[likely]]
        continue;
      ++blocked;
      cpu_pause();
      if ((blocked & 0xfffffu) == 0 && sh.abort.load(std::memory_order_relaxed) != 0)
        throw std::runtime_error("a consumer failed");
    }
  } else {
    for (std::uint64_t i = 0; i < spec.messages; ++i) {
      for (;;) {
        shmbus::Claim c = pub.try_claim(bytes);
        if (c) [[likely]] {
          fill(c.data(), bytes, c.sequence());
          c.commit(bytes);
          break;
        }
        // Reliable topic, ring full: wait for the slowest consumer. Each retry
        // rescans the consumer table (a fence and a load of each consumer's
        // cursor line), so pause between retries rather than hammer the line
        // the consumer is writing.
        ++blocked;
        cpu_pause();
        if ((blocked & 0xfffffu) == 0 && sh.abort.load(std::memory_order_relaxed) != 0)
          throw std::runtime_error("a consumer failed");
      }
    }
  }
  sh.end_tick = TickClock::now();
  sh.would_block = blocked;
  sh.producer_switches = (Switches::now() - s0).involuntary;
}

void consume(TpShared& sh, const ThroughputSpec& spec, int index, const std::string& bus_name,
             const shmbus::TopicConfig& cfg) {
  ConsumerSlot& me = sh.consumer[index];
  shmbus::Bus bus = shmbus::Bus::open(bus_name);
  shmbus::SubscriberOptions so;
  so.name = "consumer" + std::to_string(index);
  shmbus::Subscriber sub(bus.topic("tp", cfg), so);
  sh.ready.fetch_add(1, std::memory_order_acq_rel);
  wait_ready(sh, static_cast<std::uint32_t>(spec.consumers) + 1);
  const Switches s0 = Switches::now();
  const std::size_t bytes = spec.bytes;
  std::uint64_t failures = 0, last_seq = 0, idle = 0;
  const auto handler = [&](const shmbus::Message& m) {
    failures += (check(m.data, bytes, m.meta.seq) && m.meta.seq > last_seq) ? 0 : 1;
    last_seq = m.meta.seq;
  };
  while (last_seq < spec.messages) {
    if (sub.poll(handler, 256) != 0) continue;
    // Caught up: pause before polling again (as a busy-spin idle strategy
    // does), so this consumer does not pull the slot the producer is writing
    // into its cache over and over while the producer writes it.
    cpu_pause();
    if ((++idle & 0xfffffu) == 0 && sh.abort.load(std::memory_order_relaxed) != 0)
      throw std::runtime_error("the producer failed");
  }
  me.last_tick = TickClock::now();
  me.figures.delivered = sub.delivered();
  me.figures.drops = sub.drops();
  me.figures.failures = failures;
  me.figures.involuntary_switches = (Switches::now() - s0).involuntary;
}

}  // namespace

double ThroughputResult::delivered_per_s() const noexcept {
  double slowest = 0;
  bool first = true;
  for (const auto& c : consumers) {
    const double r = c.seconds > 0 ? static_cast<double>(c.delivered) / c.seconds : 0;
    slowest = first ? r : std::min(slowest, r);
    first = false;
  }
  return slowest;
}

std::uint64_t ThroughputResult::drops() const noexcept {
  std::uint64_t d = 0;
  for (const auto& c : consumers) d += c.drops;
  return d;
}

ThroughputResult run_throughput(const ThroughputSpec& spec) {
  ThroughputResult res;
  res.spec = spec;
  if (spec.consumers < 1 || spec.consumers > kMaxConsumers ||
      spec.cpu_consumers.size() != static_cast<std::size_t>(spec.consumers)) {
    res.error = "bad throughput spec";
    return res;
  }
  static unsigned counter = 0;
  const std::string bus_name = "bt" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  shmbus::TopicConfig cfg;
  cfg.policy = spec.reliable ? shmbus::Policy::Reliable : shmbus::Policy::Lossy;
  cfg.slot_size =
      static_cast<std::uint32_t>((spec.bytes + shmbus::detail::kSlotHeaderBytes + 63) / 64 * 64);
  cfg.slot_count = spec.slot_count;
  cfg.max_consumers = 8;
  try {
    shmbus::Bus bus = shmbus::Bus::open_or_create(bus_name);
    (void)bus.topic("tp", cfg);
  } catch (const std::exception& e) {
    res.error = std::string("throughput: setup failed: ") + e.what();
    return res;
  }

  SharedRegion region(sizeof(TpShared));
  auto* sh = new (region.data()) TpShared();
  std::string failure;
  {
    Children kids;
    for (int c = 0; c < spec.consumers; ++c) {
      kids.spawn([&, c] {
        try {
          pin_to_cpu(spec.cpu_consumers[static_cast<std::size_t>(c)]);
          region.prefault();
          consume(*sh, spec, c, bus_name, cfg);
          return 0;
        } catch (const std::exception& e) {
          std::snprintf(sh->consumer[c].error, sizeof sh->consumer[c].error, "%s", e.what());
        }
        sh->abort.store(1);
        return 2;
      });
    }
    kids.spawn([&] {
      try {
        pin_to_cpu(spec.cpu_producer);
        region.prefault();
        produce(*sh, spec, bus_name, cfg);
        return 0;
      } catch (const std::exception& e) {
        std::snprintf(sh->producer_error, sizeof sh->producer_error, "%s", e.what());
      }
      sh->abort.store(1);
      return 2;
    });
    failure = kids.wait_all(std::chrono::seconds(spec.timeout_s), "throughput");
  }
  shmbus::Bus::remove(bus_name);

  std::string err = failure;
  const auto add = [&err](const std::string& who, const char* e) {
    if (e[0] == 0) return;
    if (!err.empty()) err += "; ";
    err += who;
    err += ": ";
    err += e;
  };
  add("producer", sh->producer_error);
  const std::uint64_t start = sh->start_tick.load();
  res.producer_seconds = static_cast<double>(TickClock::to_ns(sh->end_tick - start)) * 1e-9;
  res.would_block = sh->would_block;
  res.producer_involuntary_switches = sh->producer_switches;
  for (int c = 0; c < spec.consumers; ++c) {
    const ConsumerSlot& s = sh->consumer[c];
    add("consumer " + std::to_string(c), s.error);
    ConsumerFigures f = s.figures;
    f.seconds =
        s.last_tick > start ? static_cast<double>(TickClock::to_ns(s.last_tick - start)) * 1e-9 : 0;
    if (err.empty() && f.failures != 0)
      err = "consumer " + std::to_string(c) + ": " + std::to_string(f.failures) +
            " message(s) with wrong content or order";
    if (err.empty() && spec.reliable && f.delivered != spec.messages)
      err = "consumer " + std::to_string(c) + " of a reliable topic got " +
            std::to_string(f.delivered) + " of " + std::to_string(spec.messages) + " messages";
    if (err.empty() && f.delivered + f.drops != spec.messages)
      err = "consumer " + std::to_string(c) +
            ": delivered + dropped = " + std::to_string(f.delivered + f.drops) + ", not " +
            std::to_string(spec.messages);
    res.consumers.push_back(f);
  }
  res.ok = err.empty();
  res.error = err;
  sh->~TpShared();
  return res;
}

}  // namespace busbench
