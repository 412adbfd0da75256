// shmbus — a typed message built once and published many times, its scalars
// set in place in the claimed slot.
//
//   flatbuffers::FlatBufferBuilder fbb;
//   fbb.ForceDefaults(true);                       // every scalar stored: each can be set
//   fbb.Finish(md::CreateQuoteDirect(fbb, "AAPL", 0, "XNAS"), md::QuoteIdentifier());
//   const MessageTemplate<md::Quote> aapl(fbb);    // verified once, here
//   ...
//   if (auto q = aapl.try_claim(pub)) {            // claim a slot, copy the template in
//     q->mutate_bid_px(189.92);                    // FlatBuffers' mutable accessors, in the slot
//     q->mutate_seq(seq);
//     q.commit();                                  // publish (the template's size)
//   }
//
// Why: building a Quote with a FlatBufferBuilder costs ~950 instructions, the
// bus's own share of a hop ~100 (BENCHMARKS.md, issue 11). A feed handler's
// messages of one stream differ only in their scalars (prices, sizes,
// stamps); their strings and vectors (symbol, venue) do not change. A
// template per stream (per symbol) is built once; a message is then a copy
// of it into the claimed slot and a store per scalar — what the reader
// receives is an ordinary FlatBuffer of T.
//
// Checks:
//   - at construction (throws Error(InvalidMessage), nothing kept): the bytes
//     must pass the FlatBuffers verifier for T (T's file_identifier included)
//     and store every scalar and struct field of T. A field the buffer does
//     not store has no bytes to set: its mutate_ accessor would return false
//     and change nothing (a silent drop), so such a template is refused with
//     the missing fields named — build it with ForceDefaults(true). Strings,
//     vectors and tables stay as built (a vector's elements may be mutated in
//     place, its length never).
//   - at claim (result values, noexcept): PublishResult::Invalid if the topic
//     carries another type, TooLarge if the template does not fit the slot,
//     WouldBlock on a reliable topic whose ring is full; an empty claim then.
//   - mutate_ on a claim of a checked template cannot fail for a scalar or
//     struct field: the vtable is copied verbatim. set() asserts it in every
//     build (a contract violation, not a silent drop) for whoever wants the
//     check said out loud; operator-> gives the generated accessors directly.
//
// Thread safety: a MessageTemplate is immutable after construction; any
// number of threads may claim from it (each with its own Publisher).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "shmbus/core/publisher.hpp"
#include "shmbus/error.hpp"
#include "shmbus/schema/registry.hpp"
#include "shmbus/schema/verifier.hpp"

namespace shmbus {

template <class T>
class MessageTemplate;

// A claimed slot holding a copy of a MessageTemplate<T>: set its scalars
// through -> (FlatBuffers' mutate_ accessors), then commit(). Destroying it
// uncommitted aborts the claim (nothing is published). Move-only.
template <class T>
class [[nodiscard]] TemplateClaim {
 public:
  TemplateClaim() = default;

  [[nodiscard]] explicit operator bool() const noexcept { return static_cast<bool>(claim_); }
  // Ok if the claim holds a slot; otherwise why not (Invalid, TooLarge, WouldBlock).
  [[nodiscard]] PublishResult result() const noexcept { return result_; }
  // The message in the slot (only while the claim holds one).
  [[nodiscard]] T* operator->() const noexcept { return msg_; }
  [[nodiscard]] T& operator*() const noexcept { return *msg_; }
  [[nodiscard]] T* message() const noexcept { return msg_; }
  // The bytes in the slot (the template's size).
  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {claim_.data(), size_}; }
  [[nodiscard]] std::uint64_t sequence() const noexcept { return claim_.sequence(); }

