// shmbus — JSON <-> FlatBuffer by reflection over a binary schema.
//
// Thread safety: a JsonCodec is not thread-safe: give each thread its own,
// built from the registry entry (building one loads the schema, some tens of
// microseconds, so keep it rather than rebuild it per message).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmbus/schema/registry.hpp"
#include "shmbus/schema/verifier.hpp"

namespace shmbus {

// JSON <-> FlatBuffer for one root type, by reflection over its binary schema.
//
// to_json() verifies the buffer with the FlatBuffers verifier before reading a
// byte of it and throws Error(InvalidMessage) if it fails (too short, wrong
// file_identifier, corrupt, or a string that is not UTF-8). from_json() throws
// Error(InvalidJson) with the line, the field and the reason when the text
// does not fit the schema (unknown field, wrong type, malformed JSON,
// required field missing, integer out of range).
//
// JSON has no NaN or infinity: they are written as the strings "NaN",
// "Infinity", "-Infinity" and read back as numbers. FlatBuffers 2.0.8 prints
// doubles with 12 decimals, so a double round-trips through JSON to within
// 5e-13 (exactly for prices and quantities written with at most 12 decimals).
class JsonCodec {
 public:
  JsonCodec(std::span<const std::uint8_t> bfbs, std::string_view type_name);
  explicit JsonCodec(const TypeInfo& type);
  JsonCodec(JsonCodec&&) noexcept;
  JsonCodec& operator=(JsonCodec&&) noexcept;
  ~JsonCodec();

  [[nodiscard]] const std::string& type_name() const noexcept;

  // True if `message` is a valid buffer of this root type (verifier).
  [[nodiscard]] bool verify(std::span<const std::byte> message) const;
  [[nodiscard]] const Verifier& verifier() const noexcept;

  // One-line JSON (strict: quoted keys, no trailing commas).
  [[nodiscard]] std::string to_json(std::span<const std::byte> message) const;
  // The same JSON without the blanks outside strings ({"symbol":"AAPL","bid_px":1.5}),
  // appended to `out`: what the envelope carries. Same checks and errors as to_json(); the
  // fast path for the schemas it handles (no number goes through a stream).
  void append_json(std::span<const std::byte> message, std::string& out) const;

  // A finished FlatBuffer (with the schema's file_identifier, if any).
  [[nodiscard]] std::vector<std::byte> from_json(std::string_view json) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shmbus
