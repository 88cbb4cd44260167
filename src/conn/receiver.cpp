// Receiver: pulls batches from every link, decodes the multipath header,
// feeds the reorderer and hands out in-order views into link memory. Every
// buffer is tracked in a table preallocated at create time; the reorderer's
// cookie is the table index.
#include <algorithm>
#include <cstring>
#include <string>

#include "hold_histogram.h"
#include "link_check.h"
#include "mpxdp/connection.h"
#include "wire/codec.h"

namespace mpxdp {
namespace {

constexpr std::uint32_t kHeaderLen = static_cast<std::uint32_t>(wire::kMpHeaderLen);

enum class EntryState : std::uint8_t { kFree, kInReorderer, kReady, kApp };

struct HeldEntry {
  RxPacket packet;
  std::uint64_t globalSeq = 0;
  std::uint32_t payloadLen = 0;
  std::uint16_t link = 0;
  std::uint16_t pathId = 0;
  EntryState state = EntryState::kFree;
};

struct ReceivePath {
  std::uint64_t packetsReceived = 0;
  std::uint64_t bytesReceived = 0;
  std::uint32_t expectedPathSeq = 0;
  std::uint64_t lostSeen = 0;
  std::uint64_t outOfOrderInPath = 0;
  std::uint64_t endMarkers = 0;
  bool ended = false;
  bool owdValid = false;
  std::int64_t owdMinNs = 0;
  std::int64_t owdAvgNs = 0;
  // Buffers to give back to this link, flushed in batches.
  std::vector<RxPacket> toRelease;
  std::uint32_t toReleaseCount = 0;
};

class ReceiverImpl;

class Sink final : public reorder::DeliverySink {
 public:
  explicit Sink(ReceiverImpl& receiver) : receiver_(receiver) {}
  void deliver(const reorder::ArrivingPacket& packet, std::uint64_t holdNs) override;
  void lost(std::uint64_t firstSeq, std::uint64_t count) override;
  void discard(const reorder::ArrivingPacket& packet, DiscardReason reason) override;

 private:
  ReceiverImpl& receiver_;
};

class ReceiverImpl final : public Receiver {
 public:
  ReceiverImpl(const ConnectionConfig& config, std::vector<Link> links, std::shared_ptr<Clock> clock,
               std::unique_ptr<reorder::Reorderer> reorderer, std::uint32_t tableSize)
      : config_(config),
        links_(std::move(links)),
        clock_(std::move(clock)),
        reorderer_(std::move(reorderer)),
        sink_(*this),
        table_(tableSize),
        freeList_(tableSize),
        ready_(tableSize),
        paths_(links_.size()),
        rxBatch_(config.batchSize) {
    for (std::uint32_t i = 0; i < tableSize; ++i) freeList_[i] = tableSize - 1 - i;
    freeCount_ = tableSize;
    for (auto& path : paths_) path.toRelease.resize(config.batchSize);
  }

  ~ReceiverImpl() override {
    // Give every held buffer back to its link.
    for (auto& entry : table_) {
      if (entry.state != EntryState::kFree) queueRelease(entry.link, entry.packet);
    }
    flushReleases();
  }

  Result<std::size_t> poll(std::span<Delivered> out) noexcept override {
    if (auto pumped = pump(out.size()); !pumped) return pumped.error();
    std::size_t n = 0;
    while (n < out.size() && readyCount_ > 0) {
      const std::uint32_t index = popReady();
      HeldEntry& entry = table_[index];
      entry.state = EntryState::kApp;
      out[n++] =
          Delivered{entry.packet.data + kHeaderLen, entry.payloadLen, entry.pathId, entry.globalSeq, index};
    }
    return n;
  }

  void release(std::span<const Delivered> packets) noexcept override {
    for (const Delivered& d : packets) {
      if (d.entry >= table_.size() || table_[d.entry].state != EntryState::kApp) {
        ++badReleases_;
        continue;
      }
      freeEntry(d.entry);
    }
    flushReleases();
  }

