// The ring's slow paths (detail/ring.hpp): gating rescans and reaping,
// wake-ups, sleeper audits, producer recovery.
#include "shmbus/detail/ring.hpp"

#include <time.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include <algorithm>

#include "shmbus/detail/process.hpp"
#include "shmbus/detail/wait.hpp"

namespace shmbus::detail {

bool cache_demote_available() noexcept {
#if defined(__x86_64__)
  static const bool available = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) != 0 && ((c >> 25) & 1u) != 0;
  }();
  return available;
#else
  return false;
#endif
}

std::uint64_t RingWriter::recover_next(const RingBlock& b) noexcept {
  // acquire: pairs with nothing stronger than relaxed, but is a cheap bound.
  const std::uint64_t n = newest_committed(b, std::memory_order_acquire);
  b.header->hot.head.store(n, std::memory_order_relaxed);
  return n + 1;
}

namespace {
std::int64_t coarse_now_ns() noexcept {
  timespec ts{};
  // COARSE: a vDSO read of the tick-time clock (~5 ns); a 5 ms period needs no better.
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}
}  // namespace

bool RingWriter::held_too_long(std::uint32_t i, std::uint64_t w, std::uint64_t c,
                               std::int64_t now) noexcept {
  Hold& h = holds_[i];
  if (h.since_ns == 0 || h.word != w || h.cursor != c) {
    // Started holding us, or moved, or is another consumer: the clock restarts.
    h = Hold{w, c, now};
    return false;
  }
  return now - h.since_ns >= static_cast<std::int64_t>(block_.evict_after_ns);
}

bool RingWriter::refresh_limit(bool check_liveness) noexcept {
  // The exact head (commits store it only once a head_period()), then a
  // seq_cst fence: orders that store before the state loads below (the
  // reliable-join argument in ring.hpp needs store->load order).
  store_head();
  fence_seq_cst();
  const std::uint64_t head = next_ - 1;
  const std::uint64_t need =
      next_ > view_.count ? next_ - view_.count : 0;  // the slot's previous message
  std::uint64_t min = head;
  RegistryBlock& reg = block_.header->registry;
  const std::uint32_t hwm =
      std::min(reg.consumer_hwm.load(std::memory_order_acquire), block_.max_consumers);
  std::int64_t now = 0;  // read once, and only if someone holds us on an eviction topic
  for (std::uint32_t i = 0; i < hwm; ++i) {
    ConsumerEntry& e = block_.consumers[i];
    std::uint64_t w = e.state.load(std::memory_order_acquire);
    if (claim_state(w) != ClaimState::Active) {
      if (holds_) holds_[i].since_ns = 0;
      continue;
    }
    // acquire: pairs with the consumer's release of its cursor; its reads of
    // the slots up to the cursor happen before we overwrite them.
    const std::uint64_t c = e.cursor.load(std::memory_order_acquire);
    if (c < need && check_liveness && is_dead(claim_owner(w))) {
      // A dead consumer holds us up: reap it. CAS from exactly the dead
      // owner's word, so a consumer that just re-used the entry is untouched.
      if (e.state.compare_exchange_strong(w, 0, std::memory_order_acq_rel)) {
        hot_->reaped_consumers.fetch_add(1, std::memory_order_relaxed);
        reg.leaves.fetch_add(1, std::memory_order_relaxed);
      }
      continue;
    }
    if (holds_) {
      if (c >= need) {
        holds_[i].since_ns = 0;
      } else {
        if (now == 0) now = coarse_now_ns();
        // A live (or unknown) consumer held us at cursor c for the bound:
        // evict it. The CAS is from exactly the word we judged, so a consumer
        // that left, or a reaper, wins over us; the race with a consumer
        // advancing now is the numbered interleaving in ring.hpp. acq_rel:
        // acquire keeps our later slot writes after the CAS (and so after
        // the state and cursor loads we judged on); release pairs with the
        // consumer's acquire load of its state, which then sees our counters.
        if (held_too_long(i, w, c, now) &&
            e.state.compare_exchange_strong(w, make_claim(ClaimState::Evicted, claim_owner(w)),
                                            std::memory_order_acq_rel, std::memory_order_acquire)) {
          // relaxed: a counter for tools.
          hot_->evictions.fetch_add(1, std::memory_order_relaxed);
          holds_[i].since_ns = 0;
          continue;
        }
      }
    }
    min = std::min(min, c);
  }
  limit_ = min + view_.count;
  return next_ <= limit_;
}

