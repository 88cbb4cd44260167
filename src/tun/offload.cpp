#include "offload.h"

#include "byte_order.h"
#include "codec.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace mpxdp::tun {
namespace {

constexpr std::uint8_t kProtoIcmp = 1;
constexpr std::uint8_t kProtoTcp = 6;
constexpr std::uint8_t kProtoUdp = 17;
constexpr std::uint8_t kProtoIcmpV6 = 58;
constexpr std::uint32_t kIpv6HeaderBytes = 40;
constexpr std::uint32_t kTcpMinHeaderBytes = 20;
constexpr std::uint32_t kUdpHeaderBytes = 8;
constexpr std::uint8_t kTcpFin = 0x01;
constexpr std::uint8_t kTcpPsh = 0x08;
constexpr std::uint8_t kTcpAck = 0x10;
constexpr std::uint8_t kTcpCwr = 0x80;

using wire::detail::load16;
using wire::detail::load32;
using wire::detail::store16;
using wire::detail::store32;

std::uint16_t loadLe16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
void storeLe16(std::uint8_t* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v);
  p[1] = static_cast<std::uint8_t>(v >> 8);
}

std::uint16_t fold(std::uint64_t sum) noexcept {
  sum = (sum & 0xffffffffU) + (sum >> 32);
  sum = (sum & 0xffffffffU) + (sum >> 32);
  sum = (sum & 0xffffU) + (sum >> 16);
  sum = (sum & 0xffffU) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

// The final checksum to store: inverted; UDP (and the kernel for any
// CHECKSUM_PARTIAL) sends 0 as 0xffff, which means the same to TCP.
std::uint16_t finish(std::uint16_t sum) noexcept {
  const auto c = static_cast<std::uint16_t>(~sum);
  return c == 0 ? 0xffff : c;
}

// Sum of the pseudo-header's addresses and protocol (the length is added per packet).
std::uint32_t addressSum(const std::uint8_t* ip, bool ipv6, std::uint8_t protocol) noexcept {
  const std::span<const std::uint8_t> addresses =
      ipv6 ? std::span<const std::uint8_t>(ip + 8, 32) : std::span<const std::uint8_t>(ip + 12, 8);
  return checksumAdd(addresses, protocol);
}

std::uint16_t pseudoSum(std::uint32_t addresses, std::uint32_t l4Bytes) noexcept {
  return fold(std::uint64_t{addresses} + (l4Bytes >> 16) + (l4Bytes & 0xffff));
}

void setIpv4Checksum(std::uint8_t* ip, std::uint32_t headerBytes) noexcept {
  store16(ip + 10, 0);
  store16(ip + 10, static_cast<std::uint16_t>(~checksumAdd({ip, headerBytes})));
}

// The IP layer of a packet: header length, protocol, length by the IP header.
struct IpInfo {
  bool ipv6 = false;
  std::uint32_t headerBytes = 0;
  std::uint32_t totalBytes = 0;
  std::uint8_t protocol = 0;  // for IPv6 the first next header
  bool fragment = false;      // IPv4 MF or offset
};

bool parseIp(std::span<const std::uint8_t> p, IpInfo& info) noexcept {
  if (p.empty()) return false;
  const unsigned version = p[0] >> 4;
  if (version == 4) {
    if (p.size() < 20) return false;
    info.ipv6 = false;
    info.headerBytes = (p[0] & 0x0fU) * 4;
    info.totalBytes = load16(&p[2]);
    if (info.headerBytes < 20 || info.totalBytes < info.headerBytes || info.totalBytes > p.size())
      return false;
    info.protocol = p[9];
    info.fragment = (load16(&p[6]) & 0x3fffU) != 0;
    return true;
  }
  if (version == 6) {
    if (p.size() < kIpv6HeaderBytes) return false;
    info.ipv6 = true;
    info.headerBytes = kIpv6HeaderBytes;
    info.totalBytes = kIpv6HeaderBytes + load16(&p[4]);
    if (info.totalBytes > p.size()) return false;
    info.protocol = p[6];
    info.fragment = false;
    return true;
  }
  return false;
}

Error invalid(const char* what) { return Error(EINVAL, what); }

}  // namespace

