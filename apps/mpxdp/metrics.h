// `--metrics ADDR:PORT`: the running connections in the Prometheus text
// format on GET /metrics. The run loop publishes a snapshot of each
// connection at most every kMetricsPublishNs (MetricsServer::due); an HTTP
// thread (cpp-httplib, one worker) renders the latest snapshots when
// scraped, so a scrape never touches the connection or stalls the loop.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "mpxdp/connection.h"
#include "mpxdp/endpoint.h"
#include "mpxdp/error.h"

namespace mpxdp::cli {

inline constexpr std::uint64_t kMetricsPublishNs = 200'000'000;

// One connection at one moment.
struct MetricsSample {
  std::uint32_t connId = 0;
  std::vector<std::string> linkNames;  // per path, in path order
  ConnectionStats stats;
  EndpointStats endpoint;
};

// One connection's snapshot.
MetricsSample metricsSampleOf(const Endpoint& endpoint, const Connection& connection,
                              const std::vector<std::string>& linkNames);

// The exposition text for `command` (send, recv, tun) with these connections.
std::string renderPrometheus(std::string_view command, const std::vector<MetricsSample>& samples);

struct MetricsAddress {
  std::string host;  // an IPv4 or IPv6 literal
  std::uint16_t port = 0;
};
// "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464". EINVAL naming the text otherwise.
Result<MetricsAddress> parseMetricsAddress(std::string_view text);

class MetricsServer {
 public:
  // Listens at once (EADDRINUSE with the address when it cannot; port 0:
  // any free port) and serves from a thread of its own until destroyed.
  static Result<std::unique_ptr<MetricsServer>> start(const MetricsAddress& address, std::string command);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Whether connection connId's next snapshot is due at nowNs.
  bool due(std::uint32_t connId, std::uint64_t nowNs) noexcept;
  void publish(MetricsSample sample);
  // The connection ended: its series leave the output.
  void retire(std::uint32_t connId);
  std::string render() const;
  std::uint16_t port() const noexcept;

 private:
  struct Impl;
  explicit MetricsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mpxdp::cli
