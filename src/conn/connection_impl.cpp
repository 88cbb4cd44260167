#include "connection_impl.h"

#include <algorithm>
#include <array>
#include <bit>
#include <string>
#include <variant>

namespace mpxdp::conn {
namespace {

std::string seconds(std::uint64_t ns) {
  return std::to_string(ns / 1'000'000'000ULL) + "." + std::to_string(ns / 100'000'000ULL % 10) + " s";
}

bool sendsData(ConnectionRole role, DataDirection direction) {
  const auto bits = static_cast<std::uint8_t>(direction);
  return role == ConnectionRole::kClient ? (bits & wire::kModeClientSends) != 0
                                         : (bits & wire::kModeServerSends) != 0;
}

// Suspect paths that went quiet this long before the latest one are left
// out when only suspect paths are left to send on.
constexpr std::uint64_t kSuspectSpreadNs = 20'000'000;

// Cross-path loss detection (suspectPtoNs): a path's answer may trail
// another's by this much (or half its RTT) plus an ACK delay without a loss.
// The test bed's delay lines, behind at full load, delay one path's packets by
// tens of ms now and then: 2 ms or a quarter of the RTT made more suspect flips
// there (failover-rtt10: a median of 33 state changes per run against 19).
constexpr std::uint64_t kCrossPathReorderNs = 10'000'000;

// Reliable: MAX_SEQ again this often even when the window did not move (one
// may have been lost while the peer waits for it).
constexpr std::uint64_t kMaxSeqRepeatNs = 20'000'000;

// The receiver ends the stream once a CLOSE came on every path, so our CLOSE
// waits for the send queues to empty (data on a path then comes before it);
// at most this long, when a queue cannot drain (no usable path).
constexpr std::uint64_t kCloseQueueWaitNs = 1'000'000'000;

// How far a packet number may run ahead of the highest seen on its path.
constexpr std::uint64_t kMaxPacketNumberJump = std::uint64_t{1} << 24;

// now - since, 0 when since is later (times read in another order).
std::uint64_t elapsed(std::uint64_t nowNs, std::uint64_t sinceNs) {
  return nowNs > sinceNs ? nowNs - sinceNs : 0;
}

std::string peerName(ConnectionRole role) {
  return role == ConnectionRole::kClient ? "the server" : "the client";
}
std::string ownName(ConnectionRole role) {
  return role == ConnectionRole::kClient ? "the client" : "the server";
}

}  // namespace

Result<std::unique_ptr<ConnectionImpl>> ConnectionImpl::create(const ConnectionConfig& requested,
                                                               PathSet& paths, Clock& clock,
                                                               const ConnectionParams& params) {
  // The client decides reliable mode (its HELLO says so).
  ConnectionConfig config = requested;
  config.reliable = params.reliable;
  if (config.reliable) {
    const std::uint32_t window = config.reliableWindowPackets;
    if (window < 64 || window > 65536 || (window & (window - 1)) != 0) {
      return Error(EINVAL, "reliable window must be a power of two in [64, 65536] packets, got " +
                               std::to_string(window));
    }
    if (config.reorder.kind != ReorderKind::kWindow) {
      return Error(EINVAL, "reliable mode needs the window reorderer");
    }
  }
  auto connection = std::make_unique<ConnectionImpl>(config, paths, clock, params);
  if (params.key) {
    crypto::ProtectionOptions protection;
    protection.cipher = static_cast<crypto::Cipher>(params.cipher);
    if (params.rotateAfterPackets != 0) protection.rotateAfterPackets = params.rotateAfterPackets;
    if (params.rotateAfterNs != 0) protection.rotateAfterNs = params.rotateAfterNs;
    protection.minPhaseNs = params.minKeyPhaseNs;
    const crypto::Side side =
        params.role == ConnectionRole::kClient ? crypto::Side::kClient : crypto::Side::kServer;
    auto protector = crypto::PacketProtection::create(*params.key, side, params.connId, paths.size(),
                                                      params.ownRandom, protection);
    if (!protector) return protector.error().wrap("packet protection");
    connection->protection_ = std::move(*protector);
    // A server knows both randoms from the client's HELLO: its keys are ready.
    if (params.role == ConnectionRole::kServer &&
        !connection->protection_->setPeerRandom(params.peerRandom, protection.cipher)) {
      return Error(EPROTO, "packet protection: session keys");
    }
  }
  for (std::size_t l = 0; l < paths.size(); ++l) {
    path::RateControlOptions rate;
    rate.kind =
        config.pacing == PacingMode::kFixed ? path::RateControlKind::kFixed : path::RateControlKind::kAuto;
    rate.capBps = paths.rateBps(l);
    if (rate.kind == path::RateControlKind::kFixed && rate.capBps == 0) {
      return Error(EINVAL, "fixed pacing needs a rate on every link, and path " + std::to_string(l) + " (" +
                               paths.name(l) + ") has none");
    }
    auto controller = path::makeRateController(rate);
    if (!controller) return controller.error().wrap("path " + std::to_string(l) + " (" + paths.name(l) + ")");
    connection->paths_[l].rate = std::move(*controller);
  }
  connection->refreshUsable();
  if (connection->sends_) {
    const auto tailroom = static_cast<std::uint32_t>(params.key ? crypto::kSessionOverhead : 0);
    auto send = SendStream::create(config, paths, clock, *connection, params.connId, connection->maxPayload_,
                                   tailroom);
    if (!send) return send.error();
    connection->send_ = std::move(*send);
    if (config.reliable) {
      for (PathControl& p : connection->paths_) p.sent.setFate(connection->send_.get());
    }
  }
  if (connection->receives_) {
    // Reliable: the window within half of the smallest receive queue's
    // buffers, wherever the held packets arrived.
    ConnectionConfig receiving = config;
    if (config.reliable) {
      std::uint32_t buffers = UINT32_MAX;
      for (std::size_t l = 0; l < paths.size(); ++l)
        buffers = std::min(buffers, paths.io(l).receiveBuffersPerQueue());
      if (buffers != UINT32_MAX) {
        receiving.reliableWindowPackets =
            std::max<std::uint32_t>(64, std::min(config.reliableWindowPackets, std::bit_floor(buffers / 2)));
      }
    }
    auto receive = ReceiveStream::create(receiving, paths);
    if (!receive) return receive.error();
    connection->receive_ = std::move(*receive);
  }
  return connection;
}

ConnectionImpl::ConnectionImpl(const ConnectionConfig& config, PathSet& paths, Clock& clock,
                               const ConnectionParams& params)
    : config_(config),
      links_(paths),
      clock_(clock),
      params_(params),
      sends_(sendsData(params.role, params.direction)),
      receives_(sendsData(
          params.role == ConnectionRole::kClient ? ConnectionRole::kServer : ConnectionRole::kClient,
          params.direction)),
      maxPayload_(params.maxPayload),
      helloSeen_(paths.size(), false) {
  stateOptions_.minSuspectNs = config.suspectAfterNs;
  stateOptions_.deadAfterNs = config.deadAfterNs;
  stateOptions_.idleProbeIntervalNs = config.pingIntervalNs == 0 ? UINT64_MAX / 4 : config.pingIntervalNs;
  stateOptions_.probesToReadmit = std::max<std::uint32_t>(config.readmitProbes, 1);
  paths_.reserve(paths.size());
  const path::EstimatorOptions estimates;
  for (std::size_t l = 0; l < paths.size(); ++l)
    paths_.emplace_back(paths.backup(l), stateOptions_, estimates);
  events_.reserve(64);
  peerHello_.pathNames.resize(paths.size());
  startNs_ = clock.nowNs();
  lastPeerPacketNs_ = startNs_;
  if (params.role == ConnectionRole::kServer) {
    phase_ = ConnectionPhase::kOpen;
    established_ = true;
  }
}

void ConnectionImpl::start(std::uint64_t nowNs) noexcept {
  for (std::size_t l = 0; l < paths_.size(); ++l) sendHello(l, nowNs);
  lastHelloNs_ = nowNs;
}

// ---- arriving packets ----

void ConnectionImpl::onPacket(std::uint16_t link, const RxPacket& packet, const wire::PacketHeader& header,
                              std::uint64_t nowNs, std::uint64_t pushNs) noexcept {
  std::size_t framesLength = packet.length - wire::kPacketHeaderLen;
  packetRandom_.reset();
  if (protection_ && !unprotect(link, packet, header, framesLength, nowNs)) return;
  // A server answers whoever its packets come from (keyed: only a packet that opened gets here).
  links_.learnPeer(link, packet);
  process(link, packet, header,
          std::span<const std::uint8_t>(packet.data + wire::kPacketHeaderLen, framesLength), nowNs, pushNs);
  packetRandom_.reset();
}

void ConnectionImpl::onOpenedFirstPacket(std::uint16_t link, const RxPacket& packet,
                                         const wire::PacketHeader& header, std::size_t framesLength,
                                         std::uint64_t nowNs, std::uint64_t pushNs) noexcept {
  if (protection_) protection_->acceptOpened(header.pathId, header.packetNumber);
  packetRandom_ = params_.peerRandom;
  process(link, packet, header,
          std::span<const std::uint8_t>(packet.data + wire::kPacketHeaderLen, framesLength), nowNs, pushNs);
  packetRandom_.reset();
}

bool ConnectionImpl::unprotect(std::uint16_t link, const RxPacket& packet, const wire::PacketHeader& header,
                               std::size_t& framesLength, std::uint64_t nowNs) noexcept {
  // The buffer is this connection's until released (UMEM or the UDP backend's
  // own memory): it is opened in place.
  const std::span<std::uint8_t> bytes(const_cast<std::uint8_t*>(packet.data), packet.length);
  crypto::OpenResult result = crypto::OpenResult::kAuthFailed;
  if ((header.flags & MPXDP_HDR_FLAG_HANDSHAKE) != 0) {
    crypto::OpenedHandshake opened;
    result = protection_->openHandshakePacket(header.pathId, header.packetNumber, bytes, opened);
    if (result == crypto::OpenResult::kOk) {
      framesLength = opened.framesLength;
      packetRandom_ = opened.random;
    }
  } else if ((header.flags & MPXDP_HDR_FLAG_PROTECTED) != 0) {
    result = protection_->open(header.pathId, header.packetNumber, bytes, framesLength, nowNs);
    if (result == crypto::OpenResult::kOk) peerProven_ = true;
  } else {
    ++unauthenticated_;
    // A keyed client hears why an unkeyed server refuses it, as a hint in its error only.
    if (params_.role == ConnectionRole::kClient && !established_) {
      const auto first = wire::parseFrame(std::span<const std::uint8_t>(
          packet.data + wire::kPacketHeaderLen, packet.length - wire::kPacketHeaderLen));
      const auto* close = first.ok() ? std::get_if<wire::CloseFrame>(&first.value.frame) : nullptr;
      if (close != nullptr && close->errorCode != 0) unauthenticatedClose_ = std::string(close->reason);
    }
  }
  if (result != crypto::OpenResult::kOk) {
    links_.queueRelease(link, packet);
    return false;
  }
  return true;
}

void ConnectionImpl::process(std::uint16_t link, const RxPacket& packet, const wire::PacketHeader& header,
                             std::span<const std::uint8_t> body, std::uint64_t nowNs,
                             std::uint64_t pushNs) noexcept {
  if (header.pathId != link) {
    // A packet numbered for another path: the two ends list their links in
    // another order. A HELLO (each path's first packet) makes that fatal; a
    // CLOSE with an error (say, the peer found it first) still counts;
    // anything else is counted and dropped.
    ++malformed_;
    links_.queueRelease(link, packet);
    const auto first = wire::parseFrame(body);
    if (!first.ok()) return;
    if (const auto* close = std::get_if<wire::CloseFrame>(&first.value.frame);
        close && close->errorCode != 0) {
      onClose(link, *close, nowNs);
    } else if (std::holds_alternative<wire::HelloFrame>(first.value.frame)) {
      const std::string reason = "links are listed in another order: " + peerName(params_.role) + "'s path " +
                                 std::to_string(header.pathId) + " arrived on " + ownName(params_.role) +
                                 "'s path " + std::to_string(link) + " (" + links_.name(link) + ")";
      fail(Error(EPROTO, reason), static_cast<std::uint16_t>(wire::CloseError::kPathMismatch), reason, nowNs);
    }
    return;
  }
  // First pass: validate every frame, find the DATA frame.
  std::optional<wire::DataFrame> data;
  std::optional<wire::CloseFrame> errorClose;
  bool ackEliciting = false;
  std::size_t offset = 0;
  while (offset < body.size()) {
    const auto parsed = wire::parseFrame(body.subspan(offset));
    if (!parsed.ok() || (data && std::holds_alternative<wire::DataFrame>(parsed.value.frame))) {
      ++malformed_;  // one DATA frame per packet at most
      links_.queueRelease(link, packet);
      return;
    }
    const wire::Frame& frame = parsed.value.frame;
    if (const auto* d = std::get_if<wire::DataFrame>(&frame)) data = *d;
    if (const auto* c = std::get_if<wire::CloseFrame>(&frame); c && c->errorCode != 0) errorClose = *c;
    if (!std::holds_alternative<wire::AckFrame>(frame) && !std::holds_alternative<wire::PaddingFrame>(frame))
      ackEliciting = true;
    offset += parsed.value.length;
  }
  if (data && !receive_) {
    ++malformed_;  // the peer sends data in a direction it did not ask for
    links_.queueRelease(link, packet);
    return;
  }
  // Numbers far beyond the path's highest are forged or corrupt (a path that
  // was down for seconds at line rate moves a few million): dropped, counted,
  // and kept out of the path's numbering, ACKs and liveness.
  const std::uint64_t highest = paths_[link].acks.empty() ? 0 : paths_[link].acks.largest();
  if (header.packetNumber > highest + kMaxPacketNumberJump) {
    ++implausible_;
    links_.queueRelease(link, packet);
    return;
  }
  // Reliable: beyond the window we advertised (or the table is full): not
  // taken and not acknowledged, so the sender sends it again later.
  if (data && config_.reliable && receive_ && data->globalSeq >= receive_->limit()) {
    links_.queueRelease(link, packet);
    return;
  }
  const std::uint64_t receivedNs = receivedAtNs(packet, nowNs);
  if (!paths_[link].acks.onPacket(header.packetNumber, receivedNs, packet.length, ackEliciting)) {
    // A packet number seen before: a duplicate or a replay, never processed
    // twice, and no sign of life (a restarted peer's stateless CLOSEs, numbered
    // from 0, would otherwise keep a dead connection alive). A CLOSE with an
    // error is still heard: that restarted peer numbers its answers anew.
    links_.queueRelease(link, packet);
    if (errorClose) onClose(link, *errorClose, nowNs);
    return;
  }
  lastPeerPacketNs_ = nowNs;
  paths_[link].lastArrivalNs = nowNs;
  if (receive_) receive_->onPacketNumber(link, header.packetNumber, header.sendTsNs, nowNs, data.has_value());
  offset = 0;
  while (offset < body.size()) {
    const auto parsed = wire::parseFrame(body.subspan(offset));
    handleFrame(link, parsed.value.frame, header, nowNs, receivedNs);
    offset += parsed.value.length;
  }
  if (data && !done()) {
    if (!established_) {
      // The server's HELLO was lost but its data proves it accepted.
      established_ = true;
      phase_ = ConnectionPhase::kOpen;
    }
    if (firstDataNs_ == 0) firstDataNs_ = nowNs;
    lastDataNs_ = nowNs;
    ArrivingData arriving;
    arriving.link = link;
    arriving.packet = packet;
    arriving.offset = static_cast<std::uint32_t>(data->data.data() - packet.data);
    arriving.length = static_cast<std::uint32_t>(data->data.size());
    arriving.packetNumber = header.packetNumber;
    arriving.globalSeq = data->globalSeq;
    arriving.sendTsNs = header.sendTsNs;
    receive_->onData(arriving, nowNs, pushNs);
  } else {
    links_.queueRelease(link, packet);
  }
}

// When the packet reached the host, for the peer's delivery-rate and delay
// samples: the transport's stamp when it has a plausible one (not after the
// batch was read, not more than a second before), else the time of the read.
std::uint64_t ConnectionImpl::receivedAtNs(const RxPacket& packet, std::uint64_t nowNs) noexcept {
  constexpr std::uint64_t kMaxStampAgeNs = 1'000'000'000;
  const std::uint64_t at = packet.arrivalNs;
  return at != 0 && at <= nowNs && nowNs - at <= kMaxStampAgeNs ? at : nowNs;
}

// When an answer to a packet sent at sentNs arrived, for RTT samples: its
// arrival stamp, or the read (nowNs) when the stamp is older than the question.
static std::uint64_t answeredAtNs(std::uint64_t receivedNs, std::uint64_t nowNs,
                                  std::uint64_t sentNs) noexcept {
  return receivedNs >= sentNs ? receivedNs : nowNs;
}

void ConnectionImpl::handleFrame(std::uint16_t link, const wire::Frame& frame,
                                 const wire::PacketHeader& header, std::uint64_t nowNs,
                                 std::uint64_t receivedNs) noexcept {
  if (const auto* ack = std::get_if<wire::AckFrame>(&frame)) {
    if (ack->pathId >= paths_.size()) {
      ++malformed_;
      return;
    }
    PathControl& p = paths_[ack->pathId];
    if (ack->largestAcked() >= p.nextPacketNumber) {
      ++malformed_;  // acknowledges a packet never sent
      return;
    }
    onAckFrame(*ack, nowNs, receivedNs);
  } else if (const auto* ping = std::get_if<wire::PingFrame>(&frame)) {
    PathControl& p = paths_[link];
    p.pongDue = true;
    p.pong.pathId = link;
    p.pong.pingId = ping->pingId;
    p.pong.pingSendTsNs = header.sendTsNs;
    p.pingArrivalNs = receivedNs;  // the PONG's hold covers our read lag too
  } else if (const auto* pong = std::get_if<wire::PongFrame>(&frame)) {
    if (pong->pathId >= paths_.size() || pong->pingSendTsNs > nowNs) {
      ++malformed_;
      return;
    }
    PathControl& p = paths_[pong->pathId];
    const std::uint64_t sincePing = answeredAtNs(receivedNs, nowNs, pong->pingSendTsNs) - pong->pingSendTsNs;
    const std::uint64_t rtt = sincePing > pong->holdNs ? sincePing - pong->holdNs : sincePing;
    p.estimator.onRttSample(nowNs, rtt, 0);
    p.pingRttNs = p.pingRttValid ? (7 * p.pingRttNs + rtt) / 8 : rtt;
    p.pingRttMinNs = p.pingRttValid ? std::min(p.pingRttMinNs, rtt) : rtt;
    p.pingRttValid = true;
    const PathState previous = p.machine.state();
    noteAnswered(pong->pathId, nowNs);
    p.answeredSentNs = std::max(p.answeredSentNs, pong->pingSendTsNs);
    if (p.machine.onAnswered(nowNs, pong->pingSendTsNs, true)) recordState(pong->pathId, previous, nowNs);
  } else if (const auto* status = std::get_if<wire::PathStatusFrame>(&frame)) {
    if (status->pathId >= paths_.size()) {
      ++malformed_;
      return;
    }
    PathControl& p = paths_[status->pathId];
    if (status->statusSeq >= p.peerStatusSeq) {
      p.peerStatus = status->status;
      p.peerStatusSeq = status->statusSeq;
      if (status->status == wire::PathStatus::kStandby) setBackup(status->pathId);
    }
  } else if (const auto* maxSeq = std::get_if<wire::MaxSeqFrame>(&frame)) {
    if (!send_ || !send_->reliable()) {
      ++malformed_;
      return;
    }
    send_->onMaxSeq(maxSeq->maxSeq);
  } else if (const auto* close = std::get_if<wire::CloseFrame>(&frame)) {
    onClose(link, *close, nowNs);
  } else if (const auto* hello = std::get_if<wire::HelloFrame>(&frame)) {
    onHello(link, *hello, nowNs);
  } else if (const auto* report = std::get_if<wire::ReportFrame>(&frame)) {
    if (!sends_) {
      ++malformed_;
      return;
    }
    PeerReport r;
    r.durationNs = report->durationNs;
    r.packets = report->packets;
    r.bytes = report->bytes;
    r.lost = report->lost;
    r.late = report->late;
    r.outOfOrder = report->outOfOrder;
    r.duplicates = report->duplicates;
    r.malformed = report->malformed;
    for (std::size_t i = 0; i < report->pathCount; ++i) {
      r.paths.push_back({report->paths[i].packets, report->paths[i].bytes, report->paths[i].lost});
    }
    peerReport_ = std::move(r);
    updateDone(nowNs);
  }
}

void ConnectionImpl::onHello(std::uint16_t link, const wire::HelloFrame& hello,
                             std::uint64_t nowNs) noexcept {
  const bool fromServer = hello.role == wire::HelloRole::kServer;
  if (fromServer != (params_.role == ConnectionRole::kClient)) {
    ++malformed_;
    return;
  }
  if (protection_) {
    // A keyed HELLO comes only in a handshake packet, with the sender's random;
    // the server's gives the client its session keys, in the cipher it chose.
    if (!packetRandom_ || hello.cipher != static_cast<std::uint8_t>(params_.cipher) ||
        !protection_->setPeerRandom(*packetRandom_, static_cast<crypto::Cipher>(params_.cipher))) {
      ++malformed_;
      return;
    }
  }
  peerHello_.pathNames[link] = std::string(hello.name);
  helloSeen_[link] = true;
  if (params_.role == ConnectionRole::kServer) {
    // The client repeats its HELLO until it hears ours: answer every one.
    sendHello(link, nowNs);
    return;
  }
  if (hello.pathCount != paths_.size()) {
    const std::string reason = "the server has " + std::to_string(hello.pathCount) + " paths, this client " +
                               std::to_string(paths_.size());
    fail(Error(EPROTO, reason), static_cast<std::uint16_t>(wire::CloseError::kPathMismatch), reason, nowNs);
    return;
  }
  peerHello_.pathCount = hello.pathCount;
  peerHello_.maxPayload = hello.maxPayload;
  if (!established_) {
    established_ = true;
    phase_ = ConnectionPhase::kOpen;
  }
}

void ConnectionImpl::setPeerHello(const wire::HelloFrame& hello) {
  peerHello_.pathCount = hello.pathCount;
  peerHello_.direction = static_cast<DataDirection>(hello.mode & wire::kModeDirectionMask);
  peerHello_.maxPayload = hello.maxPayload;
  peerHello_.rateBps = hello.rateBps;
  peerHello_.durationMs = hello.durationMs;
}

void ConnectionImpl::onClose(std::uint16_t link, const wire::CloseFrame& close,
                             std::uint64_t nowNs) noexcept {
  if (close.errorCode != 0) {
    if (done()) return;
    std::string what = peerName(params_.role) + " closed the connection: " +
                       wire::toString(static_cast<wire::CloseError>(close.errorCode));
    if (!close.reason.empty()) what += ": " + std::string(close.reason);
    error_ =
        Error(close.errorCode == static_cast<std::uint16_t>(wire::CloseError::kStopped) ? ECONNRESET : EPROTO,
              what);
    phase_ = ConnectionPhase::kFailed;
    if (receive_) receive_->abandon();
    if (send_) send_->stop();
    return;
  }
  if (!close.streamComplete) return;
  if (!receive_) {
    ++malformed_;
    return;
  }
  receive_->onClose(link, close.finalSeq, nowNs);
  // Our REPORT was lost if the peer still repeats its CLOSE: send it again.
  if (reportSent_) sendReport(link, nowNs);
}

void ConnectionImpl::onVersionNegotiation(const wire::VersionList& versions) noexcept {
  if (established_ || done()) return;  // only a connection still shaking hands can be refused this way
  std::string list;
  for (std::size_t i = 0; i < versions.count; ++i)
    list += (i ? ", " : "") + std::to_string(versions.versions[i]);
  error_ = Error(EPROTONOSUPPORT, peerName(params_.role) + " speaks wire version " + list +
                                      ", this side speaks " + std::to_string(wire::kWireVersion));
  phase_ = ConnectionPhase::kFailed;
}

// ---- timers ----

// A standalone ACK goes out after ackEveryPackets or ackDelayNs; one that can
// ride on a data packet goes at half of either, so that with data flowing back
// ACKs almost never need a packet of their own.
bool ConnectionImpl::ackDue(const PathControl& path, std::uint64_t nowNs, bool riding) const noexcept {
  const std::uint32_t unacked = path.acks.unacked();
  if (unacked == 0) return false;
  const std::uint32_t packets =
      riding ? std::max<std::uint32_t>(config_.ackEveryPackets / 2, 1) : config_.ackEveryPackets;
  const std::uint64_t delay = riding ? ackDelayFor(nowNs) / 2 : ackDelayFor(nowNs);
  return unacked >= packets || elapsed(nowNs, path.acks.firstUnackedNs()) >= delay;
}

// A quarter of the fastest path's RTT, within [ackMinDelayNs, ackDelayNs]:
// often enough for the peer's estimators, rare enough to cost under 1 %.
std::uint64_t ConnectionImpl::ackDelayFor(std::uint64_t /*nowNs*/) const noexcept {
  std::uint64_t rtt = UINT64_MAX;
  for (const PathControl& p : paths_) {
    if (p.estimator.rttValid()) rtt = std::min(rtt, p.estimator.srttNs());
  }
  if (rtt == UINT64_MAX) return config_.ackDelayNs;
  return std::clamp(rtt / 4, std::min(config_.ackMinDelayNs, config_.ackDelayNs), config_.ackDelayNs);
}

// How long a path may stay silent and still carry our ACKs: its packets
// arrive every few microseconds when it carries data.
constexpr std::uint64_t kCarrierSilenceNs = 10'000'000;

std::size_t ConnectionImpl::ackCarrier(std::uint64_t nowNs) const noexcept {
  std::size_t best = paths_.size();
  std::size_t latest = 0;
  auto better = [&](std::size_t a, std::size_t b) {
    const PathControl& x = paths_[a];
    const PathControl& y = paths_[b];
    if (x.backup != y.backup) return !x.backup;
    const std::uint64_t rx = x.estimator.rttValid() ? x.estimator.srttNs() : UINT64_MAX;
    const std::uint64_t ry = y.estimator.rttValid() ? y.estimator.srttNs() : UINT64_MAX;
    return rx < ry;
  };
  for (std::size_t l = 0; l < paths_.size(); ++l) {
    const PathControl& p = paths_[l];
    if (p.lastArrivalNs > paths_[latest].lastArrivalNs) latest = l;
    if (p.lastArrivalNs == 0 || elapsed(nowNs, p.lastArrivalNs) > kCarrierSilenceNs) continue;
    if (!p.machine.alive() && p.machine.state() != PathState::kSuspect) continue;
    if (best == paths_.size() || better(l, best)) best = l;
  }
  return best == paths_.size() ? latest : best;
}

// Worst-case size of one ACK frame (all ranges).
constexpr std::size_t kMaxAckFrameBytes =
    wire::kAckFrameBaseLen + (wire::kMaxAckRanges - 1) * wire::kAckRangeLen;

bool ConnectionImpl::copyAckToCarrier(std::size_t path, std::size_t carrier) const noexcept {
  if (path == carrier) return false;
  const PathControl& p = paths_[path];
  const PathControl& c = paths_[carrier];
  if (!p.pingRttValid || !c.pingRttValid) return false;
  return p.pingRttNs > 2 * c.pingRttNs + 1'000'000;
}

// Each path's ACK goes on the path itself: a path's feedback never waits on
// another path's fate (a cut carrier, or a slow one chosen while the fast one
// was quiet, would make every path look dead). A path much slower than the
// fastest live one also sends a copy of its ACK there, so its sender hears
// of it at the fast path's delay.
void ConnectionImpl::sendAcks(std::uint64_t nowNs) noexcept {
  const std::size_t carrier = ackCarrier(nowNs);
  std::array<wire::Frame, 4> copies;
  std::size_t n = 0;
  for (std::size_t l = 0; l < paths_.size(); ++l) {
    PathControl& p = paths_[l];
    if (!ackDue(p, nowNs, false)) continue;
    const wire::Frame ack = p.acks.makeAck(static_cast<std::uint16_t>(l), nowNs);
    (void)sendControl(l, std::span<const wire::Frame>(&ack, 1), nowNs);
    if (!copyAckToCarrier(l, carrier)) continue;
    copies[n++] = ack;
    if (n == copies.size()) {
      (void)sendControl(carrier, std::span<const wire::Frame>(copies.data(), n), nowNs);
      n = 0;
    }
  }
  if (n > 0) (void)sendControl(carrier, std::span<const wire::Frame>(copies.data(), n), nowNs);
}

// ---- path control ----

namespace {
// The RTT loss and silence are judged by: the larger of the smoothed and the
// latest (see ptoNs).
std::uint64_t judgingRttNs(const path::PathEstimator& estimator) noexcept {
  return std::max(estimator.srttNs(), estimator.latestRttNs());
}
}  // namespace

std::uint64_t ConnectionImpl::lossDelayNs(const PathControl& p) const noexcept {
  if (!p.estimator.rttValid()) return 50'000'000;
  const std::uint64_t rtt = judgingRttNs(p.estimator);
  return std::max<std::uint64_t>(rtt + rtt / 8, 1'000'000);
}

// As RFC 9002's PTO, but from the larger of the smoothed and the latest RTT:
// a queue filling at startup raises the RTT faster than srtt and rttvar
// follow, and a path must not turn suspect for its own queue.
std::uint64_t ConnectionImpl::ptoNs(const PathControl& p) const noexcept {
  if (!p.estimator.rttValid() || p.estimator.latestRttNs() == 0) return p.estimator.ptoNs(config_.ackDelayNs);
  const std::uint64_t rtt = judgingRttNs(p.estimator);
  return rtt + std::max<std::uint64_t>(4 * p.estimator.rttVarNs(), 1'000'000) + config_.ackDelayNs;
}

// RACK across paths. Once another path was answered for a packet it sent
// after this path's oldest unanswered one (shifted by the two paths' RTT
// difference, plus a reordering window), this path's silence is its own, and
// it is judged by its RTT plus that window, without the RTT variance: load on
// either host inflates the variance of every path alike (a cut path took more
// than 200 ms to turn suspect on a busy machine), and the other path's answer
// shows the load let packets through.
std::uint64_t ConnectionImpl::suspectPtoNs(const PathControl& p) const noexcept {
  const std::uint64_t pto = ptoNs(p);
  if (!p.machine.alive() || !p.machine.waiting() || !p.estimator.rttValid()) return pto;
  const auto rttOf = [](const PathControl& q) {
    return static_cast<std::int64_t>(judgingRttNs(q.estimator));
  };
  const std::int64_t rtt = rttOf(p);
  // The other path's ACK may have left up to an ACK delay before this one's would.
  const auto window =
      static_cast<std::int64_t>(std::max<std::uint64_t>(kCrossPathReorderNs, rtt / 2) + config_.ackDelayNs);
  const std::uint64_t judged = static_cast<std::uint64_t>(rtt + window) + config_.ackDelayNs;
  if (judged >= pto) return pto;
  const auto waiting = static_cast<std::int64_t>(p.machine.waitingSinceNs());
  for (const PathControl& q : paths_) {
    if (&q == &p || !q.machine.alive() || !q.estimator.rttValid() || q.answeredSentNs == 0) continue;
    if (static_cast<std::int64_t>(q.answeredSentNs) >= waiting + (rtt - rttOf(q)) + window) return judged;
  }
  return pto;
}

void ConnectionImpl::noteSent(std::size_t path, std::uint64_t packetNumber, std::uint32_t wireBytes,
                              bool ackEliciting, std::uint64_t nowNs, std::uint64_t tag) noexcept {
  PathControl& p = paths_[path];
  onLoss(path, p.sent.onSent(packetNumber, nowNs, wireBytes, ackEliciting, tag), nowNs);
  if (ackEliciting) p.machine.onSent(nowNs);
}

void ConnectionImpl::onDataSent(std::size_t path, std::uint64_t packetNumber, std::uint32_t wireBytes,
                                std::uint64_t nowNs, std::uint64_t tag) noexcept {
  noteSent(path, packetNumber, wireBytes, true, nowNs, tag);
  paths_[path].rate->onSent(nowNs, wireBytes);
}

void ConnectionImpl::onLoss(std::size_t path, const LossCount& lost, std::uint64_t nowNs) noexcept {
  if (lost.packets == 0) return;
  PathControl& p = paths_[path];
  p.estimator.onLost(nowNs, lost.packets, lost.bytes);
  p.rate->onLoss(path::LossSample{nowNs, lost.packets, lost.bytes, lost.newestSendTsNs});
}

// RTT samples end when the ACK or PONG reached the host (receivedNs), so a
// loop that reads late (coalescing, a busy core) does not inflate them.
void ConnectionImpl::onAckFrame(const wire::AckFrame& ack, std::uint64_t nowNs,
                                std::uint64_t receivedNs) noexcept {
  const std::size_t path = ack.pathId;
  PathControl& p = paths_[path];
  ++p.acksReceived;
  p.largestAcked = std::max(p.largestAcked, ack.largestAcked());
  p.peerBytesReceived = std::max(p.peerBytesReceived, ack.bytesReceived);
  const AckOutcome outcome = p.sent.onAck(ack, nowNs, lossDelayNs(p));
  const std::uint64_t ackedNs = answeredAtNs(receivedNs, nowNs, outcome.largestSendTsNs);
  if (outcome.largestNewlyAcked && ackedNs >= outcome.largestSendTsNs)
    p.estimator.onRttSample(nowNs, ackedNs - outcome.largestSendTsNs, std::uint64_t{ack.ackDelayUs} * 1000);
  if (outcome.largestKnown) {
    p.estimator.onOwdSample(nowNs, static_cast<std::int64_t>(ack.largestRecvTsNs) -
                                       static_cast<std::int64_t>(outcome.largestSendTsNs));
  }
  // The peer counts UDP payload bytes; pacing counts frames as the link sees
  // them: scale by a full data packet's ratio.
  const std::uint64_t udp =
      std::uint64_t{maxPayload_} + SendStream::kDataOverhead + (protection_ ? crypto::kSessionOverhead : 0);
  const std::uint64_t wireBytes =
      ack.bytesReceived / udp * (udp + links_.io(path).frameOverheadBytes()) + ack.bytesReceived % udp;
  const bool appLimited = !send_ || send_->lastIdleNs(path) >= p.lastDeliverySampleNs;
  const std::uint64_t sample = p.estimator.onDelivered(nowNs, wireBytes, ack.largestRecvTsNs, appLimited);
  if (sample != 0) p.lastDeliverySampleNs = nowNs;
  if (outcome.newlyAckedPackets > 0)
    p.estimator.onAcked(nowNs, outcome.newlyAckedPackets, outcome.newlyAckedBytes);
  onLoss(path, outcome.lost, nowNs);
  path::AckSample rate;
  rate.nowNs = nowNs;
  rate.deliveryRateBps = sample;
  rate.appLimited = appLimited;
  rate.ackedBytes = outcome.newlyAckedBytes;
  rate.srttNs = p.estimator.srttNs();
  rate.minRttNs = p.estimator.minRttNs();
  rate.owdValid = p.estimator.owdValid();
  rate.queueDelayNs = p.estimator.queueDelayNs();
  rate.lossRate = p.estimator.lossRate();
  p.rate->onAck(rate);
  if (outcome.newlyAckedPackets > 0) {
    noteAnswered(path, nowNs);
    p.answeredSentNs = std::max(p.answeredSentNs, outcome.newestAckedSendTsNs);
    const PathState previous = p.machine.state();
    if (p.machine.onAnswered(nowNs, outcome.newestAckedSendTsNs, false,
                             p.sent.firstInFlightSentAfter(ack.largestAcked())))
      recordState(path, previous, nowNs);
  }
}

void ConnectionImpl::recordState(std::size_t path, PathState previous, std::uint64_t nowNs) noexcept {
  PathControl& p = paths_[path];
  const PathState now = p.machine.state();
  if (now == previous) return;
  if (events_.size() < kMaxPathEvents) {
    events_.push_back(PathEvent{nowNs, static_cast<std::uint16_t>(path), previous, now});
  } else {
    ++eventsDropped_;
  }
  if (previous == PathState::kDead && p.machine.alive()) p.rate->onRestart(nowNs);
  // Reliable: what the path had in flight when it stopped answering is sent
  // again on the others now, not after its loss timers (the count is no
  // evidence about the path's rate: it is not fed to the controller).
  if (send_ && send_->reliable() && !p.machine.alive()) (void)p.sent.declareAllLost();
  refreshUsable();
}

void ConnectionImpl::setBackup(std::size_t path) noexcept {
  PathControl& p = paths_[path];
  if (p.backup) return;
  const PathState previous = p.machine.state();
  p.backup = true;
  const std::uint64_t nowNs = clock_.nowNs();
  if (p.machine.setStandby(nowNs, true)) recordState(path, previous, nowNs);
  refreshUsable();
}

void ConnectionImpl::refreshUsable() noexcept {
  bool anyActive = false;
  std::uint64_t activeRate = 0;
  for (const PathControl& p : paths_) {
    if (p.machine.state() == PathState::kActive) {
      anyActive = true;
      if (p.rate) activeRate += p.rate->pacingRateBps();
    }
  }
  // The asked payload rate in wire bits, roughly (headers of full packets).
  const std::uint64_t asked = config_.totalRateBps + config_.totalRateBps / 16;
  const bool needBackups = !anyActive || (config_.totalRateBps > 0 && activeRate < asked);
  bool any = false;
  for (PathControl& p : paths_) {
    const PathState s = p.machine.state();
    p.usable = s == PathState::kActive || (s == PathState::kStandby && needBackups);
    any = any || p.usable;
  }
  if (any) return;
  // Nothing alive: keep sending on the suspect paths rather than not at all,
  // but not on those that went quiet well before the others (the others'
  // silence is more likely a stall of the peer than the paths).
  std::uint64_t newest = 0;
  for (const PathControl& p : paths_) {
    if (p.machine.state() == PathState::kSuspect) newest = std::max(newest, p.machine.stateSinceNs());
  }
  for (PathControl& p : paths_) {
    p.usable =
        p.machine.state() == PathState::kSuspect && p.machine.stateSinceNs() + kSuspectSpreadNs >= newest;
  }
}

sched::PathView ConnectionImpl::pathView(std::size_t path, std::uint64_t /*nowNs*/) const noexcept {
  const PathControl& p = paths_[path];
  sched::PathView view;
  view.usable = p.usable;
  // Never unpaced: a controller's rate is always above zero, and this keeps it so.
  view.rateBps = std::max<std::uint64_t>(p.rate->pacingRateBps(), 100'000);
  view.full = p.sent.bytesInFlight() >= p.rate->inflightCapBytes();
  // Extra one-way delay over the fastest usable path: the clock offset
  // between the hosts cancels out in the difference.
  if (p.estimator.owdValid()) {
    std::int64_t fastest = p.estimator.owdSmoothedNs();
    bool all = true;
    for (const PathControl& q : paths_) {
      if (!q.usable) continue;
      if (!q.estimator.owdValid()) {
        all = false;
        break;
      }
      fastest = std::min(fastest, q.estimator.owdSmoothedNs());
    }
    if (all) view.delayNs = static_cast<std::uint64_t>(p.estimator.owdSmoothedNs() - fastest);
  }
  return view;
}

void ConnectionImpl::onTimers(std::uint64_t nowNs, std::uint64_t drainedNs) noexcept {
  if (receive_) receive_->onDrained(drainedNs, nowNs);
  if (done()) return;
  if (!established_) {
    if (elapsed(nowNs, startNs_) >= config_.handshakeTimeoutNs) {
      std::string why = "no answer from the peer on any path within " + seconds(config_.handshakeTimeoutNs);
      if (!protection_) {
        why += " (is `mpxdp recv` running there, on the same port?)";
      } else if (!unauthenticatedClose_.empty()) {
        why += "; it answered without authentication: " + unauthenticatedClose_;
      } else {
        why += " (is it running there, on the same port, with the same key? a wrong key gets no answer)";
      }
      fail(Error(ETIMEDOUT, why), static_cast<std::uint16_t>(wire::CloseError::kPeerGone),
           "handshake timed out", nowNs);
      return;
    }
    if (elapsed(nowNs, lastHelloNs_) >= config_.helloIntervalNs) start(nowNs);
    return;
  }
  if (elapsed(nowNs, lastPeerPacketNs_) >= config_.peerTimeoutNs) {
    fail(Error(ETIMEDOUT, peerName(params_.role) + " went away: nothing heard from it for " +
                              seconds(elapsed(nowNs, lastPeerPacketNs_))),
         static_cast<std::uint16_t>(wire::CloseError::kPeerGone), "nothing heard", nowNs);
    return;
  }
  sendAcks(nowNs);
  if (receive_ && config_.reliable && !receive_->finished()) sendMaxSeq(nowNs);
  // Failover needs somewhere to go: a path's silence counts only once another
  // path was answered when this one was overdue (stateHeld). When every path is
  // silent, the peer or this host stalled (a descheduled process, seen for
  // tens of ms on a busy VM) or everything failed at once; either way moving
  // traffic helps nothing, and declaring paths dead would stop sending for
  // the re-admission probes. The peer timeout ends a connection whose peer
  // is really gone.
  const bool anyAlive =
      std::any_of(paths_.begin(), paths_.end(), [](const PathControl& p) { return p.machine.alive(); });
  for (std::size_t l = 0; l < paths_.size(); ++l) {
    PathControl& p = paths_[l];
    onLoss(l, p.sent.detectLost(nowNs, lossDelayNs(p)), nowNs);
    const PathState previous = p.machine.state();
    const bool hold = stateHeld(l, anyAlive);
    if (!hold && p.machine.onTimer(nowNs, suspectPtoNs(p))) recordState(l, previous, nowNs);
    std::array<wire::Frame, 2> frames;
    std::size_t n = 0;
    if (p.pongDue) {
      p.pong.holdNs =
          static_cast<std::uint32_t>(std::min<std::uint64_t>(elapsed(nowNs, p.pingArrivalNs), UINT32_MAX));
      frames[n++] = p.pong;
      p.pongDue = false;
    }
    // Probes when the state machine asks (idle, suspect, dead, backup
    // paths), and a PING every pingIntervalNs anyway for the path's own RTT.
    if ((config_.pingIntervalNs > 0 &&
         (p.machine.nextProbeNs(nowNs) <= nowNs || elapsed(nowNs, p.lastPingNs) >= config_.pingIntervalNs)) ||
        tailProbeDue(p, nowNs)) {
      frames[n++] = wire::PingFrame{p.nextPingId++};
      p.machine.onProbeSent(nowNs);
      p.lastPingNs = nowNs;
    }
    if (n > 0) (void)sendControl(l, std::span<const wire::Frame>(frames.data(), n), nowNs);
  }
  refreshUsable();
  if (send_) send_->drain(nowNs);
  if (finishing_) {
    const bool burst = closeRounds_ < std::max<std::uint32_t>(config_.closeRepeats, 1);
    const std::uint64_t interval = burst ? config_.closeRepeatIntervalNs : config_.helloIntervalNs;
    if (elapsed(nowNs, lastCloseNs_) >= interval && !peerReport_ && closeMayGo(nowNs)) sendClose(nowNs);
    if (!peerReport_ && elapsed(nowNs, finishNs_) >= config_.reportWaitNs) reportWaitExpired_ = true;
  }
  if (receive_ && receive_->finished() && !reportSent_) {
    for (std::size_t l = 0; l < paths_.size(); ++l) sendReport(l, nowNs);
    reportSent_ = true;
  }
  updateDone(nowNs);
}

// When a waiting path's silence passes its suspect threshold.
std::uint64_t ConnectionImpl::overdueNs(const PathControl& p) const noexcept {
  return p.machine.waitingSinceNs() + std::max(suspectPtoNs(p), config_.suspectAfterNs);
}

// After a silence on every path (each alive path that waits for an answer is
// past its suspect threshold, and none was answered since the first of them
// was), the first answer means the peer or this host stalled: a process
// descheduled for hundreds of ms, as real-time delay lines did to the test
// bed's receiver. Without this the answer released stateHeld for the other
// paths, which were then judged by the whole stall and went from active to
// dead at once, although their own answers were on the way.
void ConnectionImpl::noteAnswered(std::size_t path, std::uint64_t nowNs) noexcept {
  std::uint64_t newestAnswer = 0;
  std::uint64_t firstOverdue = UINT64_MAX;
  bool anyWaiting = false;
  bool allOverdue = true;
  for (const PathControl& q : paths_) {
    newestAnswer = std::max(newestAnswer, q.lastAnsweredNs);
    if (!q.machine.alive() || !q.machine.waiting()) continue;
    anyWaiting = true;
    const std::uint64_t overdue = overdueNs(q);
    firstOverdue = std::min(firstOverdue, overdue);
    if (overdue > nowNs) allOverdue = false;
  }
  if (anyWaiting && allOverdue && newestAnswer < firstOverdue) {
    // This path's too: its answer may cover only what arrived before the stall.
    for (PathControl& q : paths_) q.machine.excuseSilence(nowNs);
  }
  paths_[path].lastAnsweredNs = nowNs;
}

// A path's silence counts only when another path was answered at a time
// this one should have been answered too (its suspect threshold after it
// went quiet), or answered after it went quiet with nothing outstanding
// since; and nothing turns dead while nothing is alive.
bool ConnectionImpl::stateHeld(std::size_t path, bool anyAlive) const noexcept {
  const PathControl& p = paths_[path];
  if (!anyAlive && p.machine.state() == PathState::kSuspect) return true;
  if (!p.machine.alive() || !p.machine.waiting()) return false;
  const std::uint64_t overdue = overdueNs(p);
  for (std::size_t k = 0; k < paths_.size(); ++k) {
    if (k == path) continue;
    const PathControl& q = paths_[k];
    if (q.lastAnsweredNs > overdue) return false;
    // Another path answered after this one went quiet and has nothing
    // outstanding since (a sender blocked by the peer's window sends
    // nothing to be answered): the peer is there, this path is not.
    if (q.lastAnsweredNs > p.machine.waitingSinceNs() && q.machine.alive() && !q.machine.waiting())
      return false;
  }
  return true;
}

std::uint64_t ConnectionImpl::nextTimerNs() const noexcept {
  if (done()) return UINT64_MAX;
  std::uint64_t next = receive_ ? receive_->nextDeadlineNs() : UINT64_MAX;
  if (!established_)
    return std::min({next, lastHelloNs_ + config_.helloIntervalNs, startNs_ + config_.handshakeTimeoutNs});
  next = std::min(next, lastPeerPacketNs_ + config_.peerTimeoutNs);
  const std::uint64_t nowNs = clock_.nowNs();
  const std::uint64_t ackDelay = ackDelayFor(nowNs);
  const bool anyAlive =
      std::any_of(paths_.begin(), paths_.end(), [](const PathControl& p) { return p.machine.alive(); });
  for (const PathControl& p : paths_) {
    if (p.acks.unacked() > 0) next = std::min(next, p.acks.firstUnackedNs() + ackDelay);
    if (p.pongDue) return nowNs;
    if (config_.pingIntervalNs > 0)
      next = std::min({next, p.machine.nextProbeNs(nowNs), p.lastPingNs + config_.pingIntervalNs});
    // A path whose state is held (onTimers) waits for answers and probes only.
    if (!stateHeld(static_cast<std::size_t>(&p - paths_.data()), anyAlive))
      next = std::min(next, p.machine.nextTimerNs(suspectPtoNs(p)));
    next = std::min(next, p.sent.nextLossTimeNs(lossDelayNs(p)));
    if (send_ && send_->reliable() && p.sent.packetsInFlight() > 0)
      next = std::min(next, std::max(p.lastAnsweredNs, p.lastPingNs) + ptoNs(p));
  }
  if (receive_ && config_.reliable && !receive_->finished()) {
    next = std::min(next, receive_->limit() > advertisedMaxSeq_ ? lastMaxSeqNs_ + ackDelay
                                                                : lastMaxSeqNs_ + kMaxSeqRepeatNs);
  }
  if (send_) next = std::min(next, send_->nextDrainNs(nowNs));
  if (finishing_ && !peerReport_) {
    const bool burst = closeRounds_ < std::max<std::uint32_t>(config_.closeRepeats, 1);
    // A CLOSE held for the send queues goes when they drain (their drain
    // times wake us) or at the wait's end.
    const std::uint64_t closeAt =
        closeMayGo(nowNs) ? lastCloseNs_ + (burst ? config_.closeRepeatIntervalNs : config_.helloIntervalNs)
                          : finishNs_ + kCloseQueueWaitNs;
    next = std::min({next, closeAt, finishNs_ + config_.reportWaitNs});
  }
  return next;
}

void ConnectionImpl::updateDone(std::uint64_t /*nowNs*/) noexcept {
  if (done() || !established_) return;
  // Reliable: the peer's REPORT (it has everything) or the peer timeout, never a shorter wait.
  const bool sendDone =
      !sends_ || (finishing_ && (peerReport_ || (reportWaitExpired_ && !send_->reliable())));
  // Done only once the application took every payload: a loop that stops at
  // done() must not leave the end of the stream unread.
  const bool receiveDone = !receives_ || (receive_->finished() && reportSent_ && receive_->readyCount() == 0);
  if (sendDone && receiveDone) phase_ = ConnectionPhase::kClosed;
}

std::uint32_t ConnectionImpl::receiveRoom() const noexcept {
  return receive_ ? receive_->room() : UINT32_MAX;
}

// ---- sending control ----

void ConnectionImpl::sendMaxSeq(std::uint64_t nowNs) noexcept {
  const std::uint64_t limit = receive_->limit();
  const bool moved = limit > advertisedMaxSeq_ && (limit - advertisedMaxSeq_ >= receive_->window() / 8 ||
                                                   elapsed(nowNs, lastMaxSeqNs_) >= ackDelayFor(nowNs));
  if (!moved && elapsed(nowNs, lastMaxSeqNs_) < kMaxSeqRepeatNs) return;
  const wire::Frame frame = wire::MaxSeqFrame{limit};
  if (!sendControl(ackCarrier(nowNs), std::span<const wire::Frame>(&frame, 1), nowNs)) return;
  advertisedMaxSeq_ = std::max(advertisedMaxSeq_, limit);
  lastMaxSeqNs_ = nowNs;
}

bool ConnectionImpl::tailProbeDue(const PathControl& p, std::uint64_t nowNs) const noexcept {
  if (!send_ || !send_->reliable() || p.sent.packetsInFlight() == 0) return false;
  return elapsed(nowNs, std::max(p.lastAnsweredNs, p.lastPingNs)) >= ptoNs(p);
}

std::size_t ConnectionImpl::writePiggyback(std::size_t path, std::span<std::uint8_t> room,
                                           std::uint64_t nowNs) noexcept {
  PathControl& p = paths_[path];
  if (room.size() < kMaxAckFrameBytes || !ackDue(p, nowNs, true)) return 0;
  const wire::Frame ack = p.acks.makeAck(static_cast<std::uint16_t>(path), nowNs);
  const auto written = wire::writeFrame(room, ack);
  if (!written.ok()) return 0;
  ++p.ackFramesSent;
  return written.value;
}

std::uint32_t ConnectionImpl::seal(std::size_t path, std::uint64_t packetNumber,
                                   std::span<std::uint8_t> frame, std::uint32_t length,
                                   std::uint64_t nowNs) noexcept {
  if (!protection_) return length;
  return static_cast<std::uint32_t>(protection_->seal(static_cast<std::uint16_t>(path), packetNumber, frame,
                                                      length - wire::kPacketHeaderLen, nowNs));
}

bool ConnectionImpl::sendControl(std::size_t path, std::span<const wire::Frame> frames,
                                 std::uint64_t nowNs) noexcept {
  // Stamped when it leaves: the commits before it in this loop (other paths'
  // control packets, a drain of data) may have run their links' transmit
  // paths in the kernel, and a PING stamped at the loop's start would add
  // that time to the path's RTT.
  nowNs = std::max(nowNs, clock_.nowNs());
  PacketIo& io = links_.io(path);
  TxBuffer buffer;
  if (io.reserveTx(std::span<TxBuffer>(&buffer, 1)) == 0) {
    (void)io.flushTx();
    if (io.reserveTx(std::span<TxBuffer>(&buffer, 1)) == 0) return false;
  }
  PathControl& p = paths_[path];
  wire::PacketHeader header;
  header.connId = params_.connId;
  header.pathId = static_cast<std::uint16_t>(path);
  header.packetNumber = p.nextPacketNumber;
  header.sendTsNs = nowNs;
  // Keyed: room for the tag (and a handshake packet's random) after the frames.
  const std::size_t tailroom = protection_ ? crypto::kHandshakeOverhead : 0;
  const std::span<std::uint8_t> out(buffer.data,
                                    buffer.capacity - std::min<std::size_t>(buffer.capacity, tailroom));
  std::size_t length = 0;
  bool fits = wire::writePacketHeader(out, header).ok();
  length = wire::kPacketHeaderLen;
  for (const wire::Frame& frame : frames) {
    if (!fits) break;
    const auto written = wire::writeFrame(out.subspan(length), frame);
    fits = written.ok();
    length += fits ? written.value : 0;
  }
  if (fits && protection_) {
    // HELLO packets, and anything before the session keys exist, go as handshake packets.
    bool hello = !protection_->ready();
    for (const wire::Frame& frame : frames) hello = hello || std::holds_alternative<wire::HelloFrame>(frame);
    const std::span<std::uint8_t> whole(buffer.data, buffer.capacity);
    const std::size_t framesLength = length - wire::kPacketHeaderLen;
    length = hello ? protection_->sealHandshakePacket(whole, framesLength)
                   : protection_->seal(static_cast<std::uint16_t>(path), header.packetNumber, whole,
                                       framesLength, nowNs);
    fits = length != 0;
  }
  if (!fits) {
    (void)io.commitTx(std::span<const TxBuffer>(&buffer, 1));  // length 0: the buffer goes back
    return false;
  }
  buffer.length = static_cast<std::uint32_t>(length);
  ++p.nextPacketNumber;  // consumed even if the link drops it: numbers are never reused
  bool ackEliciting = false;
  for (const wire::Frame& frame : frames) {
    if (const auto* ack = std::get_if<wire::AckFrame>(&frame)) {
      ++paths_[ack->pathId].ackFramesSent;
    } else if (!std::holds_alternative<wire::PaddingFrame>(frame)) {
      ackEliciting = true;
    }
  }
  noteSent(path, header.packetNumber, static_cast<std::uint32_t>(length + io.frameOverheadBytes()),
           ackEliciting, nowNs);
  const auto committed = io.commitTx(std::span<const TxBuffer>(&buffer, 1));
  if (!committed || *committed == 0) return false;
  ++p.controlSent;
  p.controlBytesSent += length;
  return true;
}

void ConnectionImpl::sendOnAllPaths(std::span<const wire::Frame> frames, std::uint64_t nowNs) noexcept {
  for (std::size_t l = 0; l < paths_.size(); ++l) (void)sendControl(l, frames, nowNs);
}

void ConnectionImpl::sendHello(std::size_t path, std::uint64_t nowNs) noexcept {
  wire::HelloFrame hello;
  hello.role = params_.role == ConnectionRole::kClient ? wire::HelloRole::kClient : wire::HelloRole::kServer;
  hello.pathCount = static_cast<std::uint16_t>(paths_.size());
  hello.mode = static_cast<std::uint8_t>(static_cast<std::uint8_t>(params_.direction) |
                                         (config_.reliable ? wire::kModeReliable : 0));
  hello.maxPayload = static_cast<std::uint16_t>(std::min<std::uint32_t>(maxPayload_, UINT16_MAX));
  hello.rateBps = params_.connect.serverRateBps;
  hello.durationMs = params_.connect.durationMs;
  if (protection_) hello.cipher = static_cast<std::uint8_t>(params_.cipher);
  const std::string& name = links_.name(path);
  hello.name = std::string_view(name).substr(0, 255);
  std::array<wire::Frame, 3> frames{hello, wire::PaddingFrame{}, wire::PaddingFrame{}};
  std::size_t n = 1;
  // Reliable, receiving: the first window goes with the HELLO.
  if (receive_ && config_.reliable) {
    advertisedMaxSeq_ = receive_->limit();
    lastMaxSeqNs_ = nowNs;
    frames[n++] = wire::MaxSeqFrame{advertisedMaxSeq_};
  }
  // A backup path says so in its HELLO packet: it is a backup for both sides.
  if (links_.backup(path))
    frames[n++] = wire::PathStatusFrame{wire::PathStatus::kStandby, static_cast<std::uint16_t>(path), 1};
  (void)sendControl(path, std::span<const wire::Frame>(frames.data(), n), nowNs);
}

void ConnectionImpl::sendClose(std::uint64_t nowNs) noexcept {
  wire::CloseFrame close;
  close.streamComplete = true;
  close.finalSeq = send_ ? send_->nextGlobalSeq() : 0;
  const wire::Frame frame = close;
  sendOnAllPaths(std::span<const wire::Frame>(&frame, 1), nowNs);
  (void)flush();
  lastCloseNs_ = nowNs;
  ++closeRounds_;
}

wire::ReportFrame ConnectionImpl::makeReport() const {
  wire::ReportFrame report;
  const ConnectionStats s = stats();
  report.durationNs = lastDataNs_ > firstDataNs_ ? lastDataNs_ - firstDataNs_ : 0;
  report.packets = s.packetsDelivered;
  report.bytes = s.bytesDelivered;
  report.lost = s.lost;
  report.late = s.late;
  report.outOfOrder = s.outOfOrderDelivered;
  report.duplicates = s.duplicates;
  report.malformed = s.malformed;
  report.pathCount = static_cast<std::uint8_t>(std::min<std::size_t>(s.paths.size(), wire::kMaxReportPaths));
  for (std::size_t i = 0; i < report.pathCount; ++i) {
    report.paths[i] = {s.paths[i].packetsReceived, s.paths[i].bytesReceived, s.paths[i].lostSeen};
  }
  return report;
}

void ConnectionImpl::sendReport(std::size_t path, std::uint64_t nowNs) noexcept {
  const wire::Frame frame = makeReport();
  (void)sendControl(path, std::span<const wire::Frame>(&frame, 1), nowNs);
}

void ConnectionImpl::fail(Error error, std::uint16_t closeCode, const std::string& reason,
                          std::uint64_t nowNs) noexcept {
  if (done()) return;
  wire::CloseFrame close;
  close.errorCode = closeCode;
  close.reason = std::string_view(reason).substr(0, 512);
  const wire::Frame frame = close;
  sendOnAllPaths(std::span<const wire::Frame>(&frame, 1), nowNs);
  (void)flush();
  error_ = std::move(error);
  phase_ = ConnectionPhase::kFailed;
  if (receive_) receive_->abandon();
  if (send_) send_->stop();
}

// ---- Connection API ----

std::size_t ConnectionImpl::reserve(std::span<SendSlot> out, std::uint32_t payloadBytes) noexcept {
  if (!send_ || !established_ || done()) return 0;
  return send_->reserve(out, payloadBytes);
}

Result<std::size_t> ConnectionImpl::commit(std::span<const SendSlot> slots) noexcept {
  if (!send_) return Error(EPERM, "commit: this side does not send data on this connection");
  return send_->commit(slots);
}

Result<bool> ConnectionImpl::send(std::span<const std::uint8_t> payload) noexcept {
  if (!send_) return Error(EPERM, "send: this side does not send data on this connection");
  if (error_) return *error_;
  if (!established_) return false;
  return send_->send(payload);
}

Result<std::size_t> ConnectionImpl::sendMany(
    std::span<const std::span<const std::uint8_t>> payloads) noexcept {
  if (!send_) return Error(EPERM, "send: this side does not send data on this connection");
  if (error_) return *error_;
  if (!established_) return std::size_t{0};
  return send_->sendMany(payloads);
}

std::uint64_t ConnectionImpl::nextSendTimeNs(std::uint32_t payloadBytes) const noexcept {
  if (!send_ || done()) return UINT64_MAX;
  if (!established_) return nextTimerNs();
  return send_->nextSendTimeNs(payloadBytes);
}

Result<void> ConnectionImpl::flush() noexcept {
  for (std::size_t l = 0; l < paths_.size(); ++l) {
    if (auto flushed = links_.io(l).flushTx(); !flushed)
      return flushed.error().wrap("path " + std::to_string(l));
  }
  return {};
}

Result<void> ConnectionImpl::finish() noexcept {
  if (!send_) return Error(EPERM, "finish: this side does not send data on this connection");
  if (error_) return *error_;
  if (finishing_) return {};
  send_->stop();
  finishing_ = true;
  finishNs_ = clock_.nowNs();
  if (closeMayGo(finishNs_)) sendClose(finishNs_);
  return {};
}

bool ConnectionImpl::closeMayGo(std::uint64_t nowNs) const noexcept {
  return !send_ || send_->queuesEmpty() || elapsed(nowNs, finishNs_) >= kCloseQueueWaitNs;
}

Result<std::size_t> ConnectionImpl::poll(std::span<Delivered> out) noexcept {
  if (auto pumped = links_.pump(); !pumped) return pumped.error();
  if (!receive_) return std::size_t{0};
  const std::size_t taken = receive_->take(out);
  if (taken > 0) updateDone(clock_.nowNs());
  return taken;
}

void ConnectionImpl::release(std::span<const Delivered> packets) noexcept {
  if (receive_) receive_->release(packets);
}

Result<std::size_t> ConnectionImpl::recv(std::span<std::uint8_t> buffer) noexcept {
  if (!receive_) return Error(EPERM, "recv: this side receives no data on this connection");
  if (receive_->readyCount() == 0) {
    if (auto pumped = links_.pump(); !pumped) return pumped.error();
  }
  auto received = receive_->recv(buffer);
  if (received && *received > 0) updateDone(clock_.nowNs());
  return received;
}

void ConnectionImpl::abort(std::uint16_t errorCode, const std::string& reason) noexcept {
  fail(Error(ECANCELED, "aborted: " + reason),
       errorCode == 0 ? static_cast<std::uint16_t>(wire::CloseError::kStopped) : errorCode, reason,
       clock_.nowNs());
}

ConnectionState ConnectionImpl::state() const noexcept {
  ConnectionState s;
  s.phase = phase_;
  s.role = params_.role;
  s.connId = params_.connId;
  s.sends = sends_;
  s.receives = receives_;
  s.reliable = config_.reliable;
  s.authenticated = protection_ != nullptr;
  s.cipher = protection_ ? static_cast<std::uint8_t>(params_.cipher) : 0;
  s.keyIndex = params_.keyIndex;
  if (send_) {
    s.nextGlobalSeq = send_->nextGlobalSeq();
    s.sendFinished = finishing_;
  }
  if (receive_) receive_->fillState(s);
  s.peerReportReceived = peerReport_.has_value();
  return s;
}

ConnectionStats ConnectionImpl::stats() const {
  ConnectionStats s;
  s.paths.resize(paths_.size());
  if (receive_) receive_->fillStats(s);
  s.malformed = malformed_;
  s.implausible += implausible_;
  if (protection_) {
    s.cipher = static_cast<std::uint8_t>(params_.cipher);
    const crypto::ProtectionStats& c = protection_->stats();
    s.authFailed = c.authFailed + unauthenticated_;
    s.replayed = c.replayed;
    s.keyUpdatesSent = c.keyUpdatesSent;
    s.keyUpdatesReceived = c.keyUpdatesReceived;
  }
  for (std::size_t l = 0; l < paths_.size(); ++l) {
    PathStats& p = s.paths[l];
    const PathControl& c = paths_[l];
    if (send_) {
      p.packetsSent = send_->counters(l).packetsSent;
      p.bytesSent = send_->counters(l).bytesSent;
    }
    p.controlPacketsSent = c.controlSent;
    p.controlBytesSent = c.controlBytesSent;
    p.ackFramesSent = c.ackFramesSent;
    p.packetNumbersUsed = c.nextPacketNumber;
    p.acksReceived = c.acksReceived;
    p.largestAcked = c.largestAcked;
    p.peerBytesReceived = c.peerBytesReceived;
    p.rttValid = c.pingRttValid;
    p.rttNs = c.pingRttNs;
    p.rttMinNs = c.pingRttMinNs;
    p.state = c.machine.state();
    p.backup = c.backup;
    p.pacingRateBps = c.rate->pacingRateBps();
    p.bandwidthEstimateBps = c.rate->bandwidthEstimateBps();
    p.deliveryRateBps = c.estimator.deliveryRateBps();
    p.ratePhase = path::toString(c.rate->phase()).data();
    p.srttNs = c.estimator.rttValid() ? c.estimator.srttNs() : 0;
    p.rttVarNs = c.estimator.rttValid() ? c.estimator.rttVarNs() : 0;
    p.queueDelayNs = c.estimator.queueDelayNs();
    p.lossRate = c.estimator.lossRate();
    p.packetsAcked = c.estimator.packetsAcked();
    p.packetsLostDetected = c.estimator.packetsLost();
    if (send_) {
      p.queuedPackets = send_->queuedPackets(l);
      p.requeued = send_->counters(l).requeued;
      p.retransmitted = send_->counters(l).retransmitted;
    }
    p.io = links_.io(l).stats();
    s.packetsSent += p.packetsSent;
    s.bytesSent += p.bytesSent;
  }
  if (send_) {
    s.txDropped = send_->txDropped();
    s.retransmitted = send_->retransmitted();
    s.redundantCopies = send_->redundantCopies();
    s.flowBlockedNs = send_->flowBlockedNs(clock_.nowNs());
  }
  s.pathEvents = events_;
  s.pathEventsDropped = eventsDropped_;
  return s;
}

}  // namespace mpxdp::conn
