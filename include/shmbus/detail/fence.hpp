// Memory fences, in one place because ThreadSanitizer does not model them.
//
// GCC refuses std::atomic_thread_fence under -fsanitize=thread (-Wtsan), and
// TSan would ignore it anyway. Every fence in shmbus orders accesses that TSan
// either sees as atomics (never reported) or cannot see at all (the seqlock
// payload copy, detail/ring.hpp), so under TSan each fence is replaced by
// what it compiles to on x86-64, where TSan builds run:
//   acquire / release fence -> a compiler barrier (x86 is TSO: loads are not
//                              reordered with loads, stores not with stores);
//   seq_cst fence           -> a locked read-modify-write, which drains the
//                              store buffer like MFENCE.
// Release builds, and any non-TSan build, use the real std fences.
#pragma once

#include <atomic>

#if defined(__SANITIZE_THREAD__)
#define SHMBUS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHMBUS_TSAN 1
#endif
#endif

namespace shmbus::detail {

#if defined(SHMBUS_TSAN)
#if !defined(__x86_64__)
#error "shmbus TSan builds rely on x86-64 fence semantics (see above)"
#endif
inline void fence_acquire() noexcept {
  asm volatile("" ::: "memory");
}
inline void fence_release() noexcept {
  asm volatile("" ::: "memory");
}
inline void fence_seq_cst() noexcept {
  static std::atomic<int> dummy{0};
  dummy.fetch_add(0, std::memory_order_seq_cst);
}
#else
inline void fence_acquire() noexcept {
  std::atomic_thread_fence(std::memory_order_acquire);
}
inline void fence_release() noexcept {
  std::atomic_thread_fence(std::memory_order_release);
}
inline void fence_seq_cst() noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
}
#endif

}  // namespace shmbus::detail
