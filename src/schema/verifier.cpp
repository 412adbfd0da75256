// The verifier: header checks that name what is wrong (length, file
// identifier, root offset), then flatbuffers::Verify by reflection.
#include "shmbus/schema/verifier.hpp"

#include <flatbuffers/reflection.h>

#include <cassert>
#include <cstring>
#include <vector>

#include "schema_internal.hpp"
#include "shmbus/error.hpp"

namespace shmbus {

namespace {

std::string_view view(const flatbuffers::String* s) noexcept {
  return s == nullptr ? std::string_view{} : std::string_view(s->c_str(), s->size());
}

// Printable form of a 4-byte identifier.
std::string printable(std::span<const std::uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const std::uint8_t b : bytes) {
    if (b >= 0x20 && b < 0x7f && b != '"' && b != '\\') {
      out += static_cast<char>(b);
    } else {
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 0xF];
    }
  }
  return out;
}

}  // namespace

struct Verifier::Impl {
  std::string type_name;
  std::vector<std::uint8_t> bfbs;  // owned and 8-byte aligned: the schema is read in place
  const reflection::Schema* schema = nullptr;
  const reflection::Object* root = nullptr;
  std::string file_identifier;

  [[nodiscard]] std::string check(const std::uint8_t* buf, std::size_t size) const {
    constexpr std::size_t kMin = 2 * sizeof(flatbuffers::uoffset_t);
    if (size < kMin)
      return "it is " + std::to_string(size) + " bytes long; a FlatBuffer has at least " +
             std::to_string(kMin) + ". Pass the whole finished buffer";
    if (!file_identifier.empty() &&
        std::memcmp(buf + sizeof(flatbuffers::uoffset_t), file_identifier.data(),
                    file_identifier.size()) != 0)
      return "it carries file_identifier \"" +
             printable(std::span(buf + sizeof(flatbuffers::uoffset_t),
                                 flatbuffers::kFileIdentifierLength)) +
             "\" where " + type_name + " has \"" + file_identifier +
             "\": it is another message type (or not a FlatBuffer); check which type the topic "
             "carries";
    const auto root_offset = flatbuffers::ReadScalar<flatbuffers::uoffset_t>(buf);
    if (root_offset > size - sizeof(flatbuffers::soffset_t) ||
        root_offset % sizeof(flatbuffers::soffset_t) != 0)
      return "its root offset (" + std::to_string(root_offset) + ") points outside the " +
             std::to_string(size) + "-byte buffer; it is truncated or not a FlatBuffer";
    if (!flatbuffers::Verify(*schema, *root, buf, size))
      return "it fails the FlatBuffers verifier: it is truncated, corrupt, or built from another "
             "schema";
    return {};
  }
};

Verifier::Verifier(std::span<const std::uint8_t> bfbs, std::string_view type_name)
    : impl_(std::make_unique<Impl>()) {
  Impl& d = *impl_;
  d.type_name = std::string(type_name);
  d.bfbs.assign(bfbs.begin(), bfbs.end());
  const std::string what = "schema of " + d.type_name;
  d.schema = &detail::checked_schema(d.bfbs, what);
  d.root = detail::find_object(*d.schema, type_name);
  if (d.root == nullptr)
    throw Error(Errc::UnknownType, what + ": the binary schema has no table named \"" +
                                       d.type_name +
                                       "\"; its tables are: " + detail::table_list(*d.schema) +
                                       ". Use the fully qualified name.");
  if (d.root->is_struct())
    throw Error(
        Errc::UnknownType,
        what + ": \"" + d.type_name + "\" is a struct; only a table can be the root of a message.");
  if (d.schema->root_table() == d.root)
    d.file_identifier = std::string(view(d.schema->file_ident()));
}

Verifier::Verifier(const TypeInfo& type)
    : Verifier(
          [&type]() -> std::span<const std::uint8_t> {
            if (type.is_raw())
              throw Error(Errc::UnknownType,
                          "the topic is raw (untyped): it records no schema, so its bytes cannot "
                          "be verified or converted to or from JSON. Use a typed topic.");
            return type.bfbs;
          }(),
          type.name) {}

Verifier::Verifier(Verifier&&) noexcept = default;
Verifier& Verifier::operator=(Verifier&&) noexcept = default;
Verifier::~Verifier() = default;

const std::string& Verifier::type_name() const noexcept {
  assert(impl_ && "use of a moved-from Verifier");
  return impl_->type_name;
}

const std::string& Verifier::file_identifier() const noexcept {
  assert(impl_ && "use of a moved-from Verifier");
  return impl_->file_identifier;
}

std::string Verifier::check(std::span<const std::byte> message) const {
  assert(impl_ && "use of a moved-from Verifier");
  const auto* data = reinterpret_cast<const std::uint8_t*>(message.data());
  // FlatBuffers reads scalars in place: verify an aligned copy of a
  // misaligned buffer.
  if (reinterpret_cast<std::uintptr_t>(data) % 8 == 0) return impl_->check(data, message.size());
  const std::vector<std::uint8_t> copy(data, data + message.size());
  return impl_->check(copy.data(), copy.size());
}

std::vector<std::string> Verifier::unstored_fields(std::span<const std::byte> message) const {
  assert(impl_ && "use of a moved-from Verifier");
  std::vector<std::string> out;
  const auto* data = reinterpret_cast<const std::uint8_t*>(message.data());
  const std::vector<std::uint8_t> copy =
      reinterpret_cast<std::uintptr_t>(data) % 8 == 0
          ? std::vector<std::uint8_t>{}
          : std::vector<std::uint8_t>(data, data + message.size());
  const auto* table = flatbuffers::GetAnyRoot(copy.empty() ? data : copy.data());
  for (const reflection::Field* f : *impl_->root->fields()) {
    if (f->deprecated()) continue;
    const reflection::BaseType t = f->type()->base_type();
    const bool scalar = t >= reflection::Bool && t <= reflection::Double;
    const bool is_struct =
        t == reflection::Obj && impl_->schema->objects()
                                    ->Get(static_cast<flatbuffers::uoffset_t>(f->type()->index()))
                                    ->is_struct();
    if (!scalar && !is_struct) continue;
    if (table->GetOptionalFieldOffset(f->offset()) == 0) out.push_back(f->name()->str());
  }
  return out;
}

namespace detail {
const std::vector<std::uint8_t>& VerifierAccess::bfbs(const Verifier& v) noexcept {
  return v.impl_->bfbs;
}
const reflection::Schema& VerifierAccess::schema(const Verifier& v) noexcept {
  return *v.impl_->schema;
}
const reflection::Object& VerifierAccess::root(const Verifier& v) noexcept {
  return *v.impl_->root;
}
}  // namespace detail

bool Verifier::verify(std::span<const std::byte> message) const {
  return check(message).empty();
}

}  // namespace shmbus
