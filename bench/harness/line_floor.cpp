#include "line_floor.hpp"

#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/pause.hpp"

namespace busbench {
namespace {

constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

struct alignas(128) Control {
  std::atomic<std::uint32_t> ready{0};
  std::atomic<std::uint32_t> failed{0};
  alignas(128) std::atomic<std::uint64_t> cursor{0};   // W: consumer
  alignas(128) std::atomic<std::int64_t> start_ns{0};  // W: producer
  std::int64_t end_ns = 0;                             // W: consumer
  std::uint64_t bad = 0;                               // W: consumer
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void pin(int cpu) {
  if (cpu < 0) throw std::runtime_error("--cpus takes CPU numbers >= 0");
  const auto n = static_cast<std::size_t>(cpu);
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(n, &set);
  if (::sched_setaffinity(0, sizeof set, &set) != 0)
    throw std::runtime_error("cannot pin to CPU " + std::to_string(cpu) + " (--cpus)");
}

std::atomic<std::uint64_t>* seq_of(std::byte* slot) {
  return std::launder(reinterpret_cast<std::atomic<std::uint64_t>*>(slot));
}

void produce(Control& c, std::byte* ring, std::uint64_t slots, std::size_t bytes,
             std::uint64_t messages) {
  c.ready.fetch_add(1);
  while (c.ready.load(std::memory_order_acquire) < 2) {
  }
  c.start_ns.store(now_ns(), std::memory_order_release);
  std::uint64_t limit = slots;
  for (std::uint64_t n = 1; n <= messages; ++n) {
    while (n > limit) {
      // acquire: the consumer's reads of the slots up to its cursor are done.
      limit = c.cursor.load(std::memory_order_acquire) + slots;
      if (n > limit) shmbus::tools::cpu_pause();
    }
    std::byte* s = ring + (n & (slots - 1)) * bytes;
    const std::uint64_t base = n * kGolden;
    for (std::size_t k = 1; k < bytes / 8; ++k) {
      const std::uint64_t w = base + k;
      std::memcpy(s + 8 * k, &w, 8);
    }
    // release: the words above before the sequence.
    seq_of(s)->store(n, std::memory_order_release);
  }
}

void consume(Control& c, std::byte* ring, std::uint64_t slots, std::size_t bytes,
             std::uint64_t messages) {
  c.ready.fetch_add(1);
  const std::uint64_t batch = std::max<std::uint64_t>(1, slots / 8);
  std::uint64_t bad = 0;
  for (std::uint64_t n = 1; n <= messages; ++n) {
    std::byte* s = ring + (n & (slots - 1)) * bytes;
    while (seq_of(s)->load(std::memory_order_acquire) != n) shmbus::tools::cpu_pause();
    const std::uint64_t base = n * kGolden;
    std::uint64_t diff = 0;
    for (std::size_t k = 1; k < bytes / 8; ++k) {
      std::uint64_t w = 0;
      std::memcpy(&w, s + 8 * k, 8);
      diff |= w ^ (base + k);
    }
    bad += diff != 0 ? 1 : 0;
    if (n % batch == 0) c.cursor.store(n, std::memory_order_release);
  }
  c.end_ns = now_ns();
  c.bad = bad;
}

}  // namespace

double line_floor_rate(int cpu_p, int cpu_c, std::size_t bytes, std::uint64_t slots,
                       std::uint64_t messages) {
  const std::size_t ring_bytes = slots * bytes;
  const std::size_t total = sizeof(Control) + ring_bytes + 4096;
  void* mem = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw std::runtime_error("mmap failed");
  auto* c = new (mem) Control();
  std::byte* ring = static_cast<std::byte*>(mem) + 4096;
  std::memset(ring, 0, ring_bytes);
  std::vector<pid_t> kids;
  for (int role = 0; role < 2; ++role) {
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      try {
        pin(role == 0 ? cpu_c : cpu_p);
        if (role == 0)
          consume(*c, ring, slots, bytes, messages);
        else
          produce(*c, ring, slots, bytes, messages);
        ::_exit(0);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "shmbus-line-floor: %s\n", e.what());
        ::_exit(2);
      }
    }
    kids.push_back(pid);
  }
  bool ok = true;
  for (pid_t k : kids) {
    int st = 0;
    ::waitpid(k, &st, 0);
    ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  const double secs = static_cast<double>(c->end_ns - c->start_ns.load()) * 1e-9;
  const std::uint64_t bad = c->bad;
  ::munmap(mem, total);
  if (!ok) throw std::runtime_error("a child failed");
  if (bad != 0) throw std::runtime_error(std::to_string(bad) + " slots with wrong content");
  return static_cast<double>(messages) / secs;
}

}  // namespace busbench
