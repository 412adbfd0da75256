#pragma once
// RedisPublisher: pipelined PUBLISH and XADD to one Redis server, on the caller's thread.
//
//   submit() --append--> [hiredis output buffer] --write (batch)--> redis-server
//                              in_flight_ (FIFO, one entry per command)
//   poll()   <--replies, in command order, matched to in_flight_.front()--
//
// Commands are appended to hiredis' output buffer and written when a batch is full
// (`batch_messages` or `batch_bytes`) or on the next poll(): never one round trip per
// message. At most `window_messages` / `window_bytes` are unanswered at once; beyond
// that submit() says Full and the caller polls (back-pressure, not buffering).
//
// Outcomes (RedisCompletion): Confirmed (PUBLISH: `receivers` subscribers got it; XADD:
// stored), Duplicate (XADD with an ID <= the stream's last one AND an entry with that ID
// in the stream: the entry is already there, which is what makes a re-send after a
// reconnect exactly-once when IDs derive from the bus sequence), Failed (an error reply:
// wrong type, OOM...; not retried - including an XADD whose ID is below the stream's last
// entry while no entry has that ID: it can never be added in order) and
// Unconfirmed (the connection broke before the reply: the caller re-submits these after
// the reconnect, in order; PUBLISH is then at-least-once, XADD exactly-once).
//
// Reconnection is driven by poll() through RedisLink (backoff, bounded connect + AUTH).
// Blocking: submit() never blocks (a non-blocking write at most); poll(t) and flush(t)
// return within t (plus nothing: the connect itself is non-blocking). Not thread-safe:
// one thread owns a publisher.
#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "transport/redis_link.hpp"

namespace shmbus::bridge::transport {

using Fields = std::vector<std::pair<std::string, std::string>>;

// A Redis stream entry ID "<ms>-<seq>". XADD requires strictly increasing IDs above 0-0.
struct StreamId {
  std::uint64_t ms = 0;
  std::uint64_t seq = 0;
  [[nodiscard]] std::string str() const { return std::to_string(ms) + "-" + std::to_string(seq); }
  friend auto operator<=>(const StreamId&, const StreamId&) = default;
};

enum class RedisOp : std::uint8_t { Publish, XAdd };

struct RedisMessage {
  RedisOp op = RedisOp::Publish;
  std::string key;           // channel (PUBLISH) or stream (XADD)
  std::string payload;       // PUBLISH only
  StreamId id;               // XADD only
  std::uint64_t maxlen = 0;  // XADD only: MAXLEN ~ maxlen when > 0
  Fields fields;             // XADD only
  std::uint64_t token = 0;   // the caller's (e.g. the bus sequence), returned as is

  [[nodiscard]] static RedisMessage publish(std::string channel, std::string payload,
                                            std::uint64_t token = 0);
  [[nodiscard]] static RedisMessage xadd(std::string stream, StreamId id, Fields fields,
                                         std::uint64_t maxlen_approx = 0, std::uint64_t token = 0);
  [[nodiscard]] std::size_t wire_size() const noexcept;  // payload bytes, for the limits
};

enum class RedisOutcome : std::uint8_t { Confirmed, Duplicate, Failed, Unconfirmed };
[[nodiscard]] const char* to_string(RedisOutcome o) noexcept;

struct RedisCompletion {
  RedisOutcome outcome;
  RedisMessage message;
  long long receivers = 0;  // PUBLISH: subscribers that received it
  std::string error;        // Failed / Unconfirmed: why (no secrets)
};

struct RedisPublisherOptions {
  RedisEndpoint endpoint;
  std::size_t batch_messages = 64;
  std::size_t batch_bytes = 256 * 1024;
  std::size_t window_messages = 1024;
  std::size_t window_bytes = 8 * 1024 * 1024;
};

enum class SubmitStatus : std::uint8_t { Queued, Full, NotConnected };

class RedisPublisher {
 public:
  explicit RedisPublisher(RedisPublisherOptions options, Backoff::Random random = {});

  // Appends the command. Never blocks. NotConnected while the link is down (poll()
  // reconnects), Full when the window is full (poll() to drain it).
  [[nodiscard]] SubmitStatus submit(RedisMessage message);
  // The same, moving from `message` only when Queued (the caller keeps it otherwise): no
  // copy of the payload on the route's path.
  [[nodiscard]] SubmitStatus try_submit(RedisMessage& message);

  // Reconnects if due, writes pending output, and appends to `out` a completion for
  // every reply that arrived, waiting up to `timeout` for the first while commands are unanswered.
  // On a broken connection every unanswered command comes back as Unconfirmed.
  // Returns the number of completions appended.
  std::size_t poll(std::chrono::microseconds timeout, std::vector<RedisCompletion>& out);

  // poll() until nothing is unanswered or `timeout` passes; true if all were answered.
  [[nodiscard]] bool flush(std::chrono::milliseconds timeout, std::vector<RedisCompletion>& out);

  // Drives only the connection (no commands): true when connected. Waits up to timeout.
  [[nodiscard]] bool connect(std::chrono::milliseconds timeout);

  [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_.size(); }
  [[nodiscard]] LinkState state() const noexcept { return link_.state(); }
  [[nodiscard]] const std::string& last_error() const noexcept { return link_.last_error(); }
  [[nodiscard]] std::uint64_t reconnects() const noexcept { return link_.reconnects(); }
  [[nodiscard]] const RedisLink& link() const noexcept { return link_; }

 private:
  void append(const RedisMessage& m);
  void append_check(const RedisMessage& m);
  void handle(ReplyPtr reply, std::vector<RedisCompletion>& out);
  std::size_t report_lost(std::vector<RedisCompletion>& out);

  // A command sent and not yet answered. `check`: an `XRANGE key id id` sent because the
  // XADD of `message` was refused as "equal or smaller than the top item" - a refusal that
  // proves the entry is stored only if an entry with its ID exists (a server that lost its
  // latest writes, or one that refused this entry while storing later ones, refuses it too).
  struct InFlight {
    RedisMessage message;
    bool check = false;
  };

  RedisPublisherOptions options_;
  RedisLink link_;
  std::deque<InFlight> in_flight_;
  std::size_t in_flight_bytes_ = 0;
  std::size_t unwritten_messages_ = 0;
  std::size_t unwritten_bytes_ = 0;
};

}  // namespace shmbus::bridge::transport
