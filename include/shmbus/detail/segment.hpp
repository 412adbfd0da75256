// A mapped POSIX shared-memory segment (Boost.Interprocess), and the
// create-then-publish protocol that keeps half-built segments invisible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace shmbus::detail {

// Names and where segments live: detail/segments.hpp.
enum class Access : std::uint8_t { ReadWrite, ReadOnly };

class Segment {
 public:
  Segment() noexcept;  // an empty handle (maps nothing)
  Segment(Segment&&) noexcept;
  Segment& operator=(Segment&&) noexcept;
  ~Segment();

  // Builds a segment of `bytes` under a temporary name, pre-faults it, runs
  // `init` on the zeroed memory (which must publish its version word last),
  // then publishes it under `name` with link(2). Returns nullopt if `name`
  // already exists (someone else won the race: open it instead). Throws
  // Error(SystemError) on OS failures; a temporary left by a crash is
  // removed by gc.
  // With Publish::Replace the new segment takes the name over from an
  // existing one (rename(2)); it never returns nullopt.
  enum class Publish : std::uint8_t { Exclusive, Replace };
  static std::optional<Segment> create(const std::string& name, std::uint64_t bytes,
                                       const std::function<void(void*)>& init,
                                       Publish publish = Publish::Exclusive);

  // Maps an existing segment; nullopt if there is none by that name.
  // Pre-faults the mapping (touching a page first costs ~2 us otherwise).
  static std::optional<Segment> open(const std::string& name, Access access);

  // Whether a segment of that name exists (a stat; maps nothing).
  [[nodiscard]] static bool exists(const std::string& name) noexcept;

  // shm_unlink. Returns false if it did not exist.
  static bool remove(const std::string& name) noexcept;

  // Names of the shared-memory segments starting with `prefix`.
  static std::vector<std::string> list(const std::string& prefix);

  [[nodiscard]] void* data() const noexcept { return data_; }
  [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] bool writable() const noexcept { return access_ == Access::ReadWrite; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  void* data_ = nullptr;
  std::uint64_t size_ = 0;
  std::string name_;
  Access access_ = Access::ReadOnly;
};

}  // namespace shmbus::detail
