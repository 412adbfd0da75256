// shmbus — a bus: a named set of topics in shared memory on one host.
//
//   auto bus = shmbus::Bus::open_or_create("prod");
//   auto quotes = bus.topic<shmbus::md::Quote>("md.quotes", {.slot_count = 65536});
//
// A bus is its directory segment ("/dev/shm/shmbus.<bus>"): the list of its
// topics, the bus clock's calibration and a doorbell for blocking
// dispatchers. Each topic lives in a segment of its own
// ("/dev/shm/shmbus.<bus>.<topic>"), so a topic's producer and consumers
// touch nothing of any other topic's.
//
// Names: a bus name is 1-32 characters of [A-Za-z0-9_-]; a topic name is
// 1-64 characters of [A-Za-z0-9_.-] without a leading or trailing '.' or
// "..": "md.quotes.AAPL". Anything else is Error(InvalidName) saying which
// character is wrong. Participant (publisher/subscriber) names are 1-31
// printable characters without spaces.
//
// The directory never wedges: segments appear fully built or not at all
// (link(2) publication), and every ownership word in shared memory names its
// owner by pid and start time, so anything a dead process held is taken over.
//
// Thread safety: a Bus and the Topics it returns may be used from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shmbus/core/clock.hpp"
#include "shmbus/core/options.hpp"
#include "shmbus/core/topic.hpp"
#include "shmbus/detail/segment.hpp"
#include "shmbus/detail/segments.hpp"
#include "shmbus/schema/registry.hpp"

namespace shmbus {

class Publisher;
class Subscriber;

using detail::Access;

// Who may use a bus. Its segments are created mode 0600 (the creating user
// only) whatever the umask; with `group` they are 0660 and owned by that
// group, so its members can publish and subscribe. Topic segments take the
// directory's mode and group, whoever creates them.
//
// Opening a bus read-write checks who owns it: a bus (or a topic of it)
// owned by another user is refused with PermissionDenied, so nobody can
// pre-create ("squat") a bus name that another user's programs then publish
// into, unless `allow_other_owner` says the caller expects a shared bus.
struct BusOptions {
  // Topics the directory can list, in [1, 65536].
  std::uint32_t capacity = 1024;
  // A group name or numeric gid to share the bus with; "" (default): private.
  std::string group;
  // Accept a bus whose segments another user owns (a group-shared bus).
  bool allow_other_owner = false;
};

// Throw Error(InvalidName), saying what is wrong and what is allowed (the
// rules are in detail/segments.hpp, with every other fact about segments).
using detail::validate_bus_name;
using detail::validate_participant_name;
using detail::validate_topic_name;

namespace detail {
struct DirectoryState {
  Segment segment;
  DirectoryHeader* header = nullptr;
  DirectoryEntry* entries = nullptr;
  std::uint32_t capacity = 0;  // checked at open; the descriptor is never re-read
  std::int64_t created_ns = 0;
  Permissions perms;  // topic segments are created with the directory's
  bool allow_other_owner = false;
  std::string bus;
  std::unique_ptr<Clock> clock;
};
}  // namespace detail

class Bus {
 public:
  // Opens the bus, creating it if it does not exist.
  static Bus open_or_create(std::string_view name, const BusOptions& options = {});
  // Opens an existing bus; Error(NoSuchBus) if there is none.
  // Access::ReadOnly maps everything read-only (tools that only look).
  // Read-write opens refuse a bus owned by another user (BusOptions).
  static Bus open(std::string_view name, Access access = Access::ReadWrite);
  static Bus open(std::string_view name, Access access, const BusOptions& options);
  [[nodiscard]] static bool exists(std::string_view name);
  // Names of every bus on this host, sorted.
  [[nodiscard]] static std::vector<std::string> list();
  // Unlinks the bus's directory and every topic segment; returns how many.
  // Processes that have them mapped keep working on the unlinked memory and
  // new opens create a fresh bus: use it when nothing runs on the bus (tests,
  // scripts). `bus-inspect gc` removes only what is dead.
  static std::size_t remove(std::string_view name);

  // Creates the topic, or opens it and checks it against `config` (Match
  // says how strictly). The creator's config wins a creation race; a loser
  // whose config differs gets TopicMismatch.
  [[nodiscard]] Topic topic(std::string_view name, const TopicConfig& config,
                            Match match = Match::Exact);
  template <class T>
  [[nodiscard]] Topic topic(std::string_view name, TopicConfig config = {},
                            Match match = Match::Exact) {
    config.type = type_of<T>();
    return topic(name, config, match);
  }
  // Opens an existing topic whatever its config; Error(NoSuchTopic) if none.
  [[nodiscard]] Topic open_topic(std::string_view name) const;
  // Waits until the topic exists (its producer creates it), then opens it.
  // For a subscriber that starts first without fixing the topic's
  // geometry. Error(Timeout) naming the topic if it does not appear.
  [[nodiscard]] Topic wait_for_topic(std::string_view name, std::chrono::nanoseconds timeout) const;
  [[nodiscard]] bool has_topic(std::string_view name) const;
  // Removes one topic: frees its directory entry and unlinks its segment.
  // Processes that have it mapped keep working on the unlinked memory. For
  // topics a program owns and is done with (a Requester's pair); `bus-inspect
  // gc` is the tool for everything else. Returns whether anything was removed.
  bool remove_topic(std::string_view name);
  // Topics listed in the directory, sorted.
  [[nodiscard]] std::vector<std::string> topic_names() const;

  // Shorthands for a topic and a publisher or subscriber on it. A publisher
  // (the side that defines the topic) matches the config exactly; a
  // subscriber without a config accepts the topic's geometry and policy and
  // checks only the type (creating the topic with defaults if it is missing).
  [[nodiscard]] Publisher publisher(std::string_view topic, const TopicConfig& config = {},
                                    const PublisherOptions& options = {});
  template <class T>
  [[nodiscard]] Publisher publisher(std::string_view topic, TopicConfig config = {},
                                    const PublisherOptions& options = {});
  [[nodiscard]] Subscriber subscriber(std::string_view topic,
                                      const SubscriberOptions& options = {});
  [[nodiscard]] Subscriber subscriber(std::string_view topic, const TopicConfig& config,
                                      const SubscriberOptions& options = {});
  template <class T>
  [[nodiscard]] Subscriber subscriber(std::string_view topic,
                                      const SubscriberOptions& options = {});
  template <class T>
  [[nodiscard]] Subscriber subscriber(std::string_view topic, TopicConfig config,
                                      const SubscriberOptions& options = {});

  [[nodiscard]] const std::string& name() const noexcept { return d_->bus; }
  [[nodiscard]] const Clock& clock() const noexcept { return *d_->clock; }
  [[nodiscard]] Access access() const noexcept {
    return d_->segment.writable() ? Access::ReadWrite : Access::ReadOnly;
  }

 private:
  friend struct detail::Internals;
  explicit Bus(std::shared_ptr<detail::DirectoryState> d) noexcept : d_(std::move(d)) {}
  std::shared_ptr<detail::DirectoryState> d_;
};

}  // namespace shmbus
