// Helpers for the bus-bridge tests: the bridge as a real child process with a YAML file of
// its own, HTTP GET against its /health and /metrics, Quote messages.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include <shmbus/msg/md_quote_generated.h>
#include <shmbus/core/publisher.hpp>
#include <shmbus/core/subscriber.hpp>

#include "../transport/transport_test_util.hpp"

namespace shmbus::test {

inline std::string bridge_exe() {
  const char* p = std::getenv("SHMBUS_TOOL_BUS_BRIDGE");
  if (p == nullptr) ADD_FAILURE() << "SHMBUS_TOOL_BUS_BRIDGE is not set (run through ctest)";
  return p == nullptr ? "bus-bridge" : p;
}

// A file in a temporary directory of this test process, removed with the object.
class TempFile {
 public:
  TempFile(const std::string& name, const std::string& text) {
    path_ = std::filesystem::temp_directory_path() /
            ("bridge-test-" + std::to_string(::getpid()) + "-" + name);
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  [[nodiscard]] std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

struct HttpReply {
  int status = 0;
  std::string body;
};

// One GET on loopback (Connection: close); status 0 if the connection failed.
inline HttpReply http_get(std::uint16_t port, const std::string& path) {
  HttpReply r;
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(s);
    return r;
  }
  const std::string req =
      "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  (void)!::write(s, req.data(), req.size());
  std::string all;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(s, buf, sizeof buf);
    if (n <= 0) break;
    all.append(buf, static_cast<std::size_t>(n));
  }
  ::close(s);
  if (all.size() > 12) r.status = std::atoi(all.c_str() + 9);
  const auto body = all.find("\r\n\r\n");
  if (body != std::string::npos) r.body = all.substr(body + 4);
  return r;
}

// bus-bridge running as a child with a config file; its output collected line by line.
class BridgeProc {
 public:
  explicit BridgeProc(const std::string& yaml, const std::string& tag = "bridge")
      : config_(tag + ".yaml", yaml) {
    child_ =
        std::make_unique<Child>(std::vector<std::string>{bridge_exe(), "--config", config_.str()});
  }
  // Waits for "bus-bridge: ready"; false (with the output in `output()`) otherwise.
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto l = child_->line(std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now()));
      if (!l) return false;
      output_ += *l + "\n";
      const std::string key = "http listening on 127.0.0.1:";
      if (auto p = l->find(key); p != std::string::npos) {
        port_ = static_cast<std::uint16_t>(std::stoi(l->substr(p + key.size())));
      }
      if (*l == "bus-bridge: ready") return true;
    }
    return false;
  }
  // Reads whatever output is available within `for_ms` into output().
  const std::string& drain(std::chrono::milliseconds for_ms = std::chrono::milliseconds(50)) {
    while (auto l = child_->line(for_ms)) output_ += *l + "\n";
    return output_;
  }
  // SIGTERM and the exit status (-1 on timeout).
  int terminate(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    ::kill(child_->pid(), SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (auto l = child_->line(std::chrono::milliseconds(100))) {
      output_ += *l + "\n";
      if (std::chrono::steady_clock::now() > deadline) break;
    }
    return child_->wait(timeout);
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] const std::string& output() const { return output_; }
  [[nodiscard]] std::string config_file() const { return config_.str(); }
  [[nodiscard]] Child& child() { return *child_; }

 private:
  TempFile config_;
  std::unique_ptr<Child> child_;
  std::uint16_t port_ = 0;
  std::string output_;
};

// The value of one series in /metrics text (-1 when absent).
inline double metric(const std::string& text, const std::string& series) {
  const auto p = text.find(series + " ");
  return p == std::string::npos ? -1.0 : std::stod(text.substr(p + series.size() + 1));
}

// How often `word` occurs in `text` (e.g. "disconnected" in a bridge's log: once per state
// change, never per attempt).
inline std::size_t occurrences(const std::string& text, const std::string& word) {
  std::size_t n = 0;
  for (auto p = text.find(word); p != std::string::npos; p = text.find(word, p + 1)) ++n;
  return n;
}

// A Quote whose fields derive from i (so a receiver can check every one).
inline flatbuffers::FlatBufferBuilder quote(std::uint64_t i) {
  flatbuffers::FlatBufferBuilder fbb;
  const std::string sym = "S" + std::to_string(i);
  fbb.Finish(md::CreateQuoteDirect(fbb, sym.c_str(), i, "XNAS", 0, 0, i,
                                   static_cast<double>(i) + 0.5, 100.0),
             md::QuoteIdentifier());
  return fbb;
}

// Quotes 1..n published on `pub` from a thread of its own, with a 1 ms pause every 10: a
// steady stream that a remote outage interrupts. A publish blocked longer than `block` ends
// it. Joined by the destructor, so a failed assertion cannot leave the thread running.
class QuoteProducer {
 public:
  QuoteProducer(Publisher& pub, std::uint64_t n, std::chrono::seconds block)
      : thread_([this, &pub, n, block] {
          for (std::uint64_t i = 1; i <= n; ++i) {
            auto fbb = quote(i);
            if (pub.publish(fbb, block) != PublishResult::Ok) return;
            published_.store(i);
            if (i % 10 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          }
        }) {}
  ~QuoteProducer() { join(); }
  QuoteProducer(const QuoteProducer&) = delete;
  QuoteProducer& operator=(const QuoteProducer&) = delete;
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] std::uint64_t published() const { return published_.load(); }

 private:
  std::atomic<std::uint64_t> published_{0};
  std::thread thread_;  // last: it runs as soon as it exists
};

inline std::string quote_line(const std::string& topic, std::uint64_t seq, std::uint64_t i) {
  char px[32];
  std::snprintf(px, sizeof px, "%.2f", static_cast<double>(i) + 0.5);
  return topic + " " + std::to_string(seq) + " S" + std::to_string(i) + " " + std::to_string(i) +
         " " + px;
}

}  // namespace shmbus::test
