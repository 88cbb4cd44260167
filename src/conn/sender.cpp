// Sender: scheduler + pacer choose the path of each slot at reserve time;
// commit stamps the multipath headers and hands buffers to the links in batches.
#include <algorithm>
#include <cstring>
#include <optional>
#include <string>

#include "link_check.h"
#include "mpxdp/connection.h"
#include "wire/codec.h"

namespace mpxdp {
namespace {

constexpr std::uint32_t kHeaderLen = static_cast<std::uint32_t>(wire::kMpHeaderLen);

struct SendPath {
  std::uint32_t nextPathSeq = 0;
  std::uint64_t packetsSent = 0;
  std::uint64_t bytesSent = 0;
  std::uint64_t endMarkers = 0;
  // Filled by reserve.
  std::vector<TxBuffer> reserved;
  std::uint32_t wanted = 0;
  std::uint32_t got = 0;
  std::uint32_t used = 0;
  // Pending commit batch.
  std::vector<TxBuffer> pending;
  std::uint32_t pendingCount = 0;
  std::uint32_t pendingPackets = 0;
  std::uint64_t pendingBytes = 0;
};

class SenderImpl final : public Sender {
 public:
  SenderImpl(const ConnectionConfig& config, std::vector<Link> links, std::shared_ptr<Clock> clock,
             std::unique_ptr<sched::Scheduler> scheduler, std::uint32_t maxPayload)
      : config_(config),
        links_(std::move(links)),
        clock_(std::move(clock)),
        scheduler_(std::move(scheduler)),
        maxPayload_(maxPayload),
        paths_(links_.size()),
        pickedPath_(config.batchSize),
        copySlots_(config.batchSize) {
    for (auto& path : paths_) {
      path.reserved.resize(config.batchSize);
      path.pending.resize(config.batchSize);
    }
  }

  ~SenderImpl() override { (void)flush(); }

  std::size_t reserve(std::span<SendSlot> out, std::uint32_t payloadBytes) noexcept override {
    const std::uint32_t bytes = payloadBytes == 0 ? maxPayload_ : std::min(payloadBytes, maxPayload_);
    return reserveImpl(out, [bytes](std::size_t) { return bytes; });
  }

  Result<std::size_t> commit(std::span<const SendSlot> slots) noexcept override {
    const std::uint64_t nowNs = clock_->nowNs();
    sent_ = 0;
    firstError_.reset();
    for (const SendSlot& slot : slots) {
      if (slot.link >= links_.size() || slot.frame == nullptr) {
        noteError(Error(EINVAL, "commit: slot was not lent by this sender"));
        continue;
      }
      TxBuffer buffer{slot.frame, slot.frameCapacity, 0, slot.handle};
      SendPath& path = paths_[slot.link];
      if (slot.length > slot.capacity) {
        noteError(Error(EMSGSIZE, "commit: slot length " + std::to_string(slot.length) +
                                      " exceeds capacity " + std::to_string(slot.capacity)));
      } else if (slot.length > 0) {
        wire::MpHeader header;
        header.connId = config_.connId;
        header.pathId = slot.link;
        header.payloadLen = static_cast<std::uint16_t>(slot.length);
        header.pathSeq = path.nextPathSeq++;
        header.globalSeq = nextGlobalSeq_++;
        header.sendTsNs = nowNs;
        (void)wire::encodeMpHeader(std::span<std::uint8_t>(slot.frame, slot.frameCapacity), header);
        buffer.length = kHeaderLen + slot.length;
        ++path.pendingPackets;
        path.pendingBytes += slot.length;
      }
      path.pending[path.pendingCount++] = buffer;
      if (path.pendingCount == config_.batchSize) commitPending(slot.link);
    }
    for (std::size_t l = 0; l < links_.size(); ++l) {
      if (paths_[l].pendingCount > 0) commitPending(l);
    }
    if (firstError_) return *firstError_;
    return sent_;
  }

  Result<bool> send(std::span<const std::uint8_t> payload) noexcept override {
    if (auto check = checkPayload(payload.size()); !check) return check.error();
    SendSlot slot;
    const auto bytes = static_cast<std::uint32_t>(payload.size());
    if (reserveImpl(std::span<SendSlot>(&slot, 1), [bytes](std::size_t) { return bytes; }) == 0) return false;
    std::memcpy(slot.data, payload.data(), payload.size());
    slot.length = bytes;
    auto committed = commit(std::span<const SendSlot>(&slot, 1));
    if (!committed) return committed.error();
    return true;
  }

  Result<std::size_t> sendMany(std::span<const std::span<const std::uint8_t>> payloads) noexcept override {
    for (const auto& payload : payloads) {
      if (auto check = checkPayload(payload.size()); !check) return check.error();
    }
    std::size_t done = 0;
    while (done < payloads.size()) {
      const std::size_t chunk = std::min<std::size_t>(payloads.size() - done, copySlots_.size());
      const auto rest = payloads.subspan(done, chunk);
      const std::size_t got =
          reserveImpl(std::span<SendSlot>(copySlots_.data(), chunk),
                      [rest](std::size_t i) { return static_cast<std::uint32_t>(rest[i].size()); });
      for (std::size_t i = 0; i < got; ++i) {
        std::memcpy(copySlots_[i].data, rest[i].data(), rest[i].size());
        copySlots_[i].length = static_cast<std::uint32_t>(rest[i].size());
      }
      auto committed = commit(std::span<const SendSlot>(copySlots_.data(), got));
      if (!committed) return committed.error();
      done += got;
      if (got < chunk) break;
    }
    return done;
  }

