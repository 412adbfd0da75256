// Garbage collection of dead buses, topics and temporaries (inspect.hpp).
//
// Design
//
//   The collector never trusts a segment it has not parsed: every segment is
//   mapped read-only and checked the way an opener checks it (magic, layout
//   version acquired first, geometry against the mapping's size, the names
//   in its header against its file name) before any word in it is read for
//   liveness. It does not go through Bus/Topic, so a topic whose directory is
//   missing or damaged (an orphan) is still judged on its own.
//
//   Per bus, topics first, then the directory:
//
//     topic segment:  judge -> (dry run: report) -> judge again -> free its
//                     directory entry (Active -> Free) -> shm_unlink
//     directory:      no topic segment left, creator gone, no live
//                     half-registration or clock recalibration -> shm_unlink
//
//   The entry is freed before the segment is unlinked: a process that
//   creates the topic afresh after the unlink then finds no entry for it and
//   lists it again. In the other order it could find the stale entry, take
//   the topic as listed, and lose its listing when gc freed the entry.
//
// Writes to shared memory: only the directory entries' state words, by CAS
// from the exact value judged dead, so a concurrent registrant wins.
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <new>
#include <set>

#include "shmbus/admin/gc.hpp"
#include "shmbus/core/bus.hpp"
#include "shmbus/detail/layout.hpp"
#include "shmbus/detail/process.hpp"
#include "shmbus/detail/segment.hpp"
#include "shmbus/detail/segments.hpp"
#include "shmbus/error.hpp"

