// `mpxdp tun` on both ends of a test bed (issue 10): unmodified programs
// (ping, iperf3) talk through the TUN interfaces 10.99.0.1 <-> 10.99.0.2
// over the bonded links in both directions; the interface MTU holds for local
// senders and for a routed client behind one end; a TCP connection survives a
// link cut; SIGTERM and SIGKILL leave neither interface nor XDP program
// behind; a restarted end finds its peer again (also after the connection
// carried traffic); bad usage exits 2; --config works like the flags.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
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

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::runIn;
using test::waitForPing;
using testbed::Subprocess;

constexpr const char* kTun = "mpx0";
constexpr const char* kTxTunIp = "10.99.0.1";
constexpr const char* kRxTunIp = "10.99.0.2";
constexpr std::uint64_t kMbit = 1'000'000;

enum class End : std::uint8_t { kTx, kRx };

std::string nsOf(const testbed::TestbedInfo& bed, End end) {
  return end == End::kTx ? bed.senderNamespace : bed.receiverNamespace;
}

std::vector<std::string> localInterfaces(const testbed::TestbedInfo& bed, End end) {
  std::vector<std::string> names;
  for (const auto& link : bed.links)
    names.push_back(end == End::kTx ? link.senderInterface : link.receiverInterface);
  return names;
}

// "--link s0=198.18.1.2@200M ..." in the test bed's link order, from one end's side.
std::vector<std::string> linkArgs(const testbed::TestbedInfo& bed, End end) {
  std::vector<std::string> args;
  for (const auto& link : bed.links) {
    args.push_back("--link");
    std::string arg = end == End::kTx ? link.senderInterface + "=" + link.receiverIp
                                      : link.receiverInterface + "=" + link.senderIp;
    if (link.rateBps != 0) arg += "@" + std::to_string(link.rateBps / kMbit) + "M";
    args.push_back(arg);
  }
  return args;
}

std::vector<std::string> inNamespace(const std::string& ns, std::vector<std::string> argv) {
  std::vector<std::string> all = {"/usr/bin/env", "ip", "netns", "exec", ns};
  all.insert(all.end(), argv.begin(), argv.end());
  return all;
}

// `ip netns exec NS mpxdp tun --name mpx0 --address 10.99.0.x/24 --link ... -J EXTRA`.
std::vector<std::string> tunArgv(const testbed::TestbedInfo& bed, End end,
                                 const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {
      MPXDP_EXECUTABLE, "tun",
      "--name",         kTun,
      "--address",      std::string(end == End::kTx ? kTxTunIp : kRxTunIp) + "/24"};
  const auto links = linkArgs(bed, end);
  argv.insert(argv.end(), links.begin(), links.end());
  argv.push_back("-J");
  argv.insert(argv.end(), extra.begin(), extra.end());
  return inNamespace(nsOf(bed, end), test::withTestBackend(std::move(argv)));
}

// Spawns argv and waits for "mpxdp tun: ready" (a gtest failure and nullopt otherwise).
std::optional<Subprocess> startTun(const std::vector<std::string>& argv) {
  auto tun = Subprocess::spawn(argv);
  if (!tun) {
    ADD_FAILURE() << tun.error().message();
    return std::nullopt;
  }
  if (!tun->waitForStderr("mpxdp tun: ready", 15s)) {
    tun->stop(1s);
    ADD_FAILURE() << "mpxdp tun not ready: " << testbed::commandLine(argv) << "\nstderr: " << tun->err()
                  << "\nstdout: " << tun->out();
    return std::nullopt;
  }
  return std::move(*tun);
}

nlohmann::json parse(const std::string& text) { return nlohmann::json::parse(text, nullptr, false); }

// `ip -j link show` in a namespace, one object per interface.
nlohmann::json links(const std::string& ns) {
  auto out = testbed::runProgram({"ip", "-n", ns, "-j", "link", "show"}, 5s);
  if (!out || out->exitStatus != 0) return nlohmann::json::array();
  auto json = parse(out->out);
  return json.is_array() ? json : nlohmann::json::array();
}

std::optional<std::uint32_t> tunMtu(const std::string& ns) {
  for (const auto& link : links(ns)) {
    if (link.value("ifname", "") == kTun) return link.value("mtu", 0U);
  }
  return std::nullopt;
}

// What an end left behind: "mpx0" while the interface exists, "xdp on IF" for
// each link with an XDP program attached. Empty when clean.
std::vector<std::string> leftovers(const std::string& ns, const std::vector<std::string>& interfaces) {
  std::vector<std::string> found;
  for (const auto& link : links(ns)) {
    const std::string name = link.value("ifname", "");
    if (name == kTun) found.push_back(kTun);
    if (std::find(interfaces.begin(), interfaces.end(), name) != interfaces.end() && link.contains("xdp"))
      found.push_back("xdp on " + name);
  }
  return found;
}

