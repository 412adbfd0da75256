// shmbus-strategy's model: EWMA mean reversion per symbol, on the dispatcher
// thread.
//
// Per symbol it keeps
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
// Every message's one-way latency, its counts and the gaps the bus reports go
// into the live Window (window.hpp); the first few gaps are also printed as
// they happen.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <shmbus/msg/md_quote_generated.h>
#include <shmbus/msg/md_trade_generated.h>
#include <shmbus/core/bus.hpp>
#include <shmbus/core/message.hpp>
#include <shmbus/core/publisher.hpp>

#include "options.hpp"
#include "window.hpp"

namespace demo::strategy {

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
  [[nodiscard]] double deviation_bps() const noexcept {
    return ewma > 0 ? (mid - ewma) / ewma * 1e4 : 0.0;
  }
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
  // Creates (or opens) the signals topic as its producer.
  Model(const Options& o, shmbus::Bus& bus, Windows& windows);

  void on_quote(const shmbus::md::Quote& q, const shmbus::MessageMeta& meta);
  void on_trade(const shmbus::md::Trade& t, const shmbus::MessageMeta& meta);
  void on_gap(const shmbus::Gap& g);

  // Read only once the dispatcher thread has been joined.
  [[nodiscard]] const std::vector<SymbolState>& states() const noexcept { return states_; }
  [[nodiscard]] const SeqRange& quote_seq() const noexcept { return quote_seq_; }
  [[nodiscard]] const SeqRange& trade_seq() const noexcept { return trade_seq_; }

 private:
  static constexpr int kNoSignal = 99;

  SymbolState& state(const flatbuffers::String* symbol, std::uint64_t instrument_id);
  void update_ewma(SymbolState& s, std::uint64_t ts) const noexcept;
  int decide(SymbolState& s) const noexcept;
  shmbus::PublishResult publish_signal(SymbolState& s, int view, const flatbuffers::String* venue,
                                       std::uint64_t source_ts);

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

}  // namespace demo::strategy
