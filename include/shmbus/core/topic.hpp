// shmbus — a topic: one named ring in its own shared-memory segment.
//
// A topic is created with a delivery policy, a slot geometry and a message
// type, all fixed for its life:
//
//  * Policy::Lossy (market data): the producer never waits. A consumer that
//    falls a whole ring behind finds a newer message in the slot it expected,
//    skips to the newest message, and is told exactly which sequences it lost
//    (Gap); its drop count is recorded in the consumer table.
//  * Policy::Reliable (orders, executions): the producer does not overwrite a
//    slot that a live registered consumer has not finished with; try_publish
//    returns WouldBlock instead, publish() waits up to a timeout. A consumer
//    whose process died is reaped when it holds the producer up.
//
// Opening a topic that exists checks that the caller's expectations match:
// another policy or geometry is TopicMismatch, another type TypeMismatch,
// the same type name with another schema SchemaMismatch.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmbus/core/clock.hpp"
#include "shmbus/detail/layout.hpp"
#include "shmbus/detail/ring.hpp"
#include "shmbus/detail/segment.hpp"
#include "shmbus/schema/registry.hpp"

namespace shmbus {

class Bus;

enum class Policy : std::uint8_t { Lossy = 1, Reliable = 2 };
[[nodiscard]] std::string_view to_string(Policy p) noexcept;

struct TopicConfig {
  Policy policy = Policy::Lossy;
  // Bytes per slot, a multiple of 64 in [64, 1 MiB], 32 of which are the slot
  // header: the largest message is slot_size - 32.
  std::uint32_t slot_size = 256;
  // Slots in the ring, a power of two in [2, 2^24]: how far a lossy consumer
  // may fall behind (slot_count - 1 messages: the producer claims the next
  // slot ahead, detail/ring.hpp), and how much a reliable producer may run
  // ahead.
  std::uint32_t slot_count = 4096;
  // Entries in the consumer table: the most subscribers at once, in [1, 1024].
  std::uint32_t max_consumers = 32;
  // The message type; raw (untyped) by default. The typed helpers of Bus
  // fill it from the FlatBuffers type.
  TypeInfo type;
  // Stall eviction (reliable topics only; 0: off, the default). A registered
  // consumer that holds the producer up (the ring is full behind it) without
  // moving its cursor for this long is evicted by the producer: its entry
  // stops gating, the producer goes on, and the topic's eviction counter
  // moves. The consumer's next poll reports a Gap with reason
  // GapReason::Evicted and the exact count of messages it lost, then it is
  // registered again, due the next live message. Untethered consumers, as
  // in Aeron. Part of the topic's identity (fixed at creation, checked like
  // the geometry); in [1 ms, 1 h]. The bound must exceed the longest time a
  // handler spends on one message. The cost: on such a topic every consumer
  // copies each message out and checks the slot afterwards (as on lossy
  // topics) instead of reading it in place, and stores its cursor after
  // every message; topics without eviction are unchanged.
  std::chrono::nanoseconds evict_after{0};

