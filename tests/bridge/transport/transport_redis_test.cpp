// The Redis clients of the bridge against a real redis-server (services.sh's, or one the
// test starts on a port of its own for kill/restart), with redis-py on the far side.
#include <map>
#include <set>

#include "transport/redis_publisher.hpp"
#include "transport/redis_stream_consumer.hpp"
#include "transport/redis_subscriber.hpp"
#include "transport_test_util.hpp"

using namespace shmbus::bridge::transport;
using namespace std::chrono_literals;
using shmbus::test::Child;
using shmbus::test::python;
using shmbus::test::service_env;
using shmbus::test::service_port;
using shmbus::test::unique_name;

namespace {

RedisEndpoint shared_redis() {
  RedisEndpoint e;
  e.port = service_port("SHMBUS_TEST_REDIS_PORT");
  e.backoff = {20ms, 500ms, 5ms, 2.0, Jitter::Full};
  return e;
}

std::string payload_for(std::uint64_t seq, std::size_t size = 200) {
  std::string p = "seq=" + std::to_string(seq) + ";";
  p.resize(size, 'x');
  return p;
}

// A redis-server of the test's own (kill -9 and restart it on the same port), with an
// fsync-always append-only file so that what it acknowledged survives the SIGKILL.
class OwnRedis {
 public:
  OwnRedis() : port_(shmbus::test::free_port()) {
    dir_ = std::filesystem::temp_directory_path() / unique_name("shmbus-redis");
    std::filesystem::create_directories(dir_);
    start();
  }
  ~OwnRedis() {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  void start() {
    server_ = std::make_unique<Child>(std::vector<std::string>{
        "redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "yes", "--appendfsync", "always", "--dir", dir_.string()});
    std::string out;
    ASSERT_TRUE(shmbus::test::eventually(
        [&] {
          out.clear();
          return shmbus::test::run({"redis-cli", "-p", std::to_string(port_), "PING"}, out, 2s) ==
                     0 &&
                 out == "PONG\n";
        },
        10s))
        << "redis-server on port " << port_ << " did not start";
  }
  void kill9() { server_->kill(SIGKILL); }
  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  std::uint16_t port_;
  std::filesystem::path dir_;
  std::unique_ptr<Child> server_;
};

}  // namespace

TEST(RedisPublisher, PipelinedPublishArrivesInOrderAndCompleteAtRedisPy) {
  const std::string channel = unique_name("md.quotes");
  const int n = 20000;
  // The way users' Python code reads a channel: pubsub() + listen().
  auto sub = python(R"(
import sys, redis
port, channel, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
r = redis.Redis(host="127.0.0.1", port=port)
p = r.pubsub()
p.subscribe(channel)
while True:  # the subscription is confirmed before we say ready
    m = p.get_message(timeout=10)
    if m and m["type"] == "subscribe":
        break
print("ready", flush=True)
expected = 0
for msg in p.listen():
    if msg["type"] != "message":
        continue
    data = msg["data"]
    seq = int(data.split(b";")[0].split(b"=")[1])
    if seq != expected or len(data) != 200:
        print("bad: got seq %d len %d, expected seq %d" % (seq, len(data), expected), flush=True)
        sys.exit(1)
    expected += 1
    if expected == n:
        print("ok %d" % expected, flush=True)
        break
)",
                    {service_env("SHMBUS_TEST_REDIS_PORT"), channel, std::to_string(n)});
  std::string seen;
  ASSERT_TRUE(sub->expect_line("ready", 20s, seen)) << seen;

  RedisPublisher pub({shared_redis(), 64, 256 * 1024, 1024, 8 << 20});
  ASSERT_TRUE(pub.connect(5s)) << pub.last_error();
  std::vector<RedisCompletion> done;
  std::size_t max_in_flight = 0;
  for (int i = 0; i < n; ++i) {
    auto m = RedisMessage::publish(channel, payload_for(static_cast<std::uint64_t>(i)),
                                   static_cast<std::uint64_t>(i));
    while (true) {
      const SubmitStatus st = pub.submit(m);
      if (st == SubmitStatus::Queued) break;
      ASSERT_EQ(st, SubmitStatus::Full) << pub.last_error();
      (void)pub.poll(10ms, done);
    }
    max_in_flight = std::max(max_in_flight, pub.in_flight());
  }
  ASSERT_TRUE(pub.flush(20s, done)) << pub.last_error();
  ASSERT_EQ(done.size(), static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < done.size(); ++i) {
    ASSERT_EQ(done[i].outcome, RedisOutcome::Confirmed) << i << ": " << done[i].error;
    ASSERT_EQ(done[i].message.token, i);  // replies in command order
    ASSERT_EQ(done[i].receivers, 1) << "PUBLISH reached no subscriber at " << i;
  }
  // Pipelined: many commands were unanswered at once, never one round trip each.
  EXPECT_GE(max_in_flight, 64u);
  std::string last;
  ASSERT_TRUE(sub->expect_line("ok " + std::to_string(n), 30s, last)) << last;
  EXPECT_EQ(sub->wait(10s), 0);
}

TEST(RedisPublisher, XaddWithIdsFromTheBusSequenceIsIdempotent) {
  const std::string stream = unique_name("bus.stream");
  RedisPublisher pub({shared_redis()});
  ASSERT_TRUE(pub.connect(5s)) << pub.last_error();
  std::vector<RedisCompletion> done;
  auto send = [&](std::uint64_t from, std::uint64_t to) {
    for (std::uint64_t s = from; s <= to; ++s) {
      ASSERT_EQ(
          pub.submit(RedisMessage::xadd(stream, {s, 0}, {{"data", payload_for(s, 50)}}, 100000, s)),
          SubmitStatus::Queued);
    }
    ASSERT_TRUE(pub.flush(10s, done)) << pub.last_error();
  };
  send(1, 100);
  ASSERT_EQ(done.size(), 100u);
  for (auto& c : done) ASSERT_EQ(c.outcome, RedisOutcome::Confirmed) << c.error;
  done.clear();
  send(50, 150);  // a re-send after a reconnect overlaps what is stored
  ASSERT_EQ(done.size(), 101u);
  std::size_t dup = 0, ok = 0;
  for (auto& c : done) {
    if (c.message.token <= 100) {
      EXPECT_EQ(c.outcome, RedisOutcome::Duplicate) << c.message.token << " " << c.error;
      ++dup;
    } else {
      EXPECT_EQ(c.outcome, RedisOutcome::Confirmed) << c.message.token << " " << c.error;
      ++ok;
    }
  }
  EXPECT_EQ(dup, 51u);
  EXPECT_EQ(ok, 50u);
  // A reader sees each sequence exactly once, in order.
  auto reader = python(R"(
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
entries = r.xrange(sys.argv[2])
ids = [int(i.split(b"-")[0]) for i, _ in entries]
datas_ok = all(f[b"data"].startswith(b"seq=%d;" % int(i.split(b"-")[0])) for i, f in entries)
print("count %d ordered %s data %s" % (len(ids), ids == list(range(1, 151)), datas_ok), flush=True)
)",
                       {service_env("SHMBUS_TEST_REDIS_PORT"), stream});
  EXPECT_EQ(reader->line(20s).value_or("(nothing)"), "count 150 ordered True data True");
}

// "equal or smaller than the top item" proves nothing alone: a server that lost its latest
// writes, or refused an entry while storing later ones, refuses it too. Only an entry that
// is in the stream is a duplicate; one that is not is a failure (dead-lettered by a route),
// never a silent drop counted as delivered.
TEST(RedisPublisher, XaddBelowTheTopIsADuplicateOnlyIfTheEntryIsStored) {
  const std::string stream = unique_name("bus.gap");
  RedisPublisher pub({shared_redis()});
  ASSERT_TRUE(pub.connect(5s)) << pub.last_error();
  std::vector<RedisCompletion> done;
  for (std::uint64_t s : {1, 2, 3, 10}) {
    ASSERT_EQ(pub.submit(RedisMessage::xadd(stream, {s, 0}, {{"data", "x"}}, 0, s)),
              SubmitStatus::Queued);
  }
  ASSERT_TRUE(pub.flush(10s, done)) << pub.last_error();
  ASSERT_EQ(done.size(), 4u);
  done.clear();
  // 2 is stored, 5 never was (below the top 10), 11 is new; then a PUBLISH behind them.
  for (std::uint64_t s : {2, 5, 11}) {
    ASSERT_EQ(pub.submit(RedisMessage::xadd(stream, {s, 0}, {{"data", "y"}}, 0, s)),
              SubmitStatus::Queued);
  }
  ASSERT_EQ(pub.submit(RedisMessage::publish(stream + ".ch", "after", 99)), SubmitStatus::Queued);
  ASSERT_TRUE(pub.flush(10s, done)) << pub.last_error();
  ASSERT_EQ(done.size(), 4u);
  std::map<std::uint64_t, RedisCompletion*> by_token;
  for (auto& c : done) by_token[c.message.token] = &c;
  ASSERT_EQ(by_token.size(), 4u);
  EXPECT_EQ(by_token[2]->outcome, RedisOutcome::Duplicate) << by_token[2]->error;
  EXPECT_EQ(by_token[5]->outcome, RedisOutcome::Failed);
  EXPECT_NE(by_token[5]->error.find("not stored"), std::string::npos) << by_token[5]->error;
  EXPECT_NE(by_token[5]->error.find("5-0"), std::string::npos) << by_token[5]->error;
  EXPECT_EQ(by_token[11]->outcome, RedisOutcome::Confirmed) << by_token[11]->error;
  EXPECT_EQ(by_token[99]->outcome, RedisOutcome::Confirmed) << by_token[99]->error;
  EXPECT_EQ(pub.in_flight(), 0u);
  EXPECT_EQ(pub.state(), LinkState::Ready);
}

TEST(RedisPublisher, ErrorRepliesAreFailuresNotDisconnects) {
  const std::string key = unique_name("not-a-stream");
  RedisPublisher pub({shared_redis()});
  ASSERT_TRUE(pub.connect(5s)) << pub.last_error();
  std::vector<RedisCompletion> done;
  // 0-0 is never a valid XADD ID.
  ASSERT_EQ(pub.submit(RedisMessage::xadd(key, {0, 0}, {{"a", "b"}})), SubmitStatus::Queued);
  ASSERT_EQ(pub.submit(RedisMessage::publish(key, "after")), SubmitStatus::Queued);
  ASSERT_TRUE(pub.flush(5s, done));
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0].outcome, RedisOutcome::Failed);
  EXPECT_NE(done[0].error.find("ERR"), std::string::npos) << done[0].error;
  EXPECT_EQ(done[1].outcome, RedisOutcome::Confirmed);
  EXPECT_EQ(pub.state(), LinkState::Ready);
}

