// bus-bench: forked worker processes, waited for with a deadline.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace busbench {

class Children {
 public:
  Children() = default;
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  // Kills (SIGKILL) and reaps whatever is still running.
  ~Children();

  // Forks a child that runs `body` and _exit()s with its return value
  // (never returning into the parent's code: no destructors, no atexit).
  void spawn(const std::function<int()>& body);

  // Waits for every child. If one fails (non-zero exit, signal) the others
  // are killed; if `timeout` passes, all are. Returns "" if all exited 0,
  // else what went wrong, prefixed with `what`.
  [[nodiscard]] std::string wait_all(std::chrono::seconds timeout, const std::string& what);

 private:
  std::vector<pid_t> pids_;
};

// Installs SIGINT/SIGTERM/SIGHUP handlers that kill every live child (and
// anything registered with track_pid) before the harness exits.
void install_cleanup_handlers();
// Registers / forgets a process the cleanup handlers must kill (redis-server).
void track_pid(pid_t pid);
void untrack_pid(pid_t pid);

}  // namespace busbench
