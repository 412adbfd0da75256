#include <utility>  // before Asio (g++ 12 + C++20)

#include "shmbus/bridge/socketio/engineio.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace shmbus::bridge::sio {

namespace asio = boost::asio;
namespace http = net::http;

std::string_view to_string(CloseReason reason) noexcept {
  switch (reason) {
    case CloseReason::ClientClose:
      return "client close";
    case CloseReason::PingTimeout:
      return "ping timeout";
    case CloseReason::ParseError:
      return "parse error";
    case CloseReason::PayloadTooLarge:
      return "payload too large";
    case CloseReason::DuplicatePoll:
      return "duplicate poll";
    case CloseReason::TransportError:
      return "transport error";
    case CloseReason::ServerClose:
      return "server close";
    case CloseReason::ConnectTimeout:
      return "connect timeout";
    case CloseReason::Shutdown:
      return "server shutdown";
    case CloseReason::kCount:
      break;
  }
  return "unknown";
}

namespace {

// Engine.IO's error codes for HTTP answers before a session is in play.
enum class EioErrorCode : int {
  UnknownTransport = 0,
  UnknownSid = 1,
  BadHandshakeMethod = 2,
  BadRequest = 3,
  Forbidden = 4,
  UnsupportedProtocolVersion = 5,
};

std::string_view message_of(EioErrorCode code) {
  switch (code) {
    case EioErrorCode::UnknownTransport:
      return "Transport unknown";
    case EioErrorCode::UnknownSid:
      return "Session ID unknown";
    case EioErrorCode::BadHandshakeMethod:
      return "Bad handshake method";
    case EioErrorCode::BadRequest:
      return "Bad request";
    case EioErrorCode::Forbidden:
      return "Forbidden";
    case EioErrorCode::UnsupportedProtocolVersion:
      return "Unsupported protocol version";
  }
  return "Bad request";
}

net::Response error_response(const net::Request& req, EioErrorCode code,
                             http::status status = http::status::bad_request,
                             std::string_view detail = {}) {
  json body{{"code", static_cast<int>(code)}, {"message", message_of(code)}};
  if (!detail.empty()) body["detail"] = detail;
  std::string text;
  dump_json(body, text);
  return net::make_response(req, status, std::move(text), "application/json");
}

Frame constant(std::string_view s) {
  return std::make_shared<const std::string>(s);
}

const Frame& ping_packet() {
  static const Frame m = constant("2");
  return m;
}
const Frame& pong_probe_packet() {
  static const Frame m = constant("3probe");
  return m;
}

// A WebSocket attached to a session that must not be (duplicate upgrade): closed at once.
class RefusingHandler final : public net::WsHandler {
 public:
  void on_ws_message(net::WsConnection&, std::string_view, bool) override {}
  void on_ws_close(net::WsConnection&, net::WsCloseCause) override {}
};

}  // namespace

// ------------------------------------------------------------------ session