TEST(RedisPublisher, ServerKilledAndRestartedMidStreamReconnectsAndReportsUnconfirmed) {
  OwnRedis server;
  RedisEndpoint ep;
  ep.port = server.port();
  ep.backoff = {50ms, 400ms, 10ms, 2.0, Jitter::Full};
  RedisPublisher pub({ep, 32, 1 << 20, 256, 8 << 20});
  ASSERT_TRUE(pub.connect(5s)) << pub.last_error();
  const std::string stream = "restart.stream";
  const std::uint64_t n = 3000;
  std::vector<RedisCompletion> done;
  std::vector<RedisMessage> resend;
  std::set<std::uint64_t> stored;  // confirmed or duplicate: in the stream
  std::size_t unconfirmed = 0, duplicates = 0;
  auto account = [&] {
    for (auto& c : done) {
      switch (c.outcome) {
        case RedisOutcome::Confirmed:
          stored.insert(c.message.token);
          break;
        case RedisOutcome::Duplicate:
          ++duplicates;
          stored.insert(c.message.token);
          break;
        case RedisOutcome::Unconfirmed:
          ++unconfirmed;
          resend.push_back(std::move(c.message));
          break;
        case RedisOutcome::Failed:
          ADD_FAILURE() << c.error;
          break;
      }
    }
    done.clear();
  };
  std::uint64_t next = 1;
  bool killed = false;
  const auto deadline = Clock::now() + 60s;
  while ((stored.size() < n) && Clock::now() < deadline) {
    // Unconfirmed ones first, in order (what a route does after a reconnect).
    std::sort(resend.begin(), resend.end(), [](auto& a, auto& b) { return a.token < b.token; });
    std::vector<RedisMessage> pending = std::move(resend);
    resend.clear();
    std::size_t i = 0;
    for (; i < pending.size(); ++i) {
      if (pub.submit(pending[i]) != SubmitStatus::Queued) break;
    }
    for (; i < pending.size(); ++i) resend.push_back(std::move(pending[i]));
    while (resend.empty() && next <= n) {
      auto m = RedisMessage::xadd(stream, {next, 0}, {{"data", payload_for(next, 100)}}, 0, next);
      if (pub.submit(std::move(m)) != SubmitStatus::Queued) break;
      ++next;
    }
    if (!killed && next > n / 2 && pub.in_flight() > 0) {
      // Commands in flight, replies not read: the SIGKILL loses the connection under them.
      server.kill9();
      killed = true;
      // The loss shows on the next read or write: within a bounded wait.
      const auto notice = Clock::now() + 5s;
      while (pub.state() == LinkState::Ready && Clock::now() < notice) (void)pub.poll(20ms, done);
      account();
      EXPECT_NE(pub.state(), LinkState::Ready);
      EXPECT_GT(unconfirmed, 0u) << "nothing was reported unconfirmed by the lost connection";
      EXPECT_NE(pub.last_error(), "");
      EXPECT_EQ(pub.submit(RedisMessage::publish("x", "y", n + 1)), SubmitStatus::NotConnected);
      // Reconnection attempts fail while the server is down: backoff, not a tight loop.
      const auto down_until = Clock::now() + 500ms;
      while (Clock::now() < down_until) (void)pub.poll(20ms, done);
      EXPECT_NE(pub.state(), LinkState::Ready);
      server.start();
    }
    (void)pub.poll(20ms, done);
    account();
  }
  ASSERT_TRUE(killed);
  EXPECT_EQ(stored.size(), n) << "last error: " << pub.last_error();
  EXPECT_EQ(pub.reconnects(), 1u);
  // Exactly once in the stream: every ID 1..n, once, in order.
  auto reader = python(R"(
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
ids = [int(i.split(b"-")[0]) for i, _ in r.xrange(sys.argv[2])]
print("count %d exact %s" % (len(ids), ids == list(range(1, int(sys.argv[3]) + 1))), flush=True)
)",
                       {std::to_string(server.port()), stream, std::to_string(n)});
  EXPECT_EQ(reader->line(20s).value_or("(nothing)"), "count " + std::to_string(n) + " exact True");
  std::cout << "unconfirmed after the kill: " << unconfirmed
            << ", of which already stored (duplicates on re-send): " << duplicates << "\n";
}

