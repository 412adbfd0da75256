// libFuzzer: a process scribbles on shared memory. Each input is a list of
// byte writes into a live topic segment (header, consumer table, stored
// schema, slots) or the bus directory (entries, clock block), made AFTER
// the topic was opened; then everything that reads a segment runs on it: an
// observer and a registered subscriber polling and printing each message as
// the JSON envelope, snapshots of the topic and the bus, a fresh open of the
// bus and topic (which checks the bytes again), and a publisher attaching.
// The rule (detail/layout.hpp): a value from shared memory is fixed at open
// or checked at every use, loops on shared words are bounded, and an
// inconsistency is a named error or a counted drop. Any crash, hang (the
// runner's -timeout) or sanitizer report is a finding. The segments are
// restored after each input.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "shmbus/admin/envelope.hpp"
#include "shmbus/admin/snapshot.hpp"
#include "shmbus/core/internals.hpp"
#include "shmbus/messages.hpp"
#include "shmbus/shmbus.hpp"

namespace {

using namespace shmbus;

struct World {
  std::string name = "fuzz-" + std::to_string(::getpid());
  std::optional<Bus> bus;
  std::optional<Topic> topic;
  std::vector<std::byte> topic_copy;
  std::vector<std::byte> dir_copy;

  World() {
    Bus::remove(name);
    BusOptions bo;
    bo.capacity = 4;
    bus.emplace(Bus::open_or_create(name, bo));
    TopicConfig c;
    c.slot_size = 256;
    c.slot_count = 8;
    c.max_consumers = 4;
    c.type = type_of<md::Quote>();
    topic.emplace(bus->topic("md.quotes", c));
    {
      Publisher pub(*topic);
      for (std::uint64_t i = 0; i < 12; ++i) {  // wraps the ring once
        flatbuffers::FlatBufferBuilder fbb;
        fbb.Finish(md::CreateQuoteDirect(fbb, "SYM", i, "XTST", 0, 0, i,
                                         1.0 + static_cast<double>(i), 100, 2.0, 200),
                   md::QuoteIdentifier());
        (void)pub.try_publish(fbb);
      }
    }
    const auto& t = detail::Internals::state(*topic)->segment;
    topic_copy.assign(static_cast<std::byte*>(t.data()),
                      static_cast<std::byte*>(t.data()) + t.size());
    const auto& d = detail::Internals::state(*bus)->segment;
    dir_copy.assign(static_cast<std::byte*>(d.data()),
                    static_cast<std::byte*>(d.data()) + d.size());
    std::atexit([] { Bus::remove(world().name); });
  }

  static World& world() {
    static World w;
    return w;
  }

  void restore() {
    std::memcpy(detail::Internals::state(*topic)->segment.data(), topic_copy.data(),
                topic_copy.size());
    std::memcpy(detail::Internals::state(*bus)->segment.data(), dir_copy.data(), dir_copy.size());
  }
};

void read_everything(const Bus& bus, const Topic& topic) {
  const EnvelopeWriter env(topic);
  for (const bool registered : {false, true}) {
    try {
      SubscriberOptions o;
      o.register_consumer = registered;
      o.start = Start::Oldest;
      o.name = "fuzz";
      Subscriber sub(topic, o);
      std::size_t lines = 0;
      sub.on_gap([&](const Gap& g) { lines += env.gap(g).size(); });
      (void)sub.poll([&](const Message& m) { lines += env.message(m).size(); }, 64);
      if (lines == 0) (void)sub.ready();
    } catch (const Error&) {
      // a named refusal (a full or damaged consumer table): fine
    }
  }
  (void)snapshot(topic);
  try {
    (void)snapshot(bus);  // reopens every listed topic: a damaged one is a named error
  } catch (const Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  World& w = World::world();
  auto* topic_mem = static_cast<std::uint8_t*>(detail::Internals::state(*w.topic)->segment.data());
  auto* dir_mem = static_cast<std::uint8_t*>(detail::Internals::state(*w.bus)->segment.data());
  // Records of 4 bytes: region (even: topic, odd: directory), offset (2 bytes), value.
  for (std::size_t i = 0; i + 4 <= size && i < 4 * 32; i += 4) {
    const std::size_t off = (std::size_t{data[i + 1]} << 8 | data[i + 2]);
    if ((data[i] & 1) == 0) {
      topic_mem[off % w.topic_copy.size()] = data[i + 3];
    } else {
      dir_mem[off % w.dir_copy.size()] = data[i + 3];
    }
  }
  // The already-open handles: values taken at open, words read live.
  read_everything(*w.bus, *w.topic);
  // A fresh open checks the bytes again: a named error, or a topic to read.
  try {
    const Bus fresh = Bus::open(w.name);
    const Topic t = fresh.open_topic("md.quotes");
    read_everything(fresh, t);
    Publisher pub(t);
    std::vector<std::byte> junk(16);
    (void)pub.try_publish(junk);
  } catch (const Error&) {
  }
  w.restore();
  return 0;
}
