// MessageWriter: a FlatBuffer of T laid out once, each message stores at
// fixed offsets, strings and vectors that change size between messages.
//
// For every schema type the writer supports: seeded random values, a random
// subset of the fields changed per message, read back (through
// flatbuffers::Table::GetField / GetPointer, which the generated accessors
// call, and for Quote the generated accessors by name) equal to what was set,
// the bytes passing flatbuffers::Verifier and shmbus::Verifier after every
// message. Then strings growing and shrinking, shrink_to_fit, the size limit,
// every handle error, the refusal of a type with a vector of tables, and
// publish -> receive through a real topic on both policies. A schema of the
// test's own (registered at run time) covers what schemas/ lacks: struct
// fields, non-zero defaults, a deprecated field, no file_identifier, tables
// and unions refused.
#include <gtest/gtest.h>

#include <flatbuffers/idl.h>
#include <flatbuffers/reflection.h>

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "shmbus/messages.hpp"
#include "shmbus/shmbus.hpp"
#include "test_util.hpp"

namespace shmbus::test {
namespace {

using Rng = std::mt19937_64;

// Both verifiers on the writer's bytes; "" when both accept them.
template <class T>
std::string verify_both(const MessageWriter<T>& w) {
  const auto* buf = reinterpret_cast<const std::uint8_t*>(w.bytes().data());
  flatbuffers::Verifier fv(buf, w.size());
  const std::string& ident = type_of<T>().file_identifier;
  std::string out;
  if (!fv.VerifyBuffer<T>(ident.empty() ? nullptr : ident.c_str()))
    out += "flatbuffers::Verifier refuses it. ";
  out += Verifier(type_of<T>()).check(w.bytes());
  return out;
}

std::string random_string(Rng& rng) {
  // Mostly short (symbols, ids), sometimes long: growing and shrinking slots.
  const std::size_t len = rng() % 8 == 0 ? rng() % 300 : rng() % 24;
  std::string s(len, ' ');
  for (char& c : s) c = static_cast<char>(1 + rng() % 255);  // any byte but NUL
  return s;
}

// One field of T under test: sets a random value through its handle and
// remembers it; checks the message holds what was set last.
struct FieldCase {
  std::string name;
  std::function<void(Rng&)> set;
  std::function<void(const flatbuffers::Table&)> check;
};

template <class T, class V>
FieldCase scalar_case(MessageWriter<T>& w, const reflection::Field& fd) {
  const auto vt = fd.offset();
  const auto h = w.template scalar<V>(vt);
  auto expected = std::make_shared<V>();
  std::string name = fd.name()->str();
  return {name,
          [&w, h, expected](Rng& rng) {
            V v{};
            if constexpr (std::is_same_v<V, bool>) {
              v = rng() % 2 == 0;
            } else if constexpr (std::is_floating_point_v<V>) {
              v = static_cast<V>(
                  static_cast<double>(static_cast<std::int64_t>(rng() % 2000001) - 1000000) / 64.0);
            } else {
              const std::uint64_t r = rng();
              std::memcpy(&v, &r, sizeof v);
            }
            *expected = v;
            w.set(h, v);
          },
          [vt, expected, name](const flatbuffers::Table& t) {
            // What the generated accessor of the field returns.
            EXPECT_EQ(t.GetField<V>(vt, V{}), *expected) << name;
          }};
}

template <class T>
FieldCase string_case(MessageWriter<T>& w, const reflection::Field& fd) {
  const auto vt = fd.offset();
  const auto h = w.string(vt);
  auto expected = std::make_shared<std::string>();
  std::string name = fd.name()->str();
  return {name,
          [&w, h, expected](Rng& rng) {
            *expected = random_string(rng);
            ASSERT_TRUE(w.set(h, *expected));
          },
          [vt, expected, name](const flatbuffers::Table& t) {
            const auto* s = t.GetPointer<const flatbuffers::String*>(vt);
            ASSERT_NE(s, nullptr) << name;
            EXPECT_EQ(s->string_view(), *expected) << name;
            EXPECT_EQ(s->c_str()[s->size()], '\0') << name;
          }};
}

template <class T, class E>
FieldCase vector_case(MessageWriter<T>& w, const reflection::Field& fd,
                      std::function<E(Rng&)> element) {
  const auto vt = fd.offset();
  const auto h = w.template vector<E>(vt);
  auto expected = std::make_shared<std::vector<E>>();
  std::string name = fd.name()->str();
  return {name,
          [&w, h, expected, element](Rng& rng) {
            expected->resize(rng() % 8 == 0 ? rng() % 64 : rng() % 6);
            for (E& e : *expected) e = element(rng);
            ASSERT_TRUE(w.set(h, *expected));
          },
          [vt, expected, name](const flatbuffers::Table& t) {
            const auto* v = t.GetPointer<const flatbuffers::Vector<std::uint8_t>*>(vt);
            ASSERT_NE(v, nullptr) << name;
            ASSERT_EQ(v->size(), expected->size()) << name;
            EXPECT_EQ(reinterpret_cast<std::uintptr_t>(v->Data()) % alignof(E), 0u) << name;
            EXPECT_EQ(std::memcmp(v->Data(), expected->data(), expected->size() * sizeof(E)), 0)
                << name;
          }};
}

template <class T>
std::vector<FieldCase> cases_of(MessageWriter<T>& w) {
  const TypeInfo& type = type_of<T>();
  const reflection::Schema& schema = *reflection::GetSchema(type.bfbs.data());
  const reflection::Object& obj = *schema.objects()->LookupByKey(type.name.c_str());
  std::vector<FieldCase> out;
  for (const reflection::Field* fd : *obj.fields()) {
    const reflection::Type& t = *fd->type();
    switch (t.base_type()) {
      case reflection::Bool:
        out.push_back(scalar_case<T, bool>(w, *fd));
        break;
      case reflection::Byte:
        out.push_back(scalar_case<T, std::int8_t>(w, *fd));
        break;
      case reflection::UByte:
        out.push_back(scalar_case<T, std::uint8_t>(w, *fd));
        break;
      case reflection::Short:
        out.push_back(scalar_case<T, std::int16_t>(w, *fd));
        break;
      case reflection::UShort:
        out.push_back(scalar_case<T, std::uint16_t>(w, *fd));
        break;
      case reflection::Int:
        out.push_back(scalar_case<T, std::int32_t>(w, *fd));
        break;
      case reflection::UInt:
        out.push_back(scalar_case<T, std::uint32_t>(w, *fd));
        break;
      case reflection::Long:
        out.push_back(scalar_case<T, std::int64_t>(w, *fd));
        break;
      case reflection::ULong:
        out.push_back(scalar_case<T, std::uint64_t>(w, *fd));
        break;
      case reflection::Float:
        out.push_back(scalar_case<T, float>(w, *fd));
        break;
      case reflection::Double:
        out.push_back(scalar_case<T, double>(w, *fd));
        break;
      case reflection::String:
        out.push_back(string_case<T>(w, *fd));
        break;
      case reflection::Vector:
        if (t.element() == reflection::UByte) {
          out.push_back(vector_case<T, std::uint8_t>(
              w, *fd, [](Rng& r) { return static_cast<std::uint8_t>(r()); }));
        } else if constexpr (std::is_same_v<T, md::BookUpdate>) {
          out.push_back(vector_case<T, md::PriceLevel>(w, *fd, [](Rng& r) {
            return md::PriceLevel(static_cast<double>(r() % 100000) / 100.0,
                                  static_cast<double>(r() % 5000), static_cast<std::uint32_t>(r()),
                                  static_cast<std::uint16_t>(r()),
                                  static_cast<md::BookAction>(r() % 3));
          }));
        } else {
          ADD_FAILURE() << type.name << "." << fd->name()->str() << ": no test element type";
        }
        break;
      default:
        ADD_FAILURE() << type.name << "." << fd->name()->str() << ": no test case for its kind";
    }
  }
  return out;
}

template <class T>
class WriterRoundTrip : public ::testing::Test {};

using SupportedTypes =
    ::testing::Types<md::Quote, md::Trade, md::BookUpdate, oms::NewOrder, oms::CancelOrder,
                     oms::ExecutionReport, strategy::Signal, risk::Position, risk::LimitBreach,
                     sys::Heartbeat, sys::ComponentStatus, sys::Error, sys::DeadLetter>;
TYPED_TEST_SUITE(WriterRoundTrip, SupportedTypes);

TYPED_TEST(WriterRoundTrip, RandomValuesReadBackAndVerify) {
  using T = TypeParam;
  MessageWriter<T> w;
  ASSERT_EQ(verify_both(w), "") << "a new writer";
  std::vector<FieldCase> cases = cases_of(w);
  ASSERT_FALSE(cases.empty());
  Rng rng(0x5eed0000 + cases.size());
  // First every field, then random subsets: the untouched keep their values
  // while other strings and vectors move the tail around them.
  for (FieldCase& c : cases) c.set(rng);
  const int iterations = std::max(50, static_cast<int>(400 * stress_scale()));
  for (int k = 0; k < iterations; ++k) {
    if (k > 0)
      for (FieldCase& c : cases)
        if (rng() % 3 == 0) c.set(rng);
    ASSERT_EQ(verify_both(w), "") << type_of<T>().name << " message " << k;
    const auto& table = *flatbuffers::GetRoot<flatbuffers::Table>(w.bytes().data());
    for (const FieldCase& c : cases) c.check(table);
    if (::testing::Test::HasFailure()) FAIL() << type_of<T>().name << " message " << k;
    if (k % 50 == 49) {
      const std::size_t before = w.size();
      w.shrink_to_fit();
      EXPECT_LE(w.size(), before);
      ASSERT_EQ(verify_both(w), "") << "after shrink_to_fit, message " << k;
      const auto& shrunk = *flatbuffers::GetRoot<flatbuffers::Table>(w.bytes().data());
      for (const FieldCase& c : cases) c.check(shrunk);
    }
  }
}

// ------------------------------------------------------------------ Quote, by name

struct QuoteHandles {
  explicit QuoteHandles(const MessageWriter<md::Quote>& w)
      : symbol(w.string(md::Quote::VT_SYMBOL)),
        venue(w.string(md::Quote::VT_VENUE)),
        instrument_id(w.scalar<std::uint64_t>(md::Quote::VT_INSTRUMENT_ID)),
        exchange_ts(w.scalar<std::uint64_t>(md::Quote::VT_EXCHANGE_TS)),
        receive_ts(w.scalar<std::uint64_t>(md::Quote::VT_RECEIVE_TS)),
        seq(w.scalar<std::uint64_t>(md::Quote::VT_SEQ)),
        bid_px(w.scalar<double>(md::Quote::VT_BID_PX)),
        bid_qty(w.scalar<double>(md::Quote::VT_BID_QTY)),
        ask_px(w.scalar<double>(md::Quote::VT_ASK_PX)),
        ask_qty(w.scalar<double>(md::Quote::VT_ASK_QTY)),
        bid_orders(w.scalar<std::uint32_t>(md::Quote::VT_BID_ORDERS)),
        ask_orders(w.scalar<std::uint32_t>(md::Quote::VT_ASK_ORDERS)) {}
  MessageWriter<md::Quote>::String symbol, venue;
  MessageWriter<md::Quote>::Scalar<std::uint64_t> instrument_id, exchange_ts, receive_ts, seq;
  MessageWriter<md::Quote>::Scalar<double> bid_px, bid_qty, ask_px, ask_qty;
  MessageWriter<md::Quote>::Scalar<std::uint32_t> bid_orders, ask_orders;
};

void fill(MessageWriter<md::Quote>& w, const QuoteHandles& h, std::uint64_t k) {
  w.set(h.instrument_id, 1000 + k);
  w.set(h.exchange_ts, 1'700'000'000'000'000'000ULL + k);
  w.set(h.receive_ts, 1'700'000'000'000'000'100ULL + k);
  w.set(h.seq, k + 1);
  w.set(h.bid_px, 189.5 + static_cast<double>(k) * 0.01);
  w.set(h.bid_qty, 100.0 + static_cast<double>(k));
  w.set(h.ask_px, 189.52 + static_cast<double>(k) * 0.01);
  w.set(h.ask_qty, 200.0 + static_cast<double>(k));
  w.set(h.bid_orders, static_cast<std::uint32_t>(3 + k));
  w.set(h.ask_orders, static_cast<std::uint32_t>(4 + k));
}

void expect_quote(const md::Quote& q, std::string_view symbol, std::string_view venue,
                  std::uint64_t k) {
  ASSERT_NE(q.symbol(), nullptr);
  EXPECT_EQ(q.symbol()->string_view(), symbol);
  ASSERT_NE(q.venue(), nullptr);
  EXPECT_EQ(q.venue()->string_view(), venue);
  EXPECT_EQ(q.instrument_id(), 1000 + k);
  EXPECT_EQ(q.exchange_ts(), 1'700'000'000'000'000'000ULL + k);
  EXPECT_EQ(q.receive_ts(), 1'700'000'000'000'000'100ULL + k);
  EXPECT_EQ(q.seq(), k + 1);
  EXPECT_EQ(q.bid_px(), 189.5 + static_cast<double>(k) * 0.01);
  EXPECT_EQ(q.bid_qty(), 100.0 + static_cast<double>(k));
  EXPECT_EQ(q.ask_px(), 189.52 + static_cast<double>(k) * 0.01);
  EXPECT_EQ(q.ask_qty(), 200.0 + static_cast<double>(k));
  EXPECT_EQ(q.bid_orders(), 3 + k);
  EXPECT_EQ(q.ask_orders(), 4 + k);
}

TEST(MessageWriter, ANewQuoteIsValidWithEmptyStringsAndDefaults) {
  const MessageWriter<md::Quote> w;
  EXPECT_EQ(verify_both(w), "");
  ASSERT_NE(w->symbol(), nullptr);
  EXPECT_EQ(w->symbol()->size(), 0u);
  EXPECT_EQ(w->bid_px(), 0.0);
  EXPECT_EQ(w->ask_orders(), 0u);
  // Every field is stored (mutate_ of each would succeed): nothing left out.
  EXPECT_TRUE(Verifier(type_of<md::Quote>()).unstored_fields(w.bytes()).empty());
}

TEST(MessageWriter, StringsGrowAndShrinkKeepingEveryOtherField) {
  MessageWriter<md::Quote> w;
  const QuoteHandles h(w);
  fill(w, h, 7);
  ASSERT_TRUE(w.set(h.symbol, "AAPL"));
  ASSERT_TRUE(w.set(h.venue, "XNAS"));
  expect_quote(*w, "AAPL", "XNAS", 7);
  const std::size_t aapl_size = w.size();

  const std::string long_symbol(300, 'Z');
  for (const std::string_view sym :
       {std::string_view("MSFT"), std::string_view("GOOGL"), std::string_view(""),
        std::string_view(long_symbol), std::string_view("A"), std::string_view("BRK.B"),
        std::string_view(long_symbol).substr(0, 77)}) {
    ASSERT_TRUE(w.set(h.symbol, sym));
    ASSERT_EQ(verify_both(w), "") << "symbol of " << sym.size();
    expect_quote(*w, sym, "XNAS", 7);
  }
  // The venue after the symbol: its slot has moved; growing it moves nothing.
  for (const std::string_view venue : {"XNYS", "", "BATS-EDGX-LONG-VENUE-NAME", "Q"}) {
    ASSERT_TRUE(w.set(h.venue, venue));
    ASSERT_EQ(verify_both(w), "");
    expect_quote(*w, std::string_view(long_symbol).substr(0, 77), venue, 7);
  }
  // The slots kept their largest size; shrink_to_fit gives it back.
  ASSERT_TRUE(w.set(h.symbol, "AAPL"));
  ASSERT_TRUE(w.set(h.venue, "XNAS"));
  EXPECT_GT(w.size(), aapl_size);
  w.shrink_to_fit();
  EXPECT_EQ(w.size(), aapl_size);
  EXPECT_EQ(verify_both(w), "");
  expect_quote(*w, "AAPL", "XNAS", 7);
  // Scalars still land after all that.
  fill(w, h, 9);
  expect_quote(*w, "AAPL", "XNAS", 9);
}

TEST(MessageWriter, TheJsonCodecReadsItAsItReadsABuilderMessage) {
  // The bridge's path: a writer's Quote and the builder's Quote of the same
  // values give the same JSON, and the JSON comes back as a Quote (compared
  // as JSON: the codec's text form of a double need not be exact).
  MessageWriter<md::Quote> w;
  const QuoteHandles h(w);
  fill(w, h, 5);
  ASSERT_TRUE(w.set(h.symbol, "AAPL"));
  ASSERT_TRUE(w.set(h.venue, "XNAS"));
  flatbuffers::FlatBufferBuilder fbb;
  fbb.ForceDefaults(true);
  fbb.Finish(md::CreateQuoteDirect(fbb, "AAPL", w->instrument_id(), "XNAS", w->exchange_ts(),
                                   w->receive_ts(), w->seq(), w->bid_px(), w->bid_qty(),
                                   w->ask_px(), w->ask_qty(), w->bid_orders(), w->ask_orders()),
             md::QuoteIdentifier());
  const JsonCodec codec(type_of<md::Quote>());
  const std::string json = codec.to_json(w.bytes());
  EXPECT_EQ(json, codec.to_json(as_bytes(fbb.GetBufferPointer(), fbb.GetSize())));
  EXPECT_NE(json.find("\"AAPL\""), std::string::npos) << json;
  const std::vector<std::byte> back = codec.from_json(json);
  EXPECT_EQ(codec.to_json(back), json);
}

TEST(MessageWriter, ALongerStringLeavesNoStaleBytesWhenShortened) {
  MessageWriter<md::Quote> w;
  const QuoteHandles h(w);
  ASSERT_TRUE(w.set(h.symbol, "SECRET-LONG-SYMBOL"));
  const std::vector<std::byte> before(w.bytes().begin(), w.bytes().end());
  ASSERT_TRUE(w.set(h.symbol, "AB"));
  ASSERT_EQ(w.size(), before.size());  // in place
  const std::string_view all(reinterpret_cast<const char*>(w.bytes().data()), w.size());
  EXPECT_EQ(all.find("SECRET"), std::string_view::npos);
  EXPECT_EQ(all.find("SYMBOL"), std::string_view::npos);
}

TEST(MessageWriter, AValueReadFromTheWriterItselfIsCopiedSafely) {
  MessageWriter<md::Quote> w;
  const QuoteHandles h(w);
  ASSERT_TRUE(w.set(h.symbol, "AB"));
  ASSERT_TRUE(w.set(h.venue, "A-VENUE-NAME-LONGER-THAN-THE-SYMBOL-SLOT"));
  // The symbol grows and the venue (its source) moves with the tail.
  ASSERT_TRUE(w.set(h.symbol, w->venue()->string_view()));
  EXPECT_EQ(w->symbol()->string_view(), "A-VENUE-NAME-LONGER-THAN-THE-SYMBOL-SLOT");
  EXPECT_EQ(w->venue()->string_view(), "A-VENUE-NAME-LONGER-THAN-THE-SYMBOL-SLOT");
  ASSERT_TRUE(w.set(h.symbol, w->symbol()->string_view().substr(2)));  // in place, overlapping
  EXPECT_EQ(w->symbol()->string_view(), "VENUE-NAME-LONGER-THAN-THE-SYMBOL-SLOT");
  EXPECT_EQ(verify_both(w), "");
}

TEST(MessageWriter, AMessageOverMaxSizeIsRefusedAndNothingChanges) {
  MessageWriter<md::Quote> w(256);
  const QuoteHandles h(w);
  fill(w, h, 1);
  ASSERT_TRUE(w.set(h.symbol, "AAPL"));
  ASSERT_TRUE(w.set(h.venue, "XNAS"));
  const std::vector<std::byte> before(w.bytes().begin(), w.bytes().end());
  EXPECT_FALSE(w.set(h.symbol, std::string(200, 'x')));
  EXPECT_FALSE(w.set(h.venue, std::string(1 << 20, 'y')));
  EXPECT_TRUE(std::equal(before.begin(), before.end(), w.bytes().begin(), w.bytes().end()));
  expect_quote(*w, "AAPL", "XNAS", 1);
  // Up to the limit is fine.
  const std::size_t room = 256 - w.size();
  EXPECT_TRUE(w.set(h.venue, std::string(room, 'v')));
  EXPECT_LE(w.size(), 256u);
  EXPECT_EQ(verify_both(w), "");
}

TEST(MessageWriter, AMaxSizeBelowTheEmptyMessageIsRefused) {
  try {
    MessageWriter<md::Quote> w(16);
    ADD_FAILURE() << "constructed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("max_size of 16"), std::string::npos) << e.what();
  }
}

TEST(MessageWriter, AMaxSizeOverTheLargestFlatBufferIsRefused) {
  try {
    MessageWriter<md::Quote> w(std::size_t{1} << 32);
    ADD_FAILURE() << "constructed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("largest FlatBuffer"), std::string::npos) << e.what();
  }
}

TEST(MessageWriter, RequiredStringsAreThereFromTheStart) {
  const MessageWriter<oms::NewOrder> w;
  EXPECT_EQ(verify_both(w), "");
  ASSERT_NE(w->cl_ord_id(), nullptr);
  ASSERT_NE(w->symbol(), nullptr);
  EXPECT_EQ(w->cl_ord_id()->size(), 0u);
  EXPECT_EQ(w->time_in_force(), oms::TimeInForce::Day);
}

TEST(MessageWriter, EnumsTakeTheirEnumOrItsUnderlyingType) {
  MessageWriter<md::Trade> w;
  const auto side = w.scalar<common::Side>(md::Trade::VT_AGGRESSOR);
  const auto raw = w.scalar<std::uint8_t>(md::Trade::VT_AGGRESSOR);
  w.set(side, common::Side::Sell);
  EXPECT_EQ(w->aggressor(), common::Side::Sell);
  w.set(raw, 3);
  EXPECT_EQ(w->aggressor(), common::Side::SellShort);
  MessageWriter<strategy::Signal> s;  // a signed enum
  s.set(s.scalar<strategy::Direction>(strategy::Signal::VT_DIRECTION), strategy::Direction::Short);
  EXPECT_EQ(s->direction(), strategy::Direction::Short);
  EXPECT_EQ(verify_both(s), "");
}

TEST(MessageWriter, VectorsOfStructsAndBytes) {
  MessageWriter<md::BookUpdate> w;
  const auto bids = w.vector<md::PriceLevel>(md::BookUpdate::VT_BIDS);
  const auto asks = w.vector<md::PriceLevel>(md::BookUpdate::VT_ASKS);
  const auto snapshot = w.scalar<bool>(md::BookUpdate::VT_SNAPSHOT);
  const std::vector<md::PriceLevel> b = {{189.90, 100, 3, 0, md::BookAction::New},
                                         {189.89, 250, 5, 1, md::BookAction::Change}};
  ASSERT_TRUE(w.set(bids, b));
  ASSERT_TRUE(w.set(asks, std::span<const md::PriceLevel>(b).first(1)));
  w.set(snapshot, true);
  ASSERT_EQ(verify_both(w), "");
  ASSERT_EQ(w->bids()->size(), 2u);
  EXPECT_EQ(w->bids()->Get(1)->qty(), 250.0);
  EXPECT_EQ(w->bids()->Get(1)->action(), md::BookAction::Change);
  EXPECT_EQ(w->asks()->size(), 1u);
  EXPECT_TRUE(w->snapshot());

  MessageWriter<sys::DeadLetter> d;
  const std::vector<std::uint8_t> payload = {1, 2, 3, 0, 5};
  ASSERT_TRUE(d.set(d.vector<std::uint8_t>(sys::DeadLetter::VT_PAYLOAD), payload));
  ASSERT_EQ(verify_both(d), "");
  ASSERT_EQ(d->payload()->size(), 5u);
  EXPECT_EQ(d->payload()->Get(3), 0);
}

// ------------------------------------------------------------------ handle errors

template <class F>
std::string invalid_argument(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::InvalidArgument) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected Error(InvalidArgument)";
  return {};
}

void expect_has(const std::string& what, std::initializer_list<const char*> parts) {
  for (const char* p : parts) EXPECT_NE(what.find(p), std::string::npos) << p << " in: " << what;
}

TEST(MessageWriter, HandleErrorsNameTheTypeTheFieldAndWhy) {
  const MessageWriter<md::Quote> w;
  expect_has(invalid_argument([&] { (void)w.scalar<float>(md::Quote::VT_BID_PX); }),
             {"MessageWriter<shmbus.md.Quote>", "bid_px", "double", "float"});
  expect_has(invalid_argument([&] { (void)w.scalar<std::int32_t>(md::Quote::VT_BID_ORDERS); }),
             {"bid_orders", "uint32", "int32"});
  expect_has(invalid_argument([&] { (void)w.scalar<double>(7); }),
             {"vtable offset 7", "not a field of shmbus.md.Quote", "bid_px 16"});
  expect_has(invalid_argument([&] { (void)w.scalar<double>(40); }),
             {"vtable offset 40", "not a field"});
  expect_has(invalid_argument([&] { (void)w.scalar<double>(md::Quote::VT_SYMBOL); }),
             {"symbol", "a string", "string()"});
  expect_has(invalid_argument([&] { (void)w.string(md::Quote::VT_BID_PX); }),
             {"bid_px", "a double", "scalar<V>()"});
  expect_has(invalid_argument([&] { (void)w.vector<std::uint8_t>(md::Quote::VT_SYMBOL); }),
             {"symbol", "string()"});
  expect_has(invalid_argument([&] { (void)w.scalar<common::Side>(md::Quote::VT_BID_ORDERS); }),
             {"bid_orders", "not an enum", "uint32"});
  expect_has(invalid_argument([&] { (void)w.structure<md::PriceLevel>(md::Quote::VT_BID_PX); }),
             {"bid_px", "not a struct"});

  const MessageWriter<md::Trade> t;
  expect_has(invalid_argument([&] { (void)t.scalar<std::int8_t>(md::Trade::VT_AGGRESSOR); }),
             {"aggressor", "shmbus.common.Side", "uint8", "int8"});

  const MessageWriter<md::BookUpdate> b;
  expect_has(invalid_argument([&] { (void)b.vector<double>(md::BookUpdate::VT_BIDS); }),
             {"bids", "shmbus.md.PriceLevel", "elements do not match"});
  expect_has(invalid_argument([&] { (void)b.structure<md::PriceLevel>(md::BookUpdate::VT_BIDS); }),
             {"bids", "vector<E>()"});
}

TEST(MessageWriter, ATypeWithAVectorOfTablesIsRefusedNamingTheField) {
  const std::string what = invalid_argument([] { MessageWriter<risk::Exposure> w; });
  expect_has(what, {"MessageWriter<shmbus.risk.Exposure>", "symbols", "a vector of tables",
                    "FlatBufferBuilder"});
  EXPECT_EQ(what.find("account"), std::string::npos) << what;  // a string: fine
}

TEST(MessageWriter, CopiesAreIndependentAndShareHandles) {
  MessageWriter<md::Quote> a;
  const QuoteHandles h(a);
  MessageWriter<md::Quote> b = a;
  a.set(h.bid_px, 1.5);
  b.set(h.bid_px, 2.5);
  ASSERT_TRUE(a.set(h.symbol, "AAPL"));
  ASSERT_TRUE(b.set(h.symbol, "A-MUCH-LONGER-SYMBOL"));
  EXPECT_EQ(a->bid_px(), 1.5);
  EXPECT_EQ(b->bid_px(), 2.5);
  EXPECT_EQ(a->symbol()->string_view(), "AAPL");
  EXPECT_EQ(b->symbol()->string_view(), "A-MUCH-LONGER-SYMBOL");
}

// ------------------------------------------------------------------ a schema of our own

// What schemas/ does not have, registered at run time from a parsed schema.
constexpr const char* kShapeSchema = R"(
namespace shmbus_writer_test;
struct Point { x: float; y: float; }
struct Wide { a: double; b: int; }
enum Color : short { Red = 1, Green = 2 }
table Shape {
  name: string;
  old: int (deprecated);
  at: Point;
  wide: Wide;
  color: Color = Green;
  scale: float = 1.5;
  count: ushort = 7;
  flag: bool = true;
  tags: [short];
  points: [Point];
  big: long = -5;
}
table Leaf { v: int; }
union Any { Leaf }
table Tree { leaf: Leaf; any: Any; names: [string]; ok: int; }
root_type Shape;
)";

