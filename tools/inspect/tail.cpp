// bus-inspect tail BUS TOPIC [-n N] [--follow]: messages as JSON lines.
//
// The reader is an observer (SubscriberOptions::register_consumer = false)
// on a read-only mapping: it takes no consumer entry, gates no reliable
// producer, and may itself be lapped, which it prints as a gap line:
//
//   {"topic":"md.quotes","seq":41,"ts":1732329601123456789,"time":"2024-11-23T02:40:01.123456789Z",
//    "producer":4242,"type":"shmbus.md.Quote","data":{"symbol":"AAPL",...}}
//   {"gap":{"topic":"md.quotes","first":42,"count":977}}
//
// Raw topics print the payload as "base64" (or "hex" with --hex) instead
// of "data"; a message that fails the FlatBuffers verifier prints "error"
// and its bytes.
//
// Waiting: poll() is called only when ready() says a message (or a gap) is
// there, and the wait in between is a short sleep. Subscriber::wait() is not
// used: it counts itself into the topic's wait block, a write, which a
// read-only mapping turns into SIGSEGV. poll()'s idle path (nothing ready)
// writes too, every 16384 empty polls: it re-anchors the bus clock when the
// anchor is over a second old. Polling only when something is ready keeps
// the tool off both paths.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include <shmbus/error.hpp>
#include <shmbus/schema.hpp>
#include <shmbus/subscriber.hpp>

#include "cli.hpp"

namespace inspect {

namespace {

// The codec's JSON with the blanks outside strings taken out, so that a
// line reads like the metadata around it ({"symbol":"AAPL",...}).
std::string compact(const std::string& json) {
  std::string out;
  out.reserve(json.size());
  bool in_string = false;
  bool escaped = false;
  for (const char c : json) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      out += c;
      continue;
    }
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') continue;
    if (c == '"') in_string = true;
    out += c;
  }
  return out;
}

class Printer {
 public:
  Printer(const shmbus::Topic& topic, bool hex) : topic_(topic.name()), hex_(hex) {
    if (!topic.type_name().empty()) codec_.emplace(topic.schema(), topic.type_name());
  }

  void message(const shmbus::Message& m) {
    std::string line =
        "{\"topic\":" + Json(topic_).dump() + ",\"seq\":" + std::to_string(m.meta.seq);
    const std::int64_t ts = m.meta.ts_ns();
    line += ",\"ts\":" + std::to_string(ts) + ",\"time\":\"" + utc_iso(ts) + "\"";
    line += ",\"producer\":" + std::to_string(m.meta.producer);
    line += ",\"type\":" + Json(std::string(m.meta.type)).dump();
    if (m.meta.correlation != 0) line += ",\"correlation\":" + std::to_string(m.meta.correlation);
    if (codec_) {
      try {
        line += ",\"data\":" + compact(codec_->to_json(m.data));
      } catch (const shmbus::Error& e) {
        line += ",\"error\":" + Json(std::string(e.what())).dump() + ",\"base64\":\"" +
                base64_encode(m.data.data(), m.data.size()) + "\"";
      }
    } else {
      line += ",\"size\":" + std::to_string(m.data.size());
      line += hex_ ? ",\"hex\":\"" + hex_encode(m.data.data(), m.data.size()) + "\""
                   : ",\"base64\":\"" + base64_encode(m.data.data(), m.data.size()) + "\"";
    }
    line += "}\n";
    write(line);
  }

  void gap(const shmbus::Gap& g) {
    write("{\"gap\":{\"topic\":" + Json(topic_).dump() + ",\"first\":" + std::to_string(g.first) +
          ",\"count\":" + std::to_string(g.count) + "}}\n");
  }

  static void flush() { std::fflush(stdout); }

 private:
  static void write(const std::string& s) { std::fwrite(s.data(), 1, s.size(), stdout); }

  std::string topic_;
  bool hex_;
  std::optional<shmbus::JsonCodec> codec_;
};

}  // namespace

int run_tail(const TailOptions& o) {
  const shmbus::Bus bus = shmbus::Bus::open(o.bus, shmbus::Access::ReadOnly);
  const shmbus::Topic topic = bus.open_topic(o.topic);
  Printer printer(topic, o.hex);

  // The last `count` messages: from head - count + 1 (clamped by the
  // subscriber to what the ring still holds) up to the head seen now.
  const std::uint64_t head = topic.head_hint();
  const auto count = static_cast<std::uint64_t>(std::max<std::int64_t>(o.count, 0));
  shmbus::SubscriberOptions so;
  so.name = "bus-inspect";
  so.register_consumer = false;
  so.start = shmbus::Start::Sequence;
  so.sequence = count >= head ? 1 : head - count + 1;
  if (count == 0) so.sequence = head + 1;
  shmbus::Subscriber sub(topic, so);
  sub.on_gap([&](const shmbus::Gap& g) { printer.gap(g); });

  bool past_end = false;
  const auto handler = [&](const shmbus::Message& m) {
    if (!o.follow && m.meta.seq > head) {
      past_end = true;  // skipped to newer messages after a gap: not part of the tail
      return;
    }
    printer.message(m);
  };

  // The backlog. Every sequence <= head is committed (head is stored after
  // the commit) or already overwritten (a gap); the deadline only guards
  // against a ring that a foreign writer left inconsistent.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (sub.next_sequence() <= head && !past_end) {
    if (!sub.ready()) {
      if (std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    sub.poll(handler, 1);
  }
  if (head == 0 && !o.follow && ::isatty(STDERR_FILENO) != 0)
    std::fprintf(stderr, "bus-inspect: topic '%s' has no messages yet\n", o.topic.c_str());
  Printer::flush();
  if (!o.follow) return 0;

  // New messages as they come. Sleeps grow from 0.1 ms to 5 ms while the
  // topic is quiet, so an idle tail costs nothing noticeable.
  auto nap = std::chrono::microseconds(100);
  for (;;) {
    std::size_t n = 0;
    while (sub.ready()) {
      sub.poll(handler, 1);
      if (++n % 256 == 0) Printer::flush();
    }
    if (n != 0) {
      Printer::flush();
      nap = std::chrono::microseconds(100);
      continue;
    }
    std::this_thread::sleep_for(nap);
    nap = std::min<std::chrono::microseconds>(nap * 2, std::chrono::microseconds(5000));
  }
}

}  // namespace inspect
