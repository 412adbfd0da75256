#include "redrive.hpp"

#include "config.hpp"

namespace shmbus::bridge {

int run_redrive(const RedriveOptions& options) {
  const Config config = load_config(options.config_file);
  const RouteConfig* r = config.route(options.route);
  if (r == nullptr) config_fail(Origin{options.config_file, 0, "--route"}, "no route named '" + options.route + "'");
  return 1;
}

}  // namespace shmbus::bridge
