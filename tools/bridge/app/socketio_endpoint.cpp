#include "socketio_endpoint.hpp"

#include <utility>  // before Asio (g++ 12, C++20)

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include <shmbus/admin/envelope.hpp>
#include <shmbus/core/subscriber.hpp>
#include <shmbus/error.hpp>
#include <shmbus/schema/json_codec.hpp>
#include <shmbus/schema/registry.hpp>

#include "bridge.hpp"
#include "shmbus/bridge/socketio/socketio_server.hpp"

namespace shmbus::bridge {

namespace {

using json = nlohmann::json;
using sio::SocketId;
using namespace std::chrono_literals;

// Packets handed to the io thread and not yet sent: beyond this the reader skips messages
// (counted as missed by their clients) rather than let memory grow without bound.
constexpr std::int64_t kMaxBacklog = 16'384;
// Distinct client names shown in shmbus_bridge_sio_consumed_total; more share "other".
constexpr std::size_t kMaxConsumerLabels = 256;

// "42" + nsp + '[' "topic" ',' envelope ']': the event packet written around an envelope that
// is already JSON text, so the envelope is produced once and never parsed again.
std::string event_packet(std::string_view nsp, std::string_view event, std::string_view arg) {
  std::string out;
  out.reserve(arg.size() + event.size() + nsp.size() + 16);
  out += "42";
  if (nsp != "/") {
    out += nsp;
    out += ',';
  }
  out += '[';
  out += json(event).dump();
  out += ',';
  out += arg;
  out += ']';
  return out;
}

bool equal_constant_time(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  }
  return diff == 0 && !b.empty();
}

// A client-chosen name, safe as a metrics label.
std::string consumer_name(const json& auth) {
  if (!auth.is_object()) return "anonymous";
  const auto it = auth.find("consumer");
  if (it == auth.end() || !it->is_string()) return "anonymous";
  std::string s;
  for (const char c : it->get<std::string>()) {
    if (s.size() == 64) break;
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == ':';
    s += ok ? c : '_';
  }
  return s.empty() ? "anonymous" : s;
}

struct Subscription {
  SocketId socket;
  std::string nsp;
  transport::TopicPattern pattern;
  bool binary;
};

struct PublishOutcome {
  json body;
  net::http::status status = net::http::status::ok;
};

PublishOutcome publish_error(net::http::status status, std::string error) {
  return {json{{"ok", false}, {"error", std::move(error)}}, status};
}

}  // namespace

struct SocketIoEndpoint::Impl {
  SocketIoConfig cfg;
  Bridge* bridge = nullptr;
  std::unique_ptr<sio::SocketIoServer> server;
  std::optional<boost::asio::steady_timer> notice_timer;

  // ---- io thread only
  struct Client {
    std::string consumer;
    std::string nsp;
    std::uint64_t missed_total = 0;
    std::uint64_t missed_unreported = 0;
    bool cut = false;
    transport::Counter* consumed = nullptr;
  };
  std::unordered_map<SocketId, Client> clients;
  bool notifying = false;      // a `missed` notice is being sent
  bool notice_failed = false;  // ... and the client's queue refused it
  struct Codec {
    std::uint64_t hash;
    JsonCodec codec;
  };
  std::map<std::string, Codec> codecs;  // publish: one JSON codec per topic
  std::size_t consumer_labels = 0;

  // ---- shared: the subscription list (io thread writes, reader thread copies)
  std::mutex subs_mutex;
  std::vector<Subscription> subs;
  std::atomic<std::uint64_t> subs_version{0};

  // ---- reader thread
  std::thread reader;
  std::atomic<bool> stop_reading{false};
  std::atomic<std::int64_t> backlog{0};
  std::atomic<std::size_t> topics_read{0};

  // ---- metrics (registered at start; incremented in place)
  transport::Counter* m_slow_cut = nullptr;
  transport::Counter* m_missed = nullptr;
  transport::Counter* m_backlog_skipped = nullptr;
  transport::Counter* m_gaps = nullptr;
  transport::Counter* m_read = nullptr;
  transport::Counter* m_pub_ok = nullptr;
  transport::Counter* m_pub_err = nullptr;
  transport::Counter* m_rejected_token = nullptr;
  transport::Counter* m_events_out = nullptr;
  std::uint64_t last_events_out = 0;
  // Engine.IO sessions closed, by reason; HTTP/upgrade requests refused (bad EIO, sid,
  // transport, method). Copied from the protocol layer's tallies on the io thread.
  std::array<transport::Counter*, static_cast<std::size_t>(sio::CloseReason::kCount)> m_closed{};
  std::array<std::uint64_t, static_cast<std::size_t>(sio::CloseReason::kCount)> last_closed{};
  std::array<std::uint64_t, static_cast<std::size_t>(sio::CloseReason::kCount)> unlogged_closed{};
  transport::Counter* m_handshake_errors = nullptr;
  std::uint64_t last_handshake_errors = 0;
  std::uint64_t unlogged_handshake_errors = 0;

