#include "rate_controller.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <limits>

#include "windowed_filter.h"

namespace mpxdp::path {

namespace {

constexpr std::uint64_t kDefaultInitialRateBps = 20'000'000;
constexpr double kStartupGain = 2.0;
constexpr double kDrainGain = 0.6;
constexpr double kProbeDownGain = 0.75;
constexpr double kFirstUpGain = 1.25;
constexpr double kMaxUpGain = 2.0;
constexpr double kBackoffGain = 0.9;
constexpr double kMinBackoffGain = 0.5;
constexpr std::uint32_t kMinCruiseRounds = 2;  // rounds at gain 1 between probes: random in [min, max]
constexpr std::uint32_t kMaxCruiseRounds = 6;
constexpr std::uint64_t kProbeQueueNs = 4'000'000;      // queue a probe-up may add at most
constexpr std::uint64_t kEvaluateMarginNs = 4'000'000;  // two delivery samples after the probe's RTT
// A probe carries at least this many packets (of kProbePacketBits), however
// slow the path: at 1 Mbit/s a few milliseconds of probing hold no packet,
// show nothing, and the rate could never climb again (a path that fell to the
// minimum rate stayed there). The queue it may add is then a packet or two.
constexpr std::uint64_t kMinProbePackets = 8;
constexpr std::uint64_t kProbePacketBits = 1500 * 8;
constexpr std::uint64_t kCruiseQueueNs = 1'000'000;
constexpr double kCruiseDrainGain = 0.95;
constexpr std::uint64_t kBwWindowRounds = 10;
constexpr double kLossThreshold = 0.02;
// Loss while no queue builds is not the path's buffer overflowing (a radio
// link's random loss): it counts only above this much, so 10 % random loss
// does not collapse the rate, yet a policer that drops without queueing
// (loss far above this once we exceed its rate) is still obeyed.
constexpr double kQueuelessLossThreshold = 0.15;
constexpr double kMaxRandomLossCredit = 0.5;
constexpr std::uint64_t kBaselineMinBytes = 30 * 1500;  // a round this big tells the loss rate
constexpr double kBaselineGain = 0.125;
constexpr std::uint64_t kLossMinPackets = 3;  // fewer lost packets in a round are no signal
constexpr std::uint64_t kMinQueueThresholdNs = 2'000'000;
constexpr std::uint64_t kMaxQueueThresholdNs = 10'000'000;
constexpr double kStartupGrowth = 1.25;
constexpr double kStartupCapGain = 3.0;  // in flight in startup: at most this x the estimate over the RTT
constexpr std::uint64_t kStartupCapAckDelayNs = 5'000'000;  // the peer's ACK delay, at most
constexpr std::uint64_t kStartupCapMinBytes = 64 * 1500;
constexpr std::uint32_t kStartupFlatRounds = 3;
constexpr std::uint32_t kStartupAppLimitedFlatRounds = 20;
constexpr std::uint32_t kDrainMaxRounds = 4;
constexpr std::uint64_t kForeignQueueRounds = 6;
constexpr std::uint64_t kForeignQueueMinNs = 100'000'000;
constexpr double kForeignQueueFall = 0.75;  // our own queue drains below this share of its size by then
constexpr double kLossOnlyDecrease = 0.7;
constexpr double kQueueFalling = 0.9;
constexpr std::uint64_t kLossOnlyIncreaseBits = 1500 * 8;
// Loss-only: the loss event rate (rounds with a loss per packet) is averaged
// over about this many rounds, and caps the rate as TCP's throughput equation does.
constexpr double kLossEventRounds = 16;
// Times the equation's rate: our loss events are rounds with any loss, and a
// paced flow's losses spread over more rounds than a window flow's bursts.
// 1.0 left us 30 % of a link against the simulation's Reno flow; 1.3 gives
// 39 % there and kept TCP at 30-56 % of a 100 Mbit/s link on the test bed.
constexpr double kTcpFriendlyScale = 1.3;
constexpr std::uint64_t kLossOnlyRetryNs = 2'000'000'000;  // then try delay again

std::uint64_t scale(std::uint64_t rate, double gain) noexcept {
  const double scaled = static_cast<double>(rate) * gain;
  if (scaled >= static_cast<double>(std::numeric_limits<std::uint64_t>::max())) {
    return std::numeric_limits<std::uint64_t>::max();
  }
  return static_cast<std::uint64_t>(scaled);
}

class FixedRateController final : public RateController {
 public:
  explicit FixedRateController(const RateControlOptions& options) : rate_(options.capBps) {}
  void onSent(std::uint64_t, std::uint32_t) noexcept override {}
  void onAck(const AckSample& sample) noexcept override {
    // The estimate is only reported (stats): the windowed max over ~1 s.
    if (sample.deliveryRateBps == 0) return;
    if (sample.appLimited && sample.deliveryRateBps <= bw_.best()) return;
    bw_.update(1'000'000'000, sample.nowNs, sample.deliveryRateBps);
  }
  void onLoss(const LossSample&) noexcept override {}
  void onRestart(std::uint64_t) noexcept override { bw_.clear(); }
  std::uint64_t pacingRateBps() const noexcept override { return rate_; }
  std::uint64_t bandwidthEstimateBps() const noexcept override { return bw_.best(); }
  RatePhase phase() const noexcept override { return RatePhase::kFixed; }
  std::uint64_t inflightCapBytes() const noexcept override {
    return std::numeric_limits<std::uint64_t>::max();
  }

 private:
  std::uint64_t rate_;
  WindowedMax<std::uint64_t> bw_;
};

class AutoRateController final : public RateController {
 public:
  explicit AutoRateController(const RateControlOptions& options) : options_(options), rng_(options.seed) {
    initialRate_ = options_.initialRateBps != 0 ? options_.initialRateBps
                   : options_.capBps != 0       ? options_.capBps
                                                : kDefaultInitialRateBps;
    if (options_.capBps != 0) initialRate_ = std::min(initialRate_, options_.capBps);
    initialRate_ = std::max(initialRate_, options_.minRateBps);
    roundLen_ = options_.minRoundNs;
    enterStartup(initialRate_);
    updatePacing(0);
  }

