// OutboundRoute: bus topics matching a pattern -> Redis PUBLISH, Redis XADD or an AMQP
// topic exchange.
//
//   bus topics ──Subscriber "bridge:<route>" per topic (registered: bus-inspect shows lag)──┐
//        │ (scan every topic_scan_ms: topics that appear later are picked up, from the      │
//        │  oldest message still in their ring)                                             v
//        │                                       convert (JSON envelope | raw + metadata)
//        │                                                       │
//        │                     pending_ (read, not yet accepted) │ sink.submit()
//        │                                                       v
//        │                     in flight in the sink (pipelined / confirm window)
//        │                                                       │ sink.poll()
//        │     Confirmed, Duplicate ──> counted     Failed, Returned ──> dead letter
//        └──── Unconfirmed, Nacked (connection lost) ──> back to the front of pending_, in order
//
// Flow control is reading: while the remote is down or the window is full, the route reads
// nothing, so a reliable topic's ring holds its producer back (the route is a registered
// consumer like any slow one) and a lossy topic laps the route, which counts the gap as
// drops. Nothing read is ever discarded: what the sink did not confirm is re-sent after the
// reconnect. Delivery: PUBLISH at-least-once to whoever is subscribed (Redis pub/sub itself
// is at-most-once for subscribers that are not connected); XADD exactly-once into the
// stream, because the entry id <ms>-<seq> is fixed when the message is read (ms from its
// publish time, never decreasing per topic; seq the bus sequence) and a re-sent id is a
// Duplicate; AMQP at-least-once (confirms, re-publish of the unconfirmed).
//
// Echo: a message whose producer is this process (an inbound route of this bridge put it
// on the bus) is not sent back out when skip_own is set (the default), and is counted.
#include <fmt/format.h>
#include <unistd.h>

#include <deque>
#include <map>
#include <variant>

#include <shmbus/admin/envelope.hpp>
#include <shmbus/core/subscriber.hpp>
#include <shmbus/error.hpp>

#include "route_base.hpp"
#include "routes.hpp"
#include "transport/amqp_publisher.hpp"
#include "transport/redis_publisher.hpp"

namespace shmbus::bridge {
namespace {

using transport::AmqpMessage;
using transport::RedisMessage;
using OutMessage = std::variant<RedisMessage, AmqpMessage>;

enum class Outcome : std::uint8_t { Confirmed, Failed, Resend };
struct Done {
  Outcome outcome;
  OutMessage message;
  std::string reason;
};

// The remote end of an outbound route, as the route sees it.
class Sink {
 public:
  virtual ~Sink() = default;
  // Moves from `m` only when it was queued.
  [[nodiscard]] virtual transport::SubmitStatus submit(OutMessage& m) = 0;
  virtual void poll(std::chrono::microseconds timeout, std::vector<Done>& out) = 0;
  [[nodiscard]] virtual bool connect(std::chrono::milliseconds timeout) = 0;
  [[nodiscard]] virtual transport::LinkState state() const = 0;
  [[nodiscard]] virtual const std::string& last_error() const = 0;
  [[nodiscard]] virtual std::uint64_t reconnects() const = 0;
  [[nodiscard]] virtual std::size_t in_flight() const = 0;
};

// The link-state half of a Sink, forwarded to the transport client (Redis or AMQP alike).
template <class Publisher, class Options>
class SinkOf : public Sink {
 public:
  explicit SinkOf(Options o) : pub_(std::move(o)) {}
  bool connect(std::chrono::milliseconds timeout) override { return pub_.connect(timeout); }
  transport::LinkState state() const override { return pub_.state(); }
  const std::string& last_error() const override { return pub_.last_error(); }
  std::uint64_t reconnects() const override { return pub_.reconnects(); }
  std::size_t in_flight() const override { return pub_.in_flight(); }

