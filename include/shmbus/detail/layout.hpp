// shmbus shared-memory layout: the structs, their offsets, nothing else.
//
// Two kinds of segment, both POSIX shared memory (/dev/shm) created and
// mapped with Boost.Interprocess:
//
//   "shmbus.<bus>"          the bus directory: bus header, clock, doorbell,
//                           and a table of topic names
//   "shmbus.<bus>.<topic>"  one topic: its header, consumer table, binary
//                           schema and ring of slots
//
// A segment is built under a temporary name and published under its real
// name with link(2), which fails if the name exists. A segment is therefore
// never visible half-initialised, and a process that dies while creating one
// leaves only a "shmbus-tmp.*" file that `bus-inspect gc` removes.
//
// Rules every struct here keeps (STYLE.md lessons 2-7):
//  * plain standard-layout structs of fixed-width integers and std::atomic,
//    every atomic lock-free (asserted); offsets, never pointers;
//  * fields written by different processes are kFalseSharing (128 B) apart;
//    a "W:" / "R:" comment above each field names its writers and readers;
//  * the creator fills the header, then release-stores `layout_version`; an
//    opener acquire-loads it before it trusts anything else;
//  * tests/layout_test.cpp pins every size and offset: if it fails, bump
//    kLayoutVersion.
//
// Values from shared memory. Any process that maps a segment read-write
// can write any byte of it (a bug, a crash mid-update, a hostile user of
// the same uid), so a value read from shared memory is one of:
//  * fixed at open: checked once (detail/segments.hpp: check_topic_segment,
//    check_directory_segment) and copied into the process (TopicFacts,
//    DirectoryFacts, TopicState, DirectoryState, the ring's RingBlock, the
//    topic's schema, the clock's fallback rate), and never re-read. Every
//    bound and offset comes from that copy;
//  * or bounds-checked at every use: consumer_hwm is min'ed with the
//    max_consumers copied at open; a slot's `size` with the slot's
//    capacity; a clock anchor's rate must be sane (Clock::sane_rate) and
//    its conversion saturates; the anchor index is masked to 0/1.
// Loops on shared words are bounded: a seqlock that stays odd (its writer
// was killed mid-update) is retried a fixed number of times, then the
// reader falls back and counts it (Clock::fallbacks()); ownership CAS loops
// end on a deadline or when the word is seen owned. An inconsistency is a
// named error (Error: ForeignSegment, TruncatedSegment, ...) or a counted
// drop (a Gap, an invalid message), never a crash, a hang, or a read
// outside the mapping. The stored binary schema is such a value: it is used
// only if its structural hash equals the descriptor's schema_hash, and the
// process's own registry bytes are preferred when it knows the type with
// that hash.
//
// Topic segment:
//
//   0     +-------------------------------+
//         | TopicDescriptor      384 B    |  immutable after creation
//   384   | ProducerControl      128 B    |  owner word, name: on attach/takeover
//   512   | ProducerHot          128 B    |  head + counters: every publish
//   640   | WaitBlock            128 B    |  futex + sleepers
//   768   | RegistryBlock        128 B    |  directory registration, consumer hwm
//   896   | SupersedeBlock       128 B    |  a provisional topic being defined
//   1024  +-------------------------------+
//         | ConsumerEntry[max_consumers]  |  128 B each, one per subscriber
//         +-------------------------------+  schema_offset (128-aligned)
//         | binary schema (.bfbs) bytes   |
//         +-------------------------------+  slots_offset (4096-aligned)
//         | Slot[slot_count]              |  slot_size bytes each:
//         |   SlotHeader 32 B + payload   |    seq | ts | correlation | size | producer
//         +-------------------------------+
//
// Directory segment:
//
//   0     DirectoryDescriptor 128 B | ClockBlock 128 B | Doorbell 128 B | pad
//   512   DirectoryEntry[capacity], 128 B each
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace shmbus::detail {

// The false-sharing distance for anything that crosses a process boundary.
// Fixed, not std::hardware_destructive_interference_size (which may change
// with compiler flags, and so would the layout): 128 B covers the adjacent-
// line prefetcher of current x86 parts, which pulls cache lines in pairs.
inline constexpr std::size_t kFalseSharing = 128;
inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::size_t kPageSize = 4096;

inline constexpr std::uint64_t kTopicMagic = 0x3150'4f54'5342'4d53ULL;  // "SMBSTOP1" little-endian
inline constexpr std::uint64_t kDirectoryMagic = 0x3152'4944'5342'4d53ULL;  // "SMBSDIR1"
inline constexpr std::uint32_t kLayoutVersion = 3;  // 3: evict_after_ns, evictions, Evicted

inline constexpr std::size_t kMaxBusName = 32;
inline constexpr std::size_t kMaxTopicName = 64;
inline constexpr std::size_t kMaxTypeName = 127;
inline constexpr std::size_t kMaxParticipantName = 31;

inline constexpr std::uint32_t kMinSlotSize = 64;
inline constexpr std::uint32_t kMaxSlotSize = 1u << 20;
inline constexpr std::uint32_t kMinSlotCount = 2;
inline constexpr std::uint32_t kMaxSlotCount = 1u << 24;
inline constexpr std::uint64_t kMaxRingBytes = std::uint64_t{4} << 30;
inline constexpr std::uint32_t kMaxConsumers = 1024;
inline constexpr std::uint32_t kMaxDirectoryCapacity = 1u << 16;
inline constexpr std::uint32_t kMaxSchemaBytes = 16u << 20;
// TopicDescriptor::evict_after_ns, when not 0: 1 ms to 1 hour.
inline constexpr std::uint64_t kMinEvictAfterNs = 1'000'000;
inline constexpr std::uint64_t kMaxEvictAfterNs = 3'600'000'000'000;

static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic<std::int64_t>::is_always_lock_free);

