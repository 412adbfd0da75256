// Helpers for the transport tests: the servers of tools/scripts/services.sh, child
// processes (Python clients, a private redis-server), free ports.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace shmbus::test {

// The value of a variable exported by services.sh, or a test failure that says how to
// get it (no silent skip: a test that did not run must not pass).
inline std::string service_env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    ADD_FAILURE() << name
                  << " is not set: these tests need the real servers. Run them through "
                     "tools/scripts/test.sh, or first `source tools/scripts/services.sh; "
                     "services_start` in the shell that runs ctest.";
    return {};
  }
  return v;
}
inline std::uint16_t service_port(const char* name) {
  const std::string v = service_env(name);
  return v.empty() ? 0 : static_cast<std::uint16_t>(std::stoi(v));
}

// A name unique to this process and call, for channels, streams, queues.
inline std::string unique_name(const std::string& tag) {
  static int counter = 0;
  return tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

// A loopback port nobody listens on right now (the kernel's choice).
inline std::uint16_t free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

// A child process with its stdout (and stderr) on a pipe; killed (SIGKILL) and reaped
// by the destructor if still running.
class Child {
 public:
  explicit Child(std::vector<std::string> argv) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::dup2(out[1], 2);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    ::close(out[1]);
    fd_ = out[0];
    reader_.emplace(fd_);
  }
  ~Child() {
    kill(SIGKILL);
    if (fd_ >= 0) ::close(fd_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // The next line of output, or nullopt on EOF/timeout.
  std::optional<std::string> line(std::chrono::milliseconds timeout) {
    return reader_->next(timeout);
  }
  // Waits for a line equal to `want`; returns the lines seen before it for diagnostics.
  bool expect_line(const std::string& want, std::chrono::milliseconds timeout, std::string& seen) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto l = line(std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now()));
      if (!l) return false;
      if (*l == want) return true;
      seen += *l + "\n";
    }
    return false;
  }
  void kill(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    if (sig == SIGKILL || sig == SIGTERM) {
      int st = 0;
      ::waitpid(pid_, &st, 0);
      pid_ = -1;
    }
  }
  // Exit status, or -1 on timeout.
  int wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (pid_ > 0) {
      int st = 0;
      const pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      if (std::chrono::steady_clock::now() >= deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return -1;
  }
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::optional<LineReader> reader_;
};

// A Python script run by Debian's /usr/bin/python3 (which has redis-py and pika).
inline std::unique_ptr<Child> python(const std::string& script,
                                     std::vector<std::string> args = {}) {
  std::vector<std::string> argv{"/usr/bin/python3", "-u", "-c", script};
  for (auto& a : args) argv.push_back(std::move(a));
  return std::make_unique<Child>(std::move(argv));
}

// Runs a command to completion (bounded); returns its exit status and output.
inline int run(const std::vector<std::string>& argv, std::string& output,
               std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  Child c(argv);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (auto l = c.line(std::chrono::duration_cast<std::chrono::milliseconds>(
             deadline - std::chrono::steady_clock::now()))) {
    output += *l + "\n";
  }
  return c.wait(std::chrono::milliseconds(std::max<long>(
      1, std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                               std::chrono::steady_clock::now())
             .count())));
}

}  // namespace shmbus::test
