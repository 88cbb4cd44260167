// --metrics on the test bed: `mpxdp recv` and `mpxdp send` serve Prometheus
// text while a transfer runs; scraped over loopback (the ports are bound
// before the commands enter the test bed's namespaces), the figures move
// with the transfer. Bad addresses and a taken port are clear errors.
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backend_args.h"
#include "delivery_check.h"
#include "privilege.h"
#include "subprocess.h"
#include "testbed.h"

namespace mpxdp {
namespace {

using namespace std::chrono_literals;
using testbed::Subprocess;

// name{labels} -> value of every sample line.
std::map<std::string, double> scrape(std::uint16_t port) {
  std::map<std::string, double> values;
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2, 0);
  auto got = client.Get("/metrics");
  if (!got || got->status != 200) {
    ADD_FAILURE() << "scrape of port " << port << " failed";
    return values;
  }
  std::istringstream in(got->body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    values[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return values;
}

// The sum over the series of one family whose labels contain `having`.
double sum(const std::map<std::string, double>& values, const std::string& family,
           const std::string& having = "") {
  double total = 0;
  for (const auto& [series, value] : values) {
    if (series.rfind(family + "{", 0) == 0 && series.find(having) != std::string::npos) total += value;
  }
  return total;
}

std::uint16_t portFor(int offset) { return static_cast<std::uint16_t>(20000 + (getpid() % 20000) + offset); }

TEST(MetricsScrapeTest, SenderAndReceiverServeMovingFiguresDuringATransfer) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto bed = testbed::ScopedTestbed::create(
      {"met" + std::to_string(getpid()), {200'000'000, 200'000'000}, 1500, 1, {}, {}});
  ASSERT_TRUE(bed) << bed.error().message();
  const std::string name = bed->info().name;
  const std::uint16_t recvPort = portFor(0);
  const std::uint16_t sendPort = portFor(1);
  auto receiver =
      Subprocess::spawn(test::withTestBackend({MPXDP_EXECUTABLE, "recv", "--testbed", name, "-1", "-J",
                                               "--metrics", "127.0.0.1:" + std::to_string(recvPort)}));
  ASSERT_TRUE(receiver) << receiver.error().message();
  ASSERT_TRUE(receiver->waitForStderr("mpxdp recv: ready", 20s)) << receiver->err();
  // Between connections the receiver serves its count alone.
  EXPECT_EQ(sum(scrape(recvPort), "mpxdp_connections"), 0);

  auto sender = Subprocess::spawn(
      test::withTestBackend({MPXDP_EXECUTABLE, "send", "--testbed", name, "-t", "3", "-b", "200M", "-J",
                             "--metrics", "127.0.0.1:" + std::to_string(sendPort)}));
  ASSERT_TRUE(sender) << sender.error().message();
  std::this_thread::sleep_for(1200ms);
  const auto sent1 = scrape(sendPort);
  const auto received1 = scrape(recvPort);
  std::this_thread::sleep_for(800ms);
  const auto sent2 = scrape(sendPort);
  const auto received2 = scrape(recvPort);

  EXPECT_EQ(sum(sent1, "mpxdp_connections"), 1);
  EXPECT_EQ(sum(received1, "mpxdp_connections"), 1);
  // Both paths carry data, and the counters grow between the scrapes.
  for (const char* path : {"path=\"0\"", "path=\"1\""}) {
    SCOPED_TRACE(path);
    EXPECT_GT(sum(sent1, "mpxdp_path_sent_packets_total", path), 0);
    EXPECT_GT(sum(sent2, "mpxdp_path_sent_packets_total", path),
              sum(sent1, "mpxdp_path_sent_packets_total", path));
    EXPECT_EQ(sum(sent2, "mpxdp_path_state", std::string(path) + ",link=\"s"), 1);  // one state is 1
    EXPECT_GT(sum(sent2, "mpxdp_path_srtt_seconds", path), 0);
    EXPECT_GT(sum(sent2, "mpxdp_path_pacing_rate_bits_per_second", path), 0);
    EXPECT_GT(sum(received2, "mpxdp_path_received_packets_total", path), 0);
  }
  EXPECT_EQ(sum(sent2, "mpxdp_path_state", "state=\"active\""), 2);
  EXPECT_GT(sum(received2, "mpxdp_delivered_packets_total"), sum(received1, "mpxdp_delivered_packets_total"));
  EXPECT_GT(sum(received2, "mpxdp_xdp_redirected_total"), 0);

  ASSERT_EQ(sender->wait(20s), std::optional<int>(0)) << sender->err();
  ASSERT_EQ(receiver->wait(20s), std::optional<int>(0)) << receiver->err();
  const auto report = nlohmann::json::parse(receiver->out(), nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << receiver->out();
  const auto sent = nlohmann::json::parse(sender->out(), nullptr, false);
  ASSERT_FALSE(sent.is_discarded()) << sender->out();
  // What was scraped never exceeds what the final report counts, and that
  // lost only what the host dropped or a stalled VM made late.
  EXPECT_LE(sum(received2, "mpxdp_delivered_packets_total"), report.value("delivered_packets", 0.0));
  EXPECT_LE(sum(received2, "mpxdp_lost_packets_total"), report.value("lost_packets", 0.0));
  test::expectCleanDelivery(report, sent);
}

TEST(MetricsScrapeTest, BadAddressesAndATakenPortAreClearErrors) {
  for (const char* bad : {"9464", "localhost:9464", "127.0.0.1:0", "[::1:9464"}) {
    auto run = Subprocess::spawn({MPXDP_EXECUTABLE, "recv", "--link", "lo", "--metrics", bad});
    ASSERT_TRUE(run) << run.error().message();
    EXPECT_EQ(run->wait(10s), std::optional<int>(2)) << bad << ": " << run->err();
    EXPECT_NE(run->err().find("--metrics"), std::string::npos) << run->err();
  }
  httplib::Server holder;
  const int taken = holder.bind_to_any_port("127.0.0.1");
  ASSERT_GT(taken, 0);
  auto run = Subprocess::spawn(
      {MPXDP_EXECUTABLE, "recv", "--link", "lo", "--metrics", "127.0.0.1:" + std::to_string(taken)});
  ASSERT_TRUE(run) << run.error().message();
  EXPECT_EQ(run->wait(10s), std::optional<int>(1)) << run->err();
  EXPECT_NE(run->err().find("cannot listen"), std::string::npos) << run->err();
}

}  // namespace
}  // namespace mpxdp
