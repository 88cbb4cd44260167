#include "path_estimator.h"

#include <algorithm>

namespace mpxdp::path {

namespace {
constexpr std::uint64_t kGranularityNs = 1'000'000;  // RFC 9002 kGranularity
constexpr std::uint64_t kNsPerSecond = 1'000'000'000;
}  // namespace

PathEstimator::PathEstimator(const EstimatorOptions& options) : options_(options) {
  srtt_ = options_.initialRttNs;
  rttVar_ = options_.initialRttNs / 2;
}

void PathEstimator::onRttSample(std::uint64_t nowNs, std::uint64_t rttNs, std::uint64_t ackDelayNs) noexcept {
  latestRtt_ = rttNs;
  const std::uint64_t minRtt = minRtt_.update(options_.minWindowNs, nowNs, rttNs);
  std::uint64_t adjusted = rttNs;
  if (rttNs >= minRtt + ackDelayNs) adjusted = rttNs - ackDelayNs;
  if (!rttValid_) {
    rttValid_ = true;
    srtt_ = adjusted;
    rttVar_ = adjusted / 2;
    return;
  }
  const std::uint64_t deviation = srtt_ > adjusted ? srtt_ - adjusted : adjusted - srtt_;
  rttVar_ = (3 * rttVar_ + deviation) / 4;
  srtt_ = (7 * srtt_ + adjusted) / 8;
}

std::uint64_t PathEstimator::minRttNs() const noexcept { return minRtt_.best(); }

std::uint64_t PathEstimator::latestRttNs() const noexcept { return latestRtt_; }

std::uint64_t PathEstimator::ptoNs(std::uint64_t maxAckDelayNs) const noexcept {
  return srtt_ + std::max(4 * rttVar_, kGranularityNs) + maxAckDelayNs;
}

std::uint64_t PathEstimator::onDelivered(std::uint64_t nowNs, std::uint64_t peerBytesReceived,
                                         std::uint64_t peerRecvTsNs, bool appLimited) noexcept {
  (void)nowNs;
  if (!deliveryPointValid_) {
    deliveryPointValid_ = true;
    deliveryPointBytes_ = peerBytesReceived;
    deliveryPointTs_ = peerRecvTsNs;
    spanAppLimited_ = appLimited;
    return 0;
  }
  if (peerRecvTsNs < deliveryPointTs_ || peerBytesReceived < deliveryPointBytes_) return 0;  // reordered ACK
  spanAppLimited_ = spanAppLimited_ || appLimited;
  const std::uint64_t span = peerRecvTsNs - deliveryPointTs_;
  if (span > options_.deliveryMaxIntervalNs) {
    deliveryPointBytes_ = peerBytesReceived;
    deliveryPointTs_ = peerRecvTsNs;
    spanAppLimited_ = appLimited;
    return 0;
  }
  if (span < options_.deliveryMinIntervalNs || span == 0) return 0;
  const std::uint64_t bytes = peerBytesReceived - deliveryPointBytes_;
  __extension__ using Wide = unsigned __int128;
  const Wide bits = static_cast<Wide>(bytes) * 8 * kNsPerSecond;
  deliveryRate_ = static_cast<std::uint64_t>(bits / span);
  deliveryAppLimited_ = spanAppLimited_;
  deliveryPointBytes_ = peerBytesReceived;
  deliveryPointTs_ = peerRecvTsNs;
  spanAppLimited_ = false;
  return deliveryRate_;
}

void PathEstimator::onOwdSample(std::uint64_t nowNs, std::int64_t owdNs) noexcept {
  const bool first = !owdMin_.valid();
  owdMin_.update(options_.minWindowNs, nowNs, owdNs);
  if (first) {
    owdSmoothed_ = owdNs;
  } else {
    owdSmoothed_ += (owdNs - owdSmoothed_) / 8;
  }
}

std::uint64_t PathEstimator::queueDelayNs() const noexcept {
  if (!owdMin_.valid() || owdSmoothed_ <= owdMin_.best()) return 0;
  const auto owdQueue = static_cast<std::uint64_t>(owdSmoothed_ - owdMin_.best());
  if (!rttValid_) return owdQueue;
  // A queue on the way out lengthens the RTT as much. A peer clock that runs
  // fast (hosts without NTP; NTP slews by up to 500 ppm) lengthens only the
  // one-way delays, and against a minimum up to a window old that read as a
  // queue: 5 ms at 500 ppm, 30 % of the rate lost (simulation). The larger of
  // the smoothed and the latest RTT, so a queue that builds counts at once.
  const std::uint64_t rtt = std::max(srtt_, latestRtt_);
  const std::uint64_t minRtt = minRtt_.best();
  return std::min(owdQueue, rtt > minRtt ? rtt - minRtt : 0);
}

void PathEstimator::onAcked(std::uint64_t nowNs, std::uint64_t packets, std::uint64_t bytes) noexcept {
  (void)bytes;
  packetsAcked_ += packets;
  lossEvent(nowNs, packets, 0);
}

void PathEstimator::onLost(std::uint64_t nowNs, std::uint64_t packets, std::uint64_t bytes) noexcept {
  (void)bytes;
  packetsLost_ += packets;
  lossEvent(nowNs, 0, packets);
}

void PathEstimator::lossEvent(std::uint64_t nowNs, std::uint64_t acked, std::uint64_t lost) noexcept {
  const std::uint64_t interval = std::max(options_.lossIntervalNs, rttValid_ ? srtt_ : 0);
  if (lossIntervalOpen_ && nowNs - lossIntervalStart_ >= interval) {
    const std::uint64_t total = intervalAcked_ + intervalLost_;
    if (total > 0) {
      const double rate = static_cast<double>(intervalLost_) / static_cast<double>(total);
      lossRate_ = lossRateValid_ ? lossRate_ + (rate - lossRate_) / 4 : rate;
      lossRateValid_ = true;
    }
    lossIntervalOpen_ = false;
  }
  if (!lossIntervalOpen_) {
    lossIntervalOpen_ = true;
    lossIntervalStart_ = nowNs;
    intervalAcked_ = 0;
    intervalLost_ = 0;
  }
  intervalAcked_ += acked;
  intervalLost_ += lost;
}

}  // namespace mpxdp::path
