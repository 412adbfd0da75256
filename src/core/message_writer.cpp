// MessageWriter's layout (computed once per writer from T's reflection schema)
// and its rare path (a string or vector outgrowing its slot). The design is
// in core/message_writer.hpp.
#include "shmbus/core/message_writer.hpp"

#include <flatbuffers/reflection.h>

#include <algorithm>
#include <new>

#include "shmbus/schema/verifier.hpp"

namespace shmbus::detail {

namespace {

constexpr std::uint32_t kCountBytes = sizeof(flatbuffers::uoffset_t);

std::uint32_t round_up(std::uint32_t n, std::uint32_t a) noexcept {
  return (n + a - 1) / a * a;
}

// The first position at or after `from` where a tail object with elements
// aligned to `body_align` can start: its count 4-aligned, its body aligned.
std::uint32_t place(std::uint32_t from, std::uint32_t body_align) noexcept {
  std::uint32_t p = round_up(from, kCountBytes);
  while ((p + kCountBytes) % body_align != 0) p += kCountBytes;
  return p;
}

bool wire_scalar(reflection::BaseType t, WireScalar& out) noexcept {
  switch (t) {
    case reflection::Bool:
      out = WireScalar::Bool;
      return true;
    case reflection::Byte:
      out = WireScalar::Int8;
      return true;
    case reflection::UByte:
      out = WireScalar::UInt8;
      return true;
    case reflection::Short:
      out = WireScalar::Int16;
      return true;
    case reflection::UShort:
      out = WireScalar::UInt16;
      return true;
    case reflection::Int:
      out = WireScalar::Int32;
      return true;
    case reflection::UInt:
      out = WireScalar::UInt32;
      return true;
    case reflection::Long:
      out = WireScalar::Int64;
      return true;
    case reflection::ULong:
      out = WireScalar::UInt64;
      return true;
    case reflection::Float:
      out = WireScalar::Float;
      return true;
    case reflection::Double:
      out = WireScalar::Double;
      return true;
    default:
      return false;  // UType (a union's type field) included: unions are refused
  }
}

const char* name_of(WireScalar t) noexcept {
  static constexpr const char* kNames[] = {"bool",   "int8",  "uint8",  "int16", "uint16", "int32",
                                           "uint32", "int64", "uint64", "float", "double"};
  return kNames[static_cast<std::size_t>(t)];
}

std::size_t size_of(WireScalar t) noexcept {
  switch (t) {
    case WireScalar::Bool:
    case WireScalar::Int8:
    case WireScalar::UInt8:
      return 1;
    case WireScalar::Int16:
    case WireScalar::UInt16:
      return 2;
    case WireScalar::Int32:
    case WireScalar::UInt32:
    case WireScalar::Float:
      return 4;
    default:
      return 8;
  }
}

// What a handle asked for, as a person reads it.
std::string asked(const WriterWant& w) {
  if (w.is_struct)
    return "a struct" + (w.name.empty() ? std::string() : " " + std::string(w.name)) + " of " +
           std::to_string(w.size) + " bytes (alignment " + std::to_string(w.align) + ")";
  return std::string(w.is_enum ? "an enum of " : "") + name_of(w.scalar);
}

}  // namespace

struct WriterLayout {
  enum class Kind : std::uint8_t { None, Scalar, Struct, String, Vector };
  struct Field {
    std::string name;  // "" for an id no field has
    bool deprecated = false;
    Kind kind = Kind::None;
    std::string type;        // as a person reads it: "double", "shmbus.common.Side (uint8)"
    std::string s_name;      // a struct's (or struct element's) name
    WriterWant want;         // the field's (a vector's: its element's) facts; name -> s_name
    std::uint32_t at = 0;    // inline position in the buffer
    std::uint32_t slot = 0;  // strings and vectors
  };
  std::string who;        // "MessageWriter<shmbus.md.Quote>"
  std::string type_name;  // "shmbus.md.Quote"
  std::vector<Field> by_id;

