// MessageTemplate: a typed message built once, published many times with its
// scalars set in place between messages. Every field round trip on both
// policies, and every refusal: a template of another type, one built without
// ForceDefaults, a truncated one, a slot too small, a topic of another type,
// a full reliable ring.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "shmbus/messages.hpp"
#include "shmbus/shmbus.hpp"
#include "test_util.hpp"

namespace shmbus::test {
namespace {

flatbuffers::FlatBufferBuilder quote_template_builder(const char* symbol, bool force_defaults) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.ForceDefaults(force_defaults);
  fbb.Finish(md::CreateQuoteDirect(fbb, symbol, 0, "XNAS"), md::QuoteIdentifier());
  return fbb;
}

TopicConfig config(Policy policy, std::uint32_t slot_size = 256) {
  TopicConfig c;
  c.policy = policy;
  c.slot_size = slot_size;
  c.slot_count = 8;
  return c;
}

// The scalars of message k: every field differs from its default and from
// the template's, and from message to message.
struct Values {
  std::uint64_t instrument_id, exchange_ts, receive_ts, seq;
  double bid_px, bid_qty, ask_px, ask_qty;
  std::uint32_t bid_orders, ask_orders;
};
Values values(std::uint64_t k) {
  return {1000 + k,
          1'700'000'000'000'000'000ULL + k,
          1'700'000'000'000'000'100ULL + k,
          k + 1,
          189.5 + static_cast<double>(k) * 0.01,
          100.0 + static_cast<double>(k),
          189.52 + static_cast<double>(k) * 0.01,
          200.0 + static_cast<double>(k),
          static_cast<std::uint32_t>(3 + k),
          static_cast<std::uint32_t>(4 + k)};
}

void fill(MessageTemplate<md::Quote>& t, const Values& v) {
  t.set(&md::Quote::mutate_instrument_id, v.instrument_id);
  t.set(&md::Quote::mutate_exchange_ts, v.exchange_ts);
  t.set(&md::Quote::mutate_receive_ts, v.receive_ts);
  t.set(&md::Quote::mutate_seq, v.seq);
  t.set(&md::Quote::mutate_bid_px, v.bid_px);
  t.set(&md::Quote::mutate_bid_qty, v.bid_qty);
  // The generated accessors directly, as most callers will.
  EXPECT_TRUE(t->mutate_ask_px(v.ask_px));
  EXPECT_TRUE(t->mutate_ask_qty(v.ask_qty));
  EXPECT_TRUE(t->mutate_bid_orders(v.bid_orders));
  EXPECT_TRUE(t->mutate_ask_orders(v.ask_orders));
}

void expect_quote(const md::Quote& q, const char* symbol, const Values& v) {
  ASSERT_NE(q.symbol(), nullptr);
  EXPECT_STREQ(q.symbol()->c_str(), symbol);
  ASSERT_NE(q.venue(), nullptr);
  EXPECT_STREQ(q.venue()->c_str(), "XNAS");
  EXPECT_EQ(q.instrument_id(), v.instrument_id);
  EXPECT_EQ(q.exchange_ts(), v.exchange_ts);
  EXPECT_EQ(q.receive_ts(), v.receive_ts);
  EXPECT_EQ(q.seq(), v.seq);
  EXPECT_EQ(q.bid_px(), v.bid_px);
  EXPECT_EQ(q.bid_qty(), v.bid_qty);
  EXPECT_EQ(q.ask_px(), v.ask_px);
  EXPECT_EQ(q.ask_qty(), v.ask_qty);
  EXPECT_EQ(q.bid_orders(), v.bid_orders);
  EXPECT_EQ(q.ask_orders(), v.ask_orders);
}

class MessageTemplatePolicy : public ::testing::TestWithParam<Policy> {};

TEST_P(MessageTemplatePolicy, EveryFieldRoundTrips) {
  ScopedBus sb;
  Bus bus = sb.open();
  Subscriber sub = bus.subscriber<md::Quote>("md.quotes", config(GetParam()));
  Publisher pub = bus.publisher<md::Quote>("md.quotes", config(GetParam()));
  MessageTemplate<md::Quote> aapl(quote_template_builder("AAPL", true));
  MessageTemplate<md::Quote> msft(quote_template_builder("MSFT", true));
  EXPECT_EQ(aapl->bid_px(), 0.0);  // as built

  // More messages than slots: the ring wraps (reliable: read as we go).
  for (std::uint64_t k = 0; k < 20; ++k) {
    MessageTemplate<md::Quote>& t = k % 2 == 0 ? aapl : msft;
    fill(t, values(k));
    EXPECT_EQ(pub.next_sequence(), k + 1);
    ASSERT_EQ(t.try_publish(pub, /*correlation=*/k + 7), PublishResult::Ok);

    int got = 0;
    EXPECT_EQ(sub.poll(
                  [&](const Message& m) {
                    ++got;
                    EXPECT_EQ(m.meta.seq, k + 1);
                    EXPECT_EQ(m.meta.correlation, k + 7);
                    EXPECT_EQ(m.data.size(), t.size());
                    // What any subscriber gets: a valid Quote of the topic's schema.
                    EXPECT_TRUE(Verifier(type_of<md::Quote>()).verify(m.data));
                    expect_quote(m.as<md::Quote>(), k % 2 == 0 ? "AAPL" : "MSFT", values(k));
                  },
                  4),
              1u);
    EXPECT_EQ(got, 1);
  }
  // The template holds the last values set; the strings never changed.
  expect_quote(*aapl, "AAPL", values(18));
}

TEST_P(MessageTemplatePolicy, PublishWithATimeoutDeliversToo) {
  ScopedBus sb;
  Bus bus = sb.open();
  Subscriber sub = bus.subscriber<md::Quote>("md.quotes", config(GetParam()));
  Publisher pub = bus.publisher<md::Quote>("md.quotes", config(GetParam()));
  MessageTemplate<md::Quote> t(quote_template_builder("AAPL", true));
  fill(t, values(3));
  ASSERT_EQ(t.publish(pub, std::chrono::milliseconds(100)), PublishResult::Ok);
  std::vector<std::uint64_t> seqs;
  (void)sub.poll(typed<md::Quote>([&](const md::Quote& q, const MessageMeta& m) {
                   seqs.push_back(m.seq);
                   expect_quote(q, "AAPL", values(3));
                 }),
                 4);
  EXPECT_EQ(seqs, std::vector<std::uint64_t>{1});
}

TEST_P(MessageTemplatePolicy, ASlotTooSmallIsTooLargeAndPublishesNothing) {
  ScopedBus sb;
  Bus bus = sb.open();
  // 64 B slots carry 32 B messages; the Quote template is larger.
  Subscriber sub = bus.subscriber<md::Quote>("md.small", config(GetParam(), 64));
  Publisher pub = bus.publisher<md::Quote>("md.small", config(GetParam(), 64));
  const MessageTemplate<md::Quote> t(quote_template_builder("AAPL", true));
  ASSERT_GT(t.size(), pub.max_payload());
  EXPECT_EQ(t.try_publish(pub), PublishResult::TooLarge);
  EXPECT_EQ(t.publish(pub, std::chrono::milliseconds(10)), PublishResult::TooLarge);
  EXPECT_EQ(pub.next_sequence(), 1u);
  EXPECT_EQ(sub.poll([](const Message&) {}, 4), 0u);
}

INSTANTIATE_TEST_SUITE_P(Policies, MessageTemplatePolicy,
                         ::testing::Values(Policy::Lossy, Policy::Reliable), [](const auto& p) {
                           return p.param == Policy::Lossy ? "Lossy" : "Reliable";
                         });

TEST(MessageTemplate, AFullReliableRingIsWouldBlock) {
  ScopedBus sb;
  Bus bus = sb.open();
  Subscriber sub = bus.subscriber<md::Quote>("md.quotes", config(Policy::Reliable));
  Publisher pub = bus.publisher<md::Quote>("md.quotes", config(Policy::Reliable));
  MessageTemplate<md::Quote> t(quote_template_builder("AAPL", true));
  for (std::uint64_t k = 0; k < 8; ++k) {
    fill(t, values(k));
    ASSERT_EQ(t.try_publish(pub), PublishResult::Ok);
  }
  EXPECT_EQ(t.try_publish(pub), PublishResult::WouldBlock);
  EXPECT_EQ(t.publish(pub, std::chrono::milliseconds(5)), PublishResult::Timeout);
  // Once the subscriber reads, the next publish goes through.
  EXPECT_EQ(sub.poll([](const Message&) {}, 8), 8u);
  EXPECT_EQ(pub.next_sequence(), 9u);
  EXPECT_EQ(t.try_publish(pub), PublishResult::Ok);
}

TEST(MessageTemplate, ATopicOfAnotherTypeIsInvalid) {
  ScopedBus sb;
  Bus bus = sb.open();
  Publisher trades = bus.publisher<md::Trade>("md.trades", config(Policy::Lossy));
  const MessageTemplate<md::Quote> t(quote_template_builder("AAPL", true));
  EXPECT_EQ(t.try_publish(trades), PublishResult::Invalid);
  EXPECT_EQ(t.publish(trades, std::chrono::milliseconds(5)), PublishResult::Invalid);
  EXPECT_EQ(trades.next_sequence(), 1u);
}

TEST(MessageTemplate, CopiesAreIndependent) {
  MessageTemplate<md::Quote> a(quote_template_builder("AAPL", true));
  MessageTemplate<md::Quote> b = a;  // one per thread, for example
  a.set(&md::Quote::mutate_bid_px, 1.5);
  b.set(&md::Quote::mutate_bid_px, 2.5);
  EXPECT_EQ(a->bid_px(), 1.5);
  EXPECT_EQ(b->bid_px(), 2.5);
}

template <class F>
std::string invalid_message(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::InvalidMessage) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected Error(InvalidMessage)";
  return {};
}

