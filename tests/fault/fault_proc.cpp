// shmbus-faultproc: a helper the fault tests run in conditions a test
// process cannot put itself in (another user, a private /dev/shm).
//
//   shmbus-faultproc create <bus> <slot_count> <slot_size>   create a bus and a topic
//   shmbus-faultproc open <bus> rw|ro                       open an existing bus
//   shmbus-faultproc subscribe <bus> <topic>                open a bus and subscribe
//
// Prints one line: "ok" or "error <code>: <message>"; then, for create,
// "temporaries <n>" (shmbus-tmp.* files left in /dev/shm). Exit status 0
// unless the arguments are wrong.
#include <dirent.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "shmbus/shmbus.hpp"

namespace {

int temporaries() {
  int n = 0;
  DIR* d = ::opendir("/dev/shm");
  if (d == nullptr) return -1;
  while (const dirent* e = ::readdir(d))
    n += std::string(e->d_name).rfind("shmbus-tmp.", 0) == 0 ? 1 : 0;
  ::closedir(d);
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: shmbus-faultproc create|open|subscribe <bus> ...\n");
    return 2;
  }
  const std::string cmd = argv[1];
  const std::string bus = argv[2];
  try {
    if (cmd == "create" && argc == 5) {
      shmbus::Bus b = shmbus::Bus::open_or_create(bus);
      shmbus::TopicConfig c;
      c.slot_count = static_cast<std::uint32_t>(std::strtoul(argv[3], nullptr, 10));
      c.slot_size = static_cast<std::uint32_t>(std::strtoul(argv[4], nullptr, 10));
      try {
        (void)b.topic("big", c);
        std::printf("ok\n");
      } catch (const shmbus::Error& e) {
        std::printf("error %s: %s\n", std::string(shmbus::to_string(e.code())).c_str(), e.what());
      }
      std::printf("temporaries %d\n", temporaries());
      return 0;
    }
    if (cmd == "open" && argc == 4) {
      const auto access =
          std::string(argv[3]) == "ro" ? shmbus::Access::ReadOnly : shmbus::Access::ReadWrite;
      (void)shmbus::Bus::open(bus, access);
      std::printf("ok\n");
      return 0;
    }
    if (cmd == "subscribe" && argc == 4) {
      shmbus::Bus b = shmbus::Bus::open(bus);
      shmbus::Subscriber s = b.subscriber(argv[3]);
      std::printf("ok\n");
      return 0;
    }
  } catch (const shmbus::Error& e) {
    std::printf("error %s: %s\n", std::string(shmbus::to_string(e.code())).c_str(), e.what());
    return 0;
  }
  std::fprintf(stderr, "shmbus-faultproc: bad arguments\n");
  return 2;
}
