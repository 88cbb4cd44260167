// The endpoint: owns the paths, receives on all of them, hands each packet
// to its connection by connection id (the demultiplexer), answers what no
// connection takes (other wire versions, unknown ids, refused HELLOs) and
// runs the connections' timers once every path was read.
#include "mpxdp/endpoint.h"

#include <sys/random.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "connection_impl.h"
#include "endpoint_resources.h"
#include "wire/frames.h"
#include "wire/packet.h"

namespace mpxdp {
namespace {

using conn::ConnectionImpl;
using conn::ConnectionParams;

// Replies that no connection owns are sent at most this often per path.
constexpr std::uint64_t kStatelessReplyIntervalNs = 100'000'000;
// A closed connection keeps answering its peer's repeats this long after remove().
constexpr std::uint64_t kLingerNs = 2'000'000'000;

// One path as a server connection sees it: it sends where that connection's
// own packets come from (PacketIo::acquirePeer), so that clients on other
// hosts or ports share the links. The rest is the link's.
class ReturnIo final : public PacketIo {
 public:
  ReturnIo(PacketIo& link, const bool& answersLinkPeer) : link_(&link), answersLinkPeer_(&answersLinkPeer) {}
  ReturnIo(const ReturnIo&) = delete;
  ReturnIo& operator=(const ReturnIo&) = delete;
  ~ReturnIo() override {
    if (peer_) link_->releasePeer(*peer_);
  }

  // The first packet of the connection on this path that it accepted.
  // Returns whether its source is the link's own peer.
  bool learn(const RxPacket& packet) noexcept {
    if (peer_) return *peer_ == 0;
    if (refused_) return false;
    auto acquired = link_->acquirePeer(packet);
    if (!acquired) {
      refused_ = true;  // e.g. too many peers: not tried again for every packet
      return false;
    }
    peer_ = *acquired;
    return *peer_ == 0;
  }
  // Until it has heard from its client here, a connection answers the link's
  // own peer only if its client is that peer (a single client: as before).
  bool canSend() const noexcept { return peer_ ? true : *answersLinkPeer_; }

  std::size_t reserveTx(std::span<TxBuffer> out) noexcept override {
    return canSend() ? link_->reserveTx(out) : 0;
  }
  Result<std::size_t> commitTx(std::span<const TxBuffer> buffers) noexcept override {
    return link_->commitTxTo(peer_.value_or(0), buffers);
  }
  Result<std::size_t> commitTxTo(std::uint16_t /*peer*/,
                                 std::span<const TxBuffer> buffers) noexcept override {
    return commitTx(buffers);
  }
  Result<void> flushTx() noexcept override { return link_->flushTx(); }
  Result<std::size_t> receive(std::span<RxPacket> out) noexcept override { return link_->receive(out); }
  void release(std::span<const RxPacket> packets) noexcept override { link_->release(packets); }
  std::vector<int> pollFds() const override { return link_->pollFds(); }
  std::uint32_t maxPayload() const noexcept override { return link_->maxPayload(); }
  std::uint32_t frameOverheadBytes() const noexcept override { return link_->frameOverheadBytes(); }
  Result<void> setPeerFrom(const RxPacket& packet) noexcept override {
    (void)learn(packet);
    return {};
  }
  bool hasPeer() const noexcept override { return canSend() && link_->hasPeer(); }
  std::string peerDescription() const override { return link_->peerDescription(); }
  PacketIoStats stats() const noexcept override { return link_->stats(); }
  std::string describe() const override { return link_->describe(); }
  std::uint32_t receiveBuffersPerQueue() const noexcept override { return link_->receiveBuffersPerQueue(); }

 private:
  PacketIo* link_;
  const bool* answersLinkPeer_;
  std::optional<std::uint16_t> peer_;  // held from the link until destroyed
  bool refused_ = false;               // the link could not hold one
};

// A server connection's paths: its own ReturnIo per path, the rest the endpoint's.
class ReturnPaths final : public conn::PathSet {
 public:
  explicit ReturnPaths(conn::PathSet& endpoint) : endpoint_(endpoint) {
    ios_.reserve(endpoint.size());
    for (std::size_t l = 0; l < endpoint.size(); ++l)
      ios_.push_back(std::make_unique<ReturnIo>(endpoint.io(l), answersLinkPeer_));
  }
  const Connection* owner = nullptr;

