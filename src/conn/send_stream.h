// The sending half of a connection: the scheduler and pacer choose the path
// of each slot at reserve time; commit writes the packet header (per-path
// packet number) and the DATA frame, lets a pending ACK ride along when it
// fits, and hands the buffers to the paths in batches.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "mpxdp/clock.h"
#include "mpxdp/connection.h"
#include "path_set.h"
#include "sched/scheduler.h"

namespace mpxdp::conn {

// Lets control frames ride on data packets and numbers every packet.
class PacketNumbering {
 public:
  virtual ~PacketNumbering() = default;
  // The next packet number of path (consumed).
  virtual std::uint64_t takePacketNumber(std::size_t path) noexcept = 0;
  // Writes frames due on path (an ACK) into room; returns bytes written (0: none due or no room).
  virtual std::size_t writePiggyback(std::size_t path, std::span<std::uint8_t> room,
                                     std::uint64_t nowNs) noexcept = 0;
};

struct SendPathCounters {
  std::uint64_t packetsSent = 0;
  std::uint64_t bytesSent = 0;
};

class SendStream {
 public:
  // Bytes in front of the payload in every data packet: packet header + DATA frame header.
  static constexpr std::uint32_t kDataOverhead = 40;

  static Result<std::unique_ptr<SendStream>> create(const ConnectionConfig& config, PathSet& paths,
                                                    Clock& clock, PacketNumbering& numbering,
                                                    std::uint32_t connId, std::uint32_t maxPayload);
  SendStream(const ConnectionConfig& config, PathSet& paths, Clock& clock, PacketNumbering& numbering,
             std::uint32_t connId, std::unique_ptr<sched::Scheduler> scheduler, std::uint32_t maxPayload);

  std::size_t reserve(std::span<SendSlot> out, std::uint32_t payloadBytes) noexcept;
  Result<std::size_t> commit(std::span<const SendSlot> slots) noexcept;
  Result<bool> send(std::span<const std::uint8_t> payload) noexcept;
  Result<std::size_t> sendMany(std::span<const std::span<const std::uint8_t>> payloads) noexcept;
  std::uint64_t nextSendTimeNs(std::uint32_t payloadBytes) const noexcept;
  Result<void> flush() noexcept;

  // No more data: reserve lends nothing from now on.
  void stop() noexcept { stopped_ = true; }
  bool stopped() const noexcept { return stopped_; }
  std::uint64_t nextGlobalSeq() const noexcept { return nextGlobalSeq_; }
  std::uint32_t maxPayload() const noexcept { return maxPayload_; }
  std::uint64_t txDropped() const noexcept { return txDropped_; }
  // The error of the last commit that failed on some path but sent on others.
  const std::optional<Error>& lastPartialError() const noexcept { return lastError_; }
  const SendPathCounters& counters(std::size_t path) const noexcept { return paths_[path].counters; }

 private:
  struct SendPath {
    SendPathCounters counters;
    std::vector<TxBuffer> reserved;  // filled by reserve
    std::uint32_t wanted = 0;
    std::uint32_t got = 0;
    std::uint32_t used = 0;
    std::vector<TxBuffer> pending;  // the commit batch
    std::uint32_t pendingCount = 0;
    std::uint32_t pendingPackets = 0;
    std::uint64_t pendingBytes = 0;
  };

  Result<void> checkPayload(std::size_t size) const;
  template <typename SizeOf>
  std::size_t reserveImpl(std::span<SendSlot> out, SizeOf sizeOf) noexcept;
  void commitPending(std::size_t path) noexcept;
  void noteError(Error error);

  ConnectionConfig config_;
  PathSet& links_;
  Clock& clock_;
  PacketNumbering& numbering_;
  std::uint32_t connId_;
  std::unique_ptr<sched::Scheduler> scheduler_;
  std::uint32_t maxPayload_;
  std::vector<SendPath> paths_;
  std::vector<std::uint16_t> pickedPath_;
  std::vector<SendSlot> copySlots_;
  std::uint64_t nextGlobalSeq_ = 0;
  std::uint64_t txDropped_ = 0;
  std::uint64_t sent_ = 0;
  std::optional<Error> firstError_;
  std::optional<Error> lastError_;  // of a commit that still sent some packets
  bool stopped_ = false;
};

}  // namespace mpxdp::conn
