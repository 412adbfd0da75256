// shmbus-line-floor: the throughput floor between two CPUs — how many slots
// of B bytes one process can hand another per second through shared memory
// with nothing else: a ring of slots, the producer writes a slot's words and
// then its sequence word (release), the consumer spins on that word
// (acquire), checks every word and publishes its cursor every slot_count / 8
// slots, which the producer waits on when the ring is full (the reliable
// bus's gating, cached the same way). No header, no timestamp, no registry,
// no wake-ups: what the bus's 1 -> 1 throughput is compared with
// (BENCHMARKS.md, "Latest results").
//
// The engine is bench/harness/line_floor.{hpp,cpp}; bus-bench runs the same
// floor, with the bus's slot size, right before and right after each of its
// throughput runs (the "floor" and "vs floor" columns). This program runs it
// alone, for a size or a ring the bus-bench run did not cover.
//
//   build/bench/shmbus-line-floor --cpus 0,1 --bytes 64,1088
//
// 64 bytes: the bus's slot of a 32 B message (32 B header + 32 B); 1088: its
// slot of a 1 KiB message. Prints the median of --repeats runs.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <vector>

#include <CLI/CLI.hpp>

#include "harness/line_floor.hpp"

int main(int argc, char** argv) {
  CLI::App app{"shmbus-line-floor: slots per second between two CPUs with nothing but a ring"};
  std::vector<int> cpus{0, 1};
  std::vector<std::size_t> sizes{64, 1088};
  std::uint64_t slots = 4096;
  std::uint64_t messages = 20'000'000;
  int repeats = 3;
  app.add_option("--cpus", cpus, "producer,consumer")->delimiter(',')->expected(2);
  app.add_option("--bytes", sizes, "slot sizes (multiples of 64)")->delimiter(',');
  app.add_option("--slots", slots, "slots in the ring (a power of two)");
  app.add_option("--messages", messages, "slots per run at 64 bytes (scaled down by size)");
  app.add_option("--repeats", repeats, "runs per size (the median is printed)")
      ->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);
  if (slots == 0 || (slots & (slots - 1)) != 0) {
    std::fprintf(stderr, "shmbus-line-floor: --slots must be a power of two\n");
    return 2;
  }
  if (cpus[0] < 0 || cpus[1] < 0) {
    std::fprintf(stderr, "shmbus-line-floor: --cpus takes CPU numbers >= 0\n");
    return 2;
  }
  try {
    for (const std::size_t b : sizes) {
      if (b < 64 || b % 64 != 0) {
        std::fprintf(stderr, "shmbus-line-floor: --bytes %zu is not a multiple of 64\n", b);
        return 2;
      }
      const std::uint64_t n = std::max<std::uint64_t>(100'000, messages * 64 / b);
      std::vector<double> rates;
      busbench::LineFloorSpec spec;
      spec.cpu_producer = cpus[0];
      spec.cpu_consumer = cpus[1];
      spec.slot_bytes = b;
      spec.slot_count = slots;
      spec.messages = n;
      for (int r = 0; r < repeats; ++r) rates.push_back(busbench::run_line_floor(spec));
      std::vector<double> sorted = rates;
      std::sort(sorted.begin(), sorted.end());
      const double med = sorted[sorted.size() / 2];
      std::printf("%5zu B slots  %8.2f M slots/s  %6.2f GB/s  (runs:", b, med / 1e6,
                  med * static_cast<double>(b) / 1e9);
      for (double x : rates) std::printf(" %.2f", x / 1e6);
      std::printf(" M)\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shmbus-line-floor: %s\n", e.what());
    return 1;
  }
  return 0;
}
