#include "transport/backoff.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

namespace shmbus::bridge::transport {

Backoff::Backoff(BackoffPolicy policy, Random random)
    : policy_(policy), random_(std::move(random)) {
  if (policy_.initial.count() <= 0)
    throw std::invalid_argument(
        "backoff: initial delay must be > 0 ms (a zero delay loops tightly)");
  if (policy_.max < policy_.initial)
    throw std::invalid_argument("backoff: max delay must be >= the initial delay");
  if (!(policy_.multiplier >= 1.0))
    throw std::invalid_argument("backoff: multiplier must be >= 1 (the delay must not shrink)");
  if (policy_.floor.count() <= 0) policy_.floor = std::chrono::milliseconds{1};
  policy_.floor = std::min(policy_.floor, policy_.initial);
  if (!random_) {
    random_ = [engine = std::mt19937_64{std::random_device{}()}]() mutable { return engine(); };
  }
}

std::int64_t Backoff::uniform(std::int64_t lo, std::int64_t hi) {
  if (hi <= lo) return lo;
  const auto span = static_cast<std::uint64_t>(hi - lo) + 1;
  return lo + static_cast<std::int64_t>(random_() % span);
}

std::chrono::milliseconds Backoff::next() {
  const std::int64_t initial = policy_.initial.count();
  const std::int64_t cap = policy_.max.count();
  // initial * multiplier^attempts, computed in double and clamped before it can overflow.
  const double grown =
      static_cast<double>(initial) *
      std::pow(policy_.multiplier, static_cast<double>(std::min(attempts_, 1000u)));
  const std::int64_t ceiling =
      grown >= static_cast<double>(cap)
          ? cap
          : std::max<std::int64_t>(initial, static_cast<std::int64_t>(grown));
  std::int64_t delay = ceiling;
  switch (policy_.jitter) {
    case Jitter::None:
      break;
    case Jitter::Full:
      delay = uniform(policy_.floor.count(), ceiling);
      break;
    case Jitter::Decorrelated: {
      const std::int64_t prev = previous_ms_ == 0 ? initial : previous_ms_;
      const std::int64_t hi = prev > cap / 3 ? cap : prev * 3;
      delay = std::min(cap, uniform(initial, hi));
      break;
    }
  }
  previous_ms_ = delay;
  if (attempts_ < UINT32_MAX) ++attempts_;
  return std::chrono::milliseconds{delay};
}

void Backoff::reset() noexcept {
  attempts_ = 0;
  previous_ms_ = 0;
}

}  // namespace shmbus::bridge::transport