// A short string that one process may rewrite while another reads it (a
// producer's name during a takeover). Stored as relaxed atomic words so the
// race is defined; a reader may see a mix of old and new names at worst,
// which only a diagnostic tool ever shows.
template <std::size_t Bytes>
struct AtomicName {
  static_assert(Bytes % 8 == 0);
  std::atomic<std::uint64_t> words[Bytes / 8];

  // Truncates to Bytes-1 characters; callers validate lengths first.
  void store(std::string_view s) noexcept {
    for (std::size_t w = 0; w < Bytes / 8; ++w) {
      std::uint64_t v = 0;
      for (std::size_t b = 0; b < 8; ++b) {
        const std::size_t i = w * 8 + b;
        const unsigned char c =
            i < s.size() && i < Bytes - 1 ? static_cast<unsigned char>(s[i]) : 0;
        v |= static_cast<std::uint64_t>(c) << (8 * b);
      }
      words[w].store(v, std::memory_order_relaxed);
    }
  }
  [[nodiscard]] std::string load() const {
    std::string out;
    for (std::size_t w = 0; w < Bytes / 8; ++w) {
      const std::uint64_t v = words[w].load(std::memory_order_relaxed);
      for (std::size_t b = 0; b < 8; ++b) {
        const char c = static_cast<char>((v >> (8 * b)) & 0xff);
        if (c == 0) return out;
        out.push_back(c);
      }
    }
    return out;
  }
};

enum class PolicyCode : std::uint32_t { Lossy = 1, Reliable = 2 };

// ============================================================== topic segment

