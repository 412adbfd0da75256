#include "latency.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>
#include <thread>

#include "children.hpp"

namespace busbench {

std::string PayloadSpec::label() const {
  if (kind == PayloadKind::Quote) return "Quote";
  if (kind == PayloadKind::QuoteTemplate) return "Quote-tpl";
  if (kind == PayloadKind::QuoteWriter) return "Quote-wr";
  if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes / 1024) + "KiB";
  return std::to_string(bytes) + "B";
}

std::size_t PayloadSpec::max_bytes() const {
  if (kind == PayloadKind::Raw) return bytes;
  // The template is the same Quote with every scalar stored (ForceDefaults):
  // never smaller than the builder's, measured the same way below.
  if (kind == PayloadKind::QuoteTemplate) {
    QuoteTemplatePayload t;
    std::size_t most = 0;
    for (bool pong : {false, true}) {
      t.prepare(0, pong);
      most = std::max(most, t.size());
    }
    return std::max(most, PayloadSpec{PayloadKind::Quote, 0}.max_bytes());
  }
  // The writer's Quote: every field stored, its strings in slots of their
  // size (they never change length here), measured the same way.
  if (kind == PayloadKind::QuoteWriter) {
    QuoteWriterPayload w;
    std::size_t most = 0;
    for (std::uint64_t i : {std::uint64_t{0}, std::uint64_t{999}, ~std::uint64_t{0} >> 1}) {
      for (bool pong : {false, true}) {
        w.prepare(i, pong);
        most = std::max(most, w.size());
      }
    }
    return std::max(most, PayloadSpec{PayloadKind::Quote, 0}.max_bytes());
  }
  QuotePayload q;
  std::size_t most = 0;
  for (std::uint64_t i : {std::uint64_t{0}, std::uint64_t{999}, ~std::uint64_t{0} >> 1}) {
    for (bool pong : {false, true}) {
      q.prepare(i, pong);
      most = std::max(most, q.size());
    }
  }
  return most;
}