  explicit Impl(SocketIoConfig c) : cfg(std::move(c)) {}

  // ------------------------------------------------------------------ setup
  void start(Bridge& b) {
    bridge = &b;
    if (!b.config().http_enabled) {
      config_fail(b.config().socketio_origin,
                  "the Socket.IO endpoint is served on the bridge's HTTP server: set "
                  "bridge.http.enabled: true (or socketio.enabled: false)");
    }
    // The dead-letter topic carries other routes' refused payloads: never to clients.
    auto& m = b.metrics();
    m_slow_cut = &m.counter("shmbus_bridge_sio_slow_disconnects_total",
                            "Socket.IO clients disconnected for falling too far behind");
    m_missed = &m.counter("shmbus_bridge_sio_missed_total",
                          "Messages not delivered to a Socket.IO client whose queue was full");
    m_backlog_skipped =
        &m.counter("shmbus_bridge_sio_backlog_skipped_total",
                   "Messages the reader skipped because the io thread was too far behind");
    m_gaps = &m.counter("shmbus_bridge_sio_gap_messages_total",
                        "Messages the bridge's own reader lost to lapping (reported as gaps)");
    m_read = &m.counter("shmbus_bridge_sio_messages_read_total",
                        "Messages read from the bus for Socket.IO clients (once per topic)");
    m_pub_ok = &m.counter("shmbus_bridge_sio_published_total",
                          "Messages published onto the bus by Socket.IO clients or POST /publish",
                          {{"result", "ok"}});
    m_pub_err = &m.counter("shmbus_bridge_sio_published_total",
                           "Messages published onto the bus by Socket.IO clients or POST /publish",
                           {{"result", "error"}});
    m_rejected_token = &m.counter("shmbus_bridge_sio_auth_rejected_total",
                                  "CONNECTs and POST /publish refused for a missing or bad token");
    m_events_out =
        &m.counter("shmbus_bridge_sio_events_out_total", "Socket.IO events queued to clients");
    for (std::size_t i = 0; i < m_closed.size(); ++i) {
      m_closed[i] = &m.counter(
          "shmbus_bridge_sio_sessions_closed_total", "Engine.IO sessions closed, by reason",
          {{"reason", std::string(to_string(static_cast<sio::CloseReason>(i)))}});
    }
    m_handshake_errors = &m.counter(
        "shmbus_bridge_sio_handshake_errors_total",
        "Engine.IO HTTP requests and upgrades refused (bad EIO, transport, sid, method)");

    for (const auto& t : cfg.create) create_topic(b, t);

    sio::SocketIoOptions o;
    o.path = cfg.path;
    o.namespaces = cfg.namespaces;
    o.connect_timeout = cfg.connect_timeout;
    o.engine.ping_interval = cfg.ping_interval;
    o.engine.ping_timeout = cfg.ping_timeout;
    o.engine.max_payload = cfg.max_payload;
    o.engine.max_sessions = cfg.max_clients;
    o.engine.max_polling_sessions = cfg.max_polling_clients;
    o.engine.max_queued_packets = cfg.queue;
    server = std::make_unique<sio::SocketIoServer>(b.http(), o);
    server->on_connect = [this](const sio::ConnectRequest& r) { return on_connect(r); };
    server->on_connected = [this](SocketId id, std::string_view nsp, const json& auth) {
      Client c;
      c.consumer = consumer_name(auth);
      c.nsp = std::string(nsp);
      clients.emplace(id, std::move(c));
    };
    server->on_disconnect = [this](SocketId id, std::string_view) {
      clients.erase(id);
      remove_subscriptions(id, nullptr);
    };
    server->on_event = [this](SocketId id, std::string_view event, json& args, sio::Ack ack) {
      on_event(id, event, args, std::move(ack));
    };
    server->on_overflow = [this](SocketId id, std::uint64_t, std::size_t) { on_overflow(id); };

    if (cfg.post_publish) {
      b.http().route(net::http::verb::post, "/publish",
                     [this](const net::Request& req) { return on_post_publish(req); });
    }
    notice_timer.emplace(b.http().context());
    arm_notice_timer();
    reader = std::thread([this] { read_loop(); });
    b.log(fmt::format("socketio: serving {} (namespaces {}) on the HTTP port; token {}", cfg.path,
                      fmt::join(cfg.namespaces, " "),
                      cfg.token.empty() ? "not required" : "required"));
  }

