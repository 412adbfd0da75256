// The JSON envelope (admin/envelope.hpp) against a reference written the plain way: every
// field concatenated from std::to_string, utc_iso, json_quote and the codec's to_json()
// (FlatBuffers' text generator) without its blanks. EnvelopeWriter writes through a cursor
// and its own compiled JSON writer; what bus-inspect tail prints and the bridge sends must not
// change by a byte.
#include "shmbus/admin/envelope.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "shmbus/admin/encoding.hpp"
#include "shmbus/messages.hpp"
#include "shmbus/schema/json_codec.hpp"
#include "shmbus/shmbus.hpp"
#include "test_util.hpp"

namespace {

using shmbus::test::without_blanks;

std::string reference(const shmbus::Message& m, const std::string& bus,
                      const shmbus::JsonCodec& codec) {
  const std::string topic(m.meta.topic);
  const std::int64_t ts = m.meta.ts_ns();
  std::string s = "{\"topic\":" + shmbus::json_quote(topic) +
                  ",\"seq\":" + std::to_string(m.meta.seq) + ",\"ts\":" + std::to_string(ts) +
                  ",\"time\":\"" + shmbus::utc_iso(ts) +
                  "\",\"producer\":" + std::to_string(m.meta.producer) +
                  ",\"id\":" + shmbus::json_quote(shmbus::message_id(bus, topic, m.meta.seq)) +
                  ",\"bus\":" + shmbus::json_quote(bus) +
                  ",\"type\":" + shmbus::json_quote(std::string(m.meta.type));
  if (m.meta.correlation != 0) s += ",\"correlation\":" + std::to_string(m.meta.correlation);
  return s + ",\"data\":" + without_blanks(codec.to_json(m.data)) + "}";
}

TEST(Envelope, EqualsThePlainlyBuiltEnvelopeOnRandomQuotes) {
  const shmbus::test::ScopedBus sb("env");
  shmbus::Bus bus = sb.open();
  shmbus::TopicConfig tc;
  tc.policy = shmbus::Policy::Lossy;
  tc.slot_size = 512;
  tc.slot_count = 1024;
  tc.type = shmbus::type_of<shmbus::md::Quote>();
  shmbus::Topic topic = bus.topic("md.env_test-1", tc);
  shmbus::SubscriberOptions so;
  so.start = shmbus::Start::Oldest;
  shmbus::Subscriber sub(topic, so);
  auto pub = bus.publisher<shmbus::md::Quote>("md.env_test-1", tc);

  std::mt19937_64 rng(42);
  const double doubles[] = {0.0,
                            -0.0,
                            0.1,
                            1e21,
                            -1e-13,
                            189.25,
                            1.0 / 3.0,
                            4503599627370497.0,
                            std::numeric_limits<double>::quiet_NaN(),
                            std::numeric_limits<double>::infinity(),
                            -std::numeric_limits<double>::infinity()};
  const char* strings[] = {"AAPL",      "",
                           "a\"b\\c",   "caf\xc3\xa9 \xe4\xb8\xad",
                           "tab\there", "SXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"};
  constexpr int kMessages = 500;
  for (int i = 0; i < kMessages; ++i) {
    flatbuffers::FlatBufferBuilder fbb;
    const auto pick = [&] { return doubles[rng() % std::size(doubles)]; };
    fbb.Finish(shmbus::md::CreateQuoteDirect(
                   fbb, strings[rng() % std::size(strings)], rng(),
                   rng() % 2 ? strings[rng() % std::size(strings)] : nullptr, rng(), rng() % 3,
                   rng(), pick(), pick(), pick(), pick(), static_cast<std::uint32_t>(rng()),
                   static_cast<std::uint32_t>(rng() % 2)),
               shmbus::md::QuoteIdentifier());
    ASSERT_EQ(pub.try_publish(fbb, i % 3 == 0 ? rng() | 1 : 0), shmbus::PublishResult::Ok);
  }
  const shmbus::EnvelopeWriter env(topic);
  const shmbus::JsonCodec codec(shmbus::type_of<shmbus::md::Quote>());
  int seen = 0;
  int with_correlation = 0;
  std::string reused = "previous line";
  while (sub.poll([&](const shmbus::Message& m) {
    const std::string expected = reference(m, sb.name(), codec);
    EXPECT_EQ(env.message(m), expected);
    // append_message appends to what is there, into a buffer reused line after line.
    const std::string before = reused;
    env.append_message(m, reused);
    EXPECT_EQ(reused, before + expected);
    reused.clear();
    with_correlation += m.meta.correlation != 0 ? 1 : 0;
    ++seen;
  }) != 0) {
  }
  EXPECT_EQ(seen, kMessages);
  EXPECT_GT(with_correlation, 0);
}

}  // namespace
