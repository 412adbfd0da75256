// InboundRoute: a Redis channel or pattern, a Redis stream (consumer group) or an AMQP queue
// -> a bus topic.
//
//   source.poll() ──> queue_ (received, in order) ──decode──> try_publish on the bus topic
//                                                   │ invalid        │ Ok / dead-lettered
//                                                   v                v
//                                        dead letter (reason)    ack (XACK / basic.ack)
//
// Decoding: format json takes the JSON envelope (what outbound routes and bus-inspect tail
// write: the "data" member, with "topic", "type" and "bus" checked) or a bare JSON object,
// and converts it by the topic's schema; format raw takes FlatBuffer bytes (metadata from
// the AMQP headers / stream fields when present) and runs the verifier. Invalid JSON, a
// wrong type, a failed verification, a message too large for the slot: dead letter with the
// reason, counted, nothing published, and the source message acknowledged (it was handled).
//
// Acknowledgement only once the message is on the bus: a reliable topic whose ring is full
// (WouldBlock) holds the message at the head of queue_, and with it the acknowledgement —
// the broker's prefetch window or the stream's pending list is the back-pressure, nothing is
// lost. Redis pub/sub has no acknowledgement: queue_ is bounded, beyond it the route stops
// reading and the messages wait in the socket (then in Redis's output buffer).
//
// Echo: an envelope (or header) whose "bus" is this bridge's bus came from here: dropped,
// counted, acknowledged.
#include <fmt/format.h>

#include <deque>
#include <map>
#include <optional>
#include <variant>

#include <nlohmann/json.hpp>
#include <shmbus/error.hpp>
#include <shmbus/schema/json_codec.hpp>
#include <shmbus/schema/verifier.hpp>

#include "route_base.hpp"
#include "routes.hpp"
#include "transport/amqp_consumer.hpp"
#include "transport/redis_stream_consumer.hpp"
#include "transport/redis_subscriber.hpp"

namespace shmbus::bridge {
namespace {

struct Item {
  std::string origin;  // channel, stream or routing key
  std::string body;
  transport::Fields meta;  // headers / stream fields (lower-case names)
  std::variant<std::monostate, std::string, transport::AmqpDeliveryTag> ack;
  std::int64_t received_ns = 0;
};

// The remote source of an inbound route, as the route sees it.
class Source {
 public:
  virtual ~Source() = default;
  virtual void poll(std::chrono::milliseconds timeout, std::deque<Item>& out) = 0;
  virtual void ack(const Item& item) = 0;
  // Sends what ack() deferred (AMQP: one cumulative basic.ack per batch of deliveries).
  virtual void flush_acks() {}
  [[nodiscard]] virtual bool ready() const = 0;  // connected (and subscribed)
  [[nodiscard]] virtual transport::LinkState state() const = 0;
  [[nodiscard]] virtual const std::string& last_error() const = 0;
  [[nodiscard]] virtual std::uint64_t reconnects() const = 0;
};

class PubSubSource final : public Source {
 public:
  explicit PubSubSource(transport::RedisSubscriberOptions o) : sub_(std::move(o)) {}
  void poll(std::chrono::milliseconds timeout, std::deque<Item>& out) override {
    got_.clear();
    sub_.poll(timeout, got_);
    const std::int64_t now = now_ns();
    for (auto& m : got_)
      out.push_back(Item{std::move(m.channel), std::move(m.payload), {}, {}, now});
  }
  void ack(const Item&) override {}
  bool ready() const override { return sub_.subscribed(); }
  transport::LinkState state() const override {
    // Connected but not yet subscribed is not "connected" for /health: messages are missed.
    return sub_.subscribed()                             ? transport::LinkState::Ready
           : sub_.state() == transport::LinkState::Ready ? transport::LinkState::Authenticating
                                                         : sub_.state();
  }
  const std::string& last_error() const override { return sub_.last_error(); }
  std::uint64_t reconnects() const override { return sub_.reconnects(); }

