// bus-bench: what every part of the harness shares — the tick clock, CPU
// pinning, process-shared memory, self-checking payloads, resource usage.
#pragma once

#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include <flatbuffers/flatbuffers.h>

#include <shmbus/msg/md_quote_generated.h>
#include <shmbus/core/message_template.hpp>
#include <shmbus/core/message_writer.hpp>

#include "common/affinity.hpp"
#include "common/pause.hpp"

namespace busbench {

// ------------------------------------------------------------------ time

// Timestamps for round trips: the TSC where the kernel itself trusts it
// (clocksource "tsc": constant, non-stop, synchronised across CPUs), read
// as LFENCE; RDTSC (~10 ns here); CLOCK_MONOTONIC otherwise. Every system,
// the floor included, is timed by the same two reads per round trip, so
// their cost is part of every figure alike.
class TickClock {
 public:
  // Detects the source and calibrates ticks against CLOCK_MONOTONIC_RAW
  // over `calibration_ms`.
  static void init(int calibration_ms = 200);
  [[nodiscard]] static bool tsc() noexcept { return tsc_; }
  [[nodiscard]] static double ns_per_tick() noexcept { return ns_per_tick_; }

  // LFENCE; RDTSC: the read waits for every earlier load to complete, so a
  // round trip's end is never stamped before its reply has been read.
  [[nodiscard]] static std::uint64_t now() noexcept {
#if defined(__x86_64__)
    if (tsc_) [[likely]] {
      _mm_lfence();
      return __rdtsc();
    }
#endif
    return monotonic_ns();
  }
  [[nodiscard]] static std::uint64_t to_ns(std::uint64_t ticks) noexcept {
    return static_cast<std::uint64_t>(static_cast<double>(ticks) * ns_per_tick_ + 0.5);
  }
  [[nodiscard]] static std::uint64_t monotonic_ns() noexcept;

 private:
  static inline bool tsc_ = false;
  static inline double ns_per_tick_ = 1.0;
};

// A spin-wait hint (PAUSE): for retry loops that wait on another process.
using shmbus::tools::cpu_pause;

// ------------------------------------------------------------------ CPUs

// Pins the calling process to one CPU. Throws std::runtime_error naming --cpus.
void pin_to_cpu(int cpu);
// Restricts the calling process to a set of CPUs. Throws std::runtime_error naming --cpus.
void pin_to_cpus(const std::vector<int>& cpus);
// CPUs this process may run on, ascending.
using shmbus::tools::allowed_cpus;

// ------------------------------------------------------------------ shared memory

// Anonymous MAP_SHARED memory, created before fork() and so shared with the
// children; every page touched at creation (a first-touch fault costs ~2 us).
class SharedRegion {
 public:
  explicit SharedRegion(std::size_t bytes);
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;
  ~SharedRegion();
  [[nodiscard]] void* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return bytes_; }
  // Faults every page of the mapping into the calling process's page tables
  // (fork() does not copy a shared mapping's page tables to the child).
  void prefault() const noexcept;

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

// Faults in [p, p + n) for writing in the calling process.
void prefault(void* p, std::size_t n) noexcept;

// ------------------------------------------------------------------ payloads
//
// Every message of every system carries content that proves which message it
// is: a stale, torn, misrouted or truncated message fails its check. The
// pinger sends message i as a "ping", the ponger answers it as a "pong"; the
// two patterns differ, so a transport that hands a process its own message
// back fails as well.

inline constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ULL;
inline constexpr std::uint64_t kPongTag = 0xD6E8FEB86659FD93ULL;

[[nodiscard]] inline std::uint64_t pattern_base(std::uint64_t i, bool pong) noexcept {
  return i * kGolden ^ (pong ? kPongTag : 0);
}

// A raw payload of n bytes (n a multiple of 8, at least 8): word k of
// message i is pattern_base(i) + k.
class RawPayload {
 public:
  static constexpr bool kFlatBuffer = false;
  explicit RawPayload(std::size_t bytes) noexcept : bytes_(bytes) {}

  void prepare(std::uint64_t i, bool pong) noexcept { base_ = pattern_base(i, pong); }
  [[nodiscard]] std::size_t size() const noexcept { return bytes_; }
  // The first 32 bytes last: the bus writes into a claimed slot, whose first
  // line (the header and these bytes) should be written last (README,
  // Publishing); the rest in ascending order, as a copy does. (All of it in
  // descending order made the bus's 1 KiB round trip 1244-1316 ns where
  // this gives 902-942, slow window, 2026-11-28 18:40.) The systems that
  // copy are indifferent to the order.
  void write(std::byte* dst) const noexcept {
    const std::size_t words = bytes_ / 8;
    const std::size_t head = std::min<std::size_t>(words, 4);
    for (std::size_t k = head; k < words; ++k) put(dst, k);
    for (std::size_t k = 0; k < head; ++k) put(dst, k);
  }
  // Every word in descending order: the sized floor's order. Its flag shares
  // the last line, and on this machine kind the floor moves 1 KiB and 4 KiB
  // 12-20% faster this way than in ascending order (1236-1300 vs 1412-1492 ns,
  // 2216-2264 vs 2840-2888 ns, slow window): the floor is the fastest way
  // known, so it takes this one.
  void write_descending(std::byte* dst) const noexcept {
    for (std::size_t k = bytes_ / 8; k-- > 0;) put(dst, k);
  }