  // The largest payload this geometry carries.
  [[nodiscard]] std::uint32_t max_payload() const noexcept {
    return slot_size - static_cast<std::uint32_t>(detail::kSlotHeaderBytes);
  }
};

// The smallest slot_size that carries messages of up to `max_payload` bytes
// (the slot header included, rounded up to a cache line). A payload larger
// than the largest slot (1 MiB - 32 B) gives a slot_size that TopicConfig
// refuses with InvalidArgument.
[[nodiscard]] constexpr std::uint32_t slot_size_for(std::uint32_t max_payload) noexcept {
  const std::uint64_t need = std::uint64_t{max_payload} + detail::kSlotHeaderBytes;
  const std::uint64_t size = detail::align_up(
      need < detail::kMinSlotSize ? detail::kMinSlotSize : need, detail::kCacheLine);
  return size > 0xffffffffu ? 0xffffffc0u : static_cast<std::uint32_t>(size);
}

namespace detail {
struct DirectoryState;
struct Internals;

// A mapped topic segment and what every handle needs from it. Shared by the
// Topic, Publisher and Subscriber handles of a process (shared_ptr), so the
// mapping outlives whichever is destroyed last.
struct TopicState {
  std::shared_ptr<DirectoryState> dir;
  Segment segment;
  TopicHeader* header = nullptr;
  ConsumerEntry* consumers = nullptr;
  std::byte* slots = nullptr;
  // The topic's binary schema, fixed at open: this process's registry's
  // bytes when it knows the type with the topic's hash, else a copy of the
  // stored bytes whose structural hash was checked against the descriptor's
  // (a later write to the segment changes nothing here).
  std::shared_ptr<const std::vector<std::uint8_t>> schema_copy;
  std::span<const std::uint8_t> schema_bytes;
  // What the ring algorithm works on (detail/ring.hpp).
  RingBlock ring;
  std::string bus;
  std::string name;
  std::string type_name;
  std::string file_identifier;
  std::uint64_t schema_hash = 0;
  Policy policy = Policy::Lossy;
  std::uint32_t slot_size = 0;
  std::uint32_t slot_count = 0;
  std::uint32_t max_consumers = 0;
  std::uint64_t evict_after_ns = 0;  // TopicConfig::evict_after; 0: off
  std::uint64_t segment_bytes = 0;
  std::int64_t created_ns = 0;
  // Created by a subscriber without a configuration: the first participant
  // that gives one may define the topic afresh (core/topic.cpp).
  bool provisional = false;
  const Clock* clock = nullptr;
  Doorbell* doorbell = nullptr;

  [[nodiscard]] std::span<const std::uint8_t> schema() const noexcept { return schema_bytes; }
};
}  // namespace detail

// A handle to an open topic. Cheap to copy; all copies share one mapping.
// Thread safety: the accessors are safe from any thread.
class Topic {
 public:
  // Topics come from Bus::topic() and its relatives.

  [[nodiscard]] const std::string& name() const noexcept { return s_->name; }
  [[nodiscard]] const std::string& bus() const noexcept { return s_->bus; }
  [[nodiscard]] Policy policy() const noexcept { return s_->policy; }
  [[nodiscard]] std::uint32_t slot_size() const noexcept { return s_->slot_size; }
  [[nodiscard]] std::uint32_t slot_count() const noexcept { return s_->slot_count; }
  [[nodiscard]] std::uint32_t max_consumers() const noexcept { return s_->max_consumers; }
  // TopicConfig::evict_after of the topic's creator (0: no eviction).
  [[nodiscard]] std::chrono::nanoseconds evict_after() const noexcept {
    return std::chrono::nanoseconds(static_cast<std::int64_t>(s_->evict_after_ns));
  }
  [[nodiscard]] std::uint32_t max_payload() const noexcept {
    return s_->slot_size - static_cast<std::uint32_t>(detail::kSlotHeaderBytes);
  }
  // "" on raw topics.
  [[nodiscard]] const std::string& type_name() const noexcept { return s_->type_name; }
  [[nodiscard]] std::uint64_t schema_hash() const noexcept { return s_->schema_hash; }
  // The binary schema stored in the segment (empty on raw topics): enough to
  // decode any message of the topic without the producer's headers.
  [[nodiscard]] std::span<const std::uint8_t> schema() const noexcept { return s_->schema(); }
  [[nodiscard]] bool writable() const noexcept { return s_->segment.writable(); }
  [[nodiscard]] const Clock& clock() const noexcept { return *s_->clock; }

  // Last committed sequence (racy by nature: a snapshot). Reads up to 64
  // slot words past the producer's head hint (detail::newest_committed).
  [[nodiscard]] std::uint64_t head_hint() const noexcept;

  // Racy queries of who is attached, for patterns that must tell "nobody is
  // there" from "slow" (request/reply). Slow: they read /proc to tell a live
  // process from a dead one. Not for the hot path.
  // Registered consumers whose process is not known to be dead.
  [[nodiscard]] std::uint32_t live_consumers_hint() const;
  // True when the topic has no producer or its producer's process is known
  // to be dead (an unknown liveness is not gone).
  [[nodiscard]] bool producer_gone_hint() const;

 private:
  friend class Bus;
  friend struct detail::Internals;
  explicit Topic(std::shared_ptr<detail::TopicState> state) noexcept : s_(std::move(state)) {}
  std::shared_ptr<detail::TopicState> s_;
};

}  // namespace shmbus
