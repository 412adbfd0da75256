// Tests of the message schemas, SchemaRegistry, schema_hash() and JsonCodec.
//
// The registry is process-wide, so tests that add schemas use namespaces of
// their own ("test.<name>") and never assume a registry without them.
#include "shmbus/schema/json_codec.hpp"

#include "shmbus/detail/json_number.hpp"
#include "shmbus/error.hpp"
#include "shmbus/messages.hpp"

#include <flatbuffers/idl.h>
#include <flatbuffers/reflection.h>
#include <flatbuffers/util.h>
#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "test_util.hpp"

namespace {

using shmbus::Errc;
using shmbus::Error;
using shmbus::JsonCodec;
using shmbus::SchemaRegistry;
using shmbus::TypeInfo;

// ---------------------------------------------------------------- helpers

// Runs `f`, expects Error with `code`, returns its message ("" if none was thrown).
template <class F>
std::string error_of(F&& f, Errc code) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(static_cast<int>(e.code()), static_cast<int>(code)) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected shmbus::Error, got std::exception: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected shmbus::Error, nothing was thrown";
  return {};
}

std::span<const std::byte> as_bytes(const flatbuffers::FlatBufferBuilder& fbb) {
  return {reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

// The .bfbs of an inline schema, as `flatc --binary --schema` would write it.
std::vector<std::uint8_t> bfbs_of(const std::string& fbs, bool with_comments = false) {
  flatbuffers::IDLOptions opts;
  opts.binary_schema_comments = with_comments;
  flatbuffers::Parser parser(opts);
  EXPECT_TRUE(parser.Parse(fbs.c_str())) << parser.error_ << "\n" << fbs;
  parser.Serialize();
  const auto* p = parser.builder_.GetBufferPointer();
  return {p, p + parser.builder_.GetSize()};
}

// The .bfbs of a schema file, with includes resolved in its directory and
// declaration files recorded relative to it (flatc --bfbs-filenames).
std::vector<std::uint8_t> bfbs_of_file(const std::filesystem::path& fbs) {
  std::string source;
  EXPECT_TRUE(flatbuffers::LoadFile(fbs.c_str(), false, &source)) << fbs;
  const std::string dir = fbs.parent_path().string();
  flatbuffers::IDLOptions opts;
  opts.project_root = dir;
  flatbuffers::Parser parser(opts);
  const char* include_paths[] = {dir.c_str(), nullptr};
  EXPECT_TRUE(parser.Parse(source.c_str(), include_paths, fbs.c_str())) << parser.error_;
  parser.Serialize();
  const auto* p = parser.builder_.GetBufferPointer();
  return {p, p + parser.builder_.GetSize()};
}

std::string root_of(const std::vector<std::uint8_t>& bfbs) {
  const auto* root = reflection::GetSchema(bfbs.data())->root_table();
  return root == nullptr ? std::string() : root->name()->str();
}

const reflection::Object& object_of(const TypeInfo& info) {
  const auto* schema = reflection::GetSchema(info.bfbs.data());
  const auto* object = schema->objects()->LookupByKey(info.name.c_str());
  EXPECT_NE(object, nullptr) << info.name;
  return *object;
}

// Every root type, with a message that sets every one of its fields, written
// exactly as to_json() prints it (so a round trip must reproduce it byte for
// byte), and its file_identifier.
struct Sample {
  const char* type;
  const char* identifier;
  const char* json;
};

const Sample kSamples[] = {
    {"shmbus.md.Quote", "MDQT",
     R"({"symbol": "AAPL","instrument_id": 265598,"venue": "XNAS","exchange_ts": 1732300000123456789,)"
     R"("receive_ts": 1732300000123460001,"seq": 48151623,"bid_px": 189.25,"bid_qty": 300.0,"ask_px": 189.26,)"
     R"("ask_qty": 500.0,"bid_orders": 3,"ask_orders": 4})"},
    {"shmbus.md.Trade", "MDTR",
     R"({"symbol": "ESZ4","instrument_id": 11223344,"venue": "XCME","exchange_ts": 1732300000200000000,)"
     R"("receive_ts": 1732300000200004000,"seq": 77,"price": 5987.25,"qty": 12.0,"aggressor": "Sell",)"
     R"("trade_id": "T-000991","conditions": "@F"})"},
    {"shmbus.md.BookUpdate", "MDBK",
     R"({"symbol": "MSFT","instrument_id": 272093,"venue": "XNAS","exchange_ts": 1732300000300000000,)"
     R"("receive_ts": 1732300000300002500,"seq": 9001,"snapshot": true,)"
     R"("bids": [{"price": 415.1,"qty": 200.0,"order_count": 2,"level": 0,"action": "New"},)"
     R"({"price": 415.09,"qty": 100.0,"order_count": 1,"level": 1,"action": "Change"}],)"
     R"("asks": [{"price": 415.12,"qty": 50.0,"order_count": 1,"level": 0,"action": "Delete"}],"depth": 10})"},
    {"shmbus.oms.NewOrder", "OMNO",
     R"({"cl_ord_id": "S1-000042","account": "ACC-7","symbol": "AAPL","instrument_id": 265598,"venue": "XNAS",)"
     R"("side": "Buy","ord_type": "Limit","time_in_force": "IOC","qty": 100.0,"price": 189.25,"stop_px": 188.5,)"
     R"("display_qty": 10.0,"expire_ts": 1732330000000000000,"strategy_id": "mm-aapl",)"
     R"("transact_ts": 1732300000400000000,"seq": 42,"text": "opening"})"},
    {"shmbus.oms.CancelOrder", "OMCX",
     R"({"cl_ord_id": "S1-000043","orig_cl_ord_id": "S1-000042","order_id": "X-778899","account": "ACC-7",)"
     R"("symbol": "AAPL","instrument_id": 265598,"venue": "XNAS","side": "Buy","strategy_id": "mm-aapl",)"
     R"("transact_ts": 1732300000500000000,"seq": 43,"reason": "quote moved"})"},
    {"shmbus.oms.ExecutionReport", "OMER",
     R"({"order_id": "X-778899","cl_ord_id": "S1-000042","orig_cl_ord_id": "S1-000040","exec_id": "E-1",)"
     R"("account": "ACC-7","symbol": "AAPL","instrument_id": 265598,"venue": "XNAS","side": "SellShort",)"
     R"("ord_type": "StopLimit","time_in_force": "GTC","exec_type": "Trade","ord_status": "PartiallyFilled",)"
     R"("price": 189.25,"qty": 100.0,"last_px": 189.24,"last_qty": 40.0,"cum_qty": 60.0,"leaves_qty": 40.0,)"
     R"("avg_px": 189.245,"liquidity": "Maker","commission": 0.12,"reject_code": 7,"reject_reason": "none",)"
     R"("strategy_id": "mm-aapl","exchange_ts": 1732300000600000000,"receive_ts": 1732300000600003000,)"
     R"("seq": 1001})"},
    {"shmbus.strategy.Signal", "STSG",
     R"({"strategy_id": "momo-1","symbol": "NVDA","instrument_id": 4815747,"venue": "XNAS","kind": "Entry",)"
     R"("direction": "Short","strength": 0.75,"value": -12.5,"horizon_ns": 30000000000,)"
     R"("generated_ts": 1732300000700000000,"source_ts": 1732300000699990000,"seq": 5,"model": "gbm-v3.2"})"},
    {"shmbus.risk.Position", "RKPS",
     R"({"account": "ACC-7","strategy_id": "mm-aapl","symbol": "AAPL","instrument_id": 265598,"venue": "XNAS",)"
     R"("qty": -250.0,"avg_px": 190.1,"mark_px": 189.25,"realized_pnl": 1234.5,"unrealized_pnl": 212.5,)"
     R"("bought_qty": 1000.0,"sold_qty": 1250.0,"currency": "USD","ts": 1732300000800000000,"seq": 77})"},
    {"shmbus.risk.LimitBreach", "RKLB",
     R"({"limit_name": "max_gross_notional","account": "ACC-7","strategy_id": "mm-aapl","symbol": "AAPL",)"
     R"("instrument_id": 265598,"limit": 1000000.0,"observed": 1250000.0,"severity": "Critical",)"
     R"("action": "KillSwitch","cl_ord_id": "S1-000044","detail": "gross notional 1.25M over 1M",)"
     R"("ts": 1732300000900000000,"seq": 3})"},
    {"shmbus.risk.Exposure", "RKEX",
     R"({"account": "ACC-7","strategy_id": "mm","currency": "USD","gross": 94812.5,"net": -47312.5,)"
     R"("long_notional": 23750.0,"short_notional": 71062.5,)"
     R"("symbols": [{"symbol": "AAPL","instrument_id": 265598,"qty": -250.0,"notional": -47312.5,)"
     R"("mark_px": 189.25},{"symbol": "MSFT","instrument_id": 272093,"qty": 0.0,"notional": 0.0,)"
     R"("mark_px": 415.1}],"ts": 1732300001000000000,"seq": 8})"},
    {"shmbus.sys.Heartbeat", "SYHB",
     R"({"component": "feed.xnas","host": "trade01","pid": 4242,"seq": 360,"uptime_ns": 3600000000000,)"
     R"("ts": 1732300001100000000,"interval_ms": 1000,"version": "0.1.0-g1a2b3c"})"},
    {"shmbus.sys.ComponentStatus", "SYCS",
     R"({"component": "bridge.redis","host": "trade01","pid": 4343,"state": "Degraded",)"
     R"("previous_state": "Running","detail": "redis at 127.0.0.1:6379 refused the connection; retrying)"
     R"( in 400 ms","ts": 1732300001200000000,"seq": 2})"},
    {"shmbus.sys.Error", "SYER",
     R"({"component": "gateway.cme","host": "trade01","pid": 4444,"code": 111,"category": "errno",)"
     R"("severity": "Error","message": "connect to 10.0.0.5:9000 failed: connection refused",)"
     R"("topic": "oms.orders","ts": 1732300001300000000,"seq": 9})"},
    {"shmbus.sys.DeadLetter", "SYDL",
     R"({"original_topic": "md.quotes","reason": "bytes fail the verifier","reason_code": "VerifyFailed",)"
     R"("original_type": "shmbus.md.Quote","payload": [1,2,3,255],"original_seq": 4711,)"
     R"("received_ts": 1732300001400000000,"source": "bridge.redis:md.*","attempts": 3,)"
     R"("ts": 1732300001400005000})"},
};