  [[nodiscard]] bool check(std::span<const std::byte> m, std::uint64_t i,
                           bool pong) const noexcept {
    if (m.size() != bytes_) return false;
    const std::uint64_t base = pattern_base(i, pong);
    std::uint64_t diff = 0;
    for (std::size_t k = 0; k < bytes_ / 8; ++k) {
      std::uint64_t w = 0;
      std::memcpy(&w, m.data() + 8 * k, 8);
      diff |= w ^ (base + k);
    }
    return diff == 0;
  }

 private:
  void put(std::byte* dst, std::size_t k) const noexcept {
    const std::uint64_t w = base_ + k;
    std::memcpy(dst + 8 * k, &w, 8);
  }

  std::size_t bytes_;
  std::uint64_t base_ = 0;
};

// A shmbus.md.Quote built with FlatBuffers for message i, and read back field
// by field on the other side.
class QuotePayload {
 public:
  static constexpr bool kFlatBuffer = true;
  QuotePayload() : fbb_(256) {}

  // flatten (here and on check_quote): g++ -O2 leaves FlatBuffers' small
  // builder and accessor functions (EndTable, Align, GetField<T>) out of
  // line; inlined, a hop takes ~90 fewer instructions (callgrind: build
  // 947 -> 922, receive 429 -> 366). What a user can put on their own hot
  // build and read functions; the FlatBuffers code itself is unchanged.
  [[gnu::flatten]] void prepare(std::uint64_t i, bool pong) {
    fbb_.Clear();
    const Fields f = fields(i, pong);
    fbb_.Finish(shmbus::md::CreateQuoteDirect(
                    fbb_, f.symbol, f.instrument_id, f.venue, f.exchange_ts, f.receive_ts, f.seq,
                    f.bid_px, f.bid_qty, f.ask_px, f.ask_qty, f.bid_orders, f.ask_orders),
                shmbus::md::QuoteIdentifier());
  }
  [[nodiscard]] std::size_t size() const noexcept { return fbb_.GetSize(); }
  void write(std::byte* dst) const noexcept {
    std::memcpy(dst, fbb_.GetBufferPointer(), fbb_.GetSize());
  }
  [[nodiscard]] const flatbuffers::FlatBufferBuilder& builder() const noexcept { return fbb_; }

  [[nodiscard]] bool check(std::span<const std::byte> m, std::uint64_t i,
                           bool pong) const noexcept {
    return check_quote(m, i, pong);
  }
  [[nodiscard, gnu::flatten]] static bool check_quote(std::span<const std::byte> m, std::uint64_t i,
                                                      bool pong) noexcept {
    if (m.size() < 8 || !flatbuffers::BufferHasIdentifier(m.data(), shmbus::md::QuoteIdentifier()))
      return false;
    const auto* q = flatbuffers::GetRoot<shmbus::md::Quote>(m.data());
    const Fields f = fields(i, pong);
    const auto* sym = q->symbol();
    const auto* venue = q->venue();
    return sym != nullptr && venue != nullptr && sym->string_view() == f.symbol &&
           venue->string_view() == f.venue && q->instrument_id() == f.instrument_id &&
           q->exchange_ts() == f.exchange_ts && q->receive_ts() == f.receive_ts &&
           q->seq() == f.seq && q->bid_px() == f.bid_px && q->bid_qty() == f.bid_qty &&
           q->ask_px() == f.ask_px && q->ask_qty() == f.ask_qty &&
           q->bid_orders() == f.bid_orders && q->ask_orders() == f.ask_orders;
  }

 private:
  friend class QuoteTemplatePayload;
  friend class QuoteWriterPayload;
  struct Fields {
    const char* symbol;
    const char* venue;
    std::uint64_t instrument_id, exchange_ts, receive_ts, seq;
    double bid_px, bid_qty, ask_px, ask_qty;
    std::uint32_t bid_orders, ask_orders;
  };
  static Fields fields(std::uint64_t i, bool pong) noexcept {
    const double tick = static_cast<double>(i % 1000) * 0.01;
    return Fields{pong ? "MSFT" : "AAPL",
                  pong ? "XNYS" : "XNAS",
                  pattern_base(i, pong),
                  1'700'000'000'000'000'000ULL + i,
                  1'700'000'000'000'000'500ULL + i,
                  i,
                  100.0 + tick,
                  static_cast<double>(100 + i % 7),
                  100.01 + tick,
                  static_cast<double>(200 + i % 5),
                  static_cast<std::uint32_t>(1 + i % 3),
                  static_cast<std::uint32_t>(2 + i % 4)};
  }

