// A multipath connection over N links: a Sender sprays one flow over its
// links (the scheduler and pacer pick the path of each packet) and a
// Receiver puts the packets back in order. Each link is a PacketIo; buffers
// carry the 32-byte multipath header followed by the payload.
//
// Single-threaded: one thread drives a Sender or a Receiver. Nothing on the
// per-packet path allocates; all tables are sized at create time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "mpxdp/clock.h"
#include "mpxdp/error.h"
#include "mpxdp/packet_io.h"
#include "reorder/reorderer.h"
#include "sched/scheduler.h"

namespace mpxdp {

using PathConfig = sched::PathConfig;

// One link of a connection: its packet I/O and its configured rate.
// Link i carries path id i; both ends must list their links in the same order.
struct Link {
  std::unique_ptr<PacketIo> io;
  PathConfig path;
};

struct ConnectionConfig {
  std::uint32_t connId = 1;
  sched::SchedulerKind scheduler = sched::SchedulerKind::kRoundRobin;
  std::uint64_t totalRateBps = 0;  // cap on the sum of all paths; 0 = none
  // Bytes the link carries per packet besides the payload, for pacing: the
  // outer headers (14 + 20 + 8 for Ethernet/IPv4/UDP) plus the 32-byte
  // multipath header.
  std::uint32_t perPacketOverheadBytes = 14 + 20 + 8 + 32;
  std::uint64_t pacingBurstNs = 1'000'000;
  reorder::ReorderOptions reorder;  // pathCount is set from the links
  std::uint32_t batchSize = 64;     // packets per PacketIo call

  // End of stream (sender): END markers per path, spaced by the interval.
  std::uint32_t endRepeats = 3;
  std::uint64_t endRepeatIntervalNs = 1'000'000;
  // End of stream (receiver): after the first END marker, wait at most this
  // long for missing packets before declaring them lost. 0 = wait for END
  // on every path or the idle timeout.
  std::uint64_t endDrainTimeoutNs = 100'000'000;
  // Receiver: finish after this long without any packet once traffic has
  // started (END markers lost). 0 = never.
  std::uint64_t idleTimeoutNs = 2'000'000'000;
};

enum class ConnectionPhase : std::uint8_t {
  kOpen,      // sending / receiving
  kFinished,  // sender: END markers sent; receiver: stream complete
};

struct ConnectionState {
  ConnectionPhase phase = ConnectionPhase::kOpen;
  // Sender: global seq of the next packet. Receiver: sequence numbers
  // delivered or declared lost so far.
  std::uint64_t nextGlobalSeq = 0;
  bool endSeen = false;        // receiver: an END marker arrived
  std::uint64_t finalSeq = 0;  // from the END marker: data seqs are [0, finalSeq)
  bool endedByIdleTimeout = false;
  std::uint64_t heldPackets = 0;  // receiver: buffers held (reorderer, queue, application)
};

// Reorder hold time (arrival to in-order release), from a log-bucket
// histogram: percentiles are bucket upper bounds (relative error <= 25 %).
struct HoldTimeSummary {
  std::uint64_t samples = 0;
  std::uint64_t p50Ns = 0;
  std::uint64_t p90Ns = 0;
  std::uint64_t p99Ns = 0;
  std::uint64_t maxNs = 0;
};

struct PathStats {
  std::uint64_t packetsSent = 0;
  std::uint64_t bytesSent = 0;  // payload bytes
  std::uint64_t packetsReceived = 0;
  std::uint64_t bytesReceived = 0;  // payload bytes
  std::uint64_t lostSeen = 0;       // per-path sequence gaps (not refilled by later arrivals)
  // Receiver: packets whose per-path seq is below the highest seen on that
  // path (reordered within the path itself, not across paths).
  std::uint64_t outOfOrderInPath = 0;
  std::uint64_t endMarkers = 0;  // END markers sent / received on this path
  // One-way delay = arrival - send timestamp. Only a delay when both ends
  // share a clock; across hosts it includes the clock offset.
  bool owdValid = false;
  std::int64_t owdMinNs = 0;
  std::int64_t owdAvgNs = 0;  // exponentially weighted (1/16)
  PacketIoStats io;           // the link's own counters
};

struct ConnectionStats {
  std::uint64_t packetsSent = 0;
  std::uint64_t bytesSent = 0;  // payload bytes
  std::uint64_t packetsDelivered = 0;
  std::uint64_t bytesDelivered = 0;  // payload bytes
  std::uint64_t outOfOrderArrived = 0;
  std::uint64_t outOfOrderDelivered = 0;
  std::uint64_t lost = 0;      // sequence numbers declared lost (incl. a lost tail)
  std::uint64_t lostFast = 0;  // of those, by the reorderer's fast loss detection
  std::uint64_t duplicates = 0;
  std::uint64_t late = 0;
  std::uint64_t malformed = 0;    // bad multipath header, unknown path or wrong conn id
  std::uint64_t foreignConn = 0;  // of those: another connection id
  std::uint64_t txDropped = 0;    // sender: buffers the link refused at commit
  HoldTimeSummary hold;
  std::vector<PathStats> paths;
};

// A payload slot lent by Sender::reserve: write up to `capacity` bytes at
// `data` and set `length`. Leave length 0 to give the slot back unsent.
// The other fields belong to the sender.
struct SendSlot {
  std::uint8_t* data = nullptr;
  std::uint32_t capacity = 0;
  std::uint32_t length = 0;
  std::uint16_t link = 0;
  std::uint8_t* frame = nullptr;  // start of the link buffer (multipath header)
  std::uint32_t frameCapacity = 0;
  std::uint64_t handle = 0;
};

class Sender {
 public:
  // links must not be empty; clock defaults to a MonotonicClock.
  static Result<std::unique_ptr<Sender>> create(const ConnectionConfig& config, std::vector<Link> links,
                                                std::shared_ptr<Clock> clock = nullptr);
  virtual ~Sender() = default;

