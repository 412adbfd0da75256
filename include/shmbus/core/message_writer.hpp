// shmbus — a FlatBuffer writer of our own: each message is stores at offsets
// computed once, strings and vectors included.
//
//   MessageWriter<md::Quote> w;                            // layout from T's schema, once
//   const auto bid = w.scalar<double>(md::Quote::VT_BID_PX);   // checked here, once
//   const auto sym = w.string(md::Quote::VT_SYMBOL);
//   ...
//   w.set(bid, 189.92);                                    // one store
//   if (!w.set(sym, "AAPL")) { ... }                       // in place if it fits its slot
//   if (w.try_publish(pub) != PublishResult::Ok) { ... }   // one copy into the slot
//
// Why: a FlatBufferBuilder spends ~950 instructions on a Quote (vector_downward
// 428, EndTable 196: callgrind, BENCHMARKS.md issue 11), ten times the bus's
// share of a hop. MessageTemplate<T> takes the builder off the hot path but
// freezes the strings and vectors of each template; a feed handler with many
// symbols, or an order gateway whose ids change every message, needs them to
// change too. The builder's cost is generality: it lays the buffer out anew
// each time (back to front, vtable deduplication, alignment per push). For one
// root type every message has the same shape, so the writer lays it out once,
// at construction, from T's registered reflection schema (type_of<T>()), and a
// message is then the stores of its values — what the reader gets is an
// ordinary FlatBuffer of T (the generated accessors and shmbus::Verifier read
// it; tests/message_writer_test.cpp checks both verifiers on every schema).
//
// Layout (front to back; offsets from the start of the buffer):
//
//   0   uoffset  root: the table's position
//   4   [4]      T's file_identifier, if its schema has one
//   ..  vtable   vsize, tsize, one voffset per field id (every field present;
//                deprecated ones 0)
//   ..  table    soffset to the vtable, then the inline fields by alignment,
//                largest first (scalars, structs, and the uoffsets of strings
//                and vectors), so no padding between them
//   ..  tail     strings and vectors in field order, each at a 4-aligned
//                position (a vector of 8-byte elements: its body 8-aligned):
//                uint32 count, the elements, a string's NUL, zero padding
//
// The binary format allows this order (FlatBuffers' docs/source/Internals.md:
// the table's offset to its vtable is signed, so the vtable may sit before
// the table; offsets to strings and vectors are unsigned and point forward,
// which the tail does); the builder's back-to-front order is a choice of the
// builder, not of the format. The vtable and table never move: a scalar's
// position is a constant of T, and so is a handle.
//
// Strings and vectors live in slots. Setting one that fits its slot's bytes
// writes it there (count, bytes, NUL, zeros to the slot's end: no byte of an
// earlier value stays). One that does not fit takes the rare path (out of
// line): the tail after it moves up, the table's uoffsets are fixed, and the
// slot keeps its new size, so a stream whose strings vary in length settles
// after its longest one; shrink_to_fit() gives the bytes back. A message
// that would exceed max_size() is refused: set() returns false and nothing
// changes — never cut. (The rare path may grow the buffer, which allocates;
// an allocation failure is refused the same way. The in-place path neither
// allocates nor throws.)
//
// Values persist from message to message (as in a template): set what
// changed. A new writer holds the schema's defaults, empty strings and empty
// vectors, and zeroed structs: every field is stored, so any can be set
// without changing the layout, and a (required) string is always there — the
// buffer is valid from construction on (set such fields before the first
// publish). The price: a string never set reads as "" where a builder that
// left it out gives nullptr.
//
// Cost (callgrind, shmbus-typed-path --writer, BENCHMARKS.md): a Quote with
// its ten scalars and both strings set, ~160 instructions, against ~920 for
// the FlatBufferBuilder and ~140 for MessageTemplate's ten scalars alone.
//
// Checks, as Error(InvalidArgument) (not InvalidMessage: the bytes are the
// writer's own; what is wrong is what the caller asked for), each naming the
// type, the fields and why:
//   - at construction: T's fields must all be scalars, enums, bools,
//     structs, strings or vectors of scalars or structs; tables, unions,
//     vectors of tables or strings and fixed-size arrays are refused, since a
//     writer that left them out would drop them silently. A max_size over the
//     largest FlatBuffer or under the empty message is refused. The laid-out
//     message then passes shmbus::Verifier before the constructor returns
//     (Error(InvalidMessage) if it ever did not: a bug here, not the caller's).
//   - at handle resolution (scalar<V>(vt), string(vt), structure<S>(vt),
//     vector<E>(vt)): vt must be a field of T, not deprecated, of the kind and
//     type asked for (an enum field takes its enum or its underlying type; a
//     bool field takes bool; a struct: its size, alignment and, when the C++
//     type has one, its name).
//   - the hot path checks nothing: a handle is a position (scalars, structs)
//     or a slot number (strings, vectors), valid for every MessageWriter<T>
//     of the process (another T's handles do not compile).
//   - publishing as MessageTemplate: Invalid for a topic of another type,
//     TooLarge for a slot too small, WouldBlock on a full reliable ring.
//
// Thread safety: a MessageWriter is a value owned by one thread at a time;
// copy it to give each thread its own (copies share the immutable layout).
#pragma once