 protected:
  Publisher pub_;
};

class RedisSink final : public SinkOf<transport::RedisPublisher, transport::RedisPublisherOptions> {
 public:
  using SinkOf::SinkOf;
  transport::SubmitStatus submit(OutMessage& m) override {
    return pub_.try_submit(std::get<RedisMessage>(m));
  }
  void poll(std::chrono::microseconds timeout, std::vector<Done>& out) override {
    completions_.clear();
    pub_.poll(timeout, completions_);
    for (auto& c : completions_) {
      switch (c.outcome) {
        case transport::RedisOutcome::Confirmed:
        case transport::RedisOutcome::Duplicate:
          out.push_back({Outcome::Confirmed, std::move(c.message), {}});
          break;
        case transport::RedisOutcome::Failed:
          out.push_back({Outcome::Failed, std::move(c.message), std::move(c.error)});
          break;
        case transport::RedisOutcome::Unconfirmed:
          out.push_back({Outcome::Resend, std::move(c.message), std::move(c.error)});
          break;
      }
    }
  }

 private:
  std::vector<transport::RedisCompletion> completions_;
};

class AmqpSink final : public SinkOf<transport::AmqpPublisher, transport::AmqpPublisherOptions> {
 public:
  using SinkOf::SinkOf;
  transport::SubmitStatus submit(OutMessage& m) override {
    return pub_.try_publish(std::get<AmqpMessage>(m));
  }
  void poll(std::chrono::microseconds timeout, std::vector<Done>& out) override {
    completions_.clear();
    pub_.poll(timeout, completions_);
    for (auto& c : completions_) {
      switch (c.outcome) {
        case transport::AmqpOutcome::Confirmed:
          out.push_back({Outcome::Confirmed, std::move(c.message), {}});
          break;
        case transport::AmqpOutcome::Returned:
          out.push_back({Outcome::Failed, std::move(c.message),
                         "returned by the broker as unroutable (" + c.reason +
                             "): no queue is bound for this routing key"});
          break;
        case transport::AmqpOutcome::Nacked:
        case transport::AmqpOutcome::Unconfirmed:
          out.push_back({Outcome::Resend, std::move(c.message), std::move(c.reason)});
          break;
      }
    }
  }

 private:
  std::vector<transport::AmqpCompletion> completions_;
};

// Bounded by the participant-name limit of the consumer table (31 characters).
std::string consumer_name(const std::string& route) {
  std::string n = "bridge:" + route;
  if (n.size() > 31) n.resize(31);
  return n;
}

class OutboundRoute final : public RouteBase {
 public:
  using RouteBase::RouteBase;

  void start(Bridge& bridge) override {
    init_metrics(bridge);
    forwarded_ = &counter("shmbus_bridge_route_forwarded_total",
                          "Messages read from the bus and sent to the remote");
    confirmed_ = &counter("shmbus_bridge_route_confirmed_total",
                          "Messages the remote confirmed (Redis reply, AMQP publisher confirm)");
    failed_ = &counter("shmbus_bridge_route_failed_total",
                       "Messages the remote refused (error reply, returned as unroutable)");
    resent_ = &counter("shmbus_bridge_route_resent_total",
                       "Messages sent again after a lost connection or a nack");
    dropped_ = &counter("shmbus_bridge_route_dropped_total",
                        "Messages lost to lapping on lossy topics (the route fell a ring behind)");
    echo_ = &counter("shmbus_bridge_route_echo_dropped_total", kEchoHelp);
    lag_gauge_ = &gauge("shmbus_bridge_route_lag",
                        "Messages published on the route's topics and not yet read by it");
    topics_gauge_ = &gauge("shmbus_bridge_route_topics", "Bus topics the route reads");
    in_flight_gauge_ = &gauge("shmbus_bridge_route_in_flight",
                              "Messages sent and not yet confirmed by the remote");

    if (route_.kind == RouteKind::Amqp) {
      transport::AmqpPublisherOptions o;
      o.endpoint = amqp_endpoint();
      o.exchange = route_.exchange;
      o.window = route_.window;
      target_ = fmt::format("amqp {}:{}", config_.amqp.host, config_.amqp.port);
      sink_ = std::make_unique<AmqpSink>(std::move(o));
    } else {
      transport::RedisPublisherOptions o;
      o.endpoint = redis_endpoint();
      o.window_messages = route_.window;
      target_ = fmt::format("redis {}:{}", config_.redis.host, config_.redis.port);
      sink_ = std::make_unique<RedisSink>(std::move(o));
    }
    const auto timeout = route_.kind == RouteKind::Amqp ? config_.amqp.connect_timeout
                                                        : config_.redis.connect_timeout;
    if (!sink_->connect(timeout + std::chrono::milliseconds(500))) {
      unreachable(target_, sink_->last_error());
    }
    observe(*sink_);
    scan(/*at_start=*/true);
    launch();
  }