 private:
  transport::RedisSubscriber sub_;
  std::vector<transport::RedisPubSubMessage> got_;
};

class StreamSource final : public Source {
 public:
  StreamSource(transport::RedisStreamConsumerOptions o, Format format)
      : stream_(o.stream), consumer_(std::move(o)), format_(format) {}
  void poll(std::chrono::milliseconds timeout, std::deque<Item>& out) override {
    got_.clear();
    consumer_.poll(timeout, got_);
    const std::int64_t now = now_ns();
    for (auto& e : got_) {
      Item it;
      it.origin = stream_;
      it.ack = e.id;
      it.received_ns = now;
      const char* body_field = format_ == Format::Json ? "json" : "payload";
      bool found = false;
      for (auto& [k, v] : e.fields) {
        if (k == body_field) {
          it.body = std::move(v);
          found = true;
        } else {
          it.meta.emplace_back(k, std::move(v));
        }
      }
      // An entry written by someone else with one field of another name: that is the body.
      if (!found && e.fields.size() == 1) {
        it.body = std::move(it.meta.front().second);
        it.meta.clear();
      }
      out.push_back(std::move(it));
    }
  }
  // One XACK for the batch handled (the ids of one poll, up to the first held entry).
  void ack(const Item& item) override { acks_.push_back(std::get<std::string>(item.ack)); }
  void flush_acks() override {
    consumer_.ack(acks_);
    acks_.clear();
  }
  bool ready() const override { return consumer_.state() == transport::LinkState::Ready; }
  transport::LinkState state() const override { return consumer_.state(); }
  const std::string& last_error() const override { return consumer_.last_error(); }
  std::uint64_t reconnects() const override { return consumer_.reconnects(); }

 private:
  std::string stream_;
  transport::RedisStreamConsumer consumer_;
  Format format_;
  std::vector<transport::StreamEntry> got_;
  std::vector<std::string> acks_;
};

class AmqpSource final : public Source {
 public:
  explicit AmqpSource(transport::AmqpConsumerOptions o) : consumer_(std::move(o)) {}
  void poll(std::chrono::milliseconds timeout, std::deque<Item>& out) override {
    got_.clear();
    consumer_.poll(timeout, got_);
    const std::int64_t now = now_ns();
    for (auto& d : got_) {
      Item it;
      it.origin = std::move(d.routing_key);
      it.body = std::move(d.body);
      bool from_bridge = false;
      for (auto& [k, v] : d.headers) {
        // shmbus-topic -> topic: one set of names for headers and stream fields.
        const bool ours = k.rfind("shmbus-", 0) == 0;
        from_bridge = from_bridge || ours;
        it.meta.emplace_back(ours ? k.substr(7) : k, std::move(v));
      }
      // A bridge's outbound route puts the rest of the metadata in basic properties. Other
      // publishers use type and app_id for their own purposes: taken only from a message
      // that carries the bridge's headers.
      if (from_bridge) {
        if (!d.type.empty()) it.meta.emplace_back("type", std::move(d.type));
        if (!d.app_id.empty()) it.meta.emplace_back("bus", std::move(d.app_id));
        if (!d.message_id.empty()) it.meta.emplace_back("id", std::move(d.message_id));
      }
      it.ack = d.tag;
      it.received_ns = now;
      out.push_back(std::move(it));
    }
  }
  // Items are handled in delivery order, so one basic.ack with `multiple` for the last one
  // settles the batch: one frame (and one write) per batch instead of per message, which
  // is work saved in the broker too.
  void ack(const Item& item) override {
    const auto& tag = std::get<transport::AmqpDeliveryTag>(item.ack);
    if (pending_ack_ && pending_ack_->generation != tag.generation) flush_acks();
    pending_ack_ = tag;
  }
  void flush_acks() override {
    if (!pending_ack_) return;
    // Stale (a delivery of a connection since lost): the broker redelivers it; the bus may
    // then see it twice — at-least-once, as documented.
    (void)consumer_.ack(*pending_ack_, /*multiple=*/true);
    pending_ack_.reset();
  }
  bool connect(std::chrono::milliseconds t) { return consumer_.connect(t); }
  bool ready() const override { return consumer_.state() == transport::LinkState::Ready; }
  transport::LinkState state() const override { return consumer_.state(); }
  const std::string& last_error() const override { return consumer_.last_error(); }
  std::uint64_t reconnects() const override { return consumer_.reconnects(); }

