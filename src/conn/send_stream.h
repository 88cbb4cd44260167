// The sending half of a connection. reserve() asks the scheduler for the
// path of each slot; commit() writes the DATA frame and puts the packet in
// its path's send queue; each queue is drained by the path's pacer at the
// rate the connection's controller sets. The packet header (per-path packet
// number) and any ACK that rides along are written when the packet leaves
// the queue, so both are fresh; the send timestamp is the commit time, so the
// receiver's delays include the queueing. (The sender's own RTT and one-way
// delay samples use the transmit time, kept in its sent-packet log.) A path
// that can no longer carry data hands its queued packets to the others.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "mpxdp/clock.h"
#include "mpxdp/connection.h"
#include "path_set.h"
#include "retransmit_buffer.h"
#include "sched/pacer.h"
#include "sched/scheduler.h"
#include "sent_packets.h"

namespace mpxdp::conn {

// What the send stream needs from the connection's path control.
class SendHooks {
 public:
  virtual ~SendHooks() = default;
  // The next packet number of path (consumed).
  virtual std::uint64_t takePacketNumber(std::size_t path) noexcept = 0;
  // Writes frames due on path (ACKs) into room; returns bytes written (0: none due or no room).
  virtual std::size_t writePiggyback(std::size_t path, std::span<std::uint8_t> room,
                                     std::uint64_t nowNs) noexcept = 0;
  // A data packet left on path (frame bytes as the link sees them); tag != 0
  // (reliable mode) goes with it into the path's sent-packet log, whose fate
  // is this stream.
  virtual void onDataSent(std::size_t path, std::uint64_t packetNumber, std::uint32_t wireBytes,
                          std::uint64_t nowNs, std::uint64_t tag) noexcept = 0;
  // usable, rateBps and delayNs of the path now (queuedNs is the stream's).
  virtual sched::PathView pathView(std::size_t path, std::uint64_t nowNs) const noexcept = 0;
  // Seals the packet (frame[0, length): header and frames) in place when the
  // connection is keyed; returns its new length (length when unkeyed, 0 when
  // sealing failed: the packet is not sent).
  virtual std::uint32_t seal(std::size_t path, std::uint64_t packetNumber, std::span<std::uint8_t> frame,
                             std::uint32_t length, std::uint64_t nowNs) noexcept = 0;
};

struct SendPathCounters {
  std::uint64_t packetsSent = 0;
  std::uint64_t bytesSent = 0;      // payload
  std::uint64_t requeued = 0;       // moved to another path when this one could no longer carry data
  std::uint64_t retransmitted = 0;  // reliable: payloads sent again on this path
};

// Reliable mode: the stream keeps every payload until acknowledged (the
// sent-packet logs tell it, as their PacketFate), sends lost ones again first,
// on the path where they would arrive first, and stays within the peer's
// window (MAX_SEQ). Redundant mode: a second copy on the next-best path.
class SendStream final : public PacketFate {
 public:
  // Bytes in front of the payload in every data packet: packet header + DATA frame header.
  static constexpr std::uint32_t kDataOverhead = 40;
  // Packets a path's send queue holds at most.
  static constexpr std::uint32_t kQueueCapacity = 4096;
  // How much later than its rate promised a queued packet may leave.
  static constexpr std::uint64_t kQueueGraceNs = 2'000'000;
  // Reliable: payloads the sender may send before the peer's first MAX_SEQ.
  static constexpr std::uint64_t kInitialCredit = 64;

  // tailroom: bytes SendHooks::seal adds after the frames (kept free in every packet).
  static Result<std::unique_ptr<SendStream>> create(const ConnectionConfig& config, PathSet& paths,
                                                    Clock& clock, SendHooks& hooks, std::uint32_t connId,
                                                    std::uint32_t maxPayload, std::uint32_t tailroom);
  SendStream(const ConnectionConfig& config, PathSet& paths, Clock& clock, SendHooks& hooks,
             std::uint32_t connId, std::unique_ptr<sched::Scheduler> scheduler, std::uint32_t maxPayload,
             std::uint32_t tailroom);

  std::size_t reserve(std::span<SendSlot> out, std::uint32_t payloadBytes) noexcept;
  Result<std::size_t> commit(std::span<const SendSlot> slots) noexcept;
  Result<bool> send(std::span<const std::uint8_t> payload) noexcept;
  Result<std::size_t> sendMany(std::span<const std::span<const std::uint8_t>> payloads) noexcept;
  std::uint64_t nextSendTimeNs(std::uint32_t payloadBytes) const noexcept;
  Result<void> flush() noexcept;
  // Sends what the pacers allow now; moves queued packets off paths that
  // can no longer carry data.
  void drain(std::uint64_t nowNs) noexcept;
  // When drain() has something to do next (UINT64_MAX: queues empty).
  std::uint64_t nextDrainNs(std::uint64_t nowNs) const noexcept;

  // Reliable: the peer's MAX_SEQ (only ever raised).
  void onMaxSeq(std::uint64_t maxSeq) noexcept { peerMaxSeq_ = std::max(peerMaxSeq_, maxSeq); }
  bool reliable() const noexcept { return retx_ != nullptr; }
  // Reliable: every payload acknowledged.
  bool allAcknowledged() const noexcept { return retx_ == nullptr || retx_->unacked() == 0; }
  std::uint64_t retransmitted() const noexcept { return retransmitted_; }
  std::uint64_t redundantCopies() const noexcept { return redundantCopies_; }
  std::uint64_t flowBlockedNs(std::uint64_t nowNs) const noexcept {
    return flowBlockedNs_ + (blockedSinceNs_ != 0 && nowNs > blockedSinceNs_ ? nowNs - blockedSinceNs_ : 0);
  }
  // PacketFate (tag = global seq + 1).
  void acked(std::uint64_t tag) noexcept override;
  void lost(std::uint64_t tag) noexcept override;