void register_shape_schema() {
  static const bool done = [] {
    flatbuffers::Parser parser;
    if (!parser.Parse(kShapeSchema)) throw std::runtime_error(parser.error_);
    parser.Serialize();
    const auto* b = parser.builder_.GetBufferPointer();
    SchemaRegistry::instance().add(std::vector<std::uint8_t>(b, b + parser.builder_.GetSize()));
    return true;
  }();
  (void)done;
}

// Stand-ins for generated code: MessageWriter needs only the name.
struct Shape : flatbuffers::Table {
  static const char* GetFullyQualifiedName() { return "shmbus_writer_test.Shape"; }
  enum : flatbuffers::voffset_t {
    VT_NAME = 4,
    VT_OLD = 6,
    VT_AT = 8,
    VT_WIDE = 10,
    VT_COLOR = 12,
    VT_SCALE = 14,
    VT_COUNT = 16,
    VT_FLAG = 18,
    VT_TAGS = 20,
    VT_POINTS = 22,
    VT_BIG = 24
  };
};
struct Tree : flatbuffers::Table {
  static const char* GetFullyQualifiedName() { return "shmbus_writer_test.Tree"; }
};
struct Point {
  float x, y;
};
struct alignas(8) Wide {
  double a;
  std::int32_t b;
  std::int32_t pad;
};
enum class Color : std::int16_t { Red = 1, Green = 2 };

