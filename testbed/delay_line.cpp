// mpxdp-delay-line: a user-space delay line between two devices of a test bed
// link (the kernel here has no netem). Started detached by the test bed
// library in the link namespace with both devices out of the bridge; forwards
// every frame (ARP too) from one device to the other and back, holding each
// for the configured one-way delay.
//
// Receive: AF_PACKET recvmmsg batches with kernel arrival timestamps
// (SO_TIMESTAMPNS), so a frame's due time does not depend on when we read it.
// Transmit: AF_PACKET sendmmsg batches through the qdisc, so the tbf on the
// egress device still shapes. PACKET_VNET_HDR carries the checksum-offload
// state through (kernel UDP/TCP over veth leave checksums partial). Frames
// wait in preallocated FIFOs, one per direction, in arrival order.
//
// The delay is read from --config (decimal nanoseconds) at start and again
// on SIGHUP; frames already held keep their due time, so a change loses none.
// SIGUSR1 (the library puts the devices back in the bridge first): read what
// the sockets hold one last time, stop reading, send what is held when it is
// due, and exit.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>

#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr std::size_t kBatch = 64;
constexpr std::size_t kSlots = 65536;  // frames held per direction (power of two)
// struct virtio_net_hdr (linux/virtio_net.h does not compile as C++: a field is named "class").
constexpr std::size_t kVnetHeaderBytes = 10;
// While frames are held we read the sockets on a timer instead of on every
// arrival (arrival times come from the kernel): fewer wake-ups at high rates.
constexpr std::int64_t kRxPollNs = 200'000;
// A wake-up for a due frame is late by up to this much, so the frames due
// within it go out in one batch. 1 % of a 5 ms delay.
constexpr std::int64_t kCoalesceNs = 50'000;
constexpr int kSocketBufferBytes = 32 << 20;

volatile sig_atomic_t reloadRequested = 0;
volatile sig_atomic_t stopRequested = 0;
volatile sig_atomic_t drainRequested = 0;

void onSignal(int signal) {
  if (signal == SIGHUP) {
    reloadRequested = 1;
  } else if (signal == SIGUSR1) {
    drainRequested = 1;
  } else {
    stopRequested = 1;
  }
}

std::int64_t nowNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

bool readDelay(const char* path, std::int64_t* delayNs) {
  FILE* file = std::fopen(path, "re");
  if (file == nullptr) return false;
  long long value = -1;
  const int read = std::fscanf(file, "%lld", &value);
  std::fclose(file);
  if (read != 1 || value < 0) return false;
  *delayNs = value;
  return true;
}

struct Fifo {
  std::uint8_t* data = nullptr;
  std::int64_t* due = nullptr;
  std::uint32_t* length = nullptr;
  std::size_t stride = 0;
  std::size_t head = 0;  // next to send
  std::size_t tail = 0;  // next free
  std::size_t size() const { return tail - head; }
  std::uint8_t* frame(std::size_t index) { return data + (index & (kSlots - 1)) * stride; }
};

bool allocate(Fifo& fifo, std::size_t stride) {
  fifo.stride = stride;
  const std::size_t bytes = kSlots * (stride + sizeof(std::int64_t) + sizeof(std::uint32_t));
  // Untouched pages cost nothing: memory grows with the frames actually held.
  void* memory =
      mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (memory == MAP_FAILED) return false;
  auto* base = static_cast<std::uint8_t*>(memory);
  fifo.due = reinterpret_cast<std::int64_t*>(base);
  fifo.length = reinterpret_cast<std::uint32_t*>(base + kSlots * sizeof(std::int64_t));
  fifo.data = base + kSlots * (sizeof(std::int64_t) + sizeof(std::uint32_t));
  return true;
}