const TypeInfo& info(std::string_view name) {
  return SchemaRegistry::instance().find(name);
}
JsonCodec codec(std::string_view name) {
  return JsonCodec(info(name));
}

const char* const kQuoteJson = kSamples[0].json;

// ---------------------------------------------------------------- registry

TEST(SchemaRegistry, PreloadsEveryRootTypeWithItsIdentifier) {
  const auto names = SchemaRegistry::instance().type_names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  for (const Sample& s : kSamples) {
    ASSERT_TRUE(SchemaRegistry::instance().contains(s.type)) << s.type;
    EXPECT_NE(std::find(names.begin(), names.end(), s.type), names.end()) << s.type;
    const TypeInfo& t = info(s.type);
    EXPECT_EQ(t.name, s.type);
    EXPECT_EQ(t.file_identifier, s.identifier) << s.type;
    EXPECT_FALSE(t.is_raw());
    // The bfbs kept is the one of the file whose root_type this is.
    EXPECT_EQ(root_of(t.bfbs), s.type);
    EXPECT_EQ(t.hash, shmbus::schema_hash(t.bfbs, s.type)) << s.type;
  }
  // Structs and enums are not message types.
  EXPECT_FALSE(SchemaRegistry::instance().contains("shmbus.md.PriceLevel"));
  EXPECT_FALSE(SchemaRegistry::instance().contains("shmbus.common.Side"));
}

TEST(SchemaRegistry, NonRootTableHasNoIdentifierAndItsDeclaringFile) {
  const TypeInfo& t = info("shmbus.risk.SymbolExposure");
  EXPECT_EQ(t.file_identifier, "");
  EXPECT_EQ(root_of(t.bfbs), "shmbus.risk.Exposure");
}

TEST(SchemaRegistry, TypeOfGeneratedType) {
  const TypeInfo& t = shmbus::type_of<shmbus::md::Quote>();
  EXPECT_EQ(&t, &info("shmbus.md.Quote"));
  EXPECT_EQ(t.name, shmbus::md::Quote::GetFullyQualifiedName());
  EXPECT_EQ(t.file_identifier, shmbus::md::QuoteIdentifier());
  EXPECT_EQ(&shmbus::type_of<shmbus::sys::DeadLetter>(), &info("shmbus.sys.DeadLetter"));
}

