#include "report.h"

#include <sys/resource.h>

#include <fmt/core.h>

namespace mpxdp::cli {
namespace {

double seconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

double perSecond(double value, double seconds) { return seconds > 0 ? value / seconds : 0.0; }

// iperf3 style: binary prefixes for transfers, decimal for rates.
std::string cpuText(int cpu) { return cpu >= 0 ? fmt::format("pinned to CPU {}", cpu) : "not pinned"; }

std::string transferText(std::uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:6.2f} GBytes", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return fmt::format("{:6.1f} MBytes", b / (1024.0 * 1024));
  return fmt::format("{:6.1f} KBytes", b / 1024.0);
}

std::string rateText(double bps) {
  if (bps >= 1e9) return fmt::format("{:6.3f} Gbits/sec", bps / 1e9);
  if (bps >= 1e6) return fmt::format("{:6.1f} Mbits/sec", bps / 1e6);
  return fmt::format("{:6.1f} Kbits/sec", bps / 1e3);
}

std::string durationText(std::uint64_t ns) {
  if (ns >= 1'000'000) return fmt::format("{:.2f} ms", static_cast<double>(ns) / 1e6);
  return fmt::format("{:.1f} us", static_cast<double>(ns) / 1e3);
}

}  // namespace

Sample sampleOf(const ConnectionStats& stats, Role role, double timeS, std::uint64_t corrupt) {
  Sample s;
  s.timeS = timeS;
  if (role == Role::kSender) {
    s.packets = stats.packetsSent;
    s.bytes = stats.bytesSent;
    return s;
  }
  s.packets = stats.packetsDelivered;
  s.bytes = stats.bytesDelivered;
  s.lost = stats.lost;
  s.outOfOrderArrived = stats.outOfOrderArrived;
  s.outOfOrderDelivered = stats.outOfOrderDelivered;
  s.duplicates = stats.duplicates;
  s.corrupt = corrupt;
  return s;
}

CpuTime processCpuTime() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return {seconds(usage.ru_utime), seconds(usage.ru_stime)};
}

Reporter::Reporter(RunDescription run, bool json, std::FILE* out)
    : run_(std::move(run)), jsonMode_(json), out_(out) {}

void Reporter::begin() {
  if (jsonMode_) return;
  const bool sender = run_.role == Role::kSender;
  if (sender) {
    fmt::print(
        out_, "mpxdp send: {} link(s), backend {}, scheduler {}, {} byte payloads, total rate {}, {}\n",
        run_.linkNames.size(), run_.backend, run_.scheduler, run_.payloadBytes,
        run_.totalRateBps == 0 ? std::string("unlimited") : rateText(static_cast<double>(run_.totalRateBps)),
        cpuText(run_.cpu));
  } else {
    fmt::print(out_, "mpxdp recv: {} link(s), backend {}, reorder {}, {}\n", run_.linkNames.size(),
               run_.backend, run_.reorder, cpuText(run_.cpu));
  }
  if (sender) {
    fmt::print(out_, "[ ID] Interval           Transfer      Rate               Packets\n");
  } else {
    fmt::print(
        out_,
        "[ ID] Interval           Transfer      Goodput             Packets       pps     Lost  OOO-arr  "
        "OOO-del    Dup  Corrupt\n");
  }
  std::fflush(out_);
}

