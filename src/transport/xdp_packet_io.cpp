#include "xdp_packet_io.h"

#include <net/if.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bits.h"
#include "busy_poll.h"
#include "codec.h"
#include "frame_allocator.h"
#include "mpxdp_shared.h"
#include "netlink_route.h"
#include "rx_thread.h"
#include "steering.h"
#include "traffic_counters.h"
#include "tx_kicker.h"
#include "umem.h"
#include "xsk_socket.h"

namespace mpxdp::transport {
namespace {

// RxPacket::handle = socket index << kQueueShift | UMEM address.
constexpr unsigned kQueueShift = 48;
constexpr std::uint64_t kAddrMask = (std::uint64_t{1} << kQueueShift) - 1;
// Rings of a receive-only socket's UMEM that it never uses but must have.
constexpr std::uint32_t kUnusedRingSize = 64;
// Each socket keeps at least this many RX frames.
constexpr std::uint32_t kMinRxFramesPerQueue = 64;

// IP + UDP headers of the family (what the MTU holds besides the payload).
std::size_t ipUdpLength(bool v4) noexcept {
  return (v4 ? wire::kIpv4HeaderLen : wire::kIpv6HeaderLen) + wire::kUdpHeaderLen;
}

std::uint32_t maxPayloadFor(std::uint32_t mtu, std::uint32_t frameSize, std::size_t outerLen, bool v4) {
  const std::size_t ipUdp = ipUdpLength(v4);
  const std::size_t byMtu = mtu > ipUdp ? mtu - ipUdp : 0;
  // Copy-mode RX puts the packet 256 bytes (XDP_PACKET_HEADROOM) into the frame.
  const std::size_t byFrame = frameSize - std::max<std::size_t>(wire::kMaxOuterLen, 256 + outerLen);
  return static_cast<std::uint32_t>(std::min(byMtu, byFrame));
}

// One AF_XDP socket bound to one RX queue, on its own UMEM: frames
// [0, rxFrames) receive; the TX socket's UMEM has the transmit frames after them.
struct QueueSocket {
  std::uint32_t queue = 0;
  std::uint32_t rxFrames = 0;
  std::unique_ptr<xsk::Umem> umem;
  std::unique_ptr<xsk::XskSocket> socket;  // after umem: destroyed first
  bool steered = false;
  std::atomic<std::uint64_t> rxPackets{0};
};

class XdpPacketIo final : public PacketIo {
 public:
  // outer is unset on a receive-only link (no peer); the link then guesses
  // its family (for maxPayload) from localV4.
  XdpPacketIo(const LinkEndpointConfig& config, const InterfaceInfo& iface,
              const std::optional<wire::OuterTemplate>& outer, bool localV4, std::uint32_t rxFramesPerQueue)
      : config_(config),
        iface_(iface),
        rxFramesPerQueue_(rxFramesPerQueue),
        txFrameCount_(config.frameCount / 2),
        txFrames_(txFrameCount_, config.frameSize, std::uint64_t{rxFramesPerQueue} * config.frameSize),
        scratch_(std::max<std::uint32_t>(config.batchSize, 64)),
        recycle_(rxFramesPerQueue) {
    if (outer) {
      outers_[0] = *outer;
      active_.store(0, std::memory_order_release);
      peer_ = config.peerIp->toString() + ":" + std::to_string(config.peerPort);
      peerIp_ = *config.peerIp;
      peerPort_ = config.peerPort;
    }
    setFamily(outer ? config.peerIp->isV4() : localV4, outer ? outer->headerLength() : 0);
  }

  ~XdpPacketIo() override {
    if (kickSlot_) config_.txKicker->remove(*kickSlot_);  // before the socket goes
    for (auto& q : queues_) {
      if (q->steered) (void)steering_->unbindSocket(q->socket->ifindex(), q->queue);
    }
    queues_.clear();  // each socket before its UMEM
  }

