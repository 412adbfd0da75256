// bus-bench: Redis pub/sub over loopback TCP (hiredis). Each process holds
// two connections to a redis-server the harness started: one SUBSCRIBEd to
// the channel it receives on, one it PUBLISHes on. Every hop is a PUBLISH
// into the server and a push out of it: two TCP hops and the server's event
// loop. The PUBLISH acknowledgements are pipelined and read in batches, off
// the round trip (the fastest way to use Redis pub/sub, and generous to it).
#include "redis_peer.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <hiredis/hiredis.h>

#include "children.hpp"
#include "latency.hpp"

namespace busbench {

namespace {

struct ContextDeleter {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

Context connect(int port, int timeout_ms) {
  const timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  Context c(redisConnectWithTimeout("127.0.0.1", port, tv));
  if (!c) throw std::runtime_error("redis: out of memory");
  if (c->err != 0)
    throw std::runtime_error("redis: cannot connect to 127.0.0.1:" + std::to_string(port) + ": " +
                             c->errstr);
  const int one = 1;
  ::setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (redisSetTimeout(c.get(), timeval{0, 0}) != REDIS_OK)
    throw std::runtime_error("redis: cannot clear the timeout");
  return c;
}

Reply command(redisContext* c, const char* fmt, const char* arg) {
  Reply r(static_cast<redisReply*>(redisCommand(c, fmt, arg)));
  if (!r) throw std::runtime_error(std::string("redis: ") + (c->err != 0 ? c->errstr : "no reply"));
  if (r->type == REDIS_REPLY_ERROR) throw std::runtime_error(std::string("redis: ") + r->str);
  return r;
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error(std::string("cannot find a free loopback port: ") +
                             std::strerror(errno));
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// ------------------------------------------------------------------ the link

class RedisLink {
 public:
  // Acknowledgements read per batch; each is 4 bytes (":1\r\n"), far below
  // what the socket buffers hold.
  static constexpr unsigned kAckBatch = 256;

  RedisLink(redisContext* pub, redisContext* sub, std::string out)
      : pub_(pub), sub_(sub), out_(std::move(out)) {}

  template <class Payload>
  void send(const Payload& p) {
    staging_.resize(p.size());
    p.write(staging_.data());
    if (redisAppendCommand(pub_, "PUBLISH %b %b", out_.data(), out_.size(), staging_.data(),
                           staging_.size()) != REDIS_OK)
      throw std::runtime_error(std::string("redis: PUBLISH: ") + pub_->errstr);
    int done = 0;
    while (done == 0) {
      if (redisBufferWrite(pub_, &done) != REDIS_OK)
        throw std::runtime_error(std::string("redis: write: ") + pub_->errstr);
    }
    if (++unacked_ >= kAckBatch) drain_acks();
  }

  template <class Visit>
  void receive(Visit&& visit) {
    void* raw = nullptr;
    if (redisGetReply(sub_, &raw) != REDIS_OK)
      throw std::runtime_error(std::string("redis: read: ") + sub_->errstr);
    const Reply r(static_cast<redisReply*>(raw));
    // ["message", channel, payload]
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[2]->type != REDIS_REPLY_STRING)
      throw std::runtime_error("redis: unexpected push on the subscription");
    visit(std::span<const std::byte>(reinterpret_cast<const std::byte*>(r->element[2]->str),
                                     r->element[2]->len));
  }

  void drain_acks() {
    for (; unacked_ > 0; --unacked_) {
      void* raw = nullptr;
      if (redisGetReply(pub_, &raw) != REDIS_OK)
        throw std::runtime_error(std::string("redis: ack: ") + pub_->errstr);
      const Reply r(static_cast<redisReply*>(raw));
      if (!r || r->type != REDIS_REPLY_INTEGER || r->integer != 1)
        throw std::runtime_error("redis: PUBLISH did not reach exactly one subscriber");
    }
  }

 private:
  redisContext* pub_;
  redisContext* sub_;
  std::string out_;
  std::vector<std::byte> staging_;
  unsigned unacked_ = 0;
};

class RedisSession final : public Session {
 public:
  explicit RedisSession(int port)
      : port_(port), ping_(unique_name("ping")), pong_(unique_name("pong")) {}

