#include "metrics.h"

#include <fmt/core.h>
#include <httplib.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <functional>
#include <thread>

#include "mpxdp/address.h"
#include "mpxdp/path.h"

namespace mpxdp::cli {
namespace {

using ConnValue = std::function<double(const MetricsSample&)>;
using PathValue = std::function<double(const PathStats&)>;

struct ConnFamily {
  const char* name;
  const char* type;  // counter or gauge
  const char* help;
  ConnValue value;
};

struct PathFamily {
  const char* name;
  const char* type;
  const char* help;
  PathValue value;
};

double d(std::uint64_t v) { return static_cast<double>(v); }
double seconds(std::uint64_t ns) { return static_cast<double>(ns) / 1e9; }

// Label values are ours (hex ids, interface names), but escape as the format asks.
std::string escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP mpxdp_{} {}\n# TYPE mpxdp_{} {}\n", name, help, name, type);
}

std::string connLabels(std::string_view command, const MetricsSample& s) {
  return fmt::format("command=\"{}\",conn=\"{:08x}\"", command, s.connId);
}

std::string pathLabels(std::string_view command, const MetricsSample& s, std::size_t path) {
  const std::string link = path < s.linkNames.size() ? s.linkNames[path] : std::to_string(path);
  return fmt::format("{},path=\"{}\",link=\"{}\"", connLabels(command, s), path, escape(link));
}

const std::vector<ConnFamily>& connFamilies() {
  static const std::vector<ConnFamily> families = {
      {"sent_packets_total", "counter", "Data packets sent (all paths)",
       [](const MetricsSample& s) { return d(s.stats.packetsSent); }},
      {"sent_bytes_total", "counter", "Payload bytes sent",
       [](const MetricsSample& s) { return d(s.stats.bytesSent); }},
      {"delivered_packets_total", "counter", "Payloads delivered in order",
       [](const MetricsSample& s) { return d(s.stats.packetsDelivered); }},
      {"delivered_bytes_total", "counter", "Payload bytes delivered in order",
       [](const MetricsSample& s) { return d(s.stats.bytesDelivered); }},
      {"lost_packets_total", "counter", "Sequence numbers declared lost at the receiver",
       [](const MetricsSample& s) { return d(s.stats.lost); }},
      {"out_of_order_arrived_total", "counter", "Payloads that arrived out of order (before reordering)",
       [](const MetricsSample& s) { return d(s.stats.outOfOrderArrived); }},
      {"duplicate_packets_total", "counter", "Duplicate payloads dropped",
       [](const MetricsSample& s) { return d(s.stats.duplicates); }},
      {"retransmitted_packets_total", "counter", "Payloads sent again (reliable mode)",
       [](const MetricsSample& s) { return d(s.stats.retransmitted); }},
      {"auth_failed_packets_total", "counter", "Packets of this connection that failed authentication",
       [](const MetricsSample& s) { return d(s.stats.authFailed); }},
      {"replayed_packets_total", "counter", "Packets dropped as replays",
       [](const MetricsSample& s) { return d(s.stats.replayed); }},
      {"reorder_hold_max_seconds", "gauge", "Longest time a payload waited in the reorderer",
       [](const MetricsSample& s) { return seconds(s.stats.hold.maxNs); }},
  };
  return families;
}

const std::vector<PathFamily>& pathFamilies() {
  static const std::vector<PathFamily> families = {
      {"path_sent_packets_total", "counter", "Data packets sent on the path",
       [](const PathStats& p) { return d(p.packetsSent); }},
      {"path_sent_bytes_total", "counter", "Payload bytes sent on the path",
       [](const PathStats& p) { return d(p.bytesSent); }},
      {"path_received_packets_total", "counter", "Data packets received on the path",
       [](const PathStats& p) { return d(p.packetsReceived); }},
      {"path_received_bytes_total", "counter", "Payload bytes received on the path",
       [](const PathStats& p) { return d(p.bytesReceived); }},
      {"path_lost_packets_total", "counter", "Gaps in the path's packet numbers seen by this receiver",
       [](const PathStats& p) { return d(p.lostSeen); }},
      {"path_lost_detected_total", "counter", "Packets sent on the path that the peer's ACKs declared lost",
       [](const PathStats& p) { return d(p.packetsLostDetected); }},
      {"path_loss_ratio", "gauge", "Smoothed loss rate of the path (from the peer's ACKs)",
       [](const PathStats& p) { return p.lossRate; }},
      {"path_srtt_seconds", "gauge", "Smoothed round-trip time (0: none yet)",
       [](const PathStats& p) { return seconds(p.srttNs); }},
      {"path_rtt_var_seconds", "gauge", "Round-trip time variation",
       [](const PathStats& p) { return seconds(p.rttVarNs); }},
      {"path_queue_delay_seconds", "gauge", "One-way delay above the path's minimum (queue build-up)",
       [](const PathStats& p) { return seconds(p.queueDelayNs); }},
      {"path_pacing_rate_bits_per_second", "gauge", "Wire rate the path is paced at",
       [](const PathStats& p) { return d(p.pacingRateBps); }},
      {"path_bandwidth_estimate_bits_per_second", "gauge", "The rate controller's estimate (0: not yet)",
       [](const PathStats& p) { return d(p.bandwidthEstimateBps); }},
      {"path_delivery_rate_bits_per_second", "gauge", "Latest delivery-rate sample from the peer's ACKs",
       [](const PathStats& p) { return d(p.deliveryRateBps); }},
      {"path_backup", "gauge", "1 for a backup path",
       [](const PathStats& p) { return p.backup ? 1.0 : 0.0; }},
      {"link_rx_dropped_total", "counter", "AF_XDP: frames the kernel dropped (XDP_STATISTICS)",
       [](const PathStats& p) { return d(p.io.rxDropped); }},
      {"link_rx_ring_full_total", "counter", "AF_XDP: RX ring full",
       [](const PathStats& p) { return d(p.io.rxRingFull); }},
      {"link_fill_ring_empty_total", "counter", "AF_XDP: fill ring empty",
       [](const PathStats& p) { return d(p.io.rxFillRingEmpty); }},
      {"link_tx_ring_empty_total", "counter", "AF_XDP: TX ring empty",
       [](const PathStats& p) { return d(p.io.txRingEmpty); }},
  };
  return families;
}

}  // namespace