TEST(SchemaRegistry, FindUnknownTypeThrowsAnActionableError) {
  const std::string msg = error_of([] { (void)info("nope"); }, Errc::UnknownType);
  EXPECT_NE(msg.find("\"nope\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("SchemaRegistry::add()"), std::string::npos) << msg;
  EXPECT_FALSE(SchemaRegistry::instance().contains("nope"));

  // An unqualified name gets the qualified one suggested.
  const std::string hint = error_of([] { (void)info("Quote"); }, Errc::UnknownType);
  EXPECT_NE(hint.find("Did you mean shmbus.md.Quote?"), std::string::npos) << hint;
}

TEST(SchemaRegistry, AddUserSchemaMakesItsTypesFindable) {
  const auto bfbs = bfbs_of(R"(
    namespace test.user;
    table Leg { symbol: string (id: 0); ratio: double (id: 1); }
    table Spread { name: string (id: 0, required); legs: [Leg] (id: 1); }
    root_type Spread;
    file_identifier "TUSP";
  )");
  ASSERT_FALSE(SchemaRegistry::instance().contains("test.user.Spread"));
  SchemaRegistry::instance().add(bfbs);

  const TypeInfo& t = info("test.user.Spread");
  EXPECT_EQ(t.file_identifier, "TUSP");
  EXPECT_EQ(t.bfbs, bfbs);
  EXPECT_EQ(t.hash, shmbus::schema_hash(bfbs, "test.user.Spread"));
  EXPECT_TRUE(SchemaRegistry::instance().contains("test.user.Leg"));
  EXPECT_EQ(info("test.user.Leg").file_identifier, "");

  const JsonCodec c(t);
  const std::string json =
      R"({"name": "calendar","legs": [{"symbol": "ESZ4","ratio": 1.0},{"symbol": "ESH5","ratio": -1.0}]})";
  const auto msg = c.from_json(json);
  EXPECT_TRUE(flatbuffers::BufferHasIdentifier(msg.data(), "TUSP"));
  EXPECT_EQ(c.to_json(msg), json);
}

TEST(SchemaRegistry, AddGarbageThrowsInvalidMessage) {
  const std::vector<std::uint8_t> empty;
  const std::vector<std::uint8_t> text = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'};
  std::vector<std::uint8_t> noise(256);
  for (std::size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<std::uint8_t>(i * 131 + 7);
  std::vector<std::uint8_t> truncated = info("shmbus.md.Quote").bfbs;
  truncated.resize(truncated.size() / 2);
  // Right identifier, nonsense after it.
  std::vector<std::uint8_t> fake = {0x10, 0,    0, 0, 'B', 'F', 'B', 'S', 0xff, 0xff,
                                    0xff, 0xff, 1, 2, 3,   4,   5,   6,   7,    8};

  const auto before = SchemaRegistry::instance().type_names();
  const std::vector<std::uint8_t>* const all[] = {&empty, &text, &noise, &truncated, &fake};
  for (const std::vector<std::uint8_t>* bytes : all) {
    const std::string msg =
        error_of([&] { SchemaRegistry::instance().add(*bytes); }, Errc::InvalidMessage);
    EXPECT_NE(msg.find("not a valid FlatBuffers binary schema"), std::string::npos) << msg;
    EXPECT_NE(msg.find("flatc --binary --schema"), std::string::npos) << msg;
  }
  EXPECT_EQ(SchemaRegistry::instance().type_names(), before);
}

TEST(SchemaRegistry, ConflictingDefinitionIsRefusedWhole) {
  const std::uint64_t quote_hash = info("shmbus.md.Quote").hash;
  const auto bfbs = bfbs_of(R"(
    namespace shmbus.md;
    table Quote { symbol: string (id: 0); bid: double (id: 1); }
    table TestOnlyExtra { x: int (id: 0); }
    root_type Quote;
  )");
  const std::string msg =
      error_of([&] { SchemaRegistry::instance().add(bfbs); }, Errc::SchemaMismatch);
  EXPECT_NE(msg.find("shmbus.md.Quote"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Nothing was registered"), std::string::npos) << msg;
  EXPECT_EQ(info("shmbus.md.Quote").hash, quote_hash);
  EXPECT_EQ(info("shmbus.md.Quote").file_identifier, "MDQT");
  EXPECT_FALSE(SchemaRegistry::instance().contains("shmbus.md.TestOnlyExtra"));
}

TEST(SchemaRegistry, AddingAKnownSchemaAgainChangesNothing) {
  const TypeInfo* before = &info("shmbus.md.Trade");
  const auto bfbs = before->bfbs;
  SchemaRegistry::instance().add(bfbs);
  EXPECT_EQ(&info("shmbus.md.Trade"), before);
}

// A type reached through `include` is registered from the file that declares
// it, whichever order the files are added in, and references handed out
// earlier stay valid.
TEST(SchemaRegistry, DeclaringFileWinsOverIncludingFile) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("shmbus_schema_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "base.fbs") << R"(
    namespace test.inc;
    table BaseExtra { x: int (id: 0); }
    table Base { a: int (id: 0); extra: BaseExtra (id: 1); }
    root_type Base;
    file_identifier "TIBA";
  )";
  std::ofstream(dir / "derived.fbs") << R"(
    include "base.fbs";
    namespace test.inc;
    table Derived { base: Base (id: 0); }
    root_type Derived;
    file_identifier "TIDE";
  )";
  const auto derived = bfbs_of_file(dir / "derived.fbs");
  const auto base = bfbs_of_file(dir / "base.fbs");
  std::filesystem::remove_all(dir);

  auto& registry = SchemaRegistry::instance();
  registry.add(derived);
  const TypeInfo& early = registry.find("test.inc.Base");
  EXPECT_EQ(early.file_identifier, "");  // not the root of derived.fbs
  EXPECT_EQ(early.bfbs, derived);
  EXPECT_EQ(registry.find("test.inc.Derived").file_identifier, "TIDE");

  registry.add(base);
  const TypeInfo& base_info = registry.find("test.inc.Base");
  EXPECT_EQ(base_info.file_identifier, "TIBA");
  EXPECT_EQ(base_info.bfbs, base);
  EXPECT_EQ(registry.find("test.inc.BaseExtra").bfbs, base);  // declared there, though not its root
  // The reference taken before the replacement still reads.
  EXPECT_EQ(early.name, "test.inc.Base");
  EXPECT_EQ(early.hash, base_info.hash);

  registry.add(derived);  // no downgrade
  EXPECT_EQ(&registry.find("test.inc.Base"), &base_info);
}

TEST(SchemaRegistry, ConcurrentFindAndAdd) {
  std::atomic<bool> stop{false};
  std::atomic<int> found{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      do {
        if (info("shmbus.md.Quote").file_identifier == "MDQT")
          found.fetch_add(1, std::memory_order_relaxed);
        (void)SchemaRegistry::instance().type_names();
      } while (!stop.load(std::memory_order_relaxed));
    });
  }
  for (int i = 0; i < 20; ++i) {
    SchemaRegistry::instance().add(bfbs_of("namespace test.conc; table T" + std::to_string(i) +
                                           " { v: int (id: 0); } root_type T" + std::to_string(i) +
                                           ";"));
  }
  stop = true;
  for (auto& t : readers) t.join();
  for (int i = 0; i < 20; ++i)
    EXPECT_TRUE(SchemaRegistry::instance().contains("test.conc.T" + std::to_string(i)));
  EXPECT_GT(found.load(), 0);
}

// ---------------------------------------------------------------- schema_hash

constexpr const char* kHashBase = R"(
  namespace test.hash;
  enum Color : ubyte { Red = 0, Green = 1 }
  struct Point { x: float; y: float; }
  table Inner { v: int (id: 0); }
  table Root {
    a: int (id: 0);
    b: string (id: 1);
    c: Color (id: 2);
    p: Point (id: 3);
    inner: Inner (id: 4);
    list: [Inner] (id: 5);
  }
  root_type Root;
)";

std::uint64_t hash_of(const std::string& fbs, bool with_comments = false) {
  return shmbus::schema_hash(bfbs_of(fbs, with_comments), "test.hash.Root");
}

std::string replaced(std::string s, std::string_view from, std::string_view to) {
  const auto at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

TEST(SchemaHash, IsStableAcrossLoadsAndIgnoresComments) {
  const std::uint64_t h = hash_of(kHashBase);
  EXPECT_EQ(hash_of(kHashBase), h);
  // Doc comments kept in the .bfbs, plain comments, declaration order of
  // fields (ids unchanged) and types, root_type/file_identifier: no wire change.
  const std::string documented = R"(
    namespace test.hash;
    enum Color : ubyte { Red = 0, /** green */ Green = 1 }  // enums precede their use
    /// The root.
    table Root {
      /// Field b.
      b: string (id: 1);
      a: int (id: 0);  // a comment
      c: Color (id: 2);
      p: Point (id: 3);
      inner: Inner (id: 4);
      list: [Inner] (id: 5);
    }
    table Inner { v: int (id: 0); }
    /// A point.
    struct Point { x: float; y: float; }
    root_type Inner;
    file_identifier "THSH";
  )";
  EXPECT_EQ(hash_of(documented, /*with_comments=*/true), h);
  EXPECT_NE(hash_of(documented, true), 0U);
}

TEST(SchemaHash, MatchesASchemaCompiledAtTestTimeFromTheSourceFile) {
  const auto schemas = std::filesystem::path(__FILE__).parent_path().parent_path() / "schemas";
  if (!std::filesystem::exists(schemas / "md_quote.fbs")) GTEST_SKIP() << "no " << schemas;
  // No comments, other flags than the build's flatc run: same structure.
  EXPECT_EQ(shmbus::schema_hash(bfbs_of_file(schemas / "md_quote.fbs"), "shmbus.md.Quote"),
            info("shmbus.md.Quote").hash);
  EXPECT_EQ(shmbus::schema_hash(bfbs_of_file(schemas / "risk_exposure.fbs"),
                                "shmbus.risk.SymbolExposure"),
            info("shmbus.risk.SymbolExposure").hash);
}

// If this fails, the wire contract of shmbus.md.Quote (or the hash algorithm)
// changed: processes built before the change will refuse topics created after
// it. Make that a deliberate decision, then update the constant.
TEST(SchemaHash, QuoteHashIsPinned) {
  EXPECT_EQ(info("shmbus.md.Quote").hash, 0x4cfae1fa4ee2e63bULL);
}

TEST(SchemaHash, DiffersBetweenTypes) {
  std::set<std::uint64_t> hashes;
  for (const auto& name : SchemaRegistry::instance().type_names()) {
    if (name.rfind("shmbus.", 0) == 0) {
      EXPECT_TRUE(hashes.insert(info(name).hash).second) << name;
    }
  }
  EXPECT_GE(hashes.size(), std::size(kSamples));
}

TEST(SchemaHash, ChangesWhenTheWireChanges) {
  const std::string base = kHashBase;
  const std::uint64_t h = hash_of(base);
  const struct {
    const char* what;
    std::string fbs;
  } variants[] = {
      {"field renamed", replaced(base, "a: int (id: 0)", "alpha: int (id: 0)")},
      {"field type", replaced(base, "a: int (id: 0)", "a: long (id: 0)")},
      {"field ids swapped", replaced(replaced(base, "a: int (id: 0)", "a: int (id: 1)"),
                                     "b: string (id: 1)", "b: string (id: 0)")},
      {"field added",
       replaced(base, "list: [Inner] (id: 5);", "list: [Inner] (id: 5); d: bool (id: 6);")},
      {"required", replaced(base, "b: string (id: 1)", "b: string (id: 1, required)")},
      {"deprecated", replaced(base, "a: int (id: 0)", "a: int (id: 0, deprecated)")},
      {"default", replaced(base, "a: int (id: 0)", "a: int = 5 (id: 0)")},
      {"enum value", replaced(base, "Green = 1", "Green = 2")},
      {"enum value added", replaced(base, "Green = 1", "Green = 1, Blue = 2")},
      {"struct layout", replaced(base, "x: float; y: float;", "x: double; y: float;")},
      {"reached table changed", replaced(base, "v: int (id: 0)", "v: uint (id: 0)")},
      {"vector element type", replaced(base, "list: [Inner]", "list: [int]")},
  };
  std::set<std::uint64_t> seen{h};
  for (const auto& v : variants) {
    const std::uint64_t hv = hash_of(v.fbs);
    EXPECT_NE(hv, h) << v.what;
    EXPECT_TRUE(seen.insert(hv).second) << v.what << " collides with another variant";
  }
}

TEST(SchemaHash, UnknownOrStructTypeThrows) {
  const auto bfbs = bfbs_of(kHashBase);
  std::string msg =
      error_of([&] { (void)shmbus::schema_hash(bfbs, "test.hash.Nope"); }, Errc::UnknownType);
  EXPECT_NE(msg.find("test.hash.Root"), std::string::npos) << msg;  // lists the tables
  msg = error_of([&] { (void)shmbus::schema_hash(bfbs, "test.hash.Point"); }, Errc::UnknownType);
  EXPECT_NE(msg.find("struct"), std::string::npos) << msg;
  const std::vector<std::uint8_t> garbage = {1, 2, 3};
  (void)error_of([&] { (void)shmbus::schema_hash(garbage, "test.hash.Root"); },
                 Errc::InvalidMessage);
}

// ---------------------------------------------------------------- JsonCodec

TEST(JsonCodec, EveryRootTypeRoundTrips) {
  for (const Sample& s : kSamples) {
    SCOPED_TRACE(s.type);
    const JsonCodec c = codec(s.type);
    EXPECT_EQ(c.type_name(), s.type);
    const auto msg = c.from_json(s.json);
    ASSERT_GT(msg.size(), 8U);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(msg.data()) + 4, 4), s.identifier);
    EXPECT_TRUE(c.verify(msg));
    EXPECT_EQ(c.to_json(msg), s.json);
    // The sample sets every field, so every field survives the trip.
    for (const reflection::Field* f : *object_of(info(s.type)).fields())
      EXPECT_NE(std::string_view(s.json).find("\"" + f->name()->str() + "\": "),
                std::string_view::npos)
          << "the sample does not set " << f->name()->str();
  }
}