  Result<std::size_t> recv(std::span<std::uint8_t> buffer) noexcept override {
    if (readyCount_ == 0) {
      if (auto pumped = pump(1); !pumped) return pumped.error();
      if (readyCount_ == 0) return std::size_t{0};
    }
    const std::uint32_t index = ready_[readyHead_];
    HeldEntry& entry = table_[index];
    if (entry.payloadLen > buffer.size()) {
      return Error(EMSGSIZE, "recv: payload of " + std::to_string(entry.payloadLen) +
                                 " bytes, buffer holds " + std::to_string(buffer.size()));
    }
    popReady();
    const std::size_t length = entry.payloadLen;
    std::memcpy(buffer.data(), entry.packet.data + kHeaderLen, length);
    freeEntry(index);
    flushReleases();
    return length;
  }

  bool finished() const noexcept override { return finished_; }

  std::uint64_t nextDeadlineNs() const noexcept override {
    std::uint64_t deadline = reorderer_->nextDeadlineNs();
    if (finished_) return deadline;
    if (endSeen_ && config_.endDrainTimeoutNs > 0) {
      deadline = std::min(deadline, endSeenNs_ + config_.endDrainTimeoutNs);
    }
    if (anyArrival_ && config_.idleTimeoutNs > 0) {
      deadline = std::min(deadline, lastArrivalNs_ + config_.idleTimeoutNs);
    }
    return deadline;
  }

  std::vector<int> pollFds() const override {
    std::vector<int> fds;
    fds.reserve(links_.size());
    for (const Link& link : links_) fds.push_back(link.io->pollFd());
    return fds;
  }

  std::size_t linkCount() const noexcept override { return links_.size(); }

  ConnectionState state() const noexcept override {
    ConnectionState s;
    s.phase = finished_ ? ConnectionPhase::kFinished : ConnectionPhase::kOpen;
    s.nextGlobalSeq = accounted_;
    s.endSeen = endSeen_;
    s.finalSeq = finalSeq_;
    s.endedByIdleTimeout = endedByIdle_;
    s.heldPackets = table_.size() - freeCount_;
    return s;
  }

  ConnectionStats stats() const override {
    ConnectionStats s;
    const reorder::ReorderStats r = reorderer_->stats();
    s.packetsDelivered = delivered_;
    s.bytesDelivered = bytesDelivered_;
    s.outOfOrderArrived = r.outOfOrderArrived;
    s.outOfOrderDelivered = r.outOfOrderDelivered;
    s.lost = lostDeclared_ + tailLost_;
    s.lostFast = r.lostFast;
    s.duplicates = r.duplicates;
    s.late = r.late;
    s.malformed = malformed_;
    s.foreignConn = foreignConn_;
    s.hold = hold_.summary();
    s.paths.resize(links_.size());
    for (std::size_t l = 0; l < links_.size(); ++l) {
      const ReceivePath& path = paths_[l];
      PathStats& p = s.paths[l];
      p.packetsReceived = path.packetsReceived;
      p.bytesReceived = path.bytesReceived;
      p.lostSeen = path.lostSeen;
      p.outOfOrderInPath = path.outOfOrderInPath;
      p.endMarkers = path.endMarkers;
      p.owdValid = path.owdValid;
      p.owdMinNs = path.owdMinNs;
      p.owdAvgNs = path.owdAvgNs;
      p.io = links_[l].io->stats();
    }
    return s;
  }

  // DeliverySink callbacks.
  void onDeliver(const reorder::ArrivingPacket& packet, std::uint64_t holdNs) noexcept {
    const auto index = static_cast<std::uint32_t>(packet.cookie);
    HeldEntry& entry = table_[index];
    entry.state = EntryState::kReady;
    ready_[(readyHead_ + readyCount_) % ready_.size()] = index;
    ++readyCount_;
    ++delivered_;
    bytesDelivered_ += entry.payloadLen;
    ++accounted_;
    hold_.record(holdNs);
  }

  void onLost(std::uint64_t count) noexcept {
    lostDeclared_ += count;
    accounted_ += count;
  }

  void onDiscard(const reorder::ArrivingPacket& packet) noexcept {
    // Duplicates, late and out-of-window packets go straight back to their link.
    freeEntry(static_cast<std::uint32_t>(packet.cookie));
  }

