#pragma once
// AmqpLink: one AMQP 0-9-1 connection (rabbitmq-c) with one channel, its reconnection
// state machine, and the frame reading shared by the AMQP publisher and consumer.
//
//   Disconnected --(attempt due)--> [TCP connect, login, channel.open, owner's setup]
//        ^                                   |  (one bounded attempt)          --> Ready
//        +--- failure / broker close / socket error: backoff.next() ---+-----------+
//
// rabbitmq-c is a synchronous library, so a connection attempt blocks its caller: the
// TCP connect is bounded by `connect_timeout`, the handshake and every setup RPC
// (declare, bind, qos, confirm.select) by the same value through
// amqp_set_handshake_timeout / amqp_set_rpc_timeout. Frame reads are bounded by the
// caller's deadline. Heartbeats (`heartbeat`) are answered inside every read, and a
// broker that goes silent for two heartbeat intervals is a lost connection. A Secret
// holds the password; every error text is scrubbed of it.
#include <amqp.h>
#include <amqp_framing.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "transport/backoff.hpp"
#include "transport/redis_link.hpp"  // Clock, LinkState
#include "transport/secret.hpp"

namespace shmbus::bridge::transport {

struct AmqpEndpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 5672;
  std::string user = "guest";
  Secret password;
  std::string vhost = "/";
  std::chrono::milliseconds connect_timeout{3000};  // TCP + handshake, and each setup RPC
  std::chrono::seconds heartbeat{10};
  BackoffPolicy backoff{};
};

class AmqpLink {
 public:
  static constexpr amqp_channel_t channel = 1;
  // Called after channel.open on every connection; declares what the owner needs.
  // Returns an empty string on success, else the reason (the link is then lost).
  using Setup = std::function<std::string(AmqpLink&)>;

  AmqpLink(AmqpEndpoint endpoint, Setup setup, Backoff::Random random = {});
  ~AmqpLink();
  AmqpLink(const AmqpLink&) = delete;
  AmqpLink& operator=(const AmqpLink&) = delete;

  // Ready: true at once. Disconnected and the backoff delay has passed: one connection
  // attempt (blocks up to about connect_timeout per step). Otherwise false at once.
  bool step();

  enum class Read { Frame, Timeout, Lost };
  // Ready only: the next frame, waiting until `deadline` at most. Broker-initiated
  // connection.close / channel.close are answered and turn into Lost here.
  [[nodiscard]] Read read_frame(amqp_frame_t& frame, Clock::time_point deadline);
  // True if a frame can be read without waiting.
  [[nodiscard]] bool frame_buffered() const;

  // The reason from an RPC reply, or empty when it is a success.
  [[nodiscard]] std::string rpc_error(const char* what);
  // Drops the connection (scrubbed reason) and schedules the next attempt.
  void lose(const std::string& why);

  [[nodiscard]] amqp_connection_state_t conn() noexcept { return conn_; }
  [[nodiscard]] LinkState state() const noexcept { return state_; }
  [[nodiscard]] const std::string& last_error() const noexcept { return last_error_; }
  [[nodiscard]] std::uint64_t reconnects() const noexcept { return reconnects_; }
  // A new value for every connection: delivery tags of an older one are stale.
  [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }
  [[nodiscard]] Clock::time_point next_attempt() const noexcept { return next_attempt_; }
  [[nodiscard]] const AmqpEndpoint& endpoint() const noexcept { return endpoint_; }
  [[nodiscard]] std::string describe() const;  // "amqp://user@host:port/vhost", no password

 private:
  [[nodiscard]] std::string connect_once();
  void close_socket();

  AmqpEndpoint endpoint_;
  Setup setup_;
  Backoff backoff_;
  amqp_connection_state_t conn_ = nullptr;
  LinkState state_ = LinkState::Disconnected;
  std::string last_error_;
  Clock::time_point next_attempt_{};
  std::uint64_t reconnects_ = 0;
  std::uint64_t generation_ = 0;
  bool ever_ready_ = false;
};

// Helpers for rabbitmq-c's byte strings (they never own memory here).
[[nodiscard]] inline amqp_bytes_t as_bytes(std::string_view s) noexcept {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}
[[nodiscard]] inline std::string to_string(amqp_bytes_t b) {
  return b.len == 0 ? std::string() : std::string(static_cast<const char*>(b.bytes), b.len);
}

}  // namespace shmbus::bridge::transport
