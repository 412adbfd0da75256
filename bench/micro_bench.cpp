// shmbus micro-benchmarks (Google Benchmark): the cost of each hot-path
// operation on one thread, with everything in the local cache. They say
// what the library adds per message; the cross-process latency (bus-bench)
// says what a message costs between two processes.
//
// Every benchmark checks what it measures inside the loop (payload content,
// delivery count, JSON round trip) and fails with SkipWithError otherwise.
//
//   shmbus-microbench --benchmark_filter=Publish --benchmark_min_time=1
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <flatbuffers/flatbuffers.h>

#include <shmbus/shmbus.hpp>

#include "harness/util.hpp"

namespace {

using busbench::QuotePayload;
using busbench::RawPayload;

// A bus of this process's own, removed at exit.
class BenchBus {
 public:
  BenchBus() : name_("mb" + std::to_string(::getpid())), bus_(shmbus::Bus::open_or_create(name_)) {}
  ~BenchBus() { shmbus::Bus::remove(name_); }
  BenchBus(const BenchBus&) = delete;
  BenchBus& operator=(const BenchBus&) = delete;

  shmbus::Topic topic(const std::string& name, shmbus::Policy policy, std::uint32_t slot_size,
                      std::uint32_t slot_count = 4096, bool quote = false) {
    shmbus::TopicConfig c;
    c.policy = policy;
    c.slot_size = slot_size;
    c.slot_count = slot_count;
    if (quote) c.type = shmbus::type_of<shmbus::md::Quote>();
    return bus_.topic(name, c);
  }

