// The ring: single producer, many consumers, broadcast. The algorithm only:
// it works on a RingBlock, a description of memory laid out as layout.hpp
// says (a mapped topic segment in production, plain heap memory in
// tests/ring_block_test.cpp), and knows nothing of buses, topics or messages.
//
// Sequences n = 1, 2, 3, ... go to slot (n & mask). Each slot's `seq` word is
// a seqlock for the message in it: 2n+1 while message n is being written,
// 2n once it is committed (layout.hpp, SlotHeader).
//
// Producer (RingWriter), per message n:
//   1. reliable only: make sure every live registered consumer is done with
//      n - N, the slot's previous message (gating; cached, rescanned rarely);
//   2. seq = 2n+1 (relaxed), release fence  -- claim: from here the payload
//      may change under a reader, and the reader will know;
//   3. write metadata and payload;
//   4. seq = 2n (release)                   -- commit: publishes 3;
//   5. head = n (relaxed), and wake sleepers if any are counted;
//   6. claim ahead, if n came after an idle spell: step 2 for message n+1
//      now (reliable: if gating already allows writing it), so that
//      message's own publish skips it.
//
// Why claim ahead: the consumer waiting for message n+1 spins on its slot's
// first line. Claimed at its own publish, a message longer than one line
// would take that line from the consumer twice (the odd store, then the
// commit) with the consumer taking it back in between: two line transfers
// on the hop instead of one (256 B round trip 1.40 -> 1.05 x its floor
// where a transfer is slow; BENCHMARKS.md "The 256 B slow-window gap").
// Publisher::try_publish copies a payload's first line last for the same
// reason. The price: the slot of message n+1 no longer holds message
// n+1-N once n is committed, so a ring of N slots holds the N-1 newest
// messages (oldest_held()), and an idle producer leaves slot head+1 odd -
// "claimed, not committed", which readers wait on and a successor
// producer reuses (recover_next) exactly as after a producer killed
// between claim and commit.
//
// Consumer (RingReader), due message n, polls only its own next slot (no
// shared cursor, so a quiet topic costs a load that hits L1):
//   s1 = seq (acquire)
//   s1 == 2n        -> ready: read it (see below)
//   s1 <  2n, or 2n+1 -> not yet
//   s1 >  2n+1      -> lapped: the slot holds (or is claimed for) a message
//                      >= n + N; message n is gone. Skip to the newest
//                      committed message, report the gap.
//
// Reading a ready message:
//   * copy path (lossy topics, observers, a reliable consumer's pre-join
//     backlog): copy metadata and payload out, acquire fence, re-load seq
//     (relaxed); deliver only if it is still 2n. This is the tolerated race
//     of a seqlock:
//        1. reader loads seq == 2n
//        2. producer laps the ring, stores seq = 2(n+N)+1, rewrites payload
//        3. reader copies a torn payload
//        4. reader re-loads seq: 2(n+N)+1 != 2n -> discards the copy, gap.
//     The acquire fence orders the copy's loads before the re-load; the
//     producer's release fence after its odd store orders that store before
//     its payload stores: so a reader that saw any new byte sees the odd seq.
//   * in-place path (registered consumers of reliable topics): the handler
//     reads the slot directly. The producer cannot write slot n again before
//     this consumer's cursor passes n, and the cursor is stored (release)
//     only after the handler returned.
//
// Reliable join (why a joining consumer never misses a message it is due):
//   consumer: state = Active (seq_cst); h2 = head (seq_cst); due from
//             newest_committed(h2)+1 (head lags; scanning on only moves the
//             consumer's due message later, which is always safe).
//   producer: exact head store; seq_cst fence; scan consumer states (its
//             commits store head once a head_period(); the scan stores the
//             exact one, which is all this argument uses).
//   If the producer's scan missed the new entry, the entry's store is later
//   in the seq_cst order than the scan, so the consumer's h2 load sees at
//   least the head the producer had at that scan; the limit that scan set
//   (min cursor over whom it saw, and its head, plus N) lets the producer
//   overwrite only messages <= h2, which the consumer is not due.
//
// Cursor updates are batched (every `batch` messages, and whenever the
// consumer finds nothing to read), so the consumer's hot path is a load and
// a local increment.
//
// Stall eviction (reliable topics with RingBlock::evict_after_ns != 0):
//   * the producer, only on its blocked path (refresh_limit), remembers for
//     each consumer that holds it up the cursor it holds at and since when;
//     one that holds it at the same cursor for evict_after_ns is evicted:
//     its state word is CAS-ed Active(x) -> Evicted(x), and gating skips it;
//   * every consumer of such a topic reads through the copy path (copy, then
//     re-check seq), never in place, and stores its cursor after every
//     message: its cursor is a promise the producer may stop honouring, so
//     the seqlock, not the cursor, is what keeps it from delivering an
//     overwritten slot; and "advancing" is seen message by message;
//   * the consumer checks its own state word once per poll (its own line,
//     which it writes anyway) and, seeing Evicted, rejoins at live with the
//     reliable join below (Evicted(self) -> Active(self) by CAS) and reports
//     the messages it skipped as one gap.
//   The race of an eviction with a consumer that advances at that moment:
//     1. producer loads state == Active(x), then cursor == c (acquire), and
//        c has not moved for the bound;
//     2. consumer copies message c+1, re-checks seq, delivers it, stores
//        cursor c+1 (release);
//     3. producer CASes Active(x) -> Evicted(x): succeeds (the word is
//        unchanged; only the producer writes Evicted, and a consumer that
//        rejoins has a fresh cursor, so it is never evicted for an old one);
//     4. producer overwrites slot c+2 onwards.
//     Message c+1 was delivered whole (its re-check ran before 4 could
//     start); the consumer's next poll sees Evicted and reports [next, live)
//     as lost: nothing torn, nothing twice, the count exact. An eviction
//     that "loses" to an advancing consumer at worst evicts a consumer
//     that was at the bound anyway; it never lets it read bad data.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>

