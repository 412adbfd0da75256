#include "shmbus/detail/segment.hpp"
#include "shmbus/detail/segments.hpp"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

// Boost.Asio/Interprocess with g++ 12 in C++20 mode want <utility> first.
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include "shmbus/error.hpp"

namespace shmbus::detail {
namespace bip = boost::interprocess;

struct Segment::Impl {
  bip::shared_memory_object shm;
  bip::mapped_region region;
};

namespace {

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

[[noreturn]] void throw_system(const std::string& what, int err) {
  throw Error(Errc::SystemError, what + ": " + std::strerror(err));
}

// Populate page tables now, so the first message through a page does not
// pay a fault. MADV_POPULATE_* (Linux 5.14) does it without writing; older
// kernels get a read of every page.
void prefault(void* addr, std::uint64_t bytes, bool writable) noexcept {
  if (::madvise(addr, bytes, writable ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) == 0) return;
  const auto* p = static_cast<const unsigned char*>(addr);
  unsigned sink = 0;
  for (std::uint64_t off = 0; off < bytes; off += 4096) {
    sink += __atomic_load_n(p + off, __ATOMIC_RELAXED);
  }
  asm volatile("" : : "r"(sink));
}

std::string mode_text(std::uint32_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777u);
  return buf;
}

std::string temp_name() {
  static std::atomic<unsigned> counter{0};
  return temporary_segment_name(static_cast<std::uint32_t>(::getpid()),
                                counter.fetch_add(1, std::memory_order_relaxed));
}

}  // namespace

Segment::Segment() noexcept = default;
Segment::Segment(Segment&&) noexcept = default;
Segment& Segment::operator=(Segment&&) noexcept = default;
Segment::~Segment() = default;

std::optional<Segment> Segment::create(const std::string& name, std::uint64_t bytes,
                                       const std::function<void(void*)>& init,
                                       const Permissions& perms, Publish publish) {
  const std::string tmp = temp_name();
  Segment seg;
  seg.impl_ = std::make_unique<Impl>();
  try {
    seg.impl_->shm = bip::shared_memory_object(bip::create_only, tmp.c_str(), bip::read_write);
    const int fd = seg.impl_->shm.get_mapping_handle().handle;
    // The mode first, whatever the umask: nobody else may open the
    // temporary (or, once linked, the segment) unless asked for.
    if ((perms.gid >= 0 &&
         ::fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(perms.gid)) != 0) ||
        ::fchmod(fd, static_cast<mode_t>(perms.mode)) != 0) {
      const int err = errno;
      bip::shared_memory_object::remove(tmp.c_str());
      throw Error(err == EPERM ? Errc::PermissionDenied : Errc::SystemError,
                  "cannot set the permissions of shared memory for '" + name + "' (mode " +
                      mode_text(perms.mode) +
                      (perms.gid >= 0 ? ", group " + std::to_string(perms.gid) : "") +
                      "): " + std::strerror(err) + " — a group must be one this user belongs to");
    }
    seg.impl_->shm.truncate(static_cast<bip::offset_t>(bytes));
    // Reserve every page now: a tmpfs file is sparse, and touching a page
    // that /dev/shm has no room for is SIGBUS, not an error.
    if (const int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes)); rc != 0) {
      bip::shared_memory_object::remove(tmp.c_str());
      if (rc == ENOSPC)
        throw Error(Errc::NoSpace,
                    std::string(kShmDir) + " is full: cannot reserve " + std::to_string(bytes) +
                        " bytes for shared-memory segment '" + name +
                        "' — free space there (df -h " + std::string(kShmDir) +
                        "; `bus-inspect gc` removes dead segments), or make the topic smaller "
                        "(slot_count x slot_size)");
      throw_system(
          "cannot reserve " + std::to_string(bytes) + " bytes of shared memory for '" + name + "'",
          rc);
    }
    seg.impl_->region = bip::mapped_region(seg.impl_->shm, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    bip::shared_memory_object::remove(tmp.c_str());
    throw Error(Errc::SystemError, "cannot create shared memory for '" + name + "' (" +
                                       std::to_string(bytes) + " bytes): " + e.what() +
                                       " — check free space in " + std::string(kShmDir) +
                                       " (df -h " + std::string(kShmDir) + ")");
  }
  seg.data_ = seg.impl_->region.get_address();
  seg.size_ = bytes;
  seg.name_ = name;
  seg.access_ = Access::ReadWrite;
  seg.uid_ = static_cast<std::uint32_t>(::geteuid());
  seg.perms_ = perms;
  prefault(seg.data_, bytes, true);
  try {
    init(seg.data_);
  } catch (...) {
    bip::shared_memory_object::remove(tmp.c_str());
    throw;
  }
  if (publish == Publish::Replace) {
    // rename(2) swaps the name over atomically: an opener finds the old
    // segment or the new one, never none and never a half-built one.
    if (::rename(shm_path(tmp).c_str(), shm_path(name).c_str()) != 0) {
      const int err = errno;
      bip::shared_memory_object::remove(tmp.c_str());
      throw_system("cannot publish shared-memory segment '" + name + "'", err);
    }
    return seg;
  }
  // Publish: link(2) is atomic and fails if the name exists, so exactly one
  // creator wins and nobody ever opens a segment that is still being built.
  const int rc = ::link(shm_path(tmp).c_str(), shm_path(name).c_str());
  const int err = errno;
  bip::shared_memory_object::remove(tmp.c_str());
  if (rc != 0) {
    if (err == EEXIST) return std::nullopt;
    throw_system("cannot publish shared-memory segment '" + name + "'", err);
  }
  return seg;
}

