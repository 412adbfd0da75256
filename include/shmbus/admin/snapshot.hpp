// shmbus — read-only snapshots of a bus, for tools and health checks.
//
// Everything here reads shared memory without writing it, so it works on a
// bus opened with Access::ReadOnly and never disturbs producers or
// consumers. Values are snapshots of counters that move while they are read:
// a consumer's lag may be momentarily off by the cursor batch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shmbus/core/bus.hpp"
#include "shmbus/core/topic.hpp"

namespace shmbus {

struct ProducerSnapshot {
  bool attached = false;  // an owner is recorded (alive or dead)
  bool alive = false;
  std::string name;
  std::uint32_t pid = 0;
  std::uint32_t takeovers = 0;
  std::int64_t attached_ns = 0;
};

// A consumer is shown stalled when it has messages waiting (lag > 0) and has
// shown no sign of life for this long: its heartbeat is stored when it runs
// dry (every ~16k empty polls), before it sleeps in wait(), and every 64
// cursor flushes while it keeps busy (detail/ring.hpp), so a consumer that
// takes its messages is never this far behind with it. A consumer that
// spends longer than this inside one batch of handlers also shows stalled.
inline constexpr std::int64_t kStalledAfterNs = 1'000'000'000;

struct ConsumerSnapshot {
  std::uint32_t index = 0;  // entry in the consumer table
  std::string name;
  std::uint32_t pid = 0;
  bool alive = false;
  bool joining = false;      // claimed its entry, not yet active
  bool evicted = false;      // evicted by the producer for stalling it; rejoins on its next poll
  bool stalled = false;      // active, lag > 0, heartbeat older than kStalledAfterNs
  std::uint64_t cursor = 0;  // last sequence it finished with
  std::uint64_t lag = 0;     // head - cursor
  std::uint64_t drops = 0;
  std::uint64_t delivered = 0;
  std::uint64_t joined_seq = 0;
  std::int64_t heartbeat_ns = 0;
};

struct TopicSnapshot {
  std::string bus;
  std::string name;
  std::string type_name;  // "" for raw topics
  std::uint64_t schema_hash = 0;
  Policy policy = Policy::Lossy;
  std::uint32_t slot_size = 0;
  std::uint32_t slot_count = 0;
  std::uint32_t max_payload = 0;
  std::uint32_t max_consumers = 0;
  std::uint64_t segment_bytes = 0;
  std::int64_t created_ns = 0;
  std::uint64_t head = 0;            // last committed sequence = messages published
  std::int64_t last_publish_ns = 0;  // publish time of message `head` (0 if none)
  std::uint64_t too_large = 0;
  std::uint64_t would_block = 0;
  std::uint64_t reaped_consumers = 0;
  std::uint64_t evict_after_ns = 0;  // TopicConfig::evict_after; 0: no eviction
  std::uint64_t evictions = 0;       // consumers evicted for stalling the producer
  ProducerSnapshot producer;
  std::vector<ConsumerSnapshot> consumers;  // active, joining and evicted entries
};

[[nodiscard]] TopicSnapshot snapshot(const Topic& topic);

struct BusSnapshot {
  std::string name;
  std::int64_t created_ns = 0;
  std::uint32_t capacity = 0;
  bool tsc_clock = false;
  std::vector<TopicSnapshot> topics;
};

// Every topic listed in the directory, sorted by name. A topic whose
// segment is missing (removed by hand) is left out.
[[nodiscard]] BusSnapshot snapshot(const Bus& bus);

}  // namespace shmbus
