// Unit tests of the send/recv helpers: payload pattern, --link / --backup-link
// parsing, --scheduler / --pacing, and the reports' JSON.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "link_args.h"
#include "payload_pattern.h"
#include "report.h"
#include "session.h"

namespace mpxdp::cli {
namespace {

TEST(PayloadPatternTest, RoundTripsForEveryLengthAndDetectsDamage) {
  std::vector<std::uint8_t> buffer(1500);
  for (std::uint32_t length : {1u, 7u, 8u, 9u, 63u, 1024u, 1440u}) {
    fillPattern(buffer.data(), length, 12345);
    EXPECT_TRUE(checkPattern(buffer.data(), length, 12345)) << length;
    EXPECT_FALSE(checkPattern(buffer.data(), length, 12346)) << length;
    for (std::uint32_t at : {0u, length / 2, length - 1}) {
      buffer[at] ^= 0x10;
      EXPECT_FALSE(checkPattern(buffer.data(), length, 12345)) << length << " byte " << at;
      buffer[at] ^= 0x10;
    }
  }
  // A payload cut short is not the pattern of a shorter packet.
  fillPattern(buffer.data(), 1024, 7);
  EXPECT_FALSE(checkPattern(buffer.data(), 1000, 7));
}

TEST(PayloadPatternTest, NeighbouringPacketsDifferInEveryWord) {
  std::vector<std::uint8_t> a(1024), b(1024);
  fillPattern(a.data(), 1024, 100);
  fillPattern(b.data(), 1024, 101);
  for (std::size_t i = 0; i < 1024; i += 8) {
    EXPECT_NE(0, std::memcmp(a.data() + i, b.data() + i, 8)) << i;
  }
}

TEST(BackendTest, ParsesItsThreeNamesAndRefusesOthers) {
  for (const Backend backend : {Backend::kXdp, Backend::kUdp, Backend::kAuto}) {
    auto parsed = parseBackend(toString(backend));
    ASSERT_TRUE(parsed.ok()) << toString(backend);
    EXPECT_EQ(*parsed, backend);
  }
  for (const char* bad : {"", "XDP", "dpdk", "auto "}) {
    auto parsed = parseBackend(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().code(), EINVAL);
    EXPECT_NE(parsed.error().context().find("xdp, udp or auto"), std::string::npos)
        << parsed.error().message();
  }
  // A transmit thread serves AF_XDP links: refused where there can be none.
  DataPathArgs args;
  args.threads = 2;
  EXPECT_FALSE(checkDataPath(args, Backend::kUdp).ok());
  EXPECT_TRUE(checkDataPath(args, Backend::kAuto).ok());
  args.threads = 1;
  args.rxThreads = 4;
  EXPECT_FALSE(checkRxThreads(args, 3).ok());
  EXPECT_TRUE(checkRxThreads(args, 4).ok());
}

TEST(LinkArgTest, ParsesInterfacePeerAndRate) {
  auto full = parseLinkArg("s0=198.18.1.2@300M");
  ASSERT_TRUE(full) << full.error().message();
  EXPECT_EQ(full->interface, "s0");
  ASSERT_TRUE(full->peerIp);
  EXPECT_EQ(full->peerIp->toString(), "198.18.1.2");
  EXPECT_EQ(full->rateBps, 300'000'000u);

  auto v6 = parseLinkArg("eth1=fd00::2@1G");
  ASSERT_TRUE(v6) << v6.error().message();
  EXPECT_FALSE(v6->peerIp->isV4());
  EXPECT_EQ(v6->rateBps, 1'000'000'000u);

  auto bare = parseLinkArg("r0");
  ASSERT_TRUE(bare);
  EXPECT_FALSE(bare->peerIp);
  EXPECT_EQ(bare->rateBps, 0u);
}

TEST(LinkArgTest, RejectsBadSyntax) {
  for (const char* text : {"", "=1.2.3.4", "s0=", "s0=1.2.3", "s0=1.2.3.4@", "s0=1.2.3.4@fast",
                           "s0=1.2.3.4@-1M", "averyveryverylongname=1.2.3.4"}) {
    auto arg = parseLinkArg(text);
    EXPECT_FALSE(arg) << text;
    if (!arg) {
      EXPECT_EQ(arg.error().code(), EINVAL) << text;
    }
  }
}

TEST(LinkArgTest, PlanRejectsUnknownInterfaceMissingPeerAndDuplicates) {
  auto unknown = planLinks({LinkArg{"no-such-if0", IpAddress::parse("198.18.1.2"), 0}}, Side::kSender);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), ENODEV);
  auto noPeer = planLinks({LinkArg{"lo", std::nullopt, 0}}, Side::kSender);
  ASSERT_FALSE(noPeer);
  EXPECT_EQ(noPeer.error().code(), EINVAL);
  auto twice = planLinks(
      {LinkArg{"lo", IpAddress::parse("127.0.0.1"), 0}, LinkArg{"lo", IpAddress::parse("127.0.0.1"), 0}},
      Side::kReceiver);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code(), EINVAL);
  auto ok = planLinks({LinkArg{"lo", IpAddress::parse("127.0.0.1"), 0}}, Side::kSender);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ((*ok)[0].localIp.toString(), "127.0.0.1");
  EXPECT_TRUE(planLinks({}, Side::kReceiver).error().code() == EINVAL);
}