std::string verify_shape(const MessageWriter<Shape>& w) {
  const TypeInfo& type = type_of<Shape>();
  const reflection::Schema& schema = *reflection::GetSchema(type.bfbs.data());
  const auto* buf = reinterpret_cast<const std::uint8_t*>(w.bytes().data());
  std::string out;
  if (!flatbuffers::Verify(schema, *schema.root_table(), buf, w.size()))
    out += "flatbuffers::Verify refuses it. ";
  return out + Verifier(type).check(w.bytes());
}

TEST(MessageWriterOwnSchema, DefaultsStructsVectorsAndNoFileIdentifier) {
  register_shape_schema();
  MessageWriter<Shape> w;
  ASSERT_EQ(type_of<Shape>().file_identifier, "");
  ASSERT_EQ(verify_shape(w), "");
  const flatbuffers::Table& t = *w;
  // The schema's defaults, stored.
  EXPECT_EQ(t.GetField<std::int16_t>(Shape::VT_COLOR, 0), 2);
  EXPECT_EQ(t.GetField<float>(Shape::VT_SCALE, 0), 1.5f);
  EXPECT_EQ(t.GetField<std::uint16_t>(Shape::VT_COUNT, 0), 7);
  EXPECT_EQ(t.GetField<std::uint8_t>(Shape::VT_FLAG, 0), 1);
  EXPECT_EQ(t.GetField<std::int64_t>(Shape::VT_BIG, 0), -5);
  EXPECT_NE(t.GetOptionalFieldOffset(Shape::VT_BIG), 0);
  EXPECT_EQ(t.GetOptionalFieldOffset(Shape::VT_OLD), 0);  // deprecated: not stored
  EXPECT_EQ(t.GetStruct<const Point*>(Shape::VT_AT)->x, 0.0f);

  const auto at = w.structure<Point>(Shape::VT_AT);
  const auto wide = w.structure<Wide>(Shape::VT_WIDE);
  const auto color = w.scalar<Color>(Shape::VT_COLOR);
  const auto flag = w.scalar<bool>(Shape::VT_FLAG);
  const auto tags = w.vector<std::int16_t>(Shape::VT_TAGS);
  const auto points = w.vector<Point>(Shape::VT_POINTS);
  const auto name = w.string(Shape::VT_NAME);
  w.set(at, Point{1.25f, -2.5f});
  w.set(wide, Wide{3.75, -9, 0});
  w.set(color, Color::Red);
  w.set(flag, false);
  const std::vector<std::int16_t> tag_values = {-1, 2, -3};
  const std::vector<Point> point_values = {{1, 2}, {3, 4}, {5, 6}};
  ASSERT_TRUE(w.set(tags, tag_values));
  ASSERT_TRUE(w.set(name, "triangle"));
  ASSERT_TRUE(w.set(points, point_values));
  ASSERT_EQ(verify_shape(w), "");
  const flatbuffers::Table& u = *w;
  EXPECT_EQ(u.GetStruct<const Point*>(Shape::VT_AT)->y, -2.5f);
  const auto* wv = u.GetStruct<const Wide*>(Shape::VT_WIDE);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(wv) % 8, 0u);
  EXPECT_EQ(wv->a, 3.75);
  EXPECT_EQ(wv->b, -9);
  EXPECT_EQ(u.GetField<std::int16_t>(Shape::VT_COLOR, 0), 1);
  EXPECT_EQ(u.GetField<std::uint8_t>(Shape::VT_FLAG, 1), 0);
  const auto* tv = u.GetPointer<const flatbuffers::Vector<std::int16_t>*>(Shape::VT_TAGS);
  ASSERT_EQ(tv->size(), 3u);
  EXPECT_EQ(tv->Get(2), -3);
  const auto* pv = u.GetPointer<const flatbuffers::Vector<const Point*>*>(Shape::VT_POINTS);
  ASSERT_EQ(pv->size(), 3u);
  EXPECT_EQ(pv->Get(2)->y, 6.0f);
  EXPECT_EQ(u.GetPointer<const flatbuffers::String*>(Shape::VT_NAME)->string_view(), "triangle");
  EXPECT_EQ(u.GetField<std::int64_t>(Shape::VT_BIG, 0), -5);  // untouched
}

