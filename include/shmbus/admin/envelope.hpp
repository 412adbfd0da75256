// shmbus — a message as JSON: the one envelope every tool and remote transport
// uses (bus-inspect tail, bus-bridge's routes, bus-record, the Python module).
//
//   {"topic":"md.quotes","seq":41,"ts":1732329601123456789,
//    "time":"2024-11-23T02:40:01.123456789Z","producer":4242,
//    "id":"demo/md.quotes/41","bus":"demo","type":"shmbus.md.Quote",
//    "data":{"symbol":"AAPL",...}}
//
//  * topic, seq, ts (publish time, ns since the epoch), producer (pid) and
//    type are the message's metadata; time is ts in UTC for people; bus is
//    the bus it was published on (origin, for bridges that must not echo a
//    message back); id is "<bus>/<topic>/<seq>", unique on a host for the
//    life of the topic; correlation appears when non-zero (request/reply).
//  * data is the message converted by the topic's own stored schema. A typed
//    message that fails the verifier gets "error" (why) and "base64" (its
//    bytes) instead; raw topics get "size" and "base64" (or "hex").
//  * gaps: {"gap":{"topic":"md.quotes","first":42,"count":977}}.
//
// One line, no newline, keys in the order above.
//
// Thread safety: an EnvelopeWriter holds a JSON codec: one per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "shmbus/core/message.hpp"
#include "shmbus/core/topic.hpp"

namespace shmbus {

class JsonCodec;

enum class RawEncoding : std::uint8_t { Base64, Hex };

class EnvelopeWriter {
 public:
  // Builds the codec from the topic's stored schema (raw topics have none).
  explicit EnvelopeWriter(const Topic& topic, RawEncoding raw = RawEncoding::Base64);
  EnvelopeWriter(EnvelopeWriter&&) noexcept;
  EnvelopeWriter& operator=(EnvelopeWriter&&) noexcept;
  ~EnvelopeWriter();

  [[nodiscard]] std::string message(const Message& m) const;
  // The same appended to `out` (a reused buffer: no allocation once it has grown).
  void append_message(const Message& m, std::string& out) const;
  [[nodiscard]] std::string gap(const Gap& g) const;
  // Only the "data" value ({...}) of a typed message; throws
  // Error(InvalidMessage) if it fails the verifier, Error(UnknownType) on a
  // raw topic.
  [[nodiscard]] std::string data(const Message& m) const;

 private:
  // utc_iso(ts) written at `p`; returns the end.
  char* put_time(char* p, std::int64_t ts) const;
  // "YYYY-MM-DDTHH:MM:SS." and longer years (utc_iso of any int64 ns fits).
  static constexpr std::size_t kTimePrefixMax = 40;

  std::string bus_;
  std::string topic_;
  RawEncoding raw_;
  std::unique_ptr<JsonCodec> codec_;
  // Quoted once (message() runs per message in bus-bridge's routes).
  std::string head_;       // {"topic":"<topic>","seq":
  std::string id_open_;    // "<bus>/<topic>/   (the seq and the closing quote follow)
  std::string bus_field_;  // ,"bus":"<bus>"
  // Caches of the last message's type and second (the writer is one per thread).
  mutable std::string type_;
  mutable std::string type_quoted_;
  mutable std::int64_t time_secs_ = 0;
  mutable std::string time_prefix_;
};

// The message id of the envelope: "<bus>/<topic>/<seq>".
[[nodiscard]] std::string message_id(std::string_view bus, std::string_view topic,
                                     std::uint64_t seq);

}  // namespace shmbus
