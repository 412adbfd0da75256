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

#include "shmbus/bus.hpp"
#include "shmbus/topic.hpp"

namespace shmbus {

struct ProducerSnapshot {
  bool attached = false;   // an owner is recorded (alive or dead)
  bool alive = false;
  std::string name;
  std::uint32_t pid = 0;
  std::uint32_t takeovers = 0;
  std::int64_t attached_ns = 0;
};

struct ConsumerSnapshot {
  std::uint32_t index = 0;   // entry in the consumer table
  std::string name;
  std::uint32_t pid = 0;
  bool alive = false;
  bool joining = false;      // claimed its entry, not yet active
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
  std::string type_name;     // "" for raw topics
  std::uint64_t schema_hash = 0;
  Policy policy = Policy::Lossy;
  std::uint32_t slot_size = 0;
  std::uint32_t slot_count = 0;
  std::uint32_t max_payload = 0;
  std::uint32_t max_consumers = 0;
  std::uint64_t segment_bytes = 0;
  std::int64_t created_ns = 0;
  std::uint64_t head = 0;    // last committed sequence = messages published
  std::int64_t last_publish_ns = 0;  // publish time of message `head` (0 if none)
  std::uint64_t too_large = 0;
  std::uint64_t would_block = 0;
  std::uint64_t reaped_consumers = 0;
  ProducerSnapshot producer;
  std::vector<ConsumerSnapshot> consumers;  // active and joining entries
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

// ------------------------------------------------------------------ garbage collection
//
// Shared memory outlives the processes that use it: a bus whose programs
// all exited (or crashed) stays in /dev/shm until someone removes it.
// collect_garbage() removes what nobody can be using any more, and only that:
//
//  * a topic segment, when its producer is absent or dead, every consumer
//    entry is free or dead, nobody is registering it in the directory, and
//    the process that created it has exited (the creator counts as a
//    participant: between creating a topic and attaching to it a program
//    holds no role yet). Its directory entry is freed first (Active -> Free),
//    then the segment is unlinked;
//  * a directory entry whose topic segment is missing (removed by hand), or
//    that a dead process left half-registered;
//  * a bus directory, when no topic segment of the bus is left, its creator
//    has exited, and no live process is registering a topic in it;
//  * a "shmbus-tmp.<pid>.<n>" temporary, when process <pid> is gone (it is
//    what a creator that crashed before publishing its segment leaves).
//    With a bus given, only temporaries whose header already names that bus.
//
// Dead means: no process with the recorded pid and start time runs (a
// zombie is dead). A segment that cannot be parsed (not shmbus, truncated,
// another layout version) is reported and left alone: nothing says who uses
// it. Everything else is left alone with the reason. Each removal re-checks
// liveness just before it unlinks.
//
// Limits: a process that opens a dead topic at the very moment it is
// removed keeps working on the unlinked memory, which nobody else sees (the
// same as after Bus::remove); run gc when the bus's programs are stopped or
// known dead. Processes in another pid namespace look dead (see
// detail/process.hpp).
//
// Thread safety: safe from any thread; concurrent collections race only to
// remove the same thing, and one of them reports it.

enum class GcKind : std::uint8_t {
  Directory,       // "shmbus.<bus>"
  Topic,           // "shmbus.<bus>.<topic>"
  DirectoryEntry,  // a topic's entry in its bus directory
  Temporary,       // "shmbus-tmp.<pid>.<n>"
  Unknown,         // a name under the shmbus prefixes that is none of the above
};
[[nodiscard]] std::string_view to_string(GcKind kind) noexcept;

struct GcItem {
  GcKind kind = GcKind::Unknown;
  std::string segment;     // name in /dev/shm
  std::string bus;         // "" when not known
  std::string topic;       // topics and directory entries
  std::uint64_t bytes = 0; // size of the segment (0 for directory entries)
  std::string reason;      // why it was (or would be) removed, or why it was kept
};

struct GcReport {
  bool dry_run = false;
  std::vector<GcItem> removed;  // removed (with dry_run: what would be removed)
  std::vector<GcItem> kept;     // left alone, each with its reason
};

// Collects the garbage of `bus` (every bus and temporary on the host when
// nullopt). With dry_run, changes nothing and reports what it would do.
// Throws Error(InvalidName) for a malformed bus name, Error(NoSuchBus) when
// `bus` has no segment at all.
[[nodiscard]] GcReport collect_garbage(std::optional<std::string_view> bus, bool dry_run = false);

}  // namespace shmbus
