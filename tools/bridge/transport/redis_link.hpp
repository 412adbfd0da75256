#pragma once
// RedisLink: one non-blocking hiredis connection and its state machine, shared by the
// Redis publisher, subscriber and stream consumer.
//
//   Disconnected --(attempt due)--> Connecting --(TCP up)--> Authenticating --> Ready
//        ^                               |                        |               |
//        +------ failure / timeout: backoff.next() before the next attempt -------+
//
// Nothing here blocks beyond the deadline it is given: the socket is non-blocking, the
// TCP connect, AUTH and the PING that proves the server serves commands (not still loading
// its dataset after a restart: -LOADING is a failed attempt, retried) share one
// `connect_timeout`, and every wait is a poll(2) on the
// socket bounded by the caller's deadline. The owner drives it from its own thread
// (step()), appends commands through context(), and reads replies with next_reply().
// Credentials are a Secret; every error text is scrubbed of the password.
#include <hiredis/hiredis.h>
#include <poll.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "transport/backoff.hpp"
#include "transport/secret.hpp"

namespace shmbus::bridge::transport {

using Clock = std::chrono::steady_clock;

// poll(2) on one descriptor until `deadline`, to the microsecond (ppoll): poll()'s
// millisecond timeout rounds a sub-millisecond wait down to zero, which turned the routes'
// short waits for replies into busy loops that starved the servers on a small machine.
// Returns poll's result (-1 with errno, 0 on timeout, else 1 with p.revents set).
[[nodiscard]] int poll_until(pollfd& p, Clock::time_point deadline);

struct RedisEndpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string user;  // empty: AUTH with the password alone (the "default" user)
  Secret password;   // empty: no AUTH
  std::chrono::milliseconds connect_timeout{2000};  // TCP connect + AUTH together
  BackoffPolicy backoff{};
};

enum class LinkState { Disconnected, Connecting, Authenticating, Ready };
[[nodiscard]] const char* to_string(LinkState s) noexcept;

struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

class RedisLink {
 public:
  explicit RedisLink(RedisEndpoint endpoint, Backoff::Random random = {});
  ~RedisLink();
  RedisLink(const RedisLink&) = delete;
  RedisLink& operator=(const RedisLink&) = delete;

  // Advances the connection toward Ready; waits on the socket until `deadline` at most.
  // Returns true when Ready. A failed attempt schedules the next one after a backoff
  // delay; before that, step() returns false at once (no tight loop).
  bool step(Clock::time_point deadline);

  // Ready only: writes as much buffered output as the socket takes now. False on a
  // broken connection (then the link is Disconnected: call lose() is already done).
  [[nodiscard]] bool flush_output();
  // Ready only: one parsed reply if one is complete in the input buffer, else null.
  // Sets `error` (link lost) when the stream cannot be parsed.
  [[nodiscard]] ReplyPtr next_reply(bool& error);
  // Ready only: waits until the socket is readable (or writable when output is
  // pending) or `deadline`, then reads what arrived. False if the link broke.
  [[nodiscard]] bool wait_io(Clock::time_point deadline);
  [[nodiscard]] bool output_pending() const noexcept;
  // Commands already in the Redis protocol, appended by the owner and written by
  // flush_output() after hiredis' own buffer. Kept across writes, so a pipelined
  // publisher does not pay hiredis' buffer being freed and grown again on every write.
  [[nodiscard]] std::string& raw_output() noexcept { return raw_out_; }

  // Drops the connection with a reason (scrubbed) and schedules a reconnect.
  void lose(const std::string& why);

  [[nodiscard]] redisContext* context() noexcept { return ctx_; }
  [[nodiscard]] LinkState state() const noexcept { return state_; }
  [[nodiscard]] const std::string& last_error() const noexcept { return last_error_; }
  // Incremented on every transition into Ready after the first (a reconnect).
  [[nodiscard]] std::uint64_t reconnects() const noexcept { return reconnects_; }
  // Incremented on every change of state(); an owner that logs compares it.
  [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }
  [[nodiscard]] Clock::time_point next_attempt() const noexcept { return next_attempt_; }
  [[nodiscard]] const RedisEndpoint& endpoint() const noexcept { return endpoint_; }
  [[nodiscard]] std::string describe() const;  // "127.0.0.1:6379", never the password

 private:
  void set_state(LinkState s);
  void fail(const std::string& why);
  bool start_connect();

  RedisEndpoint endpoint_;
  Backoff backoff_;
  redisContext* ctx_ = nullptr;
  std::string raw_out_;
  std::size_t raw_written_ = 0;  // bytes of raw_out_ already on the socket
  LinkState state_ = LinkState::Disconnected;
  std::string last_error_;
  Clock::time_point next_attempt_{};
  Clock::time_point connect_deadline_{};
  std::uint64_t reconnects_ = 0;
  std::uint64_t generation_ = 0;
  bool ever_ready_ = false;
  int handshake_replies_ = 0;  // AUTH and/or PING replies still awaited (Authenticating)
};

// The text of an error reply, or a description of an unexpected reply type.
[[nodiscard]] std::string reply_text(const redisReply* r);

}  // namespace shmbus::bridge::transport
