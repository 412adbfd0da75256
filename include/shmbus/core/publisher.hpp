// shmbus — the producer side of a topic.
//
//   shmbus::Publisher pub = bus.publisher<shmbus::md::Quote>("md.quotes");
//   flatbuffers::FlatBufferBuilder fbb;
//   fbb.Finish(shmbus::md::CreateQuoteDirect(fbb, ...), shmbus::md::QuoteIdentifier());
//   if (pub.try_publish(fbb) != shmbus::PublishResult::Ok) { ... }
//
//   // zero copy: claim a slot, build into it, commit (or let it abort)
//   if (auto c = pub.try_claim(32)) { std::memcpy(c.data(), bytes, 32); c.commit(32); }
//
// One live producer per topic. Constructing a Publisher takes the topic's
// owner word; a second one gets Error(ProducerExists) naming the live
// owner (pid and name). If the owner's process died (pid + start time), the
// new Publisher takes the topic over and goes on from the last committed
// sequence; a message the dead producer left half-written is never delivered.
//
// Thread safety: a Publisher is single-threaded (it is the "single producer"
// of the ring); move it between threads, don't share it. It is move-only.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include <flatbuffers/flatbuffers.h>

#include "shmbus/core/bus.hpp"
#include "shmbus/core/options.hpp"
#include "shmbus/core/topic.hpp"
#include "shmbus/detail/ring.hpp"
#include "shmbus/error.hpp"

namespace shmbus {

class Publisher;

// A claimed slot: write up to capacity() bytes at data(), then commit(size).
// For a message longer than 32 bytes, write its first 32 bytes last: they
// share the slot's first cache line with the header, the line a waiting
// consumer spins on, and written last it changes hands once a message
// instead of twice (what try_publish does; detail/ring.hpp, claim ahead).
// Destroying an uncommitted claim aborts it: nothing is published and the
// sequence is reused by the next claim. Move-only. At most one claim per
// Publisher is open at a time: a second try_claim, a try_publish or moving
// the Publisher while one is open is a contract violation (checked in every
// build: two open claims would hand out the same slot).
class [[nodiscard]] Claim {
 public:
  Claim() = default;
  Claim(Claim&& o) noexcept : pub_(o.pub_), slot_(o.slot_), result_(o.result_) {
    o.slot_ = nullptr;
  }
  Claim& operator=(Claim&& o) noexcept {
    if (this != &o) {
      abort();
      pub_ = o.pub_;
      slot_ = o.slot_;
      result_ = o.result_;
      o.slot_ = nullptr;
    }
    return *this;
  }
  Claim(const Claim&) = delete;
  Claim& operator=(const Claim&) = delete;
  ~Claim() { abort(); }

  [[nodiscard]] explicit operator bool() const noexcept { return slot_ != nullptr; }
  // Ok if the claim holds a slot; otherwise why not (TooLarge, WouldBlock).
  [[nodiscard]] PublishResult result() const noexcept { return result_; }
  [[nodiscard]] std::byte* data() const noexcept { return detail::RingView::payload(slot_); }
  [[nodiscard]] std::size_t capacity() const noexcept;
  // The sequence this message will have.
  [[nodiscard]] std::uint64_t sequence() const noexcept;

  // Publishes the first `size` bytes (size <= capacity(): asserted).
  void commit(std::size_t size, std::uint64_t correlation = 0) noexcept;
  // Publishes with a caller-supplied stamp in the bus clock's raw units.
  void commit_with_ts(std::size_t size, std::uint64_t raw_ts,
                      std::uint64_t correlation = 0) noexcept;
  void abort() noexcept;

 private:
  friend class Publisher;
  Claim(Publisher* p, detail::SlotHeader* s, PublishResult r) noexcept
      : pub_(p), slot_(s), result_(r) {}
  Publisher* pub_ = nullptr;
  detail::SlotHeader* slot_ = nullptr;
  PublishResult result_ = PublishResult::Ok;
};

class Publisher {
 public:
  // Takes the topic's producer role (see above). Throws ProducerExists.
  explicit Publisher(Topic topic, const PublisherOptions& options = {});
  Publisher(Publisher&&) noexcept;
  Publisher& operator=(Publisher&&) noexcept;
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;
  // Releases the producer role.
  ~Publisher();

  // ---- hot path: noexcept, no allocation, result values

  [[nodiscard]] Claim try_claim(std::size_t size) noexcept {
    SHMBUS_CONTRACT(
        !claim_open(),
        "try_claim while another Claim of this Publisher is open: commit or abort it first");
    PublishResult r{};
    detail::SlotHeader* s = ring_.claim(size, r);
    if (r == PublishResult::WouldBlock) count_would_block();
    if (s != nullptr) claim_seq_ = ring_.next();
    return Claim(this, s, r);
  }

