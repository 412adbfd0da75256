// bridge-bench: bus-bridge's throughput and latency against real servers, next to plain
// clients against the same servers, in one run.
//
//   throughput   a producer publishes N Quotes (200 bytes as FlatBuffers) on a reliable bus
//                topic; one outbound route of an in-process Bridge (the code bus-bridge runs:
//                a registered consumer reading the ring, the envelope, the pipelined /
//                confirmed transport) carries them to Redis PUBLISH, Redis XADD MAXLEN ~ or
//                RabbitMQ (durable queue bound, persistent, publisher confirms); msg/s from
//                the first publish to the last confirmation. Baselines against the same
//                servers: redis-benchmark -P 16 (PUBLISH / XADD of 200 B), and a rabbitmq-c
//                publisher with confirms and a window of 256 unconfirmed messages written
//                here (plain_amqp below).
//   latency      a paced producer (--rate msg/s) stamps each Quote's exchange_ts with the
//                wall clock just before publishing; the receiver takes now - exchange_ts:
//                bus -> Redis subscriber (hiredis, SUBSCRIBE), and federation bus A ->
//                Redis stream -> bus B and bus A -> RabbitMQ -> bus B (two Bridges).
//
// Servers: taken from flags, by default from the SHMBUS_TEST_* variables that
// tools/scripts/services.sh exports (bench/bridge/run.sh starts them, runs this, stops them).
// The AMQP password comes from the environment only (never printed).
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <shmbus/msg/md_quote_generated.h>
#include <CLI/CLI.hpp>
#include <shmbus/admin/envelope.hpp>
#include <shmbus/core/bus.hpp>
#include <shmbus/core/publisher.hpp>
#include <shmbus/core/subscriber.hpp>

#include "bridge.hpp"
#include "config.hpp"
#include "routes.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using shmbus::bridge::Bridge;

struct Options {
  std::string redis_host = "127.0.0.1";
  int redis_port = 0;
  std::string amqp_host = "127.0.0.1";
  int amqp_port = 0;
  std::string amqp_user;
  std::string amqp_vhost = "/";
  std::string amqp_password_env = "SHMBUS_TEST_AMQP_PASSWORD";
  std::size_t messages = 300000;
  std::size_t amqp_messages = 40000;
  std::size_t rounds = 1;
  std::vector<std::string> formats{"json", "raw"};
  std::vector<std::string> parts{"throughput", "latency"};
  double rate = 10000;
  std::size_t latency_messages = 30000;
  std::string redis_benchmark = "redis-benchmark";
  bool plain_mandatory = false;  // the plain AMQP publisher sets mandatory, as the bridge
  bool plain_metadata = false;   // ... and sends the bridge's properties and headers
};

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

std::int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A Quote of exactly (or just over) 200 bytes: the symbol is padded to get there.
class QuoteMaker {
 public:
  QuoteMaker() {
    for (std::size_t pad = 1; pad < 200; ++pad) {
      pad_ = pad;
      if (build(1, 0).GetSize() >= 200) break;
    }
  }
  flatbuffers::FlatBufferBuilder build(std::uint64_t i, std::uint64_t stamp) const {
    flatbuffers::FlatBufferBuilder fbb(256);
    std::string sym = "S" + std::to_string(i % 1000);
    sym.resize(pad_, 'X');
    fbb.Finish(shmbus::md::CreateQuoteDirect(fbb, sym.c_str(), i, "XNAS", stamp, 0, i,
                                             static_cast<double>(i) + 0.5, 100.0),
               shmbus::md::QuoteIdentifier());
    return fbb;
  }

 private:
  std::size_t pad_ = 1;
};

std::string unique(const std::string& tag) {
  static int n = 0;
  return fmt::format("{}-{}-{}", tag, ::getpid(), n++);
}

// A bus of the benchmark's own, removed at the end.
struct ScopedBus {
  std::string name;
  shmbus::Bus bus;
  explicit ScopedBus(const std::string& tag)
      : name(unique(tag)), bus(shmbus::Bus::open_or_create(name)) {}
  ~ScopedBus() { shmbus::Bus::remove(name); }
};

// An in-process Bridge from YAML (its Config lives in the Bridge; routes keep a reference).
std::unique_ptr<Bridge> start_bridge(const std::string& yaml) {
  auto b = std::make_unique<Bridge>(shmbus::bridge::parse_config(yaml, "<bridge-bench>"));
  for (const auto& r : b->config().routes)
    b->add_component(shmbus::bridge::make_route(b->config(), r));
  b->start();
  return b;
}

