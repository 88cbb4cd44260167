// PacketIo over AF_XDP: one socket per RX queue of the interface (flows
// that RSS spreads over queues all arrive), each on its own UMEM. Half of
// frameCount receives, split evenly over the sockets (a power of two each, at
// least 64); the other half transmits, from queue 0's socket only.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "link_config.h"
#include "mpxdp/error.h"
#include "mpxdp/packet_io.h"

namespace mpxdp::bpf {
class SteeringProgram;
}

namespace mpxdp::transport {

// Resolves the route and the next hop's MAC, binds an AF_XDP socket to every
// RX queue of config.interface (ETHTOOL_GCHANNELS; only config.queue when
// set) and precomputes the outer headers. When steering is non-null it is
// attached to the interface (unless it already is) and told to steer each
// queue's packets into its socket; it must outlive the returned object.
// Needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF).
// Without config.peerIp the link is receive-only until setPeerFrom: no route
// or neighbour look-up, reserveTx lends nothing, maxPayload follows the MTU
// for the local address's family (and may change when the learned peer's
// family differs).
Result<std::unique_ptr<PacketIo>> openXdpPacketIo(const LinkEndpointConfig& config,
                                                  bpf::SteeringProgram* steering);

struct XdpQueueStats {
  std::uint32_t queue = 0;
  std::uint64_t rxPackets = 0;  // delivered by receive()
};
// Per bound RX queue of an AF_XDP link, in queue order; empty for other PacketIos.
std::vector<XdpQueueStats> xdpQueueStats(const PacketIo& io);

}  // namespace mpxdp::transport
