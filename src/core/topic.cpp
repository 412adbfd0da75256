#include "shmbus/core/topic.hpp"
#include "shmbus/core/internals.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <new>
#include <thread>

#include "detail/internal.hpp"
#include "shmbus/core/bus.hpp"
#include "shmbus/detail/fence.hpp"
#include "shmbus/detail/segments.hpp"
#include "shmbus/detail/wait.hpp"
#include "shmbus/error.hpp"

namespace shmbus {

using namespace detail;

std::string_view to_string(Policy p) noexcept {
  switch (p) {
    case Policy::Lossy:
      return "lossy";
    case Policy::Reliable:
      return "reliable";
  }
  return "unknown";
}

namespace {

std::string where(std::string_view bus, std::string_view topic) {
  return "topic '" + std::string(topic) + "' on bus '" + std::string(bus) + "'";
}

void validate_config(const TopicConfig& c, std::string_view bus, std::string_view topic) {
  const auto bad = [&](const std::string& what) {
    throw Error(Errc::InvalidArgument, where(bus, topic) + ": " + what);
  };
  if (c.slot_size < kMinSlotSize || c.slot_size > kMaxSlotSize || c.slot_size % kCacheLine != 0)
    bad("slot_size " + std::to_string(c.slot_size) + " must be a multiple of 64 in [64, 1048576]");
  if (c.slot_count < kMinSlotCount || c.slot_count > kMaxSlotCount ||
      !std::has_single_bit(c.slot_count))
    bad("slot_count " + std::to_string(c.slot_count) + " must be a power of two in [2, 16777216]");
  if (std::uint64_t{c.slot_size} * c.slot_count > kMaxRingBytes)
    bad("ring of " + std::to_string(c.slot_count) + " x " + std::to_string(c.slot_size) +
        " bytes exceeds the 4 GiB limit");
  if (c.max_consumers == 0 || c.max_consumers > kMaxConsumers)
    bad("max_consumers " + std::to_string(c.max_consumers) + " must be in [1, 1024]");
  if (c.policy != Policy::Lossy && c.policy != Policy::Reliable)
    bad("policy must be Lossy or Reliable");
  if (c.evict_after.count() != 0) {
    if (c.policy != Policy::Reliable)
      bad("evict_after is for reliable topics (a lossy producer is never held up)");
    if (c.evict_after.count() < 0 ||
        static_cast<std::uint64_t>(c.evict_after.count()) < kMinEvictAfterNs ||
        static_cast<std::uint64_t>(c.evict_after.count()) > kMaxEvictAfterNs)
      bad("evict_after " + std::to_string(c.evict_after.count()) +
          " ns must be 0 (off) or in [1 ms, 1 h]");
  }
  if (c.type.name.size() > kMaxTypeName)
    bad("type name '" + c.type.name + "' is longer than 127 characters");
  if (c.type.bfbs.size() > kMaxSchemaBytes) bad("binary schema is larger than 16 MiB");
  if (c.type.file_identifier.size() > 4)
    bad("file_identifier '" + c.type.file_identifier + "' is longer than 4");
}

std::string describe(Policy p, std::uint32_t slot_size, std::uint32_t slot_count,
                     std::uint32_t max_consumers, std::uint64_t evict_after_ns) {
  return "policy " + std::string(to_string(p)) + ", slot_size " + std::to_string(slot_size) +
         ", slot_count " + std::to_string(slot_count) + ", max_consumers " +
         std::to_string(max_consumers) + ", evict_after " +
         (evict_after_ns == 0 ? std::string("off") : std::to_string(evict_after_ns) + " ns");
}

std::uint64_t evict_ns(const TopicConfig& c) {
  return static_cast<std::uint64_t>(c.evict_after.count());
}

std::string type_label(std::string_view name) {
  return name.empty() ? "raw bytes" : std::string(name);
}

// The topic's schema, fixed at open (TopicState::schema_copy). The stored
// bytes are a value from shared memory like any other: a flipped bit must
// never reach the FlatBuffers parser, so they are used only if their
// structural hash is the descriptor's, and the process's own registry
// bytes are preferred when it knows the type with that hash.
std::shared_ptr<const std::vector<std::uint8_t>> fixed_schema(const TopicFacts& f,
                                                              const std::byte* base,
                                                              std::string_view bus,
                                                              std::string_view topic) {
  if (f.type_name.empty()) return std::make_shared<const std::vector<std::uint8_t>>();
  SchemaRegistry& reg = SchemaRegistry::instance();
  if (reg.contains(f.type_name)) {
    const TypeInfo& known = reg.find(f.type_name);
    if (known.hash == f.schema_hash)
      return std::make_shared<const std::vector<std::uint8_t>>(known.bfbs);
  }
  const auto* p = reinterpret_cast<const std::uint8_t*>(base + f.schema_offset);
  auto copy = std::make_shared<std::vector<std::uint8_t>>(p, p + f.schema_bytes);
  std::string why;
  try {
    const std::uint64_t h = schema_hash(*copy, f.type_name);
    if (h == f.schema_hash) return copy;
    why = "its structural hash is " + hex64(h) + ", the topic says " + hex64(f.schema_hash);
  } catch (const Error& e) {
    why = e.what();
  }
  throw Error(Errc::ForeignSegment,
              where(bus, topic) + ": the binary schema stored in its segment is damaged (" + why +
                  "); register the type's schema in this process (SchemaRegistry::add) to use it, "
                  "or recreate the topic");
}

// Checks a mapped topic segment before anything in it is trusted, and keeps
// the checked copy of its descriptor (detail/segments.hpp).
std::shared_ptr<TopicState> make_state(Segment seg, const std::shared_ptr<DirectoryState>& dir,
                                       std::string_view topic) {
  Checked<TopicFacts> checked = check_topic_segment(seg.data(), seg.size(), dir->bus, topic);
  if (!checked) {
    const std::string file = shm_path(seg.name());
    const Defect& d = checked.defect;
    // gc leaves segments it cannot parse alone (nothing says who uses them):
    // the way out is to remove the file once its processes are stopped.
    const bool foreign = d.reason.rfind("it is not", 0) == 0;
    std::string what =
        foreign ? file + d.reason.substr(2)
                : where(dir->bus, topic) + ": segment " + file + " cannot be used: " + d.reason;
    if (d.code == Errc::VersionMismatch)
      what += "; stop its processes and remove it (rm " + file +
              "), or run programs built against the same shmbus";
    else if (foreign)
      what += "; something else created it — remove it or use another topic name";
    else
      what += "; once no process uses it, remove it: rm " + file;
    throw Error(d.code, what);
  }
  // A topic segment of a bus is created by the bus's user (or, on a
  // group-shared bus, by a member): one owned by anyone else was planted.
  const auto me = static_cast<std::uint32_t>(::geteuid());
  if (seg.writable() && seg.owner_uid() != me && seg.owner_uid() != dir->segment.owner_uid() &&
      !dir->allow_other_owner) {
    throw Error(Errc::PermissionDenied,
                where(dir->bus, topic) + ": segment " + shm_path(seg.name()) + " is owned by uid " +
                    std::to_string(seg.owner_uid()) + ", neither this process's user (uid " +
                    std::to_string(me) + ") nor the bus's (uid " +
                    std::to_string(dir->segment.owner_uid()) +
                    "): refusing to use it; remove it, or set BusOptions::allow_other_owner for a "
                    "shared bus");
  }
  const TopicFacts& f = *checked.facts;
  auto st = std::make_shared<TopicState>();
  auto* base = static_cast<std::byte*>(seg.data());
  st->dir = dir;
  st->header = std::launder(reinterpret_cast<TopicHeader*>(base));
  st->consumers = std::launder(reinterpret_cast<ConsumerEntry*>(base + f.consumers_offset));
  st->slots = base + f.slots_offset;
  st->schema_copy = fixed_schema(f, base, dir->bus, topic);
  st->schema_bytes = {st->schema_copy->data(), st->schema_copy->size()};
  st->bus = dir->bus;
  st->name = std::string(topic);
  st->type_name = f.type_name;
  st->file_identifier = f.file_identifier;
  st->schema_hash = f.schema_hash;
  st->policy = f.policy == PolicyCode::Reliable ? Policy::Reliable : Policy::Lossy;
  st->slot_size = f.slot_size;
  st->slot_count = f.slot_count;
  st->max_consumers = f.max_consumers;
  st->evict_after_ns = f.evict_after_ns;
  st->segment_bytes = f.segment_bytes;
  st->created_ns = f.created_ns;
  st->provisional = (f.flags & kTopicProvisional) != 0;
  st->clock = dir->clock.get();
  st->doorbell = &dir->header->doorbell;
  st->ring.header = st->header;
  st->ring.consumers = st->consumers;
  st->ring.slots = st->slots;
  st->ring.doorbell = st->doorbell;
  st->ring.max_consumers = f.max_consumers;
  st->ring.slot_size = f.slot_size;
  st->ring.slot_count = f.slot_count;
  st->ring.reliable = st->policy == Policy::Reliable;
  st->ring.evict_after_ns = f.evict_after_ns;
  st->segment = std::move(seg);
  return st;
}

std::shared_ptr<TopicState> open_state(const std::shared_ptr<DirectoryState>& dir,
                                       std::string_view topic, Access access) {
  auto seg = Segment::open(topic_segment_name(dir->bus, topic), access);
  if (!seg) return nullptr;
  return make_state(std::move(*seg), dir, topic);
}

void initialise(void* p, const TopicConfig& c, const TopicGeometry& g, std::string_view bus,
                std::string_view topic, bool provisional) {
  auto* base = static_cast<std::byte*>(p);
  auto* h = new (p) TopicHeader();
  for (std::uint32_t i = 0; i < c.max_consumers; ++i)
    new (base + g.consumers_offset + i * sizeof(ConsumerEntry)) ConsumerEntry();
  for (std::uint64_t i = 0; i < c.slot_count; ++i)
    new (base + g.slots_offset + i * c.slot_size) SlotHeader();
  if (!c.type.bfbs.empty())
    std::memcpy(base + g.schema_offset, c.type.bfbs.data(), c.type.bfbs.size());
  auto& d = h->desc;
  d.magic = kTopicMagic;
  d.policy = static_cast<std::uint32_t>(c.policy == Policy::Reliable ? PolicyCode::Reliable
                                                                     : PolicyCode::Lossy);
  d.segment_bytes = g.segment_bytes;
  d.consumers_offset = g.consumers_offset;
  d.schema_offset = g.schema_offset;
  d.slots_offset = g.slots_offset;
  d.schema_bytes = static_cast<std::uint32_t>(c.type.bfbs.size());
  d.slot_size = c.slot_size;
  d.slot_count = c.slot_count;
  d.max_consumers = c.max_consumers;
  d.schema_hash = c.type.hash;
  d.created_ns = Clock::wall_ns();
  d.creator = self_identity();
  c.type.file_identifier.copy(d.file_identifier, 4);
  bus.copy(d.bus, kMaxBusName);
  topic.copy(d.topic, kMaxTopicName);
  c.type.name.copy(d.type_name, kMaxTypeName);
  d.flags = provisional ? kTopicProvisional : 0;
  d.evict_after_ns = evict_ns(c);
  // release: everything above happens-before an opener's acquire of the version.
  d.layout_version.store(kLayoutVersion, std::memory_order_release);
}

void check_match(const TopicState& t, const TopicConfig& c, Match match) {
  const std::string w = where(t.bus, t.name);
  if (match == Match::Exact &&
      (t.policy != c.policy || t.slot_size != c.slot_size || t.slot_count != c.slot_count ||
       t.max_consumers != c.max_consumers || t.evict_after_ns != evict_ns(c))) {
    throw Error(
        Errc::TopicMismatch,
        w + " exists with " +
            describe(t.policy, t.slot_size, t.slot_count, t.max_consumers, t.evict_after_ns) +
            "; you asked for " +
            describe(c.policy, c.slot_size, c.slot_count, c.max_consumers, evict_ns(c)) +
            " — use the same configuration as its creator, or open it with Match::TypeOnly to "
            "accept it");
  }
  if (match == Match::TypeOnly && c.type.is_raw()) return;  // raw access to any topic
  if (t.type_name != c.type.name) {
    throw Error(Errc::TypeMismatch, w + " carries " + type_label(t.type_name) + ", not " +
                                        type_label(c.type.name) +
                                        " — use the topic's type (`bus-inspect schema " + t.bus +
                                        " " + t.name + "` shows it) or another topic");
  }
  if (t.schema_hash != c.type.hash) {
    throw Error(Errc::SchemaMismatch,
                w + " carries " + t.type_name + " with schema hash " + hex64(t.schema_hash) +
                    ", yours is " + hex64(c.type.hash) +
                    ": the programs were built from different versions of the schema — "
                    "rebuild them against the same schemas/");
  }
}

// Lists the topic in the bus directory, exactly once per topic segment. The
// topic's registry word elects the registrant; a registrant that died is
// replaced, so the directory never misses a topic for good.
void ensure_registered(TopicState& t) {
  auto& word = t.header->registry.directory_claim;
  // acquire: pairs with the registrant's release of Active.
  if (claim_state(word.load(std::memory_order_acquire)) == ClaimState::Active) return;
  const Identity self = require_self_identity();
  std::uint64_t seen = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!take_claim(word, make_claim(ClaimState::Claiming, self), seen)) {
    if (claim_state(seen) == ClaimState::Active) return;
    if (claim_owner(seen) == self || std::chrono::steady_clock::now() > deadline)
      return;  // listing only; not fatal
    ::sched_yield();
  }
  DirectoryState& dir = *t.dir;
  const std::uint32_t cap = dir.capacity;
  bool listed = false;
  for (std::uint32_t i = 0; i < cap && !listed; ++i) {
    const DirectoryEntry& e = dir.entries[i];
    listed = claim_state(e.state.load(std::memory_order_acquire)) == ClaimState::Active &&
             e.name.load() == t.name;
  }
  for (std::uint32_t i = 0; i < cap && !listed; ++i) {
    DirectoryEntry& e = dir.entries[i];
    std::uint64_t prev = 0;
    std::uint64_t w = e.state.load(std::memory_order_acquire);
    // Free entries, and entries a dead registrant left half-claimed.
    const bool usable =
        w == 0 || (claim_state(w) == ClaimState::Claiming && is_dead(claim_owner(w)));
    if (!usable) continue;
    if (!take_claim(e.state, make_claim(ClaimState::Claiming, self), prev)) continue;
    e.name.store(t.name);
    e.registered_ns.store(Clock::wall_ns(), std::memory_order_relaxed);
    // release: the name is complete for scanners that acquire Active.
    e.state.store(make_claim(ClaimState::Active, self), std::memory_order_release);
    listed = true;
  }
  if (!listed) {
    word.store(0, std::memory_order_release);
    throw Error(Errc::DirectoryFull, "bus '" + t.bus + "' directory is full (" +
                                         std::to_string(cap) + " topics) and cannot list " +
                                         where(t.bus, t.name) +
                                         "; remove unused topics (`bus-inspect gc " + t.bus +
                                         "`) or create the bus with a larger BusOptions::capacity");
  }
  word.store(make_claim(ClaimState::Active, self), std::memory_order_release);
}

}  // namespace

