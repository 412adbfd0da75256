// A live bus seen read-only (admin/bus_view.hpp).
#include "shmbus/admin/bus_view.hpp"

#include <sys/stat.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "shmbus/core/internals.hpp"
#include "shmbus/detail/segments.hpp"
#include "shmbus/error.hpp"

namespace shmbus {

using Json = nlohmann::ordered_json;

namespace {

// The inode of a segment, 0 if it is absent.
ino_t segment_inode(const std::string& segment) {
  struct stat st {};
  const std::string path = detail::shm_path(segment);
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

}  // namespace

// ------------------------------------------------------------------ BusView

BusView::BusView(std::string bus) : name_(std::move(bus)) {
  open_bus();
}

void BusView::open_bus() {
  topics_.clear();
  bus_.reset();
  const std::string seg = detail::directory_segment_name(name_);
  const ino_t before = segment_inode(seg);
  bus_.emplace(Bus::open(name_, Access::ReadOnly));
  // Opened by name: if the name moved to another file meanwhile, the next
  // sample sees a different inode and opens it again.
  bus_inode_ = before;
}

Frame BusView::sample(bool reopen) {
  Frame f;
  f.bus = name_;
  const std::string dir_seg = detail::directory_segment_name(name_);
  const ino_t now_inode = segment_inode(dir_seg);
  if (!bus_ || now_inode == 0 || now_inode != bus_inode_) {
    if (!reopen && now_inode == 0) {
      f.wall_ns = Clock::wall_ns();
      f.at = std::chrono::steady_clock::now();
      return f;  // removed under us
    }
    try {
      open_bus();
    } catch (const Error& e) {
      if (e.code() != Errc::NoSuchBus) throw;
      bus_.reset();
    }
  }
  f.wall_ns = Clock::wall_ns();
  f.at = std::chrono::steady_clock::now();
  if (!bus_) return f;
  f.exists = true;
  const auto& dir = *detail::Internals::state(*bus_);
  f.created_ns = dir.created_ns;
  f.capacity = dir.capacity;
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
    const std::string seg = detail::topic_segment_name(name_, name);
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
      } catch (const Error& e) {
        if (e.code() == Errc::NoSuchTopic) continue;
        row.problem = e.what();
        f.topics.push_back(std::move(row));
        continue;
      }
    }
    row.snap = snapshot(it->second.topic);
    f.topics.push_back(std::move(row));
  }
  return f;
}

// ------------------------------------------------------------------ rates

std::string consumer_key(const std::string& topic, const ConsumerSnapshot& c) {
  return topic + "\n" + std::to_string(c.index) + "\n" + std::to_string(c.pid);
}

Rates rates_between(const Frame& before, const Frame& after) {
  Rates r;
  const double dt = std::chrono::duration<double>(after.at - before.at).count();
  if (dt <= 0.0 || !before.exists || !after.exists) return r;
  r.valid = true;
  std::map<std::string, const TopicSnapshot*> old;
  for (const TopicRow& t : before.topics)
    if (t.snap) old[t.name] = &*t.snap;
  for (const TopicRow& t : after.topics) {
    if (!t.snap) continue;
    const auto it = old.find(t.name);
    if (it == old.end()) continue;
    const TopicSnapshot& a = *it->second;
    const TopicSnapshot& b = *t.snap;
    // A topic created afresh under the same name starts again from 0.
    if (b.created_ns != a.created_ns || b.head < a.head) continue;
    r.topic[t.name] = static_cast<double>(b.head - a.head) / dt;
    std::map<std::string, const ConsumerSnapshot*> oc;
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

std::string frame_json(const Frame& f, const Rates& r) {
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
    const TopicSnapshot& s = *t.snap;
    jt["type"] = s.type_name;
    jt["policy"] = std::string(to_string(s.policy));
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
    jt["evict_after_ns"] = s.evict_after_ns;
    jt["evictions"] = s.evictions;
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
      jc["evicted"] = c.evicted;
      jc["stalled"] = c.stalled;
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
  return j.dump();
}

}  // namespace shmbus
