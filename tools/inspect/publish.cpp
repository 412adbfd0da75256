// bus-inspect publish BUS TOPIC [--json TEXT | --raw-hex HEX | --raw-base64 B64]:
// messages onto a topic, from the command line or one per line of stdin.
//
// All or nothing before anything is sent: every input is converted and
// size-checked first, so invalid JSON on line 7 publishes none of lines 1-6.
// Then the tool takes the topic's producer role (refused, naming the owner,
// if a live producer holds it; a dead one is taken over), publishes, and
// gives the role back.
//
// Typed topics take JSON (converted by the topic's own schema, stored in its
// segment). Raw topics take bytes: --raw-hex / --raw-base64, or base64 lines
// on stdin (the "base64" field that `tail` prints for them).
#include <unistd.h>

#include <iostream>
#include <string>

#include <shmbus/core/publisher.hpp>
#include <shmbus/error.hpp>
#include <shmbus/schema/json_codec.hpp>

#include "cli.hpp"

namespace inspect {

namespace {

struct Input {
  std::string where;  // "" for the command line, "stdin line N" otherwise
  std::string text;
};

std::vector<Input> read_inputs(const PublishOptions& o) {
  std::vector<Input> in;
  if (o.json) {
    in.push_back({"", *o.json});
  } else if (o.raw_hex) {
    in.push_back({"", *o.raw_hex});
  } else if (o.raw_base64) {
    in.push_back({"", *o.raw_base64});
  } else {
    if (::isatty(STDIN_FILENO) != 0)
      std::cerr
          << "bus-inspect: reading messages from the terminal, one per line; end with Ctrl-D\n";
    std::string line;
    for (std::size_t n = 1; std::getline(std::cin, line); ++n) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      in.push_back({"stdin line " + std::to_string(n), std::move(line)});
    }
    if (in.empty())
      throw Failure(
          "no message to publish: stdin was empty (give one with --json, or pipe lines in)");
  }
  return in;
}

std::string at(const Input& i) {
  return i.where.empty() ? std::string() : i.where + ": ";
}

std::vector<std::vector<std::byte>> convert(const PublishOptions& o, const shmbus::Topic& topic,
                                            const std::vector<Input>& inputs) {
  const std::string where = "topic '" + topic.name() + "' on bus '" + topic.bus() + "'";
  const bool raw = topic.type_name().empty();
  if (raw && o.json) {
    throw Failure(
        where +
        " is raw (untyped): it has no schema to convert JSON with; publish its bytes with "
        "--raw-hex or --raw-base64 (or base64 lines on stdin)");
  }
  if (!raw && (o.raw_hex || o.raw_base64)) {
    throw Failure(where + " carries " + topic.type_name() +
                  ": publish it as JSON (--json or lines on stdin), not raw bytes");
  }
  std::optional<shmbus::JsonCodec> codec;
  if (!raw) codec.emplace(topic.schema(), topic.type_name());
  std::vector<std::vector<std::byte>> out;
  for (const Input& i : inputs) {
    std::vector<std::byte> bytes;
    if (codec) {
      try {
        bytes = codec->from_json(i.text);
      } catch (const shmbus::Error& e) {
        throw shmbus::Error(e.code(), at(i) + e.what() + " Nothing was published.");
      }
    } else {
      const bool hex = o.raw_hex.has_value();
      auto decoded = hex ? hex_decode(i.text) : base64_decode(i.text);
      if (!decoded) {
        throw Failure(at(i) + (hex ? "not hex (pairs of the digits 0-9a-f)" : "not base64") +
                      "; nothing was published");
      }
      bytes = std::move(*decoded);
    }
    if (bytes.size() > topic.max_payload()) {
      throw Failure(at(i) + "the message is " + std::to_string(bytes.size()) + " bytes; " + where +
                    " carries at most " + std::to_string(topic.max_payload()) +
                    " (its slot size minus the slot header); nothing was published");
    }
    out.push_back(std::move(bytes));
  }
  return out;
}

}  // namespace

int run_publish(const PublishOptions& o) {
  shmbus::Bus bus = shmbus::Bus::open(o.bus, shmbus::Access::ReadWrite);
  const shmbus::Topic topic = bus.open_topic(o.topic);
  // The input first: a mistake in it is reported as such whoever else runs.
  const std::vector<Input> inputs = read_inputs(o);
  const std::vector<std::vector<std::byte>> messages = convert(o, topic, inputs);
  // Then refuse if a live producer holds the topic (the Publisher below
  // refuses too, for one that attaches meanwhile).
  const shmbus::TopicSnapshot before = shmbus::snapshot(topic);
  if (before.producer.attached && before.producer.alive) {
    throw shmbus::Error(
        shmbus::Errc::ProducerExists,
        "topic '" + o.topic + "' on bus '" + o.bus + "' has a live producer: '" +
            before.producer.name + "' (pid " + std::to_string(before.producer.pid) +
            "); a topic has one producer, so bus-inspect will not publish next to it — "
            "stop that program first, or publish on another topic");
  }

  shmbus::PublisherOptions po;
  po.name = o.name;
  shmbus::Publisher pub(topic, po);
  const std::uint64_t first = pub.next_sequence();
  const auto timeout = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(o.timeout_s));
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const shmbus::PublishResult r = pub.publish(messages[i], timeout);
    if (r == shmbus::PublishResult::Ok) continue;
    std::string why = std::string(shmbus::to_string(r));
    if (r == shmbus::PublishResult::Timeout) {
      why = "the ring stayed full for " + std::to_string(o.timeout_s) +
            " s: a live consumer is not reading (";
      const shmbus::TopicSnapshot s = shmbus::snapshot(topic);
      std::string slow;
      for (const auto& c : s.consumers) {
        if (c.lag >= s.slot_count)
          slow += (slow.empty() ? "" : ", ") + c.name + " pid " + std::to_string(c.pid);
      }
      why += slow.empty() ? std::string("see `bus-inspect list ") + o.bus + "`" : slow;
      why += ")";
    }
    throw Failure("publishing message " + std::to_string(i + 1) + " of " +
                  std::to_string(messages.size()) + " failed: " + why + "; " + std::to_string(i) +
                  " published before it");
  }
  const std::uint64_t last = pub.next_sequence() - 1;
  std::cout << "published " << messages.size() << " message" << (messages.size() == 1 ? "" : "s")
            << " to " << o.topic << " on bus " << o.bus << " (seq " << first;
  if (last != first) std::cout << ".." << last;
  std::cout << ")" << (pub.took_over() ? "; took over the producer role from a dead producer" : "")
            << "\n";
  return 0;
}

}  // namespace inspect