#include "shmbus/detail/fence.hpp"
#include "shmbus/detail/layout.hpp"
#include "shmbus/detail/wait.hpp"
#include "shmbus/error.hpp"

namespace shmbus::detail {

// The memory a ring works on: pointers into one mapping and the geometry,
// all checked by whoever built the block (core: at open, from the checked
// copy of the descriptor; never re-read from shared memory).
struct RingBlock {
  TopicHeader* header = nullptr;       // producer, hot, wait and registry lines
  ConsumerEntry* consumers = nullptr;  // [max_consumers]
  std::byte* slots = nullptr;          // [slot_count] of slot_size bytes
  Doorbell* doorbell = nullptr;        // the bus's multi-topic doorbell; may be null
  std::uint32_t max_consumers = 0;
  std::uint32_t slot_size = 0;   // multiple of 64, >= 64
  std::uint32_t slot_count = 0;  // power of two, >= 2
  bool reliable = false;
  std::uint64_t evict_after_ns = 0;  // reliable only; 0: consumers are never evicted
};

// One message as a reader finds it in its slot.
struct SlotRead {
  std::uint64_t seq = 0;
  std::uint64_t raw_ts = 0;
  std::uint64_t correlation = 0;
  std::uint32_t producer = 0;
  std::span<const std::byte> data;
};

// The oldest message a ring of `count` slots still holds when `head` is the
// newest committed one: the writer claims slot head+1 ahead (step 6 above),
// which holds message head+1-count until then, so N-1 messages are held.
// (A reliable writer held up by a consumer claims nothing ahead and still
// holds N; readers need not know: this is the floor both ways.)
[[nodiscard]] constexpr std::uint64_t oldest_held(std::uint64_t head,
                                                  std::uint64_t count) noexcept {
  return head + 2 > count ? head + 2 - count : 1;
}

struct RingView {
  std::byte* slots = nullptr;
  std::uint64_t mask = 0;
  std::uint32_t slot_size = 0;
  std::uint32_t capacity = 0;  // max payload bytes
  std::uint64_t count = 0;     // N

  explicit RingView(const RingBlock& b) noexcept
      : slots(b.slots),
        mask(b.slot_count - 1u),
        slot_size(b.slot_size),
        capacity(b.slot_size - static_cast<std::uint32_t>(kSlotHeaderBytes)),
        count(b.slot_count) {}
  RingView() = default;

