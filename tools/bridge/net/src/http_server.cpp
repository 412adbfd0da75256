#include <utility>  // before Asio (g++ 12 + C++20)

#include "shmbus/bridge/net/http_server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <deque>
#include <map>
#include <optional>
#include <system_error>
#include <unordered_set>

namespace shmbus::bridge::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

// ------------------------------------------------------------------ helpers

std::string_view to_string(WsCloseCause cause) noexcept {
  switch (cause) {
    case WsCloseCause::Remote:
      return "remote closed";
    case WsCloseCause::Local:
      return "closed locally";
    case WsCloseCause::TooLarge:
      return "message too large";
    case WsCloseCause::Timeout:
      return "timeout";
    case WsCloseCause::Error:
      return "transport error";
  }
  return "unknown";
}

Response make_response(const Request& request, http::status status, std::string body,
                       std::string_view content_type) {
  Response res{status, request.version()};
  res.set(http::field::content_type, content_type);
  res.keep_alive(request.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

std::string_view target_path(std::string_view target) noexcept {
  const auto q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

bool query_param(std::string_view target, std::string_view name, std::string_view& value) noexcept {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return false;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const auto eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    if (key == name) {
      value = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
      return true;
    }
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  return false;
}

// ------------------------------------------------------------------ shared state

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void shutdown() = 0;  // close the socket now (server stop)
};

struct HttpServer::State {
  asio::io_context& io;
  ServerOptions options;
  ServerStats stats;
  std::map<std::pair<http::verb, std::string>, RouteHandler, std::less<>> routes;
  std::vector<std::pair<std::string, std::shared_ptr<PrefixHandler>>> prefixes;
  std::unordered_set<SessionBase*> live;  // io thread only
  std::optional<tcp::acceptor> acceptor;
  bool stopped = false;

  State(asio::io_context& ctx, ServerOptions opts) : io(ctx), options(std::move(opts)) {}
};

namespace {

// Counts one live connection for the connection limit; registered for stop().
class LiveToken {
 public:
  LiveToken(std::shared_ptr<HttpServer::State> state, SessionBase* session)
      : state_(std::move(state)), session_(session) {
    state_->live.insert(session_);
    state_->stats.connections_open.fetch_add(1, std::memory_order_relaxed);
  }
  ~LiveToken() {
    state_->live.erase(session_);
    state_->stats.connections_open.fetch_sub(1, std::memory_order_relaxed);
  }
  LiveToken(const LiveToken&) = delete;
  LiveToken& operator=(const LiveToken&) = delete;
  [[nodiscard]] HttpServer::State& state() const noexcept { return *state_; }

 private:
  std::shared_ptr<HttpServer::State> state_;
  SessionBase* session_;
};

// ------------------------------------------------------------------ WebSocket session

class WsSession final : public WsConnection,
                        public SessionBase,
                        public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(beast::tcp_stream&& stream, std::shared_ptr<HttpServer::State> state,
            std::shared_ptr<WsHandler> handler)
      : ws_(std::move(stream)),
        options_(state->options.websocket),
        handler_(std::move(handler)),
        token_(std::move(state), this) {}

  void start(Request&& request) {
    beast::get_lowest_layer(ws_).expires_never();  // the websocket's own timeouts apply now
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = options_.handshake_timeout;
    timeouts.idle_timeout = options_.idle_timeout;
    timeouts.keep_alive_pings = false;
    ws_.set_option(timeouts);
    ws_.read_message_max(options_.max_message);
    ws_.auto_fragment(false);
    ws_.async_accept(request,
                     [self = shared_from_this()](beast::error_code ec) { self->on_accept(ec); });
  }

  SendResult send(Message message, bool binary) override {
    if (finished_ || close_requested_) return SendResult::Closed;
    if (queue_.size() >= options_.max_queue) return SendResult::QueueFull;
    queue_.push_back(Outgoing{std::move(message), binary});
    if (open_ && !writing_) do_write();
    return SendResult::Ok;
  }
  std::size_t queue_room() const noexcept override {
    return queue_.size() >= options_.max_queue ? 0 : options_.max_queue - queue_.size();
  }
  std::size_t queued() const noexcept override { return queue_.size(); }
  bool is_open() const noexcept override { return !finished_ && !close_requested_; }

  void close(std::uint16_t code) override {
    if (finished_ || close_requested_) return;
    close_requested_ = true;
    close_code_ = code;
    local_close_ = true;
    if (open_ && !writing_) do_close();
  }

  void abort() override {
    if (finished_) return;
    local_close_ = true;
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
    finish(WsCloseCause::Local);
  }

  void shutdown() override { abort(); }

 private:
  struct Outgoing {
    Message data;
    bool binary;
  };

  void on_accept(beast::error_code ec) {
    if (ec) return fail(ec);
    open_ = true;
    token_.state().stats.websocket_upgrades.fetch_add(1, std::memory_order_relaxed);
    do_read();
    if (!queue_.empty() && !writing_) {
      do_write();
    } else if (close_requested_ && !writing_) {
      do_close();
    }
  }

  void do_read() {
    ws_.async_read(rbuf_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_read(ec);
    });
  }

  void on_read(beast::error_code ec) {
    if (ec) return fail(ec);
    if (finished_) return;
    const auto data = rbuf_.cdata();
    const std::string_view view(static_cast<const char*>(data.data()), data.size());
    if (handler_) handler_->on_ws_message(*this, view, !ws_.got_text());
    rbuf_.consume(rbuf_.size());
    if (!finished_) do_read();
  }

  void do_write() {
    writing_ = true;
    const Outgoing& out = queue_.front();
    ws_.binary(out.binary);
    ws_.async_write(
        asio::buffer(*out.data),
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_write(ec); });
  }

  void on_write(beast::error_code ec) {
    writing_ = false;
    if (ec) return fail(ec);
    queue_.pop_front();
    if (finished_) return;
    if (!queue_.empty()) return do_write();
    if (close_requested_) do_close();
  }

  void do_close() {
    writing_ = true;  // no further writes may start while the close frame goes out
    ws_.async_close(
        websocket::close_reason(close_code_),
        [self = shared_from_this()](beast::error_code) { self->finish(WsCloseCause::Local); });
  }

  void fail(beast::error_code ec) {
    if (finished_) return;
    WsCloseCause cause = WsCloseCause::Error;
    if (local_close_) {
      cause = WsCloseCause::Local;
    } else if (ec == websocket::error::closed || ec == asio::error::eof ||
               ec == asio::error::connection_reset || ec == beast::http::error::end_of_stream) {
      cause = WsCloseCause::Remote;
    } else if (ec == websocket::error::message_too_big) {
      cause = WsCloseCause::TooLarge;
    } else if (ec == beast::error::timeout) {
      cause = WsCloseCause::Timeout;
    }
    finish(cause);
  }

  void finish(WsCloseCause cause) {
    if (finished_) return;
    finished_ = true;
    // The handler is released after the call: it may hold this connection (cycle).
    std::shared_ptr<WsHandler> handler = std::move(handler_);
    if (handler) handler->on_ws_close(*this, cause);
    beast::error_code ignored;
    if (cause != WsCloseCause::Local || !open_) {
      beast::get_lowest_layer(ws_).socket().close(ignored);
    }
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer rbuf_;
  WsOptions options_;
  std::shared_ptr<WsHandler> handler_;
  std::deque<Outgoing> queue_;
  LiveToken token_;
  std::uint16_t close_code_ = 1000;
  bool open_ = false;
  bool writing_ = false;
  bool close_requested_ = false;
  bool local_close_ = false;
  bool finished_ = false;
};

}  // namespace

