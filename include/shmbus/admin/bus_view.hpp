// shmbus — a live bus seen read-only: snapshots over time, rates between
// them, and their JSON form (bus-inspect list/watch, bus-bridge's /metrics).
//
// Everything here maps segments with Access::ReadOnly and reads counters:
// a write would fault, so "reading does not disturb the hot path" is enforced
// by the MMU, not only promised. Rates are differences of two snapshots of
// monotonic counters (head for topics, delivered for consumers) divided by the
// time between them; a consumer's delivered count is published in cursor
// batches, so its rate is exact only over intervals long against a batch.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "shmbus/admin/snapshot.hpp"
#include "shmbus/core/bus.hpp"
#include "shmbus/core/topic.hpp"

namespace shmbus {

struct TopicRow {
  std::string name;
  std::optional<TopicSnapshot> snap;  // empty when the topic cannot be read
  std::string problem;                // why not
};

struct Frame {
  std::string bus;
  bool exists = false;  // false: no such bus (any more)
  std::int64_t created_ns = 0;
  std::uint32_t capacity = 0;
  bool tsc_clock = false;
  std::vector<TopicRow> topics;  // sorted by name
  std::int64_t wall_ns = 0;      // when it was taken
  std::chrono::steady_clock::time_point at;
};

// Per-topic and per-consumer rates between two frames (msgs/s).
struct Rates {
  bool valid = false;
  std::map<std::string, double> topic;             // topic -> published/s
  std::map<std::string, double> consumer;          // consumer_key -> delivered/s
  std::map<std::string, std::uint64_t> new_drops;  // consumer_key -> drops since the previous frame
};
[[nodiscard]] std::string consumer_key(const std::string& topic, const ConsumerSnapshot& c);
[[nodiscard]] Rates rates_between(const Frame& before, const Frame& after);

// The frame as one JSON object (the schema bus-inspect list --json prints).
[[nodiscard]] std::string frame_json(const Frame& f, const Rates& r);

// A bus mapped read-only, its topics kept mapped between samples (a
// topic segment that is replaced, e.g. removed and created again, is
// mapped afresh). Never writes shared memory; never registers.
// Thread safety: one thread at a time.
class BusView {
 public:
  // Throws Error(NoSuchBus / InvalidName / ...) if the bus cannot be opened.
  explicit BusView(std::string bus);
  // A snapshot of every topic. With reopen, a bus that vanished or was
  // created again is looked for again (watch) instead of reported gone.
  [[nodiscard]] Frame sample(bool reopen = false);

 private:
  struct Cached {
    Topic topic;
    ino_t inode;
  };
  void open_bus();
  std::string name_;
  std::optional<Bus> bus_;
  ino_t bus_inode_ = 0;
  std::map<std::string, Cached> topics_;
};

}  // namespace shmbus
