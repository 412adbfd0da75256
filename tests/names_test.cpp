// Bus, topic and participant names: what is refused, with what message, and
// that a refused name leaves nothing behind in /dev/shm.
#include <dirent.h>

#include <set>

#include "test_util.hpp"

namespace shmbus::test {
namespace {

// Entries in /dev/shm whose names start with `prefix` (other tests run in
// parallel, so only the names a refused call could have made are checked).
std::set<std::string> shm_entries(const std::string& prefix) {
  std::set<std::string> out;
  DIR* d = ::opendir("/dev/shm");
  while (const dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n.rfind(prefix, 0) == 0) out.insert(n);
  }
  ::closedir(d);
  return out;
}

void expect_invalid(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected InvalidName mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::InvalidName) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("use "), std::string::npos)
        << "says what to do: " << e.what();
  }
}

TEST(Names, BadBusNamesAreRefusedAndCreateNothing) {
  expect_invalid([] { (void)Bus::open_or_create(""); }, "empty");
  expect_invalid([] { (void)Bus::open_or_create(std::string(33, 'a')); }, "33 characters");
  expect_invalid([] { (void)Bus::open_or_create("a/b"); }, "'/' at position 1");
  expect_invalid([] { (void)Bus::open_or_create(".."); }, "'.' at position 0");
  expect_invalid([] { (void)Bus::open_or_create("a.b"); }, "'.' at position 1");
  expect_invalid([] { (void)Bus::open_or_create("a b"); }, "' ' at position 1");
  expect_invalid([] { (void)Bus::open_or_create(std::string("a\0b", 3)); }, "byte 0x00");
  expect_invalid([] { (void)Bus::open("x/../../etc"); }, "'/'");
  for (const char* made :
       {"shmbus..", "shmbus.a.b", "shmbus.a b", "shmbus.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})
    EXPECT_TRUE(shm_entries(made).empty()) << made;
  EXPECT_NO_THROW(validate_bus_name(std::string(32, 'a')));
  EXPECT_NO_THROW(validate_bus_name("Prod_2-a"));
}

TEST(Names, BadTopicNamesAreRefusedAndCreateNothing) {
  ScopedBus sb;
  Bus bus = sb.open();
  const auto before = shm_entries("shmbus." + sb.name());
  expect_invalid([&] { (void)bus.topic("", {}); }, "empty");
  expect_invalid([&] { (void)bus.topic(std::string(65, 't'), {}); }, "65 characters");
  expect_invalid([&] { (void)bus.topic("md/quotes", {}); }, "'/' at position 2");
  expect_invalid([&] { (void)bus.topic("..", {}); }, "'.'");
  expect_invalid([&] { (void)bus.topic("md..quotes", {}); }, "\"..\"");
  expect_invalid([&] { (void)bus.topic(".md", {}); }, "starts or ends");
  expect_invalid([&] { (void)bus.topic("md.", {}); }, "starts or ends");
  expect_invalid([&] { (void)bus.topic("md quotes", {}); }, "' '");
  expect_invalid([&] { (void)bus.open_topic("../x"); }, "'/'");
  EXPECT_EQ(shm_entries("shmbus." + sb.name()), before);
  EXPECT_TRUE(bus.topic_names().empty());
  EXPECT_NO_THROW(validate_topic_name("md.quotes.AAPL"));
  EXPECT_NO_THROW(validate_topic_name(std::string(64, 'x')));
}

TEST(Names, BadParticipantNamesAreRefused) {
  ScopedBus sb;
  Bus bus = sb.open();
  PublisherOptions po;
  po.name = "has space";
  expect_invalid([&] { (void)bus.publisher("t", {}, po); }, "' '");
  SubscriberOptions so;
  so.name = std::string(32, 'n');
  expect_invalid([&] { (void)bus.subscriber("t", so); }, "32 characters");
  EXPECT_NO_THROW(validate_participant_name("strategy@1:a"));
}

}  // namespace
}  // namespace shmbus::test
