#include "proc.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace shmbus::test {

void write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

namespace {

// execvp(argv); returns only if it failed.
void exec(const std::vector<std::string>& argv) {
  std::vector<char*> a;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  ::execvp(a[0], a.data());
}

int exit_code(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

// ------------------------------------------------------------------ Proc

Proc::Proc(const std::function<int(int, int)>& body) {
  start([&](int in, int out) { ::_exit(body(in, out)); });
}

Proc::Proc(const std::vector<std::string>& argv) {
  start([&](int in, int out) {
    ::dup2(in, STDIN_FILENO);
    ::dup2(out, STDOUT_FILENO);
    exec(argv);
    ::_exit(127);
  });
}

Proc::~Proc() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (in_ >= 0) ::close(in_);
  if (out_ >= 0) ::close(out_);
}

std::optional<std::string> Proc::line(std::chrono::milliseconds timeout) {
  return reader_->next(timeout);
}

std::string Proc::line_starting(const std::string& prefix, std::chrono::milliseconds timeout) {
  for (;;) {
    const auto l = line(timeout);
    if (!l) return "";
    if (l->rfind(prefix, 0) == 0) return *l;
  }
}

void Proc::send(const std::string& s) {
  write_all(in_, s);
}

void Proc::close_stdin() {
  ::close(in_);
  in_ = -1;
}

void Proc::signal(int sig) const {
  ::kill(pid_, sig);
}

int Proc::kill9() {
  signal(SIGKILL);
  return wait_exit();
}

int Proc::wait_exit() {
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return exit_code(status);
}

void Proc::start(const std::function<void(int, int)>& child) {
  int in[2];
  int out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  std::fflush(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork");
  if (pid_ == 0) {
    ::close(in[1]);
    ::close(out[0]);
    child(in[0], out[1]);
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  in_ = in[1];
  out_ = out[0];
  reader_ = std::make_unique<LineReader>(out_);
}

std::vector<std::string> testproc_argv(const std::vector<std::string>& args) {
  const char* exe = std::getenv("SHMBUS_TESTPROC");
  if (exe == nullptr) throw std::runtime_error("SHMBUS_TESTPROC is not set (run through ctest)");
  std::vector<std::string> argv{exe};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// ------------------------------------------------------------------ run()

std::ostream& operator<<(std::ostream& os, const Result& r) {
  return os << "exit " << r.code << "\n--- stdout:\n" << r.out << "\n--- stderr:\n" << r.err;
}

Result run(const std::vector<std::string>& argv, const std::string& input,
           std::chrono::seconds timeout) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe");
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    exec(argv);
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  write_all(in[1], input);  // inputs here are small: the pipe holds them
  ::close(in[1]);
  Result r;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool out_open = true, err_open = true, timed_out = false;
  while (out_open || err_open) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p[2] = {{out_open ? out[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}};
    if (::poll(p, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || p[i].revents == 0) continue;
      char tmp[8192];
      const ssize_t n = ::read(p[i].fd, tmp, sizeof tmp);
      if (n <= 0) {
        (i == 0 ? out_open : err_open) = false;
      } else {
        (i == 0 ? r.out : r.err).append(tmp, static_cast<std::size_t>(n));
      }
    }
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(out[0]);
  ::close(err[0]);
  r.code = timed_out ? -2 : exit_code(status);
  return r;
}

// ------------------------------------------------------------------ text

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

std::vector<std::string> words(const std::string& l) {
  std::istringstream in(l);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  return w;
}

}  // namespace shmbus::test
