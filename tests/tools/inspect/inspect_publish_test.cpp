// bus-inspect publish: JSON and raw bytes onto a topic, read back by an agent;
// invalid input named and nothing published; a live producer refused.
#include <string>
#include <vector>

#include "inspect_harness.hpp"

namespace shmbus::test {
namespace {

TEST(BusInspectPublish, JsonRoundTripsToASubscriber) {
  TestBus tb;
  Agent feed, strat;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 64 feed-under-test");
  feed.ok("release");  // the topic exists, with no producer
  strat.ok("subscriber " + tb.name() + " md.quotes strat-under-test");

  const Result r = inspect(
      {"publish", tb.name(), "md.quotes", "--json",
       R"({"symbol":"AAPL","instrument_id":7,"bid_px":189.5,"ask_px":189.51,"bid_qty":100})"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_NE(r.out.find("published 1 message to md.quotes"), std::string::npos) << r;
  auto got = strat.talk("drain");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(field(got[0], "seq"), "1");
  EXPECT_EQ(field(got[0], "symbol"), "AAPL");
  EXPECT_EQ(field(got[0], "instrument"), "7");
  EXPECT_EQ(field(got[0], "bid"), "189.500000");

  // One message per line of stdin, in order; blank lines are skipped.
  const Result many =
      inspect({"publish", tb.name(), "md.quotes"},
              "{\"symbol\":\"A\",\"instrument_id\":1}\n\n{\"symbol\":\"B\",\"instrument_id\":2}\n"
              "{\"symbol\":\"C\",\"instrument_id\":3}\n");
  ASSERT_EQ(many.code, 0) << many;
  EXPECT_NE(many.out.find("published 3 messages"), std::string::npos) << many;
  got = strat.talk("drain");
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(field(got[0], "symbol"), "A");
  EXPECT_EQ(field(got[1], "symbol"), "B");
  EXPECT_EQ(field(got[2], "symbol"), "C");
  EXPECT_EQ(field(got[2], "seq"), "4");

  // And back out through tail, with the producer role given back.
  const Json last =
      Json::parse(lines_of(inspect({"tail", tb.name(), "md.quotes", "-n", "1"}).out).at(0));
  EXPECT_EQ(last.at("data").at("symbol"), "C");
  const Json j = inspect_json({"list", tb.name(), "--no-rate"});
  EXPECT_EQ(topic_in(j, "md.quotes").at("producer"), nullptr)
      << "bus-inspect released the producer role";

  // Quotes, backslashes and blanks inside strings survive both ways.
  ASSERT_EQ(
      inspect({"publish", tb.name(), "md.quotes", "--json", R"({"symbol":"A \"B\"  \\ C"})"}).code,
      0);
  const Json odd =
      Json::parse(lines_of(inspect({"tail", tb.name(), "md.quotes", "-n", "1"}).out).at(0));
  EXPECT_EQ(odd.at("data").at("symbol"), "A \"B\"  \\ C");
}

TEST(BusInspectPublish, InvalidInputSaysWhereAndWhyAndPublishesNothing) {
  TestBus tb;
  Agent feed, strat;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 64 feed-under-test");
  feed.ok("send 2");
  feed.ok("release");
  strat.ok("subscriber " + tb.name() + " md.quotes strat-under-test");
  struct Case {
    std::vector<std::string> args;
    std::string input;
    std::vector<std::string> says;
  };
  const std::string big(300, 'x');
  const std::vector<Case> cases = {
      {{"--json", R"({"symbol": )"},
       "",
       {"invalid JSON for shmbus.md.Quote at 1:", "Nothing was published"}},
      {{"--json", R"({"symbol":"A","nosuch":1})"}, "", {"nosuch", "unknown field", "bid_px"}},
      {{"--json", R"({"bid_px":"abc"})"}, "", {"field \"bid_px\""}},
      {{"--json", R"({"bid_orders":-1})"}, "", {"bid_orders"}},
      {{"--json", "[1,2]"}, "", {"invalid JSON"}},
      {{},
       "{\"symbol\":\"A\"}\n{\"symbol\":\"B\"}\n{\"symbol\":\"C\",}\n",
       {"stdin line 3: ", "invalid JSON"}},
      {{}, "", {"stdin was empty"}},
      {{"--json", "{\"symbol\":\"" + big + "\"}"},
       "",
       {"bytes", "carries at most 224", "nothing was published"}},
      {{"--raw-hex", "0102"}, "", {"carries shmbus.md.Quote", "JSON"}},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"publish", tb.name(), "md.quotes"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const Result r = inspect(args, c.input);
    EXPECT_EQ(r.code, 1) << (c.args.empty() ? c.input : c.args.back()) << "\n" << r;
    EXPECT_EQ(r.err.rfind("bus-inspect: ", 0), 0u) << r;
    for (const std::string& s : c.says)
      EXPECT_NE(r.err.find(s), std::string::npos) << "'" << s << "' missing\n" << r;
    EXPECT_EQ(lines_of(r.err).size(), 1u) << "one line\n" << r;
  }
  EXPECT_EQ(field(strat.ok("drain"), "count"), "0") << "nothing reached the subscriber";
  const Json j = inspect_json({"list", tb.name(), "--no-rate"});
  EXPECT_EQ(topic_in(j, "md.quotes").at("messages"), 2) << "nothing was published";
}

// The first-hour report: trying the README's bad-JSON example while the demo
// runs must show the JSON error, not the live producer's.
TEST(BusInspectPublish, BadJsonIsReportedAsSuchWhileAProducerLives) {
  TestBus tb;
  Agent feed;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 64 feed-under-test");
  const Result r =
      inspect({"publish", tb.name(), "md.quotes", "--json", R"({"symbol":"TEST","bid":1.5})"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_NE(r.err.find("invalid JSON for shmbus.md.Quote"), std::string::npos) << r;
  EXPECT_NE(r.err.find("field \"bid\""), std::string::npos) << r;
  EXPECT_EQ(r.err.find("live producer"), std::string::npos) << r;
}

TEST(BusInspectPublish, RefusesWhileAnotherProducerLivesAndNamesIt) {
  TestBus tb;
  Agent feed, strat;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 64 feed-under-test");
  strat.ok("subscriber " + tb.name() + " md.quotes strat-under-test");
  const Result r = inspect({"publish", tb.name(), "md.quotes", "--json", R"({"symbol":"X"})"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_NE(r.err.find("live producer: 'feed-under-test' (pid " + std::to_string(feed.pid()) + ")"),
            std::string::npos)
      << r;
  EXPECT_EQ(field(strat.ok("drain"), "count"), "0");
  // Once it is dead, publish takes the topic over and goes on from its sequence.
  feed.ok("send 4");
  strat.ok("drain");
  feed.kill9();
  const Result ok = inspect({"publish", tb.name(), "md.quotes", "--json", R"({"symbol":"X"})"});
  ASSERT_EQ(ok.code, 0) << ok;
  EXPECT_NE(ok.out.find("(seq 5)"), std::string::npos) << ok;
  EXPECT_NE(ok.out.find("took over"), std::string::npos) << ok;
  const auto got = strat.talk("drain");
  EXPECT_EQ(field(got.at(0), "symbol"), "X");
  EXPECT_EQ(field(got.at(0), "seq"), "5");
}

TEST(BusInspectPublish, RawTopicsTakeBytes) {
  TestBus tb;
  Agent feed, sink;
  feed.ok("publisher " + tb.name() + " raw.data raw lossy 64 raw-feed");
  feed.ok("release");
  sink.ok("subscriber " + tb.name() + " raw.data raw-sink");
  const Result j = inspect({"publish", tb.name(), "raw.data", "--json", "{}"});
  EXPECT_EQ(j.code, 1) << j;
  EXPECT_NE(j.err.find("is raw (untyped)"), std::string::npos) << j;
  const Result bad = inspect({"publish", tb.name(), "raw.data", "--raw-hex", "01zz"});
  EXPECT_EQ(bad.code, 1) << bad;
  EXPECT_NE(bad.err.find("not hex"), std::string::npos) << bad;
  ASSERT_EQ(inspect({"publish", tb.name(), "raw.data", "--raw-hex", "0102ff"}).code, 0);
  ASSERT_EQ(inspect({"publish", tb.name(), "raw.data", "--raw-base64", "AAEC"}).code, 0);
  ASSERT_EQ(inspect({"publish", tb.name(), "raw.data"}, "3q2+7w==\n").code,
            0);  // base64 lines on stdin
  const auto got = sink.talk("drain");
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(field(got[0], "hex"), "0102ff");
  EXPECT_EQ(field(got[1], "hex"), "000102");
  EXPECT_EQ(field(got[2], "hex"), "deadbeef");
}

}  // namespace
}  // namespace shmbus::test
