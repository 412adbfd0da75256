// bridge-transport-bench: throughput of the bridge's transport clients against real
// servers, 200-byte messages, printed as a table. Baselines (run them against the same
// servers, in the same session):
//   redis-benchmark -p PORT -P 16 -n 1000000 PUBLISH ch <200 B>       (pipelined PUBLISH)
//   redis-benchmark -p PORT -P 16 -n 1000000 XADD s MAXLEN '~' 100000 '*' f <200 B>
//
//   bridge-transport-bench --redis-port P [--amqp-port P --amqp-user U --amqp-password W
//                          --amqp-vhost V] [--messages N] [--amqp-messages N]
// The password may also come from SHMBUS_BENCH_AMQP_PASSWORD (never printed).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "transport/amqp_consumer.hpp"
#include "transport/amqp_publisher.hpp"
#include "transport/redis_publisher.hpp"

using namespace shmbus::bridge::transport;
using namespace std::chrono_literals;

namespace {

struct Result {
  const char* name;
  std::size_t messages;
  double seconds;
  std::size_t bad;
};

std::string payload(std::uint64_t seq) {
  std::string p = "seq=" + std::to_string(seq) + ";";
  p.resize(200, 'x');
  return p;
}

Result redis_run(const char* name, RedisEndpoint ep, bool xadd, std::size_t n) {
  RedisPublisher pub({ep, 64, 256 * 1024, 1024, 8 << 20});
  if (!pub.connect(5s)) {
    std::fprintf(stderr, "redis: %s\n", pub.last_error().c_str());
    std::exit(2);
  }
  const std::string key = xadd ? "bench.stream" : "bench.channel";
  std::vector<RedisCompletion> done;
  done.reserve(4096);
  std::size_t bad = 0, completed = 0;
  auto drain = [&] {
    for (auto& c : done) bad += c.outcome != RedisOutcome::Confirmed;
    completed += done.size();
    done.clear();
  };
  const auto t0 = Clock::now();
  const std::uint64_t base =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  for (std::uint64_t i = 0; i < n; ++i) {
    RedisMessage m = xadd
                         ? RedisMessage::xadd(key, {base, i + 1}, {{"data", payload(i)}}, 100000, i)
                         : RedisMessage::publish(key, payload(i), i);
    while (pub.submit(m) != SubmitStatus::Queued) {
      (void)pub.poll(1ms, done);
      drain();
    }
  }
  (void)pub.flush(30s, done);
  drain();
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return {name, completed, s, bad + (n - completed)};
}

// A durable queue bound to the exchange, so that persistent messages are written to
// disk before their confirm (without a queue the broker confirms unroutable messages at
// once and the figure means nothing). It is drained afterwards: the consumer row.
AmqpConsumerOptions bench_queue(const AmqpEndpoint& ep) {
  AmqpConsumerOptions o;
  o.endpoint = ep;
  o.queue = "shmbus.bench.q";
  o.exchange = "shmbus.bench";
  o.bindings = {"md.#"};
  o.prefetch = 256;
  return o;
}

Result amqp_drain(AmqpConsumer& consumer, std::size_t n) {
  std::vector<AmqpDelivery> got;
  std::size_t received = 0;
  const auto t0 = Clock::now();
  const auto deadline = t0 + 120s;
  while (received < n && Clock::now() < deadline) {
    got.clear();
    (void)consumer.poll(50ms, got);
    received += got.size();
    if (!got.empty()) (void)consumer.ack(got.back().tag, true);  // one ack covers the batch
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return {"AMQP consume, prefetch 256, multiple acks", received, s, n - received};
}

Result amqp_run(AmqpEndpoint ep, std::size_t n, std::size_t window) {
  AmqpPublisher pub({ep, "shmbus.bench", "topic", true, window});
  if (!pub.connect(10s)) {
    std::fprintf(stderr, "amqp: %s\n", pub.last_error().c_str());
    std::exit(2);
  }
  std::vector<AmqpCompletion> done;
  std::size_t bad = 0, completed = 0;
  auto drain = [&] {
    for (auto& c : done) bad += c.outcome != AmqpOutcome::Confirmed;
    completed += done.size();
    done.clear();
  };
  const auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    AmqpMessage m;
    m.routing_key = "md.bench";
    m.body = payload(i);
    m.mandatory = false;
    m.token = i;
    while (pub.publish(m) != SubmitStatus::Queued) {
      (void)pub.poll(5ms, done);
      drain();
    }
  }
  (void)pub.flush(60s, done);
  drain();
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return {"AMQP publish, persistent, confirms (window 256)", completed, s, bad + (n - completed)};
}

}  // namespace

int main(int argc, char** argv) {
  RedisEndpoint redis;
  AmqpEndpoint amqp;
  bool with_amqp = false;
  std::size_t n = 1'000'000, amqp_n = 50'000;
  if (const char* pw = std::getenv("SHMBUS_BENCH_AMQP_PASSWORD")) amqp.password = Secret(pw);
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--redis-port")
      redis.port = static_cast<std::uint16_t>(std::stoi(v));
    else if (k == "--amqp-port") {
      amqp.port = static_cast<std::uint16_t>(std::stoi(v));
      with_amqp = true;
    } else if (k == "--amqp-user")
      amqp.user = v;
    else if (k == "--amqp-password")
      amqp.password = Secret(v);
    else if (k == "--amqp-vhost")
      amqp.vhost = v;
    else if (k == "--messages")
      n = std::stoul(v);
    else if (k == "--amqp-messages")
      amqp_n = std::stoul(v);
    else {
      std::fprintf(stderr, "unknown option %s (see the comment at the top of bench_main.cpp)\n",
                   k.c_str());
      return 2;
    }
  }
  std::vector<Result> rows;
  rows.push_back(
      redis_run("Redis PUBLISH 200 B, pipelined (batch 64, window 1024)", redis, false, n));
  rows.push_back(redis_run("Redis XADD MAXLEN ~ 100000, 200 B, pipelined", redis, true, n / 2));
  if (with_amqp) {
    AmqpConsumer consumer(bench_queue(amqp));
    if (!consumer.connect(10s)) {
      std::fprintf(stderr, "amqp: %s\n", consumer.last_error().c_str());
      return 2;
    }
    // Declared and consuming; the prefetch fills and the rest waits in the queue.
    rows.push_back(amqp_run(amqp, amqp_n, 256));
    rows.push_back(amqp_drain(consumer, amqp_n));
  }
  std::printf("%-56s %10s %9s %12s %6s\n", "client", "messages", "seconds", "msgs/s", "bad");
  for (const auto& r : rows)
    std::printf("%-56s %10zu %9.3f %12.0f %6zu\n", r.name, r.messages, r.seconds,
                static_cast<double>(r.messages) / r.seconds, r.bad);
  return 0;
}