  void onSent(std::uint64_t, std::uint32_t) noexcept override {
    // Nothing to do: the caller marks app-limited delivery samples.
  }

  void onAck(const AckSample& s) noexcept override {
    const std::uint64_t now = s.nowNs;
    if (!started_) {
      started_ = true;
      roundStart_ = now;
    }
    minRtt_ = s.minRttNs;
    owdValid_ = s.owdValid;
    queueDelay_ = s.queueDelayNs;
    roundQueueMin_ = std::min(roundQueueMin_, queueDelay_);
    if (episode_) episodePeak_ = std::max(episodePeak_, queueDelay_);
    srtt_ = s.srttNs;
    smoothedLoss_ = s.lossRate;
    // A queue at the path's bottleneck also says the path is full, when the
    // samples are app-limited only because the sender (CPU) cannot supply
    // the startup rate: without it startup never ends and paces at twice
    // the path's rate, which costs the sender more per packet (a queue at the
    // link's shaper) than it gains.
    if (s.deliveryRateBps != 0 && (!s.appLimited || queueSeen())) {
      roundFull_ = true;
    }
    roundAcked_ += s.ackedBytes;
    if (s.deliveryRateBps != 0) {
      // A tbf bucket that filled while the queue was empty lets a burst
      // through above the link rate, so one short sample can exceed it: the
      // smaller of the last two samples goes on. An app-limited sample is a
      // floor, not a measurement: it never lowers the next one (a sender
      // that stalls now and then would otherwise pass its stalls off as the
      // path's rate and talk the estimate down).
      std::uint64_t sample = prevSample_ != 0 && (!prevAppLimited_ || s.appLimited)
                                 ? std::min(prevSample_, s.deliveryRateBps)
                                 : s.deliveryRateBps;
      // Lost without a queue (random loss): the path carried what was sent,
      // the loss came after it; else the estimate would shrink by the loss
      // rate every round.
      if (noQueue() && s.lossRate > 0) {
        sample = scale(sample, 1.0 / (1.0 - std::min(s.lossRate, kMaxRandomLossCredit)));
      }
      prevSample_ = s.deliveryRateBps;
      prevAppLimited_ = s.appLimited;
      latestSample_ = sample;
      // Loss-only: the estimate moves as TCP's window (AIMD) and the
      // samples, a queue's worth late, would undo every decrease.
      // An app-limited sample only raises the estimate, and before any real
      // sample the seed counts as the estimate: a path that carried only
      // PINGs must not start from their rate.
      const std::uint64_t floor = bw_.valid() ? bw() : seed_;
      // Probing, capacity is found by the probes: between them we send at
      // most at the estimate, so a sample above it is a shaper's bucket that
      // refilled while we sent below its rate (after a back-off or a
      // probe-down), not capacity. Raising on those kept the estimate of a
      // 100 Mbit/s link at 113-118. Not while backing off for a queue: when
      // a loss-based flow that fills it backs off, our queued packets come
      // out faster, and that is how we win our share back.
      if (phase_ == RatePhase::kProbe && !evaluating_ && !episode_ && bw_.valid())
        sample = std::min(sample, bw());
      if (!lossOnly_ && (!s.appLimited || sample > floor)) bw_.update(kBwWindowRounds, roundCount_, sample);
      // Only the second half of the probe counts: its start may ride a tbf
      // bucket that refilled while the queue was empty.
      if (evaluating_ && now >= upLateFrom_) upMax_ = std::max(upMax_, sample);
    }
    switch (phase_) {
      case RatePhase::kStartup:
        if (delaySignal()) enterDrain(now);
        break;
      case RatePhase::kDrain:
        if (noQueue()) enterProbe(now);
        break;
      case RatePhase::kProbe:
        // A queue that is already falling after a back-off is ours draining.
        if (delaySignal() && (!episode_ || static_cast<double>(queueDelay_) >=
                                               kQueueFalling * static_cast<double>(lastBackoffQueue_))) {
          backOff(now, true);
        }
        probeSlots(now);
        break;
      case RatePhase::kFixed:
        break;
    }
    if (now - roundStart_ >= roundLen_) endRound(now);
    updatePacing(now);
  }

