// shmbus-typed-path: one process, one topic, the typed path step by step, for
// instruction counts that do not depend on the machine's load:
//
//   valgrind --tool=callgrind --callgrind-out-file=cg.out
//       build/bench/shmbus-typed-path --messages 10000 --policy lossy   (one line)
//   callgrind_annotate --inclusive=yes cg.out | grep 'op_'
//
// Each step is its own non-inlined function (op_build, op_publish, ...), so
// callgrind's inclusive count of a step divided by --messages is its cost per
// message. The same steps as bus-bench's Quote round trip, one hop of it:
// build the Quote (FlatBufferBuilder), publish it, receive it and read every
// field; and the 32 B raw hop (claim, fill, commit; receive, check) beside it.
// --template: the Quote from a MessageTemplate (op_template, its scalars set
// in op_template_set); --writer: from a MessageWriter, every field and both
// strings set per message (op_writer, the build alone op_writer_set).
// Also printed: the cache lines one message occupies in its slot (from the
// layout: the slot header, then the message).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <CLI/CLI.hpp>
#include <shmbus/shmbus.hpp>

#include "harness/util.hpp"

namespace {

using busbench::QuotePayload;
using busbench::QuoteTemplatePayload;
using busbench::QuoteWriterPayload;
using busbench::RawPayload;

[[gnu::noinline]] void op_build(QuotePayload& q, std::uint64_t i) {
  q.prepare(i, false);
}

[[gnu::noinline]] bool op_publish(shmbus::Publisher& pub, const QuotePayload& q) {
  return pub.try_publish(q.builder()) == shmbus::PublishResult::Ok;
}

// The Quote from a template (shmbus::MessageTemplate, as QuoteTemplatePayload
// uses it): set the scalars in the template (mutate_), publish it (one copy).
[[gnu::noinline]] void op_template_set(QuoteTemplatePayload& t, std::uint64_t i) {
  t.prepare(i, false);
}
[[gnu::noinline]] bool op_template(shmbus::Publisher& pub, QuoteTemplatePayload& t,
                                   std::uint64_t i) {
  op_template_set(t, i);
  return t.message_template().try_publish(pub) == shmbus::PublishResult::Ok;
}

// The Quote from a shmbus::MessageWriter (as QuoteWriterPayload uses it):
// set every field, the two strings included (op_writer_set: the build), then
// publish it (one copy).
[[gnu::noinline]] void op_writer_set(QuoteWriterPayload& w, std::uint64_t i) {
  w.prepare(i, false);
}
[[gnu::noinline]] bool op_writer(shmbus::Publisher& pub, QuoteWriterPayload& w, std::uint64_t i) {
  op_writer_set(w, i);
  return w.strings_set() && w.writer().try_publish(pub) == shmbus::PublishResult::Ok;
}

[[gnu::noinline]] bool op_receive(shmbus::Subscriber& sub, const QuotePayload& q, std::uint64_t i) {
  bool ok = false;
  const std::size_t n =
      sub.poll([&](const shmbus::Message& m) { ok = q.check(m.data, i, false); }, 1);
  return n == 1 && ok;
}

[[gnu::noinline]] bool op_raw_publish(shmbus::Publisher& pub, RawPayload& p, std::uint64_t i) {
  p.prepare(i, false);
  shmbus::Claim c = pub.try_claim(p.size());
  if (!c) return false;
  p.write(c.data());
  c.commit(p.size());
  return true;
}

[[gnu::noinline]] bool op_raw_receive(shmbus::Subscriber& sub, const RawPayload& p,
                                      std::uint64_t i) {
  bool ok = false;
  const std::size_t n =
      sub.poll([&](const shmbus::Message& m) { ok = p.check(m.data, i, false); }, 1);
  return n == 1 && ok;
}

std::size_t lines_of(std::size_t bytes) {
  return (bytes + 63) / 64;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t messages = 10'000;
  std::string policy = "lossy";
  bool in_place = false;
  bool writer = false;
  std::size_t raw_bytes = 32;
  CLI::App app{"shmbus-typed-path: the typed path step by step, for callgrind"};
  app.add_option("--messages", messages, "messages per step")->capture_default_str();
  app.add_option("--policy", policy, "lossy or reliable")->capture_default_str();
  app.add_flag("--template,--in-place", in_place,
               "the Quote from a shmbus::MessageTemplate (set the scalars in it, try_publish: "
               "one copy) instead of FlatBufferBuilder -> try_publish");
  app.add_flag("--writer", writer,
               "the Quote from a shmbus::MessageWriter (set every field, strings included, "
               "try_publish: one copy) instead of FlatBufferBuilder -> try_publish")
      ->excludes("--template");
  app.add_option("--raw-bytes", raw_bytes, "size of the raw message steps (a multiple of 8)")
      ->check(CLI::Range(8, 4096))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (policy != "lossy" && policy != "reliable") {
    std::fprintf(stderr, "shmbus-typed-path: --policy takes lossy or reliable\n");
    return 2;
  }

  const std::string bus_name = "typed-path-" + std::to_string(::getpid());
  int status = 0;
  {
    shmbus::Bus bus = shmbus::Bus::open_or_create(bus_name);
    QuotePayload q;
    QuoteTemplatePayload tpl;
    QuoteWriterPayload wr;
    q.prepare(~std::uint64_t{0} >> 1, true);
    shmbus::TopicConfig c;
    c.policy = policy == "reliable" ? shmbus::Policy::Reliable : shmbus::Policy::Lossy;
    tpl.prepare(0, true);
    wr.prepare(0, true);
    c.slot_size = static_cast<std::uint32_t>(
        (std::max({q.size(), tpl.size(), wr.size()}) + shmbus::detail::kSlotHeaderBytes + 63) / 64 *
        64);
    c.slot_count = 1024;
    c.max_consumers = 4;
    shmbus::TopicConfig typed = c;
    typed.type = shmbus::type_of<shmbus::md::Quote>();
    shmbus::Publisher pub(bus.topic("quote", typed));
    shmbus::Subscriber sub(bus.topic("quote", typed));
    shmbus::TopicConfig raw = c;
    raw.slot_size =
        static_cast<std::uint32_t>((raw_bytes + shmbus::detail::kSlotHeaderBytes + 63) / 64 * 64);
    shmbus::Publisher rpub(bus.topic("raw", raw));
    shmbus::Subscriber rsub(bus.topic("raw", raw));

    std::uint64_t bad = 0;
    RawPayload r(raw_bytes);
    for (std::uint64_t i = 1; i <= messages; ++i) {
      if (writer) {
        bad += op_writer(pub, wr, i) ? 0 : 1;
      } else if (in_place) {
        bad += op_template(pub, tpl, i) ? 0 : 1;
      } else {
        op_build(q, i);
        bad += op_publish(pub, q) ? 0 : 1;
      }
      bad += op_receive(sub, q, i) ? 0 : 1;
      bad += op_raw_publish(rpub, r, i) ? 0 : 1;
      bad += op_raw_receive(rsub, r, i) ? 0 : 1;
    }
    const std::size_t hdr = shmbus::detail::kSlotHeaderBytes;
    std::printf(
        "Quote: %zu B built (largest), slot %u B; slot header %zu B + message = %zu B"
        " -> %zu cache lines per message (message alone: %zu)\n",
        q.size(), c.slot_size, hdr, hdr + q.size(), lines_of(hdr + q.size()), lines_of(q.size()));
    std::printf("Quote from the template: %zu B, from the writer: %zu B\n", tpl.size(), wr.size());
    std::printf("%zu B raw: slot header %zu B + %zu B = %zu B -> %zu cache line(s)\n", raw_bytes,
                hdr, raw_bytes, hdr + raw_bytes, lines_of(hdr + raw_bytes));
    std::printf("%llu messages per step, %s, %s, %llu failed\n",
                static_cast<unsigned long long>(messages), policy.c_str(),
                writer     ? "Quote from a MessageWriter"
                : in_place ? "Quote from a MessageTemplate"
                           : "Quote built, then copied in",
                static_cast<unsigned long long>(bad));
    status = bad == 0 ? 0 : 1;
  }
  shmbus::Bus::remove(bus_name);
  return status;
}