int openSocket(const char* device) {
  const unsigned ifindex = if_nametoindex(device);
  if (ifindex == 0) {
    std::fprintf(stderr, "mpxdp-delay-line: no device %s: %s\n", device, std::strerror(errno));
    return -1;
  }
  const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
  if (fd < 0) {
    std::fprintf(stderr, "mpxdp-delay-line: AF_PACKET socket: %s\n", std::strerror(errno));
    return -1;
  }
  const int one = 1;
  const int bufferBytes = kSocketBufferBytes;
  packet_mreq promiscuous{};
  promiscuous.mr_ifindex = static_cast<int>(ifindex);
  promiscuous.mr_type = PACKET_MR_PROMISC;
  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_protocol = htons(ETH_P_ALL);
  address.sll_ifindex = static_cast<int>(ifindex);
  if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) != 0 ||
      setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufferBytes, sizeof(bufferBytes)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufferBytes, sizeof(bufferBytes)) != 0 ||
      setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &promiscuous, sizeof(promiscuous)) != 0 ||
      bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    std::fprintf(stderr, "mpxdp-delay-line: set up AF_PACKET socket on %s: %s\n", device,
                 std::strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

struct Direction {
  int rxFd = -1;
  int txFd = -1;
  Fifo fifo;
  bool txBlocked = false;  // socket buffer full: wait for POLLOUT
  std::uint64_t forwarded = 0;
  std::uint64_t dropped = 0;  // tbf queue full, device gone, FIFO full or truncated
};

struct Batch {
  mmsghdr messages[kBatch];
  iovec iov[kBatch];
  alignas(cmsghdr) std::uint8_t control[kBatch][CMSG_SPACE(sizeof(timespec))];
};

Batch batch;

// Reads every frame waiting on the socket into the FIFO, due at arrival + delay.
void receive(Direction& d, std::int64_t delayNs) {
  for (;;) {
    const std::size_t room = kSlots - d.fifo.size();
    if (room == 0) return;  // the kernel socket buffer holds the rest (or drops)
    const std::size_t want = room < kBatch ? room : kBatch;
    for (std::size_t k = 0; k < want; ++k) {
      batch.iov[k] = {d.fifo.frame(d.fifo.tail + k), d.fifo.stride};
      msghdr& header = batch.messages[k].msg_hdr;
      header = {};
      header.msg_iov = &batch.iov[k];
      header.msg_iovlen = 1;
      header.msg_control = batch.control[k];
      header.msg_controllen = sizeof(batch.control[k]);
    }
    const int got = recvmmsg(d.rxFd, batch.messages, static_cast<unsigned>(want), MSG_DONTWAIT, nullptr);
    if (got <= 0) return;
    // Kernel timestamps are CLOCK_REALTIME; due times are CLOCK_MONOTONIC.
    const std::int64_t mono = nowNs(CLOCK_MONOTONIC);
    const std::int64_t offset = nowNs(CLOCK_REALTIME) - mono;
    for (int k = 0; k < got; ++k) {
      const msghdr& header = batch.messages[k].msg_hdr;
      const std::uint32_t length = batch.messages[k].msg_len;
      if ((header.msg_flags & MSG_TRUNC) != 0 || length <= kVnetHeaderBytes) {
        ++d.dropped;
        continue;
      }
      std::int64_t arrival = mono;
      for (cmsghdr* c = CMSG_FIRSTHDR(&header); c != nullptr;
           c = CMSG_NXTHDR(const_cast<msghdr*>(&header), c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
          timespec ts{};
          std::memcpy(&ts, CMSG_DATA(c), sizeof(ts));
          const std::int64_t stamped =
              static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec - offset;
          if (stamped <= mono) arrival = stamped;
        }
      }
      // Compact: a dropped frame leaves no hole.
      const std::size_t slot = d.fifo.tail;
      std::uint8_t* target = d.fifo.frame(slot);
      if (target != batch.iov[k].iov_base) std::memcpy(target, batch.iov[k].iov_base, length);
      d.fifo.due[slot & (kSlots - 1)] = arrival + delayNs;
      d.fifo.length[slot & (kSlots - 1)] = length;
      ++d.fifo.tail;
    }
    if (static_cast<std::size_t>(got) < want) return;
  }
}

// Sends the frames that are due, in order, in sendmmsg batches.
void transmit(Direction& d, std::int64_t now) {
  while (d.fifo.size() > 0) {
    std::size_t count = 0;
    while (count < kBatch && count < d.fifo.size() &&
           d.fifo.due[(d.fifo.head + count) & (kSlots - 1)] <= now) {
      const std::size_t slot = d.fifo.head + count;
      batch.iov[count] = {d.fifo.frame(slot), d.fifo.length[slot & (kSlots - 1)]};
      msghdr& header = batch.messages[count].msg_hdr;
      header = {};
      header.msg_iov = &batch.iov[count];
      header.msg_iovlen = 1;
      ++count;
    }
    if (count == 0) return;
    const int sent = sendmmsg(d.txFd, batch.messages, static_cast<unsigned>(count), MSG_DONTWAIT);
    if (sent > 0) {
      d.fifo.head += static_cast<std::size_t>(sent);
      d.forwarded += static_cast<std::size_t>(sent);
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      d.txBlocked = true;
      return;
    }
    if (errno == EINTR) continue;
    // ENOBUFS: the qdisc (tbf) dropped the frame, as it drops a bridged one; others: device trouble.
    ++d.fifo.head;
    ++d.dropped;
  }
}

void usage() {
  std::fprintf(stderr,
               "usage: mpxdp-delay-line --netns NS --a DEV --b DEV --config FILE --pidfile FILE --log FILE "
               "[--frame-bytes N]\n");
}

}  // namespace

