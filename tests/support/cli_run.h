// Test support for integration tests that run `mpxdp send` / `mpxdp recv`
// as processes on a test bed: one run with link changes applied while it
// flows, and readers of the JSON reports.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "testbed.h"

namespace mpxdp::test {

std::uint64_t monotonicNs();

struct Change {
  double atS = 0;  // after the sender starts
  std::size_t link = 0;
  testbed::LinkChange change;
};

struct Run {
  nlohmann::json sender;
  nlohmann::json receiver;
  std::vector<double> changeRxS;  // when each change was applied, on the receiver's timeline
  std::vector<double> changeTxS;  // ... and on the sender's
  // The test bed's links read back after the run: what they dropped (shaper, full ring, impairments).
  std::vector<testbed::LinkInfo> linksAfter;
};

struct RunOptions {
  double seconds = 6;
  std::vector<std::string> sendExtra;
  std::vector<std::string> recvExtra;
  std::vector<std::string> backupLinks;  // sender interfaces given as --backup-link
  std::string linkSuffix;                // after IFACE=PEER on the sender's links, e.g. "@300M"
};

// Receiver: `mpxdp recv --testbed` with 10 ms intervals. Sender: explicit
// --link IFACE=PEER (estimated rates unless linkSuffix gives one), 100 ms
// intervals. Both must exit 0 (else a gtest failure and nullopt).
std::optional<Run> runWithChanges(const std::string& mpxdp, const testbed::TestbedInfo& bed,
                                  const RunOptions& options, const std::vector<Change>& changes);

// Receiver intervals ending in (from, to].
std::vector<nlohmann::json> intervalsBetween(const nlohmann::json& report, double from, double to);
// Goodput over the intervals: their bytes over their total time.
double meanBps(const std::vector<nlohmann::json>& intervals);
std::uint64_t lostIn(const std::vector<nlohmann::json>& intervals);
// The receiver's intervals with a loss, as "start_s: lost (late) [path i: gaps in its own sequence]"
// items, for a failure message.
std::string lossesIn(const std::vector<nlohmann::json>& intervals);
// The receiver's per-path totals (packets, gaps in the path's own sequence,
// frames the host dropped), for a failure message.
std::string receiverPaths(const nlohmann::json& receiver);
// The losses of a window of the receiver's intervals, against what mpxdp
// cannot have caused: packets that came late over the whole run (they
// arrived: a stalled host's), frames the given links dropped (tbf queue or
// the endpoint's full ring) and frames the receiving host dropped on those paths.
struct LossAccount {
  std::uint64_t lost = 0;
  std::uint64_t late = 0;
  std::uint64_t shaperDropped = 0;
  std::uint64_t ringDropped = 0;
  std::uint64_t hostDropped = 0;
  std::uint64_t unexplained() const {
    const std::uint64_t explained = late + shaperDropped + ringDropped + hostDropped;
    return lost > explained ? lost - explained : 0;
  }
  std::string describe() const;
};
LossAccount accountLosses(const Run& run, double from, double to, const std::vector<std::size_t>& links);
// The first event of path with the given new state at or after atS (sender timeline).
std::optional<double> eventTime(const nlohmann::json& sender, int path, const std::string& to, double atS);

}  // namespace mpxdp::test
