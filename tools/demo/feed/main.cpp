// shmbus-feed — a synthetic market-data feed handler, for the demo.
//
//   shmbus-feed --bus demo --rate 100000 --duration 10 --symbols AAPL,MSFT,NVDA
//
// Publishes top-of-book quotes (shmbus.md.Quote on "md.quotes") and trades
// (shmbus.md.Trade on "md.trades") for a few symbols, as a venue feed would
// deliver them after decoding (the market: market.hpp).
//
// Pacing: message i is due at start + i / rate, and the loop spins on the
// steady clock until then (a sleep per message would oversleep by tens of
// microseconds). If the loop falls more than 10 ms behind its schedule (the
// machine is overloaded), it restarts the schedule from now rather than
// bursting to catch up, and counts it. --rate 0 publishes as fast as it can.
//
// The feed defines its topics (it is their producer), so a strategy started
// first waits for them to appear and then subscribes; --wait-consumers N makes
// the feed hold its first message until N subscribers are registered on both
// topics (for at most --wait seconds), so that nothing is published before a
// subscriber started ahead of it is listening.
//
// Exit status: 0 on success; 1 with the error's sentence on shmbus::Error
// (or any other failure); CLI11's usage codes for bad flags.
#include <charconv>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>

#include <shmbus/core/bus.hpp>
#include <shmbus/error.hpp>

#include "../demo_common.hpp"
#include "common/affinity.hpp"
#include "common/pause.hpp"
#include "market.hpp"
#include "options.hpp"