TEST(RedisPublisher, AuthWithBadPasswordIsAClearErrorWithoutThePassword) {
  const std::string user = service_env("SHMBUS_TEST_REDIS_USER");
  const std::string good = service_env("SHMBUS_TEST_REDIS_PASSWORD");
  RedisEndpoint ep = shared_redis();
  ep.user = user;
  ep.password = Secret("Wr0ng-" + std::to_string(::getpid()) + "-pw");
  RedisPublisher bad({ep});
  EXPECT_FALSE(bad.connect(1s));
  const std::string error = bad.last_error();
  EXPECT_NE(error.find("AUTH"), std::string::npos) << error;
  EXPECT_NE(error.find(user), std::string::npos) << error;
  EXPECT_NE(error.find("password"), std::string::npos) << error;  // says what to check
  EXPECT_EQ(error.find(ep.password.reveal()), std::string::npos) << error;
  EXPECT_EQ(error.find(good), std::string::npos) << error;

  ep.password = Secret(good);
  RedisPublisher ok({ep});
  ASSERT_TRUE(ok.connect(5s)) << ok.last_error();
  std::vector<RedisCompletion> done;
  ASSERT_EQ(ok.submit(RedisMessage::publish(unique_name("auth"), "hello")), SubmitStatus::Queued);
  ASSERT_TRUE(ok.flush(5s, done));
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, RedisOutcome::Confirmed);
}

