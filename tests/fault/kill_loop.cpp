// bus-killloop: SIGKILL loops against the crash guarantees (README,
// "Guarantees"), bounded in time, with fixed seeds and printed counts.
//
//   bus-killloop producers --policy reliable|lossy [--kills N] [--seed S] [--max-seconds T]
//       Producers (children) publish stamped messages in bursts and are
//       SIGKILLed at random points, mid-burst as often as not; each next
//       producer takes the topic over. This process is a registered consumer
//       and verifies every payload (tools/soak/verify.hpp): no torn payload,
//       no duplicate, every missing sequence covered by a reported gap, and
//       on a reliable topic no gap at all and nothing a producer published
//       missing (its count of publishes is on a shared board that outlives it).
//   bus-killloop consumers --mode try|block [--kills N] ...
//       One producer on a reliable topic (try_claim, or publish with a
//       timeout); consumers (children) register, read some or stall, and are
//       SIGKILLed. After each kill the producer must get past the dead
//       consumer (reaped) within a bound; this process verifies the stream.
//   bus-killloop create [--kills N] ...
//       Children create a bus and topics and are SIGKILLed while doing it;
//       then a fresh process must open/create and use everything the child
//       touched (nothing wedged), and gc must remove what is left once all
//       its users are gone.
//
// Prints one line of counts ending in "result=PASS" or "result=FAIL"; exit
// status 0 on PASS, 1 on FAIL (the first problem on stderr), 2 on bad usage.
// Children are forked (tests/fault/fault_util.hpp); every wait is bounded.
#include <dirent.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "fault_util.hpp"
#include "shmbus/admin/gc.hpp"
#include "shmbus/core/internals.hpp"
#include "shmbus/shmbus.hpp"
#include "soak/roles.hpp"
#include "soak/verify.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using shmbus::soak::Board;
using Checker = shmbus::soak::Checker;
using shmbus::test::Child;

struct Args {
  std::string cmd;
  std::string policy = "reliable";
  std::string mode = "try";
  int kills = 100;
  std::uint64_t seed = 1;
  double max_seconds = 120;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "bus-killloop: %s\n"
               "usage: bus-killloop producers --policy reliable|lossy [options]\n"
               "       bus-killloop consumers --mode try|block [options]\n"
               "       bus-killloop create [options]\n"
               "options: --kills N  --seed S  --max-seconds T\n",
               why.c_str());
  std::exit(2);
}

Args parse(int argc, char** argv) {
  if (argc < 2) usage("no subcommand");
  Args a;
  a.cmd = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) usage("option " + k + " needs a value");
    const std::string v = argv[++i];
    if (k == "--policy") {
      a.policy = v;
    } else if (k == "--mode") {
      a.mode = v;
    } else if (k == "--kills") {
      a.kills = std::atoi(v.c_str());
    } else if (k == "--seed") {
      a.seed = std::strtoull(v.c_str(), nullptr, 10);
    } else if (k == "--max-seconds") {
      a.max_seconds = std::atof(v.c_str());
    } else {
      usage("unknown option " + k);
    }
  }
  if (a.policy != "reliable" && a.policy != "lossy") usage("--policy is reliable or lossy");
  if (a.mode != "try" && a.mode != "block") usage("--mode is try or block");
  if (a.kills < 1) usage("--kills must be at least 1");
  return a;
}

// The run's deadline and its first failure.
class Run {
 public:
  explicit Run(double max_seconds)
      : start_(Clock::now()),
        deadline_(start_ + std::chrono::milliseconds(static_cast<long>(max_seconds * 1000))) {}
  void fail(const std::string& what) {
    if (failure_.empty()) failure_ = what;
  }
  [[nodiscard]] bool failed() const { return !failure_.empty(); }
  [[nodiscard]] bool overdue() {
    if (Clock::now() < deadline_) return false;
    fail("time bound exceeded (--max-seconds)");
    return true;
  }
  [[nodiscard]] double seconds() const {
    return std::chrono::duration<double>(Clock::now() - start_).count();
  }
  int finish(const std::string& counts) {
    std::printf("%s seconds=%.1f result=%s\n", counts.c_str(), seconds(),
                failed() ? "FAIL" : "PASS");
    std::fflush(stdout);
    if (failed()) std::fprintf(stderr, "bus-killloop: FAIL: %s\n", failure_.c_str());
    return failed() ? 1 : 0;
  }

 private:
  Clock::time_point start_;
  Clock::time_point deadline_;
  std::string failure_;
};

