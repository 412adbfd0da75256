// shmbus-feed's settings, and the two halves of its main() (main.cpp): the
// command line that fills them and the run they drive.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace demo::feed {

struct Options {
  std::string bus = "demo";
  double rate = 100'000;
  double duration = 10;
  std::vector<std::string> symbols{"AAPL", "MSFT", "NVDA", "AMZN", "GOOG"};
  std::uint32_t slots = 65536;
  int cpu = -1;
  double vol_bps = 3.0;
  double trade_share = 0.1;
  std::uint64_t seed = 20240601;
  std::string name = "shmbus-feed";
  std::uint32_t wait_consumers = 0;
  double wait = 30;
};

// The first line of --help.
inline constexpr const char* kAbout =
    "shmbus-feed: publishes synthetic quotes (md.quotes) and trades (md.trades) onto a bus";

// Declares every option but --bus (demo::program_main adds it) on `app`, bound to `o`.
void add_options(CLI::App& app, Options& o);

// The program: 0 on success; throws on failure.
int run(const Options& o);

}  // namespace demo::feed
