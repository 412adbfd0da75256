#include "line_floor.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "children.hpp"
#include "common/affinity.hpp"
#include "common/pause.hpp"

namespace busbench {

namespace {

constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ULL;
constexpr std::size_t kRingOffset = 4096;  // the ring starts on its own page

struct alignas(128) Control {
  std::atomic<std::uint32_t> ready{0};
  alignas(128) std::atomic<std::uint64_t> cursor{0};   // W: consumer
  alignas(128) std::atomic<std::int64_t> start_ns{0};  // W: producer
  std::int64_t end_ns = 0;                             // W: consumer
  std::uint64_t bad = 0;                               // W: consumer
  char error[2][200] = {};                             // W: consumer [0], producer [1]
};
static_assert(sizeof(Control) <= kRingOffset);

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
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

// The shared mapping, unmapped on every way out.
class Mapping {
 public:
  explicit Mapping(std::size_t bytes) : bytes_(bytes) {
    data_ = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (data_ == MAP_FAILED)
      throw std::runtime_error("line floor: mmap of " + std::to_string(bytes) +
                               " bytes failed: " + std::strerror(errno));
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { ::munmap(data_, bytes_); }
  [[nodiscard]] std::byte* data() const noexcept { return static_cast<std::byte*>(data_); }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace

double run_line_floor(const LineFloorSpec& spec) {
  const std::size_t bytes = spec.slot_bytes;
  const std::uint64_t slots = spec.slot_count;
  if (bytes < 64 || bytes % 64 != 0)
    throw std::invalid_argument("line floor: slot size " + std::to_string(bytes) +
                                " is not a multiple of 64");
  if (slots == 0 || (slots & (slots - 1)) != 0)
    throw std::invalid_argument("line floor: slot count " + std::to_string(slots) +
                                " is not a power of two");
  if (spec.messages == 0) throw std::invalid_argument("line floor: no slots to hand over");

  const std::size_t ring_bytes = slots * bytes;
  Mapping mem(kRingOffset + ring_bytes);
  auto* c = new (mem.data()) Control();
  std::byte* ring = mem.data() + kRingOffset;
  std::memset(ring, 0, ring_bytes);
  std::string failure;
  {
    Children kids;
    for (int role = 0; role < 2; ++role) {
      kids.spawn([&, role] {
        const int cpu = role == 0 ? spec.cpu_consumer : spec.cpu_producer;
        if (shmbus::tools::pin_to_cpu(cpu) != 0) {
          std::snprintf(c->error[role], sizeof c->error[role],
                        "cannot pin the %s to CPU %d (--cpus)", role == 0 ? "consumer" : "producer",
                        cpu);
          return 2;
        }
        if (role == 0)
          consume(*c, ring, slots, bytes, spec.messages);
        else
          produce(*c, ring, slots, bytes, spec.messages);
        return 0;
      });
    }
    failure = kids.wait_all(spec.timeout, "line floor");
  }
  // A process's own words first: "a worker process exited with status 2"
  // says less than why it did.
  for (const char* e : c->error)
    if (e[0] != 0) throw std::runtime_error(std::string("line floor: ") + e);
  if (!failure.empty()) throw std::runtime_error(failure);
  if (c->bad != 0)
    throw std::runtime_error("line floor: " + std::to_string(c->bad) + " slots with wrong content");
  const double secs = static_cast<double>(c->end_ns - c->start_ns.load()) * 1e-9;
  if (secs <= 0) throw std::runtime_error("line floor: no time measured");
  return static_cast<double>(spec.messages) / secs;
}

}  // namespace busbench