 private:
  // Receives, reorders and runs the end-of-stream logic; stops receiving
  // once `wanted` payloads are ready.
  //
  // Packets are pushed as of the previous pump (they arrived at some point
  // since) and timeouts fire only in poll(now) after every link was read:
  // after a pause (slow consumer, descheduled thread) a hole must not be
  // declared lost while its packet waits in another link's ring.
  //
  // Arrival times are read once per receive batch, right after it returned,
  // so they are never earlier than the packets' real arrival (a time read
  // at the start of the pump would be stale for links read later).
  Result<void> pump(std::size_t wanted) noexcept {
    std::uint64_t nowNs = clock_->nowNs();
    const std::uint64_t pushNs = lastPumpNs_ == 0 ? nowNs : lastPumpNs_;
    Result<void> result;
    bool linksDrained = false;        // unknown unless the links were read
    std::uint64_t drainedNs = nowNs;  // every link was read after this time
    if (readyCount_ < wanted) {
      linksDrained = true;
      // Advances nowNs to the last batch's time.
      result = receiveAll(nowNs, drainedNs, pushNs, wanted, linksDrained);
    }
    if (linksDrained) {
      // Timeouts are judged as of the start of the last round: a packet that came
      // into a link read earlier in that round (before the last batch's time) is
      // still unread.
      reorderer_->poll(drainedNs, sink_);
      lastPumpNs_ = drainedNs;
      checkFinished(nowNs);
    }
    flushReleases();
    return result;
  }

  // Round after round over all links until `wanted` payloads are ready, the
  // links are drained (no full batch) or every table entry is held. drained
  // is false when packets may still wait in a link.
  // drainedNs: the time at the start of the last round.
  Result<void> receiveAll(std::uint64_t& nowNs, std::uint64_t& drainedNs, std::uint64_t pushNs,
                          std::size_t wanted, bool& drained) noexcept {
    bool more = true;
    bool firstRound = true;
    while (more) {
      if (readyCount_ >= wanted) {
        drained = false;
        return {};
      }
      if (!firstRound) drainedNs = std::max(drainedNs, clock_->nowNs());
      firstRound = false;
      more = false;
      for (std::size_t l = 0; l < links_.size(); ++l) {
        const std::size_t room = std::min<std::size_t>(rxBatch_.size(), freeCount_);
        if (room == 0) return {};  // every entry held: back-pressure onto the links, let timeouts run
        auto received = links_[l].io->receive(std::span<RxPacket>(rxBatch_.data(), room));
        if (!received) return received.error().wrap("link " + std::to_string(l) + " receive");
        if (*received == 0) continue;
        // Monotonic, but an injected clock might not be: never step back.
        nowNs = std::max(nowNs, clock_->nowNs());
        anyArrival_ = true;
        lastArrivalNs_ = nowNs;
        for (std::size_t i = 0; i < *received; ++i)
          accept(static_cast<std::uint16_t>(l), rxBatch_[i], nowNs, pushNs);
        if (*received == room) more = true;
      }
      flushReleases();
    }
    return {};
  }

