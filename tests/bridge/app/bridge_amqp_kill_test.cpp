// bus-bridge against a RabbitMQ broker that is SIGKILLed and restarted mid-stream. The broker
// is a node of this test's own (node name, ports, epmd, mnesia directory), so killing it
// never disturbs the tests that share the node of tools/scripts/services.sh.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "bridge_app_support.hpp"

namespace shmbus::test {
namespace {

using namespace std::chrono_literals;

// A rabbitmq-server node started the way services.sh starts one (no systemd; the
// /usr/lib/rabbitmq/bin scripts directly, everything private through the environment).
// Its user, password and vhost are created at first boot from rabbitmq.conf; the mnesia
// directory survives a SIGKILL, and with it the durable queue and its persistent messages.
class PrivateRabbit {
 public:
  PrivateRabbit()
      : dir_(std::filesystem::temp_directory_path() / unique_name("rabbit")),
        node_(unique_name("shmbuskill") + "@localhost"),
        port_(free_port()) {
    const std::uint16_t dist = free_port();
    const std::uint16_t epmd = free_port();
    std::filesystem::create_directories(dir_ / "mnesia");
    std::filesystem::create_directories(dir_ / "log");
    std::ofstream(dir_ / "enabled_plugins") << "[].\n";
    std::ofstream(dir_ / "rabbitmq.conf") << fmt::format(
        "listeners.tcp.1 = 127.0.0.1:{}\nloopback_users = none\n"
        "default_vhost = kill\ndefault_user = kill\ndefault_pass = {}\n"
        "default_permissions.configure = .*\ndefault_permissions.read = .*\n"
        "default_permissions.write = .*\nlog.console = false\n",
        port_, password());
    const std::string d = dir_.string();
    std::ofstream(dir_ / "env.sh") << fmt::format(
        "export HOME='{0}' RABBITMQ_NODENAME='{1}' RABBITMQ_NODE_IP_ADDRESS=127.0.0.1\n"
        "export RABBITMQ_NODE_PORT={2} RABBITMQ_DIST_PORT={3} ERL_EPMD_ADDRESS=127.0.0.1\n"
        "export ERL_EPMD_PORT={4} RABBITMQ_MNESIA_BASE='{0}/mnesia' RABBITMQ_LOG_BASE='{0}/log'\n"
        "export RABBITMQ_PID_FILE='{0}/rabbit.pid' "
        "RABBITMQ_ENABLED_PLUGINS_FILE='{0}/enabled_plugins'\n"
        "export RABBITMQ_CONFIG_FILE='{0}/rabbitmq.conf'\n"
        "export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface "
        "{{127,0,0,1}}'\n",
        d, node_, port_, dist, epmd);
  }
  ~PrivateRabbit() {
    kill();
    std::string out;
    (void)run({"bash", "-c", "source " + env() + "; epmd -kill"}, out, 10s);
    std::filesystem::remove_all(dir_);
  }
  PrivateRabbit(const PrivateRabbit&) = delete;
  PrivateRabbit& operator=(const PrivateRabbit&) = delete;

  // Starts the node and waits until it accepts connections (5-8 s idle, more when loaded).
  [[nodiscard]] bool start(std::string& why) {
    const std::string d = dir_.string();
    const std::string ctl = "/usr/lib/rabbitmq/bin/rabbitmqctl -n '" + node_ + "'";
    // -detached forks the VM: its output goes to a file, not to our pipe (which would then
    // stay open for as long as the broker runs).
    std::string out;
    if (run({"bash", "-c",
             "source " + env() + "; /usr/lib/rabbitmq/bin/rabbitmq-server -detached >'" + d +
                 "/start.log' 2>&1 </dev/null"},
            out, 30s) != 0) {
      why = "rabbitmq-server -detached failed: " + out;
      return false;
    }
    // `wait` first: await_startup fails at once while the node has not registered.
    if (run({"bash", "-c",
             "source " + env() + "; " + ctl + " wait '" + d + "/rabbit.pid' --timeout 150 && " +
                 ctl + " await_startup --timeout 150"},
            out, 320s) != 0) {
      why = "rabbitmq-server did not start: " + out;
      return false;
    }
    return true;
  }
  // SIGKILL to the Erlang VM (its pid file), and wait until it is gone.
  void kill() {
    std::ifstream f(dir_ / "rabbit.pid");
    pid_t pid = 0;
    if (f >> pid && pid > 0) {
      ::kill(pid, SIGKILL);
      eventually([&] { return ::kill(pid, 0) != 0; }, 10s);
    }
    std::filesystem::remove(dir_ / "rabbit.pid");
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] static std::string password() { return "kill-test-pw"; }

 private:
  [[nodiscard]] std::string env() const { return "'" + (dir_ / "env.sh").string() + "'"; }

  std::filesystem::path dir_;
  std::string node_;
  std::uint16_t port_;
};

// setup: declares the durable queue bound to the exchange, prints "ready", leaves.
// drain: consumes until every seq 1..want was seen (or 20 s of silence), acknowledging each,
// and prints "total T distinct D missing M" (T - D: the duplicates at-least-once allows).
const char* kAmqpDrain = R"(
import json, sys, pika
port, vhost, user, pw, exchange, queue, want, mode = sys.argv[1:9]
want = int(want)
conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(port), vhost, pika.PlainCredentials(user, pw)))
ch = conn.channel()
ch.exchange_declare(exchange, "topic", durable=True)
ch.queue_declare(queue, durable=True)
ch.queue_bind(queue, exchange, "orders.#")
if mode == "setup":
    print("ready", flush=True)
    conn.close()
    sys.exit(0)