VirtioHeader parseVirtioHeader(std::span<const std::uint8_t, kVirtioHeaderBytes> bytes) noexcept {
  VirtioHeader h;
  h.flags = bytes[0];
  h.gsoType = bytes[1];
  h.headerLength = loadLe16(&bytes[2]);
  h.gsoSize = loadLe16(&bytes[4]);
  h.checksumStart = loadLe16(&bytes[6]);
  h.checksumOffset = loadLe16(&bytes[8]);
  return h;
}

void writeVirtioHeader(const VirtioHeader& header, std::span<std::uint8_t, kVirtioHeaderBytes> out) noexcept {
  out[0] = header.flags;
  out[1] = header.gsoType;
  storeLe16(&out[2], header.headerLength);
  storeLe16(&out[4], header.gsoSize);
  storeLe16(&out[6], header.checksumStart);
  storeLe16(&out[8], header.checksumOffset);
}

// The codec's sum (wire/codec.h), folded to 16 bits.
std::uint16_t checksumAdd(std::span<const std::uint8_t> data, std::uint32_t initial) noexcept {
  return fold(wire::checksumPartial(data, initial));
}

Result<void> GsoSplitter::begin(const VirtioHeader& header, std::span<const std::uint8_t> packet,
                                std::uint32_t maxPacketBytes) noexcept {
  *this = GsoSplitter();
  const std::uint8_t gso = header.gsoType & static_cast<std::uint8_t>(~VirtioHeader::kGsoEcn);
  if (gso == VirtioHeader::kGsoNone) {
    if (packet.empty()) return invalid("tun: empty");
    if (packet.size() > maxPacketBytes) return Error(EMSGSIZE, "tun: packet");
    if ((header.flags & VirtioHeader::kNeedsChecksum) != 0) {
      if (std::size_t{header.checksumStart} + header.checksumOffset + 2 > packet.size())
        return invalid("tun: csum start");
      mode_ = Mode::kCompleteChecksum;
      checksumStart_ = header.checksumStart;
      checksumOffset_ = header.checksumOffset;
    }
    packet_ = packet;
    remaining_ = 1;
    return {};
  }
  if (gso != VirtioHeader::kGsoTcpV4 && gso != VirtioHeader::kGsoTcpV6 && gso != VirtioHeader::kGsoUdpL4)
    return invalid("tun: gso type");
  if (header.gsoSize == 0) return invalid("tun: gso size");
  IpInfo ip;
  if (!parseIp(packet, ip) || ip.fragment) return invalid("tun: gso ip");
  // Only TCP or UDP right after the IP header (no IPv6 extension headers).
  const bool tcp = gso != VirtioHeader::kGsoUdpL4;
  if (tcp && (ip.ipv6 != (gso == VirtioHeader::kGsoTcpV6) || ip.protocol != kProtoTcp))
    return invalid("tun: gso tcp");
  if (!tcp && ip.protocol != kProtoUdp) return invalid("tun: gso udp");
  packet = packet.first(ip.totalBytes);
  std::uint32_t l4Bytes = kUdpHeaderBytes;
  if (tcp) {
    if (ip.headerBytes + kTcpMinHeaderBytes > packet.size()) return invalid("tun: gso tcp");
    l4Bytes = (packet[ip.headerBytes + 12] >> 4) * 4U;
    if (l4Bytes < kTcpMinHeaderBytes) return invalid("tun: gso tcp");
  }
  const std::uint32_t headers = ip.headerBytes + l4Bytes;
  if (headers >= packet.size()) return invalid("tun: gso empty");  // also: header beyond the packet
  if (headers >= maxPacketBytes) return Error(EMSGSIZE, "tun: gso header");
  std::uint32_t segment = header.gsoSize;
  if (segment > maxPacketBytes - headers) {
    // TCP segments can be cut shorter; UDP datagrams cannot.
    if (!tcp) return Error(EMSGSIZE, "tun: gso udp");
    segment = maxPacketBytes - headers;
  }
  const auto payload = static_cast<std::uint32_t>(packet.size()) - headers;
  packet_ = packet;
  mode_ = tcp ? Mode::kTcp : Mode::kUdp;
  ipv6_ = ip.ipv6;
  ipHeaderBytes_ = ip.headerBytes;
  headerBytes_ = headers;
  segmentPayload_ = segment;
  remaining_ = (payload + segment - 1) / segment;
  addressSum_ = addressSum(packet.data(), ip.ipv6, ip.protocol);
  return {};
}