  [[nodiscard]] SlotHeader* slot(std::uint64_t seq) const noexcept {
    return std::launder(reinterpret_cast<SlotHeader*>(slots + (seq & mask) * slot_size));
  }
  [[nodiscard]] static std::byte* payload(SlotHeader* s) noexcept {
    return reinterpret_cast<std::byte*>(s) + kSlotHeaderBytes;
  }
};

// The newest committed sequence, from the producer's head hint. The producer
// stores head once every head_period(count) commits (and exactly whenever
// it rescans its consumers, and when it leaves), not on every commit: that
// store, to a shared line outside the slot, cost a 32 B stream 1 -> 1 ~15 %
// of its throughput where cross-core transfers are slow (BENCHMARKS.md). So
// head may lag by less than the period, and whoever needs the newest
// message (joiners, tools, head_hint()) scans forward from it over slots
// whose seq says "committed as the next sequence". The lag is less than
// half the ring, so those messages are still there (the ring holds N-1);
// the scan stops at a slot claimed ahead (odd), at an older lap, or after
// `count` steps against a producer it cannot catch.
[[nodiscard]] inline std::uint64_t newest_committed(const RingView& v,
                                                    std::uint64_t hint) noexcept {
  std::uint64_t n = hint;
  for (std::uint64_t i = 0; i < v.count; ++i, ++n) {
    // acquire: a caller that reads message n+1 after this sees it whole.
    if (v.slot(n + 1)->seq.load(std::memory_order_acquire) != 2 * (n + 1)) break;
  }
  return n;
}
// The same from the block's own head hint, loaded with `order` (the
// reliable join loads it seq_cst; tools relaxed).
[[nodiscard]] inline std::uint64_t newest_committed(const RingBlock& b,
                                                    std::memory_order order) noexcept {
  return newest_committed(RingView(b), b.header->hot.head.load(order));
}

// Commits between two head stores on a ring of `count` slots: 64, at most
// half the ring (a power of two, >= 1).
[[nodiscard]] constexpr std::uint64_t head_period(std::uint64_t count) noexcept {
  return count >= 128 ? 64 : count >= 2 ? count / 2 : 1;
}

// Moves the cache line holding `p` from this core's private caches towards
// the shared L3 (x86 CLDEMOTE, Tremont / Sapphire Rapids and later), where
// another core's miss on it is served without snooping this one. A hint: it
// changes no memory, and processors without CLDEMOTE execute its encoding
// (0F 1C /0, in the reserved-NOP space) as a NOP. Elsewhere it is nothing.
inline void cache_demote(const void* p) noexcept {
#if defined(__x86_64__)
  asm volatile("cldemote %0" ::"m"(*static_cast<const char*>(p)));
#else
  (void)p;
#endif
}

// Whether this CPU executes CLDEMOTE (CPUID leaf 7, ECX bit 25), asked once
// per process. Where it does not, the writer still decides which messages to
// demote (demoted() counts them) but skips the per-line loop of NOPs: ~11
// instructions a 3-line message (callgrind, BENCHMARKS.md).
[[nodiscard]] bool cache_demote_available() noexcept;

// Copies a payload of n bytes out of a slot that the producer may be
// rewriting; `capacity` is the slot's payload capacity (>= n, >= 32). The
// caller validates the slot's seq afterwards and discards a torn copy. Under
// ThreadSanitizer this is the one place the seqlock's tolerated race lives,
// so it copies with relaxed atomic word loads in an uninstrumented function
// (memcpy would be intercepted and reported); elsewhere it is memcpy.
//
// Small messages (most market data) take a fixed-size copy, which the
// compiler inlines as a few vector moves, instead of a call into memcpy
// (measured: a few per cent of a 32 B cross-process round trip on a lossy
// topic; BENCHMARKS.md). It reads no byte outside the slot's payload (every
// slot holds >= 32 payload bytes: slot_size >= 64) and the bytes it copies
// past the message are never delivered.
#if defined(SHMBUS_TSAN)
__attribute__((no_sanitize("thread"))) inline void seqlock_copy(std::byte* dst,
                                                                const std::byte* src, std::size_t n,
                                                                std::size_t /*capacity*/) noexcept {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const std::uint64_t w =
        __atomic_load_n(reinterpret_cast<const std::uint64_t*>(src + i), __ATOMIC_RELAXED);
    std::memcpy(dst + i, &w, 8);
  }
  for (; i < n; ++i)
    dst[i] = static_cast<std::byte>(
        __atomic_load_n(reinterpret_cast<const unsigned char*>(src + i), __ATOMIC_RELAXED));
}
#else
inline void seqlock_copy(std::byte* dst, const std::byte* src, std::size_t n,
                         std::size_t capacity) noexcept {
  if (n <= 32) {
    std::memcpy(dst, src, 32);
  } else if (n <= 64 && capacity >= 64) {
    std::memcpy(dst, src, 64);
  } else {
    std::memcpy(dst, src, n);
  }
}
#endif

// ------------------------------------------------------------------ writer

class RingWriter {
 public:
  RingWriter() = default;
  // Allocates the eviction bookkeeping on topics with eviction (may throw
  // std::bad_alloc).
  RingWriter(const RingBlock& b, std::uint64_t next)
      : view_(b),
        hot_(&b.header->hot),
        wait_(&b.header->wait),
        block_(b),
        next_(next),
        limit_(b.reliable ? 0 : ~std::uint64_t{0}),
        pid_(0),
        prefetch_slots_(b.reliable ? std::max<std::uint64_t>(1, kPrefetchBytes / b.slot_size) : 0),
        prefetch_lines_(std::min<std::uint32_t>(
            kPrefetchMaxLines, b.slot_size / static_cast<std::uint32_t>(kCacheLine))),
        head_mask_(head_period(b.slot_count) - 1) {
    if (b.reliable && b.evict_after_ns != 0) holds_.reset(new Hold[b.max_consumers]{});
  }

