// shmbus — handler registration and a run loop.
//
//   shmbus::Dispatcher d(bus, {.name = "strategy", .idle = shmbus::Idle::Block});
//   d.on<shmbus::md::Quote>("md.quotes", [&](const shmbus::md::Quote& q, const shmbus::MessageMeta&
//   m) {...}); d.on<shmbus::md::Trade>("md.trades", [&](const shmbus::md::Trade& t, const
//   shmbus::MessageMeta& m) {...}); d.on_gap([](const shmbus::Gap& g) {...}); d.start(); // its own
//   thread
//   ...
//   d.stop();           // returns once the thread has finished its last handler
//
// Each on<T>() subscribes to a topic (type-checked: TypeMismatch if the topic
// carries another type) and registers a handler; the loop polls every
// subscription in turn, up to `batch` messages each, and when nothing is
// ready follows the idle strategy: spin (lowest latency, burns a core), yield,
// or block on the bus doorbell until a producer on one of its topics
// publishes (or stop()).
//
// Thread safety: register handlers before start(); stop() and the counters
// are safe from any thread. Handlers run on the loop's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "shmbus/core/bus.hpp"
#include "shmbus/core/subscriber.hpp"

namespace shmbus {

enum class Idle : std::uint8_t { Spin, Yield, Block };

struct DispatcherOptions {
  std::string name;  // consumer name in every topic's table
  Idle idle = Idle::Spin;
  std::size_t batch = 64;  // max messages per topic per turn
  Start start = Start::Live;
  int cpu = -1;  // pin the start() thread to this CPU (-1: no pinning)
};

class Dispatcher {
 public:
  Dispatcher(Bus bus, DispatcherOptions options = {});
  ~Dispatcher();  // stops and joins
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // handler(const T&, const MessageMeta&) for every message on `topic`.
  // Without a config the subscription takes the topic as its producer
  // defines it (and, if the topic does not exist yet, waits for it without
  // fixing its geometry: see core/subscriber.hpp); with one, the topic must
  // match it exactly (or is defined by it, if only subscribers wait on it).
  template <class T, class F>
  void on(std::string_view topic, F&& handler, std::optional<TopicConfig> config = std::nullopt) {
    TopicConfig c = config.value_or(TopicConfig{});
    c.type = type_of<T>();
    add(topic, c, config.has_value(), typed<T>(std::forward<F>(handler)));
  }
  // handler(const Message&) for every message on `topic` (any type).
  template <class F>
  void on_message(std::string_view topic, F&& handler,
                  std::optional<TopicConfig> config = std::nullopt) {
    add(topic, config.value_or(TopicConfig{}), config.has_value(),
        std::function<void(const Message&)>(std::forward<F>(handler)));
  }
  // handler(const Message&) for every message on `topic`, which must carry
  // `type` (a type known only at run time: bindings, tools); the geometry is
  // the producer's, as for on<T> without a config.
  template <class F>
  void on_message(std::string_view topic, const TypeInfo& type, F&& handler) {
    TopicConfig c;
    c.type = type;
    add(topic, c, false, std::function<void(const Message&)>(std::forward<F>(handler)));
  }
  void on_gap(std::function<void(const Gap&)> handler) { on_gap_ = std::move(handler); }

  // One pass over every subscription; returns messages delivered. For
  // callers that run their own loop (don't mix with start()).
  std::size_t poll_once();
  // Blocks until a subscription has something ready, stop() is called, or
  // `timeout` passes (spin briefly, then sleep on the bus doorbell). For
  // callers that run their own loop with poll_once(). Returns whether
  // something is ready.
  bool wait(std::chrono::nanoseconds timeout);

  void start();  // runs the loop on a new thread
  void run();    // runs the loop on this thread until stop()
  void stop();   // asks the loop to stop and, if start()ed, joins it

  [[nodiscard]] bool running() const noexcept { return running_.load(std::memory_order_acquire); }
  [[nodiscard]] std::uint64_t delivered() const noexcept {
    return delivered_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t drops() const noexcept {
    return drops_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::size_t subscriptions() const noexcept { return subs_.size(); }

 private:
  struct Sub {
    Subscriber sub;
    std::function<void(const Message&)> handler;
  };
  void add(std::string_view topic, const TopicConfig& config, bool exact,
           std::function<void(const Message&)> handler);

  Bus bus_;
  DispatcherOptions options_;
  std::vector<std::unique_ptr<Sub>> subs_;
  std::function<void(const Gap&)> on_gap_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::atomic<std::uint64_t> delivered_{0};
  std::atomic<std::uint64_t> drops_{0};
  std::thread thread_;
};

}  // namespace shmbus