 private:
  struct Source {
    Subscriber sub;
    EnvelopeWriter env;
    bool reliable;
    bool persistent;
    std::string key;  // route prefix + topic: the channel, stream or routing key
    std::uint64_t last_ms = 0;
    std::uint64_t gap_drops = 0;
    std::uint64_t xadds = 0;
  };
  static constexpr std::uint64_t kTrimEvery = 64;

  void health_extra(nlohmann::json& out) const override {
    out["target"] = target_;
    out["topics"] = topics_.load(std::memory_order_relaxed);
    out["lag"] = lag_.load(std::memory_order_relaxed);
    out["in_flight"] = in_flight_.load(std::memory_order_relaxed);
    out["pending"] = pending_count_.load(std::memory_order_relaxed);
    out["forwarded"] = forwarded_->value();
    out["confirmed"] = confirmed_->value();
    out["failed"] = failed_->value();
    out["dropped"] = dropped_->value();
  }

  void scan(bool at_start) {
    Bus& bus = bridge_->bus();
    std::uint64_t lag = 0;
    for (const auto& name : bus.topic_names()) {
      if (sources_.count(name) != 0 || failed_topics_.count(name) != 0) continue;
      if (name == config_.dead_letter.topic || !route_.topics->matches(name)) continue;
      bool excluded = false;
      for (const auto& e : route_.exclude) excluded = excluded || e.matches(name);
      if (excluded) continue;
      try {
        Topic t = bus.open_topic(name);
        SubscriberOptions so;
        so.name = consumer_name(route_.name);
        // A topic that exists at start: from now on (not a replay of its whole ring). One
        // that appears later: from its oldest message, so its first messages are not missed.
        so.start = at_start ? Start::Live : Start::Oldest;
        const bool reliable = t.policy() == Policy::Reliable;
        const bool persistent = route_.persistent == Persistence::Always ||
                                (route_.persistent == Persistence::Auto && reliable);
        auto src = std::make_unique<Source>(Source{Subscriber(t, so), EnvelopeWriter(t), reliable,
                                                   persistent, route_.prefix + name});
        Source* raw = src.get();
        src->sub.on_gap([this, raw](const Gap& g) {
          raw->gap_drops += g.count;
          dropped_->inc(g.count);
        });
        sources_.emplace(name, std::move(src));
        bridge_->log(fmt::format("route {}: reading topic {} ({})", route_.name, name,
                                 reliable ? "reliable" : "lossy"));
      } catch (const Error& e) {
        failed_topics_.insert(name);
        bridge_->log(
            fmt::format("route {}: cannot read topic {}: {}", route_.name, name, e.what()));
      }
    }
    for (auto& [name, src] : sources_) {
      const std::uint64_t head = src->sub.topic().head_hint();
      const std::uint64_t next = src->sub.next_sequence();
      lag += head + 1 > next ? head + 1 - next : 0;
    }
    lag_.store(lag, std::memory_order_relaxed);
    lag_gauge_->set(static_cast<double>(lag));
    topics_.store(sources_.size(), std::memory_order_relaxed);
    topics_gauge_->set(static_cast<double>(sources_.size()));
  }