TEST(JsonCodec, GeneratedQuoteConvertsToExpectedJson) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(shmbus::md::CreateQuoteDirect(fbb, "AAPL", 265598, "XNAS", 1732300000123456789ULL,
                                           1732300000123460001ULL, 48151623, 189.25, 300, 189.26,
                                           500, 3, 4),
             shmbus::md::QuoteIdentifier());
  EXPECT_EQ(codec("shmbus.md.Quote").to_json(as_bytes(fbb)), kQuoteJson);
}

TEST(JsonCodec, GeneratedBookUpdateWithStructsConvertsToExpectedJson) {
  using shmbus::md::BookAction;
  using shmbus::md::PriceLevel;
  const std::vector<PriceLevel> bids = {PriceLevel(100.5, 7, 2, 0, BookAction::Change)};
  const std::vector<PriceLevel> asks = {PriceLevel(100.75, 3, 1, 0, BookAction::New),
                                        PriceLevel(101.0, 9, 4, 1, BookAction::Delete)};
  flatbuffers::FlatBufferBuilder fbb;
  shmbus::md::FinishBookUpdateBuffer(
      fbb,
      shmbus::md::CreateBookUpdateDirect(fbb, "ESZ4", 0, "XCME", 1, 2, 3, false, &bids, &asks, 5));
  EXPECT_EQ(
      codec("shmbus.md.BookUpdate").to_json(as_bytes(fbb)),
      R"({"symbol": "ESZ4","instrument_id": 0,"venue": "XCME","exchange_ts": 1,"receive_ts": 2,"seq": 3,)"
      R"("snapshot": false,"bids": [{"price": 100.5,"qty": 7.0,"order_count": 2,"level": 0,"action": "Change"}],)"
      R"("asks": [{"price": 100.75,"qty": 3.0,"order_count": 1,"level": 0,"action": "New"},)"
      R"({"price": 101.0,"qty": 9.0,"order_count": 4,"level": 1,"action": "Delete"}],"depth": 5})");
}

TEST(JsonCodec, FromJsonIsReadableWithTheGeneratedApi) {
  const auto msg = codec("shmbus.md.Quote").from_json(kQuoteJson);
  const auto* data = reinterpret_cast<const std::uint8_t*>(msg.data());
  flatbuffers::Verifier verifier(data, msg.size());
  ASSERT_TRUE(shmbus::md::VerifyQuoteBuffer(verifier));
  ASSERT_TRUE(shmbus::md::QuoteBufferHasIdentifier(data));
  const auto* q = shmbus::md::GetQuote(data);
  EXPECT_EQ(q->symbol()->str(), "AAPL");
  EXPECT_EQ(q->exchange_ts(), 1732300000123456789ULL);
  EXPECT_EQ(q->bid_px(), 189.25);
  EXPECT_EQ(q->ask_px(), 189.26);
  EXPECT_EQ(q->ask_orders(), 4U);

  const auto order = codec("shmbus.oms.ExecutionReport").from_json(kSamples[5].json);
  const auto* er = flatbuffers::GetRoot<shmbus::oms::ExecutionReport>(order.data());
  EXPECT_EQ(er->side(), shmbus::common::Side::SellShort);
  EXPECT_EQ(er->exec_type(), shmbus::oms::ExecType::Trade);
  EXPECT_EQ(er->ord_status(), shmbus::oms::OrdStatus::PartiallyFilled);
  EXPECT_EQ(er->time_in_force(), shmbus::oms::TimeInForce::GTC);
  EXPECT_EQ(er->avg_px(), 189.245);
}

TEST(JsonCodec, DefaultsArePrintedAndAbsentStringsOmitted) {
  const JsonCodec c = codec("shmbus.oms.NewOrder");
  EXPECT_EQ(
      c.to_json(c.from_json(R"({"cl_ord_id": "1", "symbol": "X"})")),
      R"({"cl_ord_id": "1","symbol": "X","instrument_id": 0,"side": "Unknown","ord_type": "Unknown",)"
      R"("time_in_force": "Day","qty": 0.0,"price": 0.0,"stop_px": 0.0,"display_qty": 0.0,"expire_ts": 0,)"
      R"("transact_ts": 0,"seq": 0})");
}

struct BadJson {
  const char* type;
  const char* json;
  std::vector<const char*> expect;  // substrings of the message
};