namespace shmbus {

using namespace detail;

std::string_view to_string(GcKind kind) noexcept {
  switch (kind) {
    case GcKind::Directory:
      return "directory";
    case GcKind::Topic:
      return "topic";
    case GcKind::DirectoryEntry:
      return "directory-entry";
    case GcKind::Temporary:
      return "temporary";
    case GcKind::Unknown:
      return "unknown";
  }
  return "unknown";
}

namespace {

std::string pid_text(std::uint32_t pid) {
  return "pid " + std::to_string(pid);
}

std::uint64_t file_bytes(const std::string& segment) {
  struct stat st {};
  const std::string path = shm_path(segment);
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.st_size);
}

// A fixed char field of a header, up to its first NUL.
template <std::size_t N>
std::string_view field(const char (&chars)[N]) {
  return {chars, ::strnlen(chars, N)};
}

// "" if the identity's process runs, else nothing; otherwise who it is.
std::string live_owner(std::uint64_t claim_word, std::string_view role, const std::string& name) {
  if (claim_word == 0 || is_dead(claim_owner(claim_word))) return {};
  std::string who = std::string(role);
  if (!name.empty()) who += " " + name;
  return who + " (" + pid_text(identity_pid(claim_owner(claim_word))) + ") is running";
}

// ------------------------------------------------------------------ topic segments

struct TopicVerdict {
  bool gone = false;    // vanished before we could look
  std::string problem;  // why it cannot be parsed ("" if it can)
  std::string live;     // the live participant ("" if none)
  std::string dead;     // who was there, all gone: "producer feed (pid 7) exited, no consumers"
};

std::string exited(std::uint64_t claim_word, const std::string& name) {
  return (name.empty() ? std::string() : name + " ") + "(" +
         pid_text(identity_pid(claim_owner(claim_word))) + ")";
}

TopicVerdict judge_topic(const std::string& segment, std::string_view bus, std::string_view topic) {
  TopicVerdict v;
  std::optional<Segment> seg;
  try {
    seg = Segment::open(segment, Access::ReadOnly);
  } catch (const Error& e) {
    v.problem = e.what();
    return v;
  }
  if (!seg) {
    v.gone = true;
    return v;
  }
  const Checked<TopicFacts> checked = check_topic_segment(seg->data(), seg->size(), bus, topic);
  if (!checked) {
    v.problem = checked.defect.reason;
    return v;
  }
  const TopicFacts& d = *checked.facts;
  const auto* h = std::launder(reinterpret_cast<const TopicHeader*>(seg->data()));

  // Liveness. acquire on each state word: pairs with the owner's release
  // that published its name and pid.
  const std::uint64_t owner = h->producer.owner.load(std::memory_order_acquire);
  v.live = live_owner(owner, "producer", h->producer.name.load());
  if (!v.live.empty()) return v;
  const auto* consumers = std::launder(reinterpret_cast<const ConsumerEntry*>(
      static_cast<const std::byte*>(seg->data()) + d.consumers_offset));
  std::vector<std::string> gone_consumers;
  for (std::uint32_t i = 0; i < d.max_consumers; ++i) {
    const std::uint64_t w = consumers[i].state.load(std::memory_order_acquire);
    v.live = live_owner(w, "consumer", consumers[i].name.load());
    if (!v.live.empty()) return v;
    if (w != 0) gone_consumers.push_back(exited(w, consumers[i].name.load()));
  }
  const std::uint64_t reg = h->registry.directory_claim.load(std::memory_order_acquire);
  if (claim_state(reg) == ClaimState::Claiming && !is_dead(claim_owner(reg))) {
    v.live = pid_text(identity_pid(claim_owner(reg))) + " is registering it in the bus directory";
    return v;
  }
  if (!is_dead(d.creator)) {
    v.live = "its creator (" + pid_text(identity_pid(d.creator)) + ") is still running";
    return v;
  }
  v.dead =
      owner == 0 ? "no producer" : "producer " + exited(owner, h->producer.name.load()) + " exited";
  if (gone_consumers.empty()) {
    v.dead += ", no consumers";
  } else {
    v.dead += gone_consumers.size() == 1 ? ", consumer " : ", consumers ";
    for (std::size_t i = 0; i < gone_consumers.size() && i < 3; ++i)
      v.dead += (i == 0 ? "" : ", ") + gone_consumers[i];
    if (gone_consumers.size() > 3)
      v.dead += " and " + std::to_string(gone_consumers.size() - 3) + " more";
    v.dead += " exited";
  }
  return v;
}

// ------------------------------------------------------------------ directory

struct Directory {
  std::optional<Segment> seg;  // mapped read-write when possible
  DirectoryHeader* header = nullptr;
  DirectoryEntry* entries = nullptr;
  std::string problem;  // why it cannot be parsed or written
  bool writable = false;
  std::uint32_t capacity = 0;  // from the checked descriptor
  std::uint64_t creator = 0;
};

Directory open_directory(const std::string& segment) {
  Directory dir;
  try {
    try {
      dir.seg = Segment::open(segment, Access::ReadWrite);
      dir.writable = true;
    } catch (const Error& e) {
      if (e.code() != Errc::SystemError && e.code() != Errc::PermissionDenied) throw;
      // Someone else's bus: look, but we will not be able to change it.
      dir.seg = Segment::open(segment, Access::ReadOnly);
    }
  } catch (const Error& e) {
    dir.problem = e.what();
    return dir;
  }
  if (!dir.seg) return dir;
  const Checked<DirectoryFacts> checked =
      check_directory_segment(dir.seg->data(), dir.seg->size(), {});
  if (!checked) {
    dir.problem = checked.defect.reason;
    return dir;
  }
  dir.capacity = checked.facts->capacity;
  dir.creator = checked.facts->creator;
  dir.header = std::launder(reinterpret_cast<DirectoryHeader*>(dir.seg->data()));
  dir.entries = std::launder(reinterpret_cast<DirectoryEntry*>(
      static_cast<std::byte*>(dir.seg->data()) + checked.facts->entries_offset));
  return dir;
}

// Why the directory itself is in use, or "".
std::string directory_in_use(const Directory& dir) {
  if (!is_dead(dir.creator))
    return "its creator (" + pid_text(identity_pid(dir.creator)) + ") is still running";
  // The doorbell's sleeper count is no sign of life: a dispatcher killed in
  // its sleep never takes its count back. One that still sleeps there
  // subscribes to topics of this bus, whose segments would still be here.
  const std::uint64_t upd = dir.header->clock.updater.load(std::memory_order_acquire);
  if (upd != 0 && !is_dead(claim_owner(upd)))
    return pid_text(identity_pid(claim_owner(upd))) + " is recalibrating its clock";
  for (std::uint32_t i = 0; i < dir.capacity; ++i) {
    const std::uint64_t w = dir.entries[i].state.load(std::memory_order_acquire);
    if (claim_state(w) == ClaimState::Claiming && !is_dead(claim_owner(w)))
      return pid_text(identity_pid(claim_owner(w))) + " is registering a topic in it";
  }
  return {};
}

// Active entries naming `topic` (a damaged directory might hold more than one).
std::vector<std::uint32_t> entries_of(const Directory& dir, std::string_view topic) {
  std::vector<std::uint32_t> out;
  if (dir.header == nullptr) return out;
  for (std::uint32_t i = 0; i < dir.capacity; ++i) {
    // acquire: the name is complete once Active is seen.
    const std::uint64_t w = dir.entries[i].state.load(std::memory_order_acquire);
    if (claim_state(w) == ClaimState::Active && dir.entries[i].name.load() == topic)
      out.push_back(i);
  }
  return out;
}

// ------------------------------------------------------------------ names

struct Names {
  std::map<std::string, std::vector<std::string>> topics;  // bus -> topic names with a segment
  std::set<std::string> directories;                       // buses with a directory segment
  std::vector<std::string> unknown;                        // "shmbus.*" that parse as neither
  std::vector<std::string> temporaries;
};

Names scan(std::optional<std::string_view> only) {
  Names n;
  // With a bus: "shmbus.<bus>" and "shmbus.<bus>.*" ("shmbus.demo-12" is not
  // bus "demo-1": the parse below tells them apart).
  const std::string prefix = only ? directory_segment_name(*only) : std::string(kSegmentPrefix);
  for (const std::string& s : Segment::list(prefix)) {
    const SegmentName parsed = parse_segment_name(s);
    if (parsed.kind == SegmentName::Kind::Unknown) {
      if (!only || s == prefix || s.rfind(prefix + ".", 0) == 0) n.unknown.push_back(s);
      continue;
    }
    if (only && parsed.bus != *only) continue;
    if (parsed.kind == SegmentName::Kind::Directory) n.directories.insert(parsed.bus);
    if (parsed.kind == SegmentName::Kind::Topic) n.topics[parsed.bus].push_back(parsed.topic);
  }
  for (const std::string& s : Segment::list(std::string(kTempPrefix))) n.temporaries.push_back(s);
  for (auto& [bus, topics] : n.topics) std::sort(topics.begin(), topics.end());
  std::sort(n.unknown.begin(), n.unknown.end());
  std::sort(n.temporaries.begin(), n.temporaries.end());
  return n;
}

// shm_unlink; "" on success (or if someone else removed it first), else why not.
std::string unlink_segment(const std::string& segment) {
  if (::shm_unlink(segment.c_str()) == 0 || errno == ENOENT) return {};
  return std::string("cannot remove it: ") + std::strerror(errno);
}

class Collector {
 public:
  explicit Collector(bool dry_run) { report_.dry_run = dry_run; }