  // socketio.create: defines the topic (default geometry) unless it exists, whatever its
  // config then; an unknown type or a bad name is a config error (exit 2).
  void create_topic(Bridge& b, const SocketIoConfig::CreateTopic& t) {
    try {
      if (b.bus().has_topic(t.topic)) return;
      TopicConfig tc;
      tc.type = SchemaRegistry::instance().find(t.type);
      (void)b.bus().topic(t.topic, tc, Match::TypeOnly);
      b.log(fmt::format("socketio: created topic {} ({}) for clients to publish on", t.topic,
                        t.type));
    } catch (const Error& e) {
      config_fail(
          b.config().socketio_origin,
          fmt::format("socketio.create: cannot create '{}' as {}: {}", t.topic, t.type, e.what()));
    }
  }

  void stop() {
    stop_reading.store(true, std::memory_order_relaxed);
    if (reader.joinable()) reader.join();
    if (!server) return;
    // The protocol layer lives on the io thread: close and destroy it there while the io
    // thread still runs (the Bridge stops HTTP after its components).
    auto done = std::make_shared<std::promise<void>>();
    auto fut = done->get_future();
    bridge->http().post([this, done] {
      notice_timer.reset();
      server->close_all();
      server.reset();
      done->set_value();
    });
    if (fut.wait_for(3s) != std::future_status::ready) {
      // The io thread is not running (start failed before HTTP started): nothing else
      // touches them, and both must go before the io_context does.
      notice_timer.reset();
      server.reset();
    }
  }

  // ------------------------------------------------------------------ io thread
  sio::ConnectResult on_connect(const sio::ConnectRequest& r) {
    if (!cfg.token.empty()) {
      const json* t = nullptr;
      if (r.auth.is_object()) {
        const auto it = r.auth.find("token");
        if (it != r.auth.end() && it->is_string()) t = &*it;
      }
      if (t == nullptr || !equal_constant_time(t->get<std::string>(), cfg.token.reveal())) {
        m_rejected_token->inc();
        return sio::ConnectResult::reject(
            "invalid token: connect with auth {\"token\": \"...\"} as set in the bridge's "
            "socketio.token");
      }
    }
    if (clients.size() >= cfg.max_clients) {
      return sio::ConnectResult::reject(
          fmt::format("too many clients: this bridge serves at most {} (socketio.max_clients)",
                      cfg.max_clients));
    }
    return sio::ConnectResult::accept();
  }

  void on_event(SocketId id, std::string_view event, json& args, sio::Ack ack) {
    const json arg = args.is_array() && !args.empty() ? args[0] : json();
    auto answer = [&](json result) {
      if (ack) {
        ack(json::array({std::move(result)}));
      } else if (result.is_object() && !result.value("ok", true)) {
        // No callback to answer: the client still learns why.
        server->emit(id, "bridge_error", json::array({std::move(result)}));
      }
    };
    if (event == "subscribe") {
      answer(subscribe(id, arg));
    } else if (event == "unsubscribe") {
      answer(unsubscribe(id, arg));
    } else if (event == "publish") {
      PublishOutcome o = publish(arg);
      answer(std::move(o.body));
    } else if (event == "consumed") {
      const auto it = clients.find(id);
      if (it == clients.end()) return;
      if (it->second.consumed == nullptr)
        it->second.consumed = &consumed_counter(it->second.consumer);
      it->second.consumed->inc();
      if (ack) ack(json::array({json{{"ok", true}}}));
    } else if (ack) {
      ack(json::array({json{{"ok", false},
                            {"error", fmt::format("unknown event '{}': the bridge understands "
                                                  "subscribe, unsubscribe, publish, consumed",
                                                  event)}}}));
    }
  }

  transport::Counter& consumed_counter(const std::string& consumer) {
    static constexpr std::string_view help =
        "Messages Socket.IO clients confirmed with a `consumed` event, by client name";
    auto& m = bridge->metrics();
    // Registration is idempotent; cap how many names a client population can create.
    if (consumer_labels >= kMaxConsumerLabels) {
      return m.counter("shmbus_bridge_sio_consumed_total", help, {{"client", "other"}});
    }
    ++consumer_labels;
    return m.counter("shmbus_bridge_sio_consumed_total", help, {{"client", consumer}});
  }

