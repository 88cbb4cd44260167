// Creates real TUN interfaces and checks what the kernel sees: name, index,
// flags, offloads, MTU, addresses, removal on close, and packets in both
// directions through the kernel's IP stack. Every privileged test body runs
// on a thread of its own inside a fresh network namespace (unshare affects
// only the calling thread), which the kernel tears down with the thread.
#include "tun_device.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "privilege.h"

namespace mpxdp::tun {
namespace {

constexpr std::size_t kVnetBytes = 10;
constexpr std::uint8_t kNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr std::uint8_t kGsoNone = 0;    // VIRTIO_NET_HDR_GSO_NONE
constexpr std::uint8_t kGsoUdpL4 = 5;   // VIRTIO_NET_HDR_GSO_UDP_L4
constexpr std::uint8_t kProtoUdp = 17;
constexpr char kTunAddress[] = "10.77.0.1";
constexpr char kPeerAddress[] = "10.77.0.2";

std::optional<std::string> tunMissing() {
  if (auto missing = test::privilegeMissing()) return missing;
  if (access("/dev/net/tun", R_OK | W_OK) != 0) {
    return std::string("/dev/net/tun not usable (load the tun module): ") + std::strerror(errno);
  }
  return std::nullopt;
}

#define REQUIRE_TUN()                                                                      \
  do {                                                                                     \
    auto tunMissing_ = tunMissing();                                                       \
    if (tunMissing_) {                                                                     \
      if (::mpxdp::test::runningInCi()) FAIL() << "cannot run under CI: " << *tunMissing_; \
      GTEST_SKIP() << *tunMissing_;                                                        \
    }                                                                                      \
  } while (0)

void inFreshNetns(const std::function<void()>& body) {
  std::thread worker([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      ADD_FAILURE() << "unshare(CLONE_NEWNET): " << std::strerror(errno);
      return;
    }
    body();
  });
  worker.join();
}

TunOptions options(const std::string& name, bool virtioHeader = true) {
  TunOptions result;
  result.name = name;
  result.virtioHeader = virtioHeader;
  return result;
}

bool kernelAtLeast(int major, int minor) {
  utsname info{};
  if (uname(&info) != 0) return false;
  int haveMajor = 0;
  int haveMinor = 0;
  if (std::sscanf(info.release, "%d.%d", &haveMajor, &haveMinor) != 2) return false;
  return haveMajor > major || (haveMajor == major && haveMinor >= minor);
}

// One interface ioctl in the calling thread's namespace; nullopt on failure.
std::optional<ifreq> queryInterface(const std::string& name, unsigned long command) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  ifreq request{};
  std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
  const int rc = ioctl(fd, command, &request);
  close(fd);
  if (rc != 0) return std::nullopt;
  return request;
}

struct FoundAddress {
  std::string address;
  int prefixLength = 0;
};

std::vector<FoundAddress> addressesOf(const std::string& name) {
  std::vector<FoundAddress> found;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return found;
  for (ifaddrs* entry = list; entry != nullptr; entry = entry->ifa_next) {
    if (entry->ifa_addr == nullptr || name != entry->ifa_name) continue;
    const int family = entry->ifa_addr->sa_family;
    if (family != AF_INET && family != AF_INET6) continue;
    char text[INET6_ADDRSTRLEN] = {};
    const std::uint8_t* mask = nullptr;
    std::size_t maskBytes = 0;
    if (family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(entry->ifa_addr)->sin_addr, text, sizeof(text));
      mask = reinterpret_cast<const std::uint8_t*>(
          &reinterpret_cast<sockaddr_in*>(entry->ifa_netmask)->sin_addr);
      maskBytes = 4;
    } else {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(entry->ifa_addr)->sin6_addr, text, sizeof(text));
      mask = reinterpret_cast<const std::uint8_t*>(
          &reinterpret_cast<sockaddr_in6*>(entry->ifa_netmask)->sin6_addr);
      maskBytes = 16;
    }
    int length = 0;
    for (std::size_t i = 0; i < maskBytes; ++i) length += __builtin_popcount(mask[i]);
    found.push_back({text, length});
  }
  freeifaddrs(list);
  return found;
}

