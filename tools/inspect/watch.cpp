// bus-inspect watch BUS: a live table of the bus, refreshed in place.
//
// Interactive (stdout is a terminal, no --once / --iterations): the
// alternate screen, cursor hidden, keys read unbuffered without echo; the
// table is redrawn every --interval seconds, and at once on a resize.
// Quits on q, Ctrl-C (SIGINT), SIGTERM or SIGHUP, and always restores the
// terminal first (normal screen, cursor, line discipline). Ctrl-Z restores it,
// stops, and takes the screen back on fg. Exit code: 0 for q and Ctrl-C,
// 128 + signal for SIGTERM / SIGHUP.
//
// Plain (--once, --iterations N, or stdout not a terminal): frames are
// printed one after another with no escape codes, each after one interval
// (rates need two samples), and the tool exits after N of them (--once is
// one).
//
// Signals are blocked except inside ppoll(), so one that arrives between
// two checks is not lost until the next refresh: ppoll returns EINTR at once.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>
#include <thread>

#include "cli.hpp"

namespace inspect {

namespace {

volatile std::sig_atomic_t g_quit_signal = 0;
volatile std::sig_atomic_t g_resized = 0;
volatile std::sig_atomic_t g_suspend = 0;

extern "C" void on_signal(int sig) {
  if (sig == SIGWINCH) {
    g_resized = 1;
  } else if (sig == SIGTSTP) {
    g_suspend = 1;
  } else {
    g_quit_signal = sig;
  }
}

void write_all(const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(STDOUT_FILENO, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the terminal went away: nothing more to show
    off += static_cast<std::size_t>(n);
  }
}

// Signal dispositions for the interactive loop, restored on destruction.
class Signals {
 public:
  Signals() {
    sigemptyset(&set_);
    for (const int s : kSignals) sigaddset(&set_, s);
    ::sigprocmask(SIG_BLOCK, &set_, &old_mask_);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: ppoll must return EINTR
    for (std::size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &sa, &old_[i]);
  }
  ~Signals() {
    for (std::size_t i = 0; i < std::size(kSignals); ++i)
      ::sigaction(kSignals[i], &old_[i], nullptr);
    ::sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
  }
  Signals(const Signals&) = delete;
  Signals& operator=(const Signals&) = delete;
  // The mask to wait with (ours, with these signals open).
  [[nodiscard]] const sigset_t& wait_mask() const noexcept { return old_mask_; }

 private:
  static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP};
  sigset_t set_{};
  sigset_t old_mask_{};
  struct sigaction old_[std::size(kSignals)]{};
};

// The interactive terminal: alternate screen, hidden cursor, keys without
// echo or line buffering. leave() / the destructor put everything back.
class Screen {
 public:
  Screen() : keys_(::isatty(STDIN_FILENO) != 0) {
    if (keys_ && ::tcgetattr(STDIN_FILENO, &saved_) != 0) keys_ = false;
    enter();
  }
  ~Screen() { leave(); }
  Screen(const Screen&) = delete;
  Screen& operator=(const Screen&) = delete;

  void enter() {
    if (active_) return;
    if (keys_) {
      termios raw = saved_;
      raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);  // ISIG stays: Ctrl-C is SIGINT
      raw.c_cc[VMIN] = 1;
      raw.c_cc[VTIME] = 0;
      ::tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    write_all("\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J");
    active_ = true;
  }
  void leave() {
    if (!active_) return;
    write_all("\x1b[?25h\x1b[?1049l");
    if (keys_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
    active_ = false;
  }
  [[nodiscard]] bool keys() const noexcept { return keys_; }

  // Draws `lines` from the top left, cut to the window, clearing what the
  // previous frame left beyond them.
  void draw(const std::vector<std::string>& lines) const {
    winsize ws{};
    std::size_t cols = 80;
    std::size_t rows = 24;
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
      cols = ws.ws_col;
      rows = ws.ws_row;
    }
    std::string out = "\x1b[H";
    for (std::size_t i = 0; i < lines.size() && i < rows; ++i) {
      if (i != 0) out += "\r\n";
      out += lines[i].size() > cols ? lines[i].substr(0, cols) : lines[i];
      out += "\x1b[K";
    }
    out += "\x1b[J";
    write_all(out);
  }

