// Runs the steering program on crafted packets with BPF_PROG_TEST_RUN (no traffic needed) and checks
// verdicts and counters, then checks that attach() never replaces a foreign XDP program and leaves
// nothing behind. Every test body runs on a thread of its own inside a fresh network namespace, which
// the kernel tears down (with its veths and their XDP programs) when the thread ends, pass or fail.
#include "steering.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "privilege.h"

#ifndef SOL_XDP
#define SOL_XDP 283
#endif

extern char** environ;

namespace mpxdp::bpf {
namespace {

constexpr std::uint16_t kPort = 47123;
constexpr std::uint16_t kOtherPort = 47124;
constexpr char kVethA[] = "mpxsteer0";
constexpr char kVethB[] = "mpxsteer1";
constexpr int kLoopbackIfindex = 1;  // lo is always ifindex 1 in a fresh namespace

// ---- running inside a private network namespace -------------------------------------------------

// unshare(CLONE_NEWNET) affects only the calling thread, so the body gets a thread of its own; the
// namespace dies with the thread.
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

// Runs a command without a shell; the child inherits the calling thread's network namespace.
bool run(std::vector<std::string> args) {
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return false;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// A veth pair with two queues per side, both up, in the current namespace.
bool createVethPair() {
  return run({"ip", "link", "add", kVethA, "numtxqueues", "2", "numrxqueues", "2", "type", "veth", "peer",
              "name", kVethB, "numtxqueues", "2", "numrxqueues", "2"}) &&
         run({"ip", "link", "set", kVethA, "up"}) && run({"ip", "link", "set", kVethB, "up"});
}

int ifindexOf(const char* name) { return static_cast<int>(if_nametoindex(name)); }

std::uint32_t attachedXdpProgram(int ifindex) {
  bpf_xdp_query_opts query{};
  query.sz = sizeof(query);
  if (bpf_xdp_query(ifindex, 0, &query) != 0) return UINT32_MAX;
  return query.prog_id;
}

// ---- a minimal AF_XDP socket: enough for the kernel to accept it into an XSKMAP -----------------

class TestXsk {
 public:
  TestXsk(int ifindex, std::uint32_t queue) {
    umem_ = mmap(nullptr, kUmemBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (umem_ == MAP_FAILED) {
      umem_ = nullptr;
      error_ = std::string("mmap umem: ") + std::strerror(errno);
      return;
    }
    fd_ = socket(AF_XDP, SOCK_RAW, 0);
    if (fd_ < 0) {
      error_ = std::string("socket(AF_XDP): ") + std::strerror(errno);
      return;
    }
    xdp_umem_reg reg{};
    reg.addr = reinterpret_cast<std::uintptr_t>(umem_);
    reg.len = kUmemBytes;
    reg.chunk_size = kFrameBytes;
    const int ringSize = 64;
    sockaddr_xdp address{};
    address.sxdp_family = AF_XDP;
    address.sxdp_ifindex = static_cast<std::uint32_t>(ifindex);
    address.sxdp_queue_id = queue;
    address.sxdp_flags = XDP_COPY;
    if (setsockopt(fd_, SOL_XDP, XDP_UMEM_REG, &reg, sizeof(reg)) != 0 ||
        setsockopt(fd_, SOL_XDP, XDP_UMEM_FILL_RING, &ringSize, sizeof(ringSize)) != 0 ||
        setsockopt(fd_, SOL_XDP, XDP_UMEM_COMPLETION_RING, &ringSize, sizeof(ringSize)) != 0 ||
        setsockopt(fd_, SOL_XDP, XDP_RX_RING, &ringSize, sizeof(ringSize)) != 0 ||
        bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      error_ = std::string("set up AF_XDP socket: ") + std::strerror(errno);
    }
  }
  ~TestXsk() {
    if (fd_ >= 0) close(fd_);
    if (umem_ != nullptr) munmap(umem_, kUmemBytes);
  }
  TestXsk(const TestXsk&) = delete;
  TestXsk& operator=(const TestXsk&) = delete;

  int fd() const { return fd_; }
  const std::string& error() const { return error_; }

 private:
  static constexpr std::size_t kFrameBytes = 2048;
  static constexpr std::size_t kUmemBytes = 64 * kFrameBytes;
  void* umem_ = nullptr;
  int fd_ = -1;
  std::string error_;
};

// ---- crafted packets ------------------------------------------------------------------------------

struct PacketSpec {
  std::uint16_t etherType = ETH_P_IP;
  std::optional<std::uint16_t> vlanTpid;  // ETH_P_8021Q or ETH_P_8021AD
  std::size_t ipv4OptionBytes = 0;        // multiple of 4, at most 40
  std::uint16_t ipv4FlagsAndOffset = 0;   // host order
  std::uint8_t ipProtocol = IPPROTO_UDP;
  std::uint16_t dstPort = kPort;
  std::optional<std::uint16_t> udpLength;  // default: what the packet holds
  std::uint16_t magic = MPXDP_MAGIC;
  std::uint8_t version = MPXDP_WIRE_VERSION;
  std::size_t payloadBytes = 64;
};

struct Packet {
  std::vector<std::uint8_t> bytes;
  std::size_t l3Offset = 0;
  std::size_t l4Offset = 0;
  std::size_t mpOffset = 0;
};

class Writer {
 public:
  explicit Writer(std::vector<std::uint8_t>& out) : out_(out) {}
  void u8(std::uint8_t v) { out_.push_back(v); }
  void u16(std::uint16_t v) {
    u8(static_cast<std::uint8_t>(v >> 8));
    u8(static_cast<std::uint8_t>(v));
  }
  void u32(std::uint32_t v) {
    u16(static_cast<std::uint16_t>(v >> 16));
    u16(static_cast<std::uint16_t>(v));
  }
  void u64(std::uint64_t v) {
    u32(static_cast<std::uint32_t>(v >> 32));
    u32(static_cast<std::uint32_t>(v));
  }
  void fill(std::size_t n, std::uint8_t v) { out_.insert(out_.end(), n, v); }

 private:
  std::vector<std::uint8_t>& out_;
};

Packet buildPacket(const PacketSpec& spec) {
  Packet packet;
  auto& b = packet.bytes;
  Writer w(b);
  w.fill(6, 0x02);  // destination MAC (locally administered)
  w.fill(6, 0x04);  // source MAC
  if (spec.vlanTpid) {
    w.u16(*spec.vlanTpid);
    w.u16(42);  // VLAN id
  }
  w.u16(spec.etherType);
  packet.l3Offset = b.size();

  const std::size_t l4Bytes = 8 + MPXDP_HDR_LEN + spec.payloadBytes;
  if (spec.etherType == ETH_P_IP) {
    const std::size_t headerBytes = 20 + spec.ipv4OptionBytes;
    w.u8(static_cast<std::uint8_t>(0x40 | (headerBytes / 4)));
    w.u8(0);
    w.u16(static_cast<std::uint16_t>(headerBytes + l4Bytes));
    w.u16(0x1234);  // id
    w.u16(spec.ipv4FlagsAndOffset);
    w.u8(64);  // ttl
    w.u8(spec.ipProtocol);
    w.u16(0);                            // checksum: the program does not check it
    w.u32(0xc6120101);                   // 198.18.1.1
    w.u32(0xc6120102);                   // 198.18.1.2
    w.fill(spec.ipv4OptionBytes, 0x01);  // NOP options
  } else if (spec.etherType == ETH_P_IPV6) {
    w.u32(0x60000000);
    w.u16(static_cast<std::uint16_t>(l4Bytes));
    w.u8(spec.ipProtocol);
    w.u8(64);  // hop limit
    w.u32(0xfd000000);
    w.fill(11, 0);
    w.u8(1);
    w.u32(0xfd000000);
    w.fill(11, 0);
    w.u8(2);
  } else if (spec.etherType == ETH_P_ARP) {
    w.u16(1);  // Ethernet
    w.u16(ETH_P_IP);
    w.u8(6);
    w.u8(4);
    w.u16(1);  // request
    w.fill(6, 0x04);
    w.u32(0xc6120101);
    w.fill(6, 0);
    w.u32(0xc6120102);
    return packet;
  }

  // The same bytes serve as UDP, TCP or ICMP: ports sit at the same offsets in UDP and TCP, so a
  // TCP segment to the port with a valid-looking header must still be passed.
  packet.l4Offset = b.size();
  w.u16(40000);  // source port
  w.u16(spec.dstPort);
  w.u16(spec.udpLength.value_or(static_cast<std::uint16_t>(l4Bytes)));
  w.u16(0);  // checksum 0: none
  packet.mpOffset = b.size();
  w.u16(spec.magic);
  w.u8(spec.version);
  w.u8(0);                          // flags
  w.u32(7);                         // conn id
  w.u16(0);                         // path id
  w.u16(0);                         // reserved
  w.u64(1);                         // packet number
  w.u64(123456789);                 // send timestamp
  w.fill(spec.payloadBytes, 0xab);  // frames: the program never looks at them
  return packet;
}

std::vector<std::uint8_t> truncated(const Packet& packet, std::size_t length) {
  return {packet.bytes.begin(), packet.bytes.begin() + static_cast<std::ptrdiff_t>(length)};
}

// ---- running the program --------------------------------------------------------------------------

enum class Outcome { kRedirected, kPassed, kMalformed, kNoSocket };

const char* outcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kRedirected:
      return "redirected";
    case Outcome::kPassed:
      return "passed";
    case Outcome::kMalformed:
      return "malformed";
    case Outcome::kNoSocket:
      return "no_socket";
  }
  return "?";
}

struct Arrival {
  int ifindex = kLoopbackIfindex;
  std::uint32_t queue = 0;
};

// Runs one packet through the program as if it arrived on (ifindex, queue): the XDP action and the frame
// the program left (test runs copy it out from the metadata on).
struct RunResult {
  std::uint32_t action = 0;
  std::vector<std::uint8_t> out;
};
std::optional<RunResult> runAndCopyOut(int programFd, const std::vector<std::uint8_t>& frame, Arrival at,
                                       std::string* error) {
  xdp_md context{};
  context.data_end = static_cast<std::uint32_t>(frame.size());
  context.ingress_ifindex = static_cast<std::uint32_t>(at.ifindex);
  context.rx_queue_index = at.queue;
  RunResult result;
  result.out.resize(frame.size() + 256);
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = frame.data();
  opts.data_size_in = static_cast<std::uint32_t>(frame.size());
  opts.data_out = result.out.data();
  opts.data_size_out = static_cast<std::uint32_t>(result.out.size());
  opts.ctx_in = &context;
  opts.ctx_size_in = sizeof(context);
  opts.repeat = 1;
  const int err = bpf_prog_test_run_opts(programFd, &opts);
  if (err != 0) {
    *error = std::string("bpf_prog_test_run_opts: ") + std::strerror(-err);
    return std::nullopt;
  }
  result.action = opts.retval;
  result.out.resize(opts.data_size_out);
  return result;
}

std::optional<std::uint32_t> runProgram(int programFd, const std::vector<std::uint8_t>& frame, Arrival at,
                                        std::string* error) {
  auto run = runAndCopyOut(programFd, frame, at, error);
  if (!run.has_value()) return std::nullopt;
  return run->action;
}

class Steering {
 public:
  explicit Steering(std::unique_ptr<SteeringProgram> program) : program_(std::move(program)) {}
  SteeringProgram& program() { return *program_; }