TEST(MessageWriterOwnSchema, StructAndDeprecatedHandleErrors) {
  register_shape_schema();
  const MessageWriter<Shape> w;
  expect_has(invalid_argument([&] { (void)w.structure<Point>(Shape::VT_WIDE); }),
             {"wide", "shmbus_writer_test.Wide", "16 bytes", "8 bytes"});
  expect_has(invalid_argument([&] { (void)w.scalar<std::int32_t>(Shape::VT_OLD); }),
             {"old", "deprecated"});
  expect_has(invalid_argument([&] { (void)w.scalar<Color>(Shape::VT_COUNT); }),
             {"count", "not an enum", "uint16"});
  expect_has(invalid_argument([&] { (void)w.vector<float>(Shape::VT_POINTS); }),
             {"points", "shmbus_writer_test.Point", "float"});
}

TEST(MessageWriterOwnSchema, TablesUnionsAndVectorsOfStringsAreRefusedByName) {
  register_shape_schema();
  const std::string what = invalid_argument([] { MessageWriter<Tree> w; });
  expect_has(what, {"MessageWriter<shmbus_writer_test.Tree>", "leaf (a table)", "any (a union)",
                    "any_type (a union's type)", "names (a vector of strings)"});
  EXPECT_EQ(what.find("ok ("), std::string::npos) << what;  // an int: fine
}

