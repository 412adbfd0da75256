// Values from shared memory after open: a scribbled segment gives a named
// error, a counted fallback or is ignored (fixed at open) — never a crash, a
// hang or a read outside the mapping (layout.hpp, "Values from shared memory").
#include <x86intrin.h>

#include <climits>

#include "fault_util.hpp"
#include "shmbus/core/internals.hpp"
#include "shmbus/messages.hpp"
#include "shmbus/schema/json_codec.hpp"

namespace shmbus::test {
namespace {

using namespace std::chrono_literals;

detail::ClockBlock& clock_block(const Bus& bus) {
  return detail::Internals::state(bus)->header->clock;
}

// A clock anchor left odd (its writer killed mid-update, or a stray write)
// must not make readers spin: to_ns() falls back and counts it.
TEST(FaultHostile, ClockAnchorLeftOddDoesNotHangReaders) {
  ScopedBus sb("fh");
  Bus bus = sb.open();
  if (!bus.clock().uses_tsc())
    GTEST_SKIP() << "this host's bus clock is the wall clock (no anchors)";
  detail::ClockBlock& c = clock_block(bus);
  for (auto& a : c.anchors) a.version.fetch_or(1);
  Child child([&](Child& self) {
    const std::uint64_t before = Clock::fallbacks();
    const std::int64_t ns = bus.clock().to_ns(__rdtsc());
    const std::int64_t wall = Clock::wall_ns();
    self.report(std::to_string(Clock::fallbacks() - before) + " " + std::to_string(ns - wall));
    // Within a second of the wall clock: the fallback uses the rate copied at open.
    return Clock::fallbacks() - before == 1 && std::llabs(ns - wall) < 1'000'000'000 ? 0 : 1;
  });
  const auto line = child.line(10s);
  EXPECT_EQ(child.wait(10s), 0) << "to_ns() on an odd anchor: "
                                << line.value_or("hung (killed after 10 s)");
}

// Absurd anchors saturate instead of overflowing (UBSan checks this build).
TEST(FaultHostile, HostileClockAnchorSaturates) {
  ScopedBus sb("fh");
  Bus bus = sb.open();
  if (!bus.clock().uses_tsc())
    GTEST_SKIP() << "this host's bus clock is the wall clock (no anchors)";
  detail::ClockBlock& c = clock_block(bus);
  auto& a = c.anchors[c.current.load() & 1u];
  const std::uint64_t v = a.version.load();
  a.version.store(v + 1);
  a.ns.store(INT64_MAX);
  a.tsc.store(0);
  a.version.store(v + 2);
  EXPECT_EQ(bus.clock().to_ns(std::uint64_t{1} << 62), INT64_MAX);
  // An absurd rate is not used at all.
  a.version.store(v + 3);
  a.ns.store(0);
  a.ns_per_tick_q32.store(~std::uint64_t{0});
  a.version.store(v + 4);
  const std::uint64_t before = Clock::fallbacks();
  const std::int64_t ns = bus.clock().to_ns(__rdtsc());
  EXPECT_EQ(Clock::fallbacks(), before + 1);
  EXPECT_LT(std::llabs(ns - Clock::wall_ns()), 1'000'000'000);
}

// A wall clock stepped backwards keeps the calibrated rate (it used to fall
// back to 1 ns per tick, reading latencies 2-3x too long).
TEST(FaultHostile, ClockStepBackwardsKeepsTheRate) {
  ScopedBus sb("fh");
  Bus bus = sb.open();
  if (!bus.clock().uses_tsc())
    GTEST_SKIP() << "this host's bus clock is the wall clock (no anchors)";
  detail::ClockBlock& c = clock_block(bus);
  const unsigned cur = c.current.load() & 1u;
  const std::uint64_t rate = c.anchors[cur].ns_per_tick_q32.load();
  // As if the wall clock had been stepped back an hour since the base point,
  // and the current anchor were old enough to be refreshed.
  c.base_ns += 3'600'000'000'000LL;
  auto& a = c.anchors[cur];
  const std::uint64_t v = a.version.load();
  a.version.store(v + 1);
  a.tsc.store(a.tsc.load() - (std::uint64_t{1} << 40));
  a.version.store(v + 2);
  bus.clock().maybe_reanchor();
  ASSERT_NE(c.current.load() & 1u, cur) << "maybe_reanchor() did not re-anchor";
  const std::uint64_t after = c.anchors[c.current.load() & 1u].ns_per_tick_q32.load();
  EXPECT_EQ(after, rate) << "rate changed from " << rate << " to " << after << " (q32 ns per tick)";
}

// The stored schema is fixed at open: a later write to it changes nothing
// this process reads.
TEST(FaultHostile, StoredSchemaIsFixedAtOpen) {
  ScopedBus sb("fh");
  Bus bus = sb.open();
  Topic t = bus.topic<md::Quote>("md.q", config(Policy::Lossy, 16, 256));
  const std::vector<std::uint8_t> before(t.schema().begin(), t.schema().end());
  ASSERT_FALSE(before.empty());
  auto* seg = static_cast<std::uint8_t*>(detail::Internals::state(t)->segment.data());
  const auto& d = detail::Internals::state(t)->header->desc;
  for (std::uint32_t i = 0; i < d.schema_bytes; ++i) seg[d.schema_offset + i] ^= 0x5a;
  EXPECT_EQ(std::vector<std::uint8_t>(t.schema().begin(), t.schema().end()), before);
  JsonCodec codec(t.schema(), t.type_name());
  EXPECT_FALSE(codec.from_json(R"({"symbol":"AAPL"})").empty());
  // A second open of the scribbled topic takes this process's registry bytes
  // (it knows shmbus.md.Quote with the topic's hash), not the damaged ones.
  Topic again = bus.open_topic("md.q");
  EXPECT_EQ(std::vector<std::uint8_t>(again.schema().begin(), again.schema().end()), before);
}

// Stored bytes that do not hash to the topic's schema hash never reach the
// FlatBuffers parser: opening the topic is a named error.
TEST(FaultHostile, DamagedStoredSchemaIsANamedError) {
  ScopedBus sb("fh");
  Bus bus = sb.open();
  TopicConfig cfg = config(Policy::Lossy, 16, 256);
  cfg.type = type_of<md::Quote>();
  cfg.type.hash ^= 1;  // not what this process's registry has: the stored bytes must be checked
  cfg.type.bfbs[cfg.type.bfbs.size() / 2] ^= 0x10;
  try {
    (void)bus.topic("md.bad", cfg);
    FAIL() << "a topic with a damaged stored schema was opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::ForeignSegment) << e.what();
    EXPECT_NE(std::string(e.what()).find("schema stored in its segment is damaged"),
              std::string::npos)
        << e.what();
  }
}

// The consumer table bound is the one checked at open: a high-water mark
// scribbled past it is clamped (no read outside the table).
TEST(FaultHostile, ScribbledConsumerHighWaterMarkIsClamped) {
  ScopedBus sb("fh");
  Bus bus = sb.open();
  Publisher pub = bus.publisher("orders", config(Policy::Reliable, 4, 64, 2));
  Subscriber s = bus.subscriber("orders");
  detail::Internals::state(bus.open_topic("orders"))
      ->header->registry.consumer_hwm.store(0xffffffffu);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(pub.try_publish(as_bytes("x", 1)), PublishResult::Ok);
  EXPECT_EQ(pub.try_publish(as_bytes("x", 1)), PublishResult::WouldBlock);
  EXPECT_EQ(pub.publish(as_bytes("x", 1), 20ms), PublishResult::Timeout);
}

// A slot's size word beyond the slot is clamped to the slot's capacity.
TEST(FaultHostile, ScribbledSlotSizeIsClamped) {
  ScopedBus sb("fh");
  Bus bus = sb.open();
  Publisher pub = bus.publisher("md", config(Policy::Lossy, 4, 64));
  Subscriber s = bus.subscriber("md");
  ASSERT_EQ(pub.try_publish(as_bytes("abcd", 4)), PublishResult::Ok);
  auto st = detail::Internals::state(bus.open_topic("md"));
  auto* slot = reinterpret_cast<detail::SlotHeader*>(st->slots + 64);  // sequence 1
  slot->size.store(0xfffffff0u);
  std::size_t got = 0;
  EXPECT_EQ(s.poll([&](const Message& m) { got = m.data.size(); }), 1u);
  EXPECT_EQ(got, 32u);
}

}  // namespace
}  // namespace shmbus::test
