// Producers and consumers as separate processes through real shared memory,
// including processes killed with SIGKILL mid-stream.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <sstream>

#include "proc.hpp"
#include "shmbus/core/internals.hpp"
#include "test_util.hpp"

namespace shmbus::test {
namespace {

using namespace std::chrono_literals;

// A shmbus-testproc child (support/testproc.cpp) with its stdout on a pipe.
class Child : public Proc {
 public:
  explicit Child(const std::vector<std::string>& args) : Proc(testproc_argv(args)) {}
};

std::map<std::string, std::uint64_t> parse(const std::string& l) {
  std::map<std::string, std::uint64_t> kv;
  std::istringstream in(l);
  std::string tok;
  while (in >> tok) {
    const auto eq = tok.find('=');
    if (eq != std::string::npos)
      kv[tok.substr(0, eq)] = std::strtoull(tok.c_str() + eq + 1, nullptr, 10);
  }
  return kv;
}

std::uint64_t count(std::uint64_t n) {
  return std::max<std::uint64_t>(
      2000, static_cast<std::uint64_t>(static_cast<double>(n) * stress_scale()));
}

TEST(MultiProcess, ProducerAndTwoConsumersInSeparateProcesses) {
  ScopedBus sb;
  const std::uint64_t n = count(200'000);
  Child c1({"consume", sb.name(), "orders", "reliable", "256"});
  Child c2({"consume", sb.name(), "orders", "reliable", "256"});
  ASSERT_EQ(c1.line(), "ready");
  ASSERT_EQ(c2.line(), "ready");
  Child p({"produce", sb.name(), "orders", std::to_string(n), "reliable", "256"});
  EXPECT_EQ(p.line_starting("published"),
            "published=" + std::to_string(n) + " last=" + std::to_string(n));
  EXPECT_EQ(p.wait_exit(), 0);
  for (Child* c : {&c1, &c2}) {
    const auto r = parse(c->line_starting("received"));
    EXPECT_EQ(r.at("received"), n);
    EXPECT_EQ(r.at("first"), 1u);
    EXPECT_EQ(r.at("last"), n);
    EXPECT_EQ(r.at("lost"), 0u);
    EXPECT_EQ(r.at("corrupt"), 0u);
    EXPECT_EQ(r.at("disorder"), 0u);
    EXPECT_EQ(c->wait_exit(), 0);
  }
}

TEST(MultiProcess, KilledProducerIsTakenOverAndNothingIsLostOrTorn) {
  ScopedBus sb;
  Bus bus = sb.open();
  Child consumer({"consume", sb.name(), "exec", "reliable", "128"});
  ASSERT_EQ(consumer.line(), "ready");
  Topic t = bus.open_topic("exec");
  {
    Child doomed({"produce", sb.name(), "exec", "0", "reliable", "128"});
    ASSERT_EQ(doomed.line_starting("ready"), "ready");
    // Kill it mid-stream, once the consumer has seen a good number of messages.
    ASSERT_TRUE(eventually([&] {
      const auto s = snapshot(t);
      return !s.consumers.empty() && s.consumers[0].delivered >= 5000;
    }));
    doomed.signal(SIGKILL);
    EXPECT_EQ(doomed.wait_exit(), 128 + SIGKILL);
  }
  const auto dead = snapshot(t);
  EXPECT_TRUE(dead.producer.attached);
  EXPECT_FALSE(dead.producer.alive) << "a killed producer shows as dead";
  Child heir({"produce", sb.name(), "exec", "20000", "reliable", "128"});
  const auto start = parse(heir.line_starting("took_over"));
  EXPECT_EQ(start.at("took_over"), 1u);
  EXPECT_GE(start.at("first"), dead.head + 1)
      << "the sequence goes on from the last committed message";
  EXPECT_LE(start.at("first"), dead.head + 2);
  const auto done = parse(heir.line_starting("published"));
  EXPECT_EQ(heir.wait_exit(), 0);
  const auto r = parse(consumer.line_starting("received"));
  EXPECT_EQ(r.at("last"), done.at("last"));
  EXPECT_EQ(r.at("lost"), 0u) << "reliable: nothing lost across the takeover";
  EXPECT_EQ(r.at("corrupt"), 0u) << "no half-written message delivered";
  EXPECT_EQ(r.at("disorder"), 0u);
  EXPECT_EQ(r.at("received"), r.at("last") - r.at("first") + 1);
  EXPECT_EQ(consumer.wait_exit(), 0);
  EXPECT_EQ(snapshot(t).producer.takeovers, 1u);
}

TEST(MultiProcess, KilledConsumerOnReliableTopicIsReapedSoTheProducerResumes) {
  ScopedBus sb;
  Bus bus = sb.open();
  Publisher pub = bus.publisher("risk", config(Policy::Reliable, 64, 128, 8));
  Child staller({"stall", sb.name(), "risk", "reliable", "64"});
  ASSERT_EQ(staller.line(), "ready");
  std::vector<std::byte> buf(64);
  for (std::uint64_t i = 1; i <= 64; ++i) {
    fill_payload(buf.data(), buf.size(), i);
    ASSERT_EQ(pub.try_publish(buf), PublishResult::Ok);
  }
  EXPECT_EQ(pub.try_publish(buf), PublishResult::WouldBlock)
      << "a live consumer that reads nothing holds it up";
  EXPECT_EQ(pub.publish(buf, 20ms), PublishResult::Timeout) << "and a live one is never reaped";
  staller.signal(SIGKILL);
  // Not waited for yet: a zombie is dead too.
  EXPECT_EQ(pub.publish(buf, 30s), PublishResult::Ok);
  const auto s = snapshot(pub.topic());
  EXPECT_EQ(s.reaped_consumers, 1u);
  EXPECT_TRUE(s.consumers.empty());
  EXPECT_EQ(staller.wait_exit(), 128 + SIGKILL);
}

TEST(MultiProcess, ConsumerKilledWhileAsleepDoesNotCostTheProducerWakeUpsForever) {
  ScopedBus sb;
  Bus bus = sb.open();
  Publisher pub = bus.publisher("sleepy", config(Policy::Lossy, 64, 128, 8));
  Child c({"consume", sb.name(), "sleepy", "lossy", "64"});
  ASSERT_EQ(c.line(), "ready");
  auto& w = detail::Internals::state(pub.topic())->header->wait;
  ASSERT_TRUE(eventually([&] { return w.sleepers.load() == 1; }))
      << "the consumer sleeps in FUTEX_WAIT";
  c.signal(SIGKILL);
  EXPECT_EQ(c.wait_exit(), 128 + SIGKILL);
  EXPECT_EQ(w.sleepers.load(), 1u) << "killed asleep: nobody counted it out";
  std::vector<std::byte> buf(64);
  for (std::uint64_t i = 1; i <= detail::RingWriter::kAuditAfterIdleWakes + 1; ++i) {
    fill_payload(buf.data(), buf.size(), i);
    ASSERT_EQ(pub.try_publish(buf), PublishResult::Ok);
  }
  EXPECT_EQ(w.sleepers.load(), 0u) << "the producer recounted its sleepers";
  const std::uint32_t futex = w.futex.load();
  ASSERT_EQ(pub.try_publish(buf), PublishResult::Ok);
  EXPECT_EQ(w.futex.load(), futex) << "and pays no more wake-ups";
}

TEST(MultiProcess, AForkedChildNeverReleasesItsParentsRoles) {
  ScopedBus sb;
  Bus bus = sb.open();
  Topic t = bus.topic("forked", config(Policy::Reliable, 16));
  {
    auto pub = std::make_unique<Publisher>(t);
    auto sub = std::make_unique<Subscriber>(t);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      pub.reset();  // what a child that unwinds its stack (or exits via return) does
      sub.reset();
      ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    const auto s = snapshot(t);
    EXPECT_TRUE(s.producer.attached && s.producer.alive) << "the parent still owns the topic";
    EXPECT_EQ(s.producer.pid, static_cast<std::uint32_t>(::getpid()));
    ASSERT_EQ(s.consumers.size(), 1u) << "the parent's consumer entry is still registered";
    EXPECT_EQ(s.consumers[0].pid, static_cast<std::uint32_t>(::getpid()));
  }
  EXPECT_FALSE(snapshot(t).producer.attached) << "the parent itself releases on destruction";
  EXPECT_TRUE(snapshot(t).consumers.empty());
}

TEST(MultiProcess, LossyConsumerProcessAccountsForEveryMessage) {
  ScopedBus sb;
  const std::uint64_t n = count(300'000);
  Child slow({"consume", sb.name(), "md", "lossy", "64", "slow"});
  ASSERT_EQ(slow.line(), "ready");
  Child p({"produce", sb.name(), "md", std::to_string(n), "lossy", "64"});
  EXPECT_EQ(p.line_starting("published").rfind("published=", 0), 0u);
  EXPECT_EQ(p.wait_exit(), 0);
  const auto r = parse(slow.line_starting("received"));
  EXPECT_EQ(r.at("last"), n) << "the newest message always arrives";
  EXPECT_EQ(r.at("received") + r.at("lost"), n) << "every sequence delivered or reported lost";
  EXPECT_EQ(r.at("lost"), r.at("drops"));
  EXPECT_EQ(r.at("corrupt"), 0u);
  EXPECT_EQ(r.at("disorder"), 0u);
  EXPECT_GT(r.at("lost"), 0u) << "a slow consumer on a 64-slot lossy ring must be lapped";
  EXPECT_EQ(slow.wait_exit(), 0);
}

}  // namespace
}  // namespace shmbus::test
