// The steering program on a live test bed: it goes away with its process even
// on SIGKILL, a restart works, and the kernel's own traffic (ARP, ICMP, TCP)
// keeps flowing over the same interfaces while it is attached.
#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <string>
#include <thread>
#include <vector>

#include "privilege.h"
#include "process.h"
#include "subprocess.h"
#include "testbed.h"

namespace mpxdp {
namespace {

using namespace std::chrono_literals;

// Id of the XDP program on ifname inside namespace ns (0 when none).
std::uint32_t attachedProgramId(const std::string& ns, const std::string& ifname) {
  std::uint32_t id = 0;
  std::thread([&] {
    auto scope = testbed::NetnsScope::enter(ns);
    if (!scope) {
      return;
    }
    const int ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
    LIBBPF_OPTS(bpf_xdp_query_opts, opts);
    if (ifindex > 0 && bpf_xdp_query(ifindex, 0, &opts) == 0) {
      id = opts.prog_id;
    }
  }).join();
  return id;
}

std::vector<std::string> holderArgv(const testbed::TestbedInfo& info) {
  std::vector<std::string> argv{MPXDP_XDP_HOLDER_PATH, info.receiverNamespace};
  for (const auto& link : info.links) {
    argv.push_back(link.receiverInterface);
  }
  return argv;
}

testbed::TestbedSpec spec(const char* tag) {
  return testbed::TestbedSpec{std::string(tag) + std::to_string(getpid()), {0, 0, 0}, 1500};
}

TEST(SteeringLifecycleTest, SigkillDetachesAndRestartWorks) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto bed = testbed::ScopedTestbed::create(spec("tk"));
  ASSERT_TRUE(bed) << bed.error().message();
  const auto& info = bed->info();

  for (int round = 0; round < 2; ++round) {
    auto holder = testbed::Subprocess::spawn(holderArgv(info));
    ASSERT_TRUE(holder) << holder.error().message();
    ASSERT_TRUE(holder->waitForStderr("ready", 10s))
        << "holder did not start (round " << round << "): " << holder->err();
    for (const auto& link : info.links) {
      EXPECT_NE(attachedProgramId(info.receiverNamespace, link.receiverInterface), 0u)
          << link.receiverInterface;
    }
    holder->signal(SIGKILL);
    const auto status = holder->wait(5s);
    ASSERT_TRUE(status);
    EXPECT_EQ(*status, 128 + SIGKILL);
    for (const auto& link : info.links) {
      // The kernel releases the bpf_link when the dead process's files close.
      std::uint32_t id = 1;
      for (int i = 0; i < 100 && id != 0; ++i) {
        id = attachedProgramId(info.receiverNamespace, link.receiverInterface);
        if (id != 0) {
          std::this_thread::sleep_for(10ms);
        }
      }
      EXPECT_EQ(id, 0u) << "program left on " << link.receiverInterface << " after SIGKILL";
    }
  }
}

// A TCP exchange from the sender namespace to a listener in the receiver
// namespace over one link; returns the bytes echoed back intact.
std::size_t tcpEcho(const testbed::TestbedInfo& info, const testbed::LinkInfo& link, std::size_t bytes) {
  int listener = -1;
  std::thread([&] {
    auto scope = testbed::NetnsScope::enter(info.receiverNamespace);
    if (!scope) {
      return;
    }
    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(5201);
    inet_pton(AF_INET, link.receiverIp.c_str(), &addr.sin_addr);
    if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(listener, 1) != 0) {
      close(listener);
      listener = -1;
    }
  }).join();
  if (listener < 0) {
    return 0;
  }
  std::thread server([listener] {
    timeval tv{5, 0};
    setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    const int conn = accept(listener, nullptr, nullptr);
    if (conn < 0) {
      return;
    }
    setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buffer[4096];
    for (;;) {
      const ssize_t n = recv(conn, buffer, sizeof(buffer), 0);
      if (n <= 0 || send(conn, buffer, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) {
        break;
      }
    }
    close(conn);
  });
  std::size_t echoed = 0;
  std::thread client([&] {
    auto scope = testbed::NetnsScope::enter(info.senderNamespace);
    if (!scope) {
      return;
    }
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(5201);
    inet_pton(AF_INET, link.receiverIp.c_str(), &addr.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      std::vector<unsigned char> out(bytes);
      for (std::size_t i = 0; i < bytes; ++i) {
        out[i] = static_cast<unsigned char>(i * 7 + 3);
      }
      std::vector<unsigned char> in(bytes);
      std::size_t sent = 0;
      while (echoed < bytes) {
        if (sent < bytes) {
          const ssize_t n =
              send(fd, out.data() + sent, std::min<std::size_t>(bytes - sent, 16384), MSG_NOSIGNAL);
          if (n <= 0) {
            break;
          }
          sent += static_cast<std::size_t>(n);
        }
        const ssize_t n = recv(fd, in.data() + echoed, bytes - echoed, MSG_DONTWAIT);
        if (n > 0) {
          echoed += static_cast<std::size_t>(n);
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
          break;
        } else if (sent == bytes) {
          const ssize_t m = recv(fd, in.data() + echoed, bytes - echoed, 0);
          if (m <= 0) {
            break;
          }
          echoed += static_cast<std::size_t>(m);
        }
      }
      if (in != out) {
        echoed = 0;
      }
    }
    close(fd);
  });
  client.join();
  server.join();
  close(listener);
  return echoed;
}

TEST(SteeringLifecycleTest, KernelTrafficPassesWhileAttached) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto bed = testbed::ScopedTestbed::create(spec("tp"));
  ASSERT_TRUE(bed) << bed.error().message();
  const auto& info = bed->info();
  auto holder = testbed::Subprocess::spawn(holderArgv(info));
  ASSERT_TRUE(holder) << holder.error().message();
  ASSERT_TRUE(holder->waitForStderr("ready", 10s)) << holder->err();

  for (const auto& link : info.links) {
    // ARP then ICMP: both must get through the attached program.
    auto ping = testbed::runProgram({"ip", "netns", "exec", info.senderNamespace, "ping", "-c", "2", "-i",
                                     "0.2", "-W", "2", link.receiverIp},
                                    10s);
    ASSERT_TRUE(ping) << ping.error().message();
    EXPECT_EQ(ping->exitStatus, 0) << "ping " << link.receiverIp << ": " << ping->out << ping->err;
  }
  EXPECT_EQ(tcpEcho(info, info.links[0], 1 << 20), std::size_t{1} << 20);
  EXPECT_NE(attachedProgramId(info.receiverNamespace, info.links[0].receiverInterface), 0u);
}

}  // namespace
}  // namespace mpxdp
