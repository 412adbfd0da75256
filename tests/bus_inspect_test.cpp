// bus-inspect, driven through the real executable against live buses whose
// producers and consumers are separate processes.
//
// The participants are "agents": children forked from this test that run a
// small command loop (publisher, subscriber, send, drain, ...) over pipes,
// so each step happens when the test says and the test knows when it is
// done: no sleep stands in for a condition that can be awaited. Raw traffic
// also comes from the project's shmbus-testproc. bus-inspect itself runs as
// a child with its stdin/stdout/stderr on pipes, and `watch` also under tmux.
//
// The test process never creates a bus itself (only agents do), so what gc
// decides about a directory's creator is about the agents.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "shmbus/detail/layout.hpp"
#include "shmbus/msg/md_quote_generated.h"
#include "test_util.hpp"

namespace shmbus::test {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

// ------------------------------------------------------------------ processes

void write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

// A child process with its stdin and stdout on pipes (stderr inherited).
// Killed and reaped on destruction if still running.
class Proc {
 public:
  // Runs `body(in_fd, out_fd)` in a forked child, which then exits with its result.
  explicit Proc(const std::function<int(int, int)>& body) {
    start([&](int in, int out) { ::_exit(body(in, out)); });
  }
  // Executes argv[0] (searched in PATH) with the arguments.
  explicit Proc(const std::vector<std::string>& argv) {
    start([&](int in, int out) {
      ::dup2(in, STDIN_FILENO);
      ::dup2(out, STDOUT_FILENO);
      std::vector<char*> a;
      for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      ::execvp(a[0], a.data());
      ::_exit(127);
    });
  }
  ~Proc() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (in_ >= 0) ::close(in_);
    if (out_ >= 0) ::close(out_);
  }
  Proc(const Proc&) = delete;
  Proc& operator=(const Proc&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  std::optional<std::string> line(std::chrono::milliseconds timeout = 30s) {
    return reader_->next(timeout);
  }
  void send(const std::string& s) { write_all(in_, s); }
  void close_stdin() {
    ::close(in_);
    in_ = -1;
  }
  void signal(int sig) const { ::kill(pid_, sig); }
  // SIGKILL and wait until it is gone (so it is dead for every liveness check).
  int kill9() {
    signal(SIGKILL);
    return wait_exit();
  }
  int wait_exit() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  template <class F>
  void start(F&& child) {
    int in[2];
    int out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe");
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

  pid_t pid_ = -1;
  int in_ = -1;
  int out_ = -1;
  std::unique_ptr<LineReader> reader_;
};

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

std::ostream& operator<<(std::ostream& os, const Result& r) {
  return os << "exit " << r.code << "\n--- stdout:\n" << r.out << "\n--- stderr:\n" << r.err;
}

// Runs argv to completion (at most `timeout`), feeding it `input` on stdin.
Result run(const std::vector<std::string>& argv, const std::string& input = "",
           std::chrono::seconds timeout = 60s) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe");
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execvp(a[0], a.data());
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
  r.code = timed_out ? -2 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string exe() {
  const char* e = std::getenv("SHMBUS_TOOL_BUS_INSPECT");
  if (e == nullptr)
    throw std::runtime_error("SHMBUS_TOOL_BUS_INSPECT is not set (run through ctest)");
  return e;
}

Result inspect(std::vector<std::string> args, const std::string& input = "") {
  args.insert(args.begin(), exe());
  return run(args, input);
}

// `bus-inspect ARGS --json`, parsed.
Json inspect_json(std::vector<std::string> args) {
  args.emplace_back("--json");
  const Result r = inspect(args);
  EXPECT_EQ(r.code, 0) << r;
  return Json::parse(r.out);
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

// ------------------------------------------------------------------ agents

std::vector<std::string> words(const std::string& l) {
  std::istringstream in(l);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  return w;
}

// The bytes of raw message `seq` sent by agents: the self-checking payload.
std::vector<std::byte> raw_payload(std::uint64_t seq) {
  std::vector<std::byte> b(24);
  fill_payload(b.data(), b.size(), seq);
  return b;
}

std::string hex(std::span<const std::byte> b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (const std::byte x : b) {
    s += kHex[std::to_integer<unsigned>(x) >> 4];
    s += kHex[std::to_integer<unsigned>(x) & 15];
  }
  return s;
}

// An agent's command loop. Commands (one per line), each answered by a
// line starting "ok" (or "error <code> <what>"):
//   publisher BUS TOPIC quote|raw lossy|reliable SLOTS NAME   create the topic, take the producer
//   role send N      publish N messages (waits on a full reliable ring); "ok last=S" try N
//   try_publish N messages, never waiting; "ok last=S would_block=W" release     give the producer
//   role back subscriber BUS TOPIC NAME                               register as a consumer (from
//   now on) drain       read everything ready: one "msg ..." line each, then "ok count=N drops=D"
// Quote `seq` carries symbol "SYM", instrument_id = seq, bid_px = seq + 0.25, ask_px = seq + 0.5.
int agent_main(int in, int out) {
  std::optional<Bus> bus;
  std::optional<Publisher> pub;
  std::optional<Subscriber> sub;
  bool typed = true;
  LineReader reader(in);
  const auto reply = [&](const std::string& s) { write_all(out, s + "\n"); };
  for (;;) {
    const auto line = reader.next(std::chrono::hours(1));
    if (!line) return 0;
    const std::vector<std::string> w = words(*line);
    if (w.empty()) continue;
    try {
      if (w[0] == "publisher" && w.size() == 7) {
        bus.emplace(Bus::open_or_create(w[1]));
        TopicConfig c;
        c.policy = w[4] == "reliable" ? Policy::Reliable : Policy::Lossy;
        c.slot_count = static_cast<std::uint32_t>(std::stoul(w[5]));
        c.slot_size = 256;
        c.max_consumers = 8;
        typed = w[3] == "quote";
        if (typed) c.type = type_of<md::Quote>();
        PublisherOptions o;
        o.name = w[6];
        pub.emplace(bus->topic(w[2], c), o);
        reply("ok");
      } else if ((w[0] == "send" || w[0] == "try") && w.size() == 2) {
        const std::uint64_t n = std::stoull(w[1]);
        std::uint64_t would_block = 0;
        for (std::uint64_t i = 0; i < n; ++i) {
          const std::uint64_t seq = pub->next_sequence();
          PublishResult r{};
          if (typed) {
            flatbuffers::FlatBufferBuilder fbb;
            const double px = static_cast<double>(seq);
            fbb.Finish(md::CreateQuoteDirect(fbb, "SYM", seq, "XTST", 0, 0, seq, px + 0.25, 100.0,
                                             px + 0.5, 200.0),
                       md::QuoteIdentifier());
            r = w[0] == "send" ? pub->publish(fbb, 10s) : pub->try_publish(fbb);
          } else {
            const auto b = raw_payload(seq);
            r = w[0] == "send" ? pub->publish(b, 10s) : pub->try_publish(b);
          }
          if (r == PublishResult::WouldBlock) {
            ++would_block;
          } else if (r != PublishResult::Ok) {
            throw Error(Errc::Timeout, "publish: " + std::string(to_string(r)));
          }
        }
        reply("ok last=" + std::to_string(pub->next_sequence() - 1) +
              " would_block=" + std::to_string(would_block));
      } else if (w[0] == "release") {
        pub.reset();
        reply("ok");
      } else if (w[0] == "subscriber" && w.size() == 4) {
        bus.emplace(Bus::open(w[1]));
        SubscriberOptions o;
        o.name = w[3];
        sub.emplace(bus->open_topic(w[2]), o);
        typed = !sub->topic().type_name().empty();
        reply("ok");
      } else if (w[0] == "drain") {
        std::uint64_t count = 0;
        for (;;) {
          const std::size_t got = sub->poll(
              [&](const Message& m) {
                ++count;
                std::string l = "msg seq=" + std::to_string(m.meta.seq);
                if (typed) {
                  const auto& q = m.as<md::Quote>();
                  char px[64];
                  std::snprintf(px, sizeof px, "%.6f", q.bid_px());
                  l += " symbol=" + (q.symbol() != nullptr ? q.symbol()->str() : std::string("-")) +
                       " instrument=" + std::to_string(q.instrument_id()) + " bid=" + px;
                } else {
                  l += " hex=" + hex(m.data);
                }
                reply(l);
              },
              1024);
          if (got == 0) break;
        }
        reply("ok count=" + std::to_string(count) + " drops=" + std::to_string(sub->drops()));
      } else {
        reply("error bad_command " + *line);
      }
    } catch (const Error& e) {
      reply("error " + std::string(to_string(e.code())) + " " + e.what());
    }
  }
}

// An agent process and its conversation.
class Agent {
 public:
  Agent() : proc_(agent_main) {}
  // Sends a command; returns every "msg" line and the final "ok ..." line.
  std::vector<std::string> talk(const std::string& command) {
    proc_.send(command + "\n");
    std::vector<std::string> lines;
    for (;;) {
      const auto l = proc_.line(60s);
      if (!l) {
        ADD_FAILURE() << "agent " << proc_.pid() << " did not answer '" << command << "'";
        return lines;
      }
      lines.push_back(*l);
      if (l->rfind("msg ", 0) != 0) break;
    }
    EXPECT_EQ(lines.back().rfind("ok", 0), 0u) << command << " -> " << lines.back();
    return lines;
  }
  std::string ok(const std::string& command) { return talk(command).back(); }
  [[nodiscard]] std::uint32_t pid() const { return static_cast<std::uint32_t>(proc_.pid()); }
  int kill9() { return proc_.kill9(); }

 private:
  Proc proc_;
};

// The value of `key=` in an agent's reply.
std::string field(const std::string& line, const std::string& key) {
  for (const std::string& w : words(line))
    if (w.rfind(key + "=", 0) == 0) return w.substr(key.size() + 1);
  return {};
}

const Json& topic_in(const Json& bus, const std::string& name) {
  for (const Json& t : bus.at("topics"))
    if (t.at("name") == name) return t;
  throw std::runtime_error("topic " + name + " not in " + bus.dump());
}

const Json& consumer_in(const Json& topic, const std::string& name) {
  for (const Json& c : topic.at("consumers"))
    if (c.at("name") == name) return c;
  throw std::runtime_error("consumer " + name + " not in " + topic.dump());
}

bool shm_exists(const std::string& segment) {
  struct stat st {};
  return ::stat(("/dev/shm/" + segment).c_str(), &st) == 0;
}

// A bus name for this test; its segments are removed at the end.
class TestBus {
 public:
  TestBus() : bus_("insp") {}
  [[nodiscard]] const std::string& name() const { return bus_.name(); }
  [[nodiscard]] std::string seg(const std::string& topic = "") const {
    return topic.empty() ? detail::directory_segment_name(name())
                         : detail::topic_segment_name(name(), topic);
  }

 private:
  ScopedBus bus_;
};

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

// ------------------------------------------------------------------ list

void make_segment(const std::string& name, const std::vector<std::byte>& bytes);

TEST(BusInspectList, AForeignSegmentIsReportedNotFatal) {
  TestBus good;
  TestBus junk;
  Agent feed;
  feed.ok("publisher " + good.name() + " md.quotes quote lossy 64 feed-under-test");
  make_segment(junk.seg(), std::vector<std::byte>(4096, std::byte{0x42}));
  const Result all = inspect({"list", "--no-rate"});
  EXPECT_EQ(all.code, 0) << all;
  EXPECT_NE(all.out.find("buses that cannot be read:"), std::string::npos) << all;
  EXPECT_NE(
      all.out.find(junk.name() + ": /dev/shm/" + junk.seg() + " is not a shmbus bus directory"),
      std::string::npos)
      << all;
  EXPECT_NE(all.out.find(good.name()), std::string::npos) << "the others are still listed\n" << all;
  const Result one = inspect({"list", junk.name()});
  EXPECT_EQ(one.code, 1) << one;
  EXPECT_NE(one.err.find("is not a shmbus bus directory"), std::string::npos) << one;
  const Json gc = inspect_json({"gc", junk.name()});
  ASSERT_EQ(gc.at("kept").size(), 1u) << gc.dump(2);
  EXPECT_NE(gc.at("kept")[0].at("reason").get<std::string>().find("cannot be parsed"),
            std::string::npos);
  EXPECT_TRUE(gc.at("removed").empty());
}

TEST(BusInspectList, ShowsProducersConsumersCountsLagAndLiveness) {
  TestBus tb;
  Agent feed, strat, oms, risk;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 1024 feed-under-test");
  oms.ok("publisher " + tb.name() + " orders quote reliable 64 oms-under-test");
  strat.ok("subscriber " + tb.name() + " md.quotes strat-under-test");
  risk.ok("subscriber " + tb.name() + " orders risk-under-test");
  EXPECT_EQ(field(feed.ok("send 100"), "last"), "100");
  EXPECT_EQ(field(strat.ok("drain"), "count"), "100");
  oms.ok("send 5");
  EXPECT_EQ(field(risk.ok("drain"), "count"), "5");
  oms.ok("send 3");  // risk has not read these: lag 3

  const Json j = inspect_json({"list", tb.name()});
  EXPECT_EQ(j.at("bus"), tb.name());
  const Json& q = topic_in(j, "md.quotes");
  EXPECT_EQ(q.at("type"), "shmbus.md.Quote");
  EXPECT_EQ(q.at("policy"), "lossy");
  EXPECT_EQ(q.at("slot_size"), 256);
  EXPECT_EQ(q.at("slot_count"), 1024);
  EXPECT_EQ(q.at("messages"), 100);
  EXPECT_TRUE(q.at("rate").is_number());
  EXPECT_EQ(q.at("producer").at("name"), "feed-under-test");
  EXPECT_EQ(q.at("producer").at("pid"), feed.pid());
  EXPECT_EQ(q.at("producer").at("alive"), true);
  ASSERT_EQ(q.at("consumers").size(), 1u);
  const Json& sc = consumer_in(q, "strat-under-test");
  EXPECT_EQ(sc.at("pid"), strat.pid());
  EXPECT_EQ(sc.at("alive"), true);
  EXPECT_EQ(sc.at("lag"), 0);
  EXPECT_EQ(sc.at("drops"), 0);
  EXPECT_EQ(sc.at("delivered"), 100);
  const Json& o = topic_in(j, "orders");
  EXPECT_EQ(o.at("policy"), "reliable");
  EXPECT_EQ(o.at("slot_count"), 64);
  EXPECT_EQ(o.at("messages"), 8);
  EXPECT_EQ(consumer_in(o, "risk-under-test").at("lag"), 3);
  EXPECT_EQ(consumer_in(o, "risk-under-test").at("pid"), risk.pid());

  // The same for a person: aligned columns, names, pids, states.
  const Result human = inspect({"list", tb.name(), "--no-rate"});
  ASSERT_EQ(human.code, 0) << human;
  const auto hl = lines_of(human.out);
  const auto row = [&](const std::string& first_word) {
    for (const auto& l : hl)
      if (!words(l).empty() && words(l)[0] == first_word) return l;
    return std::string();
  };
  EXPECT_EQ(words(row("md.quotes")),
            (std::vector<std::string>{"md.quotes", "shmbus.md.Quote", "lossy", "256", "1024",
                                      "feed-under-test", std::to_string(feed.pid()), "alive", "100",
                                      "n/a", words(row("md.quotes")).at(10), "ago"}))
      << human.out;
  const auto risk_row = words(row("risk-under-test"));
  ASSERT_GE(risk_row.size(), 6u) << human.out;
  EXPECT_EQ(risk_row[1], std::to_string(risk.pid()));
  EXPECT_EQ(risk_row[2], "orders");
  EXPECT_EQ(risk_row[3], "alive");
  EXPECT_EQ(risk_row[4], "3") << "lag";
  EXPECT_EQ(risk_row[5], "0") << "drops";
  EXPECT_NE(human.out.find("2 topics, 2 live producers, 2 live consumers"), std::string::npos)
      << human.out;
  EXPECT_EQ(human.out.find("\x1b"), std::string::npos) << "no escape codes in tables";

  // The host-wide list counts them.
  const Json all = inspect_json({"list", "--no-rate"});
  bool found = false;
  for (const Json& b : all.at("buses")) {
    if (b.at("bus") != tb.name()) continue;
    found = true;
    EXPECT_EQ(b.at("topics"), 2);
    EXPECT_EQ(b.at("producers_alive"), 2);
    EXPECT_EQ(b.at("consumers_alive"), 2);
    EXPECT_EQ(b.at("dead_participants"), 0);
    EXPECT_EQ(b.at("messages"), 108);
  }
  EXPECT_TRUE(found) << all.dump();
  const Result all_human = inspect({"list", "--no-rate"});
  EXPECT_NE(all_human.out.find(tb.name()), std::string::npos) << all_human;

  // A killed producer and a killed consumer show as dead.
  EXPECT_EQ(feed.kill9(), 128 + SIGKILL);
  EXPECT_EQ(risk.kill9(), 128 + SIGKILL);
  const Json dead = inspect_json({"list", tb.name(), "--no-rate"});
  EXPECT_EQ(topic_in(dead, "md.quotes").at("producer").at("alive"), false);
  EXPECT_EQ(topic_in(dead, "md.quotes").at("producer").at("name"), "feed-under-test");
  EXPECT_EQ(topic_in(dead, "md.quotes").at("messages"), 100) << "what it published stays visible";
  EXPECT_EQ(consumer_in(topic_in(dead, "orders"), "risk-under-test").at("alive"), false);
  EXPECT_EQ(consumer_in(topic_in(dead, "md.quotes"), "strat-under-test").at("alive"), true);
  const Result dh = inspect({"list", tb.name(), "--no-rate"});
  const auto dead_lines = lines_of(dh.out);
  const bool producer_dead =
      std::any_of(dead_lines.begin(), dead_lines.end(), [](const std::string& l) {
        return l.rfind("md.quotes", 0) == 0 && l.find("feed-under-test") != std::string::npos &&
               l.find("DEAD") != std::string::npos;
      });
  EXPECT_TRUE(producer_dead) << dh.out;
  const Json all_dead = inspect_json({"list", "--no-rate"});
  for (const Json& b : all_dead.at("buses"))
    if (b.at("bus") == tb.name()) {
      EXPECT_EQ(b.at("dead_participants"), 2);
    }
}

TEST(BusInspectList, RateComesFromTwoSamples) {
  TestBus tb;
  Agent feed;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 1024 feed-under-test");
  feed.ok("send 10");
  // A quiet topic: two samples, no new messages: rate 0 (not n/a).
  const Json j = inspect_json({"list", tb.name(), "--interval", "0.05"});
  EXPECT_EQ(topic_in(j, "md.quotes").at("rate"), 0.0);
  const Json nr = inspect_json({"list", tb.name(), "--no-rate"});
  EXPECT_TRUE(topic_in(nr, "md.quotes").at("rate").is_null());
}

TEST(BusInspectList, ShowsWhatALappedConsumerLost) {
  TestBus tb;
  Agent feed, slow;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 8 feed-under-test");
  slow.ok("subscriber " + tb.name() + " md.quotes slow-under-test");
  feed.ok("send 20");  // a ring of 8: the consumer is lapped
  const std::string drained = slow.ok("drain");
  const std::string drops = field(drained, "drops");
  ASSERT_NE(drops, "0") << drained;
  EXPECT_EQ(std::stoull(drops) + std::stoull(field(drained, "count")), 20u)
      << "every message delivered or lost";
  const Json j = inspect_json({"list", tb.name(), "--no-rate"});
  const Json& c = consumer_in(topic_in(j, "md.quotes"), "slow-under-test");
  EXPECT_EQ(std::to_string(c.at("drops").get<std::uint64_t>()), drops)
      << "list shows the consumer's own count";
  EXPECT_EQ(c.at("lag"), 0);
}

// ------------------------------------------------------------------ tail

TEST(BusInspectTail, DecodesTheLastMessagesATestPublisherWrote) {
  TestBus tb;
  Agent feed;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 64 feed-under-test");
  const std::int64_t before = Clock::wall_ns();
  feed.ok("send 5");
  const std::int64_t after = Clock::wall_ns();

  const Result r = inspect({"tail", tb.name(), "md.quotes", "-n", "3"});
  ASSERT_EQ(r.code, 0) << r;
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 3u) << r;
  for (std::size_t i = 0; i < 3; ++i) {
    const Json m = Json::parse(lines[i]);
    const std::uint64_t seq = 3 + i;
    EXPECT_EQ(m.at("topic"), "md.quotes");
    EXPECT_EQ(m.at("seq"), seq);
    EXPECT_EQ(m.at("type"), "shmbus.md.Quote");
    EXPECT_EQ(m.at("producer"), feed.pid());
    EXPECT_GE(m.at("ts").get<std::int64_t>(), before - 50'000'000)
        << "the bus clock follows the wall clock";
    EXPECT_LE(m.at("ts").get<std::int64_t>(), after + 50'000'000);
    EXPECT_EQ(m.at("time").get<std::string>().size(), 30u) << m.at("time");
    const Json& d = m.at("data");
    EXPECT_EQ(d.at("symbol"), "SYM");
    EXPECT_EQ(d.at("venue"), "XTST");
    EXPECT_EQ(d.at("instrument_id"), seq);
    EXPECT_DOUBLE_EQ(d.at("bid_px").get<double>(), static_cast<double>(seq) + 0.25);
    EXPECT_DOUBLE_EQ(d.at("ask_qty").get<double>(), 200.0);
  }
  const Result all = inspect({"tail", tb.name(), "md.quotes", "-n", "100"});
  EXPECT_EQ(lines_of(all.out).size(), 5u) << "no more than there is\n" << all;
  const Result none = inspect({"tail", tb.name(), "md.quotes", "-n", "0"});
  EXPECT_EQ(none.code, 0);
  EXPECT_TRUE(none.out.empty()) << none;
  const Result dflt = inspect({"tail", tb.name(), "md.quotes"});
  EXPECT_EQ(lines_of(dflt.out).size(), 5u) << dflt;

  // Reading left no trace: no consumer entry was taken.
  const Json j = inspect_json({"list", tb.name(), "--no-rate"});
  EXPECT_TRUE(topic_in(j, "md.quotes").at("consumers").empty()) << j.dump();
}

TEST(BusInspectTail, RawTopicsShowTheirBytes) {
  TestBus tb;
  // The project's test helper process publishes 5 raw self-checking payloads and exits.
  const char* testproc = std::getenv("SHMBUS_TESTPROC");
  ASSERT_NE(testproc, nullptr);
  const Result p = run({testproc, "produce", tb.name(), "raw.data", "5", "lossy", "64"});
  ASSERT_EQ(p.code, 0) << p;
  const Result r = inspect({"tail", tb.name(), "raw.data", "-n", "5"});
  ASSERT_EQ(r.code, 0) << r;
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 5u) << r;
  const Json first = Json::parse(lines[0]);
  EXPECT_EQ(first.at("type"), "");
  EXPECT_EQ(first.at("size"), 64);
  EXPECT_FALSE(first.contains("data"));
  // The base64 decodes to exactly what testproc wrote.
  std::vector<std::byte> want(64);
  fill_payload(want.data(), want.size(), 1);
  std::string b64 = first.at("base64");
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::vector<std::byte> got;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : b64) {
    if (c == '=') break;
    acc = (acc << 6) | static_cast<std::uint32_t>(kAlphabet.find(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      got.push_back(static_cast<std::byte>((acc >> bits) & 0xff));
    }
  }
  EXPECT_EQ(got, want);
  EXPECT_FALSE(first.contains("correlation")) << "no correlation on message 1";
  EXPECT_EQ(Json::parse(lines[4]).at("correlation"), 0xE0F) << "testproc's end marker is shown";

  const Result h = inspect({"tail", tb.name(), "raw.data", "-n", "1", "--hex"});
  std::vector<std::byte> last(64);
  fill_payload(last.data(), last.size(), 5);
  EXPECT_EQ(Json::parse(lines_of(h.out).at(0)).at("hex"), hex(last)) << h;
}

TEST(BusInspectTail, FollowPrintsNewMessagesAndAGapWhenLapped) {
  TestBus tb;
  Agent feed;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 8 feed-under-test");
  feed.ok("send 3");
  Proc tail({exe(), "tail", tb.name(), "md.quotes", "-n", "2", "--follow"});
  // The backlog proves it is attached; what follows must come live.
  for (std::uint64_t seq : {2u, 3u}) {
    const auto l = tail.line();
    ASSERT_TRUE(l.has_value());
    EXPECT_EQ(Json::parse(*l).at("seq"), seq);
  }
  feed.ok("send 2");
  for (std::uint64_t seq : {4u, 5u}) {
    const auto l = tail.line();
    ASSERT_TRUE(l.has_value());
    EXPECT_EQ(Json::parse(*l).at("seq"), seq);
    EXPECT_EQ(Json::parse(*l).at("data").at("instrument_id"), seq);
  }
  // Stopped, it falls a whole ring behind; resumed, it says what it lost.
  tail.signal(SIGSTOP);
  feed.ok("send 30");  // 6..35 into a ring of 8
  tail.signal(SIGCONT);
  const auto g = tail.line();
  ASSERT_TRUE(g.has_value());
  const Json gap = Json::parse(*g);
  ASSERT_TRUE(gap.contains("gap")) << *g;
  EXPECT_EQ(gap.at("gap").at("topic"), "md.quotes");
  EXPECT_EQ(gap.at("gap").at("first"), 6);
  const std::uint64_t resume = 6 + gap.at("gap").at("count").get<std::uint64_t>();
  EXPECT_GE(resume, 35u - 8u + 1u) << "only what the ring no longer holds is reported lost";
  for (std::uint64_t seq = resume; seq <= 35; ++seq) {
    const auto l = tail.line();
    ASSERT_TRUE(l.has_value()) << "waiting for " << seq;
    EXPECT_EQ(Json::parse(*l).at("seq"), seq) << *l;
  }
  tail.signal(SIGTERM);
  EXPECT_EQ(tail.wait_exit(), 128 + SIGTERM);
}

// An idle follower must not touch the bus: Subscriber::wait() and the idle
// path of poll() write shared memory (the wait block, the clock anchor once
// it is a second old), which a read-only mapping turns into SIGSEGV.
TEST(BusInspectTail, IdleFollowOnAReadOnlyMappingStaysUp) {
  TestBus tb;
  Agent feed;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 64 feed-under-test");
  feed.ok("send 1");
  Proc tail({exe(), "tail", tb.name(), "md.quotes", "-n", "1", "--follow"});
  ASSERT_TRUE(tail.line().has_value()) << "attached";
  // Deliberately idle for longer than the clock's re-anchoring period.
  std::this_thread::sleep_for(1500ms);
  feed.ok("send 1");
  const auto l = tail.line();
  ASSERT_TRUE(l.has_value()) << "tail died while idle";
  EXPECT_EQ(Json::parse(*l).at("seq"), 2);
}

TEST(BusInspectTail, NeverGatesAReliableProducer) {
  TestBus tb;
  Agent oms;
  oms.ok("publisher " + tb.name() + " orders quote reliable 8 oms-under-test");
  oms.ok("send 1");
  Proc tail({exe(), "tail", tb.name(), "orders", "-n", "1", "--follow"});
  ASSERT_TRUE(tail.line().has_value()) << "attached";
  tail.signal(SIGSTOP);  // a reader that reads nothing
  // Three rings' worth without waiting: nothing holds the producer up.
  EXPECT_EQ(field(oms.ok("try 24"), "would_block"), "0");
  const Json j = inspect_json({"list", tb.name(), "--no-rate"});
  EXPECT_TRUE(topic_in(j, "orders").at("consumers").empty());
  EXPECT_EQ(topic_in(j, "orders").at("would_block"), 0);
  tail.signal(SIGCONT);
  const auto l = tail.line();
  ASSERT_TRUE(l.has_value());
  EXPECT_TRUE(Json::parse(*l).contains("gap")) << "an observer may be lapped, and says so: " << *l;
}

// ------------------------------------------------------------------ publish

TEST(BusInspectPublish, JsonRoundTripsToASubscriber) {
  TestBus tb;
  Agent feed, strat;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 64 feed-under-test");
  feed.ok("release");  // the topic exists, with no producer
  strat.ok("subscriber " + tb.name() + " md.quotes strat-under-test");

  const Result r = inspect(
      {"publish", tb.name(), "md.quotes", "--json",
       R"({"symbol":"AAPL","instrument_id":7,"bid_px":189.5,"ask_px":189.51,"bid_qty":100})"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_NE(r.out.find("published 1 message to md.quotes"), std::string::npos) << r;
  auto got = strat.talk("drain");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(field(got[0], "seq"), "1");
  EXPECT_EQ(field(got[0], "symbol"), "AAPL");
  EXPECT_EQ(field(got[0], "instrument"), "7");
  EXPECT_EQ(field(got[0], "bid"), "189.500000");

  // One message per line of stdin, in order; blank lines are skipped.
  const Result many =
      inspect({"publish", tb.name(), "md.quotes"},
              "{\"symbol\":\"A\",\"instrument_id\":1}\n\n{\"symbol\":\"B\",\"instrument_id\":2}\n"
              "{\"symbol\":\"C\",\"instrument_id\":3}\n");
  ASSERT_EQ(many.code, 0) << many;
  EXPECT_NE(many.out.find("published 3 messages"), std::string::npos) << many;
  got = strat.talk("drain");
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(field(got[0], "symbol"), "A");
  EXPECT_EQ(field(got[1], "symbol"), "B");
  EXPECT_EQ(field(got[2], "symbol"), "C");
  EXPECT_EQ(field(got[2], "seq"), "4");

  // And back out through tail, with the producer role given back.
  const Json last =
      Json::parse(lines_of(inspect({"tail", tb.name(), "md.quotes", "-n", "1"}).out).at(0));
  EXPECT_EQ(last.at("data").at("symbol"), "C");
  const Json j = inspect_json({"list", tb.name(), "--no-rate"});
  EXPECT_EQ(topic_in(j, "md.quotes").at("producer"), nullptr)
      << "bus-inspect released the producer role";

  // Quotes, backslashes and blanks inside strings survive both ways.
  ASSERT_EQ(
      inspect({"publish", tb.name(), "md.quotes", "--json", R"({"symbol":"A \"B\"  \\ C"})"}).code,
      0);
  const Json odd =
      Json::parse(lines_of(inspect({"tail", tb.name(), "md.quotes", "-n", "1"}).out).at(0));
  EXPECT_EQ(odd.at("data").at("symbol"), "A \"B\"  \\ C");
}

TEST(BusInspectPublish, InvalidInputSaysWhereAndWhyAndPublishesNothing) {
  TestBus tb;
  Agent feed, strat;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 64 feed-under-test");
  feed.ok("send 2");
  feed.ok("release");
  strat.ok("subscriber " + tb.name() + " md.quotes strat-under-test");
  struct Case {
    std::vector<std::string> args;
    std::string input;
    std::vector<std::string> says;
  };
  const std::string big(300, 'x');
  const std::vector<Case> cases = {
      {{"--json", R"({"symbol": )"},
       "",
       {"invalid JSON for shmbus.md.Quote at 1:", "Nothing was published"}},
      {{"--json", R"({"symbol":"A","nosuch":1})"}, "", {"nosuch", "unknown field", "bid_px"}},
      {{"--json", R"({"bid_px":"abc"})"}, "", {"field \"bid_px\""}},
      {{"--json", R"({"bid_orders":-1})"}, "", {"bid_orders"}},
      {{"--json", "[1,2]"}, "", {"invalid JSON"}},
      {{},
       "{\"symbol\":\"A\"}\n{\"symbol\":\"B\"}\n{\"symbol\":\"C\",}\n",
       {"stdin line 3: ", "invalid JSON"}},
      {{}, "", {"stdin was empty"}},
      {{"--json", "{\"symbol\":\"" + big + "\"}"},
       "",
       {"bytes", "carries at most 224", "nothing was published"}},
      {{"--raw-hex", "0102"}, "", {"carries shmbus.md.Quote", "JSON"}},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"publish", tb.name(), "md.quotes"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const Result r = inspect(args, c.input);
    EXPECT_EQ(r.code, 1) << (c.args.empty() ? c.input : c.args.back()) << "\n" << r;
    EXPECT_EQ(r.err.rfind("bus-inspect: ", 0), 0u) << r;
    for (const std::string& s : c.says)
      EXPECT_NE(r.err.find(s), std::string::npos) << "'" << s << "' missing\n" << r;
    EXPECT_EQ(lines_of(r.err).size(), 1u) << "one line\n" << r;
  }
  EXPECT_EQ(field(strat.ok("drain"), "count"), "0") << "nothing reached the subscriber";
  const Json j = inspect_json({"list", tb.name(), "--no-rate"});
  EXPECT_EQ(topic_in(j, "md.quotes").at("messages"), 2) << "nothing was published";
}

TEST(BusInspectPublish, RefusesWhileAnotherProducerLivesAndNamesIt) {
  TestBus tb;
  Agent feed, strat;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 64 feed-under-test");
  strat.ok("subscriber " + tb.name() + " md.quotes strat-under-test");
  const Result r = inspect({"publish", tb.name(), "md.quotes", "--json", R"({"symbol":"X"})"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_NE(r.err.find("live producer: 'feed-under-test' (pid " + std::to_string(feed.pid()) + ")"),
            std::string::npos)
      << r;
  EXPECT_EQ(field(strat.ok("drain"), "count"), "0");
  // Once it is dead, publish takes the topic over and goes on from its sequence.
  feed.ok("send 4");
  strat.ok("drain");
  feed.kill9();
  const Result ok = inspect({"publish", tb.name(), "md.quotes", "--json", R"({"symbol":"X"})"});
  ASSERT_EQ(ok.code, 0) << ok;
  EXPECT_NE(ok.out.find("(seq 5)"), std::string::npos) << ok;
  EXPECT_NE(ok.out.find("took over"), std::string::npos) << ok;
  const auto got = strat.talk("drain");
  EXPECT_EQ(field(got.at(0), "symbol"), "X");
  EXPECT_EQ(field(got.at(0), "seq"), "5");
}

TEST(BusInspectPublish, RawTopicsTakeBytes) {
  TestBus tb;
  Agent feed, sink;
  feed.ok("publisher " + tb.name() + " raw.data raw lossy 64 raw-feed");
  feed.ok("release");
  sink.ok("subscriber " + tb.name() + " raw.data raw-sink");
  const Result j = inspect({"publish", tb.name(), "raw.data", "--json", "{}"});
  EXPECT_EQ(j.code, 1) << j;
  EXPECT_NE(j.err.find("is raw (untyped)"), std::string::npos) << j;
  const Result bad = inspect({"publish", tb.name(), "raw.data", "--raw-hex", "01zz"});
  EXPECT_EQ(bad.code, 1) << bad;
  EXPECT_NE(bad.err.find("not hex"), std::string::npos) << bad;
  ASSERT_EQ(inspect({"publish", tb.name(), "raw.data", "--raw-hex", "0102ff"}).code, 0);
  ASSERT_EQ(inspect({"publish", tb.name(), "raw.data", "--raw-base64", "AAEC"}).code, 0);
  ASSERT_EQ(inspect({"publish", tb.name(), "raw.data"}, "3q2+7w==\n").code,
            0);  // base64 lines on stdin
  const auto got = sink.talk("drain");
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(field(got[0], "hex"), "0102ff");
  EXPECT_EQ(field(got[1], "hex"), "000102");
  EXPECT_EQ(field(got[2], "hex"), "deadbeef");
}

// ------------------------------------------------------------------ schema

TEST(BusInspectSchema, ShowsTheTypeAndItsFields) {
  TestBus tb;
  Agent feed, raw;
  feed.ok("publisher " + tb.name() + " md.quotes quote lossy 64 feed-under-test");
  raw.ok("publisher " + tb.name() + " raw.data raw lossy 64 raw-feed");
  const Result r = inspect({"schema", tb.name(), "md.quotes"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_NE(r.out.find("shmbus.md.Quote (file identifier \"MDQT\")"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Best bid and offer"), std::string::npos) << "doc comments are shown\n"
                                                                 << r.out;
  const auto row = [&](const std::string& f) {
    for (const auto& l : lines_of(r.out))
      if (!words(l).empty() && words(l)[0] == f) return words(l);
    return std::vector<std::string>{};
  };
  ASSERT_GE(row("bid_px").size(), 3u) << r.out;
  EXPECT_EQ(row("bid_px")[1], "6");
  EXPECT_EQ(row("bid_px")[2], "double");
  EXPECT_EQ(row("symbol")[2], "string");

  const Json j = inspect_json({"schema", tb.name(), "md.quotes"});
  EXPECT_EQ(j.at("type"), "shmbus.md.Quote");
  EXPECT_EQ(j.at("file_identifier"), "MDQT");
  std::vector<std::string> names;
  for (const Json& f : j.at("fields")) names.push_back(f.at("name"));
  EXPECT_EQ(names, (std::vector<std::string>{"symbol", "instrument_id", "venue", "exchange_ts",
                                             "receive_ts", "seq", "bid_px", "bid_qty", "ask_px",
                                             "ask_qty", "bid_orders", "ask_orders"}));

  const Result rr = inspect({"schema", tb.name(), "raw.data"});
  EXPECT_EQ(rr.code, 0) << rr;
  EXPECT_NE(rr.out.find("raw bytes"), std::string::npos) << rr;
  EXPECT_EQ(inspect_json({"schema", tb.name(), "raw.data"}).at("raw"), true);
}

// ------------------------------------------------------------------ gc

// Creates /dev/shm/<name> with `bytes` of content.
void make_segment(const std::string& name, const std::vector<std::byte>& bytes) {
  const int fd = ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0) << name << ": " << std::strerror(errno);
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

// What a creator that died before publishing its topic segment leaves: a
// temporary whose header names its bus, layout version not yet published.
std::vector<std::byte> half_built_topic(const std::string& bus) {
  std::vector<std::byte> b(sizeof(detail::TopicDescriptor) + 1024);
  const std::uint64_t magic = detail::kTopicMagic;
  std::memcpy(b.data() + offsetof(detail::TopicDescriptor, magic), &magic, sizeof magic);
  std::memcpy(b.data() + offsetof(detail::TopicDescriptor, bus), bus.data(), bus.size());
  return b;
}

pid_t dead_pid() {
  const pid_t p = ::fork();
  if (p == 0) ::_exit(0);
  ::waitpid(p, nullptr, 0);
  return p;
}

// The item about `segment` (directory entries name their directory's
// segment too: they are told apart by kind).
const Json* gc_item(const Json& list, const std::string& segment) {
  for (const Json& i : list)
    if (i.at("segment") == segment && i.at("kind") != "directory-entry") return &i;
  return nullptr;
}

TEST(BusInspectGc, RemovesOnlyWhatIsDeadAndSaysWhy) {
  TestBus tb;
  const std::string B = tb.name();
  const std::string tmp_dead = "shmbus-tmp." + std::to_string(dead_pid()) + ".0";
  const std::string tmp_live = "shmbus-tmp." + std::to_string(::getpid()) + ".9999";
  struct Cleanup {
    std::vector<std::string> names;
    ~Cleanup() {
      for (const auto& n : names) ::shm_unlink(n.c_str());
    }
  } cleanup{{tmp_dead, tmp_live}};

  Agent dead_p, dead_c, lc_p, lc_c, lp_p;
  dead_p.ok("publisher " + B + " dead quote lossy 64 dead-producer");  // creates the bus directory
  dead_c.ok("subscriber " + B + " dead dead-consumer");
  lc_p.ok("publisher " + B + " live.consumer quote lossy 64 gone-producer");
  lc_c.ok("subscriber " + B + " live.consumer live-consumer");
  lp_p.ok("publisher " + B + " live.producer quote lossy 64 live-producer");
  dead_p.ok("send 3");
  const std::string dead_who = "producer dead-producer (pid " + std::to_string(dead_p.pid()) +
                               ") exited, consumer dead-consumer (pid " +
                               std::to_string(dead_c.pid()) + ") exited";
  dead_p.kill9();
  dead_c.kill9();
  lc_p.kill9();
  make_segment(tb.seg("junk"), std::vector<std::byte>(100, std::byte{0x5a}));
  make_segment(tmp_dead, half_built_topic(B));
  make_segment(tmp_live, half_built_topic(B));

  // Dry run: says what it would do, changes nothing. The host-wide dry run
  // sees the dead temporary too.
  const Json dry = inspect_json({"gc", B, "--dry-run"});
  EXPECT_EQ(dry.at("dry_run"), true);
  ASSERT_NE(gc_item(dry.at("removed"), tb.seg("dead")), nullptr) << dry.dump(2);
  ASSERT_NE(gc_item(dry.at("removed"), tmp_dead), nullptr) << dry.dump(2);
  EXPECT_TRUE(shm_exists(tb.seg("dead")));
  EXPECT_TRUE(shm_exists(tmp_dead));
  const Json host = inspect_json({"gc", "--dry-run"});
  EXPECT_NE(gc_item(host.at("removed"), tmp_dead), nullptr) << host.dump(2);
  EXPECT_NE(gc_item(host.at("kept"), tb.seg("live.producer")), nullptr) << host.dump(2);

  const Json r = inspect_json({"gc", B});
  EXPECT_EQ(r.at("dry_run"), false);
  const Json* removed_topic = gc_item(r.at("removed"), tb.seg("dead"));
  ASSERT_NE(removed_topic, nullptr) << r.dump(2);
  EXPECT_EQ(removed_topic->at("kind"), "topic");
  EXPECT_EQ(removed_topic->at("topic"), "dead");
  EXPECT_GT(removed_topic->at("bytes").get<std::uint64_t>(), 0u);
  EXPECT_EQ(removed_topic->at("reason"), dead_who);
  ASSERT_NE(gc_item(r.at("removed"), tmp_dead), nullptr) << r.dump(2);
  EXPECT_EQ(gc_item(r.at("removed"), tmp_dead)->at("kind"), "temporary");
  EXPECT_EQ(r.at("removed").size(), 2u) << r.dump(2);

  const auto kept_reason = [&](const std::string& seg) {
    const Json* i = gc_item(r.at("kept"), seg);
    return i == nullptr ? std::string("(not in kept)") : i->at("reason").get<std::string>();
  };
  EXPECT_NE(kept_reason(tb.seg("live.consumer"))
                .find("consumer live-consumer (pid " + std::to_string(lc_c.pid())),
            std::string::npos)
      << r.dump(2);
  EXPECT_NE(kept_reason(tb.seg("live.producer"))
                .find("producer live-producer (pid " + std::to_string(lp_p.pid())),
            std::string::npos)
      << r.dump(2);
  EXPECT_NE(kept_reason(tb.seg("junk")).find("cannot be parsed"), std::string::npos) << r.dump(2);
  EXPECT_NE(kept_reason(tmp_live).find("is running"), std::string::npos) << r.dump(2);
  EXPECT_NE(kept_reason(tb.seg()).find("3 topic segments"), std::string::npos) << r.dump(2);

  EXPECT_FALSE(shm_exists(tb.seg("dead")));
  EXPECT_FALSE(shm_exists(tmp_dead));
  for (const std::string& s :
       {tb.seg("live.consumer"), tb.seg("live.producer"), tb.seg("junk"), tb.seg(), tmp_live})
    EXPECT_TRUE(shm_exists(s)) << s;
  // Its directory entry went with it, so list no longer shows it.
  const Json listed = inspect_json({"list", B, "--no-rate"});
  std::vector<std::string> topics;
  for (const Json& t : listed.at("topics")) topics.push_back(t.at("name"));
  EXPECT_EQ(topics, (std::vector<std::string>{"live.consumer", "live.producer"}));

  // The person-readable report says the same.
  const Result human = inspect({"gc", B});
  EXPECT_EQ(human.code, 0) << human;
  EXPECT_NE(human.out.find("nothing to remove on bus " + B), std::string::npos) << human;
  EXPECT_NE(human.out.find("live-producer"), std::string::npos) << human;

  // Everyone gone (and one topic segment removed by hand): all of it goes,
  // the stale directory entry and the directory last.
  lc_c.kill9();
  lp_p.kill9();
  ::shm_unlink(tb.seg("junk").c_str());
  ::shm_unlink(tb.seg("live.producer").c_str());
  const Json all = inspect_json({"gc", B});
  ASSERT_NE(gc_item(all.at("removed"), tb.seg("live.consumer")), nullptr) << all.dump(2);
  ASSERT_NE(gc_item(all.at("removed"), tb.seg()), nullptr) << all.dump(2);
  EXPECT_EQ(gc_item(all.at("removed"), tb.seg())->at("kind"), "directory");
  bool entry = false;
  for (const Json& i : all.at("removed"))
    entry = entry || (i.at("kind") == "directory-entry" && i.at("topic") == "live.producer");
  EXPECT_TRUE(entry) << "the entry of the topic removed by hand is freed\n" << all.dump(2);
  EXPECT_FALSE(shm_exists(tb.seg()));
  EXPECT_FALSE(shm_exists(tb.seg("live.consumer")));
  ::shm_unlink(tmp_live.c_str());  // a temporary naming the bus would still be "of" it
  const Result again = inspect({"gc", B});
  EXPECT_EQ(again.code, 1) << again;
  EXPECT_NE(again.err.find("no bus named '" + B + "'"), std::string::npos) << again;
}

TEST(BusInspectGc, KeepsABusWhoseCreatorRuns) {
  TestBus tb;
  Agent p;
  p.ok("publisher " + tb.name() + " t quote lossy 64 p");
  p.ok("release");  // no producer, no consumer: but its creator still runs
  const Json r = inspect_json({"gc", tb.name()});
  EXPECT_TRUE(r.at("removed").empty()) << r.dump(2);
  const Json* t = gc_item(r.at("kept"), tb.seg("t"));
  ASSERT_NE(t, nullptr) << r.dump(2);
  EXPECT_NE(
      t->at("reason").get<std::string>().find("creator (pid " + std::to_string(p.pid()) + ")"),
      std::string::npos);
}

// ------------------------------------------------------------------ watch

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

class Tmux {
 public:
  Tmux() : sock_("/tmp/bus-inspect-test-" + std::to_string(::getpid()) + ".sock") {}
  ~Tmux() {
    (void)run({"tmux", "-S", sock_, "kill-server"});
    ::unlink(sock_.c_str());
  }
  static bool available() { return run({"tmux", "-V"}).code == 0; }
  Result cmd(std::vector<std::string> args) {
    args.insert(args.begin(), {"tmux", "-S", sock_});
    return run(args);
  }
  std::string screen() { return cmd({"capture-pane", "-p", "-t", "w"}).out; }
  std::string show(const std::string& format) {
    std::string s = cmd({"display-message", "-p", "-t", "w", format}).out;
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }
  // Starts `shell_command` in a new 160x50 session "w".
  void start(const std::string& shell_command) {
    const Result r = cmd({"-f", "/dev/null", "new-session", "-d", "-s", "w", "-x", "160", "-y",
                          "50", shell_command});
    ASSERT_EQ(r.code, 0) << r;
  }
  bool screen_shows(const std::string& text, std::chrono::milliseconds timeout = 20s) {
    return eventually([&] { return screen().find(text) != std::string::npos; }, timeout);
  }

 private:
  std::string sock_;
};

// Pids of the children of `pid`.
std::vector<pid_t> children_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::vector<pid_t> out;
  for (pid_t c; in >> c;) out.push_back(c);
  return out;
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
