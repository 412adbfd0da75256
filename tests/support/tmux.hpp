// A private tmux server for tests of full-screen programs: start a command in
// a session of known size, read its screen, ask tmux about the terminal's
// state (alternate screen, cursor) and send keys. The server and its socket
// go when the Tmux object does.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "proc.hpp"

namespace shmbus::test {

class Tmux {
 public:
  Tmux();
  ~Tmux();
  Tmux(const Tmux&) = delete;
  Tmux& operator=(const Tmux&) = delete;

  // Whether a tmux executable is installed.
  [[nodiscard]] static bool available();
  // `tmux -S <our socket> ARGS`.
  Result cmd(std::vector<std::string> args);
  // The visible text of session "w".
  std::string screen();
  // `display-message -p FORMAT` on session "w" (e.g. "#{alternate_on}"), without the newline.
  std::string show(const std::string& format);
  // Starts `shell_command` in a new 160x50 session "w" (a failed assertion if tmux refuses).
  void start(const std::string& shell_command);
  // Waits until the screen shows `text`; false after `timeout`.
  bool screen_shows(const std::string& text,
                    std::chrono::milliseconds timeout = std::chrono::seconds(20));

 private:
  std::string sock_;
};

// Pids of the children of `pid` (from /proc).
[[nodiscard]] std::vector<pid_t> children_of(pid_t pid);

}  // namespace shmbus::test
