// A connection's state machine: handshake, control frames (ACK, PING/PONG,
// PATH_STATUS, CLOSE, REPORT) and the glue between the endpoint's
// demultiplexer and the two streams. The endpoint hands it every packet
// with its connection id and runs its timers once every path was read.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ack_tracker.h"
#include "crypto/packet_protection.h"
#include "mpxdp/clock.h"
#include "mpxdp/connection.h"
#include "mpxdp/security.h"
#include "path/path_estimator.h"
#include "path/path_state.h"
#include "path/rate_controller.h"
#include "path_set.h"
#include "receive_stream.h"
#include "send_stream.h"
#include "sent_packets.h"
#include "wire/frames.h"
#include "wire/packet.h"

namespace mpxdp::conn {

struct ConnectionParams {
  ConnectionRole role = ConnectionRole::kClient;
  std::uint32_t connId = 0;
  DataDirection direction = DataDirection::kClientToServer;
  bool reliable = false;         // the client's choice (its HELLO)
  std::uint32_t maxPayload = 0;  // largest payload the paths carry (and the peer accepts)
  ConnectOptions connect;        // client: what the HELLO asks for
  // Keyed connections (issue 11): the pre-shared key (a server: the one the
  // client's HELLO opened with, keys[keyIndex]), the session cipher (the
  // client's choice), this side's random and, on a server, the client's.
  std::optional<PreSharedKey> key;
  std::uint32_t keyIndex = 0;
  CipherKind cipher = CipherKind::kChaCha20Poly1305;
  crypto::Random ownRandom{};
  crypto::Random peerRandom{};
  std::uint64_t rotateAfterPackets = 0;
  std::uint64_t rotateAfterNs = 0;
  std::uint64_t minKeyPhaseNs = 0;
};

class ConnectionImpl final : public Connection, private SendHooks {
 public:
  static Result<std::unique_ptr<ConnectionImpl>> create(const ConnectionConfig& config, PathSet& paths,
                                                        Clock& clock, const ConnectionParams& params);
  ConnectionImpl(const ConnectionConfig& config, PathSet& paths, Clock& clock,
                 const ConnectionParams& params);

  // ---- from the endpoint ----
  std::uint32_t connId() const noexcept { return params_.connId; }
  // Takes the buffer: holds it (data) or gives it back to its path. A keyed
  // connection opens it in place first (its buffer is ours until released).
  void onPacket(std::uint16_t link, const RxPacket& packet, const wire::PacketHeader& header,
                std::uint64_t nowNs, std::uint64_t pushNs) noexcept;
  // Keyed server: the client's first HELLO packet, which the endpoint opened
  // (its frames are plaintext at [header, header + framesLength)).
  void onOpenedFirstPacket(std::uint16_t link, const RxPacket& packet, const wire::PacketHeader& header,
                           std::size_t framesLength, std::uint64_t nowNs, std::uint64_t pushNs) noexcept;
  bool keyed() const noexcept { return protection_ != nullptr; }
  // Keyed: a packet sealed with the session keys arrived from the peer (it
  // holds the key: a replayed HELLO never gets this far). Unkeyed: true.
  bool peerProven() const noexcept { return protection_ == nullptr || peerProven_; }
  // Keyed server: not yet handed to accept() (waits for the proof).
  bool awaitingAccept() const noexcept { return awaitingAccept_; }
  void setAwaitingAccept(bool awaiting) noexcept { awaitingAccept_ = awaiting; }

  // Server: the client's HELLO that created this connection.
  void setPeerHello(const wire::HelloFrame& hello);
  void onVersionNegotiation(const wire::VersionList& versions) noexcept;
  // Every path was read: timeouts, due ACKs, PINGs, repeats. Reorder
  // timeouts are judged at drainedNs (every path was read after it).
  void onTimers(std::uint64_t nowNs, std::uint64_t drainedNs) noexcept;
  std::uint64_t nextTimerNs() const noexcept;
  std::uint32_t receiveRoom() const noexcept;
  // Client: the first HELLO on every path.
  void start(std::uint64_t nowNs) noexcept;

  // ---- Connection ----
  std::size_t reserve(std::span<SendSlot> out, std::uint32_t payloadBytes) noexcept override;
  Result<std::size_t> commit(std::span<const SendSlot> slots) noexcept override;
  Result<bool> send(std::span<const std::uint8_t> payload) noexcept override;
  Result<std::size_t> sendMany(std::span<const std::span<const std::uint8_t>> payloads) noexcept override;
  std::uint64_t nextSendTimeNs(std::uint32_t payloadBytes) const noexcept override;
  Result<void> flush() noexcept override;
  Result<void> finish() noexcept override;
  Result<std::size_t> poll(std::span<Delivered> out) noexcept override;
  void release(std::span<const Delivered> packets) noexcept override;
  Result<std::size_t> recv(std::span<std::uint8_t> buffer) noexcept override;
  void abort(std::uint16_t errorCode, const std::string& reason) noexcept override;
  bool established() const noexcept override { return established_; }
  bool done() const noexcept override {
    return phase_ == ConnectionPhase::kClosed || phase_ == ConnectionPhase::kFailed;
  }
  std::optional<Error> error() const override { return error_; }
  const PeerHello& peerHello() const noexcept override { return peerHello_; }
  std::optional<PeerReport> peerReport() const override { return peerReport_; }
  std::uint32_t maxPayload() const noexcept override { return maxPayload_; }
  std::size_t pathCount() const noexcept override { return paths_.size(); }
  ConnectionState state() const noexcept override;
  ConnectionStats stats() const override;

