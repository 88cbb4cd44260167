#include "testbed.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>

#include "privilege.h"
#include "process.h"

namespace mpxdp::testbed {
namespace {

// Unique per process so parallel ctest runs do not collide.
std::string uniqueName(std::string_view suffix) { return fmt::format("t{}-{}", getpid(), suffix); }

bool namespaceExists(const std::string& namespaceName) {
  return std::filesystem::exists("/run/netns/" + namespaceName);
}

std::uint16_t icmpChecksum(const std::uint8_t* data, std::size_t size) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < size; i += 2) sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
  if (size % 2 != 0) sum += static_cast<std::uint32_t>(data[size - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<std::uint16_t>(~sum));
}

// One ICMP echo from the calling thread's namespace; true when the reply
// arrives within a second.
bool pingOnce(const std::string& destination, std::uint16_t sequence) {
  const int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (fd < 0) return false;
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  inet_pton(AF_INET, destination.c_str(), &peer.sin_addr);
  // connect() makes the raw socket accept only packets from the peer.
  if (connect(fd, reinterpret_cast<const sockaddr*>(&peer), sizeof(peer)) != 0) {
    close(fd);
    return false;
  }
  const auto id = static_cast<std::uint16_t>(getpid());
  std::array<std::uint8_t, 24> request{};
  request[0] = ICMP_ECHO;
  std::uint16_t netId = htons(id);
  std::uint16_t netSequence = htons(sequence);
  std::memcpy(&request[4], &netId, 2);
  std::memcpy(&request[6], &netSequence, 2);
  std::memcpy(&request[8], "mpxdp-testbed", 13);
  const std::uint16_t checksum = icmpChecksum(request.data(), request.size());
  std::memcpy(&request[2], &checksum, 2);
  bool replied = false;
  if (send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    std::array<std::uint8_t, 256> reply{};
    while (!replied) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd pfd{fd, POLLIN, 0};
      if (poll(&pfd, 1, static_cast<int>(left.count())) <= 0) break;
      const ssize_t n = recv(fd, reply.data(), reply.size(), 0);
      if (n < static_cast<ssize_t>(sizeof(iphdr) + 8)) continue;
      const std::size_t ipHeader = (reply[0] & 0x0f) * 4u;
      if (static_cast<std::size_t>(n) < ipHeader + 8) continue;
      const std::uint8_t* icmp = reply.data() + ipHeader;
      replied = icmp[0] == ICMP_ECHOREPLY && std::memcmp(&icmp[4], &netId, 2) == 0 &&
                std::memcmp(&icmp[6], &netSequence, 2) == 0;
    }
  }
  close(fd);
  return replied;
}

// Up to 3 echoes (the first may wait for ARP).
bool pingFromNamespace(const std::string& namespaceName, const std::string& destination) {
  auto scope = NetnsScope::enter(namespaceName);
  if (!scope) {
    ADD_FAILURE() << scope.error().message();
    return false;
  }
  for (std::uint16_t sequence = 1; sequence <= 3; ++sequence) {
    if (pingOnce(destination, sequence)) return true;
  }
  return false;
}

nlohmann::json runJson(const std::vector<std::string>& argv) {
  auto out = runChecked(argv);
  if (!out) {
    ADD_FAILURE() << out.error().message();
    return nullptr;
  }
  return nlohmann::json::parse(*out, nullptr, false);
}

// tbf rate in bit/s on a device, straight from tc; nullopt without tbf.
std::optional<std::uint64_t> tbfRate(const std::string& namespaceName, const std::string& device) {
  const auto qdiscs = runJson({"tc", "-j", "-n", namespaceName, "qdisc", "show", "dev", device});
  if (!qdiscs.is_array()) return std::nullopt;
  for (const auto& qdisc : qdiscs) {
    if (qdisc.value("kind", "") == "tbf" && qdisc.value("root", false)) {
      return qdisc["options"]["rate"].get<std::uint64_t>() * 8;
    }
  }
  return std::nullopt;
}