  std::size_t size() const noexcept override { return ios_.size(); }
  PacketIo& io(std::size_t path) noexcept override { return *ios_[path]; }
  std::uint64_t rateBps(std::size_t path) const noexcept override { return endpoint_.rateBps(path); }
  const std::string& name(std::size_t path) const noexcept override { return endpoint_.name(path); }
  bool backup(std::size_t path) const noexcept override { return endpoint_.backup(path); }
  void queueRelease(std::size_t path, const RxPacket& packet) noexcept override {
    endpoint_.queueRelease(path, packet);
  }
  void flushReleases() noexcept override { endpoint_.flushReleases(); }
  void learnPeer(std::size_t path, const RxPacket& packet) noexcept override {
    const bool linkPeer = ios_[path]->learn(packet);
    if (!learnedAny_) answersLinkPeer_ = linkPeer;  // decided by the first path it heard from
    learnedAny_ = true;
  }
  std::uint64_t foundEmptyNs(std::size_t path) const noexcept override {
    return endpoint_.foundEmptyNs(path);
  }
  Result<void> pump() noexcept override { return endpoint_.pump(); }

 private:
  conn::PathSet& endpoint_;
  bool answersLinkPeer_ = false;
  bool learnedAny_ = false;
  std::vector<std::unique_ptr<ReturnIo>> ios_;
};

class EndpointImpl final : public Endpoint, public conn::PathSet {
 public:
  EndpointImpl(const EndpointConfig& config, std::vector<EndpointPath> paths, std::shared_ptr<Clock> clock,
               std::unique_ptr<conn::EndpointResources> resources)
      : config_(config),
        clock_(std::move(clock)),
        resources_(std::move(resources)),
        rxBatch_(config.connection.batchSize) {
    for (auto& path : paths) {
      Slot slot;
      slot.path = std::move(path);
      slot.toRelease.resize(config.connection.batchSize);
      slots_.push_back(std::move(slot));
    }
  }

  ~EndpointImpl() override {
    for (auto& c : connections_) {
      if (!c->done()) c->abort(static_cast<std::uint16_t>(wire::CloseError::kStopped), "endpoint closed");
    }
    connections_.clear();
    lingering_.clear();
    flushReleases();
  }

  // ---- Endpoint ----
  Result<Connection*> connect(const ConnectOptions& options) override {
    if (liveConnections() >= config_.maxConnections) return Error(EBUSY, "connect: too many connections");
    ConnectionParams params;
    params.role = ConnectionRole::kClient;
    params.direction = options.direction;
    params.reliable = config_.connection.reliable;
    params.connect = options;
    params.maxPayload = pathsMaxPayload();
    if (options.maxPayload != 0) {
      if (options.maxPayload > params.maxPayload) {
        return Error(EMSGSIZE, "connect: payload of " + std::to_string(options.maxPayload) +
                                   " bytes exceeds what the paths carry, " +
                                   std::to_string(params.maxPayload));
      }
      params.maxPayload = options.maxPayload;
    }
    params.connId = newConnId();
    if (keyed()) {
      params.key = config_.security.keys.front();
      params.cipher = config_.security.cipher.value_or(defaultCipher());
      params.ownRandom = crypto::makeRandom();
      params.rotateAfterPackets = config_.security.rotateAfterPackets;
      params.rotateAfterNs = config_.security.rotateAfterNs;
      params.minKeyPhaseNs = config_.security.minKeyPhaseNs;
    }
    auto created = ConnectionImpl::create(config_.connection, *this, *clock_, params);
    if (!created) return created.error().wrap("connect");
    ConnectionImpl* connection = created->get();
    connections_.push_back(std::move(*created));
    connection->start(clock_->nowNs());
    return static_cast<Connection*>(connection);
  }

  Connection* accept() noexcept override {
    if (acceptQueue_.empty()) return nullptr;
    Connection* next = acceptQueue_.front();
    acceptQueue_.erase(acceptQueue_.begin());
    return next;
  }

  void remove(Connection* connection) noexcept override {
    auto it = std::find_if(connections_.begin(), connections_.end(),
                           [connection](const auto& c) { return c.get() == connection; });
    if (it == connections_.end()) return;
    std::erase(acceptQueue_, connection);
    if (!(*it)->done())
      (*it)->abort(static_cast<std::uint16_t>(wire::CloseError::kStopped), "closed by the application");
    lingering_.push_back({std::move(*it), clock_->nowNs() + kLingerNs});
    connections_.erase(it);
  }