// Removes the bus when the run ends, however it ends.
struct BusGuard {
  std::string name;
  ~BusGuard() { shmbus::Bus::remove(name); }
};

shmbus::TopicConfig topic_config(shmbus::Policy p, std::uint32_t slots) {
  shmbus::TopicConfig c;
  c.policy = p;
  c.slot_count = slots;
  c.slot_size = 256;
  c.max_consumers = 8;
  return c;
}

// SIGKILL and reap (bounded).
void kill9(Child& c) {
  c.kill(SIGKILL);
  (void)c.wait(std::chrono::seconds(10));
}

std::string bus_name(const char* tag) {
  return std::string(tag) + "-" + std::to_string(::getpid());
}

// ------------------------------------------------------------------ producers

int producers(const Args& a) {
  Run run(a.max_seconds);
  const bool reliable = a.policy == "reliable";
  const shmbus::TopicConfig cfg =
      topic_config(reliable ? shmbus::Policy::Reliable : shmbus::Policy::Lossy, 64);
  BusGuard guard{bus_name("killp")};
  shmbus::Bus::remove(guard.name);
  shmbus::Bus bus = shmbus::Bus::open_or_create(guard.name);
  Checker chk(bus, "kill.p", cfg, "killloop-check");
  shmbus::soak::Boards boards(1);
  Board& b = boards[0];
  std::mt19937_64 rng(a.seed);
  std::map<std::uint64_t, std::uint64_t> committed;  // per generation, at its death
  int kills = 0, mid_burst = 0, mid_write = 0, before_ready = 0, takeovers = 0, stalls = 0;
  const shmbus::detail::RingView ring(shmbus::detail::Internals::state(chk.topic())->ring);
  // Once a producer held the topic, every next one takes it over from a dead owner.
  bool ever_ready = false;

  auto spawn = [&](std::uint64_t gen, std::uint64_t limit) {
    b.reset();
    return std::make_unique<Child>([&, gen, limit](Child&) {
      shmbus::Bus cb = shmbus::Bus::open(guard.name);
      shmbus::PublisherOptions po;
      po.name = "killloop-p" + std::to_string(gen);
      shmbus::Publisher pub(cb.topic("kill.p", cfg), po);
      b.took_over.store(pub.took_over() ? 1 : 0);
      b.ready.store(1, std::memory_order_release);
      shmbus::soak::ProduceOptions o;
      o.mode = gen % 2 == 0 ? shmbus::soak::PublishMode::Try : shmbus::soak::PublishMode::Block;
      o.burst_max = 400;
      // A lossy producer never waits: without pauses it is mostly mid-burst.
      o.pause_max_us = reliable ? 200 : 0;
      o.limit = limit;
      o.hold_every = 16;
      o.hold_us = 20;
      return shmbus::soak::produce(pub, gen, b, o, a.seed);
    });
  };

  for (std::uint64_t gen = 1; kills < a.kills && !run.overdue(); ++gen) {
    auto child = spawn(gen, 0);
    // A quarter of the kills land in the first 400 us (the open, the
    // takeover); the rest after the producer holds the topic, at a random
    // point of its bursts.
    std::uint64_t delay_us = rng() % 400;
    if (rng() % 4 != 0) {
      (void)chk.pump_until([&] { return b.ready.load() != 0; }, std::chrono::seconds(10));
      delay_us = rng() % (rng() % 2 == 0 ? 2000 : 10000);
    }
    const auto until = Clock::now() + std::chrono::microseconds(delay_us);
    while (Clock::now() < until) {
      // On a lossy topic, stall now and then so the producer laps us (gaps).
      const bool stall = !reliable && rng() % 8 == 0;
      stalls += stall ? 1 : 0;
      chk.pump_for(std::chrono::microseconds(std::min<std::uint64_t>(300, delay_us)), stall);
    }
    const bool ready = b.ready.load(std::memory_order_acquire) != 0;
    mid_burst += b.in_burst.load() != 0 ? 1 : 0;
    kill9(*child);
    ++kills;
    // The next slot is left marked "being written" (odd), which no consumer
    // may deliver: killed between claim and commit, or (most kills) after a
    // commit, which claims the next slot ahead (detail/ring.hpp).
    const std::uint64_t next = chk.topic().head_hint() + 1;
    if (ring.slot(next)->seq.load(std::memory_order_acquire) == 2 * next + 1) ++mid_write;
    before_ready += ready ? 0 : 1;
    if (ready && b.took_over.load() != 0) ++takeovers;
    if (ready && ever_ready && b.took_over.load() == 0)
      run.fail("producer " + std::to_string(gen) +
               " did not take over from its killed predecessor");
    if (ready) ever_ready = true;
    committed[gen] = b.committed.load(std::memory_order_acquire);
  }
  // A last producer publishes a few messages and the end marker.
  const std::uint64_t last_gen = committed.size() + 1;
  {
    auto child = spawn(last_gen, 200);
    if (!chk.pump_until([&] { return chk.end(); }, std::chrono::seconds(30)))
      run.fail("the last producer's end marker did not arrive within 30 s");
    const int rc = child->wait(std::chrono::seconds(10));
    if (rc != 0) run.fail("the last producer exited with " + std::to_string(rc));
    committed[last_gen] = b.committed.load();
  }

  const auto& v = chk.verifier();
  if (!v.clean()) run.fail(v.first_error());
  // Published per generation is its board count, or one more when it was
  // killed between a publish and the count's store. Reliable: every one of
  // them was delivered.
  std::uint64_t published = 0, lost = 0, phantom = 0;
  for (const auto& [gen, n] : committed) {
    published += n;
    const auto it = v.per_generation().find(gen);
    const std::uint64_t got = it == v.per_generation().end() ? 0 : it->second;
    if (got > n + 1) phantom += got - n - 1;
    if (reliable && got < n) lost += n - got;
  }
  if (lost > 0) run.fail(std::to_string(lost) + " published messages never delivered");
  if (phantom > 0) run.fail(std::to_string(phantom) + " messages delivered beyond any publish");
  if (v.expected() != chk.topic().head_hint() + 1)
    run.fail("the stream ends at " + std::to_string(v.expected() - 1) + ", the topic's head is " +
             std::to_string(chk.topic().head_hint()));
  const std::uint64_t unaccounted = v.counts().lost + lost;
  return run.finish(
      "killloop producers policy=" + a.policy + " seed=" + std::to_string(a.seed) +
      " kills=" + std::to_string(kills) + " mid_burst=" + std::to_string(mid_burst) +
      " mid_write=" + std::to_string(mid_write) + " before_ready=" + std::to_string(before_ready) +
      " takeovers=" + std::to_string(takeovers) + " consumer_stalls=" + std::to_string(stalls) +
      " published>=" + std::to_string(published) + " " + v.summary() +
      " lost_total=" + std::to_string(unaccounted) + " phantom=" + std::to_string(phantom));
}

