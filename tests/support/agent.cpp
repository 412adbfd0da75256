#include "agent.hpp"

#include <chrono>
#include <cstdio>
#include <optional>

#include <gtest/gtest.h>

#include "shmbus/msg/md_quote_generated.h"
#include "shmbus/shmbus.hpp"

namespace shmbus::test {

using namespace std::chrono_literals;

std::vector<std::byte> raw_payload(std::uint64_t seq) {
  std::vector<std::byte> b(24);
  fill_payload(b.data(), b.size(), seq);
  return b;
}

std::string hex(std::span<const std::byte> b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (const std::byte x : b) {
    s += kHex[std::to_integer<unsigned>(x) >> 4];
    s += kHex[std::to_integer<unsigned>(x) & 15];
  }
  return s;
}

int agent_main(int in, int out) {
  std::optional<Bus> bus;
  std::optional<Publisher> pub;
  std::optional<Subscriber> sub;
  bool typed = true;
  LineReader reader(in);
  const auto reply = [&](const std::string& s) { write_all(out, s + "\n"); };
  for (;;) {
    const auto line = reader.next(std::chrono::hours(1));
    if (!line) return 0;
    const std::vector<std::string> w = words(*line);
    if (w.empty()) continue;
    try {
      if (w[0] == "publisher" && w.size() == 7) {
        bus.emplace(Bus::open_or_create(w[1]));
        TopicConfig c;
        c.policy = w[4] == "reliable" ? Policy::Reliable : Policy::Lossy;
        c.slot_count = static_cast<std::uint32_t>(std::stoul(w[5]));
        c.slot_size = 256;
        c.max_consumers = 8;
        typed = w[3] == "quote";
        if (typed) c.type = type_of<md::Quote>();
        PublisherOptions o;
        o.name = w[6];
        pub.emplace(bus->topic(w[2], c), o);
        reply("ok");
      } else if ((w[0] == "send" || w[0] == "try") && w.size() == 2) {
        const std::uint64_t n = std::stoull(w[1]);
        std::uint64_t would_block = 0;
        for (std::uint64_t i = 0; i < n; ++i) {
          const std::uint64_t seq = pub->next_sequence();
          PublishResult r{};
          if (typed) {
            flatbuffers::FlatBufferBuilder fbb;
            const double px = static_cast<double>(seq);
            fbb.Finish(md::CreateQuoteDirect(fbb, "SYM", seq, "XTST", 0, 0, seq, px + 0.25, 100.0,
                                             px + 0.5, 200.0),
                       md::QuoteIdentifier());
            r = w[0] == "send" ? pub->publish(fbb, 10s) : pub->try_publish(fbb);
          } else {
            const auto b = raw_payload(seq);
            r = w[0] == "send" ? pub->publish(b, 10s) : pub->try_publish(b);
          }
          if (r == PublishResult::WouldBlock) {
            ++would_block;
          } else if (r != PublishResult::Ok) {
            throw Error(Errc::Timeout, "publish: " + std::string(to_string(r)));
          }
        }
        reply("ok last=" + std::to_string(pub->next_sequence() - 1) +
              " would_block=" + std::to_string(would_block));
      } else if (w[0] == "release") {
        pub.reset();
        reply("ok");
      } else if (w[0] == "subscriber" && w.size() == 4) {
        bus.emplace(Bus::open(w[1]));
        SubscriberOptions o;
        o.name = w[3];
        sub.emplace(bus->open_topic(w[2]), o);
        typed = !sub->topic().type_name().empty();
        reply("ok");
      } else if (w[0] == "drain") {
        std::uint64_t count = 0;
        for (;;) {
          const std::size_t got = sub->poll(
              [&](const Message& m) {
                ++count;
                std::string l = "msg seq=" + std::to_string(m.meta.seq);
                if (typed) {
                  const auto& q = m.as<md::Quote>();
                  char px[64];
                  std::snprintf(px, sizeof px, "%.6f", q.bid_px());
                  l += " symbol=" + (q.symbol() != nullptr ? q.symbol()->str() : std::string("-")) +
                       " instrument=" + std::to_string(q.instrument_id()) + " bid=" + px;
                } else {
                  l += " hex=" + hex(m.data);
                }
                reply(l);
              },
              1024);
          if (got == 0) break;
        }
        reply("ok count=" + std::to_string(count) + " drops=" + std::to_string(sub->drops()));
      } else {
        reply("error bad_command " + *line);
      }
    } catch (const Error& e) {
      reply("error " + std::string(to_string(e.code())) + " " + e.what());
    }
  }
}

Agent::Agent() : proc_(agent_main) {}

std::vector<std::string> Agent::talk(const std::string& command) {
  proc_.send(command + "\n");
  std::vector<std::string> lines;
  for (;;) {
    const auto l = proc_.line(60s);
    if (!l) {
      ADD_FAILURE() << "agent " << proc_.pid() << " did not answer '" << command << "'";
      return lines;
    }
    lines.push_back(*l);
    if (l->rfind("msg ", 0) != 0) break;
  }
  EXPECT_EQ(lines.back().rfind("ok", 0), 0u) << command << " -> " << lines.back();
  return lines;
}

std::string Agent::ok(const std::string& command) {
  const std::vector<std::string> lines = talk(command);
  return lines.empty() ? std::string() : lines.back();  // no answer: already a failure
}

std::uint32_t Agent::pid() const {
  return static_cast<std::uint32_t>(proc_.pid());
}

int Agent::kill9() {
  return proc_.kill9();
}

std::string field(const std::string& line, const std::string& key) {
  for (const std::string& w : words(line))
    if (w.rfind(key + "=", 0) == 0) return w.substr(key.size() + 1);
  return {};
}

}  // namespace shmbus::test
