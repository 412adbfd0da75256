// Reflection helpers shared by schema_registry.cpp and json_codec.cpp
// (library-internal, not installed).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <flatbuffers/reflection.h>

#include "shmbus/schema/verifier.hpp"

namespace shmbus::detail {

// The parsed schema inside a Verifier, for the JSON codec built on it.
struct VerifierAccess {
  static const std::vector<std::uint8_t>& bfbs(const Verifier& v) noexcept;
  static const reflection::Schema& schema(const Verifier& v) noexcept;
  static const reflection::Object& root(const Verifier& v) noexcept;
};

// Verifies `bfbs` as a reflection schema and checks that every type index in
// it is in range, so later walks and flatbuffers::Parser::Deserialize() can
// trust it. `bfbs` must be 8-byte aligned (hold it in a std::vector). Throws
// Error(InvalidMessage) naming `what` (who was handed the bytes).
const reflection::Schema& checked_schema(std::span<const std::uint8_t> bfbs, std::string_view what);

// The object (table or struct) named `name`, or nullptr.
const reflection::Object* find_object(const reflection::Schema& schema,
                                      std::string_view name) noexcept;

// "a, b, c" of the tables (not structs) of `schema`, sorted, for messages.
std::string table_list(const reflection::Schema& schema);

}  // namespace shmbus::detail
