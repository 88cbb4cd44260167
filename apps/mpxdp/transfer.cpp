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

TransferResult runTransfer(Endpoint& endpoint, Connection& connection, const TransferPlan& plan,
                           Reporter* sendReporter, Reporter* receiveReporter) {
  TransferResult result;
  const ConnectionState initial = connection.state();
  const bool sends = initial.sends;
  const bool receives = initial.receives;
  std::vector<pollfd> fds;
  for (int fd : endpoint.pollFds()) {
    if (fd >= 0) fds.push_back({fd, POLLIN, 0});
  }

  const std::uint32_t payload = std::min(plan.payloadBytes, connection.maxPayload());
  const auto intervalNs = static_cast<std::uint64_t>(plan.intervalS * 1e9);
  const std::uint64_t startNs = monotonicNs();
  if (sendReporter) sendReporter->start(startNs);
  if (receiveReporter) receiveReporter->start(startNs);
  const std::uint64_t sendEndNs = plan.sendDurationNs == 0 ? UINT64_MAX : startNs + plan.sendDurationNs;
  std::uint64_t nextReportNs = intervalNs > 0 ? startNs + intervalNs : UINT64_MAX;
  std::uint64_t lastSendNs = startNs;
  std::uint64_t lastControlPollNs = 0;
  bool sourceDone = false;  // the source gave its last payload
  std::uint64_t firstDeliveryNs = 0;
  std::uint64_t lastDeliveryNs = 0;
  auto seconds = [&](std::uint64_t ns) { return static_cast<double>(ns - startNs) / 1e9; };
  std::array<SendSlot, 64> slots;
  std::array<Delivered, 256> delivered;
  // When paced out, sleep until a batch's worth of tokens is back: waking for
  // every packet would cost a wakeup and kicks per packet.
  // The paths' pacing rates are estimated and change: their sum is read back
  // every kRateRefreshNs.
  const std::uint64_t frameBits = 8ULL * (payload + wire::kDataPacketOverhead + 42);
  const std::uint64_t askedBps =
      plan.rateBps == 0 ? UINT64_MAX : plan.rateBps * (payload + wire::kDataPacketOverhead + 42) / payload;
  std::uint64_t pacedBps = 0;
  std::uint64_t batchNs = 50'000;
  std::uint64_t nextRateRefreshNs = 0;
  auto refreshPacing = [&](const ConnectionStats& stats) {
    std::uint64_t sum = 0;
    for (const PathStats& path : stats.paths) {
      if (path.state != PathState::kDead) sum += path.pacingRateBps;
    }
    pacedBps = std::min(askedBps, sum);
    batchNs = pacedBps == 0 ? 50'000
                            : std::min<std::uint64_t>(
                                  kSleepBatchPackets * frameBits * 1'000'000'000ULL / pacedBps, 250'000);
  };

  while (!connection.done()) {
    if (stopRequested()) {
      connection.abort(static_cast<std::uint16_t>(wire::CloseError::kStopped),
                       "stopped by signal " + std::to_string(stopSignal()));
      result.endedBy = "signal";
      break;
    }
    std::uint64_t now = monotonicNs();
    if (now >= nextReportNs) {
      // One snapshot for both directions; the ticks stay on start + k * interval.
      const ConnectionStats snapshot = connection.stats();
      if (sendReporter) {
        sendReporter->interval(snapshot, seconds(now), 0,
                               plan.source ? std::optional(plan.source->progress()) : std::nullopt);
      }
      if (receiveReporter) {
        receiveReporter->interval(snapshot, seconds(now), result.corrupt,
                                  plan.sink ? std::optional(plan.sink->progress()) : std::nullopt);
      }
      nextReportNs += intervalNs * ((now - nextReportNs) / intervalNs + 1);
    }
    if (sends && now >= nextRateRefreshNs) {
      refreshPacing(connection.stats());
      nextRateRefreshNs = now + kRateRefreshNs;
    }
    bool busy = false;
    if (receives) {
      auto n = connection.poll(delivered);
      if (!n) {
        result.failure = n.error();
        break;
      }
      lastControlPollNs = now;
      std::optional<Error> sinkError;
      for (std::size_t i = 0; i < *n; ++i) {
        if (plan.sink != nullptr) {
          if (sinkError) continue;
          if (auto consumed =
                  plan.sink->consume(delivered[i].globalSeq, {delivered[i].data, delivered[i].length});
              !consumed) {
            sinkError = consumed.error();
          }
          continue;
        }
        if (delivered[i].globalSeq == 0 && delivered[i].length >= kFileHeaderMagic.size() &&
            std::memcmp(delivered[i].data, kFileHeaderMagic.data(), kFileHeaderMagic.size()) == 0) {
          // Counting a file as corrupt pattern payloads would help nobody.
          sinkError = Error(EPROTO, "the client sends a file (send -F): run mpxdp recv -F PATH to store it");
          continue;
        }
        result.corrupt +=
            checkPattern(delivered[i].data, delivered[i].length, delivered[i].globalSeq) ? 0 : 1;
      }
      connection.release({delivered.data(), *n});
      if (sinkError) {
        // The peer learns why (its CLOSE carries the reason) and stops sending.
        connection.abort(static_cast<std::uint16_t>(wire::CloseError::kProtocol), sinkError->context());
        result.failure = std::move(sinkError);
        result.endedBy = "error";
        break;
      }
      if (*n > 0) {
        if (firstDeliveryNs == 0) firstDeliveryNs = now;
        lastDeliveryNs = now;
        busy = *n == delivered.size();
      }
    } else if (now - lastControlPollNs >= kControlPollNs) {
      if (auto polled = endpoint.poll(); !polled) {
        result.failure = polled.error();
        break;
      }
      lastControlPollNs = now;
    }
    std::uint64_t wake = std::min({endpoint.nextDeadlineNs(), nextReportNs, now + kMaxWaitNs});
    if (sends && !connection.state().sendFinished) {
      if (now >= sendEndNs || (plan.source != nullptr && sourceDone)) {
        if (auto finished = connection.finish(); !finished) {
          result.failure = finished.error();
          break;
        }
        result.sendDurationS = seconds(std::max(lastSendNs, std::min(now, sendEndNs)));
        continue;
      }
      const std::size_t n = connection.reserve(slots, payload);
      if (n > 0) {
        const std::uint64_t firstSeq = connection.state().nextGlobalSeq;
        std::optional<Error> sourceError;
        for (std::size_t i = 0; i < n; ++i) {
          if (plan.source == nullptr) {
            fillPattern(slots[i].data, payload, firstSeq + i);
            slots[i].length = payload;
            continue;
          }
          // Slots past the end of the stream go back unsent (length 0).
          slots[i].length = 0;
          if (sourceDone || sourceError) continue;
          auto filled = plan.source->fill(slots[i].data, std::min(slots[i].capacity, payload));
          if (!filled) {
            sourceError = filled.error();
          } else if (*filled == 0) {
            sourceDone = true;
          } else {
            slots[i].length = *filled;
          }
        }
        auto committed = connection.commit({slots.data(), n});
        if (sourceError) {
          connection.abort(static_cast<std::uint16_t>(wire::CloseError::kStopped), sourceError->context());
          result.failure = std::move(sourceError);
          result.endedBy = "error";
          break;
        }
        if (!committed) {
          result.failure = committed.error();
          break;
        }
        lastSendNs = monotonicNs();
        busy = busy || n >= kSleepBatchPackets || pacedBps == 0;
      } else if (auto flushed = connection.flush(); !flushed) {
        result.failure = flushed.error();
        break;
      }
      wake = std::min({wake, std::max(connection.nextSendTimeNs(payload), now + batchNs), sendEndNs});
    }
    if (!busy) waitOnFds(fds, wake);
  }
  if (sends && result.sendDurationS == 0) result.sendDurationS = seconds(std::max(lastSendNs, startNs));
  if (receives && firstDeliveryNs != 0)
    result.receiveDurationS = static_cast<double>(lastDeliveryNs - firstDeliveryNs) / 1e9;
  result.endS = seconds(monotonicNs());
  if (plan.source != nullptr) result.sendFile = plan.source->progress();
  if (plan.sink != nullptr) result.receiveFile = plan.sink->progress();
  result.stats = connection.stats();
  if (!result.failure && connection.error() && result.endedBy != "signal") {
    result.failure = connection.error();
    result.endedBy = "peer";
  }
  if (result.endedBy.empty()) {
    if (result.failure) {
      result.endedBy = "error";
    } else if (receives && connection.state().endedByIdleTimeout) {
      result.endedBy = "idle timeout";
    } else {
      result.endedBy = !sends ? "end of stream" : plan.source != nullptr ? "end of file" : "time";
    }
  }
  return result;
}

}  // namespace mpxdp::cli
