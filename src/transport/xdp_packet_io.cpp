#include "xdp_packet_io.h"

#include <net/if.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include "codec.h"
#include "frame_allocator.h"
#include "netlink_route.h"
#include "steering.h"
#include "traffic_counters.h"
#include "umem.h"
#include "xsk_socket.h"

namespace mpxdp::transport {
namespace {

bool isPowerOfTwo(std::uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Copy mode moves at most 32 descriptors per kick, so kicks repeat while
// they make progress; a few in a row without progress (device busy) leave
// the rest for the next commitTx/flushTx.
constexpr int kMaxIdleKicks = 4;

class XdpPacketIo final : public PacketIo {
 public:
  // outer is unset on a receive-only link (no peer); outerLen is what the
  // outer headers of the link's family take.
  XdpPacketIo(const LinkEndpointConfig& config, std::unique_ptr<xsk::Umem> umem,
              std::unique_ptr<xsk::XskSocket> socket, const std::optional<wire::OuterTemplate>& outer,
              std::size_t outerLen, std::uint32_t maxPayload)
      : config_(config),
        umem_(std::move(umem)),
        socket_(std::move(socket)),
        outer_(outer),
        outerLen_(outerLen),
        maxPayload_(maxPayload),
        rxFrameCount_(config.frameCount / 2),
        txFrames_(config.frameCount - config.frameCount / 2, config.frameSize,
                  std::uint64_t{config.frameCount / 2} * config.frameSize),
        scratch_(std::max<std::uint32_t>(config.batchSize, 64)) {}

  ~XdpPacketIo() override {
    if (steering_ != nullptr) (void)steering_->unbindSocket(socket_->ifindex(), config_.queue);
    socket_.reset();  // before the UMEM it uses
  }

  // Puts every RX frame in the fill ring.
  Result<void> primeFillRing() {
    std::vector<std::uint64_t> rxFrames(rxFrameCount_);
    for (std::uint32_t i = 0; i < rxFrameCount_; ++i) rxFrames[i] = std::uint64_t{i} * config_.frameSize;
    if (umem_->fill().produce(rxFrames) != rxFrames.size()) {
      return Error(ENOSPC, "fill ring of " + config_.interface + " cannot take all RX frames");
    }
    return {};
  }

  Result<void> bindSteering(bpf::SteeringProgram* steering) {
    auto attached = steering->attach(socket_->ifindex());
    if (!attached.ok() && attached.error().code() != EEXIST) return attached.error();
    auto bound = steering->bindSocket(socket_->ifindex(), config_.queue, socket_->fd());
    if (!bound.ok()) return bound.error();
    steering_ = steering;
    return {};
  }

  std::size_t reserveTx(std::span<TxBuffer> out) noexcept override {
    if (!outer_) return 0;  // receive-only
    reapCompletions();
    const auto wanted = static_cast<std::uint32_t>(out.size());
    const std::uint32_t ringFree = socket_->tx().freeSlots(txLent_ + wanted);
    std::uint32_t n = ringFree > txLent_ ? ringFree - txLent_ : 0;
    if (n > wanted) n = wanted;
    std::size_t got = 0;
    while (got < n) {
      const std::size_t chunk = std::min<std::size_t>(n - got, scratch_.size());
      const std::size_t allocated = txFrames_.allocate(std::span<std::uint64_t>(scratch_.data(), chunk));
      for (std::size_t i = 0; i < allocated; ++i) {
        TxBuffer& buffer = out[got + i];
        buffer.data = umem_->at(scratch_[i] + wire::kMaxOuterLen);
        buffer.capacity = maxPayload_;
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
    if (!outer_) {
      if (buffers.empty()) return std::size_t{0};
      return Error(EOPNOTSUPP, "commitTx on " + config_.interface + ": the link is receive-only (no peer)");
    }
    std::uint32_t sendable = 0;
    bool tooLong = false;
    bool foreign = false;
    for (const TxBuffer& buffer : buffers) {
      if (buffer.length > maxPayload_) tooLong = true;
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
                                 std::to_string(maxPayload_) + " bytes");
    }
    std::uint32_t index = 0;
    if (sendable > 0 && socket_->tx().reserve(sendable, &index) != sendable) {
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
      const std::uint64_t start = buffer.handle + wire::kMaxOuterLen - outerLen_;
      const std::size_t frameLen = outerLen_ + buffer.length;
      // Cannot fail: the template is valid and lengths were checked above.
      (void)outer_->write(std::span<std::uint8_t>(umem_->at(start), frameLen), buffer.length,
                          config_.udpChecksum);
      xdp_desc& desc = socket_->tx().desc(index++);
      desc.addr = start;
      desc.len = static_cast<std::uint32_t>(frameLen);
      desc.options = 0;
      bytes += buffer.length;
    }
    if (sendable == 0) return std::size_t{0};
    socket_->tx().submit(sendable);
    counters_.sent(sendable, bytes);
    auto kicked = kick();
    if (!kicked.ok()) return kicked.error();
    return std::size_t{sendable};
  }

  Result<void> flushTx() noexcept override {
    if (!outer_) return {};
    return kick();
  }

  Result<std::size_t> receive(std::span<RxPacket> out) noexcept override {
    xsk::RxRing& rx = socket_->rx();
    std::uint32_t index = 0;
    const std::uint32_t n =
        rx.peek(static_cast<std::uint32_t>(std::min<std::size_t>(out.size(), rxFrameCount_)), &index);
    if (n == 0) {
      if (umem_->fill().needsWakeup()) (void)socket_->wakeRx();
      return std::size_t{0};
    }
    std::size_t got = 0;
    std::size_t dropped = 0;
    std::uint64_t bytes = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      const xdp_desc& desc = rx.desc(index + i);
      const std::uint8_t* frame = umem_->at(desc.addr);
      auto parsed = wire::decodeOuter(std::span<const std::uint8_t>(frame, desc.len));
      if (!parsed.ok() || parsed.value.dstPort != config_.localPort) {
        recycle_[dropped++] = umem_->frameBase(desc.addr);
        continue;
      }
      out[got].data = frame + parsed.value.udpPayloadOffset;
      out[got].length = static_cast<std::uint32_t>(parsed.value.udpPayloadLen);
      out[got].handle = desc.addr;
      bytes += parsed.value.udpPayloadLen;
      ++got;
    }
    rx.release(n);
    if (dropped > 0) {
      refill(std::span<const std::uint64_t>(recycle_.data(), dropped));
      counters_.malformed(dropped);
    }
    counters_.received(got, bytes);
    return got;
  }

  void release(std::span<const RxPacket> packets) noexcept override {
    xsk::FillRing& fill = umem_->fill();
    std::size_t done = 0;
    while (done < packets.size()) {
      // The fill ring has a slot for every RX frame, so this only loops on chunking.
      std::uint32_t n = fill.freeSlots(static_cast<std::uint32_t>(packets.size() - done));
      n = std::min<std::uint32_t>(n, static_cast<std::uint32_t>(packets.size() - done));
      if (n == 0) break;
      std::uint32_t index = 0;
      fill.reserve(n, &index);
      for (std::uint32_t i = 0; i < n; ++i) fill.addr(index + i) = umem_->frameBase(packets[done + i].handle);
      fill.submit(n);
      done += n;
    }
    if (fill.needsWakeup()) (void)socket_->wakeRx();
  }

  int pollFd() const noexcept override { return socket_->fd(); }
  std::uint32_t maxPayload() const noexcept override { return maxPayload_; }

  PacketIoStats stats() const noexcept override {
    PacketIoStats stats = counters_.snapshot();
    auto kernel = socket_->statistics();
    if (kernel.ok()) {
      stats.rxDropped = kernel->rxDropped;
      stats.rxInvalidDescs = kernel->rxInvalidDescs;
      stats.txInvalidDescs = kernel->txInvalidDescs;
      stats.rxRingFull = kernel->rxRingFull;
      stats.rxFillRingEmpty = kernel->rxFillRingEmptyDescs;
      stats.txRingEmpty = kernel->txRingEmptyDescs;
    }
    return stats;
  }

  std::string describe() const override {
    return "xdp:" + config_.interface + " q" + std::to_string(config_.queue) +
           (socket_->zeroCopy() ? " zerocopy" : " copy") + (outer_ ? "" : " rx-only");
  }

  void allocateScratch() { recycle_.resize(rxFrameCount_); }

 private:
  void reapCompletions() noexcept {
    xsk::CompletionRing& completion = umem_->completion();
    for (;;) {
      const std::size_t n = completion.consume(scratch_);
      if (n == 0) return;
      for (std::size_t i = 0; i < n; ++i) scratch_[i] = umem_->frameBase(scratch_[i]);
      txFrames_.free(std::span<const std::uint64_t>(scratch_.data(), n));
      if (n < scratch_.size()) return;
    }
  }

  bool isTxFrame(std::uint64_t handle) const noexcept {
    const std::uint64_t first = std::uint64_t{rxFrameCount_} * config_.frameSize;
    return handle >= first && handle < umem_->areaSize() && (handle & (config_.frameSize - 1)) == 0;
  }

  void refill(std::span<const std::uint64_t> frames) noexcept { (void)umem_->fill().produce(frames); }

  // Makes the kernel drain the TX ring: copy mode takes 32 descriptors per
  // kick, so kick while there is a backlog, reaping completions in between.
  Result<void> kick() noexcept {
    xsk::TxRing& tx = socket_->tx();
    reapCompletions();
    int idleKicks = 0;
    std::uint32_t outstanding = tx.outstanding();
    while (outstanding > 0 && tx.needsWakeup() && idleKicks < kMaxIdleKicks) {
      const int err = socket_->kickTx();
      if (err != 0 && err != EAGAIN && err != EBUSY && err != ENOBUFS && err != EINTR) {
        return Error(err, "kicking AF_XDP transmit on " + config_.interface);
      }
      reapCompletions();
      const std::uint32_t now = tx.outstanding();
      idleKicks = now < outstanding ? 0 : idleKicks + 1;
      outstanding = now;
    }
    return {};
  }

  LinkEndpointConfig config_;
  std::unique_ptr<xsk::Umem> umem_;
  std::unique_ptr<xsk::XskSocket> socket_;
  bpf::SteeringProgram* steering_ = nullptr;
  std::optional<wire::OuterTemplate> outer_;
  std::size_t outerLen_;
  std::uint32_t maxPayload_;
  std::uint32_t rxFrameCount_;
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
  std::size_t outerLen = 0;
  if (config.peerIp) {
    auto built = outerTemplateToPeer(config, *iface);
    if (!built.ok()) return built.error();
    outer = *built;
    outerLen = outer->headerLength();
  } else {
    // Receive-only: nothing to address, only the local family matters (for the MTU).
    auto local = config.localIp ? Result<IpAddress>(*config.localIp) : firstInterfaceAddress(iface->ifindex);
    if (!local.ok()) return local.error().wrap("AF_XDP link on " + config.interface);
    outerLen = wire::kEthHeaderLen + (local->isV4() ? wire::kIpv4HeaderLen : wire::kIpv6HeaderLen) +
               wire::kUdpHeaderLen;
  }
  const std::size_t ipUdpLen =
      outerLen - wire::kEthHeaderLen;  // what the MTU has to hold besides the payload
  const std::size_t byMtu = iface->mtu > ipUdpLen ? iface->mtu - ipUdpLen : 0;
  // Copy-mode RX puts the packet 256 bytes (XDP_PACKET_HEADROOM) into the frame.
  const std::size_t byFrame = config.frameSize - std::max<std::size_t>(wire::kMaxOuterLen, 256 + outerLen);
  const auto maxPayload = static_cast<std::uint32_t>(std::min(byMtu, byFrame));

  xsk::UmemConfig umemConfig;
  umemConfig.frameCount = config.frameCount;
  umemConfig.frameSize = config.frameSize;
  umemConfig.fillRingSize = config.frameCount / 2;
  umemConfig.completionRingSize = config.frameCount / 2;
  auto umem = xsk::Umem::create(umemConfig);
  if (!umem.ok()) return umem.error().wrap("AF_XDP link on " + config.interface);

  xsk::XskSocketConfig socketConfig;
  socketConfig.interface = config.interface;
  socketConfig.queue = config.queue;
  socketConfig.rxRingSize = config.frameCount / 2;
  socketConfig.txRingSize = config.frameCount / 2;
  socketConfig.mode = config.xdpMode;
  auto socket = xsk::XskSocket::create(**umem, socketConfig);
  if (!socket.ok()) return socket.error();

  auto io = std::make_unique<XdpPacketIo>(config, std::move(*umem), std::move(*socket), outer, outerLen,
                                          maxPayload);
  io->allocateScratch();
  if (auto primed = io->primeFillRing(); !primed.ok()) return primed.error();
  if (steering != nullptr) {
    if (auto bound = io->bindSteering(steering); !bound.ok()) {
      return bound.error().wrap("AF_XDP link on " + config.interface);
    }
  }
  return std::unique_ptr<PacketIo>(std::move(io));
}

}  // namespace mpxdp::transport
