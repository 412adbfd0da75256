// shmbus-testproc: the other process in the multi-process tests.
//
//   produce BUS TOPIC COUNT POLICY SLOTS   publish COUNT messages (0: until
//                                         killed); the last carries correlation
//                                         kEndMarker. Each payload is
//                                         fill_payload(seq).
//   consume BUS TOPIC POLICY SLOTS [slow] read until the end marker; check order,
//                                         payloads and gap accounting
//   stall BUS TOPIC POLICY SLOTS          register as a consumer, read nothing
//
// Every mode prints "ready" once attached, and a final "key=value ..." line.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "payload.hpp"
#include "shmbus/shmbus.hpp"

namespace {

constexpr std::uint64_t kEndMarker = 0xE0F;

shmbus::TopicConfig config(const std::string& policy, const std::string& slots) {
  shmbus::TopicConfig c;
  c.policy = policy == "reliable" ? shmbus::Policy::Reliable : shmbus::Policy::Lossy;
  c.slot_count = static_cast<std::uint32_t>(std::stoul(slots));
  c.slot_size = 128;
  c.max_consumers = 8;
  return c;
}

void ready() {
  std::printf("ready\n");
  std::fflush(stdout);
}

int produce(shmbus::Bus& bus, const std::string& topic, std::uint64_t count,
            const shmbus::TopicConfig& c) {
  shmbus::PublisherOptions o;
  o.name = "testproc-producer";
  shmbus::Publisher pub = bus.publisher(topic, c, o);
  std::printf("took_over=%d first=%llu\n", pub.took_over() ? 1 : 0,
              static_cast<unsigned long long>(pub.next_sequence()));
  ready();
  std::vector<std::byte> buf(64);
  for (std::uint64_t i = 1; count == 0 || i <= count; ++i) {
    const std::uint64_t seq = pub.next_sequence();
    shmbus::test::fill_payload(buf.data(), buf.size(), seq);
    const auto r =
        pub.publish(buf, std::chrono::seconds(30), count != 0 && i == count ? kEndMarker : 0);
    if (r != shmbus::PublishResult::Ok) {
      std::printf("error=publish_%s seq=%llu\n", std::string(shmbus::to_string(r)).c_str(),
                  static_cast<unsigned long long>(seq));
      return 1;
    }
  }
  std::printf("published=%llu last=%llu\n", static_cast<unsigned long long>(count),
              static_cast<unsigned long long>(pub.next_sequence() - 1));
  return 0;
}

int consume(shmbus::Bus& bus, const std::string& topic, const shmbus::TopicConfig& c, bool slow) {
  shmbus::SubscriberOptions o;
  o.name = "testproc-consumer";
  shmbus::Subscriber sub = bus.subscriber(topic, c, o);
  std::uint64_t first = 0, last = 0, received = 0, lost = 0, corrupt = 0, disorder = 0, gaps = 0;
  std::uint64_t expect = sub.next_sequence();
  sub.on_gap([&](const shmbus::Gap& g) {
    ++gaps;
    if (g.first != expect) ++disorder;
    lost += g.count;
    expect = g.first + g.count;
  });
  ready();
  bool end = false;
  while (!end) {
    sub.poll(
        [&](const shmbus::Message& m) {
          std::uint64_t v = 0;
          if (!shmbus::test::check_payload(m.data, v) || v != m.meta.seq) ++corrupt;
          if (m.meta.seq != expect) ++disorder;
          if (first == 0) first = m.meta.seq;
          expect = m.meta.seq + 1;
          last = m.meta.seq;
          ++received;
          if (m.meta.correlation == kEndMarker) end = true;
          if (slow) {
            shmbus::test::burn(3000);
          }
        },
        64);
    if (!end) (void)sub.wait(std::chrono::milliseconds(100));
  }
  std::printf(
      "received=%llu lost=%llu gaps=%llu first=%llu last=%llu corrupt=%llu disorder=%llu "
      "drops=%llu\n",
      static_cast<unsigned long long>(received), static_cast<unsigned long long>(lost),
      static_cast<unsigned long long>(gaps), static_cast<unsigned long long>(first),
      static_cast<unsigned long long>(last), static_cast<unsigned long long>(corrupt),
      static_cast<unsigned long long>(disorder), static_cast<unsigned long long>(sub.drops()));
  return 0;
}

int stall(shmbus::Bus& bus, const std::string& topic, const shmbus::TopicConfig& c) {
  shmbus::SubscriberOptions o;
  o.name = "testproc-staller";
  shmbus::Subscriber sub = bus.subscriber(topic, c, o);
  ready();
  for (;;) ::pause();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s produce|consume|stall BUS TOPIC ...\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  try {
    shmbus::Bus bus = shmbus::Bus::open_or_create(argv[2]);
    if (mode == "produce" && argc >= 7)
      return produce(bus, argv[3], std::stoull(argv[4]), config(argv[5], argv[6]));
    if (mode == "consume")
      return consume(bus, argv[3], config(argv[4], argv[5]),
                     argc >= 7 && std::string(argv[6]) == "slow");
    if (mode == "stall") return stall(bus, argv[3], config(argv[4], argv[5]));
  } catch (const shmbus::Error& e) {
    std::printf("error=%s\n", std::string(shmbus::to_string(e.code())).c_str());
    std::fprintf(stderr, "testproc: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "testproc: bad arguments\n");
  return 2;
}
