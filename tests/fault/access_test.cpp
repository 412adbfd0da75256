// Access control and a full /dev/shm: segments private by default whatever
// the umask, shareable with a group, no squatting, clear errors.
#include <sys/stat.h>

#include <array>
#include <cstdio>

#include "fault_util.hpp"
#include "shmbus/detail/segments.hpp"

namespace shmbus::test {
namespace {

struct CmdResult {
  int status = -1;
  std::string out;
};

// Runs a shell command, capturing its stdout (bounded by `timeout` seconds).
CmdResult run(const std::string& cmd, int timeout = 30) {
  CmdResult r;
  const std::string full = "timeout " + std::to_string(timeout) + " " + cmd;
  FILE* p = ::popen(full.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), buf.size(), p) != nullptr) r.out += buf.data();
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string faultproc() {
  const char* p = std::getenv("SHMBUS_FAULTPROC");
  return p != nullptr ? p : "";
}

std::uint32_t mode_of(const std::string& segment) {
  struct stat st {};
  if (::stat(detail::shm_path(segment).c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

const std::string kAsNobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups ";

// Why a test that runs the helper as another user cannot run, or nullptr.
const char* missing_root_tools() {
  if (::geteuid() != 0) return "needs root (setpriv to another user)";
  if (faultproc().empty()) return "SHMBUS_FAULTPROC is not set";
  return nullptr;
}

TEST(FaultAccess, SegmentsArePrivateWhateverTheUmask) {
  ScopedBus sb("fa");
  const mode_t old = ::umask(0);
  {
    Bus bus = sb.open();
    (void)bus.topic("t", config(Policy::Lossy, 8));
  }
  ::umask(old);
  EXPECT_EQ(mode_of(detail::directory_segment_name(sb.name())), 0600u);
  EXPECT_EQ(mode_of(detail::topic_segment_name(sb.name(), "t")), 0600u);
}

TEST(FaultAccess, GroupSharedBusIs0660WithThatGroup) {
  ScopedBus sb("fa");
  BusOptions o;
  o.group = std::to_string(::getegid());
  Bus bus = sb.open(o);
  (void)bus.topic("t", config(Policy::Lossy, 8));
  for (const std::string& seg :
       {detail::directory_segment_name(sb.name()), detail::topic_segment_name(sb.name(), "t")}) {
    struct stat st {};
    ASSERT_EQ(::stat(detail::shm_path(seg).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0660u) << seg;
    EXPECT_EQ(st.st_gid, ::getegid()) << seg;
  }
  BusOptions bad;
  bad.group = "no-such-group-shmbus";
  try {
    (void)Bus::open_or_create(sb.name() + "x", bad);
    FAIL() << "an unknown group was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::InvalidArgument) << e.what();
  }
}

TEST(FaultAccess, AnotherUserGetsAClearPermissionError) {
  if (const char* why = missing_root_tools()) GTEST_SKIP() << why;
  ScopedBus sb("fa");
  Bus bus = sb.open();
  (void)bus.topic("t", config(Policy::Lossy, 8));
  const CmdResult r = run(kAsNobody + faultproc() + " open " + sb.name() + " ro");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out.rfind("error permission_denied: ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("BusOptions::group"), std::string::npos) << r.out;
}

TEST(FaultAccess, SquattedBusIsRefused) {
  if (const char* why = missing_root_tools()) GTEST_SKIP() << why;
  ScopedBus sb("fa");
  // nobody creates the bus first (it is 0600 and nobody's)...
  const CmdResult r = run(kAsNobody + faultproc() + " create " + sb.name() + " 8 64");
  ASSERT_EQ(r.out.rfind("ok", 0), 0u) << r.out;
  // ...and a program of another user (root here) refuses to publish into it.
  try {
    (void)Bus::open_or_create(sb.name());
    FAIL() << "opened a bus squatted by another user";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::PermissionDenied) << e.what();
    EXPECT_NE(std::string(e.what()).find("owned by uid 65534"), std::string::npos) << e.what();
  }
  // Read-only looks are allowed, and so is a bus shared on purpose.
  EXPECT_NO_THROW((void)Bus::open(sb.name(), Access::ReadOnly));
  BusOptions shared;
  shared.allow_other_owner = true;
  EXPECT_NO_THROW((void)Bus::open(sb.name(), Access::ReadWrite, shared));
}

TEST(FaultAccess, NamesStartingWithDashAreRejected) {
  for (const char* n : {"-rf", "--help", "-"}) {
    EXPECT_THROW(validate_bus_name(n), Error) << n;
    EXPECT_THROW(validate_topic_name(n), Error) << n;
  }
  EXPECT_NO_THROW(validate_bus_name("a-b"));
}

// A full /dev/shm: a named error, nothing left behind, no SIGBUS.
TEST(FaultAccess, FullDevShmIsANamedErrorAndLeavesNothing) {
  if (faultproc().empty()) GTEST_SKIP() << "SHMBUS_FAULTPROC is not set";
  if (run("unshare -m true").status != 0)
    GTEST_SKIP() << "unshare -m is not permitted here (needs root / CAP_SYS_ADMIN): cannot make a "
                    "private tmpfs";
  // A 4 MiB /dev/shm and a 16 MiB topic (16384 slots of 1 KiB).
  const CmdResult r = run("unshare -m sh -c 'mount -t tmpfs -o size=4m tmpfs /dev/shm && exec " +
                          faultproc() + " create full 16384 1024'");
  EXPECT_EQ(r.status, 0) << "the helper died (SIGBUS?): " << r.out;
  EXPECT_NE(r.out.find("error no_space: /dev/shm is full: cannot reserve"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("temporaries 0"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace shmbus::test