TEST(JsonCodec, InvalidJsonThrowsWithTheTypeThePlaceAndTheReason) {
  const BadJson cases[] = {
      {"shmbus.md.Quote", R"({"symbol": "AAPL",)", {"end of file"}},
      {"shmbus.md.Quote", "nonsense", {"expecting: {"}},
      {"shmbus.md.Quote", "", {"empty"}},
      {"shmbus.md.Quote", R"({"symbol": "A"} trailing)", {"end of file"}},
      {"shmbus.md.Quote", R"({"symbol": "A",})", {"1:"}},  // strict: no trailing comma
      {"shmbus.md.Quote",
       R"({"symbol": "AAPL", "bid_pxx": 1.5})",
       {"1:", "field \"bid_pxx\"", "unknown field: bid_pxx",
        "shmbus.md.Quote has the fields symbol, instrument_id, venue, exchange_ts"}},
      {"shmbus.risk.Exposure",
       R"({"account": "A", "symbols": [{"symbol": "X"}, {"qtyy": 1}]})",
       {"field \"symbols[1].qtyy\"", "unknown field: qtyy",
        "shmbus.risk.SymbolExposure has the fields symbol,"}},
      {"shmbus.md.Quote", R"({"symbol": 12})", {"field \"symbol\"", "string"}},
      {"shmbus.md.Quote", R"({"bid_px": "abc"})", {"field \"bid_px\"", "invalid number"}},
      {"shmbus.md.Trade",
       R"({"aggressor": "Sideways"})",
       {"field \"aggressor\"", "unknown enum value: Sideways"}},
      {"shmbus.oms.NewOrder",
       R"({"symbol": "AAPL", "qty": 100})",
       {"required field is missing: cl_ord_id"}},
      {"shmbus.risk.Exposure",
       R"({"account": "A", "symbols": [{"qty": 1}]})",
       {"required field is missing: symbol"}},
      {"shmbus.md.Quote",
       R"({"bid_orders": 4294967296})",
       {"field \"bid_orders\"", "does not fit"}},
      {"shmbus.md.Quote", R"({"seq": -1})", {"field \"seq\"", "does not fit"}},
      {"shmbus.sys.Heartbeat",
       R"({"component": "x", "pid": 2147483648})",
       {"field \"pid\"", "does not fit"}},
  };
  for (const BadJson& b : cases) {
    SCOPED_TRACE(b.json);
    const JsonCodec c = codec(b.type);
    const std::string msg = error_of([&] { (void)c.from_json(b.json); }, Errc::InvalidJson);
    EXPECT_EQ(msg.rfind("invalid JSON for " + std::string(b.type), 0), 0U) << msg;
    for (const char* part : b.expect)
      EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' in: " << msg;
  }
}

TEST(JsonCodec, NulByteIsInvalidJson) {
  const std::string json("{\"symbol\": \"A\0B\"}", 17);
  const std::string msg =
      error_of([&] { (void)codec("shmbus.md.Quote").from_json(json); }, Errc::InvalidJson);
  EXPECT_NE(msg.find("NUL"), std::string::npos) << msg;
}

TEST(JsonCodec, StaysUsableAfterAnError) {
  const JsonCodec c = codec("shmbus.risk.Exposure");
  const char* good = kSamples[9].json;
  for (int i = 0; i < 3; ++i) {
    (void)error_of(
        [&] {
          (void)c.from_json(R"({"account": "A", "symbols": [{"symbol": "X", "qty": "zz"}]})");
        },
        Errc::InvalidJson);
    EXPECT_EQ(c.to_json(c.from_json(good)), good);
  }
}

TEST(JsonCodec, BadBuffersThrowInvalidMessageNamingTheType) {
  const JsonCodec quotes = codec("shmbus.md.Quote");
  const auto valid = quotes.from_json(kQuoteJson);
  const auto trade = codec("shmbus.md.Trade").from_json(kSamples[1].json);

  std::vector<std::byte> garbage(64);
  for (std::size_t i = 0; i < garbage.size(); ++i)
    garbage[i] = static_cast<std::byte>(0xA5 ^ (i * 37));
  std::vector<std::byte> garbage_with_id = garbage;  // passes the identifier check, nothing else
  std::memcpy(garbage_with_id.data() + 4, "MDQT", 4);
  const std::vector<std::byte> truncated(valid.begin(), valid.end() - 16);
  std::vector<std::byte> bad_root = valid;
  bad_root[2] = std::byte{0x7f};  // root offset far past the end
  const std::vector<std::byte> tiny(3);
  const std::vector<std::byte> empty;

  const struct {
    const char* what;
    const std::vector<std::byte>* bytes;
    const char* expect;
  } cases[] = {
      {"empty", &empty, "0 bytes long"},
      {"tiny", &tiny, "3 bytes long"},
      {"garbage", &garbage, "file_identifier"},
      {"garbage with identifier", &garbage_with_id, "not a valid shmbus.md.Quote"},
      {"truncated", &truncated, "not a valid shmbus.md.Quote"},
      {"root offset", &bad_root, "root offset"},
      {"wrong identifier", &trade, "\"MDTR\" where shmbus.md.Quote has \"MDQT\""},
  };
  EXPECT_TRUE(quotes.verify(valid));
  for (const auto& k : cases) {
    SCOPED_TRACE(k.what);
    EXPECT_FALSE(quotes.verify(*k.bytes));
    const std::string msg = error_of([&] { (void)quotes.to_json(*k.bytes); }, Errc::InvalidMessage);
    EXPECT_NE(msg.find("shmbus.md.Quote"), std::string::npos) << msg;
    EXPECT_NE(msg.find(k.expect), std::string::npos) << msg;
  }
}