TEST(testbed, UpBuildsShapedWireLikeLinksThatPing) {
  MPXDP_REQUIRE_PRIVILEGED();
  const std::vector<std::uint64_t> rates = {100'000'000, 300'000'000, 1'000'000'000};
  auto testbed = ScopedTestbed::create({uniqueName("up"), rates, 1500});
  ASSERT_TRUE(testbed) << testbed.error().message();
  const TestbedInfo& info = testbed->info();

  auto shown = show(info.name);
  ASSERT_TRUE(shown) << shown.error().message();
  EXPECT_EQ(toJson(*shown), toJson(info));
  EXPECT_EQ(shown->senderNamespace, "mpxdp-" + info.name + "-tx");
  EXPECT_EQ(shown->receiverNamespace, "mpxdp-" + info.name + "-rx");
  EXPECT_EQ(shown->linkNamespace, "mpxdp-" + info.name + "-link");
  EXPECT_EQ(shown->mtu, 1500u);
  EXPECT_EQ(shown->queues, 1u);
  ASSERT_EQ(shown->links.size(), rates.size());

  for (std::size_t i = 0; i < rates.size(); ++i) {
    SCOPED_TRACE(fmt::format("link {}", i));
    const LinkInfo& link = shown->links[i];
    EXPECT_EQ(link.senderInterface, fmt::format("s{}", i));
    EXPECT_EQ(link.receiverInterface, fmt::format("r{}", i));
    EXPECT_EQ(link.senderIp, fmt::format("198.18.{}.1", i + 1));
    EXPECT_EQ(link.receiverIp, fmt::format("198.18.{}.2", i + 1));
    EXPECT_EQ(link.senderMac.size(), 17u);
    EXPECT_EQ(link.receiverMac.size(), 17u);
    EXPECT_NE(link.senderMac, link.receiverMac);
    EXPECT_EQ(link.rateBps, rates[i]);
    EXPECT_EQ(link.reverseRateBps, rates[i]);

    // The kernel itself has tbf at the right rate in both directions.
    EXPECT_EQ(tbfRate(info.linkNamespace, fmt::format("mr{}", i)), rates[i]);
    EXPECT_EQ(tbfRate(info.linkNamespace, fmt::format("ms{}", i)), rates[i]);

    const std::array<std::pair<std::string, std::string>, 4> veths = {{
        {info.senderNamespace, fmt::format("s{}", i)},
        {info.linkNamespace, fmt::format("ms{}", i)},
        {info.linkNamespace, fmt::format("mr{}", i)},
        {info.receiverNamespace, fmt::format("r{}", i)},
    }};
    for (const auto& [namespaceName, device] : veths) {
      SCOPED_TRACE(device);
      auto on = superPacketFeaturesOn(namespaceName, device);
      ASSERT_TRUE(on) << on.error().message();
      EXPECT_TRUE(on->empty()) << "still on: " << fmt::format("{}", fmt::join(*on, ", "));
      auto features = runChecked({"ip", "netns", "exec", namespaceName, "ethtool", "-k", device});
      ASSERT_TRUE(features) << features.error().message();
      EXPECT_NE(features->find("tcp-segmentation-offload: off"), std::string::npos);
      EXPECT_NE(features->find("generic-segmentation-offload: off"), std::string::npos);
      EXPECT_NE(features->find("generic-receive-offload: off"), std::string::npos);

      const auto links = runJson({"ip", "-j", "-d", "-n", namespaceName, "link", "show", "dev", device});
      ASSERT_TRUE(links.is_array() && links.size() == 1u);
      EXPECT_EQ(links[0].value("num_tx_queues", 0), 1);
      EXPECT_EQ(links[0].value("num_rx_queues", 0), 1);
      EXPECT_EQ(links[0].value("mtu", 0), 1500);
    }
    EXPECT_TRUE(pingFromNamespace(info.senderNamespace, link.receiverIp))
        << "no echo reply from " << link.receiverIp;
  }

  for (const auto& namespaceName : {info.senderNamespace, info.receiverNamespace, info.linkNamespace}) {
    const auto lo = runJson({"ip", "-j", "-n", namespaceName, "link", "show", "dev", "lo"});
    ASSERT_TRUE(lo.is_array() && lo.size() == 1u);
    const auto& flags = lo[0]["flags"];
    EXPECT_NE(std::find(flags.begin(), flags.end(), "UP"), flags.end()) << namespaceName;
  }

  const nlohmann::json json = toJson(*shown);
  EXPECT_EQ(json["links"].size(), 3u);
  EXPECT_EQ(json["links"][2]["rate_bps"], 1'000'000'000u);
  EXPECT_EQ(json["links"][0]["receiver"]["ip"], "198.18.1.2");
  EXPECT_EQ(json["namespaces"]["link"], info.linkNamespace);
  EXPECT_NE(toText(*shown).find("300 Mbit/s"), std::string::npos);
}

TEST(testbed, UnshapedLinkHasNoTbf) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto testbed = ScopedTestbed::create({uniqueName("free"), {0}, 1400});
  ASSERT_TRUE(testbed) << testbed.error().message();
  ASSERT_EQ(testbed->info().links.size(), 1u);
  EXPECT_EQ(testbed->info().links[0].rateBps, 0u);
  EXPECT_EQ(testbed->info().mtu, 1400u);
  EXPECT_EQ(tbfRate(testbed->info().linkNamespace, "mr0"), std::nullopt);
  EXPECT_TRUE(pingFromNamespace(testbed->info().senderNamespace, "198.18.1.2"));
}

TEST(testbed, QueuesGiveEveryVethThatManyTxAndRxQueues) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto testbed = ScopedTestbed::create({uniqueName("queues"), {0, 0}, 1500, 4});
  ASSERT_TRUE(testbed) << testbed.error().message();
  const TestbedInfo& info = testbed->info();
  EXPECT_EQ(info.queues, 4u);
  auto shown = show(info.name);
  ASSERT_TRUE(shown) << shown.error().message();
  EXPECT_EQ(shown->queues, 4u);
  EXPECT_EQ(toJson(*shown)["queues"], 4u);
  EXPECT_NE(toText(*shown).find("4 queue(s) per veth"), std::string::npos) << toText(*shown);
  for (std::size_t i = 0; i < info.links.size(); ++i) {
    const std::array<std::pair<std::string, std::string>, 4> veths = {{
        {info.senderNamespace, fmt::format("s{}", i)},
        {info.linkNamespace, fmt::format("ms{}", i)},
        {info.linkNamespace, fmt::format("mr{}", i)},
        {info.receiverNamespace, fmt::format("r{}", i)},
    }};
    for (const auto& [namespaceName, device] : veths) {
      SCOPED_TRACE(device);
      const auto links = runJson({"ip", "-j", "-d", "-n", namespaceName, "link", "show", "dev", device});
      ASSERT_TRUE(links.is_array() && links.size() == 1u);
      EXPECT_EQ(links[0].value("num_tx_queues", 0), 4);
      EXPECT_EQ(links[0].value("num_rx_queues", 0), 4);
    }
  }
  EXPECT_TRUE(pingFromNamespace(info.senderNamespace, "198.18.2.2"));
}

