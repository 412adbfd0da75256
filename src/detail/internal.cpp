#include "internal.hpp"

#include <unistd.h>

#include <cstdio>

#include "shmbus/detail/layout.hpp"
#include "shmbus/detail/segments.hpp"

namespace shmbus::detail {

bool take_claim(std::atomic<std::uint64_t>& word, std::uint64_t mine, std::uint64_t& seen) {
  seen = word.load(std::memory_order_acquire);
  for (;;) {
    if (seen == 0) {
      // acq_rel: acquire what a previous owner published before freeing the
      // word; release is for symmetry with takeovers (nothing precedes it).
      if (word.compare_exchange_weak(seen, mine, std::memory_order_acq_rel,
                                     std::memory_order_acquire))
        return true;
      continue;
    }
    if (claim_owner(seen) == claim_owner(mine) || !is_dead(claim_owner(seen))) return false;
    // The owner died: take the word over from exactly that dead owner. If
    // someone else got there first, the CAS fails and we look again.
    if (word.compare_exchange_strong(seen, mine, std::memory_order_acq_rel,
                                     std::memory_order_acquire))
      return true;
  }
}

std::string participant_name(std::string_view requested) {
  if (!requested.empty()) {
    validate_participant_name(requested);
    return std::string(requested);
  }
  std::string name = process_name(static_cast<std::uint32_t>(::getpid()));
  for (char& c : name) {
    if (c == ' ' || static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e)
      c = '_';
  }
  if (name.empty()) name = "pid-" + std::to_string(::getpid());
  if (name.size() > kMaxParticipantName) name.resize(kMaxParticipantName);
  return name;
}

std::string hex64(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace shmbus::detail