 private:
  transport::AmqpConsumer consumer_;
  std::vector<transport::AmqpDelivery> got_;
  std::optional<transport::AmqpDeliveryTag> pending_ack_;
};

const std::string* find_meta(const transport::Fields& f, std::string_view key) {
  for (const auto& [k, v] : f) {
    if (k == key) return &v;
  }
  return nullptr;
}

class InboundRoute final : public RouteBase {
 public:
  using RouteBase::RouteBase;

  void start(Bridge& bridge) override {
    init_metrics(bridge);
    received_ =
        &counter("shmbus_bridge_route_received_total", "Messages received from the remote source");
    published_ = &counter("shmbus_bridge_route_published_total", "Messages published on the bus");
    rejected_ = &counter("shmbus_bridge_route_rejected_total",
                         "Messages refused (invalid, wrong type, too large): dead-lettered");
    echo_ = &counter("shmbus_bridge_route_echo_dropped_total", kEchoHelp);
    held_gauge_ = &gauge("shmbus_bridge_route_held",
                         "1 while a full reliable topic holds the route (back-pressure)");

    // A fixed topic is opened now: a type that does not match, or another producer, is a
    // configuration error before anything runs.
    if (!route_.topic.empty()) {
      try {
        (void)publisher_for(route_.topic, route_.type);
      } catch (const Error& e) {
        auto it = route_.keys.find(route_.type.empty() ? "topic" : "type");
        config_fail(it != route_.keys.end() ? it->second : route_.origin,
                    fmt::format("route '{}' cannot publish on topic '{}': {}", route_.name,
                                route_.topic, e.what()));
      }
    }
    std::chrono::milliseconds timeout = config_.redis.connect_timeout;
    switch (route_.kind) {
      case RouteKind::RedisChannel:
      case RouteKind::RedisPattern: {
        transport::RedisSubscriberOptions o;
        o.endpoint = redis_endpoint();
        if (route_.kind == RouteKind::RedisChannel)
          o.channels = {route_.channel};
        else
          o.patterns = {route_.pattern};
        target_ =
            fmt::format("redis {}:{} {}", config_.redis.host, config_.redis.port,
                        route_.kind == RouteKind::RedisChannel ? route_.channel : route_.pattern);
        source_ = std::make_unique<PubSubSource>(std::move(o));
        break;
      }
      case RouteKind::RedisStream: {
        transport::RedisStreamConsumerOptions o;
        o.endpoint = redis_endpoint();
        o.stream = route_.stream;
        o.group = route_.group;
        o.consumer = route_.consumer;
        o.create_from = route_.start;
        target_ = fmt::format("redis {}:{} stream {}", config_.redis.host, config_.redis.port,
                              route_.stream);
        source_ = std::make_unique<StreamSource>(std::move(o), route_.format);
        break;
      }
      default: {
        transport::AmqpConsumerOptions o;
        o.endpoint = amqp_endpoint();
        o.queue = route_.queue;
        o.exchange = route_.exchange;
        o.bindings = route_.bindings;
        o.prefetch = route_.prefetch;
        target_ =
            fmt::format("amqp {}:{} queue {}", config_.amqp.host, config_.amqp.port, route_.queue);
        timeout = config_.amqp.connect_timeout;
        source_ = std::make_unique<AmqpSource>(std::move(o));
        break;
      }
    }
    // Connected (and subscribed) before the bridge says it is ready: a message sent after
    // "ready" is not missed.
    const auto deadline = std::chrono::steady_clock::now() + timeout + std::chrono::seconds(1);
    while (!source_->ready() && std::chrono::steady_clock::now() < deadline) {
      source_->poll(std::chrono::milliseconds(20), queue_);
      if (source_->state() == transport::LinkState::Disconnected &&
          !source_->last_error().empty()) {
        break;
      }
    }
    if (!source_->ready()) {
      unreachable(target_, source_->last_error().empty() ? "timed out" : source_->last_error());
    }
    received_->inc(queue_.size());
    observe(*source_);
    launch();
  }

