#include "udp_packet_io.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "busy_poll.h"
#include "netlink_route.h"
#include "traffic_counters.h"

namespace mpxdp::transport {
namespace {

constexpr int kSocketBufferBytes = 8 * 1024 * 1024;
constexpr std::uint32_t kIpv4UdpHeaders = 28;
constexpr std::uint32_t kIpv6UdpHeaders = 48;
constexpr std::uint32_t kEthernetHeader = 14;
constexpr std::uint32_t kVlanTag = 4;
// When the socket buffer is full, wait this long for room, a few times, then
// report what was sent.
constexpr int kSendRetries = 4;
constexpr int kSendRetryWaitMs = 1;
// UDP GSO: segments per message (the kernel's UDP_MAX_SEGMENTS is 64 or
// more) and the payload bytes one message may carry (one IPv4 datagram).
constexpr unsigned kMaxGsoSegments = 64;
constexpr std::size_t kMaxGsoBytes = 65'000;
// UDP GRO: a coalesced datagram carries at most this many bytes (the largest
// UDP payload, rounded up) and, in the kernel, at most 64 segments
// (UDP_GRO_CNT_MAX); receive asks for fewer datagrams when free buffers are
// too few for that many segments each.
constexpr std::uint32_t kGroDatagramBytes = 65'536;
constexpr std::uint32_t kMaxGroSegments = 64;

// Whether the socket takes UDP_SEGMENT (Linux 4.18+).
bool udpGsoSupported(int fd) {
  int size = 0;
  socklen_t length = sizeof(size);
  return getsockopt(fd, SOL_UDP, UDP_SEGMENT, &size, &length) == 0;
}

// Asks for coalesced datagrams (UDP_GRO, Linux 5.0+); false where the kernel has no UDP GRO.
bool enableUdpGro(int fd) {
  const int one = 1;
  return setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
}

// The segment size of a coalesced datagram (the UDP_GRO control message), 0 when it is a single one.
std::uint32_t groSegmentSize(msghdr& msg) {
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level == SOL_UDP && cmsg->cmsg_type == UDP_GRO &&
        cmsg->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int size = 0;
      std::memcpy(&size, CMSG_DATA(cmsg), sizeof(size));
      return size > 0 ? static_cast<std::uint32_t>(size) : 0;
    }
  }
  return 0;
}

// Asks for the kernel's receive time of each datagram (SO_TIMESTAMPNS, on
// CLOCK_REALTIME); false where the kernel refuses. The kernel turns stamping
// on for the host in deferred work when the first socket asks, so the first
// packets may carry the time they were read instead (as without stamps).
bool enableArrivalStamps(int fd) {
  const int one = 1;
  return setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) == 0;
}

// The kernel's receive time of a datagram (SCM_TIMESTAMPNS) on CLOCK_MONOTONIC,
// given the two clocks read together (realNs, monoNs) after the datagram
// came; 0 without a plausible one. Exact unless the wall clock was stepped
// in between.
std::uint64_t arrivalStamp(msghdr& msg, std::int64_t realNs, std::int64_t monoNs) {
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_TIMESTAMPNS &&
        cmsg->cmsg_len >= CMSG_LEN(sizeof(timespec))) {
      timespec ts{};
      std::memcpy(&ts, CMSG_DATA(cmsg), sizeof(ts));
      const std::int64_t stampNs = static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
      const std::int64_t ago = realNs - stampNs;
      if (ago < 0 || ago >= monoNs) return 0;
      return static_cast<std::uint64_t>(monoNs - ago);
    }
  }
  return 0;
}

std::int64_t clockNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::pair<IpAddress, std::uint16_t> fromSockaddr(const sockaddr_in6& from) {
  IpAddress ip;
  if (from.sin6_family == AF_INET) {
    const auto& sin = reinterpret_cast<const sockaddr_in&>(from);
    ip.family = IpAddress::Family::kV4;
    std::memcpy(ip.bytes.data(), &sin.sin_addr, 4);
    return {ip, ntohs(sin.sin_port)};
  }
  ip.family = IpAddress::Family::kV6;
  std::memcpy(ip.bytes.data(), &from.sin6_addr, 16);
  return {ip, ntohs(from.sin6_port)};
}

