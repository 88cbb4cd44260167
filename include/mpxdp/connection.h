// One multipath connection to one peer over the paths of an Endpoint. A
// connection sends and receives: its data stream in each direction is
// sprayed over the paths by the scheduler and pacer and put back in order
// by the reorderer at the other end; control frames (handshake, ACK,
// PING/PONG, CLOSE, REPORT) flow both ways on the same paths.
//
// Single-threaded: the thread that drives the Endpoint drives its
// connections. Nothing on the per-packet path allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "mpxdp/error.h"
#include "mpxdp/export.h"
#include "mpxdp/options.h"
#include "mpxdp/packet_io.h"
#include "mpxdp/path.h"

namespace mpxdp {

// Which side sends data on a connection, chosen by the connecting side.
enum class DataDirection : std::uint8_t {
  kClientToServer = 1,  // mpxdp send (default)
  kServerToClient = 2,  // mpxdp send -R
  kBoth = 3,            // mpxdp send --bidir
};

// How each path's pacing rate is set:
//  - kAuto: estimated from the peer's ACKs (delivery rate, delay growth,
//    loss), probing upward; a configured link rate is a cap.
//  - kFixed: the configured link rate, always (every path needs one).
enum class PacingMode : std::uint8_t { kAuto, kFixed };

struct ConnectionConfig {
  // Unset: eaf (earliest arrival first).
  std::optional<SchedulerKind> scheduler;
  PacingMode pacing = PacingMode::kAuto;
  std::uint64_t totalRateBps = 0;  // cap on application payload bits per second (iperf3 -b); 0 = none
  // Pacer bucket depth, and the queue a path may hold beyond what the delay
  // differences call for.
  std::uint64_t pacingBurstNs = 1'000'000;
  ReorderOptions reorder;        // pathCount is set from the paths
  std::uint32_t batchSize = 64;  // packets per PacketIo call

  // Handshake: HELLO on every path every helloIntervalNs until the peer
  // answers; give up after handshakeTimeoutNs.
  std::uint64_t helloIntervalNs = 200'000'000;
  std::uint64_t handshakeTimeoutNs = 3'000'000'000;
  // The peer is gone when nothing arrived from it for this long.
  std::uint64_t peerTimeoutNs = 3'000'000'000;
  // ACK a path after this many ack-eliciting packets, or after a quarter of
  // the RTT (at least ackMinDelayNs, at most ackDelayNs) since the first
  // unacknowledged one. The ACKs of all paths go together on the fastest path
  // that delivers now, or ride on data there.
  std::uint32_t ackEveryPackets = 64;
  std::uint64_t ackDelayNs = 5'000'000;
  std::uint64_t ackMinDelayNs = 1'000'000;
  // PING a path this often when it carries no data (liveness, RTT); also the
  // probe interval of dead and backup paths. 0 = never.
  std::uint64_t pingIntervalNs = 100'000'000;
  // Failover: a path unanswered for max(its PTO, suspectAfterNs) is suspect
  // and its traffic moves to the others; suspect for deadAfterNs, it is dead
  // and re-admitted after readmitProbes answered PINGs in a row (more when it
  // flaps).
  std::uint64_t suspectAfterNs = 30'000'000;
  std::uint64_t deadAfterNs = 300'000'000;
  std::uint32_t readmitProbes = 3;

  // End of this side's stream: CLOSE with the final sequence on every path,
  // closeRepeats times, closeRepeatIntervalNs apart, then again every
  // helloIntervalNs until the peer's REPORT arrives or reportWaitNs passed.
  std::uint32_t closeRepeats = 3;
  std::uint64_t closeRepeatIntervalNs = 1'000'000;
  std::uint64_t reportWaitNs = 2'000'000'000;
  // Receiving: after the peer's CLOSE, wait at most this long for missing
  // packets before declaring them lost. 0 = until CLOSE on every path or idle.
  std::uint64_t endDrainTimeoutNs = 100'000'000;
  // Receiving: the stream ends after this long without data once data
  // started. 0 = never: the CLOSE is repeated until the peer's REPORT
  // arrives, and a peer that died is caught by peerTimeoutNs.
  std::uint64_t idleTimeoutNs = 0;

