// shmbus-strategy — a mean-reversion strategy on the demo feed.
//
//   shmbus-strategy --bus demo --idle spin --ewma-halflife 1 --threshold-bps 2 --json run.json
//
// Subscribes to "md.quotes" (shmbus.md.Quote) and "md.trades"
// (shmbus.md.Trade) through a shmbus::Dispatcher and keeps, per symbol:
//
//   * an exponentially weighted moving average of the mid price, weighted by
//     time: a quote dt ns after the previous one moves the average by
//     alpha = 1 - 2^(-dt / halflife) of the way to the new mid;
//   * the session VWAP from the trades (sum of price * qty / sum of qty).
//
// When the mid is more than --threshold-bps away from its EWMA (after one
// half-life of warm-up), the strategy expects it to revert and publishes a
// shmbus.strategy.Signal on "signals" (a reliable topic): Entry Short when the
// mid is above both its EWMA and the VWAP, Entry Long when below both. The
// position is closed (Exit) once the deviation is back within half the
// threshold. Only changes of view are published, not one signal per quote.
//
// Measurement: every message's one-way latency is the bus clock's now minus
// the message's publish stamp (MessageMeta::age_ns(): both ends convert the
// same ticks with the same calibration), taken first thing in the handler and
// recorded into a shmbus::Histogram. Each second the dispatcher thread's
// window histogram is swapped for an empty one under a mutex (one uncontended
// lock per message; the main thread holds it for a pointer swap once a
// second) and the main thread prints the window and the run so far. Gaps the
// bus reports (a lossy ring lapped this reader) are counted per topic, the
// first few printed as they happen, all of them in every summary: never
// silent.
//
// The market-data topics are the feed's to define (geometry, depth): the
// strategy waits for them to appear (--wait seconds) instead of creating them
// with defaults the feed would then not match.
//
// Exit status: 0 on success; 1 with the error's sentence on shmbus::Error
// (or any other failure); CLI11's usage codes for bad flags.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <shmbus/core/bus.hpp>
#include <shmbus/patterns/dispatcher.hpp>
#include <shmbus/error.hpp>
#include <shmbus/admin/histogram.hpp>
#include <shmbus/msg/md_quote_generated.h>
#include <shmbus/msg/md_trade_generated.h>
#include <shmbus/msg/strategy_signal_generated.h>
#include <shmbus/core/publisher.hpp>

#include "demo_common.hpp"