bool hasAddress(const std::vector<FoundAddress>& addresses, const std::string& address, int length) {
  for (const auto& found : addresses) {
    if (found.address == address && found.prefixLength == length) return true;
  }
  return false;
}

std::uint16_t load16(const std::uint8_t* at) { return static_cast<std::uint16_t>((at[0] << 8) | at[1]); }
std::uint16_t loadLe16(const std::uint8_t* at) { return static_cast<std::uint16_t>(at[0] | (at[1] << 8)); }
void store16(std::uint8_t* at, std::uint16_t value) {
  at[0] = static_cast<std::uint8_t>(value >> 8);
  at[1] = static_cast<std::uint8_t>(value);
}

std::uint32_t sumWords(const std::uint8_t* data, std::size_t len, std::uint32_t sum = 0) {
  for (std::size_t i = 0; i + 1 < len; i += 2) sum += load16(data + i);
  if (len % 2 != 0) sum += static_cast<std::uint32_t>(data[len - 1]) << 8;
  return sum;
}

std::uint16_t fold(std::uint32_t sum) {
  while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

std::array<std::uint8_t, 4> v4Bytes(const char* text) {
  std::array<std::uint8_t, 4> bytes{};
  inet_pton(AF_INET, text, bytes.data());
  return bytes;
}

// An IPv4/UDP packet with valid header and UDP checksums.
std::vector<std::uint8_t> udpPacket(const char* source, std::uint16_t sourcePort, const char* destination,
                                    std::uint16_t destinationPort, const std::string& payload) {
  const std::size_t udpLength = 8 + payload.size();
  std::vector<std::uint8_t> packet(20 + udpLength);
  std::uint8_t* ip = packet.data();
  ip[0] = 0x45;
  store16(ip + 2, static_cast<std::uint16_t>(packet.size()));
  store16(ip + 4, 0x1234);  // identification
  ip[8] = 64;               // TTL
  ip[9] = kProtoUdp;
  const auto src = v4Bytes(source);
  const auto dst = v4Bytes(destination);
  std::memcpy(ip + 12, src.data(), 4);
  std::memcpy(ip + 16, dst.data(), 4);
  store16(ip + 10, static_cast<std::uint16_t>(~fold(sumWords(ip, 20))));

  std::uint8_t* udp = ip + 20;
  store16(udp, sourcePort);
  store16(udp + 2, destinationPort);
  store16(udp + 4, static_cast<std::uint16_t>(udpLength));
  std::copy(payload.begin(), payload.end(), udp + 8);
  std::uint32_t pseudo = sumWords(ip + 12, 8) + kProtoUdp + static_cast<std::uint32_t>(udpLength);
  std::uint16_t checksum = static_cast<std::uint16_t>(~fold(sumWords(udp, udpLength, pseudo)));
  if (checksum == 0) checksum = 0xffff;
  store16(udp + 6, checksum);
  return packet;
}

// Reads from the device until an IPv4 UDP packet to destinationPort arrives
// (the kernel may also send IPv6 router solicitations and the like); returns
// it with its virtio header, or empty after a second.
std::vector<std::uint8_t> readUdpTo(TunDevice& device, std::uint16_t destinationPort,
                                    std::uint32_t queue = 0) {
  std::vector<std::uint8_t> buffer(65535 + kVnetBytes);
  const std::size_t skip = device.virtioHeader() ? kVnetBytes : 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd waiting{device.queueFd(queue), POLLIN, 0};
    poll(&waiting, 1, 50);
    auto got = device.read(queue, buffer);
    if (!got.ok()) {
      ADD_FAILURE() << got.error().message();
      return {};
    }
    if (*got < skip + 28) continue;
    const std::uint8_t* ip = buffer.data() + skip;
    const std::size_t headerBytes = (ip[0] & 0x0fU) * 4U;
    if ((ip[0] >> 4) != 4 || ip[9] != kProtoUdp || *got < skip + headerBytes + 8) continue;
    if (load16(ip + headerBytes + 2) != destinationPort) continue;
    buffer.resize(*got);
    return buffer;
  }
  return {};
}

