// Strict YAML parsing: each mapping is read through a Section that knows its allowed keys, so
// a typo is an error naming the file, the line and the key, never a silently ignored setting.
#include "config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <shmbus/core/bus.hpp>
#include <shmbus/error.hpp>

namespace shmbus::bridge {

std::string Origin::str() const {
  if (line > 0) return fmt::format("{}:{}: {}", file, line, key);
  return fmt::format("{}: {}", file, key);
}

void config_fail(const Origin& at, const std::string& what) {
  throw ConfigError(at.str() + ": " + what);
}

const char* to_string(RouteKind k) noexcept {
  switch (k) {
    case RouteKind::RedisPublish:
      return "redis-publish";
    case RouteKind::RedisStream:
      return "redis-stream";
    case RouteKind::Amqp:
      return "amqp";
    case RouteKind::RedisChannel:
      return "redis-channel";
    case RouteKind::RedisPattern:
      return "redis-pattern";
  }
  return "?";
}

const char* to_string(Direction d) noexcept {
  return d == Direction::Out ? "out" : "in";
}

const RouteConfig* Config::route(std::string_view wanted) const {
  for (const auto& r : routes) {
    if (r.name == wanted) return &r;
  }
  return nullptr;
}

namespace {

// One YAML mapping with its allowed keys. Reading a key marks it used; done() rejects the rest.
class Section {
 public:
  Section(const YAML::Node& node, std::string file, std::string path)
      : node_(node), file_(std::move(file)), path_(std::move(path)) {
    if (!node_.IsMap()) config_fail(here(), "expected a mapping of keys");
  }

  [[nodiscard]] Origin here() const {
    return Origin{file_, node_.Mark().line >= 0 ? node_.Mark().line + 1 : 0, path_};
  }
  [[nodiscard]] Origin at(const std::string& key) const {
    const YAML::Node n = node_[key];
    const int line = n ? n.Mark().line + 1 : here().line;
    return Origin{file_, line, join(key)};
  }
  [[nodiscard]] std::string join(const std::string& key) const {
    return path_.empty() ? key : path_ + "." + key;
  }
  [[nodiscard]] bool has(const std::string& key) {
    allowed_.insert(key);
    return static_cast<bool>(node_[key]) && !node_[key].IsNull();
  }
  [[nodiscard]] YAML::Node node(const std::string& key) {
    allowed_.insert(key);
    return node_[key];
  }

  std::string str(const std::string& key, std::string fallback = {}) {
    if (!has(key)) return fallback;
    const YAML::Node n = node_[key];
    if (!n.IsScalar()) config_fail(at(key), "expected a string");
    return n.Scalar();
  }
  std::string required_str(const std::string& key, const std::string& what) {
    if (!has(key)) config_fail(here(), fmt::format("missing key '{}' ({})", join(key), what));
    std::string v = str(key);
    if (v.empty()) config_fail(at(key), "must not be empty");
    return v;
  }
  template <class T>
  T integer(const std::string& key, T fallback, T lo, T hi) {
    if (!has(key)) return fallback;
    const YAML::Node n = node_[key];
    long long v = 0;
    std::size_t used = 0;
    const std::string s = n.IsScalar() ? n.Scalar() : std::string();
    try {
      v = std::stoll(s, &used, 10);
    } catch (const std::exception&) {
      used = 0;
    }
    if (!n.IsScalar() || used != s.size() || s.empty()) {
      config_fail(at(key), fmt::format("expected an integer, got '{}'", s));
    }
    if (v < static_cast<long long>(lo) || v > static_cast<long long>(hi)) {
      config_fail(at(key), fmt::format("{} is out of range [{}, {}]", v, lo, hi));
    }
    return static_cast<T>(v);
  }
  bool boolean(const std::string& key, bool fallback) {
    if (!has(key)) return fallback;
    const std::string s = node_[key].IsScalar() ? node_[key].Scalar() : std::string();
    if (s == "true" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "no" || s == "off") return false;
    config_fail(at(key), fmt::format("expected true or false, got '{}'", s));
  }
  std::string choice(const std::string& key, std::string fallback,
                     std::initializer_list<const char*> options) {
    std::string v = str(key, fallback);
    for (const char* o : options) {
      if (v == o) return v;
    }
    std::string list;
    for (const char* o : options) list += (list.empty() ? "" : ", ") + std::string(o);
    config_fail(at(key), fmt::format("'{}' is not one of: {}", v, list));
  }
  std::vector<std::string> strings(const std::string& key) {
    std::vector<std::string> out;
    if (!has(key)) return out;
    const YAML::Node n = node_[key];
    if (n.IsScalar()) {
      out.push_back(n.Scalar());
    } else if (n.IsSequence()) {
      for (const auto& e : n) {
        if (!e.IsScalar()) config_fail(at(key), "expected a list of strings");
        out.push_back(e.Scalar());
      }
    } else {
      config_fail(at(key), "expected a string or a list of strings");
    }
    return out;
  }
  transport::TopicPattern pattern(const std::string& key) {
    std::string error;
    auto p = transport::TopicPattern::parse(str(key), error);
    if (!p) config_fail(at(key), "bad topic pattern: " + error);
    return *p;
  }
  // A secret from `key` or from the environment variable `key_env` names.
  std::optional<transport::Secret> secret(const std::string& key) {
    const std::string env_key = key + "_env";
    if (has(key) && has(env_key)) {
      config_fail(at(env_key), fmt::format("give '{}' or '{}', not both", key, env_key));
    }
    if (has(env_key)) {
      const std::string var = str(env_key);
      const char* v = std::getenv(var.c_str());
      if (v == nullptr) {
        config_fail(at(env_key), fmt::format("environment variable {} is not set", var));
      }
      return transport::Secret(v);
    }
    if (has(key)) return transport::Secret(str(key));
    return std::nullopt;
  }
  std::string plain_or_env(const std::string& key, std::string fallback) {
    const std::string env_key = key + "_env";
    if (has(env_key)) {
      const std::string var = str(env_key);
      const char* v = std::getenv(var.c_str());
      if (v == nullptr) {
        config_fail(at(env_key), fmt::format("environment variable {} is not set", var));
      }
      return v;
    }
    return str(key, std::move(fallback));
  }
  void done() const {
    for (const auto& kv : node_) {
      const std::string k = kv.first.as<std::string>();
      if (allowed_.count(k) == 0) {
        std::string list;
        for (const auto& a : allowed_) list += (list.empty() ? "" : ", ") + a;
        config_fail(Origin{file_, kv.first.Mark().line + 1, join(k)},
                    fmt::format("unknown key (allowed here: {})", list));
      }
    }
  }
  [[nodiscard]] const std::string& file() const { return file_; }