void Reporter::printLine(const Sample& from, const Sample& to, const char* tag) {
  const double span = to.timeS - from.timeS;
  const std::uint64_t packets = to.packets - from.packets;
  const double bps = perSecond(8.0 * static_cast<double>(to.bytes - from.bytes), span);
  if (run_.role == Role::kSender) {
    fmt::print(out_, "[SUM] {:6.2f}-{:<6.2f} sec  {}  {}  {:9}{}\n", from.timeS, to.timeS,
               transferText(to.bytes - from.bytes), rateText(bps), packets, tag);
  } else {
    fmt::print(out_, "[SUM] {:6.2f}-{:<6.2f} sec  {}  {}  {:9} {:9.0f} {:8} {:8} {:8} {:6} {:8}{}\n",
               from.timeS, to.timeS, transferText(to.bytes - from.bytes), rateText(bps), packets,
               perSecond(static_cast<double>(packets), span), to.lost - from.lost,
               to.outOfOrderArrived - from.outOfOrderArrived,
               to.outOfOrderDelivered - from.outOfOrderDelivered, to.duplicates - from.duplicates,
               to.corrupt - from.corrupt, tag);
  }
  std::fflush(out_);
}

nlohmann::json Reporter::intervalJson(const Sample& from, const Sample& to) const {
  const double span = to.timeS - from.timeS;
  nlohmann::json j;
  j["start_s"] = from.timeS;
  j["end_s"] = to.timeS;
  j["packets"] = to.packets - from.packets;
  j["bytes"] = to.bytes - from.bytes;
  j["bits_per_second"] = perSecond(8.0 * static_cast<double>(to.bytes - from.bytes), span);
  if (run_.role == Role::kReceiver) {
    j["lost_packets"] = to.lost - from.lost;
    j["out_of_order_arrived"] = to.outOfOrderArrived - from.outOfOrderArrived;
    j["out_of_order_delivered"] = to.outOfOrderDelivered - from.outOfOrderDelivered;
    j["duplicate_packets"] = to.duplicates - from.duplicates;
    j["corrupt_packets"] = to.corrupt - from.corrupt;
  }
  return j;
}

void Reporter::interval(const Sample& now) {
  if (now.timeS <= last_.timeS) return;
  if (jsonMode_) {
    intervals_.push_back(intervalJson(last_, now));
  } else {
    printLine(last_, now, "");
  }
  last_ = now;
}

