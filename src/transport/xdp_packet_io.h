// PacketIo over one AF_XDP socket: one UMEM per socket, half its frames for
// receiving (kept in the fill ring), half for transmitting (a free list).
#pragma once

#include <memory>

#include "link_config.h"
#include "mpxdp/error.h"
#include "mpxdp/packet_io.h"

namespace mpxdp::bpf {
class SteeringProgram;
}

namespace mpxdp::transport {

// Resolves the route and the next hop's MAC, binds an AF_XDP socket to
// (config.interface, config.queue) and precomputes the outer headers. When
// steering is non-null it is attached to the interface (unless it already is)
// and told to steer the queue's packets into this socket; it must outlive the
// returned object. Needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF).
// Without config.peerIp the link is receive-only: no route or neighbour
// look-up, reserveTx lends nothing, maxPayload still follows the MTU.
Result<std::unique_ptr<PacketIo>> openXdpPacketIo(const LinkEndpointConfig& config,
                                                  bpf::SteeringProgram* steering);

}  // namespace mpxdp::transport
