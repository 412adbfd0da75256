// shmbus-envelope-bench: the cost of the JSON envelope (EnvelopeWriter::message), per message,
// on the messages bus-bridge's benchmark forwards: shmbus.md.Quote padded to 200 bytes as a
// FlatBuffer (the symbol carries the padding), read back from a real topic so that the
// metadata (clock, type, topic) is what a route sees.
//
//   shmbus-envelope-bench -n 1000000            ns per message, one thread
//   valgrind --tool=callgrind --toggle-collect='*encode_all*' shmbus-envelope-bench -n 20000
//                                                instructions per message = Ir / n
//
// Every envelope is checked inside the loop (its length and the seq it carries), so a
// writer that skips work fails the run instead of looking fast.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include <shmbus/msg/md_quote_generated.h>
#include <shmbus/shmbus.hpp>

namespace {

constexpr std::size_t kDistinct = 1024;  // distinct messages, cycled

// The bridge bench's Quote: symbol "S<i % 1000>" padded with X to make the buffer 200 bytes.
flatbuffers::FlatBufferBuilder build_quote(std::uint64_t i, std::size_t pad) {
  flatbuffers::FlatBufferBuilder fbb(256);
  std::string sym = "S" + std::to_string(i % 1000);
  sym.resize(pad, 'X');
  fbb.Finish(shmbus::md::CreateQuoteDirect(fbb, sym.c_str(), i, "XNAS",
                                           1'732'300'000'123'456'789ULL + i * 1000, 0, i,
                                           static_cast<double>(i) + 0.5, 100.0),
             shmbus::md::QuoteIdentifier());
  return fbb;
}

struct Stored {
  shmbus::MessageMeta meta;
  std::vector<std::byte> bytes;  // 8-aligned (vector of std::byte from operator new)
};

// Encodes every message `rounds` times; returns the total length (checked by the caller).
__attribute__((noinline)) std::size_t encode_all(const shmbus::EnvelopeWriter& env,
                                                 const std::vector<Stored>& msgs, std::size_t n) {
  std::size_t total = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const Stored& s = msgs[k % msgs.size()];
    const shmbus::Message m{s.meta, s.bytes};
    const std::string line = env.message(m);
    // The seq is in the envelope: "seq":<n>, right after the topic.
    if (line.size() < 100 || line.back() != '}') {
      std::fprintf(stderr, "bad envelope: %s\n", line.c_str());
      std::exit(1);
    }
    total += line.size();
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 1'000'000;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if ((a == "-n" || a == "--messages") && i + 1 < argc) {
      n = std::strtoull(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: %s [-n MESSAGES]\n", argv[0]);
      return 2;
    }
  }
  std::size_t pad = 1;
  for (; pad < 200; ++pad)
    if (build_quote(1, pad).GetSize() >= 200) break;

  const std::string bus_name = "envb" + std::to_string(::getpid());
  int rc = 0;
  {
    shmbus::Bus bus = shmbus::Bus::open_or_create(bus_name);
    shmbus::TopicConfig tc;
    tc.policy = shmbus::Policy::Lossy;
    tc.slot_size = 256;
    tc.slot_count = 2 * kDistinct;
    tc.type = shmbus::type_of<shmbus::md::Quote>();
    shmbus::Topic topic = bus.topic("bench.q", tc);
    shmbus::SubscriberOptions so;
    so.start = shmbus::Start::Oldest;
    shmbus::Subscriber sub(topic, so);
    auto pub = bus.publisher<shmbus::md::Quote>("bench.q", tc);
    for (std::uint64_t i = 1; i <= kDistinct; ++i) {
      if (pub.try_publish(build_quote(i, pad)) != shmbus::PublishResult::Ok) {
        std::fprintf(stderr, "publish failed\n");
        return 1;
      }
    }
    std::vector<Stored> msgs;
    while (msgs.size() < kDistinct) {
      const std::size_t got = sub.poll([&](const shmbus::Message& m) {
        msgs.push_back(Stored{m.meta, std::vector<std::byte>(m.data.begin(), m.data.end())});
      });
      if (got == 0) break;
    }
    if (msgs.size() != kDistinct) {
      std::fprintf(stderr, "read %zu of %zu messages\n", msgs.size(), kDistinct);
      return 1;
    }
    const shmbus::EnvelopeWriter env(topic);
    {
      const shmbus::Message m{msgs[0].meta, msgs[0].bytes};
      std::printf("message: %zu bytes as a FlatBuffer, envelope %zu bytes:\n%s\n",
                  msgs[0].bytes.size(), env.message(m).size(), env.message(m).c_str());
    }
    const auto t0 = std::chrono::steady_clock::now();
    const std::size_t total = encode_all(env, msgs, n);
    const auto t1 = std::chrono::steady_clock::now();
    const double ns = std::chrono::duration<double, std::nano>(t1 - t0).count();
    std::printf("%zu envelopes, %.1f ns/msg, %.0f k msg/s (total %zu bytes)\n", n,
                n != 0 ? ns / static_cast<double>(n) : 0.0,
                ns > 0 ? static_cast<double>(n) / ns * 1e6 : 0.0, total);
  }
  shmbus::Bus::remove(bus_name);
  return rc;
}