// Polls until nothing is left behind or the limit passes; returns what is left.
std::vector<std::string> waitClean(const std::string& ns, const std::vector<std::string>& interfaces,
                                   std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto found = leftovers(ns, interfaces);
    if (found.empty() || std::chrono::steady_clock::now() >= end) return found;
    std::this_thread::sleep_for(100ms);
  }
}

std::string joined(const std::vector<std::string>& items) {
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : ", ") + item;
  return text;
}

void expectPingClean(const std::string& ns, const std::string& to) {
  const auto out = runIn(ns, {"ping", "-n", "-c", "5", "-i", "0.2", "-W", "2", to});
  EXPECT_EQ(out.exitStatus, 0) << "ping " << to << " from " << ns << ":\n" << out.out << out.err;
  EXPECT_NE(out.out.find(" 0% packet loss"), std::string::npos) << out.out;
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A test bed (by name "tun<pid><suffix>") with both ends of the tunnel.
// Members go in reverse order: the ends are killed before the bed goes down.
class Tunnel {
 public:
  static std::optional<Tunnel> create(const std::string& suffix, std::vector<std::uint64_t> ratesBps) {
    auto bed = testbed::ScopedTestbed::create(
        {"tun" + std::to_string(getpid()) + suffix, std::move(ratesBps), 1500, 1, {}, {}});
    if (!bed) {
      ADD_FAILURE() << "testbed: " << bed.error().message();
      return std::nullopt;
    }
    return Tunnel(std::move(*bed));
  }

  const testbed::TestbedInfo& bed() const { return bed_->info(); }
  std::string ns(End end) const { return nsOf(bed(), end); }
  std::optional<Subprocess>& end(End end) { return end == End::kTx ? tx_ : rx_; }

  // Starts one end with the usual flags plus extra; false on failure (already reported).
  bool start(End which, const std::vector<std::string>& extra = {}) {
    return startWith(which, tunArgv(bed(), which, extra));
  }
  bool startWith(End which, const std::vector<std::string>& argv) {
    end(which).reset();
    auto tun = startTun(argv);
    if (!tun) return false;
    end(which).emplace(std::move(*tun));
    return true;
  }
  // Both ends, then a first ping through the tunnel within 10 s.
  bool startBoth(const std::vector<std::string>& extra = {}) {
    if (!start(End::kRx, extra) || !start(End::kTx, extra)) return false;
    if (!waitForPing(ns(End::kTx), kRxTunIp, 10s)) {
      ADD_FAILURE() << "no ping through the tunnel within 10 s\ntx stderr: " << tx_->err()
                    << "\nrx stderr: " << rx_->err();
      return false;
    }
    return true;
  }

  // SIGTERM: exits 0 within 5 s, prints one JSON object, leaves nothing behind.
  nlohmann::json stop(End which) {
    auto& proc = end(which);
    if (!proc) return {};
    const char* label = which == End::kTx ? "tx" : "rx";
    const auto start = std::chrono::steady_clock::now();
    proc->signal(SIGTERM);
    const auto status = proc->wait(5s);
    const double took = secondsSince(start);
    EXPECT_TRUE(status) << label << " still running 5 s after SIGTERM; stderr: " << proc->err();
    if (!status) return {};
    EXPECT_EQ(*status, 0) << label << " stderr: " << proc->err();
    std::printf("%s end exited %d %.2f s after SIGTERM\n", label, *status, took);
    const auto left = waitClean(ns(which), localInterfaces(bed(), which), 0ms);
    EXPECT_TRUE(left.empty()) << label << " left behind after SIGTERM: " << joined(left);
    auto json = parse(proc->out());
    EXPECT_TRUE(json.is_object()) << label << " stdout is not one JSON object:\n" << proc->out();
    return json.is_object() ? json : nlohmann::json{};
  }

 private:
  explicit Tunnel(testbed::ScopedTestbed bed) { bed_.emplace(std::move(bed)); }

  std::optional<testbed::ScopedTestbed> bed_;
  std::optional<Subprocess> tx_;
  std::optional<Subprocess> rx_;
};

class TunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MPXDP_REQUIRE_PRIVILEGED();
    if (!fs::exists("/dev/net/tun")) GTEST_SKIP() << "no /dev/net/tun (CONFIG_TUN)";
    if (!testbed::findProgram("iperf3")) GTEST_SKIP() << "iperf3 not installed (apt-get install iperf3)";
    if (!testbed::findProgram("ping")) GTEST_SKIP() << "ping not installed (apt-get install iputils-ping)";
  }
};

