// shmbus-strategy's reports: a line a second, the summary at the end, and the
// same figures as JSON (--json).
#pragma once

#include <cstdint>
#include <string>

#include <shmbus/admin/histogram.hpp>

#include "model.hpp"
#include "options.hpp"
#include "window.hpp"

namespace demo::strategy {

// "850 ns", "1.24 us", "3.10 ms", "2.00 s".
[[nodiscard]] std::string human_ns(std::uint64_t ns);

// The line for second `second`: window `w`, and `total` (the run so far, `w` included).
void print_second(int second, const Window& w, const Window& total);

// What the whole run saw; `bus_drops` is the dispatcher's own count of drops.
struct RunSummary {
  const Options* options = nullptr;
  const Window* total = nullptr;
  const Model* model = nullptr;
  double elapsed_s = 0;
  bool stopped_by_signal = false;
  bool tsc_clock = false;
  std::uint64_t bus_drops = 0;
};

// The closing lines on stdout.
void print_summary(const RunSummary& r);

// The figures as JSON into options->json. Throws shmbus::Error if it cannot be written.
void write_json(const RunSummary& r);

}  // namespace demo::strategy