namespace {

constexpr std::string_view kQuotesTopic = "md.quotes";
constexpr std::string_view kTradesTopic = "md.trades";
constexpr std::string_view kSignalsTopic = "signals";
constexpr std::string_view kModel = "ewma-meanrev/1";
// Gaps printed one by one as they happen; after that they are only counted.
constexpr std::uint64_t kGapLinesMax = 10;

using demo::g_stop;

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

// "850 ns", "1.24 us", "3.10 ms", "2.00 s".
std::string human_ns(std::uint64_t ns) {
  char buf[32];
  const auto v = static_cast<double>(ns);
  if (ns < 1'000) std::snprintf(buf, sizeof buf, "%llu ns", static_cast<unsigned long long>(ns));
  else if (ns < 1'000'000) std::snprintf(buf, sizeof buf, "%.2f us", v / 1e3);
  else if (ns < 1'000'000'000) std::snprintf(buf, sizeof buf, "%.2f ms", v / 1e6);
  else std::snprintf(buf, sizeof buf, "%.2f s", v / 1e9);
  return buf;
}

// ------------------------------------------------------------------ shared with the main thread

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
  // Indexed by PublishResult (0 = Ok is unused).
  std::array<std::uint64_t, 8> signal_failures{};

  void reset() noexcept {
    latency.reset();
    quotes = trades = quote_gaps = quote_drops = trade_gaps = trade_drops = negative_ages = most_negative_ns = signals = 0;
    signal_failures.fill(0);
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
    for (std::size_t i = 0; i < signal_failures.size(); ++i) signal_failures[i] += w.signal_failures[i];
  }
  [[nodiscard]] std::uint64_t signals_failed() const noexcept {
    std::uint64_t n = 0;
    for (std::uint64_t f : signal_failures) n += f;
    return n;
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

// ------------------------------------------------------------------ the model (dispatcher thread only)

// One-way latency of a message: MessageMeta::age_ns() reads the bus clock
// ordered after the loads that delivered the message (LFENCE; RDTSC), so the
// age is never read before the message has arrived.
std::int64_t age_ns(const shmbus::MessageMeta& meta) noexcept { return meta.age_ns(); }

struct SymbolState {
  std::string symbol;
  std::uint64_t instrument_id = 0;
  double mid = 0;
  double ewma = 0;
  std::uint64_t first_ts = 0;  // receive_ts of the first quote (for warm-up)
  std::uint64_t last_ts = 0;   // receive_ts of the last quote
  double pxqty = 0;            // sum of price * qty over trades
  double qty = 0;              // sum of qty over trades
  int position = 0;            // the current view: -1 short, 0 flat, +1 long
  std::uint64_t quotes = 0;
  std::uint64_t trades = 0;
  std::uint64_t signals = 0;

  [[nodiscard]] double vwap() const noexcept { return qty > 0 ? pxqty / qty : 0.0; }
  [[nodiscard]] double deviation_bps() const noexcept { return ewma > 0 ? (mid - ewma) / ewma * 1e4 : 0.0; }
};

// First and last bus sequence seen on a topic: last - first + 1 must equal
// what was received plus what was dropped.
struct SeqRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  void see(std::uint64_t seq) noexcept {
    if (first == 0) first = seq;
    last = seq;
  }
};

class Model {
 public:
  Model(const Options& o, shmbus::Bus& bus, Windows& windows)
      : opt_(o),
        clock_(&bus.clock()),
        windows_(windows),
        signals_(make_signal_publisher(bus, o)),
        halflife_ns_(o.ewma_halflife * 1e9),
        fbb_(512) {
    states_.reserve(64);
  }

  void on_quote(const shmbus::md::Quote& q, const shmbus::MessageMeta& meta) {
    const std::int64_t age = age_ns(meta);  // first: nothing of ours in the measurement
    quote_seq_.see(meta.seq);
    SymbolState& s = state(q.symbol(), q.instrument_id());
    ++s.quotes;
    int signal = kNoSignal;
    if (q.bid_qty() > 0 && q.ask_qty() > 0 && q.ask_px() >= q.bid_px()) {
      s.mid = 0.5 * (q.bid_px() + q.ask_px());
      update_ewma(s, q.receive_ts());
      signal = decide(s);
    }
    shmbus::PublishResult r = shmbus::PublishResult::Ok;
    if (signal != kNoSignal) r = publish_signal(s, signal, q.venue(), q.exchange_ts());
    windows_.update([&](Window& w) {
      record_age(w, age);
      ++w.quotes;
      if (signal != kNoSignal) count_signal(w, r);
    });
  }

  void on_trade(const shmbus::md::Trade& t, const shmbus::MessageMeta& meta) {
    const std::int64_t age = age_ns(meta);
    trade_seq_.see(meta.seq);
    SymbolState& s = state(t.symbol(), t.instrument_id());
    ++s.trades;
    if (t.qty() > 0) {
      s.pxqty += t.price() * t.qty();
      s.qty += t.qty();
    }
    windows_.update([&](Window& w) {
      record_age(w, age);
      ++w.trades;
    });
  }

  void on_gap(const shmbus::Gap& g) {
    const bool quotes = g.topic == kQuotesTopic;
    std::uint64_t nth = 0;
    windows_.update([&](Window& w) {
      ++(quotes ? w.quote_gaps : w.trade_gaps);
      (quotes ? w.quote_drops : w.trade_drops) += g.count;
    });
    nth = ++gap_lines_;
    if (nth <= kGapLinesMax) {
      std::printf("strategy: GAP on %.*s: lost %llu messages (seq %llu..%llu), lapped by the producer%s\n",
                  static_cast<int>(g.topic.size()), g.topic.data(), static_cast<unsigned long long>(g.count),
                  static_cast<unsigned long long>(g.first), static_cast<unsigned long long>(g.first + g.count - 1),
                  nth == kGapLinesMax ? "; further gaps are counted in the summaries only" : "");
    }
  }

  // Read only once the dispatcher thread has been joined.
  [[nodiscard]] const std::vector<SymbolState>& states() const noexcept { return states_; }
  [[nodiscard]] const SeqRange& quote_seq() const noexcept { return quote_seq_; }
  [[nodiscard]] const SeqRange& trade_seq() const noexcept { return trade_seq_; }

 private:
  static constexpr int kNoSignal = 99;

  static shmbus::Publisher make_signal_publisher(shmbus::Bus& bus, const Options& o) {
    shmbus::TopicConfig cfg;
    cfg.policy = shmbus::Policy::Reliable;
    cfg.slot_size = 512;  // ids, symbol, venue and model name: ~250 B
    cfg.slot_count = 4096;
    shmbus::PublisherOptions po;
    po.name = o.name;
    return bus.publisher<shmbus::strategy::Signal>(kSignalsTopic, cfg, po);
  }

  // Linear search: a strategy follows a handful of symbols, and this never
  // allocates after a symbol's first message.
  SymbolState& state(const flatbuffers::String* symbol, std::uint64_t instrument_id) {
    const std::string_view name = symbol != nullptr ? symbol->string_view() : std::string_view{};
    for (SymbolState& s : states_)
      if (s.symbol == name) return s;
    SymbolState s;
    s.symbol = std::string(name);
    s.instrument_id = instrument_id;
    states_.push_back(std::move(s));
    return states_.back();
  }

  void update_ewma(SymbolState& s, std::uint64_t ts) const noexcept {
    if (s.first_ts == 0) {
      s.first_ts = ts;
      s.last_ts = ts;
      s.ewma = s.mid;
      return;
    }
    // Venues' stamps may arrive slightly out of order: a step back counts as no time.
    const double dt = ts > s.last_ts ? static_cast<double>(ts - s.last_ts) : 0.0;
    s.last_ts = std::max(ts, s.last_ts);
    const double alpha = 1.0 - std::exp2(-dt / halflife_ns_);
    s.ewma += alpha * (s.mid - s.ewma);
  }

  // The new view (-1, 0, +1) if it changes, else kNoSignal.
  int decide(SymbolState& s) const noexcept {
    if (static_cast<double>(s.last_ts - s.first_ts) < halflife_ns_) return kNoSignal;  // warming up
    const double dev = s.deviation_bps();
    const double vwap = s.vwap();
    int view = s.position;
    if (s.position == 0) {
      if (dev > opt_.threshold_bps && (vwap == 0 || s.mid > vwap)) view = -1;
      else if (dev < -opt_.threshold_bps && (vwap == 0 || s.mid < vwap)) view = +1;
    } else if (std::fabs(dev) < opt_.threshold_bps / 2) {
      view = 0;
    } else if (s.position > 0 && dev > opt_.threshold_bps) {
      view = -1;
    } else if (s.position < 0 && dev < -opt_.threshold_bps) {
      view = +1;
    }
    if (view == s.position) return kNoSignal;
    return view;
  }

  shmbus::PublishResult publish_signal(SymbolState& s, int view, const flatbuffers::String* venue,
                                       std::uint64_t source_ts) {
    const double dev = s.deviation_bps();
    fbb_.Clear();
    const auto strategy_id = fbb_.CreateString(opt_.strategy_id);
    const auto symbol = fbb_.CreateString(s.symbol);
    const auto venue_str = fbb_.CreateString(venue != nullptr ? venue->string_view() : std::string_view{});
    const auto model = fbb_.CreateString(kModel.data(), kModel.size());
    shmbus::strategy::SignalBuilder b(fbb_);
    b.add_strategy_id(strategy_id);
    b.add_symbol(symbol);
    b.add_instrument_id(s.instrument_id);
    b.add_venue(venue_str);
    b.add_kind(view == 0 ? shmbus::strategy::SignalKind::Exit : shmbus::strategy::SignalKind::Entry);
    b.add_direction(view > 0   ? shmbus::strategy::Direction::Long
                    : view < 0 ? shmbus::strategy::Direction::Short
                               : shmbus::strategy::Direction::Flat);
    b.add_strength(std::min(1.0, std::fabs(dev) / (3.0 * opt_.threshold_bps)));
    b.add_value(-dev);  // expected reversion, bps
    b.add_horizon_ns(static_cast<std::uint64_t>(halflife_ns_));
    b.add_generated_ts(static_cast<std::uint64_t>(clock_->now_ns()));
    b.add_source_ts(source_ts);
    b.add_seq(++signal_seq_);
    b.add_model(model);
    fbb_.Finish(b.Finish(), shmbus::strategy::SignalIdentifier());
    // Never stall market data for a slow signal reader: a full ring is
    // counted (would_block) and reported, not waited on.
    const shmbus::PublishResult r = signals_.try_publish(fbb_);
    if (r == shmbus::PublishResult::Ok) {
      s.position = view;
      ++s.signals;
    }
    return r;
  }

  static void record_age(Window& w, std::int64_t age) noexcept {
    if (age < 0) {
      ++w.negative_ages;
      w.most_negative_ns = std::max(w.most_negative_ns, static_cast<std::uint64_t>(-age));
      age = 0;
    }
    w.latency.record(static_cast<std::uint64_t>(age));
  }

  static void count_signal(Window& w, shmbus::PublishResult r) noexcept {
    if (r == shmbus::PublishResult::Ok) {
      ++w.signals;
    } else {
      const auto i = static_cast<std::size_t>(r);
      ++w.signal_failures[i < w.signal_failures.size() ? i : 0];
    }
  }

  const Options& opt_;
  const shmbus::Clock* clock_;
  Windows& windows_;
  shmbus::Publisher signals_;
  double halflife_ns_;
  flatbuffers::FlatBufferBuilder fbb_;
  std::vector<SymbolState> states_;
  std::uint64_t signal_seq_ = 0;
  std::uint64_t gap_lines_ = 0;
  SeqRange quote_seq_;
  SeqRange trade_seq_;
};

// ------------------------------------------------------------------ main thread

std::string failure_breakdown(const Window& w) {
  std::string s;
  for (std::size_t i = 1; i < w.signal_failures.size(); ++i) {
    if (w.signal_failures[i] == 0) continue;
    if (!s.empty()) s += ", ";
    s += std::string(shmbus::to_string(static_cast<shmbus::PublishResult>(i))) + " " +
         std::to_string(w.signal_failures[i]);
  }
  return s.empty() ? "none" : s;
}

bool sleep_until(std::chrono::steady_clock::time_point t) {
  while (!g_stop.load(std::memory_order_relaxed)) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= t) return true;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(t - now, std::chrono::milliseconds(20)));
  }
  return false;
}

