// Pacing rate of one path behind an interface with a factory. Rates are bits
// of whole frames as the link sees them (the caller adds the headers).
//
// kFixed: the configured link rate, always (the behaviour before issue 8).
// kAuto: BBR-like model of the path (windowed max of delivery rate), paced at
// gain x estimate, that also backs off on queue-delay growth and loss:
//   startup (2x; ends after 3 rounds without 25 % growth that filled the path, or 20 of any kind) ->
//   drain (0.6x until the queue is gone) -> probe: cruise at
//   1x for 2-6 rounds (random), probe up at 1.25x for at most a round and at
//   most 3/4 of the delay threshold worth of queue (but at least 8 packets'
//   time, so a slow path can climb), down at 0.75x to take it
//   back; a probe the path kept up with is followed at once by a harder one
//   (1.5x, 2x), so capacity steps up are found within a few rounds.
//   Congestion (loss > 2 % in a round while a queue builds, > 15 % without
//   one, or queue delay > max(2 ms, minRtt/2) capped at 10 ms): the estimate falls to the latest delivery
//   sample (at most halving), paced below it for a round; at most one back-off per round. When the queue
//   stays high for 6 rounds although we back off (someone else fills it, a TCP flow), only loss counts and
//   the rate moves as TCP's (AIMD), at most 1.3 x TCP's throughput equation (RFC 5348) at our loss event
//   rate and RTT, until the queue falls or 2 s pass, so neither flow starves.
// See docs/path-control.md.
// A round is max(srtt, minRoundNs). Pure logic: nowNs is passed in; nothing
// allocates after construction.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "mpxdp/error.h"

namespace mpxdp::path {

enum class RateControlKind : std::uint8_t { kFixed, kAuto };
enum class RatePhase : std::uint8_t { kFixed, kStartup, kDrain, kProbe };

std::string_view toString(RatePhase phase) noexcept;  // "fixed" "startup" "drain" "probe"

struct RateControlOptions {
  RateControlKind kind = RateControlKind::kAuto;
  std::uint64_t capBps = 0;          // the link's configured rate (@RATE): a cap; kFixed: the rate (> 0)
  std::uint64_t initialRateBps = 0;  // 0: capBps if set, else 20 Mbit/s
  std::uint64_t minRateBps = 1'000'000;
  std::uint64_t minRoundNs = 10'000'000;  // a round = max(srtt, minRoundNs)
  // Addition: picks the round of the probe cycle to start in (e.g. the path
  // index), so paths sharing a bottleneck do not probe in lockstep.
  std::uint64_t seed = 0;
};

struct AckSample {
  std::uint64_t nowNs = 0;
  std::uint64_t deliveryRateBps = 0;  // 0: no new delivery sample in this ACK
  bool appLimited = false;
  std::uint64_t ackedBytes = 0;
  std::uint64_t srttNs = 0, minRttNs = 0;
  bool owdValid = false;
  std::uint64_t queueDelayNs = 0;
  double lossRate = 0;
};

struct LossSample {
  std::uint64_t nowNs = 0;
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  // Send time of the newest of them (same clock as nowNs); 0: unknown.
  std::uint64_t newestSentNs = 0;
};

class RateController {
 public:
  virtual ~RateController() = default;
  virtual void onSent(std::uint64_t nowNs, std::uint32_t bytes) noexcept = 0;
  virtual void onAck(const AckSample& sample) noexcept = 0;
  virtual void onLoss(const LossSample& loss) noexcept = 0;
  virtual void onRestart(std::uint64_t nowNs) noexcept = 0;         // path re-admitted after being dead
  virtual std::uint64_t pacingRateBps() const noexcept = 0;         // always > 0, never above capBps when set
  virtual std::uint64_t bandwidthEstimateBps() const noexcept = 0;  // 0 until known
  virtual RatePhase phase() const noexcept = 0;
  // Bytes the path may have in flight (sent, neither acknowledged nor lost);
  // UINT64_MAX: no limit. The sender gives the path no new packet above it.
  virtual std::uint64_t inflightCapBytes() const noexcept = 0;
};

// EINVAL: kFixed without capBps, minRateBps 0 or above capBps, initialRateBps
// above capBps, minRoundNs 0.
Result<std::unique_ptr<RateController>> makeRateController(const RateControlOptions& options);

}  // namespace mpxdp::path