bool RingWriter::unblock() noexcept {
  if (refresh_limit(false)) return true;
  const std::int64_t now = coarse_now_ns();
  if (now < next_liveness_ns_) return false;
  next_liveness_ns_ = now + kLivenessPeriodNs;
  return refresh_limit(true);
}

void RingWriter::wake() noexcept {
  // fetch_add before FUTEX_WAKE: a sleeper that read the old value before
  // sleeping returns from FUTEX_WAIT at once (EAGAIN) if it had not slept yet.
  wait_->futex.fetch_add(1, std::memory_order_release);
  if (block_.doorbell != nullptr) block_.doorbell->futex.fetch_add(1, std::memory_order_release);
  std::int64_t now = 0;
  if (idle_run_ >= kRateLimitAfterIdleWakes) {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    now = std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
    // A sleeper that arrived since the limit began is not the stuck one:
    // wake it now (its count-in is ordered before this load by its heavy
    // barrier, as for `sleepers`), and stop limiting.
    const std::uint32_t arrivals = wait_->arrivals.load(std::memory_order_relaxed);
    if (arrivals != limit_arrivals_) {
      idle_run_ = 0;
    } else if (now - last_wake_ns_ < kIdleWakePeriodNs) {
      // Nobody took the last ones. Still count towards the audit, so a
      // count left raised by a dead sleeper is repaired as soon as before.
      if (++idle_wakes_ >= kAuditAfterIdleWakes) {
        idle_wakes_ = 0;
        audit_sleepers();
      }
      return;
    }
  }
  last_wake_ns_ = now;
  ++wakes_;
  int woken = futex_wake_all(wait_->futex);
  if (block_.doorbell != nullptr) woken += futex_wake_all(block_.doorbell->futex);
  // Nobody woken is normal for a moment (a sleeper between counting in and
  // FUTEX_WAIT); for hundreds of commits in a row it means a dead sleeper.
  if (woken > 0) {
    idle_wakes_ = 0;
    idle_run_ = 0;
  } else if (++idle_run_ == kRateLimitAfterIdleWakes) {
    // Entering the limit: remember who had arrived so far.
    limit_arrivals_ = wait_->arrivals.load(std::memory_order_relaxed);
    if (++idle_wakes_ >= kAuditAfterIdleWakes) {
      idle_wakes_ = 0;
      audit_sleepers();
    }
  } else if (++idle_wakes_ >= kAuditAfterIdleWakes) {
    idle_wakes_ = 0;
    audit_sleepers();
  }
}

void RingWriter::audit_sleepers() noexcept {
  std::uint32_t counted = wait_->sleepers.load(std::memory_order_acquire);
  std::uint32_t live = 0;
  const std::uint32_t hwm = std::min(
      block_.header->registry.consumer_hwm.load(std::memory_order_acquire), block_.max_consumers);
  for (std::uint32_t i = 0; i < hwm; ++i) {
    const ConsumerEntry& e = block_.consumers[i];
    const std::uint64_t w = e.state.load(std::memory_order_acquire);
    // An evicted consumer is alive and may still be counted as a sleeper.
    if (claim_state(w) != ClaimState::Active && claim_state(w) != ClaimState::Evicted) continue;
    if ((e.flags.load(std::memory_order_acquire) & kConsumerSleeping) != 0 &&
        !is_dead(claim_owner(w)))
      ++live;
  }
  // Only ever lowered, and only from the value read before the scan: see
  // detail/wait.hpp for why this cannot drop a live sleeper.
  if (live < counted) {
    (void)wait_->sleepers.compare_exchange_strong(counted, live, std::memory_order_acq_rel);
  }
}

void RingReader::beat() noexcept {
  timespec ts{};
  // COARSE: a vDSO read (~5 ns); tools judge staleness in seconds.
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  // relaxed: a diagnostic for tools, as the idle heartbeat.
  entry_->heartbeat_ns.store(std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec,
                             std::memory_order_relaxed);
}

}  // namespace shmbus::detail
