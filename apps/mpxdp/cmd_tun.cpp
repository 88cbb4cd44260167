// mpxdp tun: a virtual interface whose IP packets go over all links to the
// peer host, both ways, for unmodified applications (docs/tun.md). Both hosts
// run it; the end whose first link has the lower local address connects,
// the other accepts, and they find each other again after either restarts.
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "commands.h"
#include "link_args.h"
#include "mpxdp/links.h"
#include "netlink_route.h"
#include "peer_routes.h"
#include "reorder/reorderer.h"
#include "report.h"
#include "run_control.h"
#include "session.h"
#include "tun_device.h"
#include "tunnel.h"
#include "tunnel_hub.h"
#include "wire/frames.h"

namespace mpxdp::cli {
namespace {

struct TunOptions {
  std::string name;
  std::vector<std::string> addresses;
  std::vector<std::string> links;
  std::vector<std::string> backupLinks;
  PathControlArgs pathControl;
  std::uint16_t port = kDefaultPort;
  std::uint32_t mtu = 0;  // 0: from the links
  std::string backend = "auto";
  bool noOffload = false;
  std::string reorder = "window";
  double reorderTimeoutMs = 0;  // 0: adaptive
  ReliabilityArgs reliability;  // --reliable, --redundant, --reliable-window, --abort-timeout
  SecurityArgs security;        // --key, --cipher
  std::string metrics;          // --metrics ADDR:PORT
  DataPathArgs dataPath;
  std::vector<std::string> peers;  // --peer KEY_FILE=CIDR[,CIDR...]: serve several peers
  std::string role = "auto";
  double intervalS = 0;
  bool json = false;
  int cpu = -1;
  std::uint32_t queues = 1;  // --queues: TUN queues, a reader thread each when more than 1
  std::string configFile;    // --config (already expanded into the options above)
};

TunOptions options;

// IPv4 needs 68 bytes of MTU, IPv6 1280; below 576 TCP over IPv4 is hardly usable either.
constexpr std::uint32_t kMinMtuV4 = 576;
constexpr std::uint32_t kMinMtuV6 = 1280;
// How long the connecting end waits for an answer before it starts over.
constexpr std::uint64_t kRetryPauseNs = 500'000'000;

int usageError(const Error& error) {
  fmt::print(stderr, "mpxdp tun: {}\n", error.context());
  return kExitUsageError;
}

bool isUsageError(const Error& error) {
  return error.code() == EINVAL || error.code() == ENODEV || error.code() == ENOENT ||
         error.code() == EADDRNOTAVAIL || error.code() == EEXIST;
}

// The largest IP packet each link carries inside mpxdp's encapsulation.
// keyed: each packet also carries the AEAD tag.
Result<std::uint32_t> linkPayloadMtu(const std::vector<LinkPlan>& plans, bool keyed) {
  std::uint32_t mtu = UINT32_MAX;
  for (const LinkPlan& plan : plans) {
    auto info = transport::interfaceInfo(plan.interface);
    if (!info) return info.error();
    const std::uint32_t outer = (plan.localIp.isV4() ? 20U : 40U) + 8U + wire::kDataPacketOverhead +
                                (keyed ? static_cast<std::uint32_t>(kAeadTagLen) : 0U);
    if (info->mtu <= outer)
      return Error(EINVAL, fmt::format("{}: MTU {} is too small", plan.interface, info->mtu));
    mtu = std::min(mtu, info->mtu - outer);
  }
  return mtu;
}

// The connecting side: the end whose first link's local address sorts lower.
bool connectsFirst(const LinkPlan& first) { return first.localIp.bytes < first.peerIp->bytes; }

// --peer given: this end serves several peers, each known by its key.
struct HubPlan {
  std::vector<PeerArg> peers;
  PeerRoutes routes;
};

Result<std::optional<HubPlan>> planHub() {
  if (options.peers.empty()) return std::optional<HubPlan>();
  if (!options.security.keyFiles.empty())
    return Error(EINVAL,
                 "--peer names each peer's key file: drop --key (or serve one peer with --key alone)");
  if (options.role == "connect")
    return Error(EINVAL, "--peer makes this end accept its peers: --role connect does not go with it");
  HubPlan plan;
  std::vector<std::vector<tun::IpPrefix>> allowed;
  for (const std::string& text : options.peers) {
    auto arg = parsePeerArg(text);
    if (!arg) return arg.error();
    allowed.push_back(arg->allowed);
    plan.peers.push_back(std::move(*arg));
  }
  auto routes = PeerRoutes::create(allowed);
  if (!routes) return routes.error();
  plan.routes = std::move(*routes);
  for (const PeerArg& peer : plan.peers) options.security.keyFiles.push_back(peer.keyFile);
  return std::optional<HubPlan>(std::move(plan));
}

nlohmann::json countersJson(const TunnelCounters& c) {
  return {{"reads", c.reads},
          {"super_packets", c.superPackets},
          {"packets_read", c.packetsRead},
          {"bytes_read", c.bytesRead},
          {"writes", c.writes},
          {"packets_written", c.packetsWritten},
          {"bytes_written", c.bytesWritten},
          {"dropped_no_connection", c.droppedNoConnection},
          {"dropped_too_big", c.droppedTooBig},
          {"icmp_sent", c.icmpSent},
          {"dropped_malformed", c.droppedMalformed},
          {"dropped_send_failed", c.droppedSendFailed},
          {"dropped_no_peer", c.droppedNoPeer},
          {"dropped_peer_busy", c.droppedPeerBusy},
          {"dropped_wrong_source", c.droppedWrongSource},
          {"write_dropped", c.writeDropped},
          {"queues", c.queues},
          {"queue_reads", std::vector<std::uint64_t>(c.queueReads.begin(), c.queueReads.begin() + c.queues)}};
}

void printCounters(const TunnelCounters& c) {
  fmt::print(
      "mpxdp tun: from the interface {} packets, {} bytes in {} reads ({} super-packets split); to it {} "
      "packets, {} bytes in {} writes\n",
      c.packetsRead, c.bytesRead, c.reads, c.superPackets, c.packetsWritten, c.bytesWritten, c.writes);
  if (c.queues > 1) {
    std::string perQueue;
    for (std::uint32_t q = 0; q < c.queues; ++q)
      perQueue += fmt::format("{}{}", q == 0 ? "" : " / ", c.queueReads[q]);
    fmt::print("mpxdp tun: reads per queue {}\n", perQueue);
  }
  fmt::print(
      "mpxdp tun: dropped {} while no connection was up, {} too big ({} answered with ICMP), {} malformed, "
      "{} refused by the connection, {} not taken by the interface\n",
      c.droppedNoConnection, c.droppedTooBig, c.icmpSent, c.droppedMalformed, c.droppedSendFailed,
      c.writeDropped);
  if (c.droppedNoPeer + c.droppedPeerBusy + c.droppedWrongSource > 0) {
    fmt::print(
        "mpxdp tun: of several peers: dropped {} to no peer's address, {} for a peer whose queue was full, "
        "{} from a peer with a source address it does not own\n",
        c.droppedNoPeer, c.droppedPeerBusy, c.droppedWrongSource);
  }
}

}  // namespace

void declareTun(CLI::App* app) {
  // Expanded into arguments before parsing (config_file.h); declared here for the help and the check.
  app->add_option("--config", options.configFile,
                  "read options from this TOML file: the keys are the long option names (name = \"mpx0\", "
                  "link = [\"eth1=192.0.2.2\", ...]); options on the command line replace the file's")
      ->type_name("FILE");
  app->add_option("--name", options.name, "name of the TUN interface to create (e.g. mpx0)")->required();
  app->add_option("--address", options.addresses,
                  "address of the interface with its prefix, e.g. 10.99.0.1/24 or fd00::1/64 (repeatable)")
      ->type_name("CIDR")
      ->required();
  app->add_option("--link", options.links,
                  "a link to the peer host (repeatable, in the same order on both hosts); RATE caps its "
                  "pacing rate, which is otherwise estimated")
      ->type_name("IFACE=PEER_IP[@RATE]");
  app->add_option("--backup-link", options.backupLinks,
                  "a backup path, used only when the --link paths are down or too slow (repeatable; after "
                  "the --link ones in path order on both hosts)")
      ->type_name("IFACE=PEER_IP[@RATE]");
  app->add_option("-p,--port", options.port, "UDP port of the tunnel's packets (both ends)")
      ->capture_default_str();
  app->add_option("--mtu", options.mtu,
                  "MTU of the interface (default and maximum: the smallest link MTU less mpxdp's overhead)");
  app->add_option("--scheduler", options.pathControl.scheduler, "eaf (earliest arrival), rr or wrr")
      ->capture_default_str();
  app->add_option("--pacing", options.pathControl.pacing,
                  "auto (rates estimated, @RATE a cap) or fixed (every link's @RATE)")
      ->capture_default_str();
  app->add_option("--backend", options.backend, kBackendHelp)->capture_default_str();
  app->add_flag("--no-offload", options.noOffload,
                "plain TUN: one packet per read and write (no virtio header, no TSO/USO, no coalescing)");
  app->add_option("--reorder", options.reorder, "reorderer: window or off")->capture_default_str();
  app->add_option("--reorder-timeout", options.reorderTimeoutMs,
                  "fixed hole timeout in milliseconds (default: adaptive, from the path delay spread)");
  app->add_option("--abort-timeout", options.reliability.abortTimeoutS,
                  "seconds without a packet from the peer before its connection is dropped and sought again")
      ->capture_default_str();
  app->add_flag(
      "--reliable", options.reliability.reliable,
      "retransmit across paths what a path lost, and all it had in flight when it fails (TCP inside "
      "sees no loss from a link cut; a copy of each packet is kept until acknowledged). Give it on "
      "both ends");
  app->add_flag("--redundant", options.reliability.redundant,
                "send each packet on the two paths where it would arrive first");
  declareSecurity(app, options.security, false);
  declareMetrics(app, options.metrics);
  declareDataPath(app, options.dataPath);
  app->add_option("--peer", options.peers,
                  "serve several peers: each holds its own key file and owns these inner addresses (packets "
                  "to them go to that peer; packets from it must come from them); repeatable, instead of "
                  "--key. The peers connect here with --role connect")
      ->type_name("KEY_FILE=CIDR[,CIDR...]");
  app->add_option("--role", options.role,
                  "connect, accept, or auto: the end whose first link has the lower local address connects")
      ->capture_default_str();
  app->add_option("--reliable-window", options.reliability.windowPackets,
                  "--reliable: packets in flight per direction (power of two, 64..65536; default 4096)")
      ->type_name("PACKETS");
  app->add_option("-i,--interval", options.intervalS, "seconds between interval reports, 0 for none")
      ->capture_default_str();
  app->add_flag("-J,--json", options.json, "print one JSON object at the end instead of text");
  app->add_option(
         "--cpu", options.cpu,
         "pin the tunnel's thread to this CPU (default: not pinned; --queues readers are not pinned)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--queues", options.queues,
                  fmt::format("TUN queues (1-{}): with more than 1 the interface is multi-queue and a thread "
                              "per queue reads it, each flow staying on one queue",
                              tun::kMaxTunQueues))
      ->capture_default_str();
}

int runTun(CLI::App* /*app*/) {
  if (options.name.empty()) return usageError(Error(EINVAL, "--name must not be empty"));
  std::vector<tun::IpPrefix> prefixes;
  for (const std::string& text : options.addresses) {
    auto prefix = tun::IpPrefix::parse(text);
    if (!prefix) return usageError(prefix.error().wrap("--address"));
    prefixes.push_back(*prefix);
  }
  auto backend = parseBackend(options.backend);
  if (!backend) return usageError(backend.error().wrap("--backend"));
  if (auto checked = checkDataPath(options.dataPath, *backend); !checked) return usageError(checked.error());
  auto reorderKind = reorder::parseReorderKind(options.reorder);
  if (!reorderKind || *reorderKind == ReorderKind::kSort)
    return usageError(Error(EINVAL, "--reorder: expected window or off, got '" + options.reorder + "'"));
  if (options.port == 0) return usageError(Error(EINVAL, "--port must be in 1..65535"));
  if (options.intervalS < 0 || (options.intervalS > 0 && options.intervalS < 0.001))
    return usageError(Error(EINVAL, "-i must be 0 (no interval reports) or at least 0.001 seconds"));
  if (options.reorderTimeoutMs < 0) return usageError(Error(EINVAL, "--reorder-timeout must be >= 0"));
  if (options.links.empty()) return usageError(Error(EINVAL, "give at least one --link IFACE=PEER_IP"));
  if (options.queues == 0 || options.queues > tun::kMaxTunQueues)
    return usageError(
        Error(EINVAL, fmt::format("--queues must be 1 to {}, got {}", tun::kMaxTunQueues, options.queues)));
  if (options.queues > 1 && !options.peers.empty())
    return usageError(
        Error(EINVAL, "--queues with --peer: a tunnel that serves several peers reads one queue"));
  if (options.role != "auto" && options.role != "connect" && options.role != "accept")
    return usageError(Error(EINVAL, "--role: expected connect, accept or auto, got '" + options.role + "'"));
  auto hub = planHub();
  if (!hub) return usageError(hub.error());

  EndpointConfig config;
  if (auto checked = applySecurity(options.security, config.security); !checked)
    return usageError(checked.error());
  // The peer writes what it receives to its interface as checksum-valid: the
  // UDP checksum or the AEAD tag must have covered it.
  if (options.dataPath.udpChecksum == UdpChecksum::kOff && config.security.keys.empty()) {
    return usageError(Error(EINVAL,
                            "--udp-checksum off needs --key: the peer hands packets to its kernel as "
                            "checksum-valid, and without a key nothing else would have checked them"));
  }
  // A hub's links need no peer address: each peer's is learned from its packets.
  const Side side = *hub ? Side::kReceiver : Side::kSender;
  auto metrics = startMetrics(options.metrics, "tun");
  if (!metrics)
    return metrics.error().code() == EINVAL ? usageError(metrics.error())
                                            : reportError("tun", metrics.error());
  std::optional<testbed::NetnsScope> netns;  // tun runs in the namespace it is started in
  auto args = resolveLinkArgs("", options.links, options.backupLinks, side, netns);
  if (!args) return isUsageError(args.error()) ? usageError(args.error()) : reportError("tun", args.error());
  auto plans = planLinks(*args, side);
  if (!plans)
    return isUsageError(plans.error()) ? usageError(plans.error()) : reportError("tun", plans.error());
  if (auto checked = applyPathControl(options.pathControl, *plans, config.connection); !checked)
    return usageError(checked.error());
  const LinkPlan& first = plans->front();
  if (first.peerIp && first.localIp == *first.peerIp)
    return usageError(Error(EINVAL, "--link " + first.interface + ": the peer address is this host's own"));
  const bool client =
      !*hub && (options.role == "connect" || (options.role == "auto" && connectsFirst(first)));

  auto linkMtu = linkPayloadMtu(*plans, !config.security.keys.empty());
  if (!linkMtu) return reportError("tun", linkMtu.error());
  std::uint32_t mtu = *linkMtu;
  if (options.mtu != 0) {
    if (options.mtu > mtu)
      return usageError(
          Error(EINVAL, fmt::format("--mtu {} is more than the links carry ({})", options.mtu, mtu)));
    mtu = options.mtu;
  }
  const bool hasV6 =
      std::any_of(prefixes.begin(), prefixes.end(), [](const tun::IpPrefix& p) { return !p.address.isV4(); });
  const std::uint32_t minMtu = hasV6 ? kMinMtuV6 : kMinMtuV4;
  if (mtu < minMtu)
    return usageError(Error(EINVAL, fmt::format("the tunnel MTU would be {}, below the {} that {} needs", mtu,
                                                minMtu, hasV6 ? "IPv6" : "IPv4")));

  config.acceptIncoming = !client;
  // A restarted peer opens a new connection while the old one has not timed out yet.
  config.maxConnections = 2 * std::max<std::uint32_t>(1, static_cast<std::uint32_t>(options.peers.size()));
  if (auto checked = applyReliability(options.reliability, config.connection, true); !checked)
    return usageError(checked.error());

  config.connection.handshakeTimeoutNs =
      std::min<std::uint64_t>(config.connection.peerTimeoutNs, 3'000'000'000);
  config.connection.reorder.kind = *reorderKind;
  if (options.reorderTimeoutMs > 0) {
    config.connection.reorder.adaptiveTimeout = false;
    config.connection.reorder.fixedTimeoutNs = static_cast<std::uint64_t>(options.reorderTimeoutMs * 1e6);
  }
  LinkOptions linkOptions;
  applyDataPath(options.dataPath, *backend, linkOptions);
  linkOptions.port = options.port;
  linkOptions.manyPeers = hub->has_value();
  if (auto checked = checkRxThreads(options.dataPath, plans->size()); !checked)
    return usageError(checked.error());
  auto endpoint = openEndpoint(config, toLinkSpecs(*plans), linkOptions);
  if (!endpoint) return reportError("tun", endpoint.error());
  Endpoint& ep = **endpoint;

  tun::TunOptions deviceOptions;
  deviceOptions.name = options.name;
  deviceOptions.virtioHeader = !options.noOffload;
  deviceOptions.offloads = !options.noOffload;
  deviceOptions.queues = options.queues;
  auto opened = tun::TunDevice::open(deviceOptions);
  if (!opened)
    return isUsageError(opened.error()) ? usageError(opened.error()) : reportError("tun", opened.error());
  tun::TunDevice& device = *opened;
  TunnelAddresses addresses;
  for (const tun::IpPrefix& prefix : prefixes) {
    if (auto added = device.addAddress(prefix); !added) return reportError("tun", added.error());
    (prefix.address.isV4() ? addresses.v4 : addresses.v6) = prefix.address;
  }
  if (auto set = device.setMtu(mtu); !set) return reportError("tun", set.error());
  if (auto up = device.setUp(true); !up) return reportError("tun", up.error());
  auto queueReaders = startQueueReaders(device);  // before --cpu pins this thread
  if (!queueReaders) return reportError("tun", queueReaders.error());

  if (options.cpu >= 0) {
    auto pinned = pinThreadToCpu(options.cpu);
    if (!pinned)
      return isUsageError(pinned.error()) ? usageError(pinned.error()) : reportError("tun", pinned.error());
  }
  installStopHandler();
  RunDescription baseRun = describeRun(ep, *plans, *backend, options.cpu);
  baseRun.security = securityText(config.security, client);
  baseRun.rxHoldoffNs = rxHoldoffNs(options.dataPath, true);
  if (!options.json) {
    std::string links;
    for (const std::string& mode : baseRun.linkModes) links += (links.empty() ? "" : "; ") + mode;
    fmt::print("mpxdp tun: {} mtu {}, offloads {}, {} queue{}, {} link(s): {}\n", device.name(), mtu,
               device.describeOffloads(), device.queueCount(), device.queueCount() == 1 ? "" : "s",
               plans->size(), links);
    if (*hub) {
      fmt::print("mpxdp tun: waiting for {} peer(s), each with its key (port {}, backend {})\n",
                 options.peers.size(), options.port, toString(*backend));
    } else {
      fmt::print("mpxdp tun: {} the peer {} (port {}, backend {})\n",
                 client ? "connecting to" : "waiting for", first.peerIp->toString(), options.port,
                 toString(*backend));
    }
    fmt::print("mpxdp tun: security: {}\n", baseRun.security);
    std::fflush(stdout);
  }
  fmt::print(stderr, "mpxdp tun: ready\n");
  std::fflush(stderr);

  if (*hub) {
    RunDescription run = baseRun;
    run.scheduler = options.pathControl.scheduler;
    run.pacing = options.pathControl.pacing;
    run.reorder = std::string(reorder::toString(*reorderKind));
    TunnelHub tunnelHub(
        device, addresses, std::move((*hub)->peers), std::move((*hub)->routes),
        HubReporting{run, options.json, options.intervalS, metrics->get(), baseRun.rxHoldoffNs});
    auto served = tunnelHub.run(ep);
    if (options.json) {
      nlohmann::json j;
      j["interface"] = device.name();
      j["mtu"] = mtu;
      j["offloads"] = device.describeOffloads();
      j["role"] = "hub";
      j["peers"] = tunnelHub.peersJson();
      j["tun"] = countersJson(tunnelHub.counters());
      if (!served) j["error"] = served.error().message();
      fmt::print("{}\n", j.dump(2));
    } else {
      printCounters(tunnelHub.counters());
    }
    std::fflush(stdout);
    if (!served) return reportError("tun", served.error());
    return kExitOk;
  }

  TunnelPump pump(device, addresses, baseRun.rxHoldoffNs);
  pump.useQueueReaders(std::move(*queueReaders));
  pump.setMetrics(metrics->get(), baseRun.linkNames);
  std::uint64_t connections = 0;
  nlohmann::json lastSend;
  nlohmann::json lastRecv;
  std::optional<Error> fatal;
  Connection* next = nullptr;  // a newer connection that replaced the last one
  bool announcedWaiting = false;
  while (!stopRequested() && !fatal) {
    Connection* conn = next;
    next = nullptr;
    if (conn == nullptr && client) {
      ConnectOptions connect;
      connect.direction = DataDirection::kBoth;
      connect.maxPayload = static_cast<std::uint16_t>(mtu);
      auto opened = ep.connect(connect);
      if (!opened) {
        fatal = opened.error();
        break;
      }
      conn = *opened;
      while (!stopRequested() && !conn->established() && !conn->done()) {
        if (auto polled = ep.poll(); !polled) {
          fatal = polled.error();
          break;
        }
        if (auto discarded = pump.discardUntil(ep, ep.nextDeadlineNs()); !discarded)
          fatal = discarded.error();
      }
      if (!conn->established()) {
        if (!announcedWaiting && conn->error() && !options.json) {
          fmt::print("mpxdp tun: no connection yet ({}); trying again until the peer answers\n",
                     handshakeFailure(ep, *conn).message());
          std::fflush(stdout);
          announcedWaiting = true;
        }
        if (!conn->done()) conn->abort(static_cast<std::uint16_t>(wire::CloseError::kStopped), "stopped");
        ep.remove(conn);
        const std::uint64_t until = monotonicNs() + kRetryPauseNs;
        while (!stopRequested() && monotonicNs() < until && !fatal) {
          if (auto polled = ep.poll(); !polled) fatal = polled.error();
          if (auto discarded = pump.discardUntil(ep, until); !discarded) fatal = discarded.error();
        }
        continue;
      }
    }
    while (conn == nullptr && !stopRequested() && !fatal) {
      if (auto polled = ep.poll(); !polled) {
        fatal = polled.error();
        break;
      }
      conn = ep.accept();
      if (conn == nullptr) {
        if (auto discarded = pump.discardUntil(ep, ep.nextDeadlineNs()); !discarded)
          fatal = discarded.error();
      }
    }
    if (conn == nullptr) break;
    ++connections;
    announcedWaiting = false;
    if (conn->maxPayload() < mtu) {
      // The peer's links carry less: never make the tunnel fragment.
      mtu = conn->maxPayload();
      if (auto set = device.setMtu(mtu); !set) {
        fatal = set.error();
        break;
      }
    }
    if (!options.json) {
      fmt::print("mpxdp tun: connected to the peer (connection {:08x}, {}), mtu {}\n", conn->state().connId,
                 client ? "client" : "server", mtu);
      std::fflush(stdout);
    }
    RunDescription run = baseRun;
    run.scheduler = options.pathControl.scheduler;
    run.pacing = options.pathControl.pacing;
    run.intervalS = options.intervalS;
    run.connId = conn->state().connId;
    run.payloadBytes = mtu;
    run.reorder = std::string(reorder::toString(*reorderKind));
    std::FILE* out = options.json ? nullptr : stdout;
    run.role = Role::kSender;
    Reporter sendReporter(run, options.json, out);
    run.role = Role::kReceiver;
    Reporter receiveReporter(run, options.json, out);
    if (options.intervalS > 0) {
      sendReporter.begin();
      receiveReporter.begin();
    }
    const std::uint64_t startNs = monotonicNs();
    TunnelPump::Outcome outcome =
        pump.run(ep, *conn, &sendReporter, &receiveReporter, options.intervalS, client ? nullptr : &next);
    TransferResult result;
    result.stats = conn->stats();
    result.endedBy = outcome.endedBy;
    result.failure = outcome.failure;
    result.endS = static_cast<double>(monotonicNs() - startNs) / 1e9;
    result.sendDurationS = result.endS;
    result.receiveDurationS = result.endS;
    finishReports(ep, *conn, result, &sendReporter, &receiveReporter, false);
    lastSend = sendReporter.json();
    lastRecv = receiveReporter.json();
    if (!options.json && outcome.endedBy != "signal") {
      fmt::print("mpxdp tun: peer lost: {}\n", outcome.endedBy == "replaced" ? "it opened a new connection"
                                               : outcome.failure             ? outcome.failure->message()
                                                                             : "the connection closed");
      std::fflush(stdout);
    }
    ep.remove(conn);
  }
  if (options.json) {
    nlohmann::json j;
    j["interface"] = device.name();
    j["mtu"] = mtu;
    j["offloads"] = device.describeOffloads();
    j["queues"] = device.queueCount();
    j["role"] = client ? "client" : "server";
    j["connections"] = connections;
    j["tun"] = countersJson(pump.counters());
    if (!lastSend.is_null()) j["send"] = lastSend;
    if (!lastRecv.is_null()) j["recv"] = lastRecv;
    if (fatal) j["error"] = fatal->message();
    fmt::print("{}\n", j.dump(2));
  } else {
    printCounters(pump.counters());
  }
  std::fflush(stdout);
  if (fatal) return reportError("tun", *fatal);
  return kExitOk;
}

}  // namespace mpxdp::cli
