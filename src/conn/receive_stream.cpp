#include "receive_stream.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace mpxdp::conn {

Result<std::unique_ptr<ReceiveStream>> ReceiveStream::create(const ConnectionConfig& config, PathSet& paths) {
  reorder::ReorderOptions options = config.reorder;
  options.pathCount = static_cast<std::uint32_t>(paths.size());
  // The stream starts at 0 (after the handshake): a packet overtaken at the very start is not below it.
  if (!options.initialSeq) options.initialSeq = 0;
  options.reliable = config.reliable;
  if (config.reliable && config.reliableWindowPackets > options.windowPackets) {
    return Error(EINVAL, "reliable window of " + std::to_string(config.reliableWindowPackets) +
                             " packets exceeds the reorder window of " +
                             std::to_string(options.windowPackets));
  }
  auto reorderer = reorder::makeReorderer(options);
  if (!reorderer) return reorderer.error().wrap("reorderer");
  // Room for a full reorder window plus the batches in flight between the
  // paths, the delivery queue and the application.
  const std::uint64_t tableSize = static_cast<std::uint64_t>(options.windowPackets) +
                                  std::uint64_t{config.batchSize} * (paths.size() + 2);
  if (tableSize > (1U << 24)) return Error(EINVAL, "reorder window too large for the buffer table");
  return std::make_unique<ReceiveStream>(config, paths, std::move(*reorderer),
                                         static_cast<std::uint32_t>(tableSize));
}

ReceiveStream::ReceiveStream(const ConnectionConfig& config, PathSet& paths,
                             std::unique_ptr<reorder::Reorderer> reorderer, std::uint32_t tableSize)
    : config_(config),
      links_(paths),
      reorderer_(std::move(reorderer)),
      sink_(*this),
      table_(tableSize),
      freeList_(tableSize),
      ready_(tableSize),
      window_(config.reliable ? config.reliableWindowPackets : 0),
      paths_(paths.size()) {
  for (std::uint32_t i = 0; i < tableSize; ++i) freeList_[i] = tableSize - 1 - i;
  freeCount_ = tableSize;
}

ReceiveStream::~ReceiveStream() {
  for (auto& entry : table_) {
    if (entry.state != EntryState::kFree) links_.queueRelease(entry.link, entry.packet);
  }
  links_.flushReleases();
}

void ReceiveStream::onPacketNumber(std::uint16_t path, std::uint64_t pn, std::uint64_t sendTsNs,
                                   std::uint64_t nowNs, bool data) noexcept {
  ReceivePath& p = paths_[path];
  if (!data) ++p.controlPackets;
  // Per-path loss estimate from gaps in the packet numbers (data and control
  // alike); a packet that arrives after a gap was counted fills it again.
  if (pn >= p.expectedPacketNumber) {
    p.lostSeen += pn - p.expectedPacketNumber;
    p.expectedPacketNumber = pn + 1;
  } else {
    if (pn + 1 < p.expectedPacketNumber) ++p.outOfOrderInPath;  // the highest again is a duplicate
    if (p.lostSeen > 0) --p.lostSeen;
  }
  const auto owd = static_cast<std::int64_t>(nowNs - sendTsNs);
  if (!p.owdValid) {
    p.owdValid = true;
    p.owdMinNs = owd;
    p.owdAvgNs = owd;
  } else {
    p.owdMinNs = std::min(p.owdMinNs, owd);
    p.owdAvgNs += (owd - p.owdAvgNs) / 16;
  }
  if (!data) reorderer_->observePath(path, pn, nowNs);
}

void ReceiveStream::onData(const ArrivingData& data, std::uint64_t nowNs, std::uint64_t pushNs) noexcept {
  ReceivePath& path = paths_[data.link];
  ++path.packetsReceived;
  path.bytesReceived += data.length;
  anyArrival_ = true;
  lastArrivalNs_ = nowNs;

  const std::uint32_t index = freeList_[--freeCount_];
  HeldEntry& entry = table_[index];
  entry.packet = data.packet;
  entry.globalSeq = data.globalSeq;
  entry.offset = data.offset;
  entry.length = data.length;
  entry.link = data.link;
  entry.state = EntryState::kInReorderer;
  reorder::ArrivingPacket arriving;
  arriving.globalSeq = data.globalSeq;
  arriving.pathId = data.link;
  arriving.pathPacketNumber = data.packetNumber;
  arriving.sendTsNs = data.sendTsNs;
  arriving.arrivalNs = nowNs;
  arriving.cookie = index;
  judgedNs_ = pushNs;
  reorderer_->push(arriving, pushNs, sink_);
}