  void bus(const std::string& bus, const std::vector<std::string>& topics, bool has_directory) {
    const std::string dir_name = directory_segment_name(bus);
    Directory dir = has_directory ? open_directory(dir_name) : Directory{};
    std::size_t left = 0;  // topic segments that stay
    for (const std::string& topic : topics) left += topic_segment(bus, topic, dir) ? 0 : 1;
    if (dir.header != nullptr) stale_entries(bus, dir);
    if (!has_directory) return;

    GcItem item;
    item.kind = GcKind::Directory;
    item.segment = dir_name;
    item.bus = bus;
    item.bytes = file_bytes(dir_name);
    if (!dir.seg) return;  // vanished meanwhile
    if (dir.header == nullptr) {
      item.reason = "cannot be parsed: " + dir.problem +
                    "; left alone (remove it by hand if it is not in use: rm " +
                    shm_path(dir_name) + ")";
      report_.kept.push_back(std::move(item));
      return;
    }
    if (left != 0) {
      item.reason =
          "bus still has " + std::to_string(left) + " topic segment" + (left == 1 ? "" : "s");
      report_.kept.push_back(std::move(item));
      return;
    }
    if (std::string why = directory_in_use(dir); !why.empty()) {
      item.reason = std::move(why);
      report_.kept.push_back(std::move(item));
      return;
    }
    if (!report_.dry_run) {
      // Again, just before: a topic may have appeared since the scan.
      const auto now = scan(std::string_view(bus)).topics;
      if (now.count(bus) != 0 && !now.at(bus).empty()) {
        item.reason = "a topic segment appeared while collecting";
        report_.kept.push_back(std::move(item));
        return;
      }
      if (std::string why = directory_in_use(dir); !why.empty()) {
        item.reason = std::move(why);
        report_.kept.push_back(std::move(item));
        return;
      }
      if (std::string err = unlink_segment(dir_name); !err.empty()) {
        item.reason = std::move(err);
        report_.kept.push_back(std::move(item));
        return;
      }
    }
    item.reason = "no topics left, and no process uses the bus";
    report_.removed.push_back(std::move(item));
  }

