#include "transport/amqp_link.hpp"

#include <amqp_tcp_socket.h>
#include <sys/time.h>

namespace shmbus::bridge::transport {
namespace {

timeval to_timeval(std::chrono::microseconds d) {
  if (d.count() < 0) d = std::chrono::microseconds{0};
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1'000'000);
  tv.tv_usec = static_cast<suseconds_t>(d.count() % 1'000'000);
  return tv;
}

std::string method_close_text(const amqp_method_t& m) {
  if (m.id == AMQP_CONNECTION_CLOSE_METHOD) {
    const auto* c = static_cast<const amqp_connection_close_t*>(m.decoded);
    return "broker closed the connection: " + std::to_string(c->reply_code) + " " +
           to_string(c->reply_text);
  }
  if (m.id == AMQP_CHANNEL_CLOSE_METHOD) {
    const auto* c = static_cast<const amqp_channel_close_t*>(m.decoded);
    return "broker closed the channel: " + std::to_string(c->reply_code) + " " +
           to_string(c->reply_text);
  }
  return std::string("unexpected method ") + amqp_method_name(m.id);
}

}  // namespace

AmqpLink::AmqpLink(AmqpEndpoint endpoint, Setup setup, Backoff::Random random)
    : endpoint_(std::move(endpoint)),
      setup_(std::move(setup)),
      backoff_(endpoint_.backoff, std::move(random)) {}

AmqpLink::~AmqpLink() {
  close_socket();
}

std::string AmqpLink::describe() const {
  return "amqp://" + endpoint_.user + "@" + endpoint_.host + ":" + std::to_string(endpoint_.port) +
         "/" + endpoint_.vhost;
}

void AmqpLink::close_socket() {
  if (conn_ == nullptr) return;
  // No closing handshake: the socket may be dead, and a handshake could wait. The
  // broker treats the TCP close as a connection close (requeues, drops confirms).
  amqp_destroy_connection(conn_);
  conn_ = nullptr;
}

void AmqpLink::lose(const std::string& why) {
  last_error_ = scrub(describe() + ": " + why, endpoint_.password);
  close_socket();
  next_attempt_ = Clock::now() + backoff_.next();
  if (state_ != LinkState::Disconnected) ++generation_;
  state_ = LinkState::Disconnected;
}

std::string AmqpLink::rpc_error(const char* what) {
  const amqp_rpc_reply_t r = amqp_get_rpc_reply(conn_);
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return {};
    case AMQP_RESPONSE_NONE:
      return std::string(what) + ": no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return std::string(what) + ": " + amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      return std::string(what) + ": " + method_close_text(r.reply);
  }
  return std::string(what) + ": unknown reply";
}

std::string AmqpLink::connect_once() {
  conn_ = amqp_new_connection();
  if (conn_ == nullptr) return "cannot allocate a connection";
  amqp_socket_t* socket = amqp_tcp_socket_new(conn_);
  if (socket == nullptr) return "cannot create a socket";
  timeval tv = to_timeval(endpoint_.connect_timeout);
  const int rc = amqp_socket_open_noblock(socket, endpoint_.host.c_str(), endpoint_.port, &tv);
  if (rc != AMQP_STATUS_OK)
    return std::string("TCP connect failed: ") + amqp_error_string2(rc) +
           " (is rabbitmq-server running there?)";
  (void)amqp_set_handshake_timeout(conn_, &tv);
  (void)amqp_set_rpc_timeout(conn_, &tv);
  const amqp_rpc_reply_t login = amqp_login(
      conn_, endpoint_.vhost.c_str(), 0, 131072, static_cast<int>(endpoint_.heartbeat.count()),
      AMQP_SASL_METHOD_PLAIN, endpoint_.user.c_str(), endpoint_.password.reveal().c_str());
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    std::string detail = login.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION
                             ? method_close_text(login.reply)
                             : amqp_error_string2(login.library_error);
    return "login as user \"" + endpoint_.user + "\" to vhost \"" + endpoint_.vhost +
           "\" refused: " + detail + " (check the user, password and vhost)";
  }
  amqp_channel_open(conn_, channel);
  if (auto e = rpc_error("channel.open"); !e.empty()) return e;
  if (setup_) return setup_(*this);
  return {};
}

bool AmqpLink::step() {
  if (state_ == LinkState::Ready) return true;
  if (Clock::now() < next_attempt_) return false;
  state_ = LinkState::Connecting;
  if (const std::string e = connect_once(); !e.empty()) {
    state_ = LinkState::Authenticating;  // so that lose() counts a generation
    lose(e);
    return false;
  }
  state_ = LinkState::Ready;
  ++generation_;
  backoff_.reset();
  if (ever_ready_) ++reconnects_;
  ever_ready_ = true;
  last_error_.clear();
  return true;
}

bool AmqpLink::frame_buffered() const {
  return conn_ != nullptr && (amqp_frames_enqueued(conn_) || amqp_data_in_buffer(conn_));
}

AmqpLink::Read AmqpLink::read_frame(amqp_frame_t& frame, Clock::time_point deadline) {
  if (state_ != LinkState::Ready) return Read::Lost;
  auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
  if (left.count() > 0 && left < std::chrono::milliseconds(1) && !frame_buffered()) {
    // rabbitmq-c waits in whole milliseconds: a shorter wait would be a busy loop of
    // zero-timeout polls. Wait for the socket here, then let it read what is there (and
    // send a heartbeat if one is due) without waiting.
    pollfd p{amqp_get_sockfd(conn_), POLLIN, 0};
    (void)poll_until(p, deadline);
    left = std::chrono::microseconds{0};
  }
  timeval tv = to_timeval(left);
  const int rc = amqp_simple_wait_frame_noblock(conn_, &frame, &tv);
  if (rc == AMQP_STATUS_TIMEOUT) return Read::Timeout;
  if (rc != AMQP_STATUS_OK) {
    lose(std::string("connection lost: ") + amqp_error_string2(rc));
    return Read::Lost;
  }
  if (frame.frame_type == AMQP_FRAME_METHOD &&
      (frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
       frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD)) {
    const std::string why = method_close_text(frame.payload.method);
    if (frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
      amqp_connection_close_ok_t ok{};
      (void)amqp_send_method(conn_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    }
    lose(why);
    return Read::Lost;
  }
  return Read::Frame;
}

}  // namespace shmbus::bridge::transport