  void ping(RunShared& sh, const RunSpec& spec) override { run(sh, spec, true); }
  void pong(RunShared& sh, const RunSpec& spec) override { run(sh, spec, false); }

 private:
  void run(RunShared& sh, const RunSpec& spec, bool pinger) {
    Context pub = connect(port_, 2000);
    Context sub = connect(port_, 2000);
    // Subscribed before the barrier: nothing the other side sends is missed.
    (void)command(sub.get(), "SUBSCRIBE %s", (pinger ? pong_ : ping_).c_str());
    RedisLink link(pub.get(), sub.get(), pinger ? ping_ : pong_);
    barrier(sh);
    run_side(link, sh, spec, pinger);
    link.drain_acks();
  }

  int port_;
  std::string ping_;
  std::string pong_;
};

}  // namespace

// ------------------------------------------------------------------ the server

std::string RedisServer::find_binary() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/redis-server";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

RedisServer::RedisServer(const std::string& binary, int port, std::chrono::seconds timeout,
                         const std::vector<int>& cpus) {
  char tmpl[] = "/tmp/shmbus-bench-redis-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr)
    throw std::runtime_error(std::string("mkdtemp failed: ") + std::strerror(errno));
  dir_ = tmpl;
  port_ = port != 0 ? port : free_port();
  const std::string port_s = std::to_string(port_);
  const std::string pidfile = dir_ + "/redis.pid";
  const std::string logfile = dir_ + "/redis.log";
  std::vector<std::string> args = {binary,        "--port", port_s,   "--bind",    "127.0.0.1",
                                   "--daemonize", "no",     "--save", "",          "--appendonly",
                                   "no",          "--dir",  dir_,     "--pidfile", pidfile,
                                   "--logfile",   logfile};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t parent = ::getpid();
  std::fflush(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);  // the harness died before prctl
    try {
      if (!cpus.empty()) pin_to_cpus(cpus);
    } catch (...) {
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  track_pid(pid_);

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last_error;
  for (;;) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      untrack_pid(pid_);
      pid_ = -1;
      const std::string tail = log_tail();
      std::filesystem::remove_all(dir_);
      throw std::runtime_error("redis-server (" + binary + ") exited at start; its log says:\n" +
                               tail);
    }
    try {
      Context c = connect(port_, 200);
      Reply r = command(c.get(), "PING", "");
      if (r->type == REDIS_REPLY_STATUS && std::string(r->str) == "PONG") {
        Reply info = command(c.get(), "INFO %s", "server");
        const std::string s(info->str, info->len);
        const auto at = s.find("redis_version:");
        if (at != std::string::npos) version_ = s.substr(at + 14, s.find('\r', at) - at - 14);
        return;
      }
    } catch (const std::exception& e) {
      last_error = e.what();
    }
    if (std::chrono::steady_clock::now() > deadline) {
      const std::string tail = log_tail();
      stop();
      throw std::runtime_error("redis-server did not answer PING on 127.0.0.1:" + port_s +
                               " within " + std::to_string(timeout.count()) + " s (" + last_error +
                               "); its log says:\n" + tail);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

RedisServer::~RedisServer() {
  stop();
}

void RedisServer::stop() noexcept {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    bool gone = false;
    for (int k = 0; k < 500 && !gone; ++k) {
      gone = ::waitpid(pid_, &status, WNOHANG) == pid_;
      if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!gone) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
    untrack_pid(pid_);
    pid_ = -1;
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }
}

std::string RedisServer::log_tail() const {
  std::ifstream in(dir_ + "/redis.log");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (lines.size() > 10) lines.erase(lines.begin());
  }
  std::string out;
  for (const auto& l : lines) {
    out += "  ";
    out += l;
    out += '\n';
  }
  return out.empty() ? std::string("  (empty)\n") : out;
}

System redis_system(int port) {
  return System{
      "redis", "redis pub/sub",
      "Redis 7 pub/sub over loopback TCP (hiredis; PUBLISH acks pipelined, read in batches)", false,
      [port](const RunSpec&) { return std::make_unique<RedisSession>(port); }};
}

}  // namespace busbench
