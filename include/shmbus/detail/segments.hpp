// Every fact about shmbus segments that is not a struct: their names, where
// they live, and whether the bytes of one can be trusted. Written once, here,
// next to layout.hpp; Bus, Topic, garbage collection and the tools all use
// these functions and nothing else (no file spells the prefix or /dev/shm).
//
// The rule for values read from shared memory (layout.hpp says it in full):
// a value is either checked here at open and copied into the process
// (TopicFacts, DirectoryFacts) and never re-read, or bounds-checked at every
// use. Descriptor fields are immutable after creation, so everyone works
// from the copy; a process that scribbles on a descriptor later changes
// nothing another process reads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "shmbus/detail/layout.hpp"
#include "shmbus/error.hpp"

namespace shmbus::detail {

// Where POSIX shared memory lives on Linux: Boost.Interprocess's
// shared_memory_object maps name "x" to "/dev/shm/x" through shm_open().
inline constexpr std::string_view kShmDir = "/dev/shm";
// "shmbus.<bus>" is a bus directory, "shmbus.<bus>.<topic>" a topic.
inline constexpr std::string_view kSegmentPrefix = "shmbus.";
// "shmbus-tmp.<pid>.<n>": a segment being built (see layout.hpp).
inline constexpr std::string_view kTempPrefix = "shmbus-tmp.";

// Throw Error(InvalidName), saying what is wrong and what is allowed. A bus
// name is 1-32 characters of [A-Za-z0-9_-]; a topic name 1-64 characters of
// [A-Za-z0-9_.-] with '.' only between words; neither starts with '-'; a participant name 1-31
// printable characters without spaces.
void validate_bus_name(std::string_view name);
void validate_topic_name(std::string_view name);
void validate_participant_name(std::string_view name);

[[nodiscard]] std::string directory_segment_name(std::string_view bus);
[[nodiscard]] std::string topic_segment_name(std::string_view bus, std::string_view topic);
[[nodiscard]] std::string temporary_segment_name(std::uint32_t pid, std::uint64_t n);
// "/dev/shm/<segment>": for messages that tell a person which file to remove.
[[nodiscard]] std::string shm_path(std::string_view segment);

// A segment name read back (from a directory listing).
struct SegmentName {
  enum class Kind : std::uint8_t { Directory, Topic, Temporary, Unknown };
  Kind kind = Kind::Unknown;
  std::string bus;        // Directory, Topic
  std::string topic;      // Topic
  std::uint32_t pid = 0;  // Temporary: its creator
};
// Unknown for names under our prefixes that are not valid bus/topic names
// or temporaries, and for every other name.
[[nodiscard]] SegmentName parse_segment_name(std::string_view segment);

// What is wrong with a segment: the code an opener throws and a fragment a
// person can act on ("it is 12 bytes, smaller than a topic header"). The
// caller adds whose segment it is and what to do.
struct Defect {
  Errc code = Errc::ForeignSegment;
  std::string reason;
};

// A topic descriptor, checked and copied.
struct TopicFacts {
  PolicyCode policy = PolicyCode::Lossy;
  std::uint32_t slot_size = 0;
  std::uint32_t slot_count = 0;
  std::uint32_t max_consumers = 0;
  std::uint32_t schema_bytes = 0;
  std::uint64_t consumers_offset = 0;
  std::uint64_t schema_offset = 0;
  std::uint64_t slots_offset = 0;
  std::uint64_t segment_bytes = 0;
  std::uint64_t schema_hash = 0;
  std::int64_t created_ns = 0;
  std::uint64_t creator = 0;
  std::uint32_t flags = 0;  // kTopicProvisional
  std::uint64_t evict_after_ns = 0;
  std::string file_identifier;
  std::string bus;
  std::string topic;
  std::string type_name;
};

struct DirectoryFacts {
  std::uint32_t capacity = 0;
  std::uint64_t segment_bytes = 0;
  std::uint64_t entries_offset = 0;
  std::int64_t created_ns = 0;
  std::uint64_t creator = 0;
  std::string bus;
};

template <class Facts>
struct Checked {
  std::optional<Facts> facts;  // set when the segment can be trusted
  Defect defect;               // otherwise why not
  [[nodiscard]] explicit operator bool() const noexcept { return facts.has_value(); }
};

// Checks a mapped topic segment of `mapped_bytes` at `base` in the order an
// opener must: size, magic, then the layout version (acquire: it publishes
// the rest), then every field against its bounds and the geometry the layout
// computes, the mapping's size, and the names the header carries against
// `bus` and `topic` (empty: not checked). Reads the descriptor once.
[[nodiscard]] Checked<TopicFacts> check_topic_segment(const void* base, std::uint64_t mapped_bytes,
                                                      std::string_view bus, std::string_view topic);
[[nodiscard]] Checked<DirectoryFacts> check_directory_segment(const void* base,
                                                              std::uint64_t mapped_bytes,
                                                              std::string_view bus);

}  // namespace shmbus::detail
