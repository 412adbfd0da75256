// The AMQP clients of the bridge against a real rabbitmq-server (services.sh's), with
// pika on the far side.
#include <set>

#include "transport/amqp_consumer.hpp"
#include "transport/amqp_publisher.hpp"
#include "transport_test_util.hpp"

using namespace shmbus::bridge::transport;
using namespace std::chrono_literals;
using shmbus::test::python;
using shmbus::test::service_env;
using shmbus::test::service_port;
using shmbus::test::unique_name;

namespace {

AmqpEndpoint broker(const std::string& vhost = {}) {
  AmqpEndpoint e;
  e.port = service_port("SHMBUS_TEST_AMQP_PORT");
  e.user = service_env("SHMBUS_TEST_AMQP_USER");
  e.password = Secret(service_env("SHMBUS_TEST_AMQP_PASSWORD"));
  e.vhost = vhost.empty() ? service_env("SHMBUS_TEST_AMQP_VHOST") : vhost;
  e.backoff = {50ms, 500ms, 10ms, 2.0, Jitter::Full};
  return e;
}

// rabbitmqctl against the services.sh node (bounded).
int rabbitmqctl(const std::string& args, std::string& out) {
  const std::string cmd = "source '" + service_env("SHMBUS_TEST_RABBITMQ_ENV") + "' && '" +
                          service_env("SHMBUS_TEST_RABBITMQCTL") + "' -n '" +
                          service_env("SHMBUS_TEST_AMQP_NODE") + "' " + args;
  return shmbus::test::run({"bash", "-c", cmd}, out, 60s);
}

// services.sh's second vhost: closing "all connections" of it touches no other test
// running in parallel (only this test uses it).
std::string own_vhost() {
  return service_env("SHMBUS_TEST_AMQP_ISOLATED_VHOST");
}

// The pika side, as users' consumers are written: BlockingConnection, basic_consume.
const char* kPikaConsumer = R"(
import sys, pika
port, user, pw, vhost, exchange, key, n = sys.argv[1:8]
n = int(n)
params = pika.ConnectionParameters("127.0.0.1", int(port), vhost, pika.PlainCredentials(user, pw))
conn = pika.BlockingConnection(params)
ch = conn.channel()
ch.exchange_declare(exchange, exchange_type="topic", durable=True)
q = ch.queue_declare("", exclusive=True).method.queue
ch.queue_bind(q, exchange, routing_key=key)
ch.basic_qos(prefetch_count=256)
print("ready", flush=True)
state = {"next": 0}
def on_message(ch, method, props, body):
    seq = int(body.split(b";")[0].split(b"=")[1])
    if seq != state["next"] or props.delivery_mode != 2 or props.headers.get("origin") != "bus-a" or props.headers.get("seq") != seq or props.app_id != "bus-a":
        print("bad: seq %d expected %d mode %s headers %s" % (seq, state["next"], props.delivery_mode, props.headers), flush=True)
        sys.exit(1)
    state["next"] += 1
    ch.basic_ack(method.delivery_tag)
    if state["next"] == n:
        print("ok %d" % n, flush=True)
        ch.stop_consuming()
ch.basic_consume(q, on_message)
ch.start_consuming()
)";

std::string body_for(std::uint64_t seq) {
  std::string p = "seq=" + std::to_string(seq) + ";";
  p.resize(200, 'x');
  return p;
}

AmqpMessage message(const std::string& key, std::uint64_t seq) {
  AmqpMessage m;
  m.routing_key = key;
  m.body = body_for(seq);
  m.headers = {{"origin", "bus-a"}, {"seq", static_cast<std::int64_t>(seq)}};
  m.content_type = "application/json";
  m.message_id = "bus-a/md.q/" + std::to_string(seq);
  m.type = "shmbus.md.Quote";
  m.app_id = "bus-a";
  m.timestamp = 1'700'000'000 + seq;
  m.token = seq;
  return m;
}

}  // namespace

