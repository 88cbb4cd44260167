#include "scheduler.h"

#include <algorithm>
#include <cerrno>
#include <limits>
#include <string>
#include <vector>

namespace mpxdp::sched {

std::uint64_t transmitNs(const PathView& path, std::uint32_t packetBytes) noexcept {
  if (path.rateBps == 0) return 0;
  const std::uint64_t bits = (std::uint64_t{packetBytes} + path.overheadBytes) * 8;
  return bits * 1'000'000'000ULL / path.rateBps;
}

namespace {

constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();

std::uint64_t positivePart(std::uint64_t a, std::uint64_t b) { return a > b ? a - b : 0; }

class EarliestArrivalScheduler final : public Scheduler {
 public:
  EarliestArrivalScheduler(const SchedulerOptions& options, std::size_t pathCount)
      : slackNs_(options.slackNs), pathCount_(pathCount) {}

  std::size_t pathCount() const noexcept override { return pathCount_; }

  int pick(std::span<const PathView> paths, std::uint32_t packetBytes) noexcept override {
    const std::uint64_t horizon = maxDelay(paths) + slackNs_;
    int chosen = kNoPath;
    std::uint64_t best = kNever;
    for (std::size_t i = 0; i < paths.size(); ++i) {
      const PathView& p = paths[i];
      if (!p.usable || p.queuedNs + p.delayNs > horizon) continue;
      const std::uint64_t arrival = p.queuedNs + transmitNs(p, packetBytes) + p.delayNs;
      if (arrival < best) {
        best = arrival;
        chosen = static_cast<int>(i);
      }
    }
    return chosen;
  }

  std::uint64_t waitNs(std::span<const PathView> paths,
                       std::uint32_t /*packetBytes*/) const noexcept override {
    const std::uint64_t horizon = maxDelay(paths) + slackNs_;
    std::uint64_t wait = kNever;
    for (const PathView& p : paths) {
      if (p.usable) wait = std::min(wait, positivePart(p.queuedNs + p.delayNs, horizon));
    }
    return wait;
  }

 private:
  static std::uint64_t maxDelay(std::span<const PathView> paths) noexcept {
    std::uint64_t delay = 0;
    for (const PathView& p : paths) {
      if (p.usable) delay = std::max(delay, p.delayNs);
    }
    return delay;
  }

  std::uint64_t slackNs_;
  std::size_t pathCount_;
};

class RoundRobinScheduler final : public Scheduler {
 public:
  RoundRobinScheduler(const SchedulerOptions& options, std::size_t pathCount)
      : slackNs_(options.slackNs), pathCount_(pathCount) {}

  std::size_t pathCount() const noexcept override { return pathCount_; }

  int pick(std::span<const PathView> paths, std::uint32_t /*packetBytes*/) noexcept override {
    const int path = inTurn(paths);
    if (path == kNoPath || paths[path].queuedNs > slackNs_) return kNoPath;
    next_ = static_cast<std::size_t>(path) + 1;
    return path;
  }

  std::uint64_t waitNs(std::span<const PathView> paths,
                       std::uint32_t /*packetBytes*/) const noexcept override {
    const int path = inTurn(paths);
    return path == kNoPath ? kNever : positivePart(paths[path].queuedNs, slackNs_);
  }

 private:
  // The next usable path from next_ on (paths that cannot carry data lose their turn).
  int inTurn(std::span<const PathView> paths) const noexcept {
    for (std::size_t k = 0; k < paths.size(); ++k) {
      const std::size_t i = (next_ + k) % paths.size();
      if (paths[i].usable) return static_cast<int>(i);
    }
    return kNoPath;
  }

  std::uint64_t slackNs_;
  std::size_t pathCount_;
  std::size_t next_ = 0;
};

// Smooth weighted round robin (as in nginx) with credits scaled by packet bytes
// and weights taken from the paths' pacing rates at each pick.
class WeightedRoundRobinScheduler final : public Scheduler {
 public:
  WeightedRoundRobinScheduler(const SchedulerOptions& options, std::size_t pathCount)
      : slackNs_(options.slackNs), pathCount_(pathCount), credits_(pathCount, 0) {}