void wait_for_topics(const shmbus::Bus& bus, const Options& o) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.wait);
  bool said = false;
  for (;;) {
    if (bus.has_topic(kQuotesTopic) && bus.has_topic(kTradesTopic)) return;
    if (!said) {
      std::printf("strategy: waiting up to %.0f s for the feed to create %s and %s on bus '%s'\n", o.wait,
                  kQuotesTopic.data(), kTradesTopic.data(), o.bus.c_str());
      said = true;
    }
    if (g_stop.load() || std::chrono::steady_clock::now() >= deadline) {
      throw shmbus::Error(shmbus::Errc::NoSuchTopic,
                          "bus '" + o.bus + "' has no topics " + std::string(kQuotesTopic) + " and " +
                              std::string(kTradesTopic) + (g_stop.load() ? " (stopped while waiting)" : "") +
                              " after waiting " + std::to_string(static_cast<int>(o.wait)) +
                              " s; start shmbus-feed on that bus, or raise --wait");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

nlohmann::json latency_json(const shmbus::Histogram& h) {
  nlohmann::json j;
  j["count"] = h.count();
  j["min"] = h.min();
  j["p50"] = h.percentile(50);
  j["p90"] = h.percentile(90);
  j["p99"] = h.percentile(99);
  j["p99_9"] = h.percentile(99.9);
  j["max"] = h.max();
  j["mean"] = h.mean();
  j["relative_error"] = shmbus::Histogram::kRelativeError;
  return j;
}

int run(const Options& o) {
  shmbus::Bus bus = shmbus::Bus::open_or_create(o.bus);
  wait_for_topics(bus, o);

  Windows windows;
  Model model(o, bus, windows);

  shmbus::DispatcherOptions dopt;
  dopt.name = o.name;
  dopt.idle = o.idle == "block" ? shmbus::Idle::Block : o.idle == "yield" ? shmbus::Idle::Yield : shmbus::Idle::Spin;
  dopt.cpu = o.cpu;
  shmbus::Dispatcher dispatcher(bus, dopt);
  dispatcher.on<shmbus::md::Quote>(kQuotesTopic, [&model](const shmbus::md::Quote& q, const shmbus::MessageMeta& m) {
    model.on_quote(q, m);
  });
  dispatcher.on<shmbus::md::Trade>(kTradesTopic, [&model](const shmbus::md::Trade& t, const shmbus::MessageMeta& m) {
    model.on_trade(t, m);
  });
  dispatcher.on_gap([&model](const shmbus::Gap& g) { model.on_gap(g); });

  std::printf("strategy: bus '%s', subscribed to %s and %s, publishing %s; idle %s, EWMA half-life %.3g s, "
              "threshold %.3g bps, clock %s%s\n",
              o.bus.c_str(), kQuotesTopic.data(), kTradesTopic.data(), kSignalsTopic.data(), o.idle.c_str(),
              o.ewma_halflife, o.threshold_bps, bus.clock().uses_tsc() ? "TSC" : "CLOCK_REALTIME",
              o.cpu >= 0 ? (", dispatcher pinned to CPU " + std::to_string(o.cpu)).c_str() : "");

  const auto start = std::chrono::steady_clock::now();
  const auto end = o.duration > 0 ? start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
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
    const shmbus::Histogram& h = w.latency;
    std::printf("strategy: %3d s  recv %8llu/s (q %llu, t %llu)  drops q %llu t %llu  signals %llu (total %llu)  "
                "latency p50 %s p99 %s max %s | run p50 %s p99 %s max %s\n",
                second, static_cast<unsigned long long>(w.quotes + w.trades),
                static_cast<unsigned long long>(w.quotes), static_cast<unsigned long long>(w.trades),
                static_cast<unsigned long long>(w.quote_drops), static_cast<unsigned long long>(w.trade_drops),
                static_cast<unsigned long long>(w.signals), static_cast<unsigned long long>(total.signals),
                human_ns(h.percentile(50)).c_str(), human_ns(h.percentile(99)).c_str(), human_ns(h.max()).c_str(),
                human_ns(total.latency.percentile(50)).c_str(), human_ns(total.latency.percentile(99)).c_str(),
                human_ns(total.latency.max()).c_str());
    w.reset();
  }
  dispatcher.stop();  // joins: everything the dispatcher thread wrote is ours now
  total.add(windows.swap());
  total.add(windows.swap());
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const std::uint64_t received = total.quotes + total.trades;
  const shmbus::Histogram& h = total.latency;
  std::printf("strategy: done after %.2f s%s: received %llu messages (%llu quotes, %llu trades), %.0f msg/s average\n",
              elapsed, g_stop.load() ? " (signal)" : "", static_cast<unsigned long long>(received),
              static_cast<unsigned long long>(total.quotes), static_cast<unsigned long long>(total.trades),
              elapsed > 0 ? static_cast<double>(received) / elapsed : 0.0);
  const auto seqs = [](const SeqRange& r) {
    return r.first == 0 ? std::string("none") : std::to_string(r.first) + ".." + std::to_string(r.last);
  };
  std::printf("strategy: drops: %s %llu messages in %llu gaps (seq %s), %s %llu messages in %llu gaps (seq %s); "
              "bus total %llu\n",
              kQuotesTopic.data(), static_cast<unsigned long long>(total.quote_drops),
              static_cast<unsigned long long>(total.quote_gaps), seqs(model.quote_seq()).c_str(), kTradesTopic.data(),
              static_cast<unsigned long long>(total.trade_drops), static_cast<unsigned long long>(total.trade_gaps),
              seqs(model.trade_seq()).c_str(), static_cast<unsigned long long>(dispatcher.drops()));
  std::printf("strategy: signals published %llu on %s (not published: %s)\n",
              static_cast<unsigned long long>(total.signals), kSignalsTopic.data(), failure_breakdown(total).c_str());
  std::printf("strategy: latency publish->handler over %llu messages: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  "
              "(mean %s, min %s; histogram error <= %.2f%%)\n",
              static_cast<unsigned long long>(h.count()), human_ns(h.percentile(50)).c_str(),
              human_ns(h.percentile(90)).c_str(), human_ns(h.percentile(99)).c_str(),
              human_ns(h.percentile(99.9)).c_str(), human_ns(h.max()).c_str(),
              human_ns(static_cast<std::uint64_t>(h.mean())).c_str(), human_ns(h.min()).c_str(),
              shmbus::Histogram::kRelativeError * 100);
  if (total.negative_ages != 0) {
    std::printf("strategy: %llu messages were read at a bus time before their publish stamp, by at most %s "
                "(clock reads on two CPUs); counted as 0 ns\n",
                static_cast<unsigned long long>(total.negative_ages), human_ns(total.most_negative_ns).c_str());
  }
  for (const SymbolState& s : model.states()) {
    std::printf("strategy:   %-8s mid %10.4f  ewma %10.4f (%+6.2f bps)  vwap %10.4f  quotes %9llu  trades %8llu  "
                "signals %5llu  view %s\n",
                s.symbol.c_str(), s.mid, s.ewma, s.deviation_bps(), s.vwap(),
                static_cast<unsigned long long>(s.quotes), static_cast<unsigned long long>(s.trades),
                static_cast<unsigned long long>(s.signals),
                s.position > 0 ? "long" : s.position < 0 ? "short" : "flat");
  }

  if (!o.json.empty()) {
    nlohmann::json j;
    j["bus"] = o.bus;
    j["duration_s"] = elapsed;
    j["stopped_by_signal"] = g_stop.load();
    j["idle"] = o.idle;
    j["clock"] = bus.clock().uses_tsc() ? "tsc" : "realtime";
    j["received"] = {{"total", received},
                     {std::string(kQuotesTopic), total.quotes},
                     {std::string(kTradesTopic), total.trades}};
    j["rate_msgs_per_s"] = elapsed > 0 ? static_cast<double>(received) / elapsed : 0.0;
    j["drops"] = {{"total", total.quote_drops + total.trade_drops},
                  {std::string(kQuotesTopic), {{"messages", total.quote_drops}, {"gaps", total.quote_gaps}}},
                  {std::string(kTradesTopic), {{"messages", total.trade_drops}, {"gaps", total.trade_gaps}}}};
    const auto seq_json = [](const SeqRange& r) { return nlohmann::json{{"first", r.first}, {"last", r.last}}; };
    j["seq"] = {{std::string(kQuotesTopic), seq_json(model.quote_seq())},
                {std::string(kTradesTopic), seq_json(model.trade_seq())}};
    nlohmann::json failures = nlohmann::json::object();
    for (std::size_t i = 1; i < total.signal_failures.size(); ++i) {
      if (total.signal_failures[i] != 0)
        failures[std::string(shmbus::to_string(static_cast<shmbus::PublishResult>(i)))] = total.signal_failures[i];
    }
    j["signals"] = {{"published", total.signals}, {"not_published", total.signals_failed()}, {"failures", failures}};
    j["latency_ns"] = latency_json(h);
    j["negative_ages"] = {{"count", total.negative_ages}, {"most_negative_ns", total.most_negative_ns}};
    j["params"] = {{"ewma_halflife_s", o.ewma_halflife}, {"threshold_bps", o.threshold_bps}};
    nlohmann::json symbols = nlohmann::json::array();
    for (const SymbolState& s : model.states()) {
      symbols.push_back({{"symbol", s.symbol},
                         {"mid", s.mid},
                         {"ewma", s.ewma},
                         {"vwap", s.vwap()},
                         {"quotes", s.quotes},
                         {"trades", s.trades},
                         {"signals", s.signals},
                         {"position", s.position}});
    }
    j["symbols"] = symbols;
    std::ofstream out(o.json);
    out << j.dump(2) << '\n';
    out.close();
    if (!out) {
      throw shmbus::Error(shmbus::Errc::SystemError, "cannot write the JSON summary to '" + o.json + "'");
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one line at a time, also into a pipe or file

  Options o;
  CLI::App app{"shmbus-strategy: EWMA mean-reversion on md.quotes/md.trades, signals on 'signals', latency figures"};
  app.add_option("--bus", o.bus, "Bus name (created if missing)")->capture_default_str();
  app.add_option("--duration", o.duration, "Seconds to run once subscribed; 0 = until SIGINT/SIGTERM")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--cpu", o.cpu, "Pin the dispatcher thread to this CPU (-1: no pinning)")->capture_default_str();
  app.add_option("--idle", o.idle, "When no message is ready: spin (lowest latency, burns a core), yield, or block")
      ->check(CLI::IsMember({"spin", "yield", "block"}))
      ->capture_default_str();
  app.add_option("--ewma-halflife", o.ewma_halflife, "Half-life of the mid-price EWMA, in seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--threshold-bps", o.threshold_bps, "Deviation of mid from its EWMA that triggers a signal, bps")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--wait", o.wait, "Seconds to wait for the feed to create md.quotes and md.trades")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--json", o.json, "Write the final figures as JSON to this file");
  app.add_option("--name", o.name, "Consumer/publisher name shown by bus-inspect")->capture_default_str();
  app.add_option("--strategy-id", o.strategy_id, "strategy_id stamped on every signal")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  demo::stop_on_signals();
  return demo::run_reporting_errors("shmbus-strategy", [&] { return run(o); });
}
