// shmbus — garbage collection of dead shared-memory segments.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus {

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
  std::string segment;      // name in /dev/shm
  std::string bus;          // "" when not known
  std::string topic;        // topics and directory entries
  std::uint64_t bytes = 0;  // size of the segment (0 for directory entries)
  std::string reason;       // why it was (or would be) removed, or why it was kept
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