  [[nodiscard]] const Field& field(flatbuffers::voffset_t vt, const char* call) const {
    const std::size_t id = vt >= 4 && vt % 2 == 0 ? (vt - 4u) / 2u : by_id.size();
    if (id >= by_id.size() || by_id[id].name.empty()) {
      std::string fields;
      for (std::size_t k = 0; k < by_id.size(); ++k) {
        if (by_id[k].name.empty() || by_id[k].deprecated) continue;
        fields += (fields.empty() ? "" : ", ") + by_id[k].name + " " + std::to_string(4 + 2 * k);
      }
      throw Error(Errc::InvalidArgument, who + "::" + call + "(" + std::to_string(vt) +
                                             "): vtable offset " + std::to_string(vt) +
                                             " is not a field of " + type_name +
                                             " (its fields and offsets: " + fields + "); pass " +
                                             type_name + "'s own VT_ constant");
    }
    const Field& f = by_id[id];
    if (f.deprecated)
      throw Error(Errc::InvalidArgument, who + "::" + call + "(" + std::to_string(vt) +
                                             "): field " + f.name +
                                             " is deprecated: it is not "
                                             "stored and cannot be set");
    return f;
  }

  [[noreturn]] void refuse(const Field& f, flatbuffers::voffset_t vt, const char* call,
                           const std::string& why) const {
    throw Error(Errc::InvalidArgument, who + "::" + call + "(" + std::to_string(vt) + "): field " +
                                           f.name + " is " + f.type + "; " + why);
  }

