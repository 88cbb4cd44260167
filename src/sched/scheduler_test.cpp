#include "scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace mpxdp::sched {
namespace {

constexpr std::uint64_t kMbit = 1'000'000;
constexpr std::uint64_t kMs = 1'000'000;
constexpr std::uint64_t kSecond = 1'000'000'000;
constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();

std::unique_ptr<Scheduler> make(SchedulerKind kind, std::size_t pathCount) {
  SchedulerOptions options;
  options.kind = kind;
  auto result = makeScheduler(options, pathCount);
  EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().message());
  return result.ok() ? std::move(result.value()) : nullptr;
}

// A path of the simulation: a FIFO drained at rateBps (kept as the time its
// last queued bit leaves), then a fixed one-way propagation delay.
struct SimPath {
  std::uint64_t rateBps = 0;
  std::uint64_t delayNs = 0;
  bool usable = true;
  std::uint32_t overheadBytes = 0;
  std::uint64_t freeAtNs = 0;
};

struct Sent {
  int path;
  std::uint32_t bytes;
  std::uint64_t sentNs;
  std::uint64_t arrivalNs;  // when its last bit reaches the receiver
};

class Sim {
 public:
  explicit Sim(std::vector<SimPath> paths) : paths_(std::move(paths)), views_(paths_.size()) {}

  std::uint64_t now() const { return now_; }
  SimPath& path(std::size_t i) { return paths_[i]; }
  const std::vector<Sent>& sent() const { return sent_; }

  // What the scheduler sees now: queue drain time and delay beyond the
  // fastest usable path.
  std::span<const PathView> views() {
    std::uint64_t minDelay = kNever;
    for (const SimPath& p : paths_) {
      if (p.usable) minDelay = std::min(minDelay, p.delayNs);
    }
    for (std::size_t i = 0; i < paths_.size(); ++i) {
      const SimPath& p = paths_[i];
      views_[i] = PathView{p.usable, p.rateBps, p.freeAtNs > now_ ? p.freeAtNs - now_ : 0,
                           p.usable ? p.delayNs - minDelay : 0, p.overheadBytes};
    }
    return views_;
  }

  void send(int path, std::uint32_t bytes) {
    SimPath& p = paths_[static_cast<std::size_t>(path)];
    const std::uint64_t bits = (std::uint64_t{bytes} + p.overheadBytes) * 8;
    p.freeAtNs = std::max(p.freeAtNs, now_) + (bits * kSecond + p.rateBps - 1) / p.rateBps;
    sent_.push_back({path, bytes, now_, p.freeAtNs + p.delayNs});
  }

  void advanceTo(std::uint64_t t) { now_ = std::max(now_, t); }

 private:
  std::vector<SimPath> paths_;
  std::vector<PathView> views_;
  std::vector<Sent> sent_;
  std::uint64_t now_ = 0;
};

// The sender: packets offered at offeredBps (0: always backlogged) from now
// until untilNs, of `bytes`, or of random sizes in [bytes, maxBytes] when
// maxBytes is set. At each step it picks until kNoPath (or the source is
// empty), then moves time to the source's next packet or by waitNs().
void run(Scheduler& scheduler, Sim& sim, std::uint32_t bytes, std::uint64_t offeredBps, std::uint64_t untilNs,
         std::uint32_t maxBytes = 0) {
  std::mt19937 rng(1);
  std::uniform_int_distribution<std::uint32_t> sizes(bytes, std::max(bytes, maxBytes));
  const std::uint64_t startNs = sim.now();
  std::uint64_t offeredBits = 0;  // by the packets sent so far
  // When the source has released the next packet.
  auto releaseNs = [&] { return startNs + (offeredBits * kSecond + offeredBps - 1) / offeredBps; };
  std::uint32_t size = sizes(rng);
  bool reported = false;
  while (sim.now() < untilNs) {
    std::uint64_t wait = 0;
    bool blocked = false;
    while (offeredBps == 0 || releaseNs() <= sim.now()) {
      auto views = sim.views();
      const int path = scheduler.pick(views, size);
      if (path == kNoPath) {
        wait = scheduler.waitNs(views, size);
        // pick() and waitNs() must agree: no path now means a wait.
        if (wait == 0 && !reported) {
          ADD_FAILURE() << "kNoPath but waitNs 0 at " << sim.now();
          reported = true;
        }
        blocked = true;
        break;
      }
      if (!views[static_cast<std::size_t>(path)].usable && !reported) {
        ADD_FAILURE() << "unusable path " << path << " chosen at " << sim.now();
        reported = true;
      }
      sim.send(path, size);
      offeredBits += std::uint64_t{size} * 8;
      size = sizes(rng);
    }
    std::uint64_t next = untilNs;
    if (offeredBps != 0) next = std::min(next, releaseNs());
    if (blocked && wait != kNever) next = std::min(next, sim.now() + std::max<std::uint64_t>(wait, 1));
    sim.advanceTo(std::max(next, sim.now() + 1));
  }
}

