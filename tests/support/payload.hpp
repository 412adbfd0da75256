// Self-checking payloads for tests and the test helper process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace shmbus::test {

// A payload that proves its own integrity: value, then a checksum of it,
// then filler derived from both. A torn or stale read fails check_payload.
inline void fill_payload(std::byte* p, std::size_t n, std::uint64_t value) {
  std::uint64_t x = value * 0x9E3779B97F4A7C15ULL + 1;
  std::memcpy(p, &value, 8);
  std::memcpy(p + 8, &x, 8);
  for (std::size_t i = 16; i < n; ++i) p[i] = static_cast<std::byte>((x >> ((i % 8) * 8)) ^ i);
}
inline bool check_payload(std::span<const std::byte> d, std::uint64_t& value) {
  if (d.size() < 16) return false;
  std::uint64_t x = 0;
  std::memcpy(&value, d.data(), 8);
  std::memcpy(&x, d.data() + 8, 8);
  if (x != value * 0x9E3779B97F4A7C15ULL + 1) return false;
  for (std::size_t i = 16; i < d.size(); ++i)
    if (d[i] != static_cast<std::byte>((x >> ((i % 8) * 8)) ^ i)) return false;
  return true;
}

// Burns CPU for a while (a slow handler), without the compiler removing it.
inline void burn(int iterations) {
  for (int k = 0; k < iterations; ++k) asm volatile("" ::: "memory");
}

}  // namespace shmbus::test
