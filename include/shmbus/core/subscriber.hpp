// shmbus — the consumer side of a topic.
//
//   shmbus::Subscriber sub = bus.subscriber<shmbus::md::Quote>("md.quotes");
//   sub.on_gap([](const shmbus::Gap& g) { log("lost", g.count); });
//   for (;;) {
//     sub.poll(shmbus::typed<shmbus::md::Quote>(
//         [](const shmbus::md::Quote& q, const shmbus::MessageMeta& m) { ... }), 64);
//   }
//
// A Subscriber registers in the topic's consumer table (name, pid, start
// time, cursor, drops, heartbeat), where tools see its lag and, on reliable
// topics, the producer sees how far it may go. An observer
// (register_consumer = false) reads without registering: it gates nothing and
// may be lapped even on a reliable topic (bus-inspect tail does this).
//
// A subscriber without a configuration never fixes a topic's geometry: if
// the topic does not exist yet, it is created provisional, and the first
// producer defines it with its own configuration; the subscriber follows to
// the defined topic by itself (when idle) and receives from message 1, so
// whichever process starts first, nothing is lost (core/topic.cpp).
//
// Delivery: every message in sequence order, each exactly once, or a Gap
// saying exactly which sequences were lost (lossy topics, for a registered
// consumer; and reliable topics with eviction, for a consumer evicted for
// stalling the producer: a Gap with reason GapReason::Evicted).
//
// Eviction (TopicConfig::evict_after): poll() checks first whether the
// producer evicted this subscriber. If so, it rejoins at once as a
// registered consumer due the next live message (it gates the producer
// again from there), reports every message it skipped as one Gap
// {first = the sequence it was due, count, GapReason::Evicted} to on_gap(),
// counts them in drops() and counts the eviction in evictions(); then it
// delivers from live as usual. Messages it read before it noticed were
// validated after copying, so none of them is torn or overwritten. poll() never blocks; wait()
// blocks until something is ready (spin first, then sleep on a futex: the producer pays a wake-up
// system call only while someone sleeps).
//
// Thread safety: a Subscriber is single-threaded; one per consuming thread.
// It is move-only.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "shmbus/core/bus.hpp"
#include "shmbus/core/message.hpp"
#include "shmbus/core/options.hpp"
#include "shmbus/core/topic.hpp"
#include "shmbus/detail/ring.hpp"

namespace shmbus {

class Verifier;

class Subscriber;
namespace detail {
struct Internals;
bool wait_any(const std::vector<Subscriber*>& subs, std::atomic<std::uint32_t>& futex,
              std::chrono::nanoseconds timeout, const std::atomic<bool>* stop);
}  // namespace detail

class Subscriber {
 public:
  // Throws ConsumerTableFull, or InvalidArgument when registering on a
  // topic opened read-only.
  explicit Subscriber(Topic topic, const SubscriberOptions& options = {});
  Subscriber(Subscriber&&) noexcept;
  Subscriber& operator=(Subscriber&&) noexcept;
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;
  // Leaves the consumer table (frees the entry).
  ~Subscriber();

  // Delivers up to `max` ready messages, in order, to handler(const Message&)
  // and returns how many. A gap is reported to on_gap() before the message
  // that follows it. Never blocks. Exceptions from the handler propagate; the
  // message it threw on counts as consumed.
  template <class F>
  std::size_t poll(F&& handler, std::size_t max = 1) {
    // A member flag (false on topics without eviction): no shared read there.
    if (evictable_) [[unlikely]]
      (void)check_evicted(reader_.next());
    std::size_t n = 0;
    while (n < max) {
      const detail::ReadStatus st = reader_.read([&](const detail::SlotRead& r) {
        Message m;
        m.meta.topic = name_;
        m.meta.type = type_;
        m.meta.clock = clock_;
        m.meta.seq = r.seq;
        m.meta.raw_ts = r.raw_ts;
        m.meta.correlation = r.correlation;
        m.meta.producer = r.producer;
        m.data = r.data;
        if (verify_ != nullptr && !verify(m)) [[unlikely]]
          return;
        handler(static_cast<const Message&>(m));
      });
      if (st == detail::ReadStatus::Delivered) {
        ++n;
      } else if (st == detail::ReadStatus::Lapped) {
        // On an eviction topic a registered consumer is lapped only once
        // evicted: report it as the eviction, from the first message lost.
        if (!evictable_ || !check_evicted(reader_.gap_first())) report_gap();
      } else {
        idle();
        break;
      }
    }
    return n;
  }

  // Blocks until a message (or a gap) is ready, or `timeout` passes.
  // Returns whether something is ready. Safe with a timeout of zero.
  bool wait(std::chrono::nanoseconds timeout);

