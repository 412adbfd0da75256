// bus-bridge end to end: the bridge as a child process against the redis-server and
// rabbitmq-server of tools/scripts/services.sh, with Python clients (redis-py, pika) on the
// far side, written the way users' code is.
#include <fmt/format.h>

#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <shmbus/msg/sys_dead_letter_generated.h>
#include <nlohmann/json.hpp>
#include <shmbus/admin/encoding.hpp>
#include <shmbus/admin/snapshot.hpp>

#include "bridge_app_support.hpp"

namespace shmbus::test {
namespace {

using namespace std::chrono_literals;

struct Servers {
  std::uint16_t redis = service_port("SHMBUS_TEST_REDIS_PORT");
  std::uint16_t amqp = service_port("SHMBUS_TEST_AMQP_PORT");
  std::string amqp_user = service_env("SHMBUS_TEST_AMQP_USER");
  std::string amqp_password = service_env("SHMBUS_TEST_AMQP_PASSWORD");
  std::string amqp_vhost = service_env("SHMBUS_TEST_AMQP_VHOST");
  std::string redis_user = service_env("SHMBUS_TEST_REDIS_USER");
  std::string redis_password = service_env("SHMBUS_TEST_REDIS_PASSWORD");

  [[nodiscard]] std::string yaml_amqp() const {
    return fmt::format(
        "amqp: {{port: {}, user: {}, password_env: SHMBUS_TEST_AMQP_PASSWORD, "
        "vhost: {}}}\n",
        amqp, amqp_user, amqp_vhost);
  }
  [[nodiscard]] std::vector<std::string> pika_args() const {
    return {std::to_string(amqp), amqp_vhost, amqp_user, amqp_password};
  }
};

// ---- Python clients, as users write them

// Prints "subscribed", then one line per message: topic seq symbol quote.seq bid_px.
const char* kRedisSubscriber = R"(
import json, sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
p = r.pubsub()
p.subscribe(sys.argv[2])
want, got = int(sys.argv[3]), 0
for m in p.listen():
    if m["type"] == "subscribe":
        print("subscribed", flush=True)
        continue
    e = json.loads(m["data"])
    d = e["data"]
    print("%s %d %s %d %.2f" % (e["topic"], e["seq"], d["symbol"], d["seq"], d["bid_px"]), flush=True)
    got += 1
    if got == want:
        break
)";

// Reads a stream from the start; one line per entry: id topic bus type base64(payload)
// ts>0 producer>0 [field names].
const char* kStreamReader = R"(
import base64, sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
key, want, got, last = sys.argv[2], int(sys.argv[3]), 0, "0"
while got < want:
    res = r.xread({key: last}, count=500, block=15000)
    if not res:
        print("timeout", flush=True)
        break
    for entry_id, f in res[0][1]:
        last = entry_id
        print(entry_id.decode(), f[b"topic"].decode(), f[b"bus"].decode(), f[b"type"].decode(),
              base64.b64encode(f[b"payload"]).decode(), int(f[b"ts"]) > 0, int(f[b"producer"]) > 0,
              sorted(k.decode() for k in f), flush=True)
        got += 1
)";

// Prints a stream's length and its last entry's id.
const char* kStreamLength = R"(
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
last = r.xrevrange(sys.argv[2], count=1)
print(r.xlen(sys.argv[2]), last[0][0].decode() if last else "none", flush=True)
)";

// Binds a durable queue to the topic exchange, prints "ready", then one line per message:
// topic seq symbol quote.seq bid_px delivery_mode header-seq message_id type app_id
// header-topic.
const char* kAmqpConsumer = R"(
import json, sys, pika
port, vhost, user, pw, exchange, queue, key, want = sys.argv[1:9]
conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(port), vhost, pika.PlainCredentials(user, pw)))
ch = conn.channel()
ch.exchange_declare(exchange, "topic", durable=True)
ch.queue_declare(queue, durable=True)
ch.queue_bind(queue, exchange, key)
print("ready", flush=True)
got = 0
for method, props, body in ch.consume(queue, inactivity_timeout=30):
    if method is None:
        print("timeout", flush=True)
        break
    e = json.loads(body)
    d = e["data"]
    print("%s %d %s %d %.2f %d %s %s %s %s %s" % (e["topic"], e["seq"], d["symbol"], d["seq"], d["bid_px"],
          props.delivery_mode, props.headers["shmbus-seq"], props.message_id, props.type,
          props.app_id, props.headers["shmbus-topic"]), flush=True)
    ch.basic_ack(method.delivery_tag)
    got += 1
    if got == int(want):
        break
ch.queue_delete(queue)
conn.close()
)";

bool wait_for_line(Child& c, const std::string& want, std::chrono::milliseconds t = 20s) {
  std::string seen;
  const bool ok = c.expect_line(want, t, seen);
  if (!ok) ADD_FAILURE() << "no line '" << want << "'; got:\n" << seen;
  return ok;
}

std::vector<std::string> lines(Child& c, std::size_t n, std::chrono::milliseconds t = 30s) {
  std::vector<std::string> out;
  const auto deadline = std::chrono::steady_clock::now() + t;
  while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
    auto l = c.line(std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now()));
    if (!l) break;
    out.push_back(*l);
  }
  return out;
}

