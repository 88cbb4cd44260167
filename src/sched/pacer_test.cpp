#include "pacer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace mpxdp::sched {
namespace {

constexpr std::uint64_t kMbit = 1'000'000;
constexpr std::uint64_t kSecond = 1'000'000'000;

__extension__ typedef unsigned __int128 Wide;  // NOLINT(modernize-use-using)

struct Grant {
  std::uint64_t atNs;
  std::uint32_t bytes;
};

// A greedy sender polling at irregular instants (busy spells and idle gaps)
// with random packet sizes; returns every grant.
std::vector<Grant> greedy(Pacer& pacer, std::uint64_t untilNs, std::uint32_t maxPacket, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::uint32_t> size(64, maxPacket);
  std::uniform_int_distribution<std::uint64_t> step(0, 30'000);
  std::uniform_int_distribution<int> idle(0, 50);
  std::vector<Grant> grants;
  std::uint32_t next = size(rng);
  for (std::uint64_t now = 0; now <= untilNs;) {
    while (pacer.conforms(now)) {
      pacer.take(now, next);
      grants.push_back({now, next});
      next = size(rng);
    }
    now += idle(rng) == 0 ? 2'000'000 : step(rng);
  }
  return grants;
}

// Over every window [a, b] of grants: bytes * 8e9 <= rate * (b - a + burst) + one packet.
void expectWithinBound(const std::vector<Grant>& grants, std::uint64_t rateBps, std::uint64_t burstNs,
                       std::uint32_t maxPacket) {
  for (std::size_t i = 0; i < grants.size(); ++i) {
    Wide bytes = 0;
    for (std::size_t j = i; j < grants.size(); ++j) {
      bytes += grants[j].bytes;
      const Wide allowed = static_cast<Wide>(rateBps) * (grants[j].atNs - grants[i].atNs + burstNs) +
                           Wide{maxPacket} * 8 * kSecond;
      ASSERT_LE(bytes * 8 * kSecond, allowed) << "window " << grants[i].atNs << " .. " << grants[j].atNs;
    }
  }
}

TEST(PacerTest, NeverGrantsMoreThanRateTimesWindowPlusBurstPlusOnePacket) {
  for (std::uint64_t burstNs : {std::uint64_t{0}, std::uint64_t{100'000}, std::uint64_t{1'000'000}}) {
    SCOPED_TRACE(burstNs);
    const std::uint64_t rate = 300 * kMbit;
    Pacer pacer(rate, burstNs);
    const auto grants = greedy(pacer, 100'000'000, 1500, burstNs + 1);
    ASSERT_GT(grants.size(), 500U);
    expectWithinBound(grants, rate, burstNs, 1500);
  }
}

TEST(PacerTest, SustainedRateIsAccurateAtAnInexactRate) {
  // 999'999'937 bps: no cost divides evenly, every one is rounded up.
  const std::uint64_t rate = 999'999'937;
  Pacer pacer(rate, 50'000);
  std::uint64_t bytes = 0;
  std::uint64_t now = 0;
  for (; now < kSecond; now += 997) {
    while (pacer.conforms(now)) {
      pacer.take(now, 1098);
      bytes += 1098;
    }
  }
  const Wide limit = static_cast<Wide>(rate) * (now + 50'000) + Wide{1098} * 8 * kSecond;
  EXPECT_LE(Wide{bytes} * 8 * kSecond, limit);
  EXPECT_GT(static_cast<double>(bytes) * 8, 0.9998 * static_cast<double>(rate));
}

TEST(PacerTest, CostRoundingNeverGrantsAboveTheRate) {
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<std::uint64_t> rate(1, 100'000'000'000);
  std::uniform_int_distribution<std::uint64_t> size(1, 65'536);
  for (int i = 0; i < 100'000; ++i) {
    Pacer pacer(rate(rng), 0);
    const std::uint64_t bytes = size(rng);
    const std::uint64_t cost = pacer.costNs(bytes);
    // cost * rate >= bits * 1e9, and by less than one ns worth.
    ASSERT_GE(Wide{cost} * pacer.rateBps(), Wide{bytes} * 8 * kSecond) << pacer.rateBps() << " " << bytes;
    ASSERT_LT(Wide{cost} * pacer.rateBps(), Wide{bytes} * 8 * kSecond + pacer.rateBps());
  }
  EXPECT_EQ(Pacer(1000 * kMbit, 0).costNs(1250), 10'000U);
  EXPECT_EQ(Pacer(3, 0).costNs(1), 2'666'666'667U);
}

TEST(PacerTest, EligibleAtNs) {
  Pacer pacer(1000 * kMbit, 20'000);  // 1250 B: 10 us; burst 20 us
  EXPECT_EQ(pacer.eligibleAtNs(5), 5U);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(pacer.conforms(0));
    pacer.take(0, 1250);
  }
  // Granted 30 us ahead, 20 us of burst: the next one at 10 us.
  EXPECT_FALSE(pacer.conforms(0));
  EXPECT_EQ(pacer.aheadNs(0), 30'000U);
  EXPECT_EQ(pacer.eligibleAtNs(0), 10'000U);
  EXPECT_EQ(pacer.eligibleAtNs(9'000), 10'000U);
  EXPECT_FALSE(pacer.conforms(9'999));
  EXPECT_TRUE(pacer.conforms(10'000));
  EXPECT_EQ(pacer.eligibleAtNs(10'000), 10'000U);
  EXPECT_EQ(pacer.eligibleAtNs(12'345), 12'345U);
  // After an idle spell the bucket is full again, but no fuller.
  EXPECT_EQ(pacer.aheadNs(1'000'000), 0U);
  pacer.take(1'000'000, 1250);
  pacer.take(1'000'000, 1250);
  pacer.take(1'000'000, 1250);
  EXPECT_EQ(pacer.eligibleAtNs(1'000'000), 1'010'000U);
}

TEST(PacerTest, RateChangeAppliesFromTheNextPacket) {
  Pacer pacer(1000 * kMbit, 0);
  pacer.take(0, 1250);  // 10 us at 1 Gbit/s
  pacer.setRate(100 * kMbit);
  EXPECT_EQ(pacer.rateBps(), 100 * kMbit);
  // The packet already granted keeps its cost.
  EXPECT_EQ(pacer.eligibleAtNs(0), 10'000U);
  ASSERT_TRUE(pacer.conforms(10'000));
  pacer.take(10'000, 1250);  // 100 us at 100 Mbit/s
  EXPECT_EQ(pacer.eligibleAtNs(10'000), 110'000U);
  pacer.setRate(1000 * kMbit);
  pacer.take(110'000, 1250);
  EXPECT_EQ(pacer.eligibleAtNs(110'000), 120'000U);
}

TEST(PacerTest, RateChangeKeepsTheBoundPiecewise) {
  // The rate drops and rises while a greedy sender runs: in each phase the
  // grants stay within that phase's bound (a rate change creates no credit).
  Pacer pacer(600 * kMbit, 100'000);
  std::vector<Grant> phase;
  std::uint64_t now = 0;
  for (std::uint64_t rate : {600 * kMbit, 150 * kMbit, 900 * kMbit}) {
    pacer.setRate(rate);
    phase.clear();
    const std::uint64_t start = now;
    for (; now < start + 20'000'000; now += 3'000) {
      while (pacer.conforms(now)) {
        pacer.take(now, 1500);
        phase.push_back({now, 1500});
      }
    }
    SCOPED_TRACE(rate);
    expectWithinBound(phase, rate, 100'000, 1500);
    EXPECT_GT(phase.size() * 1500.0 * 8 / 0.02, 0.97 * static_cast<double>(rate));
  }
}

TEST(PacerTest, GiveBackReturnsTheCost) {
  Pacer pacer(1000 * kMbit, 0);
  pacer.take(0, 1250);
  pacer.take(0, 1250);
  EXPECT_EQ(pacer.eligibleAtNs(0), 20'000U);
  pacer.giveBack(1250);  // the second packet was not sent after all
  EXPECT_EQ(pacer.eligibleAtNs(0), 10'000U);
  pacer.giveBack(1250);
  EXPECT_TRUE(pacer.conforms(0));
  pacer.giveBack(1250);  // more than was taken: the bucket is just full
  EXPECT_EQ(pacer.aheadNs(0), 0U);
  pacer.take(0, 1250);
  EXPECT_EQ(pacer.eligibleAtNs(0), 10'000U);
}

TEST(PacerTest, UnpacedAlwaysConforms) {
  Pacer unpaced;
  EXPECT_EQ(unpaced.rateBps(), 0U);
  EXPECT_EQ(unpaced.costNs(1500), 0U);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(unpaced.conforms(0));
    unpaced.take(0, 65'536);
  }
  EXPECT_EQ(unpaced.eligibleAtNs(7), 7U);
  EXPECT_EQ(unpaced.aheadNs(0), 0U);
  unpaced.giveBack(1500);
  EXPECT_TRUE(unpaced.conforms(0));
  // Paced again: starts from a full bucket.
  unpaced.setRate(1000 * kMbit);
  EXPECT_TRUE(unpaced.conforms(0));
  unpaced.take(0, 1250);
  EXPECT_FALSE(unpaced.conforms(0));
}

}  // namespace
}  // namespace mpxdp::sched