  // The next sequence to publish after a predecessor on the same block (a
  // producer that detached or died): head is stored once a head_period() of
  // commits, so a producer that died leaves up to that many committed
  // messages past head (newest_committed() finds them); a slot left odd
  // (claimed, never committed: killed mid-write, or claimed ahead by the
  // last commit, which is what every producer that stops leaves) has its
  // sequence reused. Stores the recovered head.
  [[nodiscard]] static std::uint64_t recover_next(const RingBlock& b) noexcept;

  void set_pid(std::uint32_t pid) noexcept { pid_ = pid; }
  // Stores the exact head (the newest committed sequence): commits store it
  // only once a head_period(); a producer that leaves stores it for tools.
  void store_head() noexcept { hot_->head.store(next_ - 1, std::memory_order_relaxed); }
  // Messages committed at least `raw` clock units after the previous one
  // are demoted (0: every message; ~0: none). PublisherOptions::demote_after_idle_ns.
  // Commits at least `raw` clock units after the previous one claim the next
  // slot ahead (0: every commit). Publisher sets ~100 ns.
  void set_ahead_idle(std::uint64_t raw) noexcept { ahead_idle_ = raw; }
  void set_demote_idle(std::uint64_t raw) noexcept {
    demote_idle_ = raw;
    demote_lines_ = cache_demote_available();
  }

  // Claims the slot for message next_. On success returns its header (seq is
  // now odd); otherwise nullptr and the reason in `r`.
  [[nodiscard]] SlotHeader* claim(std::size_t size, PublishResult& r) noexcept {
    if (size > view_.capacity) [[unlikely]] {
      hot_->too_large.fetch_add(1, std::memory_order_relaxed);
      r = PublishResult::TooLarge;
      return nullptr;
    }
    if (next_ > limit_) [[unlikely]] {
      if (!unblock()) {
        r = PublishResult::WouldBlock;
        return nullptr;
      }
    }
    SlotHeader* s = view_.slot(next_);
    // relaxed + release fence: the odd value must be visible before any
    // payload byte of the new message (see the seqlock race above). Usually
    // the previous commit did it already (claim ahead, below).
    if (!ahead_) {
      mark_claimed(s, next_);
    } else {
      ahead_ = false;  // stored only when set: a store per message costs (BENCHMARKS.md)
    }
    r = PublishResult::Ok;
    return s;
  }

  // Commits the claimed slot as message next_.
  void commit(SlotHeader* s, std::size_t size, std::uint64_t raw_ts,
              std::uint64_t correlation) noexcept {
    mark_committed(s, next_, size, raw_ts, correlation, pid_);
    // The first message after an idle spell is most likely awaited by a
    // consumer spinning at the head: push its lines out of this core's
    // private caches to the shared L3, so the consumer's misses are served
    // there instead of by a snoop of this core (Quote round trip -20%).
    // Back-to-back messages are not demoted: their consumer is behind, and
    // at ~10 ns a line the demotes would halve a streaming producer.
    const std::uint64_t idle = raw_ts - last_ts_;
    if (idle >= demote_idle_) [[unlikely]]
      demote(s, size);
    last_ts_ = raw_ts;
    // relaxed: a hint for joiners, lapped readers and tools, not a
    // publication; once a head_period() (newest_committed() above says why).
    if ((next_ & head_mask_) == 0) hot_->head.store(next_, std::memory_order_relaxed);
    ++next_;
    // Reliable topics: start the read-for-ownership of a slot 8 KiB ahead
    // now, so a producer streaming into a full ring does not stall its store
    // buffer on one cross-core miss per message. Only within limit_: gating
    // guarantees every consumer has finished with that slot, so the prefetch
    // never takes a line a consumer is about to read. (Lossy topics skip it:
    // it cost their multi-line round trips ~5% and they meet their
    // throughput without it. BENCHMARKS.md has the A/B figures.)
    if (prefetch_slots_ != 0 && next_ + prefetch_slots_ <= limit_)
      prefetch_for_write(view_.slot(next_ + prefetch_slots_));
    // Claim ahead (step 6 at the top of this file): message next_'s slot is
    // marked odd now, off that message's path, so its first line changes
    // hands once a hop. Only after an idle spell (ahead_idle_, ~100 ns),
    // when the next message's consumer is likely spinning on that line: a
    // producer streaming back to back is ahead of its consumers, and there
    // the extra store cost reliable 1 KiB 1->1 a third of its throughput
    // (25 -> 17 M msg/s; BENCHMARKS.md). Reliable topics: only within
    // limit_, where gating already allows writing it; past it, claim() does
    // it after unblocking.
    // relaxed + release fence: as in claim().
    if (idle >= ahead_idle_ && next_ <= limit_) {
      mark_claimed(view_.slot(next_), next_);
      ahead_ = true;
    }
    // relaxed: the sleeper's heavy barrier orders this load (detail/wait.hpp).
    if (wait_->sleepers.load(std::memory_order_relaxed) != 0) [[unlikely]]
      wake();
  }

