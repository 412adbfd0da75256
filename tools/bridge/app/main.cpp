// bus-bridge — carries bus topics to Redis and RabbitMQ and back.
//
//   bus-bridge --config bridge.yaml                         every route of the file
//   bus-bridge --bus demo --redis 127.0.0.1:6379 --out 'md.*'   the common case from flags
//   bus-bridge redrive --config bridge.yaml --route R [--since T]   re-inject dead letters
//
// Exit codes: 0 stopped by SIGTERM/SIGINT (or redrive done), 1 a runtime error,
// 2 bad configuration or usage (the message names file:line:key).
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include <shmbus/error.hpp>

#include "bridge.hpp"
#include "config.hpp"
#include "redrive.hpp"
#include "routes.hpp"
#include "socketio_endpoint.hpp"

namespace {

constexpr const char* kFooter = R"(Topic patterns: words separated by '.', where a whole word may be
'*' (exactly one word: md.* matches md.quotes, not md.quotes.AAPL) or, as the
last word, '>' (one or more words: md.> matches md.quotes and md.quotes.AAPL).

Credentials never go on the command line: with flags, Redis AUTH comes from
SHMBUS_BRIDGE_REDIS_USER / SHMBUS_BRIDGE_REDIS_PASSWORD and AMQP login from
SHMBUS_BRIDGE_AMQP_USER / _PASSWORD / _VHOST; a config file may name any
variable (password_env). See tools/bridge/bridge.example.yaml for every key.

HTTP: GET /health (200 when every required route is connected, else 503) and
GET /metrics (Prometheus text) on --http / bridge.http (loopback by default).

Exit codes: 0 stopped by SIGTERM/SIGINT (a second signal exits at once),
1 runtime error, 2 bad configuration or usage.)";

int fail(const std::string& message, int code) {
  std::fprintf(stderr, "bus-bridge: %s\n", message.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace shmbus::bridge;
  Bridge::block_signals();

  CLI::App app{
      "bus-bridge: carries shmbus topics to Redis and RabbitMQ, and messages from them "
      "onto the bus.",
      "bus-bridge"};
  app.footer(kFooter);
  std::string config_file;
  FlagOptions flags;
  app.add_option("-c,--config", config_file, "YAML configuration (see bridge.example.yaml)");
  app.add_option("--name", flags.name, "bridge name (logs, metrics, dead-letter topic)")
      ->capture_default_str();
  app.add_option("--bus", flags.bus, "the bus to bridge");
  app.add_option("--redis", flags.redis, "Redis server HOST:PORT");
  app.add_option("--amqp", flags.amqp, "RabbitMQ server HOST:PORT (AMQP 0-9-1)");
  app.add_option("--out", flags.out, "outbound topic pattern (repeatable), e.g. 'md.*'");
  app.add_option("--to", flags.to,
                 "redis-publish | redis-stream | amqp (default: redis-publish with --redis, "
                 "else amqp)");
  app.add_option("--format", flags.format, "json (the envelope) | raw (FlatBuffer bytes)")
      ->capture_default_str();
  app.add_option("--prefix", flags.prefix, "channel / stream / routing-key prefix");
  app.add_option("--http", flags.http, "HTTP address:port for /health and /metrics (0: any)")
      ->capture_default_str();

  RedriveOptions redrive;
  auto* c_redrive = app.add_subcommand(
      "redrive",
      "Re-inject a route's dead letters after the cause is fixed: an inbound route's are sent "
      "back to its source (channel, stream, queue) for the running bridge to take again; an "
      "outbound route's are sent to its target.");
  c_redrive->add_option("-c,--config", redrive.config_file, "the bridge's configuration")
      ->required();
  c_redrive->add_option("--route", redrive.route, "the route whose dead letters to re-inject")
      ->required();
  c_redrive->add_option("--since", redrive.since,
                        "only dead letters from then on: epoch seconds, an ISO time "
                        "(2025-06-01T12:00:00Z) or an age (90s, 15m, 2h, 1d)");
  c_redrive->add_flag("--dry-run", redrive.dry_run, "list what would be re-injected");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    if (c_redrive->parsed()) return run_redrive(redrive);
    Config config;
    if (!config_file.empty()) {
      if (!flags.bus.empty() || !flags.out.empty() || !flags.redis.empty() || !flags.amqp.empty()) {
        return fail("give either --config or the flags (--bus, --redis, --amqp, --out), not both",
                    2);
      }
      config = load_config(config_file);
    } else {
      config = config_from_flags(flags);
    }
    Bridge bridge(config);
    for (const auto& r : bridge.config().routes) bridge.add_component(make_route(config, r));
    if (auto sio = make_socketio_endpoint(bridge.config())) bridge.add_component(std::move(sio));
    bridge.start();
    bridge.log(fmt::format("running: bus '{}', {} route(s), dead letters on '{}'", config.bus,
                           config.routes.size(), config.dead_letter.topic));
    std::printf("bus-bridge: ready\n");
    std::fflush(stdout);
    return bridge.run();
  } catch (const ConfigError& e) {
    return fail(e.what(), 2);
  } catch (const std::exception& e) {
    return fail(e.what(), 1);
  }
}