std::size_t GsoSplitter::next(std::span<std::uint8_t> out) noexcept {
  if (remaining_ == 0) return 0;
  if (mode_ == Mode::kAsIs || mode_ == Mode::kCompleteChecksum) {
    if (out.size() < packet_.size()) return 0;
    std::memcpy(out.data(), packet_.data(), packet_.size());
    if (mode_ == Mode::kCompleteChecksum) {
      // The field holds the pseudo-header sum; the sum from csum_start covers it.
      const std::uint16_t sum = checksumAdd(packet_.subspan(checksumStart_));
      store16(out.data() + checksumStart_ + checksumOffset_, finish(sum));
    }
    remaining_ = 0;
    return packet_.size();
  }
  const std::uint32_t payloadTotal = static_cast<std::uint32_t>(packet_.size()) - headerBytes_;
  const std::uint32_t payload = std::min(segmentPayload_, payloadTotal - offset_);
  const std::uint32_t length = headerBytes_ + payload;
  if (out.size() < length) return 0;
  const bool first = offset_ == 0;
  const bool last = remaining_ == 1;
  std::uint8_t* ip = out.data();
  std::memcpy(ip, packet_.data(), headerBytes_);
  std::memcpy(ip + headerBytes_, packet_.data() + headerBytes_ + offset_, payload);
  const std::uint32_t index = offset_ / segmentPayload_;
  if (ipv6_) {
    store16(ip + 4, length - kIpv6HeaderBytes);
  } else {
    store16(ip + 2, length);
    store16(ip + 4, load16(ip + 4) + index);
    setIpv4Checksum(ip, ipHeaderBytes_);
  }
  std::uint8_t* l4 = ip + ipHeaderBytes_;
  const std::uint32_t l4Bytes = length - ipHeaderBytes_;
  std::uint8_t* checksum = nullptr;
  if (mode_ == Mode::kTcp) {
    store32(l4 + 4, load32(l4 + 4) + offset_);
    if (!last) l4[13] &= static_cast<std::uint8_t>(~(kTcpFin | kTcpPsh));
    if (!first) l4[13] &= static_cast<std::uint8_t>(~kTcpCwr);
    checksum = l4 + 16;
  } else {
    store16(l4 + 4, l4Bytes);
    checksum = l4 + 6;
  }
  store16(checksum, 0);
  // Headers from the output, payload straight from the source.
  std::uint16_t sum = checksumAdd({l4, headerBytes_ - ipHeaderBytes_}, pseudoSum(addressSum_, l4Bytes));
  sum = checksumAdd({ip + headerBytes_, payload}, sum);
  store16(checksum, finish(sum));
  offset_ += payload;
  --remaining_;
  return length;
}

std::size_t GsoSplitter::remainingSegments() const noexcept { return remaining_; }

