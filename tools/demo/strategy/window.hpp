// shmbus-strategy's statistics, handed from the dispatcher thread (which
// counts) to the main thread (which reports) once a second.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include <shmbus/admin/histogram.hpp>

#include "../demo_common.hpp"

namespace demo::strategy {

// What the dispatcher thread counts during one reporting window. Written by
// the dispatcher thread under Windows::mu; read and reset by the main thread
// after it has swapped it out.
struct Window {
  shmbus::Histogram latency;
  std::uint64_t quotes = 0;
  std::uint64_t trades = 0;
  std::uint64_t quote_gaps = 0;
  std::uint64_t quote_drops = 0;
  std::uint64_t trade_gaps = 0;
  std::uint64_t trade_drops = 0;
  std::uint64_t negative_ages = 0;
  std::uint64_t most_negative_ns = 0;  // the largest |age| among the negative ones
  std::uint64_t signals = 0;
  PublishFailures signal_failures;

  void reset() noexcept {
    latency.reset();
    quotes = trades = quote_gaps = quote_drops = trade_gaps = trade_drops = negative_ages =
        most_negative_ns = signals = 0;
    signal_failures.reset();
  }
  void add(const Window& w) noexcept {
    latency.merge(w.latency);
    quotes += w.quotes;
    trades += w.trades;
    quote_gaps += w.quote_gaps;
    quote_drops += w.quote_drops;
    trade_gaps += w.trade_gaps;
    trade_drops += w.trade_drops;
    negative_ages += w.negative_ages;
    most_negative_ns = std::max(most_negative_ns, w.most_negative_ns);
    signals += w.signals;
    signal_failures.add(w.signal_failures);
  }
};

// Double buffer: the dispatcher thread writes *live[active]; the main thread
// flips `active` under the mutex and then owns the other one alone until it
// flips again (the mutex orders the flip after the writer's last access).
struct Windows {
  std::mutex mu;
  std::array<std::unique_ptr<Window>, 2> w{std::make_unique<Window>(), std::make_unique<Window>()};
  std::size_t active = 0;

  // Runs f(Window&) on the live window, under the lock.
  template <class F>
  void update(F&& f) {
    const std::lock_guard<std::mutex> lock(mu);
    f(*w[active]);
  }
  // Swaps the live window for the idle (reset) one; returns the old one,
  // which the caller must reset() before the next swap.
  Window& swap() {
    const std::lock_guard<std::mutex> lock(mu);
    const std::size_t old = active;
    active ^= 1u;
    return *w[old];
  }
};

}  // namespace demo::strategy
