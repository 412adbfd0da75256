// shmbus — a delivered message and its metadata.
//
// A Message is a view, valid only inside the handler it was passed to: on a
// reliable topic its bytes are read in place from the ring (the producer
// cannot overwrite a slot a registered consumer has not finished with); on a
// lossy topic they were copied out of the slot and validated against the
// slot's sequence word first. Copy what you keep.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include <flatbuffers/flatbuffers.h>

#include "shmbus/core/clock.hpp"

namespace shmbus {

struct MessageMeta {
  std::string_view topic;
  std::string_view type;          // fully qualified root type, "" on raw topics
  std::uint64_t seq = 0;          // 1, 2, 3, ... per topic, gap-free as published
  std::uint64_t raw_ts = 0;       // publish stamp in the bus clock's raw units
  std::uint64_t correlation = 0;  // request/reply correlation id, 0 if none
  std::uint32_t producer = 0;     // pid of the publishing process
  const Clock* clock = nullptr;

  // Publish time, ns since the epoch (bus clock; see clock.hpp).
  [[nodiscard]] std::int64_t ts_ns() const noexcept { return clock->to_ns(raw_ts); }
  // Now minus publish time on the bus clock: the one-way latency so far.
  [[nodiscard]] std::int64_t age_ns() const noexcept { return clock->now_ns() - ts_ns(); }
};

struct Message {
  MessageMeta meta;
  std::span<const std::byte> data;

  // The FlatBuffers root of a typed message. No verification: messages on
  // the bus come from local producers that built them with the same schema
  // (SubscriberOptions::verify turns verification on).
  template <class T>
  [[nodiscard]] const T& as() const noexcept {
    return *flatbuffers::GetRoot<T>(data.data());
  }
};

// Why a consumer lost messages.
enum class GapReason : std::uint8_t {
  // It fell a whole ring behind on a lossy topic (or on the best-effort
  // backlog of a reliable one).
  Lapped,
  // It held the producer of a reliable topic with eviction up for longer
  // than TopicConfig::evict_after and was evicted; it is registered again,
  // due the next live message (core/subscriber.hpp).
  Evicted,
};

// Messages lost by a consumer: sequences [first, first + count) were
// overwritten before it could read them, and were never delivered to it.
struct Gap {
  std::string_view topic;
  std::uint64_t first = 0;
  std::uint64_t count = 0;
  GapReason reason = GapReason::Lapped;
};

}  // namespace shmbus
