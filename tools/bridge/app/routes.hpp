#pragma once
// The routes of bus-bridge: Components built from the `routes:` entries of the config.
//   OutboundRoute  bus topics matching a pattern -> Redis PUBLISH / XADD, AMQP exchange
//   InboundRoute   Redis channel / pattern / stream, AMQP queue -> a bus topic
// (outbound.hpp and inbound.hpp describe each.)
#include <memory>

#include "component.hpp"
#include "config.hpp"

namespace shmbus::bridge {

[[nodiscard]] std::unique_ptr<Component> make_route(const Config& config, const RouteConfig& route);
[[nodiscard]] std::unique_ptr<Component> make_outbound_route(const Config& config,
                                                             const RouteConfig& route);
[[nodiscard]] std::unique_ptr<Component> make_inbound_route(const Config& config,
                                                            const RouteConfig& route);

}  // namespace shmbus::bridge