  OutMessage convert(const std::string& topic, Source& src, const Message& m) {
    const std::string& key = src.key;  // built once per topic, not per message
    const std::uint64_t seq = m.meta.seq;
    const auto raw = [&] {
      return std::string(reinterpret_cast<const char*>(m.data.data()), m.data.size());
    };
    const bool json = route_.format == Format::Json;
    if (route_.kind == RouteKind::RedisPublish) {
      return RedisMessage::publish(key, json ? src.env.message(m) : raw(), seq);
    }
    if (route_.kind == RouteKind::RedisStream) {
      transport::Fields fields;
      if (json) {
        fields.emplace_back("json", src.env.message(m));
      } else {
        // The entry ID <ms>-<seq> carries the bus sequence (and with bus and topic, the
        // message id): not repeated as fields. Fewer arguments per XADD is less work for
        // redis-server's one thread, the limit of this route.
        fields.reserve(6);
        fields.emplace_back("topic", topic);
        fields.emplace_back("ts", std::to_string(m.meta.ts_ns()));
        fields.emplace_back("producer", std::to_string(m.meta.producer));
        fields.emplace_back("bus", config_.bus);
        fields.emplace_back("type", std::string(m.meta.type));
        fields.emplace_back("payload", raw());
      }
      const auto ms = static_cast<std::uint64_t>(m.meta.ts_ns() / 1'000'000);
      src.last_ms = std::max(src.last_ms, ms);
      // MAXLEN ~ on every kTrimEvery-th entry of a topic (and its first): `~` trims whole
      // stream nodes only (100 entries each by default), so the cap was approximate anyway;
      // three fewer arguments on the other entries is less work for redis-server.
      const std::uint64_t maxlen = src.xadds++ % kTrimEvery == 0 ? route_.maxlen : 0;
      return RedisMessage::xadd(key, transport::StreamId{src.last_ms, seq}, std::move(fields),
                                maxlen, seq);
    }
    AmqpMessage a;
    a.routing_key = key;
    a.persistent = src.persistent;
    a.mandatory = true;
    a.token = seq;
    a.body = json ? src.env.message(m) : raw();
    a.content_type = json ? "application/json" : "application/x-flatbuffers";
    // Metadata with a basic property goes there (message_id, type, app_id = the origin bus,
    // timestamp in seconds); the rest as headers, numbers as integers: the broker decodes
    // a headers table entry by entry, the properties are fixed fields.
    a.message_id = message_id(config_.bus, topic, seq);
    a.type = std::string(m.meta.type);
    a.app_id = config_.bus;
    const std::int64_t ts = m.meta.ts_ns();
    a.timestamp = static_cast<std::uint64_t>(ts / 1'000'000'000);
    a.headers.reserve(4);
    a.headers.emplace_back("shmbus-topic", topic);
    a.headers.emplace_back("shmbus-seq", static_cast<std::int64_t>(seq));
    a.headers.emplace_back("shmbus-ts", ts);
    a.headers.emplace_back("shmbus-producer", static_cast<std::int64_t>(m.meta.producer));
    return a;
  }

  void handle(std::vector<Done>& done) {
    std::vector<OutMessage> resend;
    for (auto& d : done) {
      switch (d.outcome) {
        case Outcome::Confirmed:
          confirmed_->inc();
          break;
        case Outcome::Failed: {
          failed_->inc();
          DeadLetterInfo dl;
          dl.route = route_.name;
          dl.code = route_.kind == RouteKind::Amqp ? sys::DeadLetterReason::NoRoute
                                                   : sys::DeadLetterReason::RemoteRejected;
          dl.reason = bridge_->scrub(d.reason);
          std::string body;
          if (auto* r = std::get_if<RedisMessage>(&d.message)) {
            dl.original_topic = r->key;
            dl.original_seq = r->token;
            body = r->op == transport::RedisOp::Publish ? r->payload
                   : r->fields.empty()                  ? std::string()
                                                        : r->fields.back().second;
          } else {
            auto& a = std::get<AmqpMessage>(d.message);
            dl.original_topic = a.routing_key;
            dl.original_seq = a.token;
            body = a.body;
          }
          dl.payload = std::span(reinterpret_cast<const std::byte*>(body.data()), body.size());
          bridge_->dead_letter(dl);
          break;
        }
        case Outcome::Resend:
          resend.push_back(std::move(d.message));
          break;
      }
    }
    if (!resend.empty()) {
      resent_->inc(resend.size());
      // Unconfirmed messages were sent before everything still pending: they go first, in
      // the order they were sent.
      pending_.insert(pending_.begin(), std::make_move_iterator(resend.begin()),
                      std::make_move_iterator(resend.end()));
    }
    done.clear();
  }

  // Submits pending messages in order; false when the sink takes no more now.
  bool drain_pending() {
    while (!pending_.empty()) {
      if (sink_->submit(pending_.front()) != transport::SubmitStatus::Queued) return false;
      pending_.pop_front();
    }
    return true;
  }

  // Reads up to `budget` messages from the bus into the sink; returns how many were read.
  std::size_t read_bus(std::size_t budget) {
    std::size_t read = 0;
    const auto self = static_cast<std::uint32_t>(::getpid());
    for (auto& [name, src] : sources_) {
      const std::string& topic = name;
      Source& s = *src;
      while (read < budget && pending_.empty()) {
        const std::size_t n = s.sub.poll(
            [&](const Message& m) {
              if (route_.skip_own && m.meta.producer == self) {
                echo_->inc();
                return;
              }
              OutMessage out = convert(topic, s, m);
              forwarded_->inc();
              if (sink_->submit(out) != transport::SubmitStatus::Queued) {
                pending_.push_back(std::move(out));
              }
            },
            1);
        if (n == 0) break;
        ++read;
      }
      if (!pending_.empty()) break;
    }
    return read;
  }

  void loop() override {
    std::vector<Done> done;
    auto next_scan = std::chrono::steady_clock::now() + config_.topic_scan;
    while (!stop_requested()) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= next_scan) {
        scan(false);
        next_scan = now + config_.topic_scan;
      }
      sink_->poll(std::chrono::milliseconds(0), done);
      handle(done);
      observe(*sink_);
      std::size_t read = 0;
      if (sink_->state() == transport::LinkState::Ready && drain_pending()) read = read_bus(256);
      publish_state();
      if (read == 0) {
        // Nothing to read: wait for replies (which also drives a reconnect), or for the bus.
        if (sink_->state() == transport::LinkState::Ready && pending_.empty() &&
            sink_->in_flight() > 0) {
          // Confirms due while the bus may bring more: short waits, so that a message
          // published meanwhile is not held up behind a slow confirm (AMQP: milliseconds).
          sink_->poll(std::chrono::microseconds(200), done);
          handle(done);
        } else if (sink_->in_flight() > 0 || sink_->state() != transport::LinkState::Ready ||
                   !pending_.empty()) {
          sink_->poll(std::chrono::milliseconds(2), done);
          handle(done);
        } else if (sources_.size() == 1) {
          (void)sources_.begin()->second->sub.wait(std::chrono::milliseconds(2));
        } else {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
      }
    }
    // Shutdown: nothing more is read; what was read is sent and its confirms awaited, until
    // the bridge's deadline.
    const auto deadline = bridge_->stop_deadline();
    while (std::chrono::steady_clock::now() < deadline &&
           (!pending_.empty() || sink_->in_flight() > 0)) {
      if (sink_->state() == transport::LinkState::Ready) (void)drain_pending();
      sink_->poll(std::chrono::milliseconds(5), done);
      handle(done);
    }
    if (!pending_.empty() || sink_->in_flight() > 0) {
      bridge_->log(
          fmt::format("route {}: shutdown deadline reached with {} message(s) unsent "
                      "and {} unconfirmed",
                      route_.name, pending_.size(), sink_->in_flight()));
    }
    publish_state();
    sources_.clear();  // leaves the consumer tables
  }