  // Copies `payload` into the next slot and publishes it.
  PublishResult try_publish(std::span<const std::byte> payload,
                            std::uint64_t correlation = 0) noexcept {
    SHMBUS_CONTRACT(
        !claim_open(),
        "try_publish while a Claim of this Publisher is open: commit or abort it first");
    PublishResult r{};
    detail::SlotHeader* s = ring_.claim(payload.size(), r);
    if (s == nullptr) [[unlikely]] {
      if (r == PublishResult::WouldBlock) count_would_block();
      return r;
    }
    // The slot's first line (header + the payload's first bytes) last: it is
    // the line a waiting consumer spins on, so it should change hands once.
    std::byte* dst = detail::RingView::payload(s);
    constexpr std::size_t kHead = detail::kCacheLine - sizeof(detail::SlotHeader);
    const std::size_t n = payload.size();
    if (n > kHead) {
      std::memcpy(dst + kHead, payload.data() + kHead, n - kHead);
      std::memcpy(dst, payload.data(), kHead);
    } else {
      std::memcpy(dst, payload.data(), n);
    }
    ring_.commit(s, payload.size(), clock_->raw_now(), correlation);
    return PublishResult::Ok;
  }

  // Publishes a finished FlatBuffer. Invalid if the builder is not finished,
  // or if its file identifier is not the topic type's.
  PublishResult try_publish(const flatbuffers::FlatBufferBuilder& fbb,
                            std::uint64_t correlation = 0) noexcept {
    const std::span<const std::byte> buf = finished_bytes(fbb);
    if (buf.empty() || !identifier_matches(buf)) [[unlikely]]
      return PublishResult::Invalid;
    return try_publish(buf, correlation);
  }

  // Publishes up to `count` messages in one pass, the way a feed handler
  // that decodes a packet of several messages wants to: message i is written
  // by fill(i, slot) -> size, where `slot` is the claimed slot's payload
  // (max_payload() bytes; write the message there, return its size), each
  // message committed before the next is claimed, so consumers see message
  // 0 while message 1 is being written. All of them carry one publish stamp,
  // taken before the first is written (the time the batch was published),
  // and `correlation`. Returns how many were published, from the first:
  // fewer than `count` only on a reliable topic whose ring has no room for
  // the rest (counted as WouldBlock; call again with the rest). `fill` must
  // be noexcept (checked at compile time); returning more than
  // max_payload() is a contract violation, as for Claim::commit.
  //
  // What it saves against a loop of try_claim/commit: the writer's state
  // stays in registers for the whole batch, and one clock read serves all
  // (BENCHMARKS.md, "Batches": 32 B 1 -> 1 ~107 M msg/s a message at a
  // time, bound by the per-message stamp, against ~300 M in batches of 16
  // on this machine kind; 0.9-1.0 x the ring floor where cross-core
  // transfers are slow, against ~0.6 x).
  template <class Fill>
  std::size_t try_publish_batch(std::size_t count, Fill&& fill,
                                std::uint64_t correlation = 0) noexcept {
    SHMBUS_CONTRACT(
        !claim_open(),
        "try_publish_batch while a Claim of this Publisher is open: commit or abort it first");
    static_assert(noexcept(fill(std::size_t{0}, std::span<std::byte>{})),
                  "try_publish_batch: fill(i, slot) must be noexcept (the hot path cannot unwind "
                  "with a slot claimed)");
    const std::size_t capacity = ring_.view().capacity;
    auto checked = [&fill, capacity](std::size_t i, std::byte* slot) noexcept {
      const std::size_t size = fill(i, std::span<std::byte>(slot, capacity));
      SHMBUS_CONTRACT(size <= capacity,
                      "try_publish_batch: fill returned more bytes than the slot holds");
      return size;
    };
    const std::size_t n = ring_.publish_batch(count, checked, clock_->raw_now(), correlation);
    if (n < count) [[unlikely]]
      count_would_block();
    return n;
  }

  // As try_publish, but on WouldBlock waits (spin, then yield, then short
  // sleeps) until published or `timeout` has passed (-> Timeout). Reaps
  // consumers whose process died while they held the producer up.
  PublishResult publish(std::span<const std::byte> payload, std::chrono::nanoseconds timeout,
                        std::uint64_t correlation = 0) noexcept;
  PublishResult publish(const flatbuffers::FlatBufferBuilder& fbb, std::chrono::nanoseconds timeout,
                        std::uint64_t correlation = 0) noexcept {
    const std::span<const std::byte> buf = finished_bytes(fbb);
    if (buf.empty() || !identifier_matches(buf)) [[unlikely]]
      return PublishResult::Invalid;
    return publish(buf, timeout, correlation);
  }

  // ---- queries

  // True if a finished FlatBuffer `message` may go to this topic: a raw
  // topic takes any bytes, a typed one those with its type's
  // file_identifier (what try_publish(fbb) checks; MessageTemplate uses it).
  [[nodiscard]] bool accepts(std::span<const std::byte> message) const noexcept {
    return identifier_matches(message);
  }