  // Reliable mode (mpxdp --reliable): every payload arrives exactly once and
  // in order. The sender keeps each payload until the peer acknowledges it
  // and retransmits what per-path evidence declares lost (and all a path had
  // in flight when it turns suspect) on the path that is best now; the
  // receiver never declares a hole lost and advertises how far ahead the
  // sender may go (flow control), so a slow application never makes it drop.
  // The connecting side decides (its HELLO says so); a server with reliable
  // set refuses a client without it. peerTimeoutNs bounds every wait.
  bool reliable = false;
  // Reliable: payloads the sender may have unacknowledged and the receiver's
  // window, in packets (power of two, 64 .. 65536; at most the reorder
  // window). The receiver holds up to this many link buffers.
  std::uint32_t reliableWindowPackets = 4096;
  // Sending: each payload goes out on the two usable paths where it would
  // arrive first; the receiver keeps the first copy (duplicates counts the rest).
  bool redundant = false;
};

// What the connecting side asks for in its HELLO.
struct ConnectOptions {
  DataDirection direction = DataDirection::kClientToServer;
  std::uint16_t maxPayload = 0;     // largest payload this side will send; 0 = what the paths carry
  std::uint64_t serverRateBps = 0;  // the server's payload rate when it sends; 0 = its own choice
  std::uint32_t durationMs = 0;     // how long the server sends; 0 = until the client closes
};

enum class ConnectionPhase : std::uint8_t {
  kHandshake,  // HELLO sent, no answer yet
  kOpen,       // both sides agreed; data may flow
  kClosed,     // both streams done (and the peer's report in, or given up on)
  kFailed,     // error(): version, path mismatch, peer gone, refused, aborted
};

enum class ConnectionRole : std::uint8_t { kClient, kServer };

// What the peer said in its HELLO.
struct PeerHello {
  std::uint16_t pathCount = 0;
  DataDirection direction = DataDirection::kClientToServer;
  std::uint16_t maxPayload = 0;
  std::uint64_t rateBps = 0;
  std::uint32_t durationMs = 0;
  std::vector<std::string> pathNames;  // the peer's interface per path ("" until its HELLO on that path)
};

struct ConnectionState {
  ConnectionPhase phase = ConnectionPhase::kHandshake;
  ConnectionRole role = ConnectionRole::kClient;
  std::uint32_t connId = 0;
  bool sends = false;     // this side sends data
  bool receives = false;  // this side receives data
  bool reliable = false;  // reliable mode (the client's choice)
  // Sending: global seq of the next payload; sendFinished after finish().
  std::uint64_t nextGlobalSeq = 0;
  bool sendFinished = false;
  // Receiving: sequence numbers delivered or declared lost so far.
  std::uint64_t accountedSeq = 0;
  bool endSeen = false;        // the peer's CLOSE with its final seq arrived
  std::uint64_t finalSeq = 0;  // data seqs are [0, finalSeq)
  bool receiveFinished = false;
  bool endedByIdleTimeout = false;
  std::uint64_t heldPackets = 0;  // buffers held (reorderer, queue, application)
  bool peerReportReceived = false;
  // Packets authenticated and encrypted (EndpointConfig::security has a key).
  bool authenticated = false;
  std::uint8_t cipher = 0;     // CipherKind (security.h) when authenticated
  std::uint32_t keyIndex = 0;  // which of the endpoint's keys the peer holds
};

struct HoldTimeSummary {
  std::uint64_t samples = 0;
  std::uint64_t p50Ns = 0;
  std::uint64_t p90Ns = 0;
  std::uint64_t p99Ns = 0;
  std::uint64_t maxNs = 0;
};

struct PathStats {
  // Path control (this side's view).
  PathState state = PathState::kActive;
  bool backup = false;                     // configured as a backup by either side
  std::uint64_t pacingRateBps = 0;         // wire bits/s the path is paced at now
  std::uint64_t bandwidthEstimateBps = 0;  // the controller's estimate (0: not yet)
  std::uint64_t deliveryRateBps = 0;       // latest delivery-rate sample from the peer's ACKs
  const char* ratePhase = "";              // "fixed", "startup", "drain", "probe"
  // Smoothed RTT from ACKs and PONGs: the time to hear back about a packet
  // on this path (its ACK may return on a faster path); 0: none yet.
  std::uint64_t srttNs = 0;
  std::uint64_t rttVarNs = 0;
  std::uint64_t queueDelayNs = 0;         // one-way delay above the path's minimum (queue build-up)
  double lossRate = 0;                    // smoothed, from per-path gaps in the peer's ACKs
  std::uint64_t packetsAcked = 0;         // our packets the peer acknowledged
  std::uint64_t packetsLostDetected = 0;  // our packets declared lost from its ACKs
  std::uint64_t queuedPackets = 0;        // data packets waiting in the path's send queue
  std::uint64_t requeued = 0;             // moved to other paths when this one stopped carrying data
  // Sending side of this path.
  std::uint64_t packetsSent = 0;    // data packets (retransmissions and redundant copies included)
  std::uint64_t retransmitted = 0;  // reliable mode: data packets that were retransmissions
  std::uint64_t bytesSent = 0;      // payload bytes
  std::uint64_t controlPacketsSent = 0;
  std::uint64_t controlBytesSent = 0;   // UDP payload bytes of control packets
  std::uint64_t ackFramesSent = 0;      // ACK frames about this path (on whichever path carried them)
  std::uint64_t packetNumbersUsed = 0;  // every packet sent on the path (= next packet number)
  std::uint64_t acksReceived = 0;
  std::uint64_t largestAcked = 0;       // valid when acksReceived > 0
  std::uint64_t peerBytesReceived = 0;  // the peer's count of our UDP payload bytes (from ACKs)
  bool rttValid = false;
  std::uint64_t rttNs = 0;  // smoothed (1/8), from PING/PONG
  std::uint64_t rttMinNs = 0;
  // Receiving side of this path.
  std::uint64_t packetsReceived = 0;  // data packets
  std::uint64_t bytesReceived = 0;    // payload bytes
  std::uint64_t controlPacketsReceived = 0;
  std::uint64_t lostSeen = 0;          // gaps in the path's packet numbers not filled later
  std::uint64_t outOfOrderInPath = 0;  // below the highest packet number seen on the path
  std::uint64_t closeFrames = 0;       // CLOSE frames received on this path
  // One-way delay = arrival - send timestamp; includes the clock offset
  // when the two hosts do not share a clock.
  bool owdValid = false;
  std::int64_t owdMinNs = 0;
  std::int64_t owdAvgNs = 0;  // exponentially weighted (1/16)
  PacketIoStats io;           // the link's own counters
};

inline constexpr std::size_t kMaxPathEvents = 4096;

struct ConnectionStats {
  std::uint64_t packetsSent = 0;
  std::uint64_t bytesSent = 0;  // payload bytes
  std::uint64_t txDropped = 0;  // data buffers the link refused at commit
  std::uint64_t packetsDelivered = 0;
  std::uint64_t bytesDelivered = 0;  // payload bytes
  std::uint64_t outOfOrderArrived = 0;
  std::uint64_t outOfOrderDelivered = 0;
  std::uint64_t lost = 0;      // sequence numbers declared lost (incl. a lost tail)
  std::uint64_t lostFast = 0;  // of those, by fast loss detection
  std::uint64_t duplicates = 0;
  std::uint64_t late = 0;  // arrived after being declared lost
  // Of the late ones, those whose link stamped their arrival at this host at or
  // before the time their loss was judged at (a timeout: the time by which
  // every link had been read), unless a read of their link after the stamp
  // found it empty (the kernel had not published them yet): losses this
  // receiver should not have declared.
  // Counted only where the link stamps arrivals (AF_XDP); 0 unless it misjudges.
  std::uint64_t lateQueued = 0;
  // Sending, reliable mode: payloads sent again after a loss or a path failure.
  std::uint64_t retransmitted = 0;
  // Sending, redundant mode: second copies sent.
  std::uint64_t redundantCopies = 0;
  // Sending, reliable mode: time reserve() lent nothing because the peer's
  // window (flow control) or the send buffer was full.
  std::uint64_t flowBlockedNs = 0;
  // Receiving: the longest a payload waited in the reorderer for an earlier
  // one (in reliable mode, for its retransmission): the longest delivery stall.
  std::uint64_t maxStallNs = 0;
  // Packets too far ahead to be believed (forged or corrupt): sequence numbers
  // beyond the reorder window without corroboration, or packet numbers far
  // beyond their path's.
  std::uint64_t implausible = 0;
  std::uint64_t malformed = 0;  // frames of this connection that failed to parse or broke the rules
  // Keyed connections: packets that did not open (wrong key, forged, corrupt,
  // or without protection), and packets dropped as replays (opened before, or
  // older than the replay window).
  std::uint8_t cipher = 0;  // CipherKind (security.h); 0: not authenticated (no key)
  std::uint64_t authFailed = 0;
  std::uint64_t replayed = 0;
  std::uint64_t keyUpdatesSent = 0;
  std::uint64_t keyUpdatesReceived = 0;
  HoldTimeSummary hold;
  std::vector<PathStats> paths;
  // Path state changes, oldest first (timeNs on the connection's clock).
  std::vector<PathEvent> pathEvents;
  std::uint64_t pathEventsDropped = 0;  // beyond the first kMaxPathEvents
};

// The peer's REPORT: its figures for the stream this side sent.
struct PeerReport {
  std::uint64_t durationNs = 0;
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::uint64_t lost = 0;
  std::uint64_t late = 0;
  std::uint64_t outOfOrder = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t malformed = 0;
  struct Path {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint64_t lost = 0;
  };
  std::vector<Path> paths;
};

// A payload slot lent by Connection::reserve: write up to `capacity` bytes
// at `data` and set `length`. Leave length 0 to give the slot back unsent.
// The other fields belong to the connection.
struct SendSlot {
  std::uint8_t* data = nullptr;
  std::uint32_t capacity = 0;
  std::uint32_t length = 0;
  std::uint16_t link = 0;
  std::uint8_t* frame = nullptr;  // start of the link buffer (packet header)
  std::uint32_t frameCapacity = 0;
  std::uint64_t handle = 0;
};

// An in-order payload, a view into the link's memory (UMEM for AF_XDP)
// valid until released through Connection::release.
struct Delivered {
  const std::uint8_t* data = nullptr;
  std::uint32_t length = 0;
  std::uint16_t pathId = 0;
  std::uint64_t globalSeq = 0;
  std::uint32_t entry = 0;  // the connection's bookkeeping
};

class MPXDP_API Connection {
 public:
  virtual ~Connection() = default;