  void accept(std::uint16_t link, const RxPacket& packet, std::uint64_t nowNs,
              std::uint64_t pushNs) noexcept {
    const auto decoded = wire::decodeMpHeader(std::span<const std::uint8_t>(packet.data, packet.length));
    if (!decoded.ok() || decoded.value.connId != config_.connId || decoded.value.pathId >= links_.size() ||
        (decoded.value.flags & MPXDP_FLAG_CONTROL) != 0) {
      ++malformed_;
      if (decoded.ok() && decoded.value.connId != config_.connId) ++foreignConn_;
      queueRelease(link, packet);
      return;
    }
    const wire::MpHeader& header = decoded.value;
    ReceivePath& path = paths_[header.pathId];
    if ((header.flags & MPXDP_FLAG_END) != 0) {
      onEndMarker(path, header, nowNs);
      queueRelease(link, packet);
      return;
    }
    ++path.packetsReceived;
    path.bytesReceived += header.payloadLen;
    notePathSeq(path, header.pathSeq);
    const std::int64_t owd = static_cast<std::int64_t>(nowNs - header.sendTsNs);
    if (!path.owdValid) {
      path.owdValid = true;
      path.owdMinNs = owd;
      path.owdAvgNs = owd;
    } else {
      path.owdMinNs = std::min(path.owdMinNs, owd);
      path.owdAvgNs += (owd - path.owdAvgNs) / 16;
    }

    const std::uint32_t index = freeList_[--freeCount_];
    HeldEntry& entry = table_[index];
    entry.packet = packet;
    entry.globalSeq = header.globalSeq;
    entry.payloadLen = header.payloadLen;
    entry.link = link;
    entry.pathId = header.pathId;
    entry.state = EntryState::kInReorderer;
    reorder::ArrivingPacket arriving;
    arriving.globalSeq = header.globalSeq;
    arriving.pathId = header.pathId;
    arriving.pathPacketNumber = header.pathSeq;
    arriving.sendTsNs = header.sendTsNs;
    arriving.arrivalNs = nowNs;
    arriving.cookie = index;
    reorderer_->push(arriving, pushNs, sink_);
  }

  // Per-path loss estimate from gaps in the per-path sequence; a packet
  // that arrives after a gap was counted fills it again (and arrived out of
  // order within its path).
  static void notePathSeq(ReceivePath& path, std::uint32_t pathSeq) noexcept {
    const auto ahead = static_cast<std::int32_t>(pathSeq - path.expectedPathSeq);
    if (ahead >= 0) {
      path.lostSeen += static_cast<std::uint32_t>(ahead);
      path.expectedPathSeq = pathSeq + 1;
      return;
    }
    if (ahead < -1) ++path.outOfOrderInPath;  // -1 is the highest seq again: a duplicate
    if (path.lostSeen > 0) --path.lostSeen;
  }

  void onEndMarker(ReceivePath& path, const wire::MpHeader& header, std::uint64_t nowNs) noexcept {
    ++path.endMarkers;
    if (!endSeen_) {
      endSeen_ = true;
      finalSeq_ = header.globalSeq;
      endSeenNs_ = nowNs;
    }
    if (!path.ended) {
      path.ended = true;
      ++pathsEnded_;
      // The marker carries the path's next sequence number: a lost tail shows as a gap.
      const auto ahead = static_cast<std::int32_t>(header.pathSeq - path.expectedPathSeq);
      if (ahead > 0) {
        path.lostSeen += static_cast<std::uint32_t>(ahead);
        path.expectedPathSeq = header.pathSeq;
      }
    }
  }

  void checkFinished(std::uint64_t nowNs) noexcept {
    if (finished_) return;
    const bool idle =
        anyArrival_ && config_.idleTimeoutNs > 0 && nowNs - lastArrivalNs_ >= config_.idleTimeoutNs;
    if (endSeen_) {
      if (accounted_ >= finalSeq_) {
        finished_ = true;
        return;
      }
      const bool allEnded = pathsEnded_ == links_.size();
      const bool drained = config_.endDrainTimeoutNs > 0 && nowNs - endSeenNs_ >= config_.endDrainTimeoutNs;
      if (allEnded || drained || idle) finishNow(true);
    } else if (idle) {
      endedByIdle_ = true;
      finishNow(false);
    }
  }

  void finishNow(bool declareTail) noexcept {
    reorderer_->flush(sink_);
    if (declareTail && accounted_ < finalSeq_) {
      // Sequence numbers above the highest one that arrived.
      tailLost_ += finalSeq_ - accounted_;
      accounted_ = finalSeq_;
    }
    finished_ = true;
  }

  std::uint32_t popReady() noexcept {
    const std::uint32_t index = ready_[readyHead_];
    readyHead_ = (readyHead_ + 1) % static_cast<std::uint32_t>(ready_.size());
    --readyCount_;
    return index;
  }

  void freeEntry(std::uint32_t index) noexcept {
    HeldEntry& entry = table_[index];
    queueRelease(entry.link, entry.packet);
    entry.state = EntryState::kFree;
    freeList_[freeCount_++] = index;
  }

