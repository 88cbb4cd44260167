#include "session.h"

#include <poll.h>

#include <fmt/core.h>

#include <algorithm>
#include <cstdio>

#include "mpxdp_shared.h"
#include "run_control.h"

namespace mpxdp::cli {
namespace {

// Waits for arrivals on the endpoint's paths, at most until deadlineNs (and 50 ms).
void waitOnPaths(const Endpoint& endpoint, std::uint64_t deadlineNs) {
  std::vector<pollfd> fds;
  for (int fd : endpoint.pollFds()) {
    if (fd >= 0) fds.push_back({fd, POLLIN, 0});
  }
  const std::uint64_t now = monotonicNs();
  const std::uint64_t waitNs = std::min<std::uint64_t>(deadlineNs > now ? deadlineNs - now : 0, 50'000'000);
  timespec timeout{0, static_cast<long>(waitNs)};
  (void)ppoll(fds.data(), fds.size(), &timeout, nullptr);
}

}  // namespace

std::vector<LinkSpec> toLinkSpecs(const std::vector<LinkPlan>& plans) {
  std::vector<LinkSpec> specs;
  specs.reserve(plans.size());
  for (const LinkPlan& plan : plans)
    specs.push_back(LinkSpec{plan.interface, plan.localIp, plan.peerIp, plan.rateBps, plan.backup});
  return specs;
}

Result<void> requireLinkRates(const std::vector<LinkPlan>& plans) {
  for (const LinkPlan& plan : plans) {
    if (plan.rateBps == 0) {
      return Error(EINVAL, "--pacing fixed needs a rate on every link (IFACE=PEER_IP@RATE); " +
                               plan.interface + " has none");
    }
  }
  return {};
}

Result<void> applyPathControl(const PathControlArgs& args, const std::vector<LinkPlan>& plans,
                              ConnectionConfig& config) {
  if (args.scheduler == "auto") {
    return Error(EINVAL,
                 "--scheduler auto is gone: the default is now eaf (earliest arrival); rr and wrr remain");
  }
  auto scheduler = parseSchedulerKind(args.scheduler);
  if (!scheduler) return Error(EINVAL, "--scheduler: expected eaf, rr or wrr, got '" + args.scheduler + "'");
  config.scheduler = *scheduler;
  if (args.pacing == "auto") {
    config.pacing = PacingMode::kAuto;
  } else if (args.pacing == "fixed") {
    if (auto rates = requireLinkRates(plans); !rates) return rates.error();
    config.pacing = PacingMode::kFixed;
  } else {
    return Error(EINVAL, "--pacing: expected auto or fixed, got '" + args.pacing + "'");
  }
  return {};
}

void declareSecurity(CLI::App* app, SecurityArgs& args, bool many) {
  auto* key = app->add_option("--key", args.keyFiles,
                              many ? "authenticate and encrypt every packet with the pre-shared key in FILE "
                                     "(from `mpxdp genkey`, mode 600); repeat it to serve several peers, "
                                     "each with its own key"
                                   : "authenticate and encrypt every packet with the pre-shared key in FILE "
                                     "(from `mpxdp genkey`, mode 600); the peer needs the same key");
  key->type_name("FILE");
  if (!many) key->expected(1);
  app->add_option("--cipher", args.cipher,
                  "with --key, the cipher this side asks for when it connects: aes-256-gcm or "
                  "chacha20-poly1305 (default: the faster on this CPU; the accepting side follows)")
      ->type_name("NAME");
}

Result<void> applySecurity(const SecurityArgs& args, SecurityOptions& security) {
  if (!args.cipher.empty()) {
    const auto cipher = parseCipherName(args.cipher);
    if (!cipher) {
      return Error(EINVAL, "--cipher: expected aes-256-gcm or chacha20-poly1305, got '" + args.cipher + "'");
    }
    if (args.keyFiles.empty()) return Error(EINVAL, "--cipher needs --key");
    security.cipher = *cipher;
  }
  security.keys.clear();
  for (const std::string& file : args.keyFiles) {
    auto key = loadKeyFile(file);
    if (!key) return key.error().wrap("--key");
    if (std::find(security.keys.begin(), security.keys.end(), *key) != security.keys.end())
      return Error(EINVAL, "--key " + file + ": the same key is given twice");
    security.keys.push_back(*key);
  }
  return {};
}

void declareDataPath(CLI::App* app, DataPathArgs& args) {
  app->add_flag(
      "--no-udp-gso", args.noUdpGso,
      "--backend udp: send every packet as its own datagram (default: runs of equal-size packets as "
      "one UDP GSO message where the kernel has UDP_SEGMENT; the link description says gso)");
  app->add_flag("--no-udp-gro", args.noUdpGro,
                "--backend udp: receive every packet as its own datagram (default: datagrams the kernel "
                "coalesced arrive as one and are split here, where the kernel has UDP_GRO; the link "
                "description says gro)");
  app->add_option_function<std::string>(
         "--udp-checksum",
         [&args](const std::string& word) {
           args.udpChecksum = word == "on"    ? UdpChecksum::kOn
                              : word == "off" ? UdpChecksum::kOff
                                              : UdpChecksum::kAuto;
         },
         "the UDP checksum of IPv4 packets: on, off (0, as IPv4 allows) or auto (default): off on the xdp "
         "backend with --key, whose AEAD tag already rejects a corrupted packet, on otherwise; IPv6 always "
         "has one. The link description says no-udp-checksum when it is off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  app->add_option("--threads", args.threads,
                  "threads of the data path: 1 (default) does everything on one; 2 (--backend xdp) adds a "
                  "thread that makes the kernel send, which in AF_XDP copy mode runs the driver's transmit "
                  "path (the link description says tx-thread)")
      ->check(CLI::Range(1, 2));
  app->add_option("--rx-threads", args.rxThreads,
                  "receive threads: 0 (default) reads the links on the data path's thread; N (at most one "
                  "per link) reads them on N threads of their own (link i on thread i mod N), which check "
                  "the outer headers and refill the receive buffers while the data path's thread takes "
                  "ready packets from a ring per link (the link description says rx-thread)")
      ->check(CLI::Range(0, 64));
  app->add_option("--rx-usecs", args.rxUsecs,
                  "receive coalescing, like a NIC's rx-usecs: after a wake-up for arriving packets the next "
                  "comes at least this many microseconds later, so packets are read in batches and none "
                  "waits longer; a packet after a quiet spell is read at once. 0: wake for every packet. "
                  "Default 50 where this side receives data (recv, tun, send -R or --bidir), else 0")
      ->type_name("USEC")
      ->check(CLI::Range(0, 1000));
  app->add_option("--busy-poll", args.busyPollUsecs,
                  "busy polling for this many microseconds per read (SO_BUSY_POLL with SO_PREFER_BUSY_POLL, "
                  "on kernel-UDP and AF_XDP sockets): a read polls the device's NAPI context itself instead "
                  "of waiting for its softirq. Needs root, and helps only where the device has NAPI (veth "
                  "only with GRO on). Default 0, off; the link description says busy-poll")
      ->type_name("USEC")
      ->check(CLI::Range(0, 100000));
}

Result<void> checkDataPath(const DataPathArgs& args, Backend backend) {
  if (args.threads == 2 && backend == Backend::kUdp)
    return Error(EINVAL, "--threads 2 needs --backend xdp (or auto, for its AF_XDP links)");
  return {};
}

Result<void> checkRxThreads(const DataPathArgs& args, std::size_t links) {
  if (args.rxThreads <= links) return {};
  return Error(EINVAL, "--rx-threads " + std::to_string(args.rxThreads) + ": at most one per link (" +
                           std::to_string(links) + (links == 1 ? " link)" : " links)"));
}

void applyDataPath(const DataPathArgs& args, Backend backend, LinkOptions& link) {
  link.backend = backend;
  link.udpGso = !args.noUdpGso;
  link.udpGro = !args.noUdpGro;
  link.udpChecksum = args.udpChecksum;
  link.threads = args.threads;
  link.rxThreads = args.rxThreads;
  link.busyPollUsecs = args.busyPollUsecs;
}

std::uint64_t rxHoldoffNs(const DataPathArgs& args, bool receivesData) noexcept {
  if (args.rxUsecs < 0) return receivesData ? std::uint64_t{kDefaultRxUsecs} * 1000 : 0;
  return static_cast<std::uint64_t>(args.rxUsecs) * 1000;
}

void declareMetrics(CLI::App* app, std::string& address) {
  app->add_option(
         "--metrics", address,
         "serve Prometheus metrics at http://ADDR:PORT/metrics while running (per path: packets, bytes, "
         "loss, RTT, rates, state; reorder hold; XDP counters), e.g. 127.0.0.1:9464")
      ->type_name("ADDR:PORT");
}

Result<std::unique_ptr<MetricsServer>> startMetrics(const std::string& address, const char* command) {
  if (address.empty()) return std::unique_ptr<MetricsServer>();
  auto parsed = parseMetricsAddress(address);
  if (!parsed) return parsed.error();
  return MetricsServer::start(*parsed, command);
}

std::string securityText(const SecurityOptions& security, bool connects) {
  if (security.keys.empty()) return "none: packets are neither authenticated nor encrypted (no --key)";
  return fmt::format(
      "authenticated and encrypted, {} ({} pre-shared key{})",
      connects ? cipherName(security.cipher.value_or(defaultCipher())) : "the connecting side's cipher",
      security.keys.size(), security.keys.size() == 1 ? "" : "s");
}

Result<void> applyReliability(const ReliabilityArgs& args, ConnectionConfig& config, bool sender) {
  if (!(args.abortTimeoutS > 0) || args.abortTimeoutS > 3600)
    return Error(EINVAL, "--abort-timeout must be in (0, 3600] seconds");
  if (args.windowPackets != 0) {
    if (!args.reliable) return Error(EINVAL, "--reliable-window needs --reliable (or -F)");
    if (args.windowPackets < 64 || args.windowPackets > 65536 ||
        (args.windowPackets & (args.windowPackets - 1)) != 0)
      return Error(EINVAL, "--reliable-window must be a power of two in 64..65536");
    if (sender) {
      config.reorder.windowPackets = std::max(config.reorder.windowPackets, args.windowPackets);
    } else if (args.windowPackets > config.reorder.windowPackets) {
      return Error(EINVAL, "--reliable-window must be at most --window (the reorder window, " +
                               std::to_string(config.reorder.windowPackets) + " packets)");
    }
    config.reliableWindowPackets = args.windowPackets;
  }
  config.reliable = args.reliable;
  config.redundant = args.redundant;
  config.peerTimeoutNs = static_cast<std::uint64_t>(args.abortTimeoutS * 1e9);
  return {};
}

Error handshakeFailure(const Endpoint& endpoint, const Connection& connection) {
  Error error = connection.error().value_or(Error(EPROTO, "the connection closed"));
  const std::uint64_t malformed = endpoint.stats().linkMalformed;
  if (error.code() != ETIMEDOUT || malformed == 0) return error;
  return Error(
      error.code(),
      fmt::format(
          "{}; {} packet(s) arrived with bad outer headers or UDP checksums, as when an xdp "
          "end faces a udp end on veth (which leaves kernel UDP checksums to an offload that never runs): "
          "give both ends the same --backend",
          error.context(), malformed));
}

Result<void> waitForHandshake(Endpoint& endpoint, Connection& connection) {
  while (!connection.established()) {
    if (stopRequested()) {
      connection.abort(0, "stopped before the handshake completed");
      return Error(EINTR, "stopped before the receiver answered");
    }
    if (auto polled = endpoint.poll(); !polled) return polled.error();
    if (connection.done()) return handshakeFailure(endpoint, connection);
    if (!connection.established()) waitOnPaths(endpoint, endpoint.nextDeadlineNs());
  }
  return {};
}

void printServerNotices(const Endpoint& endpoint, ServerNotices& notices) {
  const EndpointStats stats = endpoint.stats();
  if (stats.refused > notices.refusals) {
    notices.refusals = stats.refused;
    if (stats.lastRefusedConnId != notices.refusedConnId) {
      notices.refusedConnId = stats.lastRefusedConnId;
      fmt::print(stderr, "mpxdp recv: refused connection {:08x}: {}\n", stats.lastRefusedConnId,
                 stats.lastRefusal);
    }
  }
  if (stats.versionMismatch > notices.versionMismatches) {
    notices.versionMismatches = stats.versionMismatch;
    fmt::print(stderr,
               "mpxdp recv: a peer speaks wire version {}, this side speaks {}; it was told so (version "
               "negotiation)\n",
               stats.lastForeignVersion, MPXDP_WIRE_VERSION);
  }
  std::fflush(stderr);
}

RunDescription describeRun(const Endpoint& endpoint, const std::vector<LinkPlan>& plans, Backend backend,
                           int cpu) {
  RunDescription run;
  run.backend = std::string(toString(backend));
  run.cpu = cpu;
  for (std::size_t l = 0; l < plans.size(); ++l) {
    run.linkNames.push_back(plans[l].interface);
    run.linkRatesBps.push_back(plans[l].rateBps);
    run.linkBackups.push_back(plans[l].backup);
    run.linkModes.push_back(endpoint.describePath(l));
  }
  return run;
}

void finishReports(const Endpoint& endpoint, const Connection& connection, const TransferResult& result,
                   Reporter* sendReporter, Reporter* receiveReporter, bool combined) {
  Ending ending;
  ending.cpu = processCpuTime();
  ending.reason = result.endedBy;
  const EndpointStats endpointStats = endpoint.stats();
  if (sendReporter) {
    ending.durationS = result.sendDurationS;
    const Sample total = sampleOf(result.stats, Role::kSender, ending.durationS, 0);
    sendReporter->interval(result.stats, result.endS, 0, result.sendFile);
    sendReporter->finish(result.stats, total, ending, endpointStats, connection.peerReport());
  }
  if (receiveReporter) {
    ending.durationS = result.receiveDurationS;
    const Sample total = sampleOf(result.stats, Role::kReceiver, ending.durationS, result.corrupt);
    receiveReporter->interval(result.stats, result.endS, result.corrupt, result.receiveFile);
    receiveReporter->finish(result.stats, total, ending, endpointStats, std::nullopt);
  }
  if (combined && sendReporter && receiveReporter) {
    nlohmann::json j;
    j["send"] = sendReporter->json();
    j["recv"] = receiveReporter->json();
    fmt::print("{}\n", j.dump(2));
    std::fflush(stdout);
  }
}

}  // namespace mpxdp::cli