  void onLoss(const LossSample& loss) noexcept override {
    roundLost_ += loss.bytes;
    roundLostPackets_ += loss.packets;
    // Loss-only, the rate moves as TCP's window, and so it is reduced once
    // per flight, as in TCP's recovery (RFC 6582): packets sent before the
    // last back-off went out at the rate it already corrected. Their losses
    // come in up to an RTT later, with a full queue more than a round: each
    // took the rate down again (to 1-3 Mbit/s from 20 against a Reno flow in
    // the simulation). Otherwise a back-off only steps the estimate down to
    // what the path delivers, and a large rate drop needs several in a row.
    const bool sentSinceBackoff =
        !lossOnly_ || !backedOff_ || loss.newestSentNs == 0 || loss.newestSentNs > lastBackoff_;
    if (sentSinceBackoff && lossSignal()) {
      if (phase_ == RatePhase::kStartup) {
        enterDrain(loss.nowNs);
      } else if (phase_ == RatePhase::kProbe) {
        backOff(loss.nowNs, false);
      }
    }
    updatePacing(loss.nowNs);
  }

  void onRestart(std::uint64_t nowNs) noexcept override {
    enterStartup(std::max(initialRate_, bw() / 4));
    started_ = false;
    updatePacing(nowNs);
  }

  std::uint64_t pacingRateBps() const noexcept override { return pacing_; }
  std::uint64_t bandwidthEstimateBps() const noexcept override { return bw(); }
  RatePhase phase() const noexcept override { return phase_; }

