// sio-loadgen: a light Socket.IO (Engine.IO v4, WebSocket only) load generator for the fan-out
// benchmark (bench/socketio/run.sh), light enough that the servers it measures, not itself, set
// the ceiling.
//
// Design
//   Raw sockets and epoll, no WebSocket or JSON library: per readable socket one recv(2) of up
//   to 256 KiB, then a walk over the server's (unmasked) frames in it. An event frame ("42...")
//   is counted and its "ts" (CLOCK_REALTIME ns: the bus publish time for bus-bridge, the emit
//   time for the reference servers) read with one substring search; the receive time is taken
//   once per recv(2), not per frame (every frame of one recv arrived by then: the latency is
//   stamp -> the read that returned it). Only what a Socket.IO client must answer is answered:
//   Engine.IO open -> "40" (connect to "/"), Engine.IO ping "2" -> pong "3", Socket.IO connect
//   -> `subscribe` when asked. Client frames are masked (RFC 6455 5.3).
//   --threads T splits the clients over T threads, each with its own epoll and counters (no
//   shared state on the hot path); each thread's CPU is reported next to the result, so a
//   reader can see whether the generator was near its limit.
//
//   sio-loadgen --port P --clients N --seconds S [--warmup W] [--subscribe TOPIC] [--threads T]
// Prints one JSON line: clients connected, frames delivered in the measured window, delivered
// msg/s, latency p50/p99/max (us), this process's CPU (% of one core) and each thread's.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