TEST(JsonCodec, NonFiniteNumbersStayStrictJson) {
  const JsonCodec c = codec("shmbus.md.Quote");
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(shmbus::md::CreateQuoteDirect(fbb, "X", 0, nullptr, 0, 0, 0,
                                           std::numeric_limits<double>::quiet_NaN(),
                                           -std::numeric_limits<double>::infinity(),
                                           std::numeric_limits<double>::infinity(), 1.0),
             shmbus::md::QuoteIdentifier());
  const std::string json = c.to_json(as_bytes(fbb));
  EXPECT_NE(json.find(R"("bid_px": "NaN")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("bid_qty": "-Infinity")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("ask_px": "Infinity")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("symbol": "X")"), std::string::npos) << json;
  EXPECT_EQ(json.find(": nan"), std::string::npos) << json;
  EXPECT_EQ(json.find(": inf"), std::string::npos) << json;
  // ...and the strings read back as the numbers.
  const auto back = c.from_json(json);
  const auto* q = shmbus::md::GetQuote(back.data());
  EXPECT_TRUE(std::isnan(q->bid_px()));
  EXPECT_EQ(q->bid_qty(), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(q->ask_px(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(c.to_json(back), json);
}

TEST(JsonCodec, StringsAreEscapedAndNonUtf8IsRefused) {
  const JsonCodec c = codec("shmbus.sys.Error");
  const std::string json = R"({"component": "a\"b\\c\n","pid": 0,"code": 0,"severity": "Unknown",)"
                           R"("message": "caf\u00E9 nan inf","ts": 0,"seq": 0})";
  EXPECT_EQ(c.to_json(c.from_json(json)), json);  // "nan"/"inf" inside strings are left alone

  flatbuffers::FlatBufferBuilder fbb;
  shmbus::sys::FinishErrorBuffer(
      fbb, shmbus::sys::CreateErrorDirect(fbb, "x", nullptr, 0, 0, nullptr,
                                          shmbus::common::Severity::Info, "\xff\xfe"));
  EXPECT_TRUE(c.verify(as_bytes(fbb)));  // the verifier does not look at UTF-8
  const std::string msg = error_of([&] { (void)c.to_json(as_bytes(fbb)); }, Errc::InvalidMessage);
  EXPECT_NE(msg.find("UTF-8"), std::string::npos) << msg;
  EXPECT_NE(msg.find("shmbus.sys.Error"), std::string::npos) << msg;
}

TEST(JsonCodec, MisalignedBufferIsReadCorrectly) {
  const JsonCodec c = codec("shmbus.md.Quote");
  const auto msg = c.from_json(kQuoteJson);
  std::vector<std::byte> storage(msg.size() + 1);
  std::memcpy(storage.data() + 1, msg.data(), msg.size());
  const std::span<const std::byte> odd(storage.data() + 1, msg.size());
  EXPECT_TRUE(c.verify(odd));
  EXPECT_EQ(c.to_json(odd), kQuoteJson);
}

TEST(JsonCodec, NonRootTableGetsNoIdentifier) {
  const JsonCodec c = codec("shmbus.risk.SymbolExposure");
  const std::string json =
      R"({"symbol": "AAPL","instrument_id": 1,"qty": 2.0,"notional": 3.0,"mark_px": 1.5})";
  const auto msg = c.from_json(json);
  EXPECT_FALSE(flatbuffers::BufferHasIdentifier(msg.data(), "RKEX"));
  EXPECT_EQ(c.to_json(msg), json);
  EXPECT_FALSE(codec("shmbus.risk.Exposure").verify(msg));
}

TEST(JsonCodec, ConstructionErrors) {
  const auto& bfbs = info("shmbus.md.BookUpdate").bfbs;
  std::string msg = error_of([&] { JsonCodec c(bfbs, "shmbus.md.Nope"); }, Errc::UnknownType);
  EXPECT_NE(msg.find("shmbus.md.BookUpdate"), std::string::npos) << msg;  // lists what there is
  msg = error_of([&] { JsonCodec c(bfbs, "shmbus.md.PriceLevel"); }, Errc::UnknownType);
  EXPECT_NE(msg.find("struct"), std::string::npos) << msg;
  const std::vector<std::uint8_t> garbage(100, 0x42);
  (void)error_of([&] { JsonCodec c(garbage, "shmbus.md.Quote"); }, Errc::InvalidMessage);
  msg = error_of([] { JsonCodec c(TypeInfo::raw()); }, Errc::UnknownType);
  EXPECT_NE(msg.find("raw"), std::string::npos) << msg;
}

TEST(JsonCodec, IsMoveOnly) {
  static_assert(!std::is_copy_constructible_v<JsonCodec>);
  static_assert(std::is_nothrow_move_constructible_v<JsonCodec>);
  static_assert(std::is_nothrow_move_assignable_v<JsonCodec>);
  JsonCodec a = codec("shmbus.md.Quote");
  JsonCodec b = std::move(a);
  EXPECT_EQ(b.type_name(), "shmbus.md.Quote");
  EXPECT_EQ(b.to_json(b.from_json(kQuoteJson)), kQuoteJson);
  a = codec("shmbus.md.Trade");
  EXPECT_EQ(a.type_name(), "shmbus.md.Trade");
}

}  // namespace

namespace {

using shmbus::test::without_blanks;  // to_json() compact: what append_json() must equal

std::string appended(const JsonCodec& c, std::span<const std::byte> m) {
  std::string out = "prefix:";
  c.append_json(m, out);
  EXPECT_EQ(out.rfind("prefix:", 0), 0u);
  return out.substr(7);
}

}  // namespace

// append_json() (the envelope's fast writer) prints exactly what to_json() prints, blanks
// aside: every root type with its defaults, and messages with what differs most (struct and
// table vectors, enums by name and unnamed values, signed enums, escapes and non-ASCII text,
// NaN, infinities, -0.0, huge and tiny doubles, the largest integers).
TEST(JsonCodec, AppendJsonEqualsToJsonWithoutBlanks) {
  for (const auto& name : SchemaRegistry::instance().type_names()) {
    const JsonCodec c = codec(name);
    std::vector<std::byte> m;
    try {
      m = c.from_json("{}");
    } catch (const Error&) {
      continue;  // a type with required fields: covered below where it matters
    }
    EXPECT_EQ(appended(c, m), without_blanks(c.to_json(m))) << name;
  }
  const std::pair<const char*, const char*> cases[] = {
      {"shmbus.md.Quote",
       R"({"symbol":"A\"B\\C\n\u00e9\u4e2d","seq":18446744073709551615,"bid_px":"NaN",
           "ask_px":"-Infinity","bid_qty":"Infinity","ask_qty":-0.0,"exchange_ts":1,
           "bid_orders":4294967295})"},
      {"shmbus.md.Quote", R"({"bid_px":1e300,"ask_px":1e-13,"bid_qty":0.1,"ask_qty":123456.789})"},
      {"shmbus.md.BookUpdate",
       R"({"symbol":"X","snapshot":true,"bids":[{"price":1.25,"qty":2,"order_count":3,
           "level":1,"action":"Change"},{"price":0.5,"qty":0,"order_count":0,"level":2,
           "action":7}],"asks":[],"depth":5})"},
      {"shmbus.risk.Exposure",
       R"({"account":"acc","symbols":[{"symbol":"S1","qty":-1.5},{"symbol":"S2"}],"ts":9})"},
      {"shmbus.strategy.Signal",
       R"({"strategy_id":"s","symbol":"y","direction":-1,"strength":0.75,"model":""})"},
      {"shmbus.sys.DeadLetter", R"({"original_topic":"t","payload":[0,1,255]})"},
  };
  for (const auto& [type, json] : cases) {
    const JsonCodec c = codec(type);
    std::vector<std::byte> m;
    ASSERT_NO_THROW(m = c.from_json(json)) << type << " " << json;
    EXPECT_EQ(appended(c, m), without_blanks(c.to_json(m))) << type << " " << json;
  }
}

// The fast writer refuses what to_json() refuses, with the same error, and appends nothing.
TEST(JsonCodec, AppendJsonRejectsWhatToJsonRejects) {
  const JsonCodec c = codec("shmbus.md.Quote");
  const std::vector<std::byte> garbage(40, std::byte{0x7f});
  std::string out = "kept";
  std::string fast, slow;
  try {
    c.append_json(garbage, out);
  } catch (const Error& e) {
    fast = e.what();
  }
  try {
    (void)c.to_json(garbage);
  } catch (const Error& e) {
    slow = e.what();
  }
  EXPECT_FALSE(fast.empty());
  EXPECT_EQ(fast, slow);
  EXPECT_EQ(out, "kept");
}

// ---------------------------------------------------------------- the fast writer, at random
//
// append_json() is a compiled writer of its own (json_codec.cpp), not FlatBuffers' text
// generator; to_json() is the generator. These tests make the two disagree if they can:
// random messages of every root type (every field type the schemas use, absent fields,
// enums by name and by unnamed value, doubles of every kind, strings that need escapes),
// and the double formatter against std::to_chars and printf on millions of values.

namespace {

// to_chars(fixed, decimals) trimmed as GenerateText trims: the reference of write_fixed().
std::string fixed_reference(double v, int decimals) {
  char buf[512];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, decimals);
  std::string s(buf, r.ptr);
  const auto last = s.find_last_not_of('0');
  if (last != std::string::npos) s.resize(last + (s[last] == '.' ? 2 : 1));
  return s;
}

// The same through printf (what GenerateText's stream uses), for a second opinion.
std::string printf_reference(double v, int decimals) {
  char buf[512];
  const int n = std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string s(buf, static_cast<std::size_t>(n));
  const auto last = s.find_last_not_of('0');
  if (last != std::string::npos) s.resize(last + (s[last] == '.' ? 2 : 1));
  return s;
}

std::string fast_fixed(double v, int decimals) {
  char buf[shmbus::detail::kFixedMaxChars];
  return std::string(buf, shmbus::detail::write_fixed(v, decimals, buf));
}

