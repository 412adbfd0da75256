// shmbus — request/reply with correlation ids and timeouts.
//
// A ring has one producer, so each client gets its own pair of topics:
//
//   <service>.req.<client>   Requester publishes, Responder subscribes
//   <service>.rep.<client>   Responder publishes, Requester subscribes
//
// A Responder serves every client of its service: it finds new clients'
// request topics in the bus directory as they appear. Every request carries
// a correlation id (in the slot header, not the payload, so any message type
// works); the reply carries the same id. A reply that arrives after its
// caller timed out is counted (late_replies()) and dropped, never handed to
// a later call. Both topics are reliable by default: a request is not lost
// while the responder is briefly busy.
//
// Lifecycle, whichever side starts first:
//  * A Requester may call before any Responder exists: the request waits in
//    its ring. A Responder serves, for each client it finds, every request
//    that no reply answers yet (after the request the newest reply answers),
//    including those sent before it started — unless the request is older
//    than RpcConfig::request_ttl, which it skips and counts
//    (expired_requests()): a restarted service does not act on stale calls.
//  * A call that times out while no live Responder is registered on its
//    request topic returns RpcStatus::NoResponder instead of Timeout.
//  * A Requester removes its two topics when it is destroyed. A Responder
//    drops a client whose topics are gone or whose process died (removing
//    the topics of a dead one), so clients() counts live clients only.
//  * Typed pairs: RpcConfig::typed<Request, Reply>() records the types on
//    both topics, so `bus-inspect tail` shows requests and replies as JSON.
//    A Responder with an untyped config serves typed and raw clients alike.
//
//   shmbus::Responder srv(bus, "risk.check");
//   srv.poll([](const shmbus::Message& req, shmbus::ReplyWriter& out) {
//     ... out.reply(fbb); });
//
//   shmbus::Requester cli(bus, "risk.check");
//   shmbus::Reply r = cli.call(fbb, 100ms);
//   if (r.status == shmbus::RpcStatus::Ok) use(r.as<shmbus::risk::Exposure>());
//
// Thread safety: each object is single-threaded.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "shmbus/core/bus.hpp"
#include "shmbus/core/publisher.hpp"
#include "shmbus/core/subscriber.hpp"

namespace shmbus {

// Reliable, 1 KiB slots (992-byte messages), 256 deep.
[[nodiscard]] inline TopicConfig default_rpc_topic_config() {
  TopicConfig c;
  c.policy = Policy::Reliable;
  c.slot_size = 1024;
  c.slot_count = 256;
  return c;
}

struct RpcConfig {
  TopicConfig request = default_rpc_topic_config();
  TopicConfig reply = default_rpc_topic_config();
  // How long a reply may block on a full reply ring before it is dropped
  // (and counted in Responder::failed_replies()).
  std::chrono::nanoseconds reply_timeout = std::chrono::milliseconds(100);
  // Requests older than this when a Responder reads them are skipped and
  // counted in Responder::expired_requests().
  std::chrono::nanoseconds request_ttl = std::chrono::seconds(1);

  // The default config with the request and reply types recorded.
  template <class Request, class ReplyType>
  [[nodiscard]] static RpcConfig typed() {
    RpcConfig c;
    c.request.type = type_of<Request>();
    c.reply.type = type_of<ReplyType>();
    return c;
  }
};

enum class RpcStatus : std::uint8_t {
  Ok,
  Timeout,      // no reply within the timeout (a responder is registered: it is slow or busy)
  SendFailed,   // the request could not be published (too large, or blocked past the timeout)
  NoResponder,  // no reply within the timeout, and no live responder serves the service
};
[[nodiscard]] std::string_view to_string(RpcStatus s) noexcept;

struct Reply {
  RpcStatus status = RpcStatus::Timeout;
  PublishResult send_result = PublishResult::Ok;  // why, when SendFailed
  std::uint64_t correlation = 0;
  std::uint64_t seq = 0;   // of the reply on the reply topic
  std::int64_t ts_ns = 0;  // reply publish time
  std::vector<std::byte> payload;

  template <class T>
  [[nodiscard]] const T& as() const noexcept {
    return *flatbuffers::GetRoot<T>(payload.data());
  }
};

class Requester {
 public:
  // `client` names this requester's topic pair; default "<command>-<pid>".
  Requester(Bus bus, std::string_view service, const RpcConfig& config = {},
            std::string client = {});
  // Removes the client's request and reply topics.
  ~Requester();
  Requester(Requester&&) noexcept;
  Requester& operator=(Requester&&) noexcept;

  // Sends `request` and waits for its reply (or the timeout, which covers
  // both sending and waiting).
  [[nodiscard]] Reply call(std::span<const std::byte> request, std::chrono::nanoseconds timeout);
  [[nodiscard]] Reply call(const flatbuffers::FlatBufferBuilder& request,
                           std::chrono::nanoseconds timeout);

  [[nodiscard]] std::uint64_t late_replies() const noexcept;
  [[nodiscard]] const std::string& client() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Handed to a Responder's handler to answer the request it is handling.
class ReplyWriter {
 public:
  // Publishes the reply (waiting up to RpcConfig::reply_timeout on a full
  // reply ring). A failure is counted in Responder::failed_replies().
  PublishResult reply(std::span<const std::byte> payload);
  PublishResult reply(const flatbuffers::FlatBufferBuilder& fbb);
  [[nodiscard]] bool replied() const noexcept { return replied_; }

 private:
  friend class Responder;
  ReplyWriter(Publisher& pub, std::uint64_t correlation, std::chrono::nanoseconds timeout,
              std::uint64_t& failed) noexcept
      : pub_(pub), correlation_(correlation), timeout_(timeout), failed_(failed) {}
  Publisher& pub_;
  std::uint64_t correlation_;
  std::chrono::nanoseconds timeout_;
  std::uint64_t& failed_;
  bool replied_ = false;
};

class Responder {
 public:
  Responder(Bus bus, std::string_view service, const RpcConfig& config = {}, std::string name = {});
  ~Responder();
  Responder(Responder&&) noexcept;
  Responder& operator=(Responder&&) noexcept;

  // Handles up to `max` requests: handler(const Message& request, ReplyWriter&).
  // Picks up new clients first. Returns requests handled.
  template <class F>
  std::size_t poll(F&& handler, std::size_t max = 64) {
    return poll_impl([&](const Message& m, ReplyWriter& w) { handler(m, w); }, max);
  }
  // Blocks until a request is ready or `timeout` passes.
  bool wait(std::chrono::nanoseconds timeout);

  // Live clients served now.
  [[nodiscard]] std::size_t clients() const noexcept;
  [[nodiscard]] std::uint64_t failed_replies() const noexcept;
  [[nodiscard]] std::uint64_t expired_requests() const noexcept;

 private:
  std::size_t poll_impl(const std::function<void(const Message&, ReplyWriter&)>& handler,
                        std::size_t max);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shmbus
