// `mpxdp tun --peer` (issue 11): one end serves several peers, each known by
// its key and owning its inner addresses. Hub on the test bed's receiver,
// peer A on its sender, peer B on a second sender host joined to the same
// links (testbed::addSender), and a peer with a key the hub does not know on
// a third. Ping and TCP from both peers at once, peer to peer through the
// hub, a spoofed source dropped, the stranger kept out, and bad usage.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backend_args.h"
#include "netns_run.h"
#include "privilege.h"
#include "process.h"
#include "subprocess.h"
#include "testbed.h"

namespace mpxdp {
namespace {

using namespace std::chrono_literals;
using test::runIn;
using test::waitForPing;
using testbed::Subprocess;

constexpr const char* kTun = "hub0";
constexpr const char* kHubIp = "10.99.0.1";
constexpr const char* kPeerAIp = "10.99.0.2";
constexpr const char* kPeerBIp = "10.99.0.3";

std::string newKey(const test::ScratchDir& dir, const std::string& name) {
  std::string file = (dir.path / name).string();
  auto made = testbed::runProgram({MPXDP_EXECUTABLE, "genkey", "-o", file}, 10s);
  EXPECT_TRUE(made && made->exitStatus == 0) << file;
  return file;
}

std::optional<Subprocess> start(const std::string& ns, std::vector<std::string> args) {
  args.insert(args.begin(), {"/usr/bin/env", "ip", "netns", "exec", ns, MPXDP_EXECUTABLE, "tun"});
  args = test::withTestBackend(std::move(args));
  auto tun = Subprocess::spawn(args);
  if (!tun) {
    ADD_FAILURE() << tun.error().message();
    return std::nullopt;
  }
  if (!tun->waitForStderr("mpxdp tun: ready", 15s)) {
    tun->stop(1s);
    ADD_FAILURE() << testbed::commandLine(args) << " not ready:\n" << tun->err() << tun->out();
    return std::nullopt;
  }
  return std::move(*tun);
}

// A peer of the hub: connects over both links to the hub's addresses.
std::vector<std::string> peerArgs(const testbed::TestbedInfo& bed, const std::string& address,
                                  const std::string& key) {
  std::vector<std::string> args = {"--name", kTun, "--address", address + "/24",
                                   "--key",  key,  "--role",    "connect"};
  for (const auto& link : bed.links) {
    args.push_back("--link");
    args.push_back(link.senderInterface + "=" + link.receiverIp);
  }
  return args;
}

double receivedMbps(const std::string& iperfJson) {
  const auto j = nlohmann::json::parse(iperfJson, nullptr, false);
  if (j.is_discarded() || !j.contains("end")) return 0;
  return j["end"]["sum_received"].value("bits_per_second", 0.0) / 1e6;
}

TEST(TunHubTest, ServesTwoPeersAtOnceKeepsThemApartAndKeepsAStrangerOut) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto scoped = testbed::ScopedTestbed::create(
      {"hub" + std::to_string(getpid()), {200'000'000, 200'000'000}, 1500, 1, {}, {}});
  ASSERT_TRUE(scoped) << scoped.error().message();
  const auto& bed = scoped->info();
  auto hostB = testbed::addSender(bed.name, 2);
  ASSERT_TRUE(hostB) << hostB.error().message();
  auto hostC = testbed::addSender(bed.name, 3);
  ASSERT_TRUE(hostC) << hostC.error().message();
  test::ScratchDir keys("mpxdp-hub-keys");
  const std::string keyA = newKey(keys, "a.key");
  const std::string keyB = newKey(keys, "b.key");
  const std::string keyC = newKey(keys, "c.key");
  // Peer to peer goes through the hub's kernel.
  ASSERT_EQ(runIn(bed.receiverNamespace, {"sysctl", "-qw", "net.ipv4.ip_forward=1"}).exitStatus, 0);

