// mpxdp send: connect to `mpxdp recv` over every link and send a patterned
// stream for -t seconds at -b (like iperf3 -c); -R has the receiver send,
// --bidir both; -F sends a file instead (reliable mode, docs/file-transfer.md).
// At the end it prints the receiver's figures too.
#include <fmt/core.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "commands.h"
#include "file_io.h"
#include "link_args.h"
#include "mpxdp/links.h"
#include "rate.h"
#include "reorder/reorderer.h"
#include "report.h"
#include "run_control.h"
#include "session.h"
#include "transfer.h"

namespace mpxdp::cli {
namespace {

struct SendOptions {
  std::vector<std::string> links;
  std::vector<std::string> backupLinks;
  std::uint16_t port = kDefaultPort;
  std::uint16_t cport = 0;  // --cport; 0: port
  double timeS = 10.0;
  std::string rate;
  std::uint32_t payloadBytes = 1024;
  PathControlArgs pathControl;
  std::string backend = "auto";
  double intervalS = 1.0;
  bool json = false;
  std::string testbed;
  int cpu = -1;  // --cpu; -1: not pinned
  bool bidir = false;
  bool reverse = false;
  double connectTimeoutS = 3.0;
  ReliabilityArgs reliability;
  SecurityArgs security;  // --key, --cipher
  std::string metrics;    // --metrics ADDR:PORT
  DataPathArgs dataPath;
  std::string file;  // -F
};

SendOptions options;

int usageError(const Error& error) {
  fmt::print(stderr, "mpxdp send: {}\n", error.context());
  return kExitUsageError;
}

bool isUsageError(const Error& error) {
  return error.code() == EINVAL || error.code() == ENODEV || error.code() == ENOENT ||
         error.code() == EADDRNOTAVAIL;
}

// -F succeeded only when the receiver's REPORT says it got the whole stream
// (header, file, trailer) and lost nothing: a receiver that found anything
// wrong aborts the connection instead, which ends up in result.failure.
std::optional<Error> checkDelivery(const FileSource& source, const Connection& conn,
                                   const TransferResult& result) {
  if (result.failure) return result.failure;
  if (result.endedBy == "signal") return Error(EINTR, "stopped by a signal before the file was delivered");
  if (!source.complete()) return Error(EIO, "the file was not sent to its end");
  const auto peer = conn.peerReport();
  if (!peer)
    return Error(ETIMEDOUT, "the receiver's report did not arrive: delivery of the file is unconfirmed");
  if (peer->lost != 0)
    return Error(EIO,
                 fmt::format("the receiver lost {} payloads: the file did not arrive whole", peer->lost));
  if (peer->bytes != source.streamBytes()) {
    return Error(EIO,
                 fmt::format("the receiver counted {} stream bytes, {} were sent (header, file, trailer)",
                             peer->bytes, source.streamBytes()));
  }
  return std::nullopt;
}

}  // namespace

void declareSend(CLI::App* app) {
  app->add_option("--link", options.links,
                  "send over this interface to PEER_IP (repeatable; the receiver lists its links in the same "
                  "order). The path's rate is estimated; RATE caps it (the line rate, counting whole "
                  "frames as a shaper does)")
      ->type_name("IFACE=PEER_IP[@RATE]");
  app->add_option("--backup-link", options.backupLinks,
                  "a backup path, as --link: it carries data only while the other paths are down or too "
                  "slow (repeatable; backup links come after the --link ones in path order, so the receiver "
                  "lists them the same way). With --testbed: IFACE names one of the test bed's links")
      ->type_name("IFACE=PEER_IP[@RATE]");
  app->add_option("-p,--port", options.port, "UDP port of the connection (both ends)")->capture_default_str();
  app->add_option("--cport", options.cport,
                  "this side's UDP port instead of --port (like iperf3 --cport): several senders on one host "
                  "each need their own to reach one receiver (recv --max-peers)")
      ->type_name("PORT");
  app->add_option("-t,--time", options.timeS, "seconds to send")->capture_default_str();
  app->add_option("-b,--bitrate", options.rate,
                  "application payload rate over all links, bits/s as iperf3's -b (e.g. 800M); default: "
                  "unlimited (each path is still paced at its own rate)");
  app->add_option("-l,--length", options.payloadBytes, "payload bytes per packet")->capture_default_str();
  app->add_option("--scheduler", options.pathControl.scheduler,
                  "eaf (earliest arrival: the path where a packet arrives first), rr (strict round robin) or "
                  "wrr (weighted by the paths' pacing rates)")
      ->capture_default_str();
  app->add_option("--pacing", options.pathControl.pacing,
                  "auto (each path's rate estimated from the receiver's ACKs, @RATE a cap) or fixed (each "
                  "path paced at its @RATE, which every link then needs)")
      ->capture_default_str();
  app->add_option("--backend", options.backend, kBackendHelp)->capture_default_str();
  app->add_option("-i,--interval", options.intervalS,
                  "seconds between interval reports (down to 0.001), 0 for none")
      ->capture_default_str();
  app->add_flag("-J,--json", options.json, "print one JSON object at the end instead of text");
  app->add_flag("--bidir", options.bidir, "data in both directions at once (like iperf3 --bidir)");
  app->add_flag("-R,--reverse", options.reverse, "the receiver sends, this side receives (like iperf3 -R)");
  app->add_option("--connect-timeout", options.connectTimeoutS,
                  "seconds to wait for the receiver's answer before giving up")
      ->capture_default_str();
  app->add_flag("--reliable", options.reliability.reliable,
                "every payload arrives exactly once and in order: lost ones are sent again (the receiver "
                "follows; a receiver started with --reliable refuses clients without it)");
  app->add_flag(
      "--redundant", options.reliability.redundant,
      "send each payload on the two paths where it would arrive first (the receiver keeps the first "
      "copy)");
  declareSecurity(app, options.security, false);
  declareMetrics(app, options.metrics);
  declareDataPath(app, options.dataPath);
  app->add_option("--reliable-window", options.reliability.windowPackets,
                  "reliable mode: payloads in flight unacknowledged (power of two, 64..65536; default 4096)")
      ->type_name("PACKETS");
  app->add_option("--abort-timeout", options.reliability.abortTimeoutS,
                  "seconds without a packet from the receiver before the connection fails")
      ->capture_default_str();
  app->add_option("-F,--file", options.file,
                  "send this file instead of the test pattern, to its end, then check that the receiver got "
                  "every byte (implies --reliable; excludes -t, -R and --bidir; the receiver runs recv -F)")
      ->type_name("PATH");
  app->add_option("--testbed", options.testbed,
                  "run in the sender namespace of this test bed (mpxdp-NAME-tx) and take links, peers and "
                  "rates from it");
  app->add_option("--cpu", options.cpu,
                  "pin the thread to this CPU (default: not pinned; two pinned ends can land on one core)")
      ->check(CLI::NonNegativeNumber);
}

int runSend(CLI::App* app) {
  auto backend = parseBackend(options.backend);
  if (!backend) return usageError(backend.error().wrap("--backend"));
  if (auto checked = checkDataPath(options.dataPath, *backend); !checked) return usageError(checked.error());
  if (!(options.timeS > 0)) return usageError(Error(EINVAL, "-t must be > 0 seconds"));
  if (options.timeS > 86400.0 * 365) return usageError(Error(EINVAL, "-t is too long"));
  if (options.intervalS < 0 || (options.intervalS > 0 && options.intervalS < 0.001))
    return usageError(Error(EINVAL, "-i must be 0 (no interval reports) or at least 0.001 seconds"));
  if (options.port == 0) return usageError(Error(EINVAL, "--port must be in 1..65535"));
  if (app->count("--cport") > 0 && options.cport == 0)
    return usageError(Error(EINVAL, "--cport must be in 1..65535"));
  if (options.payloadBytes == 0) return usageError(Error(EINVAL, "-l must be at least 1 byte"));
  if (options.payloadBytes > UINT16_MAX) return usageError(Error(EINVAL, "-l must be at most 65535 bytes"));
  if (options.bidir && options.reverse) return usageError(Error(EINVAL, "--bidir and -R exclude each other"));
  if (!(options.connectTimeoutS > 0) || options.connectTimeoutS > 3600) {
    return usageError(Error(EINVAL, "--connect-timeout must be in (0, 3600] seconds"));
  }
  // -F: the file decides the length; reliable mode carries it.
  std::optional<FileSource> source;
  if (!options.file.empty()) {
    if (options.bidir || options.reverse)
      return usageError(
          Error(EINVAL, "-F with -R or --bidir is not supported yet: the file goes from send to recv"));
    if (app->count("-t") > 0) return usageError(Error(EINVAL, "-F sends the whole file: drop -t"));
    if (app->count("-l") > 0 && options.payloadBytes < kMinFilePayload)
      return usageError(Error(EINVAL, fmt::format("-l must be at least {} bytes with -F", kMinFilePayload)));
    auto file = openSourceFile(options.file);
    if (!file) return usageError(file.error());
    source.emplace(options.file, *file);
    options.reliability.reliable = true;
  }
  std::uint64_t rateBps = 0;
  if (!options.rate.empty()) {
    auto rate = parseRate(options.rate);
    if (!rate) return usageError(rate.error().wrap("-b"));
    rateBps = *rate;
  }
  if (options.testbed.empty() && options.links.empty() && options.backupLinks.empty()) {
    return usageError(Error(EINVAL, "give --link IFACE=PEER_IP[@RATE] (repeatable) or --testbed NAME"));
  }
  EndpointConfig config;
  if (auto checked = applyReliability(options.reliability, config.connection, true); !checked)
    return usageError(checked.error());
  if (auto checked = applySecurity(options.security, config.security); !checked)
    return usageError(checked.error());
  // Names first (before entering a test bed); --pacing fixed is checked against the links below.
  if (auto checked = applyPathControl(options.pathControl, {}, config.connection); !checked)
    return usageError(checked.error());

  auto metrics = startMetrics(options.metrics, "send");
  if (!metrics)
    return metrics.error().code() == EINVAL ? usageError(metrics.error())
                                            : reportError("send", metrics.error());
  std::optional<testbed::NetnsScope> netns;
  auto args = resolveLinkArgs(options.testbed, options.links, options.backupLinks, Side::kSender, netns);
  if (!args) return isUsageError(args.error()) ? usageError(args.error()) : reportError("send", args.error());
  auto plans = planLinks(*args, Side::kSender);
  if (!plans)
    return isUsageError(plans.error()) ? usageError(plans.error()) : reportError("send", plans.error());
  if (auto checked = applyPathControl(options.pathControl, *plans, config.connection); !checked)
    return usageError(checked.error());

  const DataDirection direction = options.bidir     ? DataDirection::kBoth
                                  : options.reverse ? DataDirection::kServerToClient
                                                    : DataDirection::kClientToServer;
  config.connection.totalRateBps = rateBps;
  config.connection.handshakeTimeoutNs = static_cast<std::uint64_t>(options.connectTimeoutS * 1e9);
  LinkOptions linkOptions;
  applyDataPath(options.dataPath, *backend, linkOptions);
  linkOptions.port = options.cport != 0 ? options.cport : options.port;
  linkOptions.peerPort = options.port;
  if (auto checked = checkRxThreads(options.dataPath, plans->size()); !checked)
    return usageError(checked.error());
  auto endpoint = openEndpoint(config, toLinkSpecs(*plans), linkOptions);
  if (!endpoint) return reportError("send", endpoint.error());

  ConnectOptions connect;
  connect.direction = direction;
  // A file goes in full-size payloads (what the paths carry) unless -l says otherwise.
  connect.maxPayload = source && app->count("-l") == 0 ? 0 : static_cast<std::uint16_t>(options.payloadBytes);
  connect.serverRateBps = rateBps;
  connect.durationMs = source ? 0 : static_cast<std::uint32_t>(options.timeS * 1000);
  auto connection = (*endpoint)->connect(connect);
  if (!connection) {
    if (connection.error().code() == EMSGSIZE) return usageError(connection.error().wrap("-l"));
    return reportError("send", connection.error());
  }
  Connection& conn = **connection;

  if (options.cpu >= 0) {
    auto pinned = pinThreadToCpu(options.cpu);
    if (!pinned)
      return isUsageError(pinned.error()) ? usageError(pinned.error()) : reportError("send", pinned.error());
  }
  installStopHandler();
  if (auto established = waitForHandshake(**endpoint, conn); !established) {
    return reportError("send", established.error());
  }

  std::uint32_t payloadBytes = options.payloadBytes;
  if (source) {
    payloadBytes = conn.maxPayload();
    if (payloadBytes < kMinFilePayload) {
      conn.abort(0, "payloads too small for a file");
      return reportError("send", Error(EMSGSIZE, fmt::format("-F needs payloads of at least {} bytes; the "
                                                             "connection carries {}",
                                                             kMinFilePayload, payloadBytes)));
    }
    source->start(payloadBytes);
  }
  RunDescription run = describeRun(**endpoint, *plans, *backend, options.cpu);
  run.security = securityText(config.security, true);
  run.payloadBytes = payloadBytes;
  run.reliable = config.connection.reliable;
  run.redundant = config.connection.redundant;
  if (source) {
    run.file = fmt::format("{}, {} bytes, its SHA-256 in the trailer", options.file, source->progress().size);
  }
  run.totalRateBps = rateBps;
  run.scheduler = options.pathControl.scheduler;
  run.pacing = options.pathControl.pacing;
  run.intervalS = options.intervalS;
  run.rxHoldoffNs = rxHoldoffNs(options.dataPath, options.bidir || options.reverse);
  run.connId = conn.state().connId;
  const bool sends = conn.state().sends;
  const bool receives = conn.state().receives;
  const bool combined = sends && receives && options.json;
  std::optional<Reporter> sendReporter;
  std::optional<Reporter> receiveReporter;
  if (sends) {
    run.role = Role::kSender;
    sendReporter.emplace(run, options.json, combined ? nullptr : stdout);
    sendReporter->begin();
  }
  if (receives) {
    run.role = Role::kReceiver;
    run.reorder = std::string(reorder::toString(config.connection.reorder.kind));
    receiveReporter.emplace(run, options.json, combined ? nullptr : stdout);
    receiveReporter->begin();
  }

  TransferPlan plan;
  plan.sendDurationNs = source ? 0 : static_cast<std::uint64_t>(options.timeS * 1e9);
  plan.payloadBytes = payloadBytes;
  plan.source = source ? &*source : nullptr;
  plan.rateBps = rateBps;
  plan.intervalS = options.intervalS;
  plan.rxHoldoffNs = run.rxHoldoffNs;
  plan.metrics = metrics->get();
  plan.linkNames = run.linkNames;
  const TransferResult result = runTransfer(**endpoint, conn, plan, sendReporter ? &*sendReporter : nullptr,
                                            receiveReporter ? &*receiveReporter : nullptr);
  std::optional<Error> fileFailure;
  if (source) {
    FileSummary summary = source->summary();
    fileFailure = checkDelivery(*source, conn, result);
    summary.delivered = !fileFailure;
    if (fileFailure) summary.error = fileFailure->message();
    if (sendReporter) sendReporter->setFile(std::move(summary));
  }
  finishReports(**endpoint, conn, result, sendReporter ? &*sendReporter : nullptr,
                receiveReporter ? &*receiveReporter : nullptr, combined);
  if (result.failure) return reportError("send", *result.failure);
  if (fileFailure) return reportError("send", *fileFailure);
  return kExitOk;
}

}  // namespace mpxdp::cli