TEST(LinkArgTest, ReceiverPlansABareInterfaceWithItsOwnAddress) {
  auto bare = planLinks({LinkArg{"lo", std::nullopt, 0}}, Side::kReceiver);
  ASSERT_TRUE(bare) << bare.error().message();
  EXPECT_EQ((*bare)[0].localIp.toString(), "127.0.0.1");
  EXPECT_FALSE((*bare)[0].peerIp);
  auto withPeer = planLinks({LinkArg{"lo", IpAddress::parse("127.0.0.1"), 0}}, Side::kReceiver);
  ASSERT_TRUE(withPeer) << withPeer.error().message();
  ASSERT_TRUE((*withPeer)[0].peerIp);
}

TEST(LinkArgTest, BackupLinksComeAfterTheOthersAndAreMarked) {
  auto args = parseLinkArgs({"s0=198.18.1.2", "s1=198.18.2.2@300M"}, {"s2=198.18.3.2@100M"});
  ASSERT_TRUE(args) << args.error().message();
  ASSERT_EQ(args->size(), 3u);
  EXPECT_EQ((*args)[0].interface, "s0");
  EXPECT_FALSE((*args)[0].backup);
  EXPECT_EQ((*args)[0].rateBps, 0u);  // estimated
  EXPECT_FALSE((*args)[1].backup);
  EXPECT_EQ((*args)[2].interface, "s2");
  EXPECT_TRUE((*args)[2].backup);
  EXPECT_EQ((*args)[2].rateBps, 100'000'000u);

  // Backups listed first on the command line still come last.
  auto swapped = parseLinkArgs({"a"}, {"b"});
  ASSERT_TRUE(swapped);
  EXPECT_EQ((*swapped)[1].interface, "b");
  EXPECT_TRUE((*swapped)[1].backup);
}

TEST(LinkArgTest, BackupLinkMisuseIsAnErrorNamingTheOption) {
  auto onlyBackups = parseLinkArgs({}, {"s2=198.18.3.2"});
  ASSERT_FALSE(onlyBackups);
  EXPECT_EQ(onlyBackups.error().code(), EINVAL);
  EXPECT_NE(onlyBackups.error().message().find("--backup-link needs at least one --link"), std::string::npos);

  auto twice = parseLinkArgs({"s0=198.18.1.2"}, {"s0=198.18.1.2"});
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code(), EINVAL);
  EXPECT_NE(twice.error().message().find("s0 is given twice (--link and --backup-link)"), std::string::npos)
      << twice.error().message();

  auto badSyntax = parseLinkArgs({"s0=198.18.1.2"}, {"s1=nowhere"});
  ASSERT_FALSE(badSyntax);
  EXPECT_NE(badSyntax.error().message().find("--backup-link 's1=nowhere'"), std::string::npos)
      << badSyntax.error().message();

  auto allBackup = planLinks({LinkArg{"lo", IpAddress::parse("127.0.0.1"), 0, true}}, Side::kSender);
  ASSERT_FALSE(allBackup);
  EXPECT_EQ(allBackup.error().code(), EINVAL);

  auto planned = planLinks({LinkArg{"lo", IpAddress::parse("127.0.0.1"), 0, false},
                            LinkArg{"lo", IpAddress::parse("127.0.0.1"), 0, true}},
                           Side::kSender);
  ASSERT_FALSE(planned);  // the same interface twice
}

