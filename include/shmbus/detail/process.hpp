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
enum class ClaimState : std::uint64_t { Free = 0, Claiming = 1, Active = 2 };

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
// (it costs a getpid() system call).
[[nodiscard]] Identity self_identity();

// The identity of process `pid` now, or 0 if there is no such live process.
[[nodiscard]] Identity identity_of(std::uint32_t pid);

// True if the process named by `id` still runs: same pid, same start time,
// and not a zombie. Costs a /proc read (a few microseconds): slow path only.
[[nodiscard]] bool is_alive(Identity id);

// The command name of a live pid ("feed-handler"), or "" if unknown.
[[nodiscard]] std::string process_name(std::uint32_t pid);

}  // namespace shmbus::detail
