#include "shmbus/bus.hpp"

#include <algorithm>
#include <new>
#include <set>

#include "internal.hpp"
#include "shmbus/detail/process.hpp"
#include "shmbus/error.hpp"
#include "shmbus/publisher.hpp"
#include "shmbus/subscriber.hpp"

namespace shmbus {

using namespace detail;

namespace {

constexpr std::string_view kPrefix = "shmbus.";

std::shared_ptr<DirectoryState> make_state(Segment seg, std::string_view bus) {
  const std::string name = seg.name();
  if (seg.size() < sizeof(DirectoryHeader)) {
    throw Error(Errc::TruncatedSegment, "bus '" + std::string(bus) + "': directory segment /dev/shm/" + name +
                                            " is " + std::to_string(seg.size()) +
                                            " bytes, smaller than a directory header; once no process uses it, remove it: "
                                            "rm /dev/shm/" + name);
  }
  auto* h = std::launder(reinterpret_cast<DirectoryHeader*>(seg.data()));
  if (h->desc.magic != kDirectoryMagic) {
    throw Error(Errc::ForeignSegment, "/dev/shm/" + name + " is not a shmbus bus directory (its magic number is "
                                          "wrong); something else created it — remove it or pick another bus name");
  }
  // acquire: pairs with the creator's release; the header is complete after it.
  const std::uint32_t version = h->desc.layout_version.load(std::memory_order_acquire);
  if (version != kLayoutVersion) {
    throw Error(Errc::VersionMismatch,
                "bus '" + std::string(bus) + "' has shared-memory layout version " + std::to_string(version) +
                    " but this build of shmbus reads version " + std::to_string(kLayoutVersion) +
                    "; stop the processes on it and remove it (rm /dev/shm/" + name + " /dev/shm/" + name +
                    ".*), or run programs built against the same shmbus");
  }
  const std::uint64_t need = directory_bytes(h->desc.capacity);
  if (h->desc.capacity == 0 || h->desc.capacity > kMaxDirectoryCapacity || h->desc.segment_bytes != need ||
      seg.size() < need || h->desc.entries_offset != sizeof(DirectoryHeader)) {
    throw Error(Errc::TruncatedSegment, "bus '" + std::string(bus) + "': directory segment /dev/shm/" + name + " is " +
                                            std::to_string(seg.size()) + " bytes but its header describes " +
                                            std::to_string(need) + "; it is damaged — once no process uses it, remove "
                                            "it: rm /dev/shm/" + name);
  }
  auto st = std::make_shared<DirectoryState>();
  st->header = h;
  st->entries = std::launder(
      reinterpret_cast<DirectoryEntry*>(static_cast<std::byte*>(seg.data()) + h->desc.entries_offset));
  st->bus = std::string(bus);
  st->clock = std::make_unique<Clock>(&h->clock);
  st->segment = std::move(seg);
  return st;
}

std::shared_ptr<DirectoryState> open_directory(std::string_view bus, Access access) {
  auto seg = Segment::open(Bus::directory_segment_name(bus), access);
  if (!seg) return nullptr;
  return make_state(std::move(*seg), bus);
}

}  // namespace

std::string Bus::directory_segment_name(std::string_view bus) { return std::string(kPrefix) + std::string(bus); }

std::string Bus::topic_segment_name(std::string_view bus, std::string_view topic) {
  return std::string(kPrefix) + std::string(bus) + "." + std::string(topic);
}

Bus Bus::open_or_create(std::string_view name, const BusOptions& options) {
  validate_bus_name(name);
  if (options.capacity == 0 || options.capacity > kMaxDirectoryCapacity) {
    throw Error(Errc::InvalidArgument, "bus capacity " + std::to_string(options.capacity) +
                                           " is out of range; use 1.." + std::to_string(kMaxDirectoryCapacity));
  }
  // open, else create; a lost creation race means someone else created it: open again.
  for (int attempt = 0; attempt < 8; ++attempt) {
    if (auto st = open_directory(name, Access::ReadWrite)) return Bus(std::move(st));
    const std::uint64_t bytes = directory_bytes(options.capacity);
    auto seg = Segment::create(directory_segment_name(name), bytes, [&](void* p) {
      auto* h = new (p) DirectoryHeader();
      auto* entries = static_cast<std::byte*>(p) + sizeof(DirectoryHeader);
      for (std::uint32_t i = 0; i < options.capacity; ++i) new (entries + i * sizeof(DirectoryEntry)) DirectoryEntry();
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
    });
    if (seg) return Bus(make_state(std::move(*seg), name));
  }
  throw Error(Errc::SystemError, "bus '" + std::string(name) + "' keeps appearing and disappearing while it is "
                                     "opened; is something removing /dev/shm/shmbus." + std::string(name) + "?");
}

Bus Bus::open(std::string_view name, Access access) {
  validate_bus_name(name);
  auto st = open_directory(name, access);
  if (!st) {
    throw Error(Errc::NoSuchBus, "no bus named '" + std::string(name) + "' on this host (no /dev/shm/" +
                                     directory_segment_name(name) + "); start its producer first, or see "
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
  for (const std::string& n : Segment::list(std::string(kPrefix))) {
    const std::string rest = n.substr(kPrefix.size());
    // Directory segments are "shmbus.<bus>"; bus names have no '.'.
    if (rest.find('.') == std::string::npos && !rest.empty()) out.push_back(rest);
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
  for (std::uint32_t i = 0; i < d_->header->desc.capacity; ++i) {
    const DirectoryEntry& e = d_->entries[i];
    // acquire: pairs with the registrant's release of Active; the name is complete.
    if (claim_state(e.state.load(std::memory_order_acquire)) == ClaimState::Active) names.insert(e.name.load());
  }
  return {names.begin(), names.end()};
}

bool Bus::has_topic(std::string_view name) const {
  validate_topic_name(name);
  return Segment::exists(topic_segment_name(d_->bus, name));
}

Publisher Bus::publisher(std::string_view topic, const TopicConfig& config, const PublisherOptions& options) {
  return Publisher(this->topic(topic, config, Match::Exact), options);
}

Subscriber Bus::subscriber(std::string_view topic, const SubscriberOptions& options) {
  return Subscriber(this->topic(topic, TopicConfig{}, Match::TypeOnly), options);
}

Subscriber Bus::subscriber(std::string_view topic, const TopicConfig& config, const SubscriberOptions& options) {
  return Subscriber(this->topic(topic, config, Match::Exact), options);
}

}  // namespace shmbus