TopicConfig reliable_quotes(std::uint32_t slots = 1024) {
  TopicConfig c;
  c.policy = Policy::Reliable;
  c.slot_count = slots;
  return c;
}

void publish_quotes(Publisher& pub, std::uint64_t from, std::uint64_t to) {
  for (std::uint64_t i = from; i <= to; ++i) {
    auto fbb = quote(i);
    ASSERT_EQ(pub.publish(fbb, 30s), PublishResult::Ok) << "message " << i;
  }
}

// ---------------------------------------------------------------------------------------

// A bus producer's messages reach a Redis subscriber (JSON envelope), a Redis stream reader
// (raw FlatBuffers, decoded here) and an AMQP consumer (JSON, persistent: reliable topic): in
// order, complete, equal to what was published. SIGTERM: exit 0, the consumers leave the ring.
TEST(BusBridge, OutboundToRedisPublishStreamAndAmqp) {
  Servers s;
  ScopedBus sb("out");
  Bus bus = sb.open();
  const std::string exchange = unique_name("bx");
  const std::string stream_prefix = unique_name("st") + ".";
  const std::string capped_prefix = unique_name("cap") + ".";
  const std::string topic = "md.quotes";
  Publisher pub = bus.publisher<md::Quote>(topic, reliable_quotes());

  BridgeProc bridge(fmt::format(R"(bridge: {{name: out, bus: {}, http: {{port: 0}}}}
redis: {{port: {}}}
{}routes:
  - {{name: to-redis, direction: out, to: redis-publish, topics: "md.*"}}
  - {{name: to-stream, direction: out, to: redis-stream, topics: "md.>", prefix: "{}", format: raw, maxlen: 100000}}
  - {{name: to-amqp, direction: out, to: amqp, topics: "md.quotes", exchange: {}}}
  - {{name: to-capped, direction: out, to: redis-stream, topics: "md.>", prefix: "{}", maxlen: 10}}
)",
                                sb.name(), s.redis, s.yaml_amqp(), stream_prefix, exchange,
                                capped_prefix));
  ASSERT_TRUE(bridge.wait_ready()) << bridge.output();

  constexpr std::uint64_t n = 300;
  auto sub = python(kRedisSubscriber, {std::to_string(s.redis), topic, std::to_string(n)});
  ASSERT_TRUE(wait_for_line(*sub, "subscribed"));
  auto args = s.pika_args();
  for (auto a : {exchange, unique_name("q"), std::string("md.#"), std::to_string(n)})
    args.push_back(a);
  auto amqp = python(kAmqpConsumer, args);
  ASSERT_TRUE(wait_for_line(*amqp, "ready"));

  publish_quotes(pub, 1, n);

  const auto got = lines(*sub, n);
  ASSERT_EQ(got.size(), n);
  for (std::uint64_t i = 1; i <= n; ++i) EXPECT_EQ(got[i - 1], quote_line(topic, i, i));

  const auto amqp_got = lines(*amqp, n);
  ASSERT_EQ(amqp_got.size(), n);
  for (std::uint64_t i = 1; i <= n; ++i) {
    // Metadata: seq and topic as headers, the rest in basic properties.
    EXPECT_EQ(amqp_got[i - 1],
              fmt::format("{} 2 {} {}/{}/{} shmbus.md.Quote {} {}", quote_line(topic, i, i), i,
                          sb.name(), topic, i, sb.name(), topic));
  }

  auto reader =
      python(kStreamReader, {std::to_string(s.redis), stream_prefix + topic, std::to_string(n)});
  const auto entries = lines(*reader, n);
  ASSERT_EQ(entries.size(), n);
  for (std::uint64_t i = 1; i <= n; ++i) {
    std::istringstream in(entries[i - 1]);
    std::string id, t, bus_name, type, b64, rest;
    in >> id >> t >> bus_name >> type >> b64;
    std::getline(in, rest);
    // The bus sequence is the entry ID's second part (not repeated as a field).
    EXPECT_EQ(id.substr(id.find('-') + 1), std::to_string(i)) << "entry id derives from the seq";
    EXPECT_EQ(t, topic);
    EXPECT_EQ(bus_name, sb.name());
    EXPECT_EQ(type, "shmbus.md.Quote");
    EXPECT_EQ(rest, " True True ['bus', 'payload', 'producer', 'topic', 'ts', 'type']");
    const auto bytes = base64_decode(b64);
    ASSERT_TRUE(bytes.has_value());
    flatbuffers::Verifier v(reinterpret_cast<const std::uint8_t*>(bytes->data()), bytes->size());
    ASSERT_TRUE(md::VerifyQuoteBuffer(v)) << "raw payload of entry " << i;
    const auto* q = md::GetQuote(bytes->data());
    EXPECT_EQ(q->symbol()->str(), "S" + std::to_string(i));
    EXPECT_EQ(q->seq(), i);
    EXPECT_DOUBLE_EQ(q->bid_px(), static_cast<double>(i) + 0.5);
  }

  // maxlen: the stream is trimmed (MAXLEN ~ on every 64th entry: whole nodes of 100) and
  // still ends with the last message.
  const auto capped_done = [&] {
    auto len = python(kStreamLength, {std::to_string(s.redis), capped_prefix + topic});
    const auto l = lines(*len, 1);
    return l.empty() ? std::string() : l[0];
  };
  std::string capped;
  for (auto until = std::chrono::steady_clock::now() + 20s;
       std::chrono::steady_clock::now() < until;) {
    capped = capped_done();
    if (capped.size() > 4 && capped.substr(capped.size() - 4) == "-300") break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(capped.size() > 4 && capped.compare(capped.size() - 4, 4, "-300") == 0)
      << "the capped stream did not get every message: " << capped;
  EXPECT_LT(std::stoul(capped.substr(0, capped.find(' '))), 300u)
      << "maxlen 10 did not trim the stream: " << capped;

  // Each route read the topic as its own registered consumer.
  std::set<std::string> names;
  for (const auto& c : snapshot(bus.open_topic(topic)).consumers) names.insert(c.name);
  EXPECT_EQ(names, (std::set<std::string>{"bridge:to-redis", "bridge:to-stream", "bridge:to-amqp",
                                          "bridge:to-capped"}));

  const HttpReply health = http_get(bridge.port(), "/health");
  EXPECT_EQ(health.status, 200) << health.body;
  const HttpReply metrics = http_get(bridge.port(), "/metrics");
  EXPECT_NE(metrics.body.find(
                "shmbus_bridge_route_confirmed_total{direction=\"out\",route=\"to-amqp\"} 300"),
            std::string::npos)
      << metrics.body;

  EXPECT_EQ(bridge.terminate(), 0) << bridge.output();
  EXPECT_TRUE(snapshot(bus.open_topic(topic)).consumers.empty()) << "deregistered at shutdown";
}

}  // namespace
}  // namespace shmbus::test