  // Publishes up to `count` messages back to back, message i written by
  // fill(i, payload) (payload: capacity bytes of its slot), which returns its
  // size (<= capacity: the caller checks), all stamped `raw_ts`. Returns how
  // many were published, from the first: fewer than `count` only on a
  // reliable topic whose ring has no room for the rest (the caller counts
  // the WouldBlock). Each message is claimed (odd), written and committed
  // (even, release) before the next is claimed, exactly as claim() + commit()
  // would, so a consumer may read message i while i+1 is being written. The
  // difference is where the writer's state lives: in locals for the whole
  // batch, stored back once at the end. A producer that publishes one
  // message per call keeps next_ and last_ts_ in memory and stores them
  // every message, and on this machine kind those stores, queued behind
  // the slot's, cost up to half the throughput when cross-core transfers are
  // slow (BENCHMARKS.md, "Batches"); one stamp a batch also lifts the ~110 M
  // msg/s a stamp per message allows (RDTSC ~9 ns on AMD Zen).
  //
  // The hints of commit() apply to the batch: the first message may be
  // demoted (idle spell before it) and may use a slot claimed ahead; the
  // slot after a single-message batch is claimed ahead as after a commit;
  // sleepers are checked after the first commit (latency) and after the last
  // (the Dekker argument of detail/wait.hpp needs only that one). `fill`
  // must be noexcept: a throw would leave a slot claimed and the state in
  // locals.
  template <class Fill>
  std::size_t publish_batch(std::size_t count, Fill& fill, std::uint64_t raw_ts,
                            std::uint64_t correlation) noexcept {
    static_assert(noexcept(fill(std::size_t{0}, static_cast<std::byte*>(nullptr))),
                  "publish_batch: the fill function must be noexcept");
    if (count == 0) return 0;
    // Room: reliable topics rescan once if the batch would pass the limit
    // (lossy ones never: their limit is the largest sequence).
    if (next_ > limit_ || count - 1 > limit_ - next_) [[unlikely]]
      (void)unblock();
    if (next_ > limit_) [[unlikely]]
      return 0;
    const std::uint64_t n = std::min<std::uint64_t>(count, limit_ - next_ + 1);
    const RingView view = view_;
    ProducerHot* const hot = hot_;
    const bool ahead = ahead_;
    const std::uint64_t first = next_;
    const std::uint64_t end = first + n;
    const std::uint64_t limit = limit_;
    const std::uint64_t head_mask = head_mask_;
    const std::uint64_t prefetch = prefetch_slots_;
    const std::uint32_t pid = pid_;
    const std::uint64_t idle = raw_ts - last_ts_;
    for (std::uint64_t seq = first; seq != end; ++seq) {
      SlotHeader* s = view.slot(seq);
      if (seq != first || !ahead) mark_claimed(s, seq);
      const std::size_t size = fill(static_cast<std::size_t>(seq - first), RingView::payload(s));
      mark_committed(s, seq, size, raw_ts, correlation, pid);
      if (seq == first && idle >= demote_idle_) [[unlikely]]
        demote(s, size);
      // relaxed: a hint, once a head_period() (as in commit()).
      if ((seq & head_mask) == 0) hot->head.store(seq, std::memory_order_relaxed);
      // The reliable write-prefetch, as in commit().
      if (prefetch != 0 && seq + 1 + prefetch <= limit)
        prefetch_for_write(view.slot(seq + 1 + prefetch));
      // relaxed: the sleeper's heavy barrier orders this load (commit()).
      if ((seq == first || seq + 1 == end) && wait_->sleepers.load(std::memory_order_relaxed) != 0)
          [[unlikely]]
        wake();
    }
    next_ = end;
    last_ts_ = raw_ts;
    ahead_ = false;
    // Claim ahead after a single message that followed an idle spell, as
    // commit() would; after two or more the last one followed no idle spell.
    if (n == 1 && idle >= ahead_idle_ && next_ <= limit_) {
      mark_claimed(view.slot(next_), next_);
      ahead_ = true;
    }
    return static_cast<std::size_t>(n);
  }

  // An aborted claim leaves the slot at 2n+1 ("being written"), which no
  // consumer delivers; the next claim rewrites the same sequence n there
  // (and stores the odd word again: harmless).
  void abort(SlotHeader*) noexcept {}

