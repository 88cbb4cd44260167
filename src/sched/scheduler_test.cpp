#include "scheduler.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace mpxdp::sched {
namespace {

std::unique_ptr<Scheduler> make(const SchedulerOptions& options, const std::vector<PathConfig>& paths) {
  auto result = makeScheduler(options, paths);
  EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().message());
  return result.ok() ? std::move(result.value()) : nullptr;
}

constexpr std::uint64_t kMbit = 1'000'000;
constexpr std::uint64_t kSecond = 1'000'000'000;

// Granted bits must stay within rate * elapsed + depth at every instant:
// granted * 8e9 <= rate * (t - t0) + max(burstNs * rate, one packet * 8e9).
bool withinBound(std::uint64_t grantedBytes, std::uint64_t rateBps, std::uint64_t elapsedNs,
                 std::uint64_t burstNs, std::uint32_t packetBytes) {
  __extension__ typedef unsigned __int128 Wide;  // NOLINT(modernize-use-using)
  const Wide granted = static_cast<Wide>(grantedBytes) * 8 * kSecond;
  const Wide depth =
      std::max(static_cast<Wide>(burstNs) * rateBps, static_cast<Wide>(packetBytes) * 8 * kSecond);
  return granted <= static_cast<Wide>(rateBps) * elapsedNs + depth;
}

TEST(RoundRobinTest, AlternatesStrictly) {
  SchedulerOptions options;
  auto scheduler = make(options, {{}, {}, {}});
  for (int i = 0; i < 30; ++i) EXPECT_EQ(scheduler->pick(0, 1000), i % 3);
  EXPECT_EQ(scheduler->pathCount(), 3U);
}

