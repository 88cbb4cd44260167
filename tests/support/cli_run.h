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
double meanBps(const std::vector<nlohmann::json>& intervals);
std::uint64_t lostIn(const std::vector<nlohmann::json>& intervals);
// The receiver's intervals with a loss, as "start_s: lost (late)" items, for a failure message.
std::string lossesIn(const std::vector<nlohmann::json>& intervals);
// The first event of path with the given new state at or after atS (sender timeline).
std::optional<double> eventTime(const nlohmann::json& sender, int path, const std::string& to, double atS);

}  // namespace mpxdp::test
