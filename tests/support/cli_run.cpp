#include "cli_run.h"

#include <gtest/gtest.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "backend_args.h"
#include "subprocess.h"

namespace mpxdp::test {

using namespace std::chrono_literals;
using testbed::Subprocess;

std::uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::optional<Run> runWithChanges(const std::string& mpxdp, const testbed::TestbedInfo& bed,
                                  const RunOptions& options, const std::vector<Change>& changes) {
  std::vector<std::string> recvArgs = {mpxdp, "recv", "-1", "--testbed", bed.name, "-J", "-i", "0.01"};
  recvArgs.insert(recvArgs.end(), options.recvExtra.begin(), options.recvExtra.end());
  auto receiver = Subprocess::spawn(withTestBackend(std::move(recvArgs)));
  if (!receiver) {
    ADD_FAILURE() << receiver.error().message();
    return std::nullopt;
  }
  if (!receiver->waitForStderr("mpxdp recv: ready", 20s)) {
    ADD_FAILURE() << "receiver not ready; stderr: " << receiver->err();
    return std::nullopt;
  }
  std::vector<std::string> sendArgs = {"/usr/bin/env",
                                       "ip",
                                       "netns",
                                       "exec",
                                       bed.senderNamespace,
                                       mpxdp,
                                       "send",
                                       "-J",
                                       "-i",
                                       "0.1",
                                       "-t",
                                       std::to_string(options.seconds)};
  for (const auto& link : bed.links) {
    const bool backup = std::find(options.backupLinks.begin(), options.backupLinks.end(),
                                  link.senderInterface) != options.backupLinks.end();
    sendArgs.push_back(backup ? "--backup-link" : "--link");
    sendArgs.push_back(link.senderInterface + "=" + link.receiverIp + options.linkSuffix);
  }
  sendArgs.insert(sendArgs.end(), options.sendExtra.begin(), options.sendExtra.end());
  auto sender = Subprocess::spawn(withTestBackend(std::move(sendArgs)));
  if (!sender) {
    ADD_FAILURE() << sender.error().message();
    return std::nullopt;
  }
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::uint64_t> appliedNs;
  std::optional<int> sent;
  std::size_t next = 0;
  const auto limit = started + std::chrono::milliseconds(static_cast<long>(options.seconds * 1000)) + 30s;
  while (!(sent = sender->wait(10ms)) && std::chrono::steady_clock::now() < limit) {
    if (next < changes.size() && std::chrono::steady_clock::now() - started >=
                                     std::chrono::milliseconds(static_cast<long>(changes[next].atS * 1000))) {
      auto done = testbed::setLink(bed.name, changes[next].link, changes[next].change);
      if (!done) ADD_FAILURE() << "testbed set: " << done.error().message();
      appliedNs.push_back(monotonicNs());
      ++next;
    }
  }
  if (!sent || *sent != 0) {
    ADD_FAILURE() << "sender status " << (sent ? *sent : -1) << "; stderr: " << sender->err();
    return std::nullopt;
  }
  EXPECT_EQ(next, changes.size()) << "the run ended before every change was applied";
  const auto received = receiver->wait(20s);
  if (!received || *received != 0) {
    ADD_FAILURE() << "receiver status " << (received ? *received : -1) << "; stderr: " << receiver->err();
    return std::nullopt;
  }
  Run run;
  run.sender = nlohmann::json::parse(sender->out(), nullptr, false);
  run.receiver = nlohmann::json::parse(receiver->out(), nullptr, false);
  if (run.sender.is_discarded() || run.receiver.is_discarded()) {
    ADD_FAILURE() << "unreadable JSON\nsender: " << sender->out() << "\nreceiver: " << receiver->out();
    return std::nullopt;
  }
  auto shown = testbed::show(bed.name);
  if (!shown) {
    ADD_FAILURE() << "testbed show: " << shown.error().message();
    return std::nullopt;
  }
  run.linksAfter = shown->links;
  const double rxStart = run.receiver.at("start_monotonic_ns").get<double>();
  const double txStart = run.sender.at("start_monotonic_ns").get<double>();
  for (std::uint64_t ns : appliedNs) {
    run.changeRxS.push_back((static_cast<double>(ns) - rxStart) / 1e9);
    run.changeTxS.push_back((static_cast<double>(ns) - txStart) / 1e9);
  }
  return run;
}

std::vector<nlohmann::json> intervalsBetween(const nlohmann::json& report, double from, double to) {
  std::vector<nlohmann::json> out;
  for (const auto& interval : report.at("intervals")) {
    const double end = interval.at("end_s").get<double>();
    if (end > from && end <= to) out.push_back(interval);
  }
  return out;
}

double meanBps(const std::vector<nlohmann::json>& intervals) {
  // Bytes over time, not the mean of the intervals' rates: after a stall the
  // reporter closes a short interval full of backlog, whose rate is far above the link's.
  double bits = 0;
  double seconds = 0;
  for (const auto& interval : intervals) {
    bits += 8.0 * interval.at("bytes").get<double>();
    seconds += interval.at("end_s").get<double>() - interval.at("start_s").get<double>();
  }
  return seconds > 0 ? bits / seconds : 0;
}

std::uint64_t lostIn(const std::vector<nlohmann::json>& intervals) {
  std::uint64_t lost = 0;
  for (const auto& interval : intervals) lost += interval.at("lost_packets").get<std::uint64_t>();
  return lost;
}

std::string lossesIn(const std::vector<nlohmann::json>& intervals) {
  std::string out;
  for (const auto& interval : intervals) {
    const auto lost = interval.at("lost_packets").get<std::uint64_t>();
    if (lost == 0) continue;
    char item[96];
    std::snprintf(item, sizeof(item), "%s%.3f s: %llu (%llu late)", out.empty() ? "" : ", ",
                  interval.at("start_s").get<double>(), static_cast<unsigned long long>(lost),
                  static_cast<unsigned long long>(interval.value("late_packets", std::uint64_t{0})));
    out += item;
    // Which paths' own sequences had gaps: a cut path's, or the others' (congestion, host drops).
    std::string perPath;
    for (const auto& path : interval.at("paths")) {
      const auto pathLost = path.value("lost", std::uint64_t{0});
      if (pathLost == 0) continue;
      perPath += (perPath.empty() ? " [path " : ", path ") + std::to_string(path.at("id").get<int>()) + ": " +
                 std::to_string(pathLost);
    }
    if (!perPath.empty()) out += perPath + "]";
  }
  return out.empty() ? "none" : out;
}

std::string receiverPaths(const nlohmann::json& receiver) {
  std::string out;
  for (const auto& path : receiver.at("paths")) {
    char item[192];
    std::snprintf(
        item, sizeof(item),
        "%spath %d: %llu packets, %llu lost, %llu rx_dropped (%llu ring full, %llu fill ring empty)",
        out.empty() ? "" : "; ", path.at("id").get<int>(),
        static_cast<unsigned long long>(path.value("packets", std::uint64_t{0})),
        static_cast<unsigned long long>(path.value("lost", std::uint64_t{0})),
        static_cast<unsigned long long>(path.value("rx_dropped", std::uint64_t{0})),
        static_cast<unsigned long long>(path.value("rx_ring_full", std::uint64_t{0})),
        static_cast<unsigned long long>(path.value("rx_fill_ring_empty", std::uint64_t{0})));
    out += item;
  }
  return out;
}

std::string LossAccount::describe() const {
  return "lost " + std::to_string(lost) + ", late " + std::to_string(late) +
         ", dropped by the links' shapers " + std::to_string(shaperDropped) + " and rings " +
         std::to_string(ringDropped) + ", by the receiving host " + std::to_string(hostDropped) +
         ": unexplained " + std::to_string(unexplained());
}

LossAccount accountLosses(const Run& run, double from, double to, const std::vector<std::size_t>& links) {
  LossAccount account;
  account.lost = lostIn(intervalsBetween(run.receiver, from, to));
  account.late = run.receiver.at("late_packets").get<std::uint64_t>();
  const auto& paths = run.receiver.at("paths");
  for (std::size_t link : links) {
    if (link < run.linksAfter.size()) {
      account.shaperDropped += run.linksAfter[link].shaperDropped;
      account.ringDropped += run.linksAfter[link].ringDropped;
    }
    if (link < paths.size()) account.hostDropped += paths.at(link).value("rx_dropped", std::uint64_t{0});
  }
  return account;
}

std::optional<double> eventTime(const nlohmann::json& sender, int path, const std::string& to, double atS) {
  for (const auto& event : sender.at("path_events")) {
    if (event.at("path").get<int>() == path && event.at("to") == to &&
        event.at("time_s").get<double>() >= atS)
      return event.at("time_s").get<double>();
  }
  return std::nullopt;
}

}  // namespace mpxdp::test
