// PacketIo over a kernel UDP socket: the unprivileged fallback and the
// kernel-stack baseline. Batches with sendmmsg/recvmmsg over preallocated
// buffers.
#pragma once

#include <memory>

#include "link_config.h"
#include "mpxdp/error.h"
#include "mpxdp/packet_io.h"

namespace mpxdp::transport {

// Binds localIp:localPort (wildcard address when localIp is unset), to the
// interface when one is named and the process may (SO_BINDTODEVICE), and
// connects to peerIp:peerPort (with manyPeers it stays unconnected and
// names the destination in every send). Without peerIp the link is receive-only: it
// binds localIp or else the interface's first address (IPv4 before IPv6),
// connects nowhere and lends no transmit buffers.
Result<std::unique_ptr<PacketIo>> openUdpPacketIo(const LinkEndpointConfig& config);

}  // namespace mpxdp::transport
