// mpxdp send: spray one stream of patterned payloads over the links for -t
// seconds at -b, paced per link by the connection's scheduler, like iperf3 -c.
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

namespace mpxdp::cli {
namespace {

struct SendOptions {
  std::vector<std::string> links;
  std::uint16_t port = MPXDP_DEFAULT_PORT;
  double timeS = 10.0;
  std::string rate;
  std::uint32_t payloadBytes = 1024;
  std::string scheduler = "rr";
  std::string backend = "xdp";
  double intervalS = 1.0;
  bool json = false;
  std::string testbed;
  int cpu = -1;  // --cpu; -1: not pinned
};

SendOptions options;

// Packets whose tokens the sender waits for before waking up to send again.
constexpr std::uint64_t kSleepBatchPackets = 24;

int usageError(const Error& error) {
  fmt::print(stderr, "mpxdp send: {}\n", error.context());
  return kExitUsageError;
}

bool isUsageError(const Error& error) {
  return error.code() == EINVAL || error.code() == ENODEV || error.code() == ENOENT ||
         error.code() == EADDRNOTAVAIL;
}

}  // namespace

void declareSend(CLI::App* app) {
  app->add_option(
         "--link", options.links,
         "send over this interface to PEER_IP, shaped to RATE if given (repeatable; the receiver lists "
         "its links in the same order)")
      ->type_name("IFACE=PEER_IP[@RATE]");
  app->add_option("-p,--port", options.port, "UDP port of the stream")->capture_default_str();
  app->add_option("-t,--time", options.timeS, "seconds to send")->capture_default_str();
  app->add_option(
      "-b,--bitrate", options.rate,
      "total rate over all links incl. headers, e.g. 800M (default: sum of the link rates when all "
      "are known, else unlimited)");
  app->add_option("-l,--length", options.payloadBytes, "payload bytes per packet")->capture_default_str();
  app->add_option("--scheduler", options.scheduler, "rr (strict round robin) or wrr (weighted by link rate)")
      ->capture_default_str();
  app->add_option("--backend", options.backend, "xdp (AF_XDP) or udp (kernel sockets)")
      ->capture_default_str();
  app->add_option("-i,--interval", options.intervalS, "seconds between interval reports, 0 for none")
      ->capture_default_str();
  app->add_flag("-J,--json", options.json, "print one JSON object at the end instead of text");
  app->add_option(
      "--testbed", options.testbed,
      "run in the sender namespace of this test bed (mpxdp-NAME-tx) and take links, peers and rates "
      "from it");
  app->add_option(
         "--cpu", options.cpu,
         "pin the sending thread to this CPU (default: not pinned; measured no gain on veth, and two "
         "pinned ends can land on one core)")
      ->check(CLI::NonNegativeNumber);
}

int runSend(CLI::App* /*app*/) {
  auto schedulerKind = sched::parseSchedulerKind(options.scheduler);
  if (!schedulerKind) {
    return usageError(Error(EINVAL, "--scheduler: expected rr or wrr, got '" + options.scheduler + "'"));
  }
  auto backend = parseBackend(options.backend);
  if (!backend) return usageError(backend.error().wrap("--backend"));
  if (!(options.timeS > 0)) return usageError(Error(EINVAL, "-t must be > 0 seconds"));
  if (options.timeS > 86400.0 * 365) return usageError(Error(EINVAL, "-t is too long"));
  if (options.intervalS < 0) return usageError(Error(EINVAL, "-i must be >= 0"));
  if (options.port == 0) return usageError(Error(EINVAL, "--port must be in 1..65535"));
  if (options.payloadBytes == 0) return usageError(Error(EINVAL, "-l must be at least 1 byte"));
  std::uint64_t totalRateBps = 0;
  if (!options.rate.empty()) {
    auto rate = parseRate(options.rate);
    if (!rate) return usageError(rate.error().wrap("-b"));
    totalRateBps = *rate;
  }
  if (options.testbed.empty() && options.links.empty()) {
    return usageError(Error(EINVAL, "give --link IFACE=PEER_IP[@RATE] (repeatable) or --testbed NAME"));
  }

  std::optional<testbed::NetnsScope> netns;
  auto args = resolveLinkArgs(options.testbed, options.links, Side::kSender, netns);
  if (!args) return isUsageError(args.error()) ? usageError(args.error()) : reportError("send", args.error());
  auto plans = planLinks(*args, Side::kSender);
  if (!plans)
    return isUsageError(plans.error()) ? usageError(plans.error()) : reportError("send", plans.error());
  if (options.rate.empty()) {
    // Default: the sum of the link rates when every link has one.
    const bool allKnown =
        std::all_of(plans->begin(), plans->end(), [](const LinkPlan& p) { return p.rateBps > 0; });
    if (allKnown) {
      for (const auto& plan : *plans) totalRateBps += plan.rateBps;
    }
  }

  OpenOptions open;
  open.backend = *backend;
  open.port = options.port;
  auto links = openLinks(*plans, open);
  if (!links) return reportError("send", links.error());

  RunDescription run;
  run.role = Role::kSender;
  run.backend = std::string(toString(*backend));
  run.scheduler = std::string(sched::toString(*schedulerKind));
  run.payloadBytes = options.payloadBytes;
  run.totalRateBps = totalRateBps;
  for (const auto& plan : *plans) {
    run.linkNames.push_back(plan.interface);
    run.linkRatesBps.push_back(plan.rateBps);
  }

  ConnectionConfig config;
  config.scheduler = *schedulerKind;
  config.totalRateBps = totalRateBps;
  auto created = Sender::create(config, std::move(*links));
  if (!created) return reportError("send", created.error());
  Sender& sender = **created;
  if (options.payloadBytes > sender.maxPayload()) {
    return usageError(
        Error(EMSGSIZE, fmt::format("-l {} exceeds the largest payload the links carry, {} bytes",
                                    options.payloadBytes, sender.maxPayload())));
  }

  if (options.cpu >= 0) {
    auto pinned = pinThreadToCpu(options.cpu);
    if (!pinned)
      return isUsageError(pinned.error()) ? usageError(pinned.error()) : reportError("send", pinned.error());
    run.cpu = *pinned;
  }

  installStopHandler();
  Reporter reporter(run, options.json, stdout);
  reporter.begin();

  const std::uint32_t payload = options.payloadBytes;
  const auto intervalNs = static_cast<std::uint64_t>(options.intervalS * 1e9);
  const std::uint64_t startNs = monotonicNs();
  const std::uint64_t endNs = startNs + static_cast<std::uint64_t>(options.timeS * 1e9);
  std::uint64_t nextReportNs = intervalNs > 0 ? startNs + intervalNs : UINT64_MAX;
  std::uint64_t lastSendNs = startNs;
  auto seconds = [&](std::uint64_t ns) { return static_cast<double>(ns - startNs) / 1e9; };
  std::array<SendSlot, 64> slots;
  std::optional<Error> failure;
  // When paced out, sleep at least until a batch's worth of tokens is back
  // (bounded well below the 1 ms pacing burst, so no tokens are forfeited):
  // waking for every packet would cost a wakeup and kicks per packet.
  const std::uint64_t frameBits = 8ULL * (payload + config.perPacketOverheadBytes);
  const std::uint64_t batchNs =
      totalRateBps == 0
          ? 50'000
          : std::min<std::uint64_t>(kSleepBatchPackets * frameBits * 1'000'000'000ULL / totalRateBps,
                                    config.pacingBurstNs / 4);

  while (!stopRequested()) {
    const std::uint64_t now = monotonicNs();
    if (now >= nextReportNs) {
      reporter.interval(sampleOf(sender.stats(), Role::kSender, seconds(now), 0));
      nextReportNs += intervalNs * ((now - nextReportNs) / intervalNs + 1);
    }
    if (now >= endNs) break;
    const std::size_t n = sender.reserve(slots, payload);
    if (n == 0) {
      // Paced out (or the TX rings are full): reap completions, then sleep.
      if (auto flushed = sender.flush(); !flushed) {
        failure = flushed.error();
        break;
      }
      const std::uint64_t wake = std::max(sender.nextSendTimeNs(payload), now + batchNs);
      sleepUntilOrStopped(std::min({wake, endNs, nextReportNs}));
      continue;
    }
    // commit numbers the slots in span order from the next global seq.
    const std::uint64_t firstSeq = sender.state().nextGlobalSeq;
    for (std::size_t i = 0; i < n; ++i) {
      fillPattern(slots[i].data, payload, firstSeq + i);
      slots[i].length = payload;
    }
    auto committed = sender.commit({slots.data(), n});
    if (!committed) {
      failure = committed.error();
      break;
    }
    lastSendNs = monotonicNs();
    if (n < kSleepBatchPackets && totalRateBps != 0) {
      // Pacing allowed only a few packets: sending again right away would
      // send the tokens that trickled in during this commit, a few packets
      // per syscall. Let a batch's worth build up first.
      sleepUntilOrStopped(
          std::min({std::max(sender.nextSendTimeNs(payload), lastSendNs + batchNs), endNs, nextReportNs}));
    }
  }

  const auto finished = sender.finish();
  const ConnectionStats stats = sender.stats();
  Ending ending;
  ending.cpu = processCpuTime();
  ending.durationS = seconds(std::max(lastSendNs, std::min(monotonicNs(), endNs)));
  ending.reason = failure ? "error" : stopRequested() ? "signal" : "time";
  const Sample total = sampleOf(stats, Role::kSender, ending.durationS, 0);
  if (intervalNs > 0) reporter.interval(total);
  reporter.finish(stats, total, ending);
  if (failure) return reportError("send", *failure);
  if (!finished) return reportError("send: end of stream", finished.error());
  return kExitOk;
}

}  // namespace mpxdp::cli