std::string renderPrometheus(std::string_view command, const std::vector<MetricsSample>& samples) {
  std::string out;
  header(out, "connections", "gauge", "Connections this process runs now");
  out += fmt::format("mpxdp_connections{{command=\"{}\"}} {}\n", command, samples.size());
  for (const ConnFamily& family : connFamilies()) {
    if (samples.empty()) break;
    header(out, family.name, family.type, family.help);
    for (const MetricsSample& s : samples)
      out += fmt::format("mpxdp_{}{{{}}} {}\n", family.name, connLabels(command, s), family.value(s));
  }
  if (!samples.empty()) {
    header(out, "reorder_hold_seconds", "summary",
           "Time payloads waited in the reorderer for an earlier one");
    for (const MetricsSample& s : samples) {
      const std::string labels = connLabels(command, s);
      const HoldTimeSummary& h = s.stats.hold;
      out += fmt::format("mpxdp_reorder_hold_seconds{{{},quantile=\"0.5\"}} {}\n", labels, seconds(h.p50Ns));
      out += fmt::format("mpxdp_reorder_hold_seconds{{{},quantile=\"0.9\"}} {}\n", labels, seconds(h.p90Ns));
      out += fmt::format("mpxdp_reorder_hold_seconds{{{},quantile=\"0.99\"}} {}\n", labels, seconds(h.p99Ns));
      out += fmt::format("mpxdp_reorder_hold_seconds_count{{{}}} {}\n", labels, h.samples);
    }
  }
  bool anyPath = false;
  for (const MetricsSample& s : samples) anyPath = anyPath || !s.stats.paths.empty();
  if (anyPath) {
    for (const PathFamily& family : pathFamilies()) {
      header(out, family.name, family.type, family.help);
      for (const MetricsSample& s : samples) {
        for (std::size_t i = 0; i < s.stats.paths.size(); ++i)
          out += fmt::format("mpxdp_{}{{{}}} {}\n", family.name, pathLabels(command, s, i),
                             family.value(s.stats.paths[i]));
      }
    }
    header(out, "path_state", "gauge", "1 for the path's current state (active, standby, suspect, dead)");
    for (const MetricsSample& s : samples) {
      for (std::size_t i = 0; i < s.stats.paths.size(); ++i) {
        for (PathState state :
             {PathState::kActive, PathState::kStandby, PathState::kSuspect, PathState::kDead}) {
          out += fmt::format("mpxdp_path_state{{{},state=\"{}\"}} {}\n", pathLabels(command, s, i),
                             toString(state), s.stats.paths[i].state == state ? 1 : 0);
        }
      }
    }
  }
  // The endpoint's counters (one endpoint per process): from the newest sample.
  if (!samples.empty()) {
    const EndpointStats& e = samples.back().endpoint;
    const std::string labels = fmt::format("command=\"{}\"", command);
    const std::array<std::tuple<const char*, const char*, std::uint64_t>, 6> endpoint = {{
        {"xdp_redirected_total", "Packets the XDP program steered to the AF_XDP sockets", e.xdpRedirected},
        {"xdp_passed_total", "Packets the XDP program left to the kernel (not mpxdp's)", e.xdpPassed},
        {"xdp_malformed_total", "Packets to mpxdp's port that were no valid mpxdp packet", e.xdpMalformed},
        {"xdp_no_socket_total", "mpxdp packets on a queue without a socket", e.xdpNoSocket},
        {"endpoint_auth_failed_total", "Packets for no connection that opened with no key", e.authFailed},
        {"endpoint_malformed_total", "Packets without a valid mpxdp header", e.malformed},
    }};
    for (const auto& [name, help, value] : endpoint) {
      header(out, name, "counter", help);
      out += fmt::format("mpxdp_{}{{{}}} {}\n", name, labels, value);
    }
  }
  return out;
}

