#include "rate_controller.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <string>

#include "link_sim.h"

namespace mpxdp::path {
namespace {

using testing::LinkConfig;
using testing::LinkSim;

constexpr std::uint64_t kMbit = 1'000'000;
constexpr std::uint64_t kMs = 1'000'000;
constexpr std::uint64_t kSecond = 1'000'000'000;

// Throughput (delivered) and loss of one flow over [from, to), and a trace of
// the rate every 100 ms for the failure message.
struct Window {
  std::uint64_t deliveredBytes = 0;
  std::uint64_t sent = 0;
  std::uint64_t dropped = 0;
  double mbps(std::uint64_t ns) const { return static_cast<double>(deliveredBytes) * 8e3 / static_cast<double>(ns); }
  double loss() const { return sent == 0 ? 0 : static_cast<double>(dropped) / static_cast<double>(sent); }
};

class SimRun {
 public:
  explicit SimRun(LinkSim& sim) : sim_(sim) {}
  // Advances to toNs in 10 ms steps, tracing every flow.
  void to(std::uint64_t toNs) {
    while (sim_.now() < toNs) {
      const std::uint64_t next = std::min(toNs, sim_.now() + 10 * kMs);
      sim_.runUntil(next);
      if (next % (100 * kMs) == 0) {
        trace_ << next / kMs << "ms:";
        for (std::size_t f = 0; f < flows_; ++f) {
          const auto& s = sim_.stats(f);
          trace_ << " [" << f << "] " << (s.deliveredBytes - last_[f]) * 8 / 100'000 << "Mb/s";
          if (kinds_[f]) {
            trace_ << " pace " << sim_.controller(f).pacingRateBps() / kMbit << " bw "
                   << sim_.controller(f).bandwidthEstimateBps() / kMbit << " "
                   << toString(sim_.controller(f).phase()) << " q " << sim_.estimator(f).queueDelayNs() / 1000
                   << "us";
          }
          last_[f] = s.deliveredBytes;
        }
        trace_ << " queue " << sim_.queueBytes() << "\n";
      }
    }
  }
  void track(std::size_t flow, bool mpxdp) {
    flows_ = flow + 1;
    kinds_[flow] = mpxdp;
  }
  Window mark(std::size_t flow) const {
    const auto& s = sim_.stats(flow);
    return Window{s.deliveredBytes, s.sentPackets, s.droppedPackets};
  }
  Window since(std::size_t flow, const Window& start) const {
    const auto& s = sim_.stats(flow);
    return Window{s.deliveredBytes - start.deliveredBytes, s.sentPackets - start.sent,
                  s.droppedPackets - start.dropped};
  }
  std::string trace() const { return trace_.str(); }

