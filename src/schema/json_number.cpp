// A double in the codec's fixed notation (detail/json_number.hpp).
//
//   v = m * 2^e (m < 2^53)        e >= 0: v is a whole number: its digits and ".0"
//   e < 0: q = round(m * 10^d / 2^-e), ties to even      (m * 10^d < 2^113: 128-bit)
//          = v * 10^d exactly rounded, as to_chars(fixed, d) and printf("%.*f") round
//   print q / 10^d, '.', the d digits of q % 10^d without trailing zeros ("0" if none)
#include "shmbus/detail/json_number.hpp"

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace shmbus::detail {

namespace {

__extension__ typedef unsigned __int128 u128;

constexpr std::uint64_t kPow10[] = {1ULL,
                                    10ULL,
                                    100ULL,
                                    1000ULL,
                                    10000ULL,
                                    100000ULL,
                                    1000000ULL,
                                    10000000ULL,
                                    100000000ULL,
                                    1000000000ULL,
                                    10000000000ULL,
                                    100000000000ULL,
                                    1000000000000ULL,
                                    10000000000000ULL,
                                    100000000000000ULL,
                                    1000000000000000ULL,
                                    10000000000000000ULL,
                                    100000000000000000ULL,
                                    1000000000000000000ULL};

// to_chars' fixed notation, trimmed: the general case (and the reference of the fast one).
char* fixed_by_to_chars(double v, int decimals, char* out) noexcept {
  const auto r = std::to_chars(out, out + kFixedMaxChars, v, std::chars_format::fixed, decimals);
  std::string_view s(out, static_cast<std::size_t>(r.ptr - out));
  // GenerateText's trim: no trailing zeros, but a whole number keeps ".0".
  const auto last = s.find_last_not_of('0');
  if (last != std::string_view::npos) s = s.substr(0, last + (s[last] == '.' ? 2 : 1));
  return out + s.size();
}

}  // namespace

char* write_fixed(double v, int decimals, char* out) noexcept {
  if (decimals < 1 || decimals > 18) return fixed_by_to_chars(v, decimals, out);
  std::uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  const bool negative = (bits >> 63) != 0;
  const int biased = static_cast<int>((bits >> 52) & 0x7ff);
  std::uint64_t m = bits & ((std::uint64_t{1} << 52) - 1);
  int e = -1074;  // subnormal (and zero)
  if (biased != 0) {
    m |= std::uint64_t{1} << 52;
    e = biased - 1075;
  }
  std::uint64_t whole = 0;
  std::uint64_t frac = 0;
  if (e >= 0) {
    if (e > 11) return fixed_by_to_chars(v, decimals, out);  // >= 2^64: rare, to_chars
    whole = m << e;
  } else {
    const std::uint64_t scale = kPow10[decimals];
    const u128 n = static_cast<u128>(m) * scale;
    const int shift = -e;
    u128 q = 0;
    if (shift < 128) {  // else n / 2^shift < 2^-14: rounds to 0
      q = n >> shift;
      const u128 rest = n - (q << shift);
      const u128 half = static_cast<u128>(1) << (shift - 1);
      if (rest > half || (rest == half && (q & 1) != 0)) ++q;
    }
    whole = static_cast<std::uint64_t>(q / scale);
    frac = static_cast<std::uint64_t>(q % scale);
  }
  if (negative) *out++ = '-';
  out = std::to_chars(out, out + 24, whole).ptr;
  *out++ = '.';
  if (frac == 0) {
    *out++ = '0';
    return out;
  }
  int digits = decimals;
  while (frac % 10 == 0) {  // trailing zeros are not written
    frac /= 10;
    --digits;
  }
  for (int i = digits - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + frac % 10);
    frac /= 10;
  }
  return out + digits;
}

}  // namespace shmbus::detail
