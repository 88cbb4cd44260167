#include "path_estimator.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "windowed_filter.h"

namespace mpxdp::path {
namespace {

constexpr std::uint64_t kMs = 1'000'000;
constexpr std::uint64_t kSecond = 1'000'000'000;

TEST(PathEstimatorTest, InitialRttBeforeSamples) {
  EstimatorOptions options;
  options.initialRttNs = 100 * kMs;
  PathEstimator est(options);
  EXPECT_FALSE(est.rttValid());
  EXPECT_EQ(est.srttNs(), 100 * kMs);
  EXPECT_EQ(est.rttVarNs(), 50 * kMs);
  EXPECT_EQ(est.minRttNs(), 0u);
  EXPECT_EQ(est.ptoNs(25 * kMs), 100 * kMs + 200 * kMs + 25 * kMs);
}

TEST(PathEstimatorTest, SmoothsAsRfc9002) {
  PathEstimator est;
  est.onRttSample(kMs, 20 * kMs, 0);
  EXPECT_TRUE(est.rttValid());
  EXPECT_EQ(est.srttNs(), 20 * kMs);
  EXPECT_EQ(est.rttVarNs(), 10 * kMs);
  EXPECT_EQ(est.minRttNs(), 20 * kMs);
  // 28 ms with 4 ms ack delay: 24 ms >= min 20 ms, so the delay is taken off.
  est.onRttSample(2 * kMs, 28 * kMs, 4 * kMs);
  EXPECT_EQ(est.latestRttNs(), 28 * kMs);
  EXPECT_EQ(est.rttVarNs(), (3 * 10 * kMs + 4 * kMs) / 4);
  EXPECT_EQ(est.srttNs(), (7 * 20 * kMs + 24 * kMs) / 8);
  // 21 ms with 5 ms ack delay would fall below min: used as is.
  const std::uint64_t srtt = est.srttNs();
  est.onRttSample(3 * kMs, 21 * kMs, 5 * kMs);
  EXPECT_EQ(est.srttNs(), (7 * srtt + 21 * kMs) / 8);
  EXPECT_EQ(est.minRttNs(), 20 * kMs);
  // PTO: srtt + max(4 rttvar, 1 ms) + max ack delay.
  EXPECT_EQ(est.ptoNs(5 * kMs), est.srttNs() + 4 * est.rttVarNs() + 5 * kMs);
}

TEST(PathEstimatorTest, PtoHasAFloorOfOneMillisecond) {
  PathEstimator est;
  for (int i = 0; i < 100; ++i) est.onRttSample(i * kMs, 200'000, 0);  // steady 200 us
  EXPECT_LT(4 * est.rttVarNs(), kMs);
  EXPECT_EQ(est.ptoNs(0), est.srttNs() + kMs);
}

TEST(PathEstimatorTest, MinRttRelearnsAfterTheWindow) {
  EstimatorOptions options;
  options.minWindowNs = kSecond;
  PathEstimator est(options);
  est.onRttSample(0, 10 * kMs, 0);
  // The route changed: 30 ms from now on. The old minimum holds for the window, then goes.
  std::uint64_t t = 0;
  for (; t < 900 * kMs; t += 10 * kMs) est.onRttSample(t, 30 * kMs, 0);
  EXPECT_EQ(est.minRttNs(), 10 * kMs);
  for (; t < 2200 * kMs; t += 10 * kMs) est.onRttSample(t, 30 * kMs, 0);
  EXPECT_EQ(est.minRttNs(), 30 * kMs);
  est.onRttSample(t, 5 * kMs, 0);  // a lower sample takes over at once
  EXPECT_EQ(est.minRttNs(), 5 * kMs);
}

TEST(PathEstimatorTest, DeliveryRateOnThePeerClock) {
  PathEstimator est;
  const std::uint64_t peer = 123 * kSecond;  // the peer's clock has its own origin
  EXPECT_EQ(est.onDelivered(0, 0, peer, false), 0u);
  EXPECT_EQ(est.deliveryRateBps(), 0u);
  // 1 ms later (below deliveryMinIntervalNs): no sample yet.
  EXPECT_EQ(est.onDelivered(kMs, 12'500, peer + kMs, false), 0u);
  // 2 ms after the first point: 25 000 bytes in 2 ms = 100 Mbit/s.
  EXPECT_EQ(est.onDelivered(50 * kMs, 25'000, peer + 2 * kMs, false), 100'000'000u);
  EXPECT_EQ(est.deliveryRateBps(), 100'000'000u);
  EXPECT_FALSE(est.deliveryAppLimited());
  // A reordered (older) ACK is ignored.
  EXPECT_EQ(est.onDelivered(51 * kMs, 20'000, peer + kMs, false), 0u);
  // App-limited on any ACK of the span marks the sample.
  EXPECT_EQ(est.onDelivered(52 * kMs, 30'000, peer + 3 * kMs, true), 0u);
  EXPECT_EQ(est.onDelivered(53 * kMs, 37'500, peer + 4 * kMs, false), 50'000'000u);
  EXPECT_TRUE(est.deliveryAppLimited());
  EXPECT_EQ(est.onDelivered(54 * kMs, 62'500, peer + 6 * kMs, false), 100'000'000u);
  EXPECT_FALSE(est.deliveryAppLimited());
}

TEST(PathEstimatorTest, ASpanLongerThanTheMaximumStartsOverInsteadOfASample) {
  PathEstimator est;
  const std::uint64_t peer = 7 * kSecond;
  EXPECT_EQ(est.onDelivered(0, 0, peer, false), 0u);
  // The path was cut for a second: 1 KB over 1 s is no measure of its rate.
  EXPECT_EQ(est.onDelivered(kSecond, 1000, peer + kSecond, false), 0u);
  // The next span starts at the restart: 12.5 KB in 1 ms = 100 Mbit/s.
  EXPECT_EQ(est.onDelivered(kSecond + 2 * kMs, 13'500, peer + kSecond + 2 * kMs, false), 50'000'000u);
}

TEST(PathEstimatorTest, OneWayDelayOnlyDifferencesCount) {
  PathEstimator est;
  EXPECT_FALSE(est.owdValid());
  EXPECT_EQ(est.queueDelayNs(), 0u);
  const std::int64_t offset = -7'000'000'000;  // peer clock behind ours
  std::uint64_t t = 0;
  for (; t < 100 * kMs; t += kMs) est.onOwdSample(t, offset + 5'000'000);
  EXPECT_TRUE(est.owdValid());
  EXPECT_EQ(est.owdMinNs(), offset + 5'000'000);
  EXPECT_EQ(est.owdSmoothedNs(), offset + 5'000'000);
  EXPECT_EQ(est.queueDelayNs(), 0u);
  // A queue builds: 8 ms more.
  for (; t < 200 * kMs; t += kMs) est.onOwdSample(t, offset + 13'000'000);
  EXPECT_NEAR(static_cast<double>(est.queueDelayNs()), 8e6, 0.1e6);
  EXPECT_EQ(est.owdMinNs(), offset + 5'000'000);
  // One sample moves the EWMA by 1/8 of the difference.
  PathEstimator one;
  one.onOwdSample(0, 1'000'000);
  one.onOwdSample(1, 9'000'000);
  EXPECT_EQ(one.owdSmoothedNs(), 2'000'000);
  EXPECT_EQ(one.queueDelayNs(), 1'000'000u);
}

// A queue on the way out lengthens the RTT as much as the one-way delay; a
// peer clock that runs fast lengthens only the one-way delay, and that is
// not a queue.
TEST(PathEstimatorTest, QueueDelayIsWhatTheRttGrewByAtMost) {
  PathEstimator est;
  std::uint64_t t = 0;
  for (; t < 100 * kMs; t += kMs) {
    est.onRttSample(t, 10'000'000, 0);
    est.onOwdSample(t, 5'000'000);
  }
  EXPECT_EQ(est.queueDelayNs(), 0u);
  // The peer's clock gained 3 ms; the RTT did not change.
  for (; t < 200 * kMs; t += kMs) {
    est.onRttSample(t, 10'000'000, 0);
    est.onOwdSample(t, 8'000'000);
  }
  EXPECT_EQ(est.queueDelayNs(), 0u);
  // A 4 ms queue: both grow. It counts at once, from the latest RTT.
  est.onRttSample(t, 14'000'000, 0);
  for (int i = 0; i < 30; ++i) est.onOwdSample(t, 12'000'000);
  EXPECT_NEAR(static_cast<double>(est.queueDelayNs()), 4e6, 0.1e6);
  // Without an RTT yet, the one-way delay alone.
  PathEstimator fresh;
  fresh.onOwdSample(0, 1'000'000);
  fresh.onOwdSample(1, 9'000'000);
  EXPECT_EQ(fresh.queueDelayNs(), 1'000'000u);
}

TEST(PathEstimatorTest, LossRatePerInterval) {
  EstimatorOptions options;
  options.lossIntervalNs = 50 * kMs;
  PathEstimator est(options);
  est.onRttSample(0, 10 * kMs, 0);  // srtt below the interval
  EXPECT_EQ(est.lossRate(), 0.0);
  // Interval 1: 90 acked, 10 lost.
  est.onAcked(0, 90, 90 * 1500);
  est.onLost(10 * kMs, 10, 10 * 1500);
  EXPECT_EQ(est.lossRate(), 0.0);  // not closed yet
  // Interval 2 starts (and closes interval 1: 10 %).
  est.onAcked(60 * kMs, 100, 100 * 1500);
  EXPECT_DOUBLE_EQ(est.lossRate(), 0.1);
  // Interval 3: closes interval 2 (0 %): EWMA 1/4.
  est.onAcked(120 * kMs, 100, 100 * 1500);
  EXPECT_DOUBLE_EQ(est.lossRate(), 0.075);
  EXPECT_EQ(est.packetsAcked(), 290u);
  EXPECT_EQ(est.packetsLost(), 10u);
}

TEST(WindowedFilterTest, MaxForgetsOldPeaks) {
  WindowedMax<std::uint64_t> f;
  EXPECT_FALSE(f.valid());
  f.update(10, 0, 100);
  f.update(10, 1, 50);
  f.update(10, 5, 70);
  EXPECT_EQ(f.best(), 100u);
  f.update(10, 11, 60);  // 100 aged out; the best later sample (70) takes over
  EXPECT_EQ(f.best(), 70u);
  f.update(10, 30, 20);
  EXPECT_EQ(f.best(), 20u);
  f.update(10, 31, 90);
  EXPECT_EQ(f.best(), 90u);
}

}  // namespace
}  // namespace mpxdp::path
