// mpxdp recv: receive one multipath stream, reorder it, check every payload
// and report goodput, loss and reordering like iperf3 -s.
#include <poll.h>

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "commands.h"
#include "link_args.h"
#include "mpxdp/connection.h"
#include "mpxdp_shared.h"
#include "payload_pattern.h"
#include "report.h"
#include "run_control.h"
#include "steering.h"

namespace mpxdp::cli {
namespace {

struct RecvOptions {
  std::vector<std::string> links;
  std::uint16_t port = MPXDP_DEFAULT_PORT;
  std::string reorder = "window";
  std::string backend = "xdp";
  double intervalS = 1.0;
  bool json = false;
  std::string testbed;
  int cpu = -1;  // --cpu; -1: not pinned
  std::uint32_t windowPackets = 16384;
  double timeoutMs = 0;  // 0: adaptive
  bool noFastLoss = false;
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

// Waits for arrivals on the links, at most until deadlineNs.
void waitForArrivals(std::vector<pollfd>& fds, std::uint64_t deadlineNs) {
  const std::uint64_t now = monotonicNs();
  if (deadlineNs <= now) return;
  const std::uint64_t waitNs = deadlineNs - now;
  timespec timeout{static_cast<time_t>(waitNs / 1'000'000'000ULL),
                   static_cast<long>(waitNs % 1'000'000'000ULL)};
  for (auto& fd : fds) fd.revents = 0;
  (void)ppoll(fds.data(), fds.size(), &timeout, nullptr);
}

}  // namespace

void declareRecv(CLI::App* app) {
  app->add_option("--link", options.links,
                  "receive on this interface (repeatable, in the sender's link order); PEER_IP, the sender's "
                  "address on that link, is optional")
      ->type_name("IFACE[=PEER_IP]");
  app->add_option("-p,--port", options.port, "UDP port of the stream")->capture_default_str();
  app->add_option("--reorder", options.reorder, "reorderer: window, sort or off")->capture_default_str();
  app->add_option("--backend", options.backend, "xdp (AF_XDP + steering program) or udp (kernel sockets)")
      ->capture_default_str();
  app->add_option("-i,--interval", options.intervalS, "seconds between interval reports, 0 for none")
      ->capture_default_str();
  app->add_flag("-J,--json", options.json, "print one JSON object at the end instead of text");
  app->add_option("--window", options.windowPackets, "reorder window in packets (power of two, 64..2^24)")
      ->capture_default_str();
  app->add_option(
      "--reorder-timeout", options.timeoutMs,
      "window: fixed hole timeout in milliseconds (default: adaptive, from the path delay spread)");
  app->add_flag("--no-fast-loss", options.noFastLoss,
                "window: declare holes lost only on timeout, not as soon as every path has passed them");
  app->add_option(
      "--testbed", options.testbed,
      "run in the receiver namespace of this test bed (mpxdp-NAME-rx) and take the links from it");
  app->add_option(
         "--cpu", options.cpu,
         "pin the receiving thread to this CPU (default: not pinned; measured no gain on veth, and two "
         "pinned ends can land on one core)")
      ->check(CLI::NonNegativeNumber);
}

int runRecv(CLI::App* /*app*/) {
  auto reorderKind = reorder::parseReorderKind(options.reorder);
  if (!reorderKind)
    return usageError(
        Error(EINVAL, "--reorder: expected window, sort or off, got '" + options.reorder + "'"));
  auto backend = parseBackend(options.backend);
  if (!backend) return usageError(backend.error().wrap("--backend"));
  if (options.intervalS < 0) return usageError(Error(EINVAL, "-i must be >= 0"));
  if (options.port == 0) return usageError(Error(EINVAL, "--port must be in 1..65535"));
  if (options.windowPackets < 64 || options.windowPackets > (1U << 24) ||
      (options.windowPackets & (options.windowPackets - 1)) != 0) {
    return usageError(Error(EINVAL, "--window must be a power of two in 64..16777216"));
  }
  if (options.timeoutMs < 0) return usageError(Error(EINVAL, "--reorder-timeout must be >= 0"));
  if (options.testbed.empty() && options.links.empty()) {
    return usageError(Error(EINVAL, "give --link IFACE (repeatable) or --testbed NAME"));
  }

  // Enter the namespace first: sockets and the program belong to the namespace they are made in.
  std::optional<testbed::NetnsScope> netns;
  auto args = resolveLinkArgs(options.testbed, options.links, Side::kReceiver, netns);
  if (!args) return isUsageError(args.error()) ? usageError(args.error()) : reportError("recv", args.error());
  auto plans = planLinks(*args, Side::kReceiver);
  if (!plans)
    return isUsageError(plans.error()) ? usageError(plans.error()) : reportError("recv", plans.error());

  std::unique_ptr<bpf::SteeringProgram> steering;
  if (*backend == Backend::kXdp) {
    auto loaded = bpf::SteeringProgram::load({options.port});
    if (!loaded) return reportError("recv: loading the steering program", loaded.error());
    steering = std::move(*loaded);
  }
  OpenOptions open;
  open.backend = *backend;
  open.port = options.port;
  open.steering = steering.get();
  auto links = openLinks(*plans, open);
  if (!links) return reportError("recv", links.error());

  RunDescription run;
  run.role = Role::kReceiver;
  run.backend = std::string(toString(*backend));
  run.reorder = std::string(reorder::toString(*reorderKind));
  for (const auto& plan : *plans) {
    run.linkNames.push_back(plan.interface);
    run.linkRatesBps.push_back(plan.rateBps);
  }

  ConnectionConfig config;
  config.reorder.kind = *reorderKind;
  config.reorder.windowPackets = options.windowPackets;
  config.reorder.fastLoss = !options.noFastLoss;
  if (options.timeoutMs > 0) {
    config.reorder.adaptiveTimeout = false;
    config.reorder.fixedTimeoutNs = static_cast<std::uint64_t>(options.timeoutMs * 1e6);
  }
  auto receiver = Receiver::create(config, std::move(*links));
  if (!receiver) return reportError("recv", receiver.error());

  if (options.cpu >= 0) {
    auto pinned = pinThreadToCpu(options.cpu);
    if (!pinned)
      return isUsageError(pinned.error()) ? usageError(pinned.error()) : reportError("recv", pinned.error());
    run.cpu = *pinned;
  }

  installStopHandler();
  std::vector<pollfd> fds;
  for (int fd : (*receiver)->pollFds()) {
    if (fd >= 0) fds.push_back({fd, POLLIN, 0});
  }
  Reporter reporter(run, options.json, stdout);
  reporter.begin();
  fmt::print(stderr, "mpxdp recv: ready\n");
  std::fflush(stderr);

  const auto intervalNs = static_cast<std::uint64_t>(options.intervalS * 1e9);
  std::array<Delivered, 256> delivered;
  std::uint64_t corrupt = 0;
  bool started = false;
  std::uint64_t startNs = 0;
  std::uint64_t lastDeliveryNs = 0;
  std::uint64_t nextReportNs = UINT64_MAX;
  std::optional<Error> failure;
  auto seconds = [&](std::uint64_t ns) { return static_cast<double>(ns - startNs) / 1e9; };

  while (!stopRequested()) {
    auto n = (*receiver)->poll(delivered);
    if (!n) {
      failure = n.error();
      break;
    }
    const std::uint64_t now = monotonicNs();
    for (std::size_t i = 0; i < *n; ++i) {
      corrupt += checkPattern(delivered[i].data, delivered[i].length, delivered[i].globalSeq) ? 0 : 1;
    }
    (*receiver)->release({delivered.data(), *n});
    if (*n > 0) {
      if (!started) {
        started = true;
        startNs = now;
        if (intervalNs > 0) nextReportNs = startNs + intervalNs;
      }
      lastDeliveryNs = now;
    }
    if (now >= nextReportNs) {
      reporter.interval(sampleOf((*receiver)->stats(), Role::kReceiver, seconds(now), corrupt));
      nextReportNs += intervalNs * ((now - nextReportNs) / intervalNs + 1);
    }
    if ((*receiver)->finished()) break;
    if (*n < delivered.size()) {
      // Nothing more queued: sleep until an arrival or the next timed event.
      waitForArrivals(fds, std::min({(*receiver)->nextDeadlineNs(), nextReportNs, now + 50'000'000}));
    }
  }

  const ConnectionStats stats = (*receiver)->stats();
  const ConnectionState state = (*receiver)->state();
  Ending ending;
  ending.cpu = processCpuTime();
  ending.durationS = started ? seconds(lastDeliveryNs) : 0.0;
  if (failure) {
    ending.reason = "error";
  } else if (stopRequested() && !(*receiver)->finished()) {
    ending.reason = "signal";
  } else {
    ending.reason = state.endedByIdleTimeout ? "idle timeout" : "end marker";
  }
  Sample total = sampleOf(stats, Role::kReceiver, ending.durationS, corrupt);
  if (started && intervalNs > 0) reporter.interval(total);
  reporter.finish(stats, total, ending);
  if (failure) return reportError("recv", *failure);
  return kExitOk;
}

}  // namespace mpxdp::cli