namespace shmbus::test {
namespace {

// Sends what the inbound test expects, the way a user's Python service would.
const char* kInboundSender = R"(
import base64, json, sys, pika, redis
rport, chan, stream, late, exchange, own_bus = sys.argv[1:7]
aport, vhost, user, pw = sys.argv[7:11]
raw = [base64.b64decode(b) for b in sys.argv[11:]]
r = redis.Redis(host="127.0.0.1", port=int(rport))
def q(i):
    return {"symbol": "S%d" % i, "seq": i, "bid_px": i + 0.5, "bid_qty": 100.0, "instrument_id": i, "venue": "XNAS"}
for i in (1, 2):
    r.publish(chan, json.dumps(q(i)))
r.publish(chan, "this is not json")
r.publish(chan, json.dumps({"topic": "md.trades", "type": "shmbus.md.Trade", "data": {"symbol": "T"}}))
r.publish(chan, json.dumps({"topic": "md.quotes", "type": "shmbus.md.Quote", "bus": own_bus, "data": q(99)}))
r.publish(chan, json.dumps(q(3)))
for i in (1, 2, 3):
    r.xadd(stream, {"json": json.dumps({"topic": "md.quotes", "type": "shmbus.md.Quote", "bus": "elsewhere", "data": q(i)})})
r.xadd(stream, {"json": json.dumps({"symbol": "X", "no_such_field": 1})})
r.publish(late, json.dumps({"topic": "md.late", "data": q(7)}))
conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(aport), vhost, pika.PlainCredentials(user, pw)))
ch = conn.channel()
ch.confirm_delivery()
for body in raw[:2] + [b"\x01\x02 not a flatbuffer at all"] + raw[2:]:
    ch.basic_publish(exchange, "in.quotes", body, pika.BasicProperties(delivery_mode=2, content_type="application/x-flatbuffers"))
conn.close()
print("sent", flush=True)
)";

const char* kPending = R"(
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
print("pending %d" % r.xpending(sys.argv[2], sys.argv[3])["pending"], flush=True)
)";

// Collects the messages of a topic as "symbol seq bid_px" lines.
std::vector<std::string> collect(Subscriber& sub, std::size_t n,
                                 std::chrono::milliseconds t = 20s) {
  std::vector<std::string> out;
  eventually(
      [&] {
        sub.poll(
            typed<md::Quote>([&](const md::Quote& q, const MessageMeta&) {
              out.push_back(fmt::format("{} {} {:.2f}", q.symbol()->str(), q.seq(), q.bid_px()));
            }),
            64);
        return out.size() >= n;
      },
      t);
  return out;
}

struct Letter {
  std::string source, topic, reason;
  sys::DeadLetterReason code;
};

std::vector<Letter> dead_letters(Bus& bus, const std::string& topic, std::size_t n) {
  std::vector<Letter> out;
  SubscriberOptions so;
  so.start = Start::Oldest;
  so.register_consumer = false;
  Subscriber sub(bus.wait_for_topic(topic, 10s), so);
  eventually(
      [&] {
        sub.poll(typed<sys::DeadLetter>([&](const sys::DeadLetter& d, const MessageMeta&) {
                   out.push_back({d.source()->str(), d.original_topic()->str(),
                                  d.reason() ? d.reason()->str() : "", d.reason_code()});
                 }),
                 64);
        return out.size() >= n;
      },
      20s);
  return out;
}

std::vector<std::string> expected_quotes(std::initializer_list<int> ids) {
  std::vector<std::string> v;
  for (int i : ids) v.push_back(fmt::format("S{} {} {:.2f}", i, i, i + 0.5));
  return v;
}

