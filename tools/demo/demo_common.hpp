// What the demo programs share: stopping on SIGINT/SIGTERM, and main()'s
// error reporting (an shmbus::Error's code and sentence, exit status 1).
#pragma once

#include <csignal>
#include <cstdio>
#include <exception>
#include <string>

#include "shmbus/error.hpp"

namespace demo {

inline std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" inline void on_stop_signal(int) { g_stop.store(true, std::memory_order_relaxed); }

// SIGINT and SIGTERM set g_stop; the program finishes its loop and reports.
inline void stop_on_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

// Runs `body` and turns an escaping exception into a one-line message on
// stderr and exit status 1.
template <class F>
int run_reporting_errors(const char* program, F&& body) {
  try {
    return body();
  } catch (const shmbus::Error& e) {
    std::fprintf(stderr, "%s: error (%s): %s\n", program, std::string(shmbus::to_string(e.code())).c_str(), e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
  }
  return 1;
}

}  // namespace demo
