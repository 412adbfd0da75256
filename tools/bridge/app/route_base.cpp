#include "route_base.hpp"

#include <fmt/format.h>

#include "shmbus/admin/encoding.hpp"

namespace shmbus::bridge {

RouteBase::RouteBase(const Config& config, const RouteConfig& route)
    : config_(config), route_(route) {}

RouteBase::~RouteBase() {
  RouteBase::stop();
}

void RouteBase::stop() {
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
}

transport::Labels RouteBase::labels() const {
  return {{"route", route_.name}, {"direction", to_string(route_.direction)}};
}

void RouteBase::init_metrics(Bridge& bridge) {
  bridge_ = &bridge;
  auto& m = bridge.metrics();
  reconnects_total_ = &counter("shmbus_bridge_route_reconnects_total",
                               "Reconnections of the route to its remote server");
  connected_gauge_ = &gauge("shmbus_bridge_route_connected",
                            "1 while the route is connected to its remote server");
  last_error_time_ = &gauge("shmbus_bridge_route_last_error_timestamp_seconds",
                            "Time of the route's last connection error (0: none)");
  // Created here so that a route without dead letters still shows the series at 0.
  (void)m.counter("shmbus_bridge_dead_lettered_total",
                  "Messages put on the dead-letter topic, by route", {{"route", route_.name}});
}

transport::Counter& RouteBase::counter(const char* name, const char* help) {
  return bridge_->metrics().counter(name, help, labels());
}

transport::Gauge& RouteBase::gauge(const char* name, const char* help) {
  return bridge_->metrics().gauge(name, help, labels());
}

transport::RedisEndpoint RouteBase::redis_endpoint() const {
  transport::RedisEndpoint e;
  e.host = config_.redis.host;
  e.port = config_.redis.port;
  e.user = config_.redis.user;
  e.password = config_.redis.password;
  e.connect_timeout = config_.redis.connect_timeout;
  e.backoff = config_.backoff;
  return e;
}

transport::AmqpEndpoint RouteBase::amqp_endpoint() const {
  transport::AmqpEndpoint e;
  e.host = config_.amqp.host;
  e.port = config_.amqp.port;
  e.user = config_.amqp.user;
  e.password = config_.amqp.password;
  e.vhost = config_.amqp.vhost;
  e.connect_timeout = config_.amqp.connect_timeout;
  e.heartbeat = config_.amqp.heartbeat;
  e.backoff = config_.backoff;
  return e;
}

void RouteBase::launch() {
  thread_ = std::thread([this] {
    try {
      loop();
    } catch (const std::exception& e) {
      bridge_->log(fmt::format("route {}: stopped by an error: {}", route_.name, e.what()));
      connected_.store(false, std::memory_order_relaxed);
    }
  });
}

void RouteBase::observe(transport::LinkState state, const std::string& last_error,
                        std::uint64_t reconnects) {
  const bool up = state == transport::LinkState::Ready;
  connected_.store(up, std::memory_order_relaxed);
  connected_gauge_->set(up ? 1.0 : 0.0);
  state_.store(static_cast<std::uint8_t>(state), std::memory_order_relaxed);
  const std::uint64_t before = reconnects_.exchange(reconnects, std::memory_order_relaxed);
  if (reconnects > before) reconnects_total_->inc(reconnects - before);
  // Log transitions between "up" and "down" only: attempts in between are not news.
  const bool was_up = logged_state_ == transport::LinkState::Ready;
  if (!logged_once_ || up != was_up) {
    if (up) {
      bridge_->log(fmt::format("route {}: connected", route_.name));
    } else if (logged_once_) {
      bridge_->log(fmt::format("route {}: disconnected ({}); reconnecting with backoff",
                               route_.name, last_error.empty() ? "no reason given" : last_error));
    }
    logged_state_ = state;
    logged_once_ = true;
  }
  if (!up && !last_error.empty()) {
    std::lock_guard lock(error_mutex_);
    if (last_error != last_error_) {
      last_error_ = last_error;
      last_error_ns_ = now_ns();
      last_error_time_->set(static_cast<double>(last_error_ns_) / 1e9);
    }
  }
}

void RouteBase::health(nlohmann::json& out) const {
  out["direction"] = to_string(route_.direction);
  out["kind"] = to_string(route_.kind);
  out["required"] = route_.required;
  const bool up = connected_.load(std::memory_order_relaxed);
  out["state"] = up ? "connected"
                    : transport::to_string(static_cast<transport::LinkState>(
                          state_.load(std::memory_order_relaxed)));
  out["connected"] = up;
  out["reconnects"] = reconnects_.load(std::memory_order_relaxed);
  {
    std::lock_guard lock(error_mutex_);
    if (!last_error_.empty()) {
      out["last_error"] = last_error_;
      out["last_error_time"] = utc_iso(last_error_ns_);
    }
  }
  health_extra(out);
}

void RouteBase::collect(transport::MetricsRegistry&) {}

void RouteBase::unreachable(const std::string& what, const std::string& error) const {
  const Origin& server =
      route_.kind == RouteKind::Amqp ? config_.amqp.origin : config_.redis.origin;
  config_fail(server, fmt::format("route '{}' cannot reach {} at start: {}", route_.name, what,
                                  bridge_->scrub(error)));
}

}  // namespace shmbus::bridge