  std::size_t pathCount() const noexcept override { return pathCount_; }

  int pick(std::span<const PathView> paths, std::uint32_t packetBytes) noexcept override {
    const auto size = static_cast<std::int64_t>(std::min<std::uint32_t>(packetBytes, 1U << 20));
    std::int64_t totalWeight = 0;
    int chosen = kNoPath;
    for (std::size_t i = 0; i < paths.size() && i < credits_.size(); ++i) {
      if (!paths[i].usable) {
        credits_[i] = 0;  // a path that cannot carry data builds no claim
        continue;
      }
      totalWeight += weight(paths[i]);
      if (paths[i].queuedNs > slackNs_) continue;
      if (chosen == kNoPath ||
          credits_[i] + weight(paths[i]) * size > credits_[chosen] + weight(paths[chosen]) * size)
        chosen = static_cast<int>(i);
    }
    if (chosen == kNoPath) return kNoPath;
    // Bound on credits, so a path held back by its queue does not build up an
    // unbounded claim: a few max-size packets at the total weight.
    const std::int64_t cap = totalWeight * 4 * (std::int64_t{1} << 17);
    for (std::size_t i = 0; i < paths.size() && i < credits_.size(); ++i) {
      if (paths[i].usable) credits_[i] = std::min(credits_[i] + weight(paths[i]) * size, cap);
    }
    credits_[chosen] = std::max(credits_[chosen] - totalWeight * size, -cap);
    return chosen;
  }

  std::uint64_t waitNs(std::span<const PathView> paths,
                       std::uint32_t /*packetBytes*/) const noexcept override {
    std::uint64_t wait = kNever;
    for (const PathView& p : paths) {
      if (p.usable) wait = std::min(wait, positivePart(p.queuedNs, slackNs_));
    }
    return wait;
  }

 private:
  // Weights in units of 64 kbit/s keep credit arithmetic far from overflow.
  static std::int64_t weight(const PathView& p) noexcept {
    return std::max<std::int64_t>(1, static_cast<std::int64_t>(p.rateBps >> 16));
  }

  std::uint64_t slackNs_;
  std::size_t pathCount_;
  std::vector<std::int64_t> credits_;
};

}  // namespace

Result<std::unique_ptr<Scheduler>> makeScheduler(const SchedulerOptions& options, std::size_t pathCount) {
  if (pathCount == 0) return Error(EINVAL, "scheduler: no paths");
  if (pathCount > kMaxSchedulerPaths) {
    return Error(EINVAL, "scheduler: " + std::to_string(pathCount) + " paths, at most " +
                             std::to_string(kMaxSchedulerPaths));
  }
  switch (options.kind) {
    case SchedulerKind::kEarliestArrival:
      return std::unique_ptr<Scheduler>(std::make_unique<EarliestArrivalScheduler>(options, pathCount));
    case SchedulerKind::kRoundRobin:
      return std::unique_ptr<Scheduler>(std::make_unique<RoundRobinScheduler>(options, pathCount));
    case SchedulerKind::kWeightedRoundRobin:
      return std::unique_ptr<Scheduler>(std::make_unique<WeightedRoundRobinScheduler>(options, pathCount));
  }
  return Error(EINVAL, "scheduler: unknown kind " + std::to_string(static_cast<int>(options.kind)));
}

}  // namespace mpxdp::sched

// Public (include/mpxdp/options.h).
namespace mpxdp {

Result<SchedulerKind> parseSchedulerKind(std::string_view name) {
  if (name == "eaf") return SchedulerKind::kEarliestArrival;
  if (name == "rr") return SchedulerKind::kRoundRobin;
  if (name == "wrr") return SchedulerKind::kWeightedRoundRobin;
  return Error(EINVAL, "unknown scheduler '" + std::string(name) + "' (expected eaf, rr or wrr)");
}

std::string_view toString(SchedulerKind kind) noexcept {
  switch (kind) {
    case SchedulerKind::kEarliestArrival:
      return "eaf";
    case SchedulerKind::kRoundRobin:
      return "rr";
    case SchedulerKind::kWeightedRoundRobin:
      return "wrr";
  }
  return "unknown";
}

}  // namespace mpxdp
