#pragma once
// Backoff: the delay before the next reconnection attempt.
//
// Exponential growth from `initial` by `multiplier` per failed attempt, capped at `max`,
// with jitter so that many routes (or many bridges) that lost the same server do not
// reconnect in lock step:
//   None          delay = min(max, initial * multiplier^n)
//   Full          delay = uniform(floor, min(max, initial * multiplier^n))
//   Decorrelated  delay = min(max, uniform(initial, previous * 3))
// (the two jitter schemes of the AWS Architecture Blog's "Exponential Backoff And
// Jitter"). `floor` keeps full jitter from ever yielding a zero delay: a reconnect loop
// is never tight. reset() after a successful connect starts again from `initial`.
//
// The random source is injected (a function returning uniform 64-bit values), so tests
// are deterministic; the default is a std::mt19937_64 seeded from std::random_device.
// Not thread-safe: one Backoff per connection, used on its owner's thread.
#include <chrono>
#include <cstdint>
#include <functional>

namespace shmbus::bridge::transport {

enum class Jitter { None, Full, Decorrelated };

struct BackoffPolicy {
  std::chrono::milliseconds initial{100};
  std::chrono::milliseconds max{30'000};
  std::chrono::milliseconds floor{10};
  double multiplier = 2.0;
  Jitter jitter = Jitter::Full;
};

class Backoff {
 public:
  using Random = std::function<std::uint64_t()>;

  // Throws std::invalid_argument for a policy that would loop tightly or never grow
  // (initial <= 0, max < initial, multiplier < 1).
  explicit Backoff(BackoffPolicy policy = {}, Random random = {});

  // The delay to wait before the next attempt; counts the attempt.
  [[nodiscard]] std::chrono::milliseconds next();
  // After a success: the next failure waits `initial` again.
  void reset() noexcept;
  // Failed attempts since the last reset().
  [[nodiscard]] std::uint32_t attempts() const noexcept { return attempts_; }
  [[nodiscard]] const BackoffPolicy& policy() const noexcept { return policy_; }

 private:
  // Uniform in [lo, hi] (milliseconds).
  [[nodiscard]] std::int64_t uniform(std::int64_t lo, std::int64_t hi);

  BackoffPolicy policy_;
  Random random_;
  std::uint32_t attempts_ = 0;
  std::int64_t previous_ms_ = 0;  // decorrelated jitter grows from the previous delay
};

}  // namespace shmbus::bridge::transport