TEST(testbed, TakenNameFailsWithEexistAndKeepsTheExistingTestbed) {
  MPXDP_REQUIRE_PRIVILEGED();
  const std::string name = uniqueName("taken");
  auto first = ScopedTestbed::create({name, {300'000'000}, 1500});
  ASSERT_TRUE(first) << first.error().message();

  auto second = up({name, {100'000'000, 100'000'000}, 1500});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), EEXIST);

  auto shown = show(name);
  ASSERT_TRUE(shown) << shown.error().message();
  ASSERT_EQ(shown->links.size(), 1u);
  EXPECT_EQ(shown->links[0].rateBps, 300'000'000u);
  EXPECT_TRUE(pingFromNamespace(shown->senderNamespace, "198.18.1.2"));
}

TEST(testbed, PartlyTakenNameFailsWithoutTouchingTheOtherNamespace) {
  MPXDP_REQUIRE_PRIVILEGED();
  const std::string name = uniqueName("part");
  const std::string receiver = receiverNamespaceName(name);
  ASSERT_TRUE(runChecked({"ip", "netns", "add", receiver}));
  struct Cleanup {
    std::string name;
    ~Cleanup() { (void)down(name); }
  } cleanup{name};

  auto result = up({name, {0}, 1500});
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code(), EEXIST);
  EXPECT_TRUE(namespaceExists(receiver));
  EXPECT_FALSE(namespaceExists(senderNamespaceName(name)));
  EXPECT_FALSE(namespaceExists(linkNamespaceName(name)));
  auto shown = show(name);
  ASSERT_FALSE(shown);
  EXPECT_EQ(shown.error().code(), ENOENT);
}

TEST(testbed, DownIsIdempotentAndScopedTestbedTearsDown) {
  MPXDP_REQUIRE_PRIVILEGED();
  const std::string name = uniqueName("down");
  EXPECT_TRUE(down(name)) << "down of a test bed that never existed";
  {
    auto testbed = ScopedTestbed::create({name, {0, 50'000'000}, 1500});
    ASSERT_TRUE(testbed) << testbed.error().message();
    ScopedTestbed moved(std::move(*testbed));  // the moved-from one must not tear down
    EXPECT_TRUE(namespaceExists(senderNamespaceName(name)));
    EXPECT_TRUE(show(name));
  }
  for (const auto& namespaceName :
       {senderNamespaceName(name), receiverNamespaceName(name), linkNamespaceName(name)}) {
    EXPECT_FALSE(namespaceExists(namespaceName)) << namespaceName;
  }
  auto shown = show(name);
  ASSERT_FALSE(shown);
  EXPECT_EQ(shown.error().code(), ENOENT);
  EXPECT_TRUE(down(name));

  auto again = up({name, {0}, 1500});
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_TRUE(down(name));
  EXPECT_TRUE(down(name));
  EXPECT_FALSE(namespaceExists(senderNamespaceName(name)));
}