  // Patterns from a subscribe/unsubscribe argument; false with `error` set on bad input.
  static bool parse_patterns(const json& arg, std::vector<transport::TopicPattern>& out,
                             bool& binary, std::string& error) {
    json list = arg;
    binary = false;
    if (arg.is_object()) {
      list = arg.value("topics", json());
      const auto b = arg.find("binary");
      if (b != arg.end()) {
        if (!b->is_boolean()) {
          error = "\"binary\" must be true or false";
          return false;
        }
        binary = b->get<bool>();
      }
    }
    if (list.is_string()) list = json::array({list});
    if (!list.is_array() || list.empty()) {
      error =
          "expected a list of topic patterns, e.g. [\"md.*\"] (or {\"topics\": [...], "
          "\"binary\": true})";
      return false;
    }
    for (const auto& p : list) {
      if (!p.is_string()) {
        error = "topic patterns are strings, got " + p.dump();
        return false;
      }
      std::string e;
      auto pat = transport::TopicPattern::parse(p.get<std::string>(), e);
      if (!pat) {
        error = "bad topic pattern: " + e;
        return false;
      }
      out.push_back(std::move(*pat));
    }
    return true;
  }

  [[nodiscard]] bool deliverable(const std::string& topic) const {
    return cfg.may_subscribe(topic) && topic != bridge->config().dead_letter.topic;
  }

  json subscribe(SocketId id, const json& arg) {
    const auto client = clients.find(id);
    if (client == clients.end()) return json{{"ok", false}, {"error", "not connected"}};
    std::vector<transport::TopicPattern> patterns;
    bool binary = false;
    std::string error;
    if (!parse_patterns(arg, patterns, binary, error)) return json{{"ok", false}, {"error", error}};
    for (const auto& p : patterns) {
      if (p.is_exact() && !deliverable(p.str())) {
        return json{{"ok", false},
                    {"error", fmt::format("not allowed: topic '{}' is outside this bridge's "
                                          "socketio.subscribe list",
                                          p.str())}};
      }
    }
    std::vector<std::string> names;
    try {
      names = bridge->bus().topic_names();
    } catch (const std::exception& e) {
      return json{{"ok", false},
                  {"error", std::string("cannot list the bus's topics: ") + e.what()}};
    }
    json matched = json::array();
    for (const auto& n : names) {
      if (!deliverable(n)) continue;
      for (const auto& p : patterns) {
        if (p.matches(n)) {
          matched.push_back(n);
          break;
        }
      }
    }
    {
      std::lock_guard lock(subs_mutex);
      for (auto& p : patterns) {
        bool found = false;
        for (auto& s : subs) {
          if (s.socket == id && s.pattern.str() == p.str()) {
            s.binary = binary;
            found = true;
          }
        }
        if (!found) subs.push_back(Subscription{id, client->second.nsp, std::move(p), binary});
      }
      subs_version.fetch_add(1, std::memory_order_release);
    }
    return json{{"ok", true}, {"topics", std::move(matched)}};
  }

  json unsubscribe(SocketId id, const json& arg) {
    std::vector<transport::TopicPattern> patterns;
    bool binary = false;
    std::string error;
    if (!parse_patterns(arg, patterns, binary, error)) return json{{"ok", false}, {"error", error}};
    json left = json::array();
    remove_subscriptions(id, &patterns, &left);
    return json{{"ok", true}, {"patterns", std::move(left)}};
  }

  // Removes `id`'s subscriptions (those of `only`, or all); `left` gets the remaining ones.
  void remove_subscriptions(SocketId id, const std::vector<transport::TopicPattern>* only,
                            json* left = nullptr) {
    std::lock_guard lock(subs_mutex);
    std::erase_if(subs, [&](const Subscription& s) {
      if (s.socket != id) return false;
      if (only == nullptr) return true;
      for (const auto& p : *only) {
        if (p.str() == s.pattern.str()) return true;
      }
      return false;
    });
    if (left != nullptr) {
      for (const auto& s : subs) {
        if (s.socket == id) left->push_back(s.pattern.str());
      }
    }
    subs_version.fetch_add(1, std::memory_order_release);
  }

  void on_overflow(SocketId id) {
    const auto it = clients.find(id);
    if (it == clients.end()) return;
    if (notifying) {
      notice_failed = true;  // the notice itself did not fit: retried at the next tick
      return;
    }
    Client& c = it->second;
    ++c.missed_total;
    ++c.missed_unreported;
    m_missed->inc();
    if (c.missed_total >= cfg.disconnect_after && !c.cut) {
      c.cut = true;
      m_slow_cut->inc();
      bridge->log(
          fmt::format("socketio: client '{}' (socket {}) missed {} messages "
                      "(socketio.disconnect_after {}): disconnected",
                      c.consumer, id, c.missed_total, cfg.disconnect_after));
      server->disconnect(id, true);
    }
  }

  void arm_notice_timer() {
    notice_timer->expires_after(cfg.missed_notice);
    notice_timer->async_wait([this](const boost::system::error_code& ec) {
      if (ec || !server) return;
      send_missed_notices();
      sync_closes(true);
      arm_notice_timer();
    });
  }