  // Binds a socket to queue with its own UMEM; the first one also transmits.
  Result<void> addQueue(std::uint32_t queue) {
    const bool tx = queues_.empty();
    auto q = std::make_unique<QueueSocket>();
    q->queue = queue;
    q->rxFrames = rxFramesPerQueue_;

    xsk::UmemConfig umemConfig;
    umemConfig.frameCount = rxFramesPerQueue_ + (tx ? txFrameCount_ : 0);
    umemConfig.frameSize = config_.frameSize;
    umemConfig.fillRingSize = rxFramesPerQueue_;
    umemConfig.completionRingSize = tx ? txFrameCount_ : kUnusedRingSize;
    auto umem = xsk::Umem::create(umemConfig);
    if (!umem.ok()) return umem.error().wrap("AF_XDP link on " + config_.interface);
    q->umem = std::move(*umem);

    xsk::XskSocketConfig socketConfig;
    socketConfig.interface = config_.interface;
    socketConfig.queue = queue;
    socketConfig.rxRingSize = rxFramesPerQueue_;
    socketConfig.txRingSize = tx ? txFrameCount_ : 0;
    socketConfig.mode = config_.xdpMode;
    auto socket = xsk::XskSocket::create(*q->umem, socketConfig);
    if (!socket.ok()) return socket.error();
    q->socket = std::move(*socket);
    if (config_.busyPollUsecs != 0) {
      auto polling = enableBusyPolling(q->socket->fd(), config_.busyPollUsecs, config_.batchSize);
      if (!polling.ok()) return polling.error().wrap("AF_XDP link on " + config_.interface);
    }
    if (tx && config_.txKicker) {
      auto slot = config_.txKicker->add(*q->socket);
      if (!slot.ok()) return slot.error().wrap("AF_XDP link on " + config_.interface);
      kickSlot_ = *slot;
    }

    // Every RX frame starts in the fill ring.
    std::vector<std::uint64_t> rxFrames(q->rxFrames);
    for (std::uint32_t i = 0; i < q->rxFrames; ++i) rxFrames[i] = std::uint64_t{i} * config_.frameSize;
    if (q->umem->fill().produce(rxFrames) != rxFrames.size()) {
      return Error(ENOSPC, "fill ring of " + config_.interface + " queue " + std::to_string(queue) +
                               " cannot take all RX frames");
    }
    queues_.push_back(std::move(q));
    return {};
  }

  Result<void> bindSteering(bpf::SteeringProgram* steering) {
    steering_ = steering;
    stampPrepended_ = steering->arrivalStamp() == bpf::ArrivalStamp::kPrepended;
    auto attached = steering->attach(iface_.ifindex);
    if (!attached.ok() && attached.error().code() != EEXIST) return attached.error();
    for (auto& q : queues_) {
      auto bound = steering->bindSocket(q->socket->ifindex(), q->queue, q->socket->fd());
      if (!bound.ok()) return bound.error();
      q->steered = true;
    }
    return {};
  }

  std::size_t reserveTx(std::span<TxBuffer> out) noexcept override {
    if (active_.load(std::memory_order_acquire) < 0) return 0;  // no peer yet
    QueueSocket& q = txQueue();
    reapCompletions();
    const auto wanted = static_cast<std::uint32_t>(out.size());
    const std::uint32_t ringFree = q.socket->tx().freeSlots(txLent_ + wanted);
    std::uint32_t n = ringFree > txLent_ ? ringFree - txLent_ : 0;
    if (n > wanted) n = wanted;
    const std::uint32_t maxPayload = maxPayload_.load(std::memory_order_relaxed);
    std::size_t got = 0;
    while (got < n) {
      const std::size_t chunk = std::min<std::size_t>(n - got, scratch_.size());
      const std::size_t allocated = txFrames_.allocate(std::span<std::uint64_t>(scratch_.data(), chunk));
      for (std::size_t i = 0; i < allocated; ++i) {
        TxBuffer& buffer = out[got + i];
        buffer.data = q.umem->at(scratch_[i] + wire::kMaxOuterLen);
        buffer.capacity = maxPayload;
        buffer.length = 0;
        buffer.handle = scratch_[i];
      }
      got += allocated;
      if (allocated < chunk) break;
    }
    txLent_ += static_cast<std::uint32_t>(got);
    return got;
  }

  Result<std::size_t> commitTx(std::span<const TxBuffer> buffers) noexcept override {
    return commitTxTo(0, buffers);
  }

