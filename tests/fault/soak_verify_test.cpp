// The stream verifier of the kill loops and the soak (tools/soak/verify.hpp)
// must see every fault it exists to find: a kill loop that passes because
// its checker is blind proves nothing.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "soak/verify.hpp"

namespace {

using shmbus::soak::StreamVerifier;

constexpr std::size_t kMax = 224;

std::vector<std::byte> msg(std::uint64_t gen, std::uint64_t index, std::uint64_t seq) {
  std::vector<std::byte> b(shmbus::soak::stamp_size(gen, index, kMax));
  (void)shmbus::soak::stamp(b.data(), b.size(), gen, index, seq);
  return b;
}

TEST(SoakVerify, CleanStreamWithATakeover) {
  StreamVerifier v(kMax, true);
  for (std::uint64_t s = 1; s <= 5; ++s) v.on_message(s, msg(1, s - 1, s));
  for (std::uint64_t s = 6; s <= 9; ++s) v.on_message(s, msg(2, s - 6, s));
  EXPECT_TRUE(v.clean()) << v.first_error();
  EXPECT_EQ(v.counts().delivered, 9u);
  EXPECT_EQ(v.per_generation().at(1), 5u);
  EXPECT_EQ(v.per_generation().at(2), 4u);
  EXPECT_EQ(v.expected(), 10u);
}

TEST(SoakVerify, TornPayload) {
  StreamVerifier v(kMax, true);
  auto b = msg(1, 0, 1);
  b.back() ^= std::byte{1};
  v.on_message(1, b);
  EXPECT_EQ(v.counts().torn, 1u);
  EXPECT_FALSE(v.clean());
  StreamVerifier w(kMax, true);
  auto c = msg(1, 0, 1);
  c.pop_back();  // cut short
  w.on_message(1, c);
  EXPECT_EQ(w.counts().torn, 1u);
}

TEST(SoakVerify, DuplicateAndMisplaced) {
  StreamVerifier v(kMax, false);
  v.on_message(1, msg(1, 0, 1));
  v.on_message(1, msg(1, 0, 1));
  EXPECT_EQ(v.counts().dup, 1u);
  StreamVerifier w(kMax, false);
  w.on_message(1, msg(1, 0, 7));  // a payload written for sequence 7
  EXPECT_EQ(w.counts().misplaced, 1u);
  EXPECT_FALSE(w.clean());
}

TEST(SoakVerify, UnreportedHoleIsLostAReportedOneIsNot) {
  StreamVerifier v(kMax, false);
  v.on_message(1, msg(1, 0, 1));
  v.on_gap(2, 3);
  v.on_message(5, msg(1, 4, 5));
  EXPECT_TRUE(v.clean()) << v.first_error();
  EXPECT_EQ(v.counts().gap_msgs, 3u);
  v.on_message(8, msg(1, 7, 8));  // 6 and 7 vanished without a gap
  EXPECT_EQ(v.counts().lost, 2u);
  EXPECT_FALSE(v.clean());
}

TEST(SoakVerify, GapOnAReliableTopicIsAnError) {
  StreamVerifier v(kMax, true);
  v.on_message(1, msg(1, 0, 1));
  v.on_gap(2, 1);
  v.on_message(3, msg(1, 2, 3));
  EXPECT_EQ(v.counts().reliable_gap, 1u);
  EXPECT_FALSE(v.clean());
}

TEST(SoakVerify, ProducerSequenceArithmetic) {
  // A producer that skipped a sequence (index and seq out of step).
  StreamVerifier v(kMax, true);
  v.on_message(1, msg(1, 0, 1));
  v.on_message(2, msg(1, 2, 2));
  EXPECT_EQ(v.counts().index_jump, 1u);
  // A new producer that did not start right after the last committed message.
  StreamVerifier w(kMax, true);
  w.on_message(1, msg(1, 0, 1));
  w.on_message(2, msg(2, 1, 2));
  EXPECT_EQ(w.counts().bad_handover, 1u);
  // A generation going back.
  StreamVerifier x(kMax, true);
  x.on_message(1, msg(2, 0, 1));
  x.on_message(2, msg(1, 0, 2));
  EXPECT_EQ(x.counts().gen_back, 1u);
}

}  // namespace