TEST(testbed, NetnsScopeEntersAndRestores) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto testbed = ScopedTestbed::create({uniqueName("scope"), {0}, 1500});
  ASSERT_TRUE(testbed) << testbed.error().message();
  const auto inode = [](const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
  };
  const auto before = inode("/proc/thread-self/ns/net");
  const auto target = inode("/run/netns/" + testbed->info().senderNamespace);
  ASSERT_NE(before, target);
  {
    auto scope = NetnsScope::enter(testbed->info().senderNamespace);
    ASSERT_TRUE(scope) << scope.error().message();
    EXPECT_EQ(inode("/proc/thread-self/ns/net"), target);
  }
  EXPECT_EQ(inode("/proc/thread-self/ns/net"), before);
  auto missing = NetnsScope::enter(uniqueName("nothere"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ENOENT);
  EXPECT_FALSE(NetnsScope::enter("../etc"));
}

TEST(testbed, BadSpecsAreRejectedBeforeAnythingIsMade) {
  MPXDP_REQUIRE_PRIVILEGED();
  const std::string name = uniqueName("bad");
  const std::vector<TestbedSpec> bad = {
      {name, {}, 1500},                                   // 0 links
      {name, std::vector<std::uint64_t>(17, 0), 1500},    // 17 links
      {name, {1000}, 1500},                               // rate below the minimum
      {name, {200'000'000'000}, 1500},                    // rate above the maximum
      {name, {0}, 100},                                   // mtu too small
      {name, {0}, 65000},                                 // mtu too large
      {name, {0}, 1500, 0},                               // no queue
      {name, {0}, 1500, kMaxQueues + 1},                  // too many queues
      {"", {0}, 1500},                                    // empty name
      {"Upper", {0}, 1500},                               // upper case
      {"a_b", {0}, 1500},                                 // underscore
      {"a/b", {0}, 1500},                                 // path
      {"-x", {0}, 1500},                                  // looks like an option
      {std::string(kMaxNameLength + 1, 'a'), {0}, 1500},  // too long
  };
  for (const auto& spec : bad) {
    SCOPED_TRACE(fmt::format("name '{}', {} links, mtu {}", spec.name, spec.ratesBps.size(), spec.mtu));
    auto result = up(spec);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), EINVAL);
    EXPECT_FALSE(result.error().message().empty());
  }
  EXPECT_FALSE(namespaceExists(senderNamespaceName(name)));
  EXPECT_TRUE(validateSpec({std::string(kMaxNameLength, 'a'), std::vector<std::uint64_t>(16, 0), 1500}));
  EXPECT_FALSE(down("Bad_Name"));
  EXPECT_FALSE(show("../x"));
}

TEST(testbed, TbfSizesHoldAFrameAndAPacedSendersBatches) {
  MPXDP_REQUIRE_PRIVILEGED();
  for (std::uint64_t rate :
       {10'000'000ull, 100'000'000ull, 300'000'000ull, 1'000'000'000ull, 10'000'000'000ull}) {
    SCOPED_TRACE(rate);
    const TbfParams params = tbfParamsFor(rate, 1500);
    EXPECT_GE(params.burstBytes, 1514u);                            // one full frame
    EXPECT_GE(params.burstBytes, rate / 8 / 1000);                  // 1 ms of timer slack
    EXPECT_GE(params.limitBytes - params.burstBytes, 64u * 1514u);  // a full AF_XDP batch
    EXPECT_GE(params.limitBytes, rate / 8 / 50);                    // 20 ms at the rate
    EXPECT_LT(params.limitBytes, 64u * 1024 * 1024);                // bounded memory
  }
  EXPECT_GE(tbfParamsFor(10'000'000, 9000).burstBytes, 9014u);
}

TEST(testbed, ProgramsRunWithoutAShellAndReportFailures) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto version = runProgram({"ip", "-V"});
  ASSERT_TRUE(version) << version.error().message();
  EXPECT_EQ(version->exitStatus, 0);
  EXPECT_NE(version->out.find("iproute2"), std::string::npos);

  // A shell would expand this; an argv vector passes it through untouched.
  auto failed = runChecked({"ip", "link", "show", "dev", "no-such-dev;$(true)"});
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().context().find("no-such-dev;$(true)"), std::string::npos);
  EXPECT_NE(failed.error().context().find("does not exist"), std::string::npos) << failed.error().context();

  auto missing = findProgram("mpxdp-no-such-program");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ENOENT);

  const auto start = std::chrono::steady_clock::now();
  auto slow = runProgram({"sleep", "10"}, std::chrono::milliseconds(200));
  ASSERT_FALSE(slow);
  EXPECT_EQ(slow.error().code(), ETIMEDOUT);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

}  // namespace
}  // namespace mpxdp::testbed