  void send_missed_notices() {
    std::vector<std::pair<SocketId, std::uint64_t>> due;
    for (auto& [id, c] : clients) {
      if (c.missed_unreported > 0 && !c.cut) due.emplace_back(id, c.missed_unreported);
    }
    for (const auto& [id, count] : due) {
      const auto it = clients.find(id);
      if (it == clients.end()) continue;
      notifying = true;
      notice_failed = false;
      server->emit(id, "missed",
                   json::array({json{{"count", count}, {"total", it->second.missed_total}}}));
      notifying = false;
      const auto again = clients.find(id);
      if (!notice_failed && again != clients.end()) again->second.missed_unreported -= count;
    }
  }

  // Called on the io thread with the sockets a message was skipped for (reader backlog).
  void add_missed(const std::vector<SocketId>& ids, std::uint64_t n) {
    for (const SocketId id : ids) {
      const auto it = clients.find(id);
      if (it == clients.end()) continue;
      for (std::uint64_t i = 0; i < n && !it->second.cut; ++i) on_overflow(id);
    }
  }

  // ------------------------------------------------------------------ publish (io thread)
  PublishOutcome publish(const json& body) {
    PublishOutcome o = publish_inner(body);
    (o.body.value("ok", false) ? m_pub_ok : m_pub_err)->inc();
    if (body.is_object() && body.contains("message_id")) o.body["message_id"] = body["message_id"];
    return o;
  }

  PublishOutcome publish_inner(const json& body) {
    using st = net::http::status;
    if (!body.is_object()) {
      return publish_error(st::bad_request,
                           "expected an object {\"topic\", \"message\", \"producer\", "
                           "\"message_id\"}");
    }
    const auto t = body.find("topic");
    if (t == body.end() || !t->is_string()) {
      return publish_error(st::bad_request, "\"topic\" is missing or not a string");
    }
    const std::string topic = t->get<std::string>();
    const auto msg = body.find("message");
    if (msg == body.end() || !(msg->is_object() || msg->is_string())) {
      return publish_error(st::bad_request,
                           "\"message\" is missing: give the message as a JSON object (or a "
                           "string holding one)");
    }
    if (!cfg.may_publish(topic) || topic == bridge->config().dead_letter.topic) {
      return publish_error(st::forbidden,
                           fmt::format("not allowed: publishing on '{}' is outside this "
                                       "bridge's socketio.publish list",
                                       topic));
    }
    Bus& bus = bridge->bus();
    std::optional<Topic> handle;
    try {
      if (bus.has_topic(topic)) handle.emplace(bus.open_topic(topic));
    } catch (const Error& e) {
      if (e.code() != Errc::NoSuchTopic && e.code() != Errc::InvalidName) {
        return publish_error(st::internal_server_error, e.what());
      }
    }
    if (!handle) {
      return publish_error(st::not_found,
                           fmt::format("unknown topic '{}' on bus '{}': the bridge publishes "
                                       "only on topics that exist (their producer or "
                                       "bus-inspect creates them)",
                                       topic, bus.name()));
    }
    if (handle->type_name().empty()) {
      return publish_error(st::bad_request,
                           fmt::format("topic '{}' is raw (untyped): JSON can only be published "
                                       "on a typed topic",
                                       topic));
    }
    std::vector<std::byte> bytes;
    try {
      auto c = codecs.find(topic);
      if (c == codecs.end() || c->second.hash != handle->schema_hash()) {
        codecs.erase(topic);
        c = codecs
                .emplace(topic, Codec{handle->schema_hash(),
                                      JsonCodec(handle->schema(), handle->type_name())})
                .first;
      }
      bytes = c->second.codec.from_json(msg->is_string() ? msg->get<std::string>() : msg->dump());
    } catch (const Error& e) {
      return publish_error(st::bad_request,
                           fmt::format("message does not fit {} (the type of '{}'): {}",
                                       handle->type_name(), topic, e.what()));
    }
    if (bytes.size() > handle->max_payload()) {
      return publish_error(st::payload_too_large,
                           fmt::format("too large: the message is {} bytes as a FlatBuffer, "
                                       "topic '{}' carries at most {}",
                                       bytes.size(), topic, handle->max_payload()));
    }
    std::shared_ptr<SharedPublisher> pub;
    try {
      pub = bridge->bus_publisher(topic, TopicConfig{});
    } catch (const Error& e) {
      return publish_error(
          e.code() == Errc::ProducerExists ? st::conflict : st::internal_server_error,
          fmt::format("cannot publish on '{}': {}", topic, e.what()));
    }
    std::lock_guard lock(pub->mutex);
    if (!pub->publisher) return publish_error(st::service_unavailable, "the bridge is stopping");
    const std::uint64_t seq = pub->publisher->next_sequence();
    const PublishResult r = pub->publisher->try_publish(std::span<const std::byte>(bytes));
    switch (r) {
      case PublishResult::Ok:
        return {json{{"ok", true}, {"seq", seq}}, st::ok};
      case PublishResult::WouldBlock:
        return publish_error(st::service_unavailable,
                             fmt::format("topic '{}' is full: a consumer of this reliable topic "
                                         "is behind; nothing was published, retry later",
                                         topic));
      default:
        return publish_error(st::internal_server_error,
                             fmt::format("publish on '{}' failed: {}", topic, to_string(r)));
    }
  }