// A config file removed on destruction.
struct ConfigFile {
  fs::path path;
  explicit ConfigFile(const std::string& text) {
    path = fs::temp_directory_path() /
           ("mpxdp-tun-test-" + std::to_string(getpid()) + "-" + std::to_string(counter_++) + ".toml");
    std::ofstream(path) << text;
  }
  ~ConfigFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
  static inline int counter_ = 0;
};

std::uint64_t u64(const nlohmann::json& json, const char* a, const char* b) {
  if (!json.contains(a) || !json.at(a).contains(b)) return 0;
  return json.at(a).at(b).get<std::uint64_t>();
}

// Ping in both directions; the tx end reads its settings from --config (the
// file's port is overridden on the command line, and its MTU is lowered
// there; its three TUN queues face the other end's one).
TEST_F(TunTest, PingBothWaysWithOneEndFromAConfigFile) {
  auto tunnel = Tunnel::create("p", {200 * kMbit, 200 * kMbit});
  ASSERT_TRUE(tunnel);
  const auto& bed = tunnel->bed();
  std::string linksToml;
  for (const auto& arg : linkArgs(bed, End::kTx))
    if (arg != "--link") linksToml += (linksToml.empty() ? "\"" : ", \"") + arg + "\"";
  ConfigFile config("# mpxdp tun, tx end\nname = \"mpx0\"\naddress = \"10.99.0.1/24\"\nlink = [" + linksToml +
                    "]\nport = 47000\nmtu = 1300\nqueues = 3\nbackend = \"xdp\"\n");
  ASSERT_TRUE(tunnel->start(End::kRx, {"--port", "47011"}));
  ASSERT_TRUE(tunnel->startWith(
      End::kTx, inNamespace(tunnel->ns(End::kTx), {MPXDP_EXECUTABLE, "tun", "--config", config.path.string(),
                                                   "--port", "47011", "-J"})));
  ASSERT_TRUE(waitForPing(tunnel->ns(End::kTx), kRxTunIp, 10s))
      << "tx stderr: " << tunnel->end(End::kTx)->err() << "\nrx stderr: " << tunnel->end(End::kRx)->err();
  expectPingClean(tunnel->ns(End::kTx), kRxTunIp);
  expectPingClean(tunnel->ns(End::kRx), kTxTunIp);
  EXPECT_EQ(tunMtu(tunnel->ns(End::kTx)), 1300U) << "mtu = 1300 from the config file";
  const auto tx = tunnel->stop(End::kTx);
  const auto rx = tunnel->stop(End::kRx);
  EXPECT_EQ(tx.value("interface", ""), kTun);
  EXPECT_EQ(tx.value("mtu", 0), 1300);
  EXPECT_EQ(tx.value("queues", 0), 3) << "queues = 3 from the config file; the other end has one";
  EXPECT_EQ(rx.value("queues", 0), 1);
  EXPECT_EQ(tx.value("role", ""), "client") << "the end with the lower first-link address connects";
  EXPECT_EQ(rx.value("role", ""), "server");
  EXPECT_GE(u64(tx, "tun", "packets_read"), 11U);
  EXPECT_GE(u64(rx, "tun", "packets_written"), 11U);
}

struct IperfResult {
  double bps = 0;
  nlohmann::json report;
};