  // Rescans the consumer table (reliable topics). With check_liveness, reaps
  // consumers whose process is dead (not merely unknown: process.hpp) while
  // holding the producer up. Returns whether message next_ may now be
  // written. Slow path; out of line.
  bool refresh_limit(bool check_liveness) noexcept;
  // claim()'s slow path when the ring looks full: rescans, and at most once
  // every kLivenessPeriodNs also checks the liveness of whoever holds us up,
  // so a producer that only ever try_publish()es still gets past a consumer
  // that died (the waiting publish() does the same on its own schedule).
  bool unblock() noexcept;
  static constexpr std::int64_t kLivenessPeriodNs = 5'000'000;
  // Wakes sleepers; after kAuditAfterIdleWakes wake-ups in a row that woke
  // nobody, recounts them (detail/wait.hpp). Slow path; out of line.
  //
  // A consumer stopped (SIGSTOP, a debugger) in its sleep stays counted as
  // a sleeper and alive, so every commit would pay a FUTEX_WAKE (~1 us)
  // that wakes nobody. After kRateLimitAfterIdleWakes such wake-ups in a
  // row, the system call is made at most once per kIdleWakePeriodNs until
  // one wakes somebody; the futex words are still bumped on every commit,
  // so a consumer about to sleep returns from FUTEX_WAIT at once, and a
  // consumer that counts itself in as a sleeper after the limit began
  // (WaitBlock::arrivals moved) ends it: the next commit wakes it at once.
  // Only the stuck sleepers go without wake-ups they cannot take anyway.
  void wake() noexcept;
  void audit_sleepers() noexcept;
  static constexpr std::uint32_t kAuditAfterIdleWakes = 256;
  static constexpr std::uint32_t kRateLimitAfterIdleWakes = 8;
  static constexpr std::int64_t kIdleWakePeriodNs = 25'000;
  // FUTEX_WAKE system calls made (tests, diagnostics).
  [[nodiscard]] std::uint64_t wakes() const noexcept { return wakes_; }
  // The reliable producer's write-prefetch: how far ahead, and how many of
  // the slot's lines (measured on this machine kind: 8 KiB and 4 lines gave
  // 32 B 1->1 37 -> ~60 M msg/s and 1 KiB 10 -> 15 M msg/s).
  static constexpr std::uint64_t kPrefetchBytes = 8192;
  static constexpr std::uint32_t kPrefetchMaxLines = 4;
  // The idle spell after which a commit claims the next slot ahead: longer
  // than a streaming producer's gap between messages (~10-40 ns), shorter
  // than the fastest round trip measured (~110 ns).
  static constexpr std::uint64_t kClaimAheadAfterIdleNs = 100;

  [[nodiscard]] std::uint64_t next() const noexcept { return next_; }
  [[nodiscard]] const RingView& view() const noexcept { return view_; }
  [[nodiscard]] ProducerHot* hot() const noexcept { return hot_; }
  // Messages demoted so far (tests, diagnostics).
  [[nodiscard]] std::uint64_t demoted() const noexcept { return demoted_; }

 private:
  RingView view_;
  ProducerHot* hot_ = nullptr;
  WaitBlock* wait_ = nullptr;
  RingBlock block_;
  std::uint64_t next_ = 1;   // sequence of the next message
  std::uint64_t limit_ = 0;  // highest sequence writable without a rescan
  bool ahead_ = false;       // slot next_ is odd already (claimed by the last commit)
  std::uint32_t pid_ = 0;
  std::uint32_t idle_wakes_ = 0;  // wake-ups in a row that woke nobody (reset by audits)
  std::uint32_t idle_run_ = 0;    // the same, not reset by audits (rate limit)
  std::uint64_t wakes_ = 0;
  std::int64_t last_wake_ns_ = 0;
  std::uint32_t limit_arrivals_ = 0;  // WaitBlock::arrivals when the limit began
  std::uint64_t prefetch_slots_ = 0;  // 0: no write-prefetch (lossy topics)
  std::uint32_t prefetch_lines_ = 1;
  std::uint64_t last_ts_ = 0;  // stamp of the previous commit
  std::uint64_t demote_idle_ = ~std::uint64_t{0};
  std::uint64_t ahead_idle_ = 0;
  std::uint64_t head_mask_ = 0;  // head is stored when next_ & head_mask_ == 0
  std::uint64_t demoted_ = 0;
  bool demote_lines_ = true;           // the CPU has CLDEMOTE (set_demote_idle asks)
  std::int64_t next_liveness_ns_ = 0;  // CLOCK_MONOTONIC_COARSE; 0: check at the first block
  // Per consumer entry, while it holds this producer up (eviction topics
  // only; null elsewhere): the state word and cursor it held at, and since
  // when (CLOCK_MONOTONIC_COARSE; 0: not holding). Process-local.
  struct Hold {
    std::uint64_t word;
    std::uint64_t cursor;
    std::int64_t since_ns;
  };
  std::shared_ptr<Hold[]> holds_;
  // Whether consumer i, holding at (w, c) at `now`, has done so for the bound;
  // updates the bookkeeping.
  [[nodiscard]] bool held_too_long(std::uint32_t i, std::uint64_t w, std::uint64_t c,
                                   std::int64_t now) noexcept;

