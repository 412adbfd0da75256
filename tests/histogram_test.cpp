// Tests of shmbus::Histogram (include/shmbus/histogram.hpp): the bucketing,
// percentiles of known distributions against the exact order statistics
// within the stated error bound, exact min/max/mean, merge, the extremes and
// the empty histogram.
#include "shmbus/admin/histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <type_traits>
#include <vector>

namespace {

using shmbus::Histogram;

constexpr double kPercentiles[] = {0.0,  0.1,  1.0,  5.0,  10.0, 25.0,  50.0,
                                   75.0, 90.0, 99.0, 99.5, 99.9, 99.99, 100.0};

// The nearest-rank order statistic of sorted `v`: rank ceil(p/100 * n), at
// least 1. Computed in integers (p in hundredths of a percent) so the test
// does not share the histogram's floating-point rounding.
std::uint64_t order_statistic(const std::vector<std::uint64_t>& sorted, double p) {
  const auto n = static_cast<std::uint64_t>(sorted.size());
  const auto p_e4 = static_cast<std::uint64_t>(std::llround(p * 100.0));  // p in 1e-4 units of 1
  std::uint64_t rank = (p_e4 * n + 9999) / 10000;
  rank = std::clamp<std::uint64_t>(rank, 1, n);
  return sorted[static_cast<std::size_t>(rank - 1)];
}

// |got - want| <= kRelativeError * want (exact for want == 0).
void expect_within_bound(std::uint64_t got, std::uint64_t want, double p) {
  const double err = std::fabs(static_cast<double>(got) - static_cast<double>(want));
  EXPECT_LE(err, Histogram::kRelativeError * static_cast<double>(want))
      << "p" << p << ": histogram says " << got << ", true order statistic is " << want;
}

void check_against_exact(const Histogram& h, std::vector<std::uint64_t> values) {
  std::sort(values.begin(), values.end());
  ASSERT_EQ(h.count(), values.size());
  EXPECT_EQ(h.min(), values.front());
  EXPECT_EQ(h.max(), values.back());
  for (double p : kPercentiles) expect_within_bound(h.percentile(p), order_statistic(values, p), p);
}

// 36 KiB: keep them off the test's stack.
std::unique_ptr<Histogram> make() {
  return std::make_unique<Histogram>();
}

TEST(HistogramProperties, FixedSizeNoexceptHotPath) {
  static_assert(noexcept(std::declval<Histogram&>().record(1)));
  static_assert(noexcept(std::declval<Histogram&>().merge(std::declval<const Histogram&>())));
  static_assert(noexcept(std::declval<const Histogram&>().percentile(50.0)));
  static_assert(std::is_nothrow_copy_constructible_v<Histogram>);
  static_assert(sizeof(Histogram) < 40 * 1024, "fixed memory, about 36 KiB");
  EXPECT_LT(Histogram::kRelativeError, 0.01);
  // 1 hour must be inside the tracked range.
  EXPECT_GE(Histogram::kMaxTrackable, std::uint64_t{3600} * 1'000'000'000);
}

TEST(HistogramBuckets, ContiguousAndWithinRelativeWidth) {
  std::uint64_t expected_lower = 0;
  for (std::size_t i = 0; i < Histogram::kBucketCount; ++i) {
    const std::uint64_t lo = Histogram::bucket_lower(i);
    const std::uint64_t w = Histogram::bucket_width(i);
    ASSERT_EQ(lo, expected_lower) << "bucket " << i
                                  << " does not start where the previous one ended";
    ASSERT_EQ(Histogram::bucket_index(lo), i);
    ASSERT_EQ(Histogram::bucket_index(lo + w - 1), i);
    if (w > 1) {
      // The width is at most 1/128 of the smallest value in the bucket.
      ASSERT_LE(w * Histogram::kSubBuckets, lo) << "bucket " << i;
    }
    expected_lower = lo + w;
  }
  EXPECT_EQ(expected_lower, Histogram::kMaxTrackable + 1);
}

TEST(HistogramBuckets, SmallValuesAreExact) {
  auto h = make();
  for (std::uint64_t v = 0; v < 256; ++v) h->record(v);
  for (std::uint64_t v = 0; v < 256; ++v) {
    // rank v+1 of 256 values 0..255 is the value v.
    const double p = (static_cast<double>(v) + 0.5) / 256.0 * 100.0;
    EXPECT_EQ(h->percentile(p), v) << "p" << p;
  }
}

TEST(HistogramEmpty, EverythingIsZero) {
  auto h = make();
  EXPECT_TRUE(h->empty());
  EXPECT_EQ(h->count(), 0u);
  EXPECT_EQ(h->min(), 0u);
  EXPECT_EQ(h->max(), 0u);
  EXPECT_EQ(h->mean(), 0.0);
  EXPECT_EQ(h->overflow(), 0u);
  for (double p : kPercentiles) EXPECT_EQ(h->percentile(p), 0u) << "p" << p;
}

TEST(HistogramEmpty, ResetReturnsToEmpty) {
  auto h = make();
  h->record(5);
  h->record(std::numeric_limits<std::uint64_t>::max());
  h->reset();
  EXPECT_TRUE(h->empty());
  EXPECT_EQ(h->min(), 0u);
  EXPECT_EQ(h->max(), 0u);
  EXPECT_EQ(h->overflow(), 0u);
  EXPECT_EQ(h->percentile(50), 0u);
  for (std::size_t i = 0; i < Histogram::kBucketCount; ++i) ASSERT_EQ(h->bucket_count(i), 0u);
  // And it records normally again, min not stuck at the old value.
  h->record(1000);
  EXPECT_EQ(h->min(), 1000u);
  EXPECT_EQ(h->max(), 1000u);
}

TEST(HistogramDistributions, UniformOneToMillion) {
  auto h = make();
  std::vector<std::uint64_t> values;
  values.reserve(1'000'000);
  for (std::uint64_t v = 1; v <= 1'000'000; ++v) {
    h->record(v);
    values.push_back(v);
  }
  check_against_exact(*h, values);
  EXPECT_DOUBLE_EQ(h->mean(), 500'000.5);
  // Spot values, stated plainly: p50 of 1..1e6 is 500000.
  EXPECT_NEAR(static_cast<double>(h->percentile(50)), 500'000.0,
              500'000.0 * Histogram::kRelativeError);
  EXPECT_NEAR(static_cast<double>(h->percentile(99)), 990'000.0,
              990'000.0 * Histogram::kRelativeError);
}

TEST(HistogramDistributions, RandomUniformShuffled) {
  std::mt19937_64 rng(12345);
  std::uniform_int_distribution<std::uint64_t> dist(1, 1'000'000);
  auto h = make();
  std::vector<std::uint64_t> values(200'000);
  for (auto& v : values) {
    v = dist(rng);
    h->record(v);
  }
  check_against_exact(*h, values);
}

TEST(HistogramDistributions, LogNormalAcrossManyOctaves) {
  // Latency-like: median ~1 us, tail reaching milliseconds.
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(std::log(1000.0), 1.5);
  auto h = make();
  std::vector<std::uint64_t> values(200'000);
  for (auto& v : values) {
    v = static_cast<std::uint64_t>(dist(rng));
    h->record(v);
  }
  check_against_exact(*h, values);
}

TEST(HistogramDistributions, Constant) {
  for (std::uint64_t c : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{42}, std::uint64_t{777},
                          std::uint64_t{123'456'789}, Histogram::kMaxTrackable}) {
    auto h = make();
    for (int i = 0; i < 1000; ++i) h->record(c);
    EXPECT_EQ(h->count(), 1000u);
    EXPECT_EQ(h->min(), c);
    EXPECT_EQ(h->max(), c);
    EXPECT_DOUBLE_EQ(h->mean(), static_cast<double>(c));
    // Clamped into [min, max], a constant is reported exactly.
    for (double p : kPercentiles) EXPECT_EQ(h->percentile(p), c) << "constant " << c << " p" << p;
  }
}

TEST(HistogramDistributions, TwoPoint) {
  // 990 fast values and 10 slow ones: the tail must show the slow ones and
  // the body must not be pulled towards them.
  auto h = make();
  std::vector<std::uint64_t> values;
  for (int i = 0; i < 990; ++i) {
    h->record(300);
    values.push_back(300);
  }
  for (int i = 0; i < 10; ++i) {
    h->record(5'000'000);
    values.push_back(5'000'000);
  }
  check_against_exact(*h, values);
  expect_within_bound(h->percentile(50), 300, 50);
  expect_within_bound(h->percentile(99), 300, 99);            // rank 990
  expect_within_bound(h->percentile(99.1), 5'000'000, 99.1);  // rank 991
  EXPECT_EQ(h->percentile(100), 5'000'000u);
  EXPECT_DOUBLE_EQ(h->mean(), (990.0 * 300 + 10.0 * 5'000'000) / 1000.0);
}

TEST(HistogramExact, MinMaxMeanAreExact) {
  auto h = make();
  // Values that are not bucket boundaries.
  const std::uint64_t values[] = {1'000'000'007, 257, 999'983, 65'537};
  for (std::uint64_t v : values) h->record(v);
  EXPECT_EQ(h->min(), 257u);
  EXPECT_EQ(h->max(), 1'000'000'007u);
  EXPECT_DOUBLE_EQ(h->mean(), (1'000'000'007.0 + 257.0 + 999'983.0 + 65'537.0) / 4.0);
  EXPECT_EQ(h->percentile(0), 257u);
  EXPECT_EQ(h->percentile(100), 1'000'000'007u);
}

TEST(HistogramExact, PercentileArgumentIsClamped) {
  auto h = make();
  for (std::uint64_t v = 1000; v < 2000; ++v) h->record(v);
  EXPECT_EQ(h->percentile(-5.0), 1000u);
  EXPECT_EQ(h->percentile(250.0), 1999u);
  EXPECT_EQ(h->percentile(std::numeric_limits<double>::quiet_NaN()), 1000u);
}

TEST(HistogramMerge, EqualsRecordingBoth) {
  std::mt19937_64 rng(99);
  std::lognormal_distribution<double> dist(std::log(2000.0), 1.0);
  auto a = make();
  auto b = make();
  auto both = make();
  for (int i = 0; i < 50'000; ++i) {
    const auto v = static_cast<std::uint64_t>(dist(rng));
    ((i % 3 == 0) ? *a : *b).record(v);
    both->record(v);
  }
  b->record(std::numeric_limits<std::uint64_t>::max());
  both->record(std::numeric_limits<std::uint64_t>::max());

  a->merge(*b);
  EXPECT_EQ(a->count(), both->count());
  EXPECT_EQ(a->min(), both->min());
  EXPECT_EQ(a->max(), both->max());
  EXPECT_EQ(a->overflow(), both->overflow());
  EXPECT_DOUBLE_EQ(a->mean(), both->mean());
  for (std::size_t i = 0; i < Histogram::kBucketCount; ++i)
    ASSERT_EQ(a->bucket_count(i), both->bucket_count(i));
  for (double p : kPercentiles) EXPECT_EQ(a->percentile(p), both->percentile(p)) << "p" << p;
}

TEST(HistogramMerge, WithEmptyEitherWay) {
  auto full = make();
  for (std::uint64_t v = 500; v < 900; ++v) full->record(v);
  const Histogram before = *full;

  auto empty = make();
  full->merge(*empty);
  EXPECT_EQ(full->count(), before.count());
  EXPECT_EQ(full->min(), before.min());
  EXPECT_EQ(full->max(), before.max());
  EXPECT_EQ(full->percentile(50), before.percentile(50));

  empty->merge(*full);
  EXPECT_EQ(empty->count(), before.count());
  EXPECT_EQ(empty->min(), 500u);  // not the empty histogram's sentinel
  EXPECT_EQ(empty->max(), 899u);
  EXPECT_EQ(empty->percentile(90), before.percentile(90));
}

TEST(HistogramExtremes, ZeroIsRecordedExactly) {
  auto h = make();
  h->record(0);
  h->record(0);
  h->record(10);
  EXPECT_EQ(h->count(), 3u);
  EXPECT_EQ(h->min(), 0u);
  EXPECT_EQ(h->percentile(50), 0u);
  EXPECT_EQ(h->percentile(100), 10u);
  EXPECT_EQ(h->bucket_count(0), 2u);
}

TEST(HistogramExtremes, HugeValuesClampToTheTopBucketAndAreCounted) {
  auto h = make();
  constexpr std::uint64_t kHuge = std::numeric_limits<std::uint64_t>::max();
  constexpr std::uint64_t kTwoHours = std::uint64_t{7200} * 1'000'000'000;
  h->record(100);
  h->record(kTwoHours);
  h->record(kHuge);
  h->record(kHuge);
  EXPECT_EQ(h->count(), 4u);
  EXPECT_EQ(h->overflow(), 3u);
  EXPECT_EQ(h->bucket_count(Histogram::kBucketCount - 1), 3u);
  EXPECT_EQ(h->min(), 100u);
  EXPECT_EQ(h->max(), kHuge);  // exact, not clamped
  EXPECT_EQ(h->percentile(100), kHuge);
  EXPECT_EQ(h->percentile(25), 100u);
  // Ranks 2..4 are in the top bucket: reported as its midpoint (>= kMaxTrackable / 2 + ...).
  const std::uint64_t top = h->percentile(50);
  EXPECT_GE(top, Histogram::bucket_lower(Histogram::kBucketCount - 1));
  EXPECT_LE(top, Histogram::kMaxTrackable);
  // The mean is exact even though the sum exceeds 64 bits.
  const double expected_mean =
      (100.0 + static_cast<double>(kTwoHours) + 2.0 * static_cast<double>(kHuge)) / 4.0;
  EXPECT_DOUBLE_EQ(h->mean(), expected_mean);
}

TEST(HistogramExtremes, OneHourIsTrackedWithinTheBound) {
  auto h = make();
  constexpr std::uint64_t kHour = std::uint64_t{3600} * 1'000'000'000;
  h->record(1);
  h->record(kHour);
  h->record(kHour - 12345);
  EXPECT_EQ(h->overflow(), 0u);
  expect_within_bound(h->percentile(60), kHour - 12345, 60);
  EXPECT_EQ(h->percentile(0), 1u);
}

}  // namespace
