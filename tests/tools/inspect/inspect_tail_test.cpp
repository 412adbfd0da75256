// bus-inspect tail: the last messages decoded, raw topics as bytes, --follow with
// gap lines, and the observer's promises (read-only, never gates a producer).
#include <signal.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "inspect_harness.hpp"

namespace shmbus::test {
namespace {

using namespace std::chrono_literals;

TEST(BusInspectTail, DecodesTheLastMessagesATestPublisherWrote) {
  TestBus tb;
  Agent feed;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 64 feed-under-test");
  const std::int64_t before = Clock::wall_ns();
  feed.ok("send 5");
  const std::int64_t after = Clock::wall_ns();

  const Result r = inspect({"tail", tb.name(), "md.quotes", "-n", "3"});
  ASSERT_EQ(r.code, 0) << r;
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 3u) << r;
  for (std::size_t i = 0; i < 3; ++i) {
    const Json m = Json::parse(lines[i]);
    const std::uint64_t seq = 3 + i;
    EXPECT_EQ(m.at("topic"), "md.quotes");
    EXPECT_EQ(m.at("seq"), seq);
    EXPECT_EQ(m.at("type"), "shmbus.md.Quote");
    EXPECT_EQ(m.at("producer"), feed.pid());
    EXPECT_GE(m.at("ts").get<std::int64_t>(), before - 50'000'000)
        << "the bus clock follows the wall clock";
    EXPECT_LE(m.at("ts").get<std::int64_t>(), after + 50'000'000);
    EXPECT_EQ(m.at("time").get<std::string>().size(), 30u) << m.at("time");
    const Json& d = m.at("data");
    EXPECT_EQ(d.at("symbol"), "SYM");
    EXPECT_EQ(d.at("venue"), "XTST");
    EXPECT_EQ(d.at("instrument_id"), seq);
    EXPECT_DOUBLE_EQ(d.at("bid_px").get<double>(), static_cast<double>(seq) + 0.25);
    EXPECT_DOUBLE_EQ(d.at("ask_qty").get<double>(), 200.0);
  }
  const Result all = inspect({"tail", tb.name(), "md.quotes", "-n", "100"});
  EXPECT_EQ(lines_of(all.out).size(), 5u) << "no more than there is\n" << all;
  const Result none = inspect({"tail", tb.name(), "md.quotes", "-n", "0"});
  EXPECT_EQ(none.code, 0);
  EXPECT_TRUE(none.out.empty()) << none;
  const Result dflt = inspect({"tail", tb.name(), "md.quotes"});
  EXPECT_EQ(lines_of(dflt.out).size(), 5u) << dflt;

  // Reading left no trace: no consumer entry was taken.
  const Json j = inspect_json({"list", tb.name(), "--no-rate"});
  EXPECT_TRUE(topic_in(j, "md.quotes").at("consumers").empty()) << j.dump();
}

TEST(BusInspectTail, RawTopicsShowTheirBytes) {
  TestBus tb;
  // The project's test helper process publishes 5 raw self-checking payloads and exits.
  const char* testproc = std::getenv("SHMBUS_TESTPROC");
  ASSERT_NE(testproc, nullptr);
  const Result p = run({testproc, "produce", tb.name(), "raw.data", "5", "lossy", "64"});
  ASSERT_EQ(p.code, 0) << p;
  const Result r = inspect({"tail", tb.name(), "raw.data", "-n", "5"});
  ASSERT_EQ(r.code, 0) << r;
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 5u) << r;
  const Json first = Json::parse(lines[0]);
  EXPECT_EQ(first.at("type"), "");
  EXPECT_EQ(first.at("size"), 64);
  EXPECT_FALSE(first.contains("data"));
  // The base64 decodes to exactly what testproc wrote.
  std::vector<std::byte> want(64);
  fill_payload(want.data(), want.size(), 1);
  std::string b64 = first.at("base64");
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::vector<std::byte> got;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : b64) {
    if (c == '=') break;
    acc = (acc << 6) | static_cast<std::uint32_t>(kAlphabet.find(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      got.push_back(static_cast<std::byte>((acc >> bits) & 0xff));
    }
  }
  EXPECT_EQ(got, want);
  EXPECT_FALSE(first.contains("correlation")) << "no correlation on message 1";
  EXPECT_EQ(Json::parse(lines[4]).at("correlation"), 0xE0F) << "testproc's end marker is shown";

  const Result h = inspect({"tail", tb.name(), "raw.data", "-n", "1", "--hex"});
  std::vector<std::byte> last(64);
  fill_payload(last.data(), last.size(), 5);
  EXPECT_EQ(Json::parse(lines_of(h.out).at(0)).at("hex"), hex(last)) << h;
}

