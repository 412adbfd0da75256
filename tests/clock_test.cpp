// The bus clock: raw stamps convert to wall-clock nanoseconds, identically
// in every process of the bus.
#include <thread>

#include "shmbus/core/internals.hpp"
#include "test_util.hpp"

namespace shmbus::test {
namespace {

TEST(Clock, BusTimeTracksTheWallClock) {
  ScopedBus sb;
  Bus bus = sb.open();
  const std::int64_t wall = Clock::wall_ns();
  const std::int64_t bus_now = bus.clock().now_ns();
  EXPECT_LT(std::llabs(bus_now - wall), 1'000'000) << "within 1 ms of CLOCK_REALTIME";
}

TEST(Clock, IsMonotonicOverShortIntervalsAndMeasuresElapsedTime) {
  ScopedBus sb;
  Bus bus = sb.open();
  const Clock& c = bus.clock();
  std::int64_t prev = c.now_ns();
  for (int i = 0; i < 100000; ++i) {
    const std::int64_t now = c.now_ns();
    ASSERT_GE(now, prev);
    prev = now;
  }
  const std::int64_t a = c.now_ns();
  const std::int64_t w0 = Clock::wall_ns();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::int64_t b = c.now_ns();
  const std::int64_t w1 = Clock::wall_ns();
  EXPECT_NEAR(static_cast<double>(b - a), static_cast<double>(w1 - w0), 200'000.0);
}

TEST(Clock, TwoOpenersOfABusConvertAStampToTheSameTime) {
  ScopedBus sb;
  Bus a = sb.open();
  Bus b = Bus::open(sb.name());
  const std::uint64_t raw = a.clock().raw_now();
  EXPECT_EQ(a.clock().to_ns(raw), b.clock().to_ns(raw));
  EXPECT_EQ(a.clock().uses_tsc(), b.clock().uses_tsc());
}

TEST(Clock, RawSpanIsADurationInStampUnits) {
  ScopedBus sb;
  Bus bus = sb.open();
  const Clock& c = bus.clock();
  const std::uint64_t raw = c.raw_now();
  const std::uint64_t span = c.raw_span(1'000'000'000);
  EXPECT_NEAR(static_cast<double>(c.to_ns(raw + span) - c.to_ns(raw)), 1e9, 1e6)
      << "1 s there and back";
  EXPECT_EQ(c.raw_span(0), 0u);
  // Saturates instead of wrapping (a TSC of >= 1 GHz has more ticks than ns).
  EXPECT_EQ(c.raw_span(~std::uint64_t{0}), ~std::uint64_t{0});
}

TEST(Clock, ReanchoringKeepsConversionContinuous) {
  ScopedBus sb;
  Bus bus = sb.open();
  const Clock& c = bus.clock();
  if (!c.uses_tsc())
    GTEST_SKIP() << "this host's clocksource is not a trusted TSC: stamps are wall-clock ns";
  auto& block = detail::Internals::state(bus)->header->clock;
  const std::uint64_t raw = c.raw_now();
  const std::int64_t before = c.to_ns(raw);
  // Age the current anchor by 3 s, keeping its mapping (move the point
  // back along its own line), so the next call re-anchors.
  const unsigned cur = block.current.load();
  auto& a = block.anchors[cur];
  const std::uint64_t mult = a.ns_per_tick_q32.load();
  const auto ticks =
      static_cast<std::uint64_t>((static_cast<detail::uint128>(3'000'000'000ULL) << 32) / mult);
  a.version.fetch_add(1);
  a.tsc.fetch_sub(ticks);
  a.ns.fetch_sub(static_cast<std::int64_t>((static_cast<detail::uint128>(ticks) * mult) >> 32));
  a.version.fetch_add(1);
  EXPECT_LT(std::llabs(c.to_ns(raw) - before), 1000)
      << "aging the anchor along its line keeps the mapping";
  c.maybe_reanchor();
  EXPECT_NE(block.current.load(), cur) << "re-anchored into the other anchor";
  const std::int64_t after = c.to_ns(raw);
  EXPECT_LT(std::llabs(after - before), 100'000)
      << "an old stamp maps to (nearly) the same time after re-anchoring";
  EXPECT_LT(std::llabs(c.now_ns() - Clock::wall_ns()), 1'000'000)
      << "back on the wall clock after re-anchoring";
}

}  // namespace
}  // namespace shmbus::test
