// bus-soak: producers, consumers and bus-inspect on one bus for a configured
// time, with faults on a schedule, then an account of every message.
//
//   bus-soak --seconds 600 [--topics 4] [--seed 1] [fault schedule options]
//
// Each topic (reliable and lossy in turn) has a producer, a steady consumer
// and churning consumers, each a forked child (tests/fault/fault_util.hpp),
// plus a verifying consumer in this process (tools/soak/roles.hpp). Faults,
// each at random intervals around its mean: SIGKILL of a producer (the next
// generation takes the topic over), SIGSTOP then SIGCONT of a producer or a
// steady consumer, SIGKILL and restart of a churning consumer; `bus-inspect
// list` runs now and then and must succeed.
//
// At the end the producers publish an end marker, everybody drains, and each
// topic is accounted for: published (what the producers counted), delivered,
// dropped (reported gaps: consumer lapped on a lossy topic), lost (neither
// delivered nor reported). Exit status 1 if anything was lost on a reliable
// topic, or any payload was torn, duplicated or out of place anywhere, or a
// consumer or bus-inspect failed; 0 otherwise.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "fault_util.hpp"
#include "shmbus/shmbus.hpp"
#include "soak/roles.hpp"
#include "soak/verify.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using shmbus::soak::Board;
using shmbus::test::Child;

struct Options {
  double seconds = 60;
  int topics = 4;
  std::uint64_t seed = 1;
  std::string bus;
  int churn = 2;                  // churning consumers per topic
  double kill_producer_ms = 400;  // mean interval between producer kills
  double stop_ms = 700;           // mean interval between SIGSTOPs
  double stop_max_ms = 300;       // a stopped process is continued within this
  double restart_ms = 300;        // mean interval between consumer kill-and-restart
  double inspect_ms = 2000;       // interval between bus-inspect runs
  std::string inspect;
};

struct TopicRun {
  std::string name;
  bool reliable = false;
  shmbus::TopicConfig cfg;
  std::unique_ptr<shmbus::soak::Checker> check;
  std::unique_ptr<Child> producer;
  std::uint64_t gen = 0;
  std::uint64_t committed_dead = 0;                  // by producers killed so far
  std::map<std::uint64_t, std::uint64_t> committed;  // per killed generation
  std::uint64_t producer_kills = 0;
  std::uint64_t would_block = 0, timeouts = 0;
  std::unique_ptr<Child> steady;
  std::vector<std::unique_ptr<Child>> churn;
  std::uint64_t churn_restarts = 0, churn_violations = 0, churn_consumed = 0;
  Board* pboard = nullptr;
  Board* sboard = nullptr;
  std::vector<Board*> cboards;
};

// A stopped child and when to continue it.
struct Stopped {
  Child* who;
  Clock::time_point until;
};

class Soak {
 public:
  explicit Soak(const Options& o)
      : o_(o), rng_(o.seed), boards_(static_cast<std::size_t>(o.topics) * 8) {}

  int run() {
    const std::string bus_name = o_.bus;
    shmbus::Bus::remove(bus_name);
    bus_.emplace(shmbus::Bus::open_or_create(bus_name));
    std::size_t board = 0;
    for (int i = 0; i < o_.topics; ++i) {
      TopicRun t;
      t.name = "soak.t" + std::to_string(i);
      t.reliable = i % 2 == 0;
      t.cfg.policy = t.reliable ? shmbus::Policy::Reliable : shmbus::Policy::Lossy;
      t.cfg.slot_count = 256;
      t.cfg.slot_size = 256;
      t.cfg.max_consumers = 16;
      t.check = std::make_unique<shmbus::soak::Checker>(*bus_, t.name, t.cfg, "soak-check");
      t.pboard = &boards_[board++];
      t.sboard = &boards_[board++];
      for (int c = 0; c < o_.churn; ++c) t.cboards.push_back(&boards_[board++]);
      topics_.push_back(std::move(t));
    }
    for (auto& t : topics_) {
      start_producer(t);
      t.steady = start_consumer(t, *t.sboard, 0);
      for (std::size_t c = 0; c < t.cboards.size(); ++c)
        t.churn.push_back(start_consumer(t, *t.cboards[c], c % 2 == 0 ? 0 : 50));
    }
    const auto start = Clock::now();
    const auto end = start + std::chrono::milliseconds(static_cast<long>(o_.seconds * 1000));
    auto next_kill = start + interval(o_.kill_producer_ms);
    auto next_stop = start + interval(o_.stop_ms);
    auto next_restart = start + interval(o_.restart_ms);
    auto next_inspect = start + interval(o_.inspect_ms);
    auto next_print = start + std::chrono::seconds(10);
    while (Clock::now() < end) {
      std::size_t got = 0;
      for (auto& t : topics_) got += t.check->pump();
      const auto now = Clock::now();
      continue_due(now);
      if (now >= next_kill) {
        kill_producer(pick());
        next_kill = now + interval(o_.kill_producer_ms);
      }
      if (now >= next_stop) {
        stop_one(now);
        next_stop = now + interval(o_.stop_ms);
      }
      if (now >= next_restart) {
        restart_consumer(pick());
        next_restart = now + interval(o_.restart_ms);
      }
      if (now >= next_inspect && !o_.inspect.empty()) {
        run_inspect(bus_name);
        next_inspect = now + interval(o_.inspect_ms);
      }
      if (now >= next_print) {
        std::printf("soak: %.0f s, %llu producer kills, %llu stops, %llu consumer restarts\n",
                    std::chrono::duration<double>(now - start).count(), ull(producer_kills()),
                    ull(stops_), ull(restarts()));
        std::fflush(stdout);
        next_print = now + std::chrono::seconds(10);
      }
      if (got == 0) shmbus::soak::sleep_us(50);
    }
    return finish(start);
  }