  // Startup paces at twice an estimate that doubles every round, blind for
  // an RTT: when the feedback stops (a path that stalls while its queue
  // grows), it would go on at that rate until an answer comes. This bounds
  // what it sends meanwhile to what three times the estimate keeps in flight
  // over the RTT and an ACK delay (a test bed delay line that fell behind
  // got 130 ms of 2 x its link's rate, 43 k packets lost).
  std::uint64_t inflightCapBytes() const noexcept override {
    if (phase_ != RatePhase::kStartup || srtt_ == 0) return std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t base = bw_.valid() ? bw() : seed_;
    const double seconds = static_cast<double>(std::max(srtt_, minRtt_) + kStartupCapAckDelayNs) / 1e9;
    return static_cast<std::uint64_t>(kStartupCapGain * static_cast<double>(base) / 8.0 * seconds) +
           kStartupCapMinBytes;
  }

 private:
  enum class Slot : std::uint8_t { kUp, kDown, kCruise };

  std::uint64_t bw() const noexcept { return bw_.best(); }
  // max(2 ms, minRtt/2), but at most 10 ms: a long path's half RTT can exceed
  // a shallow buffer (a 20 ms tbf queue), and then the delay would never tell.
  std::uint64_t queueThreshold() const noexcept {
    return std::clamp(minRtt_ / 2, kMinQueueThresholdNs, kMaxQueueThresholdNs);
  }
  // The one-way delay shows no queue worth speaking of (a quarter of the
  // threshold at most); unknown delay is neither.
  bool noQueue() const noexcept { return owdValid_ && queueDelay_ <= queueThreshold() / 4; }
  bool queueSeen() const noexcept { return owdValid_ && queueDelay_ > queueThreshold() / 4; }
  bool delaySignal() const noexcept { return !lossOnly_ && owdValid_ && queueDelay_ > queueThreshold(); }
  // The smallest queue delay over this round and the last: a queue that
  // stood all along, not a burst's.
  std::uint64_t standingQueue() const noexcept { return std::min(roundQueueMin_, lastRoundQueueMin_); }
  bool lossSignal() const noexcept {
    if (lossOnly_) return roundLostPackets_ > 0;
    const std::uint64_t total = roundAcked_ + roundLost_;
    const bool queueing = !noQueue();
    if (roundLostPackets_ < kLossMinPackets || total == 0) return false;
    // Without a queue, judged on the smoothed rate: one round's few packets
    // are too noisy against a high threshold.
    if (!queueing) return smoothedLoss_ > kQueuelessLossThreshold;
    // With a queue: loss above the path's background (random) loss.
    return static_cast<double>(roundLost_) > (kLossThreshold + baselineLoss_) * static_cast<double>(total);
  }

  void enterStartup(std::uint64_t seed) noexcept {
    phase_ = RatePhase::kStartup;
    seed_ = seed;
    bw_.clear();
    prevSample_ = 0;
    prevAppLimited_ = false;
    latestSample_ = 0;
    fullBwRef_ = 0;
    flatRounds_ = 0;
    flatRoundsAny_ = 0;
    lossOnly_ = false;
    episode_ = false;
    backedOff_ = false;
    evaluating_ = false;
  }

  void enterDrain(std::uint64_t) noexcept {
    phase_ = RatePhase::kDrain;
    drainRounds_ = 0;
  }

  std::uint32_t randomCruiseRounds() noexcept {
    rng_ = rng_ * 6364136223846793005ULL + 1442695040888963407ULL;
    return kMinCruiseRounds +
           static_cast<std::uint32_t>((rng_ >> 33) % (kMaxCruiseRounds - kMinCruiseRounds + 1));
  }

  void enterProbe(std::uint64_t nowNs) noexcept {
    phase_ = RatePhase::kProbe;
    upGain_ = kFirstUpGain;
    evaluating_ = false;
    // Start somewhere in the cycle, so paths and flows do not probe in lockstep.
    cruise(randomCruiseRounds() - kMinCruiseRounds);
    if (cruiseRounds_ == 0) startUp(nowNs);
  }

  void cruise(std::uint32_t rounds) noexcept {
    slot_ = Slot::kCruise;
    cruiseRounds_ = rounds;
  }