// Inbound from a Redis channel (JSON), a Redis stream (JSON envelopes, consumer group) and an
// AMQP queue (raw FlatBuffers) onto typed bus topics; invalid JSON, a wrong type, an unknown
// field and bytes that fail the verifier are dead letters with their reasons, nothing of
// them is published; a message from our own bus is dropped (no echo); stream entries are all
// acknowledged. Then redrive: a message for a topic that did not exist is re-injected once
// the topic exists, and arrives.
TEST(BusBridge, InboundDeadLettersAndRedrive) {
  Servers s;
  ScopedBus sb("in");
  Bus bus = sb.open();
  const std::string chan = unique_name("chan"), stream = unique_name("stream"),
                    late = unique_name("late"), exchange = unique_name("ix"),
                    queue = unique_name("iq");
  BridgeProc bridge(fmt::format(R"(bridge: {{name: inb, bus: {}, http: {{port: 0}}}}
redis: {{port: {}}}
{}routes:
  - {{name: chan-in, direction: in, from: redis-channel, channel: {}, topic: md.in.chan, type: shmbus.md.Quote}}
  - {{name: stream-in, direction: in, from: redis-stream, stream: {}, start: "0", topic: md.in.stream, type: shmbus.md.Quote, policy: reliable}}
  - {{name: amqp-in, direction: in, from: amqp, queue: {}, exchange: {}, bindings: ["in.#"], format: raw, topic: md.in.amqp, type: shmbus.md.Quote, policy: reliable}}
  - {{name: late-in, direction: in, from: redis-channel, channel: {}, accept: "md.>"}}
)",
                                sb.name(), s.redis, s.yaml_amqp(), chan, stream, queue, exchange,
                                late));
  ASSERT_TRUE(bridge.wait_ready()) << bridge.output();

  SubscriberOptions so;
  so.start = Start::Oldest;
  Subscriber from_chan(bus.open_topic("md.in.chan"), so);
  Subscriber from_stream(bus.open_topic("md.in.stream"), so);
  Subscriber from_amqp(bus.open_topic("md.in.amqp"), so);

  std::vector<std::string> args{std::to_string(s.redis), chan, stream, late, exchange, sb.name()};
  for (const auto& a : s.pika_args()) args.push_back(a);
  for (int i = 1; i <= 3; ++i) {
    auto fbb = quote(static_cast<std::uint64_t>(i));
    args.push_back(base64_encode(
        std::span(reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()), fbb.GetSize())));
  }
  auto sender = python(kInboundSender, args);
  ASSERT_TRUE(wait_for_line(*sender, "sent"));

  EXPECT_EQ(collect(from_chan, 3), expected_quotes({1, 2, 3}));
  EXPECT_EQ(collect(from_stream, 3), expected_quotes({1, 2, 3}));
  EXPECT_EQ(collect(from_amqp, 3), expected_quotes({1, 2, 3}));

  auto letters = dead_letters(bus, "sys.deadletter.inb", 5);
  ASSERT_EQ(letters.size(), 5u) << bridge.drain();
  std::map<std::string, std::vector<sys::DeadLetterReason>> by_route;
  for (const auto& l : letters) {
    by_route[l.source].push_back(l.code);
    EXPECT_FALSE(l.reason.empty());
  }
  using R = sys::DeadLetterReason;
  EXPECT_EQ(by_route["inb/chan-in"], (std::vector<R>{R::InvalidJson, R::SchemaMismatch}));
  EXPECT_EQ(by_route["inb/stream-in"], (std::vector<R>{R::InvalidJson}));
  EXPECT_EQ(by_route["inb/amqp-in"], (std::vector<R>{R::VerifyFailed}));
  EXPECT_EQ(by_route["inb/late-in"], (std::vector<R>{R::UnknownType}));
  for (const auto& l : letters) {
    if (l.source == "inb/stream-in") {
      EXPECT_NE(l.reason.find("no_such_field"), std::string::npos) << l.reason;
    }
  }
  // Nothing else was published: the three good ones only (the echo was dropped, counted).
  std::this_thread::sleep_for(200ms);  // a late extra message would have arrived by now
  EXPECT_EQ(from_chan.topic().head_hint(), 3u);
  EXPECT_EQ(from_amqp.topic().head_hint(), 3u);
  const HttpReply metrics = http_get(bridge.port(), "/metrics");
  EXPECT_NE(metrics.body.find(
                "shmbus_bridge_route_echo_dropped_total{direction=\"in\",route=\"chan-in\"} 1"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("shmbus_bridge_dead_lettered_total{route=\"chan-in\"} 2"),
            std::string::npos);
  auto pending = python(kPending, {std::to_string(s.redis), stream, "bus-bridge"});
  EXPECT_TRUE(wait_for_line(*pending, "pending 0")) << "every stream entry acknowledged";

  // The cause is fixed: the topic of the late message now exists. Redrive re-injects it.
  TopicConfig tc;
  (void)bus.topic<md::Quote>("md.late", tc);
  std::string out;
  const int rc =
      run({bridge_exe(), "redrive", "--config", bridge.config_file(), "--route", "late-in"}, out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("1 of 1 re-injected"), std::string::npos) << out;
  Subscriber late_sub(bus.open_topic("md.late"), so);
  EXPECT_EQ(collect(late_sub, 1), expected_quotes({7})) << bridge.drain();
  EXPECT_EQ(bridge.terminate(), 0) << bridge.output();
}

}  // namespace
}  // namespace shmbus::test

