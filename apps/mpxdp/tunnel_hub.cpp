#include "tunnel_hub.h"

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>

#include "run_control.h"
#include "session.h"
#include "transfer.h"
#include "wire/frames.h"

namespace mpxdp::cli {
namespace {

// TUN reads per round before the paths get their turn (as TunnelPump's).
constexpr int kReadsPerRound = 64;
// A peer that was given a packet this recently counts as active.
constexpr std::uint64_t kActivePeerNs = 50'000'000;

}  // namespace

struct TunnelHub::Peer {
  struct Parked {
    std::vector<std::uint8_t> buffer;
    tun::VirtioHeader header;
    std::size_t offset = 0;  // of the IP packet, after the virtio header
    std::size_t length = 0;
  };

  PeerArg arg;
  std::size_t index = 0;
  Connection* connection = nullptr;
  std::uint32_t maxPacket = 0;
  std::unique_ptr<Reporter> sendReporter;
  std::unique_ptr<Reporter> receiveReporter;
  std::uint64_t connectedNs = 0;
  std::uint64_t nextReportNs = UINT64_MAX;
  std::uint64_t connections = 0;
  nlohmann::json lastSend;
  nlohmann::json lastRecv;
  std::string lastEnd;  // why its last connection ended
  std::array<Parked, kQueueDepth> queue;
  std::size_t head = 0;
  std::size_t count = 0;
  std::uint64_t lastQueuedNs = 0;
  bool splitting = false;  // the head packet is in the splitter
  tun::GsoSplitter splitter;
};

TunnelHub::TunnelHub(tun::TunDevice& device, TunnelAddresses addresses, std::vector<PeerArg> peers,
                     PeerRoutes routes, HubReporting reporting)
    : device_(device),
      routes_(std::move(routes)),
      reporting_(std::move(reporting)),
      writer_(device, addresses, counters_),
      spare_(tun::kVirtioHeaderBytes + tun::kMaxSuperPacket) {
  for (std::size_t i = 0; i < peers.size(); ++i) {
    auto peer = std::make_unique<Peer>();
    peer->arg = std::move(peers[i]);
    peer->index = i;
    for (Peer::Parked& parked : peer->queue) parked.buffer.resize(spare_.size());
    peers_.push_back(std::move(peer));
  }
}

TunnelHub::~TunnelHub() = default;

bool TunnelHub::anyConnected() const noexcept {
  return std::any_of(peers_.begin(), peers_.end(), [](const auto& p) { return p->connection != nullptr; });
}

bool TunnelHub::anotherPeerStarves(std::size_t except, std::uint64_t nowNs) const noexcept {
  return std::any_of(peers_.begin(), peers_.end(), [&](const auto& p) {
    return p->index != except && p->connection != nullptr && p->count == 0 &&
           nowNs - p->lastQueuedNs < kActivePeerNs;
  });
}

void TunnelHub::enqueue(Peer& peer, std::uint64_t nowNs) {
  Peer::Parked& parked = peer.queue[(peer.head + peer.count) % kQueueDepth];
  std::swap(parked.buffer, spare_);  // no copy: the read buffer joins the queue, the queue's is next
  parked.header = spareHeader_;
  parked.offset = spareOffset_;
  parked.length = spareLength_;
  ++peer.count;
  peer.lastQueuedNs = nowNs;
}

void TunnelHub::adopt(Endpoint& endpoint, Connection* connection, std::uint64_t nowNs) {
  const std::uint32_t keyIndex = connection->state().keyIndex;
  if (keyIndex >= peers_.size()) {  // every key is a peer's: cannot happen, but never index out of range
    connection->abort(static_cast<std::uint16_t>(wire::CloseError::kBusy), "no peer holds this key");
    endpoint.remove(connection);
    return;
  }
  Peer& peer = *peers_[keyIndex];
  if (peer.connection != nullptr) end(endpoint, peer, "replaced", std::nullopt);
  peer.connection = connection;
  peer.maxPacket = connection->maxPayload();
  peer.connectedNs = nowNs;
  ++peer.connections;
  RunDescription run = reporting_.run;
  run.connId = connection->state().connId;
  run.keyIndex = keyIndex;
  run.keyFile = peer.arg.keyFile;
  run.tagLines = true;
  run.payloadBytes = peer.maxPacket;
  run.intervalS = reporting_.intervalS;
  std::FILE* out = reporting_.json ? nullptr : stdout;
  run.role = Role::kSender;
  peer.sendReporter = std::make_unique<Reporter>(run, reporting_.json, out);
  run.role = Role::kReceiver;
  peer.receiveReporter = std::make_unique<Reporter>(run, reporting_.json, out);
  if (!reporting_.json) {
    std::string allowed;
    for (const tun::IpPrefix& prefix : peer.arg.allowed)
      allowed += (allowed.empty() ? "" : ",") + prefix.toString();
    fmt::print("mpxdp tun: peer {} ({}, {}) connected: connection {:08x}, mtu {}\n", keyIndex,
               peer.arg.keyFile, allowed, run.connId, peer.maxPacket);
    std::fflush(stdout);
  }
  if (reporting_.intervalS > 0) {
    peer.sendReporter->begin();
    peer.receiveReporter->begin();
    peer.nextReportNs = nowNs + static_cast<std::uint64_t>(reporting_.intervalS * 1e9);
  }
  peer.sendReporter->start(nowNs);
  peer.receiveReporter->start(nowNs);
}

void TunnelHub::end(Endpoint& endpoint, Peer& peer, const std::string& endedBy,
                    std::optional<Error> failure) {
  Connection& connection = *peer.connection;
  if (reporting_.metrics != nullptr) reporting_.metrics->retire(connection.state().connId);
  if (!connection.done()) {
    connection.abort(static_cast<std::uint16_t>(wire::CloseError::kStopped),
                     endedBy == "signal"     ? "stopped by signal " + std::to_string(stopSignal())
                     : endedBy == "replaced" ? std::string("replaced by a newer connection from the peer")
                                             : std::string("stopped"));
  }
  const std::uint64_t now = monotonicNs();
  TransferResult result;
  result.stats = connection.stats();
  result.endedBy = endedBy;
  result.failure = std::move(failure);
  result.endS = static_cast<double>(now - peer.connectedNs) / 1e9;
  result.sendDurationS = result.endS;
  result.receiveDurationS = result.endS;
  finishReports(endpoint, connection, result, peer.sendReporter.get(), peer.receiveReporter.get(), false);
  peer.lastSend = peer.sendReporter->json();
  peer.lastRecv = peer.receiveReporter->json();
  peer.lastEnd = endedBy;
  if (!reporting_.json && endedBy != "signal") {
    fmt::print("mpxdp tun: peer {} lost: {}\n", peer.index,
               endedBy == "replaced" ? "it opened a new connection"
               : result.failure      ? result.failure->message()
                                     : "the connection closed");
    std::fflush(stdout);
  }
  endpoint.remove(&connection);
  peer.connection = nullptr;
  peer.sendReporter.reset();
  peer.receiveReporter.reset();
  peer.nextReportNs = UINT64_MAX;
  counters_.droppedNoConnection += peer.count;
  peer.head = 0;
  peer.count = 0;
  peer.splitting = false;
}

Result<bool> TunnelHub::receive(std::size_t index, bool& busy) {
  Peer& peer = *peers_[index];
  auto n = peer.connection->poll(delivered_);
  if (!n) return n.error();
  for (std::size_t i = 0; i < *n; ++i) {
    const std::span<const std::uint8_t> packet(delivered_[i].data, delivered_[i].length);
    const auto source = packetSource(packet);
    if (!source || !routes_.allows(index, *source)) {
      ++counters_.droppedWrongSource;
      continue;
    }
    writer_.write(packet);
  }
  writer_.flush();
  peer.connection->release(std::span<const Delivered>(delivered_.data(), *n));
  if (*n == delivered_.size()) busy = true;
  return !peer.connection->done();
}

Result<bool> TunnelHub::readTun() {
  const bool connected = anyConnected();
  const std::uint64_t now = monotonicNs();
  if (held_) {
    Peer& peer = *peers_[*held_];
    if (peer.connection == nullptr) {
      ++counters_.droppedNoConnection;
    } else if (peer.count < kQueueDepth) {
      enqueue(peer, now);
    } else if (anotherPeerStarves(peer.index, now)) {
      ++counters_.droppedPeerBusy;
    } else {
      return false;  // still waiting: the TUN stays unread
    }
    held_.reset();
  }
  for (int reads = 0; reads < kReadsPerRound; ++reads) {
    auto got = device_.read(spare_);
    if (!got) return got.error().wrap("read " + device_.name());
    if (*got == 0) return false;
    ++counters_.reads;
    if (!connected) {
      ++counters_.droppedNoConnection;
      continue;
    }
    std::span<const std::uint8_t> packet(spare_.data(), *got);
    spareHeader_ = tun::VirtioHeader{};
    spareOffset_ = 0;
    if (device_.virtioHeader()) {
      if (packet.size() < tun::kVirtioHeaderBytes) {
        ++counters_.droppedMalformed;
        continue;
      }
      spareHeader_ = tun::parseVirtioHeader(packet.first<tun::kVirtioHeaderBytes>());
      spareOffset_ = tun::kVirtioHeaderBytes;
    }
    const auto ip = packet.subspan(spareOffset_);
    spareLength_ = ip.size();
    const auto destination = packetDestination(ip);
    if (!destination) {
      ++counters_.droppedMalformed;
      continue;
    }
    const auto owner = routes_.peerFor(*destination);
    if (!owner) {
      ++counters_.droppedNoPeer;
      continue;
    }
    Peer& peer = *peers_[*owner];
    if (peer.connection == nullptr) {
      ++counters_.droppedNoConnection;
      continue;
    }
    if (peer.count < kQueueDepth) {
      enqueue(peer, now);
      continue;
    }
    if (anotherPeerStarves(peer.index, now)) {
      ++counters_.droppedPeerBusy;
      continue;
    }
    held_ = peer.index;
    return false;
  }
  return true;
}

void TunnelHub::pop(Peer& peer) {
  peer.head = (peer.head + 1) % kQueueDepth;
  --peer.count;
  peer.splitting = false;
}

bool TunnelHub::startNext(Peer& peer) {
  while (!peer.splitting && peer.count > 0) {
    const Peer::Parked& parked = peer.queue[peer.head];
    const std::span<const std::uint8_t> ip(parked.buffer.data() + parked.offset, parked.length);
    auto begun = peer.splitter.begin(parked.header, ip, peer.maxPacket);
    if (begun) {
      peer.splitting = true;
      if (peer.splitter.remainingSegments() > 1) ++counters_.superPackets;
      break;
    }
    if (begun.error().code() == EMSGSIZE) {
      ++counters_.droppedTooBig;
      writer_.answerTooBig(ip, peer.maxPacket);
    } else {
      ++counters_.droppedMalformed;
    }
    pop(peer);
  }
  return peer.splitting;
}

bool TunnelHub::sendQueued(Peer& peer) {
  while (startNext(peer)) {
    const std::size_t n = peer.connection->reserve(slots_, peer.maxPacket);
    if (n == 0) return false;  // paced out or the window is closed: the packet waits in the splitter
    std::size_t filled = 0;
    while (filled < n && startNext(peer)) {
      SendSlot& slot = slots_[filled];
      const std::size_t length = peer.splitter.next(std::span<std::uint8_t>(slot.data, slot.capacity));
      slot.length = static_cast<std::uint32_t>(length);
      ++filled;
      ++counters_.packetsRead;
      counters_.bytesRead += length;
      if (peer.splitter.remainingSegments() == 0) pop(peer);
    }
    for (std::size_t i = filled; i < n; ++i) slots_[i].length = 0;  // given back unsent
    if (auto committed = peer.connection->commit(std::span<const SendSlot>(slots_.data(), n)); !committed)
      counters_.droppedSendFailed += filled;
  }
  return true;
}

Result<void> TunnelHub::run(Endpoint& endpoint) {
  std::vector<pollfd> fds;
  fds.push_back({device_.fd(), POLLIN, 0});
  for (int fd : endpoint.pollFds()) {
    if (fd >= 0) fds.push_back({fd, POLLIN, 0});
  }
  const auto intervalNs = static_cast<std::uint64_t>(reporting_.intervalS * 1e9);
  FdWaiter waiter(reporting_.rxHoldoffNs);
  std::optional<Error> fatal;
  while (!fatal) {
    if (stopRequested()) break;
    const std::uint64_t now = monotonicNs();
    while (Connection* connection = endpoint.accept()) adopt(endpoint, connection, now);
    bool busy = false;
    for (std::size_t i = 0; i < peers_.size(); ++i) {
      Peer& peer = *peers_[i];
      if (peer.connection == nullptr) continue;
      if (now >= peer.nextReportNs) {
        const ConnectionStats snapshot = peer.connection->stats();
        const double t = static_cast<double>(now - peer.connectedNs) / 1e9;
        peer.sendReporter->interval(snapshot, t, 0);
        peer.receiveReporter->interval(snapshot, t, 0);
        peer.nextReportNs += intervalNs * ((now - peer.nextReportNs) / intervalNs + 1);
      }
      if (reporting_.metrics != nullptr && reporting_.metrics->due(peer.connection->state().connId, now))
        reporting_.metrics->publish(metricsSampleOf(endpoint, *peer.connection, reporting_.run.linkNames));
      auto open = receive(i, busy);
      if (!open) {
        fatal = open.error();
        break;
      }
      if (!*open) {
        auto failure = peer.connection->error();
        end(endpoint, peer, failure ? "error" : "peer", failure);
      }
    }
    if (fatal) break;
    if (!anyConnected()) {
      if (auto polled = endpoint.poll(); !polled) {
        fatal = polled.error();
        break;
      }
    }
    auto more = readTun();
    if (!more) {
      fatal = more.error();
      break;
    }
    busy = busy || *more;
    std::uint64_t wake = std::min(endpoint.nextDeadlineNs(), now + kMaxWaitNs);
    for (auto& peer : peers_) {
      if (peer->connection == nullptr) continue;
      wake = std::min(wake, peer->nextReportNs);
      if (!sendQueued(*peer))
        wake = std::min(wake, std::max(peer->connection->nextSendTimeNs(peer->maxPacket), now + 20'000));
      if (auto flushed = peer->connection->flush(); !flushed) end(endpoint, *peer, "error", flushed.error());
    }
    if (busy) continue;
    fds[0].events = held_ ? 0 : POLLIN;
    waiter.wait(fds, wake);
  }
  for (auto& peer : peers_) {
    if (peer->connection != nullptr) end(endpoint, *peer, fatal ? "error" : "signal", fatal);
  }
  if (fatal) return *fatal;
  return {};
}

nlohmann::json TunnelHub::peersJson() const {
  nlohmann::json peers = nlohmann::json::array();
  for (const auto& peer : peers_) {
    nlohmann::json allowed = nlohmann::json::array();
    for (const tun::IpPrefix& prefix : peer->arg.allowed) allowed.push_back(prefix.toString());
    nlohmann::json j = {{"key_index", peer->index},
                        {"key_file", peer->arg.keyFile},
                        {"allowed", allowed},
                        {"connections", peer->connections},
                        {"connected", peer->connection != nullptr}};
    if (!peer->lastEnd.empty()) j["last_ended_by"] = peer->lastEnd;
    if (!peer->lastSend.is_null()) j["send"] = peer->lastSend;
    if (!peer->lastRecv.is_null()) j["recv"] = peer->lastRecv;
    peers.push_back(std::move(j));
  }
  return peers;
}

}  // namespace mpxdp::cli
