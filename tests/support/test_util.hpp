// Helpers shared by the test suites.
#pragma once

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "payload.hpp"
#include "shmbus/detail/process.hpp"
#include "shmbus/shmbus.hpp"

namespace shmbus::test {

// FlatBuffers' JSON (JsonCodec::to_json) with the blanks outside strings removed: the compact
// form JsonCodec::append_json and the envelope write. A quote ends a string unless escaped;
// "\\\\" before it is an escaped backslash.
inline std::string without_blanks(const std::string& json) {
  std::string out;
  bool in_string = false, escaped = false;
  for (const char c : json) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      out += c;
      continue;
    }
    if (c == ' ') continue;
    if (c == '"') in_string = true;
    out += c;
  }
  return out;
}

// A bus name unique to this test process and call; its segments are removed
// when the guard goes out of scope.
class ScopedBus {
 public:
  explicit ScopedBus(const char* tag = "t") {
    static std::atomic<int> counter{0};
    name_ = std::string(tag) + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    shmbus::Bus::remove(name_);
  }
  ~ScopedBus() { shmbus::Bus::remove(name_); }
  ScopedBus(const ScopedBus&) = delete;
  ScopedBus& operator=(const ScopedBus&) = delete;
  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] shmbus::Bus open(const shmbus::BusOptions& o = {}) const {
    return shmbus::Bus::open_or_create(name_, o);
  }

 private:
  std::string name_;
};

// Waits for `cond` (polling with short sleeps) up to `timeout`; returns its
// last value. For conditions in another process, where nothing can be awaited
// directly; the test then asserts on the returned value.
inline bool eventually(const std::function<bool()>& cond,
                       std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return cond();
}

inline std::span<const std::byte> as_bytes(const void* p, std::size_t n) {
  return {static_cast<const std::byte*>(p), n};
}

// Scale for stress loops: SHMBUS_STRESS_SCALE=0.1 under sanitizers.
inline double stress_scale() {
  const char* s = std::getenv("SHMBUS_STRESS_SCALE");
  return s != nullptr ? std::atof(s) : 1.0;
}

// A process identity that cannot be alive: its pid is above any pid_max.
inline constexpr detail::Identity kDeadIdentity =
    (std::uint64_t{4190000} << detail::kIdentityPidShift) | 12345;

inline SubscriberOptions from_oldest() {
  SubscriberOptions o;
  o.start = Start::Oldest;
  return o;
}

inline shmbus::TopicConfig config(shmbus::Policy p, std::uint32_t slots,
                                  std::uint32_t slot_size = 64, std::uint32_t max_consumers = 8) {
  shmbus::TopicConfig c;
  c.policy = p;
  c.slot_count = slots;
  c.slot_size = slot_size;
  c.max_consumers = max_consumers;
  return c;
}

// Reads newline-terminated lines from a file descriptor (a child's stdout),
// with a timeout.
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}
  // The next line, or nullopt on EOF or timeout.
  std::optional<std::string> next(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string l = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return l;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return std::nullopt;
      char tmp[4096];
      const ssize_t n = ::read(fd_, tmp, sizeof tmp);
      if (n <= 0) return std::nullopt;
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_;
  std::string buf_;
};

}  // namespace shmbus::test