std::int64_t clock_ns(clockid_t id) {
  timespec ts{};
  ::clock_gettime(id, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
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
  void merge(const Histogram& o) {
    for (std::size_t i = 0; i < buckets.size(); ++i) buckets[i] += o.buckets[i];
    count += o.count;
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

struct Options {
  std::uint16_t port = 0;
  std::string subscribe;  // empty: the server pushes to every client without a request
};

// Phases, set by main, read by the threads (relaxed: a frame counted a few microseconds early
// or late changes nothing).
std::atomic<bool> g_measuring{false};
std::atomic<bool> g_stop{false};

struct Client {
  int fd = -1;
  std::string carry;  // the start of a frame that a recv cut
  std::string out;    // client frames the socket did not take yet
  bool connected = false;
  bool closed = false;
};

class Worker {
 public:
  Worker(const Options& o, std::vector<int> fds) : opt_(o) {
    epfd_ = ::epoll_create1(0);
    clients_.resize(fds.size());
    for (std::size_t i = 0; i < fds.size(); ++i) {
      clients_[i].fd = fds[i];
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fds[i], &ev) != 0) ++errors;
    }
  }
  ~Worker() {
    for (auto& c : clients_) ::close(c.fd);
    ::close(epfd_);
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Handles the bytes that came with the handshake's response, then loops until g_stop.
  void run(const std::vector<std::string>& initial) {
    for (std::size_t i = 0; i < clients_.size(); ++i) {
      if (!initial[i].empty()) {
        std::memcpy(buf_.data(), initial[i].data(), initial[i].size());
        on_bytes(clients_[i], initial[i].size(), clock_ns(CLOCK_REALTIME));
      }
    }
    std::vector<epoll_event> evs(256);
    bool was_measuring = false;
    while (!g_stop.load(std::memory_order_relaxed)) {
      const bool m = g_measuring.load(std::memory_order_relaxed);
      if (m && !was_measuring) cpu0_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
      was_measuring = m;
      const int n = ::epoll_wait(epfd_, evs.data(), static_cast<int>(evs.size()), 20);
      for (int i = 0; i < n; ++i) {
        Client& c = clients_[evs[static_cast<std::size_t>(i)].data.u64];
        if ((evs[static_cast<std::size_t>(i)].events & EPOLLOUT) != 0U) flush_out(c);
        if ((evs[static_cast<std::size_t>(i)].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0U) {
          on_readable(c);
        }
      }
    }
    cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0_ns;
  }

  std::atomic<std::uint64_t> connected{0};
  std::uint64_t errors = 0;
  std::uint64_t delivered = 0;  // in the measured window
  std::int64_t cpu0_ns = 0;
  std::int64_t cpu_ns = 0;  // this thread's CPU in the measured window
  Histogram latency;

 private:
  static constexpr std::size_t kRecv = 256 * 1024;

  void on_readable(Client& c) {
    if (c.closed) return;
    // The cut frame's start first, then as much as the socket has.
    const std::size_t have = c.carry.size();
    if (buf_.size() < have + kRecv) buf_.resize(have + kRecv);
    std::memcpy(buf_.data(), c.carry.data(), have);
    const ssize_t n = ::recv(c.fd, buf_.data() + have, kRecv, MSG_DONTWAIT);
    if (n <= 0) {
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      return close_client(c);
    }
    on_bytes(c, have + static_cast<std::size_t>(n), clock_ns(CLOCK_REALTIME));
  }

  // Walks the server frames in buf_[0, size); keeps an incomplete last frame in c.carry.
  void on_bytes(Client& c, std::size_t size, std::int64_t now) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(buf_.data());
    std::size_t at = 0;
    const bool measuring = g_measuring.load(std::memory_order_relaxed);
    for (;;) {
      if (size - at < 2) break;
      const std::uint8_t op = p[at] & 0x0FU;
      std::uint64_t len = p[at + 1] & 0x7FU;
      std::size_t hdr = 2;
      if (len == 126) {
        if (size - at < 4) break;
        len = (std::uint64_t{p[at + 2]} << 8) | p[at + 3];
        hdr = 4;
      } else if (len == 127) {
        if (size - at < 10) break;
        len = 0;
        for (std::size_t i = 0; i < 8; ++i) len = (len << 8) | p[at + 2 + i];
        hdr = 10;
      }
      if ((p[at + 1] & 0x80U) != 0) return close_client(c);  // a server never masks
      if (size - at - hdr < len) break;
      const std::string_view f(buf_.data() + at + hdr, static_cast<std::size_t>(len));
      at += hdr + static_cast<std::size_t>(len);
      if (op == 0x1) {
        on_text(c, f, measuring, now);
      } else if (op == 0x8) {
        return close_client(c);
      } else if (op == 0x9) {
        send_frame(c, 0xA, f);
      }
      // Binary frames (attachments) and pongs: nothing to do.
    }
    c.carry.assign(buf_.data() + at, size - at);
  }

  void on_text(Client& c, std::string_view f, bool measuring, std::int64_t now) {
    if (f.size() >= 2 && f[0] == '4' && f[1] == '2') {
      if (!measuring) return;
      ++delivered;
      const auto at = f.find("\"ts\":");
      if (at == std::string_view::npos) return;
      std::int64_t ts = 0;
      const char* b = f.data() + at + 5;
      // Node writes a JSON number: an integer below 1e21, maybe with a fraction (ignored).
      if (std::from_chars(b, f.data() + f.size(), ts).ec == std::errc()) latency.add(now - ts);
    } else if (f == "2") {
      send_frame(c, 0x1, "3");
    } else if (!f.empty() && f[0] == '0') {
      send_frame(c, 0x1, "40");
    } else if (f.size() >= 2 && f[0] == '4' && f[1] == '0' && !c.connected) {
      c.connected = true;
      connected.fetch_add(1, std::memory_order_relaxed);
      if (!opt_.subscribe.empty())
        send_frame(c, 0x1, "42[\"subscribe\",[\"" + opt_.subscribe + "\"]]");
    } else if (f.size() >= 2 && f[0] == '4' && f[1] == '4') {
      ++errors;  // connect refused
      close_client(c);
    }
  }

  // One masked client frame (payloads here are < 126 bytes or small; 16-bit length suffices).
  void send_frame(Client& c, std::uint8_t op, std::string_view payload) {
    static constexpr std::uint8_t kMask[4] = {0x5a, 0x13, 0xc7, 0x2e};
    std::string fr;
    fr.push_back(static_cast<char>(0x80U | op));
    if (payload.size() < 126) {
      fr.push_back(static_cast<char>(0x80U | payload.size()));
    } else {
      fr.push_back(static_cast<char>(0x80U | 126U));
      fr.push_back(static_cast<char>(payload.size() >> 8));
      fr.push_back(static_cast<char>(payload.size() & 0xFF));
    }
    fr.append(reinterpret_cast<const char*>(kMask), 4);
    for (std::size_t i = 0; i < payload.size(); ++i) {
      fr.push_back(static_cast<char>(static_cast<std::uint8_t>(payload[i]) ^ kMask[i & 3U]));
    }
    const bool idle = c.out.empty();
    c.out += fr;
    if (idle) flush_out(c);
  }

  void flush_out(Client& c) {
    while (!c.out.empty() && !c.closed) {
      const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) return close_client(c);
        break;
      }
      c.out.erase(0, static_cast<std::size_t>(n));
    }
    epoll_event ev{};
    ev.events = EPOLLIN | (c.out.empty() ? 0U : static_cast<std::uint32_t>(EPOLLOUT));
    ev.data.u64 = static_cast<std::uint64_t>(&c - clients_.data());
    (void)::epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void close_client(Client& c) {
    if (c.closed) return;
    c.closed = true;
    ++errors;
    (void)::epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
  }

  const Options& opt_;
  int epfd_ = -1;
  std::vector<Client> clients_;
  std::vector<char> buf_ = std::vector<char>(kRecv);
};

// Connects and completes the WebSocket handshake (blocking, bounded by socket timeouts);
// returns the fd (-1 on failure) and, in `rest`, bytes read past the response's header.
int open_client(const Options& o, std::string& rest) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const timeval tv{10, 0};
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(o.port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  const std::string req = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:" +
                          std::to_string(o.port) +
                          "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return -1;
  }
  std::string got;
  char tmp[4096];
  std::size_t end = std::string::npos;
  while ((end = got.find("\r\n\r\n")) == std::string::npos) {
    const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0 || got.size() > 16384) {
      ::close(fd);
      return -1;
    }
    got.append(tmp, static_cast<std::size_t>(n));
  }
  if (got.compare(0, 12, "HTTP/1.1 101") != 0) {
    ::close(fd);
    return -1;
  }
  rest = got.substr(end + 4);
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Socket.IO fan-out load generator (WebSocket clients, delivered msg/s, latency)"};
  Options o;
  int clients = 1;
  int threads = 1;
  double seconds = 10;
  double warmup = 2;
  app.add_option("--port", o.port, "Server port on 127.0.0.1")->required();
  app.add_option("--clients", clients, "WebSocket clients")->capture_default_str();
  app.add_option("--seconds", seconds, "Measured window")->capture_default_str();
  app.add_option("--warmup", warmup, "Seconds after all clients connected, not measured")
      ->capture_default_str();
  app.add_option("--subscribe", o.subscribe, "Topic to subscribe to (bus-bridge); none: pushed");
  app.add_option("--threads", threads, "Threads the clients are split over (own epoll each)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  CLI11_PARSE(app, argc, argv);

  // Handshakes one by one (loopback: fast), then the threads take their share.
  std::vector<std::vector<int>> fds(static_cast<std::size_t>(threads));
  std::vector<std::vector<std::string>> rest(static_cast<std::size_t>(threads));
  std::uint64_t failed = 0;
  for (int i = 0; i < clients; ++i) {
    std::string r;
    const int fd = open_client(o, r);
    if (fd < 0) {
      ++failed;
      continue;
    }
    const auto t = static_cast<std::size_t>(i % threads);
    fds[t].push_back(fd);
    rest[t].push_back(std::move(r));
  }
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> running;
  for (std::size_t t = 0; t < fds.size(); ++t) {
    workers.push_back(std::make_unique<Worker>(o, std::move(fds[t])));
  }
  for (std::size_t t = 0; t < workers.size(); ++t) {
    running.emplace_back([&w = *workers[t], &r = rest[t]] { w.run(r); });
  }
  const auto total_connected = [&] {
    std::uint64_t n = 0;
    for (const auto& w : workers) n += w->connected.load(std::memory_order_relaxed);
    return n;
  };
  // Connect (bounded), warm up, measure.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (total_connected() + failed < static_cast<std::uint64_t>(clients) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(warmup * 1000)));
  rusage u0{};
  ::getrusage(RUSAGE_SELF, &u0);
  const auto t0 = std::chrono::steady_clock::now();
  g_measuring.store(true, std::memory_order_relaxed);
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(seconds * 1000)));
  g_measuring.store(false, std::memory_order_relaxed);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage u1{};
  ::getrusage(RUSAGE_SELF, &u1);
  g_stop.store(true, std::memory_order_relaxed);
  for (auto& th : running) th.join();

  const auto secs = [](const rusage& u) {
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  };
  Histogram all;
  std::uint64_t delivered = 0;
  std::uint64_t errors = failed;
  std::string per_thread;
  for (const auto& w : workers) {
    all.merge(w->latency);
    delivered += w->delivered;
    errors += w->errors;
    if (!per_thread.empty()) per_thread += ',';
    per_thread +=
        std::to_string(static_cast<int>(100.0 * static_cast<double>(w->cpu_ns) / 1e9 / wall + 0.5));
  }
  std::printf(
      "{\"clients\":%d,\"connected\":%llu,\"errors\":%llu,\"delivered\":%llu,"
      "\"msg_per_s\":%.0f,\"p50_us\":%.0f,\"p99_us\":%.0f,\"max_us\":%.0f,\"loadgen_cpu_pct\":%.0f,"
      "\"loadgen_threads\":%d,\"loadgen_thread_cpu_pct\":[%s]}\n",
      clients, static_cast<unsigned long long>(total_connected()),
      static_cast<unsigned long long>(errors), static_cast<unsigned long long>(delivered),
      static_cast<double>(delivered) / wall, all.percentile(0.5), all.percentile(0.99),
      all.percentile(1.0), 100.0 * (secs(u1) - secs(u0)) / wall, threads, per_thread.c_str());
  std::fflush(stdout);
  return total_connected() == static_cast<std::uint64_t>(clients) ? 0 : 1;
}