  Result<std::size_t> commitTxTo(std::uint16_t peer, std::span<const TxBuffer> buffers) noexcept override {
    const int active = active_.load(std::memory_order_acquire);
    if (active < 0) {
      if (buffers.empty()) return std::size_t{0};
      return Error(EOPNOTSUPP, "commitTx on " + config_.interface + ": the link has no peer yet");
    }
    if (peer != 0 && (peer >= kMaxLinkPeers || peers_[peer].refs == 0)) {
      for (const TxBuffer& buffer : buffers) {
        if (isTxFrame(buffer.handle)) (void)txFrames_.free(buffer.handle);
      }
      txLent_ -= std::min<std::uint32_t>(txLent_, static_cast<std::uint32_t>(buffers.size()));
      return Error(EINVAL,
                   "commitTx on " + config_.interface + ": peer " + std::to_string(peer) + " is not held");
    }
    const wire::OuterTemplate& outer = peer == 0 ? outers_[active] : peers_[peer].outer;
    const std::size_t outerLen = outer.headerLength();
    const std::uint32_t maxPayload = maxPayload_.load(std::memory_order_relaxed);
    QueueSocket& q = txQueue();
    std::uint32_t sendable = 0;
    bool tooLong = false;
    bool foreign = false;
    for (const TxBuffer& buffer : buffers) {
      if (buffer.length > maxPayload) tooLong = true;
      if (!isTxFrame(buffer.handle)) foreign = true;
      if (buffer.length > 0) ++sendable;
    }
    txLent_ -= std::min<std::uint32_t>(txLent_, static_cast<std::uint32_t>(buffers.size()));
    if (foreign) {
      for (const TxBuffer& buffer : buffers) {
        if (isTxFrame(buffer.handle)) (void)txFrames_.free(buffer.handle);
      }
      return Error(EINVAL, "commitTx on " + config_.interface + ": a buffer was not lent by reserveTx");
    }
    if (tooLong) {
      for (const TxBuffer& buffer : buffers) (void)txFrames_.free(buffer.handle);
      return Error(EMSGSIZE, "commitTx on " + config_.interface + ": a buffer is longer than " +
                                 std::to_string(maxPayload) + " bytes");
    }
    std::uint32_t index = 0;
    if (sendable > 0 && q.socket->tx().reserve(sendable, &index) != sendable) {
      // Cannot happen while reserveTx limits lending to the free ring slots.
      for (const TxBuffer& buffer : buffers) (void)txFrames_.free(buffer.handle);
      return Error(ENOSPC,
                   "commitTx on " + config_.interface + ": TX ring full (buffers not from reserveTx?)");
    }
    std::uint64_t bytes = 0;
    for (const TxBuffer& buffer : buffers) {
      if (buffer.length == 0) {
        (void)txFrames_.free(buffer.handle);
        continue;
      }
      const std::uint64_t start = buffer.handle + wire::kMaxOuterLen - outerLen;
      const std::size_t frameLen = outerLen + buffer.length;
      // Cannot fail: the template is valid and lengths were checked above.
      (void)outer.write(std::span<std::uint8_t>(q.umem->at(start), frameLen), buffer.length,
                        config_.udpChecksum);
      xdp_desc& desc = q.socket->tx().desc(index++);
      desc.addr = start;
      desc.len = static_cast<std::uint32_t>(frameLen);
      desc.options = 0;
      bytes += buffer.length;
    }
    if (sendable == 0) return std::size_t{0};
    q.socket->tx().submit(sendable);
    counters_.sent(sendable, bytes);
    auto kicked = kick();
    if (!kicked.ok()) return kicked.error();
    return std::size_t{sendable};
  }

  Result<void> flushTx() noexcept override {
    if (active_.load(std::memory_order_acquire) < 0) return {};
    return kick();
  }

  // Takes from every socket in turn, starting one further each call, so a
  // busy queue cannot starve the others.
  Result<std::size_t> receive(std::span<RxPacket> out) noexcept override {
    std::size_t got = 0;
    std::uint64_t bytes = 0;
    const std::size_t count = queues_.size();
    for (std::size_t k = 0; k < count && got < out.size(); ++k) {
      std::size_t qi = rxNext_ + k;
      if (qi >= count) qi -= count;
      got += receiveFrom(qi, out.subspan(got), bytes);
    }
    if (++rxNext_ >= count) rxNext_ = 0;
    counters_.received(got, bytes);
    return got;
  }

  void release(std::span<const RxPacket> packets) noexcept override {
    std::size_t i = 0;
    while (i < packets.size()) {
      // Runs of packets from one socket go back to its fill ring together.
      const std::uint64_t qi = packets[i].handle >> kQueueShift;
      std::size_t j = i + 1;
      while (j < packets.size() && (packets[j].handle >> kQueueShift) == qi) ++j;
      if (qi < queues_.size()) refill(*queues_[qi], packets.subspan(i, j - i));
      i = j;
    }
  }

