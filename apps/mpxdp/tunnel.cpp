#include "tunnel.h"

#include <algorithm>
#include <cerrno>

#include "run_control.h"
#include "wire/frames.h"

namespace mpxdp::cli {
namespace {

// TUN reads per round before the paths get their turn: a full batch of
// super-packets is ~45 path packets each.
constexpr int kReadsPerRound = 64;
// How often the server looks for a newer connection (a restarted peer).
constexpr std::uint64_t kReplaceCheckNs = 20'000'000;
// Packets each queue's reader thread holds (super-packets: up to 1 MiB).
constexpr std::uint32_t kQueueReaderSlots = 16;

std::uint8_t ipVersion(std::span<const std::uint8_t> packet) { return packet.empty() ? 0 : packet[0] >> 4; }

}  // namespace

TunWriter::TunWriter(tun::TunDevice& device, TunnelAddresses addresses, TunnelCounters& counters)
    : device_(device),
      addresses_(addresses),
      counters_(counters),
      writeBuffer_(tun::kVirtioHeaderBytes + tun::kMaxSuperPacket),
      icmpBuffer_(tun::kVirtioHeaderBytes + 1500) {
  if (device_.virtioHeader()) coalescer_.emplace();
}

Result<std::vector<std::unique_ptr<tun::QueueReader>>> startQueueReaders(const tun::TunDevice& device) {
  std::vector<std::unique_ptr<tun::QueueReader>> readers;
  if (device.queueCount() < 2) return readers;
  for (std::uint32_t queue = 0; queue < device.queueCount(); ++queue) {
    auto reader = tun::QueueReader::start(device.queueFd(queue), kQueueReaderSlots,
                                          tun::kVirtioHeaderBytes + tun::kMaxSuperPacket,
                                          "queue " + std::to_string(queue) + " of " + device.name());
    if (!reader) return reader.error();
    readers.push_back(std::move(*reader));
  }
  return readers;
}

std::uint32_t TunWriter::queueFor(std::span<const std::uint8_t> ipPacket) const noexcept {
  const std::uint32_t queues = device_.queueCount();
  return queues < 2 ? 0 : tun::symmetricFlowHash(ipPacket) % queues;
}

TunnelPump::TunnelPump(tun::TunDevice& device, TunnelAddresses addresses, std::uint64_t rxHoldoffNs)
    : device_(device),
      writer_(device, addresses, counters_),
      readBuffer_(tun::kVirtioHeaderBytes + tun::kMaxSuperPacket),
      waiter_(rxHoldoffNs) {}

void TunnelPump::useQueueReaders(std::vector<std::unique_ptr<tun::QueueReader>> readers) {
  readers_ = std::move(readers);
  heldReader_ = SIZE_MAX;
  nextReader_ = 0;
  counters_.queues = std::max<std::uint32_t>(1, static_cast<std::uint32_t>(readers_.size()));
}

Result<std::span<const std::uint8_t>> TunnelPump::takeFromQueues() {
  if (heldReader_ != SIZE_MAX) {
    readers_[heldReader_]->pop();
    heldReader_ = SIZE_MAX;
  }
  for (std::size_t i = 0; i < readers_.size(); ++i) {
    const std::size_t r = (nextReader_ + i) % readers_.size();
    if (auto failure = readers_[r]->failure()) return *failure;
    const std::span<const std::uint8_t> packet = readers_[r]->front();
    if (packet.empty()) continue;
    heldReader_ = r;
    nextReader_ = r + 1;
    ++counters_.queueReads[r];
    return packet;
  }
  return std::span<const std::uint8_t>();
}

bool TunnelPump::queuesPending() const noexcept {
  return std::any_of(readers_.begin(), readers_.end(), [](const auto& reader) {
    return !reader->front().empty() || reader->failure().has_value();
  });
}

void TunnelPump::addTunFds(std::vector<pollfd>& fds) const {
  if (readers_.empty()) {
    fds.push_back({device_.fd(), POLLIN, 0});
    return;
  }
  for (const auto& reader : readers_) fds.push_back({reader->readyFd(), POLLIN, 0});
}

void TunnelPump::clearReady(const std::vector<pollfd>& fds) {
  for (std::size_t r = 0; r < readers_.size(); ++r) {
    if ((fds[r].revents & POLLIN) != 0) readers_[r]->clearReady();
  }
}

Result<bool> TunnelPump::readNext(std::uint32_t maxPacket) {
  std::span<const std::uint8_t> packet;
  if (readers_.empty()) {
    auto got = device_.read(readBuffer_);
    if (!got) return got.error().wrap("read " + device_.name());
    if (*got == 0) return false;
    ++counters_.queueReads[0];
    packet = std::span<const std::uint8_t>(readBuffer_.data(), *got);
  } else {
    auto got = takeFromQueues();
    if (!got) return got.error();
    if (got->empty()) return false;
    packet = *got;
  }
  ++counters_.reads;
  tun::VirtioHeader header;
  if (device_.virtioHeader()) {
    if (packet.size() < tun::kVirtioHeaderBytes) {
      ++counters_.droppedMalformed;
      return true;
    }
    header = tun::parseVirtioHeader(packet.first<tun::kVirtioHeaderBytes>());
    packet = packet.subspan(tun::kVirtioHeaderBytes);
  }
  auto begun = splitter_.begin(header, packet, maxPacket);
  if (!begun) {
    if (begun.error().code() == EMSGSIZE) {
      ++counters_.droppedTooBig;
      writer_.answerTooBig(packet, maxPacket);
    } else {
      ++counters_.droppedMalformed;
    }
    return true;
  }
  if (splitter_.remainingSegments() > 1) ++counters_.superPackets;
  return true;
}

Result<bool> TunnelPump::pumpOut(Connection& connection, std::uint32_t maxPacket) {
  std::array<SendSlot, 64> slots;
  int reads = 0;
  bool empty = false;  // the TUN had nothing more to read
  auto readMore = [&]() -> Result<void> {
    while (splitter_.remainingSegments() == 0 && !empty) {
      if (reads == kReadsPerRound) {
        empty = true;  // the paths' turn; the rest waits for the next round
        break;
      }
      auto more = readNext(maxPacket);
      if (!more) return more.error();
      empty = !*more;
      if (*more) ++reads;
    }
    return {};
  };
  while (true) {
    if (auto read = readMore(); !read) return read.error();
    if (splitter_.remainingSegments() == 0) return true;
    // One reserve and one commit for as many packets as the TUN has ready:
    // each commit kicks the links.
    const std::size_t n = connection.reserve(slots, maxPacket);
    if (n == 0) return false;  // paced out or the window is closed: the packet waits in the splitter
    std::size_t filled = 0;
    while (filled < n) {
      if (splitter_.remainingSegments() == 0) {
        if (auto read = readMore(); !read) return read.error();
        if (splitter_.remainingSegments() == 0) break;
      }
      const std::size_t length =
          splitter_.next(std::span<std::uint8_t>(slots[filled].data, slots[filled].capacity));
      slots[filled].length = static_cast<std::uint32_t>(length);
      ++filled;
      ++counters_.packetsRead;
      counters_.bytesRead += length;
    }
    for (std::size_t i = filled; i < n; ++i) slots[i].length = 0;  // given back unsent
    if (auto committed = connection.commit(std::span<const SendSlot>(slots.data(), n)); !committed)
      counters_.droppedSendFailed += filled;
  }
}

void TunWriter::answerTooBig(std::span<const std::uint8_t> ipPacket, std::uint32_t mtu) {
  const std::uint8_t version = ipVersion(ipPacket);
  const std::optional<IpAddress>& source = version == 4 ? addresses_.v4 : addresses_.v6;
  if (!source) return;
  const std::size_t headerBytes = device_.virtioHeader() ? tun::kVirtioHeaderBytes : 0;
  const std::size_t length = tun::buildPacketTooBig(
      ipPacket, mtu, *source, std::span<std::uint8_t>(icmpBuffer_).subspan(headerBytes));
  if (length == 0) return;
  if (headerBytes > 0) {
    const auto single = tun::TcpCoalescer::singleHeader();
    std::copy(single.begin(), single.end(), icmpBuffer_.begin());
  }
  const std::span<const std::uint8_t> answer(icmpBuffer_.data(), headerBytes + length);
  auto written = device_.write(queueFor(answer.subspan(headerBytes)), answer);
  if (written && *written) ++counters_.icmpSent;
}

void TunWriter::flush() {
  if (!coalescer_ || coalescer_->empty()) return;
  const std::uint32_t segments = coalescer_->segments();
  const auto parts = coalescer_->take();
  std::size_t bytes = 0;
  for (const auto part : parts) bytes += part.size();
  auto written = device_.write(queueFor(parts.front().subspan(tun::kVirtioHeaderBytes)), parts);
  ++counters_.writes;
  if (written && *written) {
    counters_.packetsWritten += segments;
    counters_.bytesWritten += bytes - tun::kVirtioHeaderBytes;
  } else {
    counters_.writeDropped += segments;
  }
}

void TunWriter::write(std::span<const std::uint8_t> ipPacket) {
  if (coalescer_) {
    if (coalescer_->add(ipPacket)) return;
    flush();
    if (coalescer_->add(ipPacket)) return;
  }
  const std::uint32_t queue = queueFor(ipPacket);
  if (coalescer_) {
    // Not TCP (or not mergeable at all): on its own, behind a plain virtio header.
    if (ipPacket.size() + tun::kVirtioHeaderBytes > writeBuffer_.size()) {
      ++counters_.writeDropped;
      return;
    }
    const auto single = tun::TcpCoalescer::singleHeader();
    std::copy(single.begin(), single.end(), writeBuffer_.begin());
    std::copy(ipPacket.begin(), ipPacket.end(), writeBuffer_.begin() + tun::kVirtioHeaderBytes);
    ipPacket = std::span<const std::uint8_t>(writeBuffer_.data(), tun::kVirtioHeaderBytes + ipPacket.size());
  }
  auto written = device_.write(queue, ipPacket);
  ++counters_.writes;
  if (written && *written) {
    ++counters_.packetsWritten;
    counters_.bytesWritten += ipPacket.size() - (coalescer_ ? tun::kVirtioHeaderBytes : 0);
  } else {
    ++counters_.writeDropped;
  }
}

void TunnelPump::pumpIn(std::span<const Delivered> delivered) {
  for (const Delivered& d : delivered) writer_.write({d.data, d.length});
  writer_.flush();
}

TunnelPump::Outcome TunnelPump::run(Endpoint& endpoint, Connection& connection, Reporter* sendReporter,
                                    Reporter* receiveReporter, double intervalS, Connection** replacement) {
  Outcome outcome;
  std::vector<pollfd> fds;
  addTunFds(fds);
  const std::size_t tunFds = fds.size();
  for (int fd : endpoint.pollFds()) {
    if (fd >= 0) fds.push_back({fd, POLLIN, 0});
  }
  const std::uint32_t maxPacket = connection.maxPayload();
  const auto intervalNs = static_cast<std::uint64_t>(intervalS * 1e9);
  const std::uint64_t startNs = monotonicNs();
  if (sendReporter) sendReporter->start(startNs);
  if (receiveReporter) receiveReporter->start(startNs);
  std::uint64_t nextReportNs = intervalNs > 0 ? startNs + intervalNs : UINT64_MAX;
  std::uint64_t nextReplaceCheckNs = startNs + kReplaceCheckNs;
  std::array<Delivered, 256> delivered;
  auto seconds = [&](std::uint64_t ns) { return static_cast<double>(ns - startNs) / 1e9; };

  while (!connection.done()) {
    if (stopRequested()) {
      connection.abort(static_cast<std::uint16_t>(wire::CloseError::kStopped),
                       "stopped by signal " + std::to_string(stopSignal()));
      outcome.endedBy = "signal";
      break;
    }
    const std::uint64_t now = monotonicNs();
    if (now >= nextReportNs) {
      const ConnectionStats snapshot = connection.stats();
      if (sendReporter) sendReporter->interval(snapshot, seconds(now), 0);
      if (receiveReporter) receiveReporter->interval(snapshot, seconds(now), 0);
      nextReportNs += intervalNs * ((now - nextReportNs) / intervalNs + 1);
    }
    if (metrics_ != nullptr && metrics_->due(connection.state().connId, now))
      metrics_->publish(metricsSampleOf(endpoint, connection, linkNames_));
    if (replacement != nullptr && now >= nextReplaceCheckNs) {
      nextReplaceCheckNs = now + kReplaceCheckNs;
      if (Connection* newer = endpoint.accept()) {
        connection.abort(static_cast<std::uint16_t>(wire::CloseError::kStopped),
                         "replaced by a newer connection from the peer");
        *replacement = newer;
        outcome.endedBy = "replaced";
        break;
      }
    }
    // Inbound first: it frees receive buffers and carries the ACKs the sender waits for.
    auto n = connection.poll(delivered);
    if (!n) {
      outcome.failure = n.error();
      outcome.endedBy = "error";
      break;
    }
    pumpIn(std::span<const Delivered>(delivered.data(), *n));
    connection.release(std::span<const Delivered>(delivered.data(), *n));
    bool busy = *n == delivered.size();

    auto sent = pumpOut(connection, maxPacket);
    if (!sent) {
      outcome.failure = sent.error();
      outcome.endedBy = "error";
      break;
    }
    const bool mayRead = *sent;
    if (auto flushed = connection.flush(); !flushed) {
      outcome.failure = flushed.error();
      outcome.endedBy = "error";
      break;
    }
    if (busy) continue;
    // The reader threads' readyFd fires only when an empty ring gets a packet.
    if (mayRead && queuesPending()) continue;
    // Read the TUN again when it has packets and the connection may send;
    // paced out, wake when it may.
    std::uint64_t wake = std::min({endpoint.nextDeadlineNs(), nextReportNs, now + kMaxWaitNs});
    if (!mayRead) wake = std::min(wake, std::max(connection.nextSendTimeNs(maxPacket), now + 20'000));
    for (std::size_t i = 0; i < tunFds; ++i) {
      fds[i].events = mayRead ? POLLIN : 0;
      fds[i].revents = 0;
    }
    waiter_.wait(fds, wake);
    clearReady(fds);
  }
  if (metrics_ != nullptr) metrics_->retire(connection.state().connId);
  if (outcome.endedBy.empty()) {
    outcome.endedBy = "peer";
    if (connection.error()) outcome.failure = connection.error();
  }
  return outcome;
}

Result<void> TunnelPump::discardUntil(Endpoint& endpoint, std::uint64_t deadlineNs) {
  std::vector<pollfd> fds;
  addTunFds(fds);
  for (int fd : endpoint.pollFds()) {
    if (fd >= 0) fds.push_back({fd, POLLIN, 0});
  }
  // What the splitter still held went with the connection; its buffer is reused below.
  splitter_ = tun::GsoSplitter();
  while (true) {
    if (readers_.empty()) {
      auto got = device_.read(readBuffer_);
      if (!got) return got.error().wrap("read " + device_.name());
      if (*got == 0) break;
      ++counters_.queueReads[0];
    } else {
      auto got = takeFromQueues();
      if (!got) return got.error();
      if (got->empty()) break;
    }
    ++counters_.droppedNoConnection;
  }
  waitOnFds(fds, std::min(deadlineNs, endpoint.nextDeadlineNs()));
  clearReady(fds);
  return {};
}

}  // namespace mpxdp::cli