  // Probe up for at most a round, and no longer than it takes to add
  // kProbeQueueNs of queue if the path cannot take more (a long round would
  // overflow a shallow buffer before the delay shows).
  void startUp(std::uint64_t nowNs) noexcept {
    slot_ = Slot::kUp;
    upBase_ = bw();
    upMax_ = 0;
    upSpoiled_ = false;
    evaluating_ = true;
    // Below the delay threshold, so a probe alone does not make every flow on the path back off.
    const std::uint64_t probeQueue = std::min(kProbeQueueNs, queueThreshold() * 3 / 4);
    upDuration_ =
        std::min(roundLen_, static_cast<std::uint64_t>(static_cast<double>(probeQueue) / (upGain_ - 1.0)));
    const std::uint64_t probeRate = std::max(scale(bw(), upGain_), options_.minRateBps);
    const std::uint64_t packetNs = kProbePacketBits * 1'000'000'000 / probeRate;
    upDuration_ = std::max(upDuration_, kMinProbePackets * packetNs);
    slotEnd_ = nowNs + upDuration_;
    // Delivery samples reflecting the probe arrive about an RTT later (and
    // at least two packets apart).
    evaluateAt_ = slotEnd_ + std::max(srtt_, minRtt_) + std::max(kEvaluateMarginNs, 2 * packetNs);
    upLateFrom_ = nowNs + upDuration_ / 2 + std::max(srtt_, minRtt_);
  }

  void probeSlots(std::uint64_t nowNs) noexcept {
    if (slot_ == Slot::kUp && nowNs >= slotEnd_) {
      // Take back what the probe may have queued.
      slot_ = Slot::kDown;
      slotEnd_ = nowNs + static_cast<std::uint64_t>(static_cast<double>(upDuration_) * (upGain_ - 1.0) /
                                                    (1.0 - kProbeDownGain));
    }
    if (slot_ == Slot::kDown && nowNs >= slotEnd_) cruise(kMaxCruiseRounds);
    if (evaluating_ && nowNs >= evaluateAt_) {
      evaluating_ = false;
      const bool kept =
          !upSpoiled_ && upBase_ != 0 &&
          static_cast<double>(upMax_) >= static_cast<double>(upBase_) * (1.0 + (upGain_ - 1.0) / 2);
      if (kept && !lossOnly_) {
        // The path took the higher rate: probe again at once, harder.
        upGain_ = std::min(kMaxUpGain, 1.0 + 2.0 * (upGain_ - 1.0));
        startUp(nowNs);
      } else {
        // The path did not sustain the probe: what its start showed above
        // the late samples was a burst, not capacity.
        const std::uint64_t sustained = std::max(upBase_, upMax_);
        if (!upSpoiled_ && !lossOnly_ && upMax_ != 0 && bw() > sustained) bw_.reset(roundCount_, sustained);
        upGain_ = kFirstUpGain;
        if (slot_ == Slot::kCruise) cruise(randomCruiseRounds());
      }
    }
  }

  // Congestion: the estimate falls to what the path delivers now and the
  // rate goes below it for a round (deeper when a big queue must drain).
  void backOff(std::uint64_t nowNs, bool delay) noexcept {
    if (backedOff_ && nowNs - lastBackoff_ < roundLen_) return;
    backedOff_ = true;
    lastBackoff_ = nowNs;
    if (delay) {
      if (!episode_) {
        episode_ = true;
        episodeStart_ = nowNs;
        episodePeak_ = queueDelay_;
        episodeBackoffs_ = 0;
      }
      ++episodeBackoffs_;
    }
    // Sharing a queue with a loss-based flow: decrease as TCP does, so both keep a share.
    lastBackoffQueue_ = queueDelay_;
    if (latestSample_ != 0) {
      // An app-limited sample (the path went idle within its span) measures
      // the path only if its queue stood all along (a rate drop the
      // scheduler routes around). Else it is a floor, and the estimate only
      // steps down as the pacing does: a tunnel's TCP fills a path in
      // bursts, and the idle gaps after them made samples of 5 Mbit/s on a
      // 100 Mbit/s path, which halved the estimate at each second back-off.
      const bool floorOnly = prevAppLimited_ && standingQueue() <= queueThreshold() / 4;  // of latestSample_
      const std::uint64_t measured = floorOnly ? std::max(latestSample_, bw()) : latestSample_;
      const double decrease = lossOnly_ ? kLossOnlyDecrease : floorOnly ? kBackoffGain : 1.0;
      // At most halve per back-off: the samples may lag a queue that is draining.
      bw_.reset(roundCount_, std::max(scale(measured, decrease), bw() / 2));
    }
    double gain = kBackoffGain;
    if (delay) {
      const double drain = 1.0 - static_cast<double>(queueDelay_) / static_cast<double>(roundLen_);
      gain = std::clamp(drain, kMinBackoffGain, kBackoffGain);
    }
    backoffGain_ = gain;
    backoffEnd_ = nowNs + roundLen_;
    upGain_ = kFirstUpGain;
    upSpoiled_ = true;
    evaluating_ = false;
    cruise(randomCruiseRounds());
  }