  net::Response on_post_publish(const net::Request& req) {
    using st = net::http::status;
    auto reply = [&](const PublishOutcome& o) {
      return net::make_response(req, o.status, o.body.dump() + "\n", "application/json");
    };
    if (!cfg.token.empty()) {
      const auto h = req.find(net::http::field::authorization);
      const std::string given = h == req.end() ? std::string() : std::string(h->value());
      if (given.rfind("Bearer ", 0) != 0 ||
          !equal_constant_time(given.substr(7), cfg.token.reveal())) {
        m_rejected_token->inc();
        m_pub_err->inc();
        return reply(publish_error(st::unauthorized,
                                   "invalid token: send 'Authorization: Bearer <token>' as set "
                                   "in the bridge's socketio.token"));
      }
    }
    if (req.body().size() > cfg.max_payload) {
      m_pub_err->inc();
      return reply(
          publish_error(st::payload_too_large, fmt::format("too large: the body is {} bytes, "
                                                           "socketio.max_payload is {}",
                                                           req.body().size(), cfg.max_payload)));
    }
    const json body = json::parse(req.body(), nullptr, false);
    if (body.is_discarded()) {
      m_pub_err->inc();
      return reply(publish_error(st::bad_request, "the body is not JSON"));
    }
    return reply(publish(body));
  }

  // ------------------------------------------------------------------ reader thread
  struct Reader {
    Subscriber sub;
    std::uint64_t schema_hash;
    EnvelopeWriter env;
    std::string topic;
    // Targets by namespace: the packet is encoded once per namespace.
    std::map<std::string, std::vector<SocketId>> json_to;
    std::map<std::string, std::vector<SocketId>> binary_to;
    std::uint64_t skipped = 0;  // messages skipped for the backlog, not yet told
    bool observer = false;      // not in the consumer table (a reliable topic)
  };