  // No more data: reserve lends nothing from now on (queued packets still go).
  void stop() noexcept { stopped_ = true; }
  bool stopped() const noexcept { return stopped_; }
  std::uint64_t nextGlobalSeq() const noexcept { return nextGlobalSeq_; }
  std::uint32_t maxPayload() const noexcept { return maxPayload_; }
  std::uint64_t txDropped() const noexcept { return txDropped_; }
  // The error of the last commit or drain that failed on some path.
  const std::optional<Error>& lastPartialError() const noexcept { return lastError_; }
  const SendPathCounters& counters(std::size_t path) const noexcept { return paths_[path].counters; }
  std::uint64_t queuedPackets(std::size_t path) const noexcept { return paths_[path].queueCount; }
  bool queuesEmpty() const noexcept {
    return std::all_of(paths_.begin(), paths_.end(), [](const SendPath& p) { return p.queueCount == 0; });
  }
  // Last time the path's queue ran empty while its pacer would have sent more
  // (the path was limited by the application, not by its rate).
  std::uint64_t lastIdleNs(std::size_t path) const noexcept { return paths_[path].lastIdleNs; }

 private:
  struct Queued {
    TxBuffer buffer;
    std::uint32_t payload = 0;
    // When commit gave the packet its global sequence number: its send
    // timestamp, so that the receiver's delays (and its hole timeout) include
    // the time it waited in the send queue behind later-numbered packets.
    std::uint64_t committedNs = 0;
    std::uint64_t dueNs = 0;  // sent by then even if the pacer would wait longer
    std::uint64_t globalSeq = 0;
  };
  struct SendPath {
    SendPathCounters counters;
    std::vector<TxBuffer> reserved;  // filled by reserve
    std::uint32_t wanted = 0;
    std::uint32_t got = 0;
    std::uint32_t used = 0;
    std::vector<Queued> queue;  // ring of kQueueCapacity
    std::uint32_t queueHead = 0;
    std::uint32_t queueCount = 0;
    std::uint64_t queuedWireBytes = 0;
    sched::Pacer pacer;
    std::vector<TxBuffer> batch;  // what one drain hands to the link
    std::vector<std::uint32_t> batchPayload;
    std::uint64_t lastIdleNs = 0;
    std::uint32_t overheadBytes = 0;  // link frame overhead + kDataOverhead
  };

  Result<void> checkPayload(std::size_t size) const;
  template <typename SizeOf>
  std::size_t reserveImpl(std::span<SendSlot> out, SizeOf sizeOf) noexcept;
  void fillViews(std::uint64_t nowNs) const noexcept;
  void enqueue(std::size_t path, const Queued& item, std::uint64_t nowNs) noexcept;
  // A retransmission goes ahead of the path's queue: the receiver waits for it.
  void enqueueFront(std::size_t path, const Queued& item, std::uint64_t nowNs) noexcept;
  // Reliable: sends the payloads declared lost again, on the best path now.
  void resendLost(std::uint64_t nowNs) noexcept;
  // Redundant: a copy of item (committed on path from) on the next-best path.
  bool sendSecondCopy(std::size_t from, const Queued& item, std::uint64_t nowNs) noexcept;
  // A free link buffer on path (reaping completions once if needed).
  bool takeBuffer(std::size_t path, TxBuffer& buffer) noexcept;
  // Payloads reserve() may lend now under the peer's window and the send buffer.
  std::uint64_t credit() const noexcept;
  // The pacer decides at nowNs (the loop's time); packets are stamped at
  // stampNs, read again after each commit, since a commit can run the link's
  // whole transmit path in the kernel (veth, a bridge, a shaper). Returns the
  // stamp time after its last commit, for the next path.
  std::uint64_t drainPath(std::size_t path, std::uint64_t nowNs, std::uint64_t stampNs) noexcept;
  void requeue(std::size_t from, std::uint64_t nowNs) noexcept;
  // The usable path other than `from` (SIZE_MAX: any) where a packet would
  // arrive first, queue limits ignored unless checkRoom; -1 when none.
  int requeueTarget(std::size_t from, std::uint32_t payload, bool checkRoom = false) const noexcept;
  void noteError(Error error);

  ConnectionConfig config_;
  PathSet& links_;
  Clock& clock_;
  SendHooks& hooks_;
  std::uint32_t connId_;
  std::unique_ptr<sched::Scheduler> scheduler_;
  std::uint32_t maxPayload_;
  std::uint32_t tailroom_;  // SendHooks::seal's tag
  std::vector<SendPath> paths_;
  mutable std::vector<sched::PathView> views_;
  sched::Pacer total_;  // payload bits (iperf3's -b)
  std::vector<std::uint16_t> pickedPath_;
  std::vector<SendSlot> copySlots_;
  std::uint64_t nextGlobalSeq_ = 0;
  std::uint64_t txDropped_ = 0;
  std::optional<Error> firstError_;
  std::optional<Error> lastError_;
  bool stopped_ = false;
  std::unique_ptr<RetransmitBuffer> retx_;  // reliable mode only
  std::uint64_t peerMaxSeq_ = 0;
  std::uint64_t retransmitted_ = 0;
  std::uint64_t redundantCopies_ = 0;
  std::uint64_t blockedSinceNs_ = 0;
  std::uint64_t flowBlockedNs_ = 0;
};

}  // namespace mpxdp::conn
