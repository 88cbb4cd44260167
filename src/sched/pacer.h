// A pacer for one path or for the total: a token bucket kept as a virtual
// clock in nanoseconds (GCRA). The rate may change at any time; it applies
// from the next packet on. Costs are rounded up to whole nanoseconds, so the
// pacer never grants more than its rate (at 1 Gbit/s and 1 KB packets the
// rounding costs under 0.02 %).
#pragma once

#include <algorithm>
#include <cstdint>

namespace mpxdp::sched {

class Pacer {
 public:
  Pacer() = default;
  Pacer(std::uint64_t rateBps, std::uint64_t burstNs) noexcept : rateBps_(rateBps), burstNs_(burstNs) {}

  void setRate(std::uint64_t rateBps) noexcept { rateBps_ = rateBps; }
  std::uint64_t rateBps() const noexcept { return rateBps_; }

  // Time a packet of bytes occupies the link at the rate (0 when unpaced).
  std::uint64_t costNs(std::uint64_t bytes) const noexcept {
    if (rateBps_ == 0) return 0;
    return (bytes * 8 * 1'000'000'000ULL + rateBps_ - 1) / rateBps_;
  }
  // A full bucket admits burstNs worth of packets, and always one packet.
  bool conforms(std::uint64_t nowNs) const noexcept { return rateBps_ == 0 || tatNs_ <= nowNs + burstNs_; }
  void take(std::uint64_t nowNs, std::uint64_t bytes) noexcept {
    if (rateBps_ == 0) return;
    tatNs_ = std::max(tatNs_, nowNs) + costNs(bytes);
  }
  void giveBack(std::uint64_t bytes) noexcept {
    const std::uint64_t cost = costNs(bytes);
    tatNs_ = tatNs_ > cost ? tatNs_ - cost : 0;
  }
  // Earliest time conforms() holds.
  std::uint64_t eligibleAtNs(std::uint64_t nowNs) const noexcept {
    if (conforms(nowNs)) return nowNs;
    return tatNs_ - burstNs_;
  }
  // How far the bucket is in debt beyond now: the time already granted ahead.
  std::uint64_t aheadNs(std::uint64_t nowNs) const noexcept { return tatNs_ > nowNs ? tatNs_ - nowNs : 0; }

 private:
  std::uint64_t rateBps_ = 0;
  std::uint64_t burstNs_ = 0;
  std::uint64_t tatNs_ = 0;  // when the bucket is full again
};

}  // namespace mpxdp::sched
