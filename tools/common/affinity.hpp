// CPU placement for the demo programs and the benchmarks: the one place that
// builds a cpu_set_t. Header-only, on purpose outside the library (which pins
// nothing itself but a Dispatcher's own thread, on request).
//
// The calls set the affinity of the calling thread (sched_setaffinity(0)
// names the caller); a process that pins itself before starting threads
// passes it on to them. Errors come back as an errno value, so that each
// program words the message for its own flags.
#pragma once

#include <sched.h>

#include <cerrno>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

namespace shmbus::tools {

// Restricts the calling thread to `cpus`. Returns 0, or the errno of the
// failure (EINVAL: none of them exists or may be used by this process).
[[nodiscard]] inline int pin_to_cpus(std::span<const int> cpus) noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (const int c : cpus) {
    if (c < 0 || c >= CPU_SETSIZE) return EINVAL;
    CPU_SET(static_cast<unsigned>(c), &set);
  }
  return ::sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
}

// Pins the calling thread to one CPU; 0 or an errno value.
[[nodiscard]] inline int pin_to_cpu(int cpu) noexcept {
  return pin_to_cpus(std::span<const int>(&cpu, 1));
}

// The CPUs the calling thread may run on, ascending (empty if unknown).
[[nodiscard]] inline std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(static_cast<unsigned>(c), &set)) out.push_back(c);
  return out;
}

// "0,2,5": a list of CPUs for messages.
[[nodiscard]] inline std::string cpu_list(std::span<const int> cpus) {
  std::string s;
  for (const int c : cpus) {
    if (!s.empty()) s += ',';
    s += std::to_string(c);
  }
  return s;
}

}  // namespace shmbus::tools