  void publish_state() {
    in_flight_.store(sink_->in_flight(), std::memory_order_relaxed);
    in_flight_gauge_->set(static_cast<double>(sink_->in_flight()));
    pending_count_.store(pending_.size(), std::memory_order_relaxed);
  }

  std::unique_ptr<Sink> sink_;
  std::string target_;
  std::map<std::string, std::unique_ptr<Source>> sources_;
  std::set<std::string> failed_topics_;
  std::deque<OutMessage> pending_;

  transport::Counter* forwarded_ = nullptr;
  transport::Counter* confirmed_ = nullptr;
  transport::Counter* failed_ = nullptr;
  transport::Counter* resent_ = nullptr;
  transport::Counter* dropped_ = nullptr;
  transport::Counter* echo_ = nullptr;
  transport::Gauge* lag_gauge_ = nullptr;
  transport::Gauge* topics_gauge_ = nullptr;
  transport::Gauge* in_flight_gauge_ = nullptr;
  std::atomic<std::uint64_t> lag_{0};
  std::atomic<std::size_t> topics_{0};
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<std::size_t> pending_count_{0};
};

}  // namespace

std::unique_ptr<Component> make_outbound_route(const Config& config, const RouteConfig& route) {
  return std::make_unique<OutboundRoute>(config, route);
}

}  // namespace shmbus::bridge
