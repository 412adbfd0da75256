// Topics and buses: creation, opening, every named error, and recovery from
// what dead processes leave behind.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "shmbus/core/internals.hpp"
#include "shmbus/detail/process.hpp"
#include "shmbus/detail/segments.hpp"
#include "shmbus/messages.hpp"
#include "test_util.hpp"

namespace shmbus::test {
namespace {

using namespace std::chrono_literals;

template <class F>
Error expect_error(F&& f, Errc code) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e;
  }
  ADD_FAILURE() << "expected " << to_string(code);
  return Error(Errc::SystemError, "no error thrown");
}

bool contains(const Error& e, const std::string& s) {
  return std::string(e.what()).find(s) != std::string::npos;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(Topic, CreateThenOpenSharesOneRing) {
  ScopedBus sb;
  Bus a = sb.open();
  Bus b = Bus::open(sb.name());
  Topic t1 = a.topic("shared", config(Policy::Reliable, 64, 128, 4));
  Topic t2 = b.open_topic("shared");
  EXPECT_EQ(t2.policy(), Policy::Reliable);
  EXPECT_EQ(t2.slot_count(), 64u);
  EXPECT_EQ(t2.slot_size(), 128u);
  EXPECT_EQ(t2.max_consumers(), 4u);
  EXPECT_EQ(t2.max_payload(), 96u);
  Publisher pub(t1);
  Subscriber sub(t2);
  ASSERT_EQ(pub.try_publish(as_bytes("hello", 5)), PublishResult::Ok);
  std::string got;
  ASSERT_EQ(sub.poll([&](const Message& m) {
    got.assign(reinterpret_cast<const char*>(m.data.data()), m.data.size());
  }),
            1u);
  EXPECT_EQ(got, "hello");
  EXPECT_EQ(a.topic_names(), std::vector<std::string>({"shared"}));
  EXPECT_TRUE(a.has_topic("shared"));
  EXPECT_FALSE(a.has_topic("other"));
  EXPECT_NE(std::find(Bus::list().begin(), Bus::list().end(), sb.name()), Bus::list().end());
}

TEST(Topic, MissingBusAndTopicAreNamedErrors) {
  ScopedBus sb;
  const Error e1 = expect_error([&] { (void)Bus::open(sb.name()); }, Errc::NoSuchBus);
  EXPECT_TRUE(contains(e1, sb.name()));
  EXPECT_FALSE(Bus::exists(sb.name()));
  Bus bus = sb.open();
  (void)bus.topic("present", {});
  const Error e2 = expect_error([&] { (void)bus.open_topic("absent"); }, Errc::NoSuchTopic);
  EXPECT_TRUE(contains(e2, "absent"));
  EXPECT_TRUE(contains(e2, "present")) << "lists the topics that do exist";
}

TEST(Topic, SubscriberCanWaitForTheProducerToCreateTheTopic) {
  ScopedBus sb;
  Bus bus = sb.open();
  const Error e = expect_error([&] { (void)bus.wait_for_topic("later", 10ms); }, Errc::Timeout);
  EXPECT_TRUE(contains(e, "later")) << e.what();
  std::thread producer([&] {
    Bus b = Bus::open(sb.name());
    (void)b.topic("later", config(Policy::Reliable, 64, 256));
  });
  Topic t = bus.wait_for_topic("later", 30s);
  producer.join();
  EXPECT_EQ(t.slot_count(), 64u) << "the producer's geometry, not a subscriber's default";
  EXPECT_EQ(t.policy(), Policy::Reliable);
}

TEST(Topic, ConfigMismatchSaysWhatDiffers) {
  ScopedBus sb;
  Bus bus = sb.open();
  (void)bus.topic("orders", config(Policy::Reliable, 256));
  const Error e = expect_error([&] { (void)bus.topic("orders", config(Policy::Lossy, 256)); },
                               Errc::TopicMismatch);
  EXPECT_TRUE(contains(e, "policy reliable")) << e.what();
  EXPECT_TRUE(contains(e, "policy lossy")) << e.what();
  (void)expect_error([&] { (void)bus.topic("orders", config(Policy::Reliable, 512)); },
                     Errc::TopicMismatch);
  // TypeOnly accepts the creator's geometry.
  Topic t = bus.topic("orders", config(Policy::Lossy, 8), Match::TypeOnly);
  EXPECT_EQ(t.slot_count(), 256u);
  EXPECT_EQ(t.policy(), Policy::Reliable);
}

TEST(Topic, SubscribingWithAnotherTypeIsTypeMismatch) {
  ScopedBus sb;
  Bus bus = sb.open();
  Publisher pub = bus.publisher<md::Quote>("md.quotes");
  const Error e =
      expect_error([&] { (void)bus.subscriber<md::Trade>("md.quotes"); }, Errc::TypeMismatch);
  EXPECT_TRUE(contains(e, "shmbus.md.Quote")) << e.what();
  EXPECT_TRUE(contains(e, "shmbus.md.Trade")) << e.what();
  // A raw publisher on a typed topic must say what it means (Exact).
  (void)expect_error([&] { (void)bus.topic("md.quotes", TopicConfig{}); }, Errc::TypeMismatch);
  // ... and a typed subscriber on a raw topic too.
  (void)bus.topic("raw.bytes", TopicConfig{});
  (void)expect_error([&] { (void)bus.subscriber<md::Quote>("raw.bytes"); }, Errc::TypeMismatch);
  // A raw observer may read any topic (tools do).
  EXPECT_NO_THROW((void)bus.subscriber("md.quotes"));
  EXPECT_EQ(bus.open_topic("md.quotes").type_name(), "shmbus.md.Quote");
  EXPECT_FALSE(bus.open_topic("md.quotes").schema().empty());
}

TEST(Topic, SameTypeNameWithAnotherSchemaIsSchemaMismatch) {
  ScopedBus sb;
  Bus bus = sb.open();
  (void)bus.topic<md::Quote>("md.quotes");
  TopicConfig c;
  c.type = type_of<md::Quote>();
  c.type.hash ^= 1;  // what a build from an edited quote.fbs would carry
  const Error e =
      expect_error([&] { (void)bus.topic("md.quotes", c, Match::TypeOnly); }, Errc::SchemaMismatch);
  EXPECT_TRUE(contains(e, "rebuild")) << e.what();
}

TEST(Topic, ForeignTruncatedAndEmptySegmentsAreRefused) {
  ScopedBus sb;
  Bus bus = sb.open();
  const std::string path = detail::shm_path(detail::topic_segment_name(sb.name(), "foreign"));
  write_file(path, std::string(4096, 'x'));
  Error e = expect_error([&] { (void)bus.open_topic("foreign"); }, Errc::ForeignSegment);
  EXPECT_TRUE(contains(e, path)) << e.what();
  (void)expect_error([&] { (void)bus.topic("foreign", {}); }, Errc::ForeignSegment);

  write_file(path, std::string(10, 'x'));
  e = expect_error([&] { (void)bus.open_topic("foreign"); }, Errc::TruncatedSegment);
  EXPECT_TRUE(contains(e, "rm " + path)) << "says how to clean up: " << e.what();

  write_file(path, "");
  (void)expect_error([&] { (void)bus.open_topic("foreign"); }, Errc::TruncatedSegment);

  // A real topic segment cut short.
  Topic t = bus.topic("cut", config(Policy::Lossy, 1024, 256));
  const std::string cut = detail::shm_path(detail::topic_segment_name(sb.name(), "cut"));
  ASSERT_EQ(::truncate(cut.c_str(), 2048), 0);
  (void)expect_error([&] { (void)bus.open_topic("cut"); }, Errc::TruncatedSegment);

  // A foreign directory.
  ScopedBus other;
  write_file(detail::shm_path(detail::directory_segment_name(other.name())),
             std::string(8192, '\x7f'));
  (void)expect_error([&] { (void)Bus::open(other.name()); }, Errc::ForeignSegment);
}

TEST(Topic, LayoutVersionMismatchIsRefusedWithAWayOut) {
  ScopedBus sb;
  {
    Bus bus = sb.open();
    Topic t = bus.topic("v", {});
    detail::Internals::state(t)->header->desc.layout_version.store(999);
  }
  Bus bus = Bus::open(sb.name());
  const Error e = expect_error([&] { (void)bus.open_topic("v"); }, Errc::VersionMismatch);
  EXPECT_TRUE(contains(e, "999")) << e.what();
  EXPECT_TRUE(contains(e, "rm " + detail::shm_path(detail::topic_segment_name(sb.name(), "v"))))
      << e.what();
  detail::Internals::state(bus)->header->desc.layout_version.store(0);
  (void)expect_error([&] { (void)Bus::open(sb.name()); }, Errc::VersionMismatch);
}

TEST(Topic, InvalidConfigurationIsRefused) {
  ScopedBus sb;
  Bus bus = sb.open();
  (void)expect_error([&] { (void)bus.topic("c", config(Policy::Lossy, 16, 100)); },
                     Errc::InvalidArgument);
  (void)expect_error([&] { (void)bus.topic("c", config(Policy::Lossy, 3)); },
                     Errc::InvalidArgument);
  (void)expect_error([&] { (void)bus.topic("c", config(Policy::Lossy, 1u << 25)); },
                     Errc::InvalidArgument);
  (void)expect_error([&] { (void)bus.topic("c", config(Policy::Lossy, 16, 64, 0)); },
                     Errc::InvalidArgument);
  (void)expect_error([&] { (void)bus.topic("c", config(Policy::Lossy, 1u << 24, 1024)); },
                     Errc::InvalidArgument);
  BusOptions o;
  o.capacity = 0;
  (void)expect_error([&] { (void)Bus::open_or_create(sb.name() + "x", o); }, Errc::InvalidArgument);
  EXPECT_FALSE(bus.has_topic("c"));
}

TEST(Topic, SecondLiveProducerInThisProcessIsRefused) {
  ScopedBus sb;
  Bus bus = sb.open();
  Publisher first = bus.publisher("one", {});
  const Error e = expect_error([&] { (void)bus.publisher("one", {}); }, Errc::ProducerExists);
  EXPECT_TRUE(contains(e, "this process")) << e.what();
}

TEST(Topic, SecondProducerIsToldWhoTheLiveOneIs) {
  ScopedBus sb;
  Bus bus = sb.open();
  (void)bus.topic("owned", {});
  int ready[2];
  int release[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(release), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int rc = 0;
    try {
      Bus b = Bus::open(sb.name());
      PublisherOptions o;
      o.name = "feed-A";
      Publisher p = b.publisher("owned", {}, o);
      char c = 'r';
      if (::write(ready[1], &c, 1) != 1) rc = 2;
      if (::read(release[0], &c, 1) != 1) rc = 3;
    } catch (...) {
      rc = 1;
    }
    ::_exit(rc);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  const Error e = expect_error([&] { (void)bus.publisher("owned", {}); }, Errc::ProducerExists);
  EXPECT_TRUE(contains(e, "'feed-A'")) << e.what();
  EXPECT_TRUE(contains(e, "pid " + std::to_string(child))) << e.what();
  ASSERT_EQ(::write(release[1], &c, 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // Gone (released on exit): the topic is free again.
  EXPECT_NO_THROW((void)bus.publisher("owned", {}));
}

TEST(Topic, DeadProducerIsTakenOverAndTheSequenceGoesOn) {
  ScopedBus sb;
  Bus bus = sb.open();
  Topic t = bus.topic("handover", config(Policy::Lossy, 16));
  {
    Publisher p(t);
    for (int i = 0; i < 5; ++i) ASSERT_EQ(p.try_publish(as_bytes("m", 1)), PublishResult::Ok);
  }
  // Make it look as if a process that has since died owned the topic.
  detail::Internals::state(t)->header->producer.owner.store(
      detail::make_claim(detail::ClaimState::Active, kDeadIdentity));
  Publisher heir(t);
  EXPECT_TRUE(heir.took_over());
  EXPECT_EQ(heir.next_sequence(), 6u);
  EXPECT_EQ(snapshot(t).producer.takeovers, 1u);
  EXPECT_TRUE(snapshot(t).producer.alive);
}

// The cache demote after an idle spell is a hint with no visible effect on
// memory, so what is tested is the decision (by explicit stamps) and that
// demoted messages arrive intact.
TEST(Topic, OnlyTheFirstMessageAfterAnIdleSpellIsDemoted) {
  ScopedBus sb;
  Bus bus = sb.open();
  Topic t = bus.topic("demote", config(Policy::Reliable, 16, 256));
  PublisherOptions po;
  po.demote_after_idle_ns = 1000;
  Publisher pub(t, po);
  Subscriber sub(t);
  const std::uint64_t idle = bus.clock().raw_span(1000);
  ASSERT_GT(idle, 0u);
  const std::uint64_t t0 = std::uint64_t{1} << 40;
  // (stamp, demoted after it): first ever, back to back, one idle spell later,
  // then just short of one.
  const std::pair<std::uint64_t, std::uint64_t> steps[] = {
      {t0, 1}, {t0 + idle / 2, 1}, {t0 + idle / 2 + idle, 2}, {t0 + idle / 2 + 2 * idle - 1, 2}};
  std::uint8_t fill = 1;
  for (const auto& [ts, want] : steps) {
    Claim c = pub.try_claim(200);
    ASSERT_TRUE(c);
    std::memset(c.data(), fill++, 200);
    c.commit_with_ts(200, ts);
    EXPECT_EQ(pub.demoted(), want) << "after the message stamped " << ts;
  }
  std::uint8_t expect = 1;
  EXPECT_EQ(sub.poll(
                [&](const Message& m) {
                  ASSERT_EQ(m.data.size(), 200u);
                  for (std::byte b : m.data) ASSERT_EQ(std::to_integer<std::uint8_t>(b), expect);
                  ++expect;
                },
                10),
            4u);

  PublisherOptions never;
  never.demote_after_idle_ns = PublisherOptions::kNeverDemote;
  PublisherOptions always;
  always.demote_after_idle_ns = 0;
  Topic t2 = bus.topic("demote2", config(Policy::Lossy, 16));
  Topic t3 = bus.topic("demote3", config(Policy::Lossy, 16));
  Publisher p2(t2, never);
  Publisher p3(t3, always);
  for (std::uint64_t i = 0; i < 3; ++i) {
    Claim c2 = p2.try_claim(8);
    ASSERT_TRUE(c2);
    c2.commit_with_ts(8, t0 + i * 1'000'000'000);
    Claim c3 = p3.try_claim(8);
    ASSERT_TRUE(c3);
    c3.commit_with_ts(8, t0);
  }
  EXPECT_EQ(p2.demoted(), 0u) << "kNeverDemote: not even after a second's idle";
  EXPECT_EQ(p3.demoted(), 3u) << "0: every message, even with no time between them";
}

TEST(Topic, ProducerThatDiedBetweenCommitAndHeadStoreLosesNothing) {
  ScopedBus sb;
  Bus bus = sb.open();
  Topic t = bus.topic("crash", config(Policy::Lossy, 16));
  {
    Publisher p(t);
    for (int i = 0; i < 3; ++i) ASSERT_EQ(p.try_publish(as_bytes("m", 1)), PublishResult::Ok);
  }
  detail::Internals::state(t)->header->hot.head.store(
      2);  // message 3 committed, head not yet updated
  detail::Internals::state(t)->header->producer.owner.store(
      detail::make_claim(detail::ClaimState::Active, kDeadIdentity));
  Publisher heir(t);
  EXPECT_EQ(heir.next_sequence(), 4u)
      << "message 3 is committed and must not be overwritten by a new 3";
}

// The producer stores head once a head_period() (64 here), not per commit:
// what reads the newest message (head_hint, snapshots, joiners, an heir)
// finds the messages past the stored hint, for both policies.
TEST(Topic, TheNewestIsExactWhileTheStoredHeadLags) {
  for (const Policy policy : {Policy::Lossy, Policy::Reliable}) {
    SCOPED_TRACE(policy == Policy::Lossy ? "lossy" : "reliable");
    ScopedBus sb;
    Bus bus = sb.open();
    Topic t = bus.topic("lag", config(policy, 1024));
    Publisher p(t);
    Subscriber registered(t);  // due 1 (reliable: gates the producer; 100 < 1024)
    for (std::uint64_t v = 1; v <= 100; ++v) {
      ASSERT_EQ(p.try_publish(as_bytes(&v, sizeof v)), PublishResult::Ok);
    }
    EXPECT_EQ(detail::Internals::state(t)->header->hot.head.load(), 64u)
        << "stored once a period: the other 36 are found by scanning";
    EXPECT_EQ(t.head_hint(), 100u);
    EXPECT_EQ(snapshot(t).head, 100u);
    SubscriberOptions live;
    live.name = "late";
    Subscriber late(t, live);  // Start::Live: due 101, nothing published before it
    SubscriberOptions oldest;
    oldest.register_consumer = false;
    oldest.start = Start::Oldest;
    Subscriber backlog(t, oldest);
    std::uint64_t v = 101;
    ASSERT_EQ(p.try_publish(as_bytes(&v, sizeof v)), PublishResult::Ok);
    std::vector<std::uint64_t> got;
    while (late.poll([&](const Message& m) { got.push_back(m.meta.seq); }) != 0) {
    }
    EXPECT_EQ(got, (std::vector<std::uint64_t>{101})) << "a joiner at live starts at the newest";
    std::uint64_t first = 0, n = 0;
    while (backlog.poll([&](const Message& m) {
      first = first == 0 ? m.meta.seq : first;
      ++n;
    }) != 0) {
    }
    EXPECT_EQ(first, 1u);
    EXPECT_EQ(n, 101u);
  }
}

TEST(Topic, AProducerThatLeavesStoresTheExactHeadAndAnHeirGoesOnAfterTheNewest) {
  ScopedBus sb;
  Bus bus = sb.open();
  Topic t = bus.topic("heir", config(Policy::Lossy, 1024));
  auto& head = detail::Internals::state(t)->header->hot.head;
  {
    Publisher p(t);
    for (int i = 0; i < 70; ++i) ASSERT_EQ(p.try_publish(as_bytes("m", 1)), PublishResult::Ok);
    EXPECT_EQ(head.load(), 64u);
  }
  EXPECT_EQ(head.load(), 70u) << "a Publisher that goes away stores the exact head";
  head.store(64);  // as a producer killed after message 70 leaves it
  detail::Internals::state(t)->header->producer.owner.store(
      detail::make_claim(detail::ClaimState::Active, kDeadIdentity));
  Publisher heir(t);
  EXPECT_EQ(heir.next_sequence(), 71u) << "messages 65..70 are committed: none is overwritten";
}

TEST(Topic, ConsumerTableFullIsNamedAndDeadEntriesAreReclaimed) {
  ScopedBus sb;
  Bus bus = sb.open();
  Topic t = bus.topic("full", config(Policy::Lossy, 16, 64, 2));
  SubscriberOptions o;
  o.name = "keeper";
  Subscriber a(t, o);
  Subscriber b(t, o);
  const Error e = expect_error([&] { Subscriber c(t); }, Errc::ConsumerTableFull);
  EXPECT_TRUE(contains(e, "keeper")) << e.what();
  EXPECT_TRUE(contains(e, "max_consumers")) << e.what();
  // An entry whose owner died is reclaimed by the next joiner.
  detail::Internals::state(t)->consumers[1].state.store(
      detail::make_claim(detail::ClaimState::Active, kDeadIdentity));
  EXPECT_NO_THROW({ Subscriber c(t); });
}

TEST(Topic, DirectoryFullIsNamed) {
  ScopedBus sb;
  BusOptions o;
  o.capacity = 2;
  Bus bus = sb.open(o);
  (void)bus.topic("a", {});
  (void)bus.topic("b", {});
  const Error e = expect_error([&] { (void)bus.topic("c", {}); }, Errc::DirectoryFull);
  EXPECT_TRUE(contains(e, "capacity")) << e.what();
  // Opening an already-listed topic still works.
  EXPECT_NO_THROW((void)bus.topic("a", {}));
}

TEST(Topic, DirectoryNeverWedgesOnADeadRegistrant) {
  ScopedBus sb;
  BusOptions o;
  o.capacity = 2;
  Bus bus = sb.open(o);
  // A registrant died holding directory entry 0 half-claimed...
  detail::Internals::state(bus)->entries[0].state.store(
      detail::make_claim(detail::ClaimState::Claiming, kDeadIdentity));
  Topic t = bus.topic("x", {});
  // ...and another died while registering topic "y" (segment created, not listed).
  Topic y = bus.topic("y", {});
  auto& reg = detail::Internals::state(y)->header->registry.directory_claim;
  for (std::uint32_t i = 0; i < 2; ++i) {
    auto& e = detail::Internals::state(bus)->entries[i];
    if (e.name.load() == "y") e.state.store(0);
  }
  reg.store(detail::make_claim(detail::ClaimState::Claiming, kDeadIdentity));
  EXPECT_EQ(bus.topic_names(), std::vector<std::string>({"x"}));
  // The next opener finishes the dead registrant's work.
  (void)bus.open_topic("y");
  EXPECT_EQ(bus.topic_names(), std::vector<std::string>({"x", "y"}));
}

TEST(Topic, ReadOnlyBusCanLookButNotTouch) {
  ScopedBus sb;
  {
    Bus bus = sb.open();
    Publisher p = bus.publisher("ro", config(Policy::Lossy, 8));
    ASSERT_EQ(p.try_publish(as_bytes("abc", 3)), PublishResult::Ok);
  }
  Bus ro = Bus::open(sb.name(), Access::ReadOnly);
  EXPECT_EQ(ro.access(), Access::ReadOnly);
  Topic t = ro.open_topic("ro");
  EXPECT_FALSE(t.writable());
  (void)expect_error([&] { Publisher p(t); }, Errc::InvalidArgument);
  (void)expect_error([&] { Subscriber s(t); }, Errc::InvalidArgument);
  SubscriberOptions o;
  o.register_consumer = false;
  o.start = Start::Oldest;
  Subscriber observer(t, o);
  EXPECT_EQ(observer.poll([](const Message& m) { EXPECT_EQ(m.data.size(), 3u); }), 1u);
  EXPECT_EQ(snapshot(ro).topics.size(), 1u);
}

TEST(Topic, JsonThatDoesNotFitTheTopicsTypeIsAnErrorThatSaysWhere) {
  ScopedBus sb;
  Bus bus = sb.open();
  Topic t = bus.topic<md::Quote>("md.quotes");
  // Decoding with the schema stored in the segment, as the tools do.
  JsonCodec codec(t.schema(), t.type_name());
  const Error e = expect_error(
      [&] { (void)codec.from_json(R"({"symbol": "AAPL", "bid_pxx": 1.5})"); }, Errc::InvalidJson);
  EXPECT_TRUE(contains(e, "bid_pxx")) << e.what();
  (void)expect_error([&] { (void)codec.from_json(R"({"symbol": "AAPL", "bid_px": "high"})"); },
                     Errc::InvalidJson);
  (void)expect_error([&] { (void)codec.from_json("{not json"); }, Errc::InvalidJson);
  const auto good = codec.from_json(R"({"symbol": "AAPL", "bid_px": 1.5})");
  Publisher p(t);
  ASSERT_EQ(p.try_publish(good), PublishResult::Ok);
}

TEST(Topic, VerifyingSubscriberSkipsAndCountsInvalidMessages) {
  ScopedBus sb;
  Bus bus = sb.open();
  Topic t = bus.topic<md::Quote>("md.quotes");
  Publisher p(t);
  SubscriberOptions o;
  o.verify = true;
  Subscriber sub(t, o);
  int invalid_seen = 0;
  sub.on_invalid([&](const MessageMeta& m) {
    ++invalid_seen;
    EXPECT_EQ(m.seq, 1u);
  });
  ASSERT_EQ(p.try_publish(as_bytes("\x01\x02\x03garbage-not-a-flatbuffer", 26)), PublishResult::Ok);
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(md::CreateQuoteDirect(fbb, "MSFT"), md::QuoteIdentifier());
  ASSERT_EQ(p.try_publish(fbb), PublishResult::Ok);
  std::vector<std::string> got;
  while (sub.poll(typed<md::Quote>([&](const md::Quote& q, const MessageMeta&) {
                    got.push_back(q.symbol()->str());
                  }),
                  10) != 0) {
  }
  EXPECT_EQ(got, std::vector<std::string>({"MSFT"}));
  EXPECT_EQ(invalid_seen, 1);
  EXPECT_EQ(sub.invalid(), 1u);
}

}  // namespace
}  // namespace shmbus::test
