// bus-bench: a Unix domain socket pair (socketpair(AF_UNIX, SOCK_SEQPACKET)):
// one message per send()/recv(), blocking, a system call at each end of each
// hop and a copy in and out of the kernel.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "latency.hpp"

namespace busbench {

namespace {

class UdsLink {
 public:
  UdsLink(int fd, std::size_t max_bytes) : fd_(fd), buf_(max_bytes + 1), staging_(max_bytes) {}

  template <class Payload>
  void send(const Payload& p) {
    p.write(staging_.data());
    for (;;) {
      const ssize_t n = ::send(fd_, staging_.data(), p.size(), 0);
      if (n == static_cast<ssize_t>(p.size())) return;
      if (n < 0 && errno == EINTR) continue;
      throw std::runtime_error(std::string("unix socket send failed: ") + std::strerror(errno));
    }
  }

  template <class Visit>
  void receive(Visit&& visit) {
    for (;;) {
      const ssize_t n = ::recv(fd_, buf_.data(), buf_.size(), 0);
      if (n > 0) {
        visit(std::span<const std::byte>(buf_.data(), static_cast<std::size_t>(n)));
        return;
      }
      if (n < 0 && errno == EINTR) continue;
      throw std::runtime_error(n == 0 ? std::string("unix socket closed by the other side")
                                      : std::string("unix socket recv failed: ") +
                                            std::strerror(errno));
    }
  }

 private:
  int fd_;
  std::vector<std::byte>
      buf_;  // one byte more than the largest message: a longer one shows as a wrong size
  std::vector<std::byte> staging_;
};

class UdsSession final : public Session {
 public:
  explicit UdsSession(const RunSpec& spec) : max_(spec.payload.max_bytes()) {
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds_) != 0)
      throw std::runtime_error(std::string("socketpair failed: ") + std::strerror(errno));
  }
  ~UdsSession() override {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }

  void ping(RunShared& sh, const RunSpec& spec) override { run(sh, spec, true); }
  void pong(RunShared& sh, const RunSpec& spec) override { run(sh, spec, false); }

 private:
  void run(RunShared& sh, const RunSpec& spec, bool pinger) {
    ::close(fds_[pinger ? 1 : 0]);
    UdsLink link(fds_[pinger ? 0 : 1], max_);
    barrier(sh);
    run_side(link, sh, spec, pinger);
  }

  int fds_[2] = {-1, -1};
  std::size_t max_;
};

}  // namespace

System uds_system() {
  return System{"uds", "unix socketpair",
                "a Unix domain socket pair (SOCK_SEQPACKET), blocking send/recv", false,
                [](const RunSpec& spec) { return std::make_unique<UdsSession>(spec); }};
}

}  // namespace busbench