  std::uint64_t nextSendTimeNs(std::uint32_t payloadBytes) const noexcept override {
    if (finished_) return UINT64_MAX;
    const std::uint32_t bytes = payloadBytes == 0 ? maxPayload_ : std::min(payloadBytes, maxPayload_);
    return scheduler_->nextEligibleNs(clock_->nowNs(), bytes);
  }

  Result<void> waitUntilSendable(std::uint32_t payloadBytes) noexcept override {
    if (finished_) return Error(EPIPE, "wait: the sender has finished");
    if (auto flushed = flush(); !flushed) return flushed;
    const std::uint64_t when = nextSendTimeNs(payloadBytes);
    if (when == UINT64_MAX) return Error(EAGAIN, "wait: no path can ever send this payload");
    if (when > clock_->nowNs()) clock_->sleepUntil(when);
    return {};
  }

  Result<void> flush() noexcept override {
    for (std::size_t l = 0; l < links_.size(); ++l) {
      if (auto flushed = links_[l].io->flushTx(); !flushed)
        return flushed.error().wrap("link " + std::to_string(l));
    }
    return {};
  }

  Result<void> finish() noexcept override {
    if (finished_) return {};
    const std::uint64_t finalSeq = nextGlobalSeq_;
    std::size_t markersSent = 0;
    std::optional<Error> lastError;
    for (std::uint32_t round = 0; round < std::max<std::uint32_t>(config_.endRepeats, 1); ++round) {
      if (round > 0) clock_->sleepUntil(clock_->nowNs() + config_.endRepeatIntervalNs);
      for (std::size_t l = 0; l < links_.size(); ++l) {
        auto sent = sendEndMarker(l, finalSeq);
        if (sent) {
          ++markersSent;
        } else {
          lastError = sent.error();
        }
      }
      (void)flush();
    }
    finished_ = true;
    if (markersSent == 0 && lastError) return lastError->wrap("finish: no END marker could be sent");
    return {};
  }

  std::uint32_t maxPayload() const noexcept override { return maxPayload_; }
  std::size_t linkCount() const noexcept override { return links_.size(); }

  ConnectionState state() const noexcept override {
    ConnectionState s;
    s.phase = finished_ ? ConnectionPhase::kFinished : ConnectionPhase::kOpen;
    s.nextGlobalSeq = nextGlobalSeq_;
    s.finalSeq = finished_ ? nextGlobalSeq_ : 0;
    return s;
  }

  ConnectionStats stats() const override {
    ConnectionStats s;
    s.txDropped = txDropped_;
    s.paths.resize(links_.size());
    for (std::size_t l = 0; l < links_.size(); ++l) {
      PathStats& p = s.paths[l];
      p.packetsSent = paths_[l].packetsSent;
      p.bytesSent = paths_[l].bytesSent;
      p.endMarkers = paths_[l].endMarkers;
      p.io = links_[l].io->stats();
      s.packetsSent += p.packetsSent;
      s.bytesSent += p.bytesSent;
    }
    return s;
  }

 private:
  Result<void> checkPayload(std::size_t size) const {
    if (size == 0) return Error(EINVAL, "send: empty payload");
    if (size > maxPayload_) {
      return Error(EMSGSIZE, "send: payload of " + std::to_string(size) + " bytes exceeds the maximum of " +
                                 std::to_string(maxPayload_));
    }
    if (finished_) return Error(EPIPE, "send: the sender has finished");
    return {};
  }

  template <typename SizeOf>
  std::size_t reserveImpl(std::span<SendSlot> out, SizeOf sizeOf) noexcept {
    if (finished_) return 0;
    const std::size_t want = std::min<std::size_t>(out.size(), config_.batchSize);
    if (want == 0) return 0;
    const std::uint64_t nowNs = clock_->nowNs();
    for (auto& path : paths_) path.wanted = 0;
    std::size_t picked = 0;
    for (; picked < want; ++picked) {
      const int p = scheduler_->pick(nowNs, sizeOf(picked));
      if (p < 0 || static_cast<std::size_t>(p) >= links_.size()) break;
      pickedPath_[picked] = static_cast<std::uint16_t>(p);
      ++paths_[p].wanted;
    }
    for (std::size_t l = 0; l < links_.size(); ++l) {
      SendPath& path = paths_[l];
      path.got = 0;
      path.used = 0;
      if (path.wanted == 0) continue;
      PacketIo& io = *links_[l].io;
      path.got =
          static_cast<std::uint32_t>(io.reserveTx(std::span<TxBuffer>(path.reserved.data(), path.wanted)));
      if (path.got < path.wanted) {
        // TX ring full: reap completions once and retry.
        (void)io.flushTx();
        path.got += static_cast<std::uint32_t>(
            io.reserveTx(std::span<TxBuffer>(path.reserved.data() + path.got, path.wanted - path.got)));
      }
    }
    std::size_t n = 0;
    for (std::size_t i = 0; i < picked; ++i) {
      const std::uint16_t l = pickedPath_[i];
      SendPath& path = paths_[l];
      if (path.used == path.got) {
        // The link had no buffer: the slot is dropped, its tokens go back.
        scheduler_->refund(l, sizeOf(i));
        continue;
      }
      const TxBuffer& buffer = path.reserved[path.used++];
      SendSlot& slot = out[n++];
      slot.frame = buffer.data;
      slot.frameCapacity = buffer.capacity;
      slot.handle = buffer.handle;
      slot.link = l;
      slot.data = buffer.data + kHeaderLen;
      slot.capacity = std::min<std::uint32_t>(buffer.capacity - kHeaderLen, UINT16_MAX);
      slot.length = 0;
    }
    return n;
  }

