#include "shmbus/bridge/net/utf8.hpp"

#include <cstring>

namespace shmbus::bridge::net {

bool Utf8Validator::feed(std::string_view bytes) noexcept {
  if (failed_) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto* const end = p + bytes.size();
  while (p != end) {
    if (need_ > 0) {
      const unsigned b = *p++;
      if (b < lo_ || b > hi_) {
        failed_ = true;
        return false;
      }
      --need_;
      lo_ = 0x80;
      hi_ = 0xBF;
      continue;
    }
    // Between characters: skip ASCII a word at a time.
    constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;
    while (end - p >= 8) {
      std::uint64_t word = 0;
      std::memcpy(&word, p, sizeof word);
      if ((word & kHighBits) != 0) break;
      p += 8;
    }
    if (p == end) break;
    const unsigned b = *p++;
    if (b < 0x80) continue;
    if (b < 0xC2) {  // a continuation byte with no lead, or C0/C1 (overlong two-byte forms)
      failed_ = true;
      return false;
    }
    if (b < 0xE0) {
      need_ = 1;
    } else if (b < 0xF0) {
      need_ = 2;
      if (b == 0xE0) lo_ = 0xA0;  // E0 80-9F: overlong three-byte forms
      if (b == 0xED) hi_ = 0x9F;  // ED A0-BF: surrogates U+D800-U+DFFF
    } else if (b < 0xF5) {
      need_ = 3;
      if (b == 0xF0) lo_ = 0x90;  // F0 80-8F: overlong four-byte forms
      if (b == 0xF4) hi_ = 0x8F;  // F4 90-BF: above U+10FFFF
    } else {                      // F5-FF: above U+10FFFF or never valid
      failed_ = true;
      return false;
    }
  }
  return true;
}

bool is_valid_utf8(std::string_view bytes) noexcept {
  Utf8Validator v;
  return v.feed(bytes) && v.finish();
}

}  // namespace shmbus::bridge::net