// Wire rate of each path over the packets sent in [fromNs, toNs).
std::vector<double> ratesBps(const Sim& sim, std::size_t pathCount, std::uint64_t fromNs,
                             std::uint64_t toNs) {
  std::vector<double> bits(pathCount, 0);
  for (const Sent& s : sim.sent()) {
    if (s.sentNs >= fromNs && s.sentNs < toNs) bits[static_cast<std::size_t>(s.path)] += s.bytes * 8.0;
  }
  for (double& b : bits) b = b * static_cast<double>(kSecond) / static_cast<double>(toNs - fromNs);
  return bits;
}

std::vector<std::uint64_t> packetsPerPath(const Sim& sim, std::size_t pathCount) {
  std::vector<std::uint64_t> count(pathCount, 0);
  for (const Sent& s : sim.sent()) ++count[static_cast<std::size_t>(s.path)];
  return count;
}

// Receiver hold time: how long each packet waits for earlier packets (in send
// order) that arrive after it, max(0, latest earlier arrival - its arrival).
struct Hold {
  std::uint64_t maxNs = 0;
  std::uint64_t p99Ns = 0;
  double heldFraction = 0;  // packets that wait at all
};

Hold holdTimes(const Sim& sim) {
  std::vector<std::uint64_t> holds;
  holds.reserve(sim.sent().size());
  std::uint64_t latest = 0;
  std::size_t held = 0;
  for (const Sent& s : sim.sent()) {
    const std::uint64_t hold = latest > s.arrivalNs ? latest - s.arrivalNs : 0;
    holds.push_back(hold);
    held += hold > 0 ? 1 : 0;
    latest = std::max(latest, s.arrivalNs);
  }
  Hold result;
  if (holds.empty()) return result;
  std::sort(holds.begin(), holds.end());
  result.maxNs = holds.back();
  result.p99Ns = holds[holds.size() * 99 / 100];
  result.heldFraction = static_cast<double>(held) / static_cast<double>(holds.size());
  return result;
}

// ---- rr ----

TEST(RoundRobinTest, AlternatesStrictlyOverUsablePaths) {
  auto scheduler = make(SchedulerKind::kRoundRobin, 3);
  ASSERT_NE(scheduler, nullptr);
  EXPECT_EQ(scheduler->pathCount(), 3U);
  std::vector<PathView> paths(3, PathView{true, 1000 * kMbit, 0, 0, 0});
  for (int i = 0; i < 30; ++i) EXPECT_EQ(scheduler->pick(paths, 1000), i % 3);
  // Path 1 cannot carry data: it loses its turns, the others alternate.
  paths[1].usable = false;
  for (int i = 0; i < 30; ++i) EXPECT_EQ(scheduler->pick(paths, 1000), i % 2 == 0 ? 0 : 2);
  paths[1].usable = true;
  EXPECT_EQ(scheduler->pick(paths, 1000), 0);
  EXPECT_EQ(scheduler->pick(paths, 1000), 1);
  EXPECT_EQ(scheduler->pick(paths, 1000), 2);
}

TEST(RoundRobinTest, WaitsForThePathInTurnInsteadOfSkippingAhead) {
  auto scheduler = make(SchedulerKind::kRoundRobin, 3);
  ASSERT_NE(scheduler, nullptr);
  SchedulerOptions defaults;
  std::vector<PathView> paths(3, PathView{true, 1000 * kMbit, 0, 0, 0});
  EXPECT_EQ(scheduler->pick(paths, 1000), 0);
  paths[1].queuedNs = defaults.slackNs + 5000;  // path 1 is in turn and full; 2 has room
  EXPECT_EQ(scheduler->pick(paths, 1000), kNoPath);
  EXPECT_EQ(scheduler->pick(paths, 1000), kNoPath);
  EXPECT_EQ(scheduler->waitNs(paths, 1000), 5000U);
  paths[1].queuedNs = defaults.slackNs;  // drained to the allowance
  EXPECT_EQ(scheduler->waitNs(paths, 1000), 0U);
  EXPECT_EQ(scheduler->pick(paths, 1000), 1);
  EXPECT_EQ(scheduler->pick(paths, 1000), 2);
}