  // True if poll() would deliver something now (a snapshot), or has work to
  // do (the provisional topic it waits on was defined: see below).
  [[nodiscard]] bool ready() const noexcept {
    return reader_.ready() || (provisional_ && defined());
  }

  // Called from poll() with every gap (setup-time registration).
  void on_gap(std::function<void(const Gap&)> handler) { on_gap_ = std::move(handler); }
  // Called from poll() with every message that fails verification.
  void on_invalid(std::function<void(const MessageMeta&)> handler) {
    on_invalid_ = std::move(handler);
  }

  // Messages lost to lapping or eviction, in total.
  [[nodiscard]] std::uint64_t drops() const noexcept { return reader_.drops(); }
  // Times this subscriber was evicted (and rejoined).
  [[nodiscard]] std::uint64_t evictions() const noexcept { return evictions_; }
  // Messages handed to the handler (or skipped as invalid).
  [[nodiscard]] std::uint64_t delivered() const noexcept { return reader_.delivered(); }
  // Messages that failed verification.
  [[nodiscard]] std::uint64_t invalid() const noexcept { return invalid_; }
  // The sequence this subscriber is due next.
  [[nodiscard]] std::uint64_t next_sequence() const noexcept { return reader_.next(); }
  [[nodiscard]] const Topic& topic() const noexcept { return topic_; }
  [[nodiscard]] bool registered() const noexcept { return entry_ != nullptr; }

 private:
  friend struct detail::Internals;
  friend bool detail::wait_any(const std::vector<Subscriber*>&, std::atomic<std::uint32_t>&,
                               std::chrono::nanoseconds, const std::atomic<bool>*);
  void idle() {
    if (reader_.dirty()) reader_.flush();
    // Every 256 empty polls (~1 us of spinning): the heartbeat, and on a
    // provisional topic whether it was defined. ready() checks the latter at
    // once, so a subscriber that waits follows without delay.
    if ((++idle_polls_ & 0xffu) == 0) [[unlikely]]
      idle_slow();
  }
  void idle_slow() {
    if ((idle_polls_ & 0x3fffu) == 0) heartbeat();
    if (provisional_ && defined()) follow_definition();
  }
  // A provisional topic (created by a subscriber without a configuration)
  // was defined by its first producer: the topic now lives in a new segment
  // under the same name, with this subscriber's entry copied into it.
  [[nodiscard]] bool defined() const noexcept;
  void follow_definition();
  void heartbeat() noexcept;
  void report_gap();
  // If the producer evicted us: rejoin at live, report the gap from
  // `first_lost`, return true. Eviction topics only.
  bool check_evicted(std::uint64_t first_lost);
  bool verify(const Message& m);
  void leave() noexcept;

  Topic topic_;
  // Copies of the topic's names and clock for the metadata of each message.
  std::string_view name_;
  std::string_view type_;
  const Clock* clock_ = nullptr;
  detail::ConsumerEntry* entry_ = nullptr;
  std::uint64_t claim_word_ = 0;
  std::uint32_t index_ = 0;   // of entry_ in the consumer table
  bool provisional_ = false;  // the topic may still be defined afresh
  bool evictable_ = false;    // registered on a topic with eviction
  std::uint64_t evictions_ = 0;
  SubscriberOptions options_;
  detail::RingReader reader_;
  std::function<void(const Gap&)> on_gap_;
  std::function<void(const MessageMeta&)> on_invalid_;
  std::unique_ptr<Verifier> verify_;
  std::uint64_t invalid_ = 0;
  std::uint32_t idle_polls_ = 0;
  std::uint32_t spin_before_sleep_ = 0;
};

namespace detail {
// Blocks until one of `subs` has something ready, `*stop` is set, or
// `timeout` passes, sleeping on `futex`: a topic's own WaitBlock::futex for
// one subscriber, the bus Doorbell::futex for several (producers bump both).
// Observers (unregistered subscribers) are never counted as sleepers: with
// one among `subs`, it waits by polling with short sleeps and writes nothing
// to shared memory. Returns whether one is ready.
}  // namespace detail

// Adapts handler(const T&, const MessageMeta&) to poll()'s handler.
template <class T, class F>
[[nodiscard]] auto typed(F&& f) {
  return [f = std::forward<F>(f)](const Message& m) mutable { f(m.as<T>(), m.meta); };
}

}  // namespace shmbus

namespace shmbus {
template <class T>
Subscriber Bus::subscriber(std::string_view topic, const SubscriberOptions& options) {
  TopicConfig config;
  config.type = type_of<T>();
  return Subscriber(this->topic(topic, config, Match::TypeOnly), options);
}
template <class T>
Subscriber Bus::subscriber(std::string_view topic, TopicConfig config,
                           const SubscriberOptions& options) {
  config.type = type_of<T>();
  return Subscriber(this->topic(topic, config, Match::Exact), options);
}
}  // namespace shmbus