TEST(AmqpPublisher, ConfirmsCountedPerDeliveryTagAndAPikaConsumerGetsEverything) {
  const std::string exchange = unique_name("shmbus.x");
  const int n = 5000;
  auto pika = python(kPikaConsumer,
                     {service_env("SHMBUS_TEST_AMQP_PORT"), service_env("SHMBUS_TEST_AMQP_USER"),
                      service_env("SHMBUS_TEST_AMQP_PASSWORD"),
                      service_env("SHMBUS_TEST_AMQP_VHOST"), exchange, "md.#", std::to_string(n)});
  std::string seen;
  ASSERT_TRUE(pika->expect_line("ready", 30s, seen)) << seen;
  AmqpPublisher pub({broker(), exchange, "topic", true, 256});
  ASSERT_TRUE(pub.connect(10s)) << pub.last_error();
  std::vector<AmqpCompletion> done;
  std::size_t max_in_flight = 0;
  for (int i = 0; i < n; ++i) {
    while (true) {
      const SubmitStatus st = pub.publish(message("md.quotes.AAPL", static_cast<std::uint64_t>(i)));
      if (st == SubmitStatus::Queued) break;
      ASSERT_EQ(st, SubmitStatus::Full) << pub.last_error();
      (void)pub.poll(10ms, done);
    }
    max_in_flight = std::max(max_in_flight, pub.in_flight());
  }
  ASSERT_TRUE(pub.flush(30s, done)) << pub.last_error();
  std::set<std::uint64_t> confirmed;
  for (const auto& c : done) {
    ASSERT_EQ(c.outcome, AmqpOutcome::Confirmed) << c.message.token << " " << c.reason;
    EXPECT_TRUE(confirmed.insert(c.message.token).second) << "confirmed twice: " << c.message.token;
  }
  EXPECT_EQ(confirmed.size(), static_cast<std::size_t>(n));
  EXPECT_EQ(pub.in_flight(), 0u);
  // A window, never one confirm at a time.
  EXPECT_GT(max_in_flight, 16u);
  EXPECT_LE(max_in_flight, 256u);
  std::string last;
  ASSERT_TRUE(pika->expect_line("ok " + std::to_string(n), 60s, last)) << last;
}

TEST(AmqpPublisher, UnroutableMandatoryMessagesAreReturnedWithTheMessage) {
  const std::string exchange = unique_name("shmbus.x");
  const std::string queue = unique_name("q");
  // A queue bound to "md.#" only; "orders.*" goes nowhere.
  AmqpConsumerOptions co;
  co.endpoint = broker();
  co.queue = queue;
  co.exchange = exchange;
  co.bindings = {"md.#"};
  AmqpConsumer consumer(co);
  ASSERT_TRUE(consumer.connect(10s)) << consumer.last_error();
  AmqpPublisher pub({broker(), exchange, "topic", true, 256});
  ASSERT_TRUE(pub.connect(10s)) << pub.last_error();
  for (std::uint64_t i = 0; i < 40; ++i) {
    ASSERT_EQ(pub.publish(message(i % 4 == 1 ? "orders.eu" : "md.quotes", i)),
              SubmitStatus::Queued);
  }
  std::vector<AmqpCompletion> done;
  ASSERT_TRUE(pub.flush(20s, done)) << pub.last_error();
  ASSERT_EQ(done.size(), 40u);
  std::size_t returned = 0;
  for (const auto& c : done) {
    if (c.message.token % 4 == 1) {
      EXPECT_EQ(c.outcome, AmqpOutcome::Returned) << c.message.token;
      EXPECT_NE(c.reason.find("NO_ROUTE"), std::string::npos) << c.reason;
      EXPECT_EQ(c.message.routing_key, "orders.eu");
      EXPECT_EQ(c.message.body, body_for(c.message.token));
      ++returned;
    } else {
      EXPECT_EQ(c.outcome, AmqpOutcome::Confirmed) << c.message.token << " " << c.reason;
    }
  }
  EXPECT_EQ(returned, 10u);
  // Without `mandatory` an unroutable message is confirmed and silently dropped by the
  // broker: the flag is what makes the loss visible.
  AmqpMessage m = message("orders.us", 99);
  m.mandatory = false;
  done.clear();
  ASSERT_EQ(pub.publish(m), SubmitStatus::Queued);
  ASSERT_TRUE(pub.flush(10s, done));
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, AmqpOutcome::Confirmed);
}

