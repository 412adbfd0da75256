// shmbus — byte and text encodings that tools and bridges share: base64 and
// hex for raw payloads, JSON string quoting, UTC timestamps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus {

// Standard alphabet, with padding.
[[nodiscard]] std::string base64_encode(std::span<const std::byte> bytes);
// nullopt if `text` is not base64 (standard alphabet, padding optional,
// trailing blanks tolerated).
[[nodiscard]] std::optional<std::vector<std::byte>> base64_decode(std::string_view text);
// Lower-case pairs, no separators.
[[nodiscard]] std::string hex_encode(std::span<const std::byte> bytes);
// nullopt unless `text` is pairs of hex digits (blanks, ':' and "0x" tolerated).
[[nodiscard]] std::optional<std::vector<std::byte>> hex_decode(std::string_view text);

// `s` as a JSON string literal, quotes included (control characters and
// invalid UTF-8 escaped, so the result is always valid JSON).
[[nodiscard]] std::string json_quote(std::string_view s);

// "2025-06-01T12:03:07.123456789Z" for ns since the epoch.
[[nodiscard]] std::string utc_iso(std::int64_t ns);

}  // namespace shmbus