  flatbuffers::FlatBufferBuilder fbb_;
};

// The same Quote from the library's MessageTemplate (core/message_template.hpp):
// a finished Quote per side (its strings are the side's, every scalar stored:
// ForceDefaults) is built and verified once; each message sets the ten
// scalars in the side's template (mutate_) and publishes it with one copy
// into the slot. What a feed handler does for a stream whose strings do not
// change (one template per symbol): the FlatBufferBuilder's work (~950
// instructions a Quote, BENCHMARKS.md) leaves the hot path; the reader sees
// an ordinary Quote. Systems other than the bus get the same bytes.
class QuoteTemplatePayload {
 public:
  static constexpr bool kFlatBuffer = false;
  static constexpr bool kTemplate = true;  // the bus sends it with message_template().try_publish()
  QuoteTemplatePayload() : side_{make(false), make(true)} {}

  // Sets the scalars of message i of this side in its template.
  void prepare(std::uint64_t i, bool pong) noexcept {
    pong_ = pong;
    auto& t = side_[pong ? 1 : 0];
    const QuotePayload::Fields f = QuotePayload::fields(i, pong);
    t->mutate_instrument_id(f.instrument_id);
    t->mutate_exchange_ts(f.exchange_ts);
    t->mutate_receive_ts(f.receive_ts);
    t->mutate_seq(f.seq);
    t->mutate_bid_px(f.bid_px);
    t->mutate_bid_qty(f.bid_qty);
    t->mutate_ask_px(f.ask_px);
    t->mutate_ask_qty(f.ask_qty);
    t->mutate_bid_orders(f.bid_orders);
    t->mutate_ask_orders(f.ask_orders);
  }
  [[nodiscard]] const shmbus::MessageTemplate<shmbus::md::Quote>& message_template()
      const noexcept {
    return side_[pong_ ? 1 : 0];
  }
  [[nodiscard]] std::size_t size() const noexcept { return message_template().size(); }
  // Systems other than the bus: the message's bytes into `dst`.
  void write(std::byte* dst) const noexcept {
    const auto bytes = message_template().bytes();
    std::memcpy(dst, bytes.data(), bytes.size());
  }
  [[nodiscard]] bool check(std::span<const std::byte> m, std::uint64_t i,
                           bool pong) const noexcept {
    return QuotePayload::check_quote(m, i, pong);
  }

 private:
  static shmbus::MessageTemplate<shmbus::md::Quote> make(bool pong) {
    flatbuffers::FlatBufferBuilder fbb(256);
    fbb.ForceDefaults(true);  // every scalar stored, so every one can be set
    const QuotePayload::Fields f = QuotePayload::fields(0, pong);
    fbb.Finish(shmbus::md::CreateQuoteDirect(fbb, f.symbol, f.instrument_id, f.venue, f.exchange_ts,
                                             f.receive_ts, f.seq, f.bid_px, f.bid_qty, f.ask_px,
                                             f.ask_qty, f.bid_orders, f.ask_orders),
               shmbus::md::QuoteIdentifier());
    return shmbus::MessageTemplate<shmbus::md::Quote>(fbb);
  }

  shmbus::MessageTemplate<shmbus::md::Quote> side_[2];
  bool pong_ = false;
};

// The same Quote from the library's MessageWriter (core/message_writer.hpp):
// its layout computed once from the schema, each message sets all ten
// scalars AND both strings (symbol, venue) through handles resolved once:
// stores at fixed offsets, the strings written in place (they fit their
// slots after the first message). The whole build of a Quote whose strings
// may change per message, without a FlatBufferBuilder; the reader sees an
// ordinary Quote.
class QuoteWriterPayload {
 public:
  static constexpr bool kFlatBuffer = false;
  static constexpr bool kWriter = true;  // the bus sends it with writer().try_publish()
  QuoteWriterPayload()
      : symbol_(w_.string(shmbus::md::Quote::VT_SYMBOL)),
        venue_(w_.string(shmbus::md::Quote::VT_VENUE)),
        instrument_id_(w_.scalar<std::uint64_t>(shmbus::md::Quote::VT_INSTRUMENT_ID)),
        exchange_ts_(w_.scalar<std::uint64_t>(shmbus::md::Quote::VT_EXCHANGE_TS)),
        receive_ts_(w_.scalar<std::uint64_t>(shmbus::md::Quote::VT_RECEIVE_TS)),
        seq_(w_.scalar<std::uint64_t>(shmbus::md::Quote::VT_SEQ)),
        bid_px_(w_.scalar<double>(shmbus::md::Quote::VT_BID_PX)),
        bid_qty_(w_.scalar<double>(shmbus::md::Quote::VT_BID_QTY)),
        ask_px_(w_.scalar<double>(shmbus::md::Quote::VT_ASK_PX)),
        ask_qty_(w_.scalar<double>(shmbus::md::Quote::VT_ASK_QTY)),
        bid_orders_(w_.scalar<std::uint32_t>(shmbus::md::Quote::VT_BID_ORDERS)),
        ask_orders_(w_.scalar<std::uint32_t>(shmbus::md::Quote::VT_ASK_ORDERS)) {}

