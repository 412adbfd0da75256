#include "socketio_config.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <limits>
#include <set>

namespace shmbus::bridge {

namespace {

// Reads the keys of one mapping, remembering which were asked for, so that an unknown key
// (a typo) is reported instead of ignored.
class Keys {
 public:
  Keys(const YAML::Node& node, const Origin& origin) : node_(node), origin_(origin) {
    if (!node_.IsMap())
      config_fail(origin_, "expected a mapping of keys (see bridge.example.yaml)");
  }
  [[nodiscard]] Origin at(const std::string& key) const {
    const YAML::Node n = node_[key];
    return Origin{origin_.file, n ? n.Mark().line + 1 : origin_.line, origin_.key + "." + key};
  }
  [[nodiscard]] bool has(const std::string& key) {
    seen_.insert(key);
    return static_cast<bool>(node_[key]) && !node_[key].IsNull();
  }
  std::string str(const std::string& key, std::string fallback) {
    if (!has(key)) return fallback;
    if (!node_[key].IsScalar()) config_fail(at(key), "expected a string");
    return node_[key].as<std::string>();
  }
  bool boolean(const std::string& key, bool fallback) {
    if (!has(key)) return fallback;
    const std::string s = str(key, "");
    if (s == "true" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "no" || s == "off") return false;
    config_fail(at(key), fmt::format("expected true or false, got '{}'", s));
  }
  std::uint64_t integer(const std::string& key, std::uint64_t fallback, std::uint64_t lo,
                        std::uint64_t hi) {
    if (!has(key)) return fallback;
    const std::string s = str(key, "");
    char* end = nullptr;
    const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || s[0] == '-' || end == nullptr || *end != '\0') {
      config_fail(at(key), fmt::format("expected a whole number, got '{}'", s));
    }
    if (v < lo || v > hi)
      config_fail(at(key), fmt::format("{} is out of range [{}, {}]", v, lo, hi));
    return v;
  }
  std::vector<std::string> list(const std::string& key, std::vector<std::string> fallback) {
    if (!has(key)) return fallback;
    const YAML::Node n = node_[key];
    std::vector<std::string> out;
    if (n.IsScalar()) return {n.as<std::string>()};
    if (!n.IsSequence()) config_fail(at(key), "expected a string or a list of strings");
    for (const auto& e : n) {
      if (!e.IsScalar()) config_fail(at(key), "expected a list of strings");
      out.push_back(e.as<std::string>());
    }
    return out;
  }
  std::vector<transport::TopicPattern> patterns(const std::string& key,
                                                std::vector<std::string> fallback) {
    std::vector<transport::TopicPattern> out;
    for (const auto& p : list(key, std::move(fallback))) {
      std::string error;
      auto pattern = transport::TopicPattern::parse(p, error);
      if (!pattern) config_fail(at(key), "bad topic pattern: " + error);
      out.push_back(std::move(*pattern));
    }
    return out;
  }
  void reject_unknown() const {
    for (const auto& kv : node_) {
      const auto k = kv.first.as<std::string>();
      if (seen_.count(k) == 0) {
        std::string allowed;
        for (const auto& s : seen_) allowed += (allowed.empty() ? "" : ", ") + s;
        config_fail(at(k), fmt::format("unknown key (allowed here: {})", allowed));
      }
    }
  }

 private:
  YAML::Node node_;
  Origin origin_;
  std::set<std::string> seen_;
};

bool any_match(const std::vector<transport::TopicPattern>& list, std::string_view topic) {
  for (const auto& p : list) {
    if (p.matches(topic)) return true;
  }
  return false;
}

}  // namespace

bool SocketIoConfig::may_subscribe(std::string_view topic) const {
  return any_match(subscribe, topic);
}
bool SocketIoConfig::may_publish(std::string_view topic) const {
  return any_match(publish, topic);
}

SocketIoConfig parse_socketio_config(const YAML::Node& node, const Origin& origin) {
  SocketIoConfig c;
  if (!node || node.IsNull()) return c;
  Keys k(node, origin);
  c.enabled = k.boolean("enabled", true);
  c.path = k.str("path", c.path);
  if (c.path.empty() || c.path.front() != '/') config_fail(k.at("path"), "must start with '/'");
  if (c.path.back() != '/') c.path += '/';
  c.namespaces = k.list("namespaces", c.namespaces);
  for (const auto& n : c.namespaces) {
    if (n.empty() || n.front() != '/' || n.find_first_of(",?") != std::string::npos) {
      config_fail(
          k.at("namespaces"),
          fmt::format("'{}' is not a namespace: it starts with '/' and has no ',' or '?'", n));
    }
  }
  const bool has_token = k.has("token");
  const bool has_env = k.has("token_env");
  if (has_token && has_env) config_fail(k.at("token_env"), "give 'token' or 'token_env', not both");
  if (has_token) c.token = transport::Secret(k.str("token", ""));
  if (has_env) {
    const std::string var = k.str("token_env", "");
    const char* v = std::getenv(var.c_str());
    if (v == nullptr)
      config_fail(k.at("token_env"), fmt::format("environment variable {} is not set", var));
    c.token = transport::Secret(v);
  }
  if ((has_token || has_env) && c.token.empty()) {
    config_fail(k.at(has_token ? "token" : "token_env"), "the token must not be empty");
  }
  c.subscribe = k.patterns("subscribe", {">"});
  c.publish = k.patterns("publish", {});
  for (const auto& item : k.list("create", {})) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size()) {
      config_fail(k.at("create"), fmt::format("'{}': expected \"topic=type\", e.g. "
                                              "\"signals.manual=shmbus.strategy.Signal\"",
                                              item));
    }
    SocketIoConfig::CreateTopic t{item.substr(0, eq), item.substr(eq + 1)};
    if (!c.may_publish(t.topic)) {
      config_fail(k.at("create"), fmt::format("'{}' is not in socketio.publish: clients could "
                                              "not publish on it",
                                              t.topic));
    }
    c.create.push_back(std::move(t));
  }
  c.post_publish = k.boolean("post_publish", c.post_publish);
  constexpr auto kMax = std::numeric_limits<std::uint32_t>::max();
  c.max_clients = k.integer("max_clients", c.max_clients, 1, 100'000);
  c.max_polling_clients = k.integer("max_polling_clients", c.max_polling_clients, 1, 100'000);
  c.queue = k.integer("queue", c.queue, 16, 1'000'000);
  c.disconnect_after = k.integer("disconnect_after", c.disconnect_after, 1, kMax);
  c.max_payload = k.integer("max_payload", c.max_payload, 1024, 64u << 20);
  c.ping_interval = std::chrono::milliseconds(k.integer(
      "ping_interval_ms", static_cast<std::uint64_t>(c.ping_interval.count()), 50, 600'000));
  c.ping_timeout = std::chrono::milliseconds(k.integer(
      "ping_timeout_ms", static_cast<std::uint64_t>(c.ping_timeout.count()), 50, 600'000));
  c.missed_notice = std::chrono::milliseconds(k.integer(
      "missed_notice_ms", static_cast<std::uint64_t>(c.missed_notice.count()), 10, 60'000));
  c.connect_timeout = std::chrono::milliseconds(k.integer(
      "connect_timeout_ms", static_cast<std::uint64_t>(c.connect_timeout.count()), 100, 600'000));
  k.reject_unknown();
  return c;
}

}  // namespace shmbus::bridge
