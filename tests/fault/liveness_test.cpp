// Liveness under faults: consumers and producers that die, processes that
// cannot read /proc (liveness unknown must never count as death).
#include <sys/resource.h>

#include <fcntl.h>

#include <vector>

#include "fault_util.hpp"
#include "shmbus/core/internals.hpp"

namespace shmbus::test {
namespace {

using namespace std::chrono_literals;

// A child that registers a consumer on `topic` and then stops reading.
Child idle_consumer(const std::string& bus, const std::string& topic) {
  return Child([bus, topic](Child& self) {
    Bus b = Bus::open(bus);
    Subscriber s = b.subscriber(topic);
    self.report("ready");
    for (;;) ::pause();
    return 0;
  });
}

TEST(FaultLiveness, TryPublishOnlyProducerGetsPastCrashedConsumer) {
  ScopedBus sb("fl");
  Bus bus = sb.open();
  Publisher pub = bus.publisher("orders", config(Policy::Reliable, 4));
  Child consumer = idle_consumer(sb.name(), "orders");
  ASSERT_EQ(consumer.line(), "ready");
  const std::uint64_t v = 7;
  for (int i = 0; i < 4; ++i) ASSERT_EQ(pub.try_publish(as_bytes(&v, sizeof v)), PublishResult::Ok);
  // The live consumer holds the producer up...
  ASSERT_EQ(pub.try_publish(as_bytes(&v, sizeof v)), PublishResult::WouldBlock);
  consumer.kill(SIGKILL);
  ASSERT_EQ(consumer.wait(), 128 + SIGKILL);
  // ...and once it is dead, try_publish alone (no waiting publish) gets past it.
  std::uint64_t would_block = 0;
  const bool ok = eventually(
      [&] {
        const PublishResult r = pub.try_publish(as_bytes(&v, sizeof v));
        if (r == PublishResult::WouldBlock) ++would_block;
        return r == PublishResult::Ok;
      },
      5s);
  EXPECT_TRUE(ok) << "still blocked by a dead consumer after " << would_block
                  << " try_publish calls";
  EXPECT_EQ(detail::Internals::state(bus.open_topic("orders"))->header->hot.reaped_consumers.load(),
            1u);
}

// Leaves this process no free file descriptor: the next open() fails with
// EMFILE, so /proc cannot be read.
void exhaust_descriptors() {
  const int lowest = ::dup(0);
  if (lowest >= 0) ::close(lowest);
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = static_cast<rlim_t>(lowest < 0 ? 0 : lowest);
  ::setrlimit(RLIMIT_NOFILE, &rl);
  const int probe = ::open("/proc/self/stat", O_RDONLY);
  if (probe >= 0 || errno != EMFILE) std::abort();
}

// A process that cannot read /proc must not take over a live producer.
// With every descriptor taken (RLIMIT_NOFILE), UBSan's vptr check cannot read
// the process's memory map and reports a false "invalid vptr" on a shared_ptr
// control block ("memory cannot be printed"). These tests run in the normal
// and ThreadSanitizer builds; the ASan+UBSan build skips them, saying why.
#if defined(__SANITIZE_ADDRESS__)
#define SKIP_UNDER_UBSAN_EMFILE()                                                              \
  GTEST_SKIP() << "UBSan's vptr check misfires with descriptors exhausted; run in the normal " \
                  "build"
#else
#define SKIP_UNDER_UBSAN_EMFILE() (void)0
#endif

TEST(FaultLiveness, UnknownLivenessNeverTakesOverAProducer) {
  SKIP_UNDER_UBSAN_EMFILE();
  ScopedBus sb("fl");
  Bus bus = sb.open();
  Publisher pub = bus.publisher("md", config(Policy::Lossy, 64));
  Child child([&](Child& self) {
    Bus b = Bus::open(sb.name());
    Topic t = b.topic("md", config(Policy::Lossy, 64));
    (void)detail::self_identity();
    exhaust_descriptors();
    try {
      Publisher second(t);
      self.report("took over a live producer");
      return 1;
    } catch (const Error& e) {
      self.report(std::string(to_string(e.code())) + ": " + e.what());
      return e.code() == Errc::ProducerExists ? 0 : 2;
    }
  });
  const auto line = child.line();
  EXPECT_EQ(child.wait(), 0) << line.value_or("(no report)");
  EXPECT_EQ(pub.try_publish(as_bytes("x", 1)), PublishResult::Ok);
}

// ... nor reap a live consumer that holds a reliable producer up ...
TEST(FaultLiveness, UnknownLivenessNeverReapsAConsumer) {
  SKIP_UNDER_UBSAN_EMFILE();
  ScopedBus sb("fl");
  Bus bus = sb.open();
  Topic topic = bus.topic("orders", config(Policy::Reliable, 4));
  Subscriber slow(topic);  // live, reads nothing
  Child child([&](Child& self) {
    Bus b = Bus::open(sb.name());
    Publisher p = b.publisher("orders", config(Policy::Reliable, 4));
    for (int i = 0; i < 4; ++i)
      if (p.try_publish(as_bytes("x", 1)) != PublishResult::Ok) return 3;
    (void)detail::self_identity();
    exhaust_descriptors();
    const PublishResult r = p.publish(as_bytes("x", 1), 100ms);
    for (int i = 0; i < 1000; ++i) (void)p.try_publish(as_bytes("x", 1));
    self.report(std::string(to_string(r)));
    return r == PublishResult::Timeout ? 0 : 1;
  });
  const auto line = child.line();
  EXPECT_EQ(child.wait(), 0) << line.value_or("(no report)");
  EXPECT_EQ(topic.head_hint(), 4u);
  EXPECT_EQ(detail::Internals::state(topic)->header->hot.reaped_consumers.load(), 0u);
  // The consumer is still registered and gets every message.
  int got = 0;
  while (slow.poll([&](const Message&) { ++got; }) > 0) {
  }
  EXPECT_EQ(got, 4);
}

// ... nor free a live subscriber's entry to make room in a full table.
TEST(FaultLiveness, UnknownLivenessNeverFreesConsumerEntries) {
  SKIP_UNDER_UBSAN_EMFILE();
  ScopedBus sb("fl");
  Bus bus = sb.open();
  Topic topic = bus.topic("t", config(Policy::Lossy, 8, 64, 2));
  Subscriber a(topic);
  Subscriber b(topic);
  Child child([&](Child& self) {
    Bus bb = Bus::open(sb.name());
    Topic t = bb.topic("t", config(Policy::Lossy, 8, 64, 2));
    (void)detail::self_identity();
    exhaust_descriptors();
    try {
      Subscriber third(t);
      self.report("freed a live consumer's entry");
      return 1;
    } catch (const Error& e) {
      self.report(std::string(to_string(e.code())) + ": " + e.what());
      return e.code() == Errc::ConsumerTableFull ? 0 : 2;
    }
  });
  const auto line = child.line();
  EXPECT_EQ(child.wait(), 0) << line.value_or("(no report)");
  EXPECT_EQ(detail::Internals::state(topic)->header->registry.leaves.load(), 0u);
}

// Without any descriptor a process cannot learn its own identity: taking a
// role then fails with a clear error instead of registering as nobody.
TEST(FaultLiveness, NoDescriptorForOwnIdentityIsAClearError) {
  SKIP_UNDER_UBSAN_EMFILE();
  ScopedBus sb("fl");
  Bus bus = sb.open();
  (void)bus.topic("md", config(Policy::Lossy, 64));
  Child child([&](Child& self) {
    Bus b = Bus::open(sb.name());
    Topic t = b.topic("md", config(Policy::Lossy, 64));
    exhaust_descriptors();  // before this child ever computed its identity
    try {
      Publisher p(t);
      self.report("published without an identity");
      return 1;
    } catch (const Error& e) {
      self.report(e.what());
      return e.code() == Errc::SystemError &&
                     std::string(e.what()).find("descriptor") != std::string::npos
                 ? 0
                 : 2;
    }
  });
  const auto line = child.line();
  EXPECT_EQ(child.wait(), 0) << line.value_or("(no report)");
}

}  // namespace
}  // namespace shmbus::test
