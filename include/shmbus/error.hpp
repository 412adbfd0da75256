// shmbus — errors.
//
// The one error style of the library, stated once:
//
//  * Setup (opening a bus, creating a topic, attaching a publisher or a
//    subscriber, parsing JSON) reports failure by throwing shmbus::Error. Its
//    code() is a value of Errc, and its what() is a sentence a person can act
//    on: what happened, to which bus/topic, and what to do about it.
//  * The hot path (claim, publish, poll, wait) never throws and never
//    allocates. It returns [[nodiscard]] result enums (PublishResult below);
//    a consumer's losses reach it through the gap callback and counters.
//  * Broken contracts (committing a claim twice, a size larger than the claim)
//    are assertions: they are bugs in the caller, not runtime conditions.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace shmbus {

// Setup error codes. Values are stable (they appear in tool output and exit
// reasons); add new ones at the end.
enum class Errc : std::uint8_t {
  InvalidName = 1,  // a bus or topic name outside [A-Za-z0-9_-] (topics: also '.'), empty, too long
  NoSuchBus,        // open() of a bus that does not exist
  NoSuchTopic,      // open of a topic that does not exist
  ForeignSegment,   // the shared-memory object is not a shmbus segment (bad magic)
  VersionMismatch,  // the segment has another layout version
  TruncatedSegment,   // the segment is smaller than its header says
  TopicMismatch,      // the topic exists with another policy/geometry
  TypeMismatch,       // the topic carries another root type
  SchemaMismatch,     // same type name, different schema (hash)
  ProducerExists,     // another live producer owns the topic
  ConsumerTableFull,  // no free entry in the topic's consumer table
  DirectoryFull,      // no free entry in the bus directory
  UnknownType,        // no binary schema is registered for a type name
  InvalidJson,        // JSON that does not fit the topic's schema
  InvalidMessage,     // bytes that fail the FlatBuffers verifier
  InvalidArgument,    // a configuration value out of range
  Timeout,            // a blocking setup step (or RPC call) ran out of time
  SystemError,        // an OS call failed (errno in the message)
  PermissionDenied,   // a segment this user may not open, or a bus owned by another user
  NoSpace,            // /dev/shm is full: the segment could not be reserved
};

// Stable lower-case name of a code ("producer_exists").
[[nodiscard]] std::string_view to_string(Errc code) noexcept;

class Error : public std::runtime_error {
 public:
  Error(Errc code, const std::string& message) : std::runtime_error(message), code_(code) {}
  [[nodiscard]] Errc code() const noexcept { return code_; }

 private:
  Errc code_;
};

// Result of a hot-path publish. Nothing is published unless the result is Ok.
enum class [[nodiscard]] PublishResult : std::uint8_t{
    Ok = 0,
    TooLarge,    // the message does not fit the topic's slot; it is refused, never cut
    WouldBlock,  // reliable topic: a live consumer has not read the slot yet
    Timeout,     // reliable topic: still blocked when the timeout ran out
    Invalid,     // typed publish of a buffer that is not a finished FlatBuffer
};

[[nodiscard]] std::string_view to_string(PublishResult r) noexcept;

namespace detail {
// Prints "shmbus: contract violated: <what> (file:line)" and aborts.
[[noreturn]] void contract_violation(const char* what, const char* file, int line) noexcept;
}  // namespace detail

}  // namespace shmbus

// A broken caller contract: always checked (it guards shared memory), and
// fatal, because continuing would corrupt what other processes read.
#define SHMBUS_CONTRACT(cond, what)                                   \
  do {                                                                \
    if (!(cond)) [[unlikely]]                                         \
      ::shmbus::detail::contract_violation(what, __FILE__, __LINE__); \
  } while (0)
