// TEST DOUBLE: see testing_transport.h.
#include "testing_transport.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mpxdp::conn::testing {
namespace {

// Ethernet + IPv4 + UDP, what a real IPv4 link without VLAN adds.
constexpr std::uint32_t kMemoryFrameOverhead = 42;

}  // namespace

MemoryWire::MemoryWire(MemoryLinkOptions options, std::shared_ptr<const Clock> clock)
    : options_(std::move(options)), clock_(std::move(clock)) {
  memory_.resize(std::size_t{options_.frames} * options_.frameSize);
  freeFrames_.reserve(options_.frames);
  for (std::uint32_t i = options_.frames; i > 0; --i) freeFrames_.push_back(i - 1);
  inFlight_.reserve(options_.frames);
}

bool MemoryWire::later(const InFlight& a, const InFlight& b) noexcept {
  return a.arrivalNs != b.arrivalNs ? a.arrivalNs > b.arrivalNs : a.order > b.order;
}

bool MemoryWire::takeFrame(std::uint32_t& frame) noexcept {
  if (freeFrames_.empty()) return false;
  frame = freeFrames_.back();
  freeFrames_.pop_back();
  return true;
}

std::uint32_t MemoryWire::framesOutstanding() const noexcept {
  return options_.frames - static_cast<std::uint32_t>(freeFrames_.size());
}

void MemoryWire::enqueue(std::uint32_t frame, std::uint32_t length, std::uint64_t nowNs) {
  const std::uint64_t index = packetsCommitted_++;
  bytesCommitted_ += length;
  if (options_.drop && options_.drop(index, std::span<const std::uint8_t>(frameData(frame), length))) {
    ++packetsDropped_;
    putFrame(frame);
    return;
  }
  std::uint64_t arrival = nowNs + options_.delayNs;
  if (options_.extraDelayNs) arrival += options_.extraDelayNs(index);
  inFlight_.push_back(InFlight{arrival, order_++, frame, length});
  std::push_heap(inFlight_.begin(), inFlight_.end(), later);
}

bool MemoryWire::inject(std::span<const std::uint8_t> payload) {
  std::uint32_t frame = 0;
  if (payload.size() > options_.frameSize || !takeFrame(frame)) return false;
  std::memcpy(frameData(frame), payload.data(), payload.size());
  inFlight_.push_back(InFlight{clock_->nowNs() + options_.delayNs, order_++, frame,
                               static_cast<std::uint32_t>(payload.size())});
  std::push_heap(inFlight_.begin(), inFlight_.end(), later);
  return true;
}

// Sending end: lends frames and puts committed ones on the wire.
class MemoryTxEnd final : public PacketIo {
 public:
  explicit MemoryTxEnd(std::shared_ptr<MemoryWire> wire) : wire_(std::move(wire)) {}

  std::size_t reserveTx(std::span<TxBuffer> out) noexcept override {
    std::size_t n = 0;
    std::uint32_t frame = 0;
    while (n < out.size() && wire_->takeFrame(frame)) {
      out[n++] = TxBuffer{wire_->frameData(frame), wire_->options_.frameSize, 0, frame};
    }
    return n;
  }

  Result<std::size_t> commitTx(std::span<const TxBuffer> buffers) noexcept override {
    const std::uint64_t nowNs = wire_->clock_->nowNs();
    std::size_t sent = 0;
    for (const TxBuffer& buffer : buffers) {
      const auto frame = static_cast<std::uint32_t>(buffer.handle);
      if (buffer.length == 0 || buffer.length > wire_->options_.frameSize) {
        wire_->putFrame(frame);
        continue;
      }
      wire_->enqueue(frame, buffer.length, nowNs);
      ++sent;
      ++stats_.txPackets;
      stats_.txBytes += buffer.length;
    }
    if (sent > 0 && wire_->options_.onCommit) wire_->options_.onCommit(sent);
    return sent;
  }

