#include <utility>  // before Asio (g++ 12 + C++20)

#include "shmbus/bridge/net/http_server.hpp"
#include "shmbus/bridge/net/utf8.hpp"

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <system_error>
#include <unordered_set>
#include <vector>

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
    case WsCloseCause::ProtocolError:
      return "WebSocket protocol error";
    case WsCloseCause::InvalidUtf8:
      return "text not UTF-8";
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
  virtual void flush() {}       // write what waits for the flush tick (WsOptions::coalesce)
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
  // WebSocket sessions whose writes wait for the next flush tick: one timer for all of them,
  // so that coalescing costs one timer event per tick, not one per client.
  std::vector<std::weak_ptr<SessionBase>> flush_due;
  std::optional<asio::steady_timer> flush_timer;
  // Server-wide coalescing (WsOptions::max_writes_per_s): the WebSocket sessions written to
  // in this period and the one before, each counted once per period (a session keeps the
  // number of the last period it was counted in).
  static constexpr std::chrono::milliseconds kWriterPeriod{100};
  std::chrono::steady_clock::time_point period_start{};
  std::uint64_t period = 1;
  std::size_t writers_now = 0;
  std::size_t writers_before = 0;

  void roll_period(std::chrono::steady_clock::time_point now) {
    const auto elapsed = now - period_start;
    if (elapsed < kWriterPeriod) return;
    // A quiet period in between: nobody counts as busy any more.
    writers_before = elapsed < 2 * kWriterPeriod ? writers_now : 0;
    writers_now = 0;
    period_start = now;
    ++period;
  }
  void note_writer(std::chrono::steady_clock::time_point now, std::uint64_t& counted_in) {
    roll_period(now);
    if (counted_in != period) {
      counted_in = period;
      ++writers_now;
    }
  }
  // How long a session written to less than this long ago holds its next frames.
  [[nodiscard]] std::chrono::microseconds coalesce_window(
      std::chrono::steady_clock::time_point now) {
    const WsOptions& o = options.websocket;
    if (o.max_writes_per_s == 0) return o.coalesce;
    roll_period(now);
    const auto busy = static_cast<std::uint64_t>(std::max(writers_now, writers_before));
    const std::chrono::microseconds spread(
        static_cast<std::int64_t>(busy * 1'000'000 / o.max_writes_per_s));
    return std::max(o.coalesce, std::min(spread, o.coalesce_max));
  }

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
  [[nodiscard]] const std::shared_ptr<HttpServer::State>& state_ptr() const noexcept {
    return state_;
  }

 private:
  std::shared_ptr<HttpServer::State> state_;
  SessionBase* session_;
};

// ------------------------------------------------------------------ WebSocket session
//
// Beast does the opening handshake (async_accept); after it, the session owns the socket and
// speaks RFC 6455 itself: it parses the client's (masked) frames, and writes unmasked server
// frames from one queue. Why not Beast's websocket::stream for the data: it writes one message
// per async_write (one send(2) per message per client, the fan-out's cost), and its read
// operation answers pings and close frames by writing to the socket on its own, which could
// interleave with a gathered write in flight. Here every byte the server sends — data, pong,
// close — goes through queue_, and at most one gathered async_write is in flight: all the
// frames queued for a client leave in one write (see do_write), one sendmsg for up to 256 KiB.
// A frame's payload is the shared message string (encoded once for all clients); only its
// 2-10 header bytes are per client, stored in the queue entry (no allocation per message).