std::uint64_t route_counter(Bridge& b, const char* field) {
  bool ok = false;
  const auto j = b.health_json(ok);
  std::uint64_t sum = 0;
  for (const auto& r : j["routes"]) {
    if (r.contains(field)) sum += r[field].get<std::uint64_t>();
  }
  return sum;
}

std::string yaml_servers(const Options& o) {
  std::string y;
  if (o.redis_port != 0)
    y += fmt::format("redis: {{host: {}, port: {}}}\n", o.redis_host, o.redis_port);
  if (o.amqp_port != 0)
    y += fmt::format("amqp: {{host: {}, port: {}, user: {}, password_env: {}, vhost: \"{}\"}}\n",
                     o.amqp_host, o.amqp_port, o.amqp_user, o.amqp_password_env, o.amqp_vhost);
  return y;
}

// ------------------------------------------------------------------ plain clients

// redis-benchmark's figure (requests/s) for one command, -P 16, 200-byte values.
double redis_benchmark(const Options& o, const std::string& command, std::size_t n) {
  const std::string cmd = fmt::format("{} -h {} -p {} -P 16 -n {} --csv {} 2>&1", o.redis_benchmark,
                                      o.redis_host, o.redis_port, n, command);
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return 0;
  char buf[4096];
  double rps = 0;
  while (std::fgets(buf, sizeof buf, p) != nullptr) {
    // "name","rps","avg_latency_ms",...: the second field of the data line.
    std::string l = buf;
    if (l.rfind("\"test\"", 0) == 0) continue;
    const auto a = l.find("\",\"");
    if (a != std::string::npos) rps = std::atof(l.c_str() + a + 3);
  }
  ::pclose(p);
  return rps;
}

struct Amqp {
  amqp_connection_state_t conn = nullptr;
  ~Amqp() {
    if (conn != nullptr) {
      (void)amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
      (void)amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
      amqp_destroy_connection(conn);
    }
  }
};

void amqp_check(amqp_connection_state_t c, const char* what) {
  const amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
  if (r.reply_type != AMQP_RESPONSE_NORMAL)
    throw std::runtime_error(
        fmt::format("amqp: {} failed (reply type {})", what, static_cast<int>(r.reply_type)));
}

std::unique_ptr<Amqp> amqp_open(const Options& o) {
  auto a = std::make_unique<Amqp>();
  a->conn = amqp_new_connection();
  amqp_socket_t* s = amqp_tcp_socket_new(a->conn);
  if (s == nullptr || amqp_socket_open(s, o.amqp_host.c_str(), o.amqp_port) != AMQP_STATUS_OK)
    throw std::runtime_error("amqp: cannot connect");
  const std::string pw = env_or(o.amqp_password_env.c_str(), "");
  const amqp_rpc_reply_t r = amqp_login(a->conn, o.amqp_vhost.c_str(), 0, 131072, 0,
                                        AMQP_SASL_METHOD_PLAIN, o.amqp_user.c_str(), pw.c_str());
  if (r.reply_type != AMQP_RESPONSE_NORMAL) throw std::runtime_error("amqp: login refused");
  amqp_channel_open(a->conn, 1);
  amqp_check(a->conn, "channel.open");
  return a;
}

constexpr const char* kExchange = "shmbus.bench";
constexpr const char* kQueue = "shmbus.bench.q";

// The durable queue both publishers fill (so persistent messages are written before their
// confirm), bound to the exchange; purged between runs.
void amqp_setup(const Options& o) {
  auto a = amqp_open(o);
  amqp_exchange_declare(a->conn, 1, amqp_cstring_bytes(kExchange), amqp_cstring_bytes("topic"), 0,
                        1, 0, 0, amqp_empty_table);
  amqp_check(a->conn, "exchange.declare");
  amqp_queue_declare(a->conn, 1, amqp_cstring_bytes(kQueue), 0, 1, 0, 0, amqp_empty_table);
  amqp_check(a->conn, "queue.declare");
  amqp_queue_bind(a->conn, 1, amqp_cstring_bytes(kQueue), amqp_cstring_bytes(kExchange),
                  amqp_cstring_bytes("bench.#"), amqp_empty_table);
  amqp_check(a->conn, "queue.bind");
}

