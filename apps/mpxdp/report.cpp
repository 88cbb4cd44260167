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
  if (jsonMode_ || out_ == nullptr) return;
  const bool sender = run_.role == Role::kSender;
  if (sender) {
    fmt::print(
        out_, "mpxdp send: {} link(s), backend {}, scheduler {}, {} B payloads, payload rate {}, {}\n",
        run_.linkNames.size(), run_.backend, run_.scheduler, run_.payloadBytes,
        run_.totalRateBps == 0 ? std::string("unlimited") : rateText(static_cast<double>(run_.totalRateBps)),
        cpuText(run_.cpu));
  } else {
    fmt::print(out_, "mpxdp recv: {} link(s), backend {}, reorder {}, {}\n", run_.linkNames.size(),
               run_.backend, run_.reorder, cpuText(run_.cpu));
  }
  for (std::size_t l = 0; l < run_.linkModes.size(); ++l) {
    fmt::print(out_, "  link {}: {}{}\n", l, run_.linkModes[l],
               l < run_.linkRatesBps.size() && run_.linkRatesBps[l] > 0
                   ? ", line rate " + rateText(static_cast<double>(run_.linkRatesBps[l]))
                   : std::string());
  }
  if (sender) {
    fmt::print(out_, "[ ID] Interval           Transfer      Rate               Packets\n");
  } else {
    fmt::print(
        out_,
        "[ ID] Interval           Transfer      Goodput            Packets   Lost OOO-arr OOO-del Bad\n");
  }
  std::fflush(out_);
}