  Result<void> poll() noexcept override { return pump(); }

  std::uint64_t nextDeadlineNs() const noexcept override {
    std::uint64_t next = UINT64_MAX;
    for (const auto& c : connections_) next = std::min(next, c->nextTimerNs());
    for (const auto& l : lingering_) next = std::min(next, l.untilNs);
    return next;
  }

  std::vector<int> pollFds() const override {
    std::vector<int> fds;
    for (const Slot& slot : slots_) {
      for (int fd : slot.path.io->pollFds()) fds.push_back(fd);
    }
    return fds;
  }

  std::size_t pathCount() const noexcept override { return slots_.size(); }
  const std::string& pathName(std::size_t path) const noexcept override { return slots_[path].path.name; }
  std::string describePath(std::size_t path) const override { return slots_[path].path.io->describe(); }
  EndpointStats stats() const override {
    EndpointStats s = stats_;
    for (const Slot& slot : slots_) s.linkMalformed += slot.path.io->stats().rxMalformed;
    if (resources_) resources_->addStats(s);
    return s;
  }
  Clock& clock() noexcept override { return *clock_; }

  // ---- PathSet ----
  std::size_t size() const noexcept override { return slots_.size(); }
  PacketIo& io(std::size_t path) noexcept override { return *slots_[path].path.io; }
  std::uint64_t rateBps(std::size_t path) const noexcept override { return slots_[path].path.rateBps; }
  bool backup(std::size_t path) const noexcept override { return slots_[path].path.backup; }
  const std::string& name(std::size_t path) const noexcept override { return slots_[path].path.name; }
  std::uint64_t foundEmptyNs(std::size_t path) const noexcept override { return slots_[path].foundEmptyNs; }

  void queueRelease(std::size_t path, const RxPacket& packet) noexcept override {
    Slot& slot = slots_[path];
    slot.toRelease[slot.toReleaseCount++] = packet;
    if (slot.toReleaseCount == slot.toRelease.size()) flushRelease(path);
  }

  void flushReleases() noexcept override {
    for (std::size_t l = 0; l < slots_.size(); ++l) flushRelease(l);
  }

  void learnPeer(std::size_t path, const RxPacket& packet) noexcept override {
    PacketIo& io = *slots_[path].path.io;
    if (!io.hasPeer()) (void)io.setPeerFrom(packet);
  }

  // Round after round over all paths until they are drained (no full batch)
  // or a connection has no room left (the path that then missed its turn
  // starts the next pump's rounds); then the timers. Packets are pushed
  // as of the previous pump (every path was drained then); timeouts are
  // judged as of the start of the last read round: a packet that reached a
  // path read earlier in that round is still unread, and its hole must not
  // time out. A link another thread reads (receiveOnThread) may have handed
  // out less: then as of when that thread last found it drained. Arrival
  // times are read per receive batch, never before the real arrival.
  Result<void> pump() noexcept override {
    std::uint64_t nowNs = clock_->nowNs();
    const std::uint64_t pushNs = lastPumpNs_ == 0 ? nowNs : lastPumpNs_;
    std::uint64_t drainedNs = nowNs;  // every path was read after this time
    std::uint64_t judgedNs = nowNs;   // and had handed out what reached it before this one
    Result<void> result;
    bool more = true;
    bool firstRound = true;
    while (more && result.ok()) {
      more = false;
      if (!firstRound) drainedNs = std::max(drainedNs, clock_->nowNs());
      firstRound = false;
      judgedNs = drainedNs;
      for (std::size_t k = 0; k < slots_.size(); ++k) {
        const std::size_t l = (firstPath_ + k) % slots_.size();
        const std::size_t room = std::min<std::size_t>(rxBatch_.size(), receiveRoom());
        if (room == 0) {
          more = false;    // back-pressure onto the links; let timeouts run
          firstPath_ = l;  // the path denied its turn reads first next time
          break;
        }
        auto received = slots_[l].path.io->receive(std::span<RxPacket>(rxBatch_.data(), room));
        if (!received) {
          result =
              received.error().wrap("path " + std::to_string(l) + " (" + slots_[l].path.name + ") receive");
          break;
        }
        // Found empty: at a time after drainedNs, when this round began (or
        // earlier, for a link another thread reads).
        const auto foundEmpty = [&] {
          slots_[l].foundEmptyNs = slots_[l].path.io->drainedAsOfNs(drainedNs);
          judgedNs = std::min(judgedNs, slots_[l].foundEmptyNs);
        };
        if (*received == 0) {
          foundEmpty();
          continue;
        }
        nowNs = std::max(nowNs, clock_->nowNs());  // never step back, even with an injected clock
        for (std::size_t i = 0; i < *received; ++i)
          dispatch(static_cast<std::uint16_t>(l), rxBatch_[i], nowNs, pushNs);
        // After the batch: its own packets were readable when this read began.
        if (*received < room) foundEmpty();
        if (*received == room) more = true;
      }
      flushReleases();
    }
    // Still true of an earlier judgement: a link read by another thread may lag.
    judgedNs = std::max(judgedNs, lastPumpNs_);
    for (auto& c : connections_) c->onTimers(nowNs, judgedNs);
    // Keyed: a connection whose client never proved its key is nobody's to remove.
    std::size_t gone =
        std::erase_if(connections_, [](const auto& c) { return c->awaitingAccept() && c->done(); });
    for (auto& l : lingering_) l.connection->onTimers(nowNs, judgedNs);
    gone += std::erase_if(lingering_, [nowNs](const Lingering& l) { return nowNs >= l.untilNs; });
    if (gone > 0) dropReturnPaths();
    lastPumpNs_ = judgedNs;
    flushReleases();
    return result;
  }