  std::vector<int> pollFds() const override {
    std::vector<int> fds;
    fds.reserve(queues_.size());
    for (const auto& q : queues_) fds.push_back(q->socket->fd());
    return fds;
  }

  std::uint32_t maxPayload() const noexcept override { return maxPayload_.load(std::memory_order_relaxed); }
  std::uint32_t frameOverheadBytes() const noexcept override {
    return overhead_.load(std::memory_order_relaxed);
  }

  // The frame's sender becomes the destination: its MAC, IP and port; we
  // answer from the address and port it was sent to.
  Result<void> setPeerFrom(const RxPacket& packet) noexcept override {
    auto answer = answerTo(packet, "setPeerFrom");
    if (!answer.ok()) return answer.error();
    // Write the idle slot, then publish it: a commitTx running on the old
    // template keeps a consistent one.
    const int next = active_.load(std::memory_order_acquire) == 0 ? 1 : 0;
    outers_[next] = answer->outer;
    setFamily(answer->ip.isV4(), answer->outer.headerLength());
    {
      std::lock_guard<std::mutex> lock(peerMutex_);
      peer_ = answer->ip.toString() + ":" + std::to_string(answer->port);
      peerIp_ = answer->ip;
      peerPort_ = answer->port;
    }
    active_.store(next, std::memory_order_release);
    return {};
  }

  Result<std::uint16_t> acquirePeer(const RxPacket& packet) noexcept override {
    if (!hasPeer()) {
      if (auto learned = setPeerFrom(packet); !learned.ok()) return learned.error();
      return std::uint16_t{0};
    }
    auto answer = answerTo(packet, "acquirePeer");
    if (!answer.ok()) return answer.error();
    {
      std::lock_guard<std::mutex> lock(peerMutex_);
      if (peerIp_ && *peerIp_ == answer->ip && peerPort_ == answer->port) return std::uint16_t{0};
      // Payloads are sized for the link's family.
      if (peerIp_ && peerIp_->family != answer->ip.family) {
        return Error(EAFNOSUPPORT, "acquirePeer on " + config_.interface + ": " + answer->ip.toString() +
                                       " is of another IP family than the link's peer");
      }
    }
    std::size_t free = 0;
    for (std::size_t i = 1; i < kMaxLinkPeers; ++i) {
      PeerSlot& slot = peers_[i];
      if (slot.refs > 0 && slot.ip == answer->ip && slot.port == answer->port) {
        ++slot.refs;
        return static_cast<std::uint16_t>(i);
      }
      if (slot.refs == 0 && free == 0) free = i;
    }
    if (free == 0) {
      return Error(ENOSPC, "acquirePeer on " + config_.interface + ": more than " +
                               std::to_string(kMaxLinkPeers) + " peers at once");
    }
    peers_[free].outer = answer->outer;
    peers_[free].ip = answer->ip;
    peers_[free].port = answer->port;
    peers_[free].refs = 1;
    return static_cast<std::uint16_t>(free);
  }

  void releasePeer(std::uint16_t peer) noexcept override {
    if (peer == 0 || peer >= kMaxLinkPeers || peers_[peer].refs == 0) return;
    --peers_[peer].refs;
  }

  bool hasPeer() const noexcept override { return active_.load(std::memory_order_acquire) >= 0; }
  bool sendsIpv4() const noexcept { return v4_.load(std::memory_order_relaxed); }

  std::string peerDescription() const override {
    std::lock_guard<std::mutex> lock(peerMutex_);
    return peer_;
  }

  PacketIoStats stats() const noexcept override {
    PacketIoStats stats = counters_.snapshot();
    for (const auto& q : queues_) {
      auto kernel = q->socket->statistics();
      if (!kernel.ok()) continue;
      stats.rxDropped += kernel->rxDropped;
      stats.rxInvalidDescs += kernel->rxInvalidDescs;
      stats.txInvalidDescs += kernel->txInvalidDescs;
      stats.rxRingFull += kernel->rxRingFull;
      stats.rxFillRingEmpty += kernel->rxFillRingEmptyDescs;
      stats.txRingEmpty += kernel->txRingEmptyDescs;
    }
    return stats;
  }

  std::uint32_t receiveBuffersPerQueue() const noexcept override { return rxFramesPerQueue_; }

