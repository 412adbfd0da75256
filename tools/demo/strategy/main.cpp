// shmbus-strategy — a mean-reversion strategy on the demo feed.
//
//   shmbus-strategy --bus demo --idle spin --ewma-halflife 1 --threshold-bps 2 --json run.json
//
// Subscribes to "md.quotes" (shmbus.md.Quote) and "md.trades"
// (shmbus.md.Trade) through a shmbus::Dispatcher whose thread runs the model
// (model.hpp) and publishes shmbus.strategy.Signal on "signals".
//
// Measurement: every message's one-way latency is the bus clock's now minus
// the message's publish stamp (MessageMeta::age_ns(): both ends convert the
// same ticks with the same calibration), taken first thing in the handler and
// recorded into a shmbus::Histogram. Each second the dispatcher thread's
// window histogram is swapped for an empty one under a mutex (one uncontended
// lock per message; the main thread holds it for a pointer swap once a
// second) and the main thread prints the window and the run so far
// (report.hpp). Gaps the bus reports (a lossy ring lapped this reader) are
// counted per topic, the first few printed as they happen, all of them in
// every summary: never silent.
//
// The market-data topics are the feed's to define (geometry, depth): the
// strategy waits for them to appear (--wait seconds) instead of creating them
// with defaults the feed would then not match.
//
// Exit status: 0 on success; 1 with the error's sentence on shmbus::Error
// (or any other failure); CLI11's usage codes for bad flags.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include <shmbus/core/bus.hpp>
#include <shmbus/error.hpp>
#include <shmbus/patterns/dispatcher.hpp>

#include "../demo_common.hpp"
#include "model.hpp"
#include "options.hpp"
#include "report.hpp"
#include "window.hpp"

namespace demo::strategy {
namespace {

bool sleep_until(std::chrono::steady_clock::time_point t) {
  while (!g_stop.load(std::memory_order_relaxed)) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= t) return true;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(t - now, std::chrono::milliseconds(20)));
  }
  return false;
}

void wait_for_topics(const shmbus::Bus& bus, const Options& o) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.wait);
  bool said = false;
  for (;;) {
    if (bus.has_topic(kQuotesTopic) && bus.has_topic(kTradesTopic)) return;
    if (!said) {
      std::printf("strategy: waiting up to %.0f s for the feed to create %s and %s on bus '%s'\n",
                  o.wait, kQuotesTopic.data(), kTradesTopic.data(), o.bus.c_str());
      said = true;
    }
    if (g_stop.load() || std::chrono::steady_clock::now() >= deadline) {
      throw shmbus::Error(shmbus::Errc::NoSuchTopic,
                          "bus '" + o.bus + "' has no topics " + std::string(kQuotesTopic) +
                              " and " + std::string(kTradesTopic) +
                              (g_stop.load() ? " (stopped while waiting)" : "") +
                              " after waiting " + std::to_string(static_cast<int>(o.wait)) +
                              " s; start shmbus-feed on that bus, or raise --wait");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace

void add_options(CLI::App& app, Options& o) {
  add_non_negative(app, "--duration", o.duration,
                   "Seconds to run once subscribed; 0 = until SIGINT/SIGTERM");
  app.add_option("--cpu", o.cpu, "Pin the dispatcher thread to this CPU (-1: no pinning)")
      ->capture_default_str();
  app.add_option("--idle", o.idle,
                 "When no message is ready: spin (lowest latency, burns a core), yield, or block")
      ->check(CLI::IsMember({"spin", "yield", "block"}))
      ->capture_default_str();
  add_positive(app, "--ewma-halflife", o.ewma_halflife,
               "Half-life of the mid-price EWMA, in seconds");
  add_positive(app, "--threshold-bps", o.threshold_bps,
               "Deviation of mid from its EWMA that triggers a signal, bps");
  add_non_negative(app, "--wait", o.wait,
                   "Seconds to wait for the feed to create md.quotes and md.trades");
  app.add_option("--json", o.json, "Write the final figures as JSON to this file");
  app.add_option("--name", o.name, "Consumer/publisher name shown by bus-inspect")
      ->capture_default_str();
  app.add_option("--strategy-id", o.strategy_id, "strategy_id stamped on every signal")
      ->capture_default_str();
}

int run(const Options& o) {
  shmbus::Bus bus = shmbus::Bus::open_or_create(o.bus);
  wait_for_topics(bus, o);

  Windows windows;
  Model model(o, bus, windows);

  shmbus::DispatcherOptions dopt;
  dopt.name = o.name;
  dopt.idle = o.idle == "block"   ? shmbus::Idle::Block
              : o.idle == "yield" ? shmbus::Idle::Yield
                                  : shmbus::Idle::Spin;
  dopt.cpu = o.cpu;
  shmbus::Dispatcher dispatcher(bus, dopt);
  dispatcher.on<shmbus::md::Quote>(
      kQuotesTopic,
      [&model](const shmbus::md::Quote& q, const shmbus::MessageMeta& m) { model.on_quote(q, m); });
  dispatcher.on<shmbus::md::Trade>(
      kTradesTopic,
      [&model](const shmbus::md::Trade& t, const shmbus::MessageMeta& m) { model.on_trade(t, m); });
  dispatcher.on_gap([&model](const shmbus::Gap& g) { model.on_gap(g); });

  std::printf(
      "strategy: bus '%s', subscribed to %s and %s, publishing %s; idle %s, EWMA half-life %.3g s, "
      "threshold %.3g bps, clock %s%s\n",
      o.bus.c_str(), kQuotesTopic.data(), kTradesTopic.data(), kSignalsTopic.data(), o.idle.c_str(),
      o.ewma_halflife, o.threshold_bps, bus.clock().uses_tsc() ? "TSC" : "CLOCK_REALTIME",
      o.cpu >= 0 ? (", dispatcher pinned to CPU " + std::to_string(o.cpu)).c_str() : "");

  const auto start = std::chrono::steady_clock::now();
  const auto end = o.duration > 0
                       ? start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                     std::chrono::duration<double>(o.duration))
                       : std::chrono::steady_clock::time_point::max();
  dispatcher.start();

  Window total;  // the whole run, owned by this thread
  auto next = start;
  int second = 0;
  for (;;) {
    next += std::chrono::seconds(1);
    const bool full_second = sleep_until(std::min(next, end));
    if (!full_second || std::chrono::steady_clock::now() >= end) break;
    ++second;
    Window& w = windows.swap();
    total.add(w);
    print_second(second, w, total);
    w.reset();
  }
  dispatcher.stop();  // joins: everything the dispatcher thread wrote is ours now
  total.add(windows.swap());
  total.add(windows.swap());

  RunSummary summary;
  summary.options = &o;
  summary.total = &total;
  summary.model = &model;
  summary.elapsed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  summary.stopped_by_signal = g_stop.load();
  summary.tsc_clock = bus.clock().uses_tsc();
  summary.bus_drops = dispatcher.drops();
  print_summary(summary);
  if (!o.json.empty()) write_json(summary);
  return 0;
}

}  // namespace demo::strategy

int main(int argc, char** argv) {
  return demo::program_main(argc, argv, "shmbus-strategy", demo::strategy::kAbout,
                            demo::strategy::add_options, demo::strategy::run);
}