// Doubles of every kind: random bits, decimal-looking prices, exact ties at the last
// decimal, powers of two and ten at the edges of the fast path, subnormals, extremes.
class DoubleSource {
 public:
  explicit DoubleSource(std::uint64_t seed) : rng_(seed) {}
  double next() {
    switch (rng_() % 8) {
      case 0: {  // any finite bit pattern
        for (;;) {
          const std::uint64_t bits = rng_();
          double d;
          std::memcpy(&d, &bits, sizeof d);
          if (std::isfinite(d)) return d;
        }
      }
      case 1:  // a price with up to 6 decimals
        return static_cast<double>(static_cast<std::int64_t>(rng_() % 2'000'000'000) -
                                   1'000'000'000) /
               static_cast<double>(kTen[rng_() % 7]);
      case 2: {  // k * 2^-j: exact ties at the 12th (or 6th) decimal for j >= 13 (7)
        const int j = static_cast<int>(rng_() % 60);
        return std::ldexp(static_cast<double>(rng_() % 100'000) * ((rng_() & 1) ? 1 : -1), -j);
      }
      case 3: {  // a random magnitude 1e-20 .. 1e25
        const double mant = static_cast<double>(rng_() % 1'000'000'007) / 1e9;
        return mant * std::pow(10.0, static_cast<int>(rng_() % 46) - 20);
      }
      case 4:  // around the edges: 2^52, 2^53, 2^63, 2^64, 2^65
        return std::nextafter(std::ldexp(1.0, 52 + static_cast<int>(rng_() % 14)),
                              (rng_() & 1) ? 0.0 : 1e300) *
               ((rng_() & 1) ? 1 : -1);
      case 5: {  // subnormals and the smallest normals
        const std::uint64_t bits = rng_() % (std::uint64_t{1} << 53);
        double d;
        std::memcpy(&d, &bits, sizeof d);
        return d;
      }
      case 6:  // near a rounding boundary of 12 decimals: x.yyyyyyyyyyyy5 +- an ulp
        return std::nextafter(static_cast<double>(rng_() % 1'000'000) + 0.0000000000005 +
                                  static_cast<double>(rng_() % 1000) * 1e-12,
                              (rng_() & 1) ? 0.0 : 1e9);
      default: {
        static const double kEdges[] = {0.0,
                                        -0.0,
                                        0.1,
                                        0.2,
                                        0.3,
                                        1e21,
                                        1e22,
                                        -1e21,
                                        1e-13,
                                        5e-13,
                                        4.9999999999999e-13,
                                        -5e-13,
                                        0.0000000000005,
                                        0.0000005,
                                        0.9999999999995,
                                        0.99999999999949996,
                                        999999.9999995,
                                        123456.789,
                                        189.25,
                                        1.0 / 3.0,
                                        2.0 / 3.0,
                                        4503599627370495.5,
                                        4503599627370496.0,
                                        9007199254740993.0,
                                        18446744073709551615.0,
                                        18446744073709549568.0,
                                        std::numeric_limits<double>::max(),
                                        -std::numeric_limits<double>::max(),
                                        std::numeric_limits<double>::min(),
                                        std::numeric_limits<double>::denorm_min(),
                                        std::numeric_limits<double>::epsilon()};
        return kEdges[rng_() % std::size(kEdges)];
      }
    }
  }

 private:
  static constexpr std::int64_t kTen[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
  std::mt19937_64 rng_;
};

}  // namespace

TEST(JsonNumber, WriteFixedEqualsToCharsAndPrintf) {
  DoubleSource src(20261128);
  for (int i = 0; i < 1'000'000; ++i) {
    const double d = src.next();
    for (const int decimals : {12, 6}) {
      // Floats are printed as the float's value in double, 6 decimals.
      const double v = decimals == 6 ? static_cast<double>(static_cast<float>(d)) : d;
      if (!std::isfinite(v)) continue;
      const std::string fast = fast_fixed(v, decimals);
      ASSERT_EQ(fast, fixed_reference(v, decimals)) << std::hexfloat << v << " " << decimals;
      if (i % 16 == 0) {
        ASSERT_EQ(fast, printf_reference(v, decimals)) << std::hexfloat << v;
      }
    }
  }
  // Ties to even at the last decimal, both ways, and a carry into the whole part.
  EXPECT_EQ(fast_fixed(std::ldexp(1.0, -13), 12), "0.000122070312");      // ...3125: 2 stays
  EXPECT_EQ(fast_fixed(3 * std::ldexp(1.0, -13), 12), "0.000366210938");  // ...9375: 7 -> 8
  EXPECT_EQ(fast_fixed(0.99999999999999989, 12), "1.0");
  EXPECT_EQ(fast_fixed(-0.0, 12), "-0.0");
  EXPECT_EQ(fast_fixed(-1e-300, 12), "-0.0");
  EXPECT_EQ(fast_fixed(0.1, 12), "0.1");
  EXPECT_EQ(fast_fixed(1e21, 12), "1000000000000000000000.0");
  EXPECT_EQ(fast_fixed(static_cast<double>(0.1F), 6), "0.1");
}

namespace {

// A random JSON object of a reflection type, in the shape from_json() accepts.
class RandomJson {
 public:
  RandomJson(const reflection::Schema& schema, std::uint64_t seed)
      : schema_(schema), rng_(seed), doubles_(seed + 1) {}

  std::string object(const reflection::Object& obj, int depth) {
    std::string out = "{";
    bool first = true;
    for (const reflection::Field* f : *obj.fields()) {
      const reflection::BaseType bt = f->type()->base_type();
      if (f->deprecated() || bt == reflection::Union || bt == reflection::UType ||
          bt == reflection::Array)
        continue;
      // Structs need every field; a table's fields are left out at random (defaults).
      if (!obj.is_struct() && !f->required() && rng_() % 4 == 0) continue;
      if (!obj.is_struct() && !f->required() && depth > 2 &&
          (bt == reflection::Obj || bt == reflection::Vector))
        continue;
      if (!first) out += rng_() % 2 ? ", " : ",";
      first = false;
      out += "\"" + f->name()->str() + "\": " + value(*f->type(), bt, depth);
    }
    return out + "}";
  }

 private:
  std::string value(const reflection::Type& type, reflection::BaseType bt, int depth) {
    switch (bt) {
      case reflection::Bool:
        return rng_() % 2 ? "true" : "false";
      case reflection::Byte:
        return integer<std::int8_t>(type);
      case reflection::UByte:
        return integer<std::uint8_t>(type);
      case reflection::Short:
        return integer<std::int16_t>(type);
      case reflection::UShort:
        return integer<std::uint16_t>(type);
      case reflection::Int:
        return integer<std::int32_t>(type);
      case reflection::UInt:
        return integer<std::uint32_t>(type);
      case reflection::Long:
        return integer<std::int64_t>(type);
      case reflection::ULong:
        return integer<std::uint64_t>(type);
      case reflection::Float:
        return real(static_cast<double>(static_cast<float>(doubles_.next())), "%.9g");
      case reflection::Double:
        return real(doubles_.next(), "%.17g");
      case reflection::String:
        return string();
      case reflection::Obj:
        return object(*schema_.objects()->Get(static_cast<flatbuffers::uoffset_t>(type.index())),
                      depth + 1);
      case reflection::Vector: {
        std::string out = "[";
        const std::size_t n = rng_() % (depth > 1 ? 2 : 5);
        for (std::size_t i = 0; i < n; ++i) {
          if (i != 0) out += ",";
          out += value(type, type.element(), depth);
        }
        return out + "]";
      }
      default:
        ADD_FAILURE() << "type " << reflection::EnumNameBaseType(bt) << " not generated";
        return "0";
    }
  }

  // Any value of the type; for an enum, mostly one of its names, else any number.
  template <typename T>
  std::string integer(const reflection::Type& type) {
    if (type.index() >= 0 && rng_() % 4 != 0) {
      const auto* e = schema_.enums()->Get(static_cast<flatbuffers::uoffset_t>(type.index()));
      const auto* vals = e->values();
      return "\"" +
             vals->Get(static_cast<flatbuffers::uoffset_t>(rng_() % vals->size()))->name()->str() +
             "\"";
    }
    const std::uint64_t r = rng_();
    switch (rng_() % 3) {
      case 0:
        return std::to_string(static_cast<T>(r % 10));
      case 1:
        return std::to_string(std::numeric_limits<T>::min() + static_cast<T>(r % 3));
      default: {
        T v;
        std::memcpy(&v, &r, sizeof v);
        return std::to_string(+v);
      }
    }
  }

  static std::string real(double v, const char* format) {
    if (std::isnan(v)) return "\"NaN\"";
    if (std::isinf(v)) return v < 0 ? "\"-Infinity\"" : "\"Infinity\"";
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
  }

  // Valid UTF-8 text as a JSON string: plain ASCII runs (of every length, so that the
  // 8-byte scan meets a special character at every position), quotes, backslashes,
  // control characters, DEL, 2-, 3- and 4-byte characters, raw or as \u escapes.
  std::string string() {
    std::string out = "\"";
    const std::size_t n = rng_() % 40;
    // Often one kind of special character only, among plain ASCII: each is then the only
    // reason the string cannot be copied as it is.
    const std::uint64_t only = rng_() % 16;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t pick = rng_() % 12;
      switch (only < 8 && pick < 8 ? only : pick) {
        case 0:
          out += "\\\"";
          break;
        case 1:
          out += "\\\\";
          break;
        case 2: {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(rng_() % 0x20));
          out += esc;
          break;
        }
        case 3:
          out += "\x7f";
          break;
        case 4:
          out += "\xc3\xa9";  // e acute
          break;
        case 5:
          out += "\xe4\xb8\xad";  // a CJK character
          break;
        case 6:
          out += "\xf0\x9f\x98\x80";  // an emoji (a surrogate pair in \u form)
          break;
        case 7:
          out += "\\u00e9\\ud83d\\ude00/\\/\\n\\t";
          break;
        default:
          out += static_cast<char>(0x20 + rng_() % 0x5f);                 // printable ASCII...
          if (out.back() == '"' || out.back() == '\\') out.back() = 'x';  // ...unescaped
      }
    }
    return out + "\"";
  }

  const reflection::Schema& schema_;
  std::mt19937_64 rng_;
  DoubleSource doubles_;
};

}  // namespace

// Every root type of schemas/, 400 random messages each: append_json() (the envelope's
// writer) gives exactly to_json()'s text (FlatBuffers' generator) without its blanks.
TEST(JsonCodec, AppendJsonEqualsToJsonOnRandomMessagesOfEverySchema) {
  std::uint64_t seed = 1;
  std::size_t compared = 0;
  for (const auto& name : SchemaRegistry::instance().type_names()) {
    const TypeInfo& type = info(name);
    const auto* schema = reflection::GetSchema(type.bfbs.data());
    const reflection::Object& obj = object_of(type);
    const JsonCodec c = codec(name);
    RandomJson gen(*schema, seed++);
    for (int i = 0; i < 400; ++i) {
      const std::string json = gen.object(obj, 0);
      std::vector<std::byte> m;
      try {
        m = c.from_json(json);
      } catch (const Error& e) {
        ADD_FAILURE() << name << ": the generator wrote JSON the codec refuses: " << e.what()
                      << "\n"
                      << json;
        continue;
      }
      ASSERT_EQ(appended(c, m), without_blanks(c.to_json(m))) << name << "\n" << json;
      ++compared;
    }
  }
  EXPECT_GE(compared, 400U * 14);
}

namespace {

// What Verifier::verify() must answer: its header checks, then flatbuffers::Verify by
// reflection (the verifier's compiled checks must agree with it).
bool reference_verify(const TypeInfo& type, std::span<const std::byte> m) {
  const auto* schema = reflection::GetSchema(type.bfbs.data());
  const reflection::Object& obj = object_of(type);
  if (m.size() < 8) return false;
  const auto* buf = reinterpret_cast<const std::uint8_t*>(m.data());
  const std::vector<std::uint8_t> aligned(buf, buf + m.size());
  const auto root = flatbuffers::ReadScalar<flatbuffers::uoffset_t>(aligned.data());
  if (schema->root_table() == &obj && schema->file_ident() != nullptr &&
      schema->file_ident()->size() != 0 &&
      std::memcmp(aligned.data() + 4, schema->file_ident()->c_str(), 4) != 0)
    return false;
  if (root > m.size() - 4 || root % 4 != 0) return false;
  return flatbuffers::Verify(*schema, obj, aligned.data(), m.size());
}

// True if a table of `obj` (or one it reaches) has a table-typed field: FlatBuffers 2.0.8's
// reflection Verify follows such a field's offset without checking it first (an
// out-of-bounds read on a damaged buffer, a crash under ASan), so it cannot be the reference
// there. The compiled checks verify the offset first (VerifierRefusesAChildTableOffset...).
bool reaches_table_field(const reflection::Schema& schema, const reflection::Object& obj,
                         std::set<const reflection::Object*>& seen) {
  if (!seen.insert(&obj).second) return false;
  for (const reflection::Field* f : *obj.fields()) {
    const reflection::Type& t = *f->type();
    const bool obj_field = t.base_type() == reflection::Obj;
    const bool obj_vector = t.base_type() == reflection::Vector && t.element() == reflection::Obj;
    if (!obj_field && !obj_vector) continue;
    const auto* child = schema.objects()->Get(static_cast<flatbuffers::uoffset_t>(t.index()));
    if (obj_field && !child->is_struct()) return true;
    if (reaches_table_field(schema, *child, seen)) return true;
  }
  return false;
}

}  // namespace

// The verifier's compiled checks pass and refuse exactly what flatbuffers::Verify does, on
// random messages of every root type and on damaged copies of them (bytes flipped, set to
// 0 or 0xff, offsets and vtable entries zeroed, cut short).
TEST(Verifier, CompiledChecksAgreeWithReflectionOnDamagedMessages) {
  std::mt19937_64 rng(7);
  std::size_t valid = 0;
  std::size_t refused = 0;
  std::uint64_t seed = 100;
  for (const auto& name : SchemaRegistry::instance().type_names()) {
    const TypeInfo& type = info(name);
    const auto* schema = reflection::GetSchema(type.bfbs.data());
    std::set<const reflection::Object*> seen;
    if (reaches_table_field(*schema, object_of(type), seen)) continue;
    const JsonCodec c = codec(name);
    const shmbus::Verifier verifier(type);
    RandomJson gen(*schema, seed++);
    for (int i = 0; i < 100; ++i) {
      const std::vector<std::byte> good = c.from_json(gen.object(object_of(type), 0));
      ASSERT_TRUE(verifier.verify(good)) << name;
      for (int k = 0; k < 40; ++k) {
        std::vector<std::byte> bad = good;
        const std::size_t at = rng() % bad.size();
        switch (rng() % 5) {
          case 0:
            bad[at] ^= static_cast<std::byte>(1U << (rng() % 8));
            break;
          case 1:
            bad[at] = std::byte{0};
            break;
          case 2:
            bad[at] = std::byte{0xff};
            break;
          case 3:  // a 2-byte word zeroed: a vtable entry gone (absent, or required missing)
            bad[at & ~std::size_t{1}] = std::byte{0};
            if ((at | 1) < bad.size()) bad[at | 1] = std::byte{0};
            break;
          default:
            bad.resize(at);
        }
        const bool expected = reference_verify(type, bad);
        ASSERT_EQ(verifier.verify(bad), expected) << name << " message " << i << " damage " << k;
        (expected ? valid : refused) += 1;
      }
    }
  }
  // Both answers came often enough for the comparison to mean something.
  EXPECT_GT(valid, 1000U);
  EXPECT_GT(refused, 1000U);
}

// A child table's offset pointing out of the buffer is refused before it is followed (FlatBuffers
// 2.0.8's reflection Verify, which the verifier used before, read through it: a crash under
// ASan on such a buffer).
TEST(Verifier, RefusesAChildTableOffsetOutsideTheBuffer) {
  const auto bfbs = bfbs_of(R"(
    namespace test.child;
    table Child { x: int; }
    table Parent { name: string; c: Child; n: long; }
    root_type Parent;
  )");
  const JsonCodec c(bfbs, "test.child.Parent");
  const shmbus::Verifier verifier(bfbs, "test.child.Parent");
  const std::vector<std::byte> good = c.from_json(R"({"name": "p", "c": {"x": 7}, "n": 3})");
  ASSERT_TRUE(verifier.verify(good));
  EXPECT_EQ(c.to_json(good), R"({"name": "p","c": {"x": 7},"n": 3})");
  std::string appended_text;
  c.append_json(good, appended_text);
  EXPECT_EQ(appended_text, R"({"name":"p","c":{"x":7},"n":3})");
  // Field c (id 1) is at vtable slot 6: point its offset far past the end, then just past it.
  const auto* root = flatbuffers::GetRoot<flatbuffers::Table>(good.data());
  const flatbuffers::voffset_t at = root->GetOptionalFieldOffset(6);
  ASSERT_NE(at, 0);
  const auto field = static_cast<std::size_t>(reinterpret_cast<const std::uint8_t*>(root) -
                                              reinterpret_cast<const std::uint8_t*>(good.data())) +
                     at;
  for (const flatbuffers::uoffset_t bad_offset :
       {flatbuffers::uoffset_t{0x7ffffff0}, static_cast<flatbuffers::uoffset_t>(good.size())}) {
    std::vector<std::byte> bad = good;
    std::memcpy(bad.data() + field, &bad_offset, sizeof bad_offset);
    EXPECT_FALSE(verifier.verify(bad)) << bad_offset;
    const std::string msg = error_of([&] { (void)c.to_json(bad); }, Errc::InvalidMessage);
    EXPECT_NE(msg.find("FlatBuffers verifier"), std::string::npos) << msg;
  }
  // The field's own 4 bytes cut off: refused as well.
  std::vector<std::byte> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(field + 2));
  EXPECT_FALSE(verifier.verify(cut));
}
