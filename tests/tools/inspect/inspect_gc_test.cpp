// bus-inspect gc: removes only what is dead (a topic whose participants all
// exited, a temporary whose creator is gone) and says why it keeps the rest.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "inspect_harness.hpp"
#include "shmbus/detail/layout.hpp"

namespace shmbus::test {
namespace {

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

}  // namespace
}  // namespace shmbus::test