// Written once by the creator before layout_version is published; read-only
// for everyone afterwards (plain fields are safe: they happen-before the
// release store of layout_version, which every opener acquire-loads first).
struct TopicDescriptor {
  std::uint64_t magic;  // kTopicMagic
  // W: creator, once, release, after every other field. R: openers, acquire, first.
  std::atomic<std::uint32_t> layout_version;
  std::uint32_t policy;            // PolicyCode
  std::uint64_t segment_bytes;     // total size of the segment
  std::uint64_t consumers_offset;  // ConsumerEntry[max_consumers]
  std::uint64_t schema_offset;     // binary schema bytes
  std::uint64_t slots_offset;      // Slot[slot_count]
  std::uint32_t schema_bytes;
  std::uint32_t slot_size;   // bytes per slot, multiple of 64, header included
  std::uint32_t slot_count;  // power of two
  std::uint32_t max_consumers;
  std::uint64_t schema_hash;         // 0 for raw topics
  std::int64_t created_ns;           // wall clock
  std::uint64_t creator;             // Identity of the creating process
  char file_identifier[8];           // FlatBuffers file_identifier, NUL-padded
  char bus[kMaxBusName + 8];         // NUL-terminated
  char topic[kMaxTopicName + 8];     // NUL-terminated
  char type_name[kMaxTypeName + 1];  // "" for raw topics
  std::uint32_t flags;               // kTopicProvisional
  std::uint32_t reserved0;
  // Reliable topics: a consumer that holds the producer up without advancing
  // for this long is evicted (core/topic.hpp, TopicConfig::evict_after). 0:
  // never. Non-zero also means every consumer reads through the copy path and
  // validates the slot after copying, since its cursor no longer protects it.
  std::uint64_t evict_after_ns;
  std::uint8_t reserved[32];
};
static_assert(sizeof(TopicDescriptor) == 384);
static_assert(offsetof(TopicDescriptor, magic) == 0);
static_assert(offsetof(TopicDescriptor, layout_version) == 8,
              "magic and version come first: they are read before anything else is trusted");
static_assert(offsetof(TopicDescriptor, schema_hash) == 64);
static_assert(offsetof(TopicDescriptor, bus) == 96);
static_assert(offsetof(TopicDescriptor, topic) == 136);
static_assert(offsetof(TopicDescriptor, type_name) == 208);
static_assert(offsetof(TopicDescriptor, flags) == 336);
static_assert(offsetof(TopicDescriptor, evict_after_ns) == 344);

// TopicDescriptor::flags. Provisional: created by a subscriber that gave no
// configuration, so the first producer (or subscriber) that gives one may
// define the topic afresh: it builds the topic with its configuration, with
// the provisional topic's consumers already registered in it, and replaces
// the provisional segment (core/topic.cpp, "Provisional topics").
inline constexpr std::uint32_t kTopicProvisional = 1;

// Who produces. Written on attach, release and takeover (rare); read by
// would-be producers and tools.
struct alignas(kFalseSharing) ProducerControl {
  // W: attaching producers by CAS (Free -> Active(self), or Active(dead) ->
  // Active(self)); the owner stores Free on detach. R: everyone.
  std::atomic<std::uint64_t> owner;
  // W: the owner after winning `owner`, relaxed (diagnostic). R: tools.
  std::atomic<std::int64_t> attached_ns;
  // W: a producer that took over from a dead one, relaxed. R: tools.
  std::atomic<std::uint32_t> takeovers;
  // W: the owner after winning `owner`, relaxed. R: tools.
  std::atomic<std::uint32_t> pid;
  // W: the owner after winning `owner`. R: tools.
  AtomicName<32> name;
};
static_assert(sizeof(ProducerControl) == 128);

// The producer's own line, written once every 64 publishes. Consumers read `head`
// only when they join or find themselves lapped; tools read it to show rates.
struct alignas(kFalseSharing) ProducerHot {
  // W: producer, relaxed, after every 64th commit (detail::head_period),
  // exactly at each consumer rescan and when it leaves (the slot's seq word
  // is what publishes a message; head is a hint for joiners and tools, and
  // may lag: detail::newest_committed scans past it). R: consumers (join,
  // lap), tools.
  std::atomic<std::uint64_t> head;
  // W: producer, relaxed, on refusal (slow path). R: tools.
  std::atomic<std::uint64_t> too_large;
  std::atomic<std::uint64_t> would_block;
  // W: producer, relaxed, when it reaps a dead consumer. R: tools.
  std::atomic<std::uint64_t> reaped_consumers;
  // W: producer, relaxed, when it evicts a stalled consumer (slow path).
  // R: tools.
  std::atomic<std::uint64_t> evictions;
};
static_assert(sizeof(ProducerHot) == 128);