namespace shmbus::test {
namespace {

// A redis-server of the test's own (so it can be killed), with an append-only file synced on
// every write: what it confirmed survives a SIGKILL.
class PrivateRedis {
 public:
  explicit PrivateRedis(std::vector<std::string> extra = {})
      : port_(free_port()), extra_(std::move(extra)) {
    dir_ = std::filesystem::temp_directory_path() / unique_name("redis");
    std::filesystem::create_directories(dir_);
    start();
  }
  ~PrivateRedis() {
    kill();
    std::filesystem::remove_all(dir_);
  }
  void start() {
    std::string out;
    std::vector<std::string> argv{"redis-server",
                                  "--port",
                                  std::to_string(port_),
                                  "--bind",
                                  "127.0.0.1",
                                  "--daemonize",
                                  "yes",
                                  "--save",
                                  "",
                                  "--appendonly",
                                  "yes",
                                  "--appendfsync",
                                  "always",
                                  "--dir",
                                  dir_.string(),
                                  "--pidfile",
                                  (dir_ / "redis.pid").string(),
                                  "--logfile",
                                  (dir_ / "redis.log").string()};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    ASSERT_EQ(run(argv, out), 0) << out;
    ASSERT_TRUE(eventually(
        [&] {
          std::string o;
          return run({"redis-cli", "-p", std::to_string(port_), "PING"}, o, 2s) == 0 &&
                 o.find("PONG") != std::string::npos;
        },
        10s));
  }
  void kill() {
    std::ifstream f(dir_ / "redis.pid");
    pid_t pid = 0;
    if (f >> pid && pid > 0) {
      ::kill(pid, SIGKILL);
      eventually([&] { return ::kill(pid, 0) != 0; }, 5s);
    }
    std::filesystem::remove(dir_ / "redis.pid");
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  // redis-server's log (for failure messages).
  [[nodiscard]] std::string log() const {
    std::ifstream f(dir_ / "redis.log");
    return std::string(std::istreambuf_iterator<char>(f), {});
  }

 private:
  std::uint16_t port_;
  std::vector<std::string> extra_;
  std::filesystem::path dir_;
};

const char* kStreamCheck = R"(
import json, sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
seqs = [json.loads(f[b"json"])["seq"] for _, f in r.xrange(sys.argv[2])]
want = list(range(1, int(sys.argv[3]) + 1))
missing = sorted(set(want) - set(seqs))
print("count %d exact %s" % (len(seqs), seqs == want), "missing", missing[:3], missing[-3:],
      "unordered", sum(1 for a, b in zip(seqs, seqs[1:]) if b <= a), flush=True)
)";

// A bridge with one outbound route "st": orders.> into Redis streams "<prefix>.<topic>", with
// a short reconnect backoff (the restart tests).
std::string stream_route_yaml(const std::string& name, const std::string& bus, std::uint16_t port,
                              const std::string& prefix, int initial_ms, int max_ms) {
  return fmt::format(
      R"(bridge: {{name: {}, bus: {}, http: {{port: 0}}, backoff: {{initial_ms: {}, max_ms: {}}}}}
redis: {{port: {}, connect_timeout_ms: 500}}
routes:
  - {{name: st, direction: out, to: redis-stream, topics: "orders.>", prefix: "{}."}}
)",
      name, bus, initial_ms, max_ms, port, prefix);
}

// Awaits (60 s) the stream `key` holding seqs 1..n exactly once, in order, as a redis-py
// reader sees them; on failure says what it misses and what the bridge says.
void expect_stream_exact(const PrivateRedis& redis, const std::string& key, std::uint64_t n,
                         BridgeProc& bridge) {
  const std::string want = "count " + std::to_string(n) + " exact True";
  std::string last = "(no answer from the checker)";
  EXPECT_TRUE(eventually(
      [&] {
        auto check = python(kStreamCheck, {std::to_string(redis.port()), key, std::to_string(n)});
        auto l = check->line(30s);
        if (l) last = *l;
        return l && l->starts_with(want);
      },
      60s))
      << "last check: " << last << "\n"
      << bridge.drain() << "\n"
      << http_get(bridge.port(), "/metrics").body;
}

// The Redis server is SIGKILLed mid-stream on a reliable topic and restarted: /health goes
// 503 and back to 200, the producer is held back by the ring meanwhile, the reconnect is
// counted, and the stream holds every message exactly once, in order.
TEST(BusBridge, RemoteKilledAndRestartedMidStream) {
  PrivateRedis redis;
  ScopedBus sb("kill");
  Bus bus = sb.open();
  Publisher pub = bus.publisher<md::Quote>("orders.q", reliable_quotes(256));
  const std::string stream = unique_name("ks");
  BridgeProc bridge(stream_route_yaml("kill", sb.name(), redis.port(), stream, 50, 300));
  ASSERT_TRUE(bridge.wait_ready()) << bridge.output();
  EXPECT_EQ(http_get(bridge.port(), "/health").status, 200);

  constexpr std::uint64_t n = 3000;
  QuoteProducer producer(pub, n, 60s);
  ASSERT_TRUE(eventually([&] { return producer.published() >= 800; }, 20s));
  redis.kill();
  EXPECT_TRUE(eventually([&] { return http_get(bridge.port(), "/health").status == 503; }, 10s));
  // The ring (256 slots) holds the producer back while the remote is down.
  const std::uint64_t stalled = producer.published();
  std::this_thread::sleep_for(300ms);
  EXPECT_LE(producer.published(), stalled + 300) << "the producer is held back, not dropping";
  redis.start();
  EXPECT_TRUE(eventually([&] { return http_get(bridge.port(), "/health").status == 200; }, 15s))
      << bridge.drain();
  producer.join();
  ASSERT_EQ(producer.published(), n);

  // Every message, exactly once, in order.
  expect_stream_exact(redis, stream + ".orders.q", n, bridge);
  const std::string m = http_get(bridge.port(), "/metrics").body;
  EXPECT_GE(metric(m, "shmbus_bridge_route_reconnects_total{direction=\"out\",route=\"st\"}"), 1.0)
      << m;
  EXPECT_EQ(metric(m, "shmbus_bridge_route_dropped_total{direction=\"out\",route=\"st\"}"), 0.0);
  EXPECT_EQ(bridge.terminate(), 0);
  // Logged once per state change, not per attempt.
  EXPECT_EQ(occurrences(bridge.output(), "disconnected"), 1u)
      << bridge.output() << "\nredis-server's log:\n"
      << redis.log();
}

// A restarted redis-server accepts connections while it loads its dataset and answers every
// command with -LOADING until done. The bridge must not send the stream's entries then (each
// would fail, be dead-lettered, and the stream would miss them): its link is ready only once
// PING is answered. The dataset is made large enough that loading outlasts the backoff.
TEST(BusBridge, RemoteRestartedWhileLoadingItsDatasetLosesNothing) {
  PrivateRedis redis({"--enable-debug-command", "local"});
  const auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"redis-cli", "-p", std::to_string(redis.port())});
    std::string out;
    EXPECT_EQ(run(args, out, 60s), 0) << out;
    return out;
  };
  cli({"DEBUG", "POPULATE", "2000000", "filler", "16"});
  cli({"BGREWRITEAOF"});
  ASSERT_TRUE(eventually(
      [&] {
        const std::string info = cli({"INFO", "persistence"});
        return info.find("aof_rewrite_in_progress:0") != std::string::npos &&
               info.find("aof_rewrite_scheduled:0") != std::string::npos;
      },
      60s));

  ScopedBus sb("load");
  Bus bus = sb.open();
  Publisher pub = bus.publisher<md::Quote>("orders.q", reliable_quotes(256));
  const std::string stream = unique_name("ls");
  BridgeProc bridge(stream_route_yaml("load", sb.name(), redis.port(), stream, 20, 100));
  ASSERT_TRUE(bridge.wait_ready()) << bridge.output();

  constexpr std::uint64_t n = 2000;
  QuoteProducer producer(pub, n, 120s);
  ASSERT_TRUE(eventually([&] { return producer.published() >= 500; }, 20s));
  redis.kill();
  EXPECT_TRUE(eventually([&] { return http_get(bridge.port(), "/health").status == 503; }, 10s));
  redis.start();  // returns once PING answers PONG: loading is over
  ASSERT_TRUE(eventually([&] { return http_get(bridge.port(), "/health").status == 200; }, 15s))
      << bridge.drain();
  // The window was really hit: the bridge's last failed attempt met -LOADING.
  EXPECT_NE(http_get(bridge.port(), "/health").body.find("LOADING"), std::string::npos)
      << http_get(bridge.port(), "/health").body << "\nredis-server's log:\n"
      << redis.log();
  producer.join();
  ASSERT_EQ(producer.published(), n);
  expect_stream_exact(redis, stream + ".orders.q", n, bridge);
  const std::string m = http_get(bridge.port(), "/metrics").body;
  EXPECT_EQ(metric(m, "shmbus_bridge_dead_lettered_total{route=\"st\"}"), 0.0) << m;
  EXPECT_EQ(metric(m, "shmbus_bridge_route_failed_total{direction=\"out\",route=\"st\"}"), 0.0);
  EXPECT_EQ(bridge.terminate(), 0);
}

