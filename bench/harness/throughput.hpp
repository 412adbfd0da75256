// bus-bench: throughput — one producer process, one or two consumer
// processes, as fast as they go.
//
// The producer claims, fills and commits `messages` messages in a loop, one
// at a time or `batch` at a time (try_publish_batch); on a reliable topic it
// retries on WouldBlock; every consumer polls in batches
// and checks every message it gets (its content is derived from its
// sequence number). Rates are taken from the producer's first publish to
// the consumer's last delivery, on the TSC, which all CPUs share.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util.hpp"

namespace busbench {

struct ThroughputSpec {
  bool reliable = false;
  std::size_t bytes = 32;
  int consumers = 1;
  // Messages per Publisher::try_publish_batch call (1: try_claim, fill,
  // commit, one message at a time with a stamp each).
  std::size_t batch = 1;
  std::uint64_t messages = 20'000'000;
  std::uint32_t slot_count = 4096;
  int cpu_producer = 0;
  std::vector<int> cpu_consumers;  // one per consumer
  unsigned timeout_s = 600;
};

struct ConsumerFigures {
  std::uint64_t delivered = 0;
  std::uint64_t drops = 0;     // lossy: messages lapped before this consumer read them
  std::uint64_t failures = 0;  // wrong content or out-of-order sequence
  double seconds = 0;          // producer's first publish -> this consumer's last delivery
  std::int64_t involuntary_switches = 0;
};

struct ThroughputResult {
  ThroughputSpec spec;
  bool ok = false;
  std::string error;
  double producer_seconds = 0;    // first to last publish
  std::uint64_t would_block = 0;  // reliable: publish attempts refused (producer waited)
  std::int64_t producer_involuntary_switches = 0;
  std::vector<ConsumerFigures> consumers;
  // Every repeat's slowest-consumer delivered/s, in run order (this result
  // is the median one; see --throughput-repeats).
  std::vector<double> repeats_delivered_per_s;
  // The throughput floor of the same slot size, CPUs and ring (line_floor.hpp),
  // run right before and right after every repeat: slots per second, in run
  // order (empty with --no-throughput-floor). floor_error: why a floor run
  // failed (the bus figures stand without it).
  std::vector<double> floor_runs;
  std::string floor_error;
  // The floors right before and after the repeat this result is (0: none).
  double floor_before = 0;
  double floor_after = 0;
  // The mean of floor_before and floor_after (the floor of this run's
  // minute); 0 if either is missing.
  [[nodiscard]] double floor_per_s() const noexcept {
    return floor_before > 0 && floor_after > 0 ? (floor_before + floor_after) / 2 : 0;
  }

  [[nodiscard]] double published_per_s() const noexcept {
    return producer_seconds > 0 ? static_cast<double>(spec.messages) / producer_seconds : 0;
  }
  // The slowest consumer's delivered messages per second.
  [[nodiscard]] double delivered_per_s() const noexcept;
  [[nodiscard]] std::uint64_t drops() const noexcept;
};

[[nodiscard]] ThroughputResult run_throughput(const ThroughputSpec& spec);

}  // namespace busbench