  void endRound(std::uint64_t nowNs) noexcept {
    // Background loss: what rounds without a queue lose (random loss).
    const std::uint64_t total = roundAcked_ + roundLost_;
    if (noQueue() && total >= kBaselineMinBytes) {
      const double fraction = static_cast<double>(roundLost_) / static_cast<double>(total);
      baselineLoss_ += (std::min(fraction, kQueuelessLossThreshold) - baselineLoss_) * kBaselineGain;
    }
    switch (phase_) {
      case RatePhase::kStartup:
        if (bw() != 0 && static_cast<double>(bw()) >= static_cast<double>(fullBwRef_) * kStartupGrowth) {
          fullBwRef_ = bw();
          flatRounds_ = 0;
          flatRoundsAny_ = 0;
        } else if (bw() != 0) {
          // Rounds that filled the path count as flat at once; app-limited
          // ones only after many: an application (TCP in a tunnel, itself in
          // slow start) that supplies less says nothing about the path's
          // capacity while it grows, but a sender short of CPU never fills a
          // path, and startup's twice the estimate then paces a path it
          // favours over the link's rate for a whole transfer.
          if (roundFull_) ++flatRounds_;
          if (++flatRoundsAny_ >= kStartupAppLimitedFlatRounds || flatRounds_ >= kStartupFlatRounds)
            enterDrain(nowNs);
        }
        break;
      case RatePhase::kDrain:
        if (!owdValid_ || ++drainRounds_ >= kDrainMaxRounds) enterProbe(nowNs);
        break;
      case RatePhase::kProbe:
        if (lossOnly_) {
          noteLossEvents();
          // As TCP in congestion avoidance: one packet (1500 bytes) more per
          // RTT each round; no probes (they would grow multiplicatively).
          if (roundLostPackets_ == 0 && srtt_ != 0) {
            bw_.reset(roundCount_, std::min(bw() + kLossOnlyIncreaseBits * 1'000'000'000 / srtt_,
                                            std::max(tcpFriendlyBps(), bw())));
          }
        } else if (slot_ == Slot::kCruise && !evaluating_) {
          if (cruiseRounds_ > 0) --cruiseRounds_;
          if (cruiseRounds_ == 0) startUp(nowNs);
        }
        judgeQueue(nowNs);
        break;
      case RatePhase::kFixed:
        break;
    }
    ++roundCount_;
    lastRoundQueueMin_ = roundQueueMin_;
    roundQueueMin_ = std::numeric_limits<std::uint64_t>::max();
    roundStart_ = nowNs;
    roundLen_ = std::max(srtt_, options_.minRoundNs);
    roundAcked_ = 0;
    roundLost_ = 0;
    roundLostPackets_ = 0;
    roundFull_ = false;
  }

