#include "rx_thread.h"

#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <utility>

#include "event_fd.h"

namespace mpxdp::transport {
namespace {

constexpr std::size_t kBatch = 64;

std::size_t roundUpToPowerOfTwo(std::size_t n) noexcept {
  std::size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// Buffers the link can lend at once: the records of all of them fit in each ring.
std::size_t buffersOf(const PacketIo& link) {
  const std::uint64_t perQueue = link.receiveBuffersPerQueue();
  const std::size_t queues = std::max<std::size_t>(link.pollFds().size(), 1);
  if (perQueue == UINT32_MAX) return 0;
  return static_cast<std::size_t>(perQueue) * queues;
}

class ThreadReceivedLink final : public PacketIo {
 public:
  ThreadReceivedLink(std::unique_ptr<PacketIo> link, std::shared_ptr<RxThread> thread, std::size_t capacity)
      : link_(std::move(link)), channel_(capacity), thread_(std::move(thread)) {
    channel_.link = link_.get();
  }
  ~ThreadReceivedLink() override { thread_->remove(channel_); }  // before the link goes

  Result<void> open() {
    channel_.readyFd = UniqueFd(makeEventFd());
    if (channel_.readyFd.get() < 0) return Error::fromErrno("eventfd for the receive thread");
    thread_->add(channel_);
    return {};
  }

  const PacketIo& link() const noexcept { return *link_; }

  std::size_t reserveTx(std::span<TxBuffer> out) noexcept override { return link_->reserveTx(out); }
  Result<std::size_t> commitTx(std::span<const TxBuffer> buffers) noexcept override {
    return link_->commitTx(buffers);
  }
  Result<void> flushTx() noexcept override { return link_->flushTx(); }

  Result<std::size_t> receive(std::span<RxPacket> out) noexcept override {
    // Before taking: whatever the thread read before this point is in the ring.
    drainedAsOfNs_ = thread_->parked() ? kNow : channel_.drainedAtNs.load();
    std::size_t got = channel_.ready.pop(out);
    // Found empty while signalled: clear the eventfd, then the flag, then
    // look again. A push before the flag was cleared is seen by that look; one
    // after it finds the flag clear and signals anew.
    if (got < out.size() && channel_.signalled.load()) {
      drainEventFd(channel_.readyFd.get());
      channel_.signalled.store(false);
      got += channel_.ready.pop(out.subspan(got));
      // Still more than out held: keep the eventfd readable, as a link's own descriptor stays.
      if (!channel_.ready.empty() && !channel_.signalled.exchange(true))
        signalEventFd(channel_.readyFd.get());
    }
    if (got == 0 && channel_.failed.load(std::memory_order_acquire)) return channel_.failure;
    return got;
  }

  void release(std::span<const RxPacket> packets) noexcept override {
    if (packets.empty()) return;
    // The ring holds every buffer the link has, so everything fits.
    channel_.released.push(packets);
    thread_->released();
  }

  std::uint64_t drainedAsOfNs(std::uint64_t readStartNs) const noexcept override {
    return drainedAsOfNs_ == kNow ? readStartNs : std::min(readStartNs, drainedAsOfNs_);
  }

  std::vector<int> pollFds() const override { return {channel_.readyFd.get()}; }
  std::uint32_t maxPayload() const noexcept override { return link_->maxPayload(); }
  std::uint32_t frameOverheadBytes() const noexcept override { return link_->frameOverheadBytes(); }
  Result<void> setPeerFrom(const RxPacket& packet) noexcept override { return link_->setPeerFrom(packet); }
  bool hasPeer() const noexcept override { return link_->hasPeer(); }
  Result<std::uint16_t> acquirePeer(const RxPacket& packet) noexcept override {
    return link_->acquirePeer(packet);
  }
  void releasePeer(std::uint16_t peer) noexcept override { link_->releasePeer(peer); }
  Result<std::size_t> commitTxTo(std::uint16_t peer, std::span<const TxBuffer> buffers) noexcept override {
    return link_->commitTxTo(peer, buffers);
  }
  std::string peerDescription() const override { return link_->peerDescription(); }
  PacketIoStats stats() const noexcept override { return link_->stats(); }
  std::string describe() const override { return link_->describe() + " rx-thread"; }
  std::uint32_t receiveBuffersPerQueue() const noexcept override { return link_->receiveBuffersPerQueue(); }

 private:
  static constexpr std::uint64_t kNow = UINT64_MAX;
  std::unique_ptr<PacketIo> link_;
  RxChannel channel_;
  std::shared_ptr<RxThread> thread_;
  std::uint64_t drainedAsOfNs_ = kNow;  // as of the last receive()
};

}  // namespace

RxPacketRing::RxPacketRing(std::size_t capacity)
    : slots_(roundUpToPowerOfTwo(std::max<std::size_t>(capacity, 1))), mask_(slots_.size() - 1) {}

std::size_t RxPacketRing::push(std::span<const RxPacket> packets) noexcept {
  const std::uint64_t head = head_.load(std::memory_order_relaxed);
  const std::size_t room = slots_.size() - static_cast<std::size_t>(head - tail_.load());
  const std::size_t n = std::min(room, packets.size());
  for (std::size_t i = 0; i < n; ++i) slots_[(head + i) & mask_] = packets[i];
  if (n > 0) head_.store(head + n);
  return n;
}

std::size_t RxPacketRing::pop(std::span<RxPacket> out) noexcept {
  const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
  const std::size_t waiting = static_cast<std::size_t>(head_.load() - tail);
  const std::size_t n = std::min(waiting, out.size());
  for (std::size_t i = 0; i < n; ++i) out[i] = slots_[(tail + i) & mask_];
  if (n > 0) tail_.store(tail + n);
  return n;
}

RxThread::RxThread(std::shared_ptr<const Clock> clock, std::string name)
    : clock_(std::move(clock)), name_(std::move(name)), batch_(kBatch) {}

Result<std::shared_ptr<RxThread>> RxThread::start(std::shared_ptr<const Clock> clock, std::string name) {
  if (!clock) clock = std::make_shared<MonotonicClock>();
  std::shared_ptr<RxThread> thread(new RxThread(std::move(clock), std::move(name)));
  thread->wake_ = UniqueFd(makeEventFd());
  if (thread->wake_.get() < 0) return Error::fromErrno("eventfd for " + thread->name_);
  try {
    thread->thread_ = std::thread([raw = thread.get()] { raw->run(); });
  } catch (const std::system_error& error) {
    return Error(error.code().value(), "starting " + thread->name_);
  }
  pthread_setname_np(thread->thread_.native_handle(), thread->name_.substr(0, 15).c_str());
  return thread;
}

RxThread::~RxThread() {
  stop_.store(true);
  signalEventFd(wake_.get());
  if (thread_.joinable()) thread_.join();
}

void RxThread::add(RxChannel& channel) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    channels_.push_back(&channel);
    pollFdsStale_ = true;
  }
  signalEventFd(wake_.get());  // it sleeps on the links it had
}

