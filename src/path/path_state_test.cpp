#include "path_state.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <vector>

namespace mpxdp::path {
namespace {

constexpr std::uint64_t kMs = 1'000'000;
constexpr std::uint64_t kSecond = 1'000'000'000;

// Drives a state machine as the connection would, over a path with a fixed
// RTT that can be cut: data every millisecond while the path is alive and
// active (when `busy`), PINGs when the machine asks for them, and answers
// arriving an RTT later when the path was up at the send time.
class Driver {
 public:
  Driver(bool standby, const PathStateOptions& options, std::uint64_t rttNs, bool busy)
      : machine(standby, options), rtt_(rttNs), busy_(busy) {}

  void runUntil(std::uint64_t endNs) {
    for (; now_ < endNs; now_ += 100'000) step();
  }
  void setUp(bool up) { up_ = up; }
  std::uint64_t now() const { return now_; }

  PathStateMachine machine;
  std::vector<PathEvent> events;
  std::uint64_t probes = 0;
  std::uint64_t ptoNs = 30 * kMs;

 private:
  struct Answer {
    std::uint64_t at;
    std::uint64_t sentAt;
    bool probe;
  };
  void record(PathState before) {
    if (machine.state() != before) events.push_back(PathEvent{now_, 0, before, machine.state()});
  }
  void send(bool probe) {
    if (probe) {
      machine.onProbeSent(now_);
      ++probes;
    } else {
      machine.onSent(now_);
    }
    if (up_) answers_.push_back(Answer{now_ + rtt_, now_, probe});
  }
  void step() {
    while (!answers_.empty() && answers_.front().at <= now_) {
      const Answer a = answers_.front();
      answers_.pop_front();
      const PathState before = machine.state();
      const bool changed = machine.onAnswered(now_, a.sentAt, a.probe);
      EXPECT_EQ(changed, machine.state() != before);
      record(before);
    }
    const std::uint64_t timer = machine.nextTimerNs(ptoNs);
    const PathState before = machine.state();
    const bool changed = machine.onTimer(now_, ptoNs);
    EXPECT_EQ(changed, machine.state() != before);
    if (changed) {
      EXPECT_LE(timer, now_) << "nextTimerNs promised nothing before " << timer;
    }
    record(before);
    if (busy_ && machine.state() == PathState::kActive && now_ % kMs == 0) send(false);
    if (machine.nextProbeNs(now_) <= now_) send(true);
  }

  std::uint64_t now_ = 0;
  std::uint64_t rtt_;
  bool busy_;
  bool up_ = true;
  std::deque<Answer> answers_;
};

TEST(PathStateTest, Names) {
  EXPECT_EQ(toString(PathState::kActive), "active");
  EXPECT_EQ(toString(PathState::kStandby), "standby");
  EXPECT_EQ(toString(PathState::kSuspect), "suspect");
  EXPECT_EQ(toString(PathState::kDead), "dead");
}

// A busy path cut at 1 s: suspect one PTO after the first unanswered packet,
// dead deadAfterNs later; back after three answered probes once it returns.
TEST(PathStateTest, CutDetectionAndRecovery) {
  PathStateOptions options;
  Driver d(false, options, 10 * kMs, true);
  d.runUntil(kSecond);
  EXPECT_EQ(d.machine.state(), PathState::kActive);
  EXPECT_TRUE(d.events.empty());
  EXPECT_EQ(d.probes, 0u);  // a busy path needs no PINGs
  d.setUp(false);
  d.runUntil(2 * kSecond);
  ASSERT_EQ(d.events.size(), 2u);
  EXPECT_EQ(d.events[0].state, PathState::kSuspect);
  // The last answered packet went out at 999 ms, the first unanswered at 1 s: suspect a PTO
  // (30 ms) later, or up to one send gap earlier (the wait is counted from just after the
  // answered packet, there is no per-packet log).
  EXPECT_GE(d.events[0].timeNs, kSecond + 29 * kMs);
  EXPECT_LE(d.events[0].timeNs, kSecond + 32 * kMs);
  EXPECT_EQ(d.events[1].previous, PathState::kSuspect);
  EXPECT_EQ(d.events[1].state, PathState::kDead);
  EXPECT_NEAR(static_cast<double>(d.events[1].timeNs - d.events[0].timeNs), 300e6, 1e6);
  EXPECT_EQ(d.machine.state(), PathState::kDead);
  // Dead: a PING every 100 ms.
  const std::uint64_t probesDead = d.probes;
  d.runUntil(3 * kSecond);
  EXPECT_NEAR(static_cast<double>(d.probes - probesDead), 10, 1);
  d.setUp(true);
  d.runUntil(4 * kSecond);
  ASSERT_EQ(d.events.size(), 3u);
  EXPECT_EQ(d.events[2].state, PathState::kActive);
  // Three probes answered: the third goes out ~200 ms after the first that got through.
  EXPECT_GE(d.events[2].timeNs, 3 * kSecond + 200 * kMs);
  EXPECT_LE(d.events[2].timeNs, 3 * kSecond + 320 * kMs);
}

// A short outage: suspect, then the first answer brings the path back at once.
TEST(PathStateTest, SuspectRecoversOnAnyAnswer) {
  PathStateOptions options;
  Driver d(false, options, 10 * kMs, true);
  d.runUntil(kSecond);
  d.setUp(false);
  d.runUntil(kSecond + 100 * kMs);
  EXPECT_EQ(d.machine.state(), PathState::kSuspect);
  // Suspect: PINGs every 10 ms.
  const std::uint64_t probes = d.probes;
  d.runUntil(kSecond + 200 * kMs);
  EXPECT_NEAR(static_cast<double>(d.probes - probes), 10, 1);
  d.setUp(true);
  d.runUntil(kSecond + 250 * kMs);
  ASSERT_EQ(d.events.size(), 2u);
  EXPECT_EQ(d.events[1].state, PathState::kActive);
  // The first PING after the repair (<= 10 ms) is answered an RTT later.
  EXPECT_LE(d.events[1].timeNs, kSecond + 200 * kMs + 21 * kMs);
  d.runUntil(2 * kSecond);
  EXPECT_EQ(d.events.size(), 2u);  // stays up
}

// The suspect threshold is max(pto, minSuspectNs).
TEST(PathStateTest, SuspectAfterMaxOfPtoAndMinimum) {
  PathStateOptions options;
  options.minSuspectNs = 50 * kMs;
  PathStateMachine m(false, options);
  m.onSent(0);
  EXPECT_EQ(m.nextTimerNs(20 * kMs), 50 * kMs);
  EXPECT_FALSE(m.onTimer(49 * kMs, 20 * kMs));
  EXPECT_TRUE(m.onTimer(50 * kMs, 20 * kMs));
  EXPECT_EQ(m.state(), PathState::kSuspect);
  PathStateMachine n(false, options);
  n.onSent(0);
  EXPECT_EQ(n.nextTimerNs(80 * kMs), 80 * kMs);
  EXPECT_FALSE(n.onTimer(79 * kMs, 80 * kMs));
  EXPECT_TRUE(n.onTimer(80 * kMs, 80 * kMs));
}

// Waiting starts at the first send after the newest answered packet.
TEST(PathStateTest, WaitingFollowsTheAnswers) {
  PathStateMachine m(false);
  EXPECT_FALSE(m.waiting());
  m.onSent(10 * kMs);
  m.onSent(20 * kMs);
  EXPECT_TRUE(m.waiting());
  EXPECT_EQ(m.waitingSinceNs(), 10 * kMs);
  EXPECT_FALSE(m.onAnswered(30 * kMs, 10 * kMs, false));
  EXPECT_TRUE(m.waiting());
  EXPECT_GT(m.waitingSinceNs(), 10 * kMs);
  EXPECT_LE(m.waitingSinceNs(), 20 * kMs);
  EXPECT_FALSE(m.onAnswered(40 * kMs, 20 * kMs, false));
  EXPECT_FALSE(m.waiting());
  EXPECT_EQ(m.nextTimerNs(30 * kMs), kNever);
  // A late answer for an older packet changes nothing.
  m.onSent(50 * kMs);
  EXPECT_FALSE(m.onAnswered(55 * kMs, 15 * kMs, false));
  EXPECT_EQ(m.waitingSinceNs(), 50 * kMs);
}

// Sparse traffic (the TCP ACKs of a tunnel's reverse direction): a packet
// answered late, and the next one sent 25 ms after it. With the send time of
// that next packet the wait starts there, not just after the answered one;
// else the path would be 25 ms into its 30 ms suspect threshold at once.
TEST(PathStateTest, TheWaitStartsWhenTheNextOutstandingPacketLeft) {
  PathStateOptions options;
  options.minSuspectNs = 30 * kMs;
  PathStateMachine m(false, options);
  m.onSent(0);
  m.onSent(25 * kMs);
  EXPECT_FALSE(m.onAnswered(26 * kMs, 0, false, 25 * kMs));
  EXPECT_EQ(m.waitingSinceNs(), 25 * kMs);
  EXPECT_FALSE(m.onTimer(40 * kMs, 10 * kMs));
  EXPECT_EQ(m.state(), PathState::kActive);
  // Without it, the cautious bound.
  PathStateMachine cautious(false, options);
  cautious.onSent(0);
  cautious.onSent(25 * kMs);
  EXPECT_FALSE(cautious.onAnswered(26 * kMs, 0, false));
  EXPECT_EQ(cautious.waitingSinceNs(), 1u);
  EXPECT_TRUE(cautious.onTimer(40 * kMs, 10 * kMs));
  EXPECT_EQ(cautious.state(), PathState::kSuspect);
}

// A flapping link (up 400 ms, down 600 ms): every death soon after a
// re-admission doubles the probes needed, so the path soon stops coming back
// for the short up phases; a stable link halves the count back.
TEST(PathStateTest, FlappingLinkIsHeldBack) {
  PathStateOptions options;
  options.flapWindowNs = 10 * kSecond;
  Driver d(false, options, 10 * kMs, true);
  d.runUntil(kSecond);
  std::uint64_t readmissions = 0;
  for (int cycle = 0; cycle < 20; ++cycle) {
    d.setUp(false);
    d.runUntil(d.now() + 600 * kMs);
    d.setUp(true);
    d.runUntil(d.now() + 400 * kMs);
  }
  for (const PathEvent& e : d.events) {
    if (e.previous == PathState::kDead) ++readmissions;
  }
  // 3 probes fit in a 400 ms up phase, 6 do not: after one or two re-admissions the path stays dead.
  EXPECT_LE(readmissions, 2u);
  EXPECT_GE(d.machine.probesToReadmit(), 6u);
  EXPECT_LE(d.machine.probesToReadmit(), options.maxProbesToReadmit);
  // Up for good: it comes back, and every stable flap window halves the count.
  const std::uint32_t required = d.machine.probesToReadmit();
  d.setUp(true);
  d.runUntil(d.now() + (required + 2) * 100 * kMs);
  EXPECT_TRUE(d.machine.alive());
  d.runUntil(d.now() + 10 * kSecond + 100 * kMs);
  EXPECT_EQ(d.machine.probesToReadmit(), std::max(options.probesToReadmit, required / 2));
  d.runUntil(d.now() + 30 * kSecond);
  EXPECT_EQ(d.machine.probesToReadmit(), options.probesToReadmit);
}

// An unanswered probe while dead resets the count.
TEST(PathStateTest, UnansweredProbeResetsTheCount) {
  PathStateOptions options;
  PathStateMachine m(false, options);
  m.onSent(0);
  EXPECT_TRUE(m.onTimer(10 * kMs, 10 * kMs));
  EXPECT_TRUE(m.onTimer(310 * kMs, 10 * kMs));
  ASSERT_EQ(m.state(), PathState::kDead);
  EXPECT_EQ(m.nextProbeNs(310 * kMs), 310 * kMs);  // at once
  m.onProbeSent(310 * kMs);
  EXPECT_EQ(m.nextProbeNs(311 * kMs), 410 * kMs);
  EXPECT_FALSE(m.onAnswered(315 * kMs, 310 * kMs, true));
  EXPECT_EQ(m.answeredProbes(), 1u);
  EXPECT_FALSE(m.onAnswered(316 * kMs, 310 * kMs, true));  // the same probe counts once
  EXPECT_EQ(m.answeredProbes(), 1u);
  EXPECT_FALSE(m.onAnswered(317 * kMs, 300 * kMs, false));  // late data ACKs do not count
  EXPECT_EQ(m.answeredProbes(), 1u);
  m.onProbeSent(410 * kMs);
  EXPECT_EQ(m.nextTimerNs(10 * kMs), 420 * kMs);
  EXPECT_FALSE(m.onTimer(420 * kMs, 10 * kMs));
  EXPECT_EQ(m.answeredProbes(), 0u);
  m.onProbeSent(510 * kMs);
  EXPECT_FALSE(m.onAnswered(515 * kMs, 510 * kMs, true));
  m.onProbeSent(610 * kMs);
  EXPECT_FALSE(m.onAnswered(615 * kMs, 610 * kMs, true));
  m.onProbeSent(710 * kMs);
  EXPECT_TRUE(m.onAnswered(715 * kMs, 710 * kMs, true));
  EXPECT_EQ(m.state(), PathState::kActive);
}

// A standby path: alive as kStandby, PINGed every 100 ms while idle, and back to
// kStandby (not kActive) after an outage.
TEST(PathStateTest, StandbyRole) {
  PathStateOptions options;
  Driver d(true, options, 20 * kMs, false);
  EXPECT_EQ(d.machine.state(), PathState::kStandby);
  EXPECT_TRUE(d.machine.alive());
  d.runUntil(kSecond);
  EXPECT_TRUE(d.events.empty());
  EXPECT_NEAR(static_cast<double>(d.probes), 10, 1);
  d.setUp(false);
  d.runUntil(2 * kSecond);
  ASSERT_GE(d.events.size(), 2u);
  EXPECT_EQ(d.events[0].previous, PathState::kStandby);
  EXPECT_EQ(d.events[0].state, PathState::kSuspect);
  EXPECT_EQ(d.events[1].state, PathState::kDead);
  d.setUp(true);
  d.runUntil(3 * kSecond);
  EXPECT_EQ(d.machine.state(), PathState::kStandby);
  // The role can change: active at once while alive.
  EXPECT_TRUE(d.machine.setStandby(3 * kSecond, false));
  EXPECT_EQ(d.machine.state(), PathState::kActive);
  EXPECT_FALSE(d.machine.setStandby(3 * kSecond, false));
}

// The probe schedule: idle alive paths every idleProbeIntervalNs after the
// last send, none while packets are out, suspect paths every 10 ms.
TEST(PathStateTest, ProbeSchedule) {
  PathStateOptions options;
  PathStateMachine m(false, options);
  EXPECT_EQ(m.nextProbeNs(5 * kMs), 5 * kMs);  // never sent: at once
  m.onSent(10 * kMs);
  EXPECT_EQ(m.nextProbeNs(11 * kMs), kNever);  // waiting for an answer
  m.onAnswered(20 * kMs, 10 * kMs, false);
  EXPECT_EQ(m.nextProbeNs(21 * kMs), 110 * kMs);
  m.onSent(50 * kMs);
  m.onAnswered(60 * kMs, 50 * kMs, false);
  EXPECT_EQ(m.nextProbeNs(61 * kMs), 150 * kMs);
  m.onProbeSent(150 * kMs);
  EXPECT_TRUE(m.onTimer(180 * kMs, 30 * kMs));
  EXPECT_EQ(m.state(), PathState::kSuspect);
  EXPECT_EQ(m.nextProbeNs(181 * kMs), 180 * kMs);  // at once
  m.onProbeSent(181 * kMs);
  EXPECT_EQ(m.nextProbeNs(182 * kMs), 191 * kMs);
  EXPECT_EQ(m.nextTimerNs(30 * kMs), 180 * kMs + options.deadAfterNs);
}

// After a stall of the peer on every path, excuseSilence makes an alive
// path's wait start at the excuse: it turns suspect one threshold after it,
// not at once (and not dead: the stall was longer than deadAfterNs), and a
// suspect or dead path is not excused.
TEST(PathStateTest, AnExcusedSilenceIsJudgedFromTheExcuse) {
  PathStateOptions options;
  options.minSuspectNs = 30 * kMs;
  PathStateMachine m(false, options);
  m.onSent(kSecond);
  m.excuseSilence(kSecond + 600 * kMs);
  EXPECT_TRUE(m.waiting());
  EXPECT_EQ(m.waitingSinceNs(), kSecond + 600 * kMs);
  EXPECT_FALSE(m.onTimer(kSecond + 629 * kMs, 10 * kMs));
  EXPECT_EQ(m.state(), PathState::kActive);
  EXPECT_TRUE(m.onTimer(kSecond + 630 * kMs, 10 * kMs));
  EXPECT_EQ(m.state(), PathState::kSuspect);
  // Not excused once suspect: the wait stays where it was.
  m.excuseSilence(kSecond + 700 * kMs);
  EXPECT_EQ(m.waitingSinceNs(), kSecond + 600 * kMs);
  // Without the excuse the same silence goes from active to dead in one step.
  PathStateMachine plain(false, options);
  plain.onSent(kSecond);
  EXPECT_TRUE(plain.onTimer(kSecond + 630 * kMs, 10 * kMs));
  EXPECT_EQ(plain.state(), PathState::kDead);
  // A path with nothing outstanding has nothing to excuse.
  PathStateMachine idle(false, options);
  idle.excuseSilence(kSecond);
  EXPECT_FALSE(idle.waiting());
}

}  // namespace
}  // namespace mpxdp::path