class WsSession final : public WsConnection,
                        public SessionBase,
                        public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(beast::tcp_stream&& stream, std::shared_ptr<HttpServer::State> state,
            std::shared_ptr<WsHandler> handler)
      : ws_(std::move(stream)),
        idle_timer_(ws_.get_executor()),
        options_(state->options.websocket),
        handler_(std::move(handler)),
        token_(std::move(state), this) {}

  void start(Request&& request) {
    beast::get_lowest_layer(ws_).expires_never();  // the websocket's own timeouts apply now
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = options_.handshake_timeout;
    timeouts.idle_timeout = websocket::stream_base::none();
    timeouts.keep_alive_pings = false;
    ws_.set_option(timeouts);
    ws_.async_accept(request,
                     [self = shared_from_this()](beast::error_code ec) { self->on_accept(ec); });
  }

  SendResult send(Message message, bool binary) override {
    if (finished_ || close_requested_) return SendResult::Closed;
    if (data_queued_ >= options_.max_queue) return SendResult::QueueFull;
    enqueue(std::move(message), binary ? kOpBinary : kOpText);
    ++data_queued_;
    return SendResult::Ok;
  }
  std::size_t queue_room() const noexcept override {
    return data_queued_ >= options_.max_queue ? 0 : options_.max_queue - data_queued_;
  }
  std::size_t queued() const noexcept override { return data_queued_; }
  bool is_open() const noexcept override { return !finished_ && !close_requested_; }

  void close(std::uint16_t code) override {
    if (finished_ || close_requested_) return;
    close_requested_ = true;
    local_close_ = true;
    send_close(code);  // after the queued messages
    // A peer that reads nothing never lets the close frame out: bounded by handshake_timeout.
    arm_close_deadline();
  }

  void abort() override {
    if (finished_) return;
    local_close_ = true;
    close_socket();
    finish(WsCloseCause::Local);
  }

  void shutdown() override { abort(); }

 private:
  static constexpr std::uint8_t kOpCont = 0x0;
  static constexpr std::uint8_t kOpText = 0x1;
  static constexpr std::uint8_t kOpBinary = 0x2;
  static constexpr std::uint8_t kOpClose = 0x8;
  static constexpr std::uint8_t kOpPing = 0x9;
  static constexpr std::uint8_t kOpPong = 0xA;
  static constexpr std::size_t kMaxWriteBytes = 256 * 1024;  // one write's frames, about
  static constexpr std::size_t kCopyMax = 1024;              // payloads staged by copy
  static constexpr std::size_t kReadChunk = 16 * 1024;

  struct Outgoing {
    Message data;
    std::array<std::uint8_t, 10> header;
    std::uint8_t header_size;
    bool is_data;  // counted against max_queue (control frames are not)
    bool is_close;
  };

  tcp::socket& socket() { return beast::get_lowest_layer(ws_).socket(); }

  void enqueue(Message payload, std::uint8_t opcode) {
    Outgoing out{std::move(payload), {}, 0, opcode < 0x8, opcode == kOpClose};
    const std::size_t n = out.data ? out.data->size() : 0;
    out.header[0] = static_cast<std::uint8_t>(0x80U | opcode);  // FIN, never masked
    if (n < 126) {
      out.header[1] = static_cast<std::uint8_t>(n);
      out.header_size = 2;
    } else if (n <= 0xFFFF) {
      out.header[1] = 126;
      out.header[2] = static_cast<std::uint8_t>(n >> 8);
      out.header[3] = static_cast<std::uint8_t>(n);
      out.header_size = 4;
    } else {
      out.header[1] = 127;
      for (int i = 0; i < 8; ++i) {
        out.header[static_cast<std::size_t>(2 + i)] =
            static_cast<std::uint8_t>(static_cast<std::uint64_t>(n) >> (56 - 8 * i));
      }
      out.header_size = 10;
    }
    unwritten_bytes_ += out.header_size + n;
    queue_.push_back(std::move(out));
    if (open_ && !writing_ && (opcode >= kOpClose || !defer_write())) do_write();
  }

  // Coalescing (WsOptions::coalesce = T): a client whose last write started less than T ago
  // is under load; its frames then wait for the server's next flush tick (at most T), unless
  // coalesce_bytes are waiting, so each busy client costs at most ~1/T sendmsg calls per second
  // and each carries more frames (loopback TCP costs mostly per call, not per byte). A client
  // written to less often gets every frame at once: no delay at low rates. Control frames
  // never wait.
  // Server-wide (max_writes_per_s): the window grows with the number of clients written to
  // lately, so that 500 clients each getting an event every few milliseconds are written in
  // one pass per tick, several frames each, instead of one send(2) per frame per client.
  bool defer_write() {
    if (unwritten_bytes_ >= options_.coalesce_bytes) return false;
    if (flush_pending_) return true;
    auto& st = token_.state();
    const auto now = std::chrono::steady_clock::now();
    const auto window = st.coalesce_window(now);
    if (window.count() <= 0 || now - last_write_ >= window) return false;
    flush_pending_ = true;
    st.flush_due.push_back(weak_from_this());
    if (st.flush_due.size() == 1) {
      if (!st.flush_timer) st.flush_timer.emplace(st.io);
      st.flush_timer->expires_after(window);
      st.flush_timer->async_wait(
          [weak = std::weak_ptr<HttpServer::State>(token_.state_ptr())](beast::error_code ec) {
            const auto state = weak.lock();
            if (ec || !state) return;
            const auto due = std::exchange(state->flush_due, {});
            for (const auto& w : due) {
              if (const auto session = w.lock()) session->flush();
            }
          });
    }
    return true;
  }

  void flush() override {
    flush_pending_ = false;
    if (open_ && !writing_ && !queue_.empty() && socket().is_open()) do_write();
  }

  // Queues a close frame (once); nothing is queued after it.
  void send_close(std::uint16_t code) {
    if (close_sent_) return;
    close_sent_ = true;
    auto payload = std::make_shared<std::string>(2, '\0');
    (*payload)[0] = static_cast<char>(code >> 8);
    (*payload)[1] = static_cast<char>(code & 0xFF);
    enqueue(std::move(payload), kOpClose);
  }

  void on_accept(beast::error_code ec) {
    if (ec) return fail(ec);
    // Beast's idle timer off: it would time the socket out, as it no longer sees our reads.
    websocket::stream_base::timeout none{};
    none.handshake_timeout = websocket::stream_base::none();
    none.idle_timeout = websocket::stream_base::none();
    none.keep_alive_pings = false;
    ws_.set_option(none);
    open_ = true;
    token_.state().stats.websocket_upgrades.fetch_add(1, std::memory_order_relaxed);
    last_read_ = std::chrono::steady_clock::now();
    if (!close_requested_) arm_idle(options_.idle_timeout);
    do_read();
    if (!queue_.empty() && !writing_) do_write();
  }

  // ---------------------------------------------------------------- reading

  void do_read() {
    socket().async_read_some(
        rbuf_.prepare(kReadChunk),
        [self = shared_from_this()](beast::error_code ec, std::size_t n) { self->on_read(ec, n); });
  }

  void on_read(beast::error_code ec, std::size_t n) {
    if (finished_ && !socket().is_open()) return;
    if (ec) {
      if (finished_) return close_socket();  // the peer's end after our close frame
      return fail(ec);
    }
    rbuf_.commit(n);
    last_read_ = std::chrono::steady_clock::now();
    if (draining_) {
      rbuf_.clear();
    } else if (!parse_frames() && !draining_) {
      return;
    }
    do_read();
  }

  // Handles every complete frame in rbuf_; false when reading must stop. Everything RFC 6455
  // asks of a server reading a client's frames is checked here (Beast's read did it before):
  //   5.1  every client frame is masked;
  //   5.2  RSV1-3 are 0 (no extension is negotiated), opcodes 3-7 and B-F are reserved, a
  //        length uses its shortest form (Beast's rule too: a 126/127 form for a length that
  //        fits the shorter one is refused);
  //   5.4  a continuation frame only inside a fragmented message, a new text/binary frame only
  //        outside one;
  //   5.5  control frames are not fragmented and carry at most 125 bytes;
  //   5.5.1, 7.4  a close frame has no body, or a code that may be sent and a UTF-8 reason;
  //   8.1  a text message (all its fragments, validated as they come) is UTF-8 -> else 1007;
  //   10.4 a message above max_message -> 1009.
  // Header checks fail before the payload has arrived (nothing is buffered for a bad frame).
  bool parse_frames() {
    for (;;) {
      auto* p = static_cast<std::uint8_t*>(rbuf_.data().data());
      const std::size_t avail = rbuf_.size();
      if (avail < 2) return true;
      const bool fin = (p[0] & 0x80U) != 0;
      const auto opcode = static_cast<std::uint8_t>(p[0] & 0x0FU);
      const bool masked = (p[1] & 0x80U) != 0;
      const bool control = opcode >= kOpClose;
      const bool reserved_opcode = (opcode > kOpBinary && opcode < kOpClose) || opcode > kOpPong;
      if ((p[0] & 0x70U) != 0 || !masked || reserved_opcode || (control && !fin) ||
          (opcode == kOpCont && !in_message_) ||
          ((opcode == kOpText || opcode == kOpBinary) && in_message_)) {
        return protocol_error(1002, WsCloseCause::ProtocolError);
      }
      std::uint64_t len = p[1] & 0x7FU;
      std::size_t header = 2;
      if (len == 126) {
        if (avail < 4) return true;
        len = (std::uint64_t{p[2]} << 8) | p[3];
        header = 4;
        if (len < 126) return protocol_error(1002, WsCloseCause::ProtocolError);
      } else if (len == 127) {
        if (avail < 10) return true;
        len = 0;
        for (std::size_t i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
        header = 10;
        if (len <= 0xFFFF) return protocol_error(1002, WsCloseCause::ProtocolError);
      }
      if (control && len > 125) return protocol_error(1002, WsCloseCause::ProtocolError);
      // Two comparisons: a 64-bit length near 2^64 must not wrap the sum.
      if (!control &&
          (len > options_.max_message || message_.size() + len > options_.max_message)) {
        return protocol_error(1009, WsCloseCause::TooLarge);
      }
      header += 4;
      if (avail < header + len) return true;  // wait for the rest (bounded by max_message)
      const std::uint8_t* mask = p + header - 4;
      std::uint8_t* payload = p + header;
      const std::size_t size = static_cast<std::size_t>(len);
      for (std::size_t i = 0; i < size; ++i) {
        payload[i] = static_cast<std::uint8_t>(payload[i] ^ mask[i & 3U]);
      }
      const std::string_view view(reinterpret_cast<const char*>(payload), size);
      if (!control) {
        if (opcode != kOpCont) {
          binary_ = opcode == kOpBinary;
          utf8_.reset();
        }
        // Each fragment is checked as it comes (a connection sending bad text fails at once,
        // not after max_message bytes); a character may straddle two fragments.
        if (!binary_ && (!utf8_.feed(view) || (fin && !utf8_.finish()))) {
          return protocol_error(1007, WsCloseCause::InvalidUtf8);
        }
        if (fin && !in_message_) {
          deliver(view);  // whole message in one frame: no copy
        } else {
          in_message_ = true;
          message_.append(view);
          if (fin) {
            deliver(message_);
            message_.clear();
            in_message_ = false;
          }
        }
      } else if (opcode == kOpPing) {
        if (!close_sent_) enqueue(std::make_shared<const std::string>(view), kOpPong);
      } else if (opcode == kOpClose) {
        std::uint16_t code = 1000;  // no code given: ours is "normal"
        if (!close_sent_) {         // else it answers ours: whatever it says, we are done
          if (size == 1) return protocol_error(1002, WsCloseCause::ProtocolError);
          if (size >= 2) {
            code = static_cast<std::uint16_t>((unsigned{payload[0]} << 8) | payload[1]);
            if (!sendable_close_code(code)) {
              return protocol_error(1002, WsCloseCause::ProtocolError);
            }
            if (!is_valid_utf8(view.substr(2))) {
              return protocol_error(1007, WsCloseCause::InvalidUtf8);
            }
          }
        }
        rbuf_.consume(header + size);
        return on_close_frame(code);
      }
      rbuf_.consume(header + size);
      if (finished_) return false;
    }
  }

  // RFC 6455 7.4: codes an endpoint may put in a close frame. 1005, 1006 and 1015 only
  // describe a close locally; 0-999 are unused, 1016-2999 reserved for the protocol, and
  // nothing is defined above 4999 (3000-4999 are for libraries and applications).
  static bool sendable_close_code(std::uint16_t code) noexcept {
    if (code >= 3000) return code <= 4999;
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014);
  }

  void deliver(std::string_view data) {
    if (handler_) handler_->on_ws_message(*this, data, binary_);
  }

  bool on_close_frame(std::uint16_t code) {
    if (close_sent_) {  // the answer to our close: the handshake is complete
      close_socket();
      finish(WsCloseCause::Local);
      return false;
    }
    // The peer closes: messages not yet written will not be read; echo its code (RFC 6455
    // 5.5.1) and close the TCP connection once the echo is out.
    drop_unwritten();
    send_close(code);
    close_after_write_ = true;
    draining_ = true;
    arm_close_deadline();
    finish(local_close_ ? WsCloseCause::Local : WsCloseCause::Remote);
    return false;
  }

  bool protocol_error(std::uint16_t code, WsCloseCause cause) {
    if (close_written_) {  // our close frame is out already: nothing more to say
      close_socket();
      finish(cause);
      return false;
    }
    drop_unwritten();
    send_close(code);
    close_after_write_ = true;
    draining_ = true;  // unread bytes at close() would make the kernel reset the connection
    arm_close_deadline();
    finish(cause);
    return false;
  }

  // Drops the queued frames no write has taken yet, except a close frame (always the last).
  void drop_unwritten() {
    std::optional<Outgoing> close;
    if (queue_.size() > in_flight_ && queue_.back().is_close) {
      close.emplace(std::move(queue_.back()));
      queue_.pop_back();
    }
    while (queue_.size() > in_flight_) {
      if (queue_.back().is_data) --data_queued_;
      queue_.pop_back();
    }
    if (close) queue_.push_back(std::move(*close));
    unwritten_bytes_ = 0;  // (a close frame's 4 bytes at most: no matter for coalescing)
  }

  void arm_idle(std::chrono::steady_clock::duration after) {
    idle_timer_.expires_after(after);
    idle_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->finished_) return;
      const auto due = self->last_read_ + self->options_.idle_timeout;
      const auto now = std::chrono::steady_clock::now();
      if (now < due) return self->arm_idle(due - now);
      self->close_socket();
      self->finish(WsCloseCause::Timeout);
    });
  }

  // ---------------------------------------------------------------- writing

  // One write for the queued frames, up to kMaxWriteBytes (or the close frame). Headers and
  // small payloads are copied into wbuf_, so that a run of small frames is one buffer: asio
  // hands at most 64 buffers to one sendmsg, and a fan-out's frames are ~200 bytes. Large
  // payloads are referenced in place (gathered, never copied).
  void do_write() {
    writing_ = true;
    last_write_ = std::chrono::steady_clock::now();
    token_.state().note_writer(last_write_, counted_in_period_);
    wbuf_.clear();
    segments_.clear();
    in_flight_ = 0;
    std::size_t bytes = 0;
    for (const Outgoing& out : queue_) {
      if (in_flight_ > 0 && bytes >= kMaxWriteBytes) break;
      const std::size_t n = out.data ? out.data->size() : 0;
      wbuf_.append(reinterpret_cast<const char*>(out.header.data()), out.header_size);
      if (n <= kCopyMax) {
        if (n > 0) wbuf_.append(*out.data);
      } else {
        segments_.push_back(Segment{wbuf_.size(), out.data.get()});
      }
      bytes += out.header_size + n;
      ++in_flight_;
      if (out.is_close) break;
    }
    unwritten_bytes_ = bytes < unwritten_bytes_ ? unwritten_bytes_ - bytes : 0;
    // wbuf_ is complete (no more reallocation): now the buffers may point into it.
    bufs_.clear();
    std::size_t from = 0;
    for (const Segment& seg : segments_) {
      if (seg.staged_end > from) bufs_.emplace_back(wbuf_.data() + from, seg.staged_end - from);
      bufs_.emplace_back(seg.payload->data(), seg.payload->size());
      from = seg.staged_end;
    }
    if (wbuf_.size() > from) bufs_.emplace_back(wbuf_.data() + from, wbuf_.size() - from);
    asio::async_write(
        socket(), bufs_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_write(ec); });
  }

  void on_write(beast::error_code ec) {
    writing_ = false;
    bool wrote_close = false;
    for (; in_flight_ > 0; --in_flight_) {
      if (queue_.front().is_data) --data_queued_;
      wrote_close |= queue_.front().is_close;
      queue_.pop_front();
    }
    if (ec) {
      if (finished_) return close_socket();
      return fail(ec);
    }
    if (wrote_close) {
      close_written_ = true;
      if (close_after_write_) {
        // Half-close: the peer reads our close frame, then EOF; the drain above ends on its EOF.
        beast::error_code ignored;
        socket().shutdown(tcp::socket::shutdown_send, ignored);
        return;
      }
      // Our close frame is out: the peer answers with its own (read above); it gets
      // handshake_timeout to do so.
      arm_close_deadline();
      return;
    }
    if (!queue_.empty() && !defer_write()) do_write();
  }

  void arm_close_deadline() {
    idle_timer_.expires_after(options_.handshake_timeout);
    idle_timer_.async_wait([self = shared_from_this()](beast::error_code e) {
      if (e) return;
      self->close_socket();
      self->finish(WsCloseCause::Local);
    });
  }

  void close_socket() {
    beast::error_code ignored;
    idle_timer_.cancel();
    if (socket().is_open()) {
      socket().shutdown(tcp::socket::shutdown_both, ignored);
      socket().close(ignored);
    }
  }

  void fail(beast::error_code ec) {
    if (finished_) return close_socket();
    WsCloseCause cause = WsCloseCause::Error;
    if (local_close_) {
      cause = WsCloseCause::Local;
    } else if (ec == websocket::error::closed || ec == asio::error::eof ||
               ec == asio::error::connection_reset || ec == beast::http::error::end_of_stream) {
      cause = WsCloseCause::Remote;
    } else if (ec == beast::error::timeout) {
      cause = WsCloseCause::Timeout;
    }
    close_socket();
    finish(cause);
  }

  void finish(WsCloseCause cause) {
    if (finished_) return;
    finished_ = true;
    // The handler is released after the call: it may hold this connection (cycle).
    std::shared_ptr<WsHandler> handler = std::move(handler_);
    if (handler) handler->on_ws_close(*this, cause);
  }

  websocket::stream<beast::tcp_stream> ws_;  // the opening handshake only
  asio::steady_timer idle_timer_;
  beast::flat_buffer rbuf_;
  std::string message_;  // a fragmented message being assembled
  Utf8Validator utf8_;   // the text message being read, across its fragments
  WsOptions options_;
  std::shared_ptr<WsHandler> handler_;
  std::deque<Outgoing> queue_;
  // A large payload of the write in flight, after the staged bytes up to staged_end.
  struct Segment {
    std::size_t staged_end;
    const std::string* payload;
  };
  std::string wbuf_;                      // staged headers and small payloads (capacity kept)
  std::vector<Segment> segments_;         // the write's large payloads (capacity kept)
  std::vector<asio::const_buffer> bufs_;  // the write in flight (capacity kept)
  std::chrono::steady_clock::time_point last_read_{};
  LiveToken token_;
  std::size_t data_queued_ = 0;
  std::size_t in_flight_ = 0;                           // queue_ entries the write in flight covers
  std::size_t unwritten_bytes_ = 0;                     // frame bytes queued after those
  std::chrono::steady_clock::time_point last_write_{};  // when the last write started
  bool flush_pending_ = false;                          // in the server's flush_due
  std::uint64_t counted_in_period_ = 0;                 // State::note_writer
  bool open_ = false;
  bool writing_ = false;
  bool in_message_ = false;
  bool binary_ = false;
  bool close_requested_ = false;
  bool close_sent_ = false;
  bool close_after_write_ = false;
  bool close_written_ = false;  // our close frame has left
  bool draining_ = false;       // after a close frame: input is read and discarded
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
  state_->flush_due.clear();
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
