#pragma once
// Bridge: one bus-bridge process — the bus, its components (routes, Socket.IO), the HTTP
// endpoint (/health, /metrics), the dead-letter topic, and the shutdown sequence.
//
//   main ──> Bridge(config) ──add_component()──> start() ──> run() (waits for a signal)
//                │ owns                                          │ first SIGTERM/SIGINT
//                ├─ Bus (open_or_create)                         ├─ request_stop() all
//                ├─ Publisher on the dead-letter topic (lossy)   ├─ stop() all: flush, wait for
//                ├─ components, each with its own thread(s)      │  confirms until the deadline
//                ├─ HttpServer + its io thread                   ├─ HTTP stopped, io joined
//                └─ MetricsRegistry                              └─ exit 0 (a 2nd signal: at once)
//
// Threads: the main thread waits for signals (they are blocked in every other thread); each
// component runs its own; the io thread serves HTTP. Members said to be thread-safe may be
// called from any of them.
//
// Bus publishers: a topic has one producer per host, so inbound routes (and Socket.IO's
// POST /publish) that write the same topic share one Publisher through bus_publisher(); it
// carries a mutex because the sharers run on different threads. Every message the bridge
// publishes carries this process's pid as producer, which is how outbound routes recognise
// — and do not echo — what the bridge itself brought in.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <utility>  // before Asio (g++ 12, C++20)

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <shmbus/msg/sys_dead_letter_generated.h>
#include <shmbus/core/bus.hpp>
#include <shmbus/core/publisher.hpp>

#include "component.hpp"
#include "config.hpp"
#include "shmbus/bridge/net/http_server.hpp"
#include "transport/metrics.hpp"

namespace shmbus::bridge {

// A message that cannot be delivered, as handed to Bridge::dead_letter().
struct DeadLetterInfo {
  std::string route;           // the route (or component) that refused it
  std::string original_topic;  // bus topic, channel, stream or routing key
  std::string reason;          // words a person can act on
  sys::DeadLetterReason code = sys::DeadLetterReason::Unknown;
  std::string original_type;
  std::span<const std::byte> payload;  // as received / as it was to be sent
  std::uint64_t original_seq = 0;
  std::int64_t received_ns = 0;  // 0: now
  std::uint32_t attempts = 1;
};

// A bus Publisher shared by the components that write one topic.
struct SharedPublisher {
  std::mutex mutex;
  std::optional<Publisher> publisher;
  Topic topic;
  explicit SharedPublisher(Topic t) : topic(std::move(t)) {}
};

class Bridge {
 public:
  explicit Bridge(Config config);
  ~Bridge();
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  // Before start().
  void add_component(std::unique_ptr<Component> component);

  // Opens the bus and the dead-letter topic, starts every component, then the HTTP server.
  // On failure everything already started is stopped before the exception leaves
  // (ConfigError: a setting that cannot work -> exit 2).
  void start();
  // Blocks until SIGTERM/SIGINT (blocked in every thread by block_signals()), then shuts
  // down. A second signal during shutdown exits the process at once. Returns the exit code.
  int run();
  // The shutdown sequence (also what run() does); idempotent.
  void shutdown();
  // Call first thing in main(), before any thread exists.
  static void block_signals();

  // ---- for components (thread-safe unless said otherwise)
  [[nodiscard]] Bus& bus() noexcept { return *bus_; }
  [[nodiscard]] net::HttpServer& http() noexcept { return *http_; }
  [[nodiscard]] const Config& config() const noexcept { return config_; }
  [[nodiscard]] transport::MetricsRegistry& metrics() noexcept { return metrics_; }
  [[nodiscard]] const std::string& name() const noexcept { return config_.name; }
  [[nodiscard]] std::uint16_t http_port() const noexcept { return http_port_; }
  // Publishes a sys.DeadLetter on the bridge's dead-letter topic and counts it. Never
  // blocks (the topic is lossy); a payload too large for its slot is cut, and the reason
  // says so.
  void dead_letter(const DeadLetterInfo& info);
  // The one producer of `topic` in this process: created on first use (with `config` when
  // the topic does not exist yet; Match::TypeOnly otherwise). Throws shmbus::Error.
  [[nodiscard]] std::shared_ptr<SharedPublisher> bus_publisher(const std::string& topic,
                                                               const TopicConfig& config);
  // True once shutdown began: components stop reading.
  [[nodiscard]] bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }
  // Until when stop() may wait for confirms (set when shutdown begins).
  [[nodiscard]] std::chrono::steady_clock::time_point stop_deadline() const noexcept;
  // One log line on stderr, "bus-bridge[name]: ...", scrubbed of every configured secret.
  void log(std::string_view line) const;
  // Text with every configured secret replaced by "***".
  [[nodiscard]] std::string scrub(std::string_view text) const;

  // The /health document and its status (200 or 503), as served.
  [[nodiscard]] nlohmann::json health_json(bool& ok) const;
  [[nodiscard]] std::string metrics_text();

 private:
  void start_http();
  void stop_http();

  Config config_;
  std::optional<Bus> bus_;
  transport::MetricsRegistry metrics_;
  std::vector<std::unique_ptr<Component>> components_;
  std::size_t started_ = 0;

  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::unique_ptr<net::HttpServer> http_;
  std::thread io_thread_;
  std::uint16_t http_port_ = 0;

  std::mutex dl_mutex_;
  std::optional<Publisher> dl_publisher_;
  std::uint32_t dl_max_payload_ = 0;

  std::mutex publishers_mutex_;
  std::map<std::string, std::shared_ptr<SharedPublisher>> publishers_;

  std::atomic<bool> stopping_{false};
  std::atomic<std::int64_t> stop_deadline_ns_{0};
  std::once_flag shutdown_once_;
  mutable std::mutex log_mutex_;
};

// ns since the epoch, wall clock.
[[nodiscard]] std::int64_t now_ns() noexcept;

}  // namespace shmbus::bridge
