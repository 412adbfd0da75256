// bus-bench: the cross-process ping-pong, shared by every system measured.
//
//   pinger (CPU a)                          ponger (CPU b)
//   t0 = ticks()
//   build ping i, send ----------------->   receive, check it is ping i
//                                           build pong i, send
//   receive, check it is pong i  <-------
//   t1 = ticks(); record t1 - t0
//
// One round trip is in flight at a time, so each one depends on the last
// (no pipelining hides latency). Payloads are built and checked inside the
// timed section on both sides, by the same code for every system; a wrong
// message fails the run. The first `warmup` round trips are not recorded.
//
// Each run forks two fresh processes, pins them, and lets them meet at a
// barrier in shared memory once both have set up (connected, subscribed,
// mapped); the parent only waits, and kills both if a run outlives its
// deadline.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <shmbus/admin/histogram.hpp>

#include "util.hpp"

namespace busbench {

// Quote: built with a FlatBufferBuilder, then published (copied into the
// slot); QuoteTemplate: the same Quote built in place in the claimed slot
// from a per-side template (util.hpp, QuoteTemplatePayload); QuoteWriter: the
// same Quote from a MessageWriter, every field (strings too) set per message
// (util.hpp, QuoteWriterPayload).
enum class PayloadKind : std::uint8_t { Raw, Quote, QuoteTemplate, QuoteWriter };

struct PayloadSpec {
  PayloadKind kind = PayloadKind::Raw;
  std::size_t bytes = 32;  // raw payloads; the Quote's size comes from FlatBuffers
  // "32B", "1KiB", "Quote"
  [[nodiscard]] std::string label() const;
  // The largest message this payload produces (the Quote's built size).
  [[nodiscard]] std::size_t max_bytes() const;
};

struct RunSpec {
  PayloadSpec payload;
  std::uint64_t round_trips = 1'000'000;
  std::uint64_t warmup = 100'000;
  int cpu_ping = 0;
  int cpu_pong = 1;
  std::uint32_t slot_count = 1024;  // shmbus topics
  std::chrono::seconds timeout{600};
};

// What each child reports back.
struct SideReport {
  std::uint64_t failures = 0;  // messages whose content was wrong
  std::uint64_t done = 0;      // round trips completed (warm-up included)
  Switches switches;           // during the measured part
  char error[512] = {};
};

// The memory one run shares between the parent and its two children.
struct RunShared {
  std::atomic<std::uint32_t> ready{0};
  std::atomic<std::uint32_t> abort{0};
  // The floor's two lines (and nothing else on them).
  alignas(128) std::atomic<std::uint64_t> floor_ping{0};
  alignas(128) std::atomic<std::uint64_t> floor_pong{0};
  alignas(128) SideReport side[2];  // [0] pinger, [1] ponger
  shmbus::Histogram hist;           // round-trip times (ns), written by the pinger at the end
};
static_assert(std::is_trivially_copyable_v<shmbus::Histogram>,
              "the pinger hands its histogram to the parent through shared memory");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// Both sides call this after setting up; returns when both have. Throws if
// the other side failed or did not arrive within a minute.
void barrier(RunShared& sh);

// One system's two ends. Created in the parent before the fork (queues,
// sockets, topics that both ends need), then ping() runs in one child and
// pong() in the other; the parent destroys it after both exit. ping()/pong()
// throw std::exception on setup errors; wrong messages are counted, not thrown.
class Session {
 public:
  virtual ~Session() = default;
  virtual void ping(RunShared& sh, const RunSpec& spec) = 0;
  virtual void pong(RunShared& sh, const RunSpec& spec) = 0;
};

struct System {
  std::string name;         // command-line name: "bus", "boost-spin", ...
  std::string label;        // table/plot label
  std::string description;  // one line for the report
  bool is_floor = false;
  std::function<std::unique_ptr<Session>(const RunSpec&)> open;
};

struct RunResult {
  bool ok = false;
  std::string error;
  shmbus::Histogram hist;
  std::uint64_t failures = 0;
  Switches switches[2];
  std::uint64_t steal_ticks = 0;  // VM steal during the run (USER_HZ ticks)
  double seconds = 0;
};

// Forks, pins and runs one ping-pong; never throws for a failed run (ok=false).
[[nodiscard]] std::unique_ptr<RunResult> run_latency(const System& sys, const RunSpec& spec);

// ------------------------------------------------------------------ the loops
//
// A Link is one process's end of a system: send(payload) sends the prepared
// message, receive(visit) waits for the next one and calls visit(bytes).

template <class Link, class Payload>
void ping_loop(Link& link, Payload& payload, RunShared& sh, const RunSpec& spec) {
  auto hist = std::make_unique<shmbus::Histogram>();
  SideReport& me = sh.side[0];
  const std::uint64_t total = spec.warmup + spec.round_trips;
  std::uint64_t failures = 0;
  Switches start = Switches::now();
  for (std::uint64_t i = 0; i < total; ++i) {
    if (i == spec.warmup) start = Switches::now();
    const std::uint64_t t0 = TickClock::now();
    payload.prepare(i, false);
    link.send(payload);
    bool ok = false;
    link.receive([&](std::span<const std::byte> m) { ok = payload.check(m, i, true); });
    const std::uint64_t t1 = TickClock::now();
    failures += ok ? 0 : 1;
    if (i >= spec.warmup) hist->record(TickClock::to_ns(t1 - t0));
  }
  me.switches = Switches::now() - start;
  me.failures = failures;
  me.done = total;
  sh.hist = *hist;
}

template <class Link, class Payload>
void pong_loop(Link& link, Payload& payload, RunShared& sh, const RunSpec& spec) {
  SideReport& me = sh.side[1];
  const std::uint64_t total = spec.warmup + spec.round_trips;
  std::uint64_t failures = 0;
  Switches start = Switches::now();
  for (std::uint64_t i = 0; i < total; ++i) {
    if (i == spec.warmup) start = Switches::now();
    bool ok = false;
    link.receive([&](std::span<const std::byte> m) { ok = payload.check(m, i, false); });
    failures += ok ? 0 : 1;
    payload.prepare(i, true);
    link.send(payload);
  }
  me.switches = Switches::now() - start;
  me.failures = failures;
  me.done = total;
}

// Runs one side of a ping-pong over `link` with the payload `spec` asks for:
// the pinger's loop or the ponger's.
template <class Link>
void run_side(Link& link, RunShared& sh, const RunSpec& spec, bool pinger) {
  auto run = [&](auto& payload) {
    if (pinger) {
      ping_loop(link, payload, sh, spec);
    } else {
      pong_loop(link, payload, sh, spec);
    }
  };
  if (spec.payload.kind == PayloadKind::Quote) {
    QuotePayload p;
    run(p);
  } else if (spec.payload.kind == PayloadKind::QuoteTemplate) {
    QuoteTemplatePayload p;
    run(p);
  } else if (spec.payload.kind == PayloadKind::QuoteWriter) {
    QuoteWriterPayload p;
    run(p);
  } else {
    RawPayload p(spec.payload.bytes);
    run(p);
  }
}

// ------------------------------------------------------------------ the systems

// The single-line floor: one flag word each way, no payload.
[[nodiscard]] System floor_system();
// The floor of a payload's size: its bytes (rounded up to 8) and a flag each
// way, written then released, acquired then read and checked; `mailboxes`
// of them each way, used in turn (1: the same one every time).
[[nodiscard]] System sized_floor_system(const PayloadSpec& payload, std::uint32_t mailboxes = 1);
// The floor of a payload's size carrying the payload's own build and read
// code (the Quote kinds; raw payloads: the sized floor): what any transport
// costs at least with that message code ("floor-typed").
[[nodiscard]] System typed_floor_system();
// The byte count sized_floor_system() moves for `payload`.
[[nodiscard]] std::size_t floor_bytes(const PayloadSpec& payload);
[[nodiscard]] System bus_system(bool reliable);
// The bus's cache hints as bus-bench's publishers and subscribers run them,
// each with whether it acts on this CPU (`cldemote`: the CPU has CLDEMOTE).
[[nodiscard]] std::vector<std::string> active_hints(bool cldemote);
[[nodiscard]] System boost_system(bool spin);
[[nodiscard]] System uds_system();
#if defined(SHMBUS_BENCH_HAVE_ZMQ)
[[nodiscard]] System zmq_system();
#endif
#if defined(SHMBUS_BENCH_HAVE_REDIS)
// The Redis peer needs a server: RedisServer (redis_peer.cpp) starts one.
[[nodiscard]] System redis_system(int port);
#endif

}  // namespace busbench