 private:
  static unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }

  std::chrono::microseconds interval(double mean_ms) {
    // Uniform in [0.5, 1.5] x the mean.
    const double f = 0.5 + static_cast<double>(rng_() % 1001) / 1000.0;
    return std::chrono::microseconds(static_cast<long>(mean_ms * 1000 * f));
  }
  TopicRun& pick() { return topics_[rng_() % topics_.size()]; }

  void start_producer(TopicRun& t) {
    const std::uint64_t gen = ++t.gen;
    Board& b = *t.pboard;
    b.reset();
    const std::string bus = o_.bus;
    const std::uint64_t seed = o_.seed;
    t.producer = std::make_unique<Child>([&b, &t, gen, bus, seed](Child&) {
      shmbus::Bus cb = shmbus::Bus::open(bus);
      shmbus::PublisherOptions po;
      po.name = "soak-p" + std::to_string(gen);
      shmbus::Publisher pub(cb.topic(t.name, t.cfg), po);
      b.ready.store(1, std::memory_order_release);
      shmbus::soak::ProduceOptions o;
      o.mode = gen % 2 == 0 ? shmbus::soak::PublishMode::Try : shmbus::soak::PublishMode::Block;
      o.burst_max = 200;
      o.pause_max_us = 2000;
      return shmbus::soak::produce(pub, gen, b, o, seed);
    });
  }

  std::unique_ptr<Child> start_consumer(TopicRun& t, Board& b, std::uint32_t work_us) {
    b.reset();
    const std::string bus = o_.bus;
    return std::make_unique<Child>([&b, &t, bus, work_us](Child&) {
      shmbus::Bus cb = shmbus::Bus::open(bus);
      shmbus::SubscriberOptions so;
      so.name = "soak-c";
      shmbus::Subscriber sub(cb.topic(t.name, t.cfg), so);
      const std::uint64_t first = sub.next_sequence();
      b.ready.store(1, std::memory_order_release);
      shmbus::soak::ConsumeOptions co;
      co.work_us = work_us;
      return shmbus::soak::consume(sub, b, co, t.reliable, first);
    });
  }

  void forget_stopped(const Child* c) {
    std::erase_if(stopped_, [c](const Stopped& s) { return s.who == c; });
  }

  void kill_producer(TopicRun& t) {
    forget_stopped(t.producer.get());
    t.producer->kill(SIGKILL);
    (void)t.producer->wait(std::chrono::seconds(10));
    t.committed[t.gen] = t.pboard->committed.load(std::memory_order_acquire);
    t.committed_dead += t.committed[t.gen];
    t.would_block += t.pboard->would_block.load();
    t.timeouts += t.pboard->timeouts.load();
    ++t.producer_kills;
    start_producer(t);
  }

  void restart_consumer(TopicRun& t) {
    if (t.churn.empty()) return;
    const std::size_t c = rng_() % t.churn.size();
    forget_stopped(t.churn[c].get());
    t.churn[c]->kill(SIGKILL);
    (void)t.churn[c]->wait(std::chrono::seconds(10));
    t.churn_violations += t.cboards[c]->violations.load();
    t.churn_consumed += t.cboards[c]->consumed.load();
    ++t.churn_restarts;
    t.churn[c] = start_consumer(t, *t.cboards[c], c % 2 == 0 ? 0 : 50);
  }

  void stop_one(Clock::time_point now) {
    TopicRun& t = pick();
    Child* c = rng_() % 2 == 0 ? t.producer.get() : t.steady.get();
    for (const auto& s : stopped_)
      if (s.who == c) return;
    c->kill(SIGSTOP);
    ++stops_;
    const auto d = std::chrono::microseconds(
        static_cast<long>(static_cast<double>(rng_() % 1001) / 1000.0 * o_.stop_max_ms * 1000));
    stopped_.push_back({c, now + d});
  }

  void continue_due(Clock::time_point now) {
    std::erase_if(stopped_, [now](const Stopped& s) {
      if (now < s.until) return false;
      s.who->kill(SIGCONT);
      return true;
    });
  }

  void run_inspect(const std::string& bus) {
    const std::string exe = o_.inspect;
    Child c([&](Child&) {
      // Its table is not wanted here, only that it reads the bus and succeeds.
      const int null = ::open("/dev/null", O_WRONLY);
      if (null >= 0) ::dup2(null, STDOUT_FILENO);
      ::execl(exe.c_str(), exe.c_str(), "list", bus.c_str(), "--no-rate",
              static_cast<char*>(nullptr));
      return 127;
    });
    ++inspect_runs_;
    const int rc = c.wait(std::chrono::seconds(20));
    if (rc != 0) {
      ++inspect_failures_;
      std::fprintf(stderr, "bus-soak: bus-inspect list %s exited with %d\n", bus.c_str(), rc);
    }
  }

  std::uint64_t producer_kills() const {
    std::uint64_t n = 0;
    for (const auto& t : topics_) n += t.producer_kills;
    return n;
  }
  std::uint64_t restarts() const {
    std::uint64_t n = 0;
    for (const auto& t : topics_) n += t.churn_restarts;
    return n;
  }

  int finish(Clock::time_point start) {
    for (const auto& s : stopped_) s.who->kill(SIGCONT);
    stopped_.clear();
    for (auto& t : topics_) t.pboard->stop.store(1);
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    bool all_end = false;
    while (!all_end && Clock::now() < deadline) {
      all_end = true;
      for (auto& t : topics_) {
        (void)t.check->pump();
        all_end = all_end && t.check->end();
      }
    }
    bool ok = all_end;
    if (!all_end) std::fprintf(stderr, "bus-soak: an end marker did not arrive within 60 s\n");
    std::uint64_t tot_pub = 0, tot_del = 0, tot_drop = 0, tot_lost = 0, tot_bad = 0;
    for (auto& t : topics_) {
      const int prc = t.producer->wait(std::chrono::seconds(30));
      const int src = t.steady->wait(std::chrono::seconds(30));
      for (std::size_t c = 0; c < t.churn.size(); ++c) {
        t.churn[c]->kill(SIGKILL);
        (void)t.churn[c]->wait(std::chrono::seconds(10));
        t.churn_violations += t.cboards[c]->violations.load();
      }
      t.would_block += t.pboard->would_block.load();
      t.timeouts += t.pboard->timeouts.load();
      const auto& v = t.check->verifier();
      const auto& c = v.counts();
      // Published: what the producers counted; a killed one may have
      // published one more than its count (killed between the two).
      const std::uint64_t published = t.committed_dead + t.pboard->committed.load();
      const std::uint64_t accounted = c.delivered + c.gap_msgs;  // every sequence up to the end
      const std::uint64_t lost_count = published > accounted ? published - accounted : 0;
      const std::uint64_t phantom =
          accounted > published + t.producer_kills ? accounted - published - t.producer_kills : 0;
      std::uint64_t lost = c.lost + lost_count;
      if (t.reliable) {
        // Reliable: per generation, every counted publish was delivered.
        t.committed[t.gen] = t.pboard->committed.load();
        for (const auto& [gen, n] : t.committed) {
          const auto it = v.per_generation().find(gen);
          const std::uint64_t got = it == v.per_generation().end() ? 0 : it->second;
          lost += got < n ? n - got : 0;
        }
      }
      const std::uint64_t bad = c.torn + c.dup + c.misplaced + c.gen_back + c.index_jump +
                                c.bad_handover + phantom + t.churn_violations;
      const bool topic_ok = prc == 0 && src == 0 && bad == 0 && (!t.reliable || lost == 0) &&
                            (!t.reliable || c.gap_msgs == 0) && c.lost == 0;
      ok = ok && topic_ok;
      std::printf(
          "topic %s policy=%s producers=%llu producer_kills=%llu published>=%llu %s "
          "dropped_lapped=%llu lost=%llu phantom=%llu refused_would_block=%llu "
          "publish_timeouts=%llu steady_consumed=%llu steady_exit=%d churn_restarts=%llu "
          "churn_consumed>=%llu churn_violations=%llu producer_exit=%d %s\n",
          t.name.c_str(), t.reliable ? "reliable" : "lossy", ull(t.gen), ull(t.producer_kills),
          ull(published), v.summary().c_str(), ull(c.gap_msgs), ull(lost), ull(phantom),
          ull(t.would_block), ull(t.timeouts), ull(t.sboard->consumed.load()), src,
          ull(t.churn_restarts), ull(t.churn_consumed), ull(t.churn_violations), prc,
          topic_ok ? "ok" : ("FAIL " + v.first_error()).c_str());
      tot_pub += published;
      tot_del += c.delivered;
      tot_drop += c.gap_msgs;
      tot_lost += lost;
      tot_bad += bad;
    }
    if (inspect_failures_ > 0) ok = false;
    std::printf(
        "soak seconds=%.1f topics=%d seed=%llu producer_kills=%llu stops=%llu "
        "consumer_restarts=%llu inspect_runs=%llu inspect_failures=%llu published>=%llu "
        "delivered=%llu dropped=%llu lost=%llu torn_dup_misplaced=%llu result=%s\n",
        std::chrono::duration<double>(Clock::now() - start).count(), o_.topics, ull(o_.seed),
        ull(producer_kills()), ull(stops_), ull(restarts()), ull(inspect_runs_),
        ull(inspect_failures_), ull(tot_pub), ull(tot_del), ull(tot_drop), ull(tot_lost),
        ull(tot_bad), ok ? "PASS" : "FAIL");
    std::fflush(stdout);
    topics_.clear();
    bus_.reset();
    shmbus::Bus::remove(o_.bus);
    return ok ? 0 : 1;
  }

  Options o_;
  std::mt19937_64 rng_;
  shmbus::soak::Boards boards_;
  std::optional<shmbus::Bus> bus_;
  std::deque<TopicRun> topics_;
  std::vector<Stopped> stopped_;
  std::uint64_t stops_ = 0;
  std::uint64_t inspect_runs_ = 0;
  std::uint64_t inspect_failures_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "bus-soak: producers, consumers and bus-inspect on one bus for a while, with SIGKILL, "
      "SIGSTOP/SIGCONT and consumer restarts on a schedule; then an account of every message "
      "(published, delivered, dropped, lost). Exit 1 if anything was lost on a reliable topic "
      "or any message was torn, duplicated or out of place.",
      "bus-soak"};
  app.add_option("--seconds", o.seconds, "how long the faults run")
      ->check(CLI::Range(1.0, 86400.0))
      ->capture_default_str();
  app.add_option("--topics", o.topics, "topics (reliable and lossy in turn)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--seed", o.seed, "seed of the fault schedule and the producers")
      ->capture_default_str();
  app.add_option("--bus", o.bus, "bus name (default soak-<pid>; removed at start and end)");
  app.add_option("--churn", o.churn, "consumers per topic killed and restarted")
      ->check(CLI::Range(0, 8))
      ->capture_default_str();
  app.add_option("--kill-producer-ms", o.kill_producer_ms, "mean ms between producer SIGKILLs")
      ->check(CLI::Range(1.0, 1e9))
      ->capture_default_str();
  app.add_option("--stop-ms", o.stop_ms, "mean ms between SIGSTOPs of a producer or consumer")
      ->check(CLI::Range(1.0, 1e9))
      ->capture_default_str();
  app.add_option("--stop-max-ms", o.stop_max_ms, "longest a stopped process stays stopped")
      ->check(CLI::Range(0.0, 60000.0))
      ->capture_default_str();
  app.add_option("--restart-ms", o.restart_ms, "mean ms between consumer kill-and-restarts")
      ->check(CLI::Range(1.0, 1e9))
      ->capture_default_str();
  app.add_option("--inspect-ms", o.inspect_ms, "ms between `bus-inspect list` runs")
      ->check(CLI::Range(10.0, 1e9))
      ->capture_default_str();
#ifdef SHMBUS_SOAK_INSPECT
  o.inspect = SHMBUS_SOAK_INSPECT;
#endif
  app.add_option("--inspect", o.inspect, "the bus-inspect executable (\"\": do not run it)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (o.bus.empty()) o.bus = "soak-" + std::to_string(::getpid());
  try {
    shmbus::validate_bus_name(o.bus);
    Soak s(o);
    return s.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bus-soak: %s\n", e.what());
    return 1;
  }
}