  // e.g. "xdp:s0 rx q0-3 tx q0 copy stamp-in-frame": one socket per RX queue (no ntuple pinning).
  std::string describe() const override {
    const std::uint32_t first = queues_.front()->queue;
    const std::uint32_t last = queues_.back()->queue;
    std::string text = "xdp:" + config_.interface + " rx q" + std::to_string(first);
    if (last != first) text += "-" + std::to_string(last);
    text += " tx q" + std::to_string(first);
    text += queues_.front()->socket->zeroCopy() ? " zerocopy" : " copy";
    // Where arrival times come from depends on the kernel (some refuse the metadata helper).
    if (steering_ != nullptr) text += " " + std::string(bpf::describe(steering_->arrivalStamp()));
    if (kickSlot_) text += " tx-thread";
    if (!config_.udpChecksum && sendsIpv4()) text += " no-udp-checksum";
    text += describeBusyPolling(config_.busyPollUsecs);
    if (!hasPeer()) text += " rx-only";
    return text;
  }

  std::vector<XdpQueueStats> queueStats() const {
    std::vector<XdpQueueStats> out;
    for (const auto& q : queues_) out.push_back({q->queue, q->rxPackets.load(std::memory_order_relaxed)});
    return out;
  }

 private:
  QueueSocket& txQueue() noexcept { return *queues_.front(); }

  // Outer headers that answer where a received packet came from.
  struct Answer {
    wire::OuterTemplate outer;
    IpAddress ip;  // the packet's source
    std::uint16_t port = 0;
  };
  Result<Answer> answerTo(const RxPacket& packet, const char* what) const noexcept {
    const std::uint64_t qi = packet.handle >> kQueueShift;
    const std::uint64_t addr = packet.handle & kAddrMask;
    if (qi >= queues_.size() || addr >= queues_[qi]->umem->areaSize()) {
      return Error(EINVAL,
                   std::string(what) + " on " + config_.interface + ": not a packet received on this link");
    }
    const std::uint8_t* frame = queues_[qi]->umem->at(addr);
    if (packet.data < frame || packet.data + packet.length > frame + config_.frameSize) {
      return Error(EINVAL,
                   std::string(what) + " on " + config_.interface + ": packet does not lie in its frame");
    }
    const auto frameLen = static_cast<std::size_t>(packet.data + packet.length - frame);
    // The checksum no longer holds once a keyed connection opened the payload in place.
    auto parsed = wire::decodeOuter(std::span<const std::uint8_t>(frame, frameLen), false);
    if (!parsed.ok()) {
      return Error(EINVAL, std::string(what) + " on " + config_.interface +
                               ": cannot decode the frame: " + wire::toString(parsed.error));
    }
    wire::OuterAddressing addressing;
    addressing.srcMac = iface_.mac;
    std::copy_n(frame + 6, 6, addressing.dstMac.bytes.begin());  // Ethernet source
    addressing.srcIp = parsed.value.dstIp;
    addressing.dstIp = parsed.value.srcIp;
    addressing.srcPort = parsed.value.dstPort;
    addressing.dstPort = parsed.value.srcPort;
    addressing.vlanId = parsed.value.vlanId;
    auto outer = wire::OuterTemplate::make(addressing);
    if (!outer.ok()) {
      return Error(EINVAL, std::string(what) + " on " + config_.interface +
                               ": cannot build outer headers: " + wire::toString(outer.error));
    }
    return Answer{outer.value, addressing.dstIp, addressing.dstPort};
  }

  // The XDP program's arrival time in front of the frame's data, 0 without
  // one. The magic is cleared so a recycled frame never shows a stale stamp.
  static std::uint64_t takeArrivalStamp(xsk::Umem& umem, std::uint64_t addr) noexcept {
    if (addr - umem.frameBase(addr) < sizeof(mpxdp_rx_meta)) return 0;
    std::uint8_t* raw = umem.at(addr) - sizeof(mpxdp_rx_meta);
    mpxdp_rx_meta meta{};
    std::memcpy(&meta, raw, sizeof(meta));
    if (meta.magic != MPXDP_RX_META_MAGIC) return 0;
    const std::uint32_t cleared = 0;
    std::memcpy(raw + offsetof(mpxdp_rx_meta, magic), &cleared, sizeof(cleared));
    return meta.rx_ns;
  }

