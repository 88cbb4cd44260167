#include "link_args.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mpxdp::cli {
namespace {

// The first address of `family` on `interface`, from getifaddrs.
Result<IpAddress> interfaceAddress(const std::string& interface, IpAddress::Family family) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return Error::fromErrno("getifaddrs");
  std::optional<IpAddress> found;
  for (ifaddrs* a = list; a != nullptr && !found; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || interface != a->ifa_name) continue;
    if (family == IpAddress::Family::kV4 && a->ifa_addr->sa_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
      IpAddress ip;
      ip.family = family;
      std::memcpy(ip.bytes.data(), &in->sin_addr, 4);
      found = ip;
    } else if (family == IpAddress::Family::kV6 && a->ifa_addr->sa_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a->ifa_addr);
      if (IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr)) continue;
      IpAddress ip;
      ip.family = family;
      std::memcpy(ip.bytes.data(), &in6->sin6_addr, 16);
      found = ip;
    }
  }
  freeifaddrs(list);
  if (!found) {
    return Error(EADDRNOTAVAIL, "interface " + interface + " has no IPv" +
                                    std::to_string(static_cast<int>(family)) + " address");
  }
  return *found;
}

}  // namespace

Result<LinkArg> parseLinkArg(std::string_view text, bool backup) {
  const std::string where = (backup ? "--backup-link '" : "--link '") + std::string(text) + "'";
  LinkArg arg;
  arg.backup = backup;
  const std::size_t eq = text.find('=');
  arg.interface = std::string(text.substr(0, eq));
  if (arg.interface.empty())
    return Error(EINVAL, where + ": no interface name (expected IFACE=PEER_IP[@RATE])");
  if (arg.interface.size() >= IF_NAMESIZE) return Error(EINVAL, where + ": interface name too long");
  if (eq == std::string_view::npos) return arg;
  std::string_view rest = text.substr(eq + 1);
  const std::size_t at = rest.find('@');
  const std::string_view peer = rest.substr(0, at);
  auto ip = IpAddress::parse(peer);
  if (!ip) return Error(EINVAL, where + ": '" + std::string(peer) + "' is not an IPv4 or IPv6 address");
  arg.peerIp = *ip;
  if (at != std::string_view::npos) {
    auto rate = parseRate(rest.substr(at + 1));
    if (!rate) return rate.error().wrap(where);
    arg.rateBps = *rate;
  }
  return arg;
}

std::vector<LinkArg> linksFromTestbed(const testbed::TestbedInfo& info, Side side) {
  std::vector<LinkArg> links;
  for (const auto& link : info.links) {
    LinkArg arg;
    const bool sender = side == Side::kSender;
    arg.interface = sender ? link.senderInterface : link.receiverInterface;
    arg.peerIp = IpAddress::parse(sender ? link.receiverIp : link.senderIp);
    arg.rateBps = link.rateBps;
    links.push_back(std::move(arg));
  }
  return links;
}

Result<std::vector<LinkArg>> parseLinkArgs(const std::vector<std::string>& linkTexts,
                                           const std::vector<std::string>& backupTexts) {
  if (linkTexts.empty() && !backupTexts.empty()) {
    return Error(EINVAL,
                 "--backup-link needs at least one --link: a backup path carries data only while the "
                 "others are down");
  }
  std::vector<LinkArg> args;
  for (const auto& text : linkTexts) {
    auto arg = parseLinkArg(text, false);
    if (!arg) return arg.error();
    args.push_back(std::move(*arg));
  }
  for (const auto& text : backupTexts) {
    auto arg = parseLinkArg(text, true);
    if (!arg) return arg.error();
    args.push_back(std::move(*arg));
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (args[i].interface == args[j].interface) {
        return Error(EINVAL, "interface " + args[i].interface + " is given twice (" +
                                 (args[j].backup ? "--backup-link" : "--link") + " and " +
                                 (args[i].backup ? "--backup-link" : "--link") + ")");
      }
    }
  }
  return args;
}