  // Expects the action and exactly one increment, of the counter that names the outcome.
  void expect(const std::vector<std::uint8_t>& frame, Outcome outcome, const std::string& what,
              Arrival at = {}) {
    SCOPED_TRACE(what + " (" + std::to_string(frame.size()) + " bytes, ifindex " +
                 std::to_string(at.ifindex) + " queue " + std::to_string(at.queue) + ")");
    auto before = program_->counters();
    ASSERT_TRUE(before.ok()) << before.error().message();
    std::string error;
    const auto action = runProgram(program_->programFd(), frame, at, &error);
    ASSERT_TRUE(action.has_value()) << error;
    EXPECT_EQ(*action, outcome == Outcome::kRedirected ? XDP_REDIRECT : XDP_PASS);
    auto after = program_->counters();
    ASSERT_TRUE(after.ok()) << after.error().message();
    const SteeringCounters expected{
        before->redirected + (outcome == Outcome::kRedirected ? 1u : 0u),
        before->passed + (outcome == Outcome::kPassed ? 1u : 0u),
        before->malformed + (outcome == Outcome::kMalformed ? 1u : 0u),
        before->noSocket + (outcome == Outcome::kNoSocket ? 1u : 0u),
    };
    EXPECT_EQ(after->redirected, expected.redirected) << "expected " << outcomeName(outcome);
    EXPECT_EQ(after->passed, expected.passed) << "expected " << outcomeName(outcome);
    EXPECT_EQ(after->malformed, expected.malformed) << "expected " << outcomeName(outcome);
    EXPECT_EQ(after->noSocket, expected.noSocket) << "expected " << outcomeName(outcome);
  }

