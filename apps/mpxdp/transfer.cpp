#include "transfer.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <vector>

#include "file_stream.h"
#include "payload_pattern.h"
#include "run_control.h"
#include "wire/frames.h"

namespace mpxdp::cli {
namespace {

// Packets whose tokens the sender waits for before waking up to send again.
constexpr std::uint64_t kSleepBatchPackets = 24;
// How often a sending loop that never runs dry still reads its paths (ACKs, PINGs, CLOSE).
constexpr std::uint64_t kControlPollNs = 200'000;
constexpr std::uint64_t kRateRefreshNs = 10'000'000;

}  // namespace

Transfer::Transfer(Endpoint& endpoint, Connection& connection, const TransferPlan& plan,
                   Reporter* sendReporter, Reporter* receiveReporter)
    : endpoint_(endpoint),
      connection_(connection),
      plan_(plan),
      sendReporter_(sendReporter),
      receiveReporter_(receiveReporter),
      sends_(connection.state().sends),
      receives_(connection.state().receives),
      payload_(std::min(plan.payloadBytes, connection.maxPayload())),
      intervalNs_(static_cast<std::uint64_t>(plan.intervalS * 1e9)),
      // When paced out, sleep until a batch's worth of tokens is back: waking
      // for every packet would cost a wakeup and kicks per packet.
      frameBits_(8ULL * (payload_ + wire::kDataPacketOverhead + 42)),
      askedBps_(plan.rateBps == 0 ? UINT64_MAX
                                  : plan.rateBps * (payload_ + wire::kDataPacketOverhead + 42) / payload_) {}

void Transfer::start(std::uint64_t nowNs) {
  startNs_ = nowNs;
  lastSendNs_ = nowNs;
  if (sendReporter_) sendReporter_->start(nowNs);
  if (receiveReporter_) receiveReporter_->start(nowNs);
  sendEndNs_ = plan_.sendDurationNs == 0 ? UINT64_MAX : nowNs + plan_.sendDurationNs;
  nextReportNs_ = intervalNs_ > 0 ? nowNs + intervalNs_ : UINT64_MAX;
}

// The paths' pacing rates are estimated and change: their sum is read back
// every kRateRefreshNs.
void Transfer::refreshPacing(const ConnectionStats& stats) {
  std::uint64_t sum = 0;
  for (const PathStats& path : stats.paths) {
    if (path.state != PathState::kDead) sum += path.pacingRateBps;
  }
  pacedBps_ = std::min(askedBps_, sum);
  batchNs_ = pacedBps_ == 0 ? 50'000
                            : std::min<std::uint64_t>(
                                  kSleepBatchPackets * frameBits_ * 1'000'000'000ULL / pacedBps_, 250'000);
}

void Transfer::end(std::optional<Error> failure, const char* endedBy) {
  if (failure) result_.failure = std::move(failure);
  if (endedBy != nullptr) result_.endedBy = endedBy;
  ended_ = true;
}

std::uint64_t Transfer::step(std::uint64_t now) {
  if (done()) return UINT64_MAX;
  if (stopRequested()) {
    connection_.abort(static_cast<std::uint16_t>(wire::CloseError::kStopped),
                      "stopped by signal " + std::to_string(stopSignal()));
    end(std::nullopt, "signal");
    return 0;
  }
  if (now >= nextReportNs_) {
    // One snapshot for both directions; the ticks stay on start + k * interval.
    const ConnectionStats snapshot = connection_.stats();
    if (sendReporter_) {
      sendReporter_->interval(snapshot, seconds(now), 0,
                              plan_.source ? std::optional(plan_.source->progress()) : std::nullopt);
    }
    if (receiveReporter_) {
      receiveReporter_->interval(snapshot, seconds(now), result_.corrupt,
                                 plan_.sink ? std::optional(plan_.sink->progress()) : std::nullopt);
    }
    nextReportNs_ += intervalNs_ * ((now - nextReportNs_) / intervalNs_ + 1);
  }
  if (plan_.metrics != nullptr && plan_.metrics->due(connection_.state().connId, now))
    plan_.metrics->publish(metricsSampleOf(endpoint_, connection_, plan_.linkNames));
  if (sends_ && now >= nextRateRefreshNs_) {
    refreshPacing(connection_.stats());
    nextRateRefreshNs_ = now + kRateRefreshNs;
  }
  bool busy = false;
  if (receives_) {
    if (!receive(now, busy)) return 0;
  } else if (now - lastControlPollNs_ >= kControlPollNs) {
    if (auto polled = endpoint_.poll(); !polled) {
      end(polled.error());
      return 0;
    }
    lastControlPollNs_ = now;
  }
  std::uint64_t wake = std::min({endpoint_.nextDeadlineNs(), nextReportNs_, now + kMaxWaitNs});
  if (sends_ && !connection_.state().sendFinished && !send(now, busy, wake)) return 0;
  return busy ? 0 : wake;
}

bool Transfer::receive(std::uint64_t now, bool& busy) {
  auto n = connection_.poll(delivered_);
  if (!n) {
    end(n.error());
    return false;
  }
  lastControlPollNs_ = now;
  std::optional<Error> sinkError;
  for (std::size_t i = 0; i < *n; ++i) {
    const Delivered& d = delivered_[i];
    if (plan_.sink != nullptr) {
      if (sinkError) continue;
      if (auto consumed = plan_.sink->consume(d.globalSeq, {d.data, d.length}); !consumed)
        sinkError = consumed.error();
      continue;
    }
    if (d.globalSeq == 0 && d.length >= kFileHeaderMagic.size() &&
        std::memcmp(d.data, kFileHeaderMagic.data(), kFileHeaderMagic.size()) == 0) {
      // Counting a file as corrupt pattern payloads would help nobody.
      sinkError = Error(EPROTO, "the client sends a file (send -F): run mpxdp recv -F PATH to store it");
      continue;
    }
    result_.corrupt += checkPattern(d.data, d.length, d.globalSeq) ? 0 : 1;
  }
  connection_.release({delivered_.data(), *n});
  if (sinkError) {
    // The peer learns why (its CLOSE carries the reason) and stops sending.
    connection_.abort(static_cast<std::uint16_t>(wire::CloseError::kProtocol), sinkError->context());
    end(std::move(sinkError), "error");
    return false;
  }
  if (*n > 0) {
    if (firstDeliveryNs_ == 0) firstDeliveryNs_ = now;
    lastDeliveryNs_ = now;
    busy = *n == delivered_.size();
  }
  return true;
}

bool Transfer::send(std::uint64_t now, bool& busy, std::uint64_t& wake) {
  if (now >= sendEndNs_ || (plan_.source != nullptr && sourceDone_)) {
    if (auto finished = connection_.finish(); !finished) {
      end(finished.error());
      return false;
    }
    result_.sendDurationS = seconds(std::max(lastSendNs_, std::min(now, sendEndNs_)));
    busy = true;  // straight back: the end of the stream goes out now
    return true;
  }
  const std::size_t n = connection_.reserve(slots_, payload_);
  if (n > 0) {
    const std::uint64_t firstSeq = connection_.state().nextGlobalSeq;
    std::optional<Error> sourceError;
    for (std::size_t i = 0; i < n; ++i) {
      if (plan_.source == nullptr) {
        fillPattern(slots_[i].data, payload_, firstSeq + i);
        slots_[i].length = payload_;
        continue;
      }
      // Slots past the end of the stream go back unsent (length 0).
      slots_[i].length = 0;
      if (sourceDone_ || sourceError) continue;
      auto filled = plan_.source->fill(slots_[i].data, std::min(slots_[i].capacity, payload_));
      if (!filled) {
        sourceError = filled.error();
      } else if (*filled == 0) {
        sourceDone_ = true;
      } else {
        slots_[i].length = *filled;
      }
    }
    auto committed = connection_.commit({slots_.data(), n});
    if (sourceError) {
      connection_.abort(static_cast<std::uint16_t>(wire::CloseError::kStopped), sourceError->context());
      end(std::move(sourceError), "error");
      return false;
    }
    if (!committed) {
      end(committed.error());
      return false;
    }
    lastSendNs_ = monotonicNs();
    busy = busy || n >= kSleepBatchPackets || pacedBps_ == 0;
  } else if (auto flushed = connection_.flush(); !flushed) {
    end(flushed.error());
    return false;
  }
  wake = std::min({wake, std::max(connection_.nextSendTimeNs(payload_), now + batchNs_), sendEndNs_});
  return true;
}

TransferResult Transfer::finish() {
  if (plan_.metrics != nullptr) plan_.metrics->retire(connection_.state().connId);
  TransferResult result = std::move(result_);
  if (sends_ && result.sendDurationS == 0) result.sendDurationS = seconds(std::max(lastSendNs_, startNs_));
  if (receives_ && firstDeliveryNs_ != 0)
    result.receiveDurationS = static_cast<double>(lastDeliveryNs_ - firstDeliveryNs_) / 1e9;
  result.endS = seconds(monotonicNs());
  if (plan_.source != nullptr) result.sendFile = plan_.source->progress();
  if (plan_.sink != nullptr) result.receiveFile = plan_.sink->progress();
  result.stats = connection_.stats();
  if (!result.failure && connection_.error() && result.endedBy != "signal") {
    result.failure = connection_.error();
    result.endedBy = "peer";
  }
  if (result.endedBy.empty()) {
    if (result.failure) {
      result.endedBy = "error";
    } else if (receives_ && connection_.state().endedByIdleTimeout) {
      result.endedBy = "idle timeout";
    } else {
      result.endedBy = !sends_ ? "end of stream" : plan_.source != nullptr ? "end of file" : "time";
    }
  }
  return result;
}

TransferResult runTransfer(Endpoint& endpoint, Connection& connection, const TransferPlan& plan,
                           Reporter* sendReporter, Reporter* receiveReporter) {
  std::vector<pollfd> fds;
  for (int fd : endpoint.pollFds()) {
    if (fd >= 0) fds.push_back({fd, POLLIN, 0});
  }
  Transfer transfer(endpoint, connection, plan, sendReporter, receiveReporter);
  transfer.start(monotonicNs());
  FdWaiter waiter(plan.rxHoldoffNs);
  while (!transfer.done()) {
    const std::uint64_t now = monotonicNs();
    const std::uint64_t wake = transfer.step(now);
    if (wake > now) waiter.wait(fds, wake);
  }
  return transfer.finish();
}

}  // namespace mpxdp::cli
