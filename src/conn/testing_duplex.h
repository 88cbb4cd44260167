// TEST DOUBLE, built only into tests: a two-way in-memory link made of two
// one-way MemoryWires, so two Endpoints can talk over it.
#pragma once

#include <memory>

#include "testing_transport.h"

namespace mpxdp::conn::testing {

struct DuplexMemoryLink {
  std::unique_ptr<PacketIo> clientEnd;  // sends on toServer, receives from toClient
  std::unique_ptr<PacketIo> serverEnd;  // sends on toClient, receives from toServer
  std::shared_ptr<MemoryWire> toServer;
  std::shared_ptr<MemoryWire> toClient;
};

DuplexMemoryLink makeDuplexLink(MemoryLinkOptions toServer, MemoryLinkOptions toClient,
                                const std::shared_ptr<const Clock>& clock);

// Forwards to `inner`, for tests that wrap a link end to change one call.
class ForwardingPacketIo : public PacketIo {
 public:
  explicit ForwardingPacketIo(std::unique_ptr<PacketIo> inner) : inner_(std::move(inner)) {}
  std::size_t reserveTx(std::span<TxBuffer> out) noexcept override { return inner_->reserveTx(out); }
  Result<std::size_t> commitTx(std::span<const TxBuffer> buffers) noexcept override {
    return inner_->commitTx(buffers);
  }
  Result<void> flushTx() noexcept override { return inner_->flushTx(); }
  Result<std::size_t> receive(std::span<RxPacket> out) noexcept override { return inner_->receive(out); }
  void release(std::span<const RxPacket> packets) noexcept override { inner_->release(packets); }
  std::vector<int> pollFds() const override { return inner_->pollFds(); }
  std::uint32_t maxPayload() const noexcept override { return inner_->maxPayload(); }
  std::uint32_t frameOverheadBytes() const noexcept override { return inner_->frameOverheadBytes(); }
  Result<void> setPeerFrom(const RxPacket& packet) noexcept override { return inner_->setPeerFrom(packet); }
  bool hasPeer() const noexcept override { return inner_->hasPeer(); }
  std::string peerDescription() const override { return inner_->peerDescription(); }
  PacketIoStats stats() const noexcept override { return inner_->stats(); }
  std::string describe() const override { return inner_->describe(); }
  std::uint32_t receiveBuffersPerQueue() const noexcept override { return inner_->receiveBuffersPerQueue(); }

 protected:
  std::unique_ptr<PacketIo> inner_;
};

}  // namespace mpxdp::conn::testing
