#pragma once
// bus-bridge's configuration: one YAML file (tools/bridge/bridge.example.yaml documents every
// key) or the command-line flags of the common case, parsed into plain structs.
//
// Every error names where it comes from: "<file>:<line>: <key>: <what is wrong>" (for flags,
// the file is "command line" and the key the flag). Parsing is strict: an unknown key, a bad
// pattern, a value out of range or of the wrong kind is a ConfigError, never a default in
// disguise. main() turns a ConfigError into exit code 2 before anything is started.
//
// Credentials are Secrets (transport/secret.hpp): from the file, or from the environment
// variable a `*_env` key names. They never print.
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "transport/backoff.hpp"
#include "transport/secret.hpp"
#include "transport/topic_pattern.hpp"

namespace shmbus::bridge {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where a value came from, for error messages raised after parsing (a route whose server is
// unreachable at start, a topic of another type).
struct Origin {
  std::string file;
  int line = 0;                           // 1-based; 0 when unknown
  std::string key;                        // "routes[2].type"
  [[nodiscard]] std::string str() const;  // "bridge.yaml:14: routes[2].type"
};
// Throws ConfigError("<origin>: <what>").
[[noreturn]] void config_fail(const Origin& at, const std::string& what);

struct RedisServerConfig {
  bool configured = false;
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string user;
  transport::Secret password;
  std::chrono::milliseconds connect_timeout{2000};
  Origin origin;
};

struct AmqpServerConfig {
  bool configured = false;
  std::string host = "127.0.0.1";
  std::uint16_t port = 5672;
  std::string user = "guest";
  transport::Secret password{std::string("guest")};
  std::string vhost = "/";
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::seconds heartbeat{10};
  Origin origin;
};

enum class Direction : std::uint8_t { Out, In };
// Outbound targets and inbound sources.
enum class RouteKind : std::uint8_t {
  RedisPublish,  // out: PUBLISH <prefix><topic>
  RedisStream,   // out: XADD <prefix><topic> MAXLEN ~ n; in: XREADGROUP on `stream`
  Amqp,          // out: topic exchange, routing key <prefix><topic>; in: a queue
  RedisChannel,  // in: SUBSCRIBE
  RedisPattern,  // in: PSUBSCRIBE
};
[[nodiscard]] const char* to_string(RouteKind k) noexcept;
[[nodiscard]] const char* to_string(Direction d) noexcept;

enum class Format : std::uint8_t { Json, Raw };
enum class Persistence : std::uint8_t { Auto, Always, Never };

struct RouteConfig {
  std::string name;
  Direction direction = Direction::Out;
  RouteKind kind = RouteKind::RedisPublish;
  Format format = Format::Json;
  bool required = true;                // /health is 503 while a required route is not connected
  Origin origin;                       // the route's entry (routes[i])
  std::map<std::string, Origin> keys;  // origin of each key given

  // ---- outbound
  std::optional<transport::TopicPattern> topics;  // which bus topics
  std::vector<transport::TopicPattern> exclude;   // never these (the dead-letter topic always)
  std::string prefix;                             // channel / stream / routing-key prefix
  std::uint64_t maxlen = 100'000;                 // XADD MAXLEN ~
  std::string exchange = "shmbus";                // AMQP topic exchange (durable)
  Persistence persistent = Persistence::Auto;     // Auto: persistent on reliable topics
  std::size_t window = 256;                       // unconfirmed messages in flight
  bool skip_own = true;  // don't forward what this bridge itself published (no echo)

  // ---- inbound
  std::string channel;  // redis-channel
  std::string pattern;  // redis-pattern (Redis glob)
  std::string stream;   // redis-stream
  std::string group = "bus-bridge";
  std::string consumer;               // default: the bridge's name
  std::string start = "$";            // where a new consumer group starts: "$" or "0"
  std::string queue;                  // amqp
  std::vector<std::string> bindings;  // amqp: routing-key patterns bound to `exchange`
  std::uint16_t prefetch = 256;
  std::string topic;                              // the bus topic (fixed) ...
  std::optional<transport::TopicPattern> accept;  // ... or the message's own, if it matches
  std::string type;                               // message type of a topic to create
  bool reliable = false;                          // policy of a topic to create
  std::uint32_t slot_size = 0;                    // 0: fitted to the type (default 1 KiB)
  std::uint32_t slot_count = 4096;
  std::chrono::milliseconds publish_timeout{0};  // unused: a blocked reliable topic holds
};

struct DeadLetterConfig {
  std::string topic;  // default "sys.deadletter.<bridge name>"
  std::uint32_t slot_size = 16 * 1024;
  std::uint32_t slot_count = 1024;
};

struct Config {
  std::string file = "command line";
  std::string name = "bus-bridge";
  std::string bus;
  std::string http_address = "127.0.0.1";
  std::uint16_t http_port = 0;  // 0: the OS picks one (printed at start)
  // WebSocket write coalescing under load (net::WsOptions::coalesce); 0 turns it off.
  std::chrono::microseconds http_ws_coalesce{1000};
  // Server-wide coalescing budget (net::WsOptions::max_writes_per_s); 0 turns it off.
  std::size_t http_ws_max_writes_per_s = 100'000;
  bool http_enabled = true;
  DeadLetterConfig dead_letter;
  std::chrono::milliseconds shutdown_timeout{5000};
  std::chrono::milliseconds topic_scan{250};
  transport::BackoffPolicy backoff;
  RedisServerConfig redis;
  AmqpServerConfig amqp;
  std::vector<RouteConfig> routes;
  // The `socketio:` section as given (Null if absent), parsed by the Socket.IO component.
  YAML::Node socketio;
  Origin socketio_origin;

  [[nodiscard]] const RouteConfig* route(std::string_view name) const;
};

// Parses a YAML file. Throws ConfigError.
[[nodiscard]] Config load_config(const std::string& path);
// Parses YAML text (tests, and load_config); `file` names it in errors.
[[nodiscard]] Config parse_config(const std::string& text, const std::string& file);

// The common case from flags: --bus B --redis H:P [--amqp H:P] --out PATTERN ... Each --out
// becomes one outbound route ("out-1", ...) to Redis PUBLISH (or XADD with `stream`, or AMQP
// when only --amqp is given).
struct FlagOptions {
  std::string name = "bus-bridge";
  std::string bus;
  std::string redis;  // host:port
  std::string amqp;   // host:port
  std::vector<std::string> out;
  std::string to;  // redis-publish | redis-stream | amqp (default: from the servers given)
  std::string format = "json";
  std::string prefix;
  std::string http = "127.0.0.1:0";
};
[[nodiscard]] Config config_from_flags(const FlagOptions& flags);

// Final checks shared by both paths (names unique, servers present for the routes, ...).
void validate(Config& config);

}  // namespace shmbus::bridge
