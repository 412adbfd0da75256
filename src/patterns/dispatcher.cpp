#include "shmbus/patterns/dispatcher.hpp"
#include "shmbus/core/internals.hpp"

#include <pthread.h>
#include <sched.h>

#include "shmbus/detail/wait.hpp"

namespace shmbus {

Dispatcher::Dispatcher(Bus bus, DispatcherOptions options)
    : bus_(std::move(bus)), options_(std::move(options)) {
  if (options_.batch == 0) options_.batch = 1;
}

Dispatcher::~Dispatcher() {
  stop();
}

void Dispatcher::add(std::string_view topic, const TopicConfig& config, bool exact,
                     std::function<void(const Message&)> handler) {
  SubscriberOptions so;
  so.name = options_.name;
  so.start = options_.start;
  auto s = std::make_unique<Sub>(
      Sub{Subscriber(bus_.topic(topic, config, exact ? Match::Exact : Match::TypeOnly), so),
          std::move(handler)});
  s->sub.on_gap([this](const Gap& g) {
    drops_.fetch_add(g.count, std::memory_order_relaxed);
    if (on_gap_) on_gap_(g);
  });
  subs_.push_back(std::move(s));
}

std::size_t Dispatcher::poll_once() {
  std::size_t n = 0;
  for (auto& s : subs_) n += s->sub.poll(s->handler, options_.batch);
  if (n != 0) delivered_.fetch_add(n, std::memory_order_relaxed);
  return n;
}

bool Dispatcher::wait(std::chrono::nanoseconds timeout) {
  // Spin a little first: a message that arrives within microseconds should
  // not pay for a sleep and a wake-up.
  for (int i = 0; i < 2000; ++i) {
    for (auto& s : subs_)
      if (s->sub.ready()) return true;
    if (stop_.load(std::memory_order_relaxed)) return false;
    detail::cpu_relax();
  }
  std::vector<Subscriber*> subs;
  subs.reserve(subs_.size());
  for (auto& s : subs_) subs.push_back(&s->sub);
  return detail::wait_any(subs, detail::Internals::state(bus_)->header->doorbell.futex, timeout,
                          &stop_);
}

void Dispatcher::run() {
  running_.store(true, std::memory_order_release);
  while (!stop_.load(std::memory_order_acquire)) {
    if (poll_once() != 0) continue;
    switch (options_.idle) {
      case Idle::Spin:
        detail::cpu_relax();
        break;
      case Idle::Yield:
        ::sched_yield();
        break;
      case Idle::Block:
        (void)wait(detail::kMaxSleepSlice);
        break;
    }
  }
  running_.store(false, std::memory_order_release);
}

void Dispatcher::start() {
  if (thread_.joinable()) return;
  stop_.store(false, std::memory_order_release);
  thread_ = std::thread([this] {
    if (options_.cpu >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(options_.cpu, &set);
      (void)::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
    }
    run();
  });
}

void Dispatcher::stop() {
  stop_.store(true, std::memory_order_release);
  if (bus_.access() != Access::ReadWrite) return;  // nothing can be asleep on a bus we cannot write
  // Wake a loop asleep on the doorbell (and, harmlessly, any other sleeper
  // on this bus: they re-check and sleep again).
  auto& bell = detail::Internals::state(bus_)->header->doorbell.futex;
  bell.fetch_add(1, std::memory_order_release);
  detail::futex_wake_all(bell);
  if (thread_.joinable()) thread_.join();
}

}  // namespace shmbus
