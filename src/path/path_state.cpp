#include "path_state.h"

#include <algorithm>

namespace mpxdp {

std::string_view toString(PathState state) noexcept {
  switch (state) {
    case PathState::kActive:
      return "active";
    case PathState::kStandby:
      return "standby";
    case PathState::kSuspect:
      return "suspect";
    case PathState::kDead:
      return "dead";
  }
  return "unknown";
}

}  // namespace mpxdp

namespace mpxdp::path {

PathStateMachine::PathStateMachine(bool standby, const PathStateOptions& options)
    : options_(options), standby_(standby), state_(aliveState()) {
  options_.maxProbesToReadmit = std::max<std::uint32_t>(options_.maxProbesToReadmit, 1);
  options_.probesToReadmit =
      std::clamp<std::uint32_t>(options_.probesToReadmit, 1, options_.maxProbesToReadmit);
  probesToReadmit_ = options_.probesToReadmit;
}

std::uint64_t PathStateMachine::suspectAfter(std::uint64_t ptoNs) const noexcept {
  return std::max(ptoNs, options_.minSuspectNs);
}

void PathStateMachine::enter(std::uint64_t nowNs, PathState state) noexcept {
  state_ = state;
  stateSince_ = nowNs;
}

bool PathStateMachine::setStandby(std::uint64_t nowNs, bool standby) noexcept {
  standby_ = standby;
  if (!alive() || state_ == aliveState()) return false;
  enter(nowNs, aliveState());
  return true;
}

void PathStateMachine::onSent(std::uint64_t nowNs) noexcept {
  lastSent_ = nowNs;
  sentAny_ = true;
  if (!waiting_) {
    waiting_ = true;
    waitingSince_ = nowNs;
  }
}

void PathStateMachine::onProbeSent(std::uint64_t nowNs) noexcept {
  lastProbe_ = nowNs;
  probedAny_ = true;
  onSent(nowNs);
}

bool PathStateMachine::onAnswered(std::uint64_t nowNs, std::uint64_t sentAtNs, bool probe,
                                  std::uint64_t nextOutstandingSentNs) noexcept {
  if (!answeredAny_ || sentAtNs >= newestAnsweredSent_) {
    answeredAny_ = true;
    newestAnsweredSent_ = sentAtNs;
    if (waiting_) {
      if (lastSent_ > sentAtNs) {
        // Packets sent after it are still out. The first of them went out
        // at nextOutstandingSentNs when the caller's log knows it; else after
        // sentAtNs, and sentAtNs + 1 is the (early, so cautious) bound. On a
        // path with sparse traffic that bound can lie tens of ms before the
        // packet really left, and the path would turn suspect at once.
        const std::uint64_t since = nextOutstandingSentNs > sentAtNs ? nextOutstandingSentNs : sentAtNs + 1;
        waitingSince_ = std::max(waitingSince_, since);
      } else {
        waiting_ = false;
      }
    }
  }
  switch (state_) {
    case PathState::kActive:
    case PathState::kStandby:
      return false;
    case PathState::kSuspect:
      // Alive after all; the packets still out get a fresh PTO.
      if (waiting_) waitingSince_ = nowNs;
      enter(nowNs, aliveState());
      return true;
    case PathState::kDead:
      if (!probe || (judgedAny_ && sentAtNs <= lastJudgedProbe_)) return false;
      judgedAny_ = true;
      lastJudgedProbe_ = sentAtNs;
      if (++answeredProbes_ < probesToReadmit_) return false;
      answeredProbes_ = 0;
      readmitted_ = true;
      readmitNs_ = nowNs;
      stableSince_ = nowNs;
      if (waiting_) waitingSince_ = nowNs;
      enter(nowNs, aliveState());
      return true;
  }
  return false;
}

void PathStateMachine::excuseSilence(std::uint64_t nowNs) noexcept {
  if (alive() && waiting_) waitingSince_ = std::max(waitingSince_, nowNs);
}

bool PathStateMachine::onTimer(std::uint64_t nowNs, std::uint64_t ptoNs) noexcept {
  const std::uint64_t threshold = suspectAfter(ptoNs);
  bool changed = false;
  if (alive()) {
    if (readmitted_ && probesToReadmit_ > options_.probesToReadmit &&
        nowNs - stableSince_ >= options_.flapWindowNs) {
      probesToReadmit_ = std::max(options_.probesToReadmit, probesToReadmit_ / 2);
      stableSince_ = nowNs;
    }
    if (waiting_ && nowNs >= waitingSince_ && nowNs - waitingSince_ >= threshold) {
      enter(waitingSince_ + threshold, PathState::kSuspect);
      changed = true;
    }
  }
  if (state_ == PathState::kSuspect && nowNs - stateSince_ >= options_.deadAfterNs) {
    const std::uint64_t deathNs = stateSince_ + options_.deadAfterNs;
    if (readmitted_ && deathNs - readmitNs_ < options_.flapWindowNs) {
      probesToReadmit_ = std::min(options_.maxProbesToReadmit, probesToReadmit_ * 2);
    }
    enter(deathNs, PathState::kDead);
    answeredProbes_ = 0;
    // Probes sent before the death do not count towards re-admission.
    judgedAny_ = probedAny_;
    lastJudgedProbe_ = lastProbe_;
    changed = true;
  }
  if (state_ == PathState::kDead && probedAny_ && (!judgedAny_ || lastProbe_ > lastJudgedProbe_) &&
      nowNs - lastProbe_ >= threshold) {
    answeredProbes_ = 0;  // a probe went unanswered
    judgedAny_ = true;
    lastJudgedProbe_ = lastProbe_;
  }
  return changed;
}

std::uint64_t PathStateMachine::nextProbeNs(std::uint64_t nowNs) const noexcept {
  switch (state_) {
    case PathState::kActive:
    case PathState::kStandby:
      if (waiting_) return kNever;
      return sentAny_ ? lastSent_ + options_.idleProbeIntervalNs : nowNs;
    case PathState::kSuspect:
      if (probedAny_ && lastProbe_ >= stateSince_) return lastProbe_ + options_.suspectProbeIntervalNs;
      return stateSince_;
    case PathState::kDead:
      if (probedAny_ && lastProbe_ >= stateSince_) return lastProbe_ + options_.idleProbeIntervalNs;
      return stateSince_;
  }
  return kNever;
}

std::uint64_t PathStateMachine::nextTimerNs(std::uint64_t ptoNs) const noexcept {
  const std::uint64_t threshold = suspectAfter(ptoNs);
  std::uint64_t next = kNever;
  switch (state_) {
    case PathState::kActive:
    case PathState::kStandby:
      if (waiting_) next = waitingSince_ + threshold;
      if (readmitted_ && probesToReadmit_ > options_.probesToReadmit) {
        next = std::min(next, stableSince_ + options_.flapWindowNs);
      }
      break;
    case PathState::kSuspect:
      next = stateSince_ + options_.deadAfterNs;
      break;
    case PathState::kDead:
      if (probedAny_ && (!judgedAny_ || lastProbe_ > lastJudgedProbe_)) next = lastProbe_ + threshold;
      break;
  }
  return next;
}

}  // namespace mpxdp::path
