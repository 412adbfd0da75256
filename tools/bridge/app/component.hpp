#pragma once
// Component: one part of a running bus-bridge — an outbound or inbound route, or the
// Socket.IO endpoint — started, observed and stopped by the Bridge.
//
// Lifecycle (all on the main thread unless said otherwise):
//   add_component()   before Bridge::start()
//   start(bridge)     in registration order; may throw ConfigError (a setting that cannot work:
//                     exit 2, nothing left running) or any std::exception (exit 1). A component
//                     typically starts its own thread here, or mounts handlers on bridge.http().
//   request_stop()    first signal: stop reading new input at once (every component is told
//                     before any is waited for, so they drain in parallel)
//   stop()            flush, wait for outstanding confirms until bridge.stop_deadline(), join
//                     threads, leave the rings (Subscribers deregister in their destructors)
// health()/healthy()/collect() are called from the HTTP io thread while the component runs:
// they must be thread-safe against the component's own threads.
#include <nlohmann/json.hpp>
#include <string>

#include "transport/metrics.hpp"

namespace shmbus::bridge {

class Bridge;

class Component {
 public:
  virtual ~Component();

  // Unique among the bridge's components ("md-redis", "socketio").
  [[nodiscard]] virtual std::string name() const = 0;
  virtual void start(Bridge& bridge) = 0;
  virtual void request_stop() {}
  virtual void stop() = 0;
  // Fills `out` (an object) with this component's state for GET /health: at least "state".
  virtual void health(nlohmann::json& out) const = 0;
  // False turns GET /health into 503 (a required route that is not connected).
  [[nodiscard]] virtual bool healthy() const = 0;
  // Called before each GET /metrics render: refresh gauges (lag, state) that are not
  // updated as events happen. Counters are registered once and incremented in place.
  virtual void collect(transport::MetricsRegistry& metrics) { (void)metrics; }
};

}  // namespace shmbus::bridge
