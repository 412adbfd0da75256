// bus-inspect schema: a topic's message type and its fields, for people and as JSON.
#include <string>
#include <vector>

#include "inspect_harness.hpp"

namespace shmbus::test {
namespace {

TEST(BusInspectSchema, ShowsTheTypeAndItsFields) {
  TestBus tb;
  Agent feed, raw;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 64 feed-under-test");
  raw.ok("publisher " + tb.name() + " raw.data raw lossy 64 raw-feed");
  const Result r = inspect({"schema", tb.name(), "md.quotes"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_NE(r.out.find("shmbus.md.Quote (file identifier \"MDQT\")"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Best bid and offer"), std::string::npos) << "doc comments are shown\n"
                                                                 << r.out;
  const auto row = [&](const std::string& f) {
    for (const auto& l : lines_of(r.out))
      if (!words(l).empty() && words(l)[0] == f) return words(l);
    return std::vector<std::string>{};
  };
  ASSERT_GE(row("bid_px").size(), 3u) << r.out;
  EXPECT_EQ(row("bid_px")[1], "6");
  EXPECT_EQ(row("bid_px")[2], "double");
  EXPECT_EQ(row("symbol")[2], "string");

  const Json j = inspect_json({"schema", tb.name(), "md.quotes"});
  EXPECT_EQ(j.at("type"), "shmbus.md.Quote");
  EXPECT_EQ(j.at("file_identifier"), "MDQT");
  std::vector<std::string> names;
  for (const Json& f : j.at("fields")) names.push_back(f.at("name"));
  EXPECT_EQ(names, (std::vector<std::string>{"symbol", "instrument_id", "venue", "exchange_ts",
                                             "receive_ts", "seq", "bid_px", "bid_qty", "ask_px",
                                             "ask_qty", "bid_orders", "ask_orders"}));

  const Result rr = inspect({"schema", tb.name(), "raw.data"});
  EXPECT_EQ(rr.code, 0) << rr;
  EXPECT_NE(rr.out.find("raw bytes"), std::string::npos) << rr;
  EXPECT_EQ(inspect_json({"schema", tb.name(), "raw.data"}).at("raw"), true);
}

}  // namespace
}  // namespace shmbus::test