 private:
  std::unique_ptr<SteeringProgram> program_;
};

std::unique_ptr<SteeringProgram> loadOrFail(std::uint16_t port = kPort) {
  auto loaded = SteeringProgram::load(SteeringOptions{port});
  EXPECT_TRUE(loaded.ok()) << (loaded.ok() ? "" : loaded.error().message());
  if (!loaded.ok()) return nullptr;
  return std::move(loaded).value();
}

void rejectsBadBindArguments();

// ---- verdicts -------------------------------------------------------------------------------------

TEST(SteeringProgramTest, RedirectsOnlyToTheSocketBoundForIfindexAndQueue) {
  MPXDP_REQUIRE_PRIVILEGED();
  inFreshNetns([] {
    ASSERT_TRUE(createVethPair());
    const int vethA = ifindexOf(kVethA);
    const int vethB = ifindexOf(kVethB);
    auto loaded = loadOrFail();
    ASSERT_NE(loaded, nullptr);
    Steering steering(std::move(loaded));
    const auto valid = buildPacket({}).bytes;

    steering.expect(valid, Outcome::kNoSocket, "nothing bound yet", {vethA, 0});

    TestXsk queue0(vethA, 0);
    ASSERT_EQ(queue0.error(), "");
    auto bound = steering.program().bindSocket(vethA, 0, queue0.fd());
    ASSERT_TRUE(bound.ok()) << bound.error().message();
    steering.expect(valid, Outcome::kRedirected, "bound (A, 0)", {vethA, 0});
    // Any version with the magic goes to user space, which answers with version negotiation.
    steering.expect(buildPacket({.version = MPXDP_WIRE_VERSION_V1}).bytes, Outcome::kRedirected, "v1 packet",
                    {vethA, 0});
    steering.expect(buildPacket({.version = 3}).bytes, Outcome::kRedirected, "v3 packet", {vethA, 0});
    const Packet full = buildPacket({});
    steering.expect(truncated(full, full.mpOffset + MPXDP_INVARIANTS_LEN - 1), Outcome::kMalformed,
                    "7 bytes of invariants", {vethA, 0});
    steering.expect(valid, Outcome::kNoSocket, "same queue, other interface", {vethB, 0});
    steering.expect(valid, Outcome::kNoSocket, "same queue, loopback", {kLoopbackIfindex, 0});
    steering.expect(valid, Outcome::kNoSocket, "same interface, other queue", {vethA, 1});

    TestXsk queue1(vethA, 1);
    ASSERT_EQ(queue1.error(), "");
    bound = steering.program().bindSocket(vethA, 1, queue1.fd());
    ASSERT_TRUE(bound.ok()) << bound.error().message();
    steering.expect(valid, Outcome::kRedirected, "bound (A, 1)", {vethA, 1});

    auto again = steering.program().bindSocket(vethA, 1, queue1.fd());
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code(), EEXIST);

    auto unbound = steering.program().unbindSocket(vethA, 0);
    ASSERT_TRUE(unbound.ok()) << unbound.error().message();
    steering.expect(valid, Outcome::kNoSocket, "(A, 0) unbound", {vethA, 0});
    steering.expect(valid, Outcome::kRedirected, "(A, 1) still bound", {vethA, 1});
    unbound = steering.program().unbindSocket(vethA, 0);
    ASSERT_FALSE(unbound.ok());
    EXPECT_EQ(unbound.error().code(), ENOENT);

    // The freed slot is reused.
    bound = steering.program().bindSocket(vethB, 0, queue0.fd());
    ASSERT_TRUE(bound.ok()) << bound.error().message();
  });
}

// ---- arrival stamps --------------------------------------------------------------------------------

const char* stampName(ArrivalStamp stamp) {
  switch (stamp) {
    case ArrivalStamp::kAuto:
      return "auto";
    case ArrivalStamp::kMetadata:
      return "metadata";
    case ArrivalStamp::kPrepended:
      return "prepended";
    case ArrivalStamp::kNone:
      return "none";
  }
  return "?";
}

std::uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Some kernels (6.18 builds seen here) refuse bpf_xdp_adjust_meta to XDP programs: the loader then
// stamps in front of the frame. Each way stamps a redirected frame with the time it came in, and a frame
// that goes to the kernel after all (its slot's socket is gone) reaches it as it came.
TEST(SteeringProgramTest, EachWayOfStampingStampsRedirectedFramesAndPassesOthersUntouched) {
  MPXDP_REQUIRE_PRIVILEGED();
  inFreshNetns([] {
    ASSERT_TRUE(createVethPair());
    // A closed AF_XDP socket leaves its queue busy for a while: each way gets a queue of its own.
    const Arrival queues[] = {{ifindexOf(kVethA), 0}, {ifindexOf(kVethA), 1}, {ifindexOf(kVethB), 0}};
    std::size_t next = 0;
    auto automatic = SteeringProgram::load(SteeringOptions{kPort});
    ASSERT_TRUE(automatic.ok()) << automatic.error().message();
    const ArrivalStamp chosen = (*automatic)->arrivalStamp();
    EXPECT_NE(chosen, ArrivalStamp::kAuto);
    EXPECT_NE(chosen, ArrivalStamp::kNone) << "adjust_head is as old as XDP: auto must find a way to stamp";
    bool metadataLoads = false;
    for (const ArrivalStamp stamp :
         {ArrivalStamp::kMetadata, ArrivalStamp::kPrepended, ArrivalStamp::kNone}) {
      SCOPED_TRACE(stampName(stamp));
      auto loaded = SteeringProgram::load(SteeringOptions{kPort, stamp});
      if (stamp == ArrivalStamp::kMetadata) {
        metadataLoads = loaded.ok();
        if (!loaded.ok()) {
          EXPECT_EQ(chosen, ArrivalStamp::kPrepended) << "auto must fall back when metadata is refused";
          std::printf("this kernel refuses bpf_xdp_adjust_meta to XDP programs: %s\n",
                      loaded.error().message().c_str());
          continue;
        }
        EXPECT_EQ(chosen, ArrivalStamp::kMetadata) << "auto must prefer metadata where it loads";
      }
      ASSERT_TRUE(loaded.ok()) << loaded.error().message();
      SteeringProgram& program = **loaded;
      EXPECT_EQ(program.arrivalStamp(), stamp);
      const auto frame = buildPacket({}).bytes;
      const Arrival at = queues[next++];
      std::string error;
      {
        TestXsk socket(at.ifindex, at.queue);
        ASSERT_EQ(socket.error(), "");
        ASSERT_TRUE(program.bindSocket(at.ifindex, at.queue, socket.fd()).ok());
        const std::uint64_t before = monotonicNs();
        auto run = runAndCopyOut(program.programFd(), frame, at, &error);
        const std::uint64_t after = monotonicNs();
        ASSERT_TRUE(run.has_value()) << error;
        EXPECT_EQ(run->action, static_cast<std::uint32_t>(XDP_REDIRECT));
        if (stamp == ArrivalStamp::kNone) {
          EXPECT_EQ(run->out, frame);
        } else {
          ASSERT_EQ(run->out.size(), frame.size() + sizeof(mpxdp_rx_meta));
          mpxdp_rx_meta meta{};
          std::memcpy(&meta, run->out.data(), sizeof(meta));
          EXPECT_EQ(meta.magic, static_cast<std::uint32_t>(MPXDP_RX_META_MAGIC));
          EXPECT_GE(meta.rx_ns, before);
          EXPECT_LE(meta.rx_ns, after);
          EXPECT_TRUE(std::equal(frame.begin(), frame.end(), run->out.begin() + sizeof(mpxdp_rx_meta)));
        }
      }
      // The socket is closed: the kernel took it out of the XSKMAP, the slot is still bound.
      auto run = runAndCopyOut(program.programFd(), frame, at, &error);
      ASSERT_TRUE(run.has_value()) << error;
      EXPECT_EQ(run->action, static_cast<std::uint32_t>(XDP_PASS));
      ASSERT_GE(run->out.size(), frame.size());
      // Metadata, where left, lies before the frame and the stack ignores it; the frame itself is untouched.
      EXPECT_EQ(run->out.size(),
                frame.size() + (stamp == ArrivalStamp::kMetadata ? sizeof(mpxdp_rx_meta) : 0));
      EXPECT_TRUE(
          std::equal(frame.begin(), frame.end(), run->out.end() - static_cast<std::ptrdiff_t>(frame.size())));
      auto counters = program.counters();
      ASSERT_TRUE(counters.ok());
      EXPECT_EQ(counters->redirected, 1u);
      EXPECT_EQ(counters->noSocket, 1u);
    }
    std::printf("arrival stamps: auto chose %s (metadata %s)\n", stampName(chosen),
                metadataLoads ? "loads" : "refused");
  });
}

TEST(SteeringProgramTest, RejectsBadBindArguments) {
  MPXDP_REQUIRE_PRIVILEGED();
  inFreshNetns([] { rejectsBadBindArguments(); });
}

void rejectsBadBindArguments() {
  auto program = loadOrFail();
  ASSERT_NE(program, nullptr);
  auto bad = program->bindSocket(0, 0, 3);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), EINVAL);
  bad = program->bindSocket(1, 0, -1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), EBADF);
  // A plain UDP socket is not an AF_XDP socket: the kernel refuses it, and nothing is left bound.
  const int udp = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(udp, 0);
  bad = program->bindSocket(1, 0, udp);
  close(udp);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("XSKMAP"), std::string::npos) << bad.error().message();
  auto unbound = program->unbindSocket(1, 0);
  ASSERT_FALSE(unbound.ok());
  EXPECT_EQ(unbound.error().code(), ENOENT);

  auto zeroPort = SteeringProgram::load(SteeringOptions{0});
  ASSERT_FALSE(zeroPort.ok());
  EXPECT_EQ(zeroPort.error().code(), EINVAL);
}

