#include "hold_histogram.h"

#include <gtest/gtest.h>

namespace mpxdp::conn {
namespace {

TEST(HoldHistogram, BucketsAreMonotonicAndBoundsContainTheirValues) {
  std::size_t previous = 0;
  const std::uint64_t values[] = {0, 1, 15, 16, 17, 20, 24, 31, 32, 1000, 123456789, 1ULL << 62, UINT64_MAX};
  for (std::uint64_t v : values) {
    const std::size_t b = HoldHistogram::bucketOf(v);
    EXPECT_LT(b, HoldHistogram::kBuckets);
    EXPECT_GE(b, previous) << v;
    EXPECT_LE(v, HoldHistogram::upperBound(b)) << v;
    if (b > 0) {
      EXPECT_GT(v, HoldHistogram::upperBound(b - 1)) << v;
    }
    previous = b;
  }
}

TEST(HoldHistogram, PercentilesWithinABucketOfTheTruth) {
  HoldHistogram h;
  for (std::uint64_t v = 1; v <= 1000; ++v) h.record(v * 1000);  // 1 us .. 1 ms
  const HoldTimeSummary s = h.summary();
  EXPECT_EQ(s.samples, 1000u);
  EXPECT_EQ(s.maxNs, 1'000'000u);
  EXPECT_GE(s.p50Ns, 500'000u);
  EXPECT_LE(s.p50Ns, 500'000u * 5 / 4);
  EXPECT_GE(s.p90Ns, 900'000u);
  EXPECT_LE(s.p90Ns, 1'000'000u);
  EXPECT_GE(s.p99Ns, 990'000u);
  EXPECT_LE(s.p99Ns, 1'000'000u);
}

TEST(HoldHistogram, EmptyIsZero) {
  const HoldTimeSummary s = HoldHistogram().summary();
  EXPECT_EQ(s.samples, 0u);
  EXPECT_EQ(s.p99Ns, 0u);
}

}  // namespace
}  // namespace mpxdp::conn
