// bus-bench / shmbus-line-floor: the throughput floor between two CPUs — how
// many slots of B bytes one process can hand another per second through
// shared memory with nothing else: a ring of slots, the producer writes a
// slot's words and then its sequence word (release), the consumer spins on
// that word (acquire), checks every word and publishes its cursor every
// slot_count / 8 slots, which the producer waits on when the ring is full
// (the reliable bus's gating, cached the same way). No header, no
// timestamp, no registry, no wake-ups: what the bus's 1 -> 1 throughput is
// compared with (bus-bench runs it around every throughput run; BENCHMARKS.md).
#pragma once

#include <cstddef>
#include <cstdint>

namespace busbench {

// One run of `messages` slots of `bytes` bytes (a multiple of 64) through a
// ring of `slots` (a power of two), producer on `cpu_p`, consumer on
// `cpu_c`, each a forked process: slots per second. Throws
// std::runtime_error on a failed child or a slot read with wrong content.
[[nodiscard]] double line_floor_rate(int cpu_p, int cpu_c, std::size_t bytes, std::uint64_t slots,
                                     std::uint64_t messages);

}  // namespace busbench
