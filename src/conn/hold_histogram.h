// Fixed log-bucket histogram of durations: 4 sub-buckets per power of two,
// so recording never allocates and a percentile is within 25 % of the truth.
#pragma once

#include <array>
#include <bit>
#include <cstdint>

#include "mpxdp/connection.h"

namespace mpxdp::conn {

class HoldHistogram {
 public:
  static constexpr std::size_t kBuckets = 256;

  void record(std::uint64_t valueNs) noexcept {
    ++counts_[bucketOf(valueNs)];
    ++samples_;
    if (valueNs > maxNs_) maxNs_ = valueNs;
  }

  static std::size_t bucketOf(std::uint64_t value) noexcept {
    if (value < 16) return static_cast<std::size_t>(value);
    const int exponent = 63 - std::countl_zero(value);  // >= 4
    const std::uint64_t sub = (value >> (exponent - 2)) & 3;
    return 16 + static_cast<std::size_t>(exponent - 4) * 4 + static_cast<std::size_t>(sub);
  }

  // Largest value that falls in bucket.
  static std::uint64_t upperBound(std::size_t bucket) noexcept {
    if (bucket < 16) return bucket;
    const std::size_t exponent = (bucket - 16) / 4 + 4;
    const std::uint64_t sub = (bucket - 16) % 4;
    const std::uint64_t base = (4 + sub + 1);
    if (exponent == 63 && sub == 3) return UINT64_MAX;  // 8 << 61 would overflow
    return (base << (exponent - 2)) - 1;
  }

  // Upper bound of the bucket holding the q-quantile, capped at the max seen.
  std::uint64_t quantile(double q) const noexcept {
    if (samples_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(samples_));
    if (rank >= samples_) rank = samples_ - 1;
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < kBuckets; ++b) {
      seen += counts_[b];
      if (seen > rank) {
        const std::uint64_t bound = upperBound(b);
        return bound < maxNs_ ? bound : maxNs_;
      }
    }
    return maxNs_;
  }

  HoldTimeSummary summary() const noexcept {
    HoldTimeSummary s;
    s.samples = samples_;
    s.p50Ns = quantile(0.50);
    s.p90Ns = quantile(0.90);
    s.p99Ns = quantile(0.99);
    s.maxNs = maxNs_;
    return s;
  }

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t samples_ = 0;
  std::uint64_t maxNs_ = 0;
};

}  // namespace mpxdp::conn
