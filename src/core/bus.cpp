#include "shmbus/core/bus.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <new>
#include <set>

#include "detail/internal.hpp"
#include "shmbus/core/publisher.hpp"
#include "shmbus/core/subscriber.hpp"
#include "shmbus/detail/process.hpp"
#include "shmbus/detail/segments.hpp"
#include "shmbus/error.hpp"

namespace shmbus {

using namespace detail;

namespace {

// "uid 1000 (alice)".
std::string user_text(std::uint32_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  std::string out = "uid " + std::to_string(uid);
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr)
    out += std::string(" (") + found->pw_name + ")";
  return out;
}

// Checks a mapped directory segment before anything in it is trusted, and
// keeps the checked copy of its descriptor (detail/segments.hpp).
std::shared_ptr<DirectoryState> make_state(Segment seg, std::string_view bus,
                                           const BusOptions& options) {
  // No squatting: a bus another user created is not ours to publish into
  // unless the caller expects a shared bus. (Read-only looks are harmless.)
  const auto me = static_cast<std::uint32_t>(::geteuid());
  if (seg.writable() && seg.owner_uid() != me && !options.allow_other_owner) {
    throw Error(
        Errc::PermissionDenied,
        "bus '" + std::string(bus) + "' (" + shm_path(seg.name()) + ") is owned by " +
            user_text(seg.owner_uid()) + ", not by this process's user " + user_text(me) +
            ": refusing to use another user's bus (it may have been created to intercept your "
            "messages); remove it if it is stale, pick another bus name, or set "
            "BusOptions::allow_other_owner for a bus shared on purpose");
  }
  Checked<DirectoryFacts> checked = check_directory_segment(seg.data(), seg.size(), bus);
  if (!checked) {
    const std::string file = shm_path(seg.name());
    const Defect& d = checked.defect;
    const bool foreign = d.reason.rfind("it is not", 0) == 0;
    std::string what = foreign ? file + d.reason.substr(2)
                               : "bus '" + std::string(bus) + "': directory segment " + file +
                                     " cannot be used: " + d.reason;
    if (d.code == Errc::VersionMismatch)
      what += "; stop the processes on it and remove it (rm " + file + " " + file +
              ".*), or run programs built against the same shmbus";
    else if (foreign)
      what += "; something else created it — remove it or pick another bus name";
    else
      what += "; it is damaged — once no process uses it, remove it: rm " + file;
    throw Error(d.code, what);
  }
  auto st = std::make_shared<DirectoryState>();
  auto* base = static_cast<std::byte*>(seg.data());
  st->header = std::launder(reinterpret_cast<DirectoryHeader*>(base));
  st->entries =
      std::launder(reinterpret_cast<DirectoryEntry*>(base + checked.facts->entries_offset));
  st->capacity = checked.facts->capacity;
  st->created_ns = checked.facts->created_ns;
  st->bus = std::string(bus);
  st->perms = seg.permissions();
  st->perms.mode &= 0660;  // never more than user and group read-write
  st->allow_other_owner = options.allow_other_owner;
  st->clock = std::make_unique<Clock>(&st->header->clock);
  st->segment = std::move(seg);
  return st;
}

std::shared_ptr<DirectoryState> open_directory(std::string_view bus, Access access,
                                               const BusOptions& options) {
  auto seg = Segment::open(directory_segment_name(bus), access);
  if (!seg) return nullptr;
  return make_state(std::move(*seg), bus, options);
}

// BusOptions::group as a gid: a group name or a number.
Permissions bus_permissions(const BusOptions& o) {
  Permissions p;
  if (o.group.empty()) return p;
  p.mode = 0660;
  std::int64_t gid = -1;
  const auto r = std::from_chars(o.group.data(), o.group.data() + o.group.size(), gid);
  if (r.ec == std::errc{} && r.ptr == o.group.data() + o.group.size() && gid >= 0) {
    p.gid = gid;
    return p;
  }
  group g{};
  group* found = nullptr;
  std::vector<char> buf(16384);
  if (::getgrnam_r(o.group.c_str(), &g, buf.data(), buf.size(), &found) != 0 || found == nullptr)
    throw Error(Errc::InvalidArgument, "BusOptions::group '" + o.group +
                                           "' is not a group on this host (getent group " +
                                           o.group + ")");
  p.gid = found->gr_gid;
  return p;
}

}  // namespace

