#include "send_stream.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "wire/frames.h"
#include "wire/packet.h"

namespace mpxdp::conn {

static_assert(SendStream::kDataOverhead == wire::kPacketHeaderLen + wire::kDataFrameHeaderLen);

Result<std::unique_ptr<SendStream>> SendStream::create(const ConnectionConfig& config, PathSet& paths,
                                                       Clock& clock, SendHooks& hooks, std::uint32_t connId,
                                                       std::uint32_t maxPayload, std::uint32_t tailroom) {
  sched::SchedulerOptions options;
  options.kind = config.scheduler.value_or(sched::SchedulerKind::kEarliestArrival);
  options.slackNs = config.pacingBurstNs;
  auto scheduler = sched::makeScheduler(options, paths.size());
  if (!scheduler) return scheduler.error().wrap("scheduler");
  return std::make_unique<SendStream>(config, paths, clock, hooks, connId, std::move(*scheduler), maxPayload,
                                      tailroom);
}

SendStream::SendStream(const ConnectionConfig& config, PathSet& paths, Clock& clock, SendHooks& hooks,
                       std::uint32_t connId, std::unique_ptr<sched::Scheduler> scheduler,
                       std::uint32_t maxPayload, std::uint32_t tailroom)
    : config_(config),
      links_(paths),
      clock_(clock),
      hooks_(hooks),
      connId_(connId),
      scheduler_(std::move(scheduler)),
      maxPayload_(maxPayload),
      tailroom_(tailroom),
      paths_(paths.size()),
      views_(paths.size()),
      total_(config.totalRateBps, config.pacingBurstNs),
      pickedPath_(config.batchSize),
      copySlots_(config.batchSize) {
  if (config.reliable) {
    retx_ = std::make_unique<RetransmitBuffer>(config.reliableWindowPackets, maxPayload);
    // Until the peer's first MAX_SEQ (it comes with its HELLO): the smallest window.
    peerMaxSeq_ = kInitialCredit;
  }
  for (std::size_t l = 0; l < paths_.size(); ++l) {
    SendPath& path = paths_[l];
    path.reserved.resize(config.batchSize);
    path.queue.resize(kQueueCapacity);
    path.batch.resize(config.batchSize);
    path.batchPayload.resize(config.batchSize);
    path.pacer = sched::Pacer(0, config.pacingBurstNs);
    path.overheadBytes = paths.io(l).frameOverheadBytes() + kDataOverhead + tailroom;
  }
}

void SendStream::fillViews(std::uint64_t nowNs) const noexcept {
  for (std::size_t l = 0; l < paths_.size(); ++l) {
    const SendPath& path = paths_[l];
    sched::PathView view = hooks_.pathView(l, nowNs);
    view.overheadBytes = path.overheadBytes;
    if (path.queueCount >= kQueueCapacity || view.full) view.usable = false;
    sched::Pacer pacer(view.rateBps, 0);
    view.queuedNs = path.pacer.aheadNs(nowNs) + pacer.costNs(path.queuedWireBytes);
    views_[l] = view;
  }
}

std::size_t SendStream::reserve(std::span<SendSlot> out, std::uint32_t payloadBytes) noexcept {
  const std::uint32_t bytes = payloadBytes == 0 ? maxPayload_ : std::min(payloadBytes, maxPayload_);
  return reserveImpl(out, [bytes](std::size_t) { return bytes; });
}

Result<std::size_t> SendStream::commit(std::span<const SendSlot> slots) noexcept {
  const std::uint64_t nowNs = clock_.nowNs();
  std::size_t accepted = 0;
  firstError_.reset();
  const std::uint64_t droppedBefore = txDropped_;
  if (config_.redundant) fillViews(nowNs);
  for (const SendSlot& slot : slots) {
    if (slot.link >= paths_.size() || slot.frame == nullptr) {
      noteError(Error(EINVAL, "commit: slot was not lent by this connection"));
      continue;
    }
    TxBuffer buffer{slot.frame, slot.frameCapacity, 0, slot.handle};
    // Reliable: beyond the window (slots of several reserves): given back unsent.
    const bool noRoom = retx_ != nullptr && retx_->room() == 0;
    if (slot.length > slot.capacity || slot.length == 0 || noRoom) {
      if (slot.length > slot.capacity) {
        noteError(Error(EMSGSIZE, "commit: slot length " + std::to_string(slot.length) +
                                      " exceeds capacity " + std::to_string(slot.capacity)));
      }
      (void)links_.io(slot.link).commitTx(std::span<const TxBuffer>(&buffer, 1));  // length 0: given back
      continue;
    }
    const std::span<std::uint8_t> frame(slot.frame, slot.frameCapacity);
    const std::uint64_t seq = nextGlobalSeq_++;
    (void)wire::writeDataFrameHeader(frame.subspan(wire::kPacketHeaderLen), seq,
                                     static_cast<std::uint16_t>(slot.length));
    buffer.length = kDataOverhead + slot.length;
    const Queued item{buffer, slot.length, nowNs, 0, seq};
    enqueue(slot.link, item, nowNs);
    std::uint16_t copies = 1;
    if (config_.redundant && sendSecondCopy(slot.link, item, nowNs)) ++copies;
    if (retx_) retx_->store(seq, std::span<const std::uint8_t>(slot.data, slot.length), copies);
    ++accepted;
  }
  drain(nowNs);
  // Packets the links refused now are not counted; a failure on one path does
  // not hide what the others took: the error is returned only when nothing did.
  const std::size_t dropped = std::min<std::size_t>(txDropped_ - droppedBefore, accepted);
  if (firstError_ && accepted == dropped) return *firstError_;
  if (firstError_) lastError_ = firstError_;
  return accepted - dropped;
}

void SendStream::enqueue(std::size_t l, const Queued& item, std::uint64_t nowNs) noexcept {
  SendPath& path = paths_[l];
  Queued& slot = path.queue[(path.queueHead + path.queueCount) % kQueueCapacity];
  slot = item;
  // When it would leave at the path's rate now, plus a grace: a rate that
  // falls later must not hold it far beyond what the scheduler counted on
  // (the receiver would declare it lost first).
  slot.dueNs = nowNs + path.pacer.aheadNs(nowNs) + path.pacer.costNs(path.queuedWireBytes) + kQueueGraceNs;
  ++path.queueCount;
  path.queuedWireBytes += item.payload + path.overheadBytes;
}

void SendStream::enqueueFront(std::size_t l, const Queued& item, std::uint64_t nowNs) noexcept {
  SendPath& path = paths_[l];
  path.queueHead = (path.queueHead + kQueueCapacity - 1) % kQueueCapacity;
  Queued& slot = path.queue[path.queueHead];
  slot = item;
  slot.dueNs = nowNs + kQueueGraceNs;
  ++path.queueCount;
  path.queuedWireBytes += item.payload + path.overheadBytes;
}

bool SendStream::takeBuffer(std::size_t l, TxBuffer& buffer) noexcept {
  PacketIo& io = links_.io(l);
  if (io.reserveTx(std::span<TxBuffer>(&buffer, 1)) == 1) return true;
  (void)io.flushTx();
  return io.reserveTx(std::span<TxBuffer>(&buffer, 1)) == 1;
}

bool SendStream::sendSecondCopy(std::size_t from, const Queued& item, std::uint64_t nowNs) noexcept {
  const int to = requeueTarget(from, item.payload, true);
  if (to < 0) return false;
  const auto target = static_cast<std::size_t>(to);
  TxBuffer copy;
  if (!takeBuffer(target, copy)) return false;
  if (copy.capacity < item.buffer.length + tailroom_) {
    (void)links_.io(target).commitTx(std::span<const TxBuffer>(&copy, 1));  // length 0: back
    return false;
  }
  std::memcpy(copy.data + wire::kPacketHeaderLen, item.buffer.data + wire::kPacketHeaderLen,
              item.buffer.length - wire::kPacketHeaderLen);
  copy.length = item.buffer.length;
  enqueue(target, Queued{copy, item.payload, item.committedNs, 0, item.globalSeq}, nowNs);
  views_[target].queuedNs += sched::transmitNs(views_[target], item.payload);
  ++redundantCopies_;
  return true;
}

void SendStream::resendLost(std::uint64_t nowNs) noexcept {
  std::uint64_t seq = 0;
  bool viewsFilled = false;
  while (retx_->peekLost(seq)) {
    if (!viewsFilled) {
      fillViews(nowNs);
      viewsFilled = true;
    }
    const std::span<const std::uint8_t> payload = retx_->payload(seq);
    const auto length = static_cast<std::uint32_t>(payload.size());
    const int to = requeueTarget(SIZE_MAX, length, true);
    if (to < 0) return;  // nowhere to send now: stays queued
    const auto target = static_cast<std::size_t>(to);
    TxBuffer buffer;
    if (!takeBuffer(target, buffer)) return;
    if (buffer.capacity < kDataOverhead + length + tailroom_) {
      (void)links_.io(target).commitTx(std::span<const TxBuffer>(&buffer, 1));
      return;
    }
    (void)wire::writeDataFrameHeader(
        std::span<std::uint8_t>(buffer.data, buffer.capacity).subspan(wire::kPacketHeaderLen), seq,
        static_cast<std::uint16_t>(length));
    std::memcpy(buffer.data + kDataOverhead, payload.data(), length);
    buffer.length = kDataOverhead + length;
    // Its own send timestamp: the receiver's delay samples stay those of the path.
    enqueueFront(target, Queued{buffer, length, nowNs, 0, seq}, nowNs);
    views_[target].queuedNs += sched::transmitNs(views_[target], length);
    retx_->popLost();
    retx_->onResent(seq);
    ++paths_[target].counters.retransmitted;
    ++retransmitted_;
  }
}

void SendStream::acked(std::uint64_t tag) noexcept {
  if (retx_ && tag != 0) retx_->onAcked(tag - 1);
}

void SendStream::lost(std::uint64_t tag) noexcept {
  if (retx_ && tag != 0) retx_->onLost(tag - 1);
}

std::uint64_t SendStream::credit() const noexcept {
  if (!retx_) return UINT64_MAX;
  const std::uint64_t limit = std::min(peerMaxSeq_, retx_->base() + retx_->capacity());
  return limit > nextGlobalSeq_ ? limit - nextGlobalSeq_ : 0;
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
  if (stopped_ || credit() == 0) return UINT64_MAX;  // window closed: the peer's ACKs or MAX_SEQ wake us
  const std::uint32_t bytes = payloadBytes == 0 ? maxPayload_ : std::min(payloadBytes, maxPayload_);
  const std::uint64_t nowNs = clock_.nowNs();
  fillViews(nowNs);
  const std::uint64_t wait = scheduler_->waitNs(views_, bytes);
  if (wait == UINT64_MAX) return UINT64_MAX;
  return std::max(nowNs + wait, total_.eligibleAtNs(nowNs));
}

Result<void> SendStream::flush() noexcept {
  drain(clock_.nowNs());
  for (std::size_t l = 0; l < paths_.size(); ++l) {
    if (auto flushed = links_.io(l).flushTx(); !flushed)
      return flushed.error().wrap("path " + std::to_string(l));
  }
  return {};
}

void SendStream::drain(std::uint64_t nowNs) noexcept {
  if (retx_ && retx_->lostQueued() > 0) resendLost(nowNs);
  std::uint64_t stampNs = nowNs;
  for (std::size_t l = 0; l < paths_.size(); ++l) {
    SendPath& path = paths_[l];
    if (path.queueCount == 0) {
      if (path.pacer.conforms(nowNs)) path.lastIdleNs = nowNs;
      continue;
    }
    const sched::PathView view = hooks_.pathView(l, nowNs);
    if (!view.usable) {
      requeue(l, nowNs);
      continue;
    }
    path.pacer.setRate(view.rateBps);
    stampNs = drainPath(l, nowNs, stampNs);
  }
}

std::uint64_t SendStream::drainPath(std::size_t l, std::uint64_t nowNs, std::uint64_t stampNs) noexcept {
  SendPath& path = paths_[l];
  PacketIo& io = links_.io(l);
  auto mayGo = [&] {
    return path.queueCount > 0 && (path.pacer.conforms(nowNs) || path.queue[path.queueHead].dueNs <= nowNs);
  };
  while (mayGo()) {
    std::uint32_t n = 0;
    while (n < path.batch.size() && mayGo()) {
      Queued& item = path.queue[path.queueHead];
      path.queueHead = (path.queueHead + 1) % kQueueCapacity;
      --path.queueCount;
      const std::uint32_t wireBytes = item.payload + path.overheadBytes;
      path.queuedWireBytes -= wireBytes;
      path.pacer.take(nowNs, wireBytes);
      TxBuffer buffer = item.buffer;
      const std::span<std::uint8_t> frame(buffer.data, buffer.capacity);
      wire::PacketHeader header;
      header.connId = connId_;
      header.pathId = static_cast<std::uint16_t>(l);
      header.packetNumber = hooks_.takePacketNumber(l);
      header.sendTsNs = item.committedNs;
      (void)wire::writePacketHeader(frame, header);
      const std::size_t room = buffer.capacity - std::min(buffer.capacity, buffer.length + tailroom_);
      buffer.length +=
          static_cast<std::uint32_t>(hooks_.writePiggyback(l, frame.subspan(buffer.length, room), stampNs));
      // Sealing fails only if libcrypto does: the packet number is then a gap, as a loss.
      buffer.length = hooks_.seal(l, header.packetNumber, frame, buffer.length, stampNs);
      hooks_.onDataSent(l, header.packetNumber, wireBytes, stampNs, retx_ ? item.globalSeq + 1 : 0);
      path.batch[n] = buffer;
      path.batchPayload[n] = item.payload;
      ++n;
    }
    auto committed = io.commitTx(std::span<const TxBuffer>(path.batch.data(), n));
    std::uint32_t sent = 0;
    if (!committed) {
      noteError(committed.error().wrap("path " + std::to_string(l) + " commit"));
      lastError_ = firstError_;
    } else {
      sent = static_cast<std::uint32_t>(std::min<std::size_t>(*committed, n));
    }
    // commitTx sends a prefix; the rest was dropped by the link.
    for (std::uint32_t i = 0; i < n; ++i) {
      if (i < sent) {
        ++path.counters.packetsSent;
        path.counters.bytesSent += path.batchPayload[i];
      } else {
        ++txDropped_;
      }
    }
    // One clock read per batch: a commit can run the link's transmit path in
    // the kernel (8-10 us a frame on the shaped veth test bed), and stamping
    // the next batches with the loop's start made their one-way delays grow
    // with their path's place in the order (eaf then gave the last path less).
    stampNs = std::max(stampNs, clock_.nowNs());
    if (sent < n) break;
  }
  if (path.queueCount == 0 && path.pacer.conforms(nowNs)) path.lastIdleNs = nowNs;
  return stampNs;
}

// The usable path other than `from` where a packet would arrive first, queue
// limits ignored (requeued packets were accepted already); -1 when none.
int SendStream::requeueTarget(std::size_t from, std::uint32_t payload, bool checkRoom) const noexcept {
  int best = -1;
  std::uint64_t bestArrival = UINT64_MAX;
  for (std::size_t l = 0; l < views_.size(); ++l) {
    const sched::PathView& view = views_[l];
    if (l == from || !view.usable) continue;
    if (checkRoom && paths_[l].queueCount >= kQueueCapacity) continue;
    const std::uint64_t arrival = view.queuedNs + sched::transmitNs(view, payload) + view.delayNs;
    if (arrival < bestArrival) {
      bestArrival = arrival;
      best = static_cast<int>(l);
    }
  }
  return best;
}

// The path can no longer carry data: its queued packets go to the other
// usable paths, copied into their buffers (rare: only at failover). With no
// other path they stay queued until one can carry them.
void SendStream::requeue(std::size_t from, std::uint64_t nowNs) noexcept {
  SendPath& source = paths_[from];
  fillViews(nowNs);
  while (source.queueCount > 0) {
    const Queued item = source.queue[source.queueHead];
    const int to = requeueTarget(from, item.payload);
    if (to < 0 || paths_[static_cast<std::size_t>(to)].queueCount >= kQueueCapacity) return;
    PacketIo& io = links_.io(static_cast<std::size_t>(to));
    TxBuffer target;
    if (io.reserveTx(std::span<TxBuffer>(&target, 1)) != 1) {
      (void)io.flushTx();
      if (io.reserveTx(std::span<TxBuffer>(&target, 1)) != 1) return;  // later, when buffers are back
    }
    source.queueHead = (source.queueHead + 1) % kQueueCapacity;
    --source.queueCount;
    source.queuedWireBytes -= item.payload + source.overheadBytes;
    if (target.capacity >= item.buffer.length) {
      std::memcpy(target.data + wire::kPacketHeaderLen, item.buffer.data + wire::kPacketHeaderLen,
                  item.buffer.length - wire::kPacketHeaderLen);
      target.length = item.buffer.length;
      enqueue(static_cast<std::size_t>(to), Queued{target, item.payload, item.committedNs, 0, item.globalSeq},
              nowNs);
      views_[to].queuedNs += sched::transmitNs(views_[to], item.payload);
      ++source.counters.requeued;
    } else {
      ++txDropped_;                                              // the other link carries smaller packets
      (void)io.commitTx(std::span<const TxBuffer>(&target, 1));  // length 0: back
    }
    TxBuffer old = item.buffer;
    old.length = 0;
    (void)links_.io(from).commitTx(std::span<const TxBuffer>(&old, 1));  // given back
  }
}

std::uint64_t SendStream::nextDrainNs(std::uint64_t nowNs) const noexcept {
  std::uint64_t next = UINT64_MAX;
  for (const SendPath& path : paths_) {
    if (path.queueCount > 0)
      next = std::min({next, path.pacer.eligibleAtNs(nowNs), path.queue[path.queueHead].dueNs});
  }
  return next;
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
  std::size_t want = std::min<std::size_t>(out.size(), config_.batchSize);
  if (want == 0) return 0;
  const std::uint64_t nowNs = clock_.nowNs();
  drain(nowNs);
  if (retx_) {
    const std::uint64_t room = credit();
    if (room == 0) {
      if (blockedSinceNs_ == 0) blockedSinceNs_ = nowNs;
      return 0;
    }
    if (blockedSinceNs_ != 0) {
      flowBlockedNs_ += nowNs > blockedSinceNs_ ? nowNs - blockedSinceNs_ : 0;
      blockedSinceNs_ = 0;
    }
    want = static_cast<std::size_t>(std::min<std::uint64_t>(want, room));
  }
  fillViews(nowNs);
  for (auto& path : paths_) path.wanted = 0;
  std::size_t picked = 0;
  for (; picked < want; ++picked) {
    if (!total_.conforms(nowNs)) break;
    const std::uint32_t bytes = sizeOf(picked);
    const int p = scheduler_->pick(views_, bytes);
    if (p < 0 || static_cast<std::size_t>(p) >= paths_.size()) break;
    views_[p].queuedNs += sched::transmitNs(views_[p], bytes);
    total_.take(nowNs, bytes);
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
      // No free buffer: reap completions once and retry.
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
      total_.giveBack(sizeOf(i));  // the link had no buffer: the slot is dropped
      continue;
    }
    const TxBuffer& buffer = path.reserved[path.used++];
    SendSlot& slot = out[n++];
    slot.frame = buffer.data;
    slot.frameCapacity = buffer.capacity;
    slot.handle = buffer.handle;
    slot.link = l;
    slot.data = buffer.data + kDataOverhead;
    slot.capacity = std::min<std::uint32_t>(
        std::min(buffer.capacity - kDataOverhead - tailroom_, maxPayload_), UINT16_MAX);
    slot.length = 0;
  }
  return n;
}

void SendStream::noteError(Error error) {
  if (!firstError_) firstError_ = std::move(error);
}

}  // namespace mpxdp::conn
