#include "util.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <exception>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace busbench {

std::string cldemote_support() {
  bool by_cpuid = false;
#if defined(__x86_64__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) != 0) by_cpuid = ((c >> 25) & 1u) != 0;
#endif
  bool by_flags = false;
  {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("flags", 0) != 0) continue;
      by_flags = (line + ' ').find(" cldemote ") != std::string::npos;
      break;
    }
  }
  const std::string verdict =
      by_cpuid && by_flags ? "yes" : (!by_cpuid && !by_flags ? "no" : "unclear");
  return verdict + " (cpuid leaf 7 ECX bit 25: " + (by_cpuid ? "set" : "clear") +
         ", /proc/cpuinfo flag: " + (by_flags ? "present" : "absent") + ")";
}

namespace {

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  std::array<char, 256> buf{};
  while (std::fgets(buf.data(), static_cast<int>(buf.size()), p) != nullptr) out += buf.data();
  ::pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::uint64_t raw_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace

std::uint64_t TickClock::monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

void TickClock::init(int calibration_ms) {
#if defined(__x86_64__)
  tsc_ =
      read_first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource") == "tsc";
#endif
  if (!tsc_) {
    ns_per_tick_ = 1.0;
    return;
  }
  // Two samples of (raw ns, ticks), each taken as the tightest of a few
  // tries so that a preemption between the two reads does not skew them.
  const auto sample = [](std::uint64_t& ns, std::uint64_t& ticks) {
    std::uint64_t best = ~std::uint64_t{0};
    for (int k = 0; k < 16; ++k) {
      const std::uint64_t a = now();
      const std::uint64_t n = raw_ns();
      const std::uint64_t b = now();
      if (b - a < best) {
        best = b - a;
        ns = n;
        ticks = a + (b - a) / 2;
      }
    }
  };
  std::uint64_t n0 = 0, t0 = 0, n1 = 0, t1 = 0;
  sample(n0, t0);
  std::this_thread::sleep_for(std::chrono::milliseconds(calibration_ms));
  sample(n1, t1);
  ns_per_tick_ = static_cast<double>(n1 - n0) / static_cast<double>(t1 - t0);
}

void pin_to_cpu(int cpu) {
  pin_to_cpus({cpu});
}

void pin_to_cpus(const std::vector<int>& cpus) {
  if (const int err = shmbus::tools::pin_to_cpus(cpus); err != 0) {
    throw std::runtime_error(
        "cannot pin to CPU(s) " + shmbus::tools::cpu_list(cpus) + ": " + std::strerror(err) +
        " (see --cpus; `nproc` and `taskset -p $$` show what this process may use)");
  }
}

void prefault(void* p, std::size_t n) noexcept {
  if (::madvise(p, n, MADV_POPULATE_WRITE) == 0) return;
  // Older kernels: write one byte per page (a read would map the zero page).
  auto* bytes = static_cast<volatile unsigned char*>(p);
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  for (std::size_t off = 0; off < n; off += page) bytes[off] = bytes[off];
}

SharedRegion::SharedRegion(std::size_t bytes) : bytes_(bytes) {
  data_ = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (data_ == MAP_FAILED) {
    data_ = nullptr;
    throw std::runtime_error(std::string("mmap of ") + std::to_string(bytes) +
                             " bytes of shared memory failed: " + std::strerror(errno));
  }
  std::memset(data_, 0, bytes);
}

SharedRegion::~SharedRegion() {
  if (data_ != nullptr) ::munmap(data_, bytes_);
}

void SharedRegion::prefault() const noexcept {
  busbench::prefault(data_, bytes_);
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

std::string kernel_release() {
  utsname u{};
  if (::uname(&u) != 0) return "unknown";
  return std::string(u.sysname) + " " + u.release + " " + u.machine;
}

std::string host_name() {
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) return "unknown";
  return buf.data();
}

std::uint64_t steal_ticks() {
  // "cpu  user nice system idle iowait irq softirq steal ..."
  std::istringstream in(read_first_line("/proc/stat"));
  std::string cpu;
  std::uint64_t v[8] = {};
  in >> cpu;
  for (auto& x : v) in >> x;
  return v[7];
}

std::string git_commit(const std::string& source_dir) {
  const std::string head = run_command("git -C '" + source_dir + "' rev-parse HEAD 2>/dev/null");
  if (head.empty()) return "unknown";
  const std::string dirty = run_command("git -C '" + source_dir +
                                        "' status --porcelain --untracked-files=no 2>/dev/null");
  return dirty.empty() ? head : head + "-dirty";
}

double load_average() {
  std::istringstream in(read_first_line("/proc/loadavg"));
  double l = 0;
  in >> l;
  return l;
}

std::string unique_name(std::string_view what) {
  static std::atomic<unsigned> counter{0};
  return "shmbus-bench-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)) +
         "-" + std::string(what);
}

double quote_build_ns(int cpu, std::uint64_t messages, int repeats) {
  // On a thread of its own: pinning it leaves the caller's affinity alone.
  // What it throws (a CPU it may not use) is rethrown here, not terminate().
  double out = 0;
  std::exception_ptr error;
  std::thread t([&]() noexcept {
    try {
      pin_to_cpu(cpu);
    } catch (...) {
      error = std::current_exception();
      return;
    }
    QuotePayload q;
    std::vector<double> per;
    std::size_t sink = 0;
    for (int r = 0; r < repeats; ++r) {
      const std::uint64_t t0 = TickClock::monotonic_ns();
      for (std::uint64_t i = 0; i < messages; ++i) {
        q.prepare(i, (i & 1) != 0);
        sink += q.size();
      }
      const std::uint64_t t1 = TickClock::monotonic_ns();
      per.push_back(static_cast<double>(t1 - t0) / static_cast<double>(messages));
    }
    std::sort(per.begin(), per.end());
    out = sink == 0 ? 0 : per[per.size() / 2];
  });
  t.join();
  if (error) std::rethrow_exception(error);
  return out;
}

}  // namespace busbench