 private:
  struct Slot {
    EndpointPath path;
    std::vector<RxPacket> toRelease;
    std::uint32_t toReleaseCount = 0;
    std::uint64_t statelessPacketNumber = 0;
    std::uint64_t lastStatelessReplyNs = 0;
    std::uint64_t foundEmptyNs = 0;  // PathSet::foundEmptyNs
  };
  struct Lingering {
    std::unique_ptr<ConnectionImpl> connection;
    std::uint64_t untilNs = 0;
  };

  void flushRelease(std::size_t path) noexcept {
    Slot& slot = slots_[path];
    if (slot.toReleaseCount == 0) return;
    slot.path.io->release(std::span<const RxPacket>(slot.toRelease.data(), slot.toReleaseCount));
    slot.toReleaseCount = 0;
  }

  std::uint32_t receiveRoom() const noexcept {
    std::uint32_t room = UINT32_MAX;
    for (const auto& c : connections_) room = std::min(room, c->receiveRoom());
    return room;
  }

  // The return paths of connections that are gone (their peers go back to the links).
  void dropReturnPaths() noexcept {
    std::erase_if(returnPaths_, [this](const auto& paths) {
      const auto owns = [&](const Connection* c) { return c == paths->owner; };
      return std::none_of(connections_.begin(), connections_.end(),
                          [&](const auto& c) { return owns(c.get()); }) &&
             std::none_of(lingering_.begin(), lingering_.end(),
                          [&](const Lingering& l) { return owns(l.connection.get()); });
    });
  }

  std::size_t liveConnections() const noexcept { return connections_.size(); }
  std::size_t provenConnections() const noexcept {
    return static_cast<std::size_t>(
        std::count_if(connections_.begin(), connections_.end(),
                      [](const auto& c) { return c->peerProven() && !c->awaitingAccept(); }));
  }

  ConnectionImpl* find(std::uint32_t connId) noexcept {
    for (auto& c : connections_) {
      if (c->connId() == connId) return c.get();
    }
    for (auto& l : lingering_) {
      if (l.connection->connId() == connId) return l.connection.get();
    }
    return nullptr;
  }