// The remaining verdict tests need no socket: a valid packet without one counts as no_socket,
// which already proves the program recognised it as ours.
TEST(SteeringProgramTest, ClassifiesPackets) {
  MPXDP_REQUIRE_PRIVILEGED();
  inFreshNetns([] {
    auto loaded = loadOrFail();
    ASSERT_NE(loaded, nullptr);
    Steering steering(std::move(loaded));

    steering.expect(buildPacket({}).bytes, Outcome::kNoSocket, "valid IPv4");
    steering.expect(buildPacket({.etherType = ETH_P_IPV6}).bytes, Outcome::kNoSocket, "valid IPv6");
    steering.expect(buildPacket({.vlanTpid = ETH_P_8021Q}).bytes, Outcome::kNoSocket, "valid 802.1Q");
    steering.expect(buildPacket({.vlanTpid = ETH_P_8021AD}).bytes, Outcome::kNoSocket, "valid 802.1ad");
    steering.expect(buildPacket({.etherType = ETH_P_IPV6, .vlanTpid = ETH_P_8021Q}).bytes, Outcome::kNoSocket,
                    "valid IPv6 in 802.1Q");
    steering.expect(buildPacket({.ipv4OptionBytes = 4}).bytes, Outcome::kNoSocket, "IPv4, 4 option bytes");
    steering.expect(buildPacket({.ipv4OptionBytes = 40}).bytes, Outcome::kNoSocket, "IPv4, 40 option bytes");
    steering.expect(buildPacket({.payloadBytes = 0}).bytes, Outcome::kNoSocket, "header only, no payload");
    steering.expect(buildPacket({.ipv4FlagsAndOffset = 0x4000}).bytes, Outcome::kNoSocket,
                    "IPv4 don't-fragment set");

    steering.expect(buildPacket({.dstPort = kOtherPort}).bytes, Outcome::kPassed, "other UDP port");
    steering.expect(buildPacket({.etherType = ETH_P_IPV6, .dstPort = kOtherPort}).bytes, Outcome::kPassed,
                    "IPv6, other UDP port");
    steering.expect(buildPacket({.etherType = ETH_P_ARP}).bytes, Outcome::kPassed, "ARP");
    steering.expect(buildPacket({.ipProtocol = IPPROTO_ICMP}).bytes, Outcome::kPassed, "ICMP");
    steering.expect(buildPacket({.ipProtocol = IPPROTO_TCP}).bytes, Outcome::kPassed, "TCP to the port");
    steering.expect(buildPacket({.etherType = ETH_P_IPV6, .ipProtocol = IPPROTO_TCP}).bytes, Outcome::kPassed,
                    "IPv6 TCP to the port");
    steering.expect(buildPacket({.etherType = ETH_P_IPV6, .ipProtocol = 0}).bytes, Outcome::kPassed,
                    "IPv6 with a hop-by-hop extension header");
    steering.expect(buildPacket({.ipv4FlagsAndOffset = 0x2000}).bytes, Outcome::kPassed,
                    "IPv4 first fragment (MF)");
    steering.expect(buildPacket({.ipv4FlagsAndOffset = 0x2000 | 185}).bytes, Outcome::kPassed,
                    "IPv4 middle fragment");
    steering.expect(buildPacket({.ipv4FlagsAndOffset = 185}).bytes, Outcome::kPassed, "IPv4 last fragment");
    steering.expect(buildPacket({.etherType = 0x88b5}).bytes, Outcome::kPassed, "unknown EtherType");

    steering.expect(buildPacket({.magic = 0x4d59}).bytes, Outcome::kMalformed, "wrong magic");
    steering.expect(buildPacket({.magic = 0x584d}).bytes, Outcome::kMalformed, "magic byte-swapped");
    // Only the invariants decide: every version is ours (0 is version negotiation).
    for (const int version : {0, 1, 3, 255}) {
      steering.expect(buildPacket({.version = static_cast<std::uint8_t>(version)}).bytes, Outcome::kNoSocket,
                      "version " + std::to_string(version));
    }
    steering.expect(buildPacket({.etherType = ETH_P_IPV6, .magic = 0}).bytes, Outcome::kMalformed,
                    "IPv6, wrong magic");
    // Invariant bytes present (Ethernet padding) but the UDP length says they are not part of the datagram.
    steering.expect(buildPacket({.udpLength = 8 + MPXDP_INVARIANTS_LEN - 1}).bytes, Outcome::kMalformed,
                    "UDP length shorter than the invariants");
    steering.expect(buildPacket({.udpLength = 8 + MPXDP_INVARIANTS_LEN}).bytes, Outcome::kNoSocket,
                    "UDP length covers the invariants only");

    // Corrupt IPv4 headers are not ours to judge.
    auto badVersion = buildPacket({});
    badVersion.bytes[badVersion.l3Offset] = 0x65;
    steering.expect(badVersion.bytes, Outcome::kPassed, "IPv4 EtherType, version 6");
    auto shortIhl = buildPacket({});
    shortIhl.bytes[shortIhl.l3Offset] = 0x44;
    steering.expect(shortIhl.bytes, Outcome::kPassed, "IPv4 IHL 4");
  });
}

