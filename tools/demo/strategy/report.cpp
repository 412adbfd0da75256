#include "report.hpp"

#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include <shmbus/error.hpp>

namespace demo::strategy {
namespace {

nlohmann::json latency_json(const shmbus::Histogram& h) {
  nlohmann::json j;
  j["count"] = h.count();
  j["min"] = h.min();
  j["p50"] = h.percentile(50);
  j["p90"] = h.percentile(90);
  j["p99"] = h.percentile(99);
  j["p99_9"] = h.percentile(99.9);
  j["max"] = h.max();
  j["mean"] = h.mean();
  j["relative_error"] = shmbus::Histogram::kRelativeError;
  return j;
}

}  // namespace

std::string human_ns(std::uint64_t ns) {
  char buf[32];
  const auto v = static_cast<double>(ns);
  if (ns < 1'000)
    std::snprintf(buf, sizeof buf, "%llu ns", static_cast<unsigned long long>(ns));
  else if (ns < 1'000'000)
    std::snprintf(buf, sizeof buf, "%.2f us", v / 1e3);
  else if (ns < 1'000'000'000)
    std::snprintf(buf, sizeof buf, "%.2f ms", v / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.2f s", v / 1e9);
  return buf;
}

void print_second(int second, const Window& w, const Window& total) {
  const shmbus::Histogram& h = w.latency;
  std::printf(
      "strategy: %3d s  recv %8llu/s (q %llu, t %llu)  drops q %llu t %llu  signals %llu (total "
      "%llu)  "
      "latency p50 %s p99 %s max %s | run p50 %s p99 %s max %s\n",
      second, static_cast<unsigned long long>(w.quotes + w.trades),
      static_cast<unsigned long long>(w.quotes), static_cast<unsigned long long>(w.trades),
      static_cast<unsigned long long>(w.quote_drops),
      static_cast<unsigned long long>(w.trade_drops), static_cast<unsigned long long>(w.signals),
      static_cast<unsigned long long>(total.signals), human_ns(h.percentile(50)).c_str(),
      human_ns(h.percentile(99)).c_str(), human_ns(h.max()).c_str(),
      human_ns(total.latency.percentile(50)).c_str(),
      human_ns(total.latency.percentile(99)).c_str(), human_ns(total.latency.max()).c_str());
}

void print_summary(const RunSummary& r) {
  const Window& total = *r.total;
  const Model& model = *r.model;
  const double elapsed = r.elapsed_s;
  const std::uint64_t received = total.quotes + total.trades;
  const shmbus::Histogram& h = total.latency;
  std::printf(
      "strategy: done after %.2f s%s: received %llu messages (%llu quotes, %llu trades), %.0f "
      "msg/s average\n",
      elapsed, r.stopped_by_signal ? " (signal)" : "", static_cast<unsigned long long>(received),
      static_cast<unsigned long long>(total.quotes), static_cast<unsigned long long>(total.trades),
      elapsed > 0 ? static_cast<double>(received) / elapsed : 0.0);
  const auto seqs = [](const SeqRange& s) {
    return s.first == 0 ? std::string("none")
                        : std::to_string(s.first) + ".." + std::to_string(s.last);
  };
  std::printf(
      "strategy: drops: %s %llu messages in %llu gaps (seq %s), %s %llu messages in %llu gaps (seq "
      "%s); "
      "bus total %llu\n",
      kQuotesTopic.data(), static_cast<unsigned long long>(total.quote_drops),
      static_cast<unsigned long long>(total.quote_gaps), seqs(model.quote_seq()).c_str(),
      kTradesTopic.data(), static_cast<unsigned long long>(total.trade_drops),
      static_cast<unsigned long long>(total.trade_gaps), seqs(model.trade_seq()).c_str(),
      static_cast<unsigned long long>(r.bus_drops));
  std::printf("strategy: signals published %llu on %s (not published: %s)\n",
              static_cast<unsigned long long>(total.signals), kSignalsTopic.data(),
              total.signal_failures.breakdown().c_str());
  std::printf(
      "strategy: latency publish->handler over %llu messages: p50 %s  p90 %s  p99 %s  p99.9 %s  "
      "max %s  "
      "(mean %s, min %s; histogram error <= %.2f%%)\n",
      static_cast<unsigned long long>(h.count()), human_ns(h.percentile(50)).c_str(),
      human_ns(h.percentile(90)).c_str(), human_ns(h.percentile(99)).c_str(),
      human_ns(h.percentile(99.9)).c_str(), human_ns(h.max()).c_str(),
      human_ns(static_cast<std::uint64_t>(h.mean())).c_str(), human_ns(h.min()).c_str(),
      shmbus::Histogram::kRelativeError * 100);
  if (total.negative_ages != 0) {
    std::printf(
        "strategy: %llu messages were read at a bus time before their publish stamp, by at most %s "
        "(clock reads on two CPUs); counted as 0 ns\n",
        static_cast<unsigned long long>(total.negative_ages),
        human_ns(total.most_negative_ns).c_str());
  }
  for (const SymbolState& s : model.states()) {
    std::printf(
        "strategy:   %-8s mid %10.4f  ewma %10.4f (%+6.2f bps)  vwap %10.4f  quotes %9llu  trades "
        "%8llu  "
        "signals %5llu  view %s\n",
        s.symbol.c_str(), s.mid, s.ewma, s.deviation_bps(), s.vwap(),
        static_cast<unsigned long long>(s.quotes), static_cast<unsigned long long>(s.trades),
        static_cast<unsigned long long>(s.signals),
        s.position > 0   ? "long"
        : s.position < 0 ? "short"
                         : "flat");
  }
}

void write_json(const RunSummary& r) {
  const Options& o = *r.options;
  const Window& total = *r.total;
  const Model& model = *r.model;
  const double elapsed = r.elapsed_s;
  const std::uint64_t received = total.quotes + total.trades;
  nlohmann::json j;
  j["bus"] = o.bus;
  j["duration_s"] = elapsed;
  j["stopped_by_signal"] = r.stopped_by_signal;
  j["idle"] = o.idle;
  j["clock"] = r.tsc_clock ? "tsc" : "realtime";
  j["received"] = {{"total", received},
                   {std::string(kQuotesTopic), total.quotes},
                   {std::string(kTradesTopic), total.trades}};
  j["rate_msgs_per_s"] = elapsed > 0 ? static_cast<double>(received) / elapsed : 0.0;
  j["drops"] = {
      {"total", total.quote_drops + total.trade_drops},
      {std::string(kQuotesTopic), {{"messages", total.quote_drops}, {"gaps", total.quote_gaps}}},
      {std::string(kTradesTopic), {{"messages", total.trade_drops}, {"gaps", total.trade_gaps}}}};
  const auto seq_json = [](const SeqRange& s) {
    return nlohmann::json{{"first", s.first}, {"last", s.last}};
  };
  j["seq"] = {{std::string(kQuotesTopic), seq_json(model.quote_seq())},
              {std::string(kTradesTopic), seq_json(model.trade_seq())}};
  nlohmann::json failures = nlohmann::json::object();
  const auto& by_result = total.signal_failures.by_result;
  for (std::size_t i = 0; i < by_result.size(); ++i) {
    if (by_result[i] != 0) failures[PublishFailures::reason(i)] = by_result[i];
  }
  j["signals"] = {{"published", total.signals},
                  {"not_published", total.signal_failures.total()},
                  {"failures", failures}};
  j["latency_ns"] = latency_json(total.latency);
  j["negative_ages"] = {{"count", total.negative_ages},
                        {"most_negative_ns", total.most_negative_ns}};
  j["params"] = {{"ewma_halflife_s", o.ewma_halflife}, {"threshold_bps", o.threshold_bps}};
  nlohmann::json symbols = nlohmann::json::array();
  for (const SymbolState& s : model.states()) {
    symbols.push_back({{"symbol", s.symbol},
                       {"mid", s.mid},
                       {"ewma", s.ewma},
                       {"vwap", s.vwap()},
                       {"quotes", s.quotes},
                       {"trades", s.trades},
                       {"signals", s.signals},
                       {"position", s.position}});
  }
  j["symbols"] = symbols;
  std::ofstream out(o.json);
  out << j.dump(2) << '\n';
  out.close();
  if (!out) {
    throw shmbus::Error(shmbus::Errc::SystemError,
                        "cannot write the JSON summary to '" + o.json + "'");
  }
}

}  // namespace demo::strategy
