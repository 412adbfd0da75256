// The verifier: header checks that name what is wrong (length, file
// identifier, root offset), then the checks of flatbuffers::Verify by reflection.
//
// flatbuffers::Verify walks the reflection schema per message: it looks each field's type up
// in the schema's vectors and switches on it, ~1 000 instructions for a 200-byte Quote, 17 %
// of the bridge's JSON envelope. The root type is compiled once instead (Program below): per
// table, per field, the check to make (its kind, size, alignment, required flag, the compiled
// table of a child) in the order FlatBuffers 2.0.8's reflection.cpp makes them, with the same
// flatbuffers::Verifier calls, so a buffer passes exactly when flatbuffers::Verify passes it;
// one check is added: a child table's offset is verified before it is followed (as generated
// code does with VerifyOffset; reflection.cpp reads it unchecked). Types with unions or
// fixed-size arrays keep flatbuffers::Verify. tests/schema_test.cpp compares the two on
// mutated buffers of every schema.
#include "shmbus/schema/verifier.hpp"

#include <flatbuffers/reflection.h>

#include <cassert>
#include <cstring>
#include <deque>
#include <map>
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

namespace {
namespace compiled {

enum class Kind : std::uint8_t {
  Scalar,     // size = alignment = the scalar's size
  String,     //
  Struct,     // size, alignment: the struct's; required
  Table,      // table; required
  VecScalar,  // size: the element's
  VecString,  //
  VecStruct,  // size: the struct's; required
  VecTable,   // table
};

struct Table;

struct Field {
  Kind kind = Kind::Scalar;
  flatbuffers::voffset_t offset = 0;
  bool required = false;
  std::size_t size = 0;
  std::size_t align = 0;
  const Table* table = nullptr;
};

struct Table {
  std::vector<Field> fields;
};

std::size_t scalar_size(reflection::BaseType t) {
  switch (t) {
    case reflection::Bool:
    case reflection::Byte:
    case reflection::UByte:
    case reflection::UType:
      return 1;
    case reflection::Short:
    case reflection::UShort:
      return 2;
    case reflection::Int:
    case reflection::UInt:
    case reflection::Float:
      return 4;
    case reflection::Long:
    case reflection::ULong:
    case reflection::Double:
      return 8;
    default:
      return 0;
  }
}

// The compiled checks of a root table and the tables it reaches; nullptr from make() when
// the type has what they do not cover (unions, fixed-size arrays).
class Program {
 public:
  static std::unique_ptr<Program> make(const reflection::Schema& schema,
                                       const reflection::Object& root) {
    auto p = std::unique_ptr<Program>(new Program(schema));
    p->root_ = p->compile(root);
    return p->supported_ ? std::move(p) : nullptr;
  }

  [[nodiscard]] bool verify(const std::uint8_t* buf, std::size_t size) const {
    // As flatbuffers::Verify: the default limits, the root offset read unchecked (check()
    // has checked it first).
    flatbuffers::Verifier v(buf, size, 64, 1000000);
    return verify_table(v, *root_, flatbuffers::GetRoot<flatbuffers::Table>(buf), true);
  }

 private:
  explicit Program(const reflection::Schema& schema) : schema_(schema) {}

  const Table* compile(const reflection::Object& obj) {
    if (const auto it = tables_.find(&obj); it != tables_.end()) return it->second;
    Table& t = storage_.emplace_back();
    tables_.emplace(&obj, &t);  // before the fields: a table may contain itself
    for (const reflection::Field* fd : *obj.fields()) {
      Field f;
      f.offset = fd->offset();
      f.required = fd->required();
      const reflection::Type& type = *fd->type();
      const reflection::BaseType bt = type.base_type();
      if (const std::size_t n = scalar_size(bt); n != 0) {
        f.kind = Kind::Scalar;
        f.size = f.align = n;
        f.required = false;  // as reflection's Verify: `required` is checked on offsets and structs
      } else if (bt == reflection::String) {
        f.kind = Kind::String;
      } else if (bt == reflection::Obj) {
        const reflection::Object& child = object(type.index());
        if (child.is_struct()) {
          f.kind = Kind::Struct;
          f.size = static_cast<std::size_t>(child.bytesize());
          f.align = static_cast<std::size_t>(child.minalign());
        } else {
          f.kind = Kind::Table;
          f.table = compile(child);
        }
      } else if (bt == reflection::Vector) {
        const reflection::BaseType et = type.element();
        if (const std::size_t en = scalar_size(et); en != 0) {
          f.kind = Kind::VecScalar;
          f.size = en;
        } else if (et == reflection::String) {
          f.kind = Kind::VecString;
        } else if (et == reflection::Obj) {
          const reflection::Object& child = object(type.index());
          if (child.is_struct()) {
            f.kind = Kind::VecStruct;
            f.size = static_cast<std::size_t>(child.bytesize());
          } else {
            f.kind = Kind::VecTable;
            f.table = compile(child);
          }
        } else {
          supported_ = false;  // a vector of unions
        }
      } else {
        supported_ = false;  // a union, a fixed-size array
      }
      t.fields.push_back(f);
    }
    return &t;
  }

