// Child processes for tests: a long-running child to talk to over pipes
// (Proc), and a command run to completion with its output collected (run()).
//
// Every wait has a timeout, and a child still running when its Proc goes out
// of scope is killed and reaped, so a failing test never leaves a process
// behind or hangs.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace shmbus::test {

// Writes all of `s` to `fd` (retrying short writes); gives up on an error.
void write_all(int fd, const std::string& s);

// A child process with its stdin and stdout on pipes (stderr inherited).
// Killed and reaped on destruction if still running.
class Proc {
 public:
  // Runs `body(in_fd, out_fd)` in a forked child, which then exits with its result.
  explicit Proc(const std::function<int(int, int)>& body);
  // Executes argv[0] (searched in PATH) with the arguments.
  explicit Proc(const std::vector<std::string>& argv);
  ~Proc();
  Proc(const Proc&) = delete;
  Proc& operator=(const Proc&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  // The next line of the child's stdout, or nullopt on EOF or timeout.
  std::optional<std::string> line(
      std::chrono::milliseconds timeout = std::chrono::milliseconds(30'000));
  // Reads lines until one starts with `prefix` and returns it; "" on EOF or
  // when a line takes longer than `timeout`.
  std::string line_starting(const std::string& prefix,
                            std::chrono::milliseconds timeout = std::chrono::milliseconds(60'000));
  void send(const std::string& s);
  void close_stdin();
  // Sends `sig` and returns at once (a killed child stays a zombie until
  // wait_exit()).
  void signal(int sig) const;
  // SIGKILL and wait until it is gone (so it is dead for every liveness check).
  int kill9();
  // Waits for the child to end: its exit status, or 128 + the signal that ended it.
  int wait_exit();

 private:
  void start(const std::function<void(int, int)>& child);

  pid_t pid_ = -1;
  int in_ = -1;
  int out_ = -1;
  std::unique_ptr<LineReader> reader_;
};

// The shmbus-testproc helper (SHMBUS_TESTPROC, set by ctest) with `args`.
[[nodiscard]] std::vector<std::string> testproc_argv(const std::vector<std::string>& args);

// A finished command: exit status (-2: killed at the timeout), stdout, stderr.
struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

std::ostream& operator<<(std::ostream& os, const Result& r);

// Runs argv (argv[0] searched in PATH) to completion, at most `timeout`,
// feeding it `input` on stdin.
Result run(const std::vector<std::string>& argv, const std::string& input = "",
           std::chrono::seconds timeout = std::chrono::seconds(60));

// The non-empty lines of `s`.
[[nodiscard]] std::vector<std::string> lines_of(const std::string& s);
// The blank-separated words of `l`.
[[nodiscard]] std::vector<std::string> words(const std::string& l);

}  // namespace shmbus::test