void amqp_purge(const Options& o, bool remove = false) {
  auto a = amqp_open(o);
  if (remove)
    amqp_queue_delete(a->conn, 1, amqp_cstring_bytes(kQueue), 0, 0);
  else
    amqp_queue_purge(a->conn, 1, amqp_cstring_bytes(kQueue));
  amqp_check(a->conn, "queue.purge/delete");
}

// rabbitmq-c alone: persistent 200-byte messages, confirms, `window` unconfirmed in flight.
double plain_amqp(const Options& o, std::size_t n, std::size_t window, std::size_t body_size) {
  auto a = amqp_open(o);
  amqp_confirm_select(a->conn, 1);
  amqp_check(a->conn, "confirm.select");
  const std::string body(body_size, 'x');
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
  props.delivery_mode = 2;
  props.content_type = amqp_cstring_bytes("application/octet-stream");
  // --plain-amqp-mandatory / --plain-amqp-metadata: mandatory, the bridge's metadata
  // (message_id, type, app_id, timestamp; four headers, three of them integers), to tell
  // what each costs the broker.
  const int mandatory = o.plain_mandatory ? 1 : 0;
  std::array<amqp_table_entry_t, 4> h{};
  const std::string id = "bench-12345-0/bench.q/123456";
  if (o.plain_metadata) {
    props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_APP_ID_FLAG |
                    AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_HEADERS_FLAG;
    props.message_id = amqp_cstring_bytes(id.c_str());
    props.type = amqp_cstring_bytes("shmbus.md.Quote");
    props.app_id = amqp_cstring_bytes("bench-12345-0");
    props.timestamp = 1764300000;
    const char* keys[] = {"shmbus-topic", "shmbus-seq", "shmbus-ts", "shmbus-producer"};
    for (std::size_t i = 0; i < h.size(); ++i) {
      h[i].key = amqp_cstring_bytes(keys[i]);
      h[i].value.kind = AMQP_FIELD_KIND_I64;
      h[i].value.value.i64 = 1764300000123456789;
    }
    h[0].value.kind = AMQP_FIELD_KIND_UTF8;
    h[0].value.value.bytes = amqp_cstring_bytes("bench.q");
    props.headers.num_entries = static_cast<int>(h.size());
    props.headers.entries = h.data();
  }
  std::vector<bool> acked(n + 1, false);
  std::size_t low = 0;  // every tag <= low is confirmed
  std::size_t sent = 0;
  const auto wait_confirms = [&](std::size_t until_outstanding) {
    while (sent - low > until_outstanding) {
      amqp_frame_t f;
      timeval tv{30, 0};
      if (amqp_simple_wait_frame_noblock(a->conn, &f, &tv) != AMQP_STATUS_OK)
        throw std::runtime_error("amqp: no confirm within 30 s");
      if (f.frame_type != AMQP_FRAME_METHOD) continue;
      if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
        const auto* ack = static_cast<amqp_basic_ack_t*>(f.payload.method.decoded);
        const auto tag = static_cast<std::size_t>(ack->delivery_tag);
        if (ack->multiple) {
          low = std::max(low, tag);
        } else {
          acked[tag] = true;
        }
        while (low < sent && acked[low + 1]) ++low;
      } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
        throw std::runtime_error("amqp: the broker nacked a message");
      }
    }
  };
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    wait_confirms(window - 1);
    if (amqp_basic_publish(a->conn, 1, amqp_cstring_bytes(kExchange),
                           amqp_cstring_bytes("bench.plain"), mandatory, 0, &props,
                           amqp_bytes_t{body.size(), const_cast<char*>(body.data())}) != 0)
      throw std::runtime_error("amqp: publish failed");
    ++sent;
  }
  wait_confirms(0);
  return static_cast<double>(n) / std::chrono::duration<double>(Clock::now() - t0).count();
}

// ------------------------------------------------------------------ the bridge

struct Throughput {
  double msgs_per_s = 0;
  std::size_t body_bytes = 0;
};

