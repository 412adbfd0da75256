// bus-inspect — internal declarations shared by the subcommands.
//
// Error style of the tool (exit codes are the user-visible contract):
//   0  success
//   1  a named error: shmbus::Error from the library (no such bus, no such
//      topic, bad JSON, live producer, ...) or Failure raised here
//   2  bad usage: CLI11 parse errors and UsageError
// Every error is one line on stderr, prefixed "bus-inspect: ".
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <shmbus/admin/bus_view.hpp>
#include <shmbus/admin/encoding.hpp>
#include <shmbus/admin/gc.hpp>
#include <shmbus/admin/snapshot.hpp>
#include <shmbus/core/bus.hpp>
#include <shmbus/core/topic.hpp>

namespace inspect {

using shmbus::base64_decode;
using shmbus::hex_decode;
using shmbus::utc_iso;
using Json = nlohmann::ordered_json;

// A named error raised by the tool itself (exit code 1).
class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A command line that parses but makes no sense (exit code 2).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ------------------------------------------------------------------ subcommands

struct ListOptions {
  std::optional<std::string> bus;
  bool json = false;
  bool no_rate = false;
  double interval_s = 0.25;  // between the two samples a rate is computed from
};
int run_list(const ListOptions& o);

struct TailOptions {
  std::string bus;
  std::string topic;
  std::int64_t count = 10;
  bool follow = false;
  bool hex = false;  // raw payloads as hex instead of base64
};
int run_tail(const TailOptions& o);

struct PublishOptions {
  std::string bus;
  std::string topic;
  std::optional<std::string> json;
  std::optional<std::string> raw_hex;
  std::optional<std::string> raw_base64;
  std::string name = "bus-inspect";
  double timeout_s = 5.0;  // reliable topics: how long to wait for room in the ring
};
int run_publish(const PublishOptions& o);

struct WatchOptions {
  std::string bus;
  double interval_s = 1.0;
  bool once = false;
  std::uint64_t iterations = 0;  // 0: until q / Ctrl-C
};
int run_watch(const WatchOptions& o);

struct SchemaOptions {
  std::string bus;
  std::string topic;
  bool json = false;
};
int run_schema(const SchemaOptions& o);

struct GcOptions {
  std::optional<std::string> bus;
  bool json = false;
  bool dry_run = false;
};
int run_gc(const GcOptions& o);

// ------------------------------------------------------------------ formatting (util.cpp)

// An aligned text table: columns separated by two spaces, no rules.
class Table {
 public:
  // A header starting with '>' is right-aligned (numbers); the '>' is not shown.
  explicit Table(std::vector<std::string> headers);
  void add(std::vector<std::string> row);
  [[nodiscard]] bool empty() const noexcept { return rows_.empty(); }
  // Lines without trailing newline, each indented by `indent` spaces.
  [[nodiscard]] std::vector<std::string> lines(std::size_t indent = 0) const;

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

// "2025-06-01 14:03:07" in local time; "-" for 0.
std::string local_time(std::int64_t ns);
// How long ago `then_ns` was, "850ms ago", "3.2s ago", "4m05s ago", "2h10m ago"; "never" for 0.
std::string ago(std::int64_t then_ns, std::int64_t now_ns);
// A duration in ns as "850ms", "3.2s", "4m05s", "2h10m", "3d04h".
std::string duration(std::int64_t ns);
// A rate as "0", "12", "1.2k", "85.3k", "1.25M" per second.
std::string rate_text(double per_second);
// 1536 -> "1.5 KiB".
std::string bytes_text(std::uint64_t bytes);

// ------------------------------------------------------------------ a live bus (render.cpp)

// The live-bus model (frames, rates, their JSON) is the library's admin layer.
using shmbus::BusView;
using shmbus::consumer_key;
using shmbus::Frame;
using shmbus::frame_json;
using shmbus::Rates;
using shmbus::rates_between;
using shmbus::TopicRow;

// Human-readable report of a frame (list BUS and watch). With watch, the
// consumer table also shows drops since the previous frame.
std::vector<std::string> render_frame(const Frame& f, const Rates& r, bool watch);

}  // namespace inspect
