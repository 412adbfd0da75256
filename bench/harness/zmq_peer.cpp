// bus-bench: ZeroMQ over ipc:// (a Unix socket underneath), one ZMQ_PAIR
// socket at each end, blocking send/recv. The context's I/O thread inherits
// the process's CPU, as it would in an application pinned the same way.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "latency.hpp"

namespace busbench {

namespace {

class ZmqLink {
 public:
  ZmqLink(zmq::socket_t& sock, std::size_t max_bytes)
      : sock_(sock), buf_(max_bytes + 1), staging_(max_bytes) {}

  template <class Payload>
  void send(const Payload& p) {
    p.write(staging_.data());
    if (!sock_.send(zmq::const_buffer(staging_.data(), p.size()), zmq::send_flags::none))
      throw std::runtime_error("zmq send would block");
  }

  template <class Visit>
  void receive(Visit&& visit) {
    const zmq::recv_buffer_result_t r =
        sock_.recv(zmq::mutable_buffer(buf_.data(), buf_.size()), zmq::recv_flags::none);
    if (!r) throw std::runtime_error("zmq recv returned nothing");
    // A truncated message shows as a wrong size, and fails its check.
    visit(std::span<const std::byte>(buf_.data(), std::min(r->size, buf_.size())));
  }

 private:
  zmq::socket_t& sock_;
  std::vector<std::byte> buf_;
  std::vector<std::byte> staging_;
};

class ZmqSession final : public Session {
 public:
  explicit ZmqSession(const RunSpec& spec)
      : path_("/tmp/" + unique_name("zmq.ipc")), max_(spec.payload.max_bytes()) {}
  ~ZmqSession() override { std::remove(path_.c_str()); }

  void ping(RunShared& sh, const RunSpec& spec) override { run(sh, spec, true); }
  void pong(RunShared& sh, const RunSpec& spec) override { run(sh, spec, false); }

 private:
  void run(RunShared& sh, const RunSpec& spec, bool pinger) {
    // Created in the child, after fork(): a ZeroMQ context must not cross one.
    zmq::context_t ctx(1);
    zmq::socket_t sock(ctx, zmq::socket_type::pair);
    sock.set(zmq::sockopt::linger, 0);
    const std::string endpoint = "ipc://" + path_;
    if (!pinger) sock.bind(endpoint);  // bound before the barrier: the pinger connects after it
    barrier(sh);
    if (pinger) sock.connect(endpoint);
    ZmqLink link(sock, max_);
    run_side(link, sh, spec, pinger);
  }

  std::string path_;
  std::size_t max_;
};

}  // namespace

System zmq_system() {
  return System{"zmq", "zeromq ipc", "ZeroMQ 4 over ipc:// (ZMQ_PAIR), blocking send/recv", false,
                [](const RunSpec& spec) { return std::make_unique<ZmqSession>(spec); }};
}

}  // namespace busbench