// ------------------------------------------------------------------ consumers

int consumers(const Args& a) {
  Run run(a.max_seconds);
  constexpr std::uint32_t kSlots = 16;
  const shmbus::TopicConfig cfg = topic_config(shmbus::Policy::Reliable, kSlots);
  BusGuard guard{bus_name("killc")};
  shmbus::Bus::remove(guard.name);
  shmbus::Bus bus = shmbus::Bus::open_or_create(guard.name);
  Checker chk(bus, "kill.c", cfg, "killloop-check");
  shmbus::soak::Boards boards(2);
  Board& pb = boards[0];
  Board& cb = boards[1];
  std::mt19937_64 rng(a.seed);

  pb.reset();
  Child producer([&](Child&) {
    shmbus::Bus b = shmbus::Bus::open(guard.name);
    shmbus::PublisherOptions po;
    po.name = "killloop-producer";
    shmbus::Publisher pub(b.topic("kill.c", cfg), po);
    pb.ready.store(1, std::memory_order_release);
    shmbus::soak::ProduceOptions o;
    o.mode = a.mode == "try" ? shmbus::soak::PublishMode::Try : shmbus::soak::PublishMode::Block;
    o.burst_max = 32;
    o.pause_max_us = 50;
    o.block_timeout = std::chrono::milliseconds(100);
    return shmbus::soak::produce(pub, 1, pb, o, a.seed);
  });
  if (!chk.pump_until([&] { return pb.ready.load() != 0; }, std::chrono::seconds(10)))
    run.fail("the producer did not start within 10 s");

  int kills = 0, before_ready = 0, stalled = 0;
  std::uint64_t violations = 0;
  double worst_resume_ms = 0;
  while (kills < a.kills && !run.failed() && !run.overdue()) {
    cb.reset();
    // Consumers of three kinds: one that holds its place from the start
    // (the producer stops at a ring's depth until it is reaped), one that
    // reads as fast as it can, one that reads slowly.
    const int kind = kills % 3;
    cb.stall.store(kind == 0 ? 1 : 0);
    Child consumer([&, kind](Child&) {
      shmbus::Bus b = shmbus::Bus::open(guard.name);
      shmbus::SubscriberOptions so;
      so.name = "killloop-c";
      shmbus::Subscriber sub(b.topic("kill.c", cfg), so);
      const std::uint64_t first = sub.next_sequence();
      cb.ready.store(1, std::memory_order_release);
      shmbus::soak::ConsumeOptions co;
      co.work_us = kind == 2 ? 20 : 0;
      return shmbus::soak::consume(sub, cb, co, true, first);
    });
    // A fifth of the kills land in the first 500 us (registration), the
    // rest while the consumer reads or stalls.
    std::uint64_t delay_us = rng() % 500;
    if (rng() % 5 != 0) {
      (void)chk.pump_until([&] { return cb.ready.load() != 0; }, std::chrono::seconds(10));
      delay_us = rng() % 5000;
    }
    chk.pump_for(std::chrono::microseconds(delay_us));
    const bool ready = cb.ready.load(std::memory_order_acquire) != 0;
    kill9(consumer);
    ++kills;
    before_ready += ready ? 0 : 1;
    stalled += kind == 0 && ready ? 1 : 0;
    violations += cb.violations.load();
    // The producer must get past the dead consumer: a ring's depth and more.
    const std::uint64_t at_kill = pb.committed.load(std::memory_order_acquire);
    const auto t0 = Clock::now();
    if (!chk.pump_until([&] { return pb.committed.load() >= at_kill + 2 * kSlots; },
                        std::chrono::seconds(5))) {
      run.fail("after kill " + std::to_string(kills) + " the producer published only " +
               std::to_string(pb.committed.load() - at_kill) +
               " messages in 5 s: the dead consumer was not reaped");
      break;
    }
    worst_resume_ms = std::max(
        worst_resume_ms, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  pb.stop.store(1);
  if (!chk.pump_until([&] { return chk.end(); }, std::chrono::seconds(30)))
    run.fail("the producer's end marker did not arrive within 30 s");
  const int rc = producer.wait(std::chrono::seconds(10));
  if (rc != 0) run.fail("the producer exited with " + std::to_string(rc));
  const auto& v = chk.verifier();
  if (!v.clean()) run.fail(v.first_error());
  if (violations > 0)
    run.fail(std::to_string(violations) + " killed consumers saw a bad stream before dying");
  const std::uint64_t published = pb.committed.load();
  const std::uint64_t lost =
      published > v.counts().delivered ? published - v.counts().delivered : 0;
  if (published != v.counts().delivered)
    run.fail("published " + std::to_string(published) + " but delivered " +
             std::to_string(v.counts().delivered));
  char worst[32];
  std::snprintf(worst, sizeof worst, "%.1f", worst_resume_ms);
  return run.finish("killloop consumers mode=" + a.mode + " seed=" + std::to_string(a.seed) +
                    " kills=" + std::to_string(kills) + " stalled_when_killed=" +
                    std::to_string(stalled) + " before_ready=" + std::to_string(before_ready) +
                    " worst_resume_ms=" + worst + " published=" + std::to_string(published) +
                    " would_block=" + std::to_string(pb.would_block.load()) +
                    " timeouts=" + std::to_string(pb.timeouts.load()) + " " + v.summary() +
                    " lost_total=" + std::to_string(lost + v.counts().lost) +
                    " consumer_violations=" + std::to_string(violations));
}

// ------------------------------------------------------------------ create

// /dev/shm temporaries ("shmbus-tmp.<pid>.<n>") of process `pid`.
std::vector<std::string> temporaries_of(pid_t pid) {
  std::vector<std::string> out;
  const std::string prefix = "shmbus-tmp." + std::to_string(pid) + ".";
  DIR* d = ::opendir("/dev/shm");
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d))
    if (std::string(e->d_name).rfind(prefix, 0) == 0) out.emplace_back(e->d_name);
  ::closedir(d);
  return out;
}

