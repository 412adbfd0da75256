#include "tmux.hpp"

#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

namespace shmbus::test {

Tmux::Tmux() : sock_("/tmp/bus-inspect-test-" + std::to_string(::getpid()) + ".sock") {}

Tmux::~Tmux() {
  (void)run({"tmux", "-S", sock_, "kill-server"});
  ::unlink(sock_.c_str());
}

bool Tmux::available() {
  return run({"tmux", "-V"}).code == 0;
}

Result Tmux::cmd(std::vector<std::string> args) {
  args.insert(args.begin(), {"tmux", "-S", sock_});
  return run(args);
}

std::string Tmux::screen() {
  return cmd({"capture-pane", "-p", "-t", "w"}).out;
}

std::string Tmux::show(const std::string& format) {
  std::string s = cmd({"display-message", "-p", "-t", "w", format}).out;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

void Tmux::start(const std::string& shell_command) {
  const Result r = cmd(
      {"-f", "/dev/null", "new-session", "-d", "-s", "w", "-x", "160", "-y", "50", shell_command});
  ASSERT_EQ(r.code, 0) << r;
}

bool Tmux::screen_shows(const std::string& text, std::chrono::milliseconds timeout) {
  return eventually([&] { return screen().find(text) != std::string::npos; }, timeout);
}

std::vector<pid_t> children_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::vector<pid_t> out;
  for (pid_t c; in >> c;) out.push_back(c);
  return out;
}

}  // namespace shmbus::test
