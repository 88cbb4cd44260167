// The endpoint's paths as its connections see them: the links to send on,
// where received buffers go back, and the pump that receives on all paths.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "mpxdp/error.h"
#include "mpxdp/packet_io.h"

namespace mpxdp::conn {

class PathSet {
 public:
  virtual ~PathSet() = default;
  virtual std::size_t size() const noexcept = 0;
  virtual PacketIo& io(std::size_t path) noexcept = 0;
  virtual std::uint64_t rateBps(std::size_t path) const noexcept = 0;
  virtual const std::string& name(std::size_t path) const noexcept = 0;
  virtual bool backup(std::size_t path) const noexcept = 0;
  // Gives a received buffer back to its path (batched).
  virtual void queueRelease(std::size_t path, const RxPacket& packet) noexcept = 0;
  virtual void flushReleases() noexcept = 0;
  // A path without a configured peer answers where this packet came from; a
  // server connection answers where its own packets come from, peer by peer
  // (a keyed connection calls it only for packets that opened).
  virtual void learnPeer(std::size_t path, const RxPacket& packet) noexcept = 0;
  // When the last read of the path that left its ring empty began (0: none
  // yet). A packet the link stamped before it was not readable then: the
  // kernel publishes AF_XDP descriptors at the end of the driver's poll, and
  // on the test bed's veth a packet sat stamped and unpublished for 100 ms,
  // until the link's next packet came.
  virtual std::uint64_t foundEmptyNs(std::size_t /*path*/) const noexcept { return 0; }
  // Receives on every path and runs every connection's timers (Endpoint::poll).
  virtual Result<void> pump() noexcept = 0;
};

}  // namespace mpxdp::conn
