// A spin-wait hint for the demo programs and the benchmarks (PAUSE on x86-64,
// YIELD on AArch64): for loops that wait on another process or the clock.
// Header-only, outside the library, like the rest of tools/common/.
#pragma once

namespace shmbus::tools {

inline void cpu_pause() noexcept {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace shmbus::tools