int udpSocket(const char* address, std::uint16_t port) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = htons(port);
  inet_pton(AF_INET, address, &local.sin_addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool sendUdp(int fd, const char* address, std::uint16_t port, const std::string& payload) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  inet_pton(AF_INET, address, &to.sin_addr);
  return sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) ==
         static_cast<ssize_t>(payload.size());
}

std::string receiveUdp(int fd) {
  pollfd waiting{fd, POLLIN, 0};
  if (poll(&waiting, 1, 1000) != 1) return "";
  std::array<char, 2048> buffer{};
  const ssize_t got = recv(fd, buffer.data(), buffer.size(), 0);
  return got > 0 ? std::string(buffer.data(), static_cast<std::size_t>(got)) : "";
}

// A device that is up with 10.77.0.1/24, the setting of the round-trip tests.
std::optional<TunDevice> upDevice(bool virtioHeader) {
  auto device = TunDevice::open(options("mpxtun0", virtioHeader));
  if (!device.ok()) {
    ADD_FAILURE() << device.error().message();
    return std::nullopt;
  }
  auto prefix = IpPrefix::parse(std::string(kTunAddress) + "/24");
  if (!prefix.ok()) return std::nullopt;
  auto added = device->addAddress(*prefix);
  auto up = device->setUp(true);
  if (!added.ok() || !up.ok()) {
    ADD_FAILURE() << (added.ok() ? up.error().message() : added.error().message());
    return std::nullopt;
  }
  return std::move(*device);
}

// ---- IpPrefix (no privileges needed) --------------------------------------------------------------

TEST(IpPrefix, ParsesV4AndV6) {
  auto v4 = IpPrefix::parse("10.9.0.1/24");
  ASSERT_TRUE(v4.ok()) << v4.error().message();
  EXPECT_TRUE(v4->address.isV4());
  EXPECT_EQ(v4->length, 24);
  EXPECT_EQ(v4->toString(), "10.9.0.1/24");

  auto v6 = IpPrefix::parse("fd00::1/64");
  ASSERT_TRUE(v6.ok()) << v6.error().message();
  EXPECT_FALSE(v6->address.isV4());
  EXPECT_EQ(v6->length, 64);
  EXPECT_EQ(v6->toString(), "fd00::1/64");

  EXPECT_EQ(IpPrefix::parse("0.0.0.0/0")->length, 0);
  EXPECT_EQ(IpPrefix::parse("10.0.0.1/32")->length, 32);
  EXPECT_EQ(IpPrefix::parse("fd00::1/128")->length, 128);
}

TEST(IpPrefix, RejectsBadTextNamingIt) {
  for (const char* bad :
       {"10.9.0.1", "10.9.0.1/", "10.9.0.1/33", "fd00::1/129", "fd00::1/999", "10.9.0/24", "nonsense/24",
        "/24", "10.9.0.1/24x", "10.9.0.1/-1", "10.9.0.1/ 24", "", "10.9.0.1//24"}) {
    auto parsed = IpPrefix::parse(bad);
    ASSERT_FALSE(parsed.ok()) << "accepted '" << bad << "'";
    EXPECT_EQ(parsed.error().code(), EINVAL) << bad;
    EXPECT_NE(parsed.error().context().find(std::string("'") + bad + "'"), std::string::npos)
        << parsed.error().context();
  }
}

// ---- the device -----------------------------------------------------------------------------------