  void dispatch(std::uint16_t link, const RxPacket& packet, std::uint64_t nowNs,
                std::uint64_t pushNs) noexcept {
    const std::span<const std::uint8_t> bytes(packet.data, packet.length);
    const auto invariants = wire::parseInvariants(bytes);
    if (!invariants.ok()) {
      ++stats_.malformed;
      queueRelease(link, packet);
      return;
    }
    if (invariants.value.version == 0) {
      const auto versions = wire::parseVersionNegotiation(bytes);
      if (ConnectionImpl* c = find(invariants.value.connId); c && versions.ok())
        c->onVersionNegotiation(versions.value);
      if (!versions.ok()) ++stats_.malformed;
      queueRelease(link, packet);
      return;
    }
    if (invariants.value.version != wire::kWireVersion) {
      ++stats_.versionMismatch;
      stats_.lastForeignVersion = invariants.value.version;
      replyVersionNegotiation(link, packet, invariants.value.connId, nowNs);
      queueRelease(link, packet);
      return;
    }
    const auto header = wire::parsePacketHeader(bytes);
    if (!header.ok()) {
      ++stats_.malformed;
      queueRelease(link, packet);
      return;
    }
    if (ConnectionImpl* c = find(header.value.connId)) {
      const bool wasProven = c->peerProven();
      c->onPacket(link, packet, header.value, nowNs, pushNs);
      // Keyed: a connection is accepted once its client proved it holds the key.
      if (!wasProven && c->peerProven() && !c->done() && c->awaitingAccept()) {
        c->setAwaitingAccept(false);
        if (provenConnections() > config_.maxConnections) {
          c->abort(static_cast<std::uint16_t>(wire::CloseError::kBusy),
                   "the server is busy with another connection");
        } else {
          acceptQueue_.push_back(c);
        }
      }
      return;
    }
    if (keyed()) {
      dispatchKeyed(link, packet, header.value, nowNs, pushNs);
      return;
    }
    if ((header.value.flags & (MPXDP_HDR_FLAG_HANDSHAKE | MPXDP_HDR_FLAG_PROTECTED)) != 0) {
      // A keyed peer: this end cannot read it; tell it why (it shows this as a hint only).
      ++stats_.unknownConnection;
      replyClose(link, packet, header.value.connId, wire::CloseError::kProtocol,
                 "this end has no key: run both ends with --key", nowNs);
      queueRelease(link, packet);
      return;
    }
    const auto first = wire::parseFrame(bytes.subspan(wire::kPacketHeaderLen));
    const auto* hello = first.ok() ? std::get_if<wire::HelloFrame>(&first.value.frame) : nullptr;
    if (hello == nullptr || hello->role != wire::HelloRole::kClient || !config_.acceptIncoming) {
      ++stats_.unknownConnection;
      replyClose(link, packet, header.value.connId, wire::CloseError::kPeerGone,
                 "no such connection here (the other side restarted?)", nowNs);
      queueRelease(link, packet);
      return;
    }
    admit(link, packet, header.value, *hello, nullptr, nowNs, pushNs);
  }

  // A keyed client's HELLO that opened with keys[keyIndex].
  struct KeyedHello {
    std::uint32_t keyIndex = 0;
    crypto::Random random{};
    std::size_t framesLength = 0;
  };

  bool keyed() const noexcept { return !config_.security.keys.empty(); }

  // A keyed endpoint's packet for no connection it has: a client's HELLO that
  // opens with one of its keys makes a connection; nothing else is answered,
  // except session packets of a connection it does not know (a restarted
  // end), with a sealed CLOSE a peer holding the key can trust.
  void dispatchKeyed(std::uint16_t link, const RxPacket& packet, const wire::PacketHeader& header,
                     std::uint64_t nowNs, std::uint64_t pushNs) noexcept {
    if ((header.flags & MPXDP_HDR_FLAG_HANDSHAKE) == 0) {
      if ((header.flags & MPXDP_HDR_FLAG_PROTECTED) != 0) {
        ++stats_.unknownConnection;
        // With several keys the sender's is unknown: it finds out by its peer timeout.
        if (config_.security.keys.size() == 1) {
          replyClose(link, packet, header.connId, wire::CloseError::kPeerGone,
                     "no such connection here (the other side restarted?)", nowNs, &config_.security.keys[0]);
        }
      } else {
        ++stats_.authFailed;  // no protection at all
      }
      queueRelease(link, packet);
      return;
    }
    // Each key is tried on a copy: a failed open leaves garbage behind.
    const std::span<std::uint8_t> bytes(const_cast<std::uint8_t*>(packet.data), packet.length);
    if (scratch_.size() < bytes.size()) scratch_.resize(bytes.size());
    const std::span<std::uint8_t> trial(scratch_.data(), bytes.size());
    std::optional<KeyedHello> opened;
    for (std::uint32_t i = 0; i < config_.security.keys.size() && !opened; ++i) {
      std::copy(bytes.begin(), bytes.end(), trial.begin());
      if (auto o = crypto::openHandshake(config_.security.keys[i], trial)) {
        opened = KeyedHello{i, o->random, o->framesLength};
      }
    }
    if (!opened) {
      ++stats_.authFailed;  // a wrong key or forged: no answer at all
      queueRelease(link, packet);
      return;
    }
    std::copy(trial.begin(), trial.end(), bytes.begin());
    const auto first = wire::parseFrame(bytes.subspan(wire::kPacketHeaderLen, opened->framesLength));
    const auto* hello = first.ok() ? std::get_if<wire::HelloFrame>(&first.value.frame) : nullptr;
    if (hello == nullptr || hello->role != wire::HelloRole::kClient || !config_.acceptIncoming) {
      ++stats_.unknownConnection;  // e.g. a stateless CLOSE for a connection long gone
      queueRelease(link, packet);
      return;
    }
    admit(link, packet, header, *hello, &*opened, nowNs, pushNs);
  }

