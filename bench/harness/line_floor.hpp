// The throughput floor between two CPUs: how many slots of B bytes one
// process can hand another per second through shared memory with nothing
// else. A ring of slots; the producer writes a slot's words and then its
// sequence word (release), the consumer spins on that word (acquire), checks
// every word and publishes its cursor every slot_count / 8 slots, which the
// producer waits on when the ring is full (the reliable bus's gating, cached
// the same way). No header fields, no timestamp, no registry, no wake-ups:
// what the bus's throughput is compared with.
//
// Written once, run by two programs: shmbus-line-floor (bench/line_floor.cpp,
// the floor alone) and bus-bench (right before and right after each
// throughput run, with the bus's slot size, slot count and CPUs).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace busbench {

struct LineFloorSpec {
  int cpu_producer = 0;
  int cpu_consumer = 1;
  std::size_t slot_bytes = 64;          // a multiple of 64, at least 64
  std::uint64_t slot_count = 4096;      // a power of two
  std::uint64_t messages = 20'000'000;  // slots handed over
  std::chrono::seconds timeout{600};    // the two processes are killed after it
};

// One run in two forked processes: slots per second, from the producer's
// first slot to the consumer's last. Throws std::invalid_argument for a spec
// out of range, std::runtime_error when a process fails (a CPU it may not
// use, a slot with wrong content) or the run overruns spec.timeout.
[[nodiscard]] double run_line_floor(const LineFloorSpec& spec);

}  // namespace busbench