void barrier(RunShared& sh) {
  sh.ready.fetch_add(1, std::memory_order_acq_rel);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (std::uint32_t spins = 0;; ++spins) {
    if (sh.abort.load(std::memory_order_acquire) != 0)
      throw std::runtime_error("the other side failed");
    if (sh.ready.load(std::memory_order_acquire) >= 2) return;
    if ((spins & 0xffffu) == 0 && std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error("the other side did not get ready within 60 s");
  }
}

std::unique_ptr<RunResult> run_latency(const System& sys, const RunSpec& spec) {
  auto result = std::make_unique<RunResult>();
  std::unique_ptr<Session> session;
  try {
    session = sys.open(spec);
  } catch (const std::exception& e) {
    result->error = sys.name + ": setup failed: " + e.what();
    return result;
  }
  SharedRegion region(sizeof(RunShared));
  auto* sh = new (region.data()) RunShared();

  const auto child_main = [&](int side) {
    SideReport& me = sh->side[side];
    try {
      pin_to_cpu(side == 0 ? spec.cpu_ping : spec.cpu_pong);
      region.prefault();
      if (side == 0) {
        session->ping(*sh, spec);
      } else {
        session->pong(*sh, spec);
      }
      return 0;
    } catch (const std::exception& e) {
      std::snprintf(me.error, sizeof me.error, "%s", e.what());
    } catch (...) {
      std::snprintf(me.error, sizeof me.error, "unknown exception");
    }
    sh->abort.store(1, std::memory_order_release);
    return 2;
  };

  const std::uint64_t steal0 = steal_ticks();
  const auto start = std::chrono::steady_clock::now();
  Children kids;
  kids.spawn([&] { return child_main(1); });
  kids.spawn([&] { return child_main(0); });
  const std::string failure = kids.wait_all(spec.timeout, sys.name);
  result->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result->steal_ticks = steal_ticks() - steal0;

  std::string err = failure;
  for (int s = 0; s < 2; ++s) {
    if (sh->side[s].error[0] != 0) {
      err += (err.empty() ? "" : "; ") + std::string(s == 0 ? "pinger: " : "ponger: ") +
             sh->side[s].error;
    }
    result->switches[s] = sh->side[s].switches;
  }
  result->failures = sh->side[0].failures + sh->side[1].failures;
  if (err.empty() && result->failures != 0) {
    err = std::to_string(result->failures) + " message(s) with wrong content (pinger " +
          std::to_string(sh->side[0].failures) + ", ponger " +
          std::to_string(sh->side[1].failures) + ")";
  }
  if (err.empty() && sh->side[0].done != spec.warmup + spec.round_trips)
    err = "the pinger did not finish";
  result->hist = sh->hist;
  result->ok = err.empty();
  result->error = err;
  sh->~RunShared();
  return result;
}

// ------------------------------------------------------------------ the floor
//
// Two processes, one cache line each in shared memory, nothing else: the
// pinger stores i into its line and spins on the other until it reads i
// back; the ponger spins on the pinger's line and stores what it read into
// its own. Each round trip is two cache-line transfers between the two
// CPUs, the least any shared-memory transport can cost.

namespace {

class FloorSession final : public Session {
 public:
  void ping(RunShared& sh, const RunSpec& spec) override {
    barrier(sh);
    auto hist = std::make_unique<shmbus::Histogram>();
    const std::uint64_t total = spec.warmup + spec.round_trips;
    Switches start = Switches::now();
    std::uint64_t failures = 0;
    for (std::uint64_t i = 1; i <= total; ++i) {
      if (i == spec.warmup + 1) start = Switches::now();
      const std::uint64_t t0 = TickClock::now();
      // release/acquire: the pair a transport needs to publish data; on x86
      // both are plain moves, as they would be for any real payload.
      sh.floor_ping.store(i, std::memory_order_release);
      std::uint64_t seen = 0;
      while ((seen = sh.floor_pong.load(std::memory_order_acquire)) < i) {
      }
      const std::uint64_t t1 = TickClock::now();
      failures += seen == i ? 0 : 1;
      if (i > spec.warmup) hist->record(TickClock::to_ns(t1 - t0));
    }
    sh.side[0].switches = Switches::now() - start;
    sh.side[0].failures = failures;
    sh.side[0].done = total;
    sh.hist = *hist;
  }

  void pong(RunShared& sh, const RunSpec& spec) override {
    barrier(sh);
    const std::uint64_t total = spec.warmup + spec.round_trips;
    Switches start = Switches::now();
    std::uint64_t failures = 0;
    for (std::uint64_t i = 1; i <= total; ++i) {
      if (i == spec.warmup + 1) start = Switches::now();
      std::uint64_t seen = 0;
      while ((seen = sh.floor_ping.load(std::memory_order_acquire)) < i) {
      }
      failures += seen == i ? 0 : 1;
      sh.floor_pong.store(seen, std::memory_order_release);
    }
    sh.side[1].switches = Switches::now() - start;
    sh.side[1].failures = failures;
    sh.side[1].done = total;
  }
};

}  // namespace

// ------------------------------------------------------------------ the floor of a size
//
// The least any shared-memory transport can cost to move N bytes between the
// two CPUs: mailboxes in shared memory, one per direction (or K, used in
// turn: --floor-mailboxes), each N bytes followed by a flag word (the flag
// shares the last line of the bytes, so a mailbox is ceil((N + 8) / 64)
// lines, the fewest N bytes and a flag fit in). The writer writes the bytes
// (in descending order, measured the faster: RawPayload), then the flag
// (release); the reader spins on the flag (acquire), requests
// every line of the message at once, then reads and checks every byte with
// the same payload code the bus is checked with. Nothing else: no header, no
// sequence word, no timestamp, no cursor. (Measured: without the reader's
// prefetch the floor of 1 KiB read slower than the bus, which does it.)
//
// No race: a mailbox is rewritten only after the reply to its previous
// message arrived, which its reader sends after it finished reading.

namespace {

class SizedFloorLink {
 public:
  // out/in: the first of `boxes` mailboxes of `stride` bytes each way.
  SizedFloorLink(std::byte* out, std::byte* in, std::size_t bytes, std::size_t stride,
                 std::uint32_t boxes) noexcept
      : out_(out), in_(in), bytes_(bytes), stride_(stride), boxes_(boxes) {}

  static std::size_t flag_offset(std::size_t bytes) noexcept { return (bytes + 7) / 8 * 8; }
  static std::size_t mailbox_bytes(std::size_t bytes) noexcept {
    return (flag_offset(bytes) + 8 + 127) / 128 * 128;
  }
  static std::atomic<std::uint64_t>* flag_at(std::byte* box, std::size_t bytes) noexcept {
    return std::launder(reinterpret_cast<std::atomic<std::uint64_t>*>(box + flag_offset(bytes)));
  }

  template <class Payload>
  void send(const Payload& p) noexcept {
    std::byte* box = out_ + (sent_ % boxes_) * stride_;
    if constexpr (requires { p.write_descending(box); })
      p.write_descending(box);  // the faster order for the floor (util.hpp)
    else
      p.write(box);
    // release: publishes the bytes written above to the reader's acquire.
    flag_at(box, bytes_)->store(++sent_, std::memory_order_release);
  }

  template <class Visit>
  void receive(Visit&& visit) {
    const std::byte* box = in_ + (received_ % boxes_) * stride_;
    ++received_;
    // acquire: pairs with the writer's release; the bytes are complete.
    while (flag_at(const_cast<std::byte*>(box), bytes_)->load(std::memory_order_acquire) <
           received_) {
    }
    for (std::size_t off = 0; off < bytes_; off += 64) __builtin_prefetch(box + off, 0, 3);
    visit(std::span<const std::byte>(box, bytes_));
  }

 private:
  std::byte* out_;
  std::byte* in_;
  std::size_t bytes_;
  std::size_t stride_;
  std::uint64_t boxes_;
  std::uint64_t sent_ = 0;
  std::uint64_t received_ = 0;
};

class SizedFloorSession final : public Session {
 public:
  // typed: the payload's own code runs on it (a Quote built with its
  // FlatBufferBuilder, writer or template, copied into the mailbox, read back
  // field by field) instead of raw bytes of its size.
  SizedFloorSession(std::size_t bytes, std::uint32_t boxes, bool typed = false)
      : typed_(typed),
        bytes_(bytes),
        boxes_(boxes),
        stride_(SizedFloorLink::mailbox_bytes(bytes)),
        region_(2 * boxes * stride_) {
    for (std::uint32_t k = 0; k < 2 * boxes_; ++k)
      new (SizedFloorLink::flag_at(base() + k * stride_, bytes_)) std::atomic<std::uint64_t>(0);
  }
  void ping(RunShared& sh, const RunSpec& spec) override { run(sh, spec, true); }
  void pong(RunShared& sh, const RunSpec& spec) override { run(sh, spec, false); }

 private:
  std::byte* base() const noexcept { return static_cast<std::byte*>(region_.data()); }
  void run(RunShared& sh, const RunSpec& spec, bool pinger) {
    region_.prefault();
    std::byte* ping_boxes = base();
    std::byte* pong_boxes = base() + boxes_ * stride_;
    SizedFloorLink link(pinger ? ping_boxes : pong_boxes, pinger ? pong_boxes : ping_boxes, bytes_,
                        stride_, boxes_);
    RunSpec raw = spec;
    if (!typed_) raw.payload = PayloadSpec{PayloadKind::Raw, bytes_};
    barrier(sh);
    run_side(link, sh, raw, pinger);
  }

  bool typed_;
  std::size_t bytes_;
  std::uint32_t boxes_;
  std::size_t stride_;
  SharedRegion region_;
};

}  // namespace

System floor_system() {
  return System{"floor", "floor (1 line)",
                "two processes spinning on one cache line each in shared memory, nothing else",
                true, [](const RunSpec&) { return std::make_unique<FloorSession>(); }};
}

std::size_t floor_bytes(const PayloadSpec& payload) {
  return (payload.max_bytes() + 7) / 8 * 8;
}

System sized_floor_system(const PayloadSpec& payload, std::uint32_t mailboxes) {
  const std::size_t n = floor_bytes(payload);
  const std::uint32_t k = std::max<std::uint32_t>(1, mailboxes);
  const std::string boxes = k == 1 ? "" : " (" + std::to_string(k) + " mailboxes)";
  return System{
      "floor-" + std::to_string(n), "floor " + std::to_string(n) + "B" + boxes,
      "two processes ping-ponging " + std::to_string(n) +
          " bytes and a flag in shared memory (write bytes, release the flag; acquire "
          "the flag, prefetch, read and check every byte), nothing else" +
          (k == 1 ? std::string() : "; " + std::to_string(k) + " mailboxes each way, used in turn"),
      true, [n, k](const RunSpec&) { return std::make_unique<SizedFloorSession>(n, k); }};
}

System typed_floor_system() {
  return System{"floor-typed", "floor + payload code",
                "the floor of the payload's size carrying the payload's own code: the message "
                "built as the bus's sender builds it (FlatBufferBuilder, MessageWriter or "
                "MessageTemplate), copied into the mailbox, read back field by field; no "
                "transport but the mailbox (raw payloads: the sized floor again)",
                true, [](const RunSpec& spec) {
                  return std::make_unique<SizedFloorSession>(floor_bytes(spec.payload), 1,
                                                             spec.payload.kind != PayloadKind::Raw);
                }};
}

}  // namespace busbench