#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "shmbus/core/publisher.hpp"
#include "shmbus/error.hpp"
#include "shmbus/schema/registry.hpp"

namespace shmbus {

namespace detail {

// FlatBuffers is little-endian on the wire; the writer stores host values.
static_assert(std::endian::native == std::endian::little,
              "MessageWriter stores scalars as the host holds them: little-endian hosts only");

// The wire scalar types of a schema (reflection's Bool..Double).
enum class WireScalar : std::uint8_t {
  Bool,
  Int8,
  UInt8,
  Int16,
  UInt16,
  Int32,
  UInt32,
  Int64,
  UInt64,
  Float,
  Double
};

template <class V>
consteval WireScalar wire_scalar_of() {
  using U = typename std::conditional_t<std::is_enum_v<V>, std::underlying_type<V>,
                                        std::type_identity<V>>::type;
  if constexpr (std::is_same_v<U, bool>)
    return WireScalar::Bool;
  else if constexpr (std::is_same_v<U, std::int8_t>)
    return WireScalar::Int8;
  else if constexpr (std::is_same_v<U, std::uint8_t>)
    return WireScalar::UInt8;
  else if constexpr (std::is_same_v<U, std::int16_t>)
    return WireScalar::Int16;
  else if constexpr (std::is_same_v<U, std::uint16_t>)
    return WireScalar::UInt16;
  else if constexpr (std::is_same_v<U, std::int32_t>)
    return WireScalar::Int32;
  else if constexpr (std::is_same_v<U, std::uint32_t>)
    return WireScalar::UInt32;
  else if constexpr (std::is_same_v<U, std::int64_t>)
    return WireScalar::Int64;
  else if constexpr (std::is_same_v<U, std::uint64_t>)
    return WireScalar::UInt64;
  else if constexpr (std::is_same_v<U, float>)
    return WireScalar::Float;
  else if constexpr (std::is_same_v<U, double>)
    return WireScalar::Double;
  else
    static_assert(sizeof(V) == 0,
                  "not a FlatBuffers scalar type (bool, [u]intN_t, float, "
                  "double, or an enum of one)");
}

// What a handle asks a field to be: a scalar of a wire type (from an enum or
// not), or a struct of a size, alignment and name ("" when unknown).
struct WriterWant {
  bool is_struct = false;
  WireScalar scalar = WireScalar::Bool;
  bool is_enum = false;
  std::size_t size = 0;
  std::size_t align = 0;
  std::string_view name;
};

template <class V>
WriterWant writer_want() {
  WriterWant w;
  if constexpr (std::is_class_v<V>) {
    static_assert(std::is_trivially_copyable_v<V>, "a FlatBuffers struct is trivially copyable");
    w.is_struct = true;
    w.size = sizeof(V);
    w.align = alignof(V);
    if constexpr (requires { V::GetFullyQualifiedName(); }) w.name = V::GetFullyQualifiedName();
  } else {
    w.scalar = wire_scalar_of<V>();
    w.is_enum = std::is_enum_v<V>;
    w.size = w.align = sizeof(V);
  }
  return w;
}

struct WriterLayout;  // the per-type layout, shared by copies (message_writer.cpp)

// The type-independent writer: layout, buffer, tail slots. MessageWriter<T>
// adds the typed handles.
class MessageWriterBase {
 public:
  MessageWriterBase(const TypeInfo& type, std::size_t max_size);

  // Handle resolution (setup: throw Error(InvalidArgument) naming why).
  [[nodiscard]] std::uint32_t inline_at(flatbuffers::voffset_t vt, const WriterWant& want,
                                        const char* call) const;
  [[nodiscard]] std::uint32_t string_slot(flatbuffers::voffset_t vt) const;
  [[nodiscard]] std::uint32_t vector_slot(flatbuffers::voffset_t vt, const WriterWant& elem) const;