void Reporter::printLine(const Sample& from, const Sample& to, const char* tag) {
  if (out_ == nullptr) return;
  const double span = to.timeS - from.timeS;
  const std::uint64_t packets = to.packets - from.packets;
  const double bps = perSecond(8.0 * static_cast<double>(to.bytes - from.bytes), span);
  if (run_.role == Role::kSender) {
    fmt::print(out_, "[SUM] {:6.2f}-{:<6.2f} sec  {}  {}  {:9}{}\n", from.timeS, to.timeS,
               transferText(to.bytes - from.bytes), rateText(bps), packets, tag);
  } else {
    // pps and duplicates are in the JSON and the summary; the line stays within 100 columns.
    fmt::print(out_, "[SUM] {:6.2f}-{:<6.2f} sec  {}  {} {:8} {:6} {:7} {:7} {:3}{}\n", from.timeS, to.timeS,
               transferText(to.bytes - from.bytes), rateText(bps), packets, to.lost - from.lost,
               to.outOfOrderArrived - from.outOfOrderArrived,
               to.outOfOrderDelivered - from.outOfOrderDelivered, to.corrupt - from.corrupt, tag);
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

void Reporter::finish(const ConnectionStats& stats, const Sample& total, const Ending& ending,
                      const EndpointStats& endpoint, const std::optional<PeerReport>& peer) {
  const bool sender = run_.role == Role::kSender;
  const double duration = ending.durationS;
  const double bps = perSecond(8.0 * static_cast<double>(total.bytes), duration);
  std::uint64_t pathGaps = 0;
  for (const PathStats& p : stats.paths) pathGaps += p.lostSeen;

  nlohmann::json j;
  j["role"] = sender ? "send" : "recv";
  j["backend"] = run_.backend;
  j["connection_id"] = run_.connId;
  j["duration_s"] = duration;
  j["goodput_bps"] = bps;
  j["pps"] = perSecond(static_cast<double>(total.packets), duration);
  j["cpu_user_s"] = ending.cpu.userS;
  j["cpu_system_s"] = ending.cpu.systemS;
  j["ended_by"] = ending.reason;
  j["cpu"] = run_.cpu >= 0 ? nlohmann::json(run_.cpu) : nlohmann::json(nullptr);
  nlohmann::json malformed;
  malformed["connection"] = stats.malformed;
  malformed["endpoint"] = endpoint.malformed;
  malformed["unknown_connection"] = endpoint.unknownConnection;
  malformed["other_version"] = endpoint.versionMismatch;
  malformed["link_outer_headers"] = endpoint.linkMalformed;
  malformed["xdp"] = endpoint.steering ? nlohmann::json(endpoint.xdpMalformed) : nlohmann::json(nullptr);
  malformed["xdp_no_socket"] =
      endpoint.steering ? nlohmann::json(endpoint.xdpNoSocket) : nlohmann::json(nullptr);
  j["malformed"] = malformed;
  j["malformed_packets"] = stats.malformed + endpoint.malformed + endpoint.linkMalformed +
                           (endpoint.steering ? endpoint.xdpMalformed : 0);
  if (endpoint.steering) {
    j["xdp_redirected"] = endpoint.xdpRedirected;
    j["xdp_passed"] = endpoint.xdpPassed;
  }
  if (sender) {
    j["scheduler"] = run_.scheduler;
    j["payload_bytes"] = run_.payloadBytes;
    j["total_rate_bps"] = run_.totalRateBps;
    j["sent_packets"] = stats.packetsSent;
    j["sent_bytes"] = stats.bytesSent;
    j["sent_bps"] = bps;
    j["tx_dropped_packets"] = stats.txDropped;
    if (peer) {
      nlohmann::json r;
      r["duration_s"] = static_cast<double>(peer->durationNs) / 1e9;
      r["delivered_packets"] = peer->packets;
      r["delivered_bytes"] = peer->bytes;
      r["goodput_bps"] =
          perSecond(8.0 * static_cast<double>(peer->bytes), static_cast<double>(peer->durationNs) / 1e9);
      r["lost_packets"] = peer->lost;
      r["late_packets"] = peer->late;
      r["out_of_order_delivered"] = peer->outOfOrder;
      r["duplicate_packets"] = peer->duplicates;
      r["malformed_packets"] = peer->malformed;
      j["receiver"] = r;
    } else {
      j["receiver"] = nullptr;
    }
  } else {
    j["reorder"] = run_.reorder;
    j["delivered_packets"] = stats.packetsDelivered;
    j["delivered_bytes"] = stats.bytesDelivered;
    j["lost_packets"] = stats.lost;
    j["lost_fast_packets"] = stats.lostFast;
    j["path_gap_packets"] = pathGaps;
    j["out_of_order_arrived"] = stats.outOfOrderArrived;
    j["out_of_order_delivered"] = stats.outOfOrderDelivered;
    j["duplicate_packets"] = stats.duplicates;
    j["late_packets"] = stats.late;
    j["implausible_packets"] = stats.implausible;
    j["corrupt_packets"] = total.corrupt;
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
    path["mode"] = l < run_.linkModes.size() ? run_.linkModes[l] : "";
    path["rate_bps"] = l < run_.linkRatesBps.size() ? run_.linkRatesBps[l] : 0;
    path["rtt_valid"] = p.rttValid;
    path["rtt_ns"] = p.rttNs;
    path["rtt_min_ns"] = p.rttMinNs;
    path["control_packets_sent"] = p.controlPacketsSent;
    path["control_packets_received"] = p.controlPacketsReceived;
    if (sender) {
      path["packets"] = p.packetsSent;
      path["bytes"] = p.bytesSent;
      path["acks_received"] = p.acksReceived;
      path["peer_bytes_received"] = p.peerBytesReceived;
      path["tx_ring_empty"] = p.io.txRingEmpty;
      path["tx_invalid_descs"] = p.io.txInvalidDescs;
      if (peer && l < peer->paths.size()) {
        path["receiver_packets"] = peer->paths[l].packets;
        path["receiver_lost"] = peer->paths[l].lost;
      }
    } else {
      path["packets"] = p.packetsReceived;
      path["bytes"] = p.bytesReceived;
      path["lost"] = p.lostSeen;
      path["out_of_order_in_path"] = p.outOfOrderInPath;
      path["end_markers"] = p.closeFrames;
      // Sender and receiver share CLOCK_MONOTONIC only on one host (the test bed).
      path["delay_valid"] = p.owdValid;
      path["delay_min_ns"] = p.owdMinNs;
      path["delay_avg_ns"] = p.owdAvgNs;
      path["rx_dropped"] = p.io.rxDropped;
      path["rx_ring_full"] = p.io.rxRingFull;
      path["rx_fill_ring_empty"] = p.io.rxFillRingEmpty;
      path["rx_malformed"] = p.io.rxMalformed;
    }
    paths.push_back(std::move(path));
  }
  j["paths"] = std::move(paths);
  j["intervals"] = intervals_;
  json_ = j;

  if (out_ == nullptr) return;
  if (jsonMode_) {
    fmt::print(out_, "{}\n", json_.dump(2));
    std::fflush(out_);
    return;
  }
  fmt::print(out_, "- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -\n");
  Sample zero;
  Sample end = total;
  end.timeS = duration;
  printLine(zero, end, sender ? "  sender" : "  receiver");
  auto name = [this](std::size_t l) {
    return l < run_.linkNames.size() ? run_.linkNames[l] : std::to_string(l);
  };
  auto rtt = [](const PathStats& p) { return p.rttValid ? durationText(p.rttNs) : std::string("-"); };
  if (sender) {
    if (peer) {
      const double seconds = static_cast<double>(peer->durationNs) / 1e9;
      fmt::print(out_, "[SUM]   0.00-{:<6.2f} sec  {}  {} {:8} lost {} late {}  receiver\n", seconds,
                 transferText(peer->bytes),
                 rateText(perSecond(8.0 * static_cast<double>(peer->bytes), seconds)), peer->packets,
                 peer->lost, peer->late);
    } else {
      fmt::print(out_, "receiver: its report did not arrive\n");
    }
    fmt::print(out_, "[ ID] Link           Packets        Bytes  Rcvd-by-peer  Lost-on-path        RTT\n");
    for (std::size_t l = 0; l < stats.paths.size(); ++l) {
      const PathStats& p = stats.paths[l];
      const bool known = peer && l < peer->paths.size();
      fmt::print(out_, "[{:3}] {:<12} {:9} {:12} {:>13} {:>13} {:>10}\n", l, name(l), p.packetsSent,
                 p.bytesSent, known ? std::to_string(peer->paths[l].packets) : "-",
                 known ? std::to_string(peer->paths[l].lost) : "-", rtt(p));
    }
    fmt::print(out_, "refused by the links (TX ring full): {}\n", stats.txDropped);
  } else {
    fmt::print(
        out_, "[ ID] Link           Packets        Bytes   Lost OOO-path  Delay-min  Delay-avg        RTT\n");
    for (std::size_t l = 0; l < stats.paths.size(); ++l) {
      const PathStats& p = stats.paths[l];
      fmt::print(
          out_, "[{:3}] {:<12} {:9} {:12} {:6} {:8} {:>10} {:>10} {:>10}\n", l, name(l), p.packetsReceived,
          p.bytesReceived, p.lostSeen, p.outOfOrderInPath,
          p.owdValid ? durationText(static_cast<std::uint64_t>(std::max<std::int64_t>(p.owdMinNs, 0))) : "-",
          p.owdValid ? durationText(static_cast<std::uint64_t>(std::max<std::int64_t>(p.owdAvgNs, 0))) : "-",
          rtt(p));
    }
    fmt::print(out_, "lost {}: {}\n", stats.lost,
               stats.lost == pathGaps
                   ? std::string("as the links' packet-number gaps")
                   : fmt::format("the links' packet-number gaps sum to {};\n  {} of them arrived late "
                                 "(after their hole was given up), {} were declared by fast loss",
                                 pathGaps, stats.late, stats.lostFast));
    fmt::print(out_, "reorder {}: hold p50 {}, p99 {}, max {}; duplicates {}, implausible {}\n", run_.reorder,
               durationText(stats.hold.p50Ns), durationText(stats.hold.p99Ns), durationText(stats.hold.maxNs),
               stats.duplicates, stats.implausible);
    fmt::print(out_,
               "Legend: Lost = never delivered; OOO-arr/OOO-del = arrived/delivered out of order;\n"
               "        Bad = payloads failing the pattern check; OOO-path = out of order within one link;\n"
               "        Delay = one-way, includes the clock offset between two hosts\n");
  }
  fmt::print(out_, "malformed: conn {}, endpoint {}, unknown conn {}, other version {}, links {}{}\n",
             stats.malformed, endpoint.malformed, endpoint.unknownConnection, endpoint.versionMismatch,
             endpoint.linkMalformed,
             endpoint.steering
                 ? fmt::format(", xdp {} (no socket {})", endpoint.xdpMalformed, endpoint.xdpNoSocket)
                 : std::string());
  fmt::print(out_, "CPU time: {:.2f} s user, {:.2f} s system; ended by {}\n", ending.cpu.userS,
             ending.cpu.systemS, ending.reason);
  std::fflush(out_);
}

}  // namespace mpxdp::cli