TEST(TunDevice, CreatesNonPersistentDeviceWithVirtioHeaderAndOffloads) {
  REQUIRE_TUN();
  inFreshNetns([] {
    TunOptions wanted = options("mpxtun0");
    wanted.txQueueLength = 777;
    auto device = TunDevice::open(wanted);
    ASSERT_TRUE(device.ok()) << device.error().message();
    EXPECT_EQ(device->name(), "mpxtun0");
    EXPECT_GE(device->fd(), 0);
    EXPECT_GT(device->ifindex(), 0);
    EXPECT_EQ(device->ifindex(), static_cast<int>(if_nametoindex("mpxtun0")));
    EXPECT_TRUE(device->virtioHeader());

    ifreq flags{};
    ASSERT_EQ(ioctl(device->fd(), TUNGETIFF, &flags), 0) << std::strerror(errno);
    EXPECT_EQ(std::string(flags.ifr_name), "mpxtun0");
    EXPECT_NE(flags.ifr_flags & IFF_TUN, 0);
    EXPECT_NE(flags.ifr_flags & IFF_NO_PI, 0);
    EXPECT_NE(flags.ifr_flags & IFF_VNET_HDR, 0);
    EXPECT_EQ(flags.ifr_flags & IFF_PERSIST, 0);
    int headerBytes = 0;
    ASSERT_EQ(ioctl(device->fd(), TUNGETVNETHDRSZ, &headerBytes), 0) << std::strerror(errno);
    EXPECT_EQ(headerBytes, 10);
    EXPECT_EQ(fcntl(device->fd(), F_GETFL) & O_NONBLOCK, O_NONBLOCK);
    EXPECT_EQ(fcntl(device->fd(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

    const std::uint32_t offloads = device->offloads();
    EXPECT_NE(offloads & kOffloadChecksum, 0U);
    EXPECT_NE(offloads & kOffloadTso4, 0U);
    EXPECT_NE(offloads & kOffloadTso6, 0U);
    if (kernelAtLeast(6, 2)) {
      EXPECT_NE(offloads & kOffloadUso4, 0U);
      EXPECT_NE(offloads & kOffloadUso6, 0U);
      EXPECT_EQ(device->describeOffloads(), "csum tso4 tso6 uso4 uso6");
    }

    auto qlen = queryInterface("mpxtun0", SIOCGIFTXQLEN);
    ASSERT_TRUE(qlen.has_value());
    EXPECT_EQ(qlen->ifr_qlen, 777);
    auto ifflags = queryInterface("mpxtun0", SIOCGIFFLAGS);
    ASSERT_TRUE(ifflags.has_value());
    EXPECT_EQ(ifflags->ifr_flags & IFF_UP, 0) << "down until setUp(true)";

    // Nothing is waiting on a device that is down.
    std::vector<std::uint8_t> buffer(65535 + kVnetBytes);
    auto got = device->read(buffer);
    ASSERT_TRUE(got.ok()) << got.error().message();
    EXPECT_EQ(*got, 0U);
  });
}

TEST(TunDevice, PlainPacketsWithoutVirtioHeader) {
  REQUIRE_TUN();
  inFreshNetns([] {
    auto device = TunDevice::open(options("mpxplain0", /*virtioHeader=*/false));
    ASSERT_TRUE(device.ok()) << device.error().message();
    EXPECT_FALSE(device->virtioHeader());
    EXPECT_EQ(device->offloads(), 0U);
    EXPECT_EQ(device->describeOffloads(), "none");
    ifreq flags{};
    ASSERT_EQ(ioctl(device->fd(), TUNGETIFF, &flags), 0) << std::strerror(errno);
    EXPECT_EQ(flags.ifr_flags & IFF_VNET_HDR, 0);
  });
}

TEST(TunDevice, VirtioHeaderWithoutOffloads) {
  REQUIRE_TUN();
  inFreshNetns([] {
    TunOptions wanted = options("mpxnooff0");
    wanted.offloads = false;
    auto device = TunDevice::open(wanted);
    ASSERT_TRUE(device.ok()) << device.error().message();
    EXPECT_TRUE(device->virtioHeader());
    EXPECT_EQ(device->offloads(), 0U);
    EXPECT_EQ(device->describeOffloads(), "none");
  });
}

TEST(TunDevice, RefusesTakenAndInvalidNames) {
  REQUIRE_TUN();
  inFreshNetns([] {
    auto loopback = TunDevice::open(options("lo"));
    ASSERT_FALSE(loopback.ok());
    EXPECT_EQ(loopback.error().code(), EEXIST);
    EXPECT_NE(loopback.error().context().find("'lo'"), std::string::npos) << loopback.error().context();

    auto first = TunDevice::open(options("mpxtun0"));
    ASSERT_TRUE(first.ok()) << first.error().message();
    auto second = TunDevice::open(options("mpxtun0"));
    ASSERT_FALSE(second.ok()) << "attached to the existing TUN interface";
    EXPECT_EQ(second.error().code(), EEXIST);
    EXPECT_NE(second.error().context().find("mpxtun0"), std::string::npos);

    auto empty = TunDevice::open(options(""));
    ASSERT_FALSE(empty.ok());
    EXPECT_EQ(empty.error().code(), EINVAL);
    const std::string longest(IFNAMSIZ - 1, 'a');
    auto tooLong = TunDevice::open(options(longest + "b"));
    ASSERT_FALSE(tooLong.ok());
    EXPECT_EQ(tooLong.error().code(), EINVAL);
    EXPECT_NE(tooLong.error().context().find(longest + "b"), std::string::npos);
    auto slash = TunDevice::open(options("mpx/0"));
    ASSERT_FALSE(slash.ok());
    EXPECT_EQ(slash.error().code(), EINVAL);

    auto fifteen = TunDevice::open(options(longest));
    ASSERT_TRUE(fifteen.ok()) << fifteen.error().message();
    EXPECT_EQ(fifteen->name(), longest);
    EXPECT_GT(if_nametoindex(longest.c_str()), 0U);
  });
}

TEST(TunDevice, InterfaceDisappearsWithTheObjectAndMovesWithIt) {
  REQUIRE_TUN();
  inFreshNetns([] {
    {
      auto device = TunDevice::open(options("mpxgone0"));
      ASSERT_TRUE(device.ok()) << device.error().message();
      EXPECT_GT(if_nametoindex("mpxgone0"), 0U);
    }
    EXPECT_EQ(if_nametoindex("mpxgone0"), 0U);

    auto opened = TunDevice::open(options("mpxmove0"));
    ASSERT_TRUE(opened.ok()) << opened.error().message();
    TunDevice moved(std::move(*opened));
    EXPECT_EQ(opened->fd(), -1);  // NOLINT(bugprone-use-after-move): checking the moved-from state
    EXPECT_EQ(moved.name(), "mpxmove0");
    EXPECT_GT(if_nametoindex("mpxmove0"), 0U);

    auto other = TunDevice::open(options("mpxmove1"));
    ASSERT_TRUE(other.ok()) << other.error().message();
    moved = std::move(*other);  // closes mpxmove0
    EXPECT_EQ(if_nametoindex("mpxmove0"), 0U);
    EXPECT_GT(if_nametoindex("mpxmove1"), 0U);
    EXPECT_EQ(moved.name(), "mpxmove1");
    EXPECT_EQ(moved.ifindex(), static_cast<int>(if_nametoindex("mpxmove1")));
    { TunDevice sink(std::move(moved)); }
    EXPECT_EQ(if_nametoindex("mpxmove1"), 0U);
  });
}

TEST(TunDevice, SetsMtuAndUpDown) {
  REQUIRE_TUN();
  inFreshNetns([] {
    auto device = TunDevice::open(options("mpxtun0"));
    ASSERT_TRUE(device.ok()) << device.error().message();
    auto set = device->setMtu(1400);
    ASSERT_TRUE(set.ok()) << set.error().message();
    auto mtu = queryInterface("mpxtun0", SIOCGIFMTU);
    ASSERT_TRUE(mtu.has_value());
    EXPECT_EQ(mtu->ifr_mtu, 1400);
    ASSERT_TRUE(device->setMtu(9000).ok());
    EXPECT_EQ(queryInterface("mpxtun0", SIOCGIFMTU)->ifr_mtu, 9000);
    auto tooBig = device->setMtu(70000);
    ASSERT_FALSE(tooBig.ok());
    EXPECT_EQ(tooBig.error().code(), EINVAL);
    EXPECT_NE(tooBig.error().context().find("mpxtun0"), std::string::npos);

    auto up = device->setUp(true);
    ASSERT_TRUE(up.ok()) << up.error().message();
    EXPECT_NE(queryInterface("mpxtun0", SIOCGIFFLAGS)->ifr_flags & IFF_UP, 0);
    ASSERT_TRUE(device->setUp(false).ok());
    EXPECT_EQ(queryInterface("mpxtun0", SIOCGIFFLAGS)->ifr_flags & IFF_UP, 0);
  });
}

TEST(TunDevice, AddsV4AndV6AddressesUsableAtOnce) {
  REQUIRE_TUN();
  inFreshNetns([] {
    auto device = TunDevice::open(options("mpxtun0"));
    ASSERT_TRUE(device.ok()) << device.error().message();
    ASSERT_TRUE(device->setUp(true).ok());
    auto v4 = device->addAddress(*IpPrefix::parse("10.77.0.1/24"));
    ASSERT_TRUE(v4.ok()) << v4.error().message();
    auto v6 = device->addAddress(*IpPrefix::parse("fd00:77::1/64"));
    ASSERT_TRUE(v6.ok()) << v6.error().message();

    const auto addresses = addressesOf("mpxtun0");
    EXPECT_TRUE(hasAddress(addresses, "10.77.0.1", 24));
    EXPECT_TRUE(hasAddress(addresses, "fd00:77::1", 64));

    // No duplicate address detection: binding to a tentative address would fail.
    const int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in6 local{};
    local.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "fd00:77::1", &local.sin6_addr);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)), 0) << std::strerror(errno);
    close(fd);

    // The netlink acknowledgement's errno comes back.
    auto again = device->addAddress(*IpPrefix::parse("10.77.0.1/24"));
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code(), EEXIST);
    EXPECT_NE(again.error().context().find("10.77.0.1/24"), std::string::npos) << again.error().context();
    EXPECT_NE(again.error().context().find("mpxtun0"), std::string::npos) << again.error().context();
  });
}

