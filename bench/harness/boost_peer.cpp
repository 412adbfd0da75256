// bus-bench: Boost.Interprocess message_queue (a mutex and two condition
// variables in shared memory; each message copied in and out). Two queues,
// ping and pong. Two modes:
//   boost-spin   try_send / try_receive in a loop (never sleeps);
//   boost-block  send / receive (sleeps on the condition variable).
#include <unistd.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/interprocess/ipc/message_queue.hpp>

#include "latency.hpp"

namespace busbench {

namespace {

namespace bip = boost::interprocess;

constexpr std::size_t kQueueDepth = 64;

class BoostLink {
 public:
  BoostLink(bip::message_queue& out, bip::message_queue& in, std::size_t max_bytes, bool spin)
      : out_(out), in_(in), buf_(max_bytes), staging_(max_bytes), spin_(spin) {}

  template <class Payload>
  void send(const Payload& p) {
    p.write(staging_.data());
    if (spin_) {
      while (!out_.try_send(staging_.data(), p.size(), 0)) {
      }
    } else {
      out_.send(staging_.data(), p.size(), 0);
    }
  }

  template <class Visit>
  void receive(Visit&& visit) {
    bip::message_queue::size_type got = 0;
    unsigned prio = 0;
    if (spin_) {
      while (!in_.try_receive(buf_.data(), buf_.size(), got, prio)) {
      }
    } else {
      in_.receive(buf_.data(), buf_.size(), got, prio);
    }
    visit(std::span<const std::byte>(buf_.data(), got));
  }

 private:
  bip::message_queue& out_;
  bip::message_queue& in_;
  std::vector<std::byte> buf_;
  std::vector<std::byte> staging_;
  bool spin_;
};

class BoostSession final : public Session {
 public:
  BoostSession(const RunSpec& spec, bool spin)
      : ping_name_(unique_name("ping")),
        pong_name_(unique_name("pong")),
        max_(spec.payload.max_bytes()),
        spin_(spin) {
    bip::message_queue::remove(ping_name_.c_str());
    bip::message_queue::remove(pong_name_.c_str());
    // Created here, before the fork; each side opens both.
    for (const std::string* name : {&ping_name_, &pong_name_}) {
      const bip::message_queue q(bip::create_only, name->c_str(), kQueueDepth, max_);
    }
  }
  ~BoostSession() override {
    bip::message_queue::remove(ping_name_.c_str());
    bip::message_queue::remove(pong_name_.c_str());
  }

  void ping(RunShared& sh, const RunSpec& spec) override { run(sh, spec, true); }
  void pong(RunShared& sh, const RunSpec& spec) override { run(sh, spec, false); }

 private:
  void run(RunShared& sh, const RunSpec& spec, bool pinger) {
    bip::message_queue ping(bip::open_only, ping_name_.c_str());
    bip::message_queue pong(bip::open_only, pong_name_.c_str());
    BoostLink link(pinger ? ping : pong, pinger ? pong : ping, max_, spin_);
    barrier(sh);
    run_side(link, sh, spec, pinger);
  }

  std::string ping_name_;
  std::string pong_name_;
  std::size_t max_;
  bool spin_;
};

}  // namespace

System boost_system(bool spin) {
  if (spin) {
    return System{"boost-spin", "boost mq (spin)",
                  "Boost.Interprocess message_queue, spinning on try_send/try_receive", false,
                  [](const RunSpec& spec) { return std::make_unique<BoostSession>(spec, true); }};
  }
  return System{"boost-block", "boost mq (block)",
                "Boost.Interprocess message_queue, blocking send/receive", false,
                [](const RunSpec& spec) { return std::make_unique<BoostSession>(spec, false); }};
}

}  // namespace busbench