// Blocking wait. Consumers that sleep count themselves in; the producer pays
// for a wake-up only when a count is non-zero (see detail/wait.hpp).
struct alignas(kFalseSharing) WaitBlock {
  // W: producer (fetch_add before FUTEX_WAKE). R: sleeping consumers (FUTEX_WAIT).
  std::atomic<std::uint32_t> futex;
  // W: consumers about to sleep / after waking (fetch_add/sub, seq_cst).
  // R: producer after every commit, relaxed (paired with a heavy barrier on
  // the sleeper's side: detail/wait.hpp).
  std::atomic<std::uint32_t> sleepers;
  // Times a consumer counted itself in (fetch_add, seq_cst, before its heavy
  // barrier: the same Dekker pair as `sleepers`). W: consumers about to
  // sleep. R: a producer whose wake-ups woke nobody for a while (it rate-
  // limits them, detail/ring.cpp) and must stop doing so the moment a new
  // sleeper arrives.
  std::atomic<std::uint32_t> arrivals;
};
static_assert(sizeof(WaitBlock) == 128);

struct alignas(kFalseSharing) RegistryBlock {
  // W: whoever registers the topic in the bus directory, by CAS
  // (Free -> Claiming(self) -> Active). R: openers (they finish a dead
  // registrant's work).
  std::atomic<std::uint64_t> directory_claim;
  // W: consumers joining, fetch_max-like CAS loop. R: producer scans [0, hwm).
  std::atomic<std::uint32_t> consumer_hwm;
  std::uint32_t reserved0;
  // W: consumers joining, relaxed. R: tools.
  std::atomic<std::uint64_t> joins;
  // W: consumers leaving; a producer reaping a dead consumer that holds it
  // up (RingWriter::refresh_limit); a subscriber freeing dead entries to make
  // room (reap_dead_entries). All relaxed (a counter). R: tools.
  std::atomic<std::uint64_t> leaves;
};
static_assert(sizeof(RegistryBlock) == 128);

// Written only when a provisional topic is defined (replaced): rare.
struct alignas(kFalseSharing) SupersedeBlock {
  // W: the process that defines a provisional topic, by CAS (Free ->
  // Claiming(self); a dead claimant is taken over), then Active(self),
  // release, once the replacement is published under the topic's name.
  // R: subscribers of the provisional topic (acquire, when idle: Active
  // means "reopen the topic by name and adopt your entry there"), and
  // subscribers joining it (seq_cst, after registering: see topic.cpp).
  std::atomic<std::uint64_t> claim;
};
static_assert(sizeof(SupersedeBlock) == 128);

struct TopicHeader {
  TopicDescriptor desc;
  ProducerControl producer;
  ProducerHot hot;
  WaitBlock wait;
  RegistryBlock registry;
  SupersedeBlock supersede;
};
static_assert(sizeof(TopicHeader) == 1024);
static_assert(offsetof(TopicHeader, producer) == 384);
static_assert(offsetof(TopicHeader, hot) == 512);
static_assert(offsetof(TopicHeader, wait) == 640);
static_assert(offsetof(TopicHeader, registry) == 768);
static_assert(offsetof(TopicHeader, supersede) == 896);
static_assert(offsetof(TopicHeader, hot) - offsetof(TopicHeader, producer) >= kFalseSharing,
              "attach/takeover writes must not disturb the publish line");
static_assert(offsetof(TopicHeader, wait) - offsetof(TopicHeader, hot) >= kFalseSharing,
              "sleeping consumers write the wait line; it must not share the producer's line");