  // A client's HELLO for a new connection: refused (CLOSE) or a new connection.
  void admit(std::uint16_t link, const RxPacket& packet, const wire::PacketHeader& header,
             const wire::HelloFrame& hello, const KeyedHello* keyedHello, std::uint64_t nowNs,
             std::uint64_t pushNs) noexcept {
    const PreSharedKey* key = keyedHello ? &config_.security.keys[keyedHello->keyIndex] : nullptr;
    if (auto refusal = checkHello(link, header, hello)) {
      ++stats_.refused;
      stats_.lastRefusal = refusal->second;
      stats_.lastRefusedConnId = header.connId;
      replyClose(link, packet, header.connId, refusal->first, refusal->second, nowNs, key);
      queueRelease(link, packet);
      return;
    }
    ConnectionParams params;
    params.role = ConnectionRole::kServer;
    params.connId = header.connId;
    params.direction = static_cast<DataDirection>(hello.mode & wire::kModeDirectionMask);
    params.reliable = (hello.mode & wire::kModeReliable) != 0;
    params.maxPayload = std::min<std::uint32_t>(pathsMaxPayload(), hello.maxPayload);
    // The client asks for the rate of the data this side sends (iperf3 -R -b).
    ConnectionConfig connectionConfig = config_.connection;
    if (hello.rateBps != 0) connectionConfig.totalRateBps = hello.rateBps;
    if (keyedHello != nullptr) {
      params.key = *key;
      params.keyIndex = keyedHello->keyIndex;
      params.cipher = static_cast<CipherKind>(hello.cipher);
      params.ownRandom = crypto::makeRandom();
      params.peerRandom = keyedHello->random;
      params.rotateAfterPackets = config_.security.rotateAfterPackets;
      params.rotateAfterNs = config_.security.rotateAfterNs;
      params.minKeyPhaseNs = config_.security.minKeyPhaseNs;
    }
    // It answers where its client's packets come from (several clients share the links).
    auto paths = std::make_unique<ReturnPaths>(*this);
    auto created = ConnectionImpl::create(connectionConfig, *paths, *clock_, params);
    if (!created) {
      ++stats_.refused;
      stats_.lastRefusal = created.error().message();
      stats_.lastRefusedConnId = header.connId;
      replyClose(link, packet, header.connId, wire::CloseError::kProtocol, created.error().context(), nowNs,
                 key);
      queueRelease(link, packet);
      return;
    }
    ConnectionImpl* connection = created->get();
    connection->setPeerHello(hello);
    paths->owner = connection;
    paths->learnPeer(link, packet);
    returnPaths_.push_back(std::move(paths));
    connections_.push_back(std::move(*created));
    if (keyedHello != nullptr) {
      // Accepted once the client proves it holds the key (a replayed HELLO never does).
      connection->setAwaitingAccept(true);
      connection->onOpenedFirstPacket(link, packet, header, keyedHello->framesLength, nowNs, pushNs);
    } else {
      acceptQueue_.push_back(connection);
      connection->onPacket(link, packet, header, nowNs, pushNs);
    }
  }