  Result<void> flushTx() noexcept override { return {}; }
  Result<std::size_t> receive(std::span<RxPacket>) noexcept override { return std::size_t{0}; }
  void release(std::span<const RxPacket>) noexcept override {}
  std::vector<int> pollFds() const override { return {}; }
  std::uint32_t maxPayload() const noexcept override { return wire_->options_.frameSize; }
  std::uint32_t frameOverheadBytes() const noexcept override { return kMemoryFrameOverhead; }
  // The sending end always has its peer (the receiving end); it receives
  // nothing, so there is nothing to learn from.
  Result<void> setPeerFrom(const RxPacket&) noexcept override { return {}; }
  bool hasPeer() const noexcept override { return true; }
  std::string peerDescription() const override { return "memory-rx:" + wire_->options_.name; }
  PacketIoStats stats() const noexcept override { return stats_; }
  std::string describe() const override { return "memory-tx:" + wire_->options_.name; }

 private:
  std::shared_ptr<MemoryWire> wire_;
  PacketIoStats stats_;
};

// Receiving end: hands out packets whose arrival time has come.
class MemoryRxEnd final : public PacketIo {
 public:
  explicit MemoryRxEnd(std::shared_ptr<MemoryWire> wire) : wire_(std::move(wire)) {}

  std::size_t reserveTx(std::span<TxBuffer>) noexcept override { return 0; }
  Result<std::size_t> commitTx(std::span<const TxBuffer> buffers) noexcept override {
    if (!buffers.empty()) return Error(EINVAL, "memory link receive end cannot transmit");
    return std::size_t{0};
  }
  Result<void> flushTx() noexcept override { return {}; }

  // The arrival time on the receiving host's clock, as the XDP transport's stamp; 0 without stamps.
  std::uint64_t stamp(std::uint64_t arrivalNs) const {
    const MemoryLinkOptions& options = wire_->options_;
    if (!options.stampArrival) return 0;
    return options.receiverTime ? options.receiverTime(arrivalNs) : arrivalNs;
  }

  Result<std::size_t> receive(std::span<RxPacket> out) noexcept override {
    const std::uint64_t nowNs = wire_->clock_->nowNs();
    auto& heap = wire_->inFlight_;
    std::size_t n = 0;
    while (n < out.size() && !heap.empty() && heap.front().arrivalNs <= nowNs) {
      std::pop_heap(heap.begin(), heap.end(), MemoryWire::later);
      const MemoryWire::InFlight packet = heap.back();
      heap.pop_back();
      out[n++] =
          RxPacket{wire_->frameData(packet.frame), packet.length, packet.frame, stamp(packet.arrivalNs)};
      ++stats_.rxPackets;
      stats_.rxBytes += packet.length;
      ++wire_->packetsReceived_;
    }
    return n;
  }

  void release(std::span<const RxPacket> packets) noexcept override {
    for (const RxPacket& packet : packets) wire_->putFrame(static_cast<std::uint32_t>(packet.handle));
  }

  std::vector<int> pollFds() const override { return {}; }
  std::uint32_t maxPayload() const noexcept override { return wire_->options_.frameSize; }
  std::uint32_t frameOverheadBytes() const noexcept override { return kMemoryFrameOverhead; }
  // One-way wire: the receiving end cannot send back.
  Result<void> setPeerFrom(const RxPacket&) noexcept override {
    return Error(EOPNOTSUPP,
                 "memory link " + wire_->options_.name + " is one-way: its receive end cannot send");
  }
  bool hasPeer() const noexcept override { return false; }
  std::string peerDescription() const override { return "none"; }
  PacketIoStats stats() const noexcept override { return stats_; }
  std::string describe() const override { return "memory-rx:" + wire_->options_.name; }

 private:
  std::shared_ptr<MemoryWire> wire_;
  PacketIoStats stats_;
};

MemoryLink makeMemoryLink(MemoryLinkOptions options, std::shared_ptr<const Clock> clock) {
  auto wire = std::make_shared<MemoryWire>(std::move(options), std::move(clock));
  MemoryLink link;
  link.txEnd = std::make_unique<MemoryTxEnd>(wire);
  link.rxEnd = std::make_unique<MemoryRxEnd>(wire);
  link.wire = std::move(wire);
  return link;
}

}  // namespace mpxdp::conn::testing