TEST(AmqpPublisher, ConnectionClosedByTheBrokerReconnectsAndReportsUnconfirmed) {
  const std::string vhost = own_vhost();
  const std::string exchange = unique_name("shmbus.x");
  AmqpConsumerOptions co;
  co.endpoint = broker(vhost);
  co.queue = unique_name("q");
  co.exchange = exchange;
  co.bindings = {"md.#"};
  co.prefetch = 50;
  AmqpConsumer consumer(co);
  ASSERT_TRUE(consumer.connect(10s)) << consumer.last_error();
  AmqpPublisher pub({broker(vhost), exchange, "topic", true, 256});
  ASSERT_TRUE(pub.connect(10s)) << pub.last_error();
  std::vector<AmqpCompletion> done;
  for (std::uint64_t i = 0; i < 100; ++i)
    ASSERT_EQ(pub.publish(message("md.q", i)), SubmitStatus::Queued);
  ASSERT_TRUE(pub.flush(20s, done));
  ASSERT_EQ(done.size(), 100u);
  // The consumer takes its prefetch and holds the acks (back-pressure).
  std::vector<AmqpDelivery> held;
  auto until = Clock::now() + 20s;
  while (held.size() < 50 && Clock::now() < until) (void)consumer.poll(50ms, held);
  ASSERT_EQ(held.size(), 50u);
  std::vector<AmqpDelivery> more;
  (void)consumer.poll(300ms, more);
  EXPECT_TRUE(more.empty()) << "the broker sent beyond the prefetch while acks were held";
  EXPECT_EQ(held[0].body, body_for(0));
  EXPECT_EQ(held[0].routing_key, "md.q");
  EXPECT_EQ(held[0].content_type, "application/json");
  ASSERT_GE(held[0].headers.size(), 2u);
  EXPECT_EQ(held[0].headers[0], (std::pair<std::string, std::string>{"origin", "bus-a"}));
  EXPECT_EQ(held[3].headers[1], (std::pair<std::string, std::string>{"seq", "3"}))
      << "an integer header arrives as its text";
  // The basic properties travel as sent.
  EXPECT_EQ(held[3].message_id, "bus-a/md.q/3");
  EXPECT_EQ(held[3].type, "shmbus.md.Quote");
  EXPECT_EQ(held[3].app_id, "bus-a");
  EXPECT_EQ(held[3].timestamp, 1'700'000'003u);
  for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(consumer.ack(held[i].tag), SettleStatus::Ok);

  for (std::uint64_t i = 100; i < 150; ++i)
    ASSERT_EQ(pub.publish(message("md.q", i)), SubmitStatus::Queued);
  std::string out;
  ASSERT_EQ(rabbitmqctl("close_all_connections --vhost " + vhost + " 'test: forced close'", out), 0)
      << out;

  // Both notice the close, report, and come back after a backoff delay.
  until = Clock::now() + 30s;
  std::set<std::uint64_t> settled;
  std::vector<AmqpMessage> resend;
  done.clear();
  while (pub.reconnects() == 0 && Clock::now() < until) (void)pub.poll(50ms, done);
  ASSERT_EQ(pub.reconnects(), 1u) << pub.last_error();
  for (auto& c : done) {
    if (c.outcome == AmqpOutcome::Confirmed)
      settled.insert(c.message.token);
    else if (c.outcome == AmqpOutcome::Unconfirmed)
      resend.push_back(std::move(c.message));
    else
      ADD_FAILURE() << to_string(c.outcome) << " " << c.reason;
  }
  EXPECT_EQ(settled.size() + resend.size(), 50u);
  for (auto& m : resend) ASSERT_EQ(pub.publish(std::move(m)), SubmitStatus::Queued);
  done.clear();
  ASSERT_TRUE(pub.flush(20s, done)) << pub.last_error();
  for (auto& c : done) {
    EXPECT_EQ(c.outcome, AmqpOutcome::Confirmed);
    settled.insert(c.message.token);
  }
  EXPECT_EQ(settled.size(), 50u);  // 100..149, each confirmed at least once

  // The consumer's held deliveries come again (redelivered); acks of the old connection
  // are stale and sent nowhere. Everything from 10 on arrives, nothing is lost.
  std::set<std::uint64_t> received;
  std::vector<AmqpDelivery> got;
  until = Clock::now() + 30s;
  while (received.size() < 140 && Clock::now() < until) {
    got.clear();
    (void)consumer.poll(50ms, got);
    for (auto& d : got) {
      // Deliveries read from the socket just before the close frame settle as
      // NotConnected/Stale: the broker requeued them and sends them again.
      const SettleStatus st = consumer.ack(d.tag);
      if (st != SettleStatus::Ok) continue;
      received.insert(std::stoull(d.body.substr(4)));
      if (std::stoull(d.body.substr(4)) < 50) {
        EXPECT_TRUE(d.redelivered) << d.body.substr(0, 8);
      }
    }
  }
  EXPECT_EQ(consumer.ack(held[20].tag), SettleStatus::Stale);
  EXPECT_GE(consumer.reconnects(), 1u);
  EXPECT_EQ(received.size(), 140u);
  EXPECT_EQ(received.count(5), 0u);   // acked before the close: not redelivered
  EXPECT_EQ(received.count(10), 1u);  // held: redelivered
  EXPECT_EQ(received.count(149), 1u);
}

TEST(AmqpConsumer, PoisonMessagesAreRejectedAndNotRedelivered) {
  const std::string queue = unique_name("q");
  AmqpConsumerOptions co;
  co.endpoint = broker();
  co.queue = queue;
  co.prefetch = 10;
  AmqpConsumer consumer(co);
  ASSERT_TRUE(consumer.connect(10s)) << consumer.last_error();
  // pika publishes to the queue through the default exchange, as users' code does.
  auto pub = python(
      R"(
import sys, pika
port, user, pw, vhost, queue = sys.argv[1:6]
conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(port), vhost, pika.PlainCredentials(user, pw)))
ch = conn.channel()
ch.confirm_delivery()
for i in range(20):
    body = b"poison" if i % 5 == 0 else b"good %d" % i
    ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2, headers={"n": i, "ok": True}))
