#include "report.h"

#include <sys/resource.h>

#include <fmt/core.h>

#include "file_stream.h"

namespace mpxdp::cli {
namespace {

constexpr std::size_t kMaxLineColumns = 100;  // text reports fit a 100-column terminal

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

// Compact forms for the per-path lines: "297M", "1.25G", "850k"; "-" for 0.
std::string shortRate(std::uint64_t bps) {
  const double b = static_cast<double>(bps);
  if (bps == 0) return "-";
  if (b >= 1e9) return fmt::format("{:.2f}G", b / 1e9);
  if (b >= 1e8) return fmt::format("{:.0f}M", b / 1e6);
  if (b >= 1e6) return fmt::format("{:.1f}M", b / 1e6);
  return fmt::format("{:.0f}k", b / 1e3);
}

// "850us", "1.25ms", "12.5ms", "125ms"; "-" when unknown.
std::string shortDuration(std::uint64_t ns, bool valid = true) {
  if (!valid) return "-";
  const double n = static_cast<double>(ns);
  if (ns < 1'000'000) return fmt::format("{:.0f}us", n / 1e3);
  if (ns < 10'000'000) return fmt::format("{:.2f}ms", n / 1e6);
  if (ns < 100'000'000) return fmt::format("{:.1f}ms", n / 1e6);
  return fmt::format("{:.0f}ms", n / 1e6);
}

std::uint64_t delta(std::uint64_t now, std::uint64_t before) { return now >= before ? now - before : 0; }

// Receiver: this side's control bytes (ACKs, PONGs) over the data bytes
// received; sender: its control bytes over the data bytes sent. Null without data.
nlohmann::json overhead(const ConnectionStats& stats, bool sender) {
  std::uint64_t control = 0;
  std::uint64_t data = 0;
  for (const PathStats& p : stats.paths) {
    control += p.controlBytesSent;
    data += sender ? p.bytesSent : p.bytesReceived;
  }
  if (data == 0) return nullptr;
  return static_cast<double>(control) / static_cast<double>(data);
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
  s.late = stats.late;
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
    : run_(std::move(run)),
      tag_(run_.tagLines ? fmt::format("{:08x} ", run_.connId) : std::string()),
      jsonMode_(json),
      out_(out) {}

void Reporter::begin() {
  if (jsonMode_ || out_ == nullptr) return;
  const bool sender = run_.role == Role::kSender;
  if (sender) {
    fmt::print(
        out_, "mpxdp send: {} link(s), backend {}, {} B payloads, payload rate {}, {}\n",
        run_.linkNames.size(), run_.backend, run_.payloadBytes,
        run_.totalRateBps == 0 ? std::string("unlimited") : rateText(static_cast<double>(run_.totalRateBps)),
        cpuText(run_.cpu));
    fmt::print(out_, "  scheduler {}, pacing {}{}{}\n", run_.scheduler, run_.pacing,
               run_.reliable ? ", reliable" : "", run_.redundant ? ", redundant" : "");
  } else {
    fmt::print(out_, "mpxdp recv: {} link(s), backend {}, reorder {}{}, {}\n", run_.linkNames.size(),
               run_.backend, run_.reorder, run_.reliable ? ", reliable" : "", cpuText(run_.cpu));
  }
  if (!run_.security.empty()) fmt::print(out_, "  security: {}\n", run_.security);
  if (run_.keyIndex) fmt::print(out_, "  peer: holds key {} (--key {})\n", *run_.keyIndex, run_.keyFile);
  if (!run_.file.empty()) fmt::print(out_, "  file: {}\n", printableName(run_.file));
  for (std::size_t l = 0; l < run_.linkModes.size(); ++l) {
    const std::string head = fmt::format("  link {}: {}", l, run_.linkModes[l]);
    const std::string tail =
        fmt::format("{}{}",
                    l < run_.linkRatesBps.size() && run_.linkRatesBps[l] > 0
                        ? "rate cap " + rateText(static_cast<double>(run_.linkRatesBps[l]))
                        : std::string("rate estimated"),
                    l < run_.linkBackups.size() && run_.linkBackups[l] ? ", backup" : "");
    // Lines stay within 100 columns: a long description (kernel UDP's names
    // both addresses) puts the rest on a line of its own.
    if (head.size() + 2 + tail.size() <= kMaxLineColumns) {
      fmt::print(out_, "{}, {}\n", head, tail);
    } else {
      fmt::print(out_, "{}\n    {}\n", head, tail);
    }
  }
  // Tagged lines start with the connection id: the column heads leave room for it.
  const std::string head = tag_.empty() ? std::string() : fmt::format("{:<{}}", "conn", tag_.size());
  if (sender) {
    fmt::print(out_, "{}[ ID] Interval           Transfer      Rate               Packets\n", head);
    fmt::print(out_,
               "{}[ ID] Link     State   Bk Pacing Estim. Delivr.    SRTT  RTTvar   Loss   Queue Phase   "
               "  Packets\n",
               head);
  } else {
    fmt::print(
        out_,
        "{}[ ID] Interval           Transfer      Goodput            Packets   Lost OOO-arr OOO-del Bad\n",
        head);
    fmt::print(out_, "{}[ ID] Link     State   Bk   Packets   Lost    SRTT  RTTvar AckFrames\n", head);
  }
  std::fflush(out_);
}

// "  1.00-2.00  "; with intervals under 0.1 s, milliseconds: "  1.010-1.020".
std::string Reporter::timeSpan(double fromS, double toS) const {
  if (run_.intervalS > 0 && run_.intervalS < 0.1) return fmt::format("{:7.3f}-{:<7.3f}", fromS, toS);
  return fmt::format("{:6.2f}-{:<6.2f}", fromS, toS);
}

void Reporter::printLine(const Sample& from, const Sample& to, const char* tag) {
  if (out_ == nullptr) return;
  const double seconds = to.timeS - from.timeS;
  const std::uint64_t packets = to.packets - from.packets;
  const double bps = perSecond(8.0 * static_cast<double>(to.bytes - from.bytes), seconds);
  // The summary line (tagged) keeps 2 decimals: with its tag it is 100 columns wide.
  const std::string when =
      *tag != '\0' ? fmt::format("{:6.2f}-{:<6.2f}", from.timeS, to.timeS) : timeSpan(from.timeS, to.timeS);
  if (run_.role == Role::kSender) {
    fmt::print(out_, "{}[SUM] {} sec  {}  {}  {:9}{}\n", tag_, when, transferText(to.bytes - from.bytes),
               rateText(bps), packets, tag);
  } else {
    // pps and duplicates are in the JSON and the summary; the line stays within 100 columns.
    fmt::print(out_, "{}[SUM] {} sec  {}  {} {:8} {:6} {:7} {:7} {:3}{}\n", tag_, when,
               transferText(to.bytes - from.bytes), rateText(bps), packets, to.lost - from.lost,
               to.outOfOrderArrived - from.outOfOrderArrived,
               to.outOfOrderDelivered - from.outOfOrderDelivered, to.corrupt - from.corrupt, tag);
  }
  std::fflush(out_);
}

std::string Reporter::linkName(std::size_t path) const {
  return path < run_.linkNames.size() ? run_.linkNames[path] : std::to_string(path);
}

Reporter::PathCounters Reporter::countersOf(const PathStats& p) const {
  const bool sender = run_.role == Role::kSender;
  PathCounters c;
  c.packets = sender ? p.packetsSent : p.packetsReceived;
  c.bytes = sender ? p.bytesSent : p.bytesReceived;
  c.lost = p.lostSeen;
  c.requeued = p.requeued;
  c.retransmitted = p.retransmitted;
  c.ackFramesSent = p.ackFramesSent;
  c.controlBytesSent = p.controlBytesSent;
  return c;
}

// A path line: the sender's pacing and estimates, or the receiver's arrivals.
// In an interval the packet counts are the interval's; in the final table the
// sender's last column is the packets moved off the path (requeued).
void Reporter::printPathLine(std::size_t path, const PathStats& p, const PathCounters& from, bool final) {
  const PathCounters now = countersOf(p);
  const std::string state(toString(p.state));
  if (run_.role == Role::kSender) {
    fmt::print(out_, "{}[{:3}] {:<8} {:<7} {:<2} {:>6} {:>6} {:>7} {:>7} {:>7} {:>5.2f}% {:>7} {:<7} {:>9}\n",
               tag_, path, linkName(path), state, p.backup ? "B" : "-", shortRate(p.pacingRateBps),
               shortRate(p.bandwidthEstimateBps), shortRate(p.deliveryRateBps),
               shortDuration(p.srttNs, p.rttValid), shortDuration(p.rttVarNs, p.rttValid), 100.0 * p.lossRate,
               shortDuration(p.queueDelayNs), p.ratePhase,
               final ? p.requeued : delta(now.packets, from.packets));
  } else {
    fmt::print(out_, "{}[{:3}] {:<8} {:<7} {:<2} {:9} {:6} {:>7} {:>7} {:9}\n", tag_, path, linkName(path),
               state, p.backup ? "B" : "-", delta(now.packets, from.packets), delta(now.lost, from.lost),
               shortDuration(p.srttNs, p.rttValid), shortDuration(p.rttVarNs, p.rttValid),
               delta(now.ackFramesSent, from.ackFramesSent));
  }
}

void Reporter::printPathEvent(const PathEvent& event) {
  const double at = (static_cast<double>(event.timeNs) - static_cast<double>(startNs_)) / 1e9;
  fmt::print(out_, "{}{:9.3f} s  path {} ({}): {} -> {}\n", tag_, at, event.path, linkName(event.path),
             toString(event.previous), toString(event.state));
}

nlohmann::json Reporter::pathEventJson(const PathEvent& event) const {
  nlohmann::json j;
  j["time_s"] = (static_cast<double>(event.timeNs) - static_cast<double>(startNs_)) / 1e9;
  j["path"] = event.path;
  j["interface"] = linkName(event.path);
  j["from"] = std::string(toString(event.previous));
  j["to"] = std::string(toString(event.state));
  return j;
}

// One path in an interval (counters since `from`) or at the end (from = zero:
// totals). Rates, RTTs, loss and queue delay are the values at that moment.
nlohmann::json Reporter::pathJson(std::size_t path, const PathStats& p, const PathCounters& from) const {
  const PathCounters now = countersOf(p);
  nlohmann::json j;
  j["id"] = path;
  j["state"] = std::string(toString(p.state));
  j["backup"] = p.backup;
  j["packets"] = delta(now.packets, from.packets);
  j["bytes"] = delta(now.bytes, from.bytes);
  if (run_.role == Role::kReceiver) j["lost"] = delta(now.lost, from.lost);
  j["pacing_bps"] = p.pacingRateBps;
  j["estimate_bps"] = p.bandwidthEstimateBps;
  j["delivery_bps"] = p.deliveryRateBps;
  j["rate_phase"] = p.ratePhase;
  j["srtt_ns"] = p.rttValid ? nlohmann::json(p.srttNs) : nlohmann::json(nullptr);
  j["rttvar_ns"] = p.rttValid ? nlohmann::json(p.rttVarNs) : nlohmann::json(nullptr);
  j["loss_rate"] = p.lossRate;
  j["queue_delay_ns"] = p.queueDelayNs;
  j["queued_packets"] = p.queuedPackets;
  j["requeued"] = delta(now.requeued, from.requeued);
  if (run_.role == Role::kSender) j["retransmitted"] = delta(now.retransmitted, from.retransmitted);
  j["ack_frames_sent"] = delta(now.ackFramesSent, from.ackFramesSent);
  j["control_bytes_sent"] = delta(now.controlBytesSent, from.controlBytesSent);
  return j;
}

nlohmann::json Reporter::intervalJson(const IntervalRecord& record) const {
  const Sample& from = record.from;
  const Sample& to = record.to;
  const double span = to.timeS - from.timeS;
  nlohmann::json j;
  j["start_s"] = from.timeS;
  j["end_s"] = to.timeS;
  j["packets"] = to.packets - from.packets;
  j["bytes"] = to.bytes - from.bytes;
  j["bits_per_second"] = perSecond(8.0 * static_cast<double>(to.bytes - from.bytes), span);
  if (run_.role == Role::kReceiver) {
    j["lost_packets"] = to.lost - from.lost;
    j["late_packets"] = to.late - from.late;
    j["out_of_order_arrived"] = to.outOfOrderArrived - from.outOfOrderArrived;
    j["out_of_order_delivered"] = to.outOfOrderDelivered - from.outOfOrderDelivered;
    j["duplicate_packets"] = to.duplicates - from.duplicates;
    j["corrupt_packets"] = to.corrupt - from.corrupt;
  }
  if (record.file) {
    j["file_bytes"] = record.file->bytes - record.fromFileBytes;
    j["file_bytes_total"] = record.file->bytes;
  }
  nlohmann::json paths = nlohmann::json::array();
  for (std::size_t l = 0; l < record.paths.size(); ++l) {
    paths.push_back(
        pathJson(l, record.paths[l], l < record.fromPaths.size() ? record.fromPaths[l] : PathCounters{}));
  }
  j["paths"] = std::move(paths);
  return j;
}

void Reporter::printFileProgress(const FileProgress& file, double fromS, double toS) {
  const double rate = perSecond(8.0 * static_cast<double>(file.bytes - lastFileBytes_), toS - fromS);
  if (!file.sizeKnown) {
    fmt::print(out_, "{}[FILE] no header yet\n", tag_);
    return;
  }
  const double done = file.size == 0 ? 1.0 : static_cast<double>(file.bytes) / static_cast<double>(file.size);
  // ETA at the average rate since the start: steadier than the last interval's.
  const double average = perSecond(static_cast<double>(file.bytes), toS);
  std::string eta = "-";
  if (file.bytes >= file.size) {
    eta = "0 s";
  } else if (average > 0) {
    eta = fmt::format("{:.1f} s", static_cast<double>(file.size - file.bytes) / average);
  }
  fmt::print(out_, "{}[FILE] {:5.1f}%  {} of {}  {}  ETA {}\n", tag_, 100.0 * done, transferText(file.bytes),
             transferText(file.size), rateText(rate), eta);
}

void Reporter::interval(const ConnectionStats& stats, double timeS, std::uint64_t corrupt,
                        const std::optional<FileProgress>& file) {
  const Sample now = sampleOf(stats, run_.role, timeS, corrupt);
  if (now.timeS <= last_.timeS) return;
  if (jsonMode_) {
    intervals_.push_back({last_, now, lastPaths_, stats.paths, file, lastFileBytes_});
  } else if (out_ != nullptr) {
    printLine(last_, now, "");
    if (file) printFileProgress(*file, last_.timeS, now.timeS);
    for (std::size_t l = 0; l < stats.paths.size(); ++l)
      printPathLine(l, stats.paths[l], l < lastPaths_.size() ? lastPaths_[l] : PathCounters{}, false);
    for (; eventsSeen_ < stats.pathEvents.size(); ++eventsSeen_)
      printPathEvent(stats.pathEvents[eventsSeen_]);
    std::fflush(out_);
  }
  last_ = now;
  if (file) lastFileBytes_ = file->bytes;
  lastPaths_.resize(stats.paths.size());
  for (std::size_t l = 0; l < stats.paths.size(); ++l) lastPaths_[l] = countersOf(stats.paths[l]);
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
  if (run_.keyIndex) j["key_index"] = *run_.keyIndex;  // which --key the peer holds (recv)
  j["duration_s"] = duration;
  j["goodput_bps"] = bps;
  j["pps"] = perSecond(static_cast<double>(total.packets), duration);
  j["cpu_user_s"] = ending.cpu.userS;
  j["cpu_system_s"] = ending.cpu.systemS;
  j["ended_by"] = ending.reason;
  j["cpu"] = run_.cpu >= 0 ? nlohmann::json(run_.cpu) : nlohmann::json(nullptr);
  j["scheduler"] = run_.scheduler;
  j["pacing"] = run_.pacing;
  j["rx_usecs"] = run_.rxHoldoffNs / 1000;  // receive coalescing in effect (--rx-usecs)
  // CLOCK_MONOTONIC at the run's time 0 (intervals, path events), so that
  // other tools on this host can place their own events on the same timeline.
  j["start_monotonic_ns"] = startNs_;
  // Reliable and redundant modes (issue 9); 0 when the mode is off or this side does not send/receive.
  j["reliable"] = run_.reliable;
  j["redundant"] = run_.redundant;
  j["retransmitted"] = stats.retransmitted;
  j["redundant_copies"] = stats.redundantCopies;
  j["flow_blocked_ms"] = static_cast<double>(stats.flowBlockedNs) / 1e6;
  j["max_stall_ms"] = static_cast<double>(stats.maxStallNs) / 1e6;
  j["duplicates"] = stats.duplicates;
  // Packet protection (issue 11).
  j["authenticated"] = stats.cipher != 0;
  j["cipher"] = stats.cipher != 0 ? nlohmann::json(cipherName(static_cast<CipherKind>(stats.cipher)))
                                  : nlohmann::json(nullptr);
  j["auth_failed_packets"] = stats.authFailed + endpoint.authFailed;
  j["replayed_packets"] = stats.replayed;
  j["key_updates"] = {{"sent", stats.keyUpdatesSent}, {"received", stats.keyUpdatesReceived}};
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
    j["control_overhead"] = overhead(stats, true);
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
    j["ack_overhead"] = overhead(stats, false);
    j["delivered_packets"] = stats.packetsDelivered;
    j["delivered_bytes"] = stats.bytesDelivered;
    j["lost_packets"] = stats.lost;
    j["lost_fast_packets"] = stats.lostFast;
    j["path_gap_packets"] = pathGaps;
    j["out_of_order_arrived"] = stats.outOfOrderArrived;
    j["out_of_order_delivered"] = stats.outOfOrderDelivered;
    j["duplicate_packets"] = stats.duplicates;
    j["late_packets"] = stats.late;
    j["late_queued_packets"] = stats.lateQueued;
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
    path.update(pathJson(l, p, PathCounters{}));
    path["packets_acked"] = p.packetsAcked;
    path["packets_lost_detected"] = p.packetsLostDetected;
    if (sender) {
      path["packets"] = p.packetsSent;
      path["bytes"] = p.bytesSent;
      path["acks_received"] = p.acksReceived;
      path["peer_bytes_received"] = p.peerBytesReceived;
      path["tx_ring_empty"] = p.io.txRingEmpty;
      path["tx_invalid_descs"] = p.io.txInvalidDescs;
      path["retransmitted"] = p.retransmitted;
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
  nlohmann::json events = nlohmann::json::array();
  for (const PathEvent& event : stats.pathEvents) events.push_back(pathEventJson(event));
  j["path_events"] = std::move(events);
  j["path_events_dropped"] = stats.pathEventsDropped;
  nlohmann::json intervals = nlohmann::json::array();
  for (const IntervalRecord& record : intervals_) intervals.push_back(intervalJson(record));
  j["intervals"] = std::move(intervals);
  finishFile(j);
  json_ = j;

  if (out_ == nullptr) return;
  if (jsonMode_) {
    fmt::print(out_, "{}\n", json_.dump(2));
    std::fflush(out_);
    return;
  }
  if (tag_.empty()) {
    fmt::print(out_,
               "- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -\n");
  } else {
    // The summary is one block headed by the connection id: its lines go untagged.
    fmt::print(out_,
               "- - - - - - - - - - connection {:08x}: {} summary - - - - - - - - - - - - - - - - - -\n",
               run_.connId, sender ? "sender" : "receiver");
    tag_.clear();
  }
  Sample zero;
  Sample end = total;
  end.timeS = duration;
  printLine(zero, end, sender ? "  sender" : " receiver");
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
    if (run_.reliable || run_.redundant || stats.retransmitted > 0 || stats.redundantCopies > 0) {
      fmt::print(out_, "{}: retransmitted {}, redundant copies {}, blocked by flow control {}\n",
                 run_.reliable ? "reliable" : "unreliable", stats.retransmitted, stats.redundantCopies,
                 durationText(stats.flowBlockedNs));
    }
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
    if (stats.lateQueued > 0)
      fmt::print(out_, "  {} late packets had reached this host before their loss was judged\n",
                 stats.lateQueued);
    fmt::print(out_, "reorder {}: hold p50 {}, p99 {}, max {}; duplicates {}, implausible {}\n", run_.reorder,
               durationText(stats.hold.p50Ns), durationText(stats.hold.p99Ns), durationText(stats.hold.maxNs),
               stats.duplicates, stats.implausible);
    if (run_.reliable || stats.maxStallNs > 0)
      fmt::print(out_, "longest delivery stall: {}\n", durationText(stats.maxStallNs));
    fmt::print(
        out_,
        "Legend: Lost = never delivered; OOO-arr/OOO-del = arrived/delivered out of order;\n"
        "        Bad = payloads failing the pattern check; OOO-path = out of order within one link;\n"
        "        Delay = one-way, includes the clock offset between two hosts;\n"
        "        Bk = B for a backup path; AckFrames = ACK frames about the path (sent on any path)\n");
  }
  if (sender) {
    fmt::print(out_,
               "[ ID] Link     State   Bk Pacing Estim. Delivr.    SRTT  RTTvar   Loss   Queue Phase   "
               " Requeued\n");
  } else {
    fmt::print(out_, "[ ID] Link     State   Bk   Packets   Lost    SRTT  RTTvar AckFrames\n");
  }
  for (std::size_t l = 0; l < stats.paths.size(); ++l) printPathLine(l, stats.paths[l], PathCounters{}, true);
  if (sender) {
    fmt::print(out_,
               "Legend: Bk = B for a backup path; Pacing = the path's pacing rate now; Estim. = its\n"
               "        bandwidth estimate; Delivr. = the latest delivery rate from the peer's ACKs;\n"
               "        Loss = smoothed loss rate; Queue = delay above the path's minimum;\n"
               "        Requeued = packets moved off the path to others when it stopped carrying data\n");
  }
  if (const auto ratio = overhead(stats, sender); ratio.is_number()) {
    fmt::print(out_, "{} overhead: control bytes sent = {:.3f}% of the data bytes {}\n",
               sender ? "control" : "ACK", 100.0 * ratio.get<double>(), sender ? "sent" : "received");
  }
  if (!stats.pathEvents.empty()) {
    fmt::print(out_, "path events ({}{}):\n", stats.pathEvents.size(),
               stats.pathEventsDropped > 0 ? fmt::format(", {} more dropped", stats.pathEventsDropped)
                                           : std::string());
    for (const PathEvent& event : stats.pathEvents) printPathEvent(event);
  }
  fmt::print(out_, "malformed: conn {}, endpoint {}, unknown conn {}, other version {}, links {}{}\n",
             stats.malformed, endpoint.malformed, endpoint.unknownConnection, endpoint.versionMismatch,
             endpoint.linkMalformed,
             endpoint.steering
                 ? fmt::format(", xdp {} (no socket {})", endpoint.xdpMalformed, endpoint.xdpNoSocket)
                 : std::string());
  if (stats.cipher != 0) {
    fmt::print(out_, "security: {}; failed authentication {}, replays {}, key updates {} sent {} received\n",
               cipherName(static_cast<CipherKind>(stats.cipher)), stats.authFailed + endpoint.authFailed,
               stats.replayed, stats.keyUpdatesSent, stats.keyUpdatesReceived);
  } else {
    fmt::print(out_, "security: none, the connection is not authenticated (no --key){}\n",
               endpoint.authFailed > 0
                   ? fmt::format("; {} packets failed authentication", endpoint.authFailed)
                   : std::string());
  }
  fmt::print(out_, "CPU time: {:.2f} s user, {:.2f} s system; ended by {}\n", ending.cpu.userS,
             ending.cpu.systemS, ending.reason);
  if (file_) {
    const FileSummary& f = *file_;
    const bool sender = run_.role == Role::kSender;
    fmt::print(out_, "file: {} ({} of {} bytes{})\n", printableName(f.path), f.bytes, f.size,
               !sender && !f.name.empty() ? ", the sender's " + printableName(f.name) : std::string());
    if (sender) {
      fmt::print(out_, "disk: read + hash {} on the reader thread; the send loop waited {} for it\n",
                 durationText(f.ioNs), durationText(f.ioWaitNs));
    } else {
      fmt::print(out_,
                 "disk: write + hash {} on the writer thread, final fsync + rename {}; the receive loop "
                 "waited {} for it\n",
                 durationText(f.ioNs - f.syncNs), durationText(f.syncNs), durationText(f.ioWaitNs));
    }
    if (sender) {
      fmt::print(out_, "sha256 {}{}\n", f.sha256.empty() ? "(not finished)" : f.sha256,
                 f.delivered == true ? "  delivered: the receiver counted every byte, none lost" : "");
    } else if (f.verified == true) {
      fmt::print(out_, "sha256 {}  verified\n", f.sha256);
    } else {
      fmt::print(
          out_, "sha256 {}  NOT verified{}\n", f.sha256.empty() ? "(not finished)" : f.sha256,
          f.peerSha256.empty() || f.peerSha256 == f.sha256 ? "" : " (the sender's: " + f.peerSha256 + ")");
    }
  }
  std::fflush(out_);
}

void Reporter::finishFile(nlohmann::json& j) {
  if (!file_) return;
  const FileSummary& f = *file_;
  nlohmann::json file;
  file["path"] = printableName(f.path);
  file["name"] = printableName(f.name);
  file["size"] = f.size;
  file["bytes"] = f.bytes;
  file["payload_bytes"] = f.chunkBytes;
  file["stream_bytes"] = f.streamBytes;
  file["digest"] = "sha256";
  file["sha256"] = f.sha256.empty() ? nlohmann::json(nullptr) : nlohmann::json(f.sha256);
  file["io_ns"] = f.ioNs;
  file["io_wait_ns"] = f.ioWaitNs;
  if (run_.role == Role::kReceiver) file["sync_ns"] = f.syncNs;
  if (run_.role == Role::kReceiver) {
    file["sender_sha256"] = f.peerSha256.empty() ? nlohmann::json(nullptr) : nlohmann::json(f.peerSha256);
    file["verified"] = f.verified.value_or(false);
  } else {
    file["delivered"] = f.delivered.value_or(false);
  }
  file["error"] = f.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(printableName(f.error));
  j["file"] = std::move(file);
}

}  // namespace mpxdp::cli
