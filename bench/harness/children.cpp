#include "children.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace busbench {

namespace {

// Processes the signal handler kills: a fixed table of atomics, so the
// handler reads it without locks or allocation.
constexpr std::size_t kMaxTracked = 64;
std::array<std::atomic<pid_t>, kMaxTracked> g_tracked{};

void on_fatal_signal(int sig) {
  for (auto& p : g_tracked) {
    const pid_t pid = p.load(std::memory_order_relaxed);
    if (pid > 0) ::kill(pid, SIGKILL);
  }
  // Restore the default action and re-raise, so the exit status says why.
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + ::strsignal(WTERMSIG(status));
  return "stopped";
}

}  // namespace

void track_pid(pid_t pid) {
  for (auto& p : g_tracked) {
    pid_t expected = 0;
    if (p.compare_exchange_strong(expected, pid)) return;
  }
}

void untrack_pid(pid_t pid) {
  for (auto& p : g_tracked) {
    pid_t expected = pid;
    if (p.compare_exchange_strong(expected, 0)) return;
  }
}

void install_cleanup_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  for (const int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
}

Children::~Children() {
  for (const pid_t pid : pids_) {
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    untrack_pid(pid);
  }
}

void Children::spawn(const std::function<int()>& body) {
  std::fflush(nullptr);  // nothing buffered may be written twice
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    // The child must not act on the parent's signal handlers' table.
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGHUP, SIG_DFL);
    int rc = 3;
    try {
      rc = body();
    } catch (...) {
      rc = 3;
    }
    ::_exit(rc);
  }
  pids_.push_back(pid);
  track_pid(pid);
}

std::string Children::wait_all(std::chrono::seconds timeout, const std::string& what) {
  // The parent sleeps in poll() on pidfds until a child exits or the
  // deadline passes: it must not wake up periodically, since any wake-up
  // lands on one of the two measured CPUs and shows up as a latency spike.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string failure;
  while (!pids_.empty()) {
    std::vector<pollfd> fds;
    for (const pid_t pid : pids_) {
      const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
      fds.push_back(pollfd{fd, POLLIN, 0});
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    const bool have_fds =
        std::all_of(fds.begin(), fds.end(), [](const pollfd& p) { return p.fd >= 0; });
    if (have_fds && left.count() > 0) {
      (void)::poll(fds.data(), fds.size(),
                   static_cast<int>(std::min<long long>(left.count(), 1'000'000)));
    } else if (left.count() > 0) {
      std::this_thread::sleep_for(
          std::chrono::milliseconds(5));  // no pidfd_open: poll the slow way
    }
    for (const pollfd& p : fds)
      if (p.fd >= 0) ::close(p.fd);

    for (std::size_t k = 0; k < pids_.size();) {
      int status = 0;
      const pid_t r = ::waitpid(pids_[k], &status, WNOHANG);
      if (r != pids_[k]) {
        ++k;
        continue;
      }
      untrack_pid(r);
      pids_.erase(pids_.begin() + static_cast<std::ptrdiff_t>(k));
      if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) && failure.empty()) {
        failure = what + ": a worker process " + describe_status(status);
        for (const pid_t p : pids_) ::kill(p, SIGKILL);
      }
    }
    if (!pids_.empty() && std::chrono::steady_clock::now() >= deadline) {
      if (failure.empty()) {
        failure = what + ": did not finish within " + std::to_string(timeout.count()) +
                  " s (see --timeout); the worker processes were killed";
      }
      for (const pid_t p : pids_) ::kill(p, SIGKILL);
    }
  }
  return failure;
}

}  // namespace busbench
