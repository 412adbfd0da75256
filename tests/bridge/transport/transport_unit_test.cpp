// Backoff, topic patterns, Prometheus metrics text (checked by promtool) and secrets.
#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "transport/backoff.hpp"
#include "transport/metrics.hpp"
#include "transport/secret.hpp"
#include "transport/topic_pattern.hpp"
#include "transport_test_util.hpp"

using namespace shmbus::bridge::transport;
using namespace std::chrono_literals;
using shmbus::test::run;

namespace {

// A "random" source returning a fixed cycle: deterministic jitter.
Backoff::Random sequence(std::vector<std::uint64_t> v) {
  return [v = std::move(v), i = std::size_t{0}]() mutable { return v[i++ % v.size()]; };
}

}  // namespace

TEST(Backoff, WithoutJitterDoublesUpToTheCapAndResets) {
  BackoffPolicy p{100ms, 1000ms, 10ms, 2.0, Jitter::None};
  Backoff b(p);
  std::vector<long> got;
  for (int i = 0; i < 6; ++i) got.push_back(static_cast<long>(b.next().count()));
  EXPECT_EQ(got, (std::vector<long>{100, 200, 400, 800, 1000, 1000}));
  EXPECT_EQ(b.attempts(), 6u);
  b.reset();
  EXPECT_EQ(b.attempts(), 0u);
  EXPECT_EQ(b.next(), 100ms);
}

TEST(Backoff, FullJitterStaysBetweenFloorAndTheExponentialCeiling) {
  BackoffPolicy p{100ms, 1000ms, 10ms, 2.0, Jitter::Full};
  // random % span: 0 gives the floor; span-1 gives the ceiling.
  Backoff low(p, sequence({0}));
  EXPECT_EQ(low.next(), 10ms);
  EXPECT_EQ(low.next(), 10ms);
  Backoff high(p, sequence({~0ULL}));
  // ~0 % (ceiling - floor + 1): deterministic, and within [floor, ceiling].
  for (long ceiling : {100L, 200L, 400L, 800L, 1000L, 1000L}) {
    const long d = static_cast<long>(high.next().count());
    EXPECT_GE(d, 10);
    EXPECT_LE(d, ceiling);
  }
  // Same seed sequence, same delays.
  Backoff a(p, sequence({7, 1234567, 99})), c(p, sequence({7, 1234567, 99}));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next(), c.next());
}

TEST(Backoff, DecorrelatedJitterGrowsFromThePreviousDelayAndIsCapped) {
  BackoffPolicy p{100ms, 5000ms, 10ms, 2.0, Jitter::Decorrelated};
  Backoff top(p, sequence({~0ULL - 1}));  // near the top of each range
  long prev = 100;
  for (int i = 0; i < 20; ++i) {
    const long d = static_cast<long>(top.next().count());
    EXPECT_GE(d, 100);
    EXPECT_LE(d, std::min(5000L, prev * 3));
    prev = d;
  }
  Backoff bottom(p, sequence({0}));
  EXPECT_EQ(bottom.next(), 100ms);  // uniform(initial, ...) at 0 is `initial`
}

TEST(Backoff, RejectsPoliciesThatWouldLoopTightly) {
  EXPECT_THROW(Backoff(BackoffPolicy{0ms, 1000ms, 10ms, 2.0, Jitter::Full}), std::invalid_argument);
  EXPECT_THROW(Backoff(BackoffPolicy{100ms, 50ms, 10ms, 2.0, Jitter::Full}), std::invalid_argument);
  EXPECT_THROW(Backoff(BackoffPolicy{100ms, 500ms, 10ms, 0.5, Jitter::Full}),
               std::invalid_argument);
}

TEST(TopicPattern, MatchTable) {
  struct Row {
    const char* pattern;
    const char* topic;
    bool match;
  };
  const Row rows[] = {
      {"md.quotes", "md.quotes", true},
      {"md.quotes", "md.quotes.AAPL", false},
      {"md.quotes", "md.quote", false},
      {"md.*", "md.quotes", true},
      {"md.*", "md.quotes.AAPL", false},
      {"md.*", "md", false},
      {"md.*.AAPL", "md.quotes.AAPL", true},
      {"md.*.AAPL", "md.trades.MSFT", false},
      {"md.*.AAPL", "md.AAPL", false},
      {"md.>", "md.quotes", true},
      {"md.>", "md.quotes.AAPL", true},
      {"md.>", "md", false},
      {"md.>", "mdx.quotes", false},
      {">", "anything.at.all", true},
      {">", "x", true},
      {"*", "x", true},
      {"*", "x.y", false},
      {"*.*", "x.y", true},
      {"*.>", "x", false},
      {"*.>", "x.y.z", true},
      {"md.quotes.>", "md.quotes", false},
      {"md-1.q_2", "md-1.q_2", true},
  };
  for (const auto& r : rows) {
    TopicPattern p(r.pattern);
    EXPECT_EQ(p.matches(r.topic), r.match) << r.pattern << " vs " << r.topic;
  }
  EXPECT_TRUE(TopicPattern("md.quotes").is_exact());
  EXPECT_FALSE(TopicPattern("md.*").is_exact());
}