print("sent", flush=True)
conn.close()
)",
      {service_env("SHMBUS_TEST_AMQP_PORT"), service_env("SHMBUS_TEST_AMQP_USER"),
       service_env("SHMBUS_TEST_AMQP_PASSWORD"), service_env("SHMBUS_TEST_AMQP_VHOST"), queue});
  ASSERT_EQ(pub->line(30s).value_or(""), "sent");
  std::vector<AmqpDelivery> got;
  std::size_t good = 0, poison = 0;
  const auto until = Clock::now() + 20s;
  while (good + poison < 20 && Clock::now() < until) {
    got.clear();
    (void)consumer.poll(50ms, got);
    for (auto& d : got) {
      if (d.body == "poison") {
        EXPECT_EQ(consumer.reject(d.tag, false), SettleStatus::Ok);
        ++poison;
      } else {
        EXPECT_EQ(consumer.ack(d.tag), SettleStatus::Ok);
        ++good;
      }
      ASSERT_EQ(d.headers.size(), 2u);
      EXPECT_EQ(d.headers[0].first, "n");
      EXPECT_EQ(d.headers[1], (std::pair<std::string, std::string>{"ok", "true"}));
    }
  }
  EXPECT_EQ(good, 16u);
  EXPECT_EQ(poison, 4u);
  got.clear();
  (void)consumer.poll(300ms, got);
  EXPECT_TRUE(got.empty()) << "a rejected message came back";
}

TEST(AmqpPublisher, BadPasswordIsAClearErrorWithoutThePassword) {
  AmqpEndpoint ep = broker();
  ep.password = Secret("Wr0ng-amqp-" + std::to_string(::getpid()));
  AmqpPublisher pub({ep, unique_name("x"), "topic", true, 16});
  EXPECT_FALSE(pub.connect(1500ms));
  const std::string e = pub.last_error();
  EXPECT_NE(e.find("login"), std::string::npos) << e;
  EXPECT_NE(e.find(ep.user), std::string::npos) << e;
  EXPECT_NE(e.find("password"), std::string::npos) << e;
  EXPECT_EQ(e.find(ep.password.reveal()), std::string::npos) << e;
  EXPECT_EQ(e.find(service_env("SHMBUS_TEST_AMQP_PASSWORD")), std::string::npos) << e;
  EXPECT_EQ(pub.publish(message("md.x", 1)), SubmitStatus::NotConnected);
}