// One subscriber. All fields but `state` are written only by the consumer
// that owns the entry; `state` is also CAS-ed to Free by a producer or tool
// that reaps a dead owner, and to Evicted by the producer of a topic with
// eviction (detail/ring.cpp, RingWriter::refresh_limit).
struct alignas(kFalseSharing) ConsumerEntry {
  // W: the consumer (Free -> Claiming(self) -> Active(self) -> Free;
  // Evicted(self) -> Active(self) when it rejoins, Evicted(self) -> Free),
  // reapers (Active(dead) or Evicted(dead) -> Free), the producer
  // (Active(x) -> Evicted(x)), all by CAS. R: producer (gating scan), tools,
  // the consumer itself on eviction topics (once per poll).
  std::atomic<std::uint64_t> state;
  // Last sequence this consumer has finished with. W: consumer, release,
  // batched (publishes "my reads of slots <= cursor are done").
  // R: producer, acquire, during a gating scan (reliable topics).
  std::atomic<std::uint64_t> cursor;
  // Messages lost to lapping. W: consumer, relaxed (diagnostic). R: tools.
  std::atomic<std::uint64_t> drops;
  // Sequence of the first message this consumer was due. W: consumer at join.
  std::atomic<std::uint64_t> joined_seq;
  // Wall-clock ns of the consumer's last sign of life. W: consumer, relaxed.
  std::atomic<std::int64_t> heartbeat_ns;
  // Messages handed to handlers. W: consumer, relaxed, batched. R: tools.
  std::atomic<std::uint64_t> delivered;
  // W: consumer at join. R: tools.
  std::atomic<std::uint32_t> pid;
  // kConsumerSleeping while this consumer is counted in its topic's
  // WaitBlock::sleepers. W: consumer (set before counting in, cleared after
  // counting out). R: producer auditing a sleeper count a dead consumer left
  // raised (RingWriter::audit_sleepers).
  std::atomic<std::uint32_t> flags;
  AtomicName<32> name;
};
static_assert(sizeof(ConsumerEntry) == 128);
inline constexpr std::uint32_t kConsumerSleeping = 1;
static_assert(offsetof(ConsumerEntry, cursor) == 8);

// The slot header. The payload follows it in the same slot.
//
// `seq` is a seqlock word for message n (n >= 1):
//    2n      message n is committed and complete
//    2n + 1  message n is being written (claimed, not committed)
//    0       never written
// A consumer due message n delivers only what it read between two loads
// of seq that both returned 2n (detail/ring.hpp).
struct SlotHeader {
  // W: producer: relaxed 2n+1 then release fence at claim; release 2n at
  // commit. R: consumers, acquire (and a relaxed re-check after the copy).
  std::atomic<std::uint64_t> seq;
  // W: producer before commit, relaxed (ordered by the commit's release).
  std::atomic<std::uint64_t> ts;           // publish time, raw clock units (see clock.hpp)
  std::atomic<std::uint64_t> correlation;  // request/reply id, 0 if none
  std::atomic<std::uint32_t> size;         // payload bytes
  std::atomic<std::uint32_t> producer;     // publishing pid
};
static_assert(sizeof(SlotHeader) == 32);
inline constexpr std::size_t kSlotHeaderBytes = sizeof(SlotHeader);

static_assert(std::is_standard_layout_v<TopicHeader>);
static_assert(std::is_standard_layout_v<ConsumerEntry>);
static_assert(std::is_standard_layout_v<SlotHeader>);

// ============================================================== directory segment

struct DirectoryDescriptor {
  std::uint64_t magic;  // kDirectoryMagic
  // W: creator, once, release, last. R: openers, acquire, first.
  std::atomic<std::uint32_t> layout_version;
  std::uint32_t capacity;  // number of DirectoryEntry
  std::uint64_t segment_bytes;
  std::uint64_t entries_offset;
  std::int64_t created_ns;
  std::uint64_t creator;  // Identity
  char bus[kMaxBusName + 8];
  std::uint8_t reserved[40];
};
static_assert(sizeof(DirectoryDescriptor) == 128);
static_assert(offsetof(DirectoryDescriptor, layout_version) == 8);

