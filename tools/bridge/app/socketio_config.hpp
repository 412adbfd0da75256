#pragma once
// The `socketio:` section of bus-bridge's configuration (bridge.example.yaml documents each
// key), parsed strictly like the rest of the file: an unknown key or a value out of range is
// a ConfigError "<file>:<line>: socketio.<key>: <what is wrong>" (exit 2).
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "config.hpp"
#include "transport/secret.hpp"
#include "transport/topic_pattern.hpp"

namespace shmbus::bridge {

struct SocketIoConfig {
  bool enabled = false;  // true when the section is present, unless `enabled: false`
  std::string path = "/socket.io/";
  std::vector<std::string> namespaces{"/"};
  // Checked at CONNECT (auth payload {"token": ...}) and on POST /publish
  // (Authorization: Bearer ...). Empty: no token asked for.
  transport::Secret token;
  // Allow-lists: which topics clients may subscribe to / publish on. Default: subscribe to
  // everything but the bridge's dead-letter topic, publish nowhere.
  std::vector<transport::TopicPattern> subscribe;
  std::vector<transport::TopicPattern> publish;
  // Topics the bridge defines at start when missing ("topic=fully.qualified.Type", default
  // geometry), so clients have somewhere to publish that no other process produces.
  struct CreateTopic {
    std::string topic;
    std::string type;
  };
  std::vector<CreateTopic> create;
  bool post_publish = true;  // serve POST /publish
  std::size_t max_clients = 1000;
  std::size_t max_polling_clients = 100;
  std::size_t queue = 4096;                // Engine.IO packets queued per client
  std::uint64_t disconnect_after = 65536;  // messages missed before a client is cut off
  std::size_t max_payload = 1'000'000;     // bytes of one client packet / POST body
  std::chrono::milliseconds ping_interval{25'000};
  std::chrono::milliseconds ping_timeout{20'000};
  std::chrono::milliseconds missed_notice{100};  // how often `missed` events go out
  std::chrono::milliseconds connect_timeout{10'000};

  [[nodiscard]] bool may_subscribe(std::string_view topic) const;
  [[nodiscard]] bool may_publish(std::string_view topic) const;
};

// `node` is Config::socketio (Null: the endpoint is disabled). Throws ConfigError.
[[nodiscard]] SocketIoConfig parse_socketio_config(const YAML::Node& node, const Origin& origin);

}  // namespace shmbus::bridge
