// Test support: kernel-UDP links over loopback (no privileges needed).
#pragma once

#include <unistd.h>

#include <cstdint>

#include "link_config.h"

namespace mpxdp::transport::loopback {

// Ports unlikely to collide with parallel test runs.
inline std::uint16_t testPort(int offset) {
  return static_cast<std::uint16_t>(20000 + (getpid() % 20000) + offset);
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
