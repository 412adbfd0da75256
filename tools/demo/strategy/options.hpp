// shmbus-strategy's settings, and the two halves of its main() (main.cpp): the
// command line that fills them and the run they drive.
#pragma once

#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

namespace demo::strategy {

// The reliable topic the strategy publishes its signals on.
inline constexpr std::string_view kSignalsTopic = "signals";

struct Options {
  std::string bus = "demo";
  double duration = 0;
  int cpu = -1;
  std::string idle = "spin";
  double ewma_halflife = 1.0;
  double threshold_bps = 2.0;
  double wait = 30;
  std::string json;
  std::string name = "shmbus-strategy";
  std::string strategy_id = "meanrev-demo";
};

// The first line of --help.
inline constexpr const char* kAbout =
    "shmbus-strategy: EWMA mean-reversion on md.quotes/md.trades, signals on 'signals', latency "
    "figures";

// Declares every option but --bus (demo::program_main adds it) on `app`, bound to `o`.
void add_options(CLI::App& app, Options& o);

// The program: 0 on success; throws on failure.
int run(const Options& o);

}  // namespace demo::strategy