// Federation: bus A -> RabbitMQ -> bus B and bus B -> RabbitMQ -> bus A through one topic
// exchange, both ways at once: every message arrives, in order, typed; nothing echoes back
// (each bridge drops what came from its own bus, and does not forward what it published).
TEST(BusBridge, FederationThroughAmqpBothWaysWithoutEcho) {
  Servers s;
  ScopedBus sa("fa"), sbb("fb");
  Bus a = sa.open(), b = sbb.open();
  Publisher pa = a.publisher<md::Quote>("x.from-a", reliable_quotes());
  Publisher pb = b.publisher<md::Quote>("x.from-b", reliable_quotes());
  const std::string exchange = unique_name("fed");
  const auto cfg = [&](const std::string& name, const std::string& bus) {
    return fmt::format(R"(bridge: {{name: {0}, bus: {1}, http: {{port: 0}}}}
{2}routes:
  - {{name: out, direction: out, to: amqp, topics: "x.>", exchange: {3}}}
  - {{name: in, direction: in, from: amqp, queue: {3}-{0}, exchange: {3}, bindings: ["x.#"], accept: "x.>", policy: reliable}}
)",
                       name, bus, s.yaml_amqp(), exchange);
  };
  BridgeProc ba(cfg("fa", sa.name()), "fa"), bb(cfg("fb", sbb.name()), "fb");
  ASSERT_TRUE(ba.wait_ready()) << ba.output();
  ASSERT_TRUE(bb.wait_ready()) << bb.output();

  constexpr std::uint64_t n = 500;
  publish_quotes(pa, 1, n);
  publish_quotes(pb, 1001, 1000 + n);

  SubscriberOptions so;
  so.start = Start::Oldest;
  Subscriber at_b(b.wait_for_topic("x.from-a", 20s), so);
  Subscriber at_a(a.wait_for_topic("x.from-b", 20s), so);
  std::vector<std::string> want_b, want_a;
  for (std::uint64_t i = 1; i <= n; ++i) {
    want_b.push_back(fmt::format("S{} {} {:.2f}", i, i, static_cast<double>(i) + 0.5));
    want_a.push_back(
        fmt::format("S{} {} {:.2f}", i + 1000, i + 1000, static_cast<double>(i + 1000) + 0.5));
  }
  EXPECT_EQ(collect(at_b, n), want_b);
  EXPECT_EQ(collect(at_a, n), want_a);
  EXPECT_EQ(at_b.topic().type_name(), "shmbus.md.Quote");

  // No echo: each bus's own topic still holds exactly its own n messages, and each bridge
  // counted the copies of its own messages that came back to it.
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(pa.topic().head_hint(), n);
  EXPECT_EQ(pb.topic().head_hint(), n);
  for (BridgeProc* br : {&ba, &bb}) {
    const std::string m = http_get(br->port(), "/metrics").body;
    EXPECT_EQ(metric(m, "shmbus_bridge_route_echo_dropped_total{direction=\"in\",route=\"in\"}"),
              static_cast<double>(n))
        << m;
    EXPECT_EQ(metric(m, "shmbus_bridge_route_echo_dropped_total{direction=\"out\",route=\"out\"}"),
              static_cast<double>(n))
        << m;
  }
  EXPECT_EQ(ba.terminate(), 0);
  EXPECT_EQ(bb.terminate(), 0);
}