  // "" if the field's (or element's) facts `have` take what `want` asks.
  static std::string mismatch(const WriterWant& have, const WriterWant& want) {
    if (have.is_struct != want.is_struct)
      return want.is_struct ? "it is not a struct"
                            : "the C++ type asked for is " + asked(want) + ", not the struct " +
                                  std::string(have.name);
    if (have.is_struct) {
      if (have.size != want.size || have.align != want.align ||
          (!want.name.empty() && have.name != want.name))
        return "the C++ type asked for is " + asked(want) + ", the schema's struct has " +
               std::to_string(have.size) + " bytes (alignment " + std::to_string(have.align) + ")";
      return {};
    }
    if (want.is_enum && !have.is_enum)
      return "not an enum: ask for its plain type, " + std::string(name_of(have.scalar));
    if (have.scalar != want.scalar) return "the C++ type asked for is " + asked(want);
    return {};
  }
};

MessageWriterBase::MessageWriterBase(const TypeInfo& type, std::size_t max_size)
    : max_size_(max_size) {
  auto layout = std::make_shared<WriterLayout>();
  WriterLayout& L = *layout;
  L.type_name = type.name;
  L.who = "MessageWriter<" + type.name + ">";
  if (type.is_raw())
    throw Error(Errc::UnknownType, L.who + ": a raw type has no schema to lay a message out from");
  // Offsets and counts are 32-bit, as in every FlatBuffer.
  if (max_size > FLATBUFFERS_MAX_BUFFER_SIZE)
    throw Error(Errc::InvalidArgument, L.who + ": max_size " + std::to_string(max_size) +
                                           " is over the largest FlatBuffer (" +
                                           std::to_string(FLATBUFFERS_MAX_BUFFER_SIZE) + " bytes)");
  // The registry verified these bytes when they were added (SchemaRegistry::add).
  const reflection::Schema& schema = *reflection::GetSchema(type.bfbs.data());
  const reflection::Object* obj = schema.objects()->LookupByKey(type.name.c_str());
  if (obj == nullptr || obj->is_struct())
    throw Error(Errc::UnknownType, L.who + ": the registered schema has no table " + type.name);
  const auto object = [&schema](std::int32_t index) -> const reflection::Object& {
    return *schema.objects()->Get(static_cast<flatbuffers::uoffset_t>(index));
  };

  // -- the fields: what each is, refusing what the writer cannot write
  std::size_t ids = 0;
  for (const reflection::Field* fd : *obj->fields())
    ids = std::max<std::size_t>(ids, fd->id() + 1u);
  L.by_id.resize(ids);
  std::string refused;
  std::uint32_t max_align = 4;
  for (const reflection::Field* fd : *obj->fields()) {
    WriterLayout::Field& f = L.by_id[fd->id()];
    f.name = fd->name()->str();
    f.deprecated = fd->deprecated();
    const reflection::Type& t = *fd->type();
    std::string why;
    WireScalar ws{};
    if (wire_scalar(t.base_type(), ws)) {
      f.kind = WriterLayout::Kind::Scalar;
      f.want.scalar = ws;
      f.want.size = f.want.align = size_of(ws);
      f.want.is_enum = t.index() >= 0;
      f.type =
          f.want.is_enum
              ? schema.enums()->Get(static_cast<flatbuffers::uoffset_t>(t.index()))->name()->str() +
                    " (an enum of " + name_of(ws) + ")"
              : std::string("a ") + name_of(ws);
    } else if (t.base_type() == reflection::String) {
      f.kind = WriterLayout::Kind::String;
      f.type = "a string";
    } else if (t.base_type() == reflection::Obj && object(t.index()).is_struct()) {
      const reflection::Object& s = object(t.index());
      f.kind = WriterLayout::Kind::Struct;
      f.s_name = s.name()->str();
      f.want.is_struct = true;
      f.want.size = static_cast<std::size_t>(s.bytesize());
      f.want.align = static_cast<std::size_t>(s.minalign());
      f.type = "the struct " + f.s_name;
    } else if (t.base_type() == reflection::Vector) {
      f.kind = WriterLayout::Kind::Vector;
      if (wire_scalar(t.element(), ws)) {
        f.want.scalar = ws;
        f.want.size = f.want.align = size_of(ws);
        f.want.is_enum = t.index() >= 0;
        f.type = std::string("a vector of ") + name_of(ws);
      } else if (t.element() == reflection::Obj && object(t.index()).is_struct()) {
        const reflection::Object& s = object(t.index());
        f.s_name = s.name()->str();
        f.want.is_struct = true;
        f.want.size = static_cast<std::size_t>(s.bytesize());
        f.want.align = static_cast<std::size_t>(s.minalign());
        f.type = "a vector of " + f.s_name;
      } else {
        why = t.element() == reflection::String ? "a vector of strings"
              : t.element() == reflection::Obj  ? "a vector of tables"
                                                : "a vector of unions";
      }
    } else {
      why = t.base_type() == reflection::Obj     ? "a table"
            : t.base_type() == reflection::Array ? "a fixed-size array"
            : t.base_type() == reflection::UType ? "a union's type"
                                                 : "a union";
    }
    if (f.want.align > 8) why = "aligned to " + std::to_string(f.want.align) + " bytes (over 8)";
    if (!why.empty()) {
      if (!f.deprecated) refused += (refused.empty() ? "" : ", ") + f.name + " (" + why + ")";
      f.kind = WriterLayout::Kind::None;
      continue;
    }
    if (f.deprecated) {
      f.kind = WriterLayout::Kind::None;
      continue;
    }
    const std::uint32_t a =
        f.kind == WriterLayout::Kind::String || f.kind == WriterLayout::Kind::Vector
            ? 4u
            : static_cast<std::uint32_t>(f.want.align);
    max_align = std::max(max_align, a);
  }
  if (!refused.empty())
    throw Error(Errc::InvalidArgument,
                L.who + ": the writer cannot write the field" +
                    (refused.find(", ") != std::string::npos ? "s " : " ") + refused +
                    ": it writes scalars, enums, structs, strings and vectors of scalars or "
                    "structs. Build such messages with a FlatBufferBuilder");

  // -- the layout: root, identifier, vtable, table, tail
  const bool has_ident = type.file_identifier.size() == flatbuffers::kFileIdentifierLength;
  const std::uint32_t vt_start = has_ident ? 8 : 4;
  const auto vsize = static_cast<std::uint32_t>(4 + 2 * ids);
  std::uint32_t table = vt_start + vsize;
  table = round_up(table, 4);
  while ((table + 4) % max_align != 0) table += 4;
  // Inline fields, largest alignment first: every size is a multiple of its
  // alignment, so none needs padding.
  std::vector<std::size_t> order;
  for (std::size_t id = 0; id < ids; ++id)
    if (L.by_id[id].kind != WriterLayout::Kind::None) order.push_back(id);
  const auto inline_align = [&L](std::size_t id) {
    const WriterLayout::Field& f = L.by_id[id];
    return f.kind == WriterLayout::Kind::String || f.kind == WriterLayout::Kind::Vector
               ? std::size_t{4}
               : f.want.align;
  };
  const auto inline_size = [&L](std::size_t id) {
    const WriterLayout::Field& f = L.by_id[id];
    return f.kind == WriterLayout::Kind::String || f.kind == WriterLayout::Kind::Vector
               ? std::size_t{4}
               : f.want.size;
  };
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return inline_align(a) > inline_align(b); });
  std::uint32_t cur = table + 4;
  for (const std::size_t id : order) {
    cur = round_up(cur, static_cast<std::uint32_t>(inline_align(id)));
    L.by_id[id].at = cur;
    cur += static_cast<std::uint32_t>(inline_size(id));
  }
  const std::uint32_t table_end = cur;
  if (table_end - table > 0xFFFFu || vsize > 0xFFFFu)
    throw Error(Errc::InvalidArgument, L.who + ": the table is larger than a vtable can describe");
  // The tail: strings and vectors in field order, empty.
  cur = round_up(table_end, 4);
  for (std::size_t id = 0; id < ids; ++id) {
    WriterLayout::Field& f = L.by_id[id];
    if (f.kind != WriterLayout::Kind::String && f.kind != WriterLayout::Kind::Vector) continue;
    Slot s;
    s.field_at = f.at;
    if (f.kind == WriterLayout::Kind::String) {
      s.nul = 1;
    } else {
      s.elem_size = static_cast<std::uint32_t>(f.want.size);
      s.body_align = std::max<std::uint32_t>(4, static_cast<std::uint32_t>(f.want.align));
    }
    s.pos = place(cur, s.body_align);
    s.cap = round_up(kCountBytes + s.nul, 4);
    cur = s.pos + s.cap;
    f.slot = static_cast<std::uint32_t>(slots_.size());
    slots_.push_back(s);
  }
  size_ = cur;
  if (size_ > max_size_)
    throw Error(Errc::InvalidArgument, L.who + ": its empty message is " + std::to_string(size_) +
                                           " bytes, over the max_size of " +
                                           std::to_string(max_size_) + " given");
  moved_.resize(slots_.size());

  // -- the bytes: zeros, then what is not zero
  storage_.assign((size_ + 7) / 8, 0);
  std::byte* b = data();
  const auto put32 = [b](std::uint32_t at, std::uint32_t v) { std::memcpy(b + at, &v, 4); };
  const auto put16 = [b](std::uint32_t at, std::uint32_t v) {
    const auto x = static_cast<std::uint16_t>(v);
    std::memcpy(b + at, &x, 2);
  };
  put32(0, table);
  if (has_ident) std::memcpy(b + 4, type.file_identifier.data(), 4);
  put16(vt_start, vsize);
  put16(vt_start + 2, table_end - table);
  for (std::size_t id = 0; id < ids; ++id) {
    const WriterLayout::Field& f = L.by_id[id];
    if (f.kind != WriterLayout::Kind::None)
      put16(vt_start + 4 + static_cast<std::uint32_t>(2 * id), f.at - table);
  }
  const std::int32_t to_vtable = static_cast<std::int32_t>(table - vt_start);  // vtable before
  std::memcpy(b + table, &to_vtable, 4);
  for (const reflection::Field* fd : *obj->fields()) {
    const WriterLayout::Field& f = L.by_id[fd->id()];
    if (f.kind != WriterLayout::Kind::Scalar) continue;
    std::byte* p = b + f.at;
    const std::int64_t i = fd->default_integer();
    const double d = fd->default_real();
    switch (f.want.scalar) {
      case WireScalar::Float: {
        const auto v = static_cast<float>(d);
        std::memcpy(p, &v, 4);
        break;
      }
      case WireScalar::Double:
        std::memcpy(p, &d, 8);
        break;
      default:
        std::memcpy(p, &i, f.want.size);  // little-endian: the low bytes
    }
  }
  for (const Slot& s : slots_) put32(s.field_at, s.pos - s.field_at);

  for (WriterLayout::Field& f : L.by_id) f.want.name = f.s_name;  // by_id no longer grows
  layout_ = std::move(layout);

  // The layout is ours, not the builder's: check it as every reader will.
  const std::string why = Verifier(type).check({data(), size_});
  if (!why.empty())
    throw Error(
        Errc::InvalidMessage,
        L.who + ": the laid-out message fails verification (a bug in MessageWriter): " + why);
}

