#pragma once
// RedisSubscriber: SUBSCRIBE / PSUBSCRIBE on one connection, messages delivered to the
// caller's thread by poll().
//
// Redis pub/sub is at-most-once: a message published while this connection is down
// (or before the subscription is confirmed) is gone. On a reconnect the subscriptions
// are sent again; subscribed() turns true once Redis confirmed every one of them, which
// is the moment from which messages are received. For catch-up after a disconnect use a
// stream (RedisStreamConsumer).
//
// Blocking: poll(t) returns within t. Not thread-safe: one thread owns a subscriber.
#include <string>
#include <vector>

#include "transport/redis_link.hpp"

namespace shmbus::bridge::transport {

struct RedisSubscriberOptions {
  RedisEndpoint endpoint;
  std::vector<std::string> channels;  // SUBSCRIBE
  std::vector<std::string> patterns;  // PSUBSCRIBE (Redis glob syntax: md.*)
};

struct RedisPubSubMessage {
  std::string channel;
  std::string pattern;  // the PSUBSCRIBE pattern that matched; empty for SUBSCRIBE
  std::string payload;
};

class RedisSubscriber {
 public:
  // Throws std::invalid_argument when there is nothing to subscribe to.
  explicit RedisSubscriber(RedisSubscriberOptions options, Backoff::Random random = {});

  // Reconnects (and re-subscribes) if due, then appends every message that arrived,
  // waiting up to `timeout` for the first one. Returns the number appended.
  std::size_t poll(std::chrono::milliseconds timeout, std::vector<RedisPubSubMessage>& out);

  // True once every subscription of the current connection is confirmed.
  [[nodiscard]] bool subscribed() const noexcept {
    return link_.state() == LinkState::Ready && confirmations_ == expected_;
  }
  [[nodiscard]] LinkState state() const noexcept { return link_.state(); }
  [[nodiscard]] const std::string& last_error() const noexcept { return link_.last_error(); }
  [[nodiscard]] std::uint64_t reconnects() const noexcept { return link_.reconnects(); }

 private:
  void subscribe_all();
  void handle(const redisReply* r, std::vector<RedisPubSubMessage>& out);

  RedisSubscriberOptions options_;
  RedisLink link_;
  std::uint64_t subscribed_generation_ = ~0ULL;
  std::size_t expected_ = 0;
  std::size_t confirmations_ = 0;
};

}  // namespace shmbus::bridge::transport