// Federation bus A -> Redis stream -> bus B: every message, in order, typed.
TEST(BusBridge, FederationThroughRedisStream) {
  Servers s;
  ScopedBus sa("sa"), sbb("sb");
  Bus a = sa.open(), b = sbb.open();
  Publisher pa = a.publisher<md::Quote>("md.fed", reliable_quotes());
  const std::string prefix = unique_name("fs") + ".";
  BridgeProc ba(fmt::format(R"(bridge: {{name: sa, bus: {}, http: {{port: 0}}}}
redis: {{port: {}}}
routes: [{{name: out, direction: out, to: redis-stream, topics: "md.>", prefix: "{}"}}]
)",
                            sa.name(), s.redis, prefix),
                "sa");
  BridgeProc bb(fmt::format(R"(bridge: {{name: sb, bus: {}, http: {{port: 0}}}}
redis: {{port: {}}}
routes: [{{name: in, direction: in, from: redis-stream, stream: {}md.fed, start: "0", accept: "md.>", policy: reliable}}]
)",
                            sbb.name(), s.redis, prefix),
                "sb");
  ASSERT_TRUE(ba.wait_ready()) << ba.output();
  ASSERT_TRUE(bb.wait_ready()) << bb.output();
  constexpr std::uint64_t n = 1000;
  publish_quotes(pa, 1, n);
  SubscriberOptions so;
  so.start = Start::Oldest;
  Subscriber at_b(b.wait_for_topic("md.fed", 20s), so);
  std::vector<std::string> want;
  for (std::uint64_t i = 1; i <= n; ++i)
    want.push_back(fmt::format("S{} {} {:.2f}", i, i, static_cast<double>(i) + 0.5));
  EXPECT_EQ(collect(at_b, n), want);
  EXPECT_EQ(ba.terminate(), 0);
  EXPECT_EQ(bb.terminate(), 0);
}