const std::string& MessageWriterBase::type_name() const noexcept {
  return layout_->type_name;
}

namespace {
// The handle that fits field f, for the error of a handle that does not.
const char* handle_for(const WriterLayout::Field& f) noexcept {
  if (f.kind == WriterLayout::Kind::String) return "use string()";
  if (f.kind == WriterLayout::Kind::Vector) return "use vector<E>()";
  return f.want.is_struct ? "use structure<S>()" : "use scalar<V>()";
}
}  // namespace

std::uint32_t MessageWriterBase::inline_at(flatbuffers::voffset_t vt, const WriterWant& want,
                                           const char* call) const {
  const WriterLayout& L = *layout_;
  const WriterLayout::Field& f = L.field(vt, call);
  if (f.kind == WriterLayout::Kind::String || f.kind == WriterLayout::Kind::Vector)
    L.refuse(f, vt, call, handle_for(f));
  if (const std::string why = WriterLayout::mismatch(f.want, want); !why.empty())
    L.refuse(f, vt, call, why);
  return f.at;
}

std::uint32_t MessageWriterBase::string_slot(flatbuffers::voffset_t vt) const {
  const WriterLayout& L = *layout_;
  const WriterLayout::Field& f = L.field(vt, "string");
  if (f.kind != WriterLayout::Kind::String) L.refuse(f, vt, "string", handle_for(f));
  return f.slot;
}

