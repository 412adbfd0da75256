#include "shmbus/detail/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <array>
#include <atomic>
#include <charconv>
#include <string_view>

#include "shmbus/error.hpp"

namespace shmbus::detail {
namespace {

struct StatFields {
  char state = '?';
  std::uint64_t start_ticks = 0;
  bool ok = false;
  int err = 0;  // errno of a failed open/read, 0 if the file was read
};

std::atomic<std::uint64_t> g_unknown{0};

// Reads /proc/<pid>/stat with plain syscalls (no iostreams: this runs while a
// producer is blocked, and in processes that just forked).
StatFields read_stat(std::uint32_t pid) {
  StatFields out;
  char path[48];
  std::snprintf(path, sizeof path, "/proc/%u/stat", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    out.err = errno;
    return out;
  }
  std::array<char, 1024> buf{};
  const ssize_t n = ::read(fd, buf.data(), buf.size() - 1);
  out.err = n < 0 ? errno : 0;
  ::close(fd);
  if (n <= 0) {
    if (out.err == 0) out.err = ESRCH;  // an empty stat: the process is gone
    return out;
  }
  const std::string_view text(buf.data(), static_cast<std::size_t>(n));
  // The command name (field 2) is in parentheses and may itself contain
  // spaces and ')': the fields after it start after the LAST ')'.
  const auto close_paren = text.rfind(')');
  if (close_paren == std::string_view::npos || close_paren + 2 >= text.size()) return out;
  std::string_view rest = text.substr(close_paren + 2);
  // rest begins with field 3 (state); start time is field 22.
  int field = 3;
  while (!rest.empty()) {
    const auto sp = rest.find(' ');
    const std::string_view tok = rest.substr(0, sp);
    if (field == 3 && !tok.empty()) out.state = tok.front();
    if (field == 22) {
      std::uint64_t v = 0;
      const auto r = std::from_chars(tok.data(), tok.data() + tok.size(), v);
      if (r.ec != std::errc{}) return out;
      out.start_ticks = v;
      out.ok = true;
      return out;
    }
    if (sp == std::string_view::npos) break;
    rest.remove_prefix(sp + 1);
    ++field;
  }
  return out;
}

Identity pack(std::uint32_t pid, std::uint64_t start_ticks) {
  return (static_cast<std::uint64_t>(pid & kIdentityPidMask) << kIdentityPidShift) |
         (start_ticks & kIdentityStartMask);
}

}  // namespace

Identity identity_of(std::uint32_t pid) {
  const StatFields f = read_stat(pid);
  if (!f.ok || f.state == 'Z' || f.state == 'X') return 0;
  return pack(pid, f.start_ticks);
}

Identity self_identity() {
  // Cached per pid so a forked child recomputes its own.
  static std::atomic<std::uint64_t> cached_pid{0};
  static std::atomic<Identity> cached{0};
  const auto pid = static_cast<std::uint32_t>(::getpid());
  // relaxed: both words are a per-process cache; a race recomputes the same value.
  if (cached_pid.load(std::memory_order_relaxed) == pid) {
    const Identity id = cached.load(std::memory_order_relaxed);
    if (identity_pid(id) == pid) return id;
  }
  const Identity id = identity_of(pid);
  cached.store(id, std::memory_order_relaxed);
  cached_pid.store(pid, std::memory_order_relaxed);
  return id;
}

Identity require_self_identity() {
  const Identity id = self_identity();
  if (id != 0) return id;
  const StatFields f = read_stat(static_cast<std::uint32_t>(::getpid()));
  throw Error(Errc::SystemError,
              std::string("cannot read /proc/self/stat to establish this process's identity: ") +
                  std::strerror(f.err != 0 ? f.err : EIO) +
                  " — shmbus needs one free file descriptor and a readable /proc (raise the "
                  "descriptor limit, `ulimit -n`)");
}

Liveness liveness(Identity id) {
  if (id == 0) return Liveness::Dead;
  const std::uint32_t pid = identity_pid(id);
  // kill(pid, 0) needs no descriptor and sees through hidepid: ESRCH is
  // proof of death; success or EPERM says the pid exists (ours or not).
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return Liveness::Dead;
  const StatFields f = read_stat(pid);
  if (!f.ok) {
    if (f.err == ESRCH) return Liveness::Dead;  // exited between kill() and the read
    // ENOENT here means hidepid (kill() just saw the pid), or a race with
    // its exit: either way not proof. EMFILE, ENFILE, EACCES, ...: unknown.
    if (f.err == ENOENT && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
      return Liveness::Dead;
    g_unknown.fetch_add(1, std::memory_order_relaxed);  // relaxed: a counter
    return Liveness::Unknown;
  }
  if (f.state == 'Z' || f.state == 'X') return Liveness::Dead;
  return pack(pid, f.start_ticks) == (id & kIdentityMask) ? Liveness::Alive : Liveness::Dead;
}

std::uint64_t liveness_unknown_count() noexcept {
  return g_unknown.load(std::memory_order_relaxed);
}

std::string process_name(std::uint32_t pid) {
  char path[48];
  std::snprintf(path, sizeof path, "/proc/%u/comm", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char buf[64];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n <= 0) return {};
  std::string name(buf, static_cast<std::size_t>(n));
  while (!name.empty() && (name.back() == '\n' || name.back() == '\0')) name.pop_back();
  return name;
}

}  // namespace shmbus::detail
