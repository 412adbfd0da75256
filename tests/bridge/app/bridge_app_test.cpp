// bus-bridge end to end: the bridge as a child process against the redis-server and
// rabbitmq-server of tools/scripts/services.sh, with Python clients (redis-py, pika) on the
// far side, written the way users' code is.
#include <fmt/format.h>

#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <shmbus/admin/encoding.hpp>
#include <shmbus/admin/snapshot.hpp>
#include <shmbus/msg/sys_dead_letter_generated.h>

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
    return fmt::format("amqp: {{port: {}, user: {}, password_env: SHMBUS_TEST_AMQP_PASSWORD, "
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

// Reads a stream from the start; one line per entry: id topic seq type base64(payload).
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
        print(entry_id.decode(), f[b"topic"].decode(), f[b"seq"].decode(), f[b"type"].decode(),
              base64.b64encode(f[b"payload"]).decode(), flush=True)
        got += 1
)";

// Binds a durable queue to the topic exchange, prints "ready", then one line per message:
// topic seq symbol quote.seq bid_px delivery_mode header-seq.
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
    print("%s %d %s %d %.2f %d %s" % (e["topic"], e["seq"], d["symbol"], d["seq"], d["bid_px"],
          props.delivery_mode, props.headers["shmbus-seq"]), flush=True)
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
  const std::string topic = "md.quotes";
  Publisher pub = bus.publisher<md::Quote>(topic, reliable_quotes());

  BridgeProc bridge(fmt::format(R"(bridge: {{name: out, bus: {}, http: {{port: 0}}}}
redis: {{port: {}}}
{}routes:
  - {{name: to-redis, direction: out, to: redis-publish, topics: "md.*"}}
  - {{name: to-stream, direction: out, to: redis-stream, topics: "md.>", prefix: "{}", format: raw, maxlen: 100000}}
  - {{name: to-amqp, direction: out, to: amqp, topics: "md.quotes", exchange: {}}}
)",
                                sb.name(), s.redis, s.yaml_amqp(), stream_prefix, exchange));
  ASSERT_TRUE(bridge.wait_ready()) << bridge.output();

  constexpr std::uint64_t n = 300;
  auto sub = python(kRedisSubscriber, {std::to_string(s.redis), topic, std::to_string(n)});
  ASSERT_TRUE(wait_for_line(*sub, "subscribed"));
  auto args = s.pika_args();
  for (auto a : {exchange, unique_name("q"), std::string("md.#"), std::to_string(n)}) args.push_back(a);
  auto amqp = python(kAmqpConsumer, args);
  ASSERT_TRUE(wait_for_line(*amqp, "ready"));

  publish_quotes(pub, 1, n);

  const auto got = lines(*sub, n);
  ASSERT_EQ(got.size(), n);
  for (std::uint64_t i = 1; i <= n; ++i) EXPECT_EQ(got[i - 1], quote_line(topic, i, i));

  const auto amqp_got = lines(*amqp, n);
  ASSERT_EQ(amqp_got.size(), n);
  for (std::uint64_t i = 1; i <= n; ++i) {
    EXPECT_EQ(amqp_got[i - 1], quote_line(topic, i, i) + " 2 " + std::to_string(i));
  }

  auto reader = python(kStreamReader, {std::to_string(s.redis), stream_prefix + topic, std::to_string(n)});
  const auto entries = lines(*reader, n);
  ASSERT_EQ(entries.size(), n);
  for (std::uint64_t i = 1; i <= n; ++i) {
    std::istringstream in(entries[i - 1]);
    std::string id, t, seq, type, b64;
    in >> id >> t >> seq >> type >> b64;
    EXPECT_EQ(id.substr(id.find('-') + 1), std::to_string(i)) << "entry id derives from the seq";
    EXPECT_EQ(t, topic);
    EXPECT_EQ(seq, std::to_string(i));
    EXPECT_EQ(type, "shmbus.md.Quote");
    const auto bytes = base64_decode(b64);
    ASSERT_TRUE(bytes.has_value());
    flatbuffers::Verifier v(reinterpret_cast<const std::uint8_t*>(bytes->data()), bytes->size());
    ASSERT_TRUE(md::VerifyQuoteBuffer(v)) << "raw payload of entry " << i;
    const auto* q = md::GetQuote(bytes->data());
    EXPECT_EQ(q->symbol()->str(), "S" + std::to_string(i));
    EXPECT_EQ(q->seq(), i);
    EXPECT_DOUBLE_EQ(q->bid_px(), static_cast<double>(i) + 0.5);
  }

  // Each route read the topic as its own registered consumer.
  std::set<std::string> names;
  for (const auto& c : snapshot(bus.open_topic(topic)).consumers) names.insert(c.name);
  EXPECT_EQ(names, (std::set<std::string>{"bridge:to-redis", "bridge:to-stream", "bridge:to-amqp"}));

  const HttpReply health = http_get(bridge.port(), "/health");
  EXPECT_EQ(health.status, 200) << health.body;
  const HttpReply metrics = http_get(bridge.port(), "/metrics");
  EXPECT_NE(metrics.body.find("shmbus_bridge_route_confirmed_total{direction=\"out\",route=\"to-amqp\"} 300"),
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
std::vector<std::string> collect(Subscriber& sub, std::size_t n, std::chrono::milliseconds t = 20s) {
  std::vector<std::string> out;
  eventually(
      [&] {
        sub.poll(typed<md::Quote>([&](const md::Quote& q, const MessageMeta&) {
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
                                sb.name(), s.redis, s.yaml_amqp(), chan, stream, queue, exchange, late));
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
    args.push_back(base64_encode(std::span(reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()),
                                           fbb.GetSize())));
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
  EXPECT_NE(metrics.body.find("shmbus_bridge_route_echo_dropped_total{direction=\"in\",route=\"chan-in\"} 1"),
            std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("shmbus_bridge_dead_lettered_total{route=\"chan-in\"} 2"), std::string::npos);
  auto pending = python(kPending, {std::to_string(s.redis), stream, "bus-bridge"});
  EXPECT_TRUE(wait_for_line(*pending, "pending 0")) << "every stream entry acknowledged";

  // The cause is fixed: the topic of the late message now exists. Redrive re-injects it.
  TopicConfig tc;
  (void)bus.topic<md::Quote>("md.late", tc);
  std::string out;
  const int rc = run({bridge_exe(), "redrive", "--config", bridge.config_file(), "--route", "late-in"}, out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("1 of 1 re-injected"), std::string::npos) << out;
  Subscriber late_sub(bus.open_topic("md.late"), so);
  EXPECT_EQ(collect(late_sub, 1), expected_quotes({7})) << bridge.drain();
  EXPECT_EQ(bridge.terminate(), 0) << bridge.output();
}

}  // namespace
}  // namespace shmbus::test
