// sio-bench-source: the bus side of bench/socketio/run.sh. Publishes md.Quote messages on
// md.quotes of BUS at RATE per second in 1 ms ticks, sleeping between ticks, the way the Node
// and Python reference servers generate their events in-process (a spinning pacer would take
// the CPU the bridge runs on). The bridge stamps nothing: an event's "ts" is the bus publish
// time (CLOCK_REALTIME ns), so the load generator measures bus -> client.
//   sio-bench-source --bus B --rate R --seconds S
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <thread>

#include <shmbus/msg/md_quote_generated.h>
#include <shmbus/core/bus.hpp>
#include <shmbus/core/publisher.hpp>

int main(int argc, char** argv) {
  CLI::App app{"Publishes md.quotes at a fixed rate for the Socket.IO fan-out benchmark"};
  std::string bus_name;
  double rate = 1000;
  double seconds = 10;
  app.add_option("--bus", bus_name, "Bus name")->required();
  app.add_option("--rate", rate, "Messages per second")->capture_default_str();
  app.add_option("--seconds", seconds, "How long")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  shmbus::Bus bus = shmbus::Bus::open(bus_name);
  shmbus::TopicConfig tc;
  tc.slot_size = 256;
  tc.slot_count = 65536;
  shmbus::Publisher pub = bus.publisher<shmbus::md::Quote>("md.quotes", tc);
  flatbuffers::FlatBufferBuilder fbb(256);
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  std::uint64_t sent = 0;
  std::uint64_t refused = 0;
  for (auto now = start; now < end; now = std::chrono::steady_clock::now()) {
    const auto due =
        static_cast<std::uint64_t>(std::chrono::duration<double>(now - start).count() * rate);
    for (; sent < due; ++sent) {
      fbb.Clear();
      const auto sym = fbb.CreateString("AAPL");
      shmbus::md::QuoteBuilder b(fbb);
      b.add_symbol(sym);
      b.add_seq(sent);
      b.add_bid_px(189.91);
      b.add_bid_qty(300);
      b.add_ask_px(189.93);
      b.add_ask_qty(200);
      fbb.Finish(b.Finish(), shmbus::md::QuoteIdentifier());
      if (pub.try_publish(fbb) != shmbus::PublishResult::Ok) ++refused;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::printf("{\"published\":%llu,\"refused\":%llu}\n", static_cast<unsigned long long>(sent),
              static_cast<unsigned long long>(refused));
  return 0;
}
