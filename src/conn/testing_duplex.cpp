#include "testing_duplex.h"

#include <algorithm>

namespace mpxdp::conn::testing {
namespace {

class DuplexEnd final : public PacketIo {
 public:
  DuplexEnd(std::unique_ptr<PacketIo> tx, std::unique_ptr<PacketIo> rx)
      : tx_(std::move(tx)), rx_(std::move(rx)) {}
  std::size_t reserveTx(std::span<TxBuffer> out) noexcept override { return tx_->reserveTx(out); }
  Result<std::size_t> commitTx(std::span<const TxBuffer> buffers) noexcept override {
    return tx_->commitTx(buffers);
  }
  Result<void> flushTx() noexcept override { return tx_->flushTx(); }
  Result<std::size_t> receive(std::span<RxPacket> out) noexcept override { return rx_->receive(out); }
  void release(std::span<const RxPacket> packets) noexcept override { rx_->release(packets); }
  std::vector<int> pollFds() const override { return rx_->pollFds(); }
  std::uint32_t maxPayload() const noexcept override {
    return std::min(tx_->maxPayload(), rx_->maxPayload());
  }
  std::uint32_t frameOverheadBytes() const noexcept override { return tx_->frameOverheadBytes(); }
  Result<void> setPeerFrom(const RxPacket& /*packet*/) noexcept override { return {}; }
  bool hasPeer() const noexcept override { return true; }
  std::string peerDescription() const override { return "memory peer"; }
  PacketIoStats stats() const noexcept override {
    PacketIoStats s = rx_->stats();
    const PacketIoStats t = tx_->stats();
    s.txPackets = t.txPackets;
    s.txBytes = t.txBytes;
    return s;
  }
  std::string describe() const override { return "duplex " + tx_->describe(); }

 private:
  std::unique_ptr<PacketIo> tx_;
  std::unique_ptr<PacketIo> rx_;
};

}  // namespace

DuplexMemoryLink makeDuplexLink(MemoryLinkOptions toServer, MemoryLinkOptions toClient,
                                const std::shared_ptr<const Clock>& clock) {
  MemoryLink up = makeMemoryLink(std::move(toServer), clock);
  MemoryLink down = makeMemoryLink(std::move(toClient), clock);
  DuplexMemoryLink link;
  link.clientEnd = std::make_unique<DuplexEnd>(std::move(up.txEnd), std::move(down.rxEnd));
  link.serverEnd = std::make_unique<DuplexEnd>(std::move(down.txEnd), std::move(up.rxEnd));
  link.toServer = std::move(up.wire);
  link.toClient = std::move(down.wire);
  return link;
}

}  // namespace mpxdp::conn::testing
