// Segment names and segment checks (detail/segments.hpp).
#include "shmbus/detail/segments.hpp"

#include <bit>
#include <charconv>
#include <cstring>
#include <new>

namespace shmbus::detail {

namespace {

// A fixed char field of a header, up to its first NUL.
template <std::size_t N>
std::string field(const char (&chars)[N]) {
  return {chars, ::strnlen(chars, N)};
}

bool valid_name(void (*validate)(std::string_view), std::string_view name) {
  try {
    validate(name);
    return true;
  } catch (const Error&) {
    return false;
  }
}

template <class Facts>
Checked<Facts> defect(Errc code, std::string reason) {
  return Checked<Facts>{std::nullopt, Defect{code, std::move(reason)}};
}

}  // namespace

std::string directory_segment_name(std::string_view bus) {
  return std::string(kSegmentPrefix) + std::string(bus);
}

std::string topic_segment_name(std::string_view bus, std::string_view topic) {
  return std::string(kSegmentPrefix) + std::string(bus) + "." + std::string(topic);
}

std::string temporary_segment_name(std::uint32_t pid, std::uint64_t n) {
  return std::string(kTempPrefix) + std::to_string(pid) + "." + std::to_string(n);
}

std::string shm_path(std::string_view segment) {
  return std::string(kShmDir) + "/" + std::string(segment);
}

SegmentName parse_segment_name(std::string_view segment) {
  SegmentName out;
  if (segment.substr(0, kTempPrefix.size()) == kTempPrefix) {
    // "shmbus-tmp.<pid>.<n>"
    const std::string_view rest = segment.substr(kTempPrefix.size());
    std::uint32_t pid = 0;
    const auto r = std::from_chars(rest.data(), rest.data() + rest.size(), pid);
    if (r.ec != std::errc{} || r.ptr == rest.data() || r.ptr == rest.data() + rest.size() ||
        *r.ptr != '.' || pid == 0)
      return out;
    out.kind = SegmentName::Kind::Temporary;
    out.pid = pid;
    return out;
  }
  if (segment.substr(0, kSegmentPrefix.size()) != kSegmentPrefix) return out;
  // Bus names have no '.', so the first dot after the prefix ends the bus.
  const std::string_view rest = segment.substr(kSegmentPrefix.size());
  const auto dot = rest.find('.');
  const std::string_view bus = rest.substr(0, dot);
  if (!valid_name(&validate_bus_name, bus)) return out;
  if (dot == std::string_view::npos) {
    out.kind = SegmentName::Kind::Directory;
    out.bus = std::string(bus);
    return out;
  }
  const std::string_view topic = rest.substr(dot + 1);
  if (!valid_name(&validate_topic_name, topic)) return out;
  out.kind = SegmentName::Kind::Topic;
  out.bus = std::string(bus);
  out.topic = std::string(topic);
  return out;
}

Checked<TopicFacts> check_topic_segment(const void* base, std::uint64_t mapped_bytes,
                                        std::string_view bus, std::string_view topic) {
  if (mapped_bytes < sizeof(TopicHeader))
    return defect<TopicFacts>(Errc::TruncatedSegment,
                              "it is " + std::to_string(mapped_bytes) +
                                  " bytes, smaller than a topic header (truncated)");
  const auto* h = std::launder(reinterpret_cast<const TopicHeader*>(base));
  const TopicDescriptor& d = h->desc;
  if (d.magic != kTopicMagic)
    return defect<TopicFacts>(Errc::ForeignSegment,
                              "it is not a shmbus topic segment (its magic number is wrong)");
  // acquire: pairs with the creator's release; the descriptor is complete after it.
  const std::uint32_t version = d.layout_version.load(std::memory_order_acquire);
  if (version != kLayoutVersion)
    return defect<TopicFacts>(Errc::VersionMismatch,
                              "it has shared-memory layout version " + std::to_string(version) +
                                  " but this build of shmbus reads version " +
                                  std::to_string(kLayoutVersion));
  // One read of every field: what is checked below is what the caller keeps.
  TopicFacts f;
  f.policy = static_cast<PolicyCode>(d.policy);
  f.slot_size = d.slot_size;
  f.slot_count = d.slot_count;
  f.max_consumers = d.max_consumers;
  f.schema_bytes = d.schema_bytes;
  f.consumers_offset = d.consumers_offset;
  f.schema_offset = d.schema_offset;
  f.slots_offset = d.slots_offset;
  f.segment_bytes = d.segment_bytes;
  f.schema_hash = d.schema_hash;
  f.created_ns = d.created_ns;
  f.creator = d.creator;
  f.file_identifier = std::string(d.file_identifier, ::strnlen(d.file_identifier, 4));
  f.bus = field(d.bus);
  f.topic = field(d.topic);
  f.type_name = field(d.type_name);
  f.flags = d.flags;
  f.evict_after_ns = d.evict_after_ns;
  const bool sane = f.slot_size >= kMinSlotSize && f.slot_size <= kMaxSlotSize &&
                    f.slot_size % kCacheLine == 0 && f.slot_count >= kMinSlotCount &&
                    f.slot_count <= kMaxSlotCount && std::has_single_bit(f.slot_count) &&
                    std::uint64_t{f.slot_size} * f.slot_count <= kMaxRingBytes &&
                    f.max_consumers >= 1 && f.max_consumers <= kMaxConsumers &&
                    f.schema_bytes <= kMaxSchemaBytes &&
                    (f.policy == PolicyCode::Lossy || f.policy == PolicyCode::Reliable) &&
                    (f.flags & ~kTopicProvisional) == 0 &&
                    (f.evict_after_ns == 0 ||
                     (f.policy == PolicyCode::Reliable && f.evict_after_ns >= kMinEvictAfterNs &&
                      f.evict_after_ns <= kMaxEvictAfterNs));
  const TopicGeometry g =
      sane ? topic_geometry(f.max_consumers, f.schema_bytes, f.slot_size, f.slot_count)
           : TopicGeometry{};
  if (!sane || g.consumers_offset != f.consumers_offset || g.schema_offset != f.schema_offset ||
      g.slots_offset != f.slots_offset || g.segment_bytes != f.segment_bytes)
    return defect<TopicFacts>(Errc::ForeignSegment,
                              "its header is inconsistent (damaged, or not written by shmbus)");
  if (mapped_bytes < f.segment_bytes)
    return defect<TopicFacts>(Errc::TruncatedSegment, "it is " + std::to_string(mapped_bytes) +
                                                          " bytes but its header describes " +
                                                          std::to_string(f.segment_bytes) +
                                                          " (truncated)");
  if ((!bus.empty() && f.bus != bus) || (!topic.empty() && f.topic != topic))
    return defect<TopicFacts>(
        Errc::ForeignSegment,
        "its header names topic '" + f.topic + "' of bus '" + f.bus + "' (renamed by hand)");
  return Checked<TopicFacts>{std::move(f), {}};
}

Checked<DirectoryFacts> check_directory_segment(const void* base, std::uint64_t mapped_bytes,
                                                std::string_view bus) {
  if (mapped_bytes < sizeof(DirectoryHeader))
    return defect<DirectoryFacts>(Errc::TruncatedSegment,
                                  "it is " + std::to_string(mapped_bytes) +
                                      " bytes, smaller than a directory header (truncated)");
  const auto* h = std::launder(reinterpret_cast<const DirectoryHeader*>(base));
  const DirectoryDescriptor& d = h->desc;
  if (d.magic != kDirectoryMagic)
    return defect<DirectoryFacts>(Errc::ForeignSegment,
                                  "it is not a shmbus bus directory (its magic number is wrong)");
  // acquire: pairs with the creator's release; the descriptor is complete after it.
  const std::uint32_t version = d.layout_version.load(std::memory_order_acquire);
  if (version != kLayoutVersion)
    return defect<DirectoryFacts>(Errc::VersionMismatch,
                                  "it has shared-memory layout version " + std::to_string(version) +
                                      " but this build of shmbus reads version " +
                                      std::to_string(kLayoutVersion));
  DirectoryFacts f;
  f.capacity = d.capacity;
  f.segment_bytes = d.segment_bytes;
  f.entries_offset = d.entries_offset;
  f.created_ns = d.created_ns;
  f.creator = d.creator;
  f.bus = field(d.bus);
  if (f.capacity == 0 || f.capacity > kMaxDirectoryCapacity ||
      f.segment_bytes != directory_bytes(f.capacity) || f.entries_offset != sizeof(DirectoryHeader))
    return defect<DirectoryFacts>(Errc::ForeignSegment,
                                  "its header is inconsistent (damaged, or not written by shmbus)");
  if (mapped_bytes < f.segment_bytes)
    return defect<DirectoryFacts>(Errc::TruncatedSegment, "it is " + std::to_string(mapped_bytes) +
                                                              " bytes but its header describes " +
                                                              std::to_string(f.segment_bytes) +
                                                              " (truncated)");
  if (!bus.empty() && f.bus != bus)
    return defect<DirectoryFacts>(Errc::ForeignSegment,
                                  "its header names bus '" + f.bus + "' (renamed by hand)");
  return Checked<DirectoryFacts>{std::move(f), {}};
}

}  // namespace shmbus::detail