void RxThread::remove(RxChannel& channel) noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);  // waits for a round that may read it
    std::erase(channels_, &channel);
    pollFdsStale_ = true;
  }
  signalEventFd(wake_.get());
}

void RxThread::released() noexcept {
  // After the push (sequentially consistent): a thread going to sleep sets
  // parked_ and then looks at the released rings, so one of us sees the other.
  if (parked_.load()) signalEventFd(wake_.get());
}

void RxThread::run() noexcept {
  while (!stop_.load()) {
    if (serveAll()) continue;
    parked_.store(true);
    // Buffers released before parked_ was set would not wake us.
    bool pending = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (RxChannel* channel : channels_) pending = pending || !channel->released.empty();
    }
    if (!pending && !stop_.load()) sleep();
    parked_.store(false);
  }
}

bool RxThread::serveAll() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  bool busy = false;
  for (RxChannel* channel : channels_) busy = serve(*channel) || busy;
  return busy;
}

bool RxThread::serve(RxChannel& channel) noexcept {
  PacketIo& link = *channel.link;
  bool busy = false;
  for (std::size_t n = channel.released.pop(batch_); n > 0; n = channel.released.pop(batch_)) {
    link.release(std::span<const RxPacket>(batch_.data(), n));
    busy = true;
  }
  if (channel.failed.load(std::memory_order_relaxed)) return busy;
  const std::uint64_t startNs = clock_->nowNs();
  auto got = link.receive(batch_);
  if (!got) {
    channel.failure = got.error();
    channel.failed.store(true, std::memory_order_release);
    pollFdsStale_ = true;  // under mutex_ (serveAll): stop waiting on it
    signalEventFd(channel.readyFd.get());
    return busy;
  }
  if (*got > 0) {
    // Never short: the ring has a record for every buffer of the link.
    (void)channel.ready.push(std::span<const RxPacket>(batch_.data(), *got));
    // One system call per time the connection found the ring empty.
    if (!channel.signalled.exchange(true)) signalEventFd(channel.readyFd.get());
  }
  if (*got < batch_.size()) {
    channel.drainedAtNs.store(startNs);  // after the push: a reader that sees it sees the packets
  } else {
    busy = true;  // more may wait
  }
  return busy;
}

void RxThread::sleep() noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (pollFdsStale_) {  // rebuilt only when links come, go or fail: no allocation per sleep
      pollFds_.clear();
      pollFds_.push_back({wake_.get(), POLLIN, 0});
      for (RxChannel* channel : channels_) {
        if (channel->failed.load(std::memory_order_relaxed)) continue;
        for (int fd : channel->link->pollFds()) pollFds_.push_back({fd, POLLIN, 0});
      }
      pollFdsStale_ = false;
    }
  }
  while (::poll(pollFds_.data(), pollFds_.size(), -1) < 0 && errno == EINTR) {
  }
  if ((pollFds_[0].revents & POLLIN) != 0) drainEventFd(wake_.get());
}

Result<std::unique_ptr<PacketIo>> receiveOnThread(std::unique_ptr<PacketIo> link,
                                                  std::shared_ptr<RxThread> thread) {
  if (!link || !thread) return Error(EINVAL, "receiveOnThread needs a link and a started thread");
  const std::size_t buffers = buffersOf(*link);
  if (buffers == 0) {
    return Error(EINVAL, "a receive thread needs a link with a fixed number of receive buffers (" +
                             link->describe() + ")");
  }
  auto wrapped = std::make_unique<ThreadReceivedLink>(std::move(link), std::move(thread), buffers);
  if (auto opened = wrapped->open(); !opened) return opened.error();
  return std::unique_ptr<PacketIo>(std::move(wrapped));
}

const PacketIo& linkOf(const PacketIo& io) noexcept {
  if (const auto* wrapped = dynamic_cast<const ThreadReceivedLink*>(&io)) return wrapped->link();
  return io;
}

}  // namespace mpxdp::transport