TEST(BusInspectTail, FollowPrintsNewMessagesAndAGapWhenLapped) {
  TestBus tb;
  Agent feed;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 8 feed-under-test");
  feed.ok("send 3");
  Proc tail({exe(), "tail", tb.name(), "md.quotes", "-n", "2", "--follow"});
  // The backlog proves it is attached; what follows must come live.
  for (std::uint64_t seq : {2u, 3u}) {
    const auto l = tail.line();
    ASSERT_TRUE(l.has_value());
    EXPECT_EQ(Json::parse(*l).at("seq"), seq);
  }
  feed.ok("send 2");
  for (std::uint64_t seq : {4u, 5u}) {
    const auto l = tail.line();
    ASSERT_TRUE(l.has_value());
    EXPECT_EQ(Json::parse(*l).at("seq"), seq);
    EXPECT_EQ(Json::parse(*l).at("data").at("instrument_id"), seq);
  }
  // Stopped, it falls a whole ring behind; resumed, it says what it lost.
  tail.signal(SIGSTOP);
  feed.ok("send 30");  // 6..35 into a ring of 8
  tail.signal(SIGCONT);
  const auto g = tail.line();
  ASSERT_TRUE(g.has_value());
  const Json gap = Json::parse(*g);
  ASSERT_TRUE(gap.contains("gap")) << *g;
  EXPECT_EQ(gap.at("gap").at("topic"), "md.quotes");
  EXPECT_EQ(gap.at("gap").at("first"), 6);
  const std::uint64_t resume = 6 + gap.at("gap").at("count").get<std::uint64_t>();
  EXPECT_GE(resume, 35u - 8u + 1u) << "only what the ring no longer holds is reported lost";
  for (std::uint64_t seq = resume; seq <= 35; ++seq) {
    const auto l = tail.line();
    ASSERT_TRUE(l.has_value()) << "waiting for " << seq;
    EXPECT_EQ(Json::parse(*l).at("seq"), seq) << *l;
  }
  tail.signal(SIGTERM);
  EXPECT_EQ(tail.wait_exit(), 128 + SIGTERM);
}

// An idle follower stays up on its read-only mapping, where any write would be
// SIGSEGV. A registered consumer's idle path writes shared memory (its
// heartbeat, the sleeper count, the clock anchor once it is a second old); an
// observer writes nothing and waits by polling, and this holds it to that past
// the clock's re-anchoring period.
TEST(BusInspectTail, IdleFollowOnAReadOnlyMappingStaysUp) {
  TestBus tb;
  Agent feed;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 64 feed-under-test");
  feed.ok("send 1");
  Proc tail({exe(), "tail", tb.name(), "md.quotes", "-n", "1", "--follow"});
  ASSERT_TRUE(tail.line().has_value()) << "attached";
  // Deliberately idle for longer than the clock's re-anchoring period.
  std::this_thread::sleep_for(1500ms);
  feed.ok("send 1");
  const auto l = tail.line();
  ASSERT_TRUE(l.has_value()) << "tail died while idle";
  EXPECT_EQ(Json::parse(*l).at("seq"), 2);
}

TEST(BusInspectTail, NeverGatesAReliableProducer) {
  TestBus tb;
  Agent oms;
  oms.ok("publisher " + tb.name() + " orders quote reliable 8 oms-under-test");
  oms.ok("send 1");
  Proc tail({exe(), "tail", tb.name(), "orders", "-n", "1", "--follow"});
  ASSERT_TRUE(tail.line().has_value()) << "attached";
  tail.signal(SIGSTOP);  // a reader that reads nothing
  // Three rings' worth without waiting: nothing holds the producer up.
  EXPECT_EQ(field(oms.ok("try 24"), "would_block"), "0");
  const Json j = inspect_json({"list", tb.name(), "--no-rate"});
  EXPECT_TRUE(topic_in(j, "orders").at("consumers").empty());
  EXPECT_EQ(topic_in(j, "orders").at("would_block"), 0);
  tail.signal(SIGCONT);
  const auto l = tail.line();
  ASSERT_TRUE(l.has_value());
  EXPECT_TRUE(Json::parse(*l).contains("gap")) << "an observer may be lapped, and says so: " << *l;
}

}  // namespace
}  // namespace shmbus::test
