// Library-internal helpers shared by the .cpp files (not installed).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "shmbus/detail/process.hpp"

namespace shmbus::detail {

// Takes a claim word for this process: Free -> `mine`, or, if the word's
// owner process is dead, (its word) -> `mine`. Returns true on success;
// otherwise `seen` holds the live owner's word. Slow path (may read /proc).
bool take_claim(std::atomic<std::uint64_t>& word, std::uint64_t mine, std::uint64_t& seen);

// The name to register a participant under: `requested` if given
// (validated), else this process's command name.
std::string participant_name(std::string_view requested);

// "0x1234abcd..." for hashes in messages.
std::string hex64(std::uint64_t v);

}  // namespace shmbus::detail