  // Slot `s` now holds message `seq` being written: relaxed + release
  // fence, the odd value visible before any payload byte of the message
  // (the seqlock race above).
  static void mark_claimed(SlotHeader* s, std::uint64_t seq) noexcept {
    s->seq.store(2 * seq + 1, std::memory_order_relaxed);
    fence_release();
  }
  // Slot `s` holds message `seq`, complete: the metadata (relaxed, ordered
  // before the commit by its release), then the even sequence (release:
  // publishes metadata and payload to consumers' acquire of seq).
  static void mark_committed(SlotHeader* s, std::uint64_t seq, std::size_t size,
                             std::uint64_t raw_ts, std::uint64_t correlation,
                             std::uint32_t pid) noexcept {
    s->ts.store(raw_ts, std::memory_order_relaxed);
    s->correlation.store(correlation, std::memory_order_relaxed);
    s->size.store(static_cast<std::uint32_t>(size), std::memory_order_relaxed);
    s->producer.store(pid, std::memory_order_relaxed);
    s->seq.store(2 * seq, std::memory_order_release);
  }

  void demote(const SlotHeader* s, std::size_t size) noexcept {
    if (demote_lines_) {
      const auto* p = reinterpret_cast<const char*>(s);
      for (std::size_t off = 0; off < kSlotHeaderBytes + size; off += kCacheLine)
        cache_demote(p + off);
    }
    ++demoted_;
  }

  void prefetch_for_write(const SlotHeader* s) const noexcept {
    const auto* p = reinterpret_cast<const char*>(s);
    for (std::uint32_t i = 0; i < prefetch_lines_; ++i)
      __builtin_prefetch(p + i * kCacheLine, 1, 3);
  }
};

// ------------------------------------------------------------------ reader

enum class ReadStatus : std::uint8_t { Delivered, Empty, Lapped };

class RingReader {
 public:
  RingReader() = default;
  // `entry` is null for observers (tools), which gate nothing.
  RingReader(const RingBlock& b, ConsumerEntry* entry, std::uint64_t next,
             std::uint64_t in_place_from) noexcept
      : view_(b),
        hot_(&b.header->hot),
        entry_(entry),
        next_(next),
        in_place_from_(in_place_from),
        batch_(static_cast<std::uint32_t>(std::clamp<std::uint64_t>(b.slot_count / 8, 1, 1024))),
        copy_(static_cast<std::byte*>(::operator new (view_.capacity + 64, std::align_val_t{64}))) {
    // Eviction topics: the copy path for every message, and the cursor after
    // every message (the top of this file).
    if (b.evict_after_ns != 0) {
      in_place_from_ = ~std::uint64_t{0};
      batch_ = 1;
    }
  }

  // Reads message next_ if it is ready and hands it to deliver(const SlotRead&).
  // Lapped: the gap is recorded (gap_first/gap_count) and next_ moved on;
  // call again to read the newest message.
  template <class Deliver>
  ReadStatus read(Deliver&& deliver) {
    SlotHeader* s = view_.slot(next_);
    const std::uint64_t want = 2 * next_;
    // acquire: pairs with the producer's release at commit: metadata and
    // payload written before it are visible below.
    const std::uint64_t s1 = s->seq.load(std::memory_order_acquire);
    if (s1 != want) {
      if (s1 > want + 1) [[unlikely]] {
        skip_lapped(committed_by(s1));
        return ReadStatus::Lapped;
      }
      return ReadStatus::Empty;
    }
    SlotRead m;
    m.seq = next_;
    m.raw_ts = s->ts.load(std::memory_order_relaxed);
    m.correlation = s->correlation.load(std::memory_order_relaxed);
    m.producer = s->producer.load(std::memory_order_relaxed);
    const std::uint32_t size = s->size.load(std::memory_order_relaxed);
    const std::uint32_t n = std::min(size, view_.capacity);
    // Ask for every line of the message now, so that their misses overlap:
    // a handler reading a FlatBuffer in place follows offsets from line to
    // line, one dependent miss after another (a 144 B Quote round trip:
    // -21%); and the copy path's memcpy alone was measured not to overlap
    // them (256 B lossy round trip 1.44 -> 1.24 x its floor with this;
    // BENCHMARKS.md). A prefetch changes no data: the copy path's seqlock
    // re-check below still discards a torn copy.
    const auto* p = reinterpret_cast<const char*>(s);
    for (std::size_t off = kCacheLine; off < kSlotHeaderBytes + n; off += kCacheLine)
      __builtin_prefetch(p + off, 0, 3);
    if (next_ >= in_place_from_) {
      // In place (reliable, registered): the producer is gated on our cursor.
      m.data = {RingView::payload(s), n};
    } else {
      seqlock_copy(copy_.get(), RingView::payload(s), n, view_.capacity);
      // acquire fence: the copy's loads happen before the re-check below.
      fence_acquire();
      const std::uint64_t s2 = s->seq.load(std::memory_order_relaxed);
      if (s2 != s1) [[unlikely]] {
        // Overwritten while we copied: message next_ is lost.
        skip_lapped(std::max<std::uint64_t>(committed_by(s2), next_ + 1));
        return ReadStatus::Lapped;
      }
      m.data = {copy_.get(), n};
    }
    ++next_;
    ++pending_;
    ++delivered_;
    deliver(static_cast<const SlotRead&>(m));
    if (pending_ >= batch_) flush();
    return ReadStatus::Delivered;
  }