// iperf3 client in the tx namespace to the server on the rx tunnel address.
std::optional<IperfResult> iperf(const Tunnel& tunnel, std::vector<std::string> extra) {
  std::vector<std::string> argv = {"iperf3", "-c", kRxTunIp, "-B", kTxTunIp, "-J"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto client = Subprocess::spawn(inNamespace(tunnel.ns(End::kTx), argv));
  if (!client) {
    ADD_FAILURE() << client.error().message();
    return std::nullopt;
  }
  const auto status = client->wait(30s);
  if (!status || *status != 0) {
    ADD_FAILURE() << "iperf3 " << testbed::commandLine(argv) << " status " << (status ? *status : -1)
                  << "\nstdout: " << client->out() << "\nstderr: " << client->err();
    return std::nullopt;
  }
  IperfResult result;
  result.report = parse(client->out());
  if (!result.report.is_object()) {
    ADD_FAILURE() << "iperf3 -J output: " << client->out();
    return std::nullopt;
  }
  result.bps = result.report.at("end").at("sum_received").at("bits_per_second").get<double>();
  return result;
}

std::optional<Subprocess> iperfServer(const Tunnel& tunnel) {
  auto server = Subprocess::spawn(inNamespace(tunnel.ns(End::kRx), {"iperf3", "-s", "-B", kRxTunIp}));
  if (!server) {
    ADD_FAILURE() << server.error().message();
    return std::nullopt;
  }
  std::this_thread::sleep_for(500ms);  // iperf3 -s says nothing on stderr when it listens
  return std::move(*server);
}

// Both ends started with `extra` over 2 x 200 Mbit/s; iperf3 TCP with
// `streams` streams one way, then the other, each carrying at least 30 % of
// the links; then both ends' final reports (tx, rx). nullopt after a failure.
std::optional<std::pair<nlohmann::json, nlohmann::json>> tcpUpAndDown(const std::string& bed,
                                                                      const std::vector<std::string>& extra,
                                                                      const std::string& streams,
                                                                      const char* what) {
  auto tunnel = Tunnel::create(bed, {200 * kMbit, 200 * kMbit});
  if (!tunnel || !tunnel->startBoth(extra)) {
    ADD_FAILURE() << what << ": the tunnel did not come up";
    return std::nullopt;
  }
  auto server = iperfServer(*tunnel);
  if (!server) return std::nullopt;
  const double linkSum = 400e6;
  const auto up = iperf(*tunnel, {"-t", "3", "-P", streams});
  const auto down = iperf(*tunnel, {"-t", "3", "-P", streams, "-R"});
  server->stop(1s);
  if (!up || !down) {
    ADD_FAILURE() << what << ": iperf3 failed";
    return std::nullopt;
  }
  std::printf("%s over 2 x 200 Mbit/s: tx->rx %.1f Mbit/s, rx->tx %.1f Mbit/s\n", what, up->bps / 1e6,
              down->bps / 1e6);
  EXPECT_GT(up->bps, 0.3 * linkSum) << what;
  EXPECT_GT(down->bps, 0.3 * linkSum) << what;
  auto tx = tunnel->stop(End::kTx);
  auto rx = tunnel->stop(End::kRx);
  return std::pair{std::move(tx), std::move(rx)};
}

TEST_F(TunTest, Iperf3TcpBothWays) {
  auto tunnel = Tunnel::create("i", {200 * kMbit, 200 * kMbit});
  ASSERT_TRUE(tunnel);
  ASSERT_TRUE(tunnel->startBoth());
  auto server = iperfServer(*tunnel);
  ASSERT_TRUE(server);
  const double linkSum = 400e6;
  const auto up = iperf(*tunnel, {"-t", "3"});
  const auto down = iperf(*tunnel, {"-t", "3", "-R"});
  server->stop(1s);
  ASSERT_TRUE(up && down);
  std::printf(
      "iperf3 TCP through the tunnel over 2 x 200 Mbit/s: tx->rx %.1f Mbit/s (%.0f %%), rx->tx %.1f "
      "Mbit/s (%.0f %%)\n",
      up->bps / 1e6, 100 * up->bps / linkSum, down->bps / 1e6, 100 * down->bps / linkSum);
  EXPECT_GT(up->bps, 0.3 * linkSum);
  EXPECT_GT(down->bps, 0.3 * linkSum);
  const auto tx = tunnel->stop(End::kTx);
  const auto rx = tunnel->stop(End::kRx);
  for (const auto* json : {&tx, &rx}) {
    const char* label = json == &tx ? "tx" : "rx";
    EXPECT_GT(u64(*json, "tun", "packets_read"), 1000U) << label << ": " << json->dump();
    EXPECT_GT(u64(*json, "tun", "packets_written"), 1000U) << label << ": " << json->dump();
    EXPECT_EQ(json->value("connections", 0), 1) << label;
    EXPECT_TRUE(json->contains("send") && json->contains("recv")) << label << ": " << json->dump();
    std::printf("%s tun: %s\n", label, json->contains("tun") ? json->at("tun").dump().c_str() : "-");
  }
}

// --queues 2 at both ends: a reader thread per queue, and 16 TCP flows each
// way spread over both queues at both ends (the data at one, the ACKs at the
// other), with every packet written on its flow's queue.
TEST_F(TunTest, MultiQueueSpreadsFlowsOverItsReaderThreads) {
  auto reports = tcpUpAndDown("q", {"--queues", "2"}, "16", "16 TCP flows through a 2-queue tunnel");
  ASSERT_TRUE(reports);
  const auto& [tx, rx] = *reports;
  for (const auto* json : {&tx, &rx}) {
    const char* label = json == &tx ? "tx" : "rx";
    ASSERT_TRUE(json->contains("tun")) << label << ": " << json->dump();
    const auto& counters = json->at("tun");
    EXPECT_EQ(json->value("queues", 0), 2) << label;
    ASSERT_TRUE(counters.contains("queue_reads") && counters.at("queue_reads").size() == 2)
        << label << ": " << counters.dump();
    // 16 flows all on one queue would happen once in 2^15 runs.
    for (const auto& reads : counters.at("queue_reads"))
      EXPECT_GT(reads.get<std::uint64_t>(), 100U) << label << ": a queue was not read: " << counters.dump();
    EXPECT_EQ(u64(*json, "tun", "dropped_malformed"), 0U) << label;
    std::printf("%s tun: %s\n", label, counters.dump().c_str());
  }
}

// --rx-threads 2 at both ends: each link is read on a thread of its own, and
// the payloads the tunnel writes to the interface (gathered from the link
// buffers in place) are given back through that thread.
TEST_F(TunTest, ReceiveThreadsCarryTcpBothWays) {
  auto reports = tcpUpAndDown("x", {"--rx-threads", "2"}, "2", "TCP through a tunnel with receive threads");
  ASSERT_TRUE(reports);
  const auto& [tx, rx] = *reports;
  for (const auto* json : {&tx, &rx}) {
    const char* label = json == &tx ? "tx" : "rx";
    ASSERT_TRUE(json->contains("send") && json->contains("recv")) << label << ": " << json->dump();
    for (const auto& path : json->at("send").at("paths"))
      EXPECT_NE(path.at("mode").get<std::string>().find("rx-thread"), std::string::npos)
          << label << path.dump();
    EXPECT_GT(u64(*json, "tun", "packets_written"), 1000U) << label;
    EXPECT_EQ(json->at("recv").at("out_of_order_delivered").get<std::uint64_t>(), 0U) << label;
  }
}

// Local senders get EMSGSIZE above the MTU; a client routed through the tx
// end gets ICMP "fragmentation needed" from the tx end's kernel.
TEST_F(TunTest, MtuHoldsForLocalAndRoutedSenders) {
  auto tunnel = Tunnel::create("m", {200 * kMbit, 200 * kMbit});
  ASSERT_TRUE(tunnel);
  ASSERT_TRUE(tunnel->startBoth());
  const std::string txNs = tunnel->ns(End::kTx);
  const std::string rxNs = tunnel->ns(End::kRx);
  const auto mtu = tunMtu(txNs);
  ASSERT_TRUE(mtu);
  EXPECT_EQ(tunMtu(rxNs), mtu);
  EXPECT_GT(*mtu, 1300U);
  EXPECT_LT(*mtu, 1500U);
  std::printf("tunnel MTU %u over 1500-byte links\n", *mtu);
  const std::string fits = std::to_string(*mtu - 28);
  const std::string over = std::to_string(*mtu - 27);
  for (End from : {End::kTx, End::kRx}) {
    const std::string ns = tunnel->ns(from);
    const char* to = from == End::kTx ? kRxTunIp : kTxTunIp;
    const auto ok = runIn(ns, {"ping", "-n", "-M", "do", "-s", fits, "-c", "2", "-i", "0.2", "-W", "2", to});
    EXPECT_EQ(ok.exitStatus, 0) << "ping -M do -s " << fits << " " << to << ":\n" << ok.out << ok.err;
    const auto big = runIn(ns, {"ping", "-n", "-M", "do", "-s", over, "-c", "1", "-W", "2", to});
    EXPECT_NE(big.exitStatus, 0) << big.out << big.err;
    EXPECT_NE((big.out + big.err).find("message too long"), std::string::npos) << big.out << big.err;
  }

  // Routed: client namespace -- veth -- tx namespace (forwarding) -- tunnel -- rx.
  const std::string clientNs = "mpxdp-" + tunnel->bed().name + "-cl";
  struct NamespaceGuard {
    std::string name;
    ~NamespaceGuard() { (void)testbed::runProgram({"ip", "netns", "delete", name}, 5s); }
  } guard{clientNs};
  for (const std::vector<std::string>& step : std::vector<std::vector<std::string>>{
           {"ip", "netns", "add", clientNs},
           {"ip", "-n", txNs, "link", "add", "c0", "type", "veth", "peer", "name", "c1", "netns", clientNs},
           {"ip", "-n", txNs, "addr", "add", "10.98.0.1/24", "dev", "c0"},
           {"ip", "-n", txNs, "link", "set", "c0", "up"},
           {"ip", "-n", clientNs, "addr", "add", "10.98.0.2/24", "dev", "c1"},
           {"ip", "-n", clientNs, "link", "set", "c1", "up"},
           {"ip", "-n", clientNs, "link", "set", "lo", "up"},
           {"ip", "-n", clientNs, "route", "add", "default", "via", "10.98.0.1"},
           {"ip", "netns", "exec", txNs, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
           {"ip", "-n", rxNs, "route", "add", "10.98.0.0/24", "via", kTxTunIp, "dev", kTun},
       }) {
    auto done = testbed::runChecked(step, 5s);
    ASSERT_TRUE(done) << done.error().message();
  }
  ASSERT_TRUE(waitForPing(clientNs, kRxTunIp, 5s)) << "the client cannot reach the far tunnel address";
  const auto ok =
      runIn(clientNs, {"ping", "-n", "-M", "do", "-s", fits, "-c", "2", "-i", "0.2", "-W", "2", kRxTunIp});
  EXPECT_EQ(ok.exitStatus, 0) << ok.out << ok.err;
  const auto big = runIn(clientNs, {"ping", "-n", "-M", "do", "-s", over, "-c", "1", "-W", "2", kRxTunIp});
  std::printf("routed client, %s-byte payload:\n%s", over.c_str(), big.out.c_str());
  EXPECT_NE(big.exitStatus, 0) << big.out << big.err;
  EXPECT_NE(big.out.find("From 10.98.0.1"), std::string::npos) << "the router answers:\n" << big.out;
  EXPECT_NE(big.out.find("Frag needed"), std::string::npos) << big.out;
  EXPECT_NE(big.out.find("mtu = " + std::to_string(*mtu)), std::string::npos) << big.out;
  tunnel->stop(End::kTx);
  tunnel->stop(End::kRx);
}

// iperf3 -t 6 while link 0 is down from 2 s to 4 s: the connection survives
// and no two successive half-second intervals carry nothing.
TEST_F(TunTest, TcpSurvivesALinkCut) {
  auto tunnel = Tunnel::create("c", {100 * kMbit, 100 * kMbit, 100 * kMbit});
  ASSERT_TRUE(tunnel);
  ASSERT_TRUE(tunnel->startBoth());
  auto server = iperfServer(*tunnel);
  ASSERT_TRUE(server);
  auto client = Subprocess::spawn(inNamespace(
      tunnel->ns(End::kTx), {"iperf3", "-c", kRxTunIp, "-B", kTxTunIp, "-t", "6", "-i", "0.5", "-J"}));
  ASSERT_TRUE(client) << client.error().message();
  const auto started = std::chrono::steady_clock::now();
  const std::string name = tunnel->bed().name;
  std::optional<int> status;
  bool cut = false;
  bool restored = false;
  while (!(status = client->wait(20ms)) && secondsSince(started) < 25) {
    if (!cut && secondsSince(started) >= 2) {
      auto done = testbed::setLink(name, 0, {.down = true});
      EXPECT_TRUE(done) << done.error().message();
      cut = true;
    }
    if (!restored && secondsSince(started) >= 4) {
      auto done = testbed::setLink(name, 0, {.down = false});
      EXPECT_TRUE(done) << done.error().message();
      restored = true;
    }
  }
  server->stop(1s);
  ASSERT_TRUE(status) << "iperf3 still running after 25 s";
  EXPECT_TRUE(cut && restored);
  ASSERT_EQ(*status, 0) << client->out() << client->err();
  const auto report = parse(client->out());
  ASSERT_TRUE(report.is_object()) << client->out();
  double stall = 0;
  double maxStall = 0;
  std::string rates;
  for (const auto& interval : report.at("intervals")) {
    const auto& sum = interval.at("sum");
    const double bps = sum.at("bits_per_second").get<double>();
    stall = sum.at("bytes").get<std::uint64_t>() == 0 ? stall + sum.at("seconds").get<double>() : 0;
    maxStall = std::max(maxStall, stall);
    char text[32];
    std::snprintf(text, sizeof(text), " %.0f", bps / 1e6);
    rates += text;
  }
  const double goodput = report.at("end").at("sum_received").at("bits_per_second").get<double>();
  std::printf(
      "link 0 of 3 x 100 Mbit/s down 2-4 s: %.1f Mbit/s, 0.5-s intervals (Mbit/s):%s; max stall %.1f s\n",
      goodput / 1e6, rates.c_str(), maxStall);
  EXPECT_LT(maxStall, 0.99);
  EXPECT_GT(goodput, 0.3 * 200e6);
  tunnel->stop(End::kTx);
  tunnel->stop(End::kRx);
}

// While running: mpx0 exists and XDP is on every link. SIGKILL of one end:
// within 2 s the kernel has removed both. SIGTERM of the other: exit 0 within
// 5 s, nothing left.
TEST_F(TunTest, InterfaceAndXdpProgramGoAwayOnSigtermAndSigkill) {
  auto tunnel = Tunnel::create("k", {200 * kMbit, 200 * kMbit});
  ASSERT_TRUE(tunnel);
  ASSERT_TRUE(tunnel->startBoth());
  for (End end : {End::kTx, End::kRx}) {
    auto present = leftovers(tunnel->ns(end), localInterfaces(tunnel->bed(), end));
    std::sort(present.begin(), present.end());
    std::vector<std::string> expected = {kTun};
    for (const auto& name : localInterfaces(tunnel->bed(), end)) expected.push_back("xdp on " + name);
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(present, expected) << "while running, in " << tunnel->ns(end);
  }
  tunnel->end(End::kTx)->signal(SIGKILL);
  EXPECT_EQ(tunnel->end(End::kTx)->wait(2s), 128 + SIGKILL);
  const auto left = waitClean(tunnel->ns(End::kTx), localInterfaces(tunnel->bed(), End::kTx), 2s);
  EXPECT_TRUE(left.empty()) << "2 s after SIGKILL: " << joined(left);
  const auto rx = tunnel->stop(End::kRx);
  EXPECT_EQ(rx.value("connections", 0), 1);
}

// SIGKILLs one end (after `burst` pings, 2 ms apart, through the tunnel),
// restarts it, and expects a ping through again within the peer timeout
// (--abort-timeout 1) plus 5 s.
void restartAndPing(Tunnel& tunnel, End victim, const std::vector<std::string>& extra, int burst) {
  const char* label = victim == End::kTx ? "tx" : "rx";
  if (burst > 0) {
    const auto out = runIn(tunnel.ns(End::kTx), {"ping", "-n", "-q", "-c", std::to_string(burst), "-i",
                                                 "0.002", "-W", "1", kRxTunIp});
    EXPECT_EQ(out.exitStatus, 0) << out.out << out.err;
  }
  tunnel.end(victim)->signal(SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  EXPECT_TRUE(tunnel.end(victim)->wait(2s));
  const auto left = waitClean(tunnel.ns(victim), localInterfaces(tunnel.bed(), victim), 2s);
  ASSERT_TRUE(left.empty()) << label << " 2 s after SIGKILL: " << joined(left);
  ASSERT_TRUE(tunnel.start(victim, extra));
  const double restartS = secondsSince(killed);
  const bool back = waitForPing(tunnel.ns(End::kTx), kRxTunIp, 6s);
  std::printf("%s end killed after %d pings, ready again after %.2f s: ping through %s after %.2f s\n", label,
              burst, restartS, back ? "again" : "NOT again", secondsSince(killed));
  if (!back) {
    // Their reports say what each end was doing.
    for (End end : {End::kTx, End::kRx}) tunnel.end(end)->stop(3s);
  }
  ASSERT_TRUE(back) << label << " restarted, no ping within 6 s\ntx stderr: " << tunnel.end(End::kTx)->err()
                    << "\ntx stdout: " << tunnel.end(End::kTx)->out()
                    << "\nrx stderr: " << tunnel.end(End::kRx)->err()
                    << "\nrx stdout: " << tunnel.end(End::kRx)->out();
  expectPingClean(tunnel.ns(End::kRx), kTxTunIp);
}

// restartAndPing for `first`, then for the other end; false after a fatal failure.
bool restartEachEndInTurn(Tunnel& tunnel, End first, const std::vector<std::string>& extra, int burst) {
  for (End victim : {first, first == End::kTx ? End::kRx : End::kTx}) {
    restartAndPing(tunnel, victim, extra, burst);
    if (::testing::Test::HasFatalFailure()) return false;
  }
  return true;
}

// Each end in turn killed and restarted while the other runs, on a
// connection that carried little so far.
TEST_F(TunTest, ARestartedEndFindsItsPeerAgain) {
  auto tunnel = Tunnel::create("r", {200 * kMbit, 200 * kMbit});
  ASSERT_TRUE(tunnel);
  const std::vector<std::string> extra = {"--abort-timeout", "1"};
  ASSERT_TRUE(tunnel->startBoth(extra));
  if (!restartEachEndInTurn(*tunnel, End::kRx, extra, 0)) return;
  // The tx end survived the first restart (rx killed), the rx end the second.
  const auto tx = tunnel->stop(End::kTx);
  const auto rx = tunnel->stop(End::kRx);
  EXPECT_EQ(tx.value("connections", 0), 1) << "tx was restarted last: one connection";
  EXPECT_EQ(rx.value("connections", 0), 2) << "rx saw the original tx and the restarted one";
}

// The same after the connection carried traffic (1000 pings each way): the
// accepting end restarted must still be found again. The surviving end's
// connection has numbered far more packets on each path than the new
// process's answers to it ("no such connection here") start from.
TEST_F(TunTest, ARestartedEndFindsItsPeerAgainAfterTraffic) {
  auto tunnel = Tunnel::create("t", {200 * kMbit, 200 * kMbit});
  ASSERT_TRUE(tunnel);
  const std::vector<std::string> extra = {"--abort-timeout", "1"};
  ASSERT_TRUE(tunnel->startBoth(extra));
  if (!restartEachEndInTurn(*tunnel, End::kTx, extra, 1000)) return;
  tunnel->stop(End::kTx);
  tunnel->stop(End::kRx);
}

// A multi-queue end killed with its reader threads busy: the kernel removes
// the interface with the last queue's descriptor, and the restarted end
// attaches four fresh queues under the same name.
TEST_F(TunTest, AKilledMultiQueueEndLeavesNothingAndComesBack) {
  auto tunnel = Tunnel::create("m", {200 * kMbit, 200 * kMbit});
  ASSERT_TRUE(tunnel);
  const std::vector<std::string> extra = {"--abort-timeout", "1", "--queues", "4"};
  ASSERT_TRUE(tunnel->startBoth(extra));
  if (!restartEachEndInTurn(*tunnel, End::kTx, extra, 1000)) return;
  const auto tx = tunnel->stop(End::kTx);
  const auto rx = tunnel->stop(End::kRx);
  EXPECT_EQ(tx.value("queues", 0), 4);
  EXPECT_EQ(rx.value("queues", 0), 4);
}

// Bad usage: exit 2 within 10 s, a message on stderr naming the problem, no interface left.
TEST_F(TunTest, BadUsageExitsTwoWithAClearMessage) {
  auto tunnel = Tunnel::create("u", {200 * kMbit, 200 * kMbit});
  ASSERT_TRUE(tunnel);
  const auto& bed = tunnel->bed();
  const std::string ns = tunnel->ns(End::kTx);
  ConfigFile unknownKey(
      "name = \"mpx0\"\naddress = \"10.99.0.1/24\"\nlink = [\"s0=198.18.1.2\"]\ncolour = \"blue\"\n");
  struct Case {
    std::string what;
    std::vector<std::string> argv;
    std::vector<std::string> mentions;  // stderr contains one of these
  };
  auto argvWith = [&](std::vector<std::string> argv) {
    argv.insert(argv.begin(), {MPXDP_EXECUTABLE, "tun"});
    return inNamespace(ns, argv);
  };
  const std::string link0 = "s0=" + bed.links[0].receiverIp;
  // A valid tunnel on link 0 and one more option.
  auto validWith = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {"--name", kTun, "--address", "10.99.0.1/24", "--link", link0};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argvWith(argv);
  };
  const std::vector<Case> cases = {
      {"bad --address",
       argvWith({"--name", kTun, "--address", "10.99.0.300/24", "--link", link0}),
       {"10.99.0.300"}},
      {"bad --address prefix",
       argvWith({"--name", kTun, "--address", "10.99.0.1/40", "--link", link0}),
       {"10.99.0.1/40"}},
      {"unknown --link interface",
       argvWith({"--name", kTun, "--address", "10.99.0.1/24", "--link", "nosuch0=198.18.1.2"}),
       {"nosuch0"}},
      {"--config with an unknown key", argvWith({"--config", unknownKey.path.string()}), {"colour"}},
      {"missing --name", argvWith({"--address", "10.99.0.1/24", "--link", link0}), {"--name"}},
      {"--udp-checksum off without --key",
       validWith({"--udp-checksum", "off"}),
       {"--udp-checksum off needs --key"}},
      {"bad --udp-checksum", validWith({"--udp-checksum", "no"}), {"--udp-checksum"}},
      {"--queues 0", validWith({"--queues", "0"}), {"--queues must be 1 to 16"}},
      {"--queues 17", validWith({"--queues", "17"}), {"--queues must be 1 to 16"}},
      {"--queues not a number", validWith({"--queues", "two"}), {"--queues"}},
      {"--queues with --peer",
       validWith({"--queues", "2", "--peer", "/nonexistent.key=10.99.0.3/32"}),
       {"--queues with --peer"}},
  };
  for (const auto& c : cases) {
    auto proc = Subprocess::spawn(c.argv);
    ASSERT_TRUE(proc) << proc.error().message();
    const auto status = proc->wait(10s);
    std::printf("%s: exit %d, stderr: %s", c.what.c_str(), status ? *status : -1, proc->err().c_str());
    ASSERT_TRUE(status) << c.what << ": still running after 10 s (killed); stderr: " << proc->err();
    EXPECT_EQ(*status, 2) << c.what << "\nstderr: " << proc->err() << "\nstdout: " << proc->out();
    EXPECT_TRUE(std::any_of(c.mentions.begin(), c.mentions.end(),
                            [&](const std::string& m) { return proc->err().find(m) != std::string::npos; }))
        << c.what << ": stderr does not name the problem: " << proc->err();
    EXPECT_EQ(proc->err().find("mpxdp tun: ready"), std::string::npos) << c.what;
    const auto left = leftovers(ns, localInterfaces(bed, End::kTx));
    EXPECT_TRUE(left.empty()) << c.what << " left " << joined(left);
  }
}

}  // namespace
}  // namespace mpxdp