  // Someone else's queue: still high long after we started backing off for
  // it, and not draining as it would if it were ours (still >= 75 % of its
  // peak since). Then only loss counts.
  void judgeQueue(std::uint64_t nowNs) noexcept {
    const bool high = owdValid_ && queueDelay_ > queueThreshold();
    if (lossOnly_) {
      slot_ = Slot::kCruise;
      evaluating_ = false;
      if (queueDelay_ <= queueThreshold() / 2) lossOnly_ = false;
      if (nowNs - lossOnlySince_ >= std::max(kLossOnlyRetryNs, 20 * roundLen_)) lossOnly_ = false;
      if (!lossOnly_) episode_ = false;
      return;
    }
    if (!episode_) return;
    if (!high) {
      episode_ = false;
      return;
    }
    const std::uint64_t span = std::max(kForeignQueueRounds * roundLen_, kForeignQueueMinNs);
    if (nowNs - episodeStart_ >= span && episodeBackoffs_ >= 2 &&
        static_cast<double>(queueDelay_) >= kForeignQueueFall * static_cast<double>(episodePeak_)) {
      lossOnly_ = true;
      lossOnlySince_ = nowNs;
      lossEvents_ = 0;
      lossEventPackets_ = 0;
      episode_ = false;
    }
  }

  // Loss-only: rounds with a loss, per packet, averaged over kLossEventRounds.
  void noteLossEvents() noexcept {
    const double packets = static_cast<double>(roundAcked_ + roundLost_) / 1500.0;
    const double keep = 1.0 - 1.0 / kLossEventRounds;
    lossEvents_ = lossEvents_ * keep + (roundLostPackets_ > 0 ? 1.0 : 0.0);
    lossEventPackets_ = lossEventPackets_ * keep + packets;
  }

  // TCP's throughput at this loss event rate and RTT (RFC 5348's equation
  // without its timeout term, 1500-byte packets); UINT64_MAX without a loss.
  // A paced flow sharing a drop-tail queue with TCP loses fewer packets than
  // TCP's bursts do, and its rate does not fall as the queue lengthens its
  // RTT: an AIMD alone took two thirds of a 100 Mbit/s link from one cubic
  // flow on the test bed.
  std::uint64_t tcpFriendlyBps() const noexcept {
    if (lossEvents_ <= 0 || lossEventPackets_ <= 0 || srtt_ == 0)
      return std::numeric_limits<std::uint64_t>::max();
    const double p = std::min(1.0, lossEvents_ / lossEventPackets_);
    const double seconds = static_cast<double>(srtt_) / 1e9;
    return static_cast<std::uint64_t>(kTcpFriendlyScale * 1500.0 * 8.0 /
                                      (seconds * std::sqrt(2.0 * p / 3.0)));
  }

  void updatePacing(std::uint64_t nowNs) noexcept {
    std::uint64_t base = bw_.valid() ? bw() : seed_;
    if (lossOnly_) base = std::min(base, std::max(tcpFriendlyBps(), options_.minRateBps));
    double gain = 1.0;
    switch (phase_) {
      case RatePhase::kStartup:
        gain = kStartupGain;
        break;
      case RatePhase::kDrain:
        gain = kDrainGain;
        break;
      case RatePhase::kProbe:
        if (backedOff_ && nowNs < backoffEnd_) {
          gain = backoffGain_;
        } else if (slot_ == Slot::kUp) {
          gain = upGain_;
        } else if (slot_ == Slot::kDown) {
          gain = kProbeDownGain;
        } else if (!lossOnly_ && owdValid_ && queueDelay_ > std::max(kCruiseQueueNs, queueThreshold() / 4)) {
          gain = kCruiseDrainGain;  // a standing queue of our own: let it drain
        }
        break;
      case RatePhase::kFixed:
        break;
    }
    std::uint64_t rate = std::max(scale(base, gain), options_.minRateBps);
    if (options_.capBps != 0) rate = std::min(rate, options_.capBps);
    pacing_ = rate;
  }

  RateControlOptions options_;
  std::uint64_t rng_;
  std::uint64_t initialRate_ = 0;
  RatePhase phase_ = RatePhase::kStartup;
  bool roundFull_ = false;  // this round had a delivery sample that was not app-limited, or a queue
  std::uint64_t pacing_ = 0;
  std::uint64_t seed_ = 0;
  WindowedMax<std::uint64_t> bw_;  // time unit: rounds
  std::uint64_t prevSample_ = 0;
  bool prevAppLimited_ = false;
  std::uint64_t latestSample_ = 0;

