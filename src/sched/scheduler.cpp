#include "scheduler.h"

#include <algorithm>
#include <cerrno>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

namespace mpxdp::sched {
namespace {

// __extension__ keeps -Wpedantic quiet about __int128; it needs a typedef.
// NOLINTNEXTLINE(modernize-use-using)
__extension__ typedef unsigned __int128 Wide;
constexpr std::uint64_t kNsPerSecond = 1'000'000'000;

// A token bucket kept as a virtual clock (GCRA): vt_ is when the bucket would be
// full again, in bit-nanoseconds (ns * rateBps), so a packet of b bits costs
// exactly b * 1e9 and nothing is rounded.
class TokenBucket {
 public:
  TokenBucket(std::uint64_t rateBps, std::uint64_t burstNs) : rateBps_(rateBps), burstNs_(burstNs) {}

  bool conforms(std::uint64_t nowNs, std::uint32_t bytes) const noexcept {
    if (rateBps_ == 0) return true;
    const Wide now = scaled(nowNs);
    if (vt_ <= now) return true;  // full: always admits one packet
    return vt_ - now + cost(bytes) <= depth(bytes);
  }

  void take(std::uint64_t nowNs, std::uint32_t bytes) noexcept {
    if (rateBps_ == 0) return;
    vt_ = std::max(vt_, scaled(nowNs)) + cost(bytes);
  }

  // Undoes take(): take set vt_ = max(vt_, now) + cost, so this leaves the
  // bucket at least as full as before the take.
  void giveBack(std::uint32_t bytes) noexcept {
    if (rateBps_ == 0) return;
    const Wide c = cost(bytes);
    vt_ = vt_ > c ? vt_ - c : 0;
  }

  std::uint64_t eligibleAtNs(std::uint64_t nowNs, std::uint32_t bytes) const noexcept {
    if (conforms(nowNs, bytes)) return nowNs;
    // Smallest t with vt_ - t * rate + cost <= depth.
    const Wide needed = vt_ + cost(bytes) - depth(bytes);
    const Wide t = (needed + rateBps_ - 1) / rateBps_;
    constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
    return t > kMax ? kMax : std::max<std::uint64_t>(nowNs, static_cast<std::uint64_t>(t));
  }

 private:
  Wide scaled(std::uint64_t ns) const noexcept { return static_cast<Wide>(ns) * rateBps_; }
  static Wide cost(std::uint32_t bytes) noexcept { return static_cast<Wide>(bytes) * 8 * kNsPerSecond; }
  Wide depth(std::uint32_t bytes) const noexcept {
    return std::max(static_cast<Wide>(burstNs_) * rateBps_, cost(bytes));
  }

  std::uint64_t rateBps_;
  std::uint64_t burstNs_;
  Wide vt_ = 0;
};

class PacedScheduler : public Scheduler {
 public:
  PacedScheduler(const SchedulerOptions& options, std::span<const PathConfig> paths)
      : total_(options.totalRateBps, options.burstNs) {
    buckets_.reserve(paths.size());
    overheads_.reserve(paths.size());
    for (const PathConfig& path : paths) {
      buckets_.emplace_back(path.rateBps, options.burstNs);
      overheads_.push_back(path.overheadBytes != 0 ? path.overheadBytes : options.perPacketOverheadBytes);
    }
  }

  std::size_t pathCount() const noexcept override { return buckets_.size(); }

  void refund(std::size_t path, std::uint32_t packetBytes) noexcept override {
    if (path >= buckets_.size()) return;
    buckets_[path].giveBack(wireBytes(path, packetBytes));
    total_.giveBack(packetBytes);
  }

 protected:
  // A path's bucket counts the frame as the link sees it; the total counts payload only (iperf3's -b).
  std::uint32_t wireBytes(std::size_t path, std::uint32_t packetBytes) const noexcept {
    const std::uint64_t sum = std::uint64_t{packetBytes} + overheads_[path];
    return static_cast<std::uint32_t>(
        std::min<std::uint64_t>(sum, std::numeric_limits<std::uint32_t>::max()));
  }
  bool pathConforms(std::size_t path, std::uint64_t nowNs, std::uint32_t packetBytes) const noexcept {
    return buckets_[path].conforms(nowNs, wireBytes(path, packetBytes));
  }
  bool totalConforms(std::uint64_t nowNs, std::uint32_t packetBytes) const noexcept {
    return total_.conforms(nowNs, packetBytes);
  }
  void take(std::size_t path, std::uint64_t nowNs, std::uint32_t packetBytes) noexcept {
    buckets_[path].take(nowNs, wireBytes(path, packetBytes));
    total_.take(nowNs, packetBytes);
  }
  std::uint64_t eligibleAtNs(std::size_t path, std::uint64_t nowNs,
                             std::uint32_t packetBytes) const noexcept {
    return std::max(buckets_[path].eligibleAtNs(nowNs, wireBytes(path, packetBytes)),
                    total_.eligibleAtNs(nowNs, packetBytes));
  }

 private:
  std::vector<std::uint32_t> overheads_;
  std::vector<TokenBucket> buckets_;
  TokenBucket total_;
};

class RoundRobinScheduler final : public PacedScheduler {
 public:
  using PacedScheduler::PacedScheduler;

  int pick(std::uint64_t nowNs, std::uint32_t packetBytes) noexcept override {
    if (!totalConforms(nowNs, packetBytes) || !pathConforms(next_, nowNs, packetBytes)) return kNoPath;
    const std::size_t path = next_;
    take(path, nowNs, packetBytes);
    next_ = next_ + 1 == pathCount() ? 0 : next_ + 1;
    return static_cast<int>(path);
  }