void ReceiveStream::onClose(std::uint16_t path, std::uint64_t finalSeq, std::uint64_t nowNs) noexcept {
  ReceivePath& p = paths_[path];
  ++p.closeFrames;
  if (!endSeen_) {
    endSeen_ = true;
    finalSeq_ = finalSeq;
    endSeenNs_ = nowNs;
  }
  if (!p.closed) {
    p.closed = true;
    ++pathsClosed_;
  }
}

void ReceiveStream::onDrained(std::uint64_t drainedNs, std::uint64_t nowNs) noexcept {
  judgedNs_ = drainedNs;
  reorderer_->poll(drainedNs, sink_);
  checkFinished(nowNs);
}

void ReceiveStream::abandon() noexcept {
  if (finished_) return;
  // Reliable: what is held sits behind a hole that will never be filled; the
  // application must not see the gap, so it is dropped, not delivered.
  dropHeld_ = config_.reliable;
  judgedNs_ = 0;  // the end of the stream: whatever comes later is late
  reorderer_->flush(sink_);
  dropHeld_ = false;
  links_.flushReleases();
  finished_ = true;
}

std::size_t ReceiveStream::take(std::span<Delivered> out) noexcept {
  std::size_t n = 0;
  while (n < out.size() && readyCount_ > 0) {
    const std::uint32_t index = popReady();
    HeldEntry& entry = table_[index];
    entry.state = EntryState::kApp;
    ++appCount_;
    out[n++] = Delivered{entry.packet.data + entry.offset, entry.length, entry.link, entry.globalSeq, index};
  }
  return n;
}

void ReceiveStream::release(std::span<const Delivered> packets) noexcept {
  for (const Delivered& d : packets) {
    if (d.entry >= table_.size() || table_[d.entry].state != EntryState::kApp) {
      ++badReleases_;
      continue;
    }
    freeEntry(d.entry);
  }
  links_.flushReleases();
}

Result<std::size_t> ReceiveStream::recv(std::span<std::uint8_t> buffer) noexcept {
  if (readyCount_ == 0) return std::size_t{0};
  const std::uint32_t index = ready_[readyHead_];
  HeldEntry& entry = table_[index];
  if (entry.length > buffer.size()) {
    return Error(EMSGSIZE, "recv: payload of " + std::to_string(entry.length) + " bytes, buffer holds " +
                               std::to_string(buffer.size()));
  }
  popReady();
  const std::size_t length = entry.length;
  std::memcpy(buffer.data(), entry.packet.data + entry.offset, length);
  freeEntry(index);
  links_.flushReleases();
  return length;
}

std::uint64_t ReceiveStream::nextDeadlineNs() const noexcept {
  std::uint64_t deadline = reorderer_->nextDeadlineNs();
  if (finished_) return deadline;
  if (config_.reliable) return deadline;  // nothing is declared lost: no drain or idle deadline
  if (endSeen_ && config_.endDrainTimeoutNs > 0) {
    deadline = std::min(deadline, endSeenNs_ + config_.endDrainTimeoutNs);
  }
  if (anyArrival_ && config_.idleTimeoutNs > 0) {
    deadline = std::min(deadline, lastArrivalNs_ + config_.idleTimeoutNs);
  }
  return deadline;
}

void ReceiveStream::fillState(ConnectionState& s) const noexcept {
  s.accountedSeq = accounted_;
  s.endSeen = endSeen_;
  s.finalSeq = finalSeq_;
  s.receiveFinished = finished_;
  s.endedByIdleTimeout = endedByIdle_;
  s.heldPackets = table_.size() - freeCount_;
}

void ReceiveStream::fillStats(ConnectionStats& s) const {
  const reorder::ReorderStats r = reorderer_->stats();
  s.packetsDelivered = delivered_;
  s.bytesDelivered = bytesDelivered_;
  s.outOfOrderArrived = r.outOfOrderArrived;
  s.outOfOrderDelivered = r.outOfOrderDelivered;
  s.lost = lostDeclared_ + tailLost_;
  s.lostFast = r.lostFast;
  s.duplicates = r.duplicates;
  s.late = r.late;
  s.lateQueued = lateQueued_;
  s.implausible = r.implausible;
  s.hold = hold_.summary();
  s.maxStallNs = s.hold.maxNs;
  for (std::size_t l = 0; l < paths_.size() && l < s.paths.size(); ++l) {
    const ReceivePath& path = paths_[l];
    PathStats& p = s.paths[l];
    p.packetsReceived = path.packetsReceived;
    p.bytesReceived = path.bytesReceived;
    p.controlPacketsReceived = path.controlPackets;
    p.lostSeen = path.lostSeen;
    p.outOfOrderInPath = path.outOfOrderInPath;
    p.closeFrames = path.closeFrames;
    p.owdValid = path.owdValid;
    p.owdMinNs = path.owdMinNs;
    p.owdAvgNs = path.owdAvgNs;
  }
}

