// shmbus-feed — a synthetic market-data feed handler, for the demo.
//
//   shmbus-feed --bus demo --rate 100000 --duration 10 --symbols AAPL,MSFT,NVDA
//
// Publishes top-of-book quotes (shmbus.md.Quote on "md.quotes") and trades
// (shmbus.md.Trade on "md.trades") for a few symbols, as a venue feed would
// deliver them after decoding: each symbol's mid price follows a random walk
// in time (volatility --vol-bps per square-root second), the spread is one to
// a few ticks, sizes are round lots with some odd-lot prints, every venue
// channel numbers its events, and each event carries a venue time a few
// microseconds before its receive time.
//
// Pacing: message i is due at start + i / rate, and the loop spins on the
// steady clock until then (a sleep per message would oversleep by tens of
// microseconds). If the loop falls more than 10 ms behind its schedule (the
// machine is overloaded), it restarts the schedule from now rather than
// bursting to catch up, and counts it. --rate 0 publishes as fast as it can.
//
// Both topics are lossy: a feed never waits for its readers. A publish that
// is not Ok is counted per reason and reported, never ignored.
//
// The feed defines its topics (it is their producer), so a strategy started
// first waits for them to appear and then subscribes; --wait-consumers N makes
// the feed hold its first message until N subscribers are registered on both
// topics (for at most --wait seconds), so that nothing is published before a
// subscriber started ahead of it is listening.
//
// Exit status: 0 on success; 1 with the error's sentence on shmbus::Error
// (or any other failure); CLI11's usage codes for bad flags.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include <shmbus/core/bus.hpp>
#include <shmbus/error.hpp>
#include <shmbus/admin/snapshot.hpp>
#include <shmbus/msg/md_quote_generated.h>
#include <shmbus/msg/md_trade_generated.h>
#include <shmbus/detail/wait.hpp>
#include <shmbus/core/publisher.hpp>

#include "demo_common.hpp"