  void temporary(const std::string& segment, std::optional<std::string_view> only) {
    GcItem item;
    item.kind = GcKind::Temporary;
    item.segment = segment;
    item.bytes = file_bytes(segment);
    item.bus = bus_of_temporary(segment);
    if (only && item.bus != *only) return;
    const SegmentName parsed = parse_segment_name(segment);
    const std::uint32_t pid = parsed.pid;
    if (parsed.kind != SegmentName::Kind::Temporary) {
      item.kind = GcKind::Unknown;
      item.reason = "not named like a shmbus temporary (shmbus-tmp.<pid>.<n>); left alone";
      report_.kept.push_back(std::move(item));
      return;
    }
    // Without the creator's start time a reused pid looks alive: that only
    // keeps a temporary longer, never removes one in use.
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) {  // alive, or not provably dead
      item.reason = "its creator (" + pid_text(pid) + ") is running and may still be building it";
      report_.kept.push_back(std::move(item));
      return;
    }
    if (!report_.dry_run) {
      if (std::string err = unlink_segment(segment); !err.empty()) {
        item.reason = std::move(err);
        report_.kept.push_back(std::move(item));
        return;
      }
    }
    item.reason = "left by " + pid_text(pid) + ", which died while creating a segment";
    report_.removed.push_back(std::move(item));
  }

  void unknown(const std::string& segment) {
    GcItem item;
    item.kind = GcKind::Unknown;
    item.segment = segment;
    item.bytes = file_bytes(segment);
    item.reason = "its name is not a valid shmbus bus or topic name; left alone";
    report_.kept.push_back(std::move(item));
  }

  GcReport take() { return std::move(report_); }

 private:
  // Returns whether the segment is gone (removed, to be removed, or vanished).
  bool topic_segment(const std::string& bus, const std::string& topic, Directory& dir) {
    GcItem item;
    item.kind = GcKind::Topic;
    item.segment = topic_segment_name(bus, topic);
    item.bus = bus;
    item.topic = topic;
    item.bytes = file_bytes(item.segment);
    TopicVerdict v = judge_topic(item.segment, bus, topic);
    if (v.gone) return true;
    if (!v.problem.empty()) {
      item.reason = "cannot be parsed: " + v.problem +
                    "; left alone (remove it by hand if it is not in use: rm " +
                    shm_path(item.segment) + ")";
      report_.kept.push_back(std::move(item));
      return false;
    }
    if (!v.live.empty()) {
      item.reason = std::move(v.live);
      report_.kept.push_back(std::move(item));
      return false;
    }
    if (!report_.dry_run) {
      // Judge again right before removing: the window in which a process can
      // attach unseen is now the time of one free + unlink.
      v = judge_topic(item.segment, bus, topic);
      if (v.gone) return true;
      if (!v.problem.empty() || !v.live.empty()) {
        item.reason = !v.live.empty() ? v.live : "cannot be parsed: " + v.problem;
        report_.kept.push_back(std::move(item));
        return false;
      }
      std::vector<std::pair<std::uint32_t, std::uint64_t>> freed;
      if (dir.header != nullptr && dir.writable) {
        for (const std::uint32_t i : entries_of(dir, topic)) {
          std::uint64_t w = dir.entries[i].state.load(std::memory_order_acquire);
          // acq_rel: we read the entry's name before freeing it; a registrant
          // that takes the entry next acquires our Free.
          if (claim_state(w) == ClaimState::Active &&
              dir.entries[i].state.compare_exchange_strong(w, 0, std::memory_order_acq_rel))
            freed.emplace_back(i, w);
        }
      }
      if (std::string err = unlink_segment(item.segment); !err.empty()) {
        // Put the listing back where nobody has taken the entry meanwhile.
        for (auto [i, w] : freed) {
          std::uint64_t expected = 0;
          dir.entries[i].state.compare_exchange_strong(expected, w, std::memory_order_acq_rel);
        }
        item.reason = std::move(err);
        report_.kept.push_back(std::move(item));
        return false;
      }
    }
    item.reason = std::move(v.dead);
    report_.removed.push_back(std::move(item));
    return true;
  }

