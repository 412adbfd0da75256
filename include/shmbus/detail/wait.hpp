// Blocking wait on a shared futex word, and the asymmetric barrier that
// lets the producer's side of it cost one relaxed load.
//
// The handshake (a Dekker pair) between a consumer going to sleep and the
// producer committing a message:
//
//   consumer                               producer
//   v = futex.load()                       slot.seq.store(2n, release)
//   sleepers.fetch_add(1)   (seq_cst)      if (sleepers.load(relaxed) != 0)
//   heavy_barrier()                            futex.fetch_add(1); FUTEX_WAKE
//   if (slot ready) -> don't sleep
//   FUTEX_WAIT(futex, v)
//
// Either the consumer sees the commit, or the producer sees the sleeper:
// heavy_barrier() (membarrier GLOBAL_EXPEDITED) makes every CPU running a
// registered producer execute a full barrier, which drains the producer's
// store buffer (so a commit before it is visible to the re-check) and orders
// its later load of `sleepers` after our increment. The producer thus needs
// no fence of its own. Producers register once (register_producer_barrier).
//
// Where membarrier is unavailable, sleeps are capped at kFallbackSleepCap so
// a missed wake-up costs bounded latency, never a hang. Every sleep is also
// capped at kMaxSleepSlice, which covers a producer that died between its
// commit and its wake-up.
//
// A consumer killed while asleep leaves `sleepers` raised, and the producer
// would pay a wake-up on every commit for good. Sleepers therefore also mark
// their consumer entry (kConsumerSleeping: set before counting in, cleared
// after counting out), and a producer whose wake-ups keep waking nobody
// recounts the marked entries of live consumers and lowers the count by CAS
// from the value it read (RingWriter::audit_sleepers): a sleeper that comes
// or goes meanwhile changes the count and fails the CAS, and every sleeper
// counted in has its mark set, so the count is never lowered below the live
// sleepers. Observers (no consumer entry) never count in: they wait by
// polling with short sleeps, writing nothing to shared memory.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace shmbus::detail {

inline constexpr std::chrono::milliseconds kMaxSleepSlice{50};
inline constexpr std::chrono::microseconds kFallbackSleepCap{200};

// Register this process as one whose loads must be ordered by heavy_barrier().
// Idempotent; returns false if the kernel does not support it.
bool register_producer_barrier() noexcept;

// Full barrier on every CPU running a registered process. Returns false if
// unavailable (callers then cap their sleep at kFallbackSleepCap).
bool heavy_barrier() noexcept;

// FUTEX_WAIT on a shared (not process-private) word, for at most `timeout`.
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                std::chrono::nanoseconds timeout) noexcept;
// FUTEX_WAKE every waiter on a shared word; returns how many were woken.
int futex_wake_all(std::atomic<std::uint32_t>& word) noexcept;

// CPU hint for spin loops.
inline void cpu_relax() noexcept {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace shmbus::detail