TEST(RoundRobinTest, SlowPathSetsThePaceOfAllInTheSimulation) {
  // Path 1 is ten times slower; strict rr sends the same count on each, so
  // the total is about three times the slow path's rate.
  auto scheduler = make(SchedulerKind::kRoundRobin, 3);
  ASSERT_NE(scheduler, nullptr);
  Sim sim({{1000 * kMbit, kMs}, {100 * kMbit, kMs}, {1000 * kMbit, kMs}});
  run(*scheduler, sim, 1250, 0, 200 * kMs);
  ASSERT_GT(sim.sent().size(), 3000U);
  for (std::size_t i = 0; i < sim.sent().size(); ++i) ASSERT_EQ(sim.sent()[i].path, static_cast<int>(i % 3));
  const auto rates = ratesBps(sim, 3, 20 * kMs, 200 * kMs);
  EXPECT_NEAR(rates[1], 100e6, 2e6);
  EXPECT_NEAR(rates[0], rates[1], 1e6);
  EXPECT_NEAR(rates[2], rates[1], 1e6);
}

TEST(RoundRobinTest, SkipsAPathThatBecomesUnusable) {
  auto scheduler = make(SchedulerKind::kRoundRobin, 3);
  ASSERT_NE(scheduler, nullptr);
  Sim sim({{300 * kMbit, kMs}, {300 * kMbit, kMs}, {300 * kMbit, kMs}});
  run(*scheduler, sim, 1250, 0, 10 * kMs);
  const std::size_t before = sim.sent().size();
  sim.path(1).usable = false;
  run(*scheduler, sim, 1250, 0, 20 * kMs);
  ASSERT_GT(sim.sent().size(), before + 100);
  int last = -1;
  for (std::size_t i = before; i < sim.sent().size(); ++i) {
    const int path = sim.sent()[i].path;
    EXPECT_NE(path, 1);
    EXPECT_NE(path, last) << "packet " << i;
    last = path;
  }
}

// ---- wrr ----

TEST(WeightedRoundRobinTest, ByteSharesFollowThePacingRates) {
  auto scheduler = make(SchedulerKind::kWeightedRoundRobin, 3);
  ASSERT_NE(scheduler, nullptr);
  Sim sim({{100 * kMbit, kMs}, {300 * kMbit, kMs}, {600 * kMbit, kMs}});
  run(*scheduler, sim, 1098, 0, 500 * kMs);
  const auto rates = ratesBps(sim, 3, 10 * kMs, 500 * kMs);
  const double total = rates[0] + rates[1] + rates[2];
  EXPECT_NEAR(total, 1000e6, 10e6);
  EXPECT_NEAR(rates[0] / total, 0.1, 0.001);
  EXPECT_NEAR(rates[1] / total, 0.3, 0.003);
  EXPECT_NEAR(rates[2] / total, 0.6, 0.006);
}

TEST(WeightedRoundRobinTest, ByteSharesFollowThePacingRatesBelowCapacity) {
  // Offered 400 Mbit/s over 1 Gbit/s: no queue binds, the weights decide.
  auto scheduler = make(SchedulerKind::kWeightedRoundRobin, 3);
  ASSERT_NE(scheduler, nullptr);
  Sim sim({{100 * kMbit, kMs}, {300 * kMbit, kMs}, {600 * kMbit, kMs}});
  run(*scheduler, sim, 1098, 400 * kMbit, 500 * kMs);
  const auto rates = ratesBps(sim, 3, 0, 500 * kMs);
  const double total = rates[0] + rates[1] + rates[2];
  EXPECT_NEAR(total, 400e6, 4e6);
  EXPECT_NEAR(rates[0] / total, 0.1, 0.001);
  EXPECT_NEAR(rates[1] / total, 0.3, 0.003);
  EXPECT_NEAR(rates[2] / total, 0.6, 0.006);
}