 private:
  YAML::Node node_;
  std::string file_;
  std::string path_;
  std::set<std::string> allowed_;
};

std::chrono::milliseconds millis(Section& s, const std::string& key, std::chrono::milliseconds d,
                                 long long lo, long long hi) {
  return std::chrono::milliseconds(s.integer<long long>(key, d.count(), lo, hi));
}

void check_name(const Origin& at, const std::string& name, const char* what) {
  const bool ok =
      !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
      });
  if (!ok) {
    config_fail(
        at, fmt::format("'{}' is not a valid {} (1-64 characters of [A-Za-z0-9_-])", name, what));
  }
}

void parse_bridge(Section s, Config& c) {
  c.name = s.str("name", c.name);
  check_name(s.at("name"), c.name, "bridge name");
  c.bus = s.required_str("bus", "the bus to bridge");
  try {
    validate_bus_name(c.bus);
  } catch (const Error& e) {
    config_fail(s.at("bus"), e.what());
  }
  if (s.has("http")) {
    Section h(s.node("http"), s.file(), s.join("http"));
    c.http_enabled = h.boolean("enabled", true);
    c.http_address = h.str("address", c.http_address);
    c.http_port = h.integer<std::uint16_t>("port", 0, 0, 65535);
    c.http_ws_coalesce = std::chrono::microseconds(
        h.integer<long long>("ws_coalesce_us", c.http_ws_coalesce.count(), 0, 100'000));
    c.http_ws_max_writes_per_s =
        h.integer<std::size_t>("ws_max_writes_per_s", c.http_ws_max_writes_per_s, 0, 100'000'000);
    h.done();
  }
  if (s.has("dead_letter")) {
    Section d(s.node("dead_letter"), s.file(), s.join("dead_letter"));
    c.dead_letter.topic = d.str("topic");
    c.dead_letter.slot_size =
        d.integer<std::uint32_t>("slot_size", c.dead_letter.slot_size, 256, 1u << 20);
    c.dead_letter.slot_count =
        d.integer<std::uint32_t>("slot_count", c.dead_letter.slot_count, 2, 1u << 20);
    if ((c.dead_letter.slot_count & (c.dead_letter.slot_count - 1)) != 0) {
      config_fail(d.at("slot_count"), "must be a power of two");
    }
    if (c.dead_letter.slot_size % 64 != 0)
      config_fail(d.at("slot_size"), "must be a multiple of 64");
    d.done();
  }
  c.shutdown_timeout = millis(s, "shutdown_timeout_ms", c.shutdown_timeout, 0, 600'000);
  c.topic_scan = millis(s, "topic_scan_ms", c.topic_scan, 10, 60'000);
  if (s.has("backoff")) {
    Section b(s.node("backoff"), s.file(), s.join("backoff"));
    c.backoff.initial = millis(b, "initial_ms", c.backoff.initial, 1, 3'600'000);
    c.backoff.max = millis(b, "max_ms", c.backoff.max, 1, 3'600'000);
    if (c.backoff.max < c.backoff.initial) config_fail(b.at("max_ms"), "must be >= initial_ms");
    b.done();
  }
  s.done();
}

std::uint16_t port_of(Section& s, std::uint16_t fallback) {
  return s.integer<std::uint16_t>("port", fallback, 1, 65535);
}

void parse_redis(Section s, RedisServerConfig& r) {
  r.configured = true;
  r.origin = s.here();
  r.host = s.str("host", r.host);
  r.port = port_of(s, r.port);
  r.user = s.plain_or_env("user", "");
  if (auto p = s.secret("password")) r.password = *p;
  r.connect_timeout = millis(s, "connect_timeout_ms", r.connect_timeout, 10, 600'000);
  s.done();
}

void parse_amqp(Section s, AmqpServerConfig& a) {
  a.configured = true;
  a.origin = s.here();
  a.host = s.str("host", a.host);
  a.port = port_of(s, a.port);
  a.user = s.plain_or_env("user", a.user);
  if (auto p = s.secret("password")) a.password = *p;
  a.vhost = s.str("vhost", a.vhost);
  a.connect_timeout = millis(s, "connect_timeout_ms", a.connect_timeout, 10, 600'000);
  a.heartbeat = std::chrono::seconds(s.integer<int>("heartbeat_s", 10, 0, 3600));
  s.done();
}

RouteConfig parse_route(Section s, const Config& c) {
  RouteConfig r;
  r.origin = s.here();
  r.name = s.required_str("name", "the route's name, used in /health, /metrics and logs");
  check_name(s.at("name"), r.name, "route name");
  const std::string dir = s.choice("direction", "", {"out", "in"});
  r.direction = dir == "out" ? Direction::Out : Direction::In;
  r.format = s.choice("format", "json", {"json", "raw"}) == "json" ? Format::Json : Format::Raw;
  r.required = s.boolean("required", true);
  if (r.direction == Direction::Out) {
    const std::string to = s.choice("to", "", {"redis-publish", "redis-stream", "amqp"});
    r.kind = to == "redis-publish"  ? RouteKind::RedisPublish
             : to == "redis-stream" ? RouteKind::RedisStream
                                    : RouteKind::Amqp;
    if (!s.has("topics")) config_fail(s.here(), "missing key '" + s.join("topics") + "'");
    r.topics = s.pattern("topics");
    for (const auto& e : s.strings("exclude")) {
      std::string error;
      auto p = transport::TopicPattern::parse(e, error);
      if (!p) config_fail(s.at("exclude"), "bad topic pattern: " + error);
      r.exclude.push_back(*p);
    }
    r.prefix = s.str("prefix", "");
    r.skip_own = s.boolean("skip_own", true);
    if (r.kind == RouteKind::RedisStream) {
      r.maxlen = s.integer<std::uint64_t>("maxlen", r.maxlen, 0, 1ULL << 40);
    }
    if (r.kind == RouteKind::Amqp) {
      r.exchange = s.str("exchange", r.exchange);
      const std::string p = s.choice("persistent", "auto", {"auto", "always", "never"});
      r.persistent = p == "auto"     ? Persistence::Auto
                     : p == "always" ? Persistence::Always
                                     : Persistence::Never;
    }
    r.window = s.integer<std::size_t>("window", r.kind == RouteKind::Amqp ? 256 : 1024, 1, 65536);
  } else {
    const std::string from =
        s.choice("from", "", {"redis-channel", "redis-pattern", "redis-stream", "amqp"});
    r.kind = from == "redis-channel"   ? RouteKind::RedisChannel
             : from == "redis-pattern" ? RouteKind::RedisPattern
             : from == "redis-stream"  ? RouteKind::RedisStream
                                       : RouteKind::Amqp;
    switch (r.kind) {
      case RouteKind::RedisChannel:
        r.channel = s.required_str("channel", "Redis channel");
        break;
      case RouteKind::RedisPattern:
        r.pattern = s.required_str("pattern", "Redis glob");
        break;
      case RouteKind::RedisStream:
        r.stream = s.required_str("stream", "Redis stream key");
        r.group = s.str("group", r.group);
        r.consumer = s.str("consumer", c.name);
        r.start = s.choice("start", "$", {"$", "0"});
        break;
      case RouteKind::Amqp:
        r.queue = s.required_str("queue", "AMQP queue");
        r.exchange = s.str("exchange", "");
        r.bindings = s.strings("bindings");
        if (!r.bindings.empty() && r.exchange.empty()) {
          config_fail(s.at("bindings"), "bindings need an 'exchange' to bind to");
        }
        r.prefetch = s.integer<std::uint16_t>("prefetch", r.prefetch, 1, 65535);
        break;
      default:
        break;
    }
    if (s.has("topic") == s.has("accept")) {
      config_fail(s.here(), fmt::format("give exactly one of '{}' (a fixed bus topic) or '{}' "
                                        "(a pattern the message's own topic must match)",
                                        s.join("topic"), s.join("accept")));
    }
    if (s.has("topic")) {
      r.topic = s.str("topic");
      try {
        validate_topic_name(r.topic);
      } catch (const Error& e) {
        config_fail(s.at("topic"), e.what());
      }
    } else {
      r.accept = s.pattern("accept");
    }
    r.type = s.str("type", "");
    r.reliable = s.choice("policy", "lossy", {"lossy", "reliable"}) == "reliable";
    r.slot_size = s.integer<std::uint32_t>("slot_size", 0, 0, 1u << 20);
    if (r.slot_size % 64 != 0) config_fail(s.at("slot_size"), "must be a multiple of 64");
    r.slot_count = s.integer<std::uint32_t>("slot_count", r.slot_count, 2, 1u << 24);
    if ((r.slot_count & (r.slot_count - 1)) != 0) {
      config_fail(s.at("slot_count"), "must be a power of two");
    }
  }
  for (const char* k : {"name",   "direction", "format",    "required",   "to",       "from",
                        "topics", "exclude",   "prefix",    "maxlen",     "exchange", "persistent",
                        "window", "channel",   "pattern",   "stream",     "group",    "consumer",
                        "start",  "queue",     "bindings",  "prefetch",   "topic",    "accept",
                        "type",   "policy",    "slot_size", "slot_count", "skip_own"}) {
    if (s.has(k)) r.keys[k] = s.at(k);
  }
  s.done();
  return r;
}

}  // namespace

Config parse_config(const std::string& text, const std::string& file) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}:{}: not valid YAML: {}", file, e.mark.line + 1, e.msg));
  }
  Config c;
  c.file = file;
  if (!root.IsMap()) throw ConfigError(file + ": expected a YAML mapping at the top");
  try {
    Section top(root, file, "");
    if (!top.has("bridge")) config_fail(top.here(), "missing section 'bridge' (name, bus, ...)");
    parse_bridge(Section(top.node("bridge"), file, "bridge"), c);
    if (top.has("redis")) parse_redis(Section(top.node("redis"), file, "redis"), c.redis);
    if (top.has("amqp")) parse_amqp(Section(top.node("amqp"), file, "amqp"), c.amqp);
    if (top.has("socketio")) {
      c.socketio = top.node("socketio");
      c.socketio_origin = top.at("socketio");
    }
    if (top.has("routes")) {
      const YAML::Node routes = top.node("routes");
      if (!routes.IsSequence()) config_fail(top.at("routes"), "expected a list of routes");
      for (std::size_t i = 0; i < routes.size(); ++i) {
        c.routes.push_back(parse_route(Section(routes[i], file, fmt::format("routes[{}]", i)), c));
      }
    }
    top.done();
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}:{}: {}", file, e.mark.line + 1, e.msg));
  }
  validate(c);
  return c;
}

Config load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot read the configuration file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), path);
}

