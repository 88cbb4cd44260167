// mpxdp demo: build a shaped multi-link test bed, run the transfer with each
// reorderer on AF_XDP and once over kernel UDP sockets (receiver and sender as
// child processes of this binary), print a comparison and tear the bed down.
#include <signal.h>
#include <unistd.h>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <time.h>

#include "commands.h"
#include "rate.h"
#include "run_control.h"
#include "subprocess.h"
#include "testbed.h"

namespace mpxdp::cli {
namespace {

using namespace std::chrono_literals;
using testbed::Subprocess;

// Outer Ethernet + IPv4 + UDP headers and the multipath header.
constexpr std::uint32_t kHeaderBytes = 14 + 20 + 8 + 32;

struct DemoOptions {
  std::string name = "demo";
  std::size_t links = 3;
  std::string rate = "300M";
  double timeS = 3.0;
  std::uint32_t payloadBytes = 1024;
  bool failover = false;
};

DemoOptions options;

struct DemoRun {
  std::string backend;
  std::string reorder;
};

struct RunResult {
  DemoRun run;
  bool ok = false;
  std::string failure;
  nlohmann::json receiver;
  nlohmann::json sender;
};

// Waits for the child in slices so Ctrl-C is noticed; nullopt on timeout or stop.
std::optional<int> waitOrStop(Subprocess& child, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!stopRequested() && std::chrono::steady_clock::now() < deadline) {
    if (auto status = child.wait(200ms)) return status;
  }
  return std::nullopt;
}

// The last `lines` lines of a child's stderr, for error messages.
std::string lastLines(const std::string& text, std::size_t lines) {
  std::size_t start = text.size();
  if (start > 0 && text[start - 1] == '\n') --start;
  while (lines-- > 0 && start > 0) {
    const std::size_t nl = text.rfind('\n', start - 1);
    if (nl == std::string::npos) return text;
    start = nl;
  }
  return text.substr(start == 0 ? 0 : start + 1);
}

RunResult runOne(const std::string& self, const DemoRun& run) {
  RunResult result;
  result.run = run;
  auto fail = [&](std::string why) {
    result.failure = std::move(why);
    return result;
  };
  auto receiver = Subprocess::spawn({self, "recv", "-1", "--testbed", options.name, "-J", "-i", "0",
                                     "--reorder", run.reorder, "--backend", run.backend});
  if (!receiver) return fail(receiver.error().message());
  if (!receiver->waitForStderr("mpxdp recv: ready", 20s)) {
    receiver->stop(2s);
    return fail("the receiver did not get ready: " + lastLines(receiver->err(), 5));
  }
  auto sender = Subprocess::spawn({self, "send", "--testbed", options.name, "-J", "-i", "0", "-t",
                                   fmt::format("{}", options.timeS), "-l",
                                   std::to_string(options.payloadBytes), "--backend", run.backend});
  if (!sender) {
    receiver->stop(2s);
    return fail(sender.error().message());
  }
  const auto sendLimit = std::chrono::milliseconds(static_cast<long>(options.timeS * 1000)) + 20s;
  auto sent = waitOrStop(*sender, sendLimit);
  if (!sent) {
    sender->stop(3s);
    receiver->stop(3s);
    return fail(stopRequested() ? "interrupted" : "the sender did not finish in time");
  }
  // The receiver ends on the END marker, or on its idle timeout when that is lost.
  auto received = waitOrStop(*receiver, 15s);
  if (!received) {
    receiver->stop(3s);
    if (stopRequested()) return fail("interrupted");
  }
  if (*sent != 0)
    return fail(fmt::format("the sender exited with {}: {}", *sent, lastLines(sender->err(), 5)));
  if (received && *received != 0) {
    return fail(fmt::format("the receiver exited with {}: {}", *received, lastLines(receiver->err(), 5)));
  }
  result.sender = nlohmann::json::parse(sender->out(), nullptr, false);
  result.receiver = nlohmann::json::parse(receiver->out(), nullptr, false);
  if (result.sender.is_discarded() || result.receiver.is_discarded()) return fail("unreadable JSON report");
  result.ok = true;
  return result;
}

template <typename T>
T number(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<T>() : T{};
}

void printTable(const std::vector<RunResult>& results, std::uint64_t linkSumBps) {
  const double linkSum = static_cast<double>(linkSumBps);
  const double ceiling = linkSum * options.payloadBytes / (options.payloadBytes + kHeaderBytes);
  fmt::print(
      "\n{} links x {} ({:.0f} Mbit/s), {} byte payloads, header ceiling {:.1f} Mbit/s, {} s per run\n",
      options.links, options.rate, linkSum / 1e6, options.payloadBytes, ceiling / 1e6, options.timeS);
  fmt::print("{:<8} {:<8} {:>9} {:>7} {:>9} {:>8} {:>9} {:>9} {:>10} {:>7}\n", "backend", "reorder", "Mbit/s",
             "% link", "% ceiling", "lost", "OOO-del", "OOO-arr", "hold p99", "CPU s");
  for (const auto& r : results) {
    if (!r.ok) {
      fmt::print("{:<8} {:<8} failed: {}\n", r.run.backend, r.run.reorder, r.failure);
      continue;
    }
    const double goodput = number<double>(r.receiver, "goodput_bps");
    const double cpu = number<double>(r.receiver, "cpu_user_s") + number<double>(r.receiver, "cpu_system_s") +
                       number<double>(r.sender, "cpu_user_s") + number<double>(r.sender, "cpu_system_s");
    fmt::print("{:<8} {:<8} {:9.1f} {:6.1f}% {:8.1f}% {:8} {:9} {:9} {:>7.1f} us {:7.2f}\n", r.run.backend,
               r.run.reorder, goodput / 1e6, 100.0 * goodput / linkSum, 100.0 * goodput / ceiling,
               number<std::uint64_t>(r.receiver, "lost_packets"),
               number<std::uint64_t>(r.receiver, "out_of_order_delivered"),
               number<std::uint64_t>(r.receiver, "out_of_order_arrived"),
               static_cast<double>(number<std::uint64_t>(r.receiver, "hold_p99_ns")) / 1e3, cpu);
  }
  fmt::print("Mbit/s: payload goodput delivered in order; CPU s: sender + receiver, user + system.\n");
}

std::uint64_t monotonicNowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

// The failover demo: one transfer without configured rates (each path's rate
// is estimated), link 1 cut a third into the run and restored at two thirds,
// while the receiver reports every 10 ms. Prints the path events and how
// long losses went on after the cut.
int runFailover(const std::string& self, const testbed::TestbedInfo& bed) {
  std::vector<std::string> recvArgs = {self, "recv", "-1", "--testbed", options.name, "-J", "-i", "0.01"};
  auto receiver = Subprocess::spawn(recvArgs);
  if (!receiver) return reportError("demo: starting the receiver", receiver.error());
  if (!receiver->waitForStderr("mpxdp recv: ready", 20s)) {
    receiver->stop(2s);
    fmt::print(stderr, "mpxdp demo: the receiver did not get ready: {}\n", lastLines(receiver->err(), 5));
    return kExitRuntimeError;
  }
  // Explicit links without @RATE: the sender estimates every path's rate.
  std::vector<std::string> sendArgs = {"/usr/bin/env",
                                       "ip",
                                       "netns",
                                       "exec",
                                       bed.senderNamespace,
                                       self,
                                       "send",
                                       "-J",
                                       "-i",
                                       "0.1",
                                       "-t",
                                       fmt::format("{}", options.timeS),
                                       "-l",
                                       std::to_string(options.payloadBytes)};
  for (const auto& link : bed.links) {
    sendArgs.push_back("--link");
    sendArgs.push_back(link.senderInterface + "=" + link.receiverIp);
  }
  auto sender = Subprocess::spawn(sendArgs);
  if (!sender) {
    receiver->stop(2s);
    return reportError("demo: starting the sender", sender.error());
  }
  const std::size_t cutLink = bed.links.size() > 1 ? 1 : 0;
  const auto started = std::chrono::steady_clock::now();
  const auto third = std::chrono::milliseconds(static_cast<long>(options.timeS * 1000 / 3));
  // Link 1 goes down at one third of the run (changes[0]) and up at two (changes[1]).
  std::array<std::uint64_t, 2> changedNs{};
  std::size_t changes = 0;
  std::optional<int> sent;
  while (!stopRequested() && !(sent = sender->wait(20ms))) {
    const auto now = std::chrono::steady_clock::now();
    if (changes < changedNs.size() && now - started >= third * static_cast<int>(changes + 1)) {
      const bool cutting = changes == 0;
      testbed::LinkChange change;
      change.down = cutting;
      if (auto done = testbed::setLink(options.name, cutLink, change); !done) {
        sender->stop(2s);
        receiver->stop(2s);
        return reportError(cutting ? "demo: cutting the link" : "demo: restoring the link", done.error());
      }
      changedNs[changes++] = monotonicNowNs();
      fmt::print(stderr, "mpxdp demo: link {} {}\n", cutLink, cutting ? "cut" : "restored");
    }
    if (now - started > third * 3 + 30s) break;
  }
  if (!sent) {
    sender->stop(3s);
    receiver->stop(3s);
    fmt::print(stderr, "mpxdp demo: {}\n",
               stopRequested() ? "interrupted" : "the sender did not finish in time");
    return kExitRuntimeError;
  }
  const auto received = waitOrStop(*receiver, 15s);
  if (*sent != 0 || !received || *received != 0) {
    receiver->stop(2s);
    fmt::print(stderr, "mpxdp demo: the transfer failed: {}{}\n", lastLines(sender->err(), 3),
               lastLines(receiver->err(), 3));
    return kExitRuntimeError;
  }
  if (changes < changedNs.size()) {
    fmt::print(stderr, "mpxdp demo: the transfer ended before the link was cut and restored\n");
    return kExitRuntimeError;
  }
  const auto tx = nlohmann::json::parse(sender->out(), nullptr, false);
  const auto rx = nlohmann::json::parse(receiver->out(), nullptr, false);
  if (tx.is_discarded() || rx.is_discarded()) {
    fmt::print(stderr, "mpxdp demo: unreadable JSON report\n");
    return kExitRuntimeError;
  }
  // Both on CLOCK_MONOTONIC: the cut and restore placed on each side's timeline.
  const double rxStart = static_cast<double>(number<std::uint64_t>(rx, "start_monotonic_ns"));
  const double txStart = static_cast<double>(number<std::uint64_t>(tx, "start_monotonic_ns"));
  const double cutRx = (static_cast<double>(changedNs[0]) - rxStart) / 1e9;
  const double restoreRx = (static_cast<double>(changedNs[1]) - rxStart) / 1e9;
  double lastLossS = -1;
  std::uint64_t lostAfterCut = 0;
  // Bits and seconds per phase: the mean of the intervals' rates would let a
  // short interval after a stall of the receiver (it delivers what queued up
  // meanwhile at many Gbit/s) outweigh the long one before it.
  struct Phase {
    double bits = 0;
    double seconds = 0;
    double mbps() const { return seconds > 0 ? bits / seconds / 1e6 : 0.0; }
    void add(const nlohmann::json& interval) {
      bits += 8.0 * static_cast<double>(interval.value("bytes", std::uint64_t{0}));
      seconds += interval.value("end_s", 0.0) - interval.value("start_s", 0.0);
    }
  };
  Phase before, during, after;
  for (const auto& interval : rx.value("intervals", nlohmann::json::array())) {
    const double end = interval.value("end_s", 0.0);
    const auto lost = interval.value("lost_packets", std::uint64_t{0});
    if (end > cutRx && end <= restoreRx) {
      lostAfterCut += lost;
      if (lost > 0) lastLossS = end;
    }
    if (end > 0.5 && end <= cutRx) before.add(interval);
    if (end > cutRx + 0.2 && end <= restoreRx) during.add(interval);
    if (end > restoreRx + 1.0) after.add(interval);
  }
  fmt::print(
      "\nFailover: {} links x {}, rates estimated (no @RATE), link {} cut at {:.2f} s and restored at "
      "{:.2f} s (receiver's clock)\n",
      bed.links.size(), options.rate, cutLink, cutRx, restoreRx);
  // What the default backend took on each link ("udp:s0 ..." -> udp).
  std::string kinds;
  for (const auto& path : tx.value("paths", nlohmann::json::array())) {
    const std::string mode = path.value("mode", std::string());
    const std::string kind = mode.substr(0, mode.find(':'));
    if (kinds.find(kind) == std::string::npos) kinds += (kinds.empty() ? "" : ", ") + kind;
  }
  fmt::print("backend: {}, the default (links: {})\n", tx.value("backend", std::string("?")), kinds);
  fmt::print("path events (sender):\n");
  for (const auto& event : tx.value("path_events", nlohmann::json::array())) {
    fmt::print("  {:7.3f} s  path {} ({}): {} -> {}\n",
               event.value("time_s", 0.0) - (rxStart - txStart) / 1e9, event.value("path", 0),
               event.value("interface", std::string()), event.value("from", std::string()),
               event.value("to", std::string()));
  }
  fmt::print("packets lost after the cut: {}; ", lostAfterCut);
  if (lastLossS < 0) {
    fmt::print("none\n");
  } else {
    fmt::print(
        "the last loss was reported {:.0f} ms after the cut (10 ms intervals, hole timeout included)\n",
        (lastLossS - cutRx) * 1000);
  }
  fmt::print("goodput: before {:.1f} Mbit/s, during the cut {:.1f} Mbit/s, after the restore {:.1f} Mbit/s\n",
             before.mbps(), during.mbps(), after.mbps());
  fmt::print("total: lost {}, delivered {}, hold p99 {:.1f} us\n", number<std::uint64_t>(rx, "lost_packets"),
             number<std::uint64_t>(rx, "delivered_packets"),
             static_cast<double>(number<std::uint64_t>(rx, "hold_p99_ns")) / 1e3);
  return kExitOk;
}

}  // namespace

