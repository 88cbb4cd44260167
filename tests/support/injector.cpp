#include "injector.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "subprocess.h"

namespace mpxdp::test {

std::optional<Injector> Injector::open(const testbed::TestbedInfo& bed, std::uint16_t port, std::size_t link,
                                       std::uint16_t sourcePort) {
  if (link >= bed.links.size()) {
    ADD_FAILURE() << "no link " << link;
    return std::nullopt;
  }
  auto scope = testbed::NetnsScope::enter(bed.senderNamespace);
  if (!scope) {
    ADD_FAILURE() << scope.error().message();
    return std::nullopt;
  }
  Injector injector;
  injector.fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (injector.fd_ < 0) {
    ADD_FAILURE() << "socket: " << errno;
    return std::nullopt;
  }
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = htons(sourcePort != 0 ? sourcePort : port);
  inet_pton(AF_INET, bed.links[link].senderIp.c_str(), &local.sin_addr);
  if (bind(injector.fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    ADD_FAILURE() << "bind " << bed.links[link].senderIp << ":" << ntohs(local.sin_port) << ": errno "
                  << errno;
    return std::nullopt;
  }
  injector.peer_.sin_family = AF_INET;
  injector.peer_.sin_port = htons(port);
  inet_pton(AF_INET, bed.links[link].receiverIp.c_str(), &injector.peer_.sin_addr);
  return injector;
}

Injector::Injector(Injector&& other) noexcept : fd_(other.fd_), peer_(other.peer_) { other.fd_ = -1; }

Injector::~Injector() {
  if (fd_ >= 0) close(fd_);
}

void Injector::send(const std::vector<std::uint8_t>& bytes) {
  const auto n =
      sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&peer_), sizeof peer_);
  EXPECT_EQ(n, static_cast<ssize_t>(bytes.size())) << "sendto errno " << errno;
}

std::optional<PacketCapture> PacketCapture::open(const std::string& ns, const std::string& interface,
                                                 std::uint16_t port) {
  auto scope = testbed::NetnsScope::enter(ns);
  if (!scope) {
    ADD_FAILURE() << scope.error().message();
    return std::nullopt;
  }
  PacketCapture capture;
  capture.port_ = port;
  capture.fd_ = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
  if (capture.fd_ < 0) {
    ADD_FAILURE() << "AF_PACKET socket: errno " << errno;
    return std::nullopt;
  }
  // The default buffer holds about 90 data frames: a test thread descheduled
  // for a few milliseconds (ASan, a busy CI core) would miss the rest.
  const int bufferBytes = 16 << 20;
  if (setsockopt(capture.fd_, SOL_SOCKET, SO_RCVBUFFORCE, &bufferBytes, sizeof bufferBytes) != 0) {
    ADD_FAILURE() << "SO_RCVBUFFORCE on the capture socket: errno " << errno;
    return std::nullopt;
  }
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  // ETH_P_ALL: only taps of every protocol see outgoing packets.
  addr.sll_protocol = htons(ETH_P_ALL);
  addr.sll_ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
  if (addr.sll_ifindex == 0 || bind(capture.fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ADD_FAILURE() << "bind AF_PACKET to " << interface << ": errno " << errno;
    return std::nullopt;
  }
  return capture;
}

PacketCapture::PacketCapture(PacketCapture&& other) noexcept : fd_(other.fd_), port_(other.port_) {
  other.fd_ = -1;
}

PacketCapture::~PacketCapture() {
  if (fd_ >= 0) close(fd_);
}

std::vector<std::vector<std::uint8_t>> PacketCapture::take(std::size_t count,
                                                           std::chrono::milliseconds limit) {
  std::vector<std::vector<std::uint8_t>> payloads;
  const auto until = std::chrono::steady_clock::now() + limit;
  std::array<std::uint8_t, 65536> frame{};
  while (payloads.size() < count && std::chrono::steady_clock::now() < until) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 10) <= 0) continue;
    sockaddr_ll from{};
    socklen_t fromLen = sizeof from;
    const ssize_t n =
        recvfrom(fd_, frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&from), &fromLen);
    // Only what leaves this host (IPv4, no options, UDP to the port).
    if (n < 28 || from.sll_pkttype != PACKET_OUTGOING || from.sll_protocol != htons(ETH_P_IP)) continue;
    const std::uint8_t* ip = frame.data();
    if ((ip[0] >> 4) != 4 || (ip[0] & 0x0f) != 5 || ip[9] != IPPROTO_UDP) continue;
    const std::uint8_t* udp = ip + 20;
    const std::uint16_t dstPort = static_cast<std::uint16_t>((udp[2] << 8) | udp[3]);
    const std::uint16_t udpLength = static_cast<std::uint16_t>((udp[4] << 8) | udp[5]);
    if (dstPort != port_ || udpLength < 8 || 20 + static_cast<ssize_t>(udpLength) > n) continue;
    payloads.emplace_back(udp + 8, udp + udpLength);
  }
  return payloads;
}

void txChecksumOff(const std::string& ns, const std::string& interface) {
  auto child = testbed::Subprocess::spawn(
      {"/usr/bin/env", "ip", "netns", "exec", ns, "ethtool", "-K", interface, "tx", "off"});
  ASSERT_TRUE(child) << child.error().message();
  const auto status = child->wait(std::chrono::seconds(20));
  ASSERT_EQ(status, std::optional<int>(0)) << child->out() << child->err();
}

}  // namespace mpxdp::test