TEST(SteeringProgramTest, UsesTheConfiguredPort) {
  MPXDP_REQUIRE_PRIVILEGED();
  inFreshNetns([] {
    auto loaded = loadOrFail(kOtherPort);
    ASSERT_NE(loaded, nullptr);
    Steering steering(std::move(loaded));
    steering.expect(buildPacket({.dstPort = kOtherPort}).bytes, Outcome::kNoSocket, "configured port");
    steering.expect(buildPacket({.dstPort = kPort}).bytes, Outcome::kPassed, "another port");
    steering.expect(buildPacket({.dstPort = MPXDP_DEFAULT_PORT}).bytes, Outcome::kPassed, "default port");
  });
}

// Every prefix of a valid frame: cut before the UDP header is complete it is not ours (passed), cut
// inside the 8 invariant bytes it is ours but malformed, with them it is ours (user space checks the
// rest of the packet header). PROG_TEST_RUN refuses frames shorter than
// ETH_HLEN (EINVAL, even behind XDP metadata), and no driver delivers one, so prefixes start there.
TEST(SteeringProgramTest, TruncatedAtEveryLayer) {
  MPXDP_REQUIRE_PRIVILEGED();
  inFreshNetns([] {
    auto loaded = loadOrFail();
    ASSERT_NE(loaded, nullptr);
    Steering steering(std::move(loaded));
    const std::vector<std::pair<std::string, PacketSpec>> kinds = {
        {"IPv4", {}},
        {"IPv4 with options", {.ipv4OptionBytes = 12}},
        {"802.1Q IPv4", {.vlanTpid = ETH_P_8021Q}},
        {"IPv6", {.etherType = ETH_P_IPV6}},
        {"802.1ad IPv6", {.etherType = ETH_P_IPV6, .vlanTpid = ETH_P_8021AD}},
    };
    for (const auto& [name, spec] : kinds) {
      const Packet packet = buildPacket(spec);
      const std::size_t invariantsEnd = packet.mpOffset + MPXDP_INVARIANTS_LEN;
      const std::size_t headerEnd = packet.mpOffset + MPXDP_HDR_LEN;
      for (std::size_t length = ETH_HLEN; length <= headerEnd; ++length) {
        const Outcome outcome = length < packet.mpOffset ? Outcome::kPassed
                                : length < invariantsEnd ? Outcome::kMalformed
                                                         : Outcome::kNoSocket;
        steering.expect(truncated(packet, length), outcome, name + " cut to " + std::to_string(length));
        if (::testing::Test::HasFailure()) return;  // one failing length is enough to read
      }
    }
  });
}