TEST(LinkArgTest, TestbedBackupsAreMovedLastWithTheTestbedsPeers) {
  std::vector<LinkArg> bed = {{"s0", IpAddress::parse("198.18.1.2"), 100'000'000, false},
                              {"s1", IpAddress::parse("198.18.2.2"), 200'000'000, false},
                              {"s2", IpAddress::parse("198.18.3.2"), 300'000'000, false}};
  auto moved = applyTestbedBackups(bed, {"s0"});
  ASSERT_TRUE(moved) << moved.error().message();
  ASSERT_EQ(moved->size(), 3u);
  EXPECT_EQ((*moved)[0].interface, "s1");
  EXPECT_EQ((*moved)[1].interface, "s2");
  EXPECT_EQ((*moved)[2].interface, "s0");
  EXPECT_TRUE((*moved)[2].backup);
  EXPECT_EQ((*moved)[2].peerIp->toString(), "198.18.1.2");
  EXPECT_EQ((*moved)[2].rateBps, 100'000'000u);
  EXPECT_FALSE((*moved)[0].backup);

  auto capped = applyTestbedBackups(bed, {"s2=198.18.3.2@50M"});
  ASSERT_TRUE(capped) << capped.error().message();
  EXPECT_EQ((*capped)[2].rateBps, 50'000'000u);

  EXPECT_EQ(applyTestbedBackups(bed, {"r0"}).error().code(), EINVAL);
  EXPECT_EQ(applyTestbedBackups(bed, {"s1", "s1"}).error().code(), EINVAL);
  EXPECT_EQ(applyTestbedBackups(bed, {"s0", "s1", "s2"}).error().code(), EINVAL);
  auto unchanged = applyTestbedBackups(bed, {});
  ASSERT_TRUE(unchanged);
  EXPECT_EQ((*unchanged)[0].interface, "s0");
}

std::vector<LinkPlan> loPlans(std::vector<std::uint64_t> rates) {
  std::vector<LinkPlan> plans;
  for (std::size_t i = 0; i < rates.size(); ++i) {
    plans.push_back(
        {"lo" + std::to_string(i), *IpAddress::parse("127.0.0.1"), std::nullopt, rates[i], false});
  }
  return plans;
}

TEST(PathControlArgsTest, SchedulerAndPacingNamesAndFixedPacingNeedsRates) {
  ConnectionConfig config;
  ASSERT_TRUE(applyPathControl({}, loPlans({0, 0}), config));
  EXPECT_EQ(config.scheduler, SchedulerKind::kEarliestArrival);
  EXPECT_EQ(config.pacing, PacingMode::kAuto);

  ASSERT_TRUE(applyPathControl({"wrr", "fixed"}, loPlans({100'000'000, 200'000'000}), config));
  EXPECT_EQ(config.scheduler, SchedulerKind::kWeightedRoundRobin);
  EXPECT_EQ(config.pacing, PacingMode::kFixed);
  ASSERT_TRUE(applyPathControl({"rr", "auto"}, loPlans({0}), config));
  EXPECT_EQ(config.scheduler, SchedulerKind::kRoundRobin);

  auto fixedWithoutRate = applyPathControl({"eaf", "fixed"}, loPlans({100'000'000, 0}), config);
  ASSERT_FALSE(fixedWithoutRate);
  EXPECT_EQ(fixedWithoutRate.error().code(), EINVAL);
  EXPECT_NE(fixedWithoutRate.error().message().find("lo1 has none"), std::string::npos)
      << fixedWithoutRate.error().message();

  auto autoScheduler = applyPathControl({"auto", "auto"}, {}, config);
  ASSERT_FALSE(autoScheduler);
  EXPECT_NE(autoScheduler.error().message().find("eaf"), std::string::npos);
  EXPECT_EQ(applyPathControl({"random", "auto"}, {}, config).error().code(), EINVAL);
  EXPECT_EQ(applyPathControl({"eaf", "sometimes"}, {}, config).error().code(), EINVAL);
}

