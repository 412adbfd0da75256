#include "shmbus/admin/snapshot.hpp"
#include "shmbus/core/internals.hpp"

#include <algorithm>

#include "shmbus/detail/process.hpp"
#include "shmbus/detail/ring.hpp"
#include "shmbus/error.hpp"

namespace shmbus {

using namespace detail;

TopicSnapshot snapshot(const Topic& topic) {
  const TopicState& t = *detail::Internals::state(topic);
  const TopicHeader& h = *t.header;
  TopicSnapshot s;
  s.bus = t.bus;
  s.name = t.name;
  s.type_name = t.type_name;
  s.schema_hash = t.schema_hash;
  s.policy = t.policy;
  s.slot_size = t.slot_size;
  s.slot_count = t.slot_count;
  s.max_payload = topic.max_payload();
  s.max_consumers = t.max_consumers;
  s.segment_bytes = t.segment_bytes;
  s.created_ns = t.created_ns;
  // relaxed throughout: counters and hints for display.
  s.head = detail::newest_committed(t.ring, std::memory_order_relaxed);
  s.too_large = h.hot.too_large.load(std::memory_order_relaxed);
  s.would_block = h.hot.would_block.load(std::memory_order_relaxed);
  s.reaped_consumers = h.hot.reaped_consumers.load(std::memory_order_relaxed);
  s.evictions = h.hot.evictions.load(std::memory_order_relaxed);
  s.evict_after_ns = t.evict_after_ns;
  if (s.head != 0) {
    const RingView view(t.ring);
    const SlotHeader* slot = view.slot(s.head);
    const std::uint64_t seq = slot->seq.load(std::memory_order_acquire);
    const std::uint64_t raw = slot->ts.load(std::memory_order_relaxed);
    if (slot->seq.load(std::memory_order_relaxed) == seq && seq == 2 * s.head)
      s.last_publish_ns = t.clock->to_ns(raw);
  }

  const std::uint64_t owner = h.producer.owner.load(std::memory_order_acquire);
  s.producer.attached = owner != 0;
  if (owner != 0) {
    s.producer.alive = is_alive(claim_owner(owner));
    s.producer.pid = identity_pid(claim_owner(owner));
    s.producer.name = h.producer.name.load();
    s.producer.attached_ns = h.producer.attached_ns.load(std::memory_order_relaxed);
  }
  s.producer.takeovers = h.producer.takeovers.load(std::memory_order_relaxed);

  const std::int64_t now = Clock::wall_ns();
  for (std::uint32_t i = 0; i < t.max_consumers; ++i) {
    const ConsumerEntry& e = t.consumers[i];
    const std::uint64_t w = e.state.load(std::memory_order_acquire);
    if (w == 0) continue;
    ConsumerSnapshot c;
    c.index = i;
    c.name = e.name.load();
    c.pid = identity_pid(claim_owner(w));
    c.alive = is_alive(claim_owner(w));
    c.joining = claim_state(w) == ClaimState::Claiming;
    c.cursor = e.cursor.load(std::memory_order_relaxed);
    c.lag = s.head > c.cursor ? s.head - c.cursor : 0;
    c.drops = e.drops.load(std::memory_order_relaxed);
    c.delivered = e.delivered.load(std::memory_order_relaxed);
    c.joined_seq = e.joined_seq.load(std::memory_order_relaxed);
    c.heartbeat_ns = e.heartbeat_ns.load(std::memory_order_relaxed);
    c.evicted = claim_state(w) == ClaimState::Evicted;
    c.stalled = claim_state(w) == ClaimState::Active && c.alive && c.lag > 0 &&
                now - c.heartbeat_ns > kStalledAfterNs;
    s.consumers.push_back(std::move(c));
  }
  return s;
}

BusSnapshot snapshot(const Bus& bus) {
  const DirectoryState& d = *detail::Internals::state(bus);
  BusSnapshot s;
  s.name = d.bus;
  s.created_ns = d.created_ns;
  s.capacity = d.capacity;
  s.tsc_clock = bus.clock().uses_tsc();
  for (const std::string& name : bus.topic_names()) {
    try {
      s.topics.push_back(snapshot(bus.open_topic(name)));
    } catch (const Error& e) {
      if (e.code() != Errc::NoSuchTopic) throw;  // listed but its segment was removed: leave it out
    }
  }
  return s;
}

}  // namespace shmbus