namespace demo::feed {
namespace {

constexpr std::size_t kMaxSymbolLength = 16;
// How far behind schedule the pacer may fall before it starts over.
constexpr std::int64_t kMaxLagNs = 10'000'000;

std::int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void pin_to_cpu(int cpu) {
  if (const int err = shmbus::tools::pin_to_cpu(cpu); err != 0) {
    throw shmbus::Error(shmbus::Errc::InvalidArgument,
                        "cannot pin to CPU " + std::to_string(cpu) + ": " + std::strerror(err) +
                            " (this machine has CPUs 0.." +
                            std::to_string(std::thread::hardware_concurrency() - 1) + ")");
  }
}

// "1.5 s", "30 s".
std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

void wait_for_consumers(const Feed& feed, const Options& o) {
  if (o.wait_consumers == 0) return;
  std::printf("feed: waiting up to %g s for %u subscriber(s) on md.quotes and md.trades\n", o.wait,
              o.wait_consumers);
  const std::int64_t deadline = steady_ns() + static_cast<std::int64_t>(o.wait * 1e9);
  while (feed.consumers() < o.wait_consumers) {
    if (g_stop.load(std::memory_order_relaxed) || steady_ns() >= deadline) {
      throw shmbus::Error(
          shmbus::Errc::Timeout,
          "bus '" + o.bus + "': " + std::to_string(feed.consumers()) + " of the " +
              std::to_string(o.wait_consumers) +
              " subscriber(s) asked for (--wait-consumers) are on "
              "md.quotes and md.trades" +
              (g_stop.load() ? std::string(" when stopped") : " after " + seconds(o.wait)) +
              "; start the strategy on that bus, or lower --wait-consumers");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace

int run(const Options& o) {
  if (o.cpu >= 0) pin_to_cpu(o.cpu);
  shmbus::Bus bus = shmbus::Bus::open_or_create(o.bus);
  Feed feed(o, bus);

  char rate[32];
  char duration[48];
  if (o.rate > 0)
    std::snprintf(rate, sizeof rate, "%.0f msg/s", o.rate);
  else
    std::snprintf(rate, sizeof rate, "as fast as possible");
  if (o.duration > 0)
    std::snprintf(duration, sizeof duration, "%g s", o.duration);
  else
    std::snprintf(duration, sizeof duration, "until SIGINT/SIGTERM");
  std::printf(
      "feed: bus '%s', %zu symbols, rate %s, duration %s, lossy rings of %u x %u B "
      "(largest quote %zu B, trade %zu B), clock %s%s\n",
      o.bus.c_str(), o.symbols.size(), rate, duration, feed.quote_slots(), kSlotSize,
      feed.quote_bytes(), feed.trade_bytes(), bus.clock().uses_tsc() ? "TSC" : "CLOCK_REALTIME",
      o.cpu >= 0 ? (", pinned to CPU " + std::to_string(o.cpu)).c_str() : "");
  wait_for_consumers(feed, o);

  const double period_ns = o.rate > 0 ? 1e9 / o.rate : 0.0;
  const std::int64_t start = steady_ns();
  const std::int64_t end =
      o.duration > 0 ? start + static_cast<std::int64_t>(o.duration * 1e9) : INT64_MAX;
  std::int64_t epoch = start;  // schedule origin (moves when the pacer starts over)
  std::uint64_t due = 0;       // messages due since `epoch`
  std::uint64_t restarts = 0;  // times the pacer fell > 10 ms behind
  std::int64_t next_report = start + kNsPerSec;
  std::uint64_t last_total = 0;
  std::uint64_t last_failed = 0;
  int second = 0;

  std::int64_t now = start;
  while (!g_stop.load(std::memory_order_relaxed)) {
    if (period_ns > 0) {
      const std::int64_t deadline =
          epoch + static_cast<std::int64_t>(static_cast<double>(due) * period_ns);
      now = steady_ns();
      while (now < deadline && !g_stop.load(std::memory_order_relaxed)) {
        shmbus::tools::cpu_pause();
        now = steady_ns();
      }
      if (now - deadline > kMaxLagNs) {
        ++restarts;
        epoch = now;
        due = 0;
      }
    } else if ((due & 63u) == 0) {
      now = steady_ns();
    }
    if (now >= end) break;
    if (now >= next_report) {
      ++second;
      const std::uint64_t total = feed.published();
      std::printf("feed: %3d s  published %9llu/s  total %11llu  not published %llu\n", second,
                  static_cast<unsigned long long>(total - last_total),
                  static_cast<unsigned long long>(total),
                  static_cast<unsigned long long>(feed.failed() - last_failed));
      last_total = total;
      last_failed = feed.failed();
      next_report += kNsPerSec;
    }
    feed.publish_one(now);
    ++due;
  }

  const double elapsed = static_cast<double>(steady_ns() - start) / 1e9;
  const std::uint64_t total = feed.published();
  std::printf(
      "feed: done after %.2f s%s: published %llu messages (%llu quotes, %llu trades), %.0f msg/s "
      "average; "
      "not published: %llu (%s); pacer restarted %llu times (fell > 10 ms behind)\n",
      elapsed, g_stop.load() ? " (signal)" : "", static_cast<unsigned long long>(total),
      static_cast<unsigned long long>(feed.quotes()),
      static_cast<unsigned long long>(feed.trades()),
      elapsed > 0 ? static_cast<double>(total) / elapsed : 0.0,
      static_cast<unsigned long long>(feed.failed()), feed.failure_breakdown().c_str(),
      static_cast<unsigned long long>(restarts));
  std::printf("feed: last mids:");
  for (const Instrument& in : feed.instruments())
    std::printf(" %s %.2f", in.symbol.c_str(), in.mid);
  std::printf("\n");
  return 0;
}

void add_options(CLI::App& app, Options& o) {
  add_non_negative(app, "--rate", o.rate,
                   "Messages per second, quotes and trades together; 0 = as fast as possible");
  add_non_negative(app, "--duration", o.duration, "Seconds to run; 0 = until SIGINT/SIGTERM");
  app.add_option("--symbols", o.symbols, "Comma-separated symbols")
      ->delimiter(',')
      ->check([](const std::string& s) -> std::string {
        if (s.empty() || s.size() > kMaxSymbolLength) return "a symbol is 1-16 characters";
        return {};
      })
      ->capture_default_str();
  app.add_option("--slots", o.slots, "Ring depth of each topic (power of two, 2..2^24)")
      ->check([](const std::string& s) -> std::string {
        unsigned long long v = 0;
        const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
        if (r.ec != std::errc{} || v < 2 || v > (1ull << 24) || (v & (v - 1)) != 0)
          return "--slots must be a power of two in [2, 16777216]";
        return {};
      })
      ->capture_default_str();
  app.add_option("--cpu", o.cpu, "Pin to this CPU (-1: no pinning)")->capture_default_str();
  add_non_negative(app, "--vol-bps", o.vol_bps,
                   "Price volatility, basis points per square-root second");
  app.add_option("--trade-share", o.trade_share, "Fraction of messages that are trades")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--seed", o.seed, "Random seed")->capture_default_str();
  app.add_option("--name", o.name, "Publisher name shown by bus-inspect")->capture_default_str();
  app.add_option("--wait-consumers", o.wait_consumers,
                 "Before publishing, wait for this many subscribers on both topics")
      ->capture_default_str();
  add_non_negative(app, "--wait", o.wait,
                   "Seconds --wait-consumers may wait before giving up (exit 1)");
}

}  // namespace demo::feed

int main(int argc, char** argv) {
  return demo::program_main(argc, argv, "shmbus-feed", demo::feed::kAbout, demo::feed::add_options,
                            demo::feed::run);
}
