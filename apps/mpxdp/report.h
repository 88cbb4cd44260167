// Interval and final reports of `mpxdp send` and `mpxdp recv`: aligned text
// like iperf3's, or (with -J) one JSON object printed at the end.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <optional>

#include "mpxdp/connection.h"
#include "mpxdp/endpoint.h"

namespace mpxdp::cli {

enum class Role : std::uint8_t { kSender, kReceiver };

// What the run was: printed in the header and copied into the JSON.
struct RunDescription {
  Role role = Role::kReceiver;
  std::string backend;
  std::string reorder;             // receiver
  std::string scheduler;           // --scheduler (what this side sends with)
  std::string pacing;              // --pacing
  std::uint32_t payloadBytes = 0;  // sender: -l
  std::uint64_t totalRateBps = 0;  // sender: -b (0 = unpaced)
  std::vector<std::string> linkNames;
  std::vector<std::uint64_t> linkRatesBps;
  std::vector<bool> linkBackups;       // --backup-link
  std::vector<std::string> linkModes;  // how each link is served, e.g. "xdp:s0 rx q0-3 tx q0 copy"
  double intervalS = 1.0;              // -i
  int cpu = -1;                        // the CPU the run's thread is pinned to; -1 = not pinned
  std::uint64_t rxHoldoffNs = 0;       // --rx-usecs in effect
  std::uint32_t connId = 0;
  bool reliable = false;   // --reliable (or -F)
  bool redundant = false;  // --redundant
  std::string file;        // -F: what the header line says about the file
  std::string security;    // securityText(): the cipher, or that nothing is authenticated
  // recv, keyed: which of its --key files the peer holds (0-based) and that file.
  std::optional<std::uint32_t> keyIndex;
  std::string keyFile;
  // Several connections at once (recv --max-peers): interval lines start with the connection id.
  bool tagLines = false;
};

// How far a file transfer got (interval reports: bytes, rate, ETA).
struct FileProgress {
  std::uint64_t bytes = 0;  // file bytes sent or received so far
  std::uint64_t size = 0;   // the file's size, when known
  bool sizeKnown = false;   // the receiver learns it from the header
};

// What each side reports about the file (the final report's "file" object).
struct FileSummary {
  std::string path;  // -F as given
  std::string name;  // the name in the header (the sender's base name)
  std::uint64_t size = 0;
  std::uint64_t bytes = 0;  // file bytes read and sent, or received
  std::uint32_t chunkBytes = 0;
  std::string sha256;            // hex digest of the bytes this side read or received ("" when unfinished)
  std::string peerSha256;        // receiver: the digest in the sender's trailer
  std::optional<bool> verified;  // receiver: digests matched and the file is in place
  std::uint64_t ioNs = 0;        // reading + hashing (sender), writing + hashing (receiver), all of it
  std::uint64_t syncNs = 0;      // receiver: of ioNs, the final fsync and rename
  // How long the network loop waited for the disk thread (the reader had no
  // data ready, or the writer no free buffer): disk I/O as a bottleneck.
  std::uint64_t ioWaitNs = 0;
  std::uint64_t streamBytes = 0;  // header + file + trailer
  std::optional<bool> delivered;  // sender: the receiver's REPORT counts every stream byte, none lost
  std::string error;              // why the transfer failed ("" when it did not)
};

// Cumulative counters at one moment. packets/bytes are payloads delivered
// (receiver) or sent (sender).
struct Sample {
  double timeS = 0;  // since the start of the measurement
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::uint64_t lost = 0;
  std::uint64_t late = 0;
  std::uint64_t outOfOrderArrived = 0;
  std::uint64_t outOfOrderDelivered = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t corrupt = 0;
};

Sample sampleOf(const ConnectionStats& stats, Role role, double timeS, std::uint64_t corrupt);

struct CpuTime {
  double userS = 0;
  double systemS = 0;
};
// getrusage(RUSAGE_SELF): user and system time of the whole process.
CpuTime processCpuTime();

// Why a run ended, for the final report.
struct Ending {
  std::string reason;  // "time", "end of stream", "idle timeout", "signal", "peer", "error"
  CpuTime cpu;
  double durationS = 0;
};

class Reporter {
 public:
  // out == nullptr: nothing is printed (the JSON is still built, for a combined report).
  Reporter(RunDescription run, bool json, std::FILE* out);

  // Prints the header (text mode only).
  void begin();
  // The run's start on CLOCK_MONOTONIC (the connection's clock): interval
  // times and path event times count from it.
  void start(std::uint64_t startNs) { startNs_ = startNs; }
  // One interval from the previous snapshot to `stats`, taken at timeS: the
  // [SUM] line, one line per path and the path events since the last call
  // (text), or one entry of "intervals" (JSON).
  // With a file (-F): its progress, printed as bytes, rate and ETA.
  void interval(const ConnectionStats& stats, double timeS, std::uint64_t corrupt,
                const std::optional<FileProgress>& file = std::nullopt);
  // The file of -F, for finish(): its "file" object and lines.
  void setFile(FileSummary file) { file_ = std::move(file); }
  // The final summary: totals, per-path tables, path events, hold times,
  // malformed input, CPU time; a sender adds the receiver's figures when its
  // REPORT arrived.
  void finish(const ConnectionStats& stats, const Sample& total, const Ending& ending,
              const EndpointStats& endpoint, const std::optional<PeerReport>& peer);

  // The JSON object finish() prints with -J (also built in text mode).
  const nlohmann::json& json() const { return json_; }

 private:
  // Per-path counters of the previous interval's end.
  struct PathCounters {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint64_t lost = 0;
    std::uint64_t requeued = 0;
    std::uint64_t retransmitted = 0;
    std::uint64_t ackFramesSent = 0;
    std::uint64_t controlBytesSent = 0;
  };

  std::string timeSpan(double fromS, double toS) const;
  void printLine(const Sample& from, const Sample& to, const char* tag);
  void printPathLine(std::size_t path, const PathStats& p, const PathCounters& from, bool final);
  void printPathEvent(const PathEvent& event);
  PathCounters countersOf(const PathStats& p) const;
  nlohmann::json pathJson(std::size_t path, const PathStats& p, const PathCounters& from) const;
  // An interval kept for the JSON, which is built at the end: at -i 0.01
  // building it as we go would cost more than the stats snapshot.
  struct IntervalRecord {
    Sample from;
    Sample to;
    std::vector<PathCounters> fromPaths;
    std::vector<PathStats> paths;
    std::optional<FileProgress> file;
    std::uint64_t fromFileBytes = 0;
  };
  nlohmann::json intervalJson(const IntervalRecord& record) const;
  nlohmann::json pathEventJson(const PathEvent& event) const;
  std::string linkName(std::size_t path) const;
  void printFileProgress(const FileProgress& file, double fromS, double toS);
  void finishFile(nlohmann::json& j);

  RunDescription run_;
  std::string tag_;  // "0123abcd " before interval lines (run_.tagLines), else empty
  bool jsonMode_;
  std::FILE* out_;
  std::uint64_t startNs_ = 0;
  Sample last_;
  std::vector<PathCounters> lastPaths_;
  std::size_t eventsSeen_ = 0;  // path events already printed
  std::vector<IntervalRecord> intervals_;
  std::uint64_t lastFileBytes_ = 0;
  std::optional<FileSummary> file_;
  nlohmann::json json_;
};

}  // namespace mpxdp::cli