TEST(TopicPattern, BadPatternsAreNamedErrors) {
  const std::pair<const char*, const char*> bad[] = {
      {"", "empty"},
      {"md..quotes", "empty word"},
      {".md", "empty word"},
      {"md.", "empty word"},
      {"md.>.x", "not the last word"},
      {"md.q*", "not a whole word"},
      {"md.>x", "not a whole word"},
      {"md quotes", "not allowed"},
      {"md/quotes", "not allowed"},
  };
  for (const auto& [p, why] : bad) {
    std::string error;
    EXPECT_FALSE(TopicPattern::parse(p, error).has_value()) << p;
    EXPECT_NE(error.find(why), std::string::npos) << p << ": " << error;
    EXPECT_NE(error.find(std::string("\"") + p + "\""), std::string::npos) << error;
    EXPECT_THROW(TopicPattern{p}, PatternError) << p;
  }
  EXPECT_THROW(TopicPattern(std::string(65, 'a')), PatternError);
}

TEST(Metrics, RenderIsSortedEscapedAndStable) {
  MetricsRegistry m;
  m.counter("bridge_forwarded_total", "Messages forwarded.", {{"route", "b"}}).inc(3);
  m.counter("bridge_forwarded_total", "Messages forwarded.", {{"route", "a"}}).inc(1);
  m.gauge("bridge_lag", "Ring lag \\ in\nmessages.", {{"route", "q\"uo\\te\nnl"}}).set(2.5);
  m.gauge("bridge_up", "1 when connected.").set(1);
  // Same name and labels (in another order): the same series.
  Counter& c1 = m.counter("bridge_x_total", "X.", {{"b", "2"}, {"a", "1"}});
  Counter& c2 = m.counter("bridge_x_total", "X.", {{"a", "1"}, {"b", "2"}});
  EXPECT_EQ(&c1, &c2);
  const std::string text = m.render();
  const std::string want =
      "# HELP bridge_forwarded_total Messages forwarded.\n"
      "# TYPE bridge_forwarded_total counter\n"
      "bridge_forwarded_total{route=\"a\"} 1\n"
      "bridge_forwarded_total{route=\"b\"} 3\n"
      "# HELP bridge_lag Ring lag \\\\ in\\nmessages.\n"
      "# TYPE bridge_lag gauge\n"
      "bridge_lag{route=\"q\\\"uo\\\\te\\nnl\"} 2.5\n"
      "# HELP bridge_up 1 when connected.\n"
      "# TYPE bridge_up gauge\n"
      "bridge_up 1\n"
      "# HELP bridge_x_total X.\n"
      "# TYPE bridge_x_total counter\n"
      "bridge_x_total{a=\"1\",b=\"2\"} 0\n";
  EXPECT_EQ(text, want);
  EXPECT_EQ(m.render(), text);
  EXPECT_EQ(format_sample_value(1.0 / 0.0), "+Inf");
  EXPECT_EQ(format_sample_value(0.1), "0.10000000000000001");
}

TEST(Metrics, BadNamesAndTypeClashesThrow) {
  MetricsRegistry m;
  EXPECT_THROW(m.counter("forwarded", "no _total suffix"), std::invalid_argument);
  EXPECT_THROW(m.gauge("1abc", "starts with a digit"), std::invalid_argument);
  EXPECT_THROW(m.gauge("a-b", "dash"), std::invalid_argument);
  EXPECT_THROW(m.gauge("ok", "h", {{"__reserved", "x"}}), std::invalid_argument);
  EXPECT_THROW(m.gauge("ok", "h", {{"a", "x"}, {"a", "y"}}), std::invalid_argument);
  (void)m.gauge("clash_total", "h");
  EXPECT_THROW(m.counter("clash_total", "h"), std::invalid_argument);
}

TEST(Metrics, PromtoolAcceptsTheOutput) {
  MetricsRegistry m;
  for (const char* route : {"md-quotes", "orders \"eu\"", "back\\slash\nnewline"}) {
    m.counter("shmbus_bridge_forwarded_total", "Messages forwarded to the remote.",
              {{"route", route}, {"target", "redis"}})
        .inc(42);
    m.counter("shmbus_bridge_reconnects_total", "Reconnections after a lost connection.",
              {{"route", route}})
        .inc();
    m.gauge("shmbus_bridge_lag_messages", "Messages behind the ring's head.", {{"route", route}})
        .set(7);
  }
  m.gauge("shmbus_bridge_last_error_time_seconds", "Unix time of the last error.").set(1.7e9);
  const auto path = std::filesystem::temp_directory_path() /
                    ("shmbus-metrics-" + std::to_string(::getpid()) + ".txt");
  std::ofstream(path) << m.render();
  std::string out;
  const int rc = run({"sh", "-c", "promtool check metrics < '" + path.string() + "'"}, out);
  std::filesystem::remove(path);
  EXPECT_EQ(rc, 0) << "promtool (Debian package `prometheus`) rejected the output:\n"
                   << out << "\n---\n"
                   << m.render();
}

TEST(Secret, NeverPrints) {
  const Secret s("hunter2-very-secret");
  std::ostringstream os;
  os << "password=" << s;
  EXPECT_EQ(os.str(), "password=***");
  EXPECT_EQ(fmt::format("{} and {:>5}", s, s), "*** and   ***");
  nlohmann::json j;
  j["password"] = s;
  EXPECT_EQ(j.dump(), R"({"password":"***"})");
  EXPECT_EQ(s.reveal(), "hunter2-very-secret");
  EXPECT_TRUE(Secret().empty());
}

TEST(Secret, ScrubRemovesTheSecretAndItsUrlEncodingFromAnyText) {
  const Secret s("p@ss word/1");
  EXPECT_EQ(scrub("auth p@ss word/1 failed; again p@ss word/1", s), "auth *** failed; again ***");
  EXPECT_EQ(scrub("amqp://u:p%40ss%20word%2F1@host", s), "amqp://u:***@host");
  EXPECT_EQ(scrub("nothing here", s), "nothing here");
  EXPECT_EQ(scrub("text", Secret()), "text");
}
