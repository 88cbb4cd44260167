#include "metrics.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <map>
#include <sstream>

namespace mpxdp::cli {
namespace {

MetricsSample sample(std::uint32_t connId) {
  MetricsSample s;
  s.connId = connId;
  s.linkNames = {"s0", "s1"};
  s.stats.packetsSent = 1000;
  s.stats.bytesSent = 1'400'000;
  s.stats.packetsDelivered = 990;
  s.stats.lost = 10;
  s.stats.hold = {
      .samples = 50, .p50Ns = 1'000'000, .p90Ns = 2'000'000, .p99Ns = 4'000'000, .maxNs = 5'000'000};
  s.stats.paths.resize(2);
  s.stats.paths[0].packetsSent = 600;
  s.stats.paths[0].srttNs = 2'500'000;
  s.stats.paths[0].pacingRateBps = 300'000'000;
  s.stats.paths[1].packetsSent = 400;
  s.stats.paths[1].state = PathState::kDead;
  s.stats.paths[1].io.rxRingFull = 7;
  s.endpoint.steering = true;
  s.endpoint.xdpRedirected = 12345;
  return s;
}

// name{labels} -> value, and the TYPE of each family; fails on a line that is neither.
struct Parsed {
  std::map<std::string, double> values;
  std::map<std::string, std::string> types;
  std::vector<std::string> familiesInOrder;
};

Parsed parse(const std::string& text) {
  Parsed parsed;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream words(line.substr(7));
      std::string name, type;
      words >> name >> type;
      EXPECT_EQ(parsed.types.count(name), 0u) << "family " << name << " declared twice";
      parsed.types[name] = type;
      parsed.familiesInOrder.push_back(name);
      continue;
    }
    const auto space = line.rfind(' ');
    EXPECT_NE(space, std::string::npos) << line;
    if (space == std::string::npos) continue;
    const std::string series = line.substr(0, space);
    EXPECT_EQ(parsed.values.count(series), 0u) << "series twice: " << series;
    parsed.values[series] = std::stod(line.substr(space + 1));
  }
  return parsed;
}

TEST(Metrics, RendersConnectionAndPathFamiliesWithLabels) {
  const Parsed p = parse(renderPrometheus("send", {sample(0xabc), sample(0x1234)}));
  EXPECT_EQ(p.values.at("mpxdp_connections{command=\"send\"}"), 2);
  EXPECT_EQ(p.types.at("mpxdp_sent_packets_total"), "counter");
  EXPECT_EQ(p.values.at("mpxdp_sent_packets_total{command=\"send\",conn=\"00000abc\"}"), 1000);
  EXPECT_EQ(p.values.at("mpxdp_lost_packets_total{command=\"send\",conn=\"00001234\"}"), 10);
  EXPECT_EQ(p.types.at("mpxdp_reorder_hold_seconds"), "summary");
  EXPECT_DOUBLE_EQ(
      p.values.at("mpxdp_reorder_hold_seconds{command=\"send\",conn=\"00000abc\",quantile=\"0.99\"}"), 0.004);
  EXPECT_EQ(p.values.at("mpxdp_reorder_hold_seconds_count{command=\"send\",conn=\"00000abc\"}"), 50);
  const std::string path0 = "command=\"send\",conn=\"00000abc\",path=\"0\",link=\"s0\"";
  const std::string path1 = "command=\"send\",conn=\"00000abc\",path=\"1\",link=\"s1\"";
  EXPECT_EQ(p.values.at("mpxdp_path_sent_packets_total{" + path0 + "}"), 600);
  EXPECT_DOUBLE_EQ(p.values.at("mpxdp_path_srtt_seconds{" + path0 + "}"), 0.0025);
  EXPECT_EQ(p.values.at("mpxdp_path_pacing_rate_bits_per_second{" + path0 + "}"), 3e8);
  EXPECT_EQ(p.values.at("mpxdp_path_state{" + path0 + ",state=\"active\"}"), 1);
  EXPECT_EQ(p.values.at("mpxdp_path_state{" + path1 + ",state=\"active\"}"), 0);
  EXPECT_EQ(p.values.at("mpxdp_path_state{" + path1 + ",state=\"dead\"}"), 1);
  EXPECT_EQ(p.values.at("mpxdp_link_rx_ring_full_total{" + path1 + "}"), 7);
  EXPECT_EQ(p.values.at("mpxdp_xdp_redirected_total{command=\"send\"}"), 12345);
}

TEST(Metrics, WithoutConnectionsOnlyTheCountIsThere) {
  const Parsed p = parse(renderPrometheus("recv", {}));
  EXPECT_EQ(p.values.size(), 1u);
  EXPECT_EQ(p.values.at("mpxdp_connections{command=\"recv\"}"), 0);
}

TEST(Metrics, AddressesAreLiteralsWithAPort) {
  auto v4 = parseMetricsAddress("127.0.0.1:9464");
  ASSERT_TRUE(v4) << v4.error().message();
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 9464);
  auto v6 = parseMetricsAddress("[::1]:9100");
  ASSERT_TRUE(v6) << v6.error().message();
  EXPECT_EQ(v6->host, "::1");
  for (const char* bad : {"9464", "localhost:9464", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
                          "::1:9464", "[127.0.0.1]:9464", "127.0.0.1:94x"}) {
    auto parsed = parseMetricsAddress(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().code(), EINVAL);
    EXPECT_NE(parsed.error().message().find(std::string("--metrics '") + bad + "'"), std::string::npos)
        << parsed.error().message();
  }
}

TEST(Metrics, ServesTheNewestSnapshotsOverHttpAndForgetsRetiredConnections) {
  auto server = MetricsServer::start({"127.0.0.1", 0}, "tun");
  ASSERT_TRUE(server) << server.error().message();
  ASSERT_NE((*server)->port(), 0);
  EXPECT_TRUE((*server)->due(7, 1'000));
  EXPECT_FALSE((*server)->due(7, 1'000 + kMetricsPublishNs - 1));
  EXPECT_TRUE((*server)->due(7, 1'000 + kMetricsPublishNs));
  (*server)->publish(sample(7));
  MetricsSample newer = sample(7);
  newer.stats.packetsSent = 2000;
  (*server)->publish(newer);

  httplib::Client client("127.0.0.1", (*server)->port());
  auto got = client.Get("/metrics");
  ASSERT_TRUE(got) << httplib::to_string(got.error());
  EXPECT_EQ(got->status, 200);
  EXPECT_NE(got->get_header_value("Content-Type").find("text/plain; version=0.0.4"), std::string::npos);
  const Parsed p = parse(got->body);
  EXPECT_EQ(p.values.at("mpxdp_sent_packets_total{command=\"tun\",conn=\"00000007\"}"), 2000);
  EXPECT_EQ(client.Get("/")->status, 404);

  (*server)->retire(7);
  EXPECT_EQ(parse(client.Get("/metrics")->body).values.at("mpxdp_connections{command=\"tun\"}"), 0);

  // The port is taken now: a second server there says so.
  auto second = MetricsServer::start({"127.0.0.1", (*server)->port()}, "tun");
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), EADDRINUSE);
  EXPECT_NE(second.error().message().find("cannot listen"), std::string::npos);
}

}  // namespace
}  // namespace mpxdp::cli