// Kernel -> device: a datagram to the peer leaves through the TUN interface
// and one read returns it behind its virtio header (or bare).
void checkKernelToDevice(bool virtioHeader) {
  auto device = upDevice(virtioHeader);
  ASSERT_TRUE(device.has_value());
  const int fd = udpSocket(kTunAddress, 40001);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  const std::string payload = "mpxdp tun outbound";
  ASSERT_TRUE(sendUdp(fd, kPeerAddress, 9, payload)) << std::strerror(errno);
  close(fd);

  const auto packet = readUdpTo(*device, 9);
  ASSERT_FALSE(packet.empty()) << "no datagram to port 9 came out of the TUN device";
  std::size_t at = 0;
  if (virtioHeader) {
    const std::uint8_t* vnet = packet.data();
    EXPECT_EQ(vnet[1], kGsoNone);
    EXPECT_EQ(loadLe16(vnet + 4), 0) << "gso_size";
    if ((vnet[0] & kNeedsCsum) != 0) {  // checksum left to us: it starts at UDP and sits 6 bytes in
      EXPECT_EQ(loadLe16(vnet + 6), 20);
      EXPECT_EQ(loadLe16(vnet + 8), 6);
    }
    at = kVnetBytes;
  }
  const std::uint8_t* ip = packet.data() + at;
  ASSERT_EQ(packet.size() - at, 20 + 8 + payload.size());
  EXPECT_EQ(ip[0], 0x45);
  EXPECT_EQ(ip[9], kProtoUdp);
  EXPECT_EQ(std::memcmp(ip + 12, v4Bytes(kTunAddress).data(), 4), 0);
  EXPECT_EQ(std::memcmp(ip + 16, v4Bytes(kPeerAddress).data(), 4), 0);
  EXPECT_EQ(load16(ip + 20), 40001);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ip + 28), payload.size()), payload);
}

