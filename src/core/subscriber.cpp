#include "shmbus/core/subscriber.hpp"
#include "shmbus/core/internals.hpp"

#include <unistd.h>

#include <algorithm>
#include <thread>

#include "detail/internal.hpp"
#include "shmbus/detail/process.hpp"
#include "shmbus/detail/wait.hpp"
#include "shmbus/schema/verifier.hpp"

namespace shmbus {

using namespace detail;

namespace {

// The first sequence due to a subscriber that joins when `head` is the last
// committed message.
std::uint64_t first_due(const SubscriberOptions& o, std::uint64_t head, std::uint64_t count) {
  switch (o.start) {
    case Start::Live:
      return head + 1;
    case Start::Oldest:
      return oldest_held(head, count);
    case Start::Sequence:
      return std::clamp(o.sequence, oldest_held(head, count), head + 1);
  }
  return head + 1;
}

// Frees entries whose owner died (any state), so their slots can be reused.
void reap_dead_entries(TopicState& t) {
  for (std::uint32_t i = 0; i < t.max_consumers; ++i) {
    ConsumerEntry& e = t.consumers[i];
    std::uint64_t w = e.state.load(std::memory_order_acquire);
    if (w != 0 && is_dead(claim_owner(w)) &&
        e.state.compare_exchange_strong(w, 0, std::memory_order_acq_rel)) {
      t.header->registry.leaves.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

ConsumerEntry* claim_entry(TopicState& t, std::uint64_t claiming, std::uint32_t& index) {
  for (int pass = 0; pass < 2; ++pass) {
    for (std::uint32_t i = 0; i < t.max_consumers; ++i) {
      std::uint64_t expected = 0;
      // acquire: see the previous owner's last writes before reusing the entry.
      if (t.consumers[i].state.compare_exchange_strong(
              expected, claiming, std::memory_order_acq_rel, std::memory_order_relaxed)) {
        index = i;
        return &t.consumers[i];
      }
    }
    if (pass == 0) reap_dead_entries(t);
  }
  std::string live;
  for (std::uint32_t i = 0; i < t.max_consumers && live.size() < 200; ++i) {
    const ConsumerEntry& e = t.consumers[i];
    if (e.state.load(std::memory_order_relaxed) != 0)
      live += (live.empty() ? "" : ", ") + e.name.load() + " (pid " + std::to_string(e.pid.load()) +
              ")";
  }
  throw Error(Errc::ConsumerTableFull,
              "topic '" + t.name + "' of bus '" + t.bus + "' has all " +
                  std::to_string(t.max_consumers) +
                  " consumer entries in use by live subscribers: " + live +
                  "; stop unused subscribers, or recreate the topic with a larger max_consumers");
}

}  // namespace

Subscriber::Subscriber(Topic topic, const SubscriberOptions& options)
    : topic_(std::move(topic)), options_(options), spin_before_sleep_(options.spin_before_sleep) {
  TopicState& t = *detail::Internals::state(topic_);
  provisional_ = t.provisional;
  name_ = t.name;
  type_ = t.type_name;
  clock_ = t.clock;
  if (options.verify && !t.type_name.empty())
    verify_ = std::make_unique<Verifier>(t.schema(), t.type_name);
  ProducerHot& hot = t.header->hot;

  if (!options.register_consumer) {
    const std::uint64_t head = detail::newest_committed(t.ring, std::memory_order_acquire);
    reader_ =
        RingReader(t.ring, nullptr, first_due(options, head, t.slot_count), ~std::uint64_t{0});
    return;
  }
  if (!topic_.writable()) {
    throw Error(Errc::InvalidArgument,
                "cannot subscribe to topic '" + t.name + "' of bus '" + t.bus +
                    "' as a registered consumer: it was opened read-only; open the bus "
                    "with Access::ReadWrite, or subscribe as an observer "
                    "(register_consumer = false)");
  }
  const std::string name = participant_name(options.name);
  const Identity self = require_self_identity();
  std::uint32_t index = 0;
  ConsumerEntry* e = claim_entry(t, make_claim(ClaimState::Claiming, self), index);
  e->pid.store(static_cast<std::uint32_t>(::getpid()), std::memory_order_relaxed);
  e->name.store(name);
  e->drops.store(0, std::memory_order_relaxed);
  e->delivered.store(0, std::memory_order_relaxed);
  e->flags.store(0, std::memory_order_relaxed);
  e->heartbeat_ns.store(Clock::wall_ns(), std::memory_order_relaxed);
  // Preliminary cursor, never above what we will be due (ring.hpp: join).
  e->cursor.store(hot.head.load(std::memory_order_acquire), std::memory_order_relaxed);
  auto& hwm = t.header->registry.consumer_hwm;
  std::uint32_t cur = hwm.load(std::memory_order_relaxed);
  while (cur < index + 1 && !hwm.compare_exchange_weak(cur, index + 1, std::memory_order_release)) {
  }
  t.header->registry.joins.fetch_add(1, std::memory_order_relaxed);
  // seq_cst store then seq_cst load: the consumer side of the join (ring.hpp).
  claim_word_ = make_claim(ClaimState::Active, self);
  e->state.store(claim_word_, std::memory_order_seq_cst);
  const std::uint64_t h2 = detail::newest_committed(t.ring, std::memory_order_seq_cst);
  const std::uint64_t next = first_due(options, h2, t.slot_count);
  e->joined_seq.store(next, std::memory_order_relaxed);
  // release: nothing read yet; keeps the cursor store ordered after the join.
  e->cursor.store(next - 1, std::memory_order_release);
  entry_ = e;
  evictable_ = t.evict_after_ns != 0;
  // (RingReader reads a topic with eviction through the copy path whatever
  // in_place_from says.)
  const std::uint64_t in_place_from = t.policy == Policy::Reliable ? h2 + 1 : ~std::uint64_t{0};
  reader_ = RingReader(t.ring, e, next, in_place_from);
  index_ = index;
  // seq_cst, after the seq_cst store of our state: the joiner's half of the
  // Dekker pair with a process defining this provisional topic (topic.cpp).
  // A claim seen here may have been taken before our entry was visible to
  // its copy: follow the definition now rather than wait on a topic that
  // will never see a message.
  if (provisional_ && t.header->supersede.claim.load(std::memory_order_seq_cst) != 0) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!defined() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    if (defined()) follow_definition();
  }
}

bool Subscriber::defined() const noexcept {
  const TopicState& t = *detail::Internals::state(topic_);
  // acquire: pairs with the definer's release after its rename: the new
  // segment is under the topic's name once Active is seen.
  return claim_state(t.header->supersede.claim.load(std::memory_order_acquire)) ==
         ClaimState::Active;
}

void Subscriber::follow_definition() {
  const std::shared_ptr<TopicState> old = detail::Internals::state(topic_);
  Topic fresh = detail::Internals::bus_of(topic_).open_topic(old->name);
  TopicState& t = *detail::Internals::state(fresh);
  ConsumerEntry* adopted = nullptr;
  if (entry_ != nullptr) {
    if (index_ < t.max_consumers &&
        t.consumers[index_].state.load(std::memory_order_acquire) == claim_word_)
      adopted = &t.consumers[index_];
    // Leave the provisional topic's table (our entry there gates nothing).
    std::uint64_t expected = claim_word_;
    if (entry_->state.compare_exchange_strong(expected, 0, std::memory_order_release,
                                              std::memory_order_relaxed))
      old->header->registry.leaves.fetch_add(1, std::memory_order_relaxed);
    entry_ = nullptr;
  }
  if (adopted != nullptr) {
    // Copied by the definer with cursor 0: due message 1, gated from it.
    topic_ = std::move(fresh);
    name_ = t.name;
    type_ = t.type_name;
    clock_ = t.clock;
    provisional_ = t.provisional;
    entry_ = adopted;
    evictable_ = t.evict_after_ns != 0;
    reader_ = RingReader(t.ring, adopted, 1, t.policy == Policy::Reliable ? 1 : ~std::uint64_t{0});
    return;
  }
  // Not copied (an observer, or a join that raced the definition): join the
  // defined topic afresh from the oldest message it holds.
  SubscriberOptions o = options_;
  o.start = Start::Oldest;
  auto on_gap = std::move(on_gap_);
  auto on_invalid = std::move(on_invalid_);
  *this = Subscriber(std::move(fresh), o);
  on_gap_ = std::move(on_gap);
  on_invalid_ = std::move(on_invalid);
}

Subscriber::Subscriber(Subscriber&& o) noexcept
    : topic_(o.topic_),
      name_(o.name_),
      type_(o.type_),
      clock_(o.clock_),
      entry_(std::exchange(o.entry_, nullptr)),
      claim_word_(std::exchange(o.claim_word_, 0)),
      index_(o.index_),
      provisional_(o.provisional_),
      evictable_(std::exchange(o.evictable_, false)),
      evictions_(o.evictions_),
      options_(o.options_),
      reader_(std::move(o.reader_)),
      on_gap_(std::move(o.on_gap_)),
      on_invalid_(std::move(o.on_invalid_)),
      verify_(std::move(o.verify_)),
      invalid_(o.invalid_),
      idle_polls_(o.idle_polls_),
      spin_before_sleep_(o.spin_before_sleep_) {}

Subscriber& Subscriber::operator=(Subscriber&& o) noexcept {
  if (this != &o) {
    leave();
    topic_ = o.topic_;
    name_ = o.name_;
    type_ = o.type_;
    clock_ = o.clock_;
    entry_ = std::exchange(o.entry_, nullptr);
    claim_word_ = std::exchange(o.claim_word_, 0);
    index_ = o.index_;
    provisional_ = o.provisional_;
    evictable_ = std::exchange(o.evictable_, false);
    evictions_ = o.evictions_;
    options_ = o.options_;
    reader_ = std::move(o.reader_);
    on_gap_ = std::move(o.on_gap_);
    on_invalid_ = std::move(o.on_invalid_);
    verify_ = std::move(o.verify_);
    invalid_ = o.invalid_;
    idle_polls_ = o.idle_polls_;
    spin_before_sleep_ = o.spin_before_sleep_;
  }
  return *this;
}

Subscriber::~Subscriber() {
  leave();
}

void Subscriber::leave() noexcept {
  if (entry_ == nullptr) return;
  // A forked child holds a copy of this object but not the entry: only the
  // process that registered leaves.
  if (identity_pid(claim_owner(claim_word_)) != static_cast<std::uint32_t>(::getpid())) {
    entry_ = nullptr;
    return;
  }
  reader_.flush();
  std::uint64_t expected = claim_word_;
  // release: our last reads of the ring happen before the entry is reused.
  // An evicted entry (Evicted(self)) is ours to free as well.
  if (entry_->state.compare_exchange_strong(expected, 0, std::memory_order_release,
                                            std::memory_order_relaxed) ||
      (expected == make_claim(ClaimState::Evicted, claim_owner(claim_word_)) &&
       entry_->state.compare_exchange_strong(expected, 0, std::memory_order_release,
                                             std::memory_order_relaxed))) {
    detail::Internals::state(topic_)->header->registry.leaves.fetch_add(1,
                                                                        std::memory_order_relaxed);
  }
  entry_ = nullptr;
}

void Subscriber::heartbeat() noexcept {
  // Observers may map everything read-only: they write nothing, not even
  // the clock's re-anchoring.
  if (entry_ == nullptr) return;
  entry_->heartbeat_ns.store(Clock::wall_ns(), std::memory_order_relaxed);
  topic_.clock().maybe_reanchor();
}

bool Subscriber::check_evicted(std::uint64_t first_lost) {
  if (entry_ == nullptr) return false;
  // acquire: pairs with the producer's CAS to Evicted (acq_rel). Our own
  // line: we store our cursor to it after every message anyway.
  std::uint64_t w = entry_->state.load(std::memory_order_acquire);
  if (claim_state(w) != ClaimState::Evicted) return false;
  // Rejoin with the reliable join (detail/ring.hpp): a preliminary cursor no
  // higher than we will be due (we gate nothing while Evicted), then Active
  // (seq_cst RMW) and head (seq_cst): due head + 1.
  ProducerHot& hot = detail::Internals::state(topic_)->header->hot;
  entry_->cursor.store(hot.head.load(std::memory_order_acquire), std::memory_order_relaxed);
  if (!entry_->state.compare_exchange_strong(w, claim_word_, std::memory_order_seq_cst)) {
    // Freed under us: only a dead owner's entry is reaped, so this means our
    // identity was judged dead. Go on as an observer rather than write to an
    // entry that may be someone else's now.
    reader_.detach();
    entry_ = nullptr;
    evictable_ = false;
  }
  const std::uint64_t h2 =
      detail::newest_committed(detail::Internals::state(topic_)->ring, std::memory_order_seq_cst);
  reader_.rejoin(first_lost, h2 + 1);
  ++evictions_;
  if (on_gap_)
    on_gap_(Gap{topic_.name(), reader_.gap_first(), reader_.gap_count(), GapReason::Evicted});
  return true;
}

void Subscriber::report_gap() {
  if (on_gap_) on_gap_(Gap{topic_.name(), reader_.gap_first(), reader_.gap_count()});
}

bool Subscriber::verify(const Message& m) {
  if (verify_->verify(m.data)) return true;
  ++invalid_;
  if (on_invalid_) on_invalid_(m.meta);
  return false;
}

bool Subscriber::wait(std::chrono::nanoseconds timeout) {
  if (ready()) return true;
  if (reader_.dirty()) reader_.flush();
  for (std::uint32_t i = 0; i < spin_before_sleep_; ++i) {
    if (ready()) return true;
    cpu_relax();
  }
  heartbeat();
  return detail::wait_any({this}, detail::Internals::state(topic_)->header->wait.futex, timeout,
                          nullptr);
}

namespace detail {

bool wait_any(const std::vector<Subscriber*>& subs, std::atomic<std::uint32_t>& futex,
              std::chrono::nanoseconds timeout, const std::atomic<bool>* stop) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + timeout;
  const auto any_ready = [&] {
    return std::any_of(subs.begin(), subs.end(), [](const Subscriber* s) { return s->ready(); });
  };
  const auto stopping = [&] { return stop != nullptr && stop->load(std::memory_order_acquire); };

  if (std::any_of(subs.begin(), subs.end(),
                  [](const Subscriber* s) { return s->entry_ == nullptr; })) {
    // Observers: poll, sleeping 20 us and backing off to 1 ms in between.
    auto pause = std::chrono::microseconds(20);
    for (;;) {
      if (any_ready()) return true;
      if (stopping() || clock::now() >= deadline) return false;
      std::this_thread::sleep_for(pause);
      pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(1));
    }
  }

  for (;;) {
    // Read the futex value before the last checks: a wake-up after this
    // load changes it, and FUTEX_WAIT then returns at once.
    const std::uint32_t v = futex.load(std::memory_order_acquire);
    // Mark, then count in (seq_cst: the sleeper's half of the Dekker pair
    // in wait.hpp); count out, then unmark. The order lets a producer audit
    // a count that a killed sleeper left raised.
    for (Subscriber* s : subs) {
      s->entry_->flags.fetch_or(kConsumerSleeping, std::memory_order_seq_cst);
      Internals::wait_block(*s).sleepers.fetch_add(1, std::memory_order_seq_cst);
      Internals::wait_block(*s).arrivals.fetch_add(1, std::memory_order_seq_cst);
    }
    const bool fenced = heavy_barrier();
    bool ready = stopping() || any_ready();
    if (!ready) {
      const auto remaining = deadline - clock::now();
      const std::chrono::nanoseconds cap = fenced ? std::chrono::nanoseconds(kMaxSleepSlice)
                                                  : std::chrono::nanoseconds(kFallbackSleepCap);
      if (remaining > std::chrono::nanoseconds::zero()) {
        futex_wait(futex, v, std::min<std::chrono::nanoseconds>(remaining, cap));
      }
    }
    for (Subscriber* s : subs) {
      Internals::wait_block(*s).sleepers.fetch_sub(1, std::memory_order_seq_cst);
      s->entry_->flags.fetch_and(~kConsumerSleeping, std::memory_order_seq_cst);
    }
    ready = ready || any_ready();
    if (ready) return true;
    if (stopping() || clock::now() >= deadline) return false;
  }
}

}  // namespace detail

}  // namespace shmbus
