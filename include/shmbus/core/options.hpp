// shmbus — options of the participants on a topic: publishers and subscribers.
#pragma once

#include <cstdint>
#include <string>

namespace shmbus {

// How an existing topic is checked against the caller's TopicConfig.
enum class Match : std::uint8_t {
  Exact,     // policy, geometry and type must all match (TopicMismatch / TypeMismatch)
  TypeOnly,  // accept the topic's policy and geometry; check only the type
             // (a raw request accepts any type)
};

struct PublisherOptions {
  // Shown by bus-inspect and in ProducerExists errors; default: the
  // process's command name.
  std::string name;
  // The first message after at least this long without publishing has its
  // cache lines pushed to the shared L3 once committed (CLDEMOTE, where the
  // CPU has it), so a consumer spinning at the head reads it without a snoop
  // of the producer's core: -15..20% on a multi-line round trip
  // (BENCHMARKS.md). Messages published back to back are left alone — their
  // consumer is behind, and demoting every line would slow a streaming
  // producer by ~10 ns a line. 0: every message; kNeverDemote: none.
  std::uint64_t demote_after_idle_ns = 200;
  static constexpr std::uint64_t kNeverDemote = ~std::uint64_t{0};
};

enum class Start : std::uint8_t {
  Live,      // the first message published after the subscription
  Oldest,    // the oldest message still in the ring (a ring of N slots holds
             // the N-1 newest), then on (best effort:
             // a backlog message overwritten before it is read is a Gap)
  Sequence,  // SubscriberOptions::sequence, clamped to [oldest, next]
             // (bus-inspect tail -n: the last N messages)
};

struct SubscriberOptions {
  // Shown by bus-inspect; default: the process's command name.
  std::string name;
  Start start = Start::Live;
  // With Start::Sequence: the first sequence wanted.
  std::uint64_t sequence = 0;
  // false: an observer, which reads without registering in the consumer
  // table: it gates nothing and may be lapped even on a reliable topic.
  bool register_consumer = true;
  // Run the FlatBuffers verifier (by reflection over the topic's schema) on
  // every message of a typed topic; failures are skipped, counted in
  // invalid() and reported to on_invalid(). Off by default: local producers
  // are trusted and the verifier costs about as much as the transfer.
  bool verify = false;
  // wait(): iterations of the readiness check before sleeping on the futex.
  std::uint32_t spin_before_sleep = 4000;
};

}  // namespace shmbus
