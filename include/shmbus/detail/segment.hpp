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

// Who may open a segment: the file mode and group it is created with
// (fchmod/fchown right after creation, so the umask does not matter).
struct Permissions {
  std::uint32_t mode = 0600;  // 0600: the creating user only; 0660 with a group
  std::int64_t gid = -1;      // -1: the creator's group
};

class Segment {
 public:
  Segment() noexcept;  // an empty handle (maps nothing)
  Segment(Segment&&) noexcept;
  Segment& operator=(Segment&&) noexcept;
  ~Segment();

  // Builds a segment of `bytes` under a temporary name, pre-faults it, runs
  // `init` on the zeroed memory (which must publish its version word last),
  // then publishes it under `name` with link(2). Returns nullopt if `name`
  // already exists (someone else won the race: open it instead). The file
  // gets `perms` whatever the umask. The memory is reserved
  // (posix_fallocate) before it is mapped, so a full /dev/shm is
  // Error(NoSpace) saying so, with the temporary removed, never a SIGBUS.
  // Throws Error(SystemError) on other OS failures; a temporary left by a
  // crash is removed by gc. With Publish::Replace the new segment takes the
  // name over from an existing one (rename(2)); it never returns nullopt.
  enum class Publish : std::uint8_t { Exclusive, Replace };
  static std::optional<Segment> create(const std::string& name, std::uint64_t bytes,
                                       const std::function<void(void*)>& init,
                                       const Permissions& perms = {},
                                       Publish publish = Publish::Exclusive);

  // Maps an existing segment; nullopt if there is none by that name;
  // Error(PermissionDenied) if this user may not open it that way.
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
  // The file's owner, mode bits and group (fstat at open/create).
  [[nodiscard]] std::uint32_t owner_uid() const noexcept { return uid_; }
  [[nodiscard]] Permissions permissions() const noexcept { return perms_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  void* data_ = nullptr;
  std::uint64_t size_ = 0;
  std::string name_;
  Access access_ = Access::ReadOnly;
  std::uint32_t uid_ = 0;
  Permissions perms_;
};

}  // namespace shmbus::detail