// ------------------------------------------------------------------ provisional topics
//
// A subscriber that gives no configuration must not fix a topic's geometry:
// start order between processes must not decide whether a system works. So
// a topic created by such a subscriber is provisional (kTopicProvisional),
// and the first participant that gives a configuration defines it:
//
//   definer                                  subscriber of the provisional topic
//   CAS supersede.claim Free -> Claiming     (registered: state Active, seq_cst)
//   seq_cst fence; copy every live Active    load supersede.claim (seq_cst)
//     consumer entry (cursor 0, joined 1)      != 0 while joining: rejoin by name
//     into a new segment built with its      when idle, claim == Active:
//     configuration                            reopen the topic by name, adopt
//   rename(2) it over the topic's name         the entry with its own claim word
//   claim = Active (release); wake sleepers    (or join afresh), free the old one
//
// The Dekker pair (entry store / claim load against claim CAS / entry loads,
// all seq_cst) means a joining subscriber is either copied, or sees the
// claim and joins the new topic itself. Copied consumers gate a reliable
// producer from message 1, so nothing is lost whichever side starts first.
// Only a topic nobody ever produced on is defined this way (no producer has
// attached, head is 0); after that a configuration that differs is
// TopicMismatch as for any topic.
namespace {

bool definable(const TopicState& t, const TopicConfig& c) {
  if (!t.provisional) return false;
  const bool same = t.policy == c.policy && t.slot_size == c.slot_size &&
                    t.slot_count == c.slot_count && t.max_consumers == c.max_consumers &&
                    t.evict_after_ns == evict_ns(c);
  return !same && t.header->producer.owner.load(std::memory_order_acquire) == 0 &&
         t.header->producer.takeovers.load(std::memory_order_relaxed) == 0 &&
         detail::newest_committed(t.ring, std::memory_order_acquire) == 0;
}

void wake_all(TopicState& t) noexcept {
  t.header->wait.futex.fetch_add(1, std::memory_order_release);
  (void)futex_wake_all(t.header->wait.futex);
  t.doorbell->futex.fetch_add(1, std::memory_order_release);
  (void)futex_wake_all(t.doorbell->futex);
}

// Defines provisional topic `old` with `config`; returns the new topic's
// state, or nullptr when another process is defining it (open it again).
std::shared_ptr<TopicState> define(const std::shared_ptr<DirectoryState>& dir, TopicState& old,
                                   const TopicConfig& config, std::string_view name) {
  auto& claim = old.header->supersede.claim;
  const Identity self = self_identity();
  std::uint64_t seen = 0;
  if (!take_claim(claim, make_claim(ClaimState::Claiming, self), seen)) return nullptr;
  // seq_cst: our claim is ordered before the entry loads below (the Dekker
  // pair with joining subscribers described above).
  fence_seq_cst();
  if (!definable(old, config)) {
    claim.store(0, std::memory_order_release);
    return nullptr;  // a producer attached meanwhile: open it again and compare
  }
  try {
    const std::uint32_t schema_bytes = static_cast<std::uint32_t>(config.type.bfbs.size());
    const TopicGeometry g =
        topic_geometry(config.max_consumers, schema_bytes, config.slot_size, config.slot_count);
    auto seg = Segment::create(
        topic_segment_name(dir->bus, name), g.segment_bytes,
        [&](void* p) {
          initialise(p, config, g, dir->bus, name, false);
          auto* base = static_cast<std::byte*>(p);
          auto* h = std::launder(reinterpret_cast<TopicHeader*>(base));
          auto* entries = std::launder(reinterpret_cast<ConsumerEntry*>(base + g.consumers_offset));
          std::uint32_t hwm = 0;
          for (std::uint32_t i = 0; i < old.max_consumers; ++i) {
            const ConsumerEntry& from = old.consumers[i];
            const std::uint64_t w = from.state.load(std::memory_order_seq_cst);
            if (claim_state(w) != ClaimState::Active || is_dead(claim_owner(w))) continue;
            if (i >= config.max_consumers) {
              throw Error(Errc::ConsumerTableFull,
                          where(dir->bus, name) + " has a waiting subscriber in consumer entry " +
                              std::to_string(i) + " but you define it with max_consumers " +
                              std::to_string(config.max_consumers) +
                              "; define it with more consumer entries");
            }
            ConsumerEntry& to = entries[i];
            to.pid.store(from.pid.load(std::memory_order_relaxed), std::memory_order_relaxed);
            to.name.store(from.name.load());
            to.heartbeat_ns.store(from.heartbeat_ns.load(std::memory_order_relaxed),
                                  std::memory_order_relaxed);
            to.cursor.store(0, std::memory_order_relaxed);  // due message 1
            to.joined_seq.store(1, std::memory_order_relaxed);
            to.state.store(w, std::memory_order_relaxed);  // published by the version store
            hwm = i + 1;
          }
          h->registry.consumer_hwm.store(hwm, std::memory_order_relaxed);
          // initialise() released the version already; re-release so the
          // entries above happen-before any opener's acquire of it.
          h->desc.layout_version.store(kLayoutVersion, std::memory_order_release);
        },
        dir->perms, Segment::Publish::Replace);
    auto st = make_state(std::move(*seg), dir, name);
    // release: the replacement is under the name before anyone acts on Active.
    claim.store(make_claim(ClaimState::Active, self), std::memory_order_release);
    wake_all(old);
    return st;
  } catch (...) {
    claim.store(0, std::memory_order_release);
    throw;
  }
}

}  // namespace

