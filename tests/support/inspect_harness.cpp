#include "inspect_harness.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <gtest/gtest.h>

#include "shmbus/detail/segments.hpp"

namespace shmbus::test {

std::string exe() {
  const char* e = std::getenv("SHMBUS_TOOL_BUS_INSPECT");
  if (e == nullptr)
    throw std::runtime_error("SHMBUS_TOOL_BUS_INSPECT is not set (run through ctest)");
  return e;
}

Result inspect(std::vector<std::string> args, const std::string& input) {
  args.insert(args.begin(), exe());
  return run(args, input);
}

Json inspect_json(std::vector<std::string> args) {
  args.emplace_back("--json");
  const Result r = inspect(args);
  EXPECT_EQ(r.code, 0) << r;
  return Json::parse(r.out);
}

const Json& topic_in(const Json& bus, const std::string& name) {
  for (const Json& t : bus.at("topics"))
    if (t.at("name") == name) return t;
  throw std::runtime_error("topic " + name + " not in " + bus.dump());
}

const Json& consumer_in(const Json& topic, const std::string& name) {
  for (const Json& c : topic.at("consumers"))
    if (c.at("name") == name) return c;
  throw std::runtime_error("consumer " + name + " not in " + topic.dump());
}

bool shm_exists(const std::string& segment) {
  struct stat st {};
  return ::stat(detail::shm_path(segment).c_str(), &st) == 0;
}

void make_segment(const std::string& name, const std::vector<std::byte>& bytes) {
  const int fd = ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0) << name << ": " << std::strerror(errno);
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

std::string TestBus::seg(const std::string& topic) const {
  return topic.empty() ? detail::directory_segment_name(name())
                       : detail::topic_segment_name(name(), topic);
}

}  // namespace shmbus::test