  // What receive() takes from one socket; malformed frames go straight back.
  std::size_t receiveFrom(std::size_t qi, std::span<RxPacket> out, std::uint64_t& bytes) noexcept {
    QueueSocket& q = *queues_[qi];
    xsk::RxRing& rx = q.socket->rx();
    std::uint32_t index = 0;
    const auto want = static_cast<std::uint32_t>(std::min<std::size_t>(out.size(), q.rxFrames));
    std::uint32_t n = rx.peek(want, &index);
    if (n == 0) {
      // With busy polling the read is what polls the device; then look again.
      const bool busyPoll = config_.busyPollUsecs != 0;
      if (busyPoll || q.umem->fill().needsWakeup()) (void)q.socket->wakeRx();
      if (!busyPoll) return 0;
      n = rx.peek(want, &index);
      if (n == 0) return 0;
    }
    std::size_t got = 0;
    std::size_t dropped = 0;
    const std::uint64_t tag = std::uint64_t{qi} << kQueueShift;
    for (std::uint32_t i = 0; i < n; ++i) {
      const xdp_desc& desc = rx.desc(index + i);
      std::uint64_t addr = desc.addr;
      std::uint32_t len = desc.len;
      if (stampPrepended_ && len >= sizeof(mpxdp_rx_meta)) {  // the frame starts after its stamp
        addr += sizeof(mpxdp_rx_meta);
        len -= static_cast<std::uint32_t>(sizeof(mpxdp_rx_meta));
      }
      const std::uint8_t* frame = q.umem->at(addr);
      auto parsed = wire::decodeOuter(std::span<const std::uint8_t>(frame, len));
      if (!parsed.ok() || parsed.value.dstPort != config_.localPort) {
        (void)takeArrivalStamp(*q.umem, addr);
        recycle_[dropped++] = q.umem->frameBase(addr);
        continue;
      }
      out[got].data = frame + parsed.value.udpPayloadOffset;
      out[got].length = static_cast<std::uint32_t>(parsed.value.udpPayloadLen);
      out[got].handle = tag | addr;
      out[got].arrivalNs = takeArrivalStamp(*q.umem, addr);
      bytes += parsed.value.udpPayloadLen;
      ++got;
    }
    rx.release(n);
    if (dropped > 0) {
      (void)q.umem->fill().produce(std::span<const std::uint64_t>(recycle_.data(), dropped));
      counters_.malformed(dropped);
    }
    q.rxPackets.fetch_add(got, std::memory_order_relaxed);
    return got;
  }

  void refill(QueueSocket& q, std::span<const RxPacket> packets) noexcept {
    xsk::FillRing& fill = q.umem->fill();
    std::size_t done = 0;
    while (done < packets.size()) {
      // The fill ring has a slot for every RX frame, so this only loops on chunking.
      std::uint32_t n = fill.freeSlots(static_cast<std::uint32_t>(packets.size() - done));
      n = std::min<std::uint32_t>(n, static_cast<std::uint32_t>(packets.size() - done));
      if (n == 0) break;
      std::uint32_t index = 0;
      fill.reserve(n, &index);
      for (std::uint32_t i = 0; i < n; ++i) {
        fill.addr(index + i) = q.umem->frameBase(packets[done + i].handle & kAddrMask);
      }
      fill.submit(n);
      done += n;
    }
    if (fill.needsWakeup()) (void)q.socket->wakeRx();
  }

  // maxPayload and the wire overhead follow the family (and VLAN tag) the
  // link sends with; outerLen 0: not known yet (receive-only).
  void setFamily(bool v4, std::size_t outerLen) noexcept {
    const std::size_t assumed = outerLen != 0 ? outerLen : wire::kEthHeaderLen + ipUdpLength(v4);
    v4_.store(v4, std::memory_order_relaxed);
    maxPayload_.store(maxPayloadFor(iface_.mtu, config_.frameSize, assumed, v4), std::memory_order_relaxed);
    overhead_.store(static_cast<std::uint32_t>(assumed + (iface_.vlan ? wire::kVlanTagLen : 0)),
                    std::memory_order_relaxed);
  }

  void reapCompletions() noexcept {
    QueueSocket& q = txQueue();
    xsk::CompletionRing& completion = q.umem->completion();
    for (;;) {
      const std::size_t n = completion.consume(scratch_);
      if (n == 0) return;
      for (std::size_t i = 0; i < n; ++i) scratch_[i] = q.umem->frameBase(scratch_[i]);
      txFrames_.free(std::span<const std::uint64_t>(scratch_.data(), n));
      if (n < scratch_.size()) return;
    }
  }