// ---- attaching ------------------------------------------------------------------------------------

// Detaches a program attached through netlink, which (unlike a bpf_link) outlives its process.
class NetlinkXdpGuard {
 public:
  explicit NetlinkXdpGuard(int ifindex) : ifindex_(ifindex) {}
  ~NetlinkXdpGuard() { bpf_xdp_detach(ifindex_, 0, nullptr); }
  NetlinkXdpGuard(const NetlinkXdpGuard&) = delete;
  NetlinkXdpGuard& operator=(const NetlinkXdpGuard&) = delete;

 private:
  int ifindex_;
};

TEST(SteeringProgramTest, AttachRefusesAnOccupiedInterfaceAndLeavesNothingBehind) {
  MPXDP_REQUIRE_PRIVILEGED();
  inFreshNetns([] {
    ASSERT_TRUE(createVethPair());
    const int vethA = ifindexOf(kVethA);
    const int vethB = ifindexOf(kVethB);
    auto first = loadOrFail();
    auto second = loadOrFail();
    ASSERT_NE(first, nullptr);
    ASSERT_NE(second, nullptr);
    ASSERT_NE(first->programId(), 0u);
    ASSERT_NE(first->programId(), second->programId());

    auto attached = first->attach(vethA);
    ASSERT_TRUE(attached.ok()) << attached.error().message();
    EXPECT_EQ(attachedXdpProgram(vethA), first->programId());
    auto twice = first->attach(vethA);
    ASSERT_FALSE(twice.ok());
    EXPECT_EQ(twice.error().code(), EEXIST);

    // Another SteeringProgram's bpf_link.
    auto refused = second->attach(vethA);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code(), EBUSY);
    const std::string message = refused.error().message();
    EXPECT_NE(message.find(kVethA), std::string::npos) << message;
    EXPECT_NE(message.find("id " + std::to_string(first->programId())), std::string::npos) << message;
    EXPECT_EQ(attachedXdpProgram(vethA), first->programId());

    // A program attached through netlink, the way `ip link set dev X xdp obj ...` does it.
    NetlinkXdpGuard guard(vethB);
    ASSERT_EQ(bpf_xdp_attach(vethB, second->programFd(), 0, nullptr), 0);
    refused = first->attach(vethB);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code(), EBUSY);
    EXPECT_NE(refused.error().message().find(kVethB), std::string::npos) << refused.error().message();
    EXPECT_NE(refused.error().message().find("id " + std::to_string(second->programId())), std::string::npos)
        << refused.error().message();
    EXPECT_EQ(attachedXdpProgram(vethB), second->programId());

    first.reset();
    EXPECT_EQ(attachedXdpProgram(vethA), 0u) << "destroying the SteeringProgram must detach it";
    EXPECT_EQ(attachedXdpProgram(vethB), second->programId());
  });
}