bool TcpCoalescer::add(std::span<const std::uint8_t> ipPacket) noexcept {
  IpInfo ip;
  if (!parseIp(ipPacket, ip) || ip.fragment || ip.protocol != kProtoTcp) return false;
  // IPv4 options would have to match too; like GRO, only plain headers merge.
  if (!ip.ipv6 && ip.headerBytes != 20) return false;
  const std::span<const std::uint8_t> p = ipPacket.first(ip.totalBytes);
  if (ip.headerBytes + kTcpMinHeaderBytes > p.size()) return false;
  const std::uint8_t* tcp = p.data() + ip.headerBytes;
  const std::uint32_t tcpBytes = (tcp[12] >> 4) * 4U;
  if (tcpBytes < kTcpMinHeaderBytes || ip.headerBytes + tcpBytes > p.size()) return false;
  const auto payload = static_cast<std::uint32_t>(p.size()) - ip.headerBytes - tcpBytes;
  const std::uint8_t flags = tcp[13];
  if (payload == 0 || (flags & static_cast<std::uint8_t>(~kTcpPsh)) != kTcpAck) return false;
  const bool push = (flags & kTcpPsh) != 0;
  std::uint8_t* pending = headers_.data() + kVirtioHeaderBytes;

  if (segments_ == 0) {
    // A PSH segment alone gains nothing from waiting: written on its own.
    if (push || kVirtioHeaderBytes + ip.headerBytes + tcpBytes > headers_.size()) return false;
    std::memcpy(pending, p.data(), ip.headerBytes + tcpBytes);
    parts_[1] = p.subspan(ip.headerBytes + tcpBytes);
    length_ = static_cast<std::uint32_t>(p.size());
    segments_ = 1;
    ipHeaderBytes_ = ip.headerBytes;
    tcpHeaderBytes_ = tcpBytes;
    firstPayload_ = payload;
    nextSeq_ = load32(tcp + 4) + payload;
    closed_ = false;
    push_ = false;
    return true;
  }

  if (closed_ || ip.headerBytes != ipHeaderBytes_ || tcpBytes != tcpHeaderBytes_ ||
      ip.ipv6 != ((pending[0] >> 4) == 6) || payload > firstPayload_ || load32(tcp + 4) != nextSeq_)
    return false;
  if (length_ + payload > kMaxSuperPacket || segments_ == kMaxSegments) return false;
  const std::uint8_t* a = pending;
  const std::uint8_t* b = p.data();
  if (ip.ipv6) {
    // Version, traffic class, flow label; next header, hop limit; addresses.
    if (std::memcmp(a, b, 4) != 0 || std::memcmp(a + 6, b + 6, 34) != 0) return false;
  } else {
    // TOS; DF (fragments were refused above); TTL, protocol; addresses.
    if (a[1] != b[1] || a[6] != b[6] || std::memcmp(a + 8, b + 8, 2) != 0 ||
        std::memcmp(a + 12, b + 12, 8) != 0)
      return false;
  }
  const std::uint8_t* ta = a + ipHeaderBytes_;
  // Ports; ACK number; data offset and reserved bits; window; urgent
  // pointer; options.
  if (std::memcmp(ta, tcp, 4) != 0 || std::memcmp(ta + 8, tcp + 8, 5) != 0 ||
      std::memcmp(ta + 14, tcp + 14, 2) != 0 || std::memcmp(ta + 18, tcp + 18, tcpBytes - 18) != 0)
    return false;
  parts_[++segments_] = p.subspan(ip.headerBytes + tcpBytes);
  length_ += payload;
  nextSeq_ += payload;
  push_ = push;
  closed_ = push || payload < firstPayload_;
  return true;
}

bool TcpCoalescer::empty() const noexcept { return segments_ == 0; }

std::uint32_t TcpCoalescer::segments() const noexcept { return segments_; }

std::span<const std::span<const std::uint8_t>> TcpCoalescer::take() noexcept {
  if (segments_ == 0) return {};
  const std::span<std::uint8_t, kVirtioHeaderBytes> head = std::span(headers_).first<kVirtioHeaderBytes>();
  parts_[0] =
      std::span<const std::uint8_t>(headers_).first(kVirtioHeaderBytes + ipHeaderBytes_ + tcpHeaderBytes_);
  const std::span<const std::span<const std::uint8_t>> result(parts_.data(), segments_ + 1);
  if (segments_ == 1) {
    std::memcpy(head.data(), singleHeader().data(), kVirtioHeaderBytes);
  } else {
    std::uint8_t* ip = headers_.data() + kVirtioHeaderBytes;
    const bool ipv6 = (ip[0] >> 4) == 6;
    if (ipv6) {
      store16(ip + 4, length_ - kIpv6HeaderBytes);
    } else {
      store16(ip + 2, length_);
      setIpv4Checksum(ip, ipHeaderBytes_);
    }
    std::uint8_t* tcp = ip + ipHeaderBytes_;
    if (push_) tcp[13] |= kTcpPsh;
    // CHECKSUM_PARTIAL: the field holds the pseudo-header sum, not inverted.
    store16(tcp + 16, pseudoSum(addressSum(ip, ipv6, kProtoTcp), length_ - ipHeaderBytes_));
    VirtioHeader h;
    h.flags = VirtioHeader::kNeedsChecksum;
    h.gsoType = ipv6 ? VirtioHeader::kGsoTcpV6 : VirtioHeader::kGsoTcpV4;
    h.headerLength = static_cast<std::uint16_t>(ipHeaderBytes_ + tcpHeaderBytes_);
    h.gsoSize = static_cast<std::uint16_t>(firstPayload_);
    h.checksumStart = static_cast<std::uint16_t>(ipHeaderBytes_);
    h.checksumOffset = 16;
    writeVirtioHeader(h, head);
  }
  segments_ = 0;
  length_ = 0;
  closed_ = false;
  push_ = false;
  return result;
}

