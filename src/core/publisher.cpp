#include "shmbus/core/publisher.hpp"
#include "shmbus/core/internals.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "detail/internal.hpp"
#include "shmbus/detail/process.hpp"
#include "shmbus/detail/wait.hpp"

namespace shmbus {

using namespace detail;

// ------------------------------------------------------------- Publisher

Publisher::Publisher(Topic topic, const PublisherOptions& options) : topic_(std::move(topic)) {
  TopicState& t = *detail::Internals::state(topic_);
  if (!topic_.writable()) {
    throw Error(Errc::InvalidArgument,
                "cannot publish on topic '" + t.name + "' of bus '" + t.bus +
                    "': it was opened read-only; open the bus with Access::ReadWrite");
  }
  const std::string name = participant_name(options.name);
  const Identity self = require_self_identity();
  const std::uint64_t mine = make_claim(ClaimState::Active, self);
  ProducerControl& pc = t.header->producer;
  std::uint64_t seen = 0;
  // Whether the previous owner was dead (a takeover) is decided by the word we replaced.
  const std::uint64_t before = pc.owner.load(std::memory_order_acquire);
  if (!take_claim(pc.owner, mine, seen)) {
    const std::uint32_t pid = identity_pid(claim_owner(seen));
    const std::string owner_name = pc.name.load();
    if (claim_owner(seen) == self) {
      throw Error(Errc::ProducerExists,
                  "this process (pid " + std::to_string(pid) +
                      ") already has a Publisher on topic '" + t.name + "' of bus '" + t.bus +
                      "'; a topic has one producer: share that Publisher or move it");
    }
    throw Error(Errc::ProducerExists,
                "topic '" + t.name + "' of bus '" + t.bus + "' already has a live producer: '" +
                    owner_name + "' (pid " + std::to_string(pid) +
                    "); a topic has one producer — stop that one, or publish on another topic");
  }
  took_over_ = before != 0;
  if (took_over_) pc.takeovers.fetch_add(1, std::memory_order_relaxed);
  owner_word_ = mine;
  pc.pid.store(static_cast<std::uint32_t>(::getpid()), std::memory_order_relaxed);
  pc.name.store(name);
  pc.attached_ns.store(Clock::wall_ns(), std::memory_order_relaxed);

  ring_ = RingWriter(t.ring, RingWriter::recover_next(t.ring));
  ring_.set_pid(static_cast<std::uint32_t>(::getpid()));
  clock_ = t.clock;
  ring_.set_ahead_idle(clock_->raw_span(RingWriter::kClaimAheadAfterIdleNs));
  ring_.set_demote_idle(options.demote_after_idle_ns == PublisherOptions::kNeverDemote
                            ? ~std::uint64_t{0}
                            : clock_->raw_span(options.demote_after_idle_ns));
  ident_len_ = std::min<std::size_t>(t.file_identifier.size(), 4);
  std::memcpy(ident_, t.file_identifier.data(), ident_len_);
  // Lets sleeping consumers order our relaxed load of `sleepers` (wait.hpp).
  (void)register_producer_barrier();
}

Publisher::Publisher(Publisher&& o) noexcept
    : topic_(o.topic_),
      ring_(o.ring_),
      clock_(o.clock_),
      owner_word_(std::exchange(o.owner_word_, 0)),
      ident_len_(o.ident_len_),
      took_over_(o.took_over_) {
  SHMBUS_CONTRACT(!o.claim_open(), "a Publisher moved while one of its Claims is open");
  std::memcpy(ident_, o.ident_, sizeof ident_);
}

Publisher& Publisher::operator=(Publisher&& o) noexcept {
  SHMBUS_CONTRACT(!o.claim_open() && !claim_open(),
                  "a Publisher moved while one of its Claims is open");
  if (this != &o) {
    release();
    topic_ = o.topic_;
    ring_ = o.ring_;
    clock_ = o.clock_;
    owner_word_ = std::exchange(o.owner_word_, 0);
    std::memcpy(ident_, o.ident_, sizeof ident_);
    ident_len_ = o.ident_len_;
    took_over_ = o.took_over_;
    claim_seq_ = 0;  // a sequence of the old ring could be the new ring's next()
  }
  return *this;
}

Publisher::~Publisher() {
  release();
}

void Publisher::release() noexcept {
  if (owner_word_ == 0) return;
  // A forked child holds a copy of this object but not the role: only the
  // process that took the owner word gives it back.
  if (identity_pid(claim_owner(owner_word_)) != static_cast<std::uint32_t>(::getpid())) {
    owner_word_ = 0;
    return;
  }
  // The exact head for tools and successors (commits store it only once a
  // head_period()).
  ring_.store_head();
  std::uint64_t expected = owner_word_;
  // release: a successor's acquire of the free word sees our last head store.
  detail::Internals::state(topic_)->header->producer.owner.compare_exchange_strong(
      expected, 0, std::memory_order_release, std::memory_order_relaxed);
  owner_word_ = 0;
}

void Publisher::count_would_block() noexcept {
  ring_.hot()->would_block.fetch_add(1, std::memory_order_relaxed);
}

PublishResult Publisher::publish(std::span<const std::byte> payload,
                                 std::chrono::nanoseconds timeout,
                                 std::uint64_t correlation) noexcept {
  PublishResult r = try_publish(payload, correlation);
  if (r != PublishResult::WouldBlock) return r;
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto deadline = start + timeout;
  auto next_liveness = start;  // check at once: a dead consumer is the usual reason to stay blocked
  for (std::uint32_t round = 0;; ++round) {
    const auto now = clock::now();
    const bool check = now >= next_liveness;
    if (check) next_liveness = now + std::chrono::milliseconds(10);
    if (ring_.refresh_limit(check)) {
      SlotHeader* s = ring_.claim(payload.size(), r);
      if (s != nullptr) {
        std::memcpy(RingView::payload(s), payload.data(), payload.size());
        ring_.commit(s, payload.size(), clock_->raw_now(), correlation);
        return PublishResult::Ok;
      }
      if (r != PublishResult::WouldBlock) return r;
    }
    if (now >= deadline) return PublishResult::Timeout;
    // Back off: spin briefly (the consumer is usually a cursor batch away),
    // then yield, then sleep in short steps.
    if (round < 64) {
      cpu_relax();
    } else if (round < 128) {
      ::sched_yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
}

}  // namespace shmbus
