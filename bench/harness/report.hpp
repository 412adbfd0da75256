// bus-bench: what a run found, and the three ways it is written out — the
// table on stdout, the JSON file with every figure, the SVG percentile plots.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <shmbus/admin/histogram.hpp>

#include "latency.hpp"
#include "throughput.hpp"

namespace busbench {

// The percentiles every table row shows.
struct Percentiles {
  std::uint64_t count = 0;
  double mean = 0;
  std::uint64_t min = 0, p50 = 0, p90 = 0, p99 = 0, p999 = 0, p9999 = 0, max = 0;
};
[[nodiscard]] Percentiles percentiles(const shmbus::Histogram& h);

// The p-th percentile read between the clock's steps. Where the clock
// advances in steps (this KVM guest's TSC: 26 ticks, 10 ns), every sample is
// a multiple of the step and Histogram::percentile() returns one of them, so
// a p50 ratio at a 160 ns floor moves in 6 % steps. A sample is the
// difference of two stepped readings: the true interval plus an error spread
// from -step to +step, so the samples at a value v stand for the true values
// between the midpoints to v's occupied neighbours, and the percentile is
// interpolated linearly there (the grouped-data median). With a clock that
// does not step, neighbours are 1 ns apart and it moves by under 1 ns.
[[nodiscard]] double interpolated_percentile(const shmbus::Histogram& h, double p);

// Percentile points ratios are printed for, in table order.
struct RatioPoint {
  const char* name;
  double p;
};
inline constexpr RatioPoint kRatioPoints[] = {
    {"p50", 50}, {"p90", 90}, {"p99", 99}, {"p99.9", 99.9}, {"p99.99", 99.99}};

// One system at one payload, with the floor runs measured right before and
// after it (A/B/A).
struct Measurement {
  System system;  // its name, label, description (open() unused here)
  PayloadSpec payload;
  std::uint64_t round_trips = 0;
  std::uint64_t warmup = 0;
  std::unique_ptr<shmbus::Histogram> hist;
  std::unique_ptr<shmbus::Histogram> floor_before;
  std::unique_ptr<shmbus::Histogram> floor_after;
  int attempts = 1;
  bool floors_agree = true;
  double floor_disagreement = 0;     // |p50 before - p50 after| / the smaller
  bool fast_window = true;           // filled in at the end, against the whole run's fastest floor
  bool floor_before_reused = false;  // floor_before is the previous measurement's floor_after
  std::string floor_label;           // which floor the A/B/A ran ("floor 32B")
  int round = 0;                     // windows mode: the round it was measured in (1, 2, ...)
  int level = -1;  // floor level of its A/B/A (classify_levels); -1: none or the floors differ
  bool ok = true;
  std::string error;
  std::vector<std::string> flags;  // what a reader should know about this figure
  Switches switches[2];
  std::uint64_t steal_ticks = 0;
  double seconds = 0;

  // The two floor runs merged: the floor this measurement is compared with.
  [[nodiscard]] shmbus::Histogram floor() const;
};

struct TargetCheck {
  std::string name;      // what the target says
  std::string measured;  // what was measured, with the figures
  bool met = false;
  bool applicable = true;  // false when the run did not measure it
  std::string note;
};

// One floor level of one payload: the floor p50s from its fastest (lo) up to
// below kLevelGap x lo; the next level starts at the first p50 above. Bounded
// by lo, not by the gap to the previous p50: a chain of close p50s cannot join
// two windows.
inline constexpr double kLevelGap = 1.5;
struct FloorLevel {
  std::uint64_t lo = 0, hi = 0;  // floor p50 range, ns
  std::size_t floor_runs = 0;
};
struct PayloadLevels {
  PayloadSpec payload;
  std::vector<FloorLevel> levels;  // fastest first
};

struct Report {
  // machine and run
  std::string date_utc;
  std::string commit;
  std::string cpu_model;
  std::string kernel;
  std::string host;
  int cpu_ping = 0, cpu_pong = 1;
  std::string command_line;
  std::string tick_source;
  double ns_per_tick = 1;
  double load_at_start = 0;
  std::string redis_version;
  std::vector<std::string> notes;
  // settings
  std::uint64_t round_trips = 0, warmup = 0, floor_round_trips = 0, peer_round_trips = 0;
  std::uint32_t slot_count = 0;
  double floor_tolerance = 0;
  double fast_floor_p50 = 0;          // the fastest floor p50 of the run (the smallest payload's)
  std::uint32_t floor_mailboxes = 1;  // --floor-mailboxes
  int rounds = 0;                     // --rounds (0: one pass)
  double max_seconds = 0;
  int rounds_done = 0;
  double rounds_seconds = 0;
  std::string cldemote;            // whether the CPU has it, and how that was found
  std::vector<std::string> hints;  // the bus's cache hints and whether they act here
  // ns per FlatBufferBuilder Quote build on this CPU (quote_build_ns; 0: not
  // measured): a round trip builds two, whatever carries them.
  double quote_build_ns = 0;
  std::vector<PayloadLevels> levels;

  std::vector<Measurement> latency;
  std::vector<ThroughputResult> throughput;
  std::vector<TargetCheck> targets;

  // The bus measurement (lossy or reliable) at `payload`, or nullptr.
  [[nodiscard]] const Measurement* bus(const PayloadSpec& payload, bool reliable = false) const;
};

// Fills fast_window of every measurement and Report::fast_floor_p50.
void classify_windows(Report& r);
// Clusters the floor p50s of each payload into levels (Report::levels) and
// sets Measurement::level.
void classify_levels(Report& r);
// After classify_levels: "<payload> L<k> <system>" for every level seen of a
// payload in which a system measured with that payload has no result yet.
[[nodiscard]] std::vector<std::string> missing_levels(const Report& r);
// Evaluates the targets against the run.
void evaluate_targets(Report& r);

// The harness's own check of evaluate_targets on a made-up two-window run
// (bus-bench --check-targets): an empty string, or what paired a run with a
// floor of another window.
[[nodiscard]] std::string check_target_pairing();
// Self-check of classify_levels on made-up floors: "" or what is wrong.
[[nodiscard]] std::string check_level_classification();
// Self-check of interpolated_percentile on a made-up stepped clock.
[[nodiscard]] std::string check_interpolated_percentile();

// Writes the tables (latency, ratios, throughput, targets) as text.
[[nodiscard]] std::string format_tables(const Report& r);
// Writes every figure as JSON.
void write_json(const Report& r, const std::string& path);
// Writes the percentile plots; returns the paths written.
[[nodiscard]] std::vector<std::string> write_plots(const Report& r, const std::string& dir);

}  // namespace busbench