int create(const Args& a) {
  Run run(a.max_seconds);
  const shmbus::TopicConfig cfg = topic_config(shmbus::Policy::Reliable, 1024);
  shmbus::soak::Boards boards(1);
  Board& b = boards[0];
  std::mt19937_64 rng(a.seed);
  int kills = 0, in_bus = 0, in_topics = 0, reopened = 0, gc_clean = 0, temporaries = 0;
  while (kills < a.kills && !run.failed() && !run.overdue()) {
    BusGuard guard{bus_name("killk") + "-" + std::to_string(kills)};
    shmbus::Bus::remove(guard.name);
    // Half the time the bus exists already (made by a process that then
    // exited), so the kill lands in topic creation.
    if (kills % 2 == 1) {
      Child pre([&](Child&) {
        (void)shmbus::Bus::open_or_create(guard.name);
        return 0;
      });
      if (pre.wait() != 0) run.fail("could not pre-create bus " + guard.name);
    }
    b.reset();
    Child creator([&](Child&) {
      b.stage.store(1);
      shmbus::Bus cbus = shmbus::Bus::open_or_create(guard.name);
      for (std::uint32_t j = 0;; ++j) {
        b.stage.store(2 + j);
        (void)cbus.topic("t" + std::to_string(j), cfg);
      }
      return 0;
    });
    const std::uint64_t delay_us = rng() % 3000;
    shmbus::soak::sleep_us(delay_us);
    const std::uint32_t stage = b.stage.load();
    kill9(creator);
    // Killed before the bus was open: inside its creation when it did not
    // exist yet (else inside opening it).
    in_bus += stage <= 1 && kills % 2 == 0 ? 1 : 0;
    in_topics += stage >= 2 ? 1 : 0;
    ++kills;
    // A fresh process opens (or creates) the bus and every topic the killed
    // one may have touched, and publishes and reads on each (bounded).
    const std::uint32_t topics = stage >= 2 ? stage - 1 : 1;
    Child user([&](Child& self) {
      shmbus::Bus ub = shmbus::Bus::open_or_create(guard.name);
      for (std::uint32_t j = 0; j < topics; ++j) {
        const std::string t = "t" + std::to_string(j);
        shmbus::Topic topic = ub.topic(t, cfg);
        shmbus::Subscriber sub(topic);
        shmbus::Publisher pub(topic);
        std::byte buf[64];
        const std::size_t n =
            shmbus::soak::stamp(buf, shmbus::soak::stamp_size(1, j, 64), 1, j, pub.next_sequence());
        if (pub.publish(std::span<const std::byte>(buf, n), std::chrono::seconds(2)) !=
            shmbus::PublishResult::Ok) {
          self.report("publish on " + t + " failed");
          return 1;
        }
        std::size_t got = 0;
        const auto until = Clock::now() + std::chrono::seconds(2);
        while (got == 0 && Clock::now() < until) got = sub.poll([](const shmbus::Message&) {});
        if (got != 1) {
          self.report("nothing read back on " + t);
          return 1;
        }
      }
      return 0;
    });
    const int rc = user.wait(std::chrono::seconds(20));
    if (rc != 0) {
      const auto why = user.line(std::chrono::milliseconds(100));
      run.fail("after kill " + std::to_string(kills) + " (stage " + std::to_string(stage) +
               ") a fresh process could not use bus " + guard.name + ": exit " +
               std::to_string(rc) + (why ? " " + *why : std::string()));
      break;
    }
    ++reopened;
    // Everyone is gone now: gc removes the bus entirely.
    const shmbus::GcReport gc = shmbus::collect_garbage(guard.name);
    if (shmbus::Bus::exists(guard.name)) {
      std::string kept;
      for (const auto& k : gc.kept) kept += " [" + k.segment + ": " + k.reason + "]";
      run.fail("gc left bus " + guard.name + " behind:" + kept);
      break;
    }
    ++gc_clean;
    // A creator killed before publishing its segment leaves a temporary;
    // gc of every bus (dry run: others' buses are not ours to touch) must
    // name it for removal, then it is removed here.
    const std::vector<std::string> left = temporaries_of(creator.pid());
    if (!left.empty()) {
      temporaries += static_cast<int>(left.size());
      const shmbus::GcReport all = shmbus::collect_garbage(std::nullopt, true);
      for (const auto& t : left) {
        bool named = false;
        for (const auto& r : all.removed) named = named || r.segment == t;
        if (!named) run.fail("gc would not remove the dead creator's temporary " + t);
        (void)::shm_unlink(t.c_str());
      }
    }
  }
  return run.finish("killloop create seed=" + std::to_string(a.seed) +
                    " kills=" + std::to_string(kills) + " in_bus_create=" + std::to_string(in_bus) +
                    " in_topic_create=" + std::to_string(in_topics) + " reopened_and_used=" +
                    std::to_string(reopened) + " gc_removed_bus=" + std::to_string(gc_clean) +
                    " dead_temporaries=" + std::to_string(temporaries));
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  try {
    if (a.cmd == "producers") return producers(a);
    if (a.cmd == "consumers") return consumers(a);
    if (a.cmd == "create") return create(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bus-killloop: FAIL: %s\n", e.what());
    return 1;
  }
  usage("unknown subcommand " + a.cmd);
}
