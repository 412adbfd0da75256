#pragma once
// AmqpConsumer: consumes one durable queue with manual acknowledgements, on the
// caller's thread.
//
// On every (re)connection: the exchange is declared (durable, when named), the queue
// declared (durable) and bound with each binding key, basic.qos sets the prefetch, and
// basic.consume starts deliveries. poll() hands each delivery (routing key, headers,
// body, tag) to the caller, who settles it when done:
//   ack()     handled (e.g. published on the bus)
//   nack()/reject()  poison or failed: requeue=false drops it (or dead-letters it if the
//             queue has a dead-letter exchange), requeue=true puts it back
// The caller may hold deliveries: the broker sends at most `prefetch` unsettled ones,
// so holding acks is back-pressure, never loss. When the connection breaks, the broker
// requeues everything unsettled and delivers it again (redelivered = true) on the next
// connection; settling a delivery of an older connection returns Stale and sends
// nothing (its tag means nothing on the new channel).
//
// Blocking: poll(t) returns within t once connected (reading the content frames of a
// delivery whose method frame arrived waits for them, bounded by the heartbeat); a
// reconnect attempt blocks up to endpoint.connect_timeout. ack/nack/reject write one
// frame. Not thread-safe: one thread owns a consumer.
#include <string>
#include <vector>

#include "transport/amqp_link.hpp"
#include "transport/redis_publisher.hpp"  // Fields

namespace shmbus::bridge::transport {

struct AmqpConsumerOptions {
  AmqpEndpoint endpoint;
  std::string queue;
  std::string exchange;  // empty: bind nothing (the default exchange routes by name)
  std::string exchange_type = "topic";
  std::vector<std::string> bindings;  // routing-key patterns bound to `exchange`
  bool durable = true;
  std::uint16_t prefetch = 256;
};

struct AmqpDeliveryTag {
  std::uint64_t generation = 0;  // the connection it came on
  std::uint64_t tag = 0;
};

struct AmqpDelivery {
  std::string exchange;
  std::string routing_key;
  Fields headers;  // string, integer and boolean header values, as text
  std::string content_type;
  std::string message_id;  // basic properties, empty / 0 when not sent
  std::string type;
  std::string app_id;
  std::uint64_t timestamp = 0;  // seconds
  std::string body;
  bool redelivered = false;
  AmqpDeliveryTag tag;
};

enum class SettleStatus : std::uint8_t { Ok, Stale, NotConnected };

class AmqpConsumer {
 public:
  // Throws std::invalid_argument for an empty queue name.
  explicit AmqpConsumer(AmqpConsumerOptions options, Backoff::Random random = {});

  // Reconnects if due; appends the deliveries that arrived, waiting up to `timeout` for
  // the first. Returns how many.
  std::size_t poll(std::chrono::milliseconds timeout, std::vector<AmqpDelivery>& out);
  [[nodiscard]] bool connect(std::chrono::milliseconds timeout);

  [[nodiscard]] SettleStatus ack(AmqpDeliveryTag tag, bool multiple = false);
  [[nodiscard]] SettleStatus nack(AmqpDeliveryTag tag, bool requeue);
  [[nodiscard]] SettleStatus reject(AmqpDeliveryTag tag, bool requeue);

  [[nodiscard]] LinkState state() const noexcept { return link_.state(); }
  [[nodiscard]] const std::string& last_error() const noexcept { return link_.last_error(); }
  [[nodiscard]] std::uint64_t reconnects() const noexcept { return link_.reconnects(); }

 private:
  std::string setup(AmqpLink& link);
  SettleStatus check(AmqpDeliveryTag tag);
  SettleStatus sent(int rc);

  AmqpConsumerOptions options_;
  AmqpLink link_;
};

}  // namespace shmbus::bridge::transport