TEST(MessageTemplate, ABufferOfAnotherTypeIsRefused) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.ForceDefaults(true);
  fbb.Finish(md::CreateTradeDirect(fbb, "AAPL"), md::TradeIdentifier());
  const std::string what = invalid_message([&] { MessageTemplate<md::Quote> t(fbb); });
  EXPECT_NE(what.find("MessageTemplate<shmbus.md.Quote>"), std::string::npos) << what;
  EXPECT_NE(what.find("file_identifier"), std::string::npos) << what;
}

TEST(MessageTemplate, ATruncatedBufferIsRefused) {
  const flatbuffers::FlatBufferBuilder fbb = quote_template_builder("AAPL", true);
  const std::span<const std::byte> whole(reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()),
                                         fbb.GetSize());
  const std::string what =
      invalid_message([&] { MessageTemplate<md::Quote> t(whole.first(whole.size() - 16)); });
  EXPECT_NE(what.find("MessageTemplate<shmbus.md.Quote>"), std::string::npos) << what;
}

TEST(MessageTemplate, ATemplateWithoutEveryScalarIsRefusedNamingTheMissingFields) {
  // Without ForceDefaults the zero scalars are not stored: mutate_ of any of
  // them would return false and change nothing.
  const std::string what =
      invalid_message([] { MessageTemplate<md::Quote> t(quote_template_builder("AAPL", false)); });
  for (const char* field : {"instrument_id", "exchange_ts", "bid_px", "ask_orders"})
    EXPECT_NE(what.find(field), std::string::npos) << field << " in: " << what;
  EXPECT_EQ(what.find("symbol"), std::string::npos) << what;  // strings are not scalars
  EXPECT_NE(what.find("ForceDefaults(true)"), std::string::npos) << what;
}