  // Entries listing a topic whose segment is missing, and entries that a
  // dead registrant left half-claimed.
  void stale_entries(const std::string& bus, Directory& dir) {
    const std::string dir_name = directory_segment_name(bus);
    for (std::uint32_t i = 0; i < dir.capacity; ++i) {
      DirectoryEntry& e = dir.entries[i];
      std::uint64_t w = e.state.load(std::memory_order_acquire);
      if (w == 0) continue;
      const std::string topic = e.name.load();
      std::string why;
      if (claim_state(w) == ClaimState::Claiming) {
        if (!is_dead(claim_owner(w))) continue;
        why = "half-registered by " + pid_text(identity_pid(claim_owner(w))) + ", which died";
      } else if (claim_state(w) == ClaimState::Active) {
        if (already_reported(bus, topic)) continue;
        bool exists = true;
        try {
          exists = Segment::open(topic_segment_name(bus, topic), Access::ReadOnly).has_value();
        } catch (const Error&) {
          exists = true;  // there, if unreadable
        }
        if (exists) continue;
        why = "lists topic '" + topic + "', whose segment is missing (removed by hand)";
      } else {
        continue;
      }
      GcItem item;
      item.kind = GcKind::DirectoryEntry;
      item.segment = dir_name;
      item.bus = bus;
      item.topic = topic;
      if (!dir.writable) {
        item.reason = why + "; cannot free it: the directory is not writable by this user";
        report_.kept.push_back(std::move(item));
        continue;
      }
      if (!report_.dry_run) {
        if (!e.state.compare_exchange_strong(w, 0, std::memory_order_acq_rel))
          continue;  // someone moved on
        // A process that created the topic between our check and the CAS
        // would have found this entry and taken the topic as listed: give
        // the listing back if its segment is there now.
        bool back = false;
        try {
          back = Segment::open(topic_segment_name(bus, topic), Access::ReadOnly).has_value();
        } catch (const Error&) {
          back = true;
        }
        if (back) {
          std::uint64_t expected = 0;
          e.state.compare_exchange_strong(expected, w, std::memory_order_acq_rel);
          continue;
        }
      }
      item.reason = std::move(why);
      report_.removed.push_back(std::move(item));
    }
  }

  [[nodiscard]] bool already_reported(const std::string& bus, const std::string& topic) const {
    const auto same = [&](const GcItem& i) {
      return i.kind == GcKind::Topic && i.bus == bus && i.topic == topic;
    };
    return std::any_of(report_.removed.begin(), report_.removed.end(), same) ||
           std::any_of(report_.kept.begin(), report_.kept.end(), same);
  }

  // The bus a temporary's header names, or "" if it names none yet.
  static std::string bus_of_temporary(const std::string& segment) {
    std::optional<Segment> seg;
    try {
      seg = Segment::open(segment, Access::ReadOnly);
    } catch (const Error&) {
      return {};
    }
    if (!seg) return {};
    if (seg->size() >= sizeof(TopicDescriptor)) {
      const auto* d = std::launder(reinterpret_cast<const TopicDescriptor*>(seg->data()));
      if (d->magic == kTopicMagic) return std::string(field(d->bus));
    }
    if (seg->size() >= sizeof(DirectoryDescriptor)) {
      const auto* d = std::launder(reinterpret_cast<const DirectoryDescriptor*>(seg->data()));
      if (d->magic == kDirectoryMagic) return std::string(field(d->bus));
    }
    return {};
  }

  GcReport report_;
};

}  // namespace

GcReport collect_garbage(std::optional<std::string_view> bus, bool dry_run) {
  if (bus) validate_bus_name(*bus);
  const Names names = scan(bus);
  if (bus && names.directories.empty() && names.topics.empty() && names.unknown.empty()) {
    // A crashed creator may have left temporaries naming it: collect those.
    Collector c(dry_run);
    for (const std::string& t : names.temporaries) c.temporary(t, bus);
    GcReport r = c.take();
    if (r.removed.empty() && r.kept.empty()) {
      throw Error(Errc::NoSuchBus,
                  "no bus named '" + std::string(*bus) + "' on this host (no /dev/shm/" +
                      directory_segment_name(*bus) + " and no topic segments); nothing to collect");
    }
    return r;
  }
  Collector c(dry_run);
  std::set<std::string> buses(names.directories.begin(), names.directories.end());
  for (const auto& [b, topics] : names.topics) buses.insert(b);
  for (const std::string& b : buses) {
    const auto it = names.topics.find(b);
    c.bus(b, it == names.topics.end() ? std::vector<std::string>{} : it->second,
          names.directories.count(b) != 0);
  }
  for (const std::string& t : names.temporaries) c.temporary(t, bus);
  for (const std::string& u : names.unknown) c.unknown(u);
  return c.take();
}

}  // namespace shmbus
