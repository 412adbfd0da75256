#pragma once
// WsConnection: one accepted WebSocket, as seen by the handler that accepted it.
//
// Design
//   The session reads one message at a time and hands it to its WsHandler; outgoing messages
//   go through a bounded FIFO (WsOptions::max_queue messages). Everything queued when the
//   socket is free leaves in one gathered write (each message still its own frame), so a
//   client behind a fast fan-out costs one send(2) per batch, not one per message; pongs and
//   the close frame go through the same FIFO (nothing else writes to the socket). Under load
//   (WsOptions::coalesce, and max_writes_per_s for many clients at once) a client's frames wait
//   up to one flush tick to leave together.
//   Incoming frames are checked against RFC 6455 (masking, reserved bits and opcodes, control
//   frames, fragment order, shortest lengths, close codes, UTF-8 text: utf8.hpp); a frame that
//   breaks it fails the connection with the RFC's close code (WsCloseCause says which).
//   A message is a shared_ptr<const std::string> so that one encoded event can be queued on
//   many connections without a copy per connection (broadcast).
//   Overflow policy: send() refuses (QueueFull) and the caller decides (count, tell, drop the
//   client); nothing is dropped silently here.
//   Close: close() lets queued messages go out, then sends a close frame; abort() drops the
//   TCP connection at once. Either way the handler gets on_ws_close exactly once, after which
//   the connection holds no reference to the handler (breaking any handler <-> connection
//   cycle).
//
// Threading: every member is called, and every callback runs, on the server's io thread.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace shmbus::bridge::net {

struct WsOptions {
  std::size_t max_message = 1024 * 1024;  // incoming message; larger -> close 1009
  std::size_t max_queue = 8192;           // outgoing messages waiting to be written
  std::chrono::milliseconds handshake_timeout{10'000};
  // No data from the peer for this long closes the connection. Protocols with their own
  // heartbeat (Engine.IO) keep it above their ping interval + timeout.
  std::chrono::milliseconds idle_timeout{120'000};
  // Write coalescing under load: a client written to less than `coalesce` ago has its next
  // frames held until the server's next flush tick (<= coalesce later), or until
  // coalesce_bytes wait. 0: every frame is written as soon as the socket is free.
  std::chrono::microseconds coalesce{0};
  std::size_t coalesce_bytes = 64 * 1024;
  // Server-wide coalescing: many clients each written to rarely still cost one send(2) per
  // frame per client, however high the server's total rate. With a budget B (writes per
  // second, all clients together) and N clients written to lately (counted once each per
  // 100 ms), the window above becomes max(coalesce, N / B), at most coalesce_max: at most
  // ~B writes per second while every client is busy. A client whose last write is older than
  // the window still gets its frame at once, so nothing waits at low total rates. 0: off.
  std::size_t max_writes_per_s = 0;
  std::chrono::microseconds coalesce_max{20'000};
};

enum class SendResult : std::uint8_t { Ok, QueueFull, Closed };

enum class WsCloseCause : std::uint8_t {
  Remote,         // the peer closed (close frame or TCP end)
  Local,          // close() or abort() on this side
  TooLarge,       // a message above max_message (close code 1009)
  ProtocolError,  // a frame RFC 6455 forbids: unmasked, reserved bits or opcode, bad control
                  // frame, bad fragment sequence, bad length or close frame (close code 1002)
  InvalidUtf8,    // a text message or close reason that is not UTF-8 (close code 1007)
  Timeout,        // handshake or idle timeout
  Error,          // any other transport error
};
[[nodiscard]] std::string_view to_string(WsCloseCause cause) noexcept;

using Message = std::shared_ptr<const std::string>;

class WsConnection;

class WsHandler {
 public:
  virtual ~WsHandler() = default;
  // `data` is valid only during the call.
  virtual void on_ws_message(WsConnection& connection, std::string_view data, bool binary) = 0;
  virtual void on_ws_close(WsConnection& connection, WsCloseCause cause) = 0;
};

class WsConnection {
 public:
  virtual ~WsConnection() = default;
  [[nodiscard]] virtual SendResult send(Message message, bool binary) = 0;
  // Messages that can still be queued before send() answers QueueFull.
  [[nodiscard]] virtual std::size_t queue_room() const noexcept = 0;
  [[nodiscard]] virtual std::size_t queued() const noexcept = 0;
  // Flushes the queue, then closes with `code` (RFC 6455 close code).
  virtual void close(std::uint16_t code = 1000) = 0;
  virtual void abort() = 0;
  [[nodiscard]] virtual bool is_open() const noexcept = 0;
};

}  // namespace shmbus::bridge::net
