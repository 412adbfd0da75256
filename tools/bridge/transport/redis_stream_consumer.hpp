#pragma once
// RedisStreamConsumer: one consumer of a Redis stream consumer group, on the caller's
// thread, acknowledging only what the caller says is handled.
//
// On every (re)connection:
//   1. XGROUP CREATE <stream> <group> <create_from> MKSTREAM   (BUSYGROUP = already there)
//   2. acknowledgements given while disconnected are sent (XACK)
//   3. XREADGROUP ... STREAMS <stream> 0   (repeated) re-delivers this consumer's own
//      pending entries: delivered before a crash or disconnect and never acknowledged
//   4. optionally XAUTOCLAIM entries idle longer than `claim_idle` from other consumers
//      of the group (a consumer that died for good)
//   5. XREADGROUP ... BLOCK <block> STREAMS <stream> >   new entries, one read at a time
// Delivery is at-least-once: an entry is pending in the group until ack(id) has been
// sent. At most `max_unacked` entries are held by the caller; beyond that no new read is
// issued (back-pressure: the entries wait in Redis).
//
// Blocking: poll(t) returns within t. A read waits on the server for at most `block`,
// and commands on one connection are answered in order, so an XACK given while a read
// blocks is sent at once but confirmed after it (acks are not latency-critical).
// Not thread-safe: one thread owns a consumer.
#include <deque>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "transport/redis_link.hpp"
#include "transport/redis_publisher.hpp"  // Fields

namespace shmbus::bridge::transport {

struct RedisStreamConsumerOptions {
  RedisEndpoint endpoint;
  std::string stream;
  std::string group;
  std::string consumer;
  std::string create_from = "$";  // where a new group starts: "$" new entries, "0" all
  std::size_t count = 128;        // entries per read
  std::chrono::milliseconds block{100};
  std::size_t max_unacked = 1024;
  std::chrono::milliseconds claim_idle{0};  // 0: never claim other consumers' entries
};

struct StreamEntry {
  std::string id;
  Fields fields;
  bool redelivered = false;  // came from the pending list (delivered before, not acked)
};

class RedisStreamConsumer {
 public:
  // Throws std::invalid_argument for an empty stream, group or consumer name.
  explicit RedisStreamConsumer(RedisStreamConsumerOptions options, Backoff::Random random = {});

  // Reconnects if due, sends acks, issues reads, and appends the entries that arrived,
  // waiting up to `timeout` for the first. Returns the number appended.
  std::size_t poll(std::chrono::milliseconds timeout, std::vector<StreamEntry>& out);

  // The caller has handled entry `id`: XACK it (now if connected, else on reconnect).
  // Never blocks.
  void ack(const std::string& id);
  // The same for several entries, in one XACK command.
  void ack(const std::vector<std::string>& ids);

  [[nodiscard]] std::size_t unacked() const noexcept { return unacked_.size(); }
  [[nodiscard]] std::uint64_t acks_confirmed() const noexcept { return acks_confirmed_; }
  [[nodiscard]] LinkState state() const noexcept { return link_.state(); }
  [[nodiscard]] const std::string& last_error() const noexcept { return link_.last_error(); }
  [[nodiscard]] std::uint64_t reconnects() const noexcept { return link_.reconnects(); }

 private:
  enum class Expect : std::uint8_t { Group, Ack, ReadPending, Claim, ReadNew };
  enum class Phase : std::uint8_t { Pending, Claim, New };
  void on_connected();
  void append(std::initializer_list<std::string_view> args);
  void append_ack(const std::vector<std::string>& ids);
  void issue_read();
  void handle(Expect what, const redisReply* r, std::vector<StreamEntry>& out);
  void parse_entries(const redisReply* list, bool redelivered, std::vector<StreamEntry>& out,
                     std::string* last_id);

  RedisStreamConsumerOptions options_;
  RedisLink link_;
  std::uint64_t setup_generation_ = ~0ULL;
  std::deque<Expect> expected_;
  std::vector<std::string> acks_waiting_;  // given while disconnected
  std::unordered_set<std::string> unacked_;
  Phase phase_ = Phase::Pending;
  std::string pending_cursor_ = "0";
  std::string claim_cursor_ = "0-0";
  bool read_outstanding_ = false;
  std::uint64_t acks_confirmed_ = 0;
  std::string count_text_, block_text_, idle_text_;
};

}  // namespace shmbus::bridge::transport
