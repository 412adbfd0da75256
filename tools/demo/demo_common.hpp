// What the demo programs share: the market-data topics the feed defines and
// the strategy reads, stopping on SIGINT/SIGTERM, publish failures counted by
// reason, and main()'s frame (line-buffered output, the command line, error
// reporting: an shmbus::Error's code and sentence, exit status 1).
#pragma once

#include <array>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include "shmbus/error.hpp"

namespace demo {

// Defined (geometry, depth) by shmbus-feed; shmbus-strategy waits for them.
inline constexpr std::string_view kQuotesTopic = "md.quotes";
inline constexpr std::string_view kTradesTopic = "md.trades";

inline std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" inline void on_stop_signal(int) {
  g_stop.store(true, std::memory_order_relaxed);
}

// SIGINT and SIGTERM set g_stop; the program finishes its loop and reports.
inline void stop_on_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

// Publishes that were not Ok, counted per PublishResult; [0] (Ok is never
// counted) takes values this build does not know, so that none goes uncounted.
struct PublishFailures {
  std::array<std::uint64_t, 8> by_result{};

  void count(shmbus::PublishResult r) noexcept {
    const auto i = static_cast<std::size_t>(r);
    ++by_result[i < by_result.size() ? i : 0];
  }
  void add(const PublishFailures& o) noexcept {
    for (std::size_t i = 0; i < by_result.size(); ++i) by_result[i] += o.by_result[i];
  }
  void reset() noexcept { by_result.fill(0); }
  [[nodiscard]] std::uint64_t total() const noexcept {
    std::uint64_t n = 0;
    for (const std::uint64_t f : by_result) n += f;
    return n;
  }
  // The name of reason `i` ("too_large", ...).
  [[nodiscard]] static std::string reason(std::size_t i) {
    return i == 0 ? std::string("unknown")
                  : std::string(shmbus::to_string(static_cast<shmbus::PublishResult>(i)));
  }
  // "too_large 3, would_block 1" or "none".
  [[nodiscard]] std::string breakdown() const {
    std::string s;
    for (std::size_t i = 0; i < by_result.size(); ++i) {
      if (by_result[i] == 0) continue;
      if (!s.empty()) s += ", ";
      s += reason(i) + " " + std::to_string(by_result[i]);
    }
    return s.empty() ? "none" : s;
  }
};

// Runs `body` and turns an escaping exception into a one-line message on
// stderr and exit status 1.
template <class F>
int run_reporting_errors(const char* program, F&& body) {
  try {
    return body();
  } catch (const shmbus::Error& e) {
    std::fprintf(stderr, "%s: error (%s): %s\n", program,
                 std::string(shmbus::to_string(e.code())).c_str(), e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
  }
  return 1;
}

// A number option that must be >= 0 (or > 0), its default shown in --help.
template <class T>
CLI::Option* add_non_negative(CLI::App& app, const std::string& flag, T& value,
                              const std::string& help) {
  return app.add_option(flag, value, help)->check(CLI::NonNegativeNumber)->capture_default_str();
}
template <class T>
CLI::Option* add_positive(CLI::App& app, const std::string& flag, T& value,
                          const std::string& help) {
  return app.add_option(flag, value, help)->check(CLI::PositiveNumber)->capture_default_str();
}

// A demo program's main(): stdout one line at a time (also into a pipe or a
// file), --bus and the options `add_options` declares parsed into a fresh
// Options (CLI11's usage messages and exit codes), SIGINT/SIGTERM caught,
// then `run` with its errors reported under the name `program`.
template <class Options>
int program_main(int argc, char** argv, const char* program, const char* description,
                 void (*add_options)(CLI::App&, Options&), int (*run)(const Options&)) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  Options o;
  CLI::App app{description};
  app.add_option("--bus", o.bus, "Bus name (created if missing)")->capture_default_str();
  add_options(app, o);
  CLI11_PARSE(app, argc, argv);
  stop_on_signals();
  return run_reporting_errors(program, [&] { return run(o); });
}

}  // namespace demo
