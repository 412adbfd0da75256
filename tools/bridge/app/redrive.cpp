#include "redrive.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <ctime>
#include <vector>

#include <shmbus/msg/sys_dead_letter_generated.h>
#include <shmbus/core/bus.hpp>
#include <shmbus/core/subscriber.hpp>
#include <shmbus/error.hpp>

#include "bridge.hpp"
#include "config.hpp"
#include "transport/amqp_publisher.hpp"
#include "transport/redis_publisher.hpp"

namespace shmbus::bridge {
namespace {

// --since: epoch seconds, an ISO-8601 UTC time, or an age ("90s", "15m", "2h", "1d").
std::int64_t parse_since(const std::string& s) {
  const Origin at{"command line", 0, "--since"};
  if (s.empty()) return 0;
  try {
    std::size_t used = 0;
    const long long v = std::stoll(s, &used);
    if (used == s.size()) return v * 1'000'000'000LL;
    const std::string unit = s.substr(used);
    long long mult = 0;
    if (unit == "s") mult = 1;
    if (unit == "m") mult = 60;
    if (unit == "h") mult = 3600;
    if (unit == "d") mult = 86400;
    if (mult != 0 && v >= 0) return now_ns() - v * mult * 1'000'000'000LL;
  } catch (const std::exception&) {
  }
  std::tm tm{};
  if (const char* end = ::strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
      end != nullptr && (*end == '\0' || *end == 'Z')) {
    return static_cast<std::int64_t>(::timegm(&tm)) * 1'000'000'000LL;
  }
  config_fail(at, "'" + s +
                      "' is not epoch seconds, an ISO time (2025-06-01T12:00:00Z) or an "
                      "age (90s, 15m, 2h, 1d)");
}

struct Letter {
  std::string original_topic;
  std::string reason;
  std::string payload;
  std::uint64_t ts = 0;
};

}  // namespace

int run_redrive(const RedriveOptions& options) {
  const Config config = load_config(options.config_file);
  const RouteConfig* route = config.route(options.route);
  if (route == nullptr) {
    config_fail(Origin{options.config_file, 0, "--route"},
                "no route named '" + options.route + "' in this configuration");
  }
  const std::int64_t since = parse_since(options.since);
  const std::string source = config.name + "/" + route->name;

  // Read the dead-letter topic as an observer: read-only, no registration, oldest first.
  std::vector<Letter> letters;
  {
    Bus bus = Bus::open(config.bus, Access::ReadOnly);
    SubscriberOptions so;
    so.register_consumer = false;
    so.start = Start::Oldest;
    so.name = "bus-bridge-redrive";
    Subscriber sub(bus.open_topic(config.dead_letter.topic), so);
    const std::uint64_t head = sub.topic().head_hint();
    std::uint64_t gaps = 0;
    sub.on_gap([&](const Gap& g) { gaps += g.count; });
    while (sub.next_sequence() <= head) {
      const std::size_t n = sub.poll(
          [&](const Message& m) {
            flatbuffers::Verifier v(reinterpret_cast<const std::uint8_t*>(m.data.data()),
                                    m.data.size());
            if (!sys::VerifyDeadLetterBuffer(v)) return;
            const auto* d = sys::GetDeadLetter(m.data.data());
            if (d->source() == nullptr || d->source()->str() != source) return;
            if (static_cast<std::int64_t>(d->ts()) < since) return;
            Letter l;
            l.original_topic = d->original_topic()->str();
            l.reason = d->reason() != nullptr ? d->reason()->str() : "";
            if (d->payload() != nullptr) {
              l.payload.assign(reinterpret_cast<const char*>(d->payload()->data()),
                               d->payload()->size());
            }
            l.ts = d->ts();
            letters.push_back(std::move(l));
          },
          256);
      if (n == 0 && !sub.ready()) break;
    }
    if (gaps > 0) {
      std::fprintf(stderr,
                   "bus-bridge redrive: %llu older dead letters were overwritten in the "
                   "ring before they could be read\n",
                   static_cast<unsigned long long>(gaps));
    }
  }
  std::printf("redrive: %zu dead letter(s) of route %s\n", letters.size(), route->name.c_str());
  if (options.dry_run || letters.empty()) {
    for (const auto& l : letters)
      std::printf("  %s: %s\n", l.original_topic.c_str(), l.reason.c_str());
    return 0;
  }

  const bool inbound = route->direction == Direction::In;
  std::size_t sent = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  if (route->kind == RouteKind::Amqp) {
    if (inbound && route->exchange.empty()) {
      throw std::runtime_error(
          "route " + route->name + " consumes queue " + route->queue +
          " without an exchange: give the route an 'exchange' and 'bindings' that route the "
          "letters' routing keys to the queue, then redrive");
    }
    transport::AmqpPublisherOptions o;
    o.endpoint.host = config.amqp.host;
    o.endpoint.port = config.amqp.port;
    o.endpoint.user = config.amqp.user;
    o.endpoint.password = config.amqp.password;
    o.endpoint.vhost = config.amqp.vhost;
    o.endpoint.connect_timeout = config.amqp.connect_timeout;
    o.exchange = route->exchange;
    transport::AmqpPublisher pub(o);
    if (!pub.connect(config.amqp.connect_timeout)) {
      throw std::runtime_error("cannot reach the AMQP broker: " + pub.last_error());
    }
    std::vector<transport::AmqpCompletion> done;
    for (const auto& l : letters) {
      transport::AmqpMessage m;
      m.routing_key = l.original_topic;
      m.body = l.payload;
      m.persistent = true;
      while (pub.publish(m) != transport::SubmitStatus::Queued) {
        if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("timed out");
        pub.poll(std::chrono::milliseconds(10), done);
      }
    }
    if (!pub.flush(std::chrono::seconds(30), done)) throw std::runtime_error("confirms timed out");
    for (const auto& d : done) {
      if (d.outcome == transport::AmqpOutcome::Confirmed)
        ++sent;
      else
        std::fprintf(stderr, "redrive: %s: %s %s\n", d.message.routing_key.c_str(),
                     transport::to_string(d.outcome), d.reason.c_str());
    }
  } else {
    transport::RedisPublisherOptions o;
    o.endpoint.host = config.redis.host;
    o.endpoint.port = config.redis.port;
    o.endpoint.user = config.redis.user;
    o.endpoint.password = config.redis.password;
    o.endpoint.connect_timeout = config.redis.connect_timeout;
    transport::RedisPublisher pub(o);
    if (!pub.connect(config.redis.connect_timeout)) {
      throw std::runtime_error("cannot reach redis: " + pub.last_error());
    }
    std::vector<transport::RedisCompletion> done;
    const auto ms = static_cast<std::uint64_t>(now_ns() / 1'000'000);
    std::uint64_t i = 0;
    for (const auto& l : letters) {
      transport::RedisMessage m;
      if (route->kind == RouteKind::RedisStream) {
        const std::string key = inbound ? route->stream : l.original_topic;
        const char* field = route->format == Format::Json ? "json" : "payload";
        m = transport::RedisMessage::xadd(key, transport::StreamId{ms, i++}, {{field, l.payload}});
      } else {
        m = transport::RedisMessage::publish(l.original_topic, l.payload);
      }
      while (pub.submit(m) != transport::SubmitStatus::Queued) {
        if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("timed out");
        pub.poll(std::chrono::milliseconds(10), done);
      }
    }
    if (!pub.flush(std::chrono::seconds(30), done)) throw std::runtime_error("replies timed out");
    for (const auto& d : done) {
      if (d.outcome == transport::RedisOutcome::Confirmed)
        ++sent;
      else
        std::fprintf(stderr, "redrive: %s: %s %s\n", d.message.key.c_str(),
                     transport::to_string(d.outcome), d.error.c_str());
    }
  }
  std::printf("redrive: %zu of %zu re-injected\n", sent, letters.size());
  return sent == letters.size() ? 0 : 1;
}

}  // namespace shmbus::bridge
