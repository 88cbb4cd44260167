// openEndpoint: real links (AF_XDP + steering program, or kernel UDP) under
// one Endpoint that owns them.
#include <algorithm>
#include <string>

#include "endpoint_resources.h"
#include "mpxdp/links.h"
#include "rx_thread.h"
#include "steering.h"
#include "tx_kicker.h"
#include "udp_packet_io.h"
#include "xdp_packet_io.h"

namespace mpxdp {
namespace {

Error needsRoot() {
  return Error(EPERM,
               "the xdp backend needs root (CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW); run as root or use "
               "--backend udp");
}

// UdpChecksum::kAuto: see links.h. backend: the link's own (xdp or udp).
bool sendsUdpChecksum(const LinkOptions& options, Backend backend, const EndpointConfig& config) noexcept {
  switch (options.udpChecksum) {
    case UdpChecksum::kOn:
      return true;
    case UdpChecksum::kOff:
      return false;
    case UdpChecksum::kAuto:
      break;
  }
  return backend == Backend::kUdp || config.security.keys.empty();
}

// What binding an AF_XDP socket zero-copy says when the driver cannot.
bool noZeroCopy(const Error& error) noexcept {
  return error.code() == EOPNOTSUPP || error.code() == EPROTONOSUPPORT;
}

class SteeringResources final : public conn::EndpointResources {
 public:
  explicit SteeringResources(std::unique_ptr<bpf::SteeringProgram> program) : program_(std::move(program)) {}
  bpf::SteeringProgram* program() const noexcept { return program_.get(); }
  void addStats(EndpointStats& stats) const override {
    const auto counters = program_->counters();
    if (!counters) return;
    stats.steering = true;
    stats.xdpRedirected = counters->redirected;
    stats.xdpPassed = counters->passed;
    stats.xdpMalformed = counters->malformed;
    stats.xdpNoSocket = counters->noSocket;
  }

 private:
  std::unique_ptr<bpf::SteeringProgram> program_;
};

}  // namespace

Result<Backend> parseBackend(std::string_view name) {
  if (name == "xdp") return Backend::kXdp;
  if (name == "udp") return Backend::kUdp;
  if (name == "auto") return Backend::kAuto;
  return Error(EINVAL, "unknown backend '" + std::string(name) + "' (expected xdp, udp or auto)");
}

std::string_view toString(Backend backend) noexcept {
  switch (backend) {
    case Backend::kXdp:
      return "xdp";
    case Backend::kUdp:
      return "udp";
    case Backend::kAuto:
      return "auto";
  }
  return "?";
}

Result<std::unique_ptr<Endpoint>> openEndpoint(const EndpointConfig& config,
                                               const std::vector<LinkSpec>& links, const LinkOptions& options,
                                               std::shared_ptr<Clock> clock) {
  if (links.empty()) return Error(EINVAL, "no links");
  if (options.port == 0) return Error(EINVAL, "port must be in 1..65535");
  if (options.threads < 1 || options.threads > 2)
    return Error(EINVAL, "threads must be 1 or 2, got " + std::to_string(options.threads));
  if (options.threads == 2 && options.backend == Backend::kUdp)
    return Error(EINVAL, "threads 2 needs the xdp backend (or auto, for its AF_XDP links)");
  if (options.rxThreads > links.size()) {
    return Error(EINVAL, "receive threads: at most one per link (" + std::to_string(links.size()) +
                             "), got " + std::to_string(options.rxThreads));
  }
  if (!clock) clock = std::make_shared<MonotonicClock>();  // the receive threads' too
  std::vector<std::shared_ptr<transport::RxThread>> rxThreads;
  for (std::uint32_t i = 0; i < options.rxThreads; ++i) {
    auto started = transport::RxThread::start(clock, "mpxdp-rx" + std::to_string(i));
    if (!started) return started.error();
    rxThreads.push_back(std::move(*started));
  }
  std::shared_ptr<transport::TxKicker> kicker;
  if (options.threads == 2) {
    auto started = transport::TxKicker::start();
    if (!started) return started.error();
    kicker = std::move(*started);
  }
  std::unique_ptr<SteeringResources> steering;
  if (options.backend != Backend::kUdp) {
    bpf::SteeringOptions steeringOptions;
    steeringOptions.udpPort = options.port;
    auto loaded = bpf::SteeringProgram::load(steeringOptions);
    if (!loaded && loaded.error().code() == EPERM && options.backend == Backend::kXdp) return needsRoot();
    if (loaded) {
      steering = std::make_unique<SteeringResources>(std::move(*loaded));
    } else if (options.backend == Backend::kXdp || loaded.error().code() != EPERM) {
      return loaded.error().wrap("loading the XDP steering program");
    }  // auto without the privileges: kernel UDP on every link
  }
  bool anyXdp = false;
  std::vector<EndpointPath> paths;
  for (const LinkSpec& link : links) {
    transport::LinkEndpointConfig endpoint;
    endpoint.interface = link.interface;
    endpoint.localIp = link.localIp;
    endpoint.peerIp = link.peerIp;
    endpoint.localPort = options.port;
    endpoint.peerPort = options.peerPort != 0 ? options.peerPort : options.port;
    endpoint.manyPeers = options.manyPeers;
    endpoint.udpGso = options.udpGso;
    endpoint.txKicker = kicker;
    endpoint.udpGro = options.udpGro;
    endpoint.busyPollUsecs = options.busyPollUsecs;
    endpoint.batchSize = options.batchSize;
    endpoint.frameCount = options.frameCount;
    Result<std::unique_ptr<PacketIo>> io = Error(ENODEV, "no backend");
    if (steering) {
      if (options.backend == Backend::kAuto) endpoint.xdpMode = xsk::XdpMode::kZeroCopy;
      endpoint.udpChecksum = sendsUdpChecksum(options, Backend::kXdp, config);
      io = transport::openXdpPacketIo(endpoint, steering->program());
      if (!io && io.error().code() == EPERM && options.backend == Backend::kXdp) return needsRoot();
    }
    if (!steering || (options.backend == Backend::kAuto && !io && noZeroCopy(io.error()))) {
      endpoint.udpChecksum = sendsUdpChecksum(options, Backend::kUdp, config);
      endpoint.txKicker = nullptr;
      endpoint.xdpMode = xsk::XdpMode::kAuto;
      io = transport::openUdpPacketIo(endpoint);
    } else if (io) {
      anyXdp = true;
    }
    if (!io) return io.error().wrap("link " + link.interface);
    if (!rxThreads.empty()) {
      io = transport::receiveOnThread(std::move(*io), rxThreads[paths.size() % rxThreads.size()]);
      if (!io) return io.error().wrap("link " + link.interface);
    }
    paths.push_back(EndpointPath{std::move(*io), link.rateBps, link.interface, link.backup});
  }
  if (!anyXdp) steering.reset();  // auto chose kernel UDP everywhere: nothing to attach it to
  return conn::createEndpoint(config, std::move(paths), std::move(clock), std::move(steering));
}

}  // namespace mpxdp
