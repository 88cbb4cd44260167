// One link's packet input/output: the seam between the multipath connection
// and a concrete transport (AF_XDP, kernel UDP sockets, or an in-memory pair
// in unit tests). Buffers hold the UDP payload (multipath header + data); the
// transport adds and strips the outer Ethernet/IP/UDP headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mpxdp/error.h"
#include "mpxdp/export.h"

namespace mpxdp {

// A transmit buffer lent by the transport. The caller writes up to
// `capacity` bytes at `data` and sets `length`.
struct TxBuffer {
  std::uint8_t* data = nullptr;
  std::uint32_t capacity = 0;
  std::uint32_t length = 0;
  std::uint64_t handle = 0;  // transport-private
};

// A received UDP payload, a view into transport memory (UMEM for AF_XDP)
// that stays valid until it is released.
struct RxPacket {
  const std::uint8_t* data = nullptr;
  std::uint32_t length = 0;
  std::uint64_t handle = 0;  // transport-private
  // CLOCK_MONOTONIC ns when the packet reached the host (AF_XDP: stamped by
  // the XDP program); 0 when the transport does not know. Receive() returns
  // batches, so this is earlier than the caller's clock after receive().
  std::uint64_t arrivalNs = 0;
};

struct PacketIoStats {
  std::uint64_t txPackets = 0;
  std::uint64_t txBytes = 0;  // UDP payload bytes
  std::uint64_t rxPackets = 0;
  std::uint64_t rxBytes = 0;      // UDP payload bytes
  std::uint64_t rxMalformed = 0;  // frames whose outer headers failed to decode
  // AF_XDP XDP_STATISTICS (zero for other transports).
  std::uint64_t rxDropped = 0;
  std::uint64_t rxInvalidDescs = 0;
  std::uint64_t txInvalidDescs = 0;
  std::uint64_t rxRingFull = 0;
  std::uint64_t rxFillRingEmpty = 0;
  std::uint64_t txRingEmpty = 0;
};

// Peers one link answers at once, its own included (PacketIo::acquirePeer).
inline constexpr std::size_t kMaxLinkPeers = 64;

class MPXDP_API PacketIo {
 public:
  virtual ~PacketIo() = default;
  PacketIo() = default;
  PacketIo(const PacketIo&) = delete;
  PacketIo& operator=(const PacketIo&) = delete;

  // Lends up to out.size() empty buffers; returns how many. Never blocks.
  // Every lent buffer must come back through commitTx.
  virtual std::size_t reserveTx(std::span<TxBuffer> out) noexcept = 0;
  // Sends the buffers with length > 0 and takes back the others unsent.
  // Returns how many were handed to the link.
  virtual Result<std::size_t> commitTx(std::span<const TxBuffer> buffers) noexcept = 0;
  // Reaps transmit completions and kicks the device; call when idle.
  virtual Result<void> flushTx() noexcept = 0;

  // Fills out with up to out.size() received payloads. Never blocks.
  virtual Result<std::size_t> receive(std::span<RxPacket> out) noexcept = 0;
  // Gives received buffers back to the transport.
  virtual void release(std::span<const RxPacket> packets) noexcept = 0;
  // After receive() returned fewer packets than asked: every packet that
  // reached the link before the returned time (on the caller's clock) has
  // been handed out. readStartNs is when the caller began that read; a link
  // read by its caller's own receive() returns it, one read by another
  // thread (transport::receiveOnThread) when that thread last found the link
  // drained. The receiver judges lost packets as of this time.
  virtual std::uint64_t drainedAsOfNs(std::uint64_t readStartNs) const noexcept { return readStartNs; }

  // Descriptors that become readable when receive() has work (for poll());
  // a multi-queue link has one per socket. Empty for in-memory links.
  virtual std::vector<int> pollFds() const = 0;
  // Largest UDP payload one buffer can carry on this link.
  virtual std::uint32_t maxPayload() const noexcept = 0;
  // Bytes the link adds around one UDP payload on the wire, as a tbf or
  // line-rate shaper counts them: Ethernet 14 (+ 4 when VLAN-tagged) +
  // IPv4 20 / IPv6 40 + UDP 8. For pacing.
  virtual std::uint32_t frameOverheadBytes() const noexcept = 0;

  // Learned peers: from now on the link sends to where `packet` (received on
  // this link and not yet released) came from, and reserveTx lends buffers
  // even on a link opened receive-only. Called rarely (on a new peer), never
  // per packet; not concurrently with reserveTx/commitTx of another thread
  // for a link that already has a peer.
  virtual Result<void> setPeerFrom(const RxPacket& packet) noexcept = 0;
  // True when the link knows where to send (configured or learned).
  virtual bool hasPeer() const noexcept = 0;

  // Return addresses of a server with several peers on one link (each of its
  // connections answers where that connection's packets come from): the
  // peer number for where `packet` came from, 0 for the link's own peer
  // (which a link without one learns from it, as setPeerFrom). Each number
  // other than 0 is held until releasePeer; the same source shares one.
  // ENOSPC beyond kMaxLinkPeers at once. Called once per connection and
  // path, from the thread that commits. A transport with one peer returns 0.
  virtual Result<std::uint16_t> acquirePeer(const RxPacket& packet) noexcept {
    if (!hasPeer()) {
      if (auto learned = setPeerFrom(packet); !learned) return learned.error();
    }
    return std::uint16_t{0};
  }
  virtual void releasePeer(std::uint16_t /*peer*/) noexcept {}
  // commitTx towards an acquired peer (0: the link's peer, as commitTx).
  virtual Result<std::size_t> commitTxTo(std::uint16_t /*peer*/, std::span<const TxBuffer> buffers) noexcept {
    return commitTx(buffers);
  }

  // Where the link sends, e.g. "198.18.1.1:47000", or "none".
  virtual std::string peerDescription() const = 0;
  virtual PacketIoStats stats() const noexcept = 0;
  // Human-readable description, e.g. "xdp:eth1 rx q0-3 tx q0 copy" (one
  // AF_XDP socket per RX queue, transmit on the first).
  virtual std::string describe() const = 0;
  // Received payloads one receive queue can hold unreleased at most (its
  // share of the link buffers); UINT32_MAX: no fixed bound. Reliable mode
  // keeps its window within half of it, so held packets never starve a queue.
  virtual std::uint32_t receiveBuffersPerQueue() const noexcept { return UINT32_MAX; }
};

}  // namespace mpxdp
