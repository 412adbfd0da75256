// bus-inspect list: producers, consumers, counts, lag, liveness and rates of a
// live bus whose participants are agents; segments it cannot read are reported.
#include <signal.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "inspect_harness.hpp"

namespace shmbus::test {
namespace {

TEST(BusInspectList, AForeignSegmentIsReportedNotFatal) {
  TestBus good;
  TestBus junk;
  Agent feed;
  feed.ok("publisher " + good.name() + " md.quotes quote lossy 64 feed-under-test");
  make_segment(junk.seg(), std::vector<std::byte>(4096, std::byte{0x42}));
  const Result all = inspect({"list", "--no-rate"});
  EXPECT_EQ(all.code, 0) << all;
  EXPECT_NE(all.out.find("buses that cannot be read:"), std::string::npos) << all;
  EXPECT_NE(
      all.out.find(junk.name() + ": /dev/shm/" + junk.seg() + " is not a shmbus bus directory"),
      std::string::npos)
      << all;
  EXPECT_NE(all.out.find(good.name()), std::string::npos) << "the others are still listed\n" << all;
  const Result one = inspect({"list", junk.name()});
  EXPECT_EQ(one.code, 1) << one;
  EXPECT_NE(one.err.find("is not a shmbus bus directory"), std::string::npos) << one;
  const Json gc = inspect_json({"gc", junk.name()});
  ASSERT_EQ(gc.at("kept").size(), 1u) << gc.dump(2);
  EXPECT_NE(gc.at("kept")[0].at("reason").get<std::string>().find("cannot be parsed"),
            std::string::npos);
  EXPECT_TRUE(gc.at("removed").empty());
}

TEST(BusInspectList, ShowsProducersConsumersCountsLagAndLiveness) {
  TestBus tb;
  Agent feed, strat, oms, risk;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 1024 feed-under-test");
  oms.ok("publisher " + tb.name() + " orders quote reliable 64 oms-under-test");
  strat.ok("subscriber " + tb.name() + " md.quotes strat-under-test");
  risk.ok("subscriber " + tb.name() + " orders risk-under-test");
  EXPECT_EQ(field(feed.ok("send 100"), "last"), "100");
  EXPECT_EQ(field(strat.ok("drain"), "count"), "100");
  oms.ok("send 5");
  EXPECT_EQ(field(risk.ok("drain"), "count"), "5");
  oms.ok("send 3");  // risk has not read these: lag 3

  const Json j = inspect_json({"list", tb.name()});
  EXPECT_EQ(j.at("bus"), tb.name());
  const Json& q = topic_in(j, "md.quotes");
  EXPECT_EQ(q.at("type"), "shmbus.md.Quote");
  EXPECT_EQ(q.at("policy"), "lossy");
  EXPECT_EQ(q.at("slot_size"), 256);
  EXPECT_EQ(q.at("slot_count"), 1024);
  EXPECT_EQ(q.at("messages"), 100);
  EXPECT_TRUE(q.at("rate").is_number());
  EXPECT_EQ(q.at("producer").at("name"), "feed-under-test");
  EXPECT_EQ(q.at("producer").at("pid"), feed.pid());
  EXPECT_EQ(q.at("producer").at("alive"), true);
  ASSERT_EQ(q.at("consumers").size(), 1u);
  const Json& sc = consumer_in(q, "strat-under-test");
  EXPECT_EQ(sc.at("pid"), strat.pid());
  EXPECT_EQ(sc.at("alive"), true);
  EXPECT_EQ(sc.at("lag"), 0);
  EXPECT_EQ(sc.at("drops"), 0);
  EXPECT_EQ(sc.at("delivered"), 100);
  const Json& o = topic_in(j, "orders");
  EXPECT_EQ(o.at("policy"), "reliable");
  EXPECT_EQ(o.at("slot_count"), 64);
  EXPECT_EQ(o.at("messages"), 8);
  EXPECT_EQ(consumer_in(o, "risk-under-test").at("lag"), 3);
  EXPECT_EQ(consumer_in(o, "risk-under-test").at("pid"), risk.pid());

  // The same for a person: aligned columns, names, pids, states.
  const Result human = inspect({"list", tb.name(), "--no-rate"});
  ASSERT_EQ(human.code, 0) << human;
  const auto hl = lines_of(human.out);
  const auto row = [&](const std::string& first_word) {
    for (const auto& l : hl)
      if (!words(l).empty() && words(l)[0] == first_word) return l;
    return std::string();
  };
  EXPECT_EQ(words(row("md.quotes")),
            (std::vector<std::string>{"md.quotes", "shmbus.md.Quote", "lossy", "256", "1024",
                                      "feed-under-test", std::to_string(feed.pid()), "alive", "100",
                                      "n/a", words(row("md.quotes")).at(10), "ago"}))
      << human.out;
  const auto risk_row = words(row("risk-under-test"));
  ASSERT_GE(risk_row.size(), 6u) << human.out;
  EXPECT_EQ(risk_row[1], std::to_string(risk.pid()));
  EXPECT_EQ(risk_row[2], "orders");
  EXPECT_EQ(risk_row[3], "alive");
  EXPECT_EQ(risk_row[4], "3") << "lag";
  EXPECT_EQ(risk_row[5], "0") << "drops";
  EXPECT_NE(human.out.find("2 topics, 2 live producers, 2 live consumers"), std::string::npos)
      << human.out;
  EXPECT_EQ(human.out.find("\x1b"), std::string::npos) << "no escape codes in tables";

  // The host-wide list counts them.
  const Json all = inspect_json({"list", "--no-rate"});
  bool found = false;
  for (const Json& b : all.at("buses")) {
    if (b.at("bus") != tb.name()) continue;
    found = true;
    EXPECT_EQ(b.at("topics"), 2);
    EXPECT_EQ(b.at("producers_alive"), 2);
    EXPECT_EQ(b.at("consumers_alive"), 2);
    EXPECT_EQ(b.at("dead_participants"), 0);
    EXPECT_EQ(b.at("messages"), 108);
  }
  EXPECT_TRUE(found) << all.dump();
  const Result all_human = inspect({"list", "--no-rate"});
  EXPECT_NE(all_human.out.find(tb.name()), std::string::npos) << all_human;

  // A killed producer and a killed consumer show as dead.
  EXPECT_EQ(feed.kill9(), 128 + SIGKILL);
  EXPECT_EQ(risk.kill9(), 128 + SIGKILL);
  const Json dead = inspect_json({"list", tb.name(), "--no-rate"});
  EXPECT_EQ(topic_in(dead, "md.quotes").at("producer").at("alive"), false);
  EXPECT_EQ(topic_in(dead, "md.quotes").at("producer").at("name"), "feed-under-test");
  EXPECT_EQ(topic_in(dead, "md.quotes").at("messages"), 100) << "what it published stays visible";
  EXPECT_EQ(consumer_in(topic_in(dead, "orders"), "risk-under-test").at("alive"), false);
  EXPECT_EQ(consumer_in(topic_in(dead, "md.quotes"), "strat-under-test").at("alive"), true);
  const Result dh = inspect({"list", tb.name(), "--no-rate"});
  const auto dead_lines = lines_of(dh.out);
  const bool producer_dead =
      std::any_of(dead_lines.begin(), dead_lines.end(), [](const std::string& l) {
        return l.rfind("md.quotes", 0) == 0 && l.find("feed-under-test") != std::string::npos &&
               l.find("DEAD") != std::string::npos;
      });
  EXPECT_TRUE(producer_dead) << dh.out;
  const Json all_dead = inspect_json({"list", "--no-rate"});
  for (const Json& b : all_dead.at("buses"))
    if (b.at("bus") == tb.name()) {
      EXPECT_EQ(b.at("dead_participants"), 2);
    }
}

TEST(BusInspectList, RateComesFromTwoSamples) {
  TestBus tb;
  Agent feed;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 1024 feed-under-test");
  feed.ok("send 10");
  // A quiet topic: two samples, no new messages: rate 0 (not n/a).
  const Json j = inspect_json({"list", tb.name(), "--interval", "0.05"});
  EXPECT_EQ(topic_in(j, "md.quotes").at("rate"), 0.0);
  const Json nr = inspect_json({"list", tb.name(), "--no-rate"});
  EXPECT_TRUE(topic_in(nr, "md.quotes").at("rate").is_null());
}

TEST(BusInspectList, ShowsWhatALappedConsumerLost) {
  TestBus tb;
  Agent feed, slow;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 8 feed-under-test");
  slow.ok("subscriber " + tb.name() + " md.quotes slow-under-test");
  feed.ok("send 20");  // a ring of 8: the consumer is lapped
  const std::string drained = slow.ok("drain");
  const std::string drops = field(drained, "drops");
  ASSERT_NE(drops, "0") << drained;
  EXPECT_EQ(std::stoull(drops) + std::stoull(field(drained, "count")), 20u)
      << "every message delivered or lost";
  const Json j = inspect_json({"list", tb.name(), "--no-rate"});
  const Json& c = consumer_in(topic_in(j, "md.quotes"), "slow-under-test");
  EXPECT_EQ(std::to_string(c.at("drops").get<std::uint64_t>()), drops)
      << "list shows the consumer's own count";
  EXPECT_EQ(c.at("lag"), 0);
}

}  // namespace
}  // namespace shmbus::test