 private:
  struct Target {
    std::shared_ptr<SharedPublisher> pub;
    std::string type;  // the topic's type ("" raw)
  };

  void health_extra(nlohmann::json& out) const override {
    out["source"] = target_;
    out["received"] = received_->value();
    out["published"] = published_->value();
    out["rejected"] = rejected_->value();
    out["echo_dropped"] = echo_->value();
    out["held"] = held_.load(std::memory_order_relaxed);
  }

  Target& publisher_for(const std::string& topic, const std::string& type_hint) {
    auto it = targets_.find(topic);
    if (it != targets_.end()) return it->second;
    Bus& bus = bridge_->bus();
    TopicConfig tc;
    if (bus.has_topic(topic)) {
      Topic t = bus.open_topic(topic);
      tc.type =
          t.type_name().empty() ? TypeInfo::raw() : SchemaRegistry::instance().find(t.type_name());
      if (!route_.type.empty() && route_.type != t.type_name()) {
        throw Error(Errc::TypeMismatch,
                    fmt::format("the topic carries {} and the route says {}",
                                t.type_name().empty() ? "raw bytes" : t.type_name(), route_.type));
      }
    } else {
      const std::string type = !route_.type.empty() ? route_.type : type_hint;
      if (type.empty()) {
        throw Error(Errc::UnknownType,
                    "the topic does not exist yet and neither the route ('type') nor the "
                    "message says which type it carries");
      }
      tc.type = SchemaRegistry::instance().find(type);
      tc.policy = route_.reliable ? Policy::Reliable : Policy::Lossy;
      tc.slot_size = route_.slot_size != 0 ? route_.slot_size : 1024;
      tc.slot_count = route_.slot_count;
    }
    auto shared = bridge_->bus_publisher(topic, tc);
    return targets_.emplace(topic, Target{shared, shared->topic.type_name()}).first->second;
  }

  JsonCodec& codec(const std::string& type) {
    auto it = codecs_.find(type);
    if (it == codecs_.end()) {
      it = codecs_.emplace(type, std::make_unique<JsonCodec>(SchemaRegistry::instance().find(type)))
               .first;
    }
    return *it->second;
  }
  Verifier& verifier(const std::string& type) {
    auto it = verifiers_.find(type);
    if (it == verifiers_.end()) {
      it = verifiers_
               .emplace(type, std::make_unique<Verifier>(SchemaRegistry::instance().find(type)))
               .first;
    }
    return *it->second;
  }

  struct Rejection {
    sys::DeadLetterReason code;
    std::string reason;
    std::string topic;
    std::string type;
  };
  enum class Result : std::uint8_t { Published, Rejected, Echo, Held };

