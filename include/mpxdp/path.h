// Path states as the connection reports them (issue 8: failover, backup
// paths). The state machine itself is internal (src/path/path_state.h).
#pragma once

#include <cstdint>
#include <string_view>

#include "mpxdp/export.h"

namespace mpxdp {

// kActive: carries data. kStandby: a backup path, alive but kept idle (PINGs
// only) while an active path is alive. kSuspect: unanswered for longer than
// its PTO; traffic moves off it. kDead: suspect for too long; only probes
// until it answers a few in a row.
enum class PathState : std::uint8_t { kActive = 0, kStandby = 1, kSuspect = 2, kDead = 3 };

// "active", "standby", "suspect" or "dead".
MPXDP_API std::string_view toString(PathState state) noexcept;

// A path changed state at timeNs.
struct PathEvent {
  std::uint64_t timeNs = 0;
  std::uint16_t path = 0;
  PathState previous = PathState::kActive;
  PathState state = PathState::kActive;
};

}  // namespace mpxdp