  // Why a client's HELLO cannot be served, or nothing.
  std::optional<std::pair<wire::CloseError, std::string>> checkHello(std::uint16_t link,
                                                                     const wire::PacketHeader& header,
                                                                     const wire::HelloFrame& hello) const {
    if (hello.pathCount != slots_.size()) {
      return std::pair{wire::CloseError::kPathMismatch, "the client has " + std::to_string(hello.pathCount) +
                                                            " paths, the server " +
                                                            std::to_string(slots_.size())};
    }
    if (header.pathId != link) {
      return std::pair{wire::CloseError::kPathMismatch,
                       "links are listed in another order: the client's path " +
                           std::to_string(header.pathId) + " (" + std::string(hello.name) +
                           ") arrived on the server's path " + std::to_string(link) + " (" +
                           slots_[link].path.name + ")"};
    }
    const auto direction = hello.mode & wire::kModeDirectionMask;
    if (direction == 0 || (hello.mode & ~(wire::kModeDirectionMask | wire::kModeReliable)) != 0) {
      return std::pair{wire::CloseError::kProtocol,
                       "unknown data direction or mode " + std::to_string(hello.mode)};
    }
    if (config_.connection.reliable && (hello.mode & wire::kModeReliable) == 0) {
      return std::pair{wire::CloseError::kProtocol,
                       "the server requires reliable mode: run mpxdp send with --reliable (or -F)"};
    }
    if (hello.maxPayload == 0 || hello.maxPayload > pathsMaxPayload()) {
      return std::pair{wire::CloseError::kPayloadTooLarge,
                       "the client sends payloads of " + std::to_string(hello.maxPayload) +
                           " bytes, the server's paths carry at most " + std::to_string(pathsMaxPayload())};
    }
    if (keyed() && hello.cipher != static_cast<std::uint8_t>(CipherKind::kChaCha20Poly1305) &&
        hello.cipher != static_cast<std::uint8_t>(CipherKind::kAes256Gcm)) {
      return std::pair{wire::CloseError::kProtocol, "unknown cipher " + std::to_string(hello.cipher)};
    }
    // Keyed: connections whose client has not proven its key yet (maybe a
    // replayed HELLO) do not make the server busy.
    if (provenConnections() >= config_.maxConnections) {
      return std::pair{wire::CloseError::kBusy, "the server is busy with another connection"};
    }
    return std::nullopt;
  }

  // A reply to a packet that no connection owns, to where it came from
  // (a path without a peer learns it from the packet, which is not yet released).
  void sendStateless(std::uint16_t link, const RxPacket& packet, std::uint32_t connId,
                     const wire::Frame* frame, std::uint64_t nowNs, bool versionNegotiation,
                     const PreSharedKey* key = nullptr) noexcept {
    Slot& slot = slots_[link];
    if (slot.lastStatelessReplyNs != 0 && nowNs - slot.lastStatelessReplyNs < kStatelessReplyIntervalNs)
      return;
    // To where the packet came from (a link without a peer learns it as its peer).
    PacketIo& io = *slot.path.io;
    const auto peer = io.acquirePeer(packet);
    if (!peer) return;
    slot.lastStatelessReplyNs = nowNs;
    TxBuffer buffer;
    if (io.reserveTx(std::span<TxBuffer>(&buffer, 1)) == 0) {
      io.releasePeer(*peer);
      return;
    }
    const std::span<std::uint8_t> out(buffer.data, buffer.capacity);
    std::size_t length = 0;
    if (versionNegotiation) {
      const auto written = wire::writeVersionNegotiation(out, connId);
      length = written.ok() ? written.value : 0;
    } else {
      wire::PacketHeader header;
      header.connId = connId;
      header.pathId = link;
      header.packetNumber = slot.statelessPacketNumber++;
      header.sendTsNs = nowNs;
      // Keyed: a handshake packet under the key, with a random of its own.
      const std::size_t tailroom = key != nullptr ? crypto::kHandshakeOverhead : 0;
      const std::span<std::uint8_t> room = out.first(out.size() - std::min(out.size(), tailroom));
      const auto h = wire::writePacketHeader(room, header);
      const auto f = h.ok() ? wire::writeFrame(room.subspan(h.value), *frame)
                            : decltype(wire::writeFrame(room, *frame)){};
      length = h.ok() && f.ok() ? h.value + f.value : 0;
      if (length != 0 && key != nullptr)
        length = crypto::sealHandshake(*key, crypto::makeRandom(), out, f.value);
    }
    buffer.length = static_cast<std::uint32_t>(length);
    (void)io.commitTxTo(*peer, std::span<const TxBuffer>(&buffer, 1));
    (void)io.flushTx();
    io.releasePeer(*peer);
  }

  void replyVersionNegotiation(std::uint16_t link, const RxPacket& packet, std::uint32_t connId,
                               std::uint64_t nowNs) noexcept {
    sendStateless(link, packet, connId, nullptr, nowNs, true);
  }

