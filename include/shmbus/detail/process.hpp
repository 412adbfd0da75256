// Process identity and liveness, for ownership words in shared memory.
//
// A pid alone is not an identity: pids are reused. An Identity packs the pid
// with the process start time (clock ticks since boot, /proc/<pid>/stat field
// 22), so a later process that gets the same pid is not mistaken for a dead
// owner. It fits one 64-bit word, which lets ownership be taken and handed
// over with a single compare-and-swap:
//
//   63  62 61                 40 39                                 0
//  +------+---------------------+------------------------------------+
//  | state|  pid (22 bits)      |  start time, ticks (low 40 bits)   |
//  +------+---------------------+------------------------------------+
//
// pid_max on Linux is at most 2^22; 2^40 ticks at 100 Hz is 348 years.
// The two state bits let the same word say "being set up by X" (Claiming)
// or "owned by X" (Active); 0 means free.
//
// Liveness is tri-state. A process is Dead only on proof: kill(pid, 0) says
// there is no such pid, or /proc shows the pid with another start time or
// as a zombie. When /proc cannot be read (EMFILE/ENFILE: descriptors
// exhausted; EACCES/EPERM; /proc mounted with hidepid, which hides other
// users' processes as if they did not exist while kill() still sees them;
// no /proc at all) the answer is Unknown, and Unknown never takes over a
// producer, reaps a consumer, frees a directory entry, takes over the clock
// updater or lets gc remove anything: callers act on Dead only.
//
// Limits: processes sharing a bus must share a pid namespace (one host, one
// container); a process in another pid namespace would be judged dead.
#pragma once

#include <cstdint>
#include <string>

namespace shmbus::detail {

using Identity = std::uint64_t;

inline constexpr unsigned kIdentityPidShift = 40;
inline constexpr std::uint64_t kIdentityStartMask = (std::uint64_t{1} << 40) - 1;
inline constexpr std::uint64_t kIdentityPidMask = (std::uint64_t{1} << 22) - 1;
inline constexpr unsigned kClaimStateShift = 62;
inline constexpr std::uint64_t kIdentityMask = (std::uint64_t{1} << kClaimStateShift) - 1;

// States of a claim word (the two top bits).
// Evicted: only a consumer entry, whose live owner held a reliable producer
// up for too long (detail/ring.cpp); it gates nothing until its owner rejoins.
enum class ClaimState : std::uint64_t { Free = 0, Claiming = 1, Active = 2, Evicted = 3 };

[[nodiscard]] constexpr std::uint64_t make_claim(ClaimState s, Identity id) noexcept {
  return (static_cast<std::uint64_t>(s) << kClaimStateShift) | (id & kIdentityMask);
}
[[nodiscard]] constexpr ClaimState claim_state(std::uint64_t word) noexcept {
  return static_cast<ClaimState>(word >> kClaimStateShift);
}
[[nodiscard]] constexpr Identity claim_owner(std::uint64_t word) noexcept {
  return word & kIdentityMask;
}
[[nodiscard]] constexpr std::uint32_t identity_pid(Identity id) noexcept {
  return static_cast<std::uint32_t>((id >> kIdentityPidShift) & kIdentityPidMask);
}

// This process's identity. Recomputed after fork(). Not for the hot path
// (it costs a getpid() system call). 0 if /proc/self/stat cannot be read
// (descriptors exhausted): callers that take ownership use
// require_self_identity().
[[nodiscard]] Identity self_identity();
// self_identity(), or Error(SystemError) saying why it is unknown.
[[nodiscard]] Identity require_self_identity();

// The identity of process `pid` now, or 0 if there is no such live process.
[[nodiscard]] Identity identity_of(std::uint32_t pid);

enum class Liveness : std::uint8_t { Alive, Dead, Unknown };

// Whether the process named by `id` still runs: same pid, same start time,
// and not a zombie. Costs a kill(2) and a /proc read (a few microseconds):
// slow path only. Identity 0 (nobody) is Dead.
[[nodiscard]] Liveness liveness(Identity id);
// liveness(id) == Alive: for display and for "someone is on it" checks.
[[nodiscard]] inline bool is_alive(Identity id) {
  return liveness(id) == Liveness::Alive;
}
// liveness(id) == Dead: the only answer that allows reaping or a takeover.
[[nodiscard]] inline bool is_dead(Identity id) {
  return liveness(id) == Liveness::Dead;
}
// How often liveness() answered Unknown in this process (tests, diagnostics).
[[nodiscard]] std::uint64_t liveness_unknown_count() noexcept;

// The command name of a live pid ("feed-handler"), or "" if unknown.
[[nodiscard]] std::string process_name(std::uint32_t pid);

}  // namespace shmbus::detail