Bus Bus::open_or_create(std::string_view name, const BusOptions& options) {
  validate_bus_name(name);
  if (options.capacity == 0 || options.capacity > kMaxDirectoryCapacity) {
    throw Error(Errc::InvalidArgument, "bus capacity " + std::to_string(options.capacity) +
                                           " is out of range; use 1.." +
                                           std::to_string(kMaxDirectoryCapacity));
  }
  const Permissions perms = bus_permissions(options);
  // open, else create; a lost creation race means someone else created it: open again.
  for (int attempt = 0; attempt < 8; ++attempt) {
    if (auto st = open_directory(name, Access::ReadWrite, options)) return Bus(std::move(st));
    const std::uint64_t bytes = directory_bytes(options.capacity);
    auto seg = Segment::create(
        directory_segment_name(name), bytes,
        [&](void* p) {
          auto* h = new (p) DirectoryHeader();
          auto* entries = static_cast<std::byte*>(p) + sizeof(DirectoryHeader);
          for (std::uint32_t i = 0; i < options.capacity; ++i)
            new (entries + i * sizeof(DirectoryEntry)) DirectoryEntry();
          h->desc.magic = kDirectoryMagic;
          h->desc.capacity = options.capacity;
          h->desc.segment_bytes = bytes;
          h->desc.entries_offset = sizeof(DirectoryHeader);
          h->desc.created_ns = Clock::wall_ns();
          h->desc.creator = self_identity();
          name.copy(h->desc.bus, kMaxBusName);
          Clock::initialise(h->clock);
          // release: everything above happens-before an opener's acquire of the version.
          h->desc.layout_version.store(kLayoutVersion, std::memory_order_release);
        },
        perms);
    if (seg) return Bus(make_state(std::move(*seg), name, options));
  }
  throw Error(Errc::SystemError, "bus '" + std::string(name) +
                                     "' keeps appearing and disappearing while it is "
                                     "opened; is something removing " +
                                     shm_path(directory_segment_name(name)) + "?");
}

Bus Bus::open(std::string_view name, Access access) {
  return open(name, access, BusOptions{});
}

Bus Bus::open(std::string_view name, Access access, const BusOptions& options) {
  validate_bus_name(name);
  auto st = open_directory(name, access, options);
  if (!st) {
    throw Error(Errc::NoSuchBus, "no bus named '" + std::string(name) + "' on this host (no " +
                                     shm_path(directory_segment_name(name)) +
                                     "); start its producer first, or see "
                                     "`bus-inspect list` for the buses that exist");
  }
  return Bus(std::move(st));
}

bool Bus::exists(std::string_view name) {
  validate_bus_name(name);
  return Segment::exists(directory_segment_name(name));
}

std::vector<std::string> Bus::list() {
  std::vector<std::string> out;
  for (const std::string& n : Segment::list(std::string(kSegmentPrefix))) {
    const SegmentName parsed = parse_segment_name(n);
    if (parsed.kind == SegmentName::Kind::Directory) out.push_back(parsed.bus);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::size_t Bus::remove(std::string_view name) {
  validate_bus_name(name);
  std::size_t n = 0;
  const std::string topic_prefix = directory_segment_name(name) + ".";
  for (const std::string& seg : Segment::list(topic_prefix)) n += Segment::remove(seg) ? 1 : 0;
  n += Segment::remove(directory_segment_name(name)) ? 1 : 0;
  return n;
}

std::vector<std::string> Bus::topic_names() const {
  std::set<std::string> names;
  for (std::uint32_t i = 0; i < d_->capacity; ++i) {
    const DirectoryEntry& e = d_->entries[i];
    // acquire: pairs with the registrant's release of Active; the name is complete.
    if (claim_state(e.state.load(std::memory_order_acquire)) == ClaimState::Active)
      names.insert(e.name.load());
  }
  return {names.begin(), names.end()};
}

bool Bus::has_topic(std::string_view name) const {
  validate_topic_name(name);
  return Segment::exists(topic_segment_name(d_->bus, name));
}

Publisher Bus::publisher(std::string_view topic, const TopicConfig& config,
                         const PublisherOptions& options) {
  return Publisher(this->topic(topic, config, Match::Exact), options);
}

Subscriber Bus::subscriber(std::string_view topic, const SubscriberOptions& options) {
  return Subscriber(this->topic(topic, TopicConfig{}, Match::TypeOnly), options);
}

Subscriber Bus::subscriber(std::string_view topic, const TopicConfig& config,
                           const SubscriberOptions& options) {
  return Subscriber(this->topic(topic, config, Match::Exact), options);
}

}  // namespace shmbus