// Bus-wide clock calibration (see clock.hpp). `mode`, `base_*` are immutable
// after creation. The anchors are re-anchored from idle paths; each anchor is
// a small seqlock so a reader never uses a half-written one.
struct ClockAnchor {
  // W: the re-anchoring process: odd, fields, even (release). R: converters.
  std::atomic<std::uint64_t> version;
  std::atomic<std::uint64_t> tsc;
  std::atomic<std::int64_t> ns;
  std::atomic<std::uint64_t> ns_per_tick_q32;  // ns per tick, 32.32 fixed point
};
static_assert(sizeof(ClockAnchor) == 32);

// What a slot's `ts` holds on this bus.
enum class ClockMode : std::uint32_t { Wall = 0, Tsc = 1 };

struct alignas(kFalseSharing) ClockBlock {
  std::uint32_t mode;  // ClockMode: Wall = ns since the epoch, Tsc = raw TSC ticks
  std::uint32_t reserved0;
  std::uint64_t base_tsc;  // the first calibration point (frequency baseline)
  std::int64_t base_ns;
  // W: re-anchoring process, release, after writing the other anchor.
  // R: converters, acquire.
  std::atomic<std::uint32_t> current;
  std::uint32_t reserved1;
  // W: a process that re-anchors, by CAS (Free -> Active(self) -> Free); a
  // dead holder is taken over. R: would-be re-anchorers.
  std::atomic<std::uint64_t> updater;
  ClockAnchor anchors[2];
};
static_assert(sizeof(ClockBlock) == 128);

struct alignas(kFalseSharing) Doorbell {
  // W: producers that see sleepers (fetch_add, then FUTEX_WAKE); stopping
  // dispatchers. R: sleeping dispatchers (FUTEX_WAIT).
  std::atomic<std::uint32_t> futex;
  // Unused, zero. Dispatchers sleeping on the doorbell count themselves into
  // each of their topics' WaitBlock::sleepers, which is what producers check.
  std::uint32_t reserved0;
};
static_assert(sizeof(Doorbell) == 128);

struct DirectoryHeader {
  DirectoryDescriptor desc;
  ClockBlock clock;
  Doorbell doorbell;
  std::uint8_t reserved[128];
};
static_assert(sizeof(DirectoryHeader) == 512);
static_assert(offsetof(DirectoryHeader, clock) == 128);
static_assert(offsetof(DirectoryHeader, doorbell) == 256);

struct alignas(kFalseSharing) DirectoryEntry {
  // W: registrant by CAS (Free -> Claiming(self) -> Active(self)); gc
  // (Active -> Free) after removing the topic; anyone may CAS a dead
  // registrant's Claiming(dead) back to Free. R: everyone scanning.
  std::atomic<std::uint64_t> state;
  // W: registrant while Claiming. R: scanners that saw Active (acquire).
  std::atomic<std::int64_t> registered_ns;
  AtomicName<kMaxTopicName + 8> name;
  std::uint8_t reserved[40];
};
static_assert(sizeof(DirectoryEntry) == 128);

// Segment geometry, computed the same way by creator and openers.
struct TopicGeometry {
  std::uint64_t consumers_offset;
  std::uint64_t schema_offset;
  std::uint64_t slots_offset;
  std::uint64_t segment_bytes;
};

[[nodiscard]] constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) noexcept {
  return (v + a - 1) / a * a;
}

[[nodiscard]] constexpr TopicGeometry topic_geometry(std::uint32_t max_consumers,
                                                     std::uint32_t schema_bytes,
                                                     std::uint32_t slot_size,
                                                     std::uint32_t slot_count) noexcept {
  TopicGeometry g{};
  g.consumers_offset = sizeof(TopicHeader);
  g.schema_offset = align_up(
      g.consumers_offset + std::uint64_t{max_consumers} * sizeof(ConsumerEntry), kFalseSharing);
  g.slots_offset = align_up(g.schema_offset + schema_bytes, kPageSize);
  g.segment_bytes = g.slots_offset + std::uint64_t{slot_size} * slot_count;
  return g;
}

[[nodiscard]] constexpr std::uint64_t directory_bytes(std::uint32_t capacity) noexcept {
  return sizeof(DirectoryHeader) + std::uint64_t{capacity} * sizeof(DirectoryEntry);
}

}  // namespace shmbus::detail