// N Quotes through one outbound route; msg/s from the first publish to the last confirm.
Throughput bridge_throughput(const Options& o, const QuoteMaker& q, const std::string& to,
                             const std::string& format, std::size_t n) {
  ScopedBus sb("bb");
  shmbus::TopicConfig tc;
  tc.policy = shmbus::Policy::Reliable;
  tc.slot_count = 4096;
  auto pub = sb.bus.publisher<shmbus::md::Quote>("bench.q", tc);
  const std::string prefix = to == "amqp" ? "" : unique("bench") + ".";
  const std::string extra = to == "amqp"           ? fmt::format(", exchange: {}", kExchange)
                            : to == "redis-stream" ? ", maxlen: 100000"
                                                   : "";
  auto bridge = start_bridge(
      fmt::format("bridge: {{name: bench, bus: {}, http: {{enabled: false}}}}\n{}routes:\n"
                  "  - {{name: out, direction: out, to: {}, topics: \"bench.>\", prefix: \"{}\", "
                  "format: {}, skip_own: false{}}}\n",
                  sb.name, yaml_servers(o), to, prefix, format, extra));
  std::this_thread::sleep_for(300ms);  // the route's first topic scan (Live start)
  const auto t0 = Clock::now();
  for (std::uint64_t i = 1; i <= n; ++i) {
    auto fbb = q.build(i, 0);
    // While the ring is full the producer sleeps (the ring holds ~10 ms of the route's work)
    // instead of publish()'s spin-then-yield: on two CPUs a spinning producer takes CPU
    // from redis-server / the broker and the route, which the plain clients do not pay.
    const auto give_up = Clock::now() + 30s;
    shmbus::PublishResult r;
    while ((r = pub.try_publish(fbb)) == shmbus::PublishResult::WouldBlock) {
      if (Clock::now() > give_up) throw std::runtime_error("the bridge stopped reading for 30 s");
      std::this_thread::sleep_for(500us);
    }
    if (r != shmbus::PublishResult::Ok)
      throw std::runtime_error(fmt::format("publish failed: {}", shmbus::to_string(r)));
  }
  const auto deadline = Clock::now() + 120s;
  while (route_counter(*bridge, "confirmed") < n) {
    if (Clock::now() > deadline) throw std::runtime_error("not every message was confirmed");
    std::this_thread::sleep_for(1ms);
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (route_counter(*bridge, "failed") != 0) throw std::runtime_error("the remote refused some");
  bridge->shutdown();
  // The body as sent: the envelope (json) or the FlatBuffer itself (raw).
  std::size_t body = q.build(1, 0).GetSize();
  if (format == "json") {
    auto t = sb.bus.open_topic("bench.q");
    shmbus::EnvelopeWriter w(t);
    shmbus::SubscriberOptions so;
    so.start = shmbus::Start::Oldest;
    shmbus::Subscriber sub(t, so);
    (void)sub.poll([&](const shmbus::Message& m) { body = w.message(m).size(); }, 1);
  }
  if (to != "amqp") {
    redisContext* c = redisConnect(o.redis_host.c_str(), o.redis_port);
    if (c != nullptr && c->err == 0) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "DEL %sbench.q", prefix.c_str()));
      if (r != nullptr) freeReplyObject(r);
    }
    if (c != nullptr) redisFree(c);
  }
  return {static_cast<double>(n) / s, body};
}

// The size of a Quote's JSON envelope as the bridge sends it (to give the plain clients a
// body of the same size).
std::size_t envelope_size(const QuoteMaker& q) {
  ScopedBus sb("bb");
  auto pub = sb.bus.publisher<shmbus::md::Quote>("bench.q");
  auto t = sb.bus.open_topic("bench.q");
  shmbus::SubscriberOptions so;
  so.start = shmbus::Start::Oldest;
  shmbus::Subscriber sub(t, so);
  auto fbb = q.build(100000, 0);
  (void)pub.try_publish(fbb);
  shmbus::EnvelopeWriter w(t);
  std::size_t size = 0;
  (void)sub.poll([&](const shmbus::Message& m) { size = w.message(m).size(); }, 1);
  return size;
}

// ------------------------------------------------------------------ latency

struct Latency {
  std::size_t received = 0;
  double p50_us = 0, p99_us = 0, max_us = 0;
};

Latency summarize(std::vector<std::int64_t>& ns) {
  Latency l;
  l.received = ns.size();
  if (ns.empty()) return l;
  std::sort(ns.begin(), ns.end());
  const auto at = [&](double q) {
    return static_cast<double>(ns[std::min(
               ns.size() - 1, static_cast<std::size_t>(q * static_cast<double>(ns.size())))]) /
           1e3;
  };
  l.p50_us = at(0.50);
  l.p99_us = at(0.99);
  l.max_us = static_cast<double>(ns.back()) / 1e3;
  return l;
}

