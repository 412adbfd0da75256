// The scripted agent: a child process forked from a test that runs a small
// command loop over pipes (create a topic and publish, subscribe and drain,
// ...), so that a test drives real producers and consumers in other
// processes step by step, and knows when each step is done: no sleep stands
// in for a condition that can be awaited.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "proc.hpp"

namespace shmbus::test {

// An agent's command loop on (in, out). Commands (one per line), each answered
// by a line starting "ok" (or "error <code> <what>"):
//
//   publisher BUS TOPIC quote|raw lossy|reliable SLOTS NAME
//                 create the topic (256 B slots, 8 consumers), take the producer role
//   send N        publish N messages (waits on a full reliable ring); "ok last=S would_block=0"
//   try N         publish N messages, never waiting; "ok last=S would_block=W"
//   release       give the producer role back
//   subscriber BUS TOPIC NAME
//                 register as a consumer (from now on)
//   drain         read everything ready: one "msg ..." line each, then "ok count=N drops=D"
//
// Quote `seq` carries symbol "SYM", venue "XTST", instrument_id = seq,
// bid_px = seq + 0.25, ask_px = seq + 0.5; raw message `seq` is raw_payload(seq).
int agent_main(int in, int out);

// An agent process and its conversation.
class Agent {
 public:
  Agent();
  // Sends a command; returns every "msg" line and the final "ok ..." line
  // (a failed expectation if the agent answers anything else, or nothing).
  std::vector<std::string> talk(const std::string& command);
  // The final line of talk(command).
  std::string ok(const std::string& command);
  [[nodiscard]] std::uint32_t pid() const;
  // SIGKILL and wait until it is gone.
  int kill9();

 private:
  Proc proc_;
};

// The value of `key=` in an agent's reply ("" if absent).
[[nodiscard]] std::string field(const std::string& line, const std::string& key);

// The bytes of raw message `seq` sent by agents: the self-checking payload.
[[nodiscard]] std::vector<std::byte> raw_payload(std::uint64_t seq);

// Lower-case hex of `b`.
[[nodiscard]] std::string hex(std::span<const std::byte> b);

}  // namespace shmbus::test
