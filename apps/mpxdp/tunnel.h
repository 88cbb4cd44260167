// The packet pump of `mpxdp tun`: IP packets read from the TUN interface go
// out as payloads of the connection (super-packets split to path size on the
// way), and the connection's in-order payloads are written back to the TUN
// (in-order TCP segments coalesced into one write). One thread; it waits in
// ppoll on the TUN and the paths, and reads the TUN only while the
// connection may send, so a full pipe pushes back on TCP instead of dropping.
// With a multi-queue TUN (--queues) a thread per queue does the reads and
// the pump takes their packets; each flow's packets are written on the queue
// its hash picks, so the kernel sends that flow out on the same queue.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "metrics.h"
#include "mpxdp/connection.h"
#include "mpxdp/endpoint.h"
#include "offload.h"
#include "queue_reader.h"
#include "report.h"
#include "run_control.h"
#include "tun_device.h"

namespace mpxdp::cli {

struct TunnelCounters {
  std::uint64_t reads = 0;         // packets read from the TUN (super-packets count once)
  std::uint64_t superPackets = 0;  // of those, split into more than one packet
  std::uint64_t packetsRead = 0;   // IP packets after splitting
  std::uint64_t bytesRead = 0;     // their bytes
  std::uint64_t packetsWritten = 0;
  std::uint64_t bytesWritten = 0;
  std::uint64_t writes = 0;               // write calls (a coalesced packet counts once)
  std::uint64_t droppedNoConnection = 0;  // read while no connection was up
  std::uint64_t droppedTooBig = 0;        // larger than the tunnel's MTU (answered with ICMP when allowed)
  std::uint64_t icmpSent = 0;             // packet-too-big answers written to the TUN
  std::uint64_t droppedMalformed = 0;     // the TUN gave something that is not a packet we can split
  std::uint64_t writeDropped = 0;         // the kernel did not take a write (queue full)
  std::uint64_t droppedSendFailed = 0;    // the connection refused them (a path failed)
  // Several peers (--peer):
  std::uint64_t droppedNoPeer = 0;       // no peer owns the destination
  std::uint64_t droppedPeerBusy = 0;     // the destination peer's queue was full
  std::uint64_t droppedWrongSource = 0;  // from a peer, with a source address it does not own
  // Packets read from each queue (one queue: [0] only), also those dropped.
  std::uint32_t queues = 1;
  std::array<std::uint64_t, tun::kMaxTunQueues> queueReads{};
};

// A reader thread per queue of a multi-queue TUN (none for one queue: the
// pump reads it itself). Start them before pinning the calling thread, so
// they do not inherit its CPU.
Result<std::vector<std::unique_ptr<tun::QueueReader>>> startQueueReaders(const tun::TunDevice& device);

// Which addresses the tunnel has: the source of the ICMP answers it makes.
struct TunnelAddresses {
  std::optional<IpAddress> v4;
  std::optional<IpAddress> v6;
};

// Writes packets to the TUN: in-order TCP segments coalesced into one
// write (with offloads), anything else one by one; and the ICMP answers to
// packets too big for the tunnel.
class TunWriter {
 public:
  TunWriter(tun::TunDevice& device, TunnelAddresses addresses, TunnelCounters& counters);
  void write(std::span<const std::uint8_t> ipPacket);
  // Writes what the coalescer holds; call after each batch.
  void flush();
  // "Fragmentation needed" (IPv4) or "packet too big" (IPv6) to the sender of ipPacket.
  void answerTooBig(std::span<const std::uint8_t> ipPacket, std::uint32_t mtu);

 private:
  // The queue a packet of this flow is written on (always 0 with one queue).
  std::uint32_t queueFor(std::span<const std::uint8_t> ipPacket) const noexcept;

  tun::TunDevice& device_;
  TunnelAddresses addresses_;
  TunnelCounters& counters_;
  std::vector<std::uint8_t> writeBuffer_;  // single packets behind their virtio header
  std::vector<std::uint8_t> icmpBuffer_;
  std::optional<tun::TcpCoalescer> coalescer_;
};

class TunnelPump {
 public:
  // rxHoldoffNs: the loop's receive coalescing (--rx-usecs, FdWaiter).
  TunnelPump(tun::TunDevice& device, TunnelAddresses addresses, std::uint64_t rxHoldoffNs);

  struct Outcome {
    std::string endedBy;  // "signal", "peer", "replaced", "error"
    std::optional<Error> failure;
  };
  // Moves packets both ways until the connection is done, a stop signal
  // arrives (the connection is then aborted so the peer learns why) or
  // `replace` returns a newer connection (a restarted peer), which is put in
  // *replacement. The TUN's MTU must fit connection.maxPayload().
  // Interval reports go to the reporters every intervalS (0: none).
  Outcome run(Endpoint& endpoint, Connection& connection, Reporter* sendReporter, Reporter* receiveReporter,
              double intervalS, Connection** replacement);

  // Reads and drops what the TUN holds (no connection is up), waiting on
  // the TUN and the paths until deadlineNs or until a path has packets.
  Result<void> discardUntil(Endpoint& endpoint, std::uint64_t deadlineNs);

  const TunnelCounters& counters() const noexcept { return counters_; }
  // A multi-queue TUN: its reader threads (startQueueReaders), one per queue in order.
  void useQueueReaders(std::vector<std::unique_ptr<tun::QueueReader>> readers);
  // --metrics: the connection's snapshots go there (linkNames label its paths).
  void setMetrics(MetricsServer* metrics, std::vector<std::string> linkNames) {
    metrics_ = metrics;
    linkNames_ = std::move(linkNames);
  }

 private:
  // Reads the TUN and sends; false when the connection may not send now.
  Result<bool> pumpOut(Connection& connection, std::uint32_t maxPacket);
  // Writes delivered payloads to the TUN.
  void pumpIn(std::span<const Delivered> delivered);
  // Reads one packet into readBuffer_ and starts splitting it; false when the TUN is empty.
  Result<bool> readNext(std::uint32_t maxPacket);
  // The next packet the reader threads hold, round robin over the queues;
  // empty when none. It stays in its ring until the next call.
  Result<std::span<const std::uint8_t>> takeFromQueues();
  // The TUN's entries of a wait set: each reader's readyFd, or the TUN's fd.
  void addTunFds(std::vector<pollfd>& fds) const;
  // After a wait: clears the readers whose readyFd woke it.
  void clearReady(const std::vector<pollfd>& fds);
  // A reader thread holds a packet or failed.
  bool queuesPending() const noexcept;

  tun::TunDevice& device_;
  TunnelCounters counters_;
  TunWriter writer_;
  std::vector<std::uint8_t> readBuffer_;
  tun::GsoSplitter splitter_;
  FdWaiter waiter_;
  std::vector<std::unique_ptr<tun::QueueReader>> readers_;
  std::size_t heldReader_ = SIZE_MAX;  // whose packet the splitter works on
  std::size_t nextReader_ = 0;
  MetricsServer* metrics_ = nullptr;
  std::vector<std::string> linkNames_;
};

}  // namespace mpxdp::cli