  // ---- sending (when this side sends data) ----
  // Lends up to out.size() slots, each bound to a path chosen by the
  // scheduler and pacer for a payload of payloadBytes (0 = maxPayload()).
  // Returns 0 when no path may send now, before the handshake completed,
  // or after finish(). Every slot must come back via commit.
  virtual std::size_t reserve(std::span<SendSlot> out, std::uint32_t payloadBytes = 0) noexcept = 0;
  // Numbers and sends the slots with length > 0 in span order (through each
  // path's paced send queue); returns the packets accepted.
  virtual Result<std::size_t> commit(std::span<const SendSlot> slots) noexcept = 0;
  // Copying API: true when sent, false when pacing or the link does not allow it now.
  virtual Result<bool> send(std::span<const std::uint8_t> payload) noexcept = 0;
  virtual Result<std::size_t> sendMany(std::span<const std::span<const std::uint8_t>> payloads) noexcept = 0;
  // Earliest time reserve() may succeed for payloadBytes (UINT64_MAX: never).
  virtual std::uint64_t nextSendTimeNs(std::uint32_t payloadBytes = 0) const noexcept = 0;
  // Reaps completions and kicks every path.
  virtual Result<void> flush() noexcept = 0;
  // End of this side's stream: CLOSE with the final seq on every path
  // (repeated by the endpoint's poll until the peer's REPORT arrives).
  virtual Result<void> finish() noexcept = 0;

