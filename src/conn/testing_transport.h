// TEST DOUBLE, built only into tests: an in-memory one-way link with a fixed
// frame pool, a per-link delay and optional per-packet drop / extra-delay
// hooks, driven by an injected Clock. Packets become receivable at
// commit time + delay (+ extra delay), so links reorder against each other.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "mpxdp/clock.h"
#include "mpxdp/packet_io.h"

namespace mpxdp::conn::testing {

struct MemoryLinkOptions {
  std::string name = "mem";
  std::uint32_t frames = 4096;
  std::uint32_t frameSize = 1500;  // UDP payload capacity of one frame
  std::uint64_t delayNs = 0;
  // index = packets committed on this link so far (0-based).
  std::function<bool(std::uint64_t index, std::span<const std::uint8_t> payload)> drop;
  std::function<std::uint64_t(std::uint64_t index)> extraDelayNs;
  // Called after a commit put its frames on the wire, with their count: a
  // test advances its clock here to model a transmit call that runs the
  // link's whole path in the kernel (veth), as AF_XDP copy mode does.
  std::function<void(std::size_t frames)> onCommit;
  // Received packets carry their arrival time (RxPacket::arrivalNs), as the
  // XDP transport's do; else 0, as the kernel-UDP transport's.
  bool stampArrival = false;
  // The receiving host's clock at a time of the wire's clock, for stamps
  // (hosts that share no clock); the wire's time itself when empty.
  std::function<std::uint64_t(std::uint64_t wireNs)> receiverTime;
};

// The state shared by both ends of one link.
class MemoryWire {
 public:
  MemoryWire(MemoryLinkOptions options, std::shared_ptr<const Clock> clock);

  // Puts raw bytes on the wire as if a peer had sent them (e.g. garbage).
  bool inject(std::span<const std::uint8_t> payload);

  std::uint64_t packetsCommitted() const noexcept { return packetsCommitted_; }
  std::uint64_t bytesCommitted() const noexcept { return bytesCommitted_; }  // UDP payload bytes
  std::uint64_t packetsDropped() const noexcept { return packetsDropped_; }
  std::uint64_t packetsReceived() const noexcept { return packetsReceived_; }
  // Frames lent to either end or in flight; 0 once everything came back.
  std::uint32_t framesOutstanding() const noexcept;
  std::uint32_t framesInFlight() const noexcept { return static_cast<std::uint32_t>(inFlight_.size()); }

 private:
  friend class MemoryTxEnd;
  friend class MemoryRxEnd;
  struct InFlight {
    std::uint64_t arrivalNs;
    std::uint64_t order;
    std::uint32_t frame;
    std::uint32_t length;
  };
  static bool later(const InFlight& a, const InFlight& b) noexcept;
  std::uint8_t* frameData(std::uint32_t frame) noexcept {
    return memory_.data() + std::size_t{frame} * options_.frameSize;
  }
  bool takeFrame(std::uint32_t& frame) noexcept;
  void putFrame(std::uint32_t frame) noexcept { freeFrames_.push_back(frame); }
  void enqueue(std::uint32_t frame, std::uint32_t length, std::uint64_t nowNs);

  MemoryLinkOptions options_;
  std::shared_ptr<const Clock> clock_;
  std::vector<std::uint8_t> memory_;
  std::vector<std::uint32_t> freeFrames_;
  std::vector<InFlight> inFlight_;  // min-heap on (arrivalNs, order)
  std::uint64_t order_ = 0;
  std::uint64_t packetsCommitted_ = 0;
  std::uint64_t bytesCommitted_ = 0;
  std::uint64_t packetsDropped_ = 0;
  std::uint64_t packetsReceived_ = 0;
  std::uint64_t bytesReceived_ = 0;
};

struct MemoryLink {
  std::unique_ptr<PacketIo> txEnd;  // give to the Sender
  std::unique_ptr<PacketIo> rxEnd;  // give to the Receiver
  std::shared_ptr<MemoryWire> wire;
};

MemoryLink makeMemoryLink(MemoryLinkOptions options, std::shared_ptr<const Clock> clock);

}  // namespace mpxdp::conn::testing
