// bus-inspect's command line: bad usage exits 2 and says why, --help on every
// subcommand, and the named errors (no such bus, no such topic, bad names) exit 1.
#include <unistd.h>

#include <string>
#include <vector>

#include "inspect_harness.hpp"

namespace shmbus::test {
namespace {

// ------------------------------------------------------------------ usage and help

TEST(BusInspectUsage, BadUsageExitsWithTwoAndSaysWhy) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"frobnicate"},
      {"list", "--bogus"},
      {"tail", "somebus"},
      {"tail", "somebus", "sometopic", "-n", "-1"},
      {"tail", "somebus", "sometopic", "-n", "ten"},
      {"publish", "b", "t", "--json", "{}", "--raw-hex", "00"},
      {"watch", "b", "--once", "--iterations", "2"},
      {"watch", "b", "--interval", "0"},
      {"schema", "b"},
      {"gc", "a", "b"},
  };
  for (const auto& args : cases) {
    const Result r = inspect(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.code, 2) << joined << "\n" << r;
    EXPECT_EQ(r.err.rfind("bus-inspect: ", 0), 0u) << joined << "\n" << r;
    EXPECT_NE(r.err.find("--help"), std::string::npos) << "points to the help: " << joined << "\n"
                                                       << r;
    EXPECT_TRUE(r.out.empty()) << joined << "\n" << r;
  }
  EXPECT_NE(inspect({"frobnicate"}).err.find("unknown subcommand 'frobnicate'"), std::string::npos);
}

TEST(BusInspectUsage, HelpOnEverySubcommand) {
  const Result top = inspect({"--help"});
  EXPECT_EQ(top.code, 0) << top;
  for (const char* sub : {"list", "tail", "publish", "watch", "schema", "gc"}) {
    EXPECT_NE(top.out.find(sub), std::string::npos) << sub;
    const Result r = inspect({sub, "--help"});
    EXPECT_EQ(r.code, 0) << sub << "\n" << r;
    EXPECT_NE(r.out.find(std::string("Usage: bus-inspect ") + sub), std::string::npos) << r;
    EXPECT_NE(r.out.find("Exit codes"), std::string::npos) << r;
  }
}

// ------------------------------------------------------------------ named errors

TEST(BusInspectErrors, NoSuchBusNoSuchTopicAndBadNamesExitWithOne) {
  TestBus tb;
  Agent p;
  p.ok("publisher " + tb.name() + " md.quotes quote lossy 64 feed-under-test");
  const std::string nobus = "nosuch-" + std::to_string(::getpid());
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"list", nobus},
                                             {"tail", nobus, "t"},
                                             {"publish", nobus, "t", "--json", "{}"},
                                             {"watch", nobus, "--once"},
                                             {"schema", nobus, "t"},
                                             {"gc", nobus}}) {
    const Result r = inspect(args);
    EXPECT_EQ(r.code, 1) << args[0] << "\n" << r;
    EXPECT_NE(r.err.find("bus-inspect: no bus named '" + nobus + "'"), std::string::npos)
        << args[0] << "\n"
        << r;
  }
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"tail", tb.name(), "md.nope"},
                                             {"publish", tb.name(), "md.nope", "--json", "{}"},
                                             {"schema", tb.name(), "md.nope"}}) {
    const Result r = inspect(args);
    EXPECT_EQ(r.code, 1) << args[0] << "\n" << r;
    EXPECT_NE(r.err.find("no topic 'md.nope' on bus '" + tb.name() + "'"), std::string::npos) << r;
    EXPECT_NE(r.err.find("its topics are: md.quotes"), std::string::npos) << "names what exists\n"
                                                                          << r;
  }
  const Result bad = inspect({"list", "no/such bus"});
  EXPECT_EQ(bad.code, 1) << bad;
  EXPECT_NE(bad.err.find("invalid bus name"), std::string::npos) << bad;
  const Result badtopic = inspect({"tail", tb.name(), "..x"});
  EXPECT_EQ(badtopic.code, 1) << badtopic;
  EXPECT_NE(badtopic.err.find("topic name"), std::string::npos) << badtopic;
}

}  // namespace
}  // namespace shmbus::test
