#pragma once
// MetricsRegistry: counters and gauges with labels, rendered in the Prometheus text
// exposition format (version 0.0.4) for GET /metrics.
//
// A metric family has a name, a help text and a type; each label set under it is one
// series. Registration (counter()/gauge()) takes a lock and returns a reference that
// stays valid for the registry's lifetime, so the hot path keeps the reference and
// updates it with one relaxed atomic operation (a scrape may see a value a few updates
// old; nothing orders metrics against each other). render() is sorted and stable:
// families by name, series by their label pairs (labels themselves sorted by name), so
// two scrapes of an idle bridge are byte-identical and diffs are readable.
//
// Names follow Prometheus' rules ([a-zA-Z_:][a-zA-Z0-9_:]*, labels [a-zA-Z_][a-zA-Z0-9_]*
// and not starting with "__"); counters must end in "_total" (what promtool's linter asks
// for). Breaking a rule throws std::invalid_argument at registration, with the name.
// Label values and help texts may hold anything; render() escapes them.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shmbus::bridge::transport {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  // Thread-safe, wait-free.
  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t value() const noexcept {
    return value_.load(std::memory_order_relaxed);
  }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  // Thread-safe; set() is wait-free, add() a CAS loop.
  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void add(double d) noexcept { value_.fetch_add(d, std::memory_order_relaxed); }
  [[nodiscard]] double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class MetricsRegistry {
 public:
  // The same (name, labels) returns the same object; the same name with another type
  // or another help text throws std::invalid_argument. Thread-safe.
  Counter& counter(std::string_view name, std::string_view help, Labels labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, Labels labels = {});

  // The whole registry in the text exposition format. Thread-safe.
  [[nodiscard]] std::string render() const;

  static constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

 private:
  enum class Type { Counter, Gauge };
  struct Family {
    Type type;
    std::string help;
    std::map<Labels, std::unique_ptr<Counter>> counters;
    std::map<Labels, std::unique_ptr<Gauge>> gauges;
  };
  Family& family(std::string_view name, std::string_view help, Type type, Labels& labels);

  mutable std::mutex mutex_;
  std::map<std::string, Family, std::less<>> families_;
};

// Exposed for tests: the escapes of the text format.
[[nodiscard]] std::string escape_label_value(std::string_view v);
[[nodiscard]] std::string escape_help(std::string_view v);
[[nodiscard]] std::string format_sample_value(double v);

}  // namespace shmbus::bridge::transport
