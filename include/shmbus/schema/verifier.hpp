// shmbus — the FlatBuffers verifier for one root type, by reflection.
//
// What every untrusted message (the bridge's inbound side, files, a
// SubscriberOptions::verify subscriber) passes before anything reads it. It
// needs only the binary schema: no JSON parser is built, so it is cheap to
// construct and to keep per topic.
//
// Thread safety: const member functions may run concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmbus/schema/registry.hpp"

namespace shmbus {

namespace detail {
struct VerifierAccess;
}  // namespace detail

class Verifier {
 public:
  // Throws Error(InvalidMessage) if `bfbs` is not a valid binary schema and
  // Error(UnknownType) if it has no table `type_name`.
  Verifier(std::span<const std::uint8_t> bfbs, std::string_view type_name);
  // Error(UnknownType) for a raw type (it has no schema).
  explicit Verifier(const TypeInfo& type);
  Verifier(Verifier&&) noexcept;
  Verifier& operator=(Verifier&&) noexcept;
  ~Verifier();

  [[nodiscard]] const std::string& type_name() const noexcept;
  // The schema's file_identifier if the type is its root type, else "".
  [[nodiscard]] const std::string& file_identifier() const noexcept;

  // True if `message` is a complete, valid buffer of this root type.
  [[nodiscard]] bool verify(std::span<const std::byte> message) const;
  // "" if valid; otherwise why not, as a sentence fragment a person can act
  // on ("it carries file_identifier "ORDR" where shmbus.md.Quote has ...").
  [[nodiscard]] std::string check(std::span<const std::byte> message) const;
  // Names of the root table's scalar, enum and struct fields (deprecated
  // ones left out) that `message` does not store: what its mutate_
  // accessors could not set (a scalar equal to its default is not stored
  // unless the builder had ForceDefaults(true)). `message` must pass check().
  [[nodiscard]] std::vector<std::string> unstored_fields(std::span<const std::byte> message) const;

 private:
  friend struct detail::VerifierAccess;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shmbus
