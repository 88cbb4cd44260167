// mpxdp recv: serve connections from `mpxdp send` one after another (like
// iperf3 -s; -1 serves one): receive, reorder and check the stream, or send
// it when the client asked for -R / --bidir; report each connection. -F
// stores one file sent with `mpxdp send -F` (docs/file-transfer.md).
#include <fmt/core.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "commands.h"
#include "file_io.h"
#include "link_args.h"
#include "mpxdp/links.h"
#include "reorder/reorderer.h"
#include "report.h"
#include "run_control.h"
#include "session.h"
#include "transfer.h"
#include "wire/frames.h"

namespace mpxdp::cli {
namespace {

struct RecvOptions {
  std::vector<std::string> links;
  std::vector<std::string> backupLinks;
  PathControlArgs pathControl;
  std::uint16_t port = kDefaultPort;
  std::string reorder = "window";
  std::string backend = "xdp";
  double intervalS = 1.0;
  bool json = false;
  bool oneOff = false;
  std::string testbed;
  int cpu = -1;  // --cpu; -1: not pinned
  std::uint32_t windowPackets = 16384;
  double timeoutMs = 0;  // 0: adaptive
  bool noFastLoss = false;
  ReliabilityArgs reliability;
  SecurityArgs security;  // --key (repeatable: one per peer)
  std::string file;       // -F
};

RecvOptions options;

int usageError(const Error& error) {
  fmt::print(stderr, "mpxdp recv: {}\n", error.context());
  return kExitUsageError;
}

bool isUsageError(const Error& error) {
  return error.code() == EINVAL || error.code() == ENODEV || error.code() == ENOENT ||
         error.code() == EADDRNOTAVAIL;
}

}  // namespace

void declareRecv(CLI::App* app) {
  app->add_option("--link", options.links,
                  "receive on this interface (repeatable, in the sender's link order); PEER_IP, the sender's "
                  "address on that link, is optional (learned from its packets); RATE paces what this side "
                  "sends (-R, --bidir)")
      ->type_name("IFACE[=PEER_IP][@RATE]");
  app->add_option("--backup-link", options.backupLinks,
                  "a backup path, as --link, listed as the sender lists it: backup links come after the "
                  "--link ones in path order (repeatable). With --testbed: IFACE names one of its links")
      ->type_name("IFACE[=PEER_IP][@RATE]");
  app->add_option("--scheduler", options.pathControl.scheduler,
                  "when this side sends (-R, --bidir): eaf (earliest arrival), rr or wrr")
      ->capture_default_str();
  app->add_option("--pacing", options.pathControl.pacing,
                  "when this side sends: auto (rates estimated, @RATE a cap) or fixed (every link's @RATE)")
      ->capture_default_str();
  app->add_option("-p,--port", options.port, "UDP port of the connection (both ends)")->capture_default_str();
  app->add_option("--reorder", options.reorder, "reorderer: window, sort or off")->capture_default_str();
  app->add_option("--backend", options.backend,
                  "xdp (AF_XDP + steering program, needs root) or udp (kernel sockets)")
      ->capture_default_str();
  app->add_option("-i,--interval", options.intervalS,
                  "seconds between interval reports (down to 0.001), 0 for none")
      ->capture_default_str();
  app->add_flag("-J,--json", options.json, "print one JSON object per connection instead of text");
  app->add_flag("-1,--one-off", options.oneOff, "serve one connection, then exit (like iperf3 -s -1)");
  app->add_option("--window", options.windowPackets, "reorder window in packets (power of two, 64..2^24)")
      ->capture_default_str();
  app->add_option(
      "--reorder-timeout", options.timeoutMs,
      "window: fixed hole timeout in milliseconds (default: adaptive, from the path delay spread)");
  app->add_flag("--no-fast-loss", options.noFastLoss,
                "window: declare holes lost only on timeout, not as soon as every path has passed them");
  app->add_flag("--reliable", options.reliability.reliable,
                "serve only clients in reliable mode (send --reliable or -F); without it the client decides");
  app->add_flag(
      "--redundant", options.reliability.redundant,
      "when this side sends (-R, --bidir): each payload on the two paths where it would arrive first");
  declareSecurity(app, options.security, true);
  app->add_option("--reliable-window", options.reliability.windowPackets,
                  "reliable mode: the receive window in payloads (power of two, 64..65536, at most --window; "
                  "default 4096)")
      ->type_name("PACKETS");
  app->add_option("--abort-timeout", options.reliability.abortTimeoutS,
                  "seconds without a packet from the client before its connection fails")
      ->capture_default_str();
  app->add_option("-F,--file", options.file,
                  "store the file the client sends with send -F at PATH: written beside it under a temporary "
                  "name and renamed onto PATH only when its SHA-256 matched (implies --reliable and -1)")
      ->type_name("PATH");
  app->add_option(
      "--testbed", options.testbed,
      "run in the receiver namespace of this test bed (mpxdp-NAME-rx) and take the links from it");
  app->add_option("--cpu", options.cpu,
                  "pin the thread to this CPU (default: not pinned; two pinned ends can land on one core)")
      ->check(CLI::NonNegativeNumber);
}

int runRecv(CLI::App* /*app*/) {
  auto reorderKind = reorder::parseReorderKind(options.reorder);
  if (!reorderKind) {
    return usageError(
        Error(EINVAL, "--reorder: expected window, sort or off, got '" + options.reorder + "'"));
  }
  auto backend = parseBackend(options.backend);
  if (!backend) return usageError(backend.error().wrap("--backend"));
  if (options.intervalS < 0 || (options.intervalS > 0 && options.intervalS < 0.001))
    return usageError(Error(EINVAL, "-i must be 0 (no interval reports) or at least 0.001 seconds"));
  if (options.port == 0) return usageError(Error(EINVAL, "--port must be in 1..65535"));
  if (options.windowPackets < 64 || options.windowPackets > (1U << 24) ||
      (options.windowPackets & (options.windowPackets - 1)) != 0) {
    return usageError(Error(EINVAL, "--window must be a power of two in 64..16777216"));
  }
  if (options.timeoutMs < 0) return usageError(Error(EINVAL, "--reorder-timeout must be >= 0"));
  // -F: one verified file, then exit; checked before any link is opened.
  const bool fileMode = !options.file.empty();
  if (fileMode) {
    if (options.reliability.redundant)
      return usageError(Error(EINVAL, "--redundant applies when this side sends; with -F it only receives"));
    if (auto checked = checkDestination(options.file); !checked) return usageError(checked.error());
    options.reliability.reliable = true;
    options.oneOff = true;
  }
  if (options.testbed.empty() && options.links.empty() && options.backupLinks.empty()) {
    return usageError(Error(EINVAL, "give --link IFACE (repeatable) or --testbed NAME"));
  }
  EndpointConfig config;
  if (auto checked = applyPathControl(options.pathControl, {}, config.connection); !checked)
    return usageError(checked.error());
  if (auto checked = applySecurity(options.security, config.security); !checked)
    return usageError(checked.error());

  // Enter the namespace first: sockets and the program belong to the namespace they are made in.
  std::optional<testbed::NetnsScope> netns;
  auto args = resolveLinkArgs(options.testbed, options.links, options.backupLinks, Side::kReceiver, netns);
  if (!args) return isUsageError(args.error()) ? usageError(args.error()) : reportError("recv", args.error());
  auto plans = planLinks(*args, Side::kReceiver);
  if (!plans)
    return isUsageError(plans.error()) ? usageError(plans.error()) : reportError("recv", plans.error());
  if (auto checked = applyPathControl(options.pathControl, *plans, config.connection); !checked)
    return usageError(checked.error());

  config.acceptIncoming = true;
  config.connection.reorder.kind = *reorderKind;
  config.connection.reorder.windowPackets = options.windowPackets;
  if (auto checked = applyReliability(options.reliability, config.connection, false); !checked)
    return usageError(checked.error());
  config.connection.reorder.fastLoss = !options.noFastLoss;
  if (options.timeoutMs > 0) {
    config.connection.reorder.adaptiveTimeout = false;
    config.connection.reorder.fixedTimeoutNs = static_cast<std::uint64_t>(options.timeoutMs * 1e6);
  }
  LinkOptions linkOptions;
  linkOptions.backend = *backend;
  linkOptions.port = options.port;
  auto endpoint = openEndpoint(config, toLinkSpecs(*plans), linkOptions);
  if (!endpoint) return reportError("recv", endpoint.error());
  Endpoint& ep = **endpoint;

  if (options.cpu >= 0) {
    auto pinned = pinThreadToCpu(options.cpu);
    if (!pinned)
      return isUsageError(pinned.error()) ? usageError(pinned.error()) : reportError("recv", pinned.error());
  }
  installStopHandler();
  if (!options.json) {
    fmt::print("mpxdp recv: listening on {} link(s), port {}, backend {}\n", plans->size(), options.port,
               toString(*backend));
    std::fflush(stdout);
  }
  if (fileMode && !options.json) fmt::print("mpxdp recv: storing one file at {}\n", options.file);
  fmt::print(stderr, "mpxdp recv: ready\n");
  std::fflush(stderr);

  ServerNotices notices;
  std::uint64_t served = 0;
  std::optional<Error> lastFailure;
  while (!stopRequested()) {
    Connection* conn = waitForConnection(ep, notices);
    if (conn == nullptr) break;  // stopped
    ++served;
    RunDescription run = describeRun(ep, *plans, *backend, options.cpu);
    run.security = securityText(config.security, false);
    run.scheduler = options.pathControl.scheduler;
    run.pacing = options.pathControl.pacing;
    run.intervalS = options.intervalS;
    run.connId = conn->state().connId;
    run.payloadBytes = conn->peerHello().maxPayload;
    run.totalRateBps = conn->peerHello().rateBps;
    run.reliable = conn->state().reliable;  // the client decides
    run.redundant = config.connection.redundant;
    if (fileMode) run.file = fmt::format("into {} once its SHA-256 matched", options.file);
    const bool sends = conn->state().sends;
    const bool receives = conn->state().receives;
    const bool combined = sends && receives && options.json;
    if (!options.json) {
      fmt::print("mpxdp recv: connection {:08x} from the client's {}: {}\n", run.connId,
                 conn->peerHello().pathNames.empty() ? "" : conn->peerHello().pathNames[0],
                 sends && receives ? "both directions"
                 : sends           ? "this side sends (reverse)"
                                   : "this side receives");
    }
    std::optional<Reporter> sendReporter;
    std::optional<Reporter> receiveReporter;
    if (receives) {
      run.role = Role::kReceiver;
      run.reorder = std::string(reorder::toString(*reorderKind));
      receiveReporter.emplace(run, options.json, combined ? nullptr : stdout);
      receiveReporter->begin();
    }
    if (sends) {
      run.role = Role::kSender;
      sendReporter.emplace(run, options.json, combined ? nullptr : stdout);
      sendReporter->begin();
    }
    TransferPlan plan;
    plan.sendDurationNs = static_cast<std::uint64_t>(conn->peerHello().durationMs) * 1'000'000ULL;
    plan.payloadBytes = conn->maxPayload();
    plan.rateBps = conn->peerHello().rateBps;
    plan.intervalS = options.intervalS;
    std::unique_ptr<FileSink> sink;
    std::optional<Error> fileFailure;
    if (fileMode) {
      if (sends) {
        fileFailure = Error(EPROTO,
                            "this receiver stores a file (-F) and does not send: the client asked for -R "
                            "or --bidir");
      } else if (auto created = FileSink::create(options.file); !created) {
        fileFailure = created.error();
      } else {
        sink = std::move(*created);
        plan.sink = sink.get();
      }
      if (fileFailure)
        conn->abort(static_cast<std::uint16_t>(wire::CloseError::kProtocol), fileFailure->context());
    }
    TransferResult result;
    if (!fileFailure) {
      result = runTransfer(ep, *conn, plan, sendReporter ? &*sendReporter : nullptr,
                           receiveReporter ? &*receiveReporter : nullptr);
    } else {
      result.stats = conn->stats();
      result.endedBy = "error";
    }
    if (sink) {
      // The file goes in place only after a clean end of stream with a matching digest.
      if (result.failure) {
        fileFailure = result.failure;
      } else if (result.endedBy == "signal") {
        fileFailure = Error(EINTR, "stopped by a signal before the file was complete");
      } else if (auto committed = sink->commit(); !committed) {
        fileFailure = committed.error();
      }
      if (fileFailure) sink->discard();
      FileSummary summary = sink->summary();
      if (fileFailure) summary.error = fileFailure->message();
      if (receiveReporter) receiveReporter->setFile(std::move(summary));
    }
    finishReports(ep, *conn, result, sendReporter ? &*sendReporter : nullptr,
                  receiveReporter ? &*receiveReporter : nullptr, combined);
    ep.remove(conn);
    if (!result.failure && fileFailure) result.failure = fileFailure;
    if (result.failure) {
      (void)reportError("recv", *result.failure);
      lastFailure = result.failure;
    } else {
      lastFailure.reset();
    }
    if (options.oneOff) break;
  }
  if (fileMode && served == 0)
    return reportError("recv",
                       Error(EINTR, "stopped before a file arrived; " + options.file + " is unchanged"));
  if (options.oneOff && served == 0 && !stopRequested())
    return reportError("recv", Error(EINTR, "no connection"));
  if (options.oneOff && lastFailure) return kExitRuntimeError;
  return kExitOk;
}

}  // namespace mpxdp::cli