// The attachment is a bpf_link held only by the process's fd, so the kernel detaches it when the
// process dies, however it dies.
TEST(SteeringProgramTest, ProgramGoesAwayWhenTheProcessIsKilled) {
  MPXDP_REQUIRE_PRIVILEGED();
  inFreshNetns([] {
    ASSERT_TRUE(createVethPair());
    const int vethA = ifindexOf(kVethA);
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    const pid_t child = fork();  // the child inherits this thread's network namespace
    ASSERT_GE(child, 0);
    if (child == 0) {
      close(ready[0]);
      auto program = SteeringProgram::load(SteeringOptions{kPort});
      if (!program.ok() || !(*program)->attach(vethA).ok()) _exit(1);
      const std::uint32_t id = (*program)->programId();
      if (write(ready[1], &id, sizeof(id)) != sizeof(id)) _exit(1);
      pause();
      _exit(0);
    }
    close(ready[1]);
    std::uint32_t childProgram = 0;
    const ssize_t got = read(ready[0], &childProgram, sizeof(childProgram));
    close(ready[0]);
    const std::uint32_t attachedBeforeKill = attachedXdpProgram(vethA);
    kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_EQ(got, static_cast<ssize_t>(sizeof(childProgram))) << "child failed to load or attach";
    EXPECT_EQ(attachedBeforeKill, childProgram);
    // Link release runs as the dying process closes its files; allow a moment for it all the same.
    std::uint32_t attached = attachedXdpProgram(vethA);
    for (int i = 0; i < 100 && attached != 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      attached = attachedXdpProgram(vethA);
    }
    EXPECT_EQ(attached, 0u);
  });
}