  // Decodes and publishes one item. Held: a reliable topic is full, try again later.
  Result process(const Item& item, std::vector<std::byte>& bytes, Rejection& rej) {
    std::string msg_topic, msg_type, origin_bus;
    bytes.clear();
    if (route_.format == Format::Json) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(item.body);
      } catch (const nlohmann::json::exception& e) {
        rej = {sys::DeadLetterReason::InvalidJson, std::string("not JSON: ") + e.what(), {}, {}};
        return Result::Rejected;
      }
      const nlohmann::json* data = &j;
      if (j.is_object() && j.contains("data") && (j.contains("topic") || j.contains("type"))) {
        if (j.contains("bus") && j["bus"].is_string()) origin_bus = j["bus"].get<std::string>();
        if (j.contains("topic") && j["topic"].is_string())
          msg_topic = j["topic"].get<std::string>();
        if (j.contains("type") && j["type"].is_string()) msg_type = j["type"].get<std::string>();
        data = &j["data"];
      }
      if (!origin_bus.empty() && origin_bus == config_.bus) return Result::Echo;
      std::string topic;
      Target* target = resolve(msg_topic, msg_type, topic, rej);
      if (target == nullptr) return Result::Rejected;
      if (target->type.empty()) {
        rej = {sys::DeadLetterReason::UnknownType,
               "the topic is raw (untyped): JSON cannot be converted for it; use format raw", topic,
               msg_type};
        return Result::Rejected;
      }
      if (!msg_type.empty() && msg_type != target->type) {
        rej = {sys::DeadLetterReason::SchemaMismatch,
               fmt::format("the message is a {} and topic {} carries {}", msg_type, topic,
                           target->type),
               topic, msg_type};
        return Result::Rejected;
      }
      if (!data->is_object()) {
        rej = {
            sys::DeadLetterReason::InvalidJson,
            fmt::format("expected a JSON object for {}, got {}", target->type, data->type_name()),
            topic, target->type};
        return Result::Rejected;
      }
      try {
        bytes = codec(target->type).from_json(data->dump());
      } catch (const Error& e) {
        rej = {sys::DeadLetterReason::InvalidJson, e.what(), topic, target->type};
        return Result::Rejected;
      }
      return publish(*target, topic, bytes, rej);
    }
    // Raw FlatBuffer bytes; metadata from headers / fields when the sender gave them.
    if (const auto* b = find_meta(item.meta, "bus")) origin_bus = *b;
    if (!origin_bus.empty() && origin_bus == config_.bus) return Result::Echo;
    if (const auto* t = find_meta(item.meta, "topic")) msg_topic = *t;
    if (const auto* t = find_meta(item.meta, "type")) msg_type = *t;
    std::string topic;
    Target* target = resolve(msg_topic, msg_type, topic, rej);
    if (target == nullptr) return Result::Rejected;
    if (!msg_type.empty() && !target->type.empty() && msg_type != target->type) {
      rej = {
          sys::DeadLetterReason::SchemaMismatch,
          fmt::format("the message is a {} and topic {} carries {}", msg_type, topic, target->type),
          topic, msg_type};
      return Result::Rejected;
    }
    const auto* p = reinterpret_cast<const std::byte*>(item.body.data());
    bytes.assign(p, p + item.body.size());
    if (!target->type.empty()) {
      const std::string why = verifier(target->type).check(bytes);
      if (!why.empty()) {
        rej = {sys::DeadLetterReason::VerifyFailed,
               fmt::format("failed the FlatBuffers verifier for {}: {}", target->type, why), topic,
               target->type};
        return Result::Rejected;
      }
    }
    return publish(*target, topic, bytes, rej);
  }

  Target* resolve(const std::string& msg_topic, const std::string& msg_type, std::string& topic,
                  Rejection& rej) {
    if (!route_.topic.empty()) {
      topic = route_.topic;
    } else if (msg_topic.empty()) {
      rej = {sys::DeadLetterReason::NoRoute,
             "the message names no topic (the route takes the envelope's \"topic\", which must "
             "match '" +
                 route_.accept->str() + "')",
             {},
             msg_type};
      return nullptr;
    } else if (!route_.accept->matches(msg_topic)) {
      rej = {sys::DeadLetterReason::NoRoute,
             fmt::format("topic '{}' does not match the route's accept pattern '{}'", msg_topic,
                         route_.accept->str()),
             msg_topic, msg_type};
      return nullptr;
    } else {
      topic = msg_topic;
    }
    try {
      return &publisher_for(topic, msg_type);
    } catch (const Error& e) {
      rej = {e.code() == Errc::UnknownType    ? sys::DeadLetterReason::UnknownType
             : e.code() == Errc::TypeMismatch ? sys::DeadLetterReason::SchemaMismatch
                                              : sys::DeadLetterReason::NoRoute,
             fmt::format("cannot publish on topic '{}': {}", topic, e.what()), topic, msg_type};
      return nullptr;
    }
  }