MetricsSample metricsSampleOf(const Endpoint& endpoint, const Connection& connection,
                              const std::vector<std::string>& linkNames) {
  MetricsSample sample;
  sample.connId = connection.state().connId;
  sample.linkNames = linkNames;
  sample.stats = connection.stats();
  sample.endpoint = endpoint.stats();
  return sample;
}

Result<MetricsAddress> parseMetricsAddress(std::string_view text) {
  const auto invalid = [&](const std::string& why) {
    return Error(EINVAL, "--metrics '" + std::string(text) + "': " + why);
  };
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos)
    return invalid("expected ADDRESS:PORT, e.g. 127.0.0.1:9464 or [::1]:9464");
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (host.find(':') == std::string_view::npos) return invalid("brackets are for IPv6 addresses");
  } else if (host.find(':') != std::string_view::npos) {
    return invalid("write an IPv6 address in brackets, e.g. [::1]:9464");
  }
  if (!IpAddress::parse(host)) return invalid("'" + std::string(host) + "' is not an IPv4 or IPv6 address");
  const std::string_view portText = text.substr(colon + 1);
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
  if (portText.empty() || ec != std::errc() || end != portText.data() + portText.size() || port == 0 ||
      port > 65535)
    return invalid("the port must be a number in 1..65535");
  return MetricsAddress{std::string(host), static_cast<std::uint16_t>(port)};
}

struct MetricsServer::Impl {
  std::string command;
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> listenReturned{false};
  std::uint16_t port = 0;
  mutable std::mutex mutex;
  std::map<std::uint32_t, MetricsSample> samples;  // under mutex
  std::map<std::uint32_t, std::uint64_t> nextDue;  // the run loop's own
};

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const MetricsAddress& address,
                                                            std::string command) {
  auto impl = std::make_unique<Impl>();
  impl->command = std::move(command);
  // One worker: scrapes are rare and small.
  impl->server.new_task_queue = [] { return new httplib::ThreadPool(1); };
  // Not httplib's default SO_REUSEPORT: a second process on the port must fail, not share it.
  impl->server.set_socket_options([](socket_t sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  const std::string shown = address.host.find(':') != std::string::npos
                                ? fmt::format("[{}]:{}", address.host, address.port)
                                : fmt::format("{}:{}", address.host, address.port);
  if (address.port == 0) {
    const int port = impl->server.bind_to_any_port(address.host);
    impl->port = port > 0 ? static_cast<std::uint16_t>(port) : 0;
  } else if (impl->server.bind_to_port(address.host, address.port)) {
    impl->port = address.port;
  }
  if (impl->port == 0) {
    return Error(EADDRINUSE,
                 "--metrics " + shown +
                     ": cannot listen there (the port is taken, or the address is not this host's)");
  }
  std::unique_ptr<MetricsServer> server(new MetricsServer(std::move(impl)));
  MetricsServer* self = server.get();
  self->impl_->server.Get("/metrics", [self](const httplib::Request&, httplib::Response& response) {
    response.set_content(self->render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  self->impl_->thread = std::thread([self] {
    self->impl_->server.listen_after_bind();
    self->impl_->listenReturned = true;
  });
  return server;
}

MetricsServer::~MetricsServer() {
  // stop() only acts on a running server: wait until the thread got that far.
  while (!impl_->listenReturned && !impl_->server.is_running())
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

bool MetricsServer::due(std::uint32_t connId, std::uint64_t nowNs) noexcept {
  auto [it, inserted] = impl_->nextDue.try_emplace(connId, 0);
  if (nowNs < it->second) return false;
  it->second = nowNs + kMetricsPublishNs;
  return true;
}

void MetricsServer::publish(MetricsSample sample) {
  const std::lock_guard lock(impl_->mutex);
  const std::uint32_t id = sample.connId;
  impl_->samples.insert_or_assign(id, std::move(sample));
}

void MetricsServer::retire(std::uint32_t connId) {
  impl_->nextDue.erase(connId);
  const std::lock_guard lock(impl_->mutex);
  impl_->samples.erase(connId);
}

std::uint16_t MetricsServer::port() const noexcept { return impl_->port; }

std::string MetricsServer::render() const {
  std::vector<MetricsSample> samples;
  {
    const std::lock_guard lock(impl_->mutex);
    for (const auto& [id, sample] : impl_->samples) samples.push_back(sample);
  }
  return renderPrometheus(impl_->command, samples);
}

}  // namespace mpxdp::cli