  // Lends up to out.size() slots, each bound to a link chosen by the
  // scheduler and pacer for a payload of payloadBytes (0 = maxPayload();
  // pacing charges this size). Returns 0 when no path may send now (see
  // nextSendTimeNs) or after finish(). Every slot must come back via commit.
  virtual std::size_t reserve(std::span<SendSlot> out, std::uint32_t payloadBytes = 0) noexcept = 0;
  // Fills the multipath headers of the slots with length > 0, in span order
  // (global seq, per-path seq, path id, timestamp, length), hands them to
  // their links in batches and returns the others. Returns packets sent.
  virtual Result<std::size_t> commit(std::span<const SendSlot> slots) noexcept = 0;

  // Copying API. send: true when sent, false when pacing or the link does
  // not allow it now. sendMany: how many leading payloads were sent.
  virtual Result<bool> send(std::span<const std::uint8_t> payload) noexcept = 0;
  virtual Result<std::size_t> sendMany(std::span<const std::span<const std::uint8_t>> payloads) noexcept = 0;

  // Earliest time reserve() may succeed for payloadBytes (0 = maxPayload()).
  virtual std::uint64_t nextSendTimeNs(std::uint32_t payloadBytes = 0) const noexcept = 0;
  // Reaps completions on all links, then sleeps (through the clock) until
  // nextSendTimeNs().
  virtual Result<void> waitUntilSendable(std::uint32_t payloadBytes = 0) noexcept = 0;
  // Reaps completions and kicks every link.
  virtual Result<void> flush() noexcept = 0;
  // End of stream: END markers carrying the final global seq on every path,
  // config.endRepeats times (sleeping endRepeatIntervalNs in between).
  virtual Result<void> finish() noexcept = 0;

  // Largest payload per packet over all links.
  virtual std::uint32_t maxPayload() const noexcept = 0;
  virtual std::size_t linkCount() const noexcept = 0;
  virtual ConnectionState state() const noexcept = 0;
  virtual ConnectionStats stats() const = 0;
};

// An in-order payload, a view into the link's memory (UMEM for AF_XDP)
// valid until released through Receiver::release.
struct Delivered {
  const std::uint8_t* data = nullptr;
  std::uint32_t length = 0;
  std::uint16_t pathId = 0;
  std::uint64_t globalSeq = 0;
  std::uint32_t entry = 0;  // the receiver's bookkeeping
};

class Receiver {
 public:
  static Result<std::unique_ptr<Receiver>> create(const ConnectionConfig& config, std::vector<Link> links,
                                                  std::shared_ptr<Clock> clock = nullptr);
  virtual ~Receiver() = default;

  // Receives from every link, reorders, handles timeouts and END, and fills
  // out with payloads in order. Never blocks. Each must be released.
  virtual Result<std::size_t> poll(std::span<Delivered> out) noexcept = 0;
  virtual void release(std::span<const Delivered> packets) noexcept = 0;
  // Copying API: the next payload into buffer; returns its length, or 0
  // when none is ready. EMSGSIZE (the payload stays queued) if it does not fit.
  virtual Result<std::size_t> recv(std::span<std::uint8_t> buffer) noexcept = 0;

  // The stream has ended: END seen and everything below its final seq
  // delivered or declared lost, or the idle timeout expired.
  virtual bool finished() const noexcept = 0;
  // When poll() next has timed work (reorder timeout, drain, idle);
  // UINT64_MAX when none.
  virtual std::uint64_t nextDeadlineNs() const noexcept = 0;
  // Descriptors to wait on (poll(2)) for arrivals; -1 entries have none.
  virtual std::vector<int> pollFds() const = 0;

  virtual std::size_t linkCount() const noexcept = 0;
  virtual ConnectionState state() const noexcept = 0;
  virtual ConnectionStats stats() const = 0;
};

}  // namespace mpxdp