sockaddr_storage toSockaddr(const IpAddress& ip, std::uint16_t port, socklen_t* len) {
  sockaddr_storage storage{};
  if (ip.isV4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, ip.bytes.data(), 4);
    *len = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    std::memcpy(&sin6->sin6_addr, ip.bytes.data(), 16);
    *len = sizeof(sockaddr_in6);
  }
  return storage;
}

// Where a datagram came from, as a destination for msg_name.
socklen_t sockaddrLength(const sockaddr_in6& address) {
  return address.sin6_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

bool sameSockaddr(const sockaddr_in6& a, const sockaddr_in6& b) {
  if (a.sin6_family != b.sin6_family) return false;
  if (a.sin6_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  return a.sin6_port == b.sin6_port && a.sin6_scope_id == b.sin6_scope_id &&
         std::memcmp(&a.sin6_addr, &b.sin6_addr, sizeof(a.sin6_addr)) == 0;
}

// Asks for a large buffer; the FORCE variant (root) goes past net.core.*mem_max.
void growBuffer(int fd, int forceOption, int option) {
  const int bytes = kSocketBufferBytes;
  if (setsockopt(fd, SOL_SOCKET, forceOption, &bytes, sizeof(bytes)) != 0) {
    setsockopt(fd, SOL_SOCKET, option, &bytes, sizeof(bytes));
  }
}

class UdpPacketIo final : public PacketIo {
 public:
  // A receive-only link (no peer) lends no transmit buffers until it
  // learns one (setPeerFrom). peer: the configured peer's address (family 0: none).
  UdpPacketIo(const LinkEndpointConfig& config, int fd, std::uint32_t maxPayload, std::uint32_t overhead,
              std::string description, std::string peer, const sockaddr_in6& peerAddress, bool gro,
              bool stamps)
      : config_(config),
        fd_(fd),
        hasPeer_(config.peerIp.has_value()),
        connected_(config.peerIp.has_value() && !config.manyPeers),
        bufferSize_(maxPayload),
        overhead_(overhead),
        rxCount_(config.frameCount / 2),
        txCount_(config.frameCount - config.frameCount / 2),
        description_(std::move(description)),
        peer_(std::move(peer)),
        pool_(static_cast<std::size_t>(config.frameCount) * maxPayload),
        rxFrom_(rxCount_),
        rxFree_(rxCount_),
        txFree_(txCount_),
        rxMsgs_(config.batchSize),
        rxIov_(static_cast<std::size_t>(config.batchSize) * (gro ? 2 : 1)),
        rxSlots_(config.batchSize),
        gro_(gro),
        rxSegmentSize_(config.batchSize),
        stamps_(stamps),
        rxControl_(gro || stamps ? config.batchSize : 0),
        rxArrival_(config.batchSize),
        // Not zeroed: only the pages the kernel writes coalesced datagrams to are ever touched.
        rxStaging_(gro ? std::make_unique_for_overwrite<std::uint8_t[]>(
                             static_cast<std::size_t>(config.batchSize) * kGroDatagramBytes)
                       : nullptr),
        gso_(config.udpGso && config.udpChecksum && udpGsoSupported(fd)),
        txMsgs_(config.batchSize),
        txIov_(static_cast<std::size_t>(config.batchSize) * (gso_ ? kMaxGsoSegments : 1)),
        txControl_(config.batchSize),
        txSegments_(config.batchSize),
        txFirst_(config.batchSize) {
    // Buffers [0, rxCount_) receive, [rxCount_, frameCount) transmit.
    for (std::uint32_t i = 0; i < rxCount_; ++i) rxFree_[i] = i;
    for (std::uint32_t i = 0; i < txCount_; ++i) txFree_[i] = rxCount_ + i;
    rxTop_ = rxCount_;
    txTop_ = txCount_;
    peers_[0].address = peerAddress;
  }

  ~UdpPacketIo() override { close(fd_); }

  std::size_t reserveTx(std::span<TxBuffer> out) noexcept override {
    if (!hasPeer_.load(std::memory_order_acquire)) return 0;
    const std::size_t n = std::min<std::size_t>(out.size(), txTop_);
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t slot = txFree_[--txTop_];
      out[i].data = bufferAt(slot);
      out[i].capacity = bufferSize_;
      out[i].length = 0;
      out[i].handle = slot;
    }
    return n;
  }

  Result<std::size_t> commitTx(std::span<const TxBuffer> buffers) noexcept override {
    return commitTxTo(0, buffers);
  }

  Result<std::size_t> commitTxTo(std::uint16_t peer, std::span<const TxBuffer> buffers) noexcept override {
    if (!hasPeer_.load(std::memory_order_acquire)) {
      if (buffers.empty()) return std::size_t{0};
      return Error(EOPNOTSUPP, "commitTx on " + description_ + ": the link is receive-only (no peer)");
    }
    // A connected socket sends to its peer by itself; the others name the destination.
    sockaddr_in6* to = nullptr;
    if (peer != 0 || !connected_) {
      if (peer >= peers_.size() || peers_[peer].address.sin6_family == 0) {
        for (const TxBuffer& buffer : buffers) txFree_[txTop_++] = static_cast<std::uint32_t>(buffer.handle);
        return Error(EINVAL,
                     "commitTx on " + description_ + ": peer " + std::to_string(peer) + " is not held");
      }
      to = &peers_[peer].address;
    }
    std::size_t sent = 0;
    std::uint64_t bytes = 0;
    std::size_t next = 0;
    Result<void> failure;
    while (next < buffers.size() && failure.ok()) {
      // Gather the next batch of messages: each one buffer, or with GSO a run
      // of equal-size buffers (the last of a run may be shorter) sent as one.
      unsigned count = 0;
      std::size_t iovs = 0;
      while (next < buffers.size() && count < config_.batchSize) {
        const TxBuffer& first = buffers[next];
        if (first.length == 0) {
          ++next;
          continue;
        }
        if (first.length > bufferSize_) {
          failure = Error(EMSGSIZE, "commitTx on " + description_ + ": a buffer is longer than " +
                                        std::to_string(bufferSize_) + " bytes");
          break;
        }
        mmsghdr& msg = txMsgs_[count];
        msg = mmsghdr{};
        msg.msg_hdr.msg_iov = &txIov_[iovs];
        txFirst_[count] = next;
        std::size_t messageBytes = 0;
        unsigned segments = 0;
        while (next < buffers.size()) {
          const TxBuffer& buffer = buffers[next];
          if (buffer.length == 0) {
            if (segments == 0) break;
            ++next;  // an empty slot inside a run: skip it
            continue;
          }
          if (segments > 0 && (!gso_ || buffer.length > first.length || segments == kMaxGsoSegments ||
                               messageBytes + buffer.length > kMaxGsoBytes || buffer.length > bufferSize_))
            break;
          txIov_[iovs].iov_base = bufferAt(static_cast<std::uint32_t>(buffer.handle));
          txIov_[iovs].iov_len = buffer.length;
          ++iovs;
          ++segments;
          ++next;
          messageBytes += buffer.length;
          if (buffer.length < first.length) break;  // a shorter one ends the run
        }
        msg.msg_hdr.msg_iovlen = segments;
        if (segments > 1) {
          auto& control = txControl_[count];
          msg.msg_hdr.msg_control = control.data();
          msg.msg_hdr.msg_controllen = control.size();
          cmsghdr* cmsg = CMSG_FIRSTHDR(&msg.msg_hdr);
          cmsg->cmsg_level = SOL_UDP;
          cmsg->cmsg_type = UDP_SEGMENT;
          cmsg->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
          const auto segmentSize = static_cast<std::uint16_t>(first.length);
          std::memcpy(CMSG_DATA(cmsg), &segmentSize, sizeof(segmentSize));
        }
        if (to != nullptr) {
          msg.msg_hdr.msg_name = to;
          msg.msg_hdr.msg_namelen = sockaddrLength(*to);
        }
        txSegments_[count] = segments;
        ++count;
      }
      unsigned done = 0;
      int retries = 0;
      while (done < count) {
        const int rc = sendmmsg(fd_, txMsgs_.data() + done, count - done, MSG_DONTWAIT);
        if (rc > 0) {
          for (unsigned m = done; m < done + static_cast<unsigned>(rc); ++m) {
            sent += txSegments_[m];
            for (std::size_t i = 0; i < txMsgs_[m].msg_hdr.msg_iovlen; ++i)
              bytes += txMsgs_[m].msg_hdr.msg_iov[i].iov_len;
          }
          done += static_cast<unsigned>(rc);
          continue;
        }
        if (rc < 0 && errno == EINTR) continue;
        if (rc < 0 && (errno == EAGAIN || errno == ENOBUFS) && retries++ < kSendRetries) {
          pollfd pfd{fd_, POLLOUT, 0};
          poll(&pfd, 1, kSendRetryWaitMs);
          continue;
        }
        // A path that cannot segment (EIO) refuses GSO messages: send them one by one from now on.
        if (rc < 0 && (errno == EIO || errno == EINVAL) && gso_ && txSegments_[done] > 1) {
          gso_ = false;
          next = txFirst_[done];
          count = done;  // the rest is gathered again, without GSO
          break;
        }
        // ECONNREFUSED (ICMP from an earlier datagram) and the like: drop this batch.
        if (rc < 0 && errno != EAGAIN && errno != ENOBUFS && errno != ECONNREFUSED) {
          failure = Error::fromErrno("sendmmsg on " + description_);
        }
        break;
      }
      if (done < count) break;
    }
    for (const TxBuffer& buffer : buffers) txFree_[txTop_++] = static_cast<std::uint32_t>(buffer.handle);
    counters_.sent(sent, bytes);
    if (!failure.ok()) return failure.error();
    return sent;
  }

  Result<void> flushTx() noexcept override { return {}; }

  // Datagrams are read a batch at a time into receive buffers; with GRO a
  // coalesced one is split into its segments as they are handed out: the
  // first stays in its buffer, the others are copied into free buffers. What
  // does not fit in `out` (or finds no free buffer) waits for the next call,
  // before the socket is read again.
  Result<std::size_t> receive(std::span<RxPacket> out) noexcept override {
    std::size_t got = 0;
    std::uint64_t bytes = 0;
    bool drained = false;  // the socket had less than asked for
    while (got < out.size()) {
      if (rxNext_ < rxRead_) {
        if (!splitReceived(out, &got, &bytes)) break;  // out of free buffers
        continue;
      }
      if (drained || rxTop_ == 0) break;
      std::size_t want = std::min<std::size_t>({out.size() - got, rxTop_, config_.batchSize});
      if (gro_) want = std::clamp<std::size_t>(rxTop_ / kMaxGroSegments, 1, want);
      for (std::size_t i = 0; i < want; ++i) {
        const std::uint32_t slot = rxFree_[rxTop_ - 1 - i];
        rxSlots_[i] = slot;
        rxMsgs_[i] = mmsghdr{};
        msghdr& msg = rxMsgs_[i].msg_hdr;
        // Each buffer keeps where it came from, for setPeerFrom.
        msg.msg_name = &rxFrom_[slot];
        msg.msg_namelen = sizeof(sockaddr_in6);
        if (gro_) {
          // The datagram's first bytes land in the buffer, the rest of a
          // coalesced one in this message's staging area behind them.
          iovec* iov = &rxIov_[2 * i];
          iov[0] = {bufferAt(slot), bufferSize_};
          iov[1] = {stagingAt(i) + bufferSize_, kGroDatagramBytes - bufferSize_};
          msg.msg_iov = iov;
          msg.msg_iovlen = 2;
        } else {
          rxIov_[i] = {bufferAt(slot), bufferSize_};
          msg.msg_iov = &rxIov_[i];
          msg.msg_iovlen = 1;
        }
        if (!rxControl_.empty()) {
          msg.msg_control = rxControl_[i].data();
          msg.msg_controllen = rxControl_[i].size();
        }
      }
      const int rc = recvmmsg(fd_, rxMsgs_.data(), static_cast<unsigned>(want), MSG_DONTWAIT, nullptr);
      if (rc < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == ECONNREFUSED) break;
        if (got > 0) break;  // hand out what was split; the error comes again
        return Error::fromErrno("recvmmsg on " + description_);
      }
      const auto n = static_cast<std::size_t>(rc);
      rxTop_ -= n;
      drained = n < want;
      for (std::size_t i = 0; i < n; ++i) rxSegmentSize_[i] = segmentSizeOf(i);
      if (stamps_) {
        // Both clocks once per batch (vDSO, no system call): each stamp is that far before now.
        const std::int64_t realNs = clockNs(CLOCK_REALTIME);
        const std::int64_t monoNs = clockNs(CLOCK_MONOTONIC);
        for (std::size_t i = 0; i < n; ++i) rxArrival_[i] = arrivalStamp(rxMsgs_[i].msg_hdr, realNs, monoNs);
      }
      rxRead_ = n;
      rxNext_ = 0;
      rxNextOffset_ = 0;
    }
    counters_.received(got, bytes);
    return got;
  }

  void release(std::span<const RxPacket> packets) noexcept override {
    for (const RxPacket& packet : packets) {
      if (rxTop_ < rxCount_) rxFree_[rxTop_++] = static_cast<std::uint32_t>(packet.handle);
    }
  }

  std::vector<int> pollFds() const override { return {fd_}; }
  std::uint32_t maxPayload() const noexcept override { return bufferSize_; }
  std::uint32_t frameOverheadBytes() const noexcept override { return overhead_; }

  // connect() to the packet's source: the kernel then sends there and only
  // accepts datagrams from there. With manyPeers the address is kept instead.
  Result<void> setPeerFrom(const RxPacket& packet) noexcept override {
    if (packet.handle >= rxCount_) {
      return Error(EINVAL, "setPeerFrom on " + description_ + ": not a packet received on this link");
    }
    const sockaddr_in6& from = rxFrom_[packet.handle];
    if (!config_.manyPeers) {
      if (connect(fd_, reinterpret_cast<const sockaddr*>(&from), sockaddrLength(from)) != 0) {
        return Error::fromErrno("setPeerFrom on " + description_ + ": connect");
      }
      connected_ = true;
    }
    peers_[0].address = from;
    auto peer = fromSockaddr(from);
    {
      std::lock_guard<std::mutex> lock(peerMutex_);
      peer_ = peer.first.toString() + ":" + std::to_string(peer.second);
    }
    hasPeer_.store(true, std::memory_order_release);
    return {};
  }

  Result<std::uint16_t> acquirePeer(const RxPacket& packet) noexcept override {
    if (packet.handle >= rxCount_) {
      return Error(EINVAL, "acquirePeer on " + description_ + ": not a packet received on this link");
    }
    if (!hasPeer()) {
      if (auto learned = setPeerFrom(packet); !learned) return learned.error();
      return std::uint16_t{0};
    }
    // A connected socket hears only its peer.
    const sockaddr_in6& from = rxFrom_[packet.handle];
    if (connected_ || sameSockaddr(from, peers_[0].address)) return std::uint16_t{0};
    std::size_t free = 0;
    for (std::size_t i = 1; i < peers_.size(); ++i) {
      if (peers_[i].refs > 0 && sameSockaddr(from, peers_[i].address)) {
        ++peers_[i].refs;
        return static_cast<std::uint16_t>(i);
      }
      if (peers_[i].refs == 0 && free == 0) free = i;
    }
    if (free == 0) {
      return Error(ENOSPC, "acquirePeer on " + description_ + ": more than " + std::to_string(kMaxLinkPeers) +
                               " peers at once");
    }
    peers_[free].address = from;
    peers_[free].refs = 1;
    return static_cast<std::uint16_t>(free);
  }

  void releasePeer(std::uint16_t peer) noexcept override {
    if (peer == 0 || peer >= peers_.size() || peers_[peer].refs == 0) return;
    if (--peers_[peer].refs == 0) peers_[peer].address = sockaddr_in6{};
  }

  bool hasPeer() const noexcept override { return hasPeer_.load(std::memory_order_acquire); }

  std::string peerDescription() const override {
    std::lock_guard<std::mutex> lock(peerMutex_);
    return peer_;
  }

  PacketIoStats stats() const noexcept override { return counters_.snapshot(); }

  std::uint32_t receiveBuffersPerQueue() const noexcept override { return rxCount_; }

  std::string describe() const override {
    const std::string offloads = std::string(gso_ ? " gso" : "") + (gro_ ? " gro" : "") +
                                 (stamps_ ? " stamp-socket" : " no-stamp") +
                                 describeBusyPolling(config_.busyPollUsecs);
    if (!hasPeer()) return description_ + " rx-only" + offloads;
    return description_ + "->" + peerDescription() + offloads;
  }

 private:
  std::uint8_t* bufferAt(std::uint32_t slot) noexcept {
    return pool_.data() + static_cast<std::size_t>(slot) * bufferSize_;
  }
  // Message i's image of a coalesced datagram: [0, bufferSize_) mirrors the
  // receive buffer's bytes, the kernel writes the rest.
  std::uint8_t* stagingAt(std::size_t message) noexcept {
    return rxStaging_.get() + message * kGroDatagramBytes;
  }

  // The segment size of message i of the batch just read, 0 when it is not
  // ours (truncated, or larger than any payload we send): then its buffer
  // goes back and it counts as malformed.
  std::uint32_t segmentSizeOf(std::size_t i) noexcept {
    msghdr& msg = rxMsgs_[i].msg_hdr;
    const std::uint32_t length = rxMsgs_[i].msg_len;
    if ((msg.msg_flags & MSG_TRUNC) != 0) {
      rxFree_[rxTop_++] = rxSlots_[i];
      counters_.malformed(1);
      return 0;
    }
    if (length == 0) return bufferSize_;  // an empty datagram is handed on as one
    const std::uint32_t segment = gro_ ? groSegmentSize(msg) : 0;
    const std::uint32_t size = segment != 0 ? std::min(segment, length) : length;
    if (size > bufferSize_) {
      rxFree_[rxTop_++] = rxSlots_[i];
      counters_.malformed((length + size - 1) / size);
      return 0;
    }
    // Segments after the first are copied from the staging area: bring the
    // part of them that landed in the buffer there too.
    if (length > size) {
      std::memcpy(stagingAt(i) + size, bufferAt(rxSlots_[i]) + size, std::min(length, bufferSize_) - size);
    }
    return size;
  }

  // Hands out the next segment of the batch just read (the first of a
  // datagram in its own buffer, the others copied into free ones); false
  // when no buffer is free for a copy.
  bool splitReceived(std::span<RxPacket> out, std::size_t* got, std::uint64_t* bytes) noexcept {
    const std::size_t i = rxNext_;
    const std::uint32_t size = rxSegmentSize_[i];
    const std::uint32_t length = rxMsgs_[i].msg_len;
    if (size == 0) {  // given back already
      ++rxNext_;
      return true;
    }
    const std::uint32_t segment = std::min(size, length - rxNextOffset_);
    std::uint32_t slot = rxSlots_[i];
    if (rxNextOffset_ != 0) {
      if (rxTop_ == 0) return false;
      const std::uint32_t copy = rxFree_[--rxTop_];
      std::memcpy(bufferAt(copy), stagingAt(i) + rxNextOffset_, segment);
      rxFrom_[copy] = rxFrom_[slot];
      slot = copy;
    }
    out[*got] = RxPacket{bufferAt(slot), segment, slot, stamps_ ? rxArrival_[i] : 0};
    ++*got;
    *bytes += segment;
    rxNextOffset_ += segment;
    if (rxNextOffset_ >= length) {
      ++rxNext_;
      rxNextOffset_ = 0;
    }
    return true;
  }

  // Return addresses (acquirePeer); [0] is the link's peer.
  struct PeerSlot {
    sockaddr_in6 address{};  // family 0: unused
    std::uint32_t refs = 0;
  };

  LinkEndpointConfig config_;
  int fd_;
  std::atomic<bool> hasPeer_;
  bool connected_;  // connect()ed to peers_[0]
  std::uint32_t bufferSize_;
  std::uint32_t overhead_;
  std::uint32_t rxCount_;
  std::uint32_t txCount_;
  std::string description_;  // without the peer
  mutable std::mutex peerMutex_;
  std::string peer_;  // "ip:port" or "none"
  std::vector<std::uint8_t> pool_;
  std::array<PeerSlot, kMaxLinkPeers> peers_{};
  std::vector<sockaddr_in6> rxFrom_;   // per receive slot: the source of its datagram
  std::vector<std::uint32_t> rxFree_;  // stack of free receive slots, [0, rxTop_)
  std::vector<std::uint32_t> txFree_;  // stack of free transmit slots, [0, txTop_)
  std::size_t rxTop_ = 0;
  std::size_t txTop_ = 0;
  std::vector<mmsghdr> rxMsgs_;
  std::vector<iovec> rxIov_;
  std::vector<std::uint32_t> rxSlots_;
  bool gro_;  // UDP_GRO on (config_.udpGro and the kernel has it)
  // The batch last read: per message its segment size (0: given back), and
  // the next segment to hand out, [rxNext_, rxRead_) at rxNextOffset_.
  std::vector<std::uint32_t> rxSegmentSize_;
  std::size_t rxRead_ = 0;
  std::size_t rxNext_ = 0;
  std::uint32_t rxNextOffset_ = 0;
  bool stamps_;  // SO_TIMESTAMPNS on: packets carry the kernel's arrival time
  // Per message the control messages (UDP_GRO's segment size, the arrival
  // time) and the arrival time read from them; with GRO also
  // kGroDatagramBytes of staging (batchSize x 64 KiB per link, on top of the
  // buffer pool).
  std::vector<std::array<char, CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(timespec))>> rxControl_;
  std::vector<std::uint64_t> rxArrival_;
  std::unique_ptr<std::uint8_t[]> rxStaging_;
  bool gso_;  // UDP_SEGMENT in use (config_.udpGso, checksums on, and the kernel has it)
  std::vector<mmsghdr> txMsgs_;
  std::vector<iovec> txIov_;
  // Per message of a batch: the UDP_SEGMENT control message, how many
  // buffers it carries, and the index in commitTxTo's buffers of its first.
  std::vector<std::array<char, CMSG_SPACE(sizeof(std::uint16_t))>> txControl_;
  std::vector<unsigned> txSegments_;
  std::vector<std::size_t> txFirst_;

  TrafficCounters counters_;
};

}  // namespace

