#include "market.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string_view>

#include <shmbus/admin/snapshot.hpp>
#include <shmbus/error.hpp>

namespace demo::feed {
namespace {

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

template <class T>
shmbus::Publisher make_publisher(shmbus::Bus& bus, std::string_view topic, const Options& o) {
  shmbus::TopicConfig cfg;
  cfg.policy = shmbus::Policy::Lossy;
  cfg.slot_size = kSlotSize;
  cfg.slot_count = o.slots;
  shmbus::PublisherOptions po;
  po.name = o.name;
  return bus.publisher<T>(topic, cfg, po);
}

}  // namespace

Feed::Feed(const Options& o, shmbus::Bus& bus)
    : opt_(o),
      clock_(&bus.clock()),
      quotes_(make_publisher<shmbus::md::Quote>(bus, kQuotesTopic, o)),
      trades_(make_publisher<shmbus::md::Trade>(bus, kTradesTopic, o)),
      rng_(o.seed) {
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

void Feed::publish_one(std::int64_t now_steady) noexcept {
  Instrument& in = instruments_[pick_(rng_) % instruments_.size()];
  Venue& v = venues_[pick_(rng_) % venues_.size()];
  move(in, now_steady);
  if (unit_(rng_) < opt_.trade_share) {
    count(build_trade(in, v) ? trade_.w.try_publish(trades_) : shmbus::PublishResult::TooLarge,
          trades_sent_);
  } else {
    count(build_quote(in, v) ? quote_.w.try_publish(quotes_) : shmbus::PublishResult::TooLarge,
          quotes_sent_);
  }
}

std::size_t Feed::consumers() const {
  const auto live = [](const shmbus::Topic& t) {
    const shmbus::TopicSnapshot snap = shmbus::snapshot(t);
    return static_cast<std::size_t>(
        std::count_if(snap.consumers.begin(), snap.consumers.end(),
                      [](const shmbus::ConsumerSnapshot& c) { return c.alive && !c.joining; }));
  };
  return std::min(live(quotes_.topic()), live(trades_.topic()));
}

// The largest messages this run can produce must fit the slots: refuse to
// start, rather than count TooLarge on every message.
void Feed::check_sizes() {
  Instrument longest = *std::max_element(
      instruments_.begin(), instruments_.end(),
      [](const Instrument& a, const Instrument& b) { return a.symbol.size() < b.symbol.size(); });
  Venue v{"XXXX", 0, ~std::uint64_t{0} - 1};  // the longest trade id
  const bool fits = build_quote(longest, v) && build_trade(longest, v);
  quote_bytes_ = quote_.w.size();
  trade_bytes_ = trade_.w.size();
  const std::size_t room = quotes_.max_payload();
  if (!fits || quote_bytes_ > room || trade_bytes_ > trades_.max_payload()) {
    throw shmbus::Error(shmbus::Errc::InvalidArgument,
                        "symbol '" + longest.symbol + "' makes a " +
                            std::to_string(std::max(quote_bytes_, trade_bytes_)) +
                            "-byte message, more than the " + std::to_string(room) +
                            " bytes a slot of md.quotes/md.trades holds; use shorter symbols");
  }
}

void Feed::count(shmbus::PublishResult r, std::uint64_t& ok_counter) noexcept {
  if (r == shmbus::PublishResult::Ok) [[likely]] {
    ++ok_counter;
  } else {
    failures_.count(r);
  }
}

// Geometric Brownian motion over the time since the symbol last moved.
void Feed::move(Instrument& in, std::int64_t now_steady) noexcept {
  if (in.last_ns != 0) {
    const double dt = static_cast<double>(now_steady - in.last_ns) / static_cast<double>(kNsPerSec);
    const double sigma = opt_.vol_bps * 1e-4 * std::sqrt(std::max(dt, 0.0));
    in.mid = std::max(in.mid * std::exp(sigma * normal_(rng_)), 10 * in.tick);
  }
  in.last_ns = now_steady;
}

double Feed::round_lot() noexcept {
  return 100.0 * static_cast<double>(1 + pick_(rng_) % 20);
}

std::uint64_t Feed::spread_ticks() noexcept {
  const double u = unit_(rng_);
  return u < 0.6 ? 1 : u < 0.9 ? 2 : 3 + pick_(rng_) % 3;
}

// Venue time a few microseconds (wire + venue gateway) before receive time.
void Feed::stamps(std::uint64_t& exchange_ts, std::uint64_t& receive_ts) noexcept {
  const std::int64_t now = clock_->now_ns();
  receive_ts = static_cast<std::uint64_t>(now);
  exchange_ts =
      static_cast<std::uint64_t>(now - 5'000 - static_cast<std::int64_t>(pick_(rng_) % 45'000));
}

// The fields every event carries (the same names in Quote and Trade): the
// instrument, the venue channel's next sequence, and the stamps.
template <class EventWriter>
bool Feed::set_event(EventWriter& e, const Instrument& in, Venue& v) noexcept {
  std::uint64_t exchange_ts = 0;
  std::uint64_t receive_ts = 0;
  stamps(exchange_ts, receive_ts);
  e.w.set(e.instrument_id, in.id);
  e.w.set(e.exchange_ts, exchange_ts);
  e.w.set(e.receive_ts, receive_ts);
  e.w.set(e.seq, ++v.seq);
  return e.w.set(e.symbol, in.symbol) && e.w.set(e.venue, v.mic);
}

bool Feed::build_quote(const Instrument& in, Venue& v) noexcept {
  const auto ticks = spread_ticks();
  const double bid = std::floor(in.mid / in.tick - static_cast<double>(ticks) / 2.0) * in.tick;
  const double ask = bid + static_cast<double>(ticks) * in.tick;
  const double bid_qty = round_lot();
  const double ask_qty = round_lot();

  QuoteWriter& q = quote_;
  q.w.set(q.bid_px, bid);
  q.w.set(q.bid_qty, bid_qty);
  q.w.set(q.ask_px, ask);
  q.w.set(q.ask_qty, ask_qty);
  q.w.set(q.bid_orders, static_cast<std::uint32_t>(1 + bid_qty / 300.0));
  q.w.set(q.ask_orders, static_cast<std::uint32_t>(1 + ask_qty / 300.0));
  return set_event(q, in, v);
}

bool Feed::build_trade(const Instrument& in, Venue& v) noexcept {
  const auto ticks = spread_ticks();
  const double bid = std::floor(in.mid / in.tick - static_cast<double>(ticks) / 2.0) * in.tick;
  const bool buyer_aggressed = (pick_(rng_) & 1u) != 0;
  const double price = buyer_aggressed ? bid + static_cast<double>(ticks) * in.tick : bid;
  const bool odd_lot = unit_(rng_) < 0.3;
  const double qty = odd_lot ? static_cast<double>(1 + pick_(rng_) % 99) : round_lot();

  // "XNAS-123456": venue and its match number, formatted without allocating.
  std::array<char, 32> id{};
  std::size_t n = 0;
  for (const char* p = v.mic; *p != '\0' && n < 8; ++p) id[n++] = *p;
  id[n++] = '-';
  const auto res = std::to_chars(id.data() + n, id.data() + id.size(), ++v.trade_ids);
  n = static_cast<std::size_t>(res.ptr - id.data());

  TradeWriter& t = trade_;
  t.w.set(t.price, price);
  t.w.set(t.qty, qty);
  t.w.set(t.aggressor, buyer_aggressed ? shmbus::common::Side::Buy : shmbus::common::Side::Sell);
  return set_event(t, in, v) && t.w.set(t.trade_id, std::string_view(id.data(), n)) &&
         t.w.set(t.conditions, odd_lot ? "@  I" : "@");
}

}  // namespace demo::feed
