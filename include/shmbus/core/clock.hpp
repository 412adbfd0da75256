// shmbus — the bus clock: publish timestamps.
//
// Every message carries its publish time. Reading the wall clock
// (clock_gettime, ~16 ns here) twice per round trip would be a tenth of a
// shared-memory ping-pong, so on hosts whose kernel itself trusts the TSC
// (clocksource "tsc", constant and non-stop TSC) the producer stamps raw TSC
// ticks (~7 ns) and consumers convert them to nanoseconds when asked.
//
// The conversion is bus-wide: the calibration lives in the bus directory, so
// every process on the bus converts the same ticks to the same nanoseconds
// and one-way latencies across processes are exact. The first calibration
// (a few ms, at bus creation) is refined from idle paths about once a second
// against CLOCK_REALTIME over an ever longer baseline, so absolute times stay
// within microseconds of the wall clock. On other hosts slots hold
// CLOCK_REALTIME nanoseconds directly and conversion is the identity.
//
// Thread safety: all methods are safe from any thread and any process.
#pragma once

#include <atomic>
#include <climits>
#include <cstdint>
#include <ctime>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "shmbus/detail/fence.hpp"
#include "shmbus/detail/layout.hpp"

namespace shmbus {

namespace detail {
// 128-bit products for tick -> ns conversion (GCC/Clang extension).
__extension__ typedef __int128 int128;
__extension__ typedef unsigned __int128 uint128;
}  // namespace detail

class Clock {
 public:
  // Wall-clock nanoseconds since the epoch (CLOCK_REALTIME), no calibration.
  [[nodiscard]] static std::int64_t wall_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
  }

  // Copies, at open, what to_ns() falls back on: the bus's rate from a
  // consistent anchor (or measured against the immutable base point).
  explicit Clock(detail::ClockBlock* block) noexcept;

  // What a producer stamps into a slot: raw ticks or ns, per the bus's mode.
  // Unordered (plain RDTSC): on the publish path the stamp may be taken a few
  // cycles early, which only makes latencies err long, never short.
  [[nodiscard]] std::uint64_t raw_now() const noexcept {
#if defined(__x86_64__)
    if (tsc_) return __rdtsc();
#endif
    return static_cast<std::uint64_t>(wall_ns());
  }

  // Nanoseconds since the epoch for a raw stamp of this bus. Bounded: the
  // anchor's seqlock is retried kAnchorRetries times; an anchor that stays
  // odd (its writer was killed mid-update, or a stray write) or holds an
  // absurd rate is not waited on but replaced by the calibration this
  // process copied at open, and counted (fallbacks()). Saturates instead of
  // overflowing on hostile anchors.
  [[nodiscard]] std::int64_t to_ns(std::uint64_t raw) const noexcept {
    if (!tsc_) return static_cast<std::int64_t>(raw);
    for (std::uint32_t i = 0; i < kAnchorRetries; ++i) {
      // acquire: pairs with the re-anchorer's release of `current`, after
      // which the anchor it names is complete.
      const auto& a = block_->anchors[block_->current.load(std::memory_order_acquire) & 1u];
      const std::uint64_t v1 = a.version.load(std::memory_order_acquire);
      const std::uint64_t tsc = a.tsc.load(std::memory_order_relaxed);
      const std::int64_t ns = a.ns.load(std::memory_order_relaxed);
      const std::uint64_t mult = a.ns_per_tick_q32.load(std::memory_order_relaxed);
      // acquire fence + relaxed re-read: the anchor's own seqlock. A reader
      // preempted across two re-anchors (two seconds) sees v1 != v2 and retries.
      detail::fence_acquire();
      if ((v1 & 1u) == 0 && a.version.load(std::memory_order_relaxed) == v1) {
        if (!sane_rate(mult)) break;
        return convert(raw, tsc, ns, mult);
      }
    }
    return to_ns_fallback(raw);
  }

  // Conversions that could not use the bus's anchor (see to_ns), in this
  // process. Diagnostics and tests.
  [[nodiscard]] static std::uint64_t fallbacks() noexcept;

  // ns per tick in 32.32 fixed point between 1/16 and 16 (a 62.5 MHz to
  // 16 GHz counter): anything else in an anchor is damage.
  [[nodiscard]] static constexpr bool sane_rate(std::uint64_t q32) noexcept {
    return q32 >= (std::uint64_t{1} << 28) && q32 <= (std::uint64_t{1} << 36);
  }
  // ns + (raw - tsc) * q32 / 2^32, with the tick difference taken as signed
  // and the result saturated to int64 (q32 is sane: no 128-bit overflow).
  [[nodiscard]] static std::int64_t convert(std::uint64_t raw, std::uint64_t tsc, std::int64_t ns,
                                            std::uint64_t q32) noexcept {
    const auto delta = static_cast<detail::int128>(static_cast<std::int64_t>(raw - tsc));
    const detail::int128 r =
        static_cast<detail::int128>(ns) + ((delta * static_cast<detail::int128>(q32)) >> 32);
    constexpr auto lo = static_cast<detail::int128>(INT64_MIN);
    constexpr auto hi = static_cast<detail::int128>(INT64_MAX);
    return static_cast<std::int64_t>(r < lo ? lo : r > hi ? hi : r);
  }
  static constexpr std::uint32_t kAnchorRetries = 256;

  // As raw_now(), but read only after every earlier load has completed
  // (LFENCE; RDTSC): a consumer measuring latency must not read the clock
  // before the message it measures has arrived, or short latencies come out
  // too short, even negative.
  [[nodiscard]] std::uint64_t raw_now_ordered() const noexcept {
#if defined(__x86_64__)
    if (tsc_) {
      _mm_lfence();
      return __rdtsc();
    }
#endif
    return static_cast<std::uint64_t>(wall_ns());
  }

  // Bus time now, in ns: use this (not wall_ns) to measure latency from a
  // message's publish time, so both ends use the same calibration. Ordered
  // after earlier loads (raw_now_ordered).
  [[nodiscard]] std::int64_t now_ns() const noexcept {
    return to_ns(raw_now_ordered());
  }

  [[nodiscard]] bool uses_tsc() const noexcept {
    return tsc_;
  }

  // A duration of `ns` nanoseconds in raw stamp units (ticks or ns), at the
  // current calibration; saturates at ~0. For thresholds, not for timestamps.
  [[nodiscard]] std::uint64_t raw_span(std::uint64_t ns) const noexcept;

  // Refines the calibration if the last anchor is older than about a second.
  // Cheap when nothing is due; called by the library from idle paths only.
  void maybe_reanchor() const noexcept;

  // Fills a new bus's ClockBlock (mode detection + initial calibration).
  static void initialise(detail::ClockBlock& block) noexcept;

 private:
  [[nodiscard]] std::int64_t to_ns_fallback(std::uint64_t raw) const noexcept;

  detail::ClockBlock* block_;
  bool tsc_;
  std::uint64_t fallback_q32_ = std::uint64_t{1} << 32;  // fixed at open
};

}  // namespace shmbus
