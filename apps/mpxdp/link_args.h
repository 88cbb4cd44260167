// The links of `mpxdp send` and `mpxdp recv`: parsed from --link arguments
// or taken from a test bed, and checked against the network namespace
// (mpxdp/links.h opens them).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mpxdp/address.h"
#include "mpxdp/error.h"
#include "rate.h"
#include "testbed.h"

namespace mpxdp::cli {

enum class Side : std::uint8_t { kSender, kReceiver };

// One --link or --backup-link argument: IFACE[=PEER_IP[@RATE]] (the
// receiver may omit the peer).
struct LinkArg {
  std::string interface;
  std::optional<IpAddress> peerIp;
  std::uint64_t rateBps = 0;  // 0: unknown (the rate is estimated); else a cap
  bool backup = false;        // --backup-link
};

// Parses IFACE[=PEER_IP[@RATE]]; RATE as iperf3 writes it (300M, 1G). EINVAL
// with a message naming the argument (--link or --backup-link) on bad syntax.
Result<LinkArg> parseLinkArg(std::string_view text, bool backup = false);

// The links of one side of a live test bed, in link order.
std::vector<LinkArg> linksFromTestbed(const testbed::TestbedInfo& info, Side side);

// --link texts, then --backup-link texts: the path order (backup paths come
// after the others, so both ends list them alike). EINVAL on bad syntax, a
// backup link without any --link, or an interface given twice.
Result<std::vector<LinkArg>> parseLinkArgs(const std::vector<std::string>& linkTexts,
                                           const std::vector<std::string>& backupTexts);

// Marks the test bed links named by --backup-link IFACE (this side's
// interface; a peer or rate given there replaces the test bed's) as backups
// and moves them after the others, in the order given. EINVAL for an interface
// the test bed does not have, one given twice, or every link a backup.
Result<std::vector<LinkArg>> applyTestbedBackups(std::vector<LinkArg> links,
                                                 const std::vector<std::string>& backupTexts);

// The links of one side: from the test bed NAME (entering its namespace for
// this side, kept in `netns`) when testbedName is set, else from --link and
// --backup-link texts. Errors: EINVAL (syntax), ENOENT (no such test bed),
// others from the kernel.
Result<std::vector<LinkArg>> resolveLinkArgs(const std::string& testbedName,
                                             const std::vector<std::string>& linkTexts,
                                             const std::vector<std::string>& backupTexts, Side side,
                                             std::optional<testbed::NetnsScope>& netns);

// A link ready to open: the interface exists in the current namespace and
// has an address of the peer's family (without a peer: its first IPv4,
// else IPv6 address; the link is then receive-only).
struct LinkPlan {
  std::string interface;
  IpAddress localIp;
  std::optional<IpAddress> peerIp;
  std::uint64_t rateBps = 0;
  bool backup = false;
};

// Checks each link against the current network namespace: the interface
// exists (ENODEV), the sender gives a peer (EINVAL; the receiver may omit
// it) and the interface has a local address of the peer's family
// (EADDRNOTAVAIL).
Result<std::vector<LinkPlan>> planLinks(const std::vector<LinkArg>& args, Side side);

}  // namespace mpxdp::cli