std::uint32_t MessageWriterBase::vector_slot(flatbuffers::voffset_t vt,
                                             const WriterWant& elem) const {
  const WriterLayout& L = *layout_;
  const WriterLayout::Field& f = L.field(vt, "vector");
  if (f.kind != WriterLayout::Kind::Vector) L.refuse(f, vt, "vector", handle_for(f));
  if (const std::string why = WriterLayout::mismatch(f.want, elem); !why.empty())
    L.refuse(f, vt, "vector", "its elements do not match: " + why);
  return f.slot;
}

bool MessageWriterBase::put_growing(std::uint32_t slot, const void* src, std::size_t bytes,
                                    std::size_t count) noexcept {
  const Slot& s = slots_[slot];
  if (bytes > max_size_ || 4 + bytes + s.nul > max_size_) return false;
  // A value read from this buffer would move with the tail: copy it first.
  const auto* from = static_cast<const std::byte*>(src);
  std::vector<std::byte> copy;
  if (bytes != 0 && from >= data() && from < data() + storage_.size() * 8) {
    try {
      copy.assign(from, from + bytes);
    } catch (...) {
      return false;
    }
    from = copy.data();
  }
  if (!reshape(slot, round_up(static_cast<std::uint32_t>(4 + bytes + s.nul), 4))) return false;
  write(slots_[slot], from, bytes, count);
  return true;
}

bool MessageWriterBase::reshape(std::size_t slot, std::uint32_t cap) noexcept {
  const std::size_t n = slots_.size();
  std::uint32_t end = slots_[slot].pos + cap;
  for (std::size_t i = slot + 1; i < n; ++i) {
    moved_[i] = place(end, slots_[i].body_align);
    end = moved_[i] + slots_[i].cap;
  }
  if (end > max_size_) return false;
  const std::size_t words = (std::size_t{end} + 7) / 8;
  if (words > storage_.size()) {
    try {
      storage_.resize(std::min(std::max(words, 2 * storage_.size()), (max_size_ + 7) / 8));
    } catch (...) {
      return false;
    }
  }
  std::byte* b = data();
  // Every slot after this one moves the same way (further when it grows,
  // nearer when it shrinks): move the far end first when growing.
  if (cap > slots_[slot].cap) {
    for (std::size_t i = n; i-- > slot + 1;)
      std::memmove(b + moved_[i], b + slots_[i].pos, slots_[i].cap);
  } else {
    for (std::size_t i = slot + 1; i < n; ++i)
      std::memmove(b + moved_[i], b + slots_[i].pos, slots_[i].cap);
  }
  slots_[slot].cap = cap;
  std::uint32_t prev_end = slots_[slot].pos + cap;
  for (std::size_t i = slot + 1; i < n; ++i) {
    Slot& s = slots_[i];
    std::memset(b + prev_end, 0, moved_[i] - prev_end);  // no stale byte between slots
    s.pos = moved_[i];
    const std::uint32_t uoffset = s.pos - s.field_at;
    std::memcpy(b + s.field_at, &uoffset, 4);
    prev_end = s.pos + s.cap;
  }
  size_ = end;
  return true;
}

void MessageWriterBase::shrink_to_fit() noexcept {
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    std::uint32_t count = 0;
    std::memcpy(&count, data() + s.pos, 4);
    const std::uint32_t need = round_up(4 + count * s.elem_size + s.nul, 4);
    if (need < s.cap) (void)reshape(i, need);  // shrinking: always fits, never allocates
  }
}

}  // namespace shmbus::detail