void declareDemo(CLI::App* app) {
  app->add_option("--name", options.name, "name of the temporary test bed")->capture_default_str();
  app->add_option("--links", options.links, "number of links, 1..16")->capture_default_str();
  app->add_option("--rate", options.rate, "rate of every link, e.g. 300M, 1G")->capture_default_str();
  app->add_option("-t,--time", options.timeS, "seconds per run")->capture_default_str();
  app->add_option("-l,--length", options.payloadBytes, "payload bytes per packet")->capture_default_str();
  app->add_flag(
      "--failover", options.failover,
      "instead: one run without configured rates, link 1 cut at a third of -t and restored at two "
      "thirds; prints the path events, the losses after the cut and the goodput before, during, after");
}

int runDemo(CLI::App* /*app*/) {
  auto rate = parseRate(options.rate);
  if (!rate) {
    fmt::print(stderr, "mpxdp demo: --rate: {}\n", rate.error().context());
    return kExitUsageError;
  }
  if (!(options.timeS > 0) || options.timeS > 3600) {
    fmt::print(stderr, "mpxdp demo: -t must be in (0, 3600] seconds\n");
    return kExitUsageError;
  }
  if (options.payloadBytes == 0) {
    fmt::print(stderr, "mpxdp demo: -l must be at least 1 byte\n");
    return kExitUsageError;
  }
  testbed::TestbedSpec spec{options.name, std::vector<std::uint64_t>(options.links, *rate), 1500};
  if (auto valid = testbed::validateSpec(spec); !valid) {
    fmt::print(stderr, "mpxdp demo: {}\n", valid.error().context());
    return kExitUsageError;
  }
  if (geteuid() != 0) {
    fmt::print(stderr, "mpxdp demo: needs root (network namespaces, XDP, AF_XDP)\n");
    return kExitRuntimeError;
  }
  char self[4096];
  const ssize_t selfLength = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (selfLength <= 0)
    return reportError("demo: finding this program", Error::fromErrno("readlink /proc/self/exe"));
  const std::string selfPath(self, static_cast<std::size_t>(selfLength));

  installStopHandler();
  fmt::print(stderr, "mpxdp demo: building test bed '{}': {} links at {}\n", options.name, options.links,
             options.rate);
  auto bed = testbed::ScopedTestbed::create(spec);
  if (!bed) {
    if (bed.error().code() == EEXIST) {
      fmt::print(stderr,
                 "mpxdp demo: test bed '{}' exists already; remove it with 'mpxdp testbed down --name {}' or "
                 "choose another --name\n",
                 options.name, options.name);
      return kExitRuntimeError;
    }
    return reportError("demo: building the test bed", bed.error());
  }
  std::uint64_t linkSum = 0;
  for (const auto& link : bed->info().links) linkSum += link.rateBps;

  if (options.failover) {
    const int status = runFailover(selfPath, bed->info());
    fmt::print(stderr, "mpxdp demo: removing test bed '{}'\n", options.name);
    return stopRequested() ? kExitOk : status;
  }

  const std::vector<DemoRun> runs = {{"xdp", "window"}, {"xdp", "sort"}, {"xdp", "off"}, {"udp", "window"}};
  std::vector<RunResult> results;
  for (std::size_t i = 0; i < runs.size() && !stopRequested(); ++i) {
    fmt::print(stderr, "mpxdp demo: run {}/{}: backend {}, reorder {}, {} s ...\n", i + 1, runs.size(),
               runs[i].backend, runs[i].reorder, options.timeS);
    results.push_back(runOne(selfPath, runs[i]));
    if (!results.back().ok) {
      fmt::print(stderr, "mpxdp demo: run {} failed: {}\n", i + 1, results.back().failure);
    }
  }
  printTable(results, linkSum);
  fmt::print(stderr, "mpxdp demo: removing test bed '{}'\n", options.name);
  if (stopRequested()) return kExitOk;
  for (const auto& r : results) {
    if (!r.ok) return kExitRuntimeError;
  }
  return kExitOk;
}

}  // namespace mpxdp::cli
