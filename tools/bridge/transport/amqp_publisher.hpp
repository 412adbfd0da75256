#pragma once
// AmqpPublisher: publishes to a durable topic exchange with publisher confirms and a
// window of unconfirmed messages, on the caller's thread.
//
//   publish() -> basic.publish (tag n)     in_flight_: [tag first_tag_ .. next_tag_-1]
//   poll()    <- basic.ack(tag, multiple)  -> Confirmed (every tag <= tag if multiple)
//             <- basic.nack(tag, multiple) -> Nacked    (the broker lost it: resend)
//             <- basic.return + content    -> Returned  (mandatory and unroutable; the
//                                             broker acks it right after the return)
//   connection lost                        -> Unconfirmed for everything in flight
//
// A message counts as forwarded only when Confirmed. Up to `window` messages are
// unconfirmed at once (never one confirm at a time: with persistent messages each
// confirm waits for an fsync); publish() says Full beyond that. Delivery tags restart
// at 1 on each connection (confirm.select on a fresh channel), so a reconnect turns
// everything in flight into Unconfirmed for the caller to re-publish: at-least-once.
//
// A returned message is matched to its delivery tag by (routing key, body): the broker
// returns in publish order, before the ack covering it, and the first in-flight message
// with that key and body not yet returned is the one.
//
// Writes: publish() encodes the frames (with rabbitmq-c's encoders) into a buffer that goes
// out in one write per batch (`batch_messages` / `batch_bytes`, or the next poll()), not
// three send()s per message as amqp_basic_publish() makes.
//
// Blocking: poll(t) returns within t once connected; a reconnect attempt inside poll()
// blocks up to endpoint.connect_timeout (rabbitmq-c is synchronous). A batch write can
// block while the broker throttles the connection (flow control); a broker that reads
// nothing for two heartbeat intervals ends that. Not thread-safe: one thread owns it.
#include <deque>
#include <string>
#include <variant>
#include <vector>

#include "transport/amqp_link.hpp"
#include "transport/redis_publisher.hpp"  // Fields, SubmitStatus

namespace shmbus::bridge::transport {

// An AMQP header value: a long string or a signed 64-bit integer (field types S and l).
using AmqpHeaderValue = std::variant<std::string, std::int64_t>;
using AmqpHeaders = std::vector<std::pair<std::string, AmqpHeaderValue>>;

struct AmqpMessage {
  std::string routing_key;
  std::string body;
  // Basic properties, sent when not empty / not zero. They cost the broker less than
  // headers (fixed fields; a headers table is decoded entry by entry), so metadata that
  // has a property goes there and only the rest into `headers`.
  std::string content_type;
  std::string message_id;
  std::string type;
  std::string app_id;
  std::uint64_t timestamp = 0;  // seconds since the epoch (the property's unit)
  AmqpHeaders headers;
  bool persistent = true;   // delivery_mode 2
  bool mandatory = true;    // unroutable -> Returned
  std::uint64_t token = 0;  // the caller's (e.g. the bus sequence), returned as is
};

enum class AmqpOutcome : std::uint8_t { Confirmed, Returned, Nacked, Unconfirmed };
[[nodiscard]] const char* to_string(AmqpOutcome o) noexcept;

struct AmqpCompletion {
  AmqpOutcome outcome;
  AmqpMessage message;
  std::string reason;  // Returned: "312 NO_ROUTE"; Unconfirmed: the connection error
};

struct AmqpPublisherOptions {
  AmqpEndpoint endpoint;
  std::string exchange = "shmbus";
  std::string exchange_type = "topic";
  bool durable = true;
  std::size_t window = 256;  // unconfirmed messages in flight
  // basic.publish frames are written together: when this many messages or bytes are
  // waiting, else on the next poll().
  std::size_t batch_messages = 64;
  std::size_t batch_bytes = 64 * 1024;
};

class AmqpPublisher {
 public:
  explicit AmqpPublisher(AmqpPublisherOptions options, Backoff::Random random = {});

  // Sends basic.publish. NotConnected while the link is down, Full when `window`
  // messages are unconfirmed. On a socket error the message is kept in flight and comes
  // back as Unconfirmed from the next poll().
  [[nodiscard]] SubmitStatus publish(AmqpMessage message);
  // The same, moving from `message` only when Queued (no copy on the route's path).
  [[nodiscard]] SubmitStatus try_publish(AmqpMessage& message);

  // Reconnects if due; appends completions for the confirms, returns and nacks that
  // arrived, waiting up to `timeout` for the first while messages are unconfirmed.
  // Returns how many.
  std::size_t poll(std::chrono::microseconds timeout, std::vector<AmqpCompletion>& out);
  // poll() until nothing is unconfirmed or `timeout` passes; true if all were settled.
  [[nodiscard]] bool flush(std::chrono::milliseconds timeout, std::vector<AmqpCompletion>& out);
  // Connects (retrying with backoff) until `timeout`; true when connected.
  [[nodiscard]] bool connect(std::chrono::milliseconds timeout);

  [[nodiscard]] std::size_t in_flight() const noexcept { return unsettled_; }
  [[nodiscard]] LinkState state() const noexcept { return link_.state(); }
  [[nodiscard]] const std::string& last_error() const noexcept { return link_.last_error(); }
  [[nodiscard]] std::uint64_t reconnects() const noexcept { return link_.reconnects(); }

 private:
  struct Entry {
    AmqpMessage message;
    bool settled = false;
    bool returned = false;
    std::string reason;
  };
  std::string setup(AmqpLink& link);
  // Appends the frames of one basic.publish to out_; the error text, or empty.
  [[nodiscard]] std::string encode(const AmqpMessage& m, const amqp_basic_properties_t& props);
  // Writes out_ to the socket, all of it (false: the link was lost).
  bool write_out();
  void settle(std::uint64_t tag, bool multiple, bool ack, std::vector<AmqpCompletion>& out);
  void settle_one(Entry& e, bool ack, std::vector<AmqpCompletion>& out);
  void on_return(const amqp_basic_return_t& r, std::vector<AmqpCompletion>& out);
  void report_lost(std::vector<AmqpCompletion>& out);

  AmqpPublisherOptions options_;
  AmqpLink link_;
  std::deque<Entry> in_flight_;  // in_flight_[i] has delivery tag first_tag_ + i
  std::uint64_t first_tag_ = 1;
  std::uint64_t next_tag_ = 1;
  std::uint64_t tags_generation_ = 0;
  std::size_t unsettled_ = 0;
  std::vector<amqp_table_entry_t> entries_;  // the headers of the message being published
  std::string out_;                          // encoded frames not yet written
  std::size_t unwritten_ = 0;                // messages in out_
};

}  // namespace shmbus::bridge::transport
