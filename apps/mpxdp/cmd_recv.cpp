// mpxdp recv: serve connections from `mpxdp send` one after another (like
// iperf3 -s; -1 serves one), or up to --max-peers at once in one loop:
// receive, reorder and check the stream, or send it when the client asked
// for -R / --bidir; report each connection. -F stores one file sent with
// `mpxdp send -F` (docs/file-transfer.md).
#include <fmt/core.h>

#include <algorithm>
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
  std::string backend = "auto";
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
  std::string metrics;    // --metrics ADDR:PORT
  DataPathArgs dataPath;
  std::string file;            // -F
  std::uint32_t maxPeers = 1;  // --max-peers: connections served at once
};

RecvOptions options;

// At most this many clients at once: each takes a return address per link
// (kMaxLinkPeers), and a connection keeps its own for a while after it ended.
constexpr std::uint32_t kMaxPeers = kMaxLinkPeers / 2;
// How often refusals are looked for while clients are served (the
// endpoint's counters cost a few system calls).
constexpr std::uint64_t kNoticeIntervalNs = 100'000'000;

int usageError(const Error& error) {
  fmt::print(stderr, "mpxdp recv: {}\n", error.context());
  return kExitUsageError;
}

bool isUsageError(const Error& error) {
  return error.code() == EINVAL || error.code() == ENODEV || error.code() == ENOENT ||
         error.code() == EADDRNOTAVAIL;
}

// What every client's run shares.
struct Server {
  Endpoint& ep;
  const std::vector<LinkPlan>& plans;
  Backend backend;
  const EndpointConfig& config;
  ReorderKind reorderKind;
  bool fileMode;
  MetricsServer* metrics;  // --metrics (null: none)
};

// One client being served: its reports, its file (-F) and its transfer.
struct Client {
  Connection* conn = nullptr;
  std::optional<Reporter> sendReporter;
  std::optional<Reporter> receiveReporter;
  bool combined = false;
  std::unique_ptr<FileSink> sink;
  std::optional<Error> fileFailure;
  std::unique_ptr<Transfer> transfer;  // null when the client could not be served (fileFailure)

  bool done() const { return !transfer || transfer->done(); }
};

// The header and reports of a new connection, and its transfer, started.
std::unique_ptr<Client> startClient(const Server& server, Connection* conn) {
  auto client = std::make_unique<Client>();
  client->conn = conn;
  const ConnectionState state = conn->state();
  RunDescription run = describeRun(server.ep, server.plans, server.backend, options.cpu);
  run.security = securityText(server.config.security, false);
  run.scheduler = options.pathControl.scheduler;
  run.pacing = options.pathControl.pacing;
  run.intervalS = options.intervalS;
  run.rxHoldoffNs = rxHoldoffNs(options.dataPath, true);
  run.connId = state.connId;
  run.payloadBytes = conn->peerHello().maxPayload;
  run.totalRateBps = conn->peerHello().rateBps;
  run.reliable = state.reliable;  // the client decides
  run.redundant = server.config.connection.redundant;
  run.tagLines = options.maxPeers > 1;
  if (state.authenticated && state.keyIndex < options.security.keyFiles.size()) {
    run.keyIndex = state.keyIndex;
    run.keyFile = options.security.keyFiles[state.keyIndex];
  }
  if (server.fileMode) run.file = fmt::format("into {} once its SHA-256 matched", options.file);
  const bool sends = state.sends;
  const bool receives = state.receives;
  client->combined = sends && receives && options.json;
  if (!options.json) {
    fmt::print("mpxdp recv: connection {:08x} from the client's {}: {}\n", run.connId,
               conn->peerHello().pathNames.empty() ? "" : conn->peerHello().pathNames[0],
               sends && receives ? "both directions"
               : sends           ? "this side sends (reverse)"
                                 : "this side receives");
  }
  std::FILE* out = client->combined ? nullptr : stdout;
  if (receives) {
    run.role = Role::kReceiver;
    run.reorder = std::string(reorder::toString(server.reorderKind));
    client->receiveReporter.emplace(run, options.json, out);
    client->receiveReporter->begin();
  }
  if (sends) {
    run.role = Role::kSender;
    client->sendReporter.emplace(run, options.json, out);
    client->sendReporter->begin();
  }
  TransferPlan plan;
  plan.sendDurationNs = static_cast<std::uint64_t>(conn->peerHello().durationMs) * 1'000'000ULL;
  plan.payloadBytes = conn->maxPayload();
  plan.rateBps = conn->peerHello().rateBps;
  plan.intervalS = options.intervalS;
  plan.metrics = server.metrics;
  plan.linkNames = run.linkNames;
  if (server.fileMode) {
    if (sends) {
      client->fileFailure =
          Error(EPROTO,
                "this receiver stores a file (-F) and does not send: the client asked for -R "
                "or --bidir");
    } else if (auto created = FileSink::create(options.file); !created) {
      client->fileFailure = created.error();
    } else {
      client->sink = std::move(*created);
      plan.sink = client->sink.get();
    }
    if (client->fileFailure) {
      conn->abort(static_cast<std::uint16_t>(wire::CloseError::kProtocol), client->fileFailure->context());
      return client;
    }
  }
  client->transfer = std::make_unique<Transfer>(
      server.ep, *conn, plan, client->sendReporter ? &*client->sendReporter : nullptr,
      client->receiveReporter ? &*client->receiveReporter : nullptr);
  client->transfer->start(monotonicNs());
  return client;
}