  void read_loop() {
    std::map<std::string, Reader> readers;
    std::vector<Subscription> local;
    std::uint64_t seen_version = ~std::uint64_t{0};
    auto next_scan = std::chrono::steady_clock::now();
    std::uint32_t idle = 0;
    std::map<std::string, bool> failed;  // topics whose reader could not open (logged once)
    while (!stop_reading.load(std::memory_order_relaxed)) {
      const auto now = std::chrono::steady_clock::now();
      const std::uint64_t v = subs_version.load(std::memory_order_acquire);
      if (v != seen_version || now >= next_scan) {
        if (v != seen_version) {
          std::lock_guard lock(subs_mutex);
          local = subs;
          seen_version = v;
        }
        refresh(readers, local, failed);
        next_scan = now + bridge->config().topic_scan;
      }
      std::size_t got = 0;
      for (auto& [name, r] : readers) got += poll(r);
      if (got == 0) {
        // Messages skipped for a full backlog are told with the next message handed over; the
        // last ones of a burst have no next message: told now, once the backlog has room.
        for (auto& [name, r] : readers) report_skipped(r);
      }
      if (got > 0) {
        idle = 0;
      } else if (readers.size() == 1 && !readers.begin()->second.observer) {
        // One topic, the usual case: sleep on its futex until the producer publishes (it pays
        // a wake-up only while we sleep), instead of waking every 100 us on the CPU the io
        // thread needs. Bounded, so a new subscription or stop() is seen within 2 ms.
        (void)readers.begin()->second.sub.wait(2ms);
      } else if (++idle < 64) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(100us);
      }
    }
  }

  void refresh(std::map<std::string, Reader>& readers, const std::vector<Subscription>& local,
               std::map<std::string, bool>& failed) {
    std::vector<std::string> names;
    try {
      names = bridge->bus().topic_names();
    } catch (const std::exception& e) {
      bridge->log(std::string("socketio: cannot list topics: ") + e.what());
      return;
    }
    std::map<std::string, bool> wanted;
    for (const auto& n : names) {
      if (!deliverable(n)) continue;
      std::map<std::string, std::vector<SocketId>> js, bin;
      for (const auto& s : local) {
        if (!s.pattern.matches(n)) continue;
        auto& to = s.binary ? bin[s.nsp] : js[s.nsp];
        if (std::find(to.begin(), to.end(), s.socket) == to.end()) to.push_back(s.socket);
      }
      if (js.empty() && bin.empty()) continue;
      wanted[n] = true;
      auto it = readers.find(n);
      if (it == readers.end()) {
        try {
          Topic t = bridge->bus().open_topic(n);
          SubscriberOptions so;
          so.name = "bus-bridge:" + bridge->name() + ":sio";
          // Reliable: read as an observer so Socket.IO clients never hold the producer.
          so.register_consumer = t.policy() != Policy::Reliable;
          so.start = Start::Live;
          // No spinning before the futex sleep: the io thread that writes to the clients
          // needs the CPU more than this thread needs the microseconds a spin saves.
          so.spin_before_sleep = 0;
          Subscriber sub(t, so);
          EnvelopeWriter env(sub.topic());
          const std::uint64_t hash = sub.topic().schema_hash();
          it = readers
                   .emplace(n, Reader{std::move(sub),
                                      hash,
                                      std::move(env),
                                      n,
                                      {},
                                      {},
                                      0,
                                      !so.register_consumer})
                   .first;
          Reader& r = it->second;  // a map node: stable for the reader's life
          r.sub.on_gap([this, &r](const Gap& g) {
            m_gaps->inc(g.count);
            const std::string text = r.env.gap(g);
            for (const auto& [nsp, ids] : r.json_to) {
              auto pkt = std::make_shared<sio::EncodedPacket>();
              pkt->nsp = nsp;
              pkt->text = std::make_shared<const std::string>(event_packet(nsp, "gap", text));
              (void)hand_over(ids, std::move(pkt), 0);
            }
          });
          failed.erase(n);
        } catch (const std::exception& e) {
          if (!failed[n]) {
            bridge->log(
                fmt::format("socketio: cannot read topic '{}' for clients: {}", n, e.what()));
            failed[n] = true;
          }
          continue;
        }
      }
      it->second.json_to = std::move(js);
      it->second.binary_to = std::move(bin);
    }
    std::erase_if(readers, [&](const auto& kv) { return !wanted.contains(kv.first); });
    topics_read.store(readers.size(), std::memory_order_relaxed);
  }

  // Hands a packet to the io thread unless the backlog is full; false when skipped.
  bool hand_over(std::vector<SocketId> ids, std::shared_ptr<const sio::EncodedPacket> pkt,
                 std::uint64_t skipped_before) {
    if (backlog.load(std::memory_order_relaxed) >= kMaxBacklog) return false;
    backlog.fetch_add(1, std::memory_order_relaxed);
    bridge->http().post([this, ids = std::move(ids), pkt = std::move(pkt), skipped_before] {
      backlog.fetch_sub(1, std::memory_order_relaxed);
      if (!server) return;
      if (skipped_before > 0) add_missed(ids, skipped_before);
      server->send(ids, pkt);  // on the io thread: sent at once
    });
    return true;
  }

  void report_skipped(Reader& r) {
    if (r.skipped == 0 || backlog.load(std::memory_order_relaxed) >= kMaxBacklog) return;
    std::vector<SocketId> ids;
    for (const auto& [nsp, v] : r.json_to) ids.insert(ids.end(), v.begin(), v.end());
    for (const auto& [nsp, v] : r.binary_to) ids.insert(ids.end(), v.begin(), v.end());
    backlog.fetch_add(1, std::memory_order_relaxed);
    bridge->http().post([this, ids = std::move(ids), n = std::exchange(r.skipped, 0)] {
      backlog.fetch_sub(1, std::memory_order_relaxed);
      if (server) add_missed(ids, n);
    });
  }

  std::size_t poll(Reader& r) {
    if (r.sub.topic().schema_hash() != r.schema_hash) {
      // A provisional topic was defined by its producer: decode with its schema from now on.
      r.env = EnvelopeWriter(r.sub.topic());
      r.schema_hash = r.sub.topic().schema_hash();
    }
    return r.sub.poll(
        [&](const Message& m) {
          m_read->inc();
          if (backlog.load(std::memory_order_relaxed) >= kMaxBacklog) {
            ++r.skipped;
            m_backlog_skipped->inc();
            return;
          }
          const std::uint64_t skipped = std::exchange(r.skipped, 0);
          if (!r.json_to.empty()) {
            const std::string text = r.env.message(m);
            for (const auto& [nsp, ids] : r.json_to) {
              auto pkt = std::make_shared<sio::EncodedPacket>();
              pkt->nsp = nsp;
              pkt->text = std::make_shared<const std::string>(event_packet(nsp, r.topic, text));
              (void)hand_over(ids, std::move(pkt), skipped);
            }
          }
          if (!r.binary_to.empty()) {
            // Binary mode: the envelope's metadata, with the raw FlatBuffer as "data".
            json meta = json::parse(r.env.message(m), nullptr, false);
            if (meta.is_discarded()) meta = json::object();
            const auto* p = reinterpret_cast<const std::uint8_t*>(m.data.data());
            meta["data"] = json::binary(std::vector<std::uint8_t>(p, p + m.data.size()));
            for (const auto& [nsp, ids] : r.binary_to) {
              (void)hand_over(ids, sio::SocketIoServer::encode(nsp, r.topic, json::array({meta})),
                              skipped);
            }
          }
        },
        256);
  }

  // ------------------------------------------------------------------ observation
  // Moves the protocol layer's close and refusal tallies into /metrics; with `log`, says in
  // the log how many clients were closed for misbehaving since the last time (one line per
  // notice period at most, however many clients misbehave). io thread.
  void sync_closes(bool log) {
    const auto& es = server->engine_stats();
    for (std::size_t i = 0; i < m_closed.size(); ++i) {
      const std::uint64_t v = es.closed[i].load(std::memory_order_relaxed);
      m_closed[i]->inc(v - last_closed[i]);
      unlogged_closed[i] += v - last_closed[i];
      last_closed[i] = v;
    }
    const std::uint64_t h = es.handshake_errors.load(std::memory_order_relaxed);
    m_handshake_errors->inc(h - last_handshake_errors);
    unlogged_handshake_errors += h - last_handshake_errors;
    last_handshake_errors = h;
    if (!log) return;
    std::vector<std::string> bad;
    for (const auto reason : {sio::CloseReason::ParseError, sio::CloseReason::PayloadTooLarge,
                              sio::CloseReason::DuplicatePoll}) {
      const auto n = std::exchange(unlogged_closed[static_cast<std::size_t>(reason)], 0);
      if (n > 0) bad.push_back(fmt::format("{} for {}", n, to_string(reason)));
    }
    if (const auto n = std::exchange(unlogged_handshake_errors, 0); n > 0) {
      bad.push_back(fmt::format("{} HTTP requests refused (bad EIO, transport, sid or method)", n));
    }
    if (!bad.empty()) {
      bridge->log(
          fmt::format("socketio: misbehaving clients closed: {} (counted in "
                      "shmbus_bridge_sio_sessions_closed_total)",
                      fmt::join(bad, ", ")));
    }
  }

  void collect() {
    if (!server) return;
    sync_closes(false);
    const std::uint64_t out = server->stats().events_out.load(std::memory_order_relaxed);
    if (out > last_events_out) m_events_out->inc(out - last_events_out);
    last_events_out = out;
    auto& m = bridge->metrics();
    m.gauge("shmbus_bridge_sio_clients", "Socket.IO sockets connected")
        .set(static_cast<double>(server->stats().sockets_open.load(std::memory_order_relaxed)));
    m.gauge("shmbus_bridge_sio_topics_read", "Bus topics read for Socket.IO clients")
        .set(static_cast<double>(topics_read.load(std::memory_order_relaxed)));
    m.gauge("shmbus_bridge_sio_backlog", "Packets waiting for the io thread")
        .set(static_cast<double>(backlog.load(std::memory_order_relaxed)));
  }
};