TEST(RedisPublisher, UnreachableServerFailsWithinTheTimeoutAndBacksOff) {
  RedisEndpoint ep;
  ep.port = shmbus::test::free_port();  // nobody listens
  ep.backoff = {100ms, 1000ms, 50ms, 2.0, Jitter::None};
  RedisPublisher pub({ep});
  const auto t0 = Clock::now();
  EXPECT_FALSE(pub.connect(1s));
  const auto took = Clock::now() - t0;
  EXPECT_LT(took, 2s);
  EXPECT_NE(pub.last_error().find("connect"), std::string::npos) << pub.last_error();
  // 100 + 200 + 400 ms of backoff fit in one second: a handful of attempts, not thousands.
  EXPECT_LE(pub.link().generation(), 12u);
}

TEST(RedisSubscriber, ChannelsAndPatternsFromRedisPy) {
  const std::string base = unique_name("in");
  RedisSubscriberOptions o{shared_redis(), {base + ".orders"}, {base + ".md.*"}};
  RedisSubscriber sub(o);
  std::vector<RedisPubSubMessage> got;
  const auto deadline = Clock::now() + 10s;
  while (!sub.subscribed() && Clock::now() < deadline) (void)sub.poll(50ms, got);
  ASSERT_TRUE(sub.subscribed()) << sub.last_error();
  auto pub = python(R"(
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
b = sys.argv[2]
for i in range(100):
    r.publish(b + ".orders", "order %d" % i)
    r.publish(b + ".md.AAPL", b"\x00binary\xff %d" % i)
print("sent", flush=True)
)",
                    {service_env("SHMBUS_TEST_REDIS_PORT"), base});
  const auto until = Clock::now() + 20s;
  while (got.size() < 200 && Clock::now() < until) (void)sub.poll(50ms, got);
  ASSERT_EQ(got.size(), 200u);
  int orders = 0, md = 0;
  for (const auto& m : got) {
    if (m.channel == base + ".orders") {
      EXPECT_EQ(m.payload, "order " + std::to_string(orders++));
      EXPECT_EQ(m.pattern, "");
    } else {
      EXPECT_EQ(m.channel, base + ".md.AAPL");
      EXPECT_EQ(m.pattern, base + ".md.*");
      EXPECT_EQ(m.payload, std::string("\0binary\xff ", 9) + std::to_string(md++));
    }
  }
  EXPECT_EQ(orders, 100);
  EXPECT_EQ(md, 100);
}