  std::vector<std::string> hubArgs = {"--name",
                                      kTun,
                                      "--address",
                                      std::string(kHubIp) + "/24",
                                      "-J",
                                      "--peer",
                                      keyA + "=" + kPeerAIp + "/32",
                                      "--peer",
                                      keyB + "=" + kPeerBIp + "/32",
                                      "--metrics",
                                      "127.0.0.1:9464"};
  for (const auto& link : bed.links) {
    hubArgs.push_back("--link");
    hubArgs.push_back(link.receiverInterface);
  }
  auto hub = start(bed.receiverNamespace, hubArgs);
  ASSERT_TRUE(hub);
  auto peerA = start(bed.senderNamespace, peerArgs(bed, kPeerAIp, keyA));
  ASSERT_TRUE(peerA);
  auto peerB = start(*hostB, peerArgs(bed, kPeerBIp, keyB));
  ASSERT_TRUE(peerB);
  auto stranger = start(*hostC, peerArgs(bed, "10.99.0.4", keyC));
  ASSERT_TRUE(stranger);

  ASSERT_TRUE(waitForPing(bed.senderNamespace, kHubIp, 15s)) << hub->err() << peerA->out();
  ASSERT_TRUE(waitForPing(*hostB, kHubIp, 15s)) << hub->err() << peerB->out();
  // A to B: in at the hub from A's connection, forwarded, out on B's.
  const auto aToB = runIn(bed.senderNamespace, {"ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", kPeerBIp});
  EXPECT_EQ(aToB.exitStatus, 0) << aToB.out << aToB.err;

  // TCP from both peers at once, each to its own server on the hub.
  auto serverA = Subprocess::spawn(
      {"/usr/bin/env", "ip", "netns", "exec", bed.receiverNamespace, "iperf3", "-s", "-1", "-p", "5301"});
  auto serverB = Subprocess::spawn(
      {"/usr/bin/env", "ip", "netns", "exec", bed.receiverNamespace, "iperf3", "-s", "-1", "-p", "5302"});
  ASSERT_TRUE(serverA && serverB);
  std::this_thread::sleep_for(500ms);
  auto clientA = Subprocess::spawn({"/usr/bin/env", "ip", "netns", "exec", bed.senderNamespace, "iperf3",
                                    "-c", kHubIp, "-p", "5301", "-t", "3", "-J"});
  auto clientB = Subprocess::spawn(
      {"/usr/bin/env", "ip", "netns", "exec", *hostB, "iperf3", "-c", kHubIp, "-p", "5302", "-t", "3", "-J"});
  ASSERT_TRUE(clientA && clientB);
  // Mid-transfer the hub's metrics (in its namespace) show both peers' connections.
  std::this_thread::sleep_for(1500ms);
  const auto scraped =
      runIn(bed.receiverNamespace, {"python3", "-c",
                                    "import urllib.request; print(urllib.request.urlopen("
                                    "'http://127.0.0.1:9464/metrics', timeout=5).read().decode())"});
  EXPECT_NE(scraped.out.find("mpxdp_connections{command=\"tun\"} 2"), std::string::npos)
      << scraped.out << scraped.err;
  std::size_t deliveredSeries = 0;
  for (std::size_t at = scraped.out.find("\nmpxdp_delivered_packets_total{"); at != std::string::npos;
       at = scraped.out.find("\nmpxdp_delivered_packets_total{", at + 1))
    ++deliveredSeries;
  EXPECT_EQ(deliveredSeries, 2u) << scraped.out;
  EXPECT_EQ(clientA->wait(20s), std::optional<int>(0)) << clientA->err();
  EXPECT_EQ(clientB->wait(20s), std::optional<int>(0)) << clientB->err();
  EXPECT_GT(receivedMbps(clientA->out()), 10.0) << clientA->out();
  EXPECT_GT(receivedMbps(clientB->out()), 10.0) << clientB->out();
  (void)serverA->wait(5s);
  (void)serverB->wait(5s);

  // B claims A's address: its packets open (B's key) but the hub drops them.
  ASSERT_EQ(runIn(*hostB, {"ip", "addr", "add", std::string(kPeerAIp) + "/32", "dev", kTun}).exitStatus, 0);
  const auto spoofed =
      runIn(*hostB, {"ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", "-I", kPeerAIp, kHubIp});
  EXPECT_NE(spoofed.exitStatus, 0) << spoofed.out;