  void commitPending(std::size_t l) noexcept {
    SendPath& path = paths_[l];
    auto committed =
        links_[l].io->commitTx(std::span<const TxBuffer>(path.pending.data(), path.pendingCount));
    std::uint64_t packets = 0;
    if (!committed) {
      noteError(committed.error().wrap("link " + std::to_string(l) + " commit"));
    } else {
      packets = std::min<std::uint64_t>(*committed, path.pendingPackets);
    }
    txDropped_ += path.pendingPackets - packets;
    path.packetsSent += packets;
    path.bytesSent += path.pendingPackets == 0 ? 0 : path.pendingBytes * packets / path.pendingPackets;
    sent_ += packets;
    path.pendingCount = 0;
    path.pendingPackets = 0;
    path.pendingBytes = 0;
  }

  Result<void> sendEndMarker(std::size_t l, std::uint64_t finalSeq) noexcept {
    PacketIo& io = *links_[l].io;
    TxBuffer buffer;
    if (io.reserveTx(std::span<TxBuffer>(&buffer, 1)) == 0) {
      (void)io.flushTx();
      if (io.reserveTx(std::span<TxBuffer>(&buffer, 1)) == 0) {
        return Error(EAGAIN, "link " + std::to_string(l) + ": no TX buffer for the END marker");
      }
    }
    wire::MpHeader header;
    header.flags = MPXDP_FLAG_END;
    header.connId = config_.connId;
    header.pathId = static_cast<std::uint16_t>(l);
    header.payloadLen = 0;
    header.pathSeq = paths_[l].nextPathSeq;  // not consumed: tells the receiver the path's tail
    header.globalSeq = finalSeq;
    header.sendTsNs = clock_->nowNs();
    (void)wire::encodeMpHeader(std::span<std::uint8_t>(buffer.data, buffer.capacity), header);
    buffer.length = kHeaderLen;
    auto committed = io.commitTx(std::span<const TxBuffer>(&buffer, 1));
    if (!committed) return committed.error().wrap("link " + std::to_string(l) + " END marker");
    if (*committed == 0) return Error(EAGAIN, "link " + std::to_string(l) + " refused the END marker");
    ++paths_[l].endMarkers;
    return {};
  }

  void noteError(Error error) {
    if (!firstError_) firstError_ = std::move(error);
  }

  ConnectionConfig config_;
  std::vector<Link> links_;
  std::shared_ptr<Clock> clock_;
  std::unique_ptr<sched::Scheduler> scheduler_;
  std::uint32_t maxPayload_;
  std::vector<SendPath> paths_;
  std::vector<std::uint16_t> pickedPath_;
  std::vector<SendSlot> copySlots_;
  std::uint64_t nextGlobalSeq_ = 0;
  std::uint64_t txDropped_ = 0;
  std::uint64_t sent_ = 0;
  std::optional<Error> firstError_;
  bool finished_ = false;
};

}  // namespace

Result<std::unique_ptr<Sender>> Sender::create(const ConnectionConfig& config, std::vector<Link> links,
                                               std::shared_ptr<Clock> clock) {
  auto maxPayload = conn::checkConnection(config, links);
  if (!maxPayload) return maxPayload.error().wrap("sender");
  std::vector<sched::PathConfig> paths;
  paths.reserve(links.size());
  for (const Link& link : links) paths.push_back(link.path);
  sched::SchedulerOptions options;
  options.kind = config.scheduler;
  options.totalRateBps = config.totalRateBps;
  options.perPacketOverheadBytes = config.perPacketOverheadBytes;
  options.burstNs = config.pacingBurstNs;
  auto scheduler = sched::makeScheduler(options, paths);
  if (!scheduler) return scheduler.error().wrap("sender scheduler");
  if (!clock) clock = std::make_shared<MonotonicClock>();
  return std::unique_ptr<Sender>(std::make_unique<SenderImpl>(config, std::move(links), std::move(clock),
                                                              std::move(*scheduler), *maxPayload));
}

}  // namespace mpxdp