TEST(RedisStreamConsumer, RedeliversUnackedEntriesAfterARestartAndAReconnect) {
  const std::string stream = unique_name("in.stream");
  RedisStreamConsumerOptions o;
  o.endpoint = shared_redis();
  o.stream = stream;
  o.group = "bridge";
  o.consumer = "bridge-1";
  o.create_from = "0";
  o.block = 50ms;
  // Producer side as users write it: XADD with a dict of fields.
  const std::string producer = R"(
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
for i in range(int(sys.argv[3]), int(sys.argv[4])):
    r.xadd(sys.argv[2], {"seq": str(i), "data": "payload %d" % i})
print("added", flush=True)
)";
  auto add = [&](int from, int to) {
    auto p = python(producer, {service_env("SHMBUS_TEST_REDIS_PORT"), stream, std::to_string(from),
                               std::to_string(to)});
    ASSERT_EQ(p->line(20s).value_or(""), "added");
  };
  auto read = [](RedisStreamConsumer& c, std::size_t n) {
    std::vector<StreamEntry> got;
    const auto deadline = Clock::now() + 20s;
    while (got.size() < n && Clock::now() < deadline) (void)c.poll(50ms, got);
    return got;
  };
  auto seq_of = [](const StreamEntry& e) {
    for (auto& [f, v] : e.fields)
      if (f == "seq") return std::stoi(v);
    return -1;
  };
  add(0, 10);
  std::vector<std::string> ids;
  {
    RedisStreamConsumer c(o);
    auto got = read(c, 10);
    ASSERT_EQ(got.size(), 10u) << c.last_error();
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(seq_of(got[static_cast<std::size_t>(i)]), i);
      EXPECT_FALSE(got[static_cast<std::size_t>(i)].redelivered);
      ids.push_back(got[static_cast<std::size_t>(i)].id);
    }
    for (int i = 0; i < 5; ++i) c.ack(ids[static_cast<std::size_t>(i)]);
    EXPECT_EQ(c.unacked(), 5u);
    std::vector<StreamEntry> none;
    (void)c.poll(100ms, none);  // sends the acks
    EXPECT_TRUE(none.empty());
    EXPECT_EQ(c.acks_confirmed(), 5u);
  }  // the "process" ends with 5 entries delivered and not acknowledged
  {
    RedisStreamConsumer c(o);
    auto again = read(c, 5);
    ASSERT_EQ(again.size(), 5u) << c.last_error();
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(seq_of(again[static_cast<std::size_t>(i)]), 5 + i);
      EXPECT_TRUE(again[static_cast<std::size_t>(i)].redelivered);
    }
    // The connection is killed under the consumer while it holds them unacked.
    auto killer = python(R"(
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
print("killed %d" % r.client_kill_filter(_type="normal", skipme=True), flush=True)
)",
                         {service_env("SHMBUS_TEST_REDIS_PORT")});
    auto killed = killer->line(20s).value_or("");
    ASSERT_EQ(killed.rfind("killed ", 0), 0u) << killed;
    auto third = read(c, 5);  // reconnects, reads its pending list again
    ASSERT_EQ(third.size(), 5u) << c.last_error();
    EXPECT_GE(c.reconnects(), 1u);
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(seq_of(third[static_cast<std::size_t>(i)]), 5 + i);
      c.ack(third[static_cast<std::size_t>(i)].id);
    }
    add(10, 15);
    auto fresh = read(c, 5);
    ASSERT_EQ(fresh.size(), 5u);
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(seq_of(fresh[static_cast<std::size_t>(i)]), 10 + i);
      EXPECT_FALSE(fresh[static_cast<std::size_t>(i)].redelivered);
      c.ack(fresh[static_cast<std::size_t>(i)].id);
    }
    std::vector<StreamEntry> none;
    (void)c.poll(100ms, none);
    EXPECT_EQ(c.unacked(), 0u);
  }
  auto pending = python(R"(
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
print("pending %d" % r.xpending(sys.argv[2], "bridge")["pending"], flush=True)
)",
                        {service_env("SHMBUS_TEST_REDIS_PORT"), stream});
  EXPECT_EQ(pending->line(20s).value_or(""), "pending 0");
}