TEST(SteeringProgramTest, DetachRemovesTheProgram) {
  MPXDP_REQUIRE_PRIVILEGED();
  inFreshNetns([] {
    ASSERT_TRUE(createVethPair());
    const int vethA = ifindexOf(kVethA);
    auto program = loadOrFail();
    ASSERT_NE(program, nullptr);
    auto result = program->attach(vethA);
    ASSERT_TRUE(result.ok()) << result.error().message();
    result = program->detach(vethA);
    ASSERT_TRUE(result.ok()) << result.error().message();
    EXPECT_EQ(attachedXdpProgram(vethA), 0u);
    result = program->detach(vethA);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code(), ENOENT);
    // Attachable again after detach.
    result = program->attach(vethA);
    ASSERT_TRUE(result.ok()) << result.error().message();
    EXPECT_EQ(attachedXdpProgram(vethA), program->programId());

    auto missing = program->attach(999999);
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().code(), ENODEV);
    EXPECT_NE(missing.error().message().find("999999"), std::string::npos) << missing.error().message();
  });
}

// ---- libbpf's print callback belongs to the application --------------------------------------------

std::atomic<int> applicationLines{0};

int countApplicationLines(enum libbpf_print_level /*level*/, const char* /*format*/, va_list /*args*/) {
  ++applicationLines;
  return 0;
}

TEST(SteeringProgramTest, LeavesTheApplicationsLibbpfPrintCallbackInPlace) {
  MPXDP_REQUIRE_PRIVILEGED();
  const libbpf_print_fn_t before = libbpf_set_print(countApplicationLines);
  applicationLines = 0;
  {
    auto program = loadOrFail();
    ASSERT_NE(program, nullptr);
  }
  const libbpf_print_fn_t after = libbpf_set_print(before);
  EXPECT_EQ(after, &countApplicationLines) << "load() replaced the application's libbpf print callback";
  // What libbpf said while loading (its debug lines) still reached the application.
  EXPECT_GT(applicationLines.load(), 0);
}

// Without privileges the load fails with one clear EPERM and no libbpf account of the refusal.
TEST(SteeringProgramTest, UnprivilegedLoadSaysRootIsNeeded) {
  MPXDP_REQUIRE_PRIVILEGED();
  const pid_t child = fork();
  ASSERT_GE(child, 0) << std::strerror(errno);
  if (child == 0) {
    const gid_t nobodyGroup = 65534;
    if (setgroups(0, nullptr) != 0 || setresgid(nobodyGroup, nobodyGroup, nobodyGroup) != 0 ||
        setresuid(65534, 65534, 65534) != 0) {
      _exit(1);
    }
    libbpf_set_print(countApplicationLines);
    applicationLines = 0;
    auto loaded = SteeringProgram::load(SteeringOptions{kPort});
    int status = 0;
    if (loaded.ok()) {
      status |= 2;
    } else {
      if (loaded.error().code() != EPERM) status |= 4;
      if (loaded.error().context().find("needs root") == std::string::npos) status |= 8;
    }
    if (applicationLines.load() != 0) status |= 16;
    if (libbpf_set_print(nullptr) != &countApplicationLines) status |= 32;
    _exit(status);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "bits: 1 could not drop privileges, 2 load succeeded, 4 not EPERM, "
                                       "8 no 'needs root', 16 libbpf printed, 32 callback replaced";
}

}  // namespace
}  // namespace mpxdp::bpf