  void queueRelease(std::uint16_t link, const RxPacket& packet) noexcept {
    ReceivePath& path = paths_[link];
    path.toRelease[path.toReleaseCount++] = packet;
    if (path.toReleaseCount == path.toRelease.size()) flushRelease(link);
  }

  void flushRelease(std::size_t link) noexcept {
    ReceivePath& path = paths_[link];
    if (path.toReleaseCount == 0) return;
    links_[link].io->release(std::span<const RxPacket>(path.toRelease.data(), path.toReleaseCount));
    path.toReleaseCount = 0;
  }

  void flushReleases() noexcept {
    for (std::size_t l = 0; l < links_.size(); ++l) flushRelease(l);
  }

  ConnectionConfig config_;
  std::vector<Link> links_;
  std::shared_ptr<Clock> clock_;
  std::unique_ptr<reorder::Reorderer> reorderer_;
  Sink sink_;

  std::vector<HeldEntry> table_;
  std::vector<std::uint32_t> freeList_;
  std::uint32_t freeCount_ = 0;
  std::vector<std::uint32_t> ready_;  // ring of table indices in delivery order
  std::uint32_t readyHead_ = 0;
  std::uint32_t readyCount_ = 0;
  std::vector<ReceivePath> paths_;
  std::vector<RxPacket> rxBatch_;

  std::uint64_t delivered_ = 0;
  std::uint64_t bytesDelivered_ = 0;
  std::uint64_t lostDeclared_ = 0;
  std::uint64_t tailLost_ = 0;
  std::uint64_t accounted_ = 0;  // delivered + declared lost
  std::uint64_t malformed_ = 0;
  std::uint64_t foreignConn_ = 0;
  std::uint64_t badReleases_ = 0;
  conn::HoldHistogram hold_;

  std::uint64_t lastPumpNs_ = 0;
  bool anyArrival_ = false;
  std::uint64_t lastArrivalNs_ = 0;
  bool endSeen_ = false;
  std::uint64_t finalSeq_ = 0;
  std::uint64_t endSeenNs_ = 0;
  std::size_t pathsEnded_ = 0;
  bool endedByIdle_ = false;
  bool finished_ = false;
};

void Sink::deliver(const reorder::ArrivingPacket& packet, std::uint64_t holdNs) {
  receiver_.onDeliver(packet, holdNs);
}
void Sink::lost(std::uint64_t /*firstSeq*/, std::uint64_t count) { receiver_.onLost(count); }
void Sink::discard(const reorder::ArrivingPacket& packet, DiscardReason /*reason*/) {
  receiver_.onDiscard(packet);
}

}  // namespace

Result<std::unique_ptr<Receiver>> Receiver::create(const ConnectionConfig& config, std::vector<Link> links,
                                                   std::shared_ptr<Clock> clock) {
  auto maxPayload = conn::checkConnection(config, links);
  if (!maxPayload) return maxPayload.error().wrap("receiver");
  reorder::ReorderOptions options = config.reorder;
  options.pathCount = static_cast<std::uint32_t>(links.size());
  // Senders number from 0: a packet overtaken at the very start is not below the stream.
  if (!options.initialSeq) options.initialSeq = 0;
  auto reorderer = reorder::makeReorderer(options);
  if (!reorderer) return reorderer.error().wrap("receiver reorderer");
  // Room for a full reorder window plus the batches in flight between the
  // links, the delivery queue and the application.
  const std::uint64_t tableSize = static_cast<std::uint64_t>(options.windowPackets) +
                                  std::uint64_t{config.batchSize} * (links.size() + 2);
  if (tableSize > (1U << 24)) return Error(EINVAL, "receiver: reorder window too large for the buffer table");
  if (!clock) clock = std::make_shared<MonotonicClock>();
  return std::unique_ptr<Receiver>(std::make_unique<ReceiverImpl>(config, std::move(links), std::move(clock),
                                                                  std::move(*reorderer),
                                                                  static_cast<std::uint32_t>(tableSize)));
}

}  // namespace mpxdp