int main(int argc, char** argv) {
  const char* netns = nullptr;
  const char* deviceA = nullptr;
  const char* deviceB = nullptr;
  const char* config = nullptr;
  const char* pidfile = nullptr;
  const char* log = nullptr;
  long frameBytes = 1514 + 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string option = argv[i];
    const char* value = argv[i + 1];
    if (option == "--netns") {
      netns = value;
    } else if (option == "--a") {
      deviceA = value;
    } else if (option == "--b") {
      deviceB = value;
    } else if (option == "--config") {
      config = value;
    } else if (option == "--pidfile") {
      pidfile = value;
    } else if (option == "--log") {
      log = value;
    } else if (option == "--frame-bytes") {
      frameBytes = std::strtol(value, nullptr, 10);
    } else {
      usage();
      return 2;
    }
  }
  if (argc % 2 != 1 || netns == nullptr || deviceA == nullptr || deviceB == nullptr || config == nullptr ||
      pidfile == nullptr || log == nullptr || frameBytes < 64 || frameBytes > 65536) {
    usage();
    return 2;
  }

  const std::string netnsPath = std::string("/run/netns/") + netns;
  const int nsFd = open(netnsPath.c_str(), O_RDONLY | O_CLOEXEC);
  if (nsFd < 0 || setns(nsFd, CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "mpxdp-delay-line: enter %s: %s\n", netnsPath.c_str(), std::strerror(errno));
    return 1;
  }
  close(nsFd);
  std::int64_t delayNs = 0;
  if (!readDelay(config, &delayNs)) {
    std::fprintf(stderr, "mpxdp-delay-line: cannot read a delay from %s\n", config);
    return 1;
  }
  Direction directions[2];
  const int fdA = openSocket(deviceA);
  const int fdB = fdA < 0 ? -1 : openSocket(deviceB);
  if (fdA < 0 || fdB < 0) return 1;
  directions[0].rxFd = fdA;
  directions[0].txFd = fdB;
  directions[1].rxFd = fdB;
  directions[1].txFd = fdA;
  const std::size_t stride =
      (static_cast<std::size_t>(frameBytes) + kVnetHeaderBytes + 63) & ~std::size_t{63};
  for (Direction& d : directions) {
    if (!allocate(d.fifo, stride)) {
      std::fprintf(stderr, "mpxdp-delay-line: allocate frame buffers: %s\n", std::strerror(errno));
      return 1;
    }
  }
  const int logFd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logFd < 0) {
    std::fprintf(stderr, "mpxdp-delay-line: open %s: %s\n", log, std::strerror(errno));
    return 1;
  }

  // Detach: the starter waits for the intermediate process, which exits once
  // the daemon has written its pid file and let go of the starter's pipes.
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return 1;
  const pid_t child = fork();
  if (child < 0) return 1;
  if (child > 0) {
    close(ready[1]);
    char byte = 0;
    const ssize_t n = read(ready[0], &byte, 1);
    return n == 1 && byte == 'r' ? 0 : 1;
  }
  close(ready[0]);
  setsid();
  const int devNull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devNull >= 0) dup2(devNull, STDIN_FILENO);
  dup2(logFd, STDOUT_FILENO);
  dup2(logFd, STDERR_FILENO);
  const std::string temporary = std::string(pidfile) + ".tmp";
  FILE* pidFile = std::fopen(temporary.c_str(), "we");
  if (pidFile == nullptr || std::fprintf(pidFile, "%d\n", getpid()) < 0 || std::fclose(pidFile) != 0 ||
      rename(temporary.c_str(), pidfile) != 0) {
    std::fprintf(stderr, "mpxdp-delay-line: write %s: %s\n", pidfile, std::strerror(errno));
    return 1;
  }

  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGHUP);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGUSR1);
  sigaddset(&blocked, SIGINT);
  sigprocmask(SIG_BLOCK, &blocked, nullptr);
  struct sigaction action {};
  action.sa_handler = onSignal;
  sigaction(SIGHUP, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  sigset_t unblocked;
  sigemptyset(&unblocked);
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);  // ppoll wakes within microseconds of its deadline
  // The line stands in for a wire: on a busy 2-core machine a normal-priority
  // process is descheduled for tens of ms, which shows up as delay and as
  // bursts that overflow the tbf queue. It sleeps between batches, and the
  // kernel's RT throttling bounds it anyway.
  sched_param priority{};
  priority.sched_priority = 10;
  if (sched_setscheduler(0, SCHED_FIFO, &priority) != 0) {
    std::fprintf(stderr, "mpxdp-delay-line: no SCHED_FIFO (%s), using nice -20\n", std::strerror(errno));
    setpriority(PRIO_PROCESS, 0, -20);
  }

  std::fprintf(stderr, "mpxdp-delay-line %d: %s <-> %s, delay %" PRId64 " ns\n", getpid(), deviceA, deviceB,
               delayNs);
  const char ok = 'r';
  (void)!write(ready[1], &ok, 1);
  close(ready[1]);

  std::int64_t rxDeadline = 0;
  bool draining = false;
  while (stopRequested == 0) {
    if (reloadRequested != 0) {
      reloadRequested = 0;
      std::int64_t updated = 0;
      if (readDelay(config, &updated)) {
        delayNs = updated;
        std::fprintf(stderr, "mpxdp-delay-line: delay now %" PRId64 " ns\n", delayNs);
      } else {
        std::fprintf(stderr, "mpxdp-delay-line: cannot read a delay from %s; keeping %" PRId64 " ns\n",
                     config, delayNs);
      }
    }
    std::int64_t now = nowNs(CLOCK_MONOTONIC);
    if (drainRequested != 0 && !draining) {
      for (Direction& d : directions) receive(d, delayNs);  // what arrived before the bridge took over
      draining = true;
      std::fprintf(stderr, "mpxdp-delay-line: draining %zu + %zu held frames\n", directions[0].fifo.size(),
                   directions[1].fifo.size());
    }
    if (draining && directions[0].fifo.size() == 0 && directions[1].fifo.size() == 0) break;
    if (!draining && now >= rxDeadline) {
      for (Direction& d : directions) receive(d, delayNs);
      rxDeadline = now + kRxPollNs;
    }
    now = nowNs(CLOCK_MONOTONIC);
    for (Direction& d : directions) {
      if (!d.txBlocked) transmit(d, now);
    }

    // Sleep until the next frame is due, the timer read of the sockets, a
    // signal, or (when nothing is held) the next arrival.
    bool holding = false;
    std::int64_t wake = INT64_MAX;
    pollfd fds[4];
    nfds_t count = 0;
    for (Direction& d : directions) {
      if (d.fifo.size() == 0) continue;
      holding = true;
      if (d.txBlocked) {
        fds[count++] = {d.txFd, POLLOUT, 0};
      } else {
        const std::int64_t due = d.fifo.due[d.fifo.head & (kSlots - 1)] + kCoalesceNs;
        if (due < wake) wake = due;
      }
    }
    if (draining) {
      // Only the held frames matter now.
    } else if (holding) {
      if (rxDeadline < wake) wake = rxDeadline;
    } else {
      fds[count++] = {directions[0].rxFd, POLLIN, 0};
      fds[count++] = {directions[1].rxFd, POLLIN, 0};
    }
    timespec timeout{};
    timespec* timeoutPointer = nullptr;
    if (wake != INT64_MAX) {
      const std::int64_t left = wake - now > 0 ? wake - now : 0;
      timeout.tv_sec = left / 1'000'000'000;
      timeout.tv_nsec = left % 1'000'000'000;
      timeoutPointer = &timeout;
    }
    const int ready = ppoll(fds, count, timeoutPointer, &unblocked);
    if (ready > 0) {
      for (nfds_t i = 0; i < count; ++i) {
        if (fds[i].revents == 0) continue;
        if (fds[i].events == POLLIN) rxDeadline = 0;  // read now
        for (Direction& d : directions) {
          if (fds[i].events == POLLOUT && d.txFd == fds[i].fd) d.txBlocked = false;
        }
      }
    }
  }
  std::fprintf(stderr,
               "mpxdp-delay-line: stopping; %s->%s forwarded %" PRIu64 " dropped %" PRIu64
               ", %s->%s forwarded %" PRIu64 " dropped %" PRIu64 "\n",
               deviceA, deviceB, directions[0].forwarded, directions[0].dropped, deviceB, deviceA,
               directions[1].forwarded, directions[1].dropped);
  unlink(pidfile);
  return 0;
}
