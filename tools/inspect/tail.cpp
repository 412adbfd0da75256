// bus-inspect tail BUS TOPIC [-n N] [--follow]: messages as JSON lines.
//
// The reader is an observer (SubscriberOptions::register_consumer = false)
// on a read-only mapping: it takes no consumer entry, gates no reliable
// producer, and may itself be lapped, which it prints as a gap line:
//
//   {"topic":"md.quotes","seq":41,"ts":1732329601123456789,"time":"2024-11-23T02:40:01.123456789Z",
//    "producer":4242,"id":"demo/md.quotes/41","bus":"demo","type":"shmbus.md.Quote",
//    "data":{"symbol":"AAPL",...}}
//   {"gap":{"topic":"md.quotes","first":42,"count":977}}
//
// (the envelope of admin/envelope.hpp). Raw topics print the payload as
// "base64" (or "hex" with --hex) instead of "data"; a message that fails the
// FlatBuffers verifier prints "error" and its bytes.
//
// Waiting: an observer's wait() polls with short sleeps and writes nothing
// to shared memory (core/subscriber.hpp), and so does its poll(), so the tail
// runs on a read-only mapping and never disturbs the producer.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>

#include <shmbus/admin/envelope.hpp>
#include <shmbus/core/subscriber.hpp>
#include <shmbus/detail/segments.hpp>
#include <shmbus/error.hpp>

#include "cli.hpp"

namespace inspect {

namespace {

// Lines on stdout: the library's JSON envelope (admin/envelope.hpp), one
// implementation for this tool, the bridge and the recorder.
class Printer {
 public:
  Printer(const shmbus::Topic& topic, bool hex)
      : env_(topic, hex ? shmbus::RawEncoding::Hex : shmbus::RawEncoding::Base64) {}

  void message(const shmbus::Message& m) {
    line_.clear();  // one buffer for every line: no allocation per message once it has grown
    env_.append_message(m, line_);
    line_ += '\n';
    write(line_);
  }
  void gap(const shmbus::Gap& g) { write(env_.gap(g) + "\n"); }
  static void flush() { std::fflush(stdout); }

 private:
  static void write(const std::string& s) { std::fwrite(s.data(), 1, s.size(), stdout); }
  shmbus::EnvelopeWriter env_;
  std::string line_;
};

}  // namespace

int run_tail(const TailOptions& o) {
  const shmbus::Bus bus = shmbus::Bus::open(o.bus, shmbus::Access::ReadOnly);
  // The file we follow, taken before it is opened (see --follow below).
  const std::string path =
      shmbus::detail::shm_path(shmbus::detail::topic_segment_name(o.bus, o.topic));
  const auto inode_of = [&]() -> ino_t {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
  };
  ino_t followed = inode_of();
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

  // New messages as they come. While idle, check about once a second that
  // the name still leads to the segment we follow: `bus-inspect gc` may
  // have removed the topic and a producer re-created it, and following the
  // old, unlinked ring would silently show nothing. Say so, and follow the
  // new one from its oldest message.
  std::optional<shmbus::Topic> cur_topic;
  std::unique_ptr<Printer> cur_printer;
  std::unique_ptr<shmbus::Subscriber> cur_sub;
  shmbus::Subscriber* live = &sub;
  bool said_gone = false;
  auto next_check = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  for (;;) {
    if (!live->wait(std::chrono::milliseconds(100))) {
      if (std::chrono::steady_clock::now() < next_check) continue;
      next_check = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      const ino_t now = inode_of();
      if (now == followed) continue;
      if (now == 0) {
        if (!said_gone)
          std::fprintf(stderr,
                       "bus-inspect: topic '%s' was removed; waiting for it to be created again\n",
                       o.topic.c_str());
        said_gone = true;
        continue;
      }
      try {
        cur_topic.emplace(bus.open_topic(o.topic));
      } catch (const shmbus::Error&) {
        continue;  // half re-created: try again in a second
      }
      std::fprintf(
          stderr,
          "bus-inspect: topic '%s' was re-created; following the new one from its oldest message\n",
          o.topic.c_str());
      said_gone = false;
      followed = now;
      cur_printer = std::make_unique<Printer>(*cur_topic, o.hex);
      shmbus::SubscriberOptions again = so;
      again.start = shmbus::Start::Oldest;
      cur_sub = std::make_unique<shmbus::Subscriber>(*cur_topic, again);
      Printer* pr = cur_printer.get();
      cur_sub->on_gap([pr](const shmbus::Gap& g) { pr->gap(g); });
      live = cur_sub.get();
      continue;
    }
    std::size_t n = 0;
    while (live->ready()) {
      if (cur_printer) {
        live->poll([&](const shmbus::Message& m) { cur_printer->message(m); }, 1);
      } else {
        live->poll(handler, 1);
      }
      if (++n % 256 == 0) Printer::flush();
    }
    Printer::flush();
  }
}

}  // namespace inspect