  // True if a read() now would not return Empty (a message or a gap waits).
  [[nodiscard]] bool ready() const noexcept {
    const std::uint64_t s1 = view_.slot(next_)->seq.load(std::memory_order_acquire);
    return s1 == 2 * next_ || s1 > 2 * next_ + 1;
  }

  // Publishes the cursor to the consumer table. release: our reads of every
  // slot up to next_-1 happen before the producer (acquire in its scan)
  // reuses them.
  void flush() noexcept {
    pending_ = 0;
    if (entry_ == nullptr) return;
    entry_->cursor.store(next_ - 1, std::memory_order_release);
    // relaxed: counters for tools.
    entry_->delivered.store(delivered_, std::memory_order_relaxed);
    // A consumer that never runs dry never reaches the idle heartbeat: beat
    // every 64 flushes, so tools do not show a busy consumer as stalled.
    if ((++flushes_ & 63u) == 0) [[unlikely]]
      beat();
  }

  // After an eviction: due `next` from now on (never moves backwards); the
  // messages from `first_lost` to it are one gap (gap_first/gap_count), and
  // the ones not yet counted are added to drops. Publishes the cursor.
  void rejoin(std::uint64_t first_lost, std::uint64_t next) noexcept {
    next = std::max(next, next_);
    drops_ += next - next_;
    gap_first_ = first_lost;
    gap_count_ = next - first_lost;
    next_ = next;
    if (entry_ != nullptr) {
      entry_->drops.store(drops_, std::memory_order_relaxed);
      flush();
    }
  }
  void detach() noexcept { entry_ = nullptr; }
  [[nodiscard]] bool dirty() const noexcept { return pending_ != 0; }

  [[nodiscard]] std::uint64_t next() const noexcept { return next_; }
  [[nodiscard]] std::uint64_t drops() const noexcept { return drops_; }
  [[nodiscard]] std::uint64_t delivered() const noexcept { return delivered_; }
  [[nodiscard]] std::uint64_t gap_first() const noexcept { return gap_first_; }
  [[nodiscard]] std::uint64_t gap_count() const noexcept { return gap_count_; }
  [[nodiscard]] SlotHeader* next_slot() const noexcept { return view_.slot(next_); }

 private:
  struct AlignedDelete {
    void operator()(std::byte* p) const noexcept { ::operator delete (p, std::align_val_t{64}); }
  };
  // Stores the heartbeat (wall clock, coarse). Out of line.
  void beat() noexcept;

  // The newest sequence known committed from a slot's seq word: 2n is n; 2n+1
  // (n claimed, usually ahead by the commit of n-1) is n-1.
  [[nodiscard]] static std::uint64_t committed_by(std::uint64_t word) noexcept {
    return (word >> 1) - (word & 1u);
  }

  // Skip to the newest message: what a market-data consumer that fell a whole
  // ring behind wants, and it gives the producer a full ring of head start
  // before this consumer can be lapped again. `seen` is a sequence known to
  // have been committed already.
  void skip_lapped(std::uint64_t seen) noexcept {
    const std::uint64_t head = hot_->head.load(std::memory_order_relaxed);
    const std::uint64_t resume = std::max({head, seen, next_ + 1});
    gap_first_ = next_;
    gap_count_ = resume - next_;
    drops_ += gap_count_;
    next_ = resume;
    if (entry_ != nullptr) {
      entry_->drops.store(drops_, std::memory_order_relaxed);
      flush();
    }
  }

  RingView view_;
  const ProducerHot* hot_ = nullptr;
  ConsumerEntry* entry_ = nullptr;
  std::uint64_t next_ = 1;
  std::uint64_t in_place_from_ = ~std::uint64_t{0};
  std::uint64_t drops_ = 0;
  std::uint64_t delivered_ = 0;
  std::uint64_t gap_first_ = 0;
  std::uint64_t gap_count_ = 0;
  std::uint32_t pending_ = 0;
  std::uint32_t batch_ = 1;
  std::uint32_t flushes_ = 0;
  std::unique_ptr<std::byte, AlignedDelete> copy_;
};

}  // namespace shmbus::detail