// ------------------------------------------------------------------ HTTP session

class HttpSession final : public SessionBase, public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket&& socket, std::shared_ptr<HttpServer::State> state)
      : stream_(std::move(socket)), state_(state), token_(std::move(state), this) {}

  void start() { do_read(); }

  // Called through Responder / Upgrader, on the io thread.
  bool answer(Response response) {
    if (!awaiting_answer_ || closed_) return false;
    awaiting_answer_ = false;
    write(std::move(response));
    return true;
  }

  std::shared_ptr<WsConnection> accept_upgrade(std::shared_ptr<WsHandler> handler) {
    if (!awaiting_answer_ || closed_ || !upgrade_request_) return nullptr;
    awaiting_answer_ = false;
    closed_ = true;  // the stream now belongs to the WebSocket session
    auto ws = std::make_shared<WsSession>(std::move(stream_), state_, std::move(handler));
    ws->start(std::move(*upgrade_request_));
    upgrade_request_.reset();
    return ws;
  }

  void shutdown() override {
    if (closed_) return;
    closed_ = true;
    beast::error_code ignored;
    stream_.socket().close(ignored);
  }

  [[nodiscard]] const Request* upgrade_request() const noexcept {
    return upgrade_request_ ? &*upgrade_request_ : nullptr;
  }

 private:
  void do_read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(state_->options.max_header));
    parser_->body_limit(state_->options.max_body);
    // The first request of a connection gets the request deadline; later ones the idle one
    // (a keep-alive connection may sit quietly between requests).
    stream_.expires_after(first_request_ ? state_->options.request_timeout
                                         : state_->options.idle_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (closed_) return;
    first_request_ = false;
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted) return close();
    if (ec) {
      state_->stats.bad_requests.fetch_add(1, std::memory_order_relaxed);
      if (ec == http::error::body_limit || ec == http::error::header_limit) {
        Response res{http::status::payload_too_large, 11};
        res.set(http::field::content_type, "text/plain; charset=UTF-8");
        res.keep_alive(false);
        res.body() = "request too large: limit " + std::to_string(state_->options.max_body) +
                     " bytes of body, " + std::to_string(state_->options.max_header) +
                     " of header\n";
        res.prepare_payload();
        return write(std::move(res));
      }
      if (ec != beast::error::timeout) {
        Response res{http::status::bad_request, 11};
        res.set(http::field::content_type, "text/plain; charset=UTF-8");
        res.keep_alive(false);
        res.body() = "malformed HTTP request: " + ec.message() + "\n";
        res.prepare_payload();
        return write(std::move(res));
      }
      return close();
    }
    state_->stats.requests.fetch_add(1, std::memory_order_relaxed);
    stream_.expires_never();  // a mounted handler may hold the request (long polling)
    dispatch(parser_->release());
  }

  void dispatch(Request&& req) {
    const std::string_view path = target_path(req.target());
    PrefixHandler* prefix = nullptr;
    for (auto& [p, h] : state_->prefixes) {
      const std::string_view bare = std::string_view(p).substr(0, p.size() - 1);
      if (path.starts_with(p) || (p.ends_with('/') && path == bare)) {
        prefix = h.get();
        break;
      }
    }
    awaiting_answer_ = true;
    if (websocket::is_upgrade(req)) {
      if (prefix == nullptr) {
        awaiting_answer_ = false;
        return write(make_response(req, http::status::not_found, "no WebSocket endpoint here\n"));
      }
      upgrade_request_.emplace(req);  // Beast's accept needs the request; the handler too
      return prefix->on_upgrade(std::move(req), Upgrader(shared_from_this()));
    }
    if (prefix != nullptr) return prefix->on_request(std::move(req), Responder(shared_from_this()));

    awaiting_answer_ = false;
    const auto it = state_->routes.find(std::make_pair(req.method(), std::string(path)));
    if (it != state_->routes.end()) {
      Response res;
      try {
        res = it->second(req);
      } catch (const std::exception& e) {
        res = make_response(req, http::status::internal_server_error,
                            std::string("handler failed: ") + e.what() + "\n");
      }
      res.version(req.version());
      if (!req.keep_alive()) res.keep_alive(false);
      return write(std::move(res));
    }
    bool path_known = false;
    for (const auto& [key, handler] : state_->routes) path_known |= key.second == path;
    if (path_known) {
      return write(make_response(req, http::status::method_not_allowed,
                                 "method not allowed on " + std::string(path) + "\n"));
    }
    write(make_response(req, http::status::not_found, "no route " + std::string(path) + "\n"));
  }

  void write(Response&& res) {
    res_ = std::make_shared<Response>(std::move(res));
    stream_.expires_after(state_->options.write_timeout);
    http::async_write(
        stream_, *res_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_write(ec); });
  }

  void on_write(beast::error_code ec) {
    const bool keep = res_ && res_->keep_alive();
    res_.reset();
    if (closed_) return;
    if (ec || !keep) return close();
    do_read();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::shared_ptr<HttpServer::State> state_;
  LiveToken token_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<Request> upgrade_request_;
  std::shared_ptr<Response> res_;
  bool first_request_ = true;
  bool awaiting_answer_ = false;
  bool closed_ = false;
};