  [[nodiscard]] std::byte* data() noexcept { return reinterpret_cast<std::byte*>(storage_.data()); }
  [[nodiscard]] const std::byte* data() const noexcept {
    return reinterpret_cast<const std::byte*>(storage_.data());
  }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t max_size() const noexcept { return max_size_; }
  [[nodiscard]] const std::string& type_name() const noexcept;

  // Writes `count` elements (`bytes` bytes at `src`) into tail slot `slot`:
  // in place when they fit, else the rare path. False: the message would
  // exceed max_size() (or memory ran out); nothing changed.
  [[nodiscard]] bool put(std::uint32_t slot, const void* src, std::size_t bytes,
                         std::size_t count) noexcept {
    const Slot& s = slots_[slot];
    if (4 + bytes + s.nul > s.cap) [[unlikely]]
      return put_growing(slot, src, bytes, count);
    write(s, src, bytes, count);
    return true;
  }

  // Gives back the bytes that strings and vectors shorter than their slots
  // leave unused: each slot shrinks to its value (rare path; never fails).
  void shrink_to_fit() noexcept;

 private:
  // A string or vector: where it is, how many bytes it may hold (count
  // included, a multiple of 4), where the table holds its uoffset.
  struct Slot {
    std::uint32_t pos = 0;         // of the uint32 count
    std::uint32_t cap = 0;         // bytes from pos to the next slot's room
    std::uint32_t field_at = 0;    // of the uoffset in the table
    std::uint32_t elem_size = 1;   // 1 for strings
    std::uint32_t body_align = 4;  // the elements' alignment, at least 4
    std::uint32_t nul = 0;         // 1 for strings
  };

  // The slot's whole image: count, elements, then zeros to its end (a
  // string's NUL among them). Without libc calls for the common short value:
  // the cost of a per-message string is a few stores, not two calls.
  void write(const Slot& s, const void* src, std::size_t bytes, std::size_t count) noexcept {
    std::byte* p = data() + s.pos;
    const auto n = static_cast<std::uint32_t>(count);
    std::memcpy(p, &n, sizeof n);
    move_bytes(p + 4, src, bytes);
    // Zeros from the first byte after the elements to the slot's end, a
    // 4-byte word at a time (pos and cap are multiples of 4); the word the
    // elements end in keeps their bytes.
    const auto end = static_cast<std::uint32_t>(4 + bytes);
    std::uint32_t at = end & ~3u;
    if (at != end) {
      std::uint32_t word;
      std::memcpy(&word, p + at, 4);
      word &= (std::uint32_t{1} << (8 * (end - at))) - 1;
      std::memcpy(p + at, &word, 4);
      at += 4;
    }
    for (constexpr std::uint32_t zero = 0; at < s.cap; at += 4) std::memcpy(p + at, &zero, 4);
  }
  // memmove (a value may be read from this very buffer, w->symbol()), with
  // up to 16 bytes as overlapping word copies: every load before any store.
  static void move_bytes(std::byte* to, const void* from, std::size_t n) noexcept {
    const auto* b = static_cast<const std::byte*>(from);
    if (n > 16) {
      std::memmove(to, from, n);
    } else if (n >= 8) {
      std::uint64_t head, tail;
      std::memcpy(&head, b, 8);
      std::memcpy(&tail, b + n - 8, 8);
      std::memcpy(to, &head, 8);
      std::memcpy(to + n - 8, &tail, 8);
    } else if (n >= 4) {
      std::uint32_t head, tail;
      std::memcpy(&head, b, 4);
      std::memcpy(&tail, b + n - 4, 4);
      std::memcpy(to, &head, 4);
      std::memcpy(to + n - 4, &tail, 4);
    } else if (n != 0) {
      const std::byte first = b[0], mid = b[n / 2], last = b[n - 1];
      to[0] = first;
      to[n / 2] = mid;
      to[n - 1] = last;
    }
  }
  bool put_growing(std::uint32_t slot, const void* src, std::size_t bytes,
                   std::size_t count) noexcept;
  bool reshape(std::size_t slot, std::uint32_t cap) noexcept;

