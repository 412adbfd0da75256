#include "model.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string_view>
#include <utility>

#include <shmbus/msg/strategy_signal_generated.h>

namespace demo::strategy {
namespace {

constexpr std::string_view kModel = "ewma-meanrev/1";
// Gaps printed one by one as they happen; after that they are only counted.
constexpr std::uint64_t kGapLinesMax = 10;

// One-way latency of a message: MessageMeta::age_ns() reads the bus clock
// ordered after the loads that delivered the message (LFENCE; RDTSC), so the
// age is never read before the message has arrived.
std::int64_t age_ns(const shmbus::MessageMeta& meta) noexcept {
  return meta.age_ns();
}

shmbus::Publisher make_signal_publisher(shmbus::Bus& bus, const Options& o) {
  shmbus::TopicConfig cfg;
  cfg.policy = shmbus::Policy::Reliable;
  cfg.slot_size = 512;  // ids, symbol, venue and model name: ~250 B
  cfg.slot_count = 4096;
  shmbus::PublisherOptions po;
  po.name = o.name;
  return bus.publisher<shmbus::strategy::Signal>(kSignalsTopic, cfg, po);
}

void record_age(Window& w, std::int64_t age) noexcept {
  if (age < 0) {
    ++w.negative_ages;
    w.most_negative_ns = std::max(w.most_negative_ns, static_cast<std::uint64_t>(-age));
    age = 0;
  }
  w.latency.record(static_cast<std::uint64_t>(age));
}

void count_signal(Window& w, shmbus::PublishResult r) noexcept {
  if (r == shmbus::PublishResult::Ok) {
    ++w.signals;
  } else {
    w.signal_failures.count(r);
  }
}

}  // namespace

Model::Model(const Options& o, shmbus::Bus& bus, Windows& windows)
    : opt_(o),
      clock_(&bus.clock()),
      windows_(windows),
      signals_(make_signal_publisher(bus, o)),
      halflife_ns_(o.ewma_halflife * 1e9),
      fbb_(512) {
  states_.reserve(64);
}

void Model::on_quote(const shmbus::md::Quote& q, const shmbus::MessageMeta& meta) {
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

void Model::on_trade(const shmbus::md::Trade& t, const shmbus::MessageMeta& meta) {
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

void Model::on_gap(const shmbus::Gap& g) {
  const bool quotes = g.topic == kQuotesTopic;
  std::uint64_t nth = 0;
  windows_.update([&](Window& w) {
    ++(quotes ? w.quote_gaps : w.trade_gaps);
    (quotes ? w.quote_drops : w.trade_drops) += g.count;
  });
  nth = ++gap_lines_;
  if (nth <= kGapLinesMax) {
    std::printf(
        "strategy: GAP on %.*s: lost %llu messages (seq %llu..%llu), lapped by the producer%s\n",
        static_cast<int>(g.topic.size()), g.topic.data(), static_cast<unsigned long long>(g.count),
        static_cast<unsigned long long>(g.first),
        static_cast<unsigned long long>(g.first + g.count - 1),
        nth == kGapLinesMax ? "; further gaps are counted in the summaries only" : "");
  }
}

// Linear search: a strategy follows a handful of symbols, and this never
// allocates after a symbol's first message.
SymbolState& Model::state(const flatbuffers::String* symbol, std::uint64_t instrument_id) {
  const std::string_view name = symbol != nullptr ? symbol->string_view() : std::string_view{};
  for (SymbolState& s : states_)
    if (s.symbol == name) return s;
  SymbolState s;
  s.symbol = std::string(name);
  s.instrument_id = instrument_id;
  states_.push_back(std::move(s));
  return states_.back();
}

void Model::update_ewma(SymbolState& s, std::uint64_t ts) const noexcept {
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
int Model::decide(SymbolState& s) const noexcept {
  if (static_cast<double>(s.last_ts - s.first_ts) < halflife_ns_) return kNoSignal;  // warming up
  const double dev = s.deviation_bps();
  const double vwap = s.vwap();
  int view = s.position;
  if (s.position == 0) {
    if (dev > opt_.threshold_bps && (vwap == 0 || s.mid > vwap))
      view = -1;
    else if (dev < -opt_.threshold_bps && (vwap == 0 || s.mid < vwap))
      view = +1;
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

shmbus::PublishResult Model::publish_signal(SymbolState& s, int view,
                                            const flatbuffers::String* venue,
                                            std::uint64_t source_ts) {
  const double dev = s.deviation_bps();
  fbb_.Clear();
  const auto strategy_id = fbb_.CreateString(opt_.strategy_id);
  const auto symbol = fbb_.CreateString(s.symbol);
  const auto venue_str =
      fbb_.CreateString(venue != nullptr ? venue->string_view() : std::string_view{});
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

}  // namespace demo::strategy
