// Helpers of the fault-injection tests: forked children that report back
// through a pipe, and bounded waits on them.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "test_util.hpp"

namespace shmbus::test {

// A forked child running `body`; `body` may write one line of text back
// (report()) and its return value is the exit status. Exceptions become
// status 100 with what() reported.
class Child {
 public:
  explicit Child(const std::function<int(Child&)>& body) {
    int fds[2];
    if (::pipe(fds) != 0) std::abort();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(fds[0]);
      wfd_ = fds[1];
      int rc = 0;
      try {
        rc = body(*this);
      } catch (const std::exception& e) {
        report(std::string("exception: ") + e.what());
        rc = 100;
      }
      ::_exit(rc);
    }
    ::close(fds[1]);
    rfd_ = fds[0];
    reader_.emplace(rfd_);
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      (void)::waitpid(pid_, nullptr, 0);
    }
    if (rfd_ >= 0) ::close(rfd_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // In the child: one line to the parent.
  void report(const std::string& line) const {
    const std::string l = line + "\n";
    (void)!::write(wfd_, l.data(), l.size());
  }
  // In the parent: the child's next line, or nullopt after `timeout`.
  std::optional<std::string> line(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    return reader_->next(timeout);
  }
  // In the parent: the exit status (or 128+signal), or -1 if the child is
  // still running after `timeout` (it is then killed).
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(pid_, SIGKILL);
        (void)::waitpid(pid_, nullptr, 0);
        reaped_ = true;
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  void kill(int sig) const { ::kill(pid_, sig); }
  // SIGSTOP, returning once the child is stopped: kill(2) only queues the
  // signal, and a child still running for a moment would take wake-ups and
  // advance its cursor after the test believes it frozen. False on timeout.
  [[nodiscard]] bool stop(std::chrono::milliseconds timeout = std::chrono::seconds(10)) const {
    ::kill(pid_, SIGSTOP);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WUNTRACED | WNOHANG);
      if (r == pid_ && WIFSTOPPED(status)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int rfd_ = -1;
  int wfd_ = -1;
  bool reaped_ = false;
  std::optional<LineReader> reader_;
};

}  // namespace shmbus::test