 private:
  struct PathControl {
    PathControl(bool isBackup, const path::PathStateOptions& options, const path::EstimatorOptions& estimates)
        : estimator(estimates), machine(isBackup, options), backup(isBackup) {}
    std::uint64_t nextPacketNumber = 0;
    std::uint64_t controlSent = 0;
    std::uint64_t controlBytesSent = 0;
    std::uint64_t ackFramesSent = 0;  // ACK frames about this path
    // Path control: what we sent and the peer's answers, estimates, pacing, state.
    SentPacketLog sent;
    path::PathEstimator estimator;
    std::unique_ptr<path::RateController> rate;
    path::PathStateMachine machine;
    bool backup = false;               // configured by this side or the peer
    bool usable = false;               // may carry data now (see refreshUsable)
    std::uint64_t lastArrivalNs = 0;   // any packet from the peer on this link
    std::uint64_t lastAnsweredNs = 0;  // the last ACK of new packets or PONG of this path
    std::uint64_t answeredSentNs = 0;  // when the newest packet answered on this path was sent
    std::uint64_t lastDeliverySampleNs = 0;
    AckTracker acks;  // the peer's packets on this path
    // From the peer's ACKs of this path.
    std::uint64_t acksReceived = 0;
    std::uint64_t largestAcked = 0;
    std::uint64_t peerBytesReceived = 0;
    // PING / PONG.
    std::uint32_t nextPingId = 1;
    std::uint64_t lastPingNs = 0;
    // The path's own round trip, from PING/PONG (ACKs may come back on
    // another path, so their samples mix two paths).
    bool pingRttValid = false;
    std::uint64_t pingRttNs = 0;
    std::uint64_t pingRttMinNs = 0;
    bool pongDue = false;
    wire::PongFrame pong;
    std::uint64_t pingArrivalNs = 0;
    wire::PathStatus peerStatus = wire::PathStatus::kActive;
    std::uint32_t peerStatusSeq = 0;
  };

  // SendHooks (data packets).
  std::uint64_t takePacketNumber(std::size_t path) noexcept override {
    return paths_[path].nextPacketNumber++;
  }
  std::size_t writePiggyback(std::size_t path, std::span<std::uint8_t> room,
                             std::uint64_t nowNs) noexcept override;
  void onDataSent(std::size_t path, std::uint64_t packetNumber, std::uint32_t wireBytes, std::uint64_t nowNs,
                  std::uint64_t tag) noexcept override;
  sched::PathView pathView(std::size_t path, std::uint64_t nowNs) const noexcept override;
  std::uint32_t seal(std::size_t path, std::uint64_t packetNumber, std::span<std::uint8_t> frame,
                     std::uint32_t length, std::uint64_t nowNs) noexcept override;

  // Keyed: opens the packet in place; false (released, counted) when it does not open.
  bool unprotect(std::uint16_t link, const RxPacket& packet, const wire::PacketHeader& header,
                 std::size_t& framesLength, std::uint64_t nowNs) noexcept;
  // Everything after opening: frames at body.
  void process(std::uint16_t link, const RxPacket& packet, const wire::PacketHeader& header,
               std::span<const std::uint8_t> body, std::uint64_t nowNs, std::uint64_t pushNs) noexcept;

  // Path control.
  void onAckFrame(const wire::AckFrame& ack, std::uint64_t nowNs, std::uint64_t receivedNs) noexcept;
  void onLoss(std::size_t path, const LossCount& lost, std::uint64_t nowNs) noexcept;
  void recordState(std::size_t path, PathState previous, std::uint64_t nowNs) noexcept;
  // Which paths carry data: active ones; backups when no active one is alive
  // (or the actives cannot carry the asked rate); suspect ones when nothing else is left.
  void refreshUsable() noexcept;
  // When a waiting path's silence passes its suspect threshold.
  std::uint64_t overdueNs(const PathControl& p) const noexcept;
  // Records an answer on path; excuses the others' silence after a stall of the peer.
  void noteAnswered(std::size_t path, std::uint64_t nowNs) noexcept;
  // The path's timeouts are not applied now (see stateHeld in the .cpp).
  bool stateHeld(std::size_t path, bool anyAlive) const noexcept;
  void setBackup(std::size_t path) noexcept;
  std::uint64_t lossDelayNs(const PathControl& p) const noexcept;
  std::uint64_t ptoNs(const PathControl& p) const noexcept;
  // The PTO that judges a waiting path's silence (see the .cpp).
  std::uint64_t suspectPtoNs(const PathControl& p) const noexcept;
  std::uint64_t ackDelayFor(std::uint64_t nowNs) const noexcept;
  // The fastest path the peer's packets still arrive on.
  std::size_t ackCarrier(std::uint64_t nowNs) const noexcept;
  // A path much slower than the carrier also sends its ACKs there.
  bool copyAckToCarrier(std::size_t path, std::size_t carrier) const noexcept;
  void sendAcks(std::uint64_t nowNs) noexcept;

