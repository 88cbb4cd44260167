// Raw traffic for privileged tests on a test bed: a kernel UDP socket in the
// sender namespace that puts datagrams on one link as if the sender had sent
// them (forged, garbage or replayed packets), and a capture of the sender's
// real packets on a link (AF_PACKET), to replay or alter them.
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "testbed.h"

namespace mpxdp::test {

class Injector {
 public:
  // Bound to link `link`'s sender address and sourcePort (default: port) in
  // the sender namespace, sending to the receiver's address and port on that link.
  static std::optional<Injector> open(const testbed::TestbedInfo& bed, std::uint16_t port,
                                      std::size_t link = 0, std::uint16_t sourcePort = 0);
  Injector(Injector&& other) noexcept;
  Injector& operator=(Injector&&) = delete;
  ~Injector();

  // One datagram (a gtest failure if the socket refuses it).
  void send(const std::vector<std::uint8_t>& bytes);

 private:
  Injector() = default;
  int fd_ = -1;
  sockaddr_in peer_{};
};

// The UDP payloads of up to `count` packets leaving `interface` in namespace
// `ns` for UDP port `port` (an AF_PACKET socket opened there), within `limit`.
// Opens the capture and returns at once; take() waits. Packets an AF_XDP
// socket sends skip the taps (direct transmit): capture a kernel-socket
// sender (--backend udp).
class PacketCapture {
 public:
  static std::optional<PacketCapture> open(const std::string& ns, const std::string& interface,
                                           std::uint16_t port);
  PacketCapture(PacketCapture&& other) noexcept;
  PacketCapture& operator=(PacketCapture&&) = delete;
  ~PacketCapture();
  std::vector<std::vector<std::uint8_t>> take(std::size_t count, std::chrono::milliseconds limit);

 private:
  PacketCapture() = default;
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// Kernel UDP over veth leaves the checksum partial; mpxdp's AF_XDP receiver
// drops such frames, so kernel-socket senders compute it in software.
void txChecksumOff(const std::string& ns, const std::string& interface);

}  // namespace mpxdp::test