  [[nodiscard]] std::uint64_t next_sequence() const noexcept { return ring_.next(); }
  [[nodiscard]] std::size_t max_payload() const noexcept { return ring_.view().capacity; }
  [[nodiscard]] const Topic& topic() const noexcept { return topic_; }
  // True if this Publisher took the topic over from a dead producer.
  [[nodiscard]] bool took_over() const noexcept { return took_over_; }
  // FUTEX_WAKE calls this publisher has made (diagnostics, tests): at most
  // one per commit, and rate-limited while a counted sleeper takes none
  // (a consumer stopped in its sleep: detail/ring.hpp, RingWriter::wake).
  [[nodiscard]] std::uint64_t wakes() const noexcept { return ring_.wakes(); }
  // Messages whose cache lines were pushed to the shared cache after an idle
  // spell (PublisherOptions::demote_after_idle_ns).
  [[nodiscard]] std::uint64_t demoted() const noexcept { return ring_.demoted(); }

 private:
  friend class Claim;

  static std::span<const std::byte> finished_bytes(
      const flatbuffers::FlatBufferBuilder& fbb) noexcept {
    // GetSize() of an unfinished builder is the partial buffer; a finished
    // builder has its root offset at the front, which is all we can check
    // without a verifier (the verifier runs where input is untrusted).
    return {reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()), fbb.GetSize()};
  }
  [[nodiscard]] bool identifier_matches(std::span<const std::byte> buf) const noexcept {
    if (ident_len_ == 0) return true;
    if (buf.size() < 8) return false;
    return std::memcmp(buf.data() + 4, ident_, 4) == 0;
  }
  void count_would_block() noexcept;
  void release() noexcept;

  Topic topic_;
  detail::RingWriter ring_;
  const Clock* clock_ = nullptr;
  std::uint64_t owner_word_ = 0;
  char ident_[4] = {};
  std::size_t ident_len_ = 0;
  bool took_over_ = false;
  // The sequence an open Claim holds (0: none). Open while it is still
  // ring_.next(): the commit closes it by moving next() past it, without a
  // store of its own (a store per message costs the producer throughput:
  // BENCHMARKS.md, "Batches"); an abort sets it back to 0.
  std::uint64_t claim_seq_ = 0;
  [[nodiscard]] bool claim_open() const noexcept { return claim_seq_ == ring_.next(); }
};

inline std::size_t Claim::capacity() const noexcept {
  return pub_->ring_.view().capacity;
}
inline std::uint64_t Claim::sequence() const noexcept {
  return pub_->ring_.next();
}
inline void Claim::commit(std::size_t size, std::uint64_t correlation) noexcept {
  commit_with_ts(size, pub_->clock_->raw_now(), correlation);
}
inline void Claim::commit_with_ts(std::size_t size, std::uint64_t raw_ts,
                                  std::uint64_t correlation) noexcept {
  SHMBUS_CONTRACT(slot_ != nullptr, "commit of an empty, aborted or already committed Claim");
  SHMBUS_CONTRACT(size <= capacity(), "Claim committed with more bytes than its capacity");
  pub_->ring_.commit(slot_, size, raw_ts, correlation);  // closes the claim (claim_seq_)
  slot_ = nullptr;
}
inline void Claim::abort() noexcept {
  if (slot_ == nullptr) return;
  pub_->ring_.abort(slot_);
  pub_->claim_seq_ = 0;
  slot_ = nullptr;
}

namespace detail {

// Publishing a finished message that `Derived` holds (its bytes()): the type
// check of Publisher::accepts, then one copy into the slot. Hot path,
// noexcept, no allocation. MessageTemplate and MessageWriter.
template <class Derived>
class PublishesFinished {
 public:
  PublishResult try_publish(Publisher& pub, std::uint64_t correlation = 0) const noexcept {
    const std::span<const std::byte> b = static_cast<const Derived&>(*this).bytes();
    if (!pub.accepts(b)) [[unlikely]]
      return PublishResult::Invalid;
    return pub.try_publish(b, correlation);
  }
  // As try_publish, but on a full reliable ring waits up to `timeout`
  // (Publisher::publish).
  PublishResult publish(Publisher& pub, std::chrono::nanoseconds timeout,
                        std::uint64_t correlation = 0) const noexcept {
    const std::span<const std::byte> b = static_cast<const Derived&>(*this).bytes();
    if (!pub.accepts(b)) [[unlikely]]
      return PublishResult::Invalid;
    return pub.publish(b, timeout, correlation);
  }
};

}  // namespace detail

}  // namespace shmbus

namespace shmbus {
template <class T>
Publisher Bus::publisher(std::string_view topic, TopicConfig config,
                         const PublisherOptions& options) {
  config.type = type_of<T>();
  return Publisher(this->topic(topic, config, Match::Exact), options);
}
}  // namespace shmbus