  // The stranger's key opens nothing: it never connects.
  EXPECT_NE(runIn(*hostC, {"ping", "-n", "-c", "1", "-W", "1", kHubIp}).exitStatus, 0);
  stranger->signal(SIGTERM);
  EXPECT_EQ(stranger->wait(10s), std::optional<int>(0)) << stranger->err();
  EXPECT_NE(stranger->out().find("no connection yet"), std::string::npos) << stranger->out();

  hub->signal(SIGTERM);
  ASSERT_EQ(hub->wait(10s), std::optional<int>(0)) << hub->err();
  const auto report = nlohmann::json::parse(hub->out(), nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << hub->out();
  EXPECT_EQ(report.value("role", ""), "hub");
  ASSERT_EQ(report["peers"].size(), 2u) << report.dump(2);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& peer = report["peers"][i];
    SCOPED_TRACE("peer " + std::to_string(i));
    EXPECT_EQ(peer.value("key_index", 99U), i);
    EXPECT_EQ(peer.value("key_file", ""), i == 0 ? keyA : keyB);
    EXPECT_GE(peer.value("connections", 0U), 1U);
    ASSERT_TRUE(peer.contains("recv")) << peer.dump(2);
    EXPECT_EQ(peer["recv"].value("authenticated", false), true);
    EXPECT_EQ(peer["recv"].value("key_index", 99U), i);
    // Each peer's connection carried its TCP transfer: thousands of packets, not a few pings.
    EXPECT_GT(peer["recv"].value("delivered_packets", 0ULL), 1000ULL) << peer["recv"].dump(2);
  }
  EXPECT_GE(report["tun"].value("dropped_wrong_source", 0ULL), 3ULL) << report["tun"].dump(2);
  EXPECT_GT(report["peers"][0]["recv"].value("auth_failed_packets", 0ULL) +
                report["peers"][1]["recv"].value("auth_failed_packets", 0ULL),
            0ULL)
      << "the stranger's packets were not counted";
  peerA->signal(SIGTERM);
  peerB->signal(SIGTERM);
  EXPECT_EQ(peerA->wait(10s), std::optional<int>(0)) << peerA->err();
  EXPECT_EQ(peerB->wait(10s), std::optional<int>(0)) << peerB->err();
}

TEST(TunHubTest, PeerMisuseIsAUsageError) {
  test::ScratchDir keys("mpxdp-hub-keys");
  const std::string key = newKey(keys, "a.key");
  const auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {MPXDP_EXECUTABLE, "tun",          "--name", "hubx0",
                                     "--address",      "10.99.0.1/24", "--link", "nonexistent0"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto out = testbed::runProgram(args, 10s);
    EXPECT_TRUE(out);
    return out ? *out : testbed::ProgramOutput{.exitStatus = -1};
  };
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--peer", key}, "expected KEY_FILE=CIDR"},
      {{"--peer", key + "=10.99.0.2"}, "expected ADDRESS/LENGTH"},
      {{"--peer", key + "=10.99.0.2/32", "--key", key}, "drop --key"},
      {{"--peer", key + "=10.99.0.2/32", "--role", "connect"}, "--role connect"},
      {{"--peer", key + "=10.99.0.0/24", "--peer", key + "=10.99.0.9/24"}, "claimed by two peers"},
      {{"--peer", key + "=10.99.0.2/32", "--peer", key + "=10.99.0.3/32"}, "the same key is given twice"},
      {{"--role", "both"}, "expected connect, accept or auto"},
  };
  for (const auto& [extra, expected] : cases) {
    const auto out = run(extra);
    EXPECT_EQ(out.exitStatus, 2) << testbed::commandLine(extra) << "\n" << out.err;
    EXPECT_NE(out.err.find(expected), std::string::npos) << testbed::commandLine(extra) << "\n" << out.err;
  }
}

}  // namespace
}  // namespace mpxdp
