// Liveness of one path: when to suspect it, declare it dead, probe it and
// re-admit it. Pure logic: every call takes nowNs; nothing allocates.
//
//              answer                         suspect for deadAfterNs
//   alive  ──────────────┐     ┌──────────────────────────────┐
//  (active │ standby)    │     │                              ▼
//     │  ▲               │   suspect ─────────────────────▶  dead
//     │  └── any answer ─┼──────┘                             │
//     │                  │                                    │ probesToReadmit consecutive
//     └── unanswered for max(pto, minSuspectNs) ──▶ suspect    │ answered probes
//                                                             ▼
//                                                           alive
//
// - alive (kActive, or kStandby for a backup path): the path is "waiting" from
//   the first ack-eliciting send after the newest answered one; unanswered for
//   max(pto, minSuspectNs) => kSuspect (the integrator moves traffic off at once).
// - kSuspect: PINGs every suspectProbeIntervalNs; any answer => alive again (its
//   wait restarts at the answer, so a lossy path flips at most once per PTO);
//   suspect for deadAfterNs => kDead.
// - kDead: PINGs every idleProbeIntervalNs; probesToReadmit consecutive
//   answered probes => alive; a probe unanswered for max(pto, minSuspectNs)
//   resets the count. Other answers (late ACKs of old data) do not count.
// - Hysteresis: dying within flapWindowNs of a re-admission doubles
//   probesToReadmit (up to maxProbesToReadmit); every flapWindowNs alive
//   halves it back towards the configured value.
#pragma once

#include <cstdint>
#include <limits>

#include "mpxdp/path.h"

namespace mpxdp::path {

struct PathStateOptions {
  std::uint64_t minSuspectNs = 10'000'000;            // suspect when unanswered for max(pto, this)
  std::uint64_t deadAfterNs = 300'000'000;            // suspect this long => dead
  std::uint64_t idleProbeIntervalNs = 100'000'000;    // PING on idle active, standby and dead paths
  std::uint64_t suspectProbeIntervalNs = 10'000'000;  // PING on suspect paths
  std::uint32_t probesToReadmit = 3;                  // consecutive answered probes to bring a dead path back
  std::uint32_t maxProbesToReadmit = 48;
  // Dying again within this after re-admission doubles probesToReadmit; a stable window halves it back.
  std::uint64_t flapWindowNs = 10'000'000'000;
};

inline constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();

class PathStateMachine {
 public:
  // standby: a backup path (its alive state is kStandby).
  explicit PathStateMachine(bool standby, const PathStateOptions& options = {});

  PathState state() const noexcept { return state_; }
  bool alive() const noexcept { return state_ == PathState::kActive || state_ == PathState::kStandby; }

  // An ack-eliciting packet (data or PING) went out on the path.
  void onSent(std::uint64_t nowNs) noexcept;
  // Evidence of delivery: an ACK newly acknowledging a packet we sent at
  // sentAtNs, or a PONG to a PING sent at sentAtNs (probe). True when the state changed.
  // nextOutstandingSentNs: when the caller knows it, the send time of the
  // first packet sent after that one and still unanswered (the wait starts
  // there); 0: unknown, the wait starts just after sentAtNs.
  bool onAnswered(std::uint64_t nowNs, std::uint64_t sentAtNs, bool probe,
                  std::uint64_t nextOutstandingSentNs = 0) noexcept;
  // The peer was silent on every path at once and is heard again: it (or this
  // host) stalled, so this path's silence says nothing about the path. An
  // alive path still waiting is judged from nowNs on, not from before the stall.
  void excuseSilence(std::uint64_t nowNs) noexcept;
  // Timeouts; true when the state changed. ptoNs from the path's estimator.
  bool onTimer(std::uint64_t nowNs, std::uint64_t ptoNs) noexcept;
  // When the next PING should go out (idle alive, suspect, dead paths); at or
  // before nowNs: due now. kNever (UINT64_MAX) when none is needed: an alive
  // path with unanswered packets in flight (their answer, or the suspect
  // timeout, decides).
  std::uint64_t nextProbeNs(std::uint64_t nowNs) const noexcept;
  // A PING went out (implies onSent).
  void onProbeSent(std::uint64_t nowNs) noexcept;
  // Earliest time onTimer may change something (state or probesToReadmit); kNever when nothing is pending.
  std::uint64_t nextTimerNs(std::uint64_t ptoNs) const noexcept;
  std::uint32_t probesToReadmit() const noexcept { return probesToReadmit_; }

  // Changes the role (PATH_STATUS): an alive path switches between kActive and
  // kStandby at once, a suspect or dead one comes back in its new role. True when the state changed.
  bool setStandby(std::uint64_t nowNs, bool standby) noexcept;

  // Additions: answered probes counted towards re-admission, whether packets
  // are unanswered and since when, the time of the last state change.
  std::uint32_t answeredProbes() const noexcept { return answeredProbes_; }
  bool waiting() const noexcept { return waiting_; }
  std::uint64_t waitingSinceNs() const noexcept { return waitingSince_; }
  std::uint64_t stateSinceNs() const noexcept { return stateSince_; }

 private:
  std::uint64_t suspectAfter(std::uint64_t ptoNs) const noexcept;
  PathState aliveState() const noexcept { return standby_ ? PathState::kStandby : PathState::kActive; }
  void enter(std::uint64_t nowNs, PathState state) noexcept;

  PathStateOptions options_;
  bool standby_;
  PathState state_;
  std::uint64_t stateSince_ = 0;
  std::uint32_t probesToReadmit_;

  std::uint64_t lastSent_ = 0;
  bool sentAny_ = false;
  bool waiting_ = false;
  std::uint64_t waitingSince_ = 0;
  bool answeredAny_ = false;
  std::uint64_t newestAnsweredSent_ = 0;

  std::uint64_t lastProbe_ = 0;
  bool probedAny_ = false;
  // Dead: the newest probe counted (answered) or failed, so each counts once.
  std::uint64_t lastJudgedProbe_ = 0;
  bool judgedAny_ = false;
  std::uint32_t answeredProbes_ = 0;

  bool readmitted_ = false;        // re-admitted from dead at least once
  std::uint64_t readmitNs_ = 0;    // last re-admission
  std::uint64_t stableSince_ = 0;  // start of the current flap window while alive
};

}  // namespace mpxdp::path
