// shmbus-feed's market: a few instruments whose mid prices follow a random
// walk in time, quoted and traded on four venue channels, published as
// shmbus.md.Quote on md.quotes and shmbus.md.Trade on md.trades.
//
// Each symbol's mid follows geometric Brownian motion over the time since it
// last moved (volatility --vol-bps per square-root second); the spread is one
// to a few ticks; sizes are round lots with some odd-lot prints; every venue
// channel numbers its events; each event carries a venue time a few
// microseconds before its receive time.
//
// Both topics are lossy: a feed never waits for its readers. A publish that
// is not Ok is counted per reason, never ignored.
//
// Messages are written with shmbus::MessageWriter, the library's typed hot
// path: each topic's message is laid out once, each field is a handle
// resolved once, and a quote is then ~160 instructions of stores (both
// strings included) where a FlatBufferBuilder spends ~920 (BENCHMARKS.md).
// What subscribers read is an ordinary Quote or Trade.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <shmbus/msg/md_quote_generated.h>
#include <shmbus/msg/md_trade_generated.h>
#include <shmbus/core/bus.hpp>
#include <shmbus/core/message_writer.hpp>
#include <shmbus/core/publisher.hpp>

#include "../demo_common.hpp"
#include "options.hpp"

namespace demo::feed {

// 256 B slots (224 B of payload): with 4-letter symbols a quote is ~150 B
// and a trade under 200 B; checked at start-up against the longest symbol.
inline constexpr std::uint32_t kSlotSize = 256;
inline constexpr std::int64_t kNsPerSec = 1'000'000'000;

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

// A writer of T and the handles of the fields the feed sets (resolved once).
struct QuoteWriter {
  using W = shmbus::MessageWriter<shmbus::md::Quote>;
  using Q = shmbus::md::Quote;
  W w;
  W::String symbol = w.string(Q::VT_SYMBOL), venue = w.string(Q::VT_VENUE);
  W::Scalar<std::uint64_t> instrument_id = w.scalar<std::uint64_t>(Q::VT_INSTRUMENT_ID),
                           exchange_ts = w.scalar<std::uint64_t>(Q::VT_EXCHANGE_TS),
                           receive_ts = w.scalar<std::uint64_t>(Q::VT_RECEIVE_TS),
                           seq = w.scalar<std::uint64_t>(Q::VT_SEQ);
  W::Scalar<double> bid_px = w.scalar<double>(Q::VT_BID_PX),
                    bid_qty = w.scalar<double>(Q::VT_BID_QTY),
                    ask_px = w.scalar<double>(Q::VT_ASK_PX),
                    ask_qty = w.scalar<double>(Q::VT_ASK_QTY);
  W::Scalar<std::uint32_t> bid_orders = w.scalar<std::uint32_t>(Q::VT_BID_ORDERS),
                           ask_orders = w.scalar<std::uint32_t>(Q::VT_ASK_ORDERS);
};
struct TradeWriter {
  using W = shmbus::MessageWriter<shmbus::md::Trade>;
  using T = shmbus::md::Trade;
  W w;
  W::String symbol = w.string(T::VT_SYMBOL), venue = w.string(T::VT_VENUE),
            trade_id = w.string(T::VT_TRADE_ID), conditions = w.string(T::VT_CONDITIONS);
  W::Scalar<std::uint64_t> instrument_id = w.scalar<std::uint64_t>(T::VT_INSTRUMENT_ID),
                           exchange_ts = w.scalar<std::uint64_t>(T::VT_EXCHANGE_TS),
                           receive_ts = w.scalar<std::uint64_t>(T::VT_RECEIVE_TS),
                           seq = w.scalar<std::uint64_t>(T::VT_SEQ);
  W::Scalar<double> price = w.scalar<double>(T::VT_PRICE), qty = w.scalar<double>(T::VT_QTY);
  W::Scalar<shmbus::common::Side> aggressor = w.scalar<shmbus::common::Side>(T::VT_AGGRESSOR);
};

class Feed {
 public:
  // Creates (or opens) both topics as their producer. Throws shmbus::Error if
  // the longest symbol's messages would not fit a slot.
  Feed(const Options& o, shmbus::Bus& bus);

  // Publishes one event (a quote, or with probability trade_share a trade).
  void publish_one(std::int64_t now_steady) noexcept;

  [[nodiscard]] std::uint64_t published() const noexcept { return quotes_sent_ + trades_sent_; }
  [[nodiscard]] std::uint64_t quotes() const noexcept { return quotes_sent_; }
  [[nodiscard]] std::uint64_t trades() const noexcept { return trades_sent_; }
  [[nodiscard]] std::uint64_t failed() const noexcept { return failures_.total(); }
  // "too_large 3, would_block 1" or "none".
  [[nodiscard]] std::string failure_breakdown() const { return failures_.breakdown(); }
  [[nodiscard]] const std::vector<Instrument>& instruments() const noexcept { return instruments_; }
  [[nodiscard]] std::uint32_t quote_slots() const noexcept { return quotes_.topic().slot_count(); }
  // Live registered subscribers on the emptier of the two topics (a snapshot; allocates).
  [[nodiscard]] std::size_t consumers() const;
  // Size of the largest quote / trade this run publishes (checked at start).
  [[nodiscard]] std::size_t quote_bytes() const noexcept { return quote_bytes_; }
  [[nodiscard]] std::size_t trade_bytes() const noexcept { return trade_bytes_; }

 private:
  void check_sizes();
  void count(shmbus::PublishResult r, std::uint64_t& ok_counter) noexcept;
  void move(Instrument& in, std::int64_t now_steady) noexcept;
  [[nodiscard]] double round_lot() noexcept;
  [[nodiscard]] std::uint64_t spread_ticks() noexcept;
  void stamps(std::uint64_t& exchange_ts, std::uint64_t& receive_ts) noexcept;
  // False: the message would not fit the writer (a symbol past its
  // max_size(); never for symbols check_sizes() accepted).
  template <class EventWriter>
  [[nodiscard]] bool set_event(EventWriter& e, const Instrument& in, Venue& v) noexcept;
  [[nodiscard]] bool build_quote(const Instrument& in, Venue& v) noexcept;
  [[nodiscard]] bool build_trade(const Instrument& in, Venue& v) noexcept;

  const Options& opt_;
  const shmbus::Clock* clock_;
  shmbus::Publisher quotes_;
  shmbus::Publisher trades_;
  std::mt19937_64 rng_;
  std::normal_distribution<double> normal_{0.0, 1.0};
  std::uniform_real_distribution<double> unit_{0.0, 1.0};
  std::uniform_int_distribution<std::uint64_t> pick_{0, ~std::uint64_t{0}};
  QuoteWriter quote_;
  TradeWriter trade_;
  std::vector<Instrument> instruments_;
  std::array<Venue, 4> venues_{{{"XNAS"}, {"XNYS"}, {"ARCX"}, {"BATS"}}};
  std::uint64_t quotes_sent_ = 0;
  std::uint64_t trades_sent_ = 0;
  PublishFailures failures_;
  std::size_t quote_bytes_ = 0;
  std::size_t trade_bytes_ = 0;
};

}  // namespace demo::feed