  bool ackDue(const PathControl& path, std::uint64_t nowNs, bool riding) const noexcept;
  // Records an ack-eliciting or not packet we sent on path in its log and state machine.
  void noteSent(std::size_t path, std::uint64_t packetNumber, std::uint32_t wireBytes, bool ackEliciting,
                std::uint64_t nowNs, std::uint64_t tag = 0) noexcept;
  // Reliable, receiving: MAX_SEQ to the peer when the window moved (or again
  // every kMaxSeqRepeatNs, in case one was lost while the peer waits).
  void sendMaxSeq(std::uint64_t nowNs) noexcept;
  // Reliable, sending: a PING on a path with data in flight and no answer
  // for a PTO, so a lost tail is found (RFC 9002's probe timeout).
  bool tailProbeDue(const PathControl& p, std::uint64_t nowNs) const noexcept;
  // One control packet on path with the given frames; false when the link had no buffer.
  bool sendControl(std::size_t path, std::span<const wire::Frame> frames, std::uint64_t nowNs) noexcept;
  void sendOnAllPaths(std::span<const wire::Frame> frames, std::uint64_t nowNs) noexcept;
  void sendHello(std::size_t path, std::uint64_t nowNs) noexcept;
  void sendClose(std::uint64_t nowNs) noexcept;
  // Our CLOSE may go now: nothing left in the send queues, or waited long enough.
  bool closeMayGo(std::uint64_t nowNs) const noexcept;
  void sendReport(std::size_t path, std::uint64_t nowNs) noexcept;
  wire::ReportFrame makeReport() const;
  static std::uint64_t receivedAtNs(const RxPacket& packet, std::uint64_t nowNs) noexcept;
  // receivedNs: when the packet reached the host (receivedAtNs), for PING answers.
  void handleFrame(std::uint16_t link, const wire::Frame& frame, const wire::PacketHeader& header,
                   std::uint64_t nowNs, std::uint64_t receivedNs) noexcept;
  void onHello(std::uint16_t link, const wire::HelloFrame& hello, std::uint64_t nowNs) noexcept;
  void onClose(std::uint16_t link, const wire::CloseFrame& close, std::uint64_t nowNs) noexcept;
  void fail(Error error, std::uint16_t closeCode, const std::string& reason, std::uint64_t nowNs) noexcept;
  void updateDone(std::uint64_t nowNs) noexcept;

  ConnectionConfig config_;
  PathSet& links_;
  Clock& clock_;
  ConnectionParams params_;
  bool sends_ = false;
  bool receives_ = false;
  std::uint32_t maxPayload_ = 0;
  std::unique_ptr<SendStream> send_;
  std::unique_ptr<ReceiveStream> receive_;
  path::PathStateOptions stateOptions_;
  std::vector<PathControl> paths_;
  std::vector<bool> helloSeen_;  // the peer's HELLO arrived on this path
  std::vector<PathEvent> events_;
  std::uint64_t eventsDropped_ = 0;

  ConnectionPhase phase_ = ConnectionPhase::kHandshake;
  bool established_ = false;
  std::optional<Error> error_;
  PeerHello peerHello_;
  std::optional<PeerReport> peerReport_;
  std::uint64_t malformed_ = 0;
  // Keyed (issue 11).
  std::unique_ptr<crypto::PacketProtection> protection_;
  bool peerProven_ = false;
  bool awaitingAccept_ = false;
  std::uint64_t unauthenticated_ = 0;  // packets without protection, dropped
  // The random of the handshake packet being processed (its HELLO sets the session keys).
  std::optional<crypto::Random> packetRandom_;
  std::string unauthenticatedClose_;  // keyed client: an unauthenticated CLOSE's reason, as a hint
  std::uint64_t implausible_ = 0;     // packet numbers far beyond their path's

  std::uint64_t startNs_ = 0;
  std::uint64_t lastHelloNs_ = 0;
  std::uint64_t lastPeerPacketNs_ = 0;
  std::uint64_t firstDataNs_ = 0;
  std::uint64_t lastDataNs_ = 0;
  // Our stream's end: CLOSE sent closeRounds_ times, the last at lastCloseNs_.
  bool finishing_ = false;
  std::uint64_t finishNs_ = 0;
  std::uint64_t lastCloseNs_ = 0;
  std::uint32_t closeRounds_ = 0;
  bool reportWaitExpired_ = false;
  bool reportSent_ = false;
  // Reliable, receiving: the MAX_SEQ last sent and when.
  std::uint64_t advertisedMaxSeq_ = 0;
  std::uint64_t lastMaxSeqNs_ = 0;
};

}  // namespace mpxdp::conn