  Result publish(Target& target, const std::string& topic, const std::vector<std::byte>& bytes,
                 Rejection& rej) {
    std::lock_guard lock(target.pub->mutex);
    const PublishResult r = target.pub->publisher->try_publish(std::span(bytes));
    switch (r) {
      case PublishResult::Ok:
        return Result::Published;
      case PublishResult::WouldBlock:
        return Result::Held;
      case PublishResult::TooLarge:
        rej = {sys::DeadLetterReason::TooLarge,
               fmt::format("{} bytes do not fit topic {} (at most {})", bytes.size(), topic,
                           target.pub->topic.max_payload()),
               topic, target.type};
        return Result::Rejected;
      default:
        rej = {sys::DeadLetterReason::Unknown,
               fmt::format("publish on {} failed: {}", topic, to_string(r)), topic, target.type};
        return Result::Rejected;
    }
  }

  void loop() override {
    std::vector<std::byte> bytes;
    Rejection rej;
    constexpr std::size_t kQueueLimit = 8192;
    while (!stop_requested()) {
      const bool idle = queue_.empty() || held_.load(std::memory_order_relaxed);
      if (queue_.size() < kQueueLimit) {
        const std::size_t before = queue_.size();
        source_->poll(std::chrono::milliseconds(idle ? 20 : 0), queue_);
        received_->inc(queue_.size() - before);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      observe(*source_);
      bool held = false;
      while (!queue_.empty() && !stop_requested()) {
        const Item& item = queue_.front();
        const Result r = process(item, bytes, rej);
        if (r == Result::Held) {
          held = true;
          break;
        }
        if (r == Result::Published) {
          published_->inc();
        } else if (r == Result::Echo) {
          echo_->inc();
        } else {
          rejected_->inc();
          DeadLetterInfo dl;
          dl.route = route_.name;
          dl.original_topic = item.origin;
          dl.reason = rej.reason;
          dl.code = rej.code;
          dl.original_type = rej.type;
          dl.payload =
              std::span(reinterpret_cast<const std::byte*>(item.body.data()), item.body.size());
          dl.received_ns = item.received_ns;
          bridge_->dead_letter(dl);
        }
        source_->ack(item);
        queue_.pop_front();
      }
      source_->flush_acks();
      held_.store(held, std::memory_order_relaxed);
      held_gauge_->set(held ? 1.0 : 0.0);
      if (held) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    // Shutdown: stop reading; what is queued and not on the bus stays unacknowledged, so the
    // broker / stream delivers it again to the next consumer. Acks already given are flushed
    // by one last poll.
    if (route_.kind == RouteKind::RedisStream) source_->poll(std::chrono::milliseconds(0), queue_);
  }

  std::unique_ptr<Source> source_;
  std::string target_;
  std::deque<Item> queue_;
  std::map<std::string, Target> targets_;
  std::map<std::string, std::unique_ptr<JsonCodec>> codecs_;
  std::map<std::string, std::unique_ptr<Verifier>> verifiers_;
  std::atomic<bool> held_{false};

  transport::Counter* received_ = nullptr;
  transport::Counter* published_ = nullptr;
  transport::Counter* rejected_ = nullptr;
  transport::Counter* echo_ = nullptr;
  transport::Gauge* held_gauge_ = nullptr;
};

}  // namespace

std::unique_ptr<Component> make_inbound_route(const Config& config, const RouteConfig& route) {
  return std::make_unique<InboundRoute>(config, route);
}

}  // namespace shmbus::bridge