std::span<const std::uint8_t, kVirtioHeaderBytes> TcpCoalescer::singleHeader() noexcept {
  static constexpr std::array<std::uint8_t, kVirtioHeaderBytes> kSingle = {VirtioHeader::kDataValid};
  return kSingle;
}

namespace {

bool isIcmpV4Error(std::uint8_t type) noexcept {
  return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

// The upper-layer protocol and its offset behind IPv6 extension headers, as
// far as they can be read (a non-first fragment has none).
bool ipv6UpperLayer(std::span<const std::uint8_t> p, std::uint8_t& protocol, std::size_t& offset) noexcept {
  protocol = p[6];
  offset = kIpv6HeaderBytes;
  for (int i = 0; i < 8; ++i) {
    if (protocol == 0 || protocol == 43 || protocol == 60) {  // hop-by-hop, routing, destination
      if (offset + 2 > p.size()) return false;
      const std::uint8_t nextProtocol = p[offset];
      offset += (p[offset + 1] + 1U) * 8;
      protocol = nextProtocol;
    } else if (protocol == 44) {  // fragment
      if (offset + 8 > p.size()) return false;
      if ((load16(&p[offset + 2]) & 0xfff8U) != 0) return false;
      protocol = p[offset];
      offset += 8;
    } else {
      return true;
    }
  }
  return false;
}

std::size_t packetTooBigV4(std::span<const std::uint8_t> p, std::uint32_t mtu, const IpAddress& source,
                           std::span<std::uint8_t> out) noexcept {
  constexpr std::size_t kHeaders = 20 + 8;
  constexpr std::size_t kMaxBytes = 576;  // RFC 1812 4.3.2.3
  const std::size_t ihl = (p[0] & 0x0fU) * 4;
  if (p.size() < 20 || ihl < 20 || ihl > p.size() || !source.isV4()) return 0;
  const std::uint16_t fragment = load16(&p[6]);
  if ((fragment & 0x4000U) == 0 || (fragment & 0x1fffU) != 0) return 0;  // no DF, or not the first fragment
  const std::uint8_t dst0 = p[16];
  const std::uint8_t src0 = p[12];
  if (dst0 >= 224 || src0 >= 224 || load32(&p[12]) == 0) return 0;  // multicast, broadcast, class E, unset
  if (p[9] == kProtoIcmp && (ihl >= p.size() || isIcmpV4Error(p[ihl]))) return 0;
  const std::size_t quoted = std::min(p.size(), kMaxBytes - kHeaders);
  const std::size_t length = kHeaders + quoted;
  if (out.size() < length) return 0;
  std::uint8_t* o = out.data();
  std::memset(o, 0, kHeaders);
  o[0] = 0x45;
  o[1] = 0xc0;  // internetwork control, as the kernel's ICMP errors
  store16(o + 2, static_cast<std::uint32_t>(length));
  o[8] = 64;
  o[9] = kProtoIcmp;
  std::memcpy(o + 12, source.bytes.data(), 4);
  std::memcpy(o + 16, &p[12], 4);
  setIpv4Checksum(o, 20);
  std::uint8_t* icmp = o + 20;
  icmp[0] = 3;
  icmp[1] = 4;
  store16(icmp + 6, std::min<std::uint32_t>(mtu, 0xffff));
  std::memcpy(icmp + 8, p.data(), quoted);
  store16(icmp + 2, static_cast<std::uint16_t>(~checksumAdd({icmp, 8 + quoted})));
  return length;
}

std::size_t packetTooBigV6(std::span<const std::uint8_t> p, std::uint32_t mtu, const IpAddress& source,
                           std::span<std::uint8_t> out) noexcept {
  constexpr std::size_t kHeaders = kIpv6HeaderBytes + 8;
  constexpr std::size_t kMaxBytes = 1280;  // RFC 4443 2.4 (c)
  if (p.size() < kIpv6HeaderBytes || source.isV4()) return 0;
  if (p[24] == 0xff || p[8] == 0xff) return 0;  // multicast destination or source
  static constexpr std::array<std::uint8_t, 16> kUnspecified{};
  if (std::memcmp(&p[8], kUnspecified.data(), 16) == 0) return 0;
  std::uint8_t protocol = 0;
  std::size_t offset = 0;
  if (ipv6UpperLayer(p, protocol, offset) && protocol == kProtoIcmpV6 &&
      (offset >= p.size() || p[offset] < 128))
    return 0;
  const std::size_t quoted = std::min(p.size(), kMaxBytes - kHeaders);
  const std::size_t length = kHeaders + quoted;
  if (out.size() < length) return 0;
  std::uint8_t* o = out.data();
  std::memset(o, 0, kHeaders);
  o[0] = 0x60;
  const auto icmpBytes = static_cast<std::uint32_t>(8 + quoted);
  store16(o + 4, icmpBytes);
  o[6] = kProtoIcmpV6;
  o[7] = 64;
  std::memcpy(o + 8, source.bytes.data(), 16);
  std::memcpy(o + 24, &p[8], 16);
  std::uint8_t* icmp = o + kIpv6HeaderBytes;
  icmp[0] = 2;
  store32(icmp + 4, mtu);
  std::memcpy(icmp + 8, p.data(), quoted);
  const std::uint16_t sum =
      checksumAdd({icmp, icmpBytes}, pseudoSum(addressSum(o, true, kProtoIcmpV6), icmpBytes));
  store16(icmp + 2, static_cast<std::uint16_t>(~sum));
  return length;
}

}  // namespace

std::uint32_t symmetricFlowHash(std::span<const std::uint8_t> ipPacket) noexcept {
  // Only the headers are read: the packet may be the headers of a coalesced one.
  if (ipPacket.empty()) return 0;
  const unsigned version = ipPacket[0] >> 4;
  std::uint32_t headerBytes = 0;
  std::uint8_t protocol = 0;
  std::size_t addressOffset = 0;
  std::size_t addressBytes = 0;
  bool fragment = false;
  if (version == 4 && ipPacket.size() >= 20) {
    headerBytes = (ipPacket[0] & 0x0fU) * 4;
    protocol = ipPacket[9];
    fragment = (load16(&ipPacket[6]) & 0x3fffU) != 0;
    addressOffset = 12;
    addressBytes = 4;
  } else if (version == 6 && ipPacket.size() >= kIpv6HeaderBytes) {
    headerBytes = kIpv6HeaderBytes;
    protocol = ipPacket[6];
    addressOffset = 8;
    addressBytes = 16;
  } else {
    return 0;
  }
  // FNV-1a over the smaller address (and port) first, so both directions agree.
  std::uint32_t hash = 2166136261U;
  const auto mix = [&hash](std::span<const std::uint8_t> bytes) {
    for (const std::uint8_t b : bytes) hash = (hash ^ b) * 16777619U;
  };
  auto a = ipPacket.subspan(addressOffset, addressBytes);
  auto b = ipPacket.subspan(addressOffset + addressBytes, addressBytes);
  if (std::lexicographical_compare(b.begin(), b.end(), a.begin(), a.end())) std::swap(a, b);
  mix(a);
  mix(b);
  mix(std::span<const std::uint8_t>(&protocol, 1));
  if ((protocol == kProtoTcp || protocol == kProtoUdp) && !fragment && ipPacket.size() >= headerBytes + 4) {
    std::uint16_t portA = load16(&ipPacket[headerBytes]);
    std::uint16_t portB = load16(&ipPacket[headerBytes + 2]);
    if (portB < portA) std::swap(portA, portB);
    const std::array<std::uint8_t, 4> ports = {
        static_cast<std::uint8_t>(portA >> 8), static_cast<std::uint8_t>(portA),
        static_cast<std::uint8_t>(portB >> 8), static_cast<std::uint8_t>(portB)};
    mix(ports);
  }
  return hash == 0 ? 1 : hash;
}

std::size_t buildPacketTooBig(std::span<const std::uint8_t> ipPacket, std::uint32_t mtu,
                              const IpAddress& source, std::span<std::uint8_t> out) noexcept {
  if (ipPacket.empty()) return 0;
  const unsigned version = ipPacket[0] >> 4;
  if (version == 4) return packetTooBigV4(ipPacket, mtu, source, out);
  if (version == 6) return packetTooBigV6(ipPacket, mtu, source, out);
  return 0;
}

}  // namespace mpxdp::tun
