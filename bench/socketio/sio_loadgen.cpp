// sio-loadgen: a light Socket.IO (Engine.IO v4, WebSocket only) load generator for the fan-out
// benchmark (bench/socketio/run.sh). N clients on one thread, Beast WebSocket streams, no JSON
// parsing: an event frame is counted and its "ts" (CLOCK_REALTIME ns, stamped by the source) read
// with a substring search, so that one core of this program can take far more frames per second
// than the servers it measures (its own CPU use is reported next to every figure).
//
//   sio-loadgen --port P --clients N --seconds S [--warmup W] [--subscribe TOPIC]
// Prints one JSON line: clients connected, frames delivered in the measured window, delivered
// msg/s, latency p50/p99/max (us, source stamp -> frame read), this process's CPU (% of a core).
#include <utility>  // before Asio (g++ 12 + C++20)

#include <sys/resource.h>
#include <time.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

std::int64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Latency in 1 us buckets up to 2 s (larger values land in the last bucket).
struct Histogram {
  std::vector<std::uint64_t> buckets = std::vector<std::uint64_t>(2'000'001, 0);
  std::uint64_t count = 0;
  void add(std::int64_t ns) {
    const auto us = static_cast<std::size_t>(ns < 0 ? 0 : ns / 1000);
    ++buckets[std::min(us, buckets.size() - 1)];
    ++count;
  }
  [[nodiscard]] double percentile(double p) const {
    if (count == 0) return -1;
    const auto want = static_cast<std::uint64_t>(p * static_cast<double>(count - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets.size(); ++i) {
      seen += buckets[i];
      if (seen >= want) return static_cast<double>(i);
    }
    return static_cast<double>(buckets.size() - 1);
  }
};

struct Shared {
  std::string port;
  std::string subscribe;  // empty: the server pushes to every client without a request
  bool measuring = false;
  std::uint64_t delivered = 0;
  std::uint64_t connected = 0;
  std::uint64_t errors = 0;
  Histogram latency;
};

class Client : public std::enable_shared_from_this<Client> {
 public:
  Client(asio::io_context& io, Shared& s) : ws_(io), s_(s) {}

  void start(const tcp::endpoint& ep) {
    beast::get_lowest_layer(ws_).async_connect(ep, [self = shared_from_this()](auto ec) {
      if (ec) return self->fail();
      beast::get_lowest_layer(self->ws_).socket().set_option(tcp::no_delay(true));
      self->ws_.async_handshake("127.0.0.1:" + self->s_.port,
                                "/socket.io/?EIO=4&transport=websocket", [self](auto ec2) {
                                  if (ec2) return self->fail();
                                  self->read();
                                });
    });
  }

 private:
  void fail() { ++s_.errors; }

  void read() {
    ws_.async_read(buf_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->fail();
      self->on_frame();
      self->buf_.consume(self->buf_.size());
      self->read();
    });
  }

  void on_frame() {
    const auto data = buf_.cdata();
    const std::string_view f(static_cast<const char*>(data.data()), data.size());
    if (f.size() >= 2 && f[0] == '4' && f[1] == '2') {
      if (!s_.measuring) return;
      ++s_.delivered;
      const auto at = f.find("\"ts\":");
      if (at == std::string_view::npos) return;
      std::int64_t ts = 0;
      const char* b = f.data() + at + 5;
      if (std::from_chars(b, f.data() + f.size(), ts).ec == std::errc()) {
        s_.latency.add(realtime_ns() - ts);
      }
    } else if (f == "2") {
      write("3");
    } else if (!f.empty() && f[0] == '0') {
      write("40");
    } else if (f.size() >= 2 && f[0] == '4' && f[1] == '0') {
      ++s_.connected;
      if (!s_.subscribe.empty()) write("42[\"subscribe\",[\"" + s_.subscribe + "\"]]");
    }
  }

  void write(std::string text) {
    out_.push_back(std::move(text));
    if (out_.size() == 1) flush();
  }
  void flush() {
    ws_.text(true);
    ws_.async_write(asio::buffer(out_.front()),
                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                      if (ec) return self->fail();
                      self->out_.pop_front();
                      if (!self->out_.empty()) self->flush();
                    });
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buf_;
  std::deque<std::string> out_;
  Shared& s_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Socket.IO fan-out load generator (WebSocket clients, delivered msg/s, latency)"};
  int port = 0;
  int clients = 1;
  double seconds = 10;
  double warmup = 2;
  Shared s;
  app.add_option("--port", port, "Server port on 127.0.0.1")->required();
  app.add_option("--clients", clients, "WebSocket clients")->capture_default_str();
  app.add_option("--seconds", seconds, "Measured window")->capture_default_str();
  app.add_option("--warmup", warmup, "Seconds after all clients connected, not measured")
      ->capture_default_str();
  app.add_option("--subscribe", s.subscribe, "Topic to subscribe to (bus-bridge); none: pushed");
  CLI11_PARSE(app, argc, argv);
  s.port = std::to_string(port);

  asio::io_context io(1);
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<std::uint16_t>(port));
  std::vector<std::shared_ptr<Client>> all;
  for (int i = 0; i < clients; ++i) {
    all.push_back(std::make_shared<Client>(io, s));
    all.back()->start(ep);
  }
  // Connect (bounded), warm up, measure.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (s.connected + s.errors < static_cast<std::uint64_t>(clients) &&
         std::chrono::steady_clock::now() < deadline) {
    io.run_for(std::chrono::milliseconds(50));
  }
  io.run_for(std::chrono::milliseconds(static_cast<long>(warmup * 1000)));
  s.measuring = true;
  const double cpu0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  io.run_for(std::chrono::milliseconds(static_cast<long>(seconds * 1000)));
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  std::printf(
      "{\"clients\":%d,\"connected\":%llu,\"errors\":%llu,\"delivered\":%llu,"
      "\"msg_per_s\":%.0f,\"p50_us\":%.0f,\"p99_us\":%.0f,\"max_us\":%.0f,\"loadgen_cpu_pct\":%.0f}"
      "\n",
      clients, static_cast<unsigned long long>(s.connected),
      static_cast<unsigned long long>(s.errors), static_cast<unsigned long long>(s.delivered),
      static_cast<double>(s.delivered) / wall, s.latency.percentile(0.5),
      s.latency.percentile(0.99), s.latency.percentile(1.0), 100.0 * cpu / wall);
  std::fflush(stdout);
  return s.connected == static_cast<std::uint64_t>(clients) ? 0 : 1;
}
