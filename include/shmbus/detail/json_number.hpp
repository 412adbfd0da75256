// shmbus — internal: a double in the fixed notation the JSON codec prints.
//
// The codec writes doubles as FlatBuffers' text generator does (fixed notation, 12 decimals
// for double and 6 for float, trailing zeros trimmed but a whole number keeping ".0"). That is
// std::to_chars(fixed, decimals) with the trim, which takes ~500 instructions per value in
// libstdc++ 12 (Ryu printf with its tables); a double below 2^53 is m * 2^e with m < 2^53, so
// m * 10^decimals < 2^93 fits a 128-bit integer, and the exactly rounded (ties to even) fixed
// value is that product shifted right by -e: a multiplication, a shift and a division. Larger
// magnitudes keep to_chars. tests/schema_test.cpp compares the two over random and edge values.
#pragma once

#include <cstddef>

namespace shmbus::detail {

// Enough for the fixed notation of any finite double (309 digits) plus the decimals.
inline constexpr std::size_t kFixedMaxChars = 400;

// Writes finite `v` (never NaN or infinite) at `out` (room for kFixedMaxChars) with
// `decimals` (6 or 12) decimals, trailing zeros trimmed ("1.5", "2.0", "-0.0"); returns the end.
// Thread safety: pure function.
[[nodiscard]] char* write_fixed(double v, int decimals, char* out) noexcept;

}  // namespace shmbus::detail
