#include "shmbus/core/clock.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <string_view>

#include "shmbus/detail/process.hpp"

namespace shmbus {
namespace {

using detail::ClaimState;
using detail::ClockMode;

// Re-anchor when the current anchor is this old (in ns of the previous
// estimate). Long enough that the work is invisible, short enough that
// wall-clock error stays in microseconds.
constexpr std::int64_t kReanchorPeriodNs = 1'000'000'000;

bool read_file(const char* path, char* buf, std::size_t cap) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t n = ::read(fd, buf, cap - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  return true;
}

// The TSC is usable as a cross-process clock only where the kernel itself
// uses it as its clocksource (it checked synchronisation across CPUs) and it
// ticks at a constant rate through frequency changes and idle states.
bool tsc_trusted() {
#if defined(__x86_64__)
  char src[64];
  if (!read_file("/sys/devices/system/clocksource/clocksource0/current_clocksource", src,
                 sizeof src))
    return false;
  if (std::string_view(src).substr(0, 3) != "tsc") return false;
  static char cpuinfo[1 << 16];
  if (!read_file("/proc/cpuinfo", cpuinfo, sizeof cpuinfo)) return false;
  const std::string_view info(cpuinfo);
  const auto flags = info.find("\nflags");
  if (flags == std::string_view::npos) return false;
  const std::string_view line = info.substr(flags, info.find('\n', flags + 1) - flags);
  return line.find(" constant_tsc") != std::string_view::npos &&
         line.find(" nonstop_tsc") != std::string_view::npos;
#else
  return false;
#endif
}

struct Sample {
  std::uint64_t tsc;
  std::int64_t ns;
};

// A (tsc, wall ns) pair: the tightest of a few bracketed reads, with the
// tick count taken as the midpoint of the bracket.
Sample sample_pair() noexcept {
  Sample best{};
  std::uint64_t best_width = ~std::uint64_t{0};
  for (int i = 0; i < 16; ++i) {
    const std::uint64_t t0 = __rdtsc();
    const std::int64_t ns = Clock::wall_ns();
    const std::uint64_t t1 = __rdtsc();
    if (t1 > t0 && t1 - t0 < best_width) {
      best_width = t1 - t0;
      best = {t0 + (t1 - t0) / 2, ns};
    }
  }
  return best;
}

// The rate between two samples; 0 (not a sane rate) if time or ticks did
// not advance. 128-bit: base points come from shared memory.
std::uint64_t ns_per_tick_q32(Sample a, Sample b) noexcept {
  if (b.ns <= a.ns || b.tsc <= a.tsc) return 0;
  const auto dns = static_cast<detail::uint128>(static_cast<detail::int128>(b.ns) - a.ns);
  const auto dt = static_cast<detail::uint128>(b.tsc - a.tsc);
  const detail::uint128 q = (dns << 32) / dt;
  return q > ~std::uint64_t{0} ? 0 : static_cast<std::uint64_t>(q);
}

std::int64_t steady_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::atomic<std::uint64_t> g_fallbacks{0};

void write_anchor(detail::ClockAnchor& a, Sample s, std::uint64_t mult) noexcept {
  const std::uint64_t v = a.version.load(std::memory_order_relaxed);
  // Seqlock write: odd, release fence, fields, then even with release.
  a.version.store(v | 1u, std::memory_order_relaxed);
  detail::fence_release();
  a.tsc.store(s.tsc, std::memory_order_relaxed);
  a.ns.store(s.ns, std::memory_order_relaxed);
  a.ns_per_tick_q32.store(mult, std::memory_order_relaxed);
  a.version.store((v | 1u) + 1, std::memory_order_release);
}

}  // namespace

Clock::Clock(detail::ClockBlock* block) noexcept
    : block_(block),
      tsc_(block != nullptr && block->mode == static_cast<std::uint32_t>(ClockMode::Tsc)) {
  if (!tsc_) return;
  for (const auto& a : block_->anchors) {
    for (std::uint32_t i = 0; i < kAnchorRetries; ++i) {
      const std::uint64_t v1 = a.version.load(std::memory_order_acquire);
      const std::uint64_t mult = a.ns_per_tick_q32.load(std::memory_order_relaxed);
      detail::fence_acquire();
      if ((v1 & 1u) == 0 && a.version.load(std::memory_order_relaxed) == v1) {
        if (sane_rate(mult)) {
          fallback_q32_ = mult;
          return;
        }
        break;
      }
    }
  }
  // No usable anchor: measure the rate since the bus's base point.
  const Sample now = sample_pair();
  const std::uint64_t m = ns_per_tick_q32(Sample{block_->base_tsc, block_->base_ns}, now);
  if (sane_rate(m)) fallback_q32_ = m;
}

std::uint64_t Clock::fallbacks() noexcept {
  return g_fallbacks.load(std::memory_order_relaxed);
}

std::int64_t Clock::to_ns_fallback(std::uint64_t raw) const noexcept {
  g_fallbacks.fetch_add(1, std::memory_order_relaxed);  // relaxed: a counter
  const Sample now = sample_pair();
  return convert(raw, now.tsc, now.ns, fallback_q32_);
}

void Clock::initialise(detail::ClockBlock& block) noexcept {
  block.mode = static_cast<std::uint32_t>(tsc_trusted() ? ClockMode::Tsc : ClockMode::Wall);
  block.current.store(0, std::memory_order_relaxed);
  block.updater.store(0, std::memory_order_relaxed);
  if (block.mode == static_cast<std::uint32_t>(ClockMode::Wall)) return;
  // Initial frequency over ~2 ms; maybe_reanchor() refines it over a
  // baseline that grows with the bus's age.
  // The interval is measured on CLOCK_MONOTONIC_RAW against the TSC (a wall
  // clock stepped meanwhile cannot skew it or stretch the loop), then the
  // anchor is pinned to the wall clock.
  const std::uint64_t t0 = __rdtsc();
  const std::int64_t m0 = steady_ns();
  std::int64_t m1 = m0;
  while (m1 - m0 < 2'000'000) m1 = steady_ns();
  const std::uint64_t t1 = __rdtsc();
  std::uint64_t mult = ns_per_tick_q32(Sample{t0, m0}, Sample{t1, m1});
  if (!sane_rate(mult)) mult = std::uint64_t{1} << 32;
  const Sample b = sample_pair();
  block.base_tsc = b.tsc;
  block.base_ns = b.ns;
  write_anchor(block.anchors[0], b, mult);
  write_anchor(block.anchors[1], b, mult);
}

std::uint64_t Clock::raw_span(std::uint64_t ns) const noexcept {
  if (!tsc_) return ns;
  // relaxed: a threshold needs the rate, not an anchor consistent with it.
  const auto& a = block_->anchors[block_->current.load(std::memory_order_relaxed) & 1u];
  std::uint64_t mult = a.ns_per_tick_q32.load(std::memory_order_relaxed);
  if (!sane_rate(mult)) mult = fallback_q32_;
  const detail::uint128 ticks = (static_cast<detail::uint128>(ns) << 32) / mult;
  return ticks > ~std::uint64_t{0} ? ~std::uint64_t{0} : static_cast<std::uint64_t>(ticks);
}

void Clock::maybe_reanchor() const noexcept {
  if (!tsc_) return;
  const unsigned cur = block_->current.load(std::memory_order_acquire) & 1u;
  const auto& a = block_->anchors[cur];
  // Age of the anchor in ns of its own rate: ticks since it, times ns/tick.
  // An anchor left odd or with an absurd rate is due at once (it heals the
  // bus: the next anchor is written whole and made current).
  const std::uint64_t old_mult = a.ns_per_tick_q32.load(std::memory_order_relaxed);
  const bool damaged =
      (a.version.load(std::memory_order_relaxed) & 1u) != 0 || !sane_rate(old_mult);
  if (!damaged) {
    const auto ticks = static_cast<detail::int128>(
        static_cast<std::int64_t>(__rdtsc() - a.tsc.load(std::memory_order_relaxed)));
    const auto age = (ticks * static_cast<detail::int128>(old_mult)) >> 32;
    if (age < kReanchorPeriodNs) return;
  }

  // One re-anchorer at a time; a holder that died is replaced.
  const detail::Identity self = detail::self_identity();
  if (self == 0) return;  // /proc unreadable now (EMFILE): re-anchor another time
  const std::uint64_t mine = detail::make_claim(ClaimState::Active, self);
  std::uint64_t expected = 0;
  if (!block_->updater.compare_exchange_strong(expected, mine, std::memory_order_acq_rel)) {
    if (!detail::is_dead(detail::claim_owner(expected))) return;  // someone is (or may be) on it
    if (!block_->updater.compare_exchange_strong(expected, mine, std::memory_order_acq_rel)) return;
  }
  const unsigned cur2 = block_->current.load(std::memory_order_acquire) & 1u;
  const Sample s = sample_pair();
  const Sample base{block_->base_tsc, block_->base_ns};
  // The rate over the ever longer baseline, unless the wall clock was
  // stepped (backwards: the difference is negative; or by more than 1% of
  // the baseline either way): then keep the rate we have and only move the
  // anchor, instead of falling back to 1 ns per tick.
  std::uint64_t mult = ns_per_tick_q32(base, s);
  const std::uint64_t prev = sane_rate(old_mult) ? old_mult : fallback_q32_;
  const std::uint64_t diff = mult > prev ? mult - prev : prev - mult;
  if (s.ns <= base.ns || !sane_rate(mult) || diff > prev / 100) mult = prev;
  write_anchor(block_->anchors[cur2 ^ 1u], s, mult);
  // release: publishes the anchor just written to converters' acquire.
  block_->current.store(cur2 ^ 1u, std::memory_order_release);
  block_->updater.store(0, std::memory_order_release);
}

}  // namespace shmbus