// ------------------------------------------------------------------ Responder / Upgrader

Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    Responder dropped(std::move(*this));  // answers 500 if it was pending
    session_ = std::move(other.session_);
  }
  return *this;
}

Responder::~Responder() {
  if (session_) {
    Response res{http::status::internal_server_error, 11};
    res.keep_alive(false);
    res.body() = "request dropped by its handler\n";
    res.prepare_payload();
    session_->answer(std::move(res));
  }
}

bool Responder::send(Response response) {
  if (!session_) return false;
  const bool ok = session_->answer(std::move(response));
  session_.reset();
  return ok;
}

Upgrader& Upgrader::operator=(Upgrader&& other) noexcept {
  if (this != &other) {
    Upgrader dropped(std::move(*this));
    session_ = std::move(other.session_);
  }
  return *this;
}

Upgrader::~Upgrader() {
  if (session_) {
    Response res{http::status::internal_server_error, 11};
    res.keep_alive(false);
    res.body() = "upgrade dropped by its handler\n";
    res.prepare_payload();
    session_->answer(std::move(res));
  }
}

std::shared_ptr<WsConnection> Upgrader::accept(std::shared_ptr<WsHandler> handler) {
  if (!session_) return nullptr;
  auto conn = session_->accept_upgrade(std::move(handler));
  session_.reset();
  return conn;
}