  std::uint64_t nextEligibleNs(std::uint64_t nowNs, std::uint32_t packetBytes) const noexcept override {
    return eligibleAtNs(next_, nowNs, packetBytes);
  }

 private:
  std::size_t next_ = 0;
};

// Smooth weighted round robin (as in nginx) with credits scaled by packet bytes.
class WeightedRoundRobinScheduler final : public PacedScheduler {
 public:
  WeightedRoundRobinScheduler(const SchedulerOptions& options, std::span<const PathConfig> paths)
      : PacedScheduler(options, paths), weights_(paths.size(), 1), credits_(paths.size(), 0) {
    if (paths[0].rateBps != 0) {
      // Small weights keep credits far from overflow: divide by the gcd, then
      // shift down (keeping the ratios to ~1e-7) if still large.
      std::uint64_t divisor = 0;
      std::uint64_t largest = 0;
      for (const PathConfig& path : paths) divisor = std::gcd(divisor, path.rateBps);
      for (const PathConfig& path : paths) largest = std::max(largest, path.rateBps / divisor);
      int shift = 0;
      while ((largest >> shift) > (std::uint64_t{1} << 24)) ++shift;
      for (std::size_t i = 0; i < paths.size(); ++i) {
        weights_[i] =
            std::max<std::int64_t>(1, static_cast<std::int64_t>((paths[i].rateBps / divisor) >> shift));
      }
    }
    totalWeight_ = std::accumulate(weights_.begin(), weights_.end(), std::int64_t{0});
    // Bound on credits, so a path held back by its pacer for long does not
    // build up an unbounded claim: a few max-size packets at the total weight.
    creditCap_ = totalWeight_ * 4 * (std::int64_t{1} << 17);
  }

  int pick(std::uint64_t nowNs, std::uint32_t packetBytes) noexcept override {
    if (!totalConforms(nowNs, packetBytes)) return kNoPath;
    // Bounded so credit arithmetic cannot overflow with absurd sizes.
    const auto size = static_cast<std::int64_t>(std::min<std::uint32_t>(packetBytes, 1U << 20));
    int chosen = kNoPath;
    for (std::size_t i = 0; i < credits_.size(); ++i) {
      if (!pathConforms(i, nowNs, packetBytes)) continue;
      if (chosen == kNoPath ||
          credits_[i] + weights_[i] * size > credits_[chosen] + weights_[chosen] * size) {
        chosen = static_cast<int>(i);
      }
    }
    if (chosen == kNoPath) return kNoPath;
    for (std::size_t i = 0; i < credits_.size(); ++i) {
      credits_[i] = std::min(credits_[i] + weights_[i] * size, creditCap_);
    }
    credits_[chosen] = std::max(credits_[chosen] - totalWeight_ * size, -creditCap_);
    take(static_cast<std::size_t>(chosen), nowNs, packetBytes);
    return chosen;
  }

  std::uint64_t nextEligibleNs(std::uint64_t nowNs, std::uint32_t packetBytes) const noexcept override {
    std::uint64_t earliest = std::numeric_limits<std::uint64_t>::max();
    for (std::size_t i = 0; i < credits_.size(); ++i)
      earliest = std::min(earliest, eligibleAtNs(i, nowNs, packetBytes));
    return earliest;
  }

 private:
  std::vector<std::int64_t> weights_;
  std::vector<std::int64_t> credits_;
  std::int64_t totalWeight_ = 0;
  std::int64_t creditCap_ = 0;
};

}  // namespace

Result<std::unique_ptr<Scheduler>> makeScheduler(const SchedulerOptions& options,
                                                 std::span<const PathConfig> paths) {
  if (paths.empty()) return Error(EINVAL, "scheduler: no paths");
  if (paths.size() > kMaxSchedulerPaths) {
    return Error(EINVAL, "scheduler: " + std::to_string(paths.size()) + " paths, at most " +
                             std::to_string(kMaxSchedulerPaths));
  }
  switch (options.kind) {
    case SchedulerKind::kRoundRobin:
      return std::unique_ptr<Scheduler>(std::make_unique<RoundRobinScheduler>(options, paths));
    case SchedulerKind::kWeightedRoundRobin: {
      const bool firstHasRate = paths[0].rateBps != 0;
      for (std::size_t i = 1; i < paths.size(); ++i) {
        if ((paths[i].rateBps != 0) != firstHasRate) {
          return Error(EINVAL,
                       "scheduler: wrr weights paths by rateBps, so every path needs a rate or none "
                       "does (path " +
                           std::to_string(firstHasRate ? i : 0) + " has rateBps 0)");
        }
      }
      return std::unique_ptr<Scheduler>(std::make_unique<WeightedRoundRobinScheduler>(options, paths));
    }
  }
  return Error(EINVAL, "scheduler: unknown kind " + std::to_string(static_cast<int>(options.kind)));
}

}  // namespace mpxdp::sched

// Public (include/mpxdp/options.h).
namespace mpxdp {

Result<SchedulerKind> parseSchedulerKind(std::string_view name) {
  if (name == "rr") return SchedulerKind::kRoundRobin;
  if (name == "wrr") return SchedulerKind::kWeightedRoundRobin;
  return Error(EINVAL, "unknown scheduler '" + std::string(name) + "' (expected rr or wrr)");
}

std::string_view toString(SchedulerKind kind) noexcept {
  switch (kind) {
    case SchedulerKind::kRoundRobin:
      return "rr";
    case SchedulerKind::kWeightedRoundRobin:
      return "wrr";
  }
  return "unknown";
}

}  // namespace mpxdp
