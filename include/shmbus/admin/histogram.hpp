// shmbus — a fixed-size, log-bucketed latency histogram.
//
//   shmbus::Histogram h;
//   for (...) h.record(meta.age_ns());           // O(1), noexcept, no allocation
//   std::printf("p99 %llu ns\n", static_cast<unsigned long long>(h.percentile(99)));
//
// Bucketing (HdrHistogram-like, integer only). With M = kSubBucketBits = 7
// and S = 2^M = 128:
//
//   shift(v) = max(0, bit_width(v) - 1 - M)       the octave of v, minus M
//   index(v) = shift(v) * S + (v >> shift(v))
//
//   values      0 ..   255   one bucket per value (exact)
//   values    256 ..   511   width   2, buckets  256 ..  383
//   values    512 ..  1023   width   4, buckets  384 ..  511
//   ...       every further power of two: 128 buckets, each twice as wide
//   values 2^41 .. 2^42-1    width 2^34, the last 128 buckets (..4607)
//
// Above 255 a bucket [L, L + w) always has L >= 128 * w, so its width is at
// most 1/128 (0.78%) of any value in it. percentile() answers with the
// bucket's midpoint L + w/2, which is within w/2 <= L/256 of every value in
// the bucket: the error bound is 1/256 (0.39%) of the true value, exact below
// 256 ns.
//
// Range: 0 .. kMaxTrackable = 2^42 - 1 ns (73 minutes). A larger value is
// counted in the top bucket (overflow() says how many were), so count() and
// ranks stay exact; min(), max() and mean() use the values as recorded, and
// percentile() is clamped into [min(), max()], so percentile(100) == max().
//
// Memory: 4608 64-bit counters (36 KiB) plus a few words, fixed; nothing
// allocates. Percentiles follow the nearest-rank definition: percentile(p)
// approximates the value of rank ceil(p/100 * count()) in sorted order
// (rank 1 for p = 0).
//
// Empty histogram: count() == 0 and min(), max(), mean(), percentile() all
// return 0.
//
// Thread safety: single writer. One thread records; nothing may read (or
// merge from) a Histogram while another thread records into it. For a live
// view from another thread, hand whole histograms over (double buffering).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace shmbus {

class Histogram {
 public:
  // Mantissa bits: 2^kSubBucketBits buckets per power of two.
  static constexpr unsigned kSubBucketBits = 7;
  static constexpr std::uint64_t kSubBuckets = std::uint64_t{1} << kSubBucketBits;
  // Largest value told apart from its neighbours by the bucketing (2^42 - 1 ns, 73 min).
  static constexpr unsigned kValueBits = 42;
  static constexpr std::uint64_t kMaxTrackable = (std::uint64_t{1} << kValueBits) - 1;
  // Buckets: one per value below 2*S, then S per power of two up to 2^kValueBits.
  static constexpr std::size_t kBucketCount =
      static_cast<std::size_t>((kValueBits - kSubBucketBits + 1) * kSubBuckets);
  // Bound on |percentile(p) - true order statistic| / true order statistic.
  static constexpr double kRelativeError = 1.0 / static_cast<double>(2 * kSubBuckets);

  Histogram() noexcept { reset(); }

  // Counts one value. Values above kMaxTrackable land in the top bucket.
  void record(std::uint64_t ns) noexcept {
    const std::uint64_t clamped = ns > kMaxTrackable ? kMaxTrackable : ns;
    overflow_ += ns > kMaxTrackable ? 1u : 0u;
    ++counts_[bucket_index(clamped)];
    ++count_;
    sum_ += ns;
    min_ = std::min(min_, ns);
    max_ = std::max(max_, ns);
  }