TEST(ReliabilityArgsTest, FlagsWindowAndAbortTimeout) {
  ConnectionConfig config;
  ASSERT_TRUE(applyReliability({}, config, true));
  EXPECT_FALSE(config.reliable);
  EXPECT_FALSE(config.redundant);
  EXPECT_EQ(config.peerTimeoutNs, 3'000'000'000u);
  EXPECT_EQ(config.reliableWindowPackets, ConnectionConfig{}.reliableWindowPackets);

  ASSERT_TRUE(applyReliability(
      {.reliable = true, .redundant = true, .windowPackets = 1024, .abortTimeoutS = 0.5}, config, true));
  EXPECT_TRUE(config.reliable);
  EXPECT_TRUE(config.redundant);
  EXPECT_EQ(config.reliableWindowPackets, 1024u);
  EXPECT_EQ(config.peerTimeoutNs, 500'000'000u);

  // The sender raises its own reorder window to fit; the receiver's --window is the user's: refused.
  ConnectionConfig sender;
  ASSERT_TRUE(applyReliability({.reliable = true, .windowPackets = 65536}, sender, true));
  EXPECT_EQ(sender.reorder.windowPackets, 65536u);
  ConnectionConfig receiver;
  auto tooLarge = applyReliability({.reliable = true, .windowPackets = 65536}, receiver, false);
  ASSERT_FALSE(tooLarge);
  EXPECT_NE(tooLarge.error().context().find("at most --window"), std::string::npos)
      << tooLarge.error().context();

  const std::vector<std::pair<ReliabilityArgs, std::string>> bad = {
      {{.reliable = true, .windowPackets = 100}, "power of two in 64..65536"},
      {{.reliable = true, .windowPackets = 32}, "power of two in 64..65536"},
      {{.reliable = true, .windowPackets = 131072}, "power of two in 64..65536"},
      {{.windowPackets = 128}, "needs --reliable"},
      {{.abortTimeoutS = 0}, "--abort-timeout"},
      {{.abortTimeoutS = -1}, "--abort-timeout"},
      {{.abortTimeoutS = 3601}, "--abort-timeout"},
  };
  for (const auto& [args, words] : bad) {
    ConnectionConfig c;
    auto checked = applyReliability(args, c, true);
    ASSERT_FALSE(checked) << words;
    EXPECT_EQ(checked.error().code(), EINVAL);
    EXPECT_NE(checked.error().context().find(words), std::string::npos) << checked.error().context();
  }
}

// The file object and the reliability figures in the final JSON, and the
// file's progress in the intervals.
TEST(ReporterTest, JsonCarriesTheFileAndTheReliabilityFigures) {
  RunDescription run;
  run.role = Role::kReceiver;
  run.reliable = true;
  run.linkNames = {"r0"};
  Reporter reporter(run, true, nullptr);
  reporter.start(0);
  ConnectionStats stats;
  stats.paths.resize(1);
  stats.maxStallNs = 12'500'000;
  stats.duplicates = 3;
  stats.retransmitted = 7;
  stats.flowBlockedNs = 2'000'000;
  stats.redundantCopies = 9;
  stats.late = 4;
  stats.lateQueued = 1;
  reporter.interval(stats, 1.0, 0, FileProgress{1000, 5000, true});
  stats.late = 6;
  reporter.interval(stats, 2.0, 0, FileProgress{5000, 5000, true});
  FileSummary file;
  file.path = "/x/y.bin";
  file.name = "src.bin";
  file.size = 5000;
  file.bytes = 5000;
  file.sha256 = std::string(64, 'a');
  file.peerSha256 = file.sha256;
  file.verified = true;
  file.ioNs = 42;
  file.syncNs = 10;
  file.ioWaitNs = 5;
  reporter.setFile(file);
  Ending ending;
  ending.durationS = 2.0;
  reporter.finish(stats, sampleOf(stats, Role::kReceiver, 2.0, 0), ending, EndpointStats{}, std::nullopt);
  const nlohmann::json& j = reporter.json();
  EXPECT_EQ(j.at("reliable"), true);
  EXPECT_EQ(j.at("redundant"), false);
  EXPECT_DOUBLE_EQ(j.at("max_stall_ms").get<double>(), 12.5);
  EXPECT_DOUBLE_EQ(j.at("flow_blocked_ms").get<double>(), 2.0);
  EXPECT_EQ(j.at("retransmitted"), 7);
  EXPECT_EQ(j.at("redundant_copies"), 9);
  EXPECT_EQ(j.at("duplicates"), 3);
  const auto& f = j.at("file");
  EXPECT_EQ(f.at("path"), "/x/y.bin");
  EXPECT_EQ(f.at("name"), "src.bin");
  EXPECT_EQ(f.at("bytes"), 5000);
  EXPECT_EQ(f.at("digest"), "sha256");
  EXPECT_EQ(f.at("sha256"), file.sha256);
  EXPECT_EQ(f.at("sender_sha256"), file.sha256);
  EXPECT_EQ(f.at("verified"), true);
  EXPECT_EQ(f.at("io_ns"), 42);
  EXPECT_EQ(f.at("sync_ns"), 10);
  EXPECT_EQ(f.at("io_wait_ns"), 5);
  EXPECT_TRUE(f.at("error").is_null());
  ASSERT_EQ(j.at("intervals").size(), 2u);
  EXPECT_EQ(j.at("intervals")[0].at("file_bytes"), 1000);
  EXPECT_EQ(j.at("intervals")[1].at("file_bytes"), 4000);
  EXPECT_EQ(j.at("intervals")[1].at("file_bytes_total"), 5000);
  EXPECT_EQ(j.at("intervals")[0].at("late_packets"), 4);
  EXPECT_EQ(j.at("intervals")[1].at("late_packets"), 2);
  EXPECT_EQ(j.at("late_packets"), 6);
  EXPECT_EQ(j.at("late_queued_packets"), 1);
}

// The reporter's JSON from hand-made snapshots: per-path fields in each
// interval and at the end, path events on the run's clock, ACK overhead.
TEST(ReporterTest, JsonCarriesPathControlIntervalsAndEvents) {
  RunDescription run;
  run.role = Role::kReceiver;
  run.scheduler = "eaf";
  run.pacing = "auto";
  run.linkNames = {"r0", "r1"};
  run.linkBackups = {false, true};
  Reporter reporter(run, true, nullptr);
  const std::uint64_t startNs = 5'000'000'000;
  reporter.start(startNs);

  ConnectionStats stats;
  stats.paths.resize(2);
  stats.paths[1].backup = true;
  stats.paths[1].state = PathState::kStandby;
  auto advance = [&](std::uint64_t packets, std::uint64_t lost) {
    stats.packetsDelivered += packets;
    stats.bytesDelivered += packets * 1000;
    stats.lost += lost;
    stats.paths[0].packetsReceived += packets + lost;
    stats.paths[0].bytesReceived += (packets + lost) * 1000;
    stats.paths[0].lostSeen += lost;
    stats.paths[0].controlBytesSent += 40;
    stats.paths[0].ackFramesSent += 1;
  };
  advance(100, 0);
  stats.paths[0].srttNs = 1'200'000;
  stats.paths[0].rttValid = true;
  stats.paths[0].ratePhase = "probe";
  reporter.interval(stats, 0.01, 0);
  advance(50, 7);
  stats.paths[0].state = PathState::kSuspect;
  stats.pathEvents.push_back({startNs + 15'000'000, 0, PathState::kActive, PathState::kSuspect});
  reporter.interval(stats, 0.02, 0);
  reporter.interval(stats, 0.02, 0);  // no time passed: no interval

  Ending ending;
  ending.durationS = 0.02;
  reporter.finish(stats, sampleOf(stats, Role::kReceiver, 0.02, 0), ending, EndpointStats{}, std::nullopt);
  const nlohmann::json& j = reporter.json();
  EXPECT_EQ(j.at("scheduler"), "eaf");
  EXPECT_EQ(j.at("pacing"), "auto");
  ASSERT_EQ(j.at("intervals").size(), 2u);
  const auto& second = j.at("intervals")[1];
  EXPECT_DOUBLE_EQ(second.at("start_s").get<double>(), 0.01);
  EXPECT_EQ(second.at("lost_packets"), 7u);
  ASSERT_EQ(second.at("paths").size(), 2u);
  const auto& p0 = second.at("paths")[0];
  EXPECT_EQ(p0.at("state"), "suspect");
  EXPECT_EQ(p0.at("packets"), 57u);
  EXPECT_EQ(p0.at("lost"), 7u);
  EXPECT_EQ(p0.at("ack_frames_sent"), 1u);
  EXPECT_EQ(p0.at("control_bytes_sent"), 40u);
  EXPECT_EQ(p0.at("srtt_ns"), 1'200'000u);
  EXPECT_EQ(p0.at("rate_phase"), "probe");
  for (const char* key : {"pacing_bps", "estimate_bps", "delivery_bps", "rttvar_ns", "loss_rate",
                          "queue_delay_ns", "backup", "requeued"}) {
    EXPECT_TRUE(p0.contains(key)) << key;
  }
  EXPECT_EQ(second.at("paths")[1].at("state"), "standby");
  EXPECT_EQ(second.at("paths")[1].at("backup"), true);
  EXPECT_EQ(second.at("paths")[1].at("srtt_ns"), nullptr);  // no RTT yet

  ASSERT_EQ(j.at("path_events").size(), 1u);
  const auto& event = j.at("path_events")[0];
  EXPECT_DOUBLE_EQ(event.at("time_s").get<double>(), 0.015);
  EXPECT_EQ(event.at("path"), 0);
  EXPECT_EQ(event.at("interface"), "r0");
  EXPECT_EQ(event.at("from"), "active");
  EXPECT_EQ(event.at("to"), "suspect");
  EXPECT_EQ(j.at("path_events_dropped"), 0u);
  // 80 control bytes over 157000 data bytes received.
  EXPECT_DOUBLE_EQ(j.at("ack_overhead").get<double>(), 80.0 / 157000.0);
  EXPECT_EQ(j.at("paths")[0].at("packets"), 157u);
  EXPECT_EQ(j.at("paths")[0].at("state"), "suspect");
}

}  // namespace
}  // namespace mpxdp::cli