class EngineIoServer::Session final : public EngineSession,
                                      public std::enable_shared_from_this<Session> {
 public:
  Session(EngineIoServer& server, std::uint64_t id, std::string sid, bool websocket)
      : server_(&server),
        id_(id),
        sid_(std::move(sid)),
        websocket_(websocket),
        timer_(server.io_) {}

  std::uint64_t id() const noexcept override { return id_; }
  const std::string& sid() const noexcept override { return sid_; }
  bool on_websocket() const noexcept override { return websocket_; }
  [[nodiscard]] bool closed() const noexcept { return closed_; }
  [[nodiscard]] bool upgrading() const noexcept { return probe_ != nullptr; }

  std::size_t queued() const noexcept override {
    return websocket_ ? (ws_ ? ws_->queued() : 0) : buffer_.size();
  }

  SendResult send(Frame packet, bool binary) override {
    if (closed_) return SendResult::Closed;
    if (queued() + 1 > server_->options_.max_queued_packets) return refuse();
    return push(std::move(packet), binary);
  }

  SendResult send_group(const Frame& text, const std::vector<Frame>& binaries) override {
    if (closed_) return SendResult::Closed;
    if (queued() + 1 + binaries.size() > server_->options_.max_queued_packets) return refuse();
    if (const auto r = push(text, false); r != SendResult::Ok) return r;
    for (const auto& b : binaries) {
      if (const auto r = push(b, true); r != SendResult::Ok) return r;
    }
    return SendResult::Ok;
  }

  void close(CloseReason reason) override {
    if (closed_) return;
    closed_ = true;
    ++timer_generation_;
    timer_.cancel();
    auto& stats = server_->stats_;
    stats.closed[static_cast<std::size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
    // A pending GET learns why: noop after the client's own close, close packet otherwise.
    if (poll_.pending()) answer_poll(reason == CloseReason::ClientClose ? "6" : "1");
    if (probe_) {
      probe_->close(1000);
      probe_.reset();
    }
    if (ws_) {
      ws_->close(reason == CloseReason::PayloadTooLarge ? 1009 : 1000);
      ws_.reset();
    }
    buffer_.clear();
    auto self = shared_from_this();  // the map holds the last reference
    EngineIoServer& server = *server_;
    if (server.listener_ != nullptr) server.listener_->on_close(*this, reason);
    server.remove_session(*this);
  }

  // -------------------------------------------------------------- lifecycle

  void start() { arm_ping(); }

  [[nodiscard]] std::string open_packet() const {
    const auto& o = server_->options_;
    json open{
        {"sid", sid_},
        {"upgrades", websocket_ || !o.allow_websocket ? json::array() : json::array({"websocket"})},
        {"pingInterval", o.ping_interval.count()},
        {"pingTimeout", o.ping_timeout.count()},
        {"maxPayload", o.max_payload}};
    std::string out = "0";
    dump_json(open, out);
    return out;
  }

  void attach_websocket(std::shared_ptr<net::WsConnection> ws) { ws_ = std::move(ws); }
  void attach_probe(std::shared_ptr<net::WsConnection> probe) { probe_ = std::move(probe); }

  // -------------------------------------------------------------- polling

  void on_poll(net::Request&& req, net::Responder responder) {
    if (websocket_) {
      return void(responder.send(error_response(
          req, EioErrorCode::BadRequest, http::status::bad_request, "session moved to WebSocket")));
    }
    if (poll_.pending()) {
      auto self = shared_from_this();
      close(CloseReason::DuplicatePoll);
      return void(responder.send(error_response(
          req, EioErrorCode::BadRequest, http::status::bad_request, "overlapping GET requests")));
    }
    poll_ = std::move(responder);
    poll_version_ = req.version();
    poll_keep_alive_ = req.keep_alive();
    if (!buffer_.empty()) {
      flush_poll();
    } else if (probe_ok_) {
      answer_poll("6");  // the client is upgrading: release its poll at once
    }
  }

  void on_post(net::Request&& req, net::Responder responder) {
    auto self = shared_from_this();
    if (websocket_) {
      return void(responder.send(error_response(
          req, EioErrorCode::BadRequest, http::status::bad_request, "session moved to WebSocket")));
    }
    const std::string& body = req.body();
    if (body.size() > server_->options_.max_payload) {
      responder.send(net::make_response(req, http::status::payload_too_large,
                                        "payload of " + std::to_string(body.size()) +
                                            " bytes above maxPayload " +
                                            std::to_string(server_->options_.max_payload) + "\n"));
      return close(CloseReason::PayloadTooLarge);
    }
    packets_.clear();
    binaries_.clear();
    if (const auto err = parse_polling_payload(body, packets_, binaries_); err != CodecError::Ok) {
      responder.send(
          error_response(req, EioErrorCode::BadRequest, http::status::bad_request, to_string(err)));
      return close(CloseReason::ParseError);
    }
    auto res = net::make_response(req, http::status::ok, "ok");
    add_cors(res);
    responder.send(std::move(res));
    // The views in packets_ point into `body` and binaries_, alive until this returns.
    const auto packets = std::move(packets_);
    for (const auto& p : packets) {
      if (closed_) break;
      handle(p);
    }
  }

  // -------------------------------------------------------------- WebSocket

  void on_ws_message(net::WsConnection& conn, std::string_view data, bool binary) {
    if (closed_) return;
    auto self = shared_from_this();
    if (data.size() > server_->options_.max_payload) return close(CloseReason::PayloadTooLarge);
    if (probe_ && &conn == probe_.get()) return on_probe_message(data, binary);
    if (!websocket_ || !ws_ || &conn != ws_.get()) return;
    if (binary) {
      return handle(EioPacket{EioType::Message, true, data});
    }
    EioPacket p;
    if (parse_eio_text(data, p) != CodecError::Ok) return close(CloseReason::ParseError);
    handle(p);
  }

  void on_ws_close(net::WsConnection& conn, net::WsCloseCause cause) {
    if (closed_) return;
    if (probe_ && &conn == probe_.get()) {
      // The upgrade failed: the session carries on over polling.
      probe_.reset();
      probe_ok_ = false;
      return;
    }
    if (!ws_ || &conn != ws_.get()) return;
    ws_.reset();
    switch (cause) {
      case net::WsCloseCause::Remote:
        return close(CloseReason::ClientClose);
      case net::WsCloseCause::TooLarge:
        return close(CloseReason::PayloadTooLarge);
      case net::WsCloseCause::ProtocolError:
      case net::WsCloseCause::InvalidUtf8:
        return close(CloseReason::ParseError);  // malformed input, as a bad packet is
      default:
        return close(CloseReason::TransportError);
    }
  }

 private:
  struct Out {
    Frame data;
    bool binary;
  };

  SendResult refuse() {
    server_->stats_.dropped_queue_full.fetch_add(1, std::memory_order_relaxed);
    return SendResult::QueueFull;
  }

  SendResult push(Frame packet, bool binary) {
    if (websocket_) {
      if (!ws_) return SendResult::Closed;
      const auto r = ws_->send(std::move(packet), binary);
      if (r == SendResult::QueueFull) return refuse();
      if (r == SendResult::Ok) server_->stats_.packets_out.fetch_add(1, std::memory_order_relaxed);
      return r;
    }
    buffer_.push_back(Out{std::move(packet), binary});
    server_->stats_.packets_out.fetch_add(1, std::memory_order_relaxed);
    if (poll_.pending() && !flush_scheduled_) {
      // Let the io thread finish its current batch of sends: one response carries them all.
      flush_scheduled_ = true;
      asio::post(server_->io_, [weak = weak_from_this()] {
        if (auto s = weak.lock()) s->flush_poll();
      });
    }
    return SendResult::Ok;
  }

  void flush_poll() {
    flush_scheduled_ = false;
    if (closed_ || !poll_.pending() || buffer_.empty()) return;
    std::string body;
    for (const auto& o : buffer_) append_polling_packet(body, *o.data, o.binary);
    buffer_.clear();
    answer_poll(std::move(body));
  }

  void answer_poll(std::string body) {
    net::Response res{http::status::ok, poll_version_};
    res.set(http::field::content_type, "text/plain; charset=UTF-8");
    res.keep_alive(poll_keep_alive_);
    res.body() = std::move(body);
    res.prepare_payload();
    add_cors(res);
    poll_.send(std::move(res));
  }

  void add_cors(net::Response& res) const {
    const auto& origin = server_->options_.cors_origin;
    if (!origin.empty()) res.set(http::field::access_control_allow_origin, origin);
  }

  void handle(const EioPacket& p) {
    auto& stats = server_->stats_;
    switch (p.type) {
      case EioType::Message:
        stats.packets_in.fetch_add(1, std::memory_order_relaxed);
        if (server_->listener_ != nullptr) server_->listener_->on_message(*this, p.data, p.binary);
        return;
      case EioType::Pong:
        if (awaiting_pong_) arm_ping();
        return;
      case EioType::Close:
        return close(CloseReason::ClientClose);
      case EioType::Noop:
      case EioType::Ping:  // v4 clients never ping; tolerated, not answered
        return;
      case EioType::Open:
      case EioType::Upgrade:
        return close(CloseReason::ParseError);
    }
  }

  void on_probe_message(std::string_view data, bool binary) {
    EioPacket p;
    if (!binary && parse_eio_text(data, p) == CodecError::Ok) {
      if (p.type == EioType::Ping && p.data == "probe" && !probe_ok_) {
        (void)probe_->send(pong_probe_packet(), false);
        probe_ok_ = true;
        if (poll_.pending()) {
          if (buffer_.empty()) {
            answer_poll("6");
          } else {
            flush_poll();
          }
        }
        return;
      }
      if (p.type == EioType::Upgrade && p.data.empty() && probe_ok_) return complete_upgrade();
    }
    // Anything else on a probe: refuse the upgrade, keep the polling session.
    probe_->close(1002);
    probe_.reset();
    probe_ok_ = false;
  }

  void complete_upgrade() {
    auto& stats = server_->stats_;
    websocket_ = true;
    ws_ = std::move(probe_);
    probe_ok_ = false;
    if (poll_.pending()) answer_poll("6");
    stats.upgrades.fetch_add(1, std::memory_order_relaxed);
    stats.polling_open.fetch_sub(1, std::memory_order_relaxed);
    stats.websocket_open.fetch_add(1, std::memory_order_relaxed);
    for (auto& o : buffer_) (void)ws_->send(std::move(o.data), o.binary);
    buffer_.clear();
  }

  // One timer for both heartbeat phases; the generation makes a completion that raced with
  // a re-arm (already queued when expires_after cancelled it) a no-op.
  void arm_ping() {
    awaiting_pong_ = false;
    arm(server_->options_.ping_interval);
  }

  void arm(std::chrono::milliseconds delay) {
    const std::uint64_t gen = ++timer_generation_;
    timer_.expires_after(delay);
    timer_.async_wait([weak = weak_from_this(), gen](const boost::system::error_code& ec) {
      auto s = weak.lock();
      if (!s || ec || s->closed_ || gen != s->timer_generation_) return;
      s->on_timer();
    });
  }

  void on_timer() {
    if (awaiting_pong_) return close(CloseReason::PingTimeout);
    awaiting_pong_ = true;
    (void)push(ping_packet(), false);  // control packets bypass the queue bound
    arm(server_->options_.ping_timeout);
  }

  EngineIoServer* server_;
  std::uint64_t id_;
  std::string sid_;
  bool websocket_;
  bool closed_ = false;
  bool probe_ok_ = false;
  bool awaiting_pong_ = false;
  bool flush_scheduled_ = false;
  bool poll_keep_alive_ = true;
  unsigned poll_version_ = 11;
  std::uint64_t timer_generation_ = 0;
  std::shared_ptr<net::WsConnection> ws_;
  std::shared_ptr<net::WsConnection> probe_;
  std::vector<Out> buffer_;
  net::Responder poll_;
  asio::steady_timer timer_;
  std::vector<EioPacket> packets_;     // scratch for POST parsing
  std::vector<std::string> binaries_;  // scratch for POST parsing
};

namespace {

// Forwards a WebSocket's events to its session without owning it (no ownership cycle: the
// session owns the connection, the connection owns this binding).
class WsBinding final : public net::WsHandler {
 public:
  explicit WsBinding(std::weak_ptr<EngineIoServer::Session> session)
      : session_(std::move(session)) {}
  void on_ws_message(net::WsConnection& c, std::string_view data, bool binary) override {
    if (auto s = session_.lock()) s->on_ws_message(c, data, binary);
  }
  void on_ws_close(net::WsConnection& c, net::WsCloseCause cause) override {
    if (auto s = session_.lock()) s->on_ws_close(c, cause);
  }

 private:
  std::weak_ptr<EngineIoServer::Session> session_;
};

}  // namespace

// ------------------------------------------------------------------ server

EngineIoServer::EngineIoServer(asio::io_context& io, EngineOptions options,
                               EngineListener& listener)
    : io_(io), options_(std::move(options)), listener_(&listener), rng_(std::random_device{}()) {}

EngineIoServer::~EngineIoServer() {
  close_all();
}

void EngineIoServer::detach() {
  listener_ = nullptr;
  close_all();
}

void EngineIoServer::close_all() {
  std::vector<std::shared_ptr<Session>> all;
  all.reserve(by_sid_.size());
  for (auto& [sid, s] : by_sid_) all.push_back(s);
  for (auto& s : all) s->close(CloseReason::Shutdown);
}

EngineSession* EngineIoServer::find(std::uint64_t id) noexcept {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

std::string EngineIoServer::new_sid() {
  static constexpr std::string_view kChars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string sid(20, ' ');
  std::uint64_t bits = rng_();
  for (std::size_t i = 0; i < sid.size(); ++i) {
    if (i == 10) bits = rng_();
    sid[i] = kChars[bits & 63];
    bits >>= 6;
  }
  return sid;
}

std::shared_ptr<EngineIoServer::Session> EngineIoServer::create_session(bool websocket) {
  auto s = std::make_shared<Session>(*this, next_id_++, new_sid(), websocket);
  by_sid_.emplace(s->sid(), s);
  by_id_.emplace(s->id(), s.get());
  stats_.sessions_open.fetch_add(1, std::memory_order_relaxed);
  stats_.sessions_total.fetch_add(1, std::memory_order_relaxed);
  (websocket ? stats_.websocket_open : stats_.polling_open).fetch_add(1, std::memory_order_relaxed);
  return s;
}

void EngineIoServer::remove_session(Session& session) {
  stats_.sessions_open.fetch_sub(1, std::memory_order_relaxed);
  (session.on_websocket() ? stats_.websocket_open : stats_.polling_open)
      .fetch_sub(1, std::memory_order_relaxed);
  by_id_.erase(session.id());
  by_sid_.erase(session.sid());  // may destroy the session: last
}

namespace {

struct Query {
  std::string_view eio, transport, sid;
  bool has_eio = false, has_transport = false, has_sid = false;
};

Query parse_query(std::string_view target) {
  Query q;
  q.has_eio = net::query_param(target, "EIO", q.eio);
  q.has_transport = net::query_param(target, "transport", q.transport);
  q.has_sid = net::query_param(target, "sid", q.sid);
  return q;
}

}  // namespace

void EngineIoServer::on_request(net::Request&& req, net::Responder responder) {
  if (listener_ == nullptr) {
    return void(responder.send(
        net::make_response(req, http::status::service_unavailable, "server shutting down\n")));
  }
  const Query q = parse_query(req.target());
  auto reject = [&](EioErrorCode code, http::status status = http::status::bad_request,
                    std::string_view detail = {}) {
    stats_.handshake_errors.fetch_add(1, std::memory_order_relaxed);
    auto res = error_response(req, code, status, detail);
    if (!options_.cors_origin.empty()) {
      res.set(http::field::access_control_allow_origin, options_.cors_origin);
    }
    responder.send(std::move(res));
  };
  if (req.method() == http::verb::options && !options_.cors_origin.empty()) {
    auto res = net::make_response(req, http::status::no_content, "");
    res.set(http::field::access_control_allow_origin, options_.cors_origin);
    res.set(http::field::access_control_allow_methods, "GET, POST");
    res.set(http::field::access_control_allow_headers, "content-type");
    return void(responder.send(std::move(res)));
  }
  if (!q.has_transport || (q.transport != "polling" && q.transport != "websocket")) {
    return reject(EioErrorCode::UnknownTransport);
  }
  if (!q.has_eio || q.eio != "4") return reject(EioErrorCode::UnsupportedProtocolVersion);
  if (q.transport != "polling" || !options_.allow_polling) {
    return reject(EioErrorCode::BadRequest, http::status::bad_request,
                  "transport=websocket needs a WebSocket upgrade request");
  }
  if (q.has_sid) {
    const auto it = by_sid_.find(std::string(q.sid));
    if (it == by_sid_.end()) return reject(EioErrorCode::UnknownSid);
    auto session = it->second;  // may close (and leave the map) while handling
    if (req.method() == http::verb::get)
      return session->on_poll(std::move(req), std::move(responder));
    if (req.method() == http::verb::post) {
      return session->on_post(std::move(req), std::move(responder));
    }
    return reject(EioErrorCode::BadRequest, http::status::bad_request, "GET or POST only");
  }
  if (req.method() != http::verb::get) return reject(EioErrorCode::BadHandshakeMethod);
  if (stats_.sessions_open.load(std::memory_order_relaxed) >= options_.max_sessions ||
      stats_.polling_open.load(std::memory_order_relaxed) >= options_.max_polling_sessions) {
    return reject(EioErrorCode::Forbidden, http::status::service_unavailable,
                  "too many sessions; retry later");
  }
  auto session = create_session(false);
  auto res = net::make_response(req, http::status::ok, session->open_packet());
  if (!options_.cors_origin.empty()) {
    res.set(http::field::access_control_allow_origin, options_.cors_origin);
  }
  responder.send(std::move(res));
  session->start();
  listener_->on_open(*session);
}

void EngineIoServer::on_upgrade(net::Request&& req, net::Upgrader upgrader) {
  if (listener_ == nullptr) {
    return upgrader.reject(
        net::make_response(req, http::status::service_unavailable, "server shutting down\n"));
  }
  const Query q = parse_query(req.target());
  auto reject = [&](EioErrorCode code, http::status status = http::status::bad_request,
                    std::string_view detail = {}) {
    stats_.handshake_errors.fetch_add(1, std::memory_order_relaxed);
    upgrader.reject(error_response(req, code, status, detail));
  };
  if (!q.has_transport || (q.transport != "polling" && q.transport != "websocket")) {
    return reject(EioErrorCode::UnknownTransport);
  }
  if (!q.has_eio || q.eio != "4") return reject(EioErrorCode::UnsupportedProtocolVersion);
  if (q.transport != "websocket" || !options_.allow_websocket) {
    return reject(EioErrorCode::BadRequest, http::status::bad_request,
                  "a WebSocket upgrade needs transport=websocket");
  }
  if (q.has_sid) {
    const auto it = by_sid_.find(std::string(q.sid));
    if (it == by_sid_.end()) return reject(EioErrorCode::UnknownSid);
    auto session = it->second;
    if (session->on_websocket() || session->upgrading()) {
      // Already upgraded (or upgrading): the reference server completes the handshake and
      // closes the newcomer, leaving the session alone.
      if (auto c = upgrader.accept(std::make_shared<RefusingHandler>())) c->close(1008);
      return;
    }
    auto probe = upgrader.accept(std::make_shared<WsBinding>(session));
    if (probe) session->attach_probe(std::move(probe));
    return;
  }
  if (stats_.sessions_open.load(std::memory_order_relaxed) >= options_.max_sessions) {
    return reject(EioErrorCode::Forbidden, http::status::service_unavailable,
                  "too many sessions; retry later");
  }
  auto session = create_session(true);
  auto ws = upgrader.accept(std::make_shared<WsBinding>(session));
  if (!ws) return session->close(CloseReason::TransportError);
  (void)ws->send(std::make_shared<const std::string>(session->open_packet()), false);
  session->attach_websocket(std::move(ws));
  session->start();
  listener_->on_open(*session);
}

}  // namespace shmbus::bridge::sio