  void replyClose(std::uint16_t link, const RxPacket& packet, std::uint32_t connId, wire::CloseError code,
                  const std::string& reason, std::uint64_t nowNs,
                  const PreSharedKey* key = nullptr) noexcept {
    wire::CloseFrame close;
    close.errorCode = static_cast<std::uint16_t>(code);
    close.reason = reason;
    const wire::Frame frame = close;
    sendStateless(link, packet, connId, &frame, nowNs, false, key);
  }

  std::uint32_t pathsMaxPayload() const noexcept {
    std::uint32_t most = UINT16_MAX;
    for (const Slot& slot : slots_) {
      const std::uint32_t overhead = conn::SendStream::kDataOverhead +
                                     (keyed() ? static_cast<std::uint32_t>(crypto::kSessionOverhead) : 0);
      const std::uint32_t carries = slot.path.io->maxPayload();
      most = std::min(most, carries > overhead ? carries - overhead : 0);
    }
    return most;
  }

  std::uint32_t newConnId() const noexcept {
    for (;;) {
      std::uint32_t id = 0;
      if (getrandom(&id, sizeof id, 0) != static_cast<ssize_t>(sizeof id))
        id = static_cast<std::uint32_t>(clock_->nowNs());
      bool taken = false;
      for (const auto& c : connections_) taken = taken || c->connId() == id;
      if (id != 0 && !taken) return id;
    }
  }

  EndpointConfig config_;
  std::shared_ptr<Clock> clock_;
  std::unique_ptr<conn::EndpointResources> resources_;  // outlives the paths (declared before them)
  std::vector<Slot> slots_;
  std::vector<RxPacket> rxBatch_;
  // Before the connections: each server connection sends through its own (destroyed after it).
  std::vector<std::unique_ptr<ReturnPaths>> returnPaths_;
  std::vector<std::unique_ptr<ConnectionImpl>> connections_;
  std::vector<Lingering> lingering_;
  std::vector<Connection*> acceptQueue_;
  EndpointStats stats_;
  std::vector<std::uint8_t> scratch_;  // keyed: trial opens of a HELLO
  std::uint64_t lastPumpNs_ = 0;
  // Where the next pump's rounds start: short of room, rounds always begun at
  // path 0 let it run a window ahead of the others, whose packets then waited
  // in their rings until their holes were given up.
  std::size_t firstPath_ = 0;
};

}  // namespace

namespace conn {

Result<std::unique_ptr<Endpoint>> createEndpoint(const EndpointConfig& config,
                                                 std::vector<EndpointPath> paths,
                                                 std::shared_ptr<Clock> clock,
                                                 std::unique_ptr<EndpointResources> resources) {
  if (paths.empty()) return Error(EINVAL, "endpoint needs at least one path");
  if (paths.size() > wire::kMaxReportPaths) {
    return Error(EINVAL, "endpoint: " + std::to_string(paths.size()) + " paths, at most " +
                             std::to_string(wire::kMaxReportPaths));
  }
  const ConnectionConfig& c = config.connection;
  if (c.batchSize == 0 || c.batchSize > 4096) {
    return Error(EINVAL, "batch size must be in [1, 4096], got " + std::to_string(c.batchSize));
  }
  if (config.maxConnections == 0) return Error(EINVAL, "endpoint: maxConnections must be at least 1");
  for (std::size_t i = 0; i < paths.size(); ++i) {
    if (!paths[i].io) return Error(EINVAL, "path " + std::to_string(i) + " has no packet I/O");
    const std::uint32_t carries = paths[i].io->maxPayload();
    if (carries <= SendStream::kDataOverhead) {
      return Error(EINVAL, "path " + std::to_string(i) + " (" + paths[i].io->describe() + ") carries only " +
                               std::to_string(carries) + " bytes, not more than mpxdp's headers");
    }
    if (paths[i].name.empty()) paths[i].name = "path" + std::to_string(i);
  }
  if (!clock) clock = std::make_shared<MonotonicClock>();
  return std::unique_ptr<Endpoint>(
      std::make_unique<EndpointImpl>(config, std::move(paths), std::move(clock), std::move(resources)));
}

}  // namespace conn

Result<std::unique_ptr<Endpoint>> Endpoint::create(const EndpointConfig& config,
                                                   std::vector<EndpointPath> paths,
                                                   std::shared_ptr<Clock> clock) {
  return conn::createEndpoint(config, std::move(paths), std::move(clock), nullptr);
}

}  // namespace mpxdp