 private:
  LinkSim& sim_;
  std::size_t flows_ = 0;
  bool kinds_[8] = {};
  std::uint64_t last_[8] = {};
  std::ostringstream trace_;
};

RateControlOptions autoOptions(std::uint64_t seed = 1) {
  RateControlOptions options;
  options.kind = RateControlKind::kAuto;
  options.seed = seed;
  return options;
}

TEST(RateControllerTest, FactoryRejectsBadOptions) {
  RateControlOptions fixed;
  fixed.kind = RateControlKind::kFixed;
  EXPECT_FALSE(makeRateController(fixed).ok());
  fixed.capBps = 100 * kMbit;
  EXPECT_TRUE(makeRateController(fixed).ok());

  RateControlOptions options = autoOptions();
  options.capBps = 500'000;  // below minRateBps
  auto tooLow = makeRateController(options);
  ASSERT_FALSE(tooLow.ok());
  EXPECT_EQ(tooLow.error().code(), EINVAL);
  options = autoOptions();
  options.capBps = 10 * kMbit;
  options.initialRateBps = 20 * kMbit;
  EXPECT_FALSE(makeRateController(options).ok());
  options = autoOptions();
  options.minRateBps = 0;
  EXPECT_FALSE(makeRateController(options).ok());
  options = autoOptions();
  options.minRoundNs = 0;
  EXPECT_FALSE(makeRateController(options).ok());
  EXPECT_TRUE(makeRateController(autoOptions()).ok());
}

TEST(RateControllerTest, FixedPacesAtTheCapAlways) {
  RateControlOptions options;
  options.kind = RateControlKind::kFixed;
  options.capBps = 250 * kMbit;
  auto made = makeRateController(options);
  ASSERT_TRUE(made.ok());
  RateController& c = **made;
  EXPECT_EQ(c.phase(), RatePhase::kFixed);
  EXPECT_EQ(c.pacingRateBps(), 250 * kMbit);
  AckSample sample;
  sample.nowNs = kMs;
  sample.deliveryRateBps = 90 * kMbit;
  sample.queueDelayNs = 50 * kMs;
  sample.owdValid = true;
  c.onAck(sample);
  c.onLoss(2 * kMs, 100, 150'000);
  EXPECT_EQ(c.pacingRateBps(), 250 * kMbit);
  EXPECT_EQ(c.bandwidthEstimateBps(), 90 * kMbit);
  EXPECT_EQ(toString(RatePhase::kFixed), "fixed");
  EXPECT_EQ(toString(RatePhase::kStartup), "startup");
  EXPECT_EQ(toString(RatePhase::kDrain), "drain");
  EXPECT_EQ(toString(RatePhase::kProbe), "probe");
}

TEST(RateControllerTest, InitialRate) {
  auto plain = makeRateController(autoOptions());
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ((*plain)->phase(), RatePhase::kStartup);
  EXPECT_EQ((*plain)->pacingRateBps(), 40 * kMbit);  // 2 x 20 Mbit/s
  EXPECT_EQ((*plain)->bandwidthEstimateBps(), 0u);
  RateControlOptions capped = autoOptions();
  capped.capBps = 30 * kMbit;
  auto withCap = makeRateController(capped);
  ASSERT_TRUE(withCap.ok());
  EXPECT_EQ((*withCap)->pacingRateBps(), 30 * kMbit);  // 2 x cap, capped
}

struct LinkCase {
  std::uint64_t rateMbit;
  std::uint64_t rttUs;
};

class ConvergenceTest : public ::testing::TestWithParam<LinkCase> {};

// Alone on a tbf link: >= 90 % of the rate from 1 s on, <= 1 % loss in steady state.
TEST_P(ConvergenceTest, ReachesTheLinkRateWithin1s) {
  const LinkCase c = GetParam();
  LinkConfig link;
  link.rateBps = c.rateMbit * kMbit;
  link.rttNs = c.rttUs * 1000;
  LinkSim sim(link);
  SimRun run(sim);
  const auto flow = sim.addMpxdp(autoOptions(c.rateMbit));
  run.track(flow, true);
  run.to(kSecond);
  const Window start = run.mark(flow);
  run.to(4 * kSecond);
  const Window steady = run.since(flow, start);
  EXPECT_GE(steady.mbps(3 * kSecond), 0.9 * c.rateMbit) << run.trace();
  EXPECT_LE(steady.loss(), 0.01) << run.trace();
  EXPECT_EQ(sim.controller(flow).phase(), RatePhase::kProbe);
}

INSTANTIATE_TEST_SUITE_P(Links, ConvergenceTest,
                         ::testing::Values(LinkCase{100, 200}, LinkCase{100, 10'000}, LinkCase{100, 80'000},
                                           LinkCase{300, 200}, LinkCase{300, 10'000}, LinkCase{300, 80'000},
                                           LinkCase{600, 200}, LinkCase{600, 10'000}, LinkCase{600, 80'000}),
                         [](const auto& info) {
                           return std::to_string(info.param.rateMbit) + "Mbit_" + std::to_string(info.param.rttUs) +
                                  "us";
                         });

}  // namespace
}  // namespace mpxdp::path