Topic Bus::topic(std::string_view name, const TopicConfig& config, Match match) {
  validate_topic_name(name);
  validate_config(config, d_->bus, name);
  if (!d_->segment.writable()) {
    // A read-only bus can only look at topics that exist.
    Topic t = open_topic(name);
    check_match(*detail::Internals::state(t), config, match);
    return t;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (int attempt = 0; attempt < 8 || std::chrono::steady_clock::now() < deadline; ++attempt) {
    if (auto st = open_state(d_, name, Access::ReadWrite)) {
      if (match == Match::Exact && definable(*st, config)) {
        // The type is the waiting subscribers' contract: check it first.
        check_match(*st, config, Match::TypeOnly);
        if (auto defined = define(d_, *st, config, name)) {
          ensure_registered(*defined);
          return Topic(std::move(defined));
        }
        ::sched_yield();  // someone else is defining it: open it again
        continue;
      }
      check_match(*st, config, match);
      ensure_registered(*st);
      return Topic(std::move(st));
    }
    // Created without a configuration (Match::TypeOnly: a subscriber that
    // accepts any geometry): provisional.
    const bool provisional = match == Match::TypeOnly;
    const std::uint32_t schema_bytes = static_cast<std::uint32_t>(config.type.bfbs.size());
    const TopicGeometry g =
        topic_geometry(config.max_consumers, schema_bytes, config.slot_size, config.slot_count);
    auto seg = Segment::create(
        topic_segment_name(d_->bus, name), g.segment_bytes,
        [&](void* p) { initialise(p, config, g, d_->bus, name, provisional); }, d_->perms);
    if (seg) {
      auto st = make_state(std::move(*seg), d_, name);
      try {
        ensure_registered(*st);
      } catch (const Error& e) {
        // We created it and the directory cannot list it: nobody can find
        // it, so it must not stay behind (2,000 refusals left 976 orphans).
        if (e.code() == Errc::DirectoryFull)
          (void)Segment::remove(topic_segment_name(d_->bus, name));
        throw;
      }
      return Topic(std::move(st));
    }
  }
  throw Error(Errc::SystemError, where(d_->bus, name) +
                                     " keeps appearing and disappearing while it is opened; "
                                     "is something removing its segment?");
}

std::uint64_t Topic::head_hint() const noexcept {
  return detail::newest_committed(s_->ring, std::memory_order_relaxed);
}

std::uint32_t Topic::live_consumers_hint() const {
  std::uint32_t n = 0;
  const std::uint32_t hwm = std::min(
      s_->header->registry.consumer_hwm.load(std::memory_order_acquire), s_->max_consumers);
  for (std::uint32_t i = 0; i < hwm; ++i) {
    const std::uint64_t w = s_->consumers[i].state.load(std::memory_order_acquire);
    if (claim_state(w) == ClaimState::Active && !is_dead(claim_owner(w))) ++n;
  }
  return n;
}

bool Topic::producer_gone_hint() const {
  const std::uint64_t w = s_->header->producer.owner.load(std::memory_order_acquire);
  return w == 0 || is_dead(claim_owner(w));
}

bool Bus::remove_topic(std::string_view name) {
  validate_topic_name(name);
  bool removed = false;
  for (std::uint32_t i = 0; i < d_->capacity; ++i) {
    DirectoryEntry& e = d_->entries[i];
    std::uint64_t w = e.state.load(std::memory_order_acquire);
    // CAS from exactly the word seen: a concurrent re-registration wins.
    if (claim_state(w) == ClaimState::Active && e.name.load() == name &&
        e.state.compare_exchange_strong(w, 0, std::memory_order_acq_rel))
      removed = true;
  }
  // Entry first, then the segment (as gc does): a process that re-creates the
  // topic after the unlink finds no stale entry and lists it again.
  removed = Segment::remove(topic_segment_name(d_->bus, name)) || removed;
  return removed;
}

Topic Bus::open_topic(std::string_view name) const {
  validate_topic_name(name);
  const Access access = d_->segment.writable() ? Access::ReadWrite : Access::ReadOnly;
  auto st = open_state(d_, name, access);
  if (!st) {
    std::string known;
    for (const std::string& n : topic_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error(Errc::NoSuchTopic, "no " + where(d_->bus, name) + "; its topics are: " +
                                       (known.empty() ? std::string("(none)") : known));
  }
  if (access == Access::ReadWrite) ensure_registered(*st);
  return Topic(std::move(st));
}

Topic Bus::wait_for_topic(std::string_view name, std::chrono::nanoseconds timeout) const {
  validate_topic_name(name);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::microseconds(100);
  while (!has_topic(name)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      throw Error(
          Errc::Timeout,
          "no " + where(d_->bus, name) + " after waiting " +
              std::to_string(
                  std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
              " ms; start its producer, or check the bus and topic names (`bus-inspect list " +
              d_->bus + "`)");
    }
    std::this_thread::sleep_for(pause);  // a setup step, not a hot path: poll, backing off to 20 ms
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(20));
  }
  return open_topic(name);
}

}  // namespace shmbus