Result<std::vector<LinkArg>> applyTestbedBackups(std::vector<LinkArg> links,
                                                 const std::vector<std::string>& backupTexts) {
  std::vector<LinkArg> backups;
  for (const auto& text : backupTexts) {
    auto arg = parseLinkArg(text, true);
    if (!arg) return arg.error();
    auto it = std::find_if(links.begin(), links.end(),
                           [&](const LinkArg& link) { return link.interface == arg->interface; });
    if (it == links.end()) {
      const bool given = std::any_of(backups.begin(), backups.end(),
                                     [&](const LinkArg& b) { return b.interface == arg->interface; });
      if (given) return Error(EINVAL, "--backup-link " + arg->interface + " is given twice");
      std::string names;
      for (const auto& link : links) names += (names.empty() ? "" : ", ") + link.interface;
      for (const auto& link : backups) names += (names.empty() ? "" : ", ") + link.interface;
      return Error(EINVAL, "--backup-link " + arg->interface +
                               ": the test bed has no such interface on this "
                               "side (it has " +
                               names + ")");
    }
    LinkArg backup = std::move(*it);
    links.erase(it);
    backup.backup = true;
    if (arg->peerIp) backup.peerIp = arg->peerIp;
    if (arg->rateBps != 0) backup.rateBps = arg->rateBps;
    backups.push_back(std::move(backup));
  }
  if (links.empty() && !backups.empty()) {
    return Error(EINVAL, "--backup-link names every link of the test bed: at least one must stay active");
  }
  for (auto& backup : backups) links.push_back(std::move(backup));
  return links;
}

Result<std::vector<LinkArg>> resolveLinkArgs(const std::string& testbedName,
                                             const std::vector<std::string>& linkTexts,
                                             const std::vector<std::string>& backupTexts, Side side,
                                             std::optional<testbed::NetnsScope>& netns) {
  if (testbedName.empty()) return parseLinkArgs(linkTexts, backupTexts);
  if (!linkTexts.empty()) {
    return Error(EINVAL,
                 "--testbed takes the links from the test bed: drop --link (--backup-link IFACE marks one "
                 "of them as a backup)");
  }
  if (auto valid = testbed::validateName(testbedName); !valid) return valid.error().wrap("--testbed");
  auto info = testbed::show(testbedName);
  if (!info) return info.error().wrap("test bed " + testbedName);
  auto scope =
      testbed::NetnsScope::enter(side == Side::kSender ? info->senderNamespace : info->receiverNamespace);
  if (!scope) return scope.error();
  netns.emplace(std::move(*scope));
  return applyTestbedBackups(linksFromTestbed(*info, side), backupTexts);
}

Result<std::vector<LinkPlan>> planLinks(const std::vector<LinkArg>& args, Side side) {
  if (args.empty()) return Error(EINVAL, "no links: give --link (repeatable) or --testbed NAME");
  if (std::all_of(args.begin(), args.end(), [](const LinkArg& arg) { return arg.backup; }))
    return Error(EINVAL, "every link is a --backup-link: give at least one --link");
  std::vector<LinkPlan> plans;
  for (const LinkArg& arg : args) {
    for (const LinkPlan& earlier : plans) {
      if (earlier.interface == arg.interface) {
        return Error(EINVAL, "interface " + arg.interface + " is given twice");
      }
    }
    if (if_nametoindex(arg.interface.c_str()) == 0) {
      return Error(ENODEV, "no interface '" + arg.interface + "' in this network namespace");
    }
    if (!arg.peerIp && side == Side::kSender) {
      return Error(EINVAL, "--link " + arg.interface + ": the peer's address is needed (IFACE=PEER_IP)");
    }
    Result<IpAddress> local = arg.peerIp ? interfaceAddress(arg.interface, arg.peerIp->family)
                                         : interfaceAddress(arg.interface, IpAddress::Family::kV4);
    if (!local && !arg.peerIp) local = interfaceAddress(arg.interface, IpAddress::Family::kV6);
    if (!local && local.error().code() != EADDRNOTAVAIL) return local.error().wrap("--link " + arg.interface);
    if (!local && !arg.peerIp) {
      // Neither family: naming only the last one tried would suggest IPv6 is needed.
      return Error(EADDRNOTAVAIL, "--link " + arg.interface + ": interface " + arg.interface +
                                      " has no IP address (IPv4 or IPv6, not link-local)");
    }
    if (!local) {
      const char* family = arg.peerIp->family == IpAddress::Family::kV4 ? "IPv4" : "IPv6";
      return Error(EADDRNOTAVAIL, "--link " + arg.interface + ": interface " + arg.interface + " has no " +
                                      family + " address (peer " + arg.peerIp->toString() + " is " + family +
                                      ")");
    }
    plans.push_back({arg.interface, *local, arg.peerIp, arg.rateBps, arg.backup});
  }
  return plans;
}

}  // namespace mpxdp::cli
