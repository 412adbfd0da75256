// bus-inspect — a live bus seen read-only, and its report (list BUS, watch).
//
// Everything here maps segments with Access::ReadOnly and reads counters:
// a write would fault, so "reading does not disturb the hot path" is enforced
// by the MMU, not only promised. Rates are differences of two snapshots of
// monotonic counters (head for topics, delivered for consumers) divided by the
// time between them; a consumer's delivered count is published in cursor
// batches, so its rate is exact only over intervals long against a batch.
#include <sys/stat.h>

#include <algorithm>

#include <shmbus/detail/segment.hpp>
#include <shmbus/error.hpp>

#include "cli.hpp"

namespace inspect {

ino_t segment_inode(const std::string& segment) {
  struct stat st {};
  const std::string path = std::string(shmbus::detail::kShmDir) + "/" + segment;
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// ------------------------------------------------------------------ BusView

BusView::BusView(std::string bus) : name_(std::move(bus)) {
  open_bus();
}

void BusView::open_bus() {
  topics_.clear();
  bus_.reset();
  const std::string seg = shmbus::Bus::directory_segment_name(name_);
  const ino_t before = segment_inode(seg);
  bus_.emplace(shmbus::Bus::open(name_, shmbus::Access::ReadOnly));
  // Opened by name: if the name moved to another file meanwhile, the next
  // sample sees a different inode and opens it again.
  bus_inode_ = before;
}

Frame BusView::sample(bool reopen) {
  Frame f;
  f.bus = name_;
  const std::string dir_seg = shmbus::Bus::directory_segment_name(name_);
  const ino_t now_inode = segment_inode(dir_seg);
  if (!bus_ || now_inode == 0 || now_inode != bus_inode_) {
    if (!reopen && now_inode == 0) {
      f.wall_ns = shmbus::Clock::wall_ns();
      f.at = std::chrono::steady_clock::now();
      return f;  // removed under us
    }
    try {
      open_bus();
    } catch (const shmbus::Error& e) {
      if (e.code() != shmbus::Errc::NoSuchBus) throw;
      bus_.reset();
    }
  }
  f.wall_ns = shmbus::Clock::wall_ns();
  f.at = std::chrono::steady_clock::now();
  if (!bus_) return f;
  f.exists = true;
  const auto& dir = *bus_->state();
  f.created_ns = dir.header->desc.created_ns;
  f.capacity = dir.header->desc.capacity;
  f.tsc_clock = bus_->clock().uses_tsc();

  const std::vector<std::string> names = bus_->topic_names();
  for (auto it = topics_.begin(); it != topics_.end();) {
    if (std::find(names.begin(), names.end(), it->first) == names.end()) {
      it = topics_.erase(it);
    } else {
      ++it;
    }
  }
  for (const std::string& name : names) {
    TopicRow row;
    row.name = name;
    const std::string seg = shmbus::Bus::topic_segment_name(name_, name);
    const ino_t inode = segment_inode(seg);
    auto it = topics_.find(name);
    if (it != topics_.end() && it->second.inode != inode) {
      topics_.erase(it);
      it = topics_.end();
    }
    if (inode == 0) continue;  // listed, but its segment is gone (gc or rm)
    if (it == topics_.end()) {
      try {
        it = topics_.emplace(name, Cached{bus_->open_topic(name), inode}).first;
      } catch (const shmbus::Error& e) {
        if (e.code() == shmbus::Errc::NoSuchTopic) continue;
        row.problem = e.what();
        f.topics.push_back(std::move(row));
        continue;
      }
    }
    row.snap = shmbus::snapshot(it->second.topic);
    f.topics.push_back(std::move(row));
  }
  return f;
}

// ------------------------------------------------------------------ rates

std::string consumer_key(const std::string& topic, const shmbus::ConsumerSnapshot& c) {
  return topic + "\n" + std::to_string(c.index) + "\n" + std::to_string(c.pid);
}

Rates rates_between(const Frame& before, const Frame& after) {
  Rates r;
  const double dt = std::chrono::duration<double>(after.at - before.at).count();
  if (dt <= 0.0 || !before.exists || !after.exists) return r;
  r.valid = true;
  std::map<std::string, const shmbus::TopicSnapshot*> old;
  for (const TopicRow& t : before.topics)
    if (t.snap) old[t.name] = &*t.snap;
  for (const TopicRow& t : after.topics) {
    if (!t.snap) continue;
    const auto it = old.find(t.name);
    if (it == old.end()) continue;
    const shmbus::TopicSnapshot& a = *it->second;
    const shmbus::TopicSnapshot& b = *t.snap;
    // A topic created afresh under the same name starts again from 0.
    if (b.created_ns != a.created_ns || b.head < a.head) continue;
    r.topic[t.name] = static_cast<double>(b.head - a.head) / dt;
    std::map<std::string, const shmbus::ConsumerSnapshot*> oc;
    for (const auto& c : a.consumers) oc[consumer_key(t.name, c)] = &c;
    for (const auto& c : b.consumers) {
      const std::string key = consumer_key(t.name, c);
      const auto o = oc.find(key);
      if (o == oc.end() || c.delivered < o->second->delivered) continue;
      r.consumer[key] = static_cast<double>(c.delivered - o->second->delivered) / dt;
      r.new_drops[key] = c.drops >= o->second->drops ? c.drops - o->second->drops : 0;
    }
  }
  return r;
}

// ------------------------------------------------------------------ report

namespace {

std::string type_text(const std::string& type) {
  return type.empty() ? "(raw bytes)" : type;
}

std::string state_text(bool alive) {
  return alive ? "alive" : "DEAD";
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
      std::vector<std::string> row = {
          c.name,
          std::to_string(c.pid),
          t.name,
          c.joining ? (c.alive ? "joining" : "DEAD") : state_text(c.alive),
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

Json frame_json(const Frame& f, const Rates& r) {
  Json j;
  j["bus"] = f.bus;
  j["created_ns"] = f.created_ns;
  j["capacity"] = f.capacity;
  j["clock"] = f.tsc_clock ? "tsc" : "wall";
  j["sampled_ns"] = f.wall_ns;
  Json topics = Json::array();
  for (const TopicRow& t : f.topics) {
    Json jt;
    jt["name"] = t.name;
    if (!t.snap) {
      jt["error"] = t.problem;
      topics.push_back(std::move(jt));
      continue;
    }
    const shmbus::TopicSnapshot& s = *t.snap;
    jt["type"] = s.type_name;
    jt["policy"] = std::string(shmbus::to_string(s.policy));
    jt["slot_size"] = s.slot_size;
    jt["slot_count"] = s.slot_count;
    jt["max_payload"] = s.max_payload;
    jt["max_consumers"] = s.max_consumers;
    jt["segment_bytes"] = s.segment_bytes;
    jt["created_ns"] = s.created_ns;
    jt["messages"] = s.head;
    jt["last_publish_ns"] = s.last_publish_ns;
    const auto rate = r.topic.find(t.name);
    jt["rate"] = rate == r.topic.end() ? Json(nullptr) : Json(rate->second);
    jt["too_large"] = s.too_large;
    jt["would_block"] = s.would_block;
    jt["reaped_consumers"] = s.reaped_consumers;
    if (s.producer.attached) {
      Json p;
      p["name"] = s.producer.name;
      p["pid"] = s.producer.pid;
      p["alive"] = s.producer.alive;
      p["attached_ns"] = s.producer.attached_ns;
      p["takeovers"] = s.producer.takeovers;
      jt["producer"] = std::move(p);
    } else {
      jt["producer"] = nullptr;
    }
    Json cs = Json::array();
    for (const auto& c : s.consumers) {
      Json jc;
      jc["name"] = c.name;
      jc["pid"] = c.pid;
      jc["alive"] = c.alive;
      jc["joining"] = c.joining;
      jc["lag"] = c.lag;
      jc["drops"] = c.drops;
      jc["delivered"] = c.delivered;
      jc["cursor"] = c.cursor;
      jc["joined_seq"] = c.joined_seq;
      jc["heartbeat_ns"] = c.heartbeat_ns;
      const auto cr = r.consumer.find(consumer_key(t.name, c));
      jc["rate"] = cr == r.consumer.end() ? Json(nullptr) : Json(cr->second);
      jc["index"] = c.index;
      cs.push_back(std::move(jc));
    }
    jt["consumers"] = std::move(cs);
    topics.push_back(std::move(jt));
  }
  j["topics"] = std::move(topics);
  return j;
}

}  // namespace inspect
