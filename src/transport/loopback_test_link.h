// Test support: kernel-UDP links over loopback (no privileges needed).
#pragma once

#include <unistd.h>

#include <cstdint>

#include "link_config.h"

namespace mpxdp::transport::loopback {

// Each test process owns a block of kPortsPerProcess ports, chosen by its
// pid: parallel tests run with nearby pids, and pid-plus-offset ports overlapped
// between them (one process's testPort(6) was another's testPort(0)).
inline constexpr int kPortsPerProcess = 64;  // offsets 0..63

inline std::uint16_t testPort(int offset) {
  return static_cast<std::uint16_t>(20000 + (getpid() % 700) * kPortsPerProcess + offset % kPortsPerProcess);
}

// One end on 127.0.0.1, sending to peerPort there.
inline LinkEndpointConfig loopbackEnd(std::uint16_t localPort, std::uint16_t peerPort,
                                      std::uint32_t frameCount = 512) {
  LinkEndpointConfig config;
  config.localIp = IpAddress::parse("127.0.0.1");
  config.peerIp = *IpAddress::parse("127.0.0.1");
  config.localPort = localPort;
  config.peerPort = peerPort;
  config.frameCount = frameCount;
  config.frameSize = 2048;
  config.batchSize = 32;
  return config;
}

}  // namespace mpxdp::transport::loopback