// /metrics passes promtool; the Redis and AMQP passwords appear nowhere: not in the log,
// /health, /metrics, nor in the error of a login that fails.
TEST(BusBridge, MetricsPassPromtoolAndSecretsNeverShow) {
  Servers s;
  ScopedBus sb("sec");
  Bus bus = sb.open();
  Publisher pub = bus.publisher<md::Quote>("md.s", reliable_quotes());
  ::setenv("SHMBUS_TEST_REDIS_PASSWORD", s.redis_password.c_str(), 1);
  BridgeProc bridge(fmt::format(R"(bridge: {{name: sec, bus: {}, http: {{port: 0}}}}
redis: {{port: {}, user: {}, password_env: SHMBUS_TEST_REDIS_PASSWORD}}
amqp: {{port: {}, user: {}, password: "{}", vhost: {}}}
routes:
  - {{name: r, direction: out, to: redis-publish, topics: "md.>"}}
  - {{name: a, direction: out, to: amqp, topics: "md.>", exchange: {}}}
)",
                                sb.name(), s.redis, s.redis_user, s.amqp, s.amqp_user,
                                s.amqp_password, s.amqp_vhost, unique_name("sx")));
  ASSERT_TRUE(bridge.wait_ready()) << bridge.output();
  publish_quotes(pub, 1, 20);  // unroutable at AMQP: dead letters, logged reasons
  const HttpReply health = http_get(bridge.port(), "/health");
  EXPECT_EQ(health.status, 200) << health.body;
  ASSERT_TRUE(eventually(
      [&] {
        return metric(http_get(bridge.port(), "/metrics").body,
                      "shmbus_bridge_dead_lettered_total{route=\"a\"}") == 20.0;
      },
      10s));
  const HttpReply metrics = http_get(bridge.port(), "/metrics");
  TempFile file("metrics.txt", metrics.body);
  std::string out;
  EXPECT_EQ(run({"sh", "-c", "promtool check metrics < '" + file.str() + "'"}, out), 0)
      << out << "\n"
      << metrics.body;
  EXPECT_EQ(bridge.terminate(), 0);

  // Wrong passwords: the start fails (exit 2), naming the server, never the password.
  const std::string wrong = "wrong-" + unique_name("pw") + "-secret";
  std::string err_redis, err_amqp;
  TempFile bad_redis("bad-redis.yaml", fmt::format(R"(bridge: {{name: sec2, bus: {}}}
redis: {{port: {}, user: {}, password: "{}", connect_timeout_ms: 1000}}
routes: [{{name: r, direction: out, to: redis-publish, topics: "md.>"}}]
)",
                                                   sb.name(), s.redis, s.redis_user, wrong));
  EXPECT_EQ(run({bridge_exe(), "--config", bad_redis.str()}, err_redis), 2) << err_redis;
  TempFile bad_amqp("bad-amqp.yaml",
                    fmt::format(R"(bridge: {{name: sec3, bus: {}}}
amqp: {{port: {}, user: {}, password: "{}", vhost: {}, connect_timeout_ms: 2000}}
routes: [{{name: a, direction: out, to: amqp, topics: "md.>"}}]
)",
                                sb.name(), s.amqp, s.amqp_user, wrong, s.amqp_vhost));
  EXPECT_EQ(run({bridge_exe(), "--config", bad_amqp.str()}, err_amqp), 2) << err_amqp;
  EXPECT_NE(err_redis.find("bad-redis.yaml:2: redis"), std::string::npos) << err_redis;
  EXPECT_NE(err_amqp.find("bad-amqp.yaml:2: amqp"), std::string::npos) << err_amqp;

  for (const std::string* text : std::initializer_list<const std::string*>{
           &bridge.output(), &health.body, &metrics.body, &err_redis, &err_amqp}) {
    for (const std::string& secret : {s.redis_password, s.amqp_password, wrong}) {
      EXPECT_EQ(text->find(secret), std::string::npos) << "secret in:\n" << *text;
    }
  }
}

// Bad configuration: exit 2 and "<file>:<line>: <key>: <what>", nothing started.
TEST(BusBridge, BadConfigurationExitsTwoNamingFileLineAndKey) {
  Servers s;
  ScopedBus sb("cfg");
  Bus bus = sb.open();
  (void)bus.topic<md::Quote>("md.typed", TopicConfig{});
  struct Case {
    std::string yaml, want;
  };
  const std::string head =
      fmt::format("bridge: {{name: cfg, bus: {}}}\nredis: {{port: {}}}\n", sb.name(), s.redis);
  const std::vector<Case> cases = {
      {head + "routes:\n  - name: r\n    direction: out\n    to: redis-publish\n    topics: md.>\n "
              "   colour: blue\n",
       ":8: routes[0].colour: unknown key"},
      {head + "routes:\n  - name: r\n    direction: out\n    to: redis-publish\n    topics: "
              "\"md.q*\"\n",
       ":7: routes[0].topics: bad topic pattern"},
      {head + "routes:\n  - {name: r, direction: out, to: redis-publish, topics: md.>, window: "
              "many}\n",
       ":4: routes[0].window: expected an integer"},
      {head + "routes:\n  - name: r\n    direction: in\n    from: redis-channel\n    channel: c\n  "
              "  topic: md.typed\n    type: shmbus.md.Trade\n",
       ":9: routes[0].type: route 'r' cannot publish on topic 'md.typed'"},
      {fmt::format("bridge: {{name: cfg, bus: {}}}\nredis: {{port: {}, connect_timeout_ms: 300}}\n"
                   "routes: [{{name: r, direction: out, to: redis-publish, topics: md.>}}]\n",
                   sb.name(), free_port()),
       ":2: redis: route 'r' cannot reach redis"},
  };
  int i = 0;
  for (const auto& c : cases) {
    TempFile f("case" + std::to_string(i++) + ".yaml", c.yaml);
    std::string out;
    EXPECT_EQ(run({bridge_exe(), "--config", f.str()}, out), 2) << c.yaml << out;
    EXPECT_NE(out.find(f.str() + c.want), std::string::npos)
        << "want " << c.want << "\ngot " << out;
  }
  // The flags path names the flag.
  std::string out;
  EXPECT_EQ(
      run({bridge_exe(), "--bus", sb.name(), "--redis", "127.0.0.1:1", "--out", "md.>.x"}, out), 2);
  EXPECT_NE(out.find("command line: --out md.>.x: bad topic pattern"), std::string::npos) << out;
  // The example configuration parses (it fails only at connecting: exit 2 naming redis).
  out.clear();
  EXPECT_EQ(run({bridge_exe(), "--help"}, out), 0);
  EXPECT_NE(out.find("md.> matches"), std::string::npos) << out;
}

}  // namespace
}  // namespace shmbus::test