// Publishes `n` Quotes at `rate` msg/s, each stamped with the wall clock (exchange_ts).
void paced(shmbus::Publisher& pub, const QuoteMaker& q, std::size_t n, double rate) {
  const auto period = std::chrono::nanoseconds(static_cast<std::int64_t>(1e9 / rate));
  auto next = Clock::now();
  for (std::uint64_t i = 1; i <= n; ++i) {
    // Sleeping, not spinning: on two CPUs a spinning producer would starve the bridge.
    std::this_thread::sleep_until(next);
    next += period;
    auto fbb = q.build(i, static_cast<std::uint64_t>(wall_ns()));
    (void)pub.publish(fbb, 5s);
  }
}

std::int64_t stamp_of(const char* data, std::size_t size, bool json) {
  if (json) {
    const std::string_view s(data, size);
    const auto p = s.find("\"exchange_ts\":");
    return p == std::string_view::npos ? 0 : std::atoll(data + p + 14);
  }
  flatbuffers::Verifier v(reinterpret_cast<const std::uint8_t*>(data), size);
  if (!shmbus::md::VerifyQuoteBuffer(v)) return 0;
  return static_cast<std::int64_t>(
      shmbus::md::GetQuote(reinterpret_cast<const std::uint8_t*>(data))->exchange_ts());
}

// bus -> Redis PUBLISH -> a hiredis subscriber in this process.
Latency latency_redis_publish(const Options& o, const QuoteMaker& q, const std::string& format) {
  ScopedBus sb("bl");
  shmbus::TopicConfig tc;
  tc.policy = shmbus::Policy::Reliable;
  auto pub = sb.bus.publisher<shmbus::md::Quote>("lat.q", tc);
  const std::string prefix = unique("lat") + ".";
  auto bridge = start_bridge(fmt::format(
      "bridge: {{name: lat, bus: {}, http: {{enabled: false}}}}\n{}routes:\n"
      "  - {{name: out, direction: out, to: redis-publish, topics: \"lat.>\", prefix: \"{}\", "
      "format: {}, skip_own: false}}\n",
      sb.name, yaml_servers(o), prefix, format));
  redisContext* c = redisConnect(o.redis_host.c_str(), o.redis_port);
  if (c == nullptr || c->err != 0) throw std::runtime_error("redis: cannot connect");
  auto* r = static_cast<redisReply*>(redisCommand(c, "SUBSCRIBE %slat.q", prefix.c_str()));
  if (r != nullptr) freeReplyObject(r);
  timeval tv{2, 0};
  redisSetTimeout(c, tv);
  std::vector<std::int64_t> lat;
  lat.reserve(o.latency_messages);
  std::thread rx([&] {
    while (lat.size() < o.latency_messages) {
      void* reply = nullptr;
      if (redisGetReply(c, &reply) != REDIS_OK) break;
      const std::int64_t now = wall_ns();
      auto* m = static_cast<redisReply*>(reply);
      if (m->type == REDIS_REPLY_ARRAY && m->elements == 3) {
        const std::int64_t ts = stamp_of(m->element[2]->str, m->element[2]->len, format == "json");
        if (ts != 0) lat.push_back(now - ts);
      }
      freeReplyObject(m);
    }
  });
  std::this_thread::sleep_for(300ms);
  paced(pub, q, o.latency_messages, o.rate);
  rx.join();
  redisFree(c);
  bridge->shutdown();
  return summarize(lat);
}