  const reflection::Object& object(std::int32_t index) const {
    return *schema_.objects()->Get(static_cast<flatbuffers::uoffset_t>(index));
  }

  static bool verify_table(flatbuffers::Verifier& v, const Table& t,
                           const flatbuffers::Table* table, bool required) {
    if (table == nullptr) return !required;
    if (!table->VerifyTableStart(v)) return false;
    const auto* base = reinterpret_cast<const std::uint8_t*>(table);
    for (const Field& f : t.fields) {
      switch (f.kind) {
        case Kind::String:
          if (!table->VerifyField<flatbuffers::uoffset_t>(v, f.offset,
                                                          sizeof(flatbuffers::uoffset_t)) ||
              !v.VerifyString(table->GetPointer<const flatbuffers::String*>(f.offset)))
            return false;
          break;
        case Kind::Scalar:  // an inline value like a struct; never required (see compile)
        case Kind::Struct: {
          const flatbuffers::voffset_t at = table->GetOptionalFieldOffset(f.offset);
          if (f.required && at == 0) return false;
          if (at != 0 && !v.VerifyFieldStruct(base, at, f.size, f.align)) return false;
          break;
        }
        case Kind::Table:
          if (!table->VerifyField<flatbuffers::uoffset_t>(v, f.offset,
                                                          sizeof(flatbuffers::uoffset_t)) ||
              !verify_table(v, *f.table, table->GetPointer<const flatbuffers::Table*>(f.offset),
                            f.required))
            return false;
          break;
        default: {
          if (!table->VerifyField<flatbuffers::uoffset_t>(v, f.offset,
                                                          sizeof(flatbuffers::uoffset_t)))
            return false;
          const auto* p = table->GetPointer<const std::uint8_t*>(f.offset);
          if (!vector_ok(v, f, p)) return false;
        }
      }
    }
    return v.EndTable();
  }

  static bool vector_ok(flatbuffers::Verifier& v, const Field& f, const std::uint8_t* p) {
    switch (f.kind) {
      case Kind::VecScalar:
        return p == nullptr || v.VerifyVectorOrString(p, f.size);
      case Kind::VecString: {
        const auto* vec =
            reinterpret_cast<const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>*>(
                p);
        return v.VerifyVector(vec) && v.VerifyVectorOfStrings(vec);
      }
      case Kind::VecStruct:
        if (f.required && p == nullptr) return false;
        return p == nullptr || v.VerifyVectorOrString(p, f.size);
      case Kind::VecTable: {
        const auto* vec =
            reinterpret_cast<const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::Table>>*>(
                p);
        if (!v.VerifyVector(vec)) return false;
        if (vec == nullptr) return true;
        for (flatbuffers::uoffset_t j = 0; j < vec->size(); ++j)
          if (!verify_table(v, *f.table, vec->Get(j), true)) return false;
        return true;
      }
      default:
        return false;
    }
  }

  const reflection::Schema& schema_;
  std::deque<Table> storage_;
  std::map<const reflection::Object*, const Table*> tables_;
  const Table* root_ = nullptr;
  bool supported_ = true;
};

}  // namespace compiled
}  // namespace

struct Verifier::Impl {
  std::string type_name;
  std::vector<std::uint8_t> bfbs;  // owned and 8-byte aligned: the schema is read in place
  const reflection::Schema* schema = nullptr;
  const reflection::Object* root = nullptr;
  std::string file_identifier;
  std::unique_ptr<compiled::Program> program;  // nullptr: flatbuffers::Verify

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
    if (program ? !program->verify(buf, size) : !flatbuffers::Verify(*schema, *root, buf, size))
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
  d.program = compiled::Program::make(*d.schema, *d.root);
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
