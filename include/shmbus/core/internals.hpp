// shmbus — the door from the public handles to their shared-memory state.
//
// Not for applications: the upper layers of the library (patterns, admin)
// and the tests use it to reach what the public API keeps sealed (the mapped
// segment behind a Bus or a Topic, the wait block a Subscriber sleeps on).
// Nothing here is stable across versions.
#pragma once

#include <memory>

#include "shmbus/core/bus.hpp"
#include "shmbus/core/subscriber.hpp"
#include "shmbus/core/topic.hpp"

namespace shmbus::detail {

struct Internals {
  [[nodiscard]] static const std::shared_ptr<TopicState>& state(const Topic& t) noexcept {
    return t.s_;
  }
  [[nodiscard]] static const std::shared_ptr<DirectoryState>& state(const Bus& b) noexcept {
    return b.d_;
  }
  [[nodiscard]] static WaitBlock& wait_block(const Subscriber& s) noexcept {
    return s.topic_.s_->header->wait;
  }
  // The bus a topic belongs to.
  [[nodiscard]] static Bus bus_of(const Topic& t) { return Bus(t.s_->dir); }
  [[nodiscard]] static std::atomic<std::uint32_t>& doorbell(const Bus& b) noexcept {
    return b.d_->header->doorbell.futex;
  }
};

}  // namespace shmbus::detail