  // Writes message i of this side: every field. A string that does not fit
  // (never here: the writer's limit is 64 KiB) leaves the old one, which
  // check() then reports as a wrong message.
  void prepare(std::uint64_t i, bool pong) noexcept {
    const QuotePayload::Fields f = QuotePayload::fields(i, pong);
    ok_ = w_.set(symbol_, f.symbol) & w_.set(venue_, f.venue);
    w_.set(instrument_id_, f.instrument_id);
    w_.set(exchange_ts_, f.exchange_ts);
    w_.set(receive_ts_, f.receive_ts);
    w_.set(seq_, f.seq);
    w_.set(bid_px_, f.bid_px);
    w_.set(bid_qty_, f.bid_qty);
    w_.set(ask_px_, f.ask_px);
    w_.set(ask_qty_, f.ask_qty);
    w_.set(bid_orders_, f.bid_orders);
    w_.set(ask_orders_, f.ask_orders);
  }
  [[nodiscard]] const shmbus::MessageWriter<shmbus::md::Quote>& writer() const noexcept {
    return w_;
  }
  [[nodiscard]] bool strings_set() const noexcept { return ok_; }
  [[nodiscard]] std::size_t size() const noexcept { return w_.size(); }
  // Systems other than the bus: the message's bytes into `dst`.
  void write(std::byte* dst) const noexcept {
    const auto bytes = w_.bytes();
    std::memcpy(dst, bytes.data(), bytes.size());
  }
  [[nodiscard]] bool check(std::span<const std::byte> m, std::uint64_t i,
                           bool pong) const noexcept {
    return QuotePayload::check_quote(m, i, pong);
  }

 private:
  using W = shmbus::MessageWriter<shmbus::md::Quote>;
  W w_;
  W::String symbol_, venue_;
  W::Scalar<std::uint64_t> instrument_id_, exchange_ts_, receive_ts_, seq_;
  W::Scalar<double> bid_px_, bid_qty_, ask_px_, ask_qty_;
  W::Scalar<std::uint32_t> bid_orders_, ask_orders_;
  bool ok_ = true;
};

// ------------------------------------------------------------------ processes

// Context switches of the calling process so far (getrusage).
struct Switches {
  std::int64_t voluntary = 0;
  std::int64_t involuntary = 0;
  static Switches now() noexcept {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return {ru.ru_nvcsw, ru.ru_nivcsw};
  }
  Switches operator-(const Switches& o) const noexcept {
    return {voluntary - o.voluntary, involuntary - o.involuntary};
  }
};

// Host facts for the report.
[[nodiscard]] std::string cpu_model();
[[nodiscard]] std::string kernel_release();
[[nodiscard]] std::string host_name();
// Steal time of the whole VM so far, in clock ticks (USER_HZ), from /proc/stat.
[[nodiscard]] std::uint64_t steal_ticks();
// "git rev-parse HEAD" of `source_dir` (plus "-dirty" with uncommitted
// changes), or "unknown".
[[nodiscard]] std::string git_commit(const std::string& source_dir);
// Whether the CPU has CLDEMOTE: CPUID.(EAX=7,ECX=0):ECX[25] and the
// "cldemote" flag of /proc/cpuinfo, e.g. "no (cpuid: no, /proc/cpuinfo: no)".
[[nodiscard]] std::string cldemote_support();
// The 1-minute load average.
[[nodiscard]] double load_average();

// Unique-per-process names for the shared objects of one run.
[[nodiscard]] std::string unique_name(std::string_view what);

// What FlatBuffers' own builder costs on this CPU: ns per QuotePayload::
// prepare (Clear, CreateQuoteDirect, Finish: the bench's Quote), the median
// of `repeats` loops of `messages` builds back to back on the calling
// thread, pinned to `cpu`. Back to back, consecutive builds overlap in the
// core, so this is a lower bound of a build on a round trip's critical path.
[[nodiscard]] double quote_build_ns(int cpu, std::uint64_t messages = 200'000, int repeats = 7);

}  // namespace busbench
