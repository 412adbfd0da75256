// shmbus — a typed message built once and published many times, its scalars
// set in place between messages.
//
//   flatbuffers::FlatBufferBuilder fbb;
//   fbb.ForceDefaults(true);                       // every scalar stored: each can be set
//   fbb.Finish(md::CreateQuoteDirect(fbb, "AAPL", 0, "XNAS"), md::QuoteIdentifier());
//   MessageTemplate<md::Quote> aapl(fbb);          // verified once, here
//   ...
//   aapl->mutate_bid_px(189.92);                   // FlatBuffers' mutable accessors
//   aapl.set(&md::Quote::mutate_seq, seq);         // the same, asserting the field is stored
//   if (aapl.try_publish(pub) != PublishResult::Ok) { ... }   // one copy into the slot
//
// Why: building a Quote with a FlatBufferBuilder costs ~950 instructions, the
// bus's own share of a hop ~100 (BENCHMARKS.md, issue 11). A feed handler's
// messages of one stream differ only in their scalars (prices, sizes,
// stamps); their strings and vectors (symbol, venue) do not change. A
// template per stream (per symbol) is built once; each message is then a
// store per changed scalar into the template's own buffer and one copy into
// the claimed slot — what the reader receives is an ordinary FlatBuffer of T.
//
// Why the scalars are set in the template's buffer and not in the slot after
// copying the template there: a mutate_ accessor reads the table's vtable
// before it stores, and in the slot those are bytes the copy has just
// written into lines this core does not own yet (the consumer read them a
// lap ago): the reads wait for the copy's stores, the stores for a
// cross-core transfer, and the transfer moves onto the hop's critical path
// (measured: Quote round trip 1.77 x its floor that way, against 1.56 x with
// the FlatBufferBuilder and ~1.1 x this way; BENCHMARKS.md). Here the
// accessors work in this process's own cache and the slot only receives
// stores.
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
//   - mutate_ of a scalar or struct field of a checked template cannot fail:
//     the accessors change values, never the layout. set() asserts it in
//     every build (a contract violation, never a silent drop) for whoever
//     wants the check said out loud; -> gives the generated accessors.
//   - at publish (result values, noexcept, as Publisher::try_publish):
//     Invalid if the topic carries another type, TooLarge if the message
//     does not fit the topic's slot, WouldBlock on a full reliable ring.
//
// Thread safety: a MessageTemplate is a value owned by one thread at a time
// (it is mutated between messages); copy it to give each thread its own.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "shmbus/core/publisher.hpp"
#include "shmbus/error.hpp"
#include "shmbus/schema/registry.hpp"
#include "shmbus/schema/verifier.hpp"

namespace shmbus {

template <class T>
class MessageTemplate : public detail::PublishesFinished<MessageTemplate<T>> {
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
    // 8-byte aligned storage: every scalar keeps its alignment.
    size_ = finished.size();
    storage_.resize((size_ + 7) / 8);
    std::memcpy(storage_.data(), finished.data(), size_);
  }
  // From a finished builder (its GetBufferPointer()/GetSize()).
  explicit MessageTemplate(const flatbuffers::FlatBufferBuilder& fbb)
      : MessageTemplate(std::span<const std::byte>(
            reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()), fbb.GetSize())) {}

  // The message, its scalars mutable in place (FlatBuffers' mutate_ accessors).
  [[nodiscard]] T* operator->() noexcept { return root(); }
  [[nodiscard]] const T* operator->() const noexcept { return root(); }
  [[nodiscard]] T& operator*() noexcept { return *root(); }
  [[nodiscard]] const T& operator*() const noexcept { return *root(); }

  // Calls a mutate_ accessor and asserts it stored the value: mutate_ returns
  // false only for a field the buffer does not store, which the constructor
  // refused.
  template <class A>
  void set(bool (T::*mutate)(A), std::type_identity_t<A> value) noexcept {
    const bool stored = (root()->*mutate)(value);
    SHMBUS_CONTRACT(stored, "MessageTemplate::set: the field is not stored in the template");
  }

  // try_publish(pub, correlation) and publish(pub, timeout, correlation):
  // the message as it stands, one copy into the next slot
  // (detail::PublishesFinished, core/publisher.hpp).

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept {
    return {reinterpret_cast<const std::byte*>(storage_.data()), size_};
  }

 private:
  [[nodiscard]] T* root() noexcept {
    return flatbuffers::GetMutableRoot<T>(reinterpret_cast<std::uint8_t*>(storage_.data()));
  }
  [[nodiscard]] const T* root() const noexcept {
    return flatbuffers::GetRoot<T>(reinterpret_cast<const std::uint8_t*>(storage_.data()));
  }

  std::vector<std::uint64_t> storage_;
  std::size_t size_ = 0;
};

}  // namespace shmbus