// Device -> kernel: a datagram from the peer written into the device reaches
// a socket bound to the device's address.
void checkDeviceToKernel(bool virtioHeader) {
  auto device = upDevice(virtioHeader);
  ASSERT_TRUE(device.has_value());
  const int fd = udpSocket(kTunAddress, 40002);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  const std::string payload = "mpxdp tun inbound";
  auto packet = udpPacket(kPeerAddress, 50000, kTunAddress, 40002, payload);
  if (virtioHeader) packet.insert(packet.begin(), kVnetBytes, 0);  // no offload: GSO_NONE, checksum done
  auto written = device->write(packet);
  ASSERT_TRUE(written.ok()) << written.error().message();
  EXPECT_TRUE(*written);
  EXPECT_EQ(receiveUdp(fd), payload);
  close(fd);
}

TEST(TunDevice, KernelToDeviceWithVirtioHeader) {
  REQUIRE_TUN();
  inFreshNetns([] { checkKernelToDevice(true); });
}

TEST(TunDevice, KernelToDeviceWithoutVirtioHeader) {
  REQUIRE_TUN();
  inFreshNetns([] { checkKernelToDevice(false); });
}

TEST(TunDevice, DeviceToKernelWithVirtioHeader) {
  REQUIRE_TUN();
  inFreshNetns([] { checkDeviceToKernel(true); });
}

