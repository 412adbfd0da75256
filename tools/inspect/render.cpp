// bus-inspect — the person's report of a live bus frame (list BUS, watch).
#include <algorithm>

#include "cli.hpp"

namespace inspect {

namespace {

std::string type_text(const std::string& type) {
  return type.empty() ? "(raw bytes)" : type;
}

std::string state_text(bool alive) {
  return alive ? "alive" : "DEAD";
}

// Worst first: a dead process, then what it is doing.
std::string consumer_state(const shmbus::ConsumerSnapshot& c) {
  if (!c.alive) return "DEAD";
  if (c.joining) return "joining";
  if (c.evicted) return "evicted";
  if (c.stalled) return "stalled";
  return "alive";
}

std::string duration_text(std::uint64_t ns) {
  if (ns % 1'000'000'000 == 0) return std::to_string(ns / 1'000'000'000) + " s";
  if (ns % 1'000'000 == 0) return std::to_string(ns / 1'000'000) + " ms";
  return std::to_string(ns) + " ns";
}

}  // namespace

std::vector<std::string> render_frame(const Frame& f, const Rates& r, bool watch) {
  std::vector<std::string> out;
  if (!f.exists) {
    out.push_back("bus " + f.bus + ": not found (removed, or not created yet)");
    return out;
  }
  std::size_t producers = 0;
  std::size_t consumers = 0;
  for (const TopicRow& t : f.topics) {
    if (!t.snap) continue;
    producers += t.snap->producer.alive ? 1 : 0;
    for (const auto& c : t.snap->consumers) consumers += c.alive ? 1 : 0;
  }
  out.push_back("bus " + f.bus + ": " + std::to_string(f.topics.size()) + " topic" +
                (f.topics.size() == 1 ? "" : "s") + ", " + std::to_string(producers) +
                " live producer" + (producers == 1 ? "" : "s") + ", " + std::to_string(consumers) +
                " live consumer" + (consumers == 1 ? "" : "s") + "; created " +
                local_time(f.created_ns) + " (" + ago(f.created_ns, f.wall_ns) + "); clock " +
                (f.tsc_clock ? "tsc" : "wall"));
  out.emplace_back();
  if (f.topics.empty()) {
    out.push_back("no topics yet");
    return out;
  }

  Table topics({"TOPIC", "TYPE", "POLICY", ">SLOT", ">DEPTH", "PRODUCER", ">PID", "STATE",
                ">MESSAGES", ">RATE/S", "LAST PUBLISH"});
  std::vector<std::string> problems;
  for (const TopicRow& t : f.topics) {
    if (!t.snap) {
      problems.push_back("  " + t.name + ": " + t.problem);
      continue;
    }
    const shmbus::TopicSnapshot& s = *t.snap;
    const auto rate = r.topic.find(t.name);
    const std::string rate_cell = !r.valid                ? "n/a"
                                  : rate == r.topic.end() ? "-"
                                                          : rate_text(rate->second);
    const bool has = s.producer.attached;
    topics.add({t.name, type_text(s.type_name), std::string(shmbus::to_string(s.policy)),
                std::to_string(s.slot_size), std::to_string(s.slot_count),
                has ? s.producer.name : "(none)", has ? std::to_string(s.producer.pid) : "-",
                has ? state_text(s.producer.alive) : "-", std::to_string(s.head), rate_cell,
                ago(s.last_publish_ns, f.wall_ns)});
  }
  for (std::string& l : topics.lines()) out.push_back(std::move(l));
  // Topics with stall eviction (or evictions on record): one line each.
  for (const TopicRow& t : f.topics) {
    if (!t.snap || (t.snap->evict_after_ns == 0 && t.snap->evictions == 0)) continue;
    out.push_back("  " + t.name + ": evicts consumers stalled " +
                  duration_text(t.snap->evict_after_ns) + "; " + std::to_string(t.snap->evictions) +
                  " evicted so far");
  }
  if (!problems.empty()) {
    out.emplace_back();
    out.push_back("topics that cannot be read:");
    for (std::string& p : problems) out.push_back(std::move(p));
  }

  out.emplace_back();
  std::vector<std::string> headers = {"CONSUMER", ">PID", "TOPIC", "STATE", ">LAG", ">DROPS"};
  if (watch) headers.emplace_back(">NEW DROPS");
  for (const char* h : {">DELIVERED", ">RATE/S", "HEARTBEAT"}) headers.emplace_back(h);
  Table cons(std::move(headers));
  for (const TopicRow& t : f.topics) {
    if (!t.snap) continue;
    for (const auto& c : t.snap->consumers) {
      const std::string key = consumer_key(t.name, c);
      const auto rate = r.consumer.find(key);
      std::vector<std::string> row = {c.name,
                                      std::to_string(c.pid),
                                      t.name,
                                      consumer_state(c),
                                      std::to_string(c.lag),
                                      std::to_string(c.drops)};
      if (watch) {
        const auto d = r.new_drops.find(key);
        row.push_back(d == r.new_drops.end() ? "-" : std::to_string(d->second));
      }
      row.push_back(std::to_string(c.delivered));
      row.push_back(!r.valid ? "n/a" : rate == r.consumer.end() ? "-" : rate_text(rate->second));
      row.push_back(ago(c.heartbeat_ns, f.wall_ns));
      cons.add(std::move(row));
    }
  }
  if (cons.empty()) {
    out.push_back("no consumers");
  } else {
    for (std::string& l : cons.lines()) out.push_back(std::move(l));
  }
  return out;
}

}  // namespace inspect
