// Local test bed: sender and receiver network namespaces joined by N veth
// links through a middle "link" namespace that bridges each link and shapes
// it with tbf:
//   tx ns: s<i> <-> ms<i> [br<i> in link ns, tbf] mr<i> <-> r<i> : rx ns
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

struct TestbedSpec {
  std::string name;
  // One entry per link: rate in bit/s, 0 for an unshaped link.
  std::vector<std::uint64_t> ratesBps;
  std::uint32_t mtu = 1500;
  // TX and RX queues of every veth (1 .. kMaxQueues). With several, the
  // kernel spreads flows over them by hash, as RSS does on a real NIC.
  std::uint32_t queues = 1;
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