TEST(TunDevice, DeviceToKernelWithoutVirtioHeader) {
  REQUIRE_TUN();
  inFreshNetns([] { checkDeviceToKernel(false); });
}

// The offloads are live: a UDP_SEGMENT send comes out as one USO
// super-packet, and a packet with only the pseudo-header checksum is
// accepted when the virtio header asks the kernel to finish it.
TEST(TunDevice, OffloadsCarrySuperPacketsAndPartialChecksums) {
  REQUIRE_TUN();
  if (!kernelAtLeast(6, 2)) GTEST_SKIP() << "USO needs kernel 6.2";
  inFreshNetns([] {
    auto device = upDevice(true);
    ASSERT_TRUE(device.has_value());
    ASSERT_NE(device->offloads() & kOffloadUso4, 0U);

    const int sender = udpSocket(kTunAddress, 40003);
    ASSERT_GE(sender, 0);
    const int segment = 1000;
    ASSERT_EQ(setsockopt(sender, SOL_UDP, UDP_SEGMENT, &segment, sizeof(segment)), 0) << std::strerror(errno);
    const std::string payload(4500, 'x');
    ASSERT_TRUE(sendUdp(sender, kPeerAddress, 9, payload)) << std::strerror(errno);
    close(sender);
    const auto super = readUdpTo(*device, 9);
    ASSERT_FALSE(super.empty());
    EXPECT_EQ(super[1], kGsoUdpL4);
    EXPECT_EQ(loadLe16(super.data() + 4), segment) << "gso_size";
    EXPECT_EQ(super.size(), kVnetBytes + 20 + 8 + payload.size()) << "one read, all segments";

    const int receiver = udpSocket(kTunAddress, 40004);
    ASSERT_GE(receiver, 0);
    auto packet = udpPacket(kPeerAddress, 50000, kTunAddress, 40004, "partial checksum");
    // Replace the UDP checksum with the folded pseudo-header sum, as a sender
    // using checksum offload leaves it.
    std::uint8_t* ip = packet.data();
    const auto udpLength = static_cast<std::uint32_t>(packet.size() - 20);
    store16(ip + 26, fold(sumWords(ip + 12, 8) + kProtoUdp + udpLength));
    std::array<std::uint8_t, kVnetBytes> vnet{};
    vnet[0] = kNeedsCsum;
    vnet[6] = 20;  // csum_start (little endian)
    vnet[8] = 6;   // csum_offset
    packet.insert(packet.begin(), vnet.begin(), vnet.end());
    auto written = device->write(packet);
    ASSERT_TRUE(written.ok()) << written.error().message();
    EXPECT_TRUE(*written);
    EXPECT_EQ(receiveUdp(receiver), "partial checksum");
    close(receiver);
  });
}