  // ---- receiving (when the peer sends data) ----
  // Receives on every path of the endpoint, then fills out with this
  // connection's payloads in order. Never blocks. Each must be released.
  virtual Result<std::size_t> poll(std::span<Delivered> out) noexcept = 0;
  virtual void release(std::span<const Delivered> packets) noexcept = 0;
  // Copying API: the next payload into buffer; its length, or 0 when none is
  // ready. EMSGSIZE (the payload stays queued) if it does not fit.
  virtual Result<std::size_t> recv(std::span<std::uint8_t> buffer) noexcept = 0;

  // ---- lifecycle ----
  // Aborts: CLOSE with the error code to the peer; the connection fails.
  virtual void abort(std::uint16_t errorCode, const std::string& reason) noexcept = 0;
  virtual bool established() const noexcept = 0;  // handshake done (stays true after close)
  // kClosed or kFailed. A receiving connection closes only after poll() or
  // recv() took its last payload.
  virtual bool done() const noexcept = 0;
  // Why the connection failed (phase kFailed), naming the side that found it.
  virtual std::optional<Error> error() const = 0;
  virtual const PeerHello& peerHello() const noexcept = 0;
  virtual std::optional<PeerReport> peerReport() const = 0;

  // Largest payload per packet: the smallest of the paths and the peer's.
  virtual std::uint32_t maxPayload() const noexcept = 0;
  virtual std::size_t pathCount() const noexcept = 0;
  virtual ConnectionState state() const noexcept = 0;
  virtual ConnectionStats stats() const = 0;
};

}  // namespace mpxdp