Result<std::unique_ptr<PacketIo>> openUdpPacketIo(const LinkEndpointConfig& config) {
  const std::string where =
      config.peerIp
          ? "UDP link to " + config.peerIp->toString() + ":" + std::to_string(config.peerPort)
          : "receive-only UDP link on " + (config.interface.empty() ? std::string("-") : config.interface);
  if (config.frameCount < 2 || config.batchSize == 0 || config.frameSize < 64) {
    return Error(EINVAL, where + ": needs frameCount >= 2, batchSize >= 1 and frameSize >= 64");
  }
  if (config.localIp && config.peerIp && config.localIp->family != config.peerIp->family) {
    return Error(EINVAL, where + ": local " + config.localIp->toString() + " is of another IP family");
  }
  std::optional<InterfaceInfo> iface;
  if (!config.interface.empty()) {
    auto info = interfaceInfo(config.interface);
    if (!info.ok()) return info.error().wrap(where);
    iface = *info;
  }
  // The local address: given, else the wildcard of the peer's family; a
  // receive-only link binds the interface's own address.
  IpAddress local;
  if (config.localIp) {
    local = *config.localIp;
  } else if (config.peerIp) {
    local.family = config.peerIp->family;
  } else if (iface) {
    auto first = firstInterfaceAddress(iface->ifindex);
    if (!first.ok()) return first.error().wrap(where);
    local = *first;
  } else {
    return Error(EINVAL, "UDP link: give a peer, a local address or an interface");
  }
  std::uint32_t maxPayload = config.frameSize;
  const std::uint32_t headers = local.isV4() ? kIpv4UdpHeaders : kIpv6UdpHeaders;
  if (iface && iface->mtu > headers) maxPayload = std::min(maxPayload, iface->mtu - headers);
  // Ethernet (+ VLAN tag) around the IP packet, on the interface the link
  // leaves through (named, else the route's).
  bool vlan = iface && iface->vlan;
  if (!iface && config.peerIp) {
    auto route = lookupRoute(*config.peerIp);
    char name[IF_NAMESIZE + 1] = {};
    if (route.ok() && if_indextoname(static_cast<unsigned>(route->oifIndex), name) != nullptr) {
      auto info = interfaceInfo(name);
      vlan = info.ok() && info->vlan;
    }
  }
  const auto overhead = static_cast<std::uint32_t>(kEthernetHeader + (vlan ? kVlanTag : 0) + headers);

  const int family = local.isV4() ? AF_INET : AF_INET6;
  const int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Error::fromErrno(where + ": socket");
  auto fail = [fd](Error error) {
    close(fd);
    return error;
  };
  const int one = 1;
  if (!config.interface.empty()) {
    // Needs CAP_NET_RAW; without it the route still picks the interface.
    (void)setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, config.interface.c_str(),
                     static_cast<socklen_t>(config.interface.size()));
  }
  growBuffer(fd, SO_SNDBUFFORCE, SO_SNDBUF);
  growBuffer(fd, SO_RCVBUFFORCE, SO_RCVBUF);
  const bool gro = config.udpGro && enableUdpGro(fd);
  const bool stamps = enableArrivalStamps(fd);
  if (config.busyPollUsecs != 0) {
    if (auto polling = enableBusyPolling(fd, config.busyPollUsecs, config.batchSize); !polling)
      return fail(polling.error().wrap(where));
  }
  if (!config.udpChecksum && family == AF_INET) {
    // SO_NO_CHECK: send IPv4 UDP without a checksum, like the AF_XDP path can.
    setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &one, sizeof(one));
  }

  socklen_t localLen = 0;
  sockaddr_storage localAddr = toSockaddr(local, config.localPort, &localLen);
  if (bind(fd, reinterpret_cast<sockaddr*>(&localAddr), localLen) != 0) {
    return fail(
        Error::fromErrno(where + ": bind to " + local.toString() + ":" + std::to_string(config.localPort)));
  }
  std::string description = "udp:" + (config.interface.empty() ? std::string("-") : config.interface) + " " +
                            local.toString() + ":" + std::to_string(config.localPort);
  std::string peer = "none";
  sockaddr_in6 peerAddress{};
  if (config.peerIp) {
    socklen_t peerLen = 0;
    sockaddr_storage peerAddr = toSockaddr(*config.peerIp, config.peerPort, &peerLen);
    if (!config.manyPeers && connect(fd, reinterpret_cast<sockaddr*>(&peerAddr), peerLen) != 0) {
      return fail(Error::fromErrno(where + ": connect"));
    }
    std::memcpy(&peerAddress, &peerAddr, peerLen);
    peer = config.peerIp->toString() + ":" + std::to_string(config.peerPort);
  }
  return std::unique_ptr<PacketIo>(new UdpPacketIo(config, fd, maxPayload, overhead, std::move(description),
                                                   std::move(peer), peerAddress, gro, stamps));
}

}  // namespace mpxdp::transport
