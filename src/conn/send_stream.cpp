#include "send_stream.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "wire/frames.h"
#include "wire/packet.h"

namespace mpxdp::conn {

static_assert(SendStream::kDataOverhead == wire::kPacketHeaderLen + wire::kDataFrameHeaderLen);

Result<std::unique_ptr<SendStream>> SendStream::create(const ConnectionConfig& config, PathSet& paths,
                                                       Clock& clock, PacketNumbering& numbering,
                                                       std::uint32_t connId, std::uint32_t maxPayload) {
  std::vector<sched::PathConfig> pathConfigs;
  bool allRated = true;
  for (std::size_t l = 0; l < paths.size(); ++l) {
    sched::PathConfig path;
    path.rateBps = paths.rateBps(l);
    path.overheadBytes = paths.io(l).frameOverheadBytes() + kDataOverhead;
    allRated = allRated && path.rateBps > 0;
    pathConfigs.push_back(path);
  }
  sched::SchedulerOptions options;
  // The rates the user gave are used unless a scheduler was chosen explicitly.
  options.kind = config.scheduler.value_or(allRated ? sched::SchedulerKind::kWeightedRoundRobin
                                                    : sched::SchedulerKind::kRoundRobin);
  options.totalRateBps = config.totalRateBps;
  options.burstNs = config.pacingBurstNs;
  auto scheduler = sched::makeScheduler(options, pathConfigs);
  if (!scheduler) return scheduler.error().wrap("scheduler");
  return std::make_unique<SendStream>(config, paths, clock, numbering, connId, std::move(*scheduler),
                                      maxPayload);
}

SendStream::SendStream(const ConnectionConfig& config, PathSet& paths, Clock& clock,
                       PacketNumbering& numbering, std::uint32_t connId,
                       std::unique_ptr<sched::Scheduler> scheduler, std::uint32_t maxPayload)
    : config_(config),
      links_(paths),
      clock_(clock),
      numbering_(numbering),
      connId_(connId),
      scheduler_(std::move(scheduler)),
      maxPayload_(maxPayload),
      paths_(paths.size()),
      pickedPath_(config.batchSize),
      copySlots_(config.batchSize) {
  for (auto& path : paths_) {
    path.reserved.resize(config.batchSize);
    path.pending.resize(config.batchSize);
  }
}

std::size_t SendStream::reserve(std::span<SendSlot> out, std::uint32_t payloadBytes) noexcept {
  const std::uint32_t bytes = payloadBytes == 0 ? maxPayload_ : std::min(payloadBytes, maxPayload_);
  return reserveImpl(out, [bytes](std::size_t) { return bytes; });
}

Result<std::size_t> SendStream::commit(std::span<const SendSlot> slots) noexcept {
  const std::uint64_t nowNs = clock_.nowNs();
  sent_ = 0;
  firstError_.reset();
  for (const SendSlot& slot : slots) {
    if (slot.link >= paths_.size() || slot.frame == nullptr) {
      noteError(Error(EINVAL, "commit: slot was not lent by this connection"));
      continue;
    }
    TxBuffer buffer{slot.frame, slot.frameCapacity, 0, slot.handle};
    SendPath& path = paths_[slot.link];
    if (slot.length > slot.capacity) {
      noteError(Error(EMSGSIZE, "commit: slot length " + std::to_string(slot.length) + " exceeds capacity " +
                                    std::to_string(slot.capacity)));
    } else if (slot.length > 0) {
      const std::span<std::uint8_t> frame(slot.frame, slot.frameCapacity);
      wire::PacketHeader header;
      header.connId = connId_;
      header.pathId = slot.link;
      header.packetNumber = numbering_.takePacketNumber(slot.link);
      header.sendTsNs = nowNs;
      (void)wire::writePacketHeader(frame, header);
      (void)wire::writeDataFrameHeader(frame.subspan(wire::kPacketHeaderLen), nextGlobalSeq_++,
                                       static_cast<std::uint16_t>(slot.length));
      const std::size_t used = kDataOverhead + slot.length;
      buffer.length =
          static_cast<std::uint32_t>(used + numbering_.writePiggyback(slot.link, frame.subspan(used), nowNs));
      ++path.pendingPackets;
      path.pendingBytes += slot.length;
    }
    path.pending[path.pendingCount++] = buffer;
    if (path.pendingCount == config_.batchSize) commitPending(slot.link);
  }
  for (std::size_t l = 0; l < paths_.size(); ++l) {
    if (paths_[l].pendingCount > 0) commitPending(l);
  }
  // A failure on one path does not hide what the others sent: the error is
  // returned only when nothing went out (the rest is counted in txDropped).
  if (firstError_ && sent_ == 0) return *firstError_;
  if (firstError_) lastError_ = firstError_;
  return sent_;
}

Result<bool> SendStream::send(std::span<const std::uint8_t> payload) noexcept {
  if (auto check = checkPayload(payload.size()); !check) return check.error();
  SendSlot slot;
  const auto bytes = static_cast<std::uint32_t>(payload.size());
  if (reserveImpl(std::span<SendSlot>(&slot, 1), [bytes](std::size_t) { return bytes; }) == 0) return false;
  std::memcpy(slot.data, payload.data(), payload.size());
  slot.length = bytes;
  auto committed = commit(std::span<const SendSlot>(&slot, 1));
  if (!committed) return committed.error();
  return *committed == 1;
}

Result<std::size_t> SendStream::sendMany(std::span<const std::span<const std::uint8_t>> payloads) noexcept {
  for (const auto& payload : payloads) {
    if (auto check = checkPayload(payload.size()); !check) return check.error();
  }
  std::size_t done = 0;
  while (done < payloads.size()) {
    const std::size_t chunk = std::min<std::size_t>(payloads.size() - done, copySlots_.size());
    const auto rest = payloads.subspan(done, chunk);
    const std::size_t got = reserveImpl(std::span<SendSlot>(copySlots_.data(), chunk), [rest](std::size_t i) {
      return static_cast<std::uint32_t>(rest[i].size());
    });
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

std::uint64_t SendStream::nextSendTimeNs(std::uint32_t payloadBytes) const noexcept {
  if (stopped_) return UINT64_MAX;
  const std::uint32_t bytes = payloadBytes == 0 ? maxPayload_ : std::min(payloadBytes, maxPayload_);
  return scheduler_->nextEligibleNs(clock_.nowNs(), bytes);
}

Result<void> SendStream::flush() noexcept {
  for (std::size_t l = 0; l < paths_.size(); ++l) {
    if (auto flushed = links_.io(l).flushTx(); !flushed)
      return flushed.error().wrap("path " + std::to_string(l));
  }
  return {};
}

Result<void> SendStream::checkPayload(std::size_t size) const {
  if (size == 0) return Error(EINVAL, "send: empty payload");
  if (size > maxPayload_) {
    return Error(EMSGSIZE, "send: payload of " + std::to_string(size) + " bytes exceeds the maximum of " +
                               std::to_string(maxPayload_));
  }
  if (stopped_) return Error(EPIPE, "send: the stream has finished");
  return {};
}

template <typename SizeOf>
std::size_t SendStream::reserveImpl(std::span<SendSlot> out, SizeOf sizeOf) noexcept {
  if (stopped_) return 0;
  const std::size_t want = std::min<std::size_t>(out.size(), config_.batchSize);
  if (want == 0) return 0;
  const std::uint64_t nowNs = clock_.nowNs();
  for (auto& path : paths_) path.wanted = 0;
  std::size_t picked = 0;
  for (; picked < want; ++picked) {
    const int p = scheduler_->pick(nowNs, sizeOf(picked));
    if (p < 0 || static_cast<std::size_t>(p) >= paths_.size()) break;
    pickedPath_[picked] = static_cast<std::uint16_t>(p);
    ++paths_[p].wanted;
  }
  for (std::size_t l = 0; l < paths_.size(); ++l) {
    SendPath& path = paths_[l];
    path.got = 0;
    path.used = 0;
    if (path.wanted == 0) continue;
    PacketIo& io = links_.io(l);
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
    slot.data = buffer.data + kDataOverhead;
    slot.capacity =
        std::min<std::uint32_t>(std::min(buffer.capacity - kDataOverhead, maxPayload_), UINT16_MAX);
    slot.length = 0;
  }
  return n;
}

void SendStream::commitPending(std::size_t l) noexcept {
  SendPath& path = paths_[l];
  auto committed = links_.io(l).commitTx(std::span<const TxBuffer>(path.pending.data(), path.pendingCount));
  std::uint64_t packets = 0;
  if (!committed) {
    noteError(committed.error().wrap("path " + std::to_string(l) + " commit"));
  } else {
    packets = std::min<std::uint64_t>(*committed, path.pendingPackets);
  }
  txDropped_ += path.pendingPackets - packets;
  path.counters.packetsSent += packets;
  path.counters.bytesSent += path.pendingPackets == 0 ? 0 : path.pendingBytes * packets / path.pendingPackets;
  sent_ += packets;
  path.pendingCount = 0;
  path.pendingPackets = 0;
  path.pendingBytes = 0;
}

void SendStream::noteError(Error error) {
  if (!firstError_) firstError_ = std::move(error);
}

}  // namespace mpxdp::conn
