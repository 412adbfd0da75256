#include "routes.hpp"

namespace shmbus::bridge {

std::unique_ptr<Component> make_route(const Config& config, const RouteConfig& route) {
  return route.direction == Direction::Out ? make_outbound_route(config, route)
                                           : make_inbound_route(config, route);
}

}  // namespace shmbus::bridge
