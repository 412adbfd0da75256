// bus-bench: a redis-server of the harness's own, for the Redis peer.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace busbench {

class RedisServer {
 public:
  // The redis-server on PATH, or "" if there is none.
  [[nodiscard]] static std::string find_binary();

  // Starts `binary` on 127.0.0.1:`port` (0: a free port) in a fresh
  // directory under /tmp, without persistence, restricted to `cpus`, and
  // waits until it answers PING. Throws std::runtime_error, with the tail of
  // its log, if it does not within `timeout`. The server is told to die with
  // the harness (PR_SET_PDEATHSIG) and is killed by the cleanup handlers.
  RedisServer(const std::string& binary, int port, std::chrono::seconds timeout,
              const std::vector<int>& cpus);
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  // Stops it (SIGTERM, SIGKILL after 5 s) and removes its directory.
  ~RedisServer();

  [[nodiscard]] int port() const noexcept { return port_; }
  [[nodiscard]] const std::string& version() const noexcept { return version_; }

 private:
  void stop() noexcept;
  [[nodiscard]] std::string log_tail() const;

  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  std::string version_;
};

}  // namespace busbench