// With several queues the kernel sends each flow out on the queue where that
// flow's packets were last written: the tunnel relies on it to keep a flow
// on one reader thread.
TEST(TunDevice, MultiQueueSendsAFlowOutWhereItCameIn) {
  REQUIRE_TUN();
  inFreshNetns([] {
    TunOptions twoQueues = options("mpxtun0");
    twoQueues.queues = 2;
    auto device = TunDevice::open(twoQueues);
    ASSERT_TRUE(device.ok()) << device.error().message();
    ASSERT_EQ(device->queueCount(), 2U);
    EXPECT_GE(device->queueFd(1), 0);
    EXPECT_NE(device->queueFd(0), device->queueFd(1));
    EXPECT_EQ(device->queueFd(2), -1);
    auto prefix = IpPrefix::parse(std::string(kTunAddress) + "/24");
    ASSERT_TRUE(prefix.ok());
    ASSERT_TRUE(device->addAddress(*prefix).ok());
    ASSERT_TRUE(device->setUp(true).ok());
    const int server = udpSocket(kTunAddress, 5000);
    ASSERT_GE(server, 0);
    std::vector<std::uint8_t> framed;
    for (std::uint16_t flow = 0; flow < 8; ++flow) {
      const std::uint32_t queue = flow % 2;
      const auto peerPort = static_cast<std::uint16_t>(41000 + flow);
      const auto packet =
          udpPacket(kPeerAddress, peerPort, kTunAddress, 5000, "ping " + std::to_string(flow));
      framed.assign(kVnetBytes, 0);
      framed.insert(framed.end(), packet.begin(), packet.end());
      auto written = device->write(queue, framed);
      ASSERT_TRUE(written.ok() && *written) << "flow " << flow;
      ASSERT_EQ(receiveUdp(server), "ping " + std::to_string(flow));
      ASSERT_TRUE(sendUdp(server, kPeerAddress, peerPort, "pong " + std::to_string(flow)));
      const auto answer = readUdpTo(*device, peerPort, queue);
      EXPECT_FALSE(answer.empty()) << "the answer of flow " << flow << " did not come out on queue " << queue;
    }
    close(server);
  });
}

TEST(TunDevice, RefusesQueueCountsOutOfRange) {
  for (const std::uint32_t queues : {0U, kMaxTunQueues + 1}) {
    TunOptions bad = options("mpxtun0");
    bad.queues = queues;
    auto device = TunDevice::open(bad);
    ASSERT_FALSE(device.ok());
    EXPECT_EQ(device.error().code(), EINVAL);
    EXPECT_NE(device.error().message().find("queues"), std::string::npos) << device.error().message();
  }
}

TEST(TunDevice, WriteErrorsAreValues) {
  REQUIRE_TUN();
  inFreshNetns([] {
    auto device = upDevice(true);
    ASSERT_TRUE(device.has_value());
    const std::array<std::uint8_t, 5> shorterThanHeader{};
    auto written = device->write(shorterThanHeader);
    ASSERT_FALSE(written.ok());
    EXPECT_EQ(written.error().code(), EINVAL);
    EXPECT_NE(written.error().context().find("mpxtun0"), std::string::npos);
  });
}

}  // namespace
}  // namespace mpxdp::tun