void ReceiveStream::checkFinished(std::uint64_t nowNs) noexcept {
  if (finished_) return;
  if (config_.reliable) {
    // Everything arrives or the connection fails (peer timeout): never a loss.
    if (endSeen_ && accounted_ >= finalSeq_) finished_ = true;
    return;
  }
  const bool idle = anyArrival_ && config_.idleTimeoutNs > 0 && nowNs > lastArrivalNs_ &&
                    nowNs - lastArrivalNs_ >= config_.idleTimeoutNs;
  if (endSeen_) {
    if (accounted_ >= finalSeq_) {
      finished_ = true;
      return;
    }
    const bool allClosed = pathsClosed_ == paths_.size();
    const bool drained = config_.endDrainTimeoutNs > 0 && nowNs > endSeenNs_ &&
                         nowNs - endSeenNs_ >= config_.endDrainTimeoutNs;
    if (allClosed || drained || idle) finishNow(true);
  } else if (idle) {
    endedByIdle_ = true;
    finishNow(false);
  }
}

void ReceiveStream::finishNow(bool declareTail) noexcept {
  judgedNs_ = 0;  // the end of the stream: whatever comes later is late
  reorderer_->flush(sink_);
  if (declareTail && accounted_ < finalSeq_) {
    // Sequence numbers above the highest one that arrived.
    tailLost_ += finalSeq_ - accounted_;
    accounted_ = finalSeq_;
  }
  finished_ = true;
}

std::uint32_t ReceiveStream::popReady() noexcept {
  const std::uint32_t index = ready_[readyHead_];
  readyHead_ = (readyHead_ + 1) % static_cast<std::uint32_t>(ready_.size());
  --readyCount_;
  return index;
}

void ReceiveStream::freeEntry(std::uint32_t index) noexcept {
  HeldEntry& entry = table_[index];
  links_.queueRelease(entry.link, entry.packet);
  if (entry.state == EntryState::kApp) --appCount_;
  entry.state = EntryState::kFree;
  freeList_[freeCount_++] = index;
}

// A late packet that the link stamped at or before its loss was judged was
// waiting here unread: the judgement assumed every path had been read by then.
// Unless a read of its path after the stamp found the ring empty: then the
// kernel had not published it yet, and no read could have had it. Rare (late
// packets only), so a scan of the recent losses is fine.
void ReceiveStream::noteLate(const reorder::ArrivingPacket& packet) noexcept {
  const std::uint64_t stampNs = table_[static_cast<std::uint32_t>(packet.cookie)].packet.arrivalNs;
  if (stampNs == 0 || links_.foundEmptyNs(packet.pathId) >= stampNs) return;
  const std::size_t recorded = std::min(lossRecordCount_, kLossRecords);
  for (std::size_t i = 1; i <= recorded; ++i) {
    const LossRecord& r = lossRecords_[(lossRecordCount_ - i) % kLossRecords];
    if (packet.globalSeq - r.firstSeq < r.count) {
      if (r.judgedNs != 0 && stampNs <= r.judgedNs) ++lateQueued_;
      return;
    }
  }
}

void ReceiveStream::Sink::deliver(const reorder::ArrivingPacket& packet, std::uint64_t holdNs) {
  const auto index = static_cast<std::uint32_t>(packet.cookie);
  if (stream_.dropHeld_) {
    stream_.freeEntry(index);
    return;
  }
  HeldEntry& entry = stream_.table_[index];
  entry.state = EntryState::kReady;
  stream_.ready_[(stream_.readyHead_ + stream_.readyCount_) % stream_.ready_.size()] = index;
  ++stream_.readyCount_;
  ++stream_.delivered_;
  stream_.bytesDelivered_ += entry.length;
  ++stream_.accounted_;
  stream_.hold_.record(holdNs);
}

void ReceiveStream::Sink::lost(std::uint64_t firstSeq, std::uint64_t count) {
  if (stream_.dropHeld_) return;  // abandoned: a failed stream, not a loss
  stream_.lossRecords_[stream_.lossRecordCount_++ % kLossRecords] =
      LossRecord{firstSeq, count, stream_.judgedNs_};
  stream_.lostDeclared_ += count;
  stream_.accounted_ += count;
}

void ReceiveStream::Sink::discard(const reorder::ArrivingPacket& packet, DiscardReason reason) {
  if (reason == DiscardReason::kLate) stream_.noteLate(packet);
  // Duplicates, late and out-of-window packets go straight back to their path.
  stream_.freeEntry(static_cast<std::uint32_t>(packet.cookie));
}

}  // namespace mpxdp::conn