  std::shared_ptr<const WriterLayout> layout_;
  std::vector<std::uint64_t> storage_;  // 8-byte aligned: every scalar keeps its alignment
  std::vector<Slot> slots_;
  std::vector<std::uint32_t> moved_;  // the rare path's new positions (no allocation there)
  std::size_t size_ = 0;
  std::size_t max_size_ = 0;
};

}  // namespace detail

template <class T>
class MessageWriter : public detail::PublishesFinished<MessageWriter<T>> {
 public:
  // Handles: resolved once (scalar<V>(), string(), ...), then used on the hot
  // path. Valid for every MessageWriter<T> of the process (copies included).
  template <class V>
  class Scalar {
    friend class MessageWriter;
    explicit Scalar(std::uint32_t at) noexcept : at_(at) {}
    std::uint32_t at_;
  };
  template <class S>
  class Struct {
    friend class MessageWriter;
    explicit Struct(std::uint32_t at) noexcept : at_(at) {}
    std::uint32_t at_;
  };
  class String {
    friend class MessageWriter;
    explicit String(std::uint32_t slot) noexcept : slot_(slot) {}
    std::uint32_t slot_;
  };
  template <class E>
  class Vector {
    friend class MessageWriter;
    explicit Vector(std::uint32_t slot) noexcept : slot_(slot) {}
    std::uint32_t slot_;
  };

  static constexpr std::size_t kDefaultMaxSize = 64 * 1024;

  // Lays out T from its registered schema. Throws Error(UnknownType) if T's
  // schema is not registered, Error(InvalidArgument) if T has fields the
  // writer cannot write (named) or its empty message exceeds `max_size`.
  explicit MessageWriter(std::size_t max_size = kDefaultMaxSize) : base_(type_of<T>(), max_size) {}

  // The handle of field `vt` (T::VT_...). Throws Error(InvalidArgument) if it
  // is not a field of T, or not of this kind and type.
  template <class V>
  [[nodiscard]] Scalar<V> scalar(flatbuffers::voffset_t vt) const {
    static_assert(!std::is_class_v<V>, "a struct field: use structure<S>()");
    return Scalar<V>(base_.inline_at(vt, detail::writer_want<V>(), "scalar"));
  }
  template <class S>
  [[nodiscard]] Struct<S> structure(flatbuffers::voffset_t vt) const {
    static_assert(std::is_class_v<S>, "a scalar field: use scalar<V>()");
    return Struct<S>(base_.inline_at(vt, detail::writer_want<S>(), "structure"));
  }
  [[nodiscard]] String string(flatbuffers::voffset_t vt) const {
    return String(base_.string_slot(vt));
  }
  template <class E>
  [[nodiscard]] Vector<E> vector(flatbuffers::voffset_t vt) const {
    return Vector<E>(base_.vector_slot(vt, detail::writer_want<E>()));
  }

  // Hot path, noexcept. Scalars and structs: one store.
  template <class V>
  void set(Scalar<V> f, std::type_identity_t<V> value) noexcept {
    std::memcpy(base_.data() + f.at_, &value, sizeof value);
  }
  template <class S>
  void set(Struct<S> f, const S& value) noexcept {
    std::memcpy(base_.data() + f.at_, &value, sizeof value);
  }
  // Strings and vectors: false if the message would exceed max_size()
  // (nothing changed), see the design above.
  [[nodiscard]] bool set(String f, std::string_view value) noexcept {
    return base_.put(f.slot_, value.data(), value.size(), value.size());
  }
  template <class E>
  [[nodiscard]] bool set(Vector<E> f, std::type_identity_t<std::span<const E>> value) noexcept {
    return base_.put(f.slot_, value.data(), value.size_bytes(), value.size());
  }

  // See the design above (rare path).
  void shrink_to_fit() noexcept { base_.shrink_to_fit(); }

  // The message as it stands, read with the generated accessors.
  [[nodiscard]] const T* operator->() const noexcept { return root(); }
  [[nodiscard]] const T& operator*() const noexcept { return *root(); }

  // try_publish(pub, correlation) and publish(pub, timeout, correlation):
  // the message as it stands, one copy into the next slot
  // (detail::PublishesFinished, core/publisher.hpp).

  [[nodiscard]] std::size_t size() const noexcept { return base_.size(); }
  [[nodiscard]] std::size_t max_size() const noexcept { return base_.max_size(); }
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept {
    return {base_.data(), base_.size()};
  }

 private:
  [[nodiscard]] const T* root() const noexcept {
    return flatbuffers::GetRoot<T>(reinterpret_cast<const std::uint8_t*>(base_.data()));
  }

  detail::MessageWriterBase base_;
};

}  // namespace shmbus