namespace {

void split_host_port(const std::string& flag, const std::string& v, std::string& host,
                     std::uint16_t& port, bool allow_zero = false) {
  const auto colon = v.rfind(':');
  Origin at{"command line", 0, flag};
  if (colon == std::string::npos || colon == 0)
    config_fail(at, "expected HOST:PORT, got '" + v + "'");
  host = v.substr(0, colon);
  try {
    const int p = std::stoi(v.substr(colon + 1));
    if (p < (allow_zero ? 0 : 1) || p > 65535) throw std::out_of_range("port");
    port = static_cast<std::uint16_t>(p);
  } catch (const std::exception&) {
    config_fail(at, "bad port in '" + v + "'");
  }
}

}  // namespace

Config config_from_flags(const FlagOptions& f) {
  Config c;
  c.name = f.name;
  check_name(Origin{"command line", 0, "--name"}, c.name, "bridge name");
  c.bus = f.bus;
  if (c.bus.empty()) config_fail(Origin{"command line", 0, "--bus"}, "missing (or give --config)");
  try {
    validate_bus_name(c.bus);
  } catch (const Error& e) {
    config_fail(Origin{"command line", 0, "--bus"}, e.what());
  }
  // Credentials for the flags path come from the environment only (never argv: ps shows it).
  if (!f.redis.empty()) {
    c.redis.configured = true;
    split_host_port("--redis", f.redis, c.redis.host, c.redis.port);
    if (const char* u = std::getenv("SHMBUS_BRIDGE_REDIS_USER")) c.redis.user = u;
    if (const char* p = std::getenv("SHMBUS_BRIDGE_REDIS_PASSWORD")) {
      c.redis.password = transport::Secret(p);
    }
    c.redis.origin = Origin{"command line", 0, "--redis"};
  }
  if (!f.amqp.empty()) {
    c.amqp.configured = true;
    split_host_port("--amqp", f.amqp, c.amqp.host, c.amqp.port);
    if (const char* u = std::getenv("SHMBUS_BRIDGE_AMQP_USER")) c.amqp.user = u;
    if (const char* p = std::getenv("SHMBUS_BRIDGE_AMQP_PASSWORD")) {
      c.amqp.password = transport::Secret(p);
    }
    if (const char* v = std::getenv("SHMBUS_BRIDGE_AMQP_VHOST")) c.amqp.vhost = v;
    c.amqp.origin = Origin{"command line", 0, "--amqp"};
  }
  std::string host;
  split_host_port("--http", f.http, host, c.http_port, /*allow_zero=*/true);
  c.http_address = host;
  std::string to = f.to;
  if (to.empty()) to = !f.redis.empty() ? "redis-publish" : "amqp";
  if (to != "redis-publish" && to != "redis-stream" && to != "amqp") {
    config_fail(Origin{"command line", 0, "--to"}, "'" + to +
                                                       "' is not one of: redis-publish, "
                                                       "redis-stream, amqp");
  }
  if (f.format != "json" && f.format != "raw") {
    config_fail(Origin{"command line", 0, "--format"}, "'" + f.format + "' is not json or raw");
  }
  int i = 0;
  for (const auto& p : f.out) {
    RouteConfig r;
    r.name = fmt::format("out-{}", ++i);
    r.direction = Direction::Out;
    r.kind = to == "redis-publish"  ? RouteKind::RedisPublish
             : to == "redis-stream" ? RouteKind::RedisStream
                                    : RouteKind::Amqp;
    r.format = f.format == "json" ? Format::Json : Format::Raw;
    r.prefix = f.prefix;
    r.window = r.kind == RouteKind::Amqp ? 256 : 1024;
    r.origin = Origin{"command line", 0, "--out " + p};
    std::string error;
    r.topics = transport::TopicPattern::parse(p, error);
    if (!r.topics) config_fail(r.origin, "bad topic pattern: " + error);
    c.routes.push_back(std::move(r));
  }
  if (c.routes.empty())
    config_fail(Origin{"command line", 0, "--out"},
                "give at least one --out PATTERN (or --config FILE)");
  validate(c);
  return c;
}

