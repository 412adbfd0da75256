// bus-inspect watch: the one-shot table, and the full-screen mode under tmux
// (refreshes in place; q, Ctrl-C and SIGTERM all restore the terminal).
#include <signal.h>

#include <algorithm>
#include <string>
#include <vector>

#include "inspect_harness.hpp"
#include "tmux.hpp"

namespace shmbus::test {
namespace {

TEST(BusInspectWatch, OneShotPrintsTheTable) {
  TestBus tb;
  Agent feed, strat;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 64 feed-under-test");
  strat.ok("subscriber " + tb.name() + " md.quotes strat-under-test");
  feed.ok("send 7");
  const Result r = inspect({"watch", tb.name(), "--once", "--interval", "0.1"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_NE(r.out.find("bus-inspect watch " + tb.name()), std::string::npos) << r.out;
  for (const std::string& s :
       {std::string("md.quotes"), std::string("feed-under-test"), std::string("strat-under-test"),
        std::to_string(feed.pid()), std::string("NEW DROPS"), std::string("RATE/S")})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "plain output has no escape codes";
  const Result two = inspect({"watch", tb.name(), "--iterations", "2", "--interval", "0.1"});
  ASSERT_EQ(two.code, 0) << two;
  std::size_t frames = 0;
  for (std::size_t at = 0; (at = two.out.find("bus-inspect watch", at)) != std::string::npos; ++at)
    ++frames;
  EXPECT_EQ(frames, 2u) << two.out;
}

// After watch has quit: the shell around it printed its exit code and the
// terminal's modes; the terminal is back to the normal screen, cursor shown,
// canonical input with echo.
void expect_restored(Tmux& t, const std::string& exit_line) {
  ASSERT_TRUE(t.screen_shows("stty-done")) << t.screen();
  const std::string s = t.screen();
  EXPECT_NE(s.find(exit_line), std::string::npos) << s;
  EXPECT_EQ(t.show("#{alternate_on}"), "0") << "left the alternate screen";
  EXPECT_EQ(t.show("#{cursor_flag}"), "1") << "cursor visible again";
  std::string modes = s;
  std::replace(modes.begin(), modes.end(), ';', ' ');
  const auto w = words(modes);
  EXPECT_NE(std::find(w.begin(), w.end(), "icanon"), w.end()) << s;
  EXPECT_NE(std::find(w.begin(), w.end(), "echo"), w.end()) << s;
  EXPECT_EQ(std::find(w.begin(), w.end(), "-icanon"), w.end()) << s;
  EXPECT_EQ(std::find(w.begin(), w.end(), "-echo"), w.end()) << s;
  EXPECT_EQ(s.find("feed-under-test"), std::string::npos)
      << "the table went with the alternate screen\n"
      << s;
}

TEST(BusInspectWatch, InteractiveUnderTmuxRefreshesAndRestoresTheTerminal) {
  if (!Tmux::available()) GTEST_SKIP() << "tmux is not installed (apt-get install -y tmux)";
  TestBus tb;
  Agent feed, strat;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 64 feed-under-test");
  strat.ok("subscriber " + tb.name() + " md.quotes strat-under-test");
  feed.ok("send 5");
  // The shell ignores SIGINT so that Ctrl-C reaches only watch (which sets
  // its own handler); after watch it prints how watch left the terminal.
  const std::string shell =
      "trap '' INT; '" + exe() + "' watch " + tb.name() +
      " --interval 0.2; echo \"exit=$?\"; stty -a; echo stty-done; exec sleep 600";

  for (const std::string how : {"q", "C-c", "TERM"}) {
    SCOPED_TRACE(how);
    Tmux t;
    t.start(shell);
    ASSERT_TRUE(t.screen_shows("feed-under-test")) << t.screen();
    EXPECT_EQ(t.show("#{alternate_on}"), "1") << "full screen";
    EXPECT_TRUE(t.screen_shows("q or Ctrl-C: quit"));
    // It refreshes in place: new messages show up without a keypress.
    feed.ok("send 100");
    EXPECT_TRUE(eventually([&] {
      for (const auto& l : lines_of(t.screen())) {
        const auto w = words(l);
        if (w.size() > 8 && w[0] == "md.quotes" &&
            w[8] == std::to_string(105 + (how == "q"     ? 0
                                          : how == "C-c" ? 100
                                                         : 200)))
          return true;
      }
      return false;
    })) << t.screen();
    if (how == "TERM") {
      const auto kids = children_of(static_cast<pid_t>(std::stol(t.show("#{pane_pid}"))));
      ASSERT_EQ(kids.size(), 1u);
      ::kill(kids[0], SIGTERM);
      expect_restored(t, "exit=143");
    } else {
      t.cmd({"send-keys", "-t", "w", how});
      expect_restored(t, "exit=0");
    }
  }
}

}  // namespace
}  // namespace shmbus::test