SocketIoEndpoint::SocketIoEndpoint(SocketIoConfig config)
    : impl_(std::make_unique<Impl>(std::move(config))) {}
SocketIoEndpoint::~SocketIoEndpoint() = default;

void SocketIoEndpoint::start(Bridge& bridge) {
  impl_->start(bridge);
}
void SocketIoEndpoint::request_stop() {
  impl_->stop_reading.store(true, std::memory_order_relaxed);
}
void SocketIoEndpoint::stop() {
  impl_->stop();
}

void SocketIoEndpoint::health(nlohmann::json& out) const {
  out["state"] = impl_->server ? "serving" : "stopped";
  if (impl_->server) {
    out["clients"] = impl_->server->stats().sockets_open.load(std::memory_order_relaxed);
  }
  out["topics_read"] = impl_->topics_read.load(std::memory_order_relaxed);
  out["path"] = impl_->cfg.path;
}

void SocketIoEndpoint::collect(transport::MetricsRegistry&) {
  impl_->collect();
}

std::unique_ptr<Component> make_socketio_endpoint(const Config& config) {
  SocketIoConfig c = parse_socketio_config(config.socketio, config.socketio_origin);
  if (!c.enabled) return nullptr;
  return std::make_unique<SocketIoEndpoint>(std::move(c));
}

}  // namespace shmbus::bridge