ch.basic_qos(prefetch_count=500)
seen, total = set(), 0
for method, props, body in ch.consume(queue, inactivity_timeout=20):
    if method is None:
        break
    seen.add(json.loads(body)["seq"])
    total += 1
    ch.basic_ack(method.delivery_tag)
    if len(seen) >= want:
        break
missing = sum(1 for s in range(1, want + 1) if s not in seen)
print("total %d distinct %d missing %d" % (total, len(seen), missing), flush=True)
conn.close()
)";

// The broker is SIGKILLed mid-stream on a reliable topic and restarted: /health goes 503 and
// back to 200, the producer is held back by the ring meanwhile, the reconnect is counted, and
// the AMQP consumer gets every message at least once, with no gap.
TEST(BusBridgeAmqpKill, BrokerKilledAndRestartedMidStream) {
  PrivateRabbit rabbit;
  std::string why;
  ASSERT_TRUE(rabbit.start(why)) << why;
  const std::string exchange = unique_name("kx");
  const std::string queue = unique_name("kq");
  const auto drain_args = [&](const char* mode, std::uint64_t want) {
    return std::vector<std::string>{std::to_string(rabbit.port()), "kill",   "kill",
                                    PrivateRabbit::password(),     exchange, queue,
                                    std::to_string(want),          mode};
  };
  {
    auto setup = python(kAmqpDrain, drain_args("setup", 0));
    std::string seen;
    ASSERT_TRUE(setup->expect_line("ready", 60s, seen)) << seen;
  }

  ScopedBus sb("akill");
  Bus bus = sb.open();
  TopicConfig tc;
  tc.policy = Policy::Reliable;
  tc.slot_count = 256;
  Publisher pub = bus.publisher<md::Quote>("orders.q", tc);
  BridgeProc bridge(fmt::format(
      R"(bridge: {{name: akill, bus: {}, http: {{port: 0}}, backoff: {{initial_ms: 50, max_ms: 500}}}}
amqp: {{port: {}, user: kill, password: "{}", vhost: kill, connect_timeout_ms: 1000, heartbeat_s: 2}}
routes:
  - {{name: q, direction: out, to: amqp, topics: "orders.>", exchange: {}}}
)",
      sb.name(), rabbit.port(), PrivateRabbit::password(), exchange));
  ASSERT_TRUE(bridge.wait_ready()) << bridge.output();
  EXPECT_EQ(http_get(bridge.port(), "/health").status, 200);

  constexpr std::uint64_t n = 3000;
  QuoteProducer producer(pub, n, 120s);
  ASSERT_TRUE(eventually([&] { return producer.published() >= 800; }, 30s));
  rabbit.kill();
  EXPECT_TRUE(eventually([&] { return http_get(bridge.port(), "/health").status == 503; }, 15s));
  // The ring (256 slots) holds the producer back while the broker is down.
  const std::uint64_t stalled = producer.published();
  std::this_thread::sleep_for(300ms);
  EXPECT_LE(producer.published(), stalled + 300) << "the producer is held back, not dropping";
  EXPECT_LT(producer.published(), n);
  const bool restarted = rabbit.start(why);
  EXPECT_TRUE(restarted) << why;
  EXPECT_TRUE(eventually([&] { return http_get(bridge.port(), "/health").status == 200; }, 60s))
      << bridge.drain();
  producer.join();
  ASSERT_TRUE(restarted);
  ASSERT_EQ(producer.published(), n);

  // Every message at least once, no gap (the unconfirmed ones were re-sent).
  auto drain = python(kAmqpDrain, drain_args("drain", n));
  auto result = drain->line(120s);
  ASSERT_TRUE(result.has_value()) << "no answer from the consumer";
  unsigned long total = 0, distinct = 0, missing = 0;
  ASSERT_EQ(std::sscanf(result->c_str(), "total %lu distinct %lu missing %lu", &total, &distinct,
                        &missing),
            3)
      << *result;
  EXPECT_EQ(missing, 0u) << *result << "\n" << bridge.drain();
  EXPECT_EQ(distinct, n) << *result;
  EXPECT_GE(total, n) << *result;

  const std::string m = http_get(bridge.port(), "/metrics").body;
  EXPECT_GE(metric(m, "shmbus_bridge_route_reconnects_total{direction=\"out\",route=\"q\"}"), 1.0)
      << m;
  EXPECT_EQ(metric(m, "shmbus_bridge_route_dropped_total{direction=\"out\",route=\"q\"}"), 0.0);
  EXPECT_EQ(metric(m, "shmbus_bridge_route_failed_total{direction=\"out\",route=\"q\"}"), 0.0);
  EXPECT_EQ(bridge.terminate(), 0);
  // Logged once per state change, not per attempt.
  EXPECT_EQ(occurrences(bridge.output(), "disconnected"), 1u) << bridge.output();
}

}  // namespace
}  // namespace shmbus::test