  // TX frames live in the TX socket's UMEM after its RX frames; their handles carry socket index 0.
  bool isTxFrame(std::uint64_t handle) const noexcept {
    const std::uint64_t first = std::uint64_t{rxFramesPerQueue_} * config_.frameSize;
    return handle >= first && handle < queues_.front()->umem->areaSize() &&
           (handle & (config_.frameSize - 1)) == 0;
  }

  // Makes the kernel drain the TX ring: copy mode takes 32 descriptors per
  // kick, so kick while there is a backlog, reaping completions in between.
  Result<void> kick() noexcept {
    QueueSocket& q = txQueue();
    xsk::TxRing& tx = q.socket->tx();
    reapCompletions();
    if (kickSlot_) {
      // The transmit thread kicks; its errors surface on the next call.
      if (const int err = config_.txKicker->takeError(*kickSlot_); err != 0)
        return Error(err, "kicking AF_XDP transmit on " + config_.interface + " (transmit thread)");
      if (tx.outstanding() > 0) config_.txKicker->request(*kickSlot_);
      return {};
    }
    if (const int err = q.socket->drainTx([this] { reapCompletions(); }); err != 0)
      return Error(err, "kicking AF_XDP transmit on " + config_.interface);
    return {};
  }

  LinkEndpointConfig config_;
  InterfaceInfo iface_;
  std::uint32_t rxFramesPerQueue_;
  std::uint32_t txFrameCount_;
  std::vector<std::unique_ptr<QueueSocket>> queues_;  // [0] also transmits
  bpf::SteeringProgram* steering_ = nullptr;
  bool stampPrepended_ = false;  // each received descriptor starts with its mpxdp_rx_meta
  std::size_t rxNext_ = 0;       // socket receive() starts with

  // Outer headers towards the peer, double-buffered for setPeerFrom;
  // active_ is the slot in use, -1 without a peer.
  wire::OuterTemplate outers_[2];
  std::atomic<int> active_{-1};
  std::atomic<std::uint32_t> maxPayload_{0};
  std::atomic<std::uint32_t> overhead_{0};
  mutable std::mutex peerMutex_;
  std::string peer_ = "none";
  std::optional<IpAddress> peerIp_;      // the peer's address and port (acquirePeer compares)
  std::atomic<bool> v4_{true};           // the family the link sends with (IPv6 always has a UDP checksum)
  std::optional<std::size_t> kickSlot_;  // with config_.txKicker: the TX socket's slot there
  std::uint16_t peerPort_ = 0;
  // Return addresses besides the peer (acquirePeer); [0] is unused (outers_).
  struct PeerSlot {
    wire::OuterTemplate outer;
    IpAddress ip;
    std::uint16_t port = 0;
    std::uint32_t refs = 0;
  };
  std::array<PeerSlot, kMaxLinkPeers> peers_{};

  xsk::FrameAllocator txFrames_;
  std::uint32_t txLent_ = 0;
  std::vector<std::uint64_t> scratch_;  // TX side: completion batches, frame allocation
  std::vector<std::uint64_t> recycle_;  // RX side: dropped frames back to the fill ring

