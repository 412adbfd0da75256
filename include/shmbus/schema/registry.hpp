// shmbus — message types and their binary schemas (the schema layer's base).
//
// Every typed topic records the fully qualified name of its FlatBuffers root
// type ("shmbus.md.Quote"), a 64-bit structural hash of that type, and the
// binary schema (.bfbs) of the file that defines it. The library embeds the
// binary schemas of everything in schemas/, so any message on any topic can be
// turned into JSON, and JSON into a message, by reflection — nothing on the
// bus is opaque to the tools. Applications with schemas of their own register
// their .bfbs once with SchemaRegistry::add().
//
// The structural hash covers what decides the wire format of the root type
// and of every type it reaches: names, field ids, field types, struct layout,
// enum values. Comments and attributes that do not change bytes are left out,
// so rebuilding the same schema gives the same hash on any machine.
//
// JSON conversion is in schema/json_codec.hpp, verification without JSON in
// schema/verifier.hpp.
//
// Thread safety: SchemaRegistry is safe to use from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus {

// What a topic records about its message type. Raw (untyped) topics have an
// empty name, hash 0 and no schema.
struct TypeInfo {
  std::string name;                // fully qualified root type, e.g. "shmbus.md.Quote"
  std::uint64_t hash = 0;          // structural hash of the root type (see above)
  std::vector<std::uint8_t> bfbs;  // binary schema of the file defining the type
  std::string file_identifier;     // the schema's file_identifier if the type is that file's
                                   // root_type; "" for other tables (the identifier names the root)

  [[nodiscard]] bool is_raw() const noexcept { return name.empty(); }
  static TypeInfo raw() { return {}; }
};

class SchemaRegistry {
 public:
  // The process-wide registry, preloaded with every schema in schemas/.
  static SchemaRegistry& instance();

  // Registers every root-able table of a binary schema (the output of
  // `flatc --binary --schema`). Throws Error(InvalidMessage) if the bytes are
  // not a valid reflection schema, and Error(SchemaMismatch) if they define a
  // registered type name with another structure; either way nothing is
  // registered. A type that several schemas carry (through `include`) keeps
  // the entry of the file whose root_type it is, else of the file declaring
  // it; references returned by find() stay valid for the life of the process.
  void add(std::span<const std::uint8_t> bfbs);

  // The type named `fully_qualified_name`. Throws Error(UnknownType), naming
  // the type and how to register its schema, if it is not known.
  [[nodiscard]] const TypeInfo& find(std::string_view fully_qualified_name) const;
  [[nodiscard]] bool contains(std::string_view fully_qualified_name) const;

  // Names of every registered table type, sorted.
  [[nodiscard]] std::vector<std::string> type_names() const;

  SchemaRegistry(const SchemaRegistry&) = delete;
  SchemaRegistry& operator=(const SchemaRegistry&) = delete;
  ~SchemaRegistry();

 private:
  SchemaRegistry();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The TypeInfo of a generated FlatBuffers table type T (flatc generates
// T::GetFullyQualifiedName() with --gen-name-strings, which the build uses).
template <class T>
const TypeInfo& type_of() {
  static const TypeInfo& info = SchemaRegistry::instance().find(T::GetFullyQualifiedName());
  return info;
}

// Structural hash of `type_name` inside the binary schema `bfbs`. Throws
// Error(UnknownType) if the schema has no such table.
[[nodiscard]] std::uint64_t schema_hash(std::span<const std::uint8_t> bfbs,
                                        std::string_view type_name);

}  // namespace shmbus