 private:
  std::string name_;
  shmbus::Bus bus_;
};

BenchBus& bench_bus() {
  static BenchBus b;
  return b;
}

std::string unique_topic(const char* what) {
  static unsigned n = 0;
  return std::string(what) + "." + std::to_string(n++);
}

// ------------------------------------------------------------------ publish

// Claim + fill 32 B in place + commit, on a lossy topic (nobody subscribed:
// the producer's own cost).
void BM_Publish_Raw32_Claim(benchmark::State& state) {
  shmbus::Publisher pub(bench_bus().topic(unique_topic("pub32"), shmbus::Policy::Lossy, 64));
  RawPayload p(32);
  std::uint64_t i = 0;
  for (auto _ : state) {
    p.prepare(i++, false);
    shmbus::Claim c = pub.try_claim(p.size());
    if (!c) {
      state.SkipWithError("try_claim failed");
      break;
    }
    p.write(c.data());
    c.commit(p.size());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * 32);
}
BENCHMARK(BM_Publish_Raw32_Claim);

// try_publish(span): the copying variant of the same.
void BM_Publish_Raw32_Copy(benchmark::State& state) {
  shmbus::Publisher pub(bench_bus().topic(unique_topic("pub32c"), shmbus::Policy::Lossy, 64));
  RawPayload p(32);
  alignas(64) std::byte buf[32];
  std::uint64_t i = 0;
  for (auto _ : state) {
    p.prepare(i++, false);
    p.write(buf);
    if (pub.try_publish(std::span<const std::byte>(buf, 32)) != shmbus::PublishResult::Ok) {
      state.SkipWithError("try_publish failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Publish_Raw32_Copy);

// Build a Quote with FlatBuffers, then try_publish(builder) (copy into the slot).
void BM_Publish_Quote_BuildAndPublish(benchmark::State& state) {
  shmbus::Publisher pub(
      bench_bus().topic(unique_topic("pubq"), shmbus::Policy::Lossy, 256, 4096, true));
  QuotePayload q;
  std::uint64_t i = 0;
  for (auto _ : state) {
    q.prepare(i++, false);
    if (pub.try_publish(q.builder()) != shmbus::PublishResult::Ok) {
      state.SkipWithError("try_publish failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Publish_Quote_BuildAndPublish);

// The publish part alone: a Quote built once, published again and again.
void BM_Publish_Quote_PublishOnly(benchmark::State& state) {
  shmbus::Publisher pub(
      bench_bus().topic(unique_topic("pubq1"), shmbus::Policy::Lossy, 256, 4096, true));
  QuotePayload q;
  q.prepare(1, false);
  for (auto _ : state) {
    if (pub.try_publish(q.builder()) != shmbus::PublishResult::Ok) {
      state.SkipWithError("try_publish failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Publish_Quote_PublishOnly);

// The build part alone: FlatBufferBuilder::Clear + CreateQuoteDirect + Finish.
void BM_Quote_Build(benchmark::State& state) {
  QuotePayload q;
  std::uint64_t i = 0;
  for (auto _ : state) {
    q.prepare(i++, false);
    benchmark::DoNotOptimize(q.builder().GetBufferPointer());
  }
  if (q.size() == 0) state.SkipWithError("empty Quote");
}
BENCHMARK(BM_Quote_Build);

// Reading every field of a Quote and comparing it with what was sent.
void BM_Quote_ReadFields(benchmark::State& state) {
  QuotePayload q;
  q.prepare(7, false);
  std::vector<std::byte> bytes(q.size());
  q.write(bytes.data());
  for (auto _ : state) {
    const bool ok = q.check(bytes, 7, false);
    if (!ok) {
      state.SkipWithError("Quote fields read back wrong");
      break;
    }
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_Quote_ReadFields);

// ------------------------------------------------------------------ poll

// poll() on a topic with nothing published: what a quiet topic costs a
// spinning consumer per check.
void BM_Poll_Empty(benchmark::State& state) {
  shmbus::Topic t = bench_bus().topic(unique_topic("empty"), shmbus::Policy::Lossy, 64);
  shmbus::Subscriber sub(t);
  std::uint64_t got = 0;
  for (auto _ : state) {
    got += sub.poll([](const shmbus::Message&) {}, 1);
  }
  if (got != 0) state.SkipWithError("a message appeared on an empty topic");
}
BENCHMARK(BM_Poll_Empty);

// poll() with a message ready: one 32 B message delivered (and its content
// checked) per iteration. The ring is refilled, untimed, whenever it runs
// dry. Lossy: the copy-out path (copy, then re-validate the seqlock);
// reliable: the in-place path.
void poll_ready(benchmark::State& state, shmbus::Policy policy) {
  constexpr std::uint32_t kSlots = 4096;
  shmbus::Topic t = bench_bus().topic(unique_topic("ready"), policy, 64, kSlots);
  shmbus::Publisher pub(t);
  shmbus::Subscriber sub(t);
  RawPayload p(32);
  std::uint64_t next_pub = 0, next_read = 0, bad = 0, left = 0;
  for (auto _ : state) {
    if (left == 0) {
      state.PauseTiming();
      for (std::uint32_t k = 0; k < kSlots; ++k) {
        p.prepare(next_pub++, false);
        shmbus::Claim c = pub.try_claim(p.size());
        if (!c) break;
        p.write(c.data());
        c.commit(p.size());
        ++left;
      }
      state.ResumeTiming();
    }
    const std::size_t n = sub.poll(
        [&](const shmbus::Message& m) { bad += p.check(m.data, next_read, false) ? 0 : 1; }, 1);
    if (n != 1) {
      state.SkipWithError("no message ready");
      break;
    }
    ++next_read;
    --left;
  }
  if (bad != 0) state.SkipWithError("wrong payload delivered");
  state.SetItemsProcessed(state.iterations());
}
void BM_Poll_Ready_Lossy32(benchmark::State& state) {
  poll_ready(state, shmbus::Policy::Lossy);
}
void BM_Poll_Ready_Reliable32(benchmark::State& state) {
  poll_ready(state, shmbus::Policy::Reliable);
}
BENCHMARK(BM_Poll_Ready_Lossy32);
BENCHMARK(BM_Poll_Ready_Reliable32);

// ------------------------------------------------------------------ JSON

std::string quote_json() {
  return R"({"symbol":"AAPL","instrument_id":265598,"venue":"XNAS","exchange_ts":1700000000000000000,)"
         R"("receive_ts":1700000000000000500,"seq":42,"bid_px":189.25,"bid_qty":300.0,"ask_px":189.26,)"
         R"("ask_qty":200.0,"bid_orders":3,"ask_orders":2})";
}

void BM_Json_To_FlatBuffer_Quote(benchmark::State& state) {
  shmbus::JsonCodec codec(shmbus::type_of<shmbus::md::Quote>());
  const std::string json = quote_json();
  for (auto _ : state) {
    const std::vector<std::byte> buf = codec.from_json(json);
    const auto* q = flatbuffers::GetRoot<shmbus::md::Quote>(buf.data());
    if (q->seq() != 42 || q->bid_px() != 189.25) {
      state.SkipWithError("JSON -> FlatBuffer gave wrong fields");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Json_To_FlatBuffer_Quote);

void BM_FlatBuffer_To_Json_Quote(benchmark::State& state) {
  shmbus::JsonCodec codec(shmbus::type_of<shmbus::md::Quote>());
  const std::vector<std::byte> buf = codec.from_json(quote_json());
  for (auto _ : state) {
    const std::string json = codec.to_json(buf);
    if (json.find("\"seq\":42") == std::string::npos &&
        json.find("\"seq\": 42") == std::string::npos) {
      state.SkipWithError("FlatBuffer -> JSON lost a field");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FlatBuffer_To_Json_Quote);

}  // namespace

BENCHMARK_MAIN();
