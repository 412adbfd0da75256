// bus-bench: shmbus itself. Two topics, "ping" and "pong", on a bus of the
// run's own; each process publishes on one and subscribes to the other, as
// two trading processes would. Raw payloads are built in place in the
// claimed slot (try_claim -> fill -> commit); the Quote goes through the typed
// API (FlatBufferBuilder -> try_publish -> Message::as<Quote>()), the
// Quote-tpl through MessageTemplate (mutate_ in the template -> try_publish),
// the Quote-wr through MessageWriter (every field set -> try_publish).
#include <unistd.h>

#include <stdexcept>

#include <shmbus/shmbus.hpp>

#include "latency.hpp"

namespace busbench {

namespace {

class BusLink {
 public:
  BusLink(shmbus::Publisher& pub, shmbus::Subscriber& sub) noexcept : pub_(pub), sub_(sub) {}

  template <class Payload>
  void send(const Payload& p) noexcept {
    if constexpr (requires { Payload::kTemplate; }) {
      // The library's template path: the message set in its template, one
      // copy into the slot.
      while (p.message_template().try_publish(pub_) != shmbus::PublishResult::Ok) {
      }
    } else if constexpr (requires { Payload::kWriter; }) {
      // The library's writer: every field set in its buffer, one copy.
      while (p.writer().try_publish(pub_) != shmbus::PublishResult::Ok) {
      }
    } else if constexpr (Payload::kFlatBuffer) {
      // WouldBlock only on a reliable topic whose consumer is a ring behind:
      // never in a ping-pong, but retrying is what a producer would do.
      while (pub_.try_publish(p.builder()) != shmbus::PublishResult::Ok) {
      }
    } else {
      for (;;) {
        shmbus::Claim c = pub_.try_claim(p.size());
        if (c) {
          p.write(c.data());
          c.commit(p.size());
          return;
        }
      }
    }
  }

  template <class Visit>
  void receive(Visit&& visit) {
    while (sub_.poll([&](const shmbus::Message& m) { visit(m.data); }, 1) == 0) {
    }
  }

 private:
  shmbus::Publisher& pub_;
  shmbus::Subscriber& sub_;
};

shmbus::TopicConfig topic_config(const RunSpec& spec, bool reliable) {
  shmbus::TopicConfig c;
  c.policy = reliable ? shmbus::Policy::Reliable : shmbus::Policy::Lossy;
  const std::size_t need = spec.payload.max_bytes() + shmbus::detail::kSlotHeaderBytes;
  c.slot_size = static_cast<std::uint32_t>((need + 63) / 64 * 64);
  c.slot_count = spec.slot_count;
  c.max_consumers = 4;
  if (spec.payload.kind != PayloadKind::Raw) c.type = shmbus::type_of<shmbus::md::Quote>();
  return c;
}

class BusSession final : public Session {
 public:
  BusSession(const RunSpec& spec, bool reliable)
      : bus_name_("bb" + std::to_string(::getpid()) + "-" + std::to_string(counter_++)),
        config_(topic_config(spec, reliable)) {
    // Created here, before the fork, so both sides find them (and their
    // memory is already faulted in: segments are populated at create and
    // again at open).
    shmbus::Bus bus = shmbus::Bus::open_or_create(bus_name_);
    (void)bus.topic("ping", config_);
    (void)bus.topic("pong", config_);
  }
  ~BusSession() override { shmbus::Bus::remove(bus_name_); }

  void ping(RunShared& sh, const RunSpec& spec) override { run(sh, spec, "ping", "pong", true); }
  void pong(RunShared& sh, const RunSpec& spec) override { run(sh, spec, "pong", "ping", false); }

 private:
  void run(RunShared& sh, const RunSpec& spec, const char* out, const char* in, bool pinger) {
    shmbus::Bus bus = shmbus::Bus::open(bus_name_);
    shmbus::Publisher pub(bus.topic(out, config_),
                          shmbus::PublisherOptions{pinger ? "pinger" : "ponger"});
    shmbus::SubscriberOptions so;
    so.name = pinger ? "pinger" : "ponger";
    shmbus::Subscriber sub(bus.topic(in, config_), so);
    BusLink link(pub, sub);
    barrier(sh);
    run_side(link, sh, spec, pinger);
  }

  static inline unsigned counter_ = 0;
  std::string bus_name_;
  shmbus::TopicConfig config_;
};

}  // namespace

std::vector<std::string> active_hints(bool cldemote) {
  const shmbus::PublisherOptions po;
  std::vector<std::string> out;
  out.push_back("publisher: CLDEMOTE of a message's lines when it follows >= " +
                std::to_string(po.demote_after_idle_ns) +
                " ns without publishing (PublisherOptions::demote_after_idle_ns, default) -- " +
                (cldemote ? "acts on this CPU"
                          : "skipped on this CPU (no CLDEMOTE: the writer asks cpuid once)"));
  out.push_back("reliable subscriber (in place): prefetch of every line of the message at once");
  out.push_back("reliable publisher: write-prefetch of the slot " +
                std::to_string(shmbus::detail::RingWriter::kPrefetchBytes) + " B ahead (" +
                std::to_string(shmbus::detail::RingWriter::kPrefetchMaxLines) +
                " lines at most), only while the ring has room");
  return out;
}

System bus_system(bool reliable) {
  if (reliable) {
    return System{"bus-reliable", "shmbus (reliable)",
                  "shmbus, reliable topics: registered consumers read in place, the producer is "
                  "gated on them",
                  false,
                  [](const RunSpec& spec) { return std::make_unique<BusSession>(spec, true); }};
  }
  return System{
      "bus", "shmbus (lossy)",
      "shmbus, lossy topics (market data): consumers copy out and validate the slot's seqlock",
      false, [](const RunSpec& spec) { return std::make_unique<BusSession>(spec, false); }};
}

}  // namespace busbench