  // Adds every value `other` counted, as if recorded here.
  void merge(const Histogram& other) noexcept {
    if (other.count_ == 0) return;
    for (std::size_t i = 0; i < kBucketCount; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    overflow_ += other.overflow_;
    sum_ += other.sum_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }

  void reset() noexcept {
    counts_.fill(0);
    count_ = 0;
    overflow_ = 0;
    sum_ = 0;
    min_ = std::numeric_limits<std::uint64_t>::max();
    max_ = 0;
  }

  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  [[nodiscard]] bool empty() const noexcept { return count_ == 0; }
  // Values that were above kMaxTrackable (counted in the top bucket).
  [[nodiscard]] std::uint64_t overflow() const noexcept { return overflow_; }
  // Exact smallest / largest value recorded; 0 when empty.
  [[nodiscard]] std::uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
  [[nodiscard]] std::uint64_t max() const noexcept { return max_; }
  // Exact arithmetic mean of the recorded values; 0 when empty.
  [[nodiscard]] double mean() const noexcept {
    return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_);
  }

  // The value at percentile p (clamped into [0, 100]; NaN reads as 0), within
  // kRelativeError of the true nearest-rank order statistic. O(kBucketCount).
  [[nodiscard]] std::uint64_t percentile(double p) const noexcept {
    if (count_ == 0) return 0;
    if (!(p > 0.0)) return min_;
    if (p >= 100.0) return max_;
    // Nearest rank: ceil(p/100 * n), in [1, n]. The product is rounded a
    // hair down first so that e.g. 99.9% of 1000 is rank 999, not 1000,
    // when the double product comes out as 999.0000000000001.
    const double exact = p / 100.0 * static_cast<double>(count_);
    auto rank = static_cast<std::uint64_t>(exact);
    if (static_cast<double>(rank) < exact * (1.0 - 1e-12)) ++rank;
    rank = std::clamp<std::uint64_t>(rank, 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBucketCount; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::clamp(bucket_midpoint(i), min_, max_);
    }
    return max_;  // unreachable: the counts add up to count_
  }

  // ---- the bucketing, exposed for tests and for tools that export buckets

  [[nodiscard]] static constexpr std::size_t bucket_index(std::uint64_t v) noexcept {
    const unsigned width = static_cast<unsigned>(std::bit_width(v));
    const unsigned shift = width > kSubBucketBits + 1 ? width - kSubBucketBits - 1 : 0;
    return static_cast<std::size_t>(std::uint64_t{shift} * kSubBuckets + (v >> shift));
  }
  // Smallest value of bucket i.
  [[nodiscard]] static constexpr std::uint64_t bucket_lower(std::size_t i) noexcept {
    if (i < 2 * kSubBuckets) return i;
    const std::uint64_t shift = i / kSubBuckets - 1;
    return (i - shift * kSubBuckets) << shift;
  }
  // Number of values bucket i holds.
  [[nodiscard]] static constexpr std::uint64_t bucket_width(std::size_t i) noexcept {
    return i < 2 * kSubBuckets ? 1 : std::uint64_t{1} << (i / kSubBuckets - 1);
  }
  // The value percentile() reports for bucket i.
  [[nodiscard]] static constexpr std::uint64_t bucket_midpoint(std::size_t i) noexcept {
    return bucket_lower(i) + bucket_width(i) / 2;
  }
  // Count of bucket i (for exporters).
  [[nodiscard]] std::uint64_t bucket_count(std::size_t i) const noexcept { return counts_[i]; }

 private:
  // Exact sum even for values near 2^64 recorded many times (GCC/Clang extension).
  __extension__ typedef unsigned __int128 Sum;

  std::array<std::uint64_t, kBucketCount> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t overflow_ = 0;
  Sum sum_ = 0;
  std::uint64_t min_ = 0;
  std::uint64_t max_ = 0;
};

static_assert(Histogram::bucket_index(Histogram::kMaxTrackable) == Histogram::kBucketCount - 1,
              "the largest trackable value must land in the last bucket");
static_assert(Histogram::bucket_index(2 * Histogram::kSubBuckets) == 2 * Histogram::kSubBuckets,
              "the logarithmic buckets must follow the exact ones without a hole");
static_assert(Histogram::bucket_lower(Histogram::kBucketCount - 1) +
                      Histogram::bucket_width(Histogram::kBucketCount - 1) ==
                  Histogram::kMaxTrackable + 1,
              "the last bucket must end at kMaxTrackable");

}  // namespace shmbus