// ------------------------------------------------------------------ through a bus

TopicConfig topic_config(Policy policy, std::uint32_t slot_size = 256) {
  TopicConfig c;
  c.policy = policy;
  c.slot_size = slot_size;
  c.slot_count = 8;
  return c;
}

class MessageWriterPolicy : public ::testing::TestWithParam<Policy> {};

TEST_P(MessageWriterPolicy, PublishedQuotesReadBackWithEveryField) {
  ScopedBus sb;
  Bus bus = sb.open();
  Subscriber sub = bus.subscriber<md::Quote>("md.quotes", topic_config(GetParam()));
  Publisher pub = bus.publisher<md::Quote>("md.quotes", topic_config(GetParam()));
  MessageWriter<md::Quote> w;
  const QuoteHandles h(w);
  const char* symbols[] = {"AAPL", "GOOGL", "BRK.B", "A", "TSLA"};
  const char* venues[] = {"XNAS", "XNYS", "BATS"};
  // More messages than slots: the ring wraps (reliable: read as we go).
  for (std::uint64_t k = 0; k < 20; ++k) {
    fill(w, h, k);
    ASSERT_TRUE(w.set(h.symbol, symbols[k % 5]));
    ASSERT_TRUE(w.set(h.venue, venues[k % 3]));
    if (k % 2 == 0) {
      ASSERT_EQ(w.try_publish(pub, k + 7), PublishResult::Ok);
    } else {
      ASSERT_EQ(w.publish(pub, std::chrono::milliseconds(100), k + 7), PublishResult::Ok);
    }
    int got = 0;
    EXPECT_EQ(sub.poll(
                  [&](const Message& m) {
                    ++got;
                    EXPECT_EQ(m.meta.seq, k + 1);
                    EXPECT_EQ(m.meta.correlation, k + 7);
                    EXPECT_EQ(m.data.size(), w.size());
                    EXPECT_TRUE(Verifier(type_of<md::Quote>()).verify(m.data));
                    expect_quote(m.as<md::Quote>(), symbols[k % 5], venues[k % 3], k);
                  },
                  4),
              1u);
    EXPECT_EQ(got, 1);
  }
}

TEST_P(MessageWriterPolicy, ASlotTooSmallIsTooLargeAndATopicOfAnotherTypeInvalid) {
  ScopedBus sb;
  Bus bus = sb.open();
  Publisher small = bus.publisher<md::Quote>("md.small", topic_config(GetParam(), 64));
  Publisher trades = bus.publisher<md::Trade>("md.trades", topic_config(GetParam()));
  MessageWriter<md::Quote> w;
  ASSERT_GT(w.size(), small.max_payload());
  EXPECT_EQ(w.try_publish(small), PublishResult::TooLarge);
  EXPECT_EQ(w.publish(small, std::chrono::milliseconds(5)), PublishResult::TooLarge);
  EXPECT_EQ(w.try_publish(trades), PublishResult::Invalid);
  EXPECT_EQ(small.next_sequence(), 1u);
  EXPECT_EQ(trades.next_sequence(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Policies, MessageWriterPolicy,
                         ::testing::Values(Policy::Lossy, Policy::Reliable), [](const auto& p) {
                           return p.param == Policy::Lossy ? "Lossy" : "Reliable";
                         });

}  // namespace
}  // namespace shmbus::test