TEST(MessageTemplate, OneScalarMissingIsNamed) {
  // Every scalar but ask_orders stored (non-default values, no ForceDefaults).
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(md::CreateQuoteDirect(fbb, "AAPL", 1, "XNAS", 2, 3, 4, 5.0, 6.0, 7.0, 8.0, 9, 0),
             md::QuoteIdentifier());
  const std::string what = invalid_message([&] { MessageTemplate<md::Quote> t(fbb); });
  EXPECT_NE(what.find("field ask_orders "), std::string::npos) << what;
  EXPECT_EQ(what.find("bid_orders"), std::string::npos) << what;
}

TEST(MessageTemplate, MutateOfAFieldTheBufferLacksReturnsFalseAndStoresNothing) {
  // The check at construction is what makes set() safe; a buffer that
  // bypasses it (here: mutate_ on a builder's buffer without the field)
  // shows what set() guards against: mutate_ returns false, nothing stored.
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(md::CreateQuoteDirect(fbb, "AAPL"), md::QuoteIdentifier());
  auto* q = flatbuffers::GetMutableRoot<md::Quote>(fbb.GetBufferPointer());
  EXPECT_FALSE(q->mutate_bid_px(1.5));
  EXPECT_EQ(q->bid_px(), 0.0);
}

}  // namespace
}  // namespace shmbus::test