TEST(RoundRobinTest, WaitsForThePathInTurnInsteadOfSkippingAhead) {
  SchedulerOptions options;
  options.burstNs = 0;  // depth: one packet
  // Path 1 is ten times slower than path 0; path 2 is unpaced.
  auto scheduler = make(options, {{1000 * kMbit}, {100 * kMbit}, {0}});
  const std::uint32_t bytes = 1250;  // 10 us at 1 Gbit/s, 100 us at 100 Mbit/s
  std::uint64_t now = 0;
  EXPECT_EQ(scheduler->pick(now, bytes), 0);
  EXPECT_EQ(scheduler->pick(now, bytes), 1);
  EXPECT_EQ(scheduler->pick(now, bytes), 2);
  EXPECT_EQ(scheduler->pick(now, bytes), kNoPath);  // path 0 spent its packet of depth
  EXPECT_EQ(scheduler->nextEligibleNs(now, bytes), 10'000U);
  now = 10'000;
  EXPECT_EQ(scheduler->pick(now, bytes), 0);
  EXPECT_EQ(scheduler->pick(now, bytes), kNoPath);  // path 1 is in turn and not ready; 2 must wait
  EXPECT_EQ(scheduler->nextEligibleNs(now, bytes), 100'000U);
  EXPECT_EQ(scheduler->pick(99'999, bytes), kNoPath);
  EXPECT_EQ(scheduler->pick(100'000, bytes), 1);
  EXPECT_EQ(scheduler->pick(100'000, bytes), 2);
}

// Drives a scheduler as fast as pacing allows; returns bytes granted per path.
std::vector<std::uint64_t> saturate(Scheduler& scheduler, std::uint32_t bytes, std::uint64_t packets) {
  std::vector<std::uint64_t> granted(scheduler.pathCount(), 0);
  std::uint64_t now = 0;
  for (std::uint64_t sent = 0; sent < packets;) {
    const int path = scheduler.pick(now, bytes);
    if (path == kNoPath) {
      const std::uint64_t next = scheduler.nextEligibleNs(now, bytes);
      EXPECT_GT(next, now);
      now = next;
      continue;
    }
    granted[static_cast<std::size_t>(path)] += bytes;
    ++sent;
  }
  return granted;
}

void expectShares(const std::vector<std::uint64_t>& granted, const std::vector<double>& shares) {
  std::uint64_t total = 0;
  for (auto g : granted) total += g;
  for (std::size_t i = 0; i < granted.size(); ++i) {
    const double share = static_cast<double>(granted[i]) / static_cast<double>(total);
    EXPECT_NEAR(share, shares[i], shares[i] * 0.01) << "path " << i;
  }
}

TEST(WeightedRoundRobinTest, SharesMatchRatesUnderPacing) {
  SchedulerOptions options;
  options.kind = SchedulerKind::kWeightedRoundRobin;
  auto scheduler = make(options, {{100 * kMbit}, {300 * kMbit}, {600 * kMbit}});
  expectShares(saturate(*scheduler, 1098, 100'000), {0.1, 0.3, 0.6});
}

TEST(WeightedRoundRobinTest, SharesMatchRatesWhenPacingIsNotTheLimit) {
  SchedulerOptions options;
  options.kind = SchedulerKind::kWeightedRoundRobin;
  auto scheduler = make(options, {{100 * kMbit}, {300 * kMbit}, {600 * kMbit}});
  // Offered load at a third of the total: pacing never binds, the weights decide.
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::uint32_t> size(64, 1500);
  std::vector<std::uint64_t> granted(3, 0);
  std::uint64_t now = 0;
  for (int i = 0; i < 100'000; ++i) {
    const std::uint32_t bytes = size(rng);
    now += bytes * 8 * 3;  // 333 Mbit/s
    const int path = scheduler->pick(now, bytes);
    ASSERT_NE(path, kNoPath);
    granted[static_cast<std::size_t>(path)] += bytes;
  }
  expectShares(granted, {0.1, 0.3, 0.6});
}

TEST(WeightedRoundRobinTest, AllUnratedPathsShareEqually) {
  SchedulerOptions options;
  options.kind = SchedulerKind::kWeightedRoundRobin;
  auto scheduler = make(options, {{}, {}});
  std::vector<std::uint64_t> granted(2, 0);
  for (int i = 0; i < 1000; ++i) granted[static_cast<std::size_t>(scheduler->pick(0, 1000))] += 1000;
  EXPECT_EQ(granted[0], granted[1]);
}

TEST(PacingTest, OneSecondAt300MbitIsAccurateAndNeverAboveTheBound) {
  for (SchedulerKind kind : {SchedulerKind::kRoundRobin, SchedulerKind::kWeightedRoundRobin}) {
    SCOPED_TRACE(std::string(toString(kind)));
    SchedulerOptions options;
    options.kind = kind;
    options.burstNs = 1'000'000;
    const std::uint64_t rate = 300 * kMbit;
    auto scheduler = make(options, {{rate}});
    const std::uint32_t frame = 1098;
    // The caller polls at irregular instants (a busy loop with jitter).
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<std::uint64_t> step(0, 40'000);
    std::uint64_t granted = 0;
    std::uint64_t now = 0;
    while (now <= kSecond) {
      while (scheduler->pick(now, frame) != kNoPath) {
        granted += frame;
        ASSERT_TRUE(withinBound(granted, rate, now, options.burstNs, frame)) << "at " << now;
      }
      EXPECT_GT(scheduler->nextEligibleNs(now, frame), now);
      now += step(rng);
    }
    const double expected = static_cast<double>(rate) / 8.0;
    EXPECT_NEAR(static_cast<double>(granted), expected, expected * 0.01);
  }
}

TEST(PacingTest, OverheadBytesArePaced) {
  SchedulerOptions options;
  options.burstNs = 0;
  options.perPacketOverheadBytes = 250;
  auto scheduler = make(options, {{8 * kMbit}});  // 1 byte per us
  EXPECT_EQ(scheduler->pick(0, 750), 0);
  EXPECT_EQ(scheduler->nextEligibleNs(0, 750), 1'000'000U);  // 1000 bytes on the wire
}

TEST(PacingTest, EachPathCountsItsOwnOverhead) {
  SchedulerOptions options;
  options.burstNs = 0;
  options.perPacketOverheadBytes = 250;
  auto scheduler = make(options, {{8 * kMbit}, {8 * kMbit, 500}});  // 1 byte per us each
  EXPECT_EQ(scheduler->pick(0, 750), 0);
  EXPECT_EQ(scheduler->pick(0, 750), 1);
  EXPECT_EQ(scheduler->nextEligibleNs(0, 750), 1'000'000U);  // path 0: 750 + 250 bytes
  EXPECT_EQ(scheduler->pick(1'000'000, 750), 0);
  EXPECT_EQ(scheduler->nextEligibleNs(1'000'000, 750), 1'250'000U);  // path 1: 750 + 500 bytes
}

TEST(PacingTest, TotalCapCountsPayloadOnly) {
  SchedulerOptions options;
  options.burstNs = 0;
  options.perPacketOverheadBytes = 250;
  options.totalRateBps = 8 * kMbit;  // like iperf3's -b: application payload bits
  auto scheduler = make(options, {{0}, {0}});
  EXPECT_EQ(scheduler->pick(0, 750), 0);
  EXPECT_EQ(scheduler->nextEligibleNs(0, 750), 750'000U);
}

TEST(PacingTest, TotalCapIsRespected) {
  for (SchedulerKind kind : {SchedulerKind::kRoundRobin, SchedulerKind::kWeightedRoundRobin}) {
    SCOPED_TRACE(std::string(toString(kind)));
    SchedulerOptions options;
    options.kind = kind;
    options.totalRateBps = 150 * kMbit;
    options.burstNs = 500'000;
    auto scheduler = make(options, {{100 * kMbit}, {100 * kMbit}});
    const std::uint32_t frame = 1500;
    std::uint64_t granted = 0;
    std::uint64_t now = 0;
    std::vector<std::uint64_t> perPath(2, 0);
    while (now <= kSecond) {
      const int path = scheduler->pick(now, frame);
      if (path == kNoPath) {
        now = scheduler->nextEligibleNs(now, frame);
        continue;
      }
      granted += frame;
      perPath[static_cast<std::size_t>(path)] += frame;
      ASSERT_TRUE(withinBound(granted, options.totalRateBps, now, options.burstNs, frame));
      ASSERT_TRUE(
          withinBound(perPath[static_cast<std::size_t>(path)], 100 * kMbit, now, options.burstNs, frame));
    }
    const double expected = 150.0 * kMbit / 8.0;
    EXPECT_NEAR(static_cast<double>(granted), expected, expected * 0.01);
  }
}

TEST(PacingTest, TotalCapAppliesToUnpacedPaths) {
  SchedulerOptions options;
  options.totalRateBps = 80 * kMbit;
  options.burstNs = 0;
  auto scheduler = make(options, {{0}, {0}});
  EXPECT_EQ(scheduler->pick(0, 1000), 0);
  EXPECT_EQ(scheduler->pick(0, 1000), kNoPath);
  EXPECT_EQ(scheduler->nextEligibleNs(0, 1000), 100'000U);
  EXPECT_EQ(scheduler->pick(100'000, 1000), 1);
}

TEST(PacingTest, RefundGivesBackExactlyWhatPickTook) {
  for (const SchedulerKind kind : {SchedulerKind::kRoundRobin, SchedulerKind::kWeightedRoundRobin}) {
    SchedulerOptions options;
    options.kind = kind;
    options.totalRateBps = 500 * kMbit;
    options.perPacketOverheadBytes = 74;
    const std::vector<PathConfig> paths = {{300 * kMbit}, {300 * kMbit}};
    auto reference = make(options, paths);
    auto refunded = make(options, paths);
    // Same instant: count what a fresh scheduler grants before pacing stops it.
    const std::uint64_t now = kSecond;
    int granted = 0;
    while (reference->pick(now, 1000) != kNoPath) ++granted;
    ASSERT_GT(granted, 2);
    // Picks whose packets were not sent and were refunded cost nothing.
    for (int i = 0; i < 10 * granted; ++i) {
      const int path = refunded->pick(now, 1000);
      ASSERT_NE(path, kNoPath) << "refunds must keep the buckets full, pick " << i;
      refunded->refund(static_cast<std::size_t>(path), 1000);
    }
    int grantedAfter = 0;
    while (refunded->pick(now, 1000) != kNoPath) ++grantedAfter;
    EXPECT_EQ(grantedAfter, granted) << toString(kind);
    // A refund never makes a bucket deeper than full, and an out-of-range path is ignored.
    refunded->refund(7, 1000);
    for (int i = 0; i < 100; ++i) refunded->refund(0, 1000);
    int afterManyRefunds = 0;
    while (refunded->pick(now + 10 * kSecond, 1000) != kNoPath) ++afterManyRefunds;
    auto fresh = make(options, paths);
    int freshGranted = 0;
    while (fresh->pick(now + 10 * kSecond, 1000) != kNoPath) ++freshGranted;
    EXPECT_EQ(afterManyRefunds, freshGranted) << toString(kind);
  }
}

TEST(SchedulerFactoryTest, RejectsBadInput) {
  SchedulerOptions options;
  auto none = makeScheduler(options, {});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), EINVAL);
  EXPECT_NE(none.error().context().find("no paths"), std::string::npos);

  options.kind = SchedulerKind::kWeightedRoundRobin;
  const std::vector<PathConfig> mixed = {{100 * kMbit}, {0}};
  auto bad = makeScheduler(options, mixed);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().context().find("path 1 has rateBps 0"), std::string::npos) << bad.error().context();
  const std::vector<PathConfig> mixedFirst = {{0}, {100 * kMbit}};
  EXPECT_FALSE(makeScheduler(options, mixedFirst).ok());

  options.kind = SchedulerKind::kRoundRobin;
  EXPECT_TRUE(makeScheduler(options, mixed).ok());  // rr paces what has a rate
}

TEST(SchedulerFactoryTest, ParsesKindNames) {
  for (SchedulerKind kind : {SchedulerKind::kRoundRobin, SchedulerKind::kWeightedRoundRobin}) {
    auto parsed = parseSchedulerKind(toString(kind));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, kind);
  }
  EXPECT_FALSE(parseSchedulerKind("random").ok());
}

}  // namespace
}  // namespace mpxdp::sched