namespace {

constexpr std::string_view kQuotesTopic = "md.quotes";
constexpr std::string_view kTradesTopic = "md.trades";
// 256 B slots (224 B of payload): with 4-letter symbols a quote is 152 B
// and a trade at most 184 B; checked at start-up against the longest symbol.
constexpr std::uint32_t kSlotSize = 256;
constexpr std::size_t kMaxSymbolLength = 16;
constexpr std::int64_t kNsPerSec = 1'000'000'000;
// How far behind schedule the pacer may fall before it starts over.
constexpr std::int64_t kMaxLagNs = 10'000'000;

using demo::g_stop;

std::int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

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

// A venue channel: its MIC and its own feed sequence numbers.
struct Venue {
  const char* mic;
  std::uint64_t seq = 0;
  std::uint64_t trade_ids = 0;
};

struct Instrument {
  std::string symbol;
  std::uint64_t id = 0;
  double mid = 100.0;
  double tick = 0.01;
  std::int64_t last_ns = 0;  // steady time of the last move of `mid`
};

// A plausible starting price per symbol: a few known ones, the rest spread
// over 20..520 by a hash of the name so runs are repeatable.
double initial_price(std::string_view symbol) {
  if (symbol == "AAPL") return 189.95;
  if (symbol == "MSFT") return 415.30;
  if (symbol == "NVDA") return 121.40;
  if (symbol == "AMZN") return 182.75;
  if (symbol == "GOOG") return 172.10;
  std::uint64_t h = 1469598103934665603ull;
  for (char c : symbol) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return 20.0 + static_cast<double>(h % 50'000) / 100.0;
}

class Feed {
 public:
  Feed(const Options& o, shmbus::Bus& bus)
      : opt_(o),
        clock_(&bus.clock()),
        quotes_(make_publisher<shmbus::md::Quote>(bus, kQuotesTopic, o)),
        trades_(make_publisher<shmbus::md::Trade>(bus, kTradesTopic, o)),
        rng_(o.seed),
        fbb_(512) {
    for (std::size_t i = 0; i < o.symbols.size(); ++i) {
      Instrument in;
      in.symbol = o.symbols[i];
      in.id = 1000 + i;
      in.mid = initial_price(in.symbol);
      in.tick = in.mid < 1.0 ? 0.0001 : 0.01;
      instruments_.push_back(in);
    }
    check_sizes();
  }

  // Publishes one event (a quote, or with probability trade_share a trade).
  void publish_one(std::int64_t now_steady) noexcept {
    Instrument& in = instruments_[pick_(rng_) % instruments_.size()];
    Venue& v = venues_[pick_(rng_) % venues_.size()];
    move(in, now_steady);
    if (unit_(rng_) < opt_.trade_share) {
      build_trade(in, v);
      count(trades_.try_publish(fbb_), trades_sent_);
    } else {
      build_quote(in, v);
      count(quotes_.try_publish(fbb_), quotes_sent_);
    }
  }

  [[nodiscard]] std::uint64_t published() const noexcept { return quotes_sent_ + trades_sent_; }
  [[nodiscard]] std::uint64_t quotes() const noexcept { return quotes_sent_; }
  [[nodiscard]] std::uint64_t trades() const noexcept { return trades_sent_; }
  [[nodiscard]] std::uint64_t failed() const noexcept {
    std::uint64_t n = 0;
    for (std::size_t i = 1; i < failures_.size(); ++i) n += failures_[i];
    return n;
  }
  // "too_large 3, would_block 1" or "none".
  [[nodiscard]] std::string failure_breakdown() const {
    std::string s;
    for (std::size_t i = 1; i < failures_.size(); ++i) {
      if (failures_[i] == 0) continue;
      if (!s.empty()) s += ", ";
      s += std::string(shmbus::to_string(static_cast<shmbus::PublishResult>(i))) + " " + std::to_string(failures_[i]);
    }
    return s.empty() ? "none" : s;
  }
  [[nodiscard]] const std::vector<Instrument>& instruments() const noexcept { return instruments_; }
  [[nodiscard]] std::uint32_t quote_slots() const noexcept { return quotes_.topic().slot_count(); }
  // Live registered subscribers on the emptier of the two topics (a snapshot; allocates).
  [[nodiscard]] std::size_t consumers() const {
    const auto live = [](const shmbus::Topic& t) {
      const shmbus::TopicSnapshot snap = shmbus::snapshot(t);
      return static_cast<std::size_t>(std::count_if(snap.consumers.begin(), snap.consumers.end(),
                                                    [](const shmbus::ConsumerSnapshot& c) { return c.alive && !c.joining; }));
    };
    return std::min(live(quotes_.topic()), live(trades_.topic()));
  }
  // Size of the largest quote / trade this run publishes (checked at start).
  [[nodiscard]] std::size_t quote_bytes() const noexcept { return quote_bytes_; }
  [[nodiscard]] std::size_t trade_bytes() const noexcept { return trade_bytes_; }

 private:
  template <class T>
  static shmbus::Publisher make_publisher(shmbus::Bus& bus, std::string_view topic, const Options& o) {
    shmbus::TopicConfig cfg;
    cfg.policy = shmbus::Policy::Lossy;
    cfg.slot_size = kSlotSize;
    cfg.slot_count = o.slots;
    shmbus::PublisherOptions po;
    po.name = o.name;
    return bus.publisher<T>(topic, cfg, po);
  }

  // The largest messages this run can produce must fit the slots: refuse to
  // start, rather than count TooLarge on every message.
  void check_sizes() {
    Instrument longest = *std::max_element(instruments_.begin(), instruments_.end(),
                                           [](const Instrument& a, const Instrument& b) {
                                             return a.symbol.size() < b.symbol.size();
                                           });
    Venue v{"XXXX", 0, ~std::uint64_t{0} - 1};  // the longest trade id
    build_quote(longest, v);
    quote_bytes_ = fbb_.GetSize();
    build_trade(longest, v);
    trade_bytes_ = fbb_.GetSize();
    const std::size_t room = quotes_.max_payload();
    if (quote_bytes_ > room || trade_bytes_ > trades_.max_payload()) {
      throw shmbus::Error(shmbus::Errc::InvalidArgument,
                          "symbol '" + longest.symbol + "' makes a " + std::to_string(std::max(quote_bytes_, trade_bytes_)) +
                              "-byte message, more than the " + std::to_string(room) +
                              " bytes a slot of md.quotes/md.trades holds; use shorter symbols");
    }
  }

  void count(shmbus::PublishResult r, std::uint64_t& ok_counter) noexcept {
    if (r == shmbus::PublishResult::Ok) [[likely]] {
      ++ok_counter;
    } else {
      const auto i = static_cast<std::size_t>(r);
      ++failures_[i < failures_.size() ? i : 0];
    }
  }

  // Geometric Brownian motion over the time since the symbol last moved.
  void move(Instrument& in, std::int64_t now_steady) noexcept {
    if (in.last_ns != 0) {
      const double dt = static_cast<double>(now_steady - in.last_ns) / static_cast<double>(kNsPerSec);
      const double sigma = opt_.vol_bps * 1e-4 * std::sqrt(std::max(dt, 0.0));
      in.mid = std::max(in.mid * std::exp(sigma * normal_(rng_)), 10 * in.tick);
    }
    in.last_ns = now_steady;
  }

  [[nodiscard]] double round_lot() noexcept { return 100.0 * static_cast<double>(1 + pick_(rng_) % 20); }

  [[nodiscard]] std::uint64_t spread_ticks() noexcept {
    const double u = unit_(rng_);
    return u < 0.6 ? 1 : u < 0.9 ? 2 : 3 + pick_(rng_) % 3;
  }

  // Venue time a few microseconds (wire + venue gateway) before receive time.
  void stamps(std::uint64_t& exchange_ts, std::uint64_t& receive_ts) noexcept {
    const std::int64_t now = clock_->now_ns();
    receive_ts = static_cast<std::uint64_t>(now);
    exchange_ts = static_cast<std::uint64_t>(now - 5'000 - static_cast<std::int64_t>(pick_(rng_) % 45'000));
  }

  void build_quote(const Instrument& in, Venue& v) noexcept {
    const auto ticks = spread_ticks();
    const double bid = std::floor(in.mid / in.tick - static_cast<double>(ticks) / 2.0) * in.tick;
    const double ask = bid + static_cast<double>(ticks) * in.tick;
    const double bid_qty = round_lot();
    const double ask_qty = round_lot();
    std::uint64_t exchange_ts = 0;
    std::uint64_t receive_ts = 0;
    stamps(exchange_ts, receive_ts);

    fbb_.Clear();
    const auto sym = fbb_.CreateString(in.symbol);
    const auto venue = fbb_.CreateString(v.mic);
    shmbus::md::QuoteBuilder q(fbb_);
    q.add_symbol(sym);
    q.add_instrument_id(in.id);
    q.add_venue(venue);
    q.add_exchange_ts(exchange_ts);
    q.add_receive_ts(receive_ts);
    q.add_seq(++v.seq);
    q.add_bid_px(bid);
    q.add_bid_qty(bid_qty);
    q.add_ask_px(ask);
    q.add_ask_qty(ask_qty);
    q.add_bid_orders(static_cast<std::uint32_t>(1 + bid_qty / 300.0));
    q.add_ask_orders(static_cast<std::uint32_t>(1 + ask_qty / 300.0));
    fbb_.Finish(q.Finish(), shmbus::md::QuoteIdentifier());
  }

  void build_trade(const Instrument& in, Venue& v) noexcept {
    const auto ticks = spread_ticks();
    const double bid = std::floor(in.mid / in.tick - static_cast<double>(ticks) / 2.0) * in.tick;
    const bool buyer_aggressed = (pick_(rng_) & 1u) != 0;
    const double price = buyer_aggressed ? bid + static_cast<double>(ticks) * in.tick : bid;
    const bool odd_lot = unit_(rng_) < 0.3;
    const double qty = odd_lot ? static_cast<double>(1 + pick_(rng_) % 99) : round_lot();
    std::uint64_t exchange_ts = 0;
    std::uint64_t receive_ts = 0;
    stamps(exchange_ts, receive_ts);

    // "XNAS-123456": venue and its match number, formatted without allocating.
    std::array<char, 32> id{};
    std::size_t n = 0;
    for (const char* p = v.mic; *p != '\0' && n < 8; ++p) id[n++] = *p;
    id[n++] = '-';
    const auto res = std::to_chars(id.data() + n, id.data() + id.size(), ++v.trade_ids);
    n = static_cast<std::size_t>(res.ptr - id.data());

    fbb_.Clear();
    const auto sym = fbb_.CreateString(in.symbol);
    const auto venue = fbb_.CreateString(v.mic);
    const auto trade_id = fbb_.CreateString(id.data(), n);
    const auto conditions = fbb_.CreateString(odd_lot ? "@  I" : "@");
    shmbus::md::TradeBuilder t(fbb_);
    t.add_symbol(sym);
    t.add_instrument_id(in.id);
    t.add_venue(venue);
    t.add_exchange_ts(exchange_ts);
    t.add_receive_ts(receive_ts);
    t.add_seq(++v.seq);
    t.add_price(price);
    t.add_qty(qty);
    t.add_aggressor(buyer_aggressed ? shmbus::common::Side::Buy : shmbus::common::Side::Sell);
    t.add_trade_id(trade_id);
    t.add_conditions(conditions);
    fbb_.Finish(t.Finish(), shmbus::md::TradeIdentifier());
  }

  const Options& opt_;
  const shmbus::Clock* clock_;
  shmbus::Publisher quotes_;
  shmbus::Publisher trades_;
  std::mt19937_64 rng_;
  std::normal_distribution<double> normal_{0.0, 1.0};
  std::uniform_real_distribution<double> unit_{0.0, 1.0};
  std::uniform_int_distribution<std::uint64_t> pick_{0, ~std::uint64_t{0}};
  flatbuffers::FlatBufferBuilder fbb_;
  std::vector<Instrument> instruments_;
  std::array<Venue, 4> venues_{{{"XNAS"}, {"XNYS"}, {"ARCX"}, {"BATS"}}};
  std::uint64_t quotes_sent_ = 0;
  std::uint64_t trades_sent_ = 0;
  // Indexed by PublishResult; [0] also takes values this build does not know.
  std::array<std::uint64_t, 8> failures_{};
  std::size_t quote_bytes_ = 0;
  std::size_t trade_bytes_ = 0;
};

void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof set, &set) != 0) {
    throw shmbus::Error(shmbus::Errc::InvalidArgument,
                        "cannot pin to CPU " + std::to_string(cpu) + ": " + std::strerror(errno) +
                            " (this machine has CPUs 0.." + std::to_string(std::thread::hardware_concurrency() - 1) +
                            ")");
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
      throw shmbus::Error(shmbus::Errc::Timeout,
                          "bus '" + o.bus + "': " + std::to_string(feed.consumers()) + " of the " +
                              std::to_string(o.wait_consumers) + " subscriber(s) asked for (--wait-consumers) are on "
                              "md.quotes and md.trades" + (g_stop.load() ? std::string(" when stopped") : " after " + seconds(o.wait)) + "; start the strategy on that bus, or lower --wait-consumers");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

int run(const Options& o) {
  if (o.cpu >= 0) pin_to_cpu(o.cpu);
  shmbus::Bus bus = shmbus::Bus::open_or_create(o.bus);
  Feed feed(o, bus);

  char rate[32];
  char duration[48];
  if (o.rate > 0) std::snprintf(rate, sizeof rate, "%.0f msg/s", o.rate);
  else std::snprintf(rate, sizeof rate, "as fast as possible");
  if (o.duration > 0) std::snprintf(duration, sizeof duration, "%g s", o.duration);
  else std::snprintf(duration, sizeof duration, "until SIGINT/SIGTERM");
  std::printf("feed: bus '%s', %zu symbols, rate %s, duration %s, lossy rings of %u x %u B "
              "(largest quote %zu B, trade %zu B), clock %s%s\n",
              o.bus.c_str(), o.symbols.size(), rate, duration, feed.quote_slots(), kSlotSize, feed.quote_bytes(),
              feed.trade_bytes(), bus.clock().uses_tsc() ? "TSC" : "CLOCK_REALTIME",
              o.cpu >= 0 ? (", pinned to CPU " + std::to_string(o.cpu)).c_str() : "");
  wait_for_consumers(feed, o);

  const double period_ns = o.rate > 0 ? 1e9 / o.rate : 0.0;
  const std::int64_t start = steady_ns();
  const std::int64_t end = o.duration > 0 ? start + static_cast<std::int64_t>(o.duration * 1e9) : INT64_MAX;
  std::int64_t epoch = start;   // schedule origin (moves when the pacer starts over)
  std::uint64_t due = 0;        // messages due since `epoch`
  std::uint64_t restarts = 0;   // times the pacer fell > 10 ms behind
  std::int64_t next_report = start + kNsPerSec;
  std::uint64_t last_total = 0;
  std::uint64_t last_failed = 0;
  int second = 0;

  std::int64_t now = start;
  while (!g_stop.load(std::memory_order_relaxed)) {
    if (period_ns > 0) {
      const std::int64_t deadline = epoch + static_cast<std::int64_t>(static_cast<double>(due) * period_ns);
      now = steady_ns();
      while (now < deadline && !g_stop.load(std::memory_order_relaxed)) {
        shmbus::detail::cpu_relax();
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
                  static_cast<unsigned long long>(total - last_total), static_cast<unsigned long long>(total),
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
  std::printf("feed: done after %.2f s%s: published %llu messages (%llu quotes, %llu trades), %.0f msg/s average; "
              "not published: %llu (%s); pacer restarted %llu times (fell > 10 ms behind)\n",
              elapsed, g_stop.load() ? " (signal)" : "", static_cast<unsigned long long>(total),
              static_cast<unsigned long long>(feed.quotes()), static_cast<unsigned long long>(feed.trades()),
              elapsed > 0 ? static_cast<double>(total) / elapsed : 0.0,
              static_cast<unsigned long long>(feed.failed()), feed.failure_breakdown().c_str(),
              static_cast<unsigned long long>(restarts));
  std::printf("feed: last mids:");
  for (const Instrument& in : feed.instruments()) std::printf(" %s %.2f", in.symbol.c_str(), in.mid);
  std::printf("\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one line at a time, also into a pipe or file

  Options o;
  CLI::App app{"shmbus-feed: publishes synthetic quotes (md.quotes) and trades (md.trades) onto a bus"};
  app.add_option("--bus", o.bus, "Bus name (created if missing)")->capture_default_str();
  app.add_option("--rate", o.rate, "Messages per second, quotes and trades together; 0 = as fast as possible")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--duration", o.duration, "Seconds to run; 0 = until SIGINT/SIGTERM")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
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
  app.add_option("--vol-bps", o.vol_bps, "Price volatility, basis points per square-root second")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--trade-share", o.trade_share, "Fraction of messages that are trades")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--seed", o.seed, "Random seed")->capture_default_str();
  app.add_option("--name", o.name, "Publisher name shown by bus-inspect")->capture_default_str();
  app.add_option("--wait-consumers", o.wait_consumers,
                 "Before publishing, wait for this many subscribers on both topics")
      ->capture_default_str();
  app.add_option("--wait", o.wait, "Seconds --wait-consumers may wait before giving up (exit 1)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  demo::stop_on_signals();
  return demo::run_reporting_errors("shmbus-feed", [&] { return run(o); });
}
