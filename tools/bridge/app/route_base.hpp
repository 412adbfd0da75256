#pragma once
// RouteBase: what outbound and inbound routes share — the route's thread and stop flag, its
// connection state as /health shows it (logged once per change, never per attempt), and the
// per-route metrics every route has (connected, reconnects, last error time).
//
// Threads: the route's own thread runs loop() and is the only writer of everything here;
// /health and /metrics read from the HTTP io thread through atomics and one mutex (the last
// error's text).
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "bridge.hpp"
#include "component.hpp"
#include "config.hpp"
#include "transport/amqp_link.hpp"
#include "transport/redis_link.hpp"  // LinkState

namespace shmbus::bridge {

// One help text for the series both directions register.
inline constexpr const char* kEchoHelp =
    "Messages dropped because they came from this bridge or its bus (no echo)";

class RouteBase : public Component {
 public:
  RouteBase(const Config& config, const RouteConfig& route);
  ~RouteBase() override;

  [[nodiscard]] std::string name() const override { return route_.name; }
  void request_stop() override { stop_.store(true, std::memory_order_release); }
  void stop() override;
  void health(nlohmann::json& out) const override;
  [[nodiscard]] bool healthy() const override {
    return !route_.required || connected_.load(std::memory_order_relaxed);
  }
  void collect(transport::MetricsRegistry& metrics) override;

 protected:
  // Registers the common metrics; call at the start of start().
  void init_metrics(Bridge& bridge);
  // A series of this route (labels route and direction), registered on the bridge's
  // metrics; after init_metrics().
  [[nodiscard]] transport::Counter& counter(const char* name, const char* help);
  [[nodiscard]] transport::Gauge& gauge(const char* name, const char* help);
  // Starts the thread running loop().
  void launch();
  virtual void loop() = 0;
  // Route-specific fields of /health (called under no lock: read atomics only).
  virtual void health_extra(nlohmann::json& out) const = 0;

  // The transport's state after each poll: logs changes, counts reconnects.
  void observe(transport::LinkState state, const std::string& last_error, std::uint64_t reconnects);
  // The same for anything with state(), last_error() and reconnects() (sinks, sources).
  template <class Link>
  void observe(const Link& link) {
    observe(link.state(), link.last_error(), link.reconnects());
  }
  // The configured servers as the transport clients take them (one place for both
  // directions: credentials, timeouts, backoff).
  [[nodiscard]] transport::RedisEndpoint redis_endpoint() const;
  [[nodiscard]] transport::AmqpEndpoint amqp_endpoint() const;
  [[nodiscard]] bool stop_requested() const noexcept {
    return stop_.load(std::memory_order_acquire);
  }
  [[nodiscard]] transport::Labels labels() const;
  // A ConfigError for a server that cannot be reached at start.
  [[noreturn]] void unreachable(const std::string& what, const std::string& error) const;

  const Config& config_;
  const RouteConfig route_;
  Bridge* bridge_ = nullptr;

  transport::Counter* reconnects_total_ = nullptr;
  transport::Gauge* connected_gauge_ = nullptr;
  transport::Gauge* last_error_time_ = nullptr;

 private:
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> connected_{false};
  std::atomic<std::uint64_t> reconnects_{0};
  std::atomic<std::uint8_t> state_{0};
  transport::LinkState logged_state_ = transport::LinkState::Disconnected;
  bool logged_once_ = false;
  mutable std::mutex error_mutex_;
  std::string last_error_;
  std::int64_t last_error_ns_ = 0;
};

}  // namespace shmbus::bridge