void Reporter::finish(const ConnectionStats& stats, const Sample& total, const Ending& ending) {
  const bool sender = run_.role == Role::kSender;
  const double duration = ending.durationS;
  const double bps = perSecond(8.0 * static_cast<double>(total.bytes), duration);

  nlohmann::json j;
  j["role"] = sender ? "send" : "recv";
  j["backend"] = run_.backend;
  j["duration_s"] = duration;
  j["goodput_bps"] = bps;
  j["pps"] = perSecond(static_cast<double>(total.packets), duration);
  j["cpu_user_s"] = ending.cpu.userS;
  j["cpu_system_s"] = ending.cpu.systemS;
  j["ended_by"] = ending.reason;
  j["cpu"] = run_.cpu >= 0 ? nlohmann::json(run_.cpu) : nlohmann::json(nullptr);
  if (sender) {
    j["scheduler"] = run_.scheduler;
    j["payload_bytes"] = run_.payloadBytes;
    j["total_rate_bps"] = run_.totalRateBps;
    j["sent_packets"] = stats.packetsSent;
    j["sent_bytes"] = stats.bytesSent;
    j["sent_bps"] = bps;
    j["tx_dropped_packets"] = stats.txDropped;
  } else {
    j["reorder"] = run_.reorder;
    j["delivered_packets"] = stats.packetsDelivered;
    j["delivered_bytes"] = stats.bytesDelivered;
    j["lost_packets"] = stats.lost;
    j["lost_fast_packets"] = stats.lostFast;
    j["out_of_order_arrived"] = stats.outOfOrderArrived;
    j["out_of_order_delivered"] = stats.outOfOrderDelivered;
    j["duplicate_packets"] = stats.duplicates;
    j["late_packets"] = stats.late;
    j["corrupt_packets"] = total.corrupt;
    j["malformed_packets"] = stats.malformed;
    j["hold_samples"] = stats.hold.samples;
    j["hold_p50_ns"] = stats.hold.p50Ns;
    j["hold_p90_ns"] = stats.hold.p90Ns;
    j["hold_p99_ns"] = stats.hold.p99Ns;
    j["hold_max_ns"] = stats.hold.maxNs;
  }
  nlohmann::json paths = nlohmann::json::array();
  for (std::size_t l = 0; l < stats.paths.size(); ++l) {
    const PathStats& p = stats.paths[l];
    nlohmann::json path;
    path["id"] = l;
    path["name"] = l < run_.linkNames.size() ? run_.linkNames[l] : std::to_string(l);
    path["rate_bps"] = l < run_.linkRatesBps.size() ? run_.linkRatesBps[l] : 0;
    if (sender) {
      path["packets"] = p.packetsSent;
      path["bytes"] = p.bytesSent;
      path["tx_ring_empty"] = p.io.txRingEmpty;
      path["tx_invalid_descs"] = p.io.txInvalidDescs;
    } else {
      path["packets"] = p.packetsReceived;
      path["bytes"] = p.bytesReceived;
      path["lost"] = p.lostSeen;
      path["out_of_order_in_path"] = p.outOfOrderInPath;
      path["end_markers"] = p.endMarkers;
      // Sender and receiver share CLOCK_MONOTONIC only on one host (the test bed).
      path["delay_valid"] = p.owdValid;
      path["delay_min_ns"] = p.owdMinNs;
      path["delay_avg_ns"] = p.owdAvgNs;
      path["rx_dropped"] = p.io.rxDropped;
      path["rx_ring_full"] = p.io.rxRingFull;
      path["rx_fill_ring_empty"] = p.io.rxFillRingEmpty;
    }
    paths.push_back(std::move(path));
  }
  j["paths"] = std::move(paths);
  j["intervals"] = intervals_;
  json_ = j;

  if (jsonMode_) {
    fmt::print(out_, "{}\n", json_.dump(2));
    std::fflush(out_);
    return;
  }
  fmt::print(out_,
             "- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -\n");
  Sample zero;
  Sample end = total;
  end.timeS = duration;
  printLine(zero, end, sender ? "  sender" : "  receiver");
  if (sender) {
    fmt::print(out_, "[ ID] Link              Packets        Bytes\n");
    for (std::size_t l = 0; l < stats.paths.size(); ++l) {
      fmt::print(out_, "[{:3}] {:<12} {:12} {:12}\n", l, run_.linkNames.at(l), stats.paths[l].packetsSent,
                 stats.paths[l].bytesSent);
    }
    fmt::print(out_, "tx refused by links: {}\n", stats.txDropped);
  } else {
    fmt::print(out_,
               "[ ID] Link              Packets        Bytes     Lost  OOO-path   Delay-min   Delay-avg\n");
    for (std::size_t l = 0; l < stats.paths.size(); ++l) {
      const PathStats& p = stats.paths[l];
      fmt::print(
          out_, "[{:3}] {:<12} {:12} {:12} {:8} {:9} {:>11} {:>11}\n", l, run_.linkNames.at(l),
          p.packetsReceived, p.bytesReceived, p.lostSeen, p.outOfOrderInPath,
          p.owdValid ? durationText(static_cast<std::uint64_t>(std::max<std::int64_t>(p.owdMinNs, 0))) : "-",
          p.owdValid ? durationText(static_cast<std::uint64_t>(std::max<std::int64_t>(p.owdAvgNs, 0))) : "-");
    }
    fmt::print(out_, "reorder {}: hold p50 {}, p99 {}, max {}; late {}, malformed {}\n", run_.reorder,
               durationText(stats.hold.p50Ns), durationText(stats.hold.p99Ns), durationText(stats.hold.maxNs),
               stats.late, stats.malformed);
  }
  fmt::print(out_, "CPU time: {:.2f} s user, {:.2f} s system; ended by {}\n", ending.cpu.userS,
             ending.cpu.systemS, ending.reason);
  std::fflush(out_);
}

}  // namespace mpxdp::cli
