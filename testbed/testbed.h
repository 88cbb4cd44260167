// Local test bed: sender and receiver network namespaces joined by N veth
// links through a middle "link" namespace that bridges each link and shapes
// it with tbf:
//   tx ns: s<i> <-> ms<i> [br<i> in link ns, tbf] mr<i> <-> r<i> : rx ns
// Links can be impaired, at creation and live (setLink): random loss and
// link-down by an XDP program on the ingress of ms<i> and mr<i> (impair.h),
// delay by a user-space delay line (mpxdp-delay-line) that takes ms<i> and
// mr<i> out of the bridge and forwards between them, its pid and state under
// /run/mpxdp/testbed/NAME/.
// Addresses: link i is 198.18.<i+1>.1 (sender) and 198.18.<i+1>.2 (receiver),
// from the benchmarking range (RFC 2544), one /24 per link.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mpxdp/error.h"

namespace mpxdp::testbed {

inline constexpr std::size_t kMaxLinks = 16;
// Test bed names are [a-z0-9-], start with a letter or digit, and are at most
// this long, so that "mpxdp-NAME-link" stays a short namespace name.
inline constexpr std::size_t kMaxNameLength = 24;
inline constexpr std::uint32_t kMinMtu = 576;
inline constexpr std::uint32_t kMaxMtu = 9000;
inline constexpr std::uint64_t kMinRateBps = 64'000;
inline constexpr std::uint64_t kMaxRateBps = 100'000'000'000;
inline constexpr std::uint32_t kMaxQueues = 16;
// One-way delay: the delay line holds up to 65536 frames per direction.
inline constexpr std::uint64_t kMaxDelayNs = 2'000'000'000;

struct TestbedSpec {
  std::string name;
  // One entry per link: rate in bit/s, 0 for an unshaped link.
  std::vector<std::uint64_t> ratesBps;
  std::uint32_t mtu = 1500;
  // TX and RX queues of every veth (1 .. kMaxQueues). With several, the
  // kernel spreads flows over them by hash, as RSS does on a real NIC.
  std::uint32_t queues = 1;
  // Empty, or one entry per link: one-way delay in ns, applied in each
  // direction (a 5 ms link has a 10 ms RTT); 0: none.
  std::vector<std::uint64_t> delaysNs;
  // Empty, or one entry per link: random loss in percent (0..100), applied
  // independently in each direction.
  std::vector<double> lossPercent;
};

// What setLink changes on one link; fields left empty stay as they are.
struct LinkChange {
  std::optional<std::uint64_t> rateBps;  // tbf rate both ways, 0: unshaped
  std::optional<std::uint64_t> delayNs;  // one-way delay in each direction, 0: none
  std::optional<double> lossPercent;     // 0..100, each direction
  std::optional<bool> down;              // true: drop everything both ways; false: back up
};

struct LinkInfo {
  std::string senderInterface;    // in the sender namespace
  std::string receiverInterface;  // in the receiver namespace
  std::string senderIp;
  std::string receiverIp;
  std::string senderMac;
  std::string receiverMac;
  std::uint64_t rateBps = 0;         // sender -> receiver (tbf on mr<i>), 0: unshaped
  std::uint64_t reverseRateBps = 0;  // receiver -> sender (tbf on ms<i>), 0: unshaped
  std::uint64_t delayNs = 0;         // one-way, each direction (delay line), 0: none
  double lossPercent = 0;            // each direction (XDP), 0: none
  bool down = false;                 // cut in the middle by XDP, endpoints stay up
  // Frames dropped by the impairment program, both directions together.
  std::uint64_t lossDropped = 0;
  std::uint64_t downDropped = 0;
  // Frames the link itself dropped, both directions together: its tbf queue
  // was full (the sender exceeded the rate for longer than the queue holds),
  // or the middle veth found the endpoint's receive ring full (the endpoint's
  // CPU did not keep up; counted by the kernel as the veth's tx_dropped).
  std::uint64_t shaperDropped = 0;
  std::uint64_t ringDropped = 0;
};

struct TestbedInfo {
  std::string name;
  std::string senderNamespace;
  std::string receiverNamespace;
  std::string linkNamespace;
  std::uint32_t mtu = 1500;
  std::uint32_t queues = 1;  // RX queues of the endpoint veths (TX queues are the same)
  std::vector<LinkInfo> links;
};

// Builds the test bed. Refuses (EPERM) when not root and (EEXIST) when any
// of its namespaces already exists.
Result<TestbedInfo> up(const TestbedSpec& spec);
// Removes everything up() made; succeeds when nothing is there.
Result<void> down(const std::string& name);
// Reads the live test bed back from the kernel.
Result<TestbedInfo> show(const std::string& name);
// Changes one link (index as in show(), from 0) while traffic flows. Checks
// everything first: bad input (EINVAL), a missing test bed (ENOENT) or link
// change nothing.
Result<void> setLink(const std::string& name, std::size_t link, const LinkChange& change);

// Another sending host on the test bed's links, for a receiver that serves
// several peers: namespace extraSenderNamespaceName(name, host), whose veth
// s<i> joins the bridge of link i (as ms<i>h<host> in the link namespace,
// shaped to the link's rate towards the new host) with the address
// extraSenderAddress(i, host). host is 2 .. kMaxSenderHosts (the test bed's
// own sender is host 1). down() removes these too. Link impairments
// (setLink) apply to the first sender's side of the bridge only.
inline constexpr std::uint32_t kMaxSenderHosts = 9;
Result<std::string> addSender(const std::string& name, std::uint32_t host);
std::string extraSenderNamespaceName(std::string_view name, std::uint32_t host);  // mpxdp-NAME-tx<host>
std::string extraSenderAddress(std::size_t link, std::uint32_t host);             // 198.18.<link+1>.<host+1>

// "5ms", "40ms", "250us", "1.5s", "800ns", "0" -> nanoseconds (EINVAL otherwise).
Result<std::uint64_t> parseDelay(std::string_view text);
// "1%", "0.5%", "10", "0" -> percent 0..100 (EINVAL otherwise).
Result<double> parseLossPercent(std::string_view text);
// "5 ms", "250 us", "none" for 0.
std::string formatDelay(std::uint64_t ns);

nlohmann::json toJson(const TestbedInfo& info);
// A readable table, one line per link.
std::string toText(const TestbedInfo& info);

Result<void> validateName(std::string_view name);
Result<void> validateSpec(const TestbedSpec& spec);

std::string senderNamespaceName(std::string_view name);    // mpxdp-NAME-tx
std::string receiverNamespaceName(std::string_view name);  // mpxdp-NAME-rx
std::string linkNamespaceName(std::string_view name);      // mpxdp-NAME-link

struct TbfParams {
  std::uint64_t burstBytes = 0;
  std::uint64_t limitBytes = 0;
};
// The tbf bucket and queue sizes used for a link of this rate and MTU.
TbfParams tbfParamsFor(std::uint64_t rateBps, std::uint32_t mtu);

// Offload features of an interface in a namespace that make super-packets
// (GSO/TSO/GRO/LRO/UFO/fraglist...) and are still on. Empty on a wire-like link.
Result<std::vector<std::string>> superPacketFeaturesOn(const std::string& namespaceName,
                                                       const std::string& interface);

// Test beds are torn down when this goes out of scope.
class ScopedTestbed {
 public:
  static Result<ScopedTestbed> create(const TestbedSpec& spec);
  ScopedTestbed(ScopedTestbed&& other) noexcept;
  ScopedTestbed& operator=(ScopedTestbed&&) = delete;
  ~ScopedTestbed();
  const TestbedInfo& info() const { return info_; }

 private:
  explicit ScopedTestbed(TestbedInfo info) : info_(std::move(info)) {}
  TestbedInfo info_;
  bool owned_ = true;
};

// Moves the calling thread into a named network namespace (/run/netns/NAME)
// and back to its original one on destruction.
class NetnsScope {
 public:
  static Result<NetnsScope> enter(const std::string& namespaceName);
  NetnsScope(NetnsScope&& other) noexcept;
  NetnsScope& operator=(NetnsScope&&) = delete;
  ~NetnsScope();

 private:
  explicit NetnsScope(int originalFd) : originalFd_(originalFd) {}
  int originalFd_ = -1;
};

}  // namespace mpxdp::testbed