TEST(WeightedRoundRobinTest, UnusablePathGetsNothingAndBuildsNoCredit) {
  auto scheduler = make(SchedulerKind::kWeightedRoundRobin, 3);
  ASSERT_NE(scheduler, nullptr);
  std::vector<PathView> paths{
      {true, 100 * kMbit, 0, 0, 0}, {false, 300 * kMbit, 0, 0, 0}, {true, 600 * kMbit, 0, 0, 0}};
  std::vector<int> count(3, 0);
  for (int i = 0; i < 7000; ++i) ++count[static_cast<std::size_t>(scheduler->pick(paths, 1000))];
  EXPECT_EQ(count[1], 0);
  EXPECT_NEAR(count[0], 1000, 2);
  EXPECT_NEAR(count[2], 6000, 2);
  // Back: it takes its 30 % from now on, without a catch-up burst.
  paths[1].usable = true;
  std::fill(count.begin(), count.end(), 0);
  for (int i = 1; i <= 1000; ++i) {
    ++count[static_cast<std::size_t>(scheduler->pick(paths, 1000))];
    ASSERT_LE(count[1], 0.3 * i + 2) << "after " << i << " picks";
    if (i % 10 == 0) {
      ASSERT_GE(count[1], 0.3 * i - 2) << "after " << i << " picks";
    }
  }
}

