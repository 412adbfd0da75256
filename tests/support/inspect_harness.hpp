// What the bus-inspect tests share: the real executable run as a child
// (SHMBUS_TOOL_BUS_INSPECT, set by ctest), its JSON output parsed, a bus name
// per test whose segments are removed at the end, and lookups in what
// `list --json` and `gc --json` print.
//
// The participants on a bus under test are agents (agent.hpp), never the
// test process itself: it creates no bus, so what gc decides about a
// directory's creator is about the agents.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent.hpp"
#include "proc.hpp"
#include "test_util.hpp"

namespace shmbus::test {

using Json = nlohmann::json;

// The bus-inspect executable under test.
[[nodiscard]] std::string exe();

// `bus-inspect ARGS`, with `input` on stdin.
Result inspect(std::vector<std::string> args, const std::string& input = "");

// `bus-inspect ARGS --json`, parsed (a failed expectation unless it exits 0).
Json inspect_json(std::vector<std::string> args);

// The topic `name` in a bus of `list --json` (throws if absent).
const Json& topic_in(const Json& bus, const std::string& name);
// The consumer `name` of a topic of `list --json` (throws if absent).
const Json& consumer_in(const Json& topic, const std::string& name);

// Whether shared-memory segment `segment` exists.
[[nodiscard]] bool shm_exists(const std::string& segment);

// Creates segment `name` with `bytes` of content (a failed assertion if it
// exists or cannot be written).
void make_segment(const std::string& name, const std::vector<std::byte>& bytes);

// A bus name for this test; its segments are removed at the end.
class TestBus {
 public:
  TestBus() : bus_("insp") {}
  [[nodiscard]] const std::string& name() const { return bus_.name(); }
  // The directory segment's name, or with a topic the topic segment's.
  [[nodiscard]] std::string seg(const std::string& topic = "") const;

 private:
  ScopedBus bus_;
};

}  // namespace shmbus::test