// bus A -> (Redis stream | RabbitMQ) -> bus B: two Bridges, a subscriber on bus B.
Latency latency_federation(const Options& o, const QuoteMaker& q, bool amqp) {
  ScopedBus a("fa"), b("fb");
  shmbus::TopicConfig tc;
  tc.policy = shmbus::Policy::Reliable;
  auto pub = a.bus.publisher<shmbus::md::Quote>("fed.q", tc);
  const std::string name = unique("fed");
  std::string out, in;
  if (amqp) {
    // Not persistent: at 10 k msg/s persistent confirms are the broker's fsync limit, not
    // latency (see the throughput rows).
    out =
        fmt::format("to: amqp, exchange: {}, prefix: \"{}.\", persistent: never", kExchange, name);
    in = fmt::format("from: amqp, queue: {0}, exchange: {1}, bindings: [\"{0}.#\"]", name,
                     kExchange);
  } else {
    out = fmt::format("to: redis-stream, prefix: \"{}.\", maxlen: 100000", name);
    in = fmt::format("from: redis-stream, stream: {}.fed.q, group: g, start: \"0\"", name);
  }
  auto ba = start_bridge(
      fmt::format("bridge: {{name: fa, bus: {}, http: {{enabled: false}}}}\n{}routes:\n"
                  "  - {{name: out, direction: out, topics: \"fed.>\", skip_own: false, {}}}\n",
                  a.name, yaml_servers(o), out));
  auto bb = start_bridge(fmt::format(
      "bridge: {{name: fb, bus: {}, http: {{enabled: false}}}}\n{}routes:\n"
      "  - {{name: in, direction: in, topic: fed.b, type: shmbus.md.Quote, policy: reliable, "
      "{}}}\n",
      b.name, yaml_servers(o), in));
  std::vector<std::int64_t> lat;
  lat.reserve(o.latency_messages);
  std::thread rx([&] {
    shmbus::SubscriberOptions so;
    so.start = shmbus::Start::Oldest;
    shmbus::Subscriber sub(b.bus.wait_for_topic("fed.b", 20s), so);
    auto idle_since = Clock::now();
    while (lat.size() < o.latency_messages && Clock::now() - idle_since < 5s) {
      const std::size_t got = sub.poll(
          [&](const shmbus::Message& m) {
            const std::int64_t now = wall_ns();
            const std::int64_t ts =
                stamp_of(reinterpret_cast<const char*>(m.data.data()), m.data.size(), false);
            if (ts != 0) lat.push_back(now - ts);
          },
          64);
      if (got > 0)
        idle_since = Clock::now();
      else
        (void)sub.wait(std::chrono::milliseconds(2));  // not spinning, as the producer
    }
  });
  std::this_thread::sleep_for(300ms);
  paced(pub, q, o.latency_messages, o.rate);
  rx.join();
  ba->shutdown();
  bb->shutdown();
  return summarize(lat);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.redis_port = std::atoi(env_or("SHMBUS_TEST_REDIS_PORT", "0").c_str());
  o.amqp_port = std::atoi(env_or("SHMBUS_TEST_AMQP_PORT", "0").c_str());
  o.amqp_user = env_or("SHMBUS_TEST_AMQP_USER", "guest");
  o.amqp_vhost = env_or("SHMBUS_TEST_AMQP_VHOST", "/");
  CLI::App app{
      "bridge-benchmark: bus-bridge's routes against real Redis and RabbitMQ, next to plain "
      "clients (redis-benchmark -P 16, a rabbitmq-c publisher with confirms), in one run. "
      "Servers default to the SHMBUS_TEST_* variables of tools/scripts/services.sh; "
      "bench/bridge/run.sh starts private ones and runs this."};
  app.add_option("--redis-host", o.redis_host)->capture_default_str();
  app.add_option("--redis-port", o.redis_port, "0: no Redis rows")->capture_default_str();
  app.add_option("--amqp-host", o.amqp_host)->capture_default_str();
  app.add_option("--amqp-port", o.amqp_port, "0: no RabbitMQ rows")->capture_default_str();
  app.add_option("--amqp-user", o.amqp_user)->capture_default_str();
  app.add_option("--amqp-vhost", o.amqp_vhost)->capture_default_str();
  app.add_option("--amqp-password-env", o.amqp_password_env,
                 "the environment variable holding the AMQP password")
      ->capture_default_str();
  app.add_option("-n,--messages", o.messages, "messages per Redis throughput run")
      ->capture_default_str();
  app.add_option("--amqp-messages", o.amqp_messages, "messages per RabbitMQ throughput run")
      ->capture_default_str();
  app.add_option("--rounds", o.rounds, "throughput rounds (bridge and plain client interleaved)")
      ->capture_default_str();
  app.add_option("--formats", o.formats, "bridge payload formats: json, raw");
  app.add_option("--parts", o.parts, "throughput, latency");
  app.add_option("--rate", o.rate, "msg/s of the latency runs")->capture_default_str();
  app.add_option("--latency-messages", o.latency_messages, "messages per latency run")
      ->capture_default_str();
  app.add_option("--redis-benchmark", o.redis_benchmark, "the redis-benchmark executable")
      ->capture_default_str();
  app.add_flag("--plain-amqp-mandatory", o.plain_mandatory,
               "the plain rabbitmq-c publisher sets mandatory, as the bridge does");
  app.add_flag("--plain-amqp-metadata", o.plain_metadata,
               "the plain rabbitmq-c publisher sends the bridge's metadata (properties message_id, "
               "type, app_id, timestamp; four headers)");
  CLI11_PARSE(app, argc, argv);
  const auto has = [](const std::vector<std::string>& v, const char* x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };

  try {
    const QuoteMaker q;
    std::printf("bridge-bench: CPU %s, %u online CPUs\n", cpu_model().c_str(),
                std::thread::hardware_concurrency());
    std::printf("message: shmbus.md.Quote, %u bytes as a FlatBuffer\n\n", q.build(1, 0).GetSize());
    if (has(o.parts, "throughput")) {
      if (o.amqp_port != 0) amqp_setup(o);
      std::printf("%-30s %-6s %12s %12s %8s %10s\n", "throughput", "format", "bridge msg/s",
                  "plain msg/s", "ratio", "body B");
      const std::size_t json_size = envelope_size(q);
      for (std::size_t round = 0; round < o.rounds; ++round) {
        struct Row {
          const char* name;
          const char* to;
          std::string plain_cmd;  // redis-benchmark's command, {} = the value
        };
        std::vector<Row> rows;
        if (o.redis_port != 0) {
          rows.push_back({"redis PUBLISH", "redis-publish", "PUBLISH bench.ch {}"});
          rows.push_back({"redis XADD MAXLEN ~ 100000", "redis-stream",
                          "XADD bench.plain MAXLEN '~' 100000 '*' f {}"});
        }
        if (o.amqp_port != 0) rows.push_back({"amqp confirms (persistent)", "amqp", ""});
        for (const auto& row : rows) {
          const bool amqp = row.plain_cmd.empty();
          const auto plain = [&](std::size_t body) {
            const double r =
                amqp ? plain_amqp(o, o.amqp_messages, 256, body)
                     : redis_benchmark(
                           o, fmt::format(fmt::runtime(row.plain_cmd), std::string(body, 'x')),
                           o.messages);
            if (amqp) amqp_purge(o);
            return r;
          };
          for (const auto& f : o.formats) {
            // The plain client sends a body of the bridge's size (the envelope in JSON, the
            // 200-byte FlatBuffer raw); which one goes first alternates by round.
            const std::size_t body = f == "json" ? json_size : q.build(1, 0).GetSize();
            double p = 0;
            if (round % 2 == 0) p = plain(body);
            const Throughput t =
                bridge_throughput(o, q, row.to, f, amqp ? o.amqp_messages : o.messages);
            if (amqp) amqp_purge(o);
            if (round % 2 == 1) p = plain(body);
            std::printf("%-30s %-6s %12.0f %12.0f %7.0f%% %10zu\n", row.name, f.c_str(),
                        t.msgs_per_s, p, 100.0 * t.msgs_per_s / p, t.body_bytes);
            std::fflush(stdout);
          }
        }
        if (o.redis_port != 0) {
          redisContext* c = redisConnect(o.redis_host.c_str(), o.redis_port);
          if (c != nullptr && c->err == 0) freeReplyObject(redisCommand(c, "DEL bench.plain"));
          if (c != nullptr) redisFree(c);
        }
      }
      if (o.amqp_port != 0) amqp_purge(o, true);
      std::printf("\n");
    }
    if (has(o.parts, "latency")) {
      std::printf("%-42s %8s %9s %9s %9s  (%0.f msg/s, %zu messages)\n", "latency (wall clock)",
                  "received", "p50 us", "p99 us", "max us", o.rate, o.latency_messages);
      const auto print = [&](const std::string& what, const Latency& l) {
        std::printf("%-42s %8zu %9.1f %9.1f %9.1f\n", what.c_str(), l.received, l.p50_us, l.p99_us,
                    l.max_us);
        std::fflush(stdout);
      };
      if (o.redis_port != 0) {
        for (const auto& f : o.formats)
          print("bus -> redis PUBLISH -> subscriber (" + f + ")", latency_redis_publish(o, q, f));
        print("bus A -> redis stream -> bus B", latency_federation(o, q, false));
      }
      if (o.amqp_port != 0) {
        amqp_setup(o);
        print("bus A -> rabbitmq -> bus B", latency_federation(o, q, true));
        amqp_purge(o, true);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bridge-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
