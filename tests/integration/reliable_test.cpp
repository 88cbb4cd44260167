// Reliable and redundant modes on the test bed (real namespaces, veth links,
// XDP and AF_XDP): `mpxdp send --reliable` loses nothing with random loss on
// one link and through a link cut; `--redundant` loses nothing with 10 % loss
// on one of two links and never retransmits; a receiver started with
// --reliable refuses a sender without it, and both say why. The goals'
// figures (goodput, stall) are benchmark figures (bench/e2e/filexfer.py);
// the bounds here only catch what is clearly broken.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cli_run.h"
#include "privilege.h"
#include "subprocess.h"
#include "testbed.h"

namespace mpxdp {
namespace {

using namespace std::chrono_literals;
using testbed::Subprocess;

constexpr std::uint64_t kMbit = 1'000'000;

testbed::TestbedSpec spec(const std::string& suffix, std::vector<std::uint64_t> rates,
                          std::vector<double> lossPercent = {}) {
  testbed::TestbedSpec s;
  s.name = "rl" + std::to_string(getpid()) + suffix;
  s.ratesBps = std::move(rates);
  s.lossPercent = std::move(lossPercent);
  return s;
}

std::uint64_t u64(const nlohmann::json& report, const char* key) {
  return report.at(key).get<std::uint64_t>();
}

TEST(ReliableTest, RandomLossOnOneLinkLosesNothing) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto bed = testbed::ScopedTestbed::create(spec("l", {300 * kMbit, 300 * kMbit, 300 * kMbit}, {0, 1, 0}));
  ASSERT_TRUE(bed) << bed.error().message();
  auto run = test::runWithChanges(MPXDP_EXECUTABLE, bed->info(),
                                  {.seconds = 3, .sendExtra = {"--reliable"}, .linkSuffix = "@300M"}, {});
  ASSERT_TRUE(run);
  const auto& rx = run->receiver;
  const auto& tx = run->sender;
  std::printf("1 %% loss on link 1: %.0f Mbit/s, %llu retransmitted, longest stall %.1f ms\n",
              rx.at("goodput_bps").get<double>() / 1e6,
              static_cast<unsigned long long>(u64(tx, "retransmitted")), rx.at("max_stall_ms").get<double>());
  EXPECT_TRUE(rx.at("reliable").get<bool>());
  EXPECT_EQ(u64(rx, "lost_packets"), 0u);
  EXPECT_EQ(u64(rx, "corrupt_packets"), 0u);
  EXPECT_EQ(u64(rx, "delivered_packets"), u64(tx, "sent_packets") - u64(tx, "retransmitted"));
  // The test bed dropped packets on link 1 and every one was sent again.
  EXPECT_GT(rx.at("paths").at(1).at("lost").get<std::uint64_t>(), 0u);
  EXPECT_GT(u64(tx, "retransmitted"), 0u);
}

TEST(ReliableTest, ALinkCutMidTransferLosesNothing) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto bed = testbed::ScopedTestbed::create(spec("c", {300 * kMbit, 300 * kMbit, 300 * kMbit}));
  ASSERT_TRUE(bed) << bed.error().message();
  testbed::LinkChange down;
  down.down = true;
  testbed::LinkChange up;
  up.down = false;
  auto run = test::runWithChanges(MPXDP_EXECUTABLE, bed->info(),
                                  {.seconds = 4, .sendExtra = {"--reliable"}, .linkSuffix = "@300M"},
                                  {{1.5, 1, down}, {3.0, 1, up}});
  ASSERT_TRUE(run);
  const auto& rx = run->receiver;
  std::printf("cut and restore: %llu retransmitted, longest stall %.1f ms\n",
              static_cast<unsigned long long>(u64(run->sender, "retransmitted")),
              rx.at("max_stall_ms").get<double>());
  EXPECT_EQ(u64(rx, "lost_packets"), 0u);
  EXPECT_EQ(u64(rx, "corrupt_packets"), 0u);
  EXPECT_GT(u64(run->sender, "retransmitted"), 0u);
  // Far above the 200 ms goal (a benchmark figure): a loss timer or a stuck window would show here.
  EXPECT_LT(rx.at("max_stall_ms").get<double>(), 1000.0);
}

TEST(RedundantTest, TenPercentLossOnOneOfTwoLinksLosesNothingWithoutRetransmission) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto bed = testbed::ScopedTestbed::create(spec("r", {300 * kMbit, 300 * kMbit}, {0, 10}));
  ASSERT_TRUE(bed) << bed.error().message();
  auto run = test::runWithChanges(
      MPXDP_EXECUTABLE, bed->info(),
      {.seconds = 3, .sendExtra = {"--redundant", "-b", "100M"}, .linkSuffix = "@300M"}, {});
  ASSERT_TRUE(run);
  const auto& rx = run->receiver;
  const auto& tx = run->sender;
  std::printf("redundant, 10 %% loss on link 1: %llu copies, %llu duplicates dropped, hold p99 %.2f ms\n",
              static_cast<unsigned long long>(u64(tx, "redundant_copies")),
              static_cast<unsigned long long>(u64(rx, "duplicates")), u64(rx, "hold_p99_ns") / 1e6);
  EXPECT_EQ(u64(rx, "lost_packets"), 0u);
  EXPECT_EQ(u64(tx, "retransmitted"), 0u);
  EXPECT_GT(u64(tx, "redundant_copies"), u64(tx, "sent_packets") / 3);
  EXPECT_GT(u64(rx, "duplicates"), 0u);
}

TEST(ReliableTest, AReliableReceiverRefusesASenderWithoutReliableMode) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto bed = testbed::ScopedTestbed::create(spec("x", {100 * kMbit}));
  ASSERT_TRUE(bed) << bed.error().message();
  auto receiver =
      Subprocess::spawn({MPXDP_EXECUTABLE, "recv", "-1", "--testbed", bed->info().name, "--reliable"});
  ASSERT_TRUE(receiver) << receiver.error().message();
  ASSERT_TRUE(receiver->waitForStderr("mpxdp recv: ready", 20s)) << receiver->err();
  const auto& link = bed->info().links[0];
  auto sender =
      Subprocess::spawn({"/usr/bin/env", "ip", "netns", "exec", bed->info().senderNamespace, MPXDP_EXECUTABLE,
                         "send", "-t", "1", "--link", link.senderInterface + "=" + link.receiverIp});
  ASSERT_TRUE(sender) << sender.error().message();
  const auto sent = sender->wait(20s);
  ASSERT_TRUE(sent);
  EXPECT_NE(*sent, 0);
  EXPECT_NE(sender->err().find("--reliable"), std::string::npos) << sender->err();
  (void)receiver->stop(2s);
}

}  // namespace
}  // namespace mpxdp