void validate(Config& c) {
  if (c.dead_letter.topic.empty()) c.dead_letter.topic = "sys.deadletter." + c.name;
  try {
    validate_topic_name(c.dead_letter.topic);
  } catch (const Error& e) {
    throw ConfigError(c.file + ": bridge.dead_letter.topic: " + e.what());
  }
  std::set<std::string> names;
  for (auto& r : c.routes) {
    if (!names.insert(r.name).second)
      config_fail(r.origin, "route name '" + r.name + "' is used twice");
    const bool redis = r.kind != RouteKind::Amqp;
    if (redis && !c.redis.configured) {
      config_fail(r.origin, fmt::format("route '{}' needs a 'redis' section (host, port)", r.name));
    }
    if (!redis && !c.amqp.configured) {
      config_fail(r.origin, fmt::format("route '{}' needs an 'amqp' section (host, port)", r.name));
    }
    if (r.consumer.empty()) r.consumer = c.name;
    if (r.direction == Direction::In && !r.type.empty()) {
      // A name that resolves to nothing is caught here rather than at the first message.
      try {
        (void)SchemaRegistry::instance().find(r.type);
      } catch (const Error& e) {
        auto it = r.keys.find("type");
        config_fail(it != r.keys.end() ? it->second : r.origin, e.what());
      }
    }
  }
}

}  // namespace shmbus::bridge