TEST(WeightedRoundRobinTest, CreditsStayBoundedWhileAPathIsHeldBack) {
  // Path 0's queue stays full for a while; once it drains, it catches up for a
  // bounded number of packets whatever the length of the hold.
  std::vector<int> runs;
  for (int held : {10'000, 1'000'000}) {
    auto scheduler = make(SchedulerKind::kWeightedRoundRobin, 2);
    ASSERT_NE(scheduler, nullptr);
    std::vector<PathView> paths(2, PathView{true, 500 * kMbit, 0, 0, 0});
    paths[0].queuedNs = 10 * kMs;
    for (int i = 0; i < held; ++i) ASSERT_EQ(scheduler->pick(paths, 1000), 1);
    paths[0].queuedNs = 0;
    int run = 0;
    while (run < 100'000 && scheduler->pick(paths, 1000) == 0) ++run;
    runs.push_back(run);
    // Both then alternate again.
    for (int i = 0; i < 10; ++i) EXPECT_NE(scheduler->pick(paths, 1000), scheduler->pick(paths, 1000));
  }
  // The cap is 4 * 2^17 bytes of credit at the total weight on each side.
  EXPECT_LE(runs[1], 8 * (1 << 17) / 1000 + 2);
  EXPECT_EQ(runs[0], runs[1]);
}

// ---- eaf ----

// Two paths of 300 Mbit/s, one-way delays 40 ms (index 0) and 5 ms (index 1).
Sim unequalDelays() { return Sim({{300 * kMbit, 40 * kMs}, {300 * kMbit, 5 * kMs}}); }

TEST(EarliestArrivalTest, BelowTheFastPathsRateEverythingTakesTheFastPath) {
  auto scheduler = make(SchedulerKind::kEarliestArrival, 2);
  ASSERT_NE(scheduler, nullptr);
  Sim sim = unequalDelays();
  run(*scheduler, sim, 1250, 200 * kMbit, 500 * kMs);
  const auto count = packetsPerPath(sim, 2);
  EXPECT_EQ(count[0], 0U);
  EXPECT_NEAR(static_cast<double>(count[1]), 10'000, 2);  // 200 Mbit/s for 0.5 s
  EXPECT_EQ(holdTimes(sim).maxNs, 0U);
}

TEST(EarliestArrivalTest, SaturatedBothPathsRunFullAndArrivalsStayInOrder) {
  // Always backlogged, eaf fills the fast path's queue up to the delay
  // difference (35 ms) and the slow path carries the rest: both run at
  // 300 Mbit/s and the packets arrive nearly in send order. wrr on the same
  // simulation alternates, and every fast-path packet waits ~35 ms for its
  // slow-path predecessor. Measured over 1 s (hold = how long a packet waits
  // for earlier ones):
  //   1250 B:       eaf max 0, p99 0, 0 % held;  wrr max 35.0 ms, p99 35.0 ms, 50 % held
  //   64..1500 B:   eaf max 37 us, p99 26 us, 30 % held;  wrr max 35.04 ms, p99 35.02 ms, 50 % held
  // (with mixed sizes a small packet may overtake a big one sent just before
  // it on the other path: eaf's hold stays under one 1500 B packet time).
  for (std::uint32_t maxBytes : {0U, 1500U}) {
    const std::uint32_t bytes = maxBytes == 0 ? 1250 : 64;
    SCOPED_TRACE(maxBytes);
    Hold hold[2];
    for (SchedulerKind kind : {SchedulerKind::kEarliestArrival, SchedulerKind::kWeightedRoundRobin}) {
      SCOPED_TRACE(std::string(toString(kind)));
      auto scheduler = make(kind, 2);
      ASSERT_NE(scheduler, nullptr);
      Sim sim = unequalDelays();
      run(*scheduler, sim, bytes, 0, kSecond, maxBytes);
      const auto rates = ratesBps(sim, 2, 100 * kMs, kSecond);
      EXPECT_NEAR(rates[0], 300e6, 3e6);
      EXPECT_NEAR(rates[1], 300e6, 3e6);
      hold[kind == SchedulerKind::kEarliestArrival ? 0 : 1] = holdTimes(sim);
    }
    const Hold& eaf = hold[0];
    const Hold& wrr = hold[1];
    std::printf(
        "sizes %u..%u hold eaf: max %lu ns p99 %lu ns held %.4f; wrr: max %lu ns p99 %lu ns held %.4f\n",
        bytes, std::max(bytes, maxBytes), static_cast<unsigned long>(eaf.maxNs),
        static_cast<unsigned long>(eaf.p99Ns), eaf.heldFraction, static_cast<unsigned long>(wrr.maxNs),
        static_cast<unsigned long>(wrr.p99Ns), wrr.heldFraction);
    EXPECT_GT(wrr.p99Ns, 30 * kMs);
    // Within a couple of packet times at 300 Mbit/s (40 us for 1500 B).
    EXPECT_LE(eaf.p99Ns, 100'000U);
    EXPECT_LE(eaf.maxNs, 1 * kMs);
    EXPECT_LT(eaf.p99Ns * 100, wrr.p99Ns);
  }
}

TEST(EarliestArrivalTest, EqualPathsAreBothUsed) {
  auto scheduler = make(SchedulerKind::kEarliestArrival, 2);
  ASSERT_NE(scheduler, nullptr);
  // A burst at one instant alternates.
  std::vector<PathView> paths(2, PathView{true, 300 * kMbit, 0, 0, 24});
  for (int i = 0; i < 10; ++i) {
    const int path = scheduler->pick(paths, 1250);
    ASSERT_EQ(path, i % 2);
    paths[static_cast<std::size_t>(path)].queuedNs += transmitNs(paths[path], 1250);
  }
  // Saturated, each carries half at its full rate.
  Sim sim({{300 * kMbit, 10 * kMs}, {300 * kMbit, 10 * kMs}});
  run(*scheduler, sim, 1250, 0, 500 * kMs);
  auto rates = ratesBps(sim, 2, 10 * kMs, 500 * kMs);
  EXPECT_NEAR(rates[0], 300e6, 3e6);
  EXPECT_NEAR(rates[1], 300e6, 3e6);
  EXPECT_EQ(holdTimes(sim).maxNs, 0U);
  // Offered 500 Mbit/s: more than one path's rate, all of it goes through.
  Sim offered({{300 * kMbit, 10 * kMs}, {300 * kMbit, 10 * kMs}});
  run(*scheduler, offered, 1250, 500 * kMbit, 500 * kMs);
  rates = ratesBps(offered, 2, 0, 500 * kMs);
  EXPECT_NEAR(rates[0] + rates[1], 500e6, 1e6);
  EXPECT_GT(rates[0], 200e6);
  EXPECT_GT(rates[1], 200e6);
}

TEST(EarliestArrivalTest, UnusablePathsAreNeverChosen) {
  auto scheduler = make(SchedulerKind::kEarliestArrival, 3);
  ASSERT_NE(scheduler, nullptr);
  // The fastest, shortest path is down; the other two share the load.
  Sim sim({{1000 * kMbit, 1 * kMs}, {300 * kMbit, 20 * kMs}, {300 * kMbit, 10 * kMs}});
  sim.path(0).usable = false;
  run(*scheduler, sim, 1250, 0, 300 * kMs);
  const auto count = packetsPerPath(sim, 3);
  EXPECT_EQ(count[0], 0U);
  EXPECT_GT(count[1], 1000U);
  EXPECT_GT(count[2], 1000U);
  // Direct: the unusable path looks best in every field and is still skipped.
  // Path 1 takes packets of 12 us while its queue is within the 1 ms slack.
  std::vector<PathView> paths{{false, 10'000 * kMbit, 0, 0, 0}, {true, 1000 * kMbit, 0, 0, 0}};
  for (int i = 0; i < 84; ++i) {
    ASSERT_EQ(scheduler->pick(paths, 1500), 1) << i;
    paths[1].queuedNs += transmitNs(paths[1], 1500);
  }
  EXPECT_EQ(scheduler->pick(paths, 1500), kNoPath);  // path 1 is full; path 0 still is not an option
  EXPECT_EQ(scheduler->waitNs(paths, 1500), paths[1].queuedNs - SchedulerOptions{}.slackNs);
}

TEST(EarliestArrivalTest, WaitsWhenEveryQueueIsBeyondTheHorizon) {
  auto scheduler = make(SchedulerKind::kEarliestArrival, 2);
  ASSERT_NE(scheduler, nullptr);
  SchedulerOptions defaults;
  // Horizon: the largest delay (35 ms) + slack.
  std::vector<PathView> paths{{true, 300 * kMbit, 35 * kMs + defaults.slackNs + 700, 0, 0},
                              {true, 300 * kMbit, defaults.slackNs + 300, 35 * kMs, 0}};
  EXPECT_EQ(scheduler->pick(paths, 1250), kNoPath);
  EXPECT_EQ(scheduler->waitNs(paths, 1250), 300U);
  paths[1].queuedNs -= 300;
  EXPECT_EQ(scheduler->waitNs(paths, 1250), 0U);
  EXPECT_EQ(scheduler->pick(paths, 1250), 1);
}

TEST(SchedulerTest, NoUsablePathMeansNoPathAndAnEndlessWait) {
  for (SchedulerKind kind :
       {SchedulerKind::kEarliestArrival, SchedulerKind::kRoundRobin, SchedulerKind::kWeightedRoundRobin}) {
    SCOPED_TRACE(std::string(toString(kind)));
    auto scheduler = make(kind, 2);
    ASSERT_NE(scheduler, nullptr);
    std::vector<PathView> paths(2, PathView{false, 300 * kMbit, 0, 0, 0});
    EXPECT_EQ(scheduler->pick(paths, 1000), kNoPath);
    EXPECT_EQ(scheduler->waitNs(paths, 1000), kNever);
    paths[1].usable = true;
    EXPECT_EQ(scheduler->pick(paths, 1000), 1);
    EXPECT_EQ(scheduler->waitNs(paths, 1000), 0U);
  }
}

TEST(SchedulerTest, TransmitNsCountsTheOverhead) {
  const PathView path{true, 1000 * kMbit, 0, 0, 24};
  EXPECT_EQ(transmitNs(path, 1226), 10'000U);  // 1250 B at 1 Gbit/s
  EXPECT_EQ(transmitNs(PathView{}, 1226), 0U);
}

// ---- construction and names ----

TEST(SchedulerTest, MakeRejectsBadPathCounts) {
  SchedulerOptions options;
  auto none = makeScheduler(options, 0);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), EINVAL);
  auto many = makeScheduler(options, kMaxSchedulerPaths + 1);
  ASSERT_FALSE(many.ok());
  EXPECT_EQ(many.error().code(), EINVAL);
  EXPECT_NE(many.error().message().find("257"), std::string::npos) << many.error().message();
  auto most = makeScheduler(options, kMaxSchedulerPaths);
  ASSERT_TRUE(most.ok());
  EXPECT_EQ(most.value()->pathCount(), kMaxSchedulerPaths);
}

TEST(SchedulerTest, DefaultIsEarliestArrival) {
  EXPECT_EQ(SchedulerOptions{}.kind, SchedulerKind::kEarliestArrival);
}

TEST(SchedulerTest, KindNamesRoundTrip) {
  for (SchedulerKind kind :
       {SchedulerKind::kEarliestArrival, SchedulerKind::kRoundRobin, SchedulerKind::kWeightedRoundRobin}) {
    auto parsed = parseSchedulerKind(toString(kind));
    ASSERT_TRUE(parsed.ok()) << toString(kind);
    EXPECT_EQ(parsed.value(), kind);
  }
  EXPECT_EQ(toString(SchedulerKind::kEarliestArrival), "eaf");
  EXPECT_EQ(toString(SchedulerKind::kRoundRobin), "rr");
  EXPECT_EQ(toString(SchedulerKind::kWeightedRoundRobin), "wrr");
  auto bad = parseSchedulerKind("fastest");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), EINVAL);
  const std::string message = bad.error().message();
  EXPECT_NE(message.find("fastest"), std::string::npos) << message;
  EXPECT_NE(message.find("eaf"), std::string::npos) << message;
  EXPECT_FALSE(parseSchedulerKind("EAF").ok());
  EXPECT_FALSE(parseSchedulerKind("").ok());
}

}  // namespace
}  // namespace mpxdp::sched
