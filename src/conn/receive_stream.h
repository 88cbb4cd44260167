// The receiving half of a connection: per-path accounting of packet
// numbers, the reorderer, and in-order delivery of views into link memory.
// Every held buffer sits in a table preallocated at create time; the
// reorderer's cookie is the table index. Buffers go back to their path
// through the PathSet.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "hold_histogram.h"
#include "mpxdp/connection.h"
#include "path_set.h"
#include "reorder/reorderer.h"

namespace mpxdp::conn {

// A DATA frame as the connection found it in an arriving packet.
struct ArrivingData {
  std::uint16_t link = 0;    // the path it arrived on (== pathId once checked)
  RxPacket packet;           // the whole buffer, released after delivery
  std::uint32_t offset = 0;  // of the payload within packet.data
  std::uint32_t length = 0;
  std::uint64_t packetNumber = 0;
  std::uint64_t globalSeq = 0;
  std::uint64_t sendTsNs = 0;
};

class ReceiveStream {
 public:
  static Result<std::unique_ptr<ReceiveStream>> create(const ConnectionConfig& config, PathSet& paths);
  ReceiveStream(const ConnectionConfig& config, PathSet& paths, std::unique_ptr<reorder::Reorderer> reorderer,
                std::uint32_t tableSize);
  ~ReceiveStream();
  ReceiveStream(const ReceiveStream&) = delete;
  ReceiveStream& operator=(const ReceiveStream&) = delete;

  // Table entries free to take arriving data (0: the links must wait).
  std::uint32_t room() const noexcept { return freeCount_; }
  // Takes the buffer (room() > 0). pushNs: when the previous pump ended.
  void onData(const ArrivingData& data, std::uint64_t nowNs, std::uint64_t pushNs) noexcept;
  // Every packet of the connection, data or not, for the per-path numbering.
  void onPacketNumber(std::uint16_t path, std::uint64_t packetNumber, std::uint64_t sendTsNs,
                      std::uint64_t nowNs, bool data) noexcept;
  // The peer's CLOSE: its stream holds [0, finalSeq).
  void onClose(std::uint16_t path, std::uint64_t finalSeq, std::uint64_t nowNs) noexcept;
  // Every path was read after drainedNs: reorder timeouts are judged then;
  // the end of the stream (drain, idle) at nowNs.
  void onDrained(std::uint64_t drainedNs, std::uint64_t nowNs) noexcept;
  // The stream will never complete (the connection failed or was aborted).
  void abandon() noexcept;

  std::size_t take(std::span<Delivered> out) noexcept;
  void release(std::span<const Delivered> packets) noexcept;
  Result<std::size_t> recv(std::span<std::uint8_t> buffer) noexcept;
  std::size_t readyCount() const noexcept { return readyCount_; }

  bool finished() const noexcept { return finished_; }
  // Reliable: the sender may send up to (not including) this global seq; the
  // window shrinks by what the application holds, so a slow one never makes
  // the receiver drop. A data packet at or above it is not taken (nor acked).
  std::uint64_t window() const noexcept { return window_; }  // reliable: the receive window in use
  std::uint64_t limit() const noexcept {
    const std::uint64_t held = readyCount_ + appCount_;
    return accounted_ + (held < window_ ? window_ - held : 0);
  }
  bool started() const noexcept { return anyArrival_; }
  std::uint64_t nextDeadlineNs() const noexcept;
  void fillState(ConnectionState& state) const noexcept;
  void fillStats(ConnectionStats& stats) const;

 private:
  enum class EntryState : std::uint8_t { kFree, kInReorderer, kReady, kApp };
  struct HeldEntry {
    RxPacket packet;
    std::uint64_t globalSeq = 0;
    std::uint32_t offset = 0;
    std::uint32_t length = 0;
    std::uint16_t link = 0;
    EntryState state = EntryState::kFree;
  };
  struct ReceivePath {
    std::uint64_t packetsReceived = 0;
    std::uint64_t bytesReceived = 0;
    std::uint64_t controlPackets = 0;
    std::uint64_t expectedPacketNumber = 0;
    std::uint64_t lostSeen = 0;
    std::uint64_t outOfOrderInPath = 0;
    std::uint64_t closeFrames = 0;
    bool closed = false;
    bool owdValid = false;
    std::int64_t owdMinNs = 0;
    std::int64_t owdAvgNs = 0;
  };
  class Sink final : public reorder::DeliverySink {
   public:
    explicit Sink(ReceiveStream& stream) : stream_(stream) {}
    void deliver(const reorder::ArrivingPacket& packet, std::uint64_t holdNs) override;
    void lost(std::uint64_t firstSeq, std::uint64_t count) override;
    void discard(const reorder::ArrivingPacket& packet, DiscardReason reason) override;

   private:
    ReceiveStream& stream_;
  };

  void checkFinished(std::uint64_t nowNs) noexcept;
  void finishNow(bool declareTail) noexcept;
  std::uint32_t popReady() noexcept;
  void noteLate(const reorder::ArrivingPacket& packet) noexcept;
  void freeEntry(std::uint32_t index) noexcept;

  ConnectionConfig config_;
  PathSet& links_;
  std::unique_ptr<reorder::Reorderer> reorderer_;
  Sink sink_;
  std::vector<HeldEntry> table_;
  std::vector<std::uint32_t> freeList_;
  std::uint32_t freeCount_ = 0;
  std::vector<std::uint32_t> ready_;  // ring of table indices in delivery order
  std::uint32_t readyHead_ = 0;
  std::uint32_t readyCount_ = 0;
  std::uint32_t appCount_ = 0;  // entries lent to the application (take)
  std::uint64_t window_ = 0;    // reliable: reliableWindowPackets
  std::vector<ReceivePath> paths_;

  std::uint64_t delivered_ = 0;
  std::uint64_t bytesDelivered_ = 0;
  std::uint64_t lostDeclared_ = 0;
  std::uint64_t tailLost_ = 0;
  std::uint64_t accounted_ = 0;  // delivered + declared lost
  // The recent runs declared lost and the time each was judged at, so that a
  // late arrival can tell whether it was already here then (lateQueued_).
  struct LossRecord {
    std::uint64_t firstSeq = 0;
    std::uint64_t count = 0;
    std::uint64_t judgedNs = 0;
  };
  static constexpr std::size_t kLossRecords = 64;
  std::array<LossRecord, kLossRecords> lossRecords_{};
  std::size_t lossRecordCount_ = 0;  // ever recorded; the latest is at (count - 1) % kLossRecords
  std::uint64_t judgedNs_ = 0;  // the time the reorderer judges at in the current call (0: end of stream)
  std::uint64_t lateQueued_ = 0;
  std::uint64_t badReleases_ = 0;
  HoldHistogram hold_;

  bool dropHeld_ = false;  // abandon() of a reliable stream: the sink frees, not delivers
  bool anyArrival_ = false;
  std::uint64_t lastArrivalNs_ = 0;
  bool endSeen_ = false;
  std::uint64_t finalSeq_ = 0;
  std::uint64_t endSeenNs_ = 0;
  std::size_t pathsClosed_ = 0;
  bool endedByIdle_ = false;
  bool finished_ = false;
};

}  // namespace mpxdp::conn
