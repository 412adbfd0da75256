#include "shmbus/detail/wait.hpp"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <ctime>

namespace shmbus::detail {
namespace {

// std::atomic<uint32_t> is a standard-layout wrapper around one uint32_t
// (asserted lock-free in layout.hpp); the kernel sees that int.
std::uint32_t* futex_addr(std::atomic<std::uint32_t>& w) noexcept {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return reinterpret_cast<std::uint32_t*>(&w);
}

int membarrier(int cmd) noexcept {
  return static_cast<int>(::syscall(SYS_membarrier, cmd, 0, 0));
}

bool membarrier_supported() noexcept {
  static const bool supported = [] {
    const int mask = membarrier(MEMBARRIER_CMD_QUERY);
    return mask > 0 && (mask & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0 &&
           (mask & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0;
  }();
  return supported;
}

}  // namespace

bool register_producer_barrier() noexcept {
  static const bool ok =
      membarrier_supported() && membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
  return ok;
}

bool heavy_barrier() noexcept {
  return membarrier_supported() && membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0;
}

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                std::chrono::nanoseconds timeout) noexcept {
  if (timeout <= std::chrono::nanoseconds::zero()) return;
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
  // EAGAIN (word changed), EINTR and ETIMEDOUT all mean "go and look again".
  ::syscall(SYS_futex, futex_addr(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

int futex_wake_all(std::atomic<std::uint32_t>& word) noexcept {
  const long woken =
      ::syscall(SYS_futex, futex_addr(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
  return woken > 0 ? static_cast<int>(woken) : 0;
}

}  // namespace shmbus::detail