  bool started_ = false;
  std::uint64_t roundCount_ = 0;
  std::uint64_t roundStart_ = 0;
  std::uint64_t roundLen_ = 0;
  std::uint64_t roundAcked_ = 0;
  std::uint64_t roundLost_ = 0;
  std::uint64_t roundLostPackets_ = 0;

  std::uint64_t srtt_ = 0;
  std::uint64_t minRtt_ = 0;
  bool owdValid_ = false;
  std::uint64_t queueDelay_ = 0;
  std::uint64_t roundQueueMin_ =
      std::numeric_limits<std::uint64_t>::max();  // smallest queue delay this round
  std::uint64_t lastRoundQueueMin_ = 0;           // and over the last one
  double smoothedLoss_ = 0;
  double baselineLoss_ = 0;  // loss fraction of rounds without a queue (smoothed)

  std::uint64_t fullBwRef_ = 0;
  std::uint32_t flatRounds_ = 0;     // rounds without 25 % growth that filled the path
  std::uint32_t flatRoundsAny_ = 0;  // rounds without 25 % growth
  std::uint32_t drainRounds_ = 0;

  Slot slot_ = Slot::kCruise;
  std::uint32_t cruiseRounds_ = 0;
  std::uint64_t slotEnd_ = 0;
  std::uint64_t upDuration_ = 0;
  double upGain_ = kFirstUpGain;
  std::uint64_t upBase_ = 0;
  std::uint64_t upMax_ = 0;
  bool upSpoiled_ = false;
  bool evaluating_ = false;
  std::uint64_t evaluateAt_ = 0;
  std::uint64_t upLateFrom_ = 0;

  bool backedOff_ = false;
  std::uint64_t lastBackoff_ = 0;
  std::uint64_t backoffEnd_ = 0;
  double backoffGain_ = kBackoffGain;

  bool lossOnly_ = false;
  std::uint64_t lossOnlySince_ = 0;
  double lossEvents_ = 0;        // loss-only: decayed count of rounds with a loss
  double lossEventPackets_ = 0;  // and of packets over the same rounds
  bool episode_ = false;         // backing off for a high queue
  std::uint64_t episodeStart_ = 0;
  std::uint64_t episodePeak_ = 0;  // the largest queue delay since it started
  std::uint32_t episodeBackoffs_ = 0;
  std::uint64_t lastBackoffQueue_ = 0;
};

}  // namespace

std::string_view toString(RatePhase phase) noexcept {
  switch (phase) {
    case RatePhase::kFixed:
      return "fixed";
    case RatePhase::kStartup:
      return "startup";
    case RatePhase::kDrain:
      return "drain";
    case RatePhase::kProbe:
      return "probe";
  }
  return "unknown";
}

Result<std::unique_ptr<RateController>> makeRateController(const RateControlOptions& options) {
  if (options.minRoundNs == 0) return Error(EINVAL, "rate control: minRoundNs must be > 0");
  switch (options.kind) {
    case RateControlKind::kFixed:
      if (options.capBps == 0) return Error(EINVAL, "rate control: fixed needs a rate (capBps)");
      return std::unique_ptr<RateController>(new FixedRateController(options));
    case RateControlKind::kAuto:
      if (options.minRateBps == 0) return Error(EINVAL, "rate control: minRateBps must be > 0");
      if (options.capBps != 0 && options.minRateBps > options.capBps) {
        return Error(EINVAL, "rate control: minRateBps above capBps");
      }
      if (options.capBps != 0 && options.initialRateBps > options.capBps) {
        return Error(EINVAL, "rate control: initialRateBps above capBps");
      }
      return std::unique_ptr<RateController>(new AutoRateController(options));
  }
  return Error(EINVAL, "rate control: unknown kind");
}

}  // namespace mpxdp::path