void Upgrader::reject(Response response) {
  if (!session_) return;
  response.keep_alive(false);
  session_->answer(std::move(response));
  session_.reset();
}

// ------------------------------------------------------------------ listener

namespace {

void do_accept(std::shared_ptr<HttpServer::State> state) {
  if (state->stopped || !state->acceptor) return;
  state->acceptor->async_accept([state](beast::error_code ec, tcp::socket socket) {
    if (state->stopped) return;
    if (!ec) {
      state->stats.connections_total.fetch_add(1, std::memory_order_relaxed);
      if (state->live.size() >= state->options.max_connections) {
        state->stats.connections_rejected.fetch_add(1, std::memory_order_relaxed);
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);  // ~100 ms round trips without it
        std::make_shared<HttpSession>(std::move(socket), state)->start();
      }
    }
    // Accept errors (EMFILE, ...) are transient: keep listening.
    do_accept(state);
  });
}

}  // namespace

HttpServer::HttpServer(asio::io_context& io, ServerOptions options)
    : io_(io), state_(std::make_shared<State>(io, std::move(options))) {}

HttpServer::~HttpServer() {
  // Sessions still queued on the io_context share the state: drop the handlers now so that a
  // handler holding a connection (which holds the state) forms no cycle.
  state_->routes.clear();
  state_->prefixes.clear();
  state_->stopped = true;
  beast::error_code ignored;
  if (state_->acceptor) state_->acceptor->close(ignored);
}

void HttpServer::route(http::verb method, std::string path, RouteHandler handler) {
  state_->routes[std::make_pair(method, std::move(path))] = std::move(handler);
}

void HttpServer::mount(std::string prefix, std::shared_ptr<PrefixHandler> handler) {
  if (!prefix.ends_with('/')) prefix += '/';
  state_->prefixes.emplace_back(std::move(prefix), std::move(handler));
}

std::uint16_t HttpServer::start() {
  const auto& opt = state_->options;
  beast::error_code ec;
  const auto address = asio::ip::make_address(opt.address, ec);
  if (ec) {
    throw std::system_error(ec, "bad listen address '" + opt.address + "'");
  }
  const tcp::endpoint endpoint{address, opt.port};
  tcp::acceptor acceptor(io_);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::system_error(ec, "cannot listen on " + opt.address + ":" + std::to_string(opt.port) +
                                    " (port in use? pick another or 0 for any)");
  }
  port_ = acceptor.local_endpoint().port();
  state_->acceptor.emplace(std::move(acceptor));
  do_accept(state_);
  return port_;
}

void HttpServer::stop() {
  asio::post(io_, [state = state_] {
    state->stopped = true;
    beast::error_code ignored;
    if (state->acceptor) state->acceptor->close(ignored);
    // shutdown() may erase from `live` (a session's token dies): iterate over a copy.
    const std::vector<SessionBase*> sessions(state->live.begin(), state->live.end());
    for (SessionBase* s : sessions) {
      if (state->live.contains(s)) s->shutdown();
    }
  });
}

const ServerStats& HttpServer::stats() const noexcept {
  return state_->stats;
}

}  // namespace shmbus::bridge::net