// Once the client is done: its file (-F) in place or discarded, its final
// reports, and the connection removed. Returns why it failed, if it did.
std::optional<Error> finishClient(const Server& server, Client& client) {
  Connection& conn = *client.conn;
  TransferResult result;
  if (client.transfer) {
    result = client.transfer->finish();
  } else {
    result.stats = conn.stats();
    result.endedBy = "error";
  }
  std::optional<Error>& fileFailure = client.fileFailure;
  if (client.sink) {
    // The file goes in place only after a clean end of stream with a matching digest.
    if (result.failure) {
      fileFailure = result.failure;
    } else if (result.endedBy == "signal") {
      fileFailure = Error(EINTR, "stopped by a signal before the file was complete");
    } else if (auto committed = client.sink->commit(); !committed) {
      fileFailure = committed.error();
    }
    if (fileFailure) client.sink->discard();
    FileSummary summary = client.sink->summary();
    if (fileFailure) summary.error = fileFailure->message();
    if (client.receiveReporter) client.receiveReporter->setFile(std::move(summary));
  }
  finishReports(server.ep, conn, result, client.sendReporter ? &*client.sendReporter : nullptr,
                client.receiveReporter ? &*client.receiveReporter : nullptr, client.combined);
  const std::uint32_t connId = conn.state().connId;
  server.ep.remove(&conn);
  if (!result.failure && fileFailure) result.failure = fileFailure;
  if (result.failure) {
    // Several at once: the error names its connection.
    (void)reportError("recv", options.maxPeers > 1
                                  ? result.failure->wrap(fmt::format("connection {:08x}", connId))
                                  : *result.failure);
  }
  return result.failure;
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
  app->add_option("--backend", options.backend, kBackendHelp)->capture_default_str();
  app->add_option("-i,--interval", options.intervalS,
                  "seconds between interval reports (down to 0.001), 0 for none")
      ->capture_default_str();
  app->add_flag("-J,--json", options.json, "print one JSON object per connection instead of text");
  app->add_flag("-1,--one-off", options.oneOff,
                "serve one connection, then exit (like iperf3 -s -1); with --max-peers N, the first N "
                "connections, exiting once all of them have finished");
  app->add_option("--max-peers", options.maxPeers,
                  "serve up to N clients (at most 32) at once, each with its own connection, key (--key) and "
                  "report; interval lines then start with the connection id. Default 1: one after another, "
                  "others are refused as busy meanwhile")
      ->type_name("N")
      ->capture_default_str();
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
  declareMetrics(app, options.metrics);
  declareDataPath(app, options.dataPath);
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
  if (auto checked = checkDataPath(options.dataPath, *backend); !checked) return usageError(checked.error());
  if (options.intervalS < 0 || (options.intervalS > 0 && options.intervalS < 0.001))
    return usageError(Error(EINVAL, "-i must be 0 (no interval reports) or at least 0.001 seconds"));
  if (options.port == 0) return usageError(Error(EINVAL, "--port must be in 1..65535"));
  if (options.windowPackets < 64 || options.windowPackets > (1U << 24) ||
      (options.windowPackets & (options.windowPackets - 1)) != 0) {
    return usageError(Error(EINVAL, "--window must be a power of two in 64..16777216"));
  }
  if (options.timeoutMs < 0) return usageError(Error(EINVAL, "--reorder-timeout must be >= 0"));
  if (options.maxPeers < 1 || options.maxPeers > kMaxPeers)
    return usageError(Error(EINVAL, fmt::format("--max-peers must be in 1..{}", kMaxPeers)));
  // -F: one verified file, then exit; checked before any link is opened.
  const bool fileMode = !options.file.empty();
  if (fileMode) {
    if (options.maxPeers > 1)
      return usageError(Error(EINVAL, "-F stores one file from one client: drop --max-peers"));
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
  auto metrics = startMetrics(options.metrics, "recv");
  if (!metrics)
    return metrics.error().code() == EINVAL ? usageError(metrics.error())
                                            : reportError("recv", metrics.error());
  std::optional<testbed::NetnsScope> netns;
  auto args = resolveLinkArgs(options.testbed, options.links, options.backupLinks, Side::kReceiver, netns);
  if (!args) return isUsageError(args.error()) ? usageError(args.error()) : reportError("recv", args.error());
  auto plans = planLinks(*args, Side::kReceiver);
  if (!plans)
    return isUsageError(plans.error()) ? usageError(plans.error()) : reportError("recv", plans.error());
  if (auto checked = applyPathControl(options.pathControl, *plans, config.connection); !checked)
    return usageError(checked.error());

  config.acceptIncoming = true;
  config.maxConnections = options.maxPeers;
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
  applyDataPath(options.dataPath, *backend, linkOptions);
  linkOptions.port = options.port;
  linkOptions.manyPeers = options.maxPeers > 1;
  if (auto checked = checkRxThreads(options.dataPath, plans->size()); !checked)
    return usageError(checked.error());
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
    fmt::print("mpxdp recv: listening on {} link(s), port {}, backend {}{}\n", plans->size(), options.port,
               toString(*backend),
               options.maxPeers > 1 ? fmt::format(", up to {} clients at once", options.maxPeers) : "");
    std::fflush(stdout);
  }
  if (fileMode && !options.json) fmt::print("mpxdp recv: storing one file at {}\n", options.file);
  fmt::print(stderr, "mpxdp recv: ready\n");
  std::fflush(stderr);

  // One loop serves every client: each transfer does what is due, finished
  // ones are reported and removed, new ones are accepted meanwhile.
  const Server server{ep, *plans, *backend, config, *reorderKind, fileMode, metrics->get()};
  std::vector<pollfd> fds;
  for (int fd : ep.pollFds()) {
    if (fd >= 0) fds.push_back({fd, POLLIN, 0});
  }
  // -1: the first maxPeers connections, then exit once all of them finished.
  const std::uint64_t toServe = options.oneOff ? options.maxPeers : UINT64_MAX;
  ServerNotices notices;
  std::vector<std::unique_ptr<Client>> clients;
  std::uint64_t served = 0;
  bool failed = false;
  std::uint64_t nextNoticeNs = 0;
  FdWaiter waiter(rxHoldoffNs(options.dataPath, true));
  for (;;) {
    const std::uint64_t now = monotonicNs();
    std::uint64_t wake = now + kMaxWaitNs;
    for (auto& client : clients) {
      if (!client->done()) wake = std::min(wake, client->transfer->step(now));
    }
    for (auto it = clients.begin(); it != clients.end();) {
      if (!(*it)->done()) {
        ++it;
        continue;
      }
      if (finishClient(server, **it)) failed = true;
      it = clients.erase(it);
    }
    if (clients.empty()) {
      if (served >= toServe || stopRequested()) break;
      if (auto polled = ep.poll(); !polled) {
        fmt::print(stderr, "mpxdp recv: {}\n", polled.error().message());
        break;
      }
    }
    if (clients.empty() || now >= nextNoticeNs) {
      printServerNotices(ep, notices);
      nextNoticeNs = now + kNoticeIntervalNs;
    }
    while (Connection* conn = ep.accept()) {
      if (served >= toServe || stopRequested()) {
        conn->abort(static_cast<std::uint16_t>(wire::CloseError::kBusy),
                    "the server has served the connections it was started for (-1)");
        ep.remove(conn);
        continue;
      }
      ++served;
      clients.push_back(startClient(server, conn));
      wake = 0;
    }
    if (wake > now) waiter.wait(fds, std::min(wake, ep.nextDeadlineNs()));
  }
  if (fileMode && served == 0)
    return reportError("recv",
                       Error(EINTR, "stopped before a file arrived; " + options.file + " is unchanged"));
  if (options.oneOff && served == 0 && !stopRequested())
    return reportError("recv", Error(EINTR, "no connection"));
  if (options.oneOff && failed) return kExitRuntimeError;
  return kExitOk;
}

}  // namespace mpxdp::cli
