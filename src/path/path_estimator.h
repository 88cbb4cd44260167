// Per-path feedback from the peer's ACKs and PONGs: RTT (RFC 6298 / RFC 9002
// smoothing, windowed minimum), delivery rate on the peer's clock, one-way
// delay (only its changes mean anything: the hosts share no clock) and loss.
// Pure arithmetic: every call takes nowNs, nothing allocates.
#pragma once

#include <cstdint>

#include "windowed_filter.h"

namespace mpxdp::path {

struct EstimatorOptions {
  std::uint64_t initialRttNs = 100'000'000;         // before any sample
  std::uint64_t deliveryMinIntervalNs = 2'000'000;  // a delivery-rate sample spans at least this (peer clock)
  // A longer span means the path was idle or cut: no sample, a new start.
  std::uint64_t deliveryMaxIntervalNs = 250'000'000;
  std::uint64_t minWindowNs =
      10'000'000'000;  // windowed minimum of RTT and OWD (re-learns after a route change)
  std::uint64_t lossIntervalNs =
      50'000'000;  // loss rate is lost/(acked+lost) per interval of max(this, srtt), smoothed
};

class PathEstimator {
 public:
  explicit PathEstimator(const EstimatorOptions& options = {});

  // From an ACK: now - send time of the largest newly acked packet, and the
  // peer's reported ack delay (subtracted when the result stays >= min RTT,
  // RFC 9002 5.3). The minimum uses the raw sample.
  void onRttSample(std::uint64_t nowNs, std::uint64_t rttNs, std::uint64_t ackDelayNs) noexcept;
  // From each ACK: the peer's cumulative bytes received on this path and its
  // receive time (peer clock) of the largest acked packet. Makes a delivery
  // sample (bit/s) once peerRecvTsNs advanced deliveryMinIntervalNs since the
  // last sample point and returns it; 0 when none. Counters going backwards
  // (reordered ACKs) are ignored. appLimited is or-ed over the ACKs of a span:
  // one app-limited ACK makes the whole sample app-limited.
  std::uint64_t onDelivered(std::uint64_t nowNs, std::uint64_t peerBytesReceived, std::uint64_t peerRecvTsNs,
                            bool appLimited) noexcept;
  // Peer receive timestamp - our send timestamp (clock offset included).
  void onOwdSample(std::uint64_t nowNs, std::int64_t owdNs) noexcept;
  void onAcked(std::uint64_t nowNs, std::uint64_t packets, std::uint64_t bytes) noexcept;
  void onLost(std::uint64_t nowNs, std::uint64_t packets, std::uint64_t bytes) noexcept;

  bool rttValid() const noexcept { return rttValid_; }
  std::uint64_t srttNs() const noexcept { return srtt_; }
  std::uint64_t rttVarNs() const noexcept { return rttVar_; }
  std::uint64_t minRttNs() const noexcept;     // windowed; 0 before a sample
  std::uint64_t latestRttNs() const noexcept;  // 0 before a sample
  // srtt + max(4 * rttvar, 1 ms) + maxAckDelayNs (initialRtt-based before samples).
  std::uint64_t ptoNs(std::uint64_t maxAckDelayNs) const noexcept;

  std::uint64_t deliveryRateBps() const noexcept { return deliveryRate_; }  // latest sample, 0 before one
  bool deliveryAppLimited() const noexcept { return deliveryAppLimited_; }  // of the latest sample

  // 0..1: EWMA (1/4) of lost/(acked+lost) over closed intervals; an interval
  // closes at the first event after it ended, intervals without events are skipped.
  double lossRate() const noexcept { return lossRate_; }
  std::uint64_t packetsAcked() const noexcept { return packetsAcked_; }
  std::uint64_t packetsLost() const noexcept { return packetsLost_; }

  bool owdValid() const noexcept { return owdMin_.valid(); }
  std::int64_t owdMinNs() const noexcept { return owdMin_.best(); }     // windowed minimum
  std::int64_t owdSmoothedNs() const noexcept { return owdSmoothed_; }  // EWMA 1/8
  // max(0, smoothed - min), at most what the RTT grew by: queue build-up on the path.
  std::uint64_t queueDelayNs() const noexcept;

 private:
  void lossEvent(std::uint64_t nowNs, std::uint64_t acked, std::uint64_t lost) noexcept;

  EstimatorOptions options_;
  bool rttValid_ = false;
  std::uint64_t srtt_ = 0;
  std::uint64_t rttVar_ = 0;
  std::uint64_t latestRtt_ = 0;
  WindowedMin<std::uint64_t> minRtt_;

  bool deliveryPointValid_ = false;
  std::uint64_t deliveryPointBytes_ = 0;
  std::uint64_t deliveryPointTs_ = 0;
  bool spanAppLimited_ = false;
  std::uint64_t deliveryRate_ = 0;
  bool deliveryAppLimited_ = false;

  WindowedMin<std::int64_t> owdMin_;
  std::int64_t owdSmoothed_ = 0;

  std::uint64_t packetsAcked_ = 0;
  std::uint64_t packetsLost_ = 0;
  bool lossIntervalOpen_ = false;
  std::uint64_t lossIntervalStart_ = 0;
  std::uint64_t intervalAcked_ = 0;
  std::uint64_t intervalLost_ = 0;
  bool lossRateValid_ = false;
  double lossRate_ = 0;
};

}  // namespace mpxdp::path