  // Calls a mutate_ accessor and checks it stored the value: (msg->*mutate)(v)
  // returns false only for a field the buffer does not store, which the
  // template refused at construction.
  template <class A>
  void set(bool (T::*mutate)(A), std::type_identity_t<A> value) noexcept {
    const bool stored = (msg_->*mutate)(value);
    SHMBUS_CONTRACT(stored, "TemplateClaim::set: the field is not stored in the template");
  }

  // Publishes the message (the template's size).
  void commit(std::uint64_t correlation = 0) noexcept { claim_.commit(size_, correlation); }
  void commit_with_ts(std::uint64_t raw_ts, std::uint64_t correlation = 0) noexcept {
    claim_.commit_with_ts(size_, raw_ts, correlation);
  }
  void abort() noexcept { claim_.abort(); }

 private:
  friend class MessageTemplate<T>;
  TemplateClaim(Claim c, T* msg, std::size_t size) noexcept
      : claim_(std::move(c)), msg_(msg), size_(size), result_(claim_.result()) {}
  explicit TemplateClaim(PublishResult r) noexcept : result_(r) {}

  Claim claim_;
  T* msg_ = nullptr;
  std::size_t size_ = 0;
  PublishResult result_ = PublishResult::Ok;
};

template <class T>
class MessageTemplate {
 public:
  // From a finished buffer of T (see the checks above). Throws
  // Error(InvalidMessage) naming what is wrong, Error(UnknownType) if T's
  // schema is not registered.
  explicit MessageTemplate(std::span<const std::byte> finished) {
    const Verifier verifier(type_of<T>());
    std::string why = verifier.check(finished);
    if (why.empty()) {
      const std::vector<std::string> missing = verifier.unstored_fields(finished);
      if (!missing.empty()) {
        why = "it does not store the field" + std::string(missing.size() > 1 ? "s " : " ");
        for (std::size_t k = 0; k < missing.size(); ++k) why += (k == 0 ? "" : ", ") + missing[k];
        why +=
            " (scalars equal to their default are left out unless the builder was told "
            "otherwise), so mutate_ could not set them: call ForceDefaults(true) on the "
            "FlatBufferBuilder before building the template (structs: set every one)";
      }
    }
    if (!why.empty())
      throw Error(Errc::InvalidMessage, "MessageTemplate<" + verifier.type_name() + ">: " + why);
    // 8-byte aligned storage: the copy keeps every scalar's alignment.
    size_ = finished.size();
    storage_.resize((size_ + 7) / 8);
    std::memcpy(storage_.data(), finished.data(), size_);
    root_ = flatbuffers::ReadScalar<flatbuffers::uoffset_t>(storage_.data());
  }
  // From a finished builder (its GetBufferPointer()/GetSize()).
  explicit MessageTemplate(const flatbuffers::FlatBufferBuilder& fbb)
      : MessageTemplate(std::span<const std::byte>(
            reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()), fbb.GetSize())) {}

  // Claims a slot of `pub` and copies the template into it: hot path,
  // noexcept, no allocation. An empty claim says why (result()).
  [[nodiscard]] TemplateClaim<T> try_claim(Publisher& pub) const noexcept {
    if (!pub.accepts(bytes())) [[unlikely]]
      return TemplateClaim<T>(PublishResult::Invalid);
    Claim c = pub.try_claim(size_);
    if (!c) [[unlikely]]
      return TemplateClaim<T>(c.result());
    std::memcpy(c.data(), storage_.data(), size_);
    T* msg = reinterpret_cast<T*>(c.data() + root_);
    return TemplateClaim<T>(std::move(c), msg, size_);
  }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept {
    return {reinterpret_cast<const std::byte*>(storage_.data()), size_};
  }
  // The template's own values (read-only).
  [[nodiscard]] const T& message() const noexcept {
    return *flatbuffers::GetRoot<T>(storage_.data());
  }

 private:
  std::vector<std::uint64_t> storage_;
  std::size_t size_ = 0;
  flatbuffers::uoffset_t root_ = 0;  // the root table's offset in the buffer
};

}  // namespace shmbus