std::optional<Segment> Segment::open(const std::string& name, Access access) {
  Segment seg;
  seg.impl_ = std::make_unique<Impl>();
  const auto mode = access == Access::ReadWrite ? bip::read_write : bip::read_only;
  try {
    seg.impl_->shm = bip::shared_memory_object(bip::open_only, name.c_str(), mode);
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::not_found_error) return std::nullopt;
    const int err = static_cast<int>(e.get_native_error());
    if (err == EACCES || err == EPERM) {
      struct stat st {};
      const bool known = ::stat(shm_path(name).c_str(), &st) == 0;
      throw Error(
          Errc::PermissionDenied,
          "permission denied opening shared-memory segment " + shm_path(name) +
              (access == Access::ReadWrite ? " for writing" : " for reading") +
              (known
                   ? " (owner uid " + std::to_string(st.st_uid) + ", group " +
                         std::to_string(st.st_gid) + ", mode " + mode_text(st.st_mode & 07777) + ")"
                   : std::string()) +
              ": segments are private to their creating user unless the bus was created with "
              "BusOptions::group; run as that user, or ask for the group to be set");
    }
    throw Error(Errc::SystemError, "cannot open shared-memory segment '" + name + "': " + e.what());
  }
  {
    struct stat st {};
    if (::fstat(seg.impl_->shm.get_mapping_handle().handle, &st) == 0) {
      seg.uid_ = st.st_uid;
      seg.perms_.mode = st.st_mode & 07777;
      seg.perms_.gid = st.st_gid;
    }
  }
  bip::offset_t size = 0;
  if (!seg.impl_->shm.get_size(size) || size <= 0) {
    // An empty object is not one of ours (ours are never visible before
    // they are full size): report it as truncated, with its name.
    throw Error(Errc::TruncatedSegment, "shared-memory segment '" + name +
                                            "' is empty; it is not a shmbus segment or was "
                                            "truncated — once no process uses it, remove it: rm " +
                                            shm_path(name));
  }
  try {
    seg.impl_->region = bip::mapped_region(seg.impl_->shm, mode);
  } catch (const bip::interprocess_exception& e) {
    throw Error(Errc::SystemError, "cannot map shared-memory segment '" + name + "': " + e.what());
  }
  seg.data_ = seg.impl_->region.get_address();
  seg.size_ = static_cast<std::uint64_t>(size);
  seg.name_ = name;
  seg.access_ = access;
  prefault(seg.data_, seg.size_, access == Access::ReadWrite);
  return seg;
}

bool Segment::exists(const std::string& name) noexcept {
  struct stat st {};
  return ::stat(shm_path(name).c_str(), &st) == 0;
}

bool Segment::remove(const std::string& name) noexcept {
  return bip::shared_memory_object::remove(name.c_str());
}

std::vector<std::string> Segment::list(const std::string& prefix) {
  std::vector<std::string> out;
  DIR* dir = ::opendir(std::string(kShmDir).c_str());
  if (dir == nullptr) return out;
  while (const dirent* ent = ::readdir(dir)) {
    const std::string n = ent->d_name;
    if (n.rfind(prefix, 0) == 0) out.push_back(n);
  }
  ::closedir(dir);
  return out;
}

}  // namespace shmbus::detail
