#include "transport/redis_link.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace shmbus::bridge::transport {

int poll_until(pollfd& p, Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - Clock::now());
  if (left.count() < 0) left = std::chrono::nanoseconds{0};
  if (left > std::chrono::seconds(60)) left = std::chrono::seconds(60);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(left.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(left.count() % 1'000'000'000);
  return ::ppoll(&p, 1, &ts, nullptr);
}

const char* to_string(LinkState s) noexcept {
  switch (s) {
    case LinkState::Disconnected:
      return "disconnected";
    case LinkState::Connecting:
      return "connecting";
    case LinkState::Authenticating:
      return "authenticating";
    case LinkState::Ready:
      return "connected";
  }
  return "?";
}

std::string reply_text(const redisReply* r) {
  if (r == nullptr) return "no reply";
  switch (r->type) {
    case REDIS_REPLY_ERROR:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_STRING:
      return std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER:
      return "integer " + std::to_string(r->integer);
    case REDIS_REPLY_NIL:
      return "nil";
    case REDIS_REPLY_ARRAY:
      return "array of " + std::to_string(r->elements);
    default:
      return "reply type " + std::to_string(r->type);
  }
}

RedisLink::RedisLink(RedisEndpoint endpoint, Backoff::Random random)
    : endpoint_(std::move(endpoint)), backoff_(endpoint_.backoff, std::move(random)) {}

RedisLink::~RedisLink() {
  if (ctx_ != nullptr) redisFree(ctx_);
}

std::string RedisLink::describe() const {
  return endpoint_.host + ":" + std::to_string(endpoint_.port);
}

void RedisLink::set_state(LinkState s) {
  if (s == state_) return;
  state_ = s;
  ++generation_;
}

void RedisLink::fail(const std::string& why) {
  last_error_ = scrub("redis " + describe() + ": " + why, endpoint_.password);
  raw_out_.clear();
  raw_written_ = 0;
  if (ctx_ != nullptr) {
    redisFree(ctx_);
    ctx_ = nullptr;
  }
  next_attempt_ = Clock::now() + backoff_.next();
  set_state(LinkState::Disconnected);
}

void RedisLink::lose(const std::string& why) {
  fail(why);
}

bool RedisLink::start_connect() {
  ctx_ = redisConnectNonBlock(endpoint_.host.c_str(), endpoint_.port);
  if (ctx_ == nullptr) {
    fail("cannot allocate a connection");
    return false;
  }
  if (ctx_->err != 0) {
    fail(std::string("connect failed: ") + ctx_->errstr);
    return false;
  }
  connect_deadline_ = Clock::now() + endpoint_.connect_timeout;
  set_state(LinkState::Connecting);
  return true;
}

bool RedisLink::step(Clock::time_point deadline) {
  while (true) {
    switch (state_) {
      case LinkState::Ready:
        return true;
      case LinkState::Disconnected:
        if (Clock::now() < next_attempt_) return false;
        if (!start_connect()) return false;
        break;
      case LinkState::Connecting: {
        const auto until = std::min(deadline, connect_deadline_);
        pollfd p{ctx_->fd, POLLOUT, 0};
        const int n = poll_until(p, until);
        if (n < 0 && errno != EINTR) {
          fail(std::string("poll: ") + std::strerror(errno));
          return false;
        }
        if (n <= 0) {
          if (Clock::now() >= connect_deadline_) {
            fail("connect timed out after " + std::to_string(endpoint_.connect_timeout.count()) +
                 " ms");
          }
          return false;
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(ctx_->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
          fail(std::string("connect failed: ") + std::strerror(err != 0 ? err : errno) +
               " (is redis-server running there?)");
          return false;
        }
        // AUTH when configured, then PING: a server that is still loading its dataset
        // (AOF or RDB after a restart) accepts connections but answers every command with
        // -LOADING until it is done. Commands sent then would fail one by one (and, once
        // loading ends mid-pipeline, a stream entry refused before could never be added
        // behind the later ones): the link is Ready only once PING is answered.
        handshake_replies_ = 1;
        if (!endpoint_.password.empty()) {
          const std::string& pw = endpoint_.password.reveal();
          if (endpoint_.user.empty()) {
            const char* argv[] = {"AUTH", pw.c_str()};
            const size_t lens[] = {4, pw.size()};
            redisAppendCommandArgv(ctx_, 2, argv, lens);
          } else {
            const char* argv[] = {"AUTH", endpoint_.user.c_str(), pw.c_str()};
            const size_t lens[] = {4, endpoint_.user.size(), pw.size()};
            redisAppendCommandArgv(ctx_, 3, argv, lens);
          }
          handshake_replies_ = 2;
        }
        redisAppendCommand(ctx_, "PING");
        set_state(LinkState::Authenticating);
        break;
      }
      case LinkState::Authenticating: {
        const auto until = std::min(deadline, connect_deadline_);
        if (!flush_output()) return false;
        bool error = false;
        ReplyPtr r = next_reply(error);
        if (error) return false;
        if (r) {
          const bool auth_reply = handshake_replies_ == 2;
          if (r->type == REDIS_REPLY_ERROR && auth_reply) {
            fail("AUTH as user \"" +
                 (endpoint_.user.empty() ? std::string("default") : endpoint_.user) +
                 "\" refused: " + reply_text(r.get()) +
                 " (check the configured user and password)");
            return false;
          }
          if (r->type == REDIS_REPLY_ERROR) {
            fail("server not ready: " + reply_text(r.get()) + " (retrying with backoff)");
            return false;
          }
          if (--handshake_replies_ == 0) set_state(LinkState::Ready);
          break;
        }
        // wait_io() may lose the link; state_ then says so.
        if (!wait_io(until)) return false;
        if (Clock::now() >= connect_deadline_ && state_ == LinkState::Authenticating) {
          fail(std::string(handshake_replies_ == 2 ? "AUTH" : "PING") + " got no reply within " +
               std::to_string(endpoint_.connect_timeout.count()) + " ms");
          return false;
        }
        if (Clock::now() >= deadline) return false;
        break;
      }
    }
    if (state_ == LinkState::Ready) {
      backoff_.reset();
      if (ever_ready_) ++reconnects_;
      ever_ready_ = true;
      last_error_.clear();
      return true;
    }
  }
}

bool RedisLink::output_pending() const noexcept {
  return ctx_ != nullptr &&
         ((ctx_->obuf != nullptr && ctx_->obuf[0] != '\0') || raw_written_ < raw_out_.size());
}

bool RedisLink::flush_output() {
  if (ctx_ == nullptr) return false;
  int done = 0;
  if (redisBufferWrite(ctx_, &done) != REDIS_OK) {
    fail(std::string("write failed: ") + ctx_->errstr);
    return false;
  }
  if (done == 0) return true;  // hiredis' buffer first: raw output never overtakes it
  while (raw_written_ < raw_out_.size()) {
    const ssize_t n = ::send(ctx_->fd, raw_out_.data() + raw_written_,
                             raw_out_.size() - raw_written_, MSG_NOSIGNAL);
    if (n > 0) {
      raw_written_ += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return true;  // the rest when the socket is writable (wait_io)
    } else {
      fail(std::string("write failed: ") + std::strerror(errno));
      return false;
    }
  }
  raw_out_.clear();  // keeps its capacity
  raw_written_ = 0;
  return true;
}

ReplyPtr RedisLink::next_reply(bool& error) {
  error = false;
  if (ctx_ == nullptr) {
    error = true;
    return nullptr;
  }
  void* reply = nullptr;
  if (redisGetReplyFromReader(ctx_, &reply) != REDIS_OK) {
    fail(std::string("protocol error: ") + ctx_->errstr);
    error = true;
    return nullptr;
  }
  return ReplyPtr(static_cast<redisReply*>(reply));
}

bool RedisLink::wait_io(Clock::time_point deadline) {
  if (ctx_ == nullptr) return false;
  short events = POLLIN;
  if (output_pending()) events |= POLLOUT;
  pollfd p{ctx_->fd, events, 0};
  const int n = poll_until(p, deadline);
  if (n < 0) {
    if (errno == EINTR) return true;
    fail(std::string("poll: ") + std::strerror(errno));
    return false;
  }
  if (n == 0) return true;
  if ((p.revents & POLLOUT) != 0 && !flush_output()) return false;
  if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
    if (redisBufferRead(ctx_) != REDIS_OK) {
      fail(std::string("connection lost: ") + ctx_->errstr);
      return false;
    }
  }
  return true;
}

}  // namespace shmbus::bridge::transport