 private:
  bool keys_;
  bool active_ = false;
  termios saved_{};
};

std::string interval_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", s);
  return buf;
}

std::vector<std::string> compose(const WatchOptions& o, const Frame& f, const Rates& r,
                                 bool interactive) {
  std::vector<std::string> lines;
  lines.push_back("bus-inspect watch " + o.bus + "   " + local_time(f.wall_ns) + "   every " +
                  interval_text(o.interval_s) + (interactive ? "   q or Ctrl-C: quit" : ""));
  lines.emplace_back();
  for (std::string& l : render_frame(f, r, true)) lines.push_back(std::move(l));
  return lines;
}

int plain(const WatchOptions& o, BusView& view) {
  const std::uint64_t frames = o.once ? 1 : o.iterations;
  Frame prev = view.sample(true);
  for (std::uint64_t i = 0; frames == 0 || i < frames; ++i) {
    std::this_thread::sleep_for(std::chrono::duration<double>(o.interval_s));
    Frame cur = view.sample(true);
    const Rates r = rates_between(prev, cur);
    std::string out = i == 0 ? "" : "\n";
    for (const std::string& l : compose(o, cur, r, false)) out += l + "\n";
    std::cout << out << std::flush;
    prev = std::move(cur);
  }
  return 0;
}

int interactive(const WatchOptions& o, BusView& view) {
  g_quit_signal = 0;
  g_resized = 0;
  g_suspend = 0;
  Signals signals;
  Screen screen;
  Frame prev = view.sample(true);
  Rates rates;
  std::vector<std::string> shown = compose(o, prev, rates, true);
  screen.draw(shown);
  bool keys = screen.keys();
  const auto period = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(o.interval_s));
  auto next = std::chrono::steady_clock::now() + period;
  for (;;) {
    const auto left = next - std::chrono::steady_clock::now();
    if (left > std::chrono::steady_clock::duration::zero()) {
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      timespec ts{};
      ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
      pollfd pfd{};
      pfd.fd = STDIN_FILENO;
      pfd.events = POLLIN;
      const int n = ::ppoll(&pfd, keys ? 1 : 0, &ts, &signals.wait_mask());
      if (g_quit_signal != 0) {
        screen.leave();
        return g_quit_signal == SIGINT ? 0 : 128 + g_quit_signal;
      }
      if (g_suspend != 0) {
        g_suspend = 0;
        screen.leave();
        ::raise(SIGSTOP);  // stops here; resumes on SIGCONT (fg)
        screen.enter();
        screen.draw(shown);
      }
      if (g_resized != 0) {
        g_resized = 0;
        screen.draw(shown);
      }
      if (n > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        char buf[64];
        const ssize_t got = ::read(STDIN_FILENO, buf, sizeof buf);
        if (got <= 0) {
          keys = false;  // end of input: only signals can stop us now
        } else {
          for (ssize_t i = 0; i < got; ++i)
            if (buf[i] == 'q' || buf[i] == 'Q' || buf[i] == '\x03') {
              screen.leave();
              return 0;
            }
        }
      }
      continue;
    }
    next += period;
    if (next < std::chrono::steady_clock::now()) next = std::chrono::steady_clock::now() + period;
    Frame cur = view.sample(true);
    rates = rates_between(prev, cur);
    shown = compose(o, cur, rates, true);
    screen.draw(shown);
    prev = std::move(cur);
  }
}

}  // namespace

int run_watch(const WatchOptions& o) {
  BusView view(o.bus);  // no such bus: a named error before the screen is touched
  const bool tty = ::isatty(STDOUT_FILENO) != 0;
  if (o.once || o.iterations != 0 || !tty) return plain(o, view);
  return interactive(o, view);
}

}  // namespace inspect