  TrafficCounters counters_;
};

Result<void> validate(const LinkEndpointConfig& config) {
  if (config.interface.empty()) return Error(EINVAL, "AF_XDP link: no interface given");
  if (!isPowerOfTwo(config.frameCount) || config.frameCount < 64) {
    return Error(EINVAL, "AF_XDP link on " + config.interface + ": frame count " +
                             std::to_string(config.frameCount) + " must be a power of two >= 64");
  }
  if (config.batchSize == 0 || config.batchSize > config.frameCount / 2) {
    return Error(EINVAL, "AF_XDP link on " + config.interface + ": batch size " +
                             std::to_string(config.batchSize) + " must be in [1, frameCount/2]");
  }
  if (config.localPort == 0 || config.peerPort == 0) {
    return Error(EINVAL, "AF_XDP link on " + config.interface + ": UDP ports must be non-zero");
  }
  if (config.localIp && config.peerIp && config.localIp->family != config.peerIp->family) {
    return Error(EINVAL, "AF_XDP link on " + config.interface + ": local " + config.localIp->toString() +
                             " and peer " + config.peerIp->toString() + " are of different IP families");
  }
  return {};
}

// Outer headers towards config.peerIp: the route must leave through the
// link's interface; the next hop's MAC is resolved (ARP/ND).
Result<wire::OuterTemplate> outerTemplateToPeer(const LinkEndpointConfig& config,
                                                const InterfaceInfo& iface) {
  const IpAddress& peer = *config.peerIp;
  auto route = lookupRoute(peer);
  if (!route.ok()) return route.error().wrap("AF_XDP link on " + config.interface);
  if (route->oifIndex != iface.ifindex) {
    char name[IF_NAMESIZE + 1] = {};
    const char* routeIface = if_indextoname(static_cast<unsigned>(route->oifIndex), name);
    return Error(EHOSTUNREACH, "AF_XDP link on " + config.interface + ": the route to " + peer.toString() +
                                   " leaves through " +
                                   (routeIface ? std::string(routeIface) : std::to_string(route->oifIndex)) +
                                   ", not " + config.interface);
  }
  IpAddress localIp;
  if (config.localIp) {
    localIp = *config.localIp;
  } else if (route->preferredSource) {
    localIp = *route->preferredSource;
  } else {
    auto first = firstInterfaceAddress(iface.ifindex, peer.family);
    if (!first.ok()) return first.error().wrap("AF_XDP link on " + config.interface + ": local address");
    localIp = *first;
  }
  auto peerMac = resolveNeighbour(iface.ifindex, config.interface, route->nextHop(), config.neighbourTimeout);
  if (!peerMac.ok()) return peerMac.error();

  wire::OuterAddressing addressing;
  addressing.srcMac = iface.mac;
  addressing.dstMac = *peerMac;
  addressing.srcIp = localIp;
  addressing.dstIp = peer;
  addressing.srcPort = config.localPort;
  addressing.dstPort = config.peerPort;
  auto outer = wire::OuterTemplate::make(addressing);
  if (!outer.ok()) {
    return Error(EINVAL, std::string("AF_XDP link on ") + config.interface +
                             ": cannot build outer headers: " + wire::toString(outer.error));
  }
  return outer.value;
}

}  // namespace

Result<std::unique_ptr<PacketIo>> openXdpPacketIo(const LinkEndpointConfig& config,
                                                  bpf::SteeringProgram* steering) {
  if (auto valid = validate(config); !valid.ok()) return valid.error();
  auto iface = interfaceInfo(config.interface);
  if (!iface.ok()) return iface.error().wrap("AF_XDP link");

  std::optional<wire::OuterTemplate> outer;
  bool localV4 = true;
  if (config.peerIp) {
    auto built = outerTemplateToPeer(config, *iface);
    if (!built.ok()) return built.error();
    outer = *built;
    localV4 = config.peerIp->isV4();
  } else {
    // Receive-only: nothing to address yet, only the local family matters (for the MTU).
    auto local = config.localIp ? Result<IpAddress>(*config.localIp) : firstInterfaceAddress(iface->ifindex);
    if (!local.ok()) return local.error().wrap("AF_XDP link on " + config.interface);
    localV4 = local->isV4();
  }

  // One socket per RX queue (or the one asked for). Half of frameCount
  // receives, split evenly over the sockets; the other half transmits from
  // the first socket's UMEM.
  std::vector<std::uint32_t> queues;
  if (config.queue) {
    queues.push_back(*config.queue);
  } else {
    for (std::uint32_t q = 0; q < iface->rxQueues; ++q) queues.push_back(q);
  }
  const std::uint32_t rxTotal = config.frameCount / 2;
  const auto perQueue = static_cast<std::uint32_t>(rxTotal / queues.size());
  const std::uint32_t rxFramesPerQueue =
      std::max(kMinRxFramesPerQueue, floorPowerOfTwo(std::max<std::uint32_t>(perQueue, 1)));

  auto io = std::make_unique<XdpPacketIo>(config, *iface, outer, localV4, rxFramesPerQueue);
  for (std::uint32_t queue : queues) {
    if (auto added = io->addQueue(queue); !added.ok()) return added.error();
  }
  if (steering != nullptr) {
    if (auto bound = io->bindSteering(steering); !bound.ok()) {
      return bound.error().wrap("AF_XDP link on " + config.interface);
    }
  }
  return std::unique_ptr<PacketIo>(std::move(io));
}

std::vector<XdpQueueStats> xdpQueueStats(const PacketIo& io) {
  const auto* xdp = dynamic_cast<const XdpPacketIo*>(&linkOf(io));
  if (xdp == nullptr) return {};
  return xdp->queueStats();
}

}  // namespace mpxdp::transport
