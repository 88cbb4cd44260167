#include "testbed.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <utility>

#include "impair.h"
#include "process.h"
#include "rate.h"

namespace mpxdp::testbed {

namespace {

using Argv = std::vector<std::string>;

constexpr std::string_view kNetnsDir = "/run/netns/";
// Ethernet header on top of the MTU: what tbf counts for a full-size frame.
constexpr std::uint64_t kEthernetHeaderBytes = 14;

struct Namespaces {
  std::string sender;
  std::string receiver;
  std::string link;
  std::array<const std::string*, 3> all() const { return {&sender, &receiver, &link}; }
};

Namespaces namespacesOf(std::string_view name) {
  return {senderNamespaceName(name), receiverNamespaceName(name), linkNamespaceName(name)};
}

bool namespaceExists(const std::string& namespaceName) {
  std::error_code ignored;
  return std::filesystem::exists(std::string(kNetnsDir) + namespaceName, ignored);
}

std::string senderDevice(std::size_t i) { return fmt::format("s{}", i); }
std::string receiverDevice(std::size_t i) { return fmt::format("r{}", i); }
std::string linkSenderSide(std::size_t i) { return fmt::format("ms{}", i); }
std::string linkReceiverSide(std::size_t i) { return fmt::format("mr{}", i); }
std::string bridgeDevice(std::size_t i) { return fmt::format("br{}", i); }
std::string senderAddress(std::size_t i) { return fmt::format("198.18.{}.1", i + 1); }
std::string receiverAddress(std::size_t i) { return fmt::format("198.18.{}.2", i + 1); }
constexpr int kPrefixLength = 24;

// Features whose job is to build or keep packets larger than one wire frame.
bool isSuperPacketFeature(std::string_view feature) {
  static constexpr std::array<std::string_view, 9> kNamed = {"generic-segmentation-offload",
                                                             "generic-receive-offload",
                                                             "large-receive-offload",
                                                             "rx-gro-hw",
                                                             "rx-gro-list",
                                                             "rx-udp-gro-forwarding",
                                                             "tx-gso-list",
                                                             "tx-gso-partial",
                                                             "tx-gso-robust"};
  constexpr std::string_view kSegmentation = "-segmentation";
  if (feature.size() > kSegmentation.size() &&
      feature.substr(feature.size() - kSegmentation.size()) == kSegmentation) {
    return true;  // tx-tcp-segmentation, tx-udp-segmentation, tx-gre-segmentation, ...
  }
  return std::find(kNamed.begin(), kNamed.end(), feature) != kNamed.end();
}

Result<void> turnOffSuperPackets(const std::string& namespaceName, const std::string& device) {
  auto features = superPacketFeaturesOn(namespaceName, device);
  if (!features) return features.error();
  if (features->empty()) return {};
  Argv argv = {"ip", "netns", "exec", namespaceName, "ethtool", "-K", device};
  for (const auto& feature : *features) {
    argv.push_back(feature);
    argv.emplace_back("off");
  }
  if (auto done = runChecked(argv); !done) return done.error();
  return {};
}

Result<void> run(const Argv& argv) {
  if (auto done = runChecked(argv); !done) return done.error();
  return {};
}

// Creates the veth pair outer <-> inner with outer in the link namespace and
// inner in endpointNamespace, `queues` TX and RX queues on each end (an XDP
// end needs as many RX queues as its peer has TX queues).
Result<void> addVethPair(const Namespaces& ns, const std::string& outer, const std::string& inner,
                         const std::string& endpointNamespace, std::uint32_t mtu, std::uint32_t queues) {
  const std::string mtuText = std::to_string(mtu);
  const std::string queuesText = std::to_string(queues);
  return run({"ip",
              "-n",
              ns.link,
              "link",
              "add",
              outer,
              "numtxqueues",
              queuesText,
              "numrxqueues",
              queuesText,
              "mtu",
              mtuText,
              "type",
              "veth",
              "peer",
              "name",
              inner,
              "netns",
              endpointNamespace,
              "numtxqueues",
              queuesText,
              "numrxqueues",
              queuesText,
              "mtu",
              mtuText});
}

Result<void> addTbf(const Namespaces& ns, const std::string& device, std::uint64_t rateBps,
                    std::uint32_t mtu) {
  const TbfParams params = tbfParamsFor(rateBps, mtu);
  return run({"tc", "-n", ns.link, "qdisc", "replace", "dev", device, "root", "tbf", "rate",
              std::to_string(rateBps) + "bit", "burst", std::to_string(params.burstBytes), "limit",
              std::to_string(params.limitBytes)});
}

Result<void> buildLink(const Namespaces& ns, std::size_t i, std::uint64_t rateBps, std::uint32_t mtu,
                       std::uint32_t queues) {
  const std::string s = senderDevice(i);
  const std::string r = receiverDevice(i);
  const std::string ms = linkSenderSide(i);
  const std::string mr = linkReceiverSide(i);
  const std::string br = bridgeDevice(i);
  const std::string mtuText = std::to_string(mtu);

  if (auto done = addVethPair(ns, ms, s, ns.sender, mtu, queues); !done) return done;
  if (auto done = addVethPair(ns, mr, r, ns.receiver, mtu, queues); !done) return done;
  // stp_state 0: ports forward as soon as they are up, no listening/learning delay.
  if (auto done =
          run({"ip", "-n", ns.link, "link", "add", br, "mtu", mtuText, "type", "bridge", "stp_state", "0"});
      !done) {
    return done;
  }
  // The middle devices only forward frames: no IPv6 link-local address, so they
  // send no DAD/router-solicitation noise down the test links.
  for (const std::string* device : {&ms, &mr, &br}) {
    if (auto done = run({"ip", "-n", ns.link, "link", "set", "dev", *device, "addrgenmode", "none"}); !done) {
      return done;
    }
  }
  for (const std::string* port : {&ms, &mr}) {
    if (auto done = run({"ip", "-n", ns.link, "link", "set", "dev", *port, "master", br}); !done) return done;
  }
  const std::array<std::pair<const std::string*, const std::string*>, 4> veths = {
      {{&ns.sender, &s}, {&ns.link, &ms}, {&ns.link, &mr}, {&ns.receiver, &r}}};
  for (const auto& [namespaceName, device] : veths) {
    if (auto done = turnOffSuperPackets(*namespaceName, *device); !done) return done;
  }
  const std::string prefix = "/" + std::to_string(kPrefixLength);
  if (auto done = run({"ip", "-n", ns.sender, "addr", "add", senderAddress(i) + prefix, "dev", s}); !done) {
    return done;
  }
  if (auto done = run({"ip", "-n", ns.receiver, "addr", "add", receiverAddress(i) + prefix, "dev", r});
      !done) {
    return done;
  }
  if (rateBps != 0) {
    if (auto done = addTbf(ns, mr, rateBps, mtu); !done) return done;  // towards the receiver
    if (auto done = addTbf(ns, ms, rateBps, mtu); !done) return done;  // reverse direction
  }
  for (const std::string* device : {&ms, &mr, &br}) {
    if (auto done = run({"ip", "-n", ns.link, "link", "set", "dev", *device, "up"}); !done) return done;
  }
  if (auto done = run({"ip", "-n", ns.sender, "link", "set", "dev", s, "up"}); !done) return done;
  if (auto done = run({"ip", "-n", ns.receiver, "link", "set", "dev", r, "up"}); !done) return done;
  return {};
}

Result<void> build(const TestbedSpec& spec, const Namespaces& ns) {
  for (const std::string* namespaceName : ns.all()) {
    if (auto done = run({"ip", "-n", *namespaceName, "link", "set", "dev", "lo", "up"}); !done) return done;
  }
  for (std::size_t i = 0; i < spec.ratesBps.size(); ++i) {
    if (auto done = buildLink(ns, i, spec.ratesBps[i], spec.mtu, spec.queues); !done) {
      return done.error().wrap(fmt::format("link {}", i));
    }
  }
  return {};
}

Result<void> deleteNamespace(const std::string& namespaceName) {
  if (!namespaceExists(namespaceName)) return {};
  return run({"ip", "netns", "del", namespaceName});
}

// ---- Delay lines: one mpxdp-delay-line process per delayed link ----

constexpr std::string_view kStateRoot = "/run/mpxdp/testbed/";

std::filesystem::path stateDir(std::string_view name) { return std::string(kStateRoot) + std::string(name); }
std::filesystem::path delayFile(std::string_view name, std::size_t i) {
  return stateDir(name) / fmt::format("link{}.delay", i);
}
std::filesystem::path pidFile(std::string_view name, std::size_t i) {
  return stateDir(name) / fmt::format("link{}.pid", i);
}
std::filesystem::path logFile(std::string_view name, std::size_t i) {
  return stateDir(name) / fmt::format("link{}.log", i);
}

Result<std::string> delayLinePath() {
  std::error_code ignored;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ignored);
  if (!ignored) {
    const auto sibling = self.parent_path() / "mpxdp-delay-line";
    if (access(sibling.c_str(), X_OK) == 0) return sibling.string();
  }
#ifdef MPXDP_DELAY_LINE_BUILD_PATH
  if (access(MPXDP_DELAY_LINE_BUILD_PATH, X_OK) == 0) return std::string(MPXDP_DELAY_LINE_BUILD_PATH);
#endif
  return findProgram("mpxdp-delay-line");
}

Result<void> writeFileAtomically(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
    if (!out.flush()) return Error(EIO, "write " + temporary.string());
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) return Error(error.value(), "rename " + temporary.string());
  return {};
}

// The pid of the link's delay line when it runs (the pid file names a live
// mpxdp-delay-line), nullopt otherwise.
std::optional<pid_t> runningDelayLine(std::string_view name, std::size_t i) {
  std::ifstream in(pidFile(name, i));
  long pid = 0;
  if (!(in >> pid) || pid <= 1) return std::nullopt;
  std::ifstream cmdline(fmt::format("/proc/{}/cmdline", pid));
  std::string argv0;
  if (!std::getline(cmdline, argv0, '\0')) return std::nullopt;
  if (std::filesystem::path(argv0).filename() != "mpxdp-delay-line") return std::nullopt;  // pid reused
  return static_cast<pid_t>(pid);
}

std::uint64_t configuredDelay(std::string_view name, std::size_t i) {
  if (!runningDelayLine(name, i)) return 0;
  std::ifstream in(delayFile(name, i));
  std::uint64_t delay = 0;
  if (!(in >> delay)) return 0;
  return delay;
}

// Gone, or a zombie (the line is not our child; a subreaper may reap it late).
bool processGone(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(stat, line)) return true;
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

// Stops every delay line of the test bed and removes its state directory.
void stopDelayLines(std::string_view name) {
  std::error_code ignored;
  if (!std::filesystem::exists(stateDir(name), ignored)) return;
  std::vector<pid_t> stopping;
  for (std::size_t i = 0; i < kMaxLinks; ++i) {
    if (auto pid = runningDelayLine(name, i)) {
      kill(*pid, SIGTERM);
      stopping.push_back(*pid);
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (pid_t pid : stopping) {
    while (!processGone(pid) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (!processGone(pid)) kill(pid, SIGKILL);
  }
  std::filesystem::remove_all(stateDir(name), ignored);
}

// Starts the link's delay line, then takes its devices out of the bridge.
// Between the two, frames may pass both ways (a few duplicates, none lost).
Result<void> startDelayLine(const std::string& name, const Namespaces& ns, std::size_t i,
                            std::uint64_t delayNs, std::uint32_t mtu) {
  auto program = delayLinePath();
  if (!program) return program.error().wrap("the delay line");
  std::error_code error;
  std::filesystem::create_directories(stateDir(name), error);
  if (error) return Error(error.value(), "create " + stateDir(name).string());
  if (auto written = writeFileAtomically(delayFile(name, i), std::to_string(delayNs) + "\n"); !written) {
    return written;
  }
  // Frame: MTU + Ethernet header + one VLAN tag.
  if (auto done =
          run({*program, "--netns", ns.link, "--a", linkSenderSide(i), "--b", linkReceiverSide(i), "--config",
               delayFile(name, i).string(), "--pidfile", pidFile(name, i).string(), "--log",
               logFile(name, i).string(), "--frame-bytes", std::to_string(mtu + kEthernetHeaderBytes + 4)});
      !done) {
    return done;
  }
  for (const std::string& device : {linkSenderSide(i), linkReceiverSide(i)}) {
    if (auto done = run({"ip", "-n", ns.link, "link", "set", "dev", device, "nomaster"}); !done) return done;
  }
  return {};
}

// Back to no delay: the devices rejoin the bridge, then the line sends what
// it holds (each frame when due) and exits. Frames that arrive during the
// switch may pass twice; none is lost.
Result<void> stopDelayLine(const std::string& name, const Namespaces& ns, std::size_t i, pid_t pid) {
  for (const std::string& device : {linkSenderSide(i), linkReceiverSide(i)}) {
    if (auto done = run({"ip", "-n", ns.link, "link", "set", "dev", device, "master", bridgeDevice(i)});
        !done) {
      return done;
    }
  }
  if (kill(pid, SIGUSR1) != 0) return Error::fromErrno(fmt::format("signal the delay line of link {}", i));
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::nanoseconds(kMaxDelayNs) + std::chrono::seconds(1);
  while (!processGone(pid) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!processGone(pid)) kill(pid, SIGKILL);
  std::error_code ignored;
  std::filesystem::remove(pidFile(name, i), ignored);
  std::filesystem::remove(delayFile(name, i), ignored);
  return {};
}

// Sets the link's delay: starts its delay line, tells the running one, or stops it.
Result<void> applyDelay(const std::string& name, const Namespaces& ns, std::size_t i, std::uint64_t delayNs,
                        std::uint32_t mtu) {
  const auto pid = runningDelayLine(name, i);
  if (!pid) {
    if (delayNs == 0) return {};
    return startDelayLine(name, ns, i, delayNs, mtu);
  }
  if (delayNs == 0) return stopDelayLine(name, ns, i, *pid);
  if (auto written = writeFileAtomically(delayFile(name, i), std::to_string(delayNs) + "\n"); !written) {
    return written;
  }
  if (kill(*pid, SIGHUP) != 0) return Error::fromErrno(fmt::format("signal the delay line of link {}", i));
  return {};
}

// ---- Loss and down: the impairment XDP program on both middle devices ----

std::uint32_t lossPpmOf(double percent) {
  return static_cast<std::uint32_t>(std::llround(percent * (MPXDP_IMPAIR_PPM / 100.0)));
}

Result<void> applyImpairment(const Namespaces& ns, std::size_t i, std::optional<double> lossPercent,
                             std::optional<bool> down) {
  const bool passAll = (!lossPercent || *lossPercent == 0) && (!down || !*down);
  for (const std::string& device : {linkSenderSide(i), linkReceiverSide(i)}) {
    if (passAll) {
      // Nothing to impair on a link without the program: keep its data path XDP-free.
      auto state = readImpair(ns.link, device);
      if (!state) return state.error();
      if (!*state) continue;
    }
    if (auto attached = attachImpair(ns.link, device); !attached) return attached;
    auto state = readImpair(ns.link, device);
    if (!state) return state.error();
    if (!*state) return Error(ENOENT, "impairment program vanished from " + device);
    mpxdp_impair_config config = (*state)->config;
    if (lossPercent) {
      config.loss_ppm = lossPpmOf(*lossPercent);
      config.loss_threshold = lossThresholdFor(config.loss_ppm);
    }
    if (down) config.down = *down ? 1 : 0;
    if (auto written = writeImpair(ns.link, device, config); !written) return written;
  }
  return {};
}

Result<void> applyImpairments(const TestbedSpec& spec, const Namespaces& ns) {
  for (std::size_t i = 0; i < spec.ratesBps.size(); ++i) {
    if (!spec.lossPercent.empty() && spec.lossPercent[i] > 0) {
      if (auto done = applyImpairment(ns, i, spec.lossPercent[i], std::nullopt); !done) {
        return done.error().wrap(fmt::format("link {}", i));
      }
    }
    if (!spec.delaysNs.empty() && spec.delaysNs[i] > 0) {
      if (auto done = startDelayLine(spec.name, ns, i, spec.delaysNs[i], spec.mtu); !done) {
        return done.error().wrap(fmt::format("link {}", i));
      }
    }
  }
  return {};
}

// "s12" with prefix "s" -> 12; nullopt for anything else.
std::optional<std::size_t> deviceIndex(std::string_view device, std::string_view prefix) {
  if (device.size() <= prefix.size() || device.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::size_t index = 0;
  for (char c : device.substr(prefix.size())) {
    if (c < '0' || c > '9' || index > kMaxLinks) return std::nullopt;
    index = index * 10 + static_cast<std::size_t>(c - '0');
  }
  return index;
}

struct Endpoint {
  std::string device;
  std::string ip;
  std::string mac;
  std::uint32_t mtu = 0;
  std::uint32_t rxQueues = 1;
};

// Endpoints named prefix<i> in a namespace, keyed by i, from `ip -j addr`.
Result<std::map<std::size_t, Endpoint>> readEndpoints(const std::string& namespaceName,
                                                      std::string_view prefix) {
  auto out = runChecked({"ip", "-d", "-j", "-n", namespaceName, "addr", "show"});
  if (!out) return out.error();
  const auto doc = nlohmann::json::parse(*out, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_array()) return Error(EIO, "unexpected output of 'ip -j -n " + namespaceName + " addr show'");
  std::map<std::size_t, Endpoint> endpoints;
  for (const auto& link : doc) {
    if (!link.is_object() || !link.contains("ifname") || !link["ifname"].is_string()) continue;
    const std::string device = link["ifname"].get<std::string>();
    const auto index = deviceIndex(device, prefix);
    if (!index) continue;
    Endpoint endpoint;
    endpoint.device = device;
    if (link.contains("address") && link["address"].is_string())
      endpoint.mac = link["address"].get<std::string>();
    if (link.contains("mtu") && link["mtu"].is_number_unsigned())
      endpoint.mtu = link["mtu"].get<std::uint32_t>();
    if (link.contains("num_rx_queues") && link["num_rx_queues"].is_number_unsigned())
      endpoint.rxQueues = link["num_rx_queues"].get<std::uint32_t>();
    if (link.contains("addr_info") && link["addr_info"].is_array()) {
      for (const auto& addr : link["addr_info"]) {
        if (addr.is_object() && addr.value("family", "") == "inet" && addr.contains("local") &&
            addr["local"].is_string()) {
          endpoint.ip = addr["local"].get<std::string>();
          break;
        }
      }
    }
    endpoints[*index] = std::move(endpoint);
  }
  return endpoints;
}

struct Tbf {
  std::uint64_t rateBps = 0;
  std::uint64_t drops = 0;
};

// tbf qdiscs by device in the link namespace: rate in bit/s and drops so far.
Result<std::map<std::string, Tbf>> readTbfs(const std::string& namespaceName) {
  auto out = runChecked({"tc", "-s", "-j", "-n", namespaceName, "qdisc", "show"});
  if (!out) return out.error();
  const auto doc = nlohmann::json::parse(*out, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_array())
    return Error(EIO, "unexpected output of 'tc -s -j -n " + namespaceName + " qdisc show'");
  std::map<std::string, Tbf> tbfs;
  for (const auto& qdisc : doc) {
    if (!qdisc.is_object() || qdisc.value("kind", "") != "tbf" || !qdisc.contains("dev") ||
        !qdisc["dev"].is_string() || !qdisc.contains("options") || !qdisc["options"].is_object()) {
      continue;
    }
    const auto& options = qdisc["options"];
    // tc reports tbf rates in bytes per second.
    if (!options.contains("rate") || !options["rate"].is_number_unsigned()) continue;
    Tbf& tbf = tbfs[qdisc["dev"].get<std::string>()];
    tbf.rateBps = options["rate"].get<std::uint64_t>() * 8;
    if (qdisc.contains("drops") && qdisc["drops"].is_number_unsigned())
      tbf.drops = qdisc["drops"].get<std::uint64_t>();
  }
  return tbfs;
}

// tx_dropped of every device in a namespace, from `ip -s -j link`.
Result<std::map<std::string, std::uint64_t>> readTxDropped(const std::string& namespaceName) {
  auto out = runChecked({"ip", "-s", "-j", "-n", namespaceName, "link", "show"});
  if (!out) return out.error();
  const auto doc = nlohmann::json::parse(*out, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_array())
    return Error(EIO, "unexpected output of 'ip -s -j -n " + namespaceName + " link show'");
  std::map<std::string, std::uint64_t> dropped;
  for (const auto& link : doc) {
    if (!link.is_object() || !link.contains("ifname") || !link["ifname"].is_string()) continue;
    if (!link.contains("stats64") || !link["stats64"].is_object()) continue;
    const auto& stats = link["stats64"];
    if (!stats.contains("tx") || !stats["tx"].is_object()) continue;
    const auto& tx = stats["tx"];
    if (tx.contains("dropped") && tx["dropped"].is_number_unsigned())
      dropped[link["ifname"].get<std::string>()] = tx["dropped"].get<std::uint64_t>();
  }
  return dropped;
}

Result<TestbedInfo> readTestbedUnguarded(const std::string& name, const Namespaces& ns) {
  auto senders = readEndpoints(ns.sender, "s");
  if (!senders) return senders.error();
  auto receivers = readEndpoints(ns.receiver, "r");
  if (!receivers) return receivers.error();
  auto tbfs = readTbfs(ns.link);
  if (!tbfs) return tbfs.error();
  auto txDropped = readTxDropped(ns.link);
  if (!txDropped) return txDropped.error();

  TestbedInfo info;
  info.name = name;
  info.senderNamespace = ns.sender;
  info.receiverNamespace = ns.receiver;
  info.linkNamespace = ns.link;
  const std::size_t count = senders->size();
  if (count == 0) return Error(ENOENT, "test bed '" + name + "' has no links (namespace " + ns.sender + ")");
  for (std::size_t i = 0; i < count; ++i) {
    const auto sender = senders->find(i);
    const auto receiver = receivers->find(i);
    if (sender == senders->end() || receiver == receivers->end() || receivers->size() != count) {
      return Error(EIO, fmt::format("test bed '{}' is inconsistent: link {} lacks {} or {}; remove it with "
                                    "'mpxdp testbed down --name {}'",
                                    name, i, senderDevice(i), receiverDevice(i), name));
    }
    LinkInfo link;
    link.senderInterface = sender->second.device;
    link.receiverInterface = receiver->second.device;
    link.senderIp = sender->second.ip;
    link.receiverIp = receiver->second.ip;
    link.senderMac = sender->second.mac;
    link.receiverMac = receiver->second.mac;
    for (const std::string& device : {linkReceiverSide(i), linkSenderSide(i)}) {
      if (auto tbf = tbfs->find(device); tbf != tbfs->end()) {
        (device == linkReceiverSide(i) ? link.rateBps : link.reverseRateBps) = tbf->second.rateBps;
        link.shaperDropped += tbf->second.drops;
      }
      if (auto dropped = txDropped->find(device); dropped != txDropped->end())
        link.ringDropped += dropped->second;
    }
    link.delayNs = configuredDelay(name, i);
    for (const std::string& device : {linkSenderSide(i), linkReceiverSide(i)}) {
      auto state = readImpair(ns.link, device);
      if (!state && state.error().code() == ENOENT) continue;  // someone else's XDP program: not ours to read
      if (!state) return state.error();
      if (!*state) continue;
      // Both devices carry the same config; the sender side's is reported.
      if (device == linkSenderSide(i)) {
        link.lossPercent = (*state)->config.loss_ppm / (MPXDP_IMPAIR_PPM / 100.0);
        link.down = (*state)->config.down != 0;
      }
      link.lossDropped += (*state)->counters.lost;
      link.downDropped += (*state)->counters.down_dropped;
    }
    info.links.push_back(std::move(link));
  }
  info.mtu = senders->at(0).mtu;
  info.queues = receivers->at(0).rxQueues;
  return info;
}

// nlohmann::json throws on a type mismatch; the library returns errors instead.
Result<TestbedInfo> readTestbed(const std::string& name, const Namespaces& ns) {
  try {
    return readTestbedUnguarded(name, ns);
  } catch (const nlohmann::json::exception& e) {
    return Error(EIO, std::string("unexpected JSON from ip/tc: ") + e.what());
  }
}

}  // namespace

std::string senderNamespaceName(std::string_view name) { return fmt::format("mpxdp-{}-tx", name); }
std::string receiverNamespaceName(std::string_view name) { return fmt::format("mpxdp-{}-rx", name); }
std::string linkNamespaceName(std::string_view name) { return fmt::format("mpxdp-{}-link", name); }

Result<void> validateName(std::string_view name) {
  if (name.empty()) return Error(EINVAL, "test bed name is empty");
  if (name.size() > kMaxNameLength) {
    return Error(EINVAL,
                 fmt::format("test bed name '{}' is longer than {} characters", name, kMaxNameLength));
  }
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return Error(EINVAL, fmt::format("test bed name '{}' may only hold a-z, 0-9 and '-'", name));
    }
  }
  if (name.front() == '-')
    return Error(EINVAL, fmt::format("test bed name '{}' must not start with '-'", name));
  return {};
}

Result<void> validateSpec(const TestbedSpec& spec) {
  if (auto valid = validateName(spec.name); !valid) return valid;
  if (spec.ratesBps.empty() || spec.ratesBps.size() > kMaxLinks) {
    return Error(EINVAL,
                 fmt::format("a test bed has 1 to {} links, not {}", kMaxLinks, spec.ratesBps.size()));
  }
  for (std::size_t i = 0; i < spec.ratesBps.size(); ++i) {
    const std::uint64_t rate = spec.ratesBps[i];
    if (rate != 0 && (rate < kMinRateBps || rate > kMaxRateBps)) {
      return Error(EINVAL, fmt::format("rate of link {} ({} bit/s) is outside {} .. {} bit/s", i, rate,
                                       kMinRateBps, kMaxRateBps));
    }
  }
  if (spec.mtu < kMinMtu || spec.mtu > kMaxMtu) {
    return Error(EINVAL, fmt::format("mtu {} is outside {} .. {}", spec.mtu, kMinMtu, kMaxMtu));
  }
  if (spec.queues < 1 || spec.queues > kMaxQueues) {
    return Error(EINVAL, fmt::format("queues {} is outside 1 .. {}", spec.queues, kMaxQueues));
  }
  if (!spec.delaysNs.empty() && spec.delaysNs.size() != spec.ratesBps.size()) {
    return Error(EINVAL, fmt::format("{} links but {} delays", spec.ratesBps.size(), spec.delaysNs.size()));
  }
  if (!spec.lossPercent.empty() && spec.lossPercent.size() != spec.ratesBps.size()) {
    return Error(EINVAL,
                 fmt::format("{} links but {} loss values", spec.ratesBps.size(), spec.lossPercent.size()));
  }
  for (std::size_t i = 0; i < spec.delaysNs.size(); ++i) {
    if (spec.delaysNs[i] > kMaxDelayNs) {
      return Error(EINVAL, fmt::format("delay of link {} ({}) is above {}", i, formatDelay(spec.delaysNs[i]),
                                       formatDelay(kMaxDelayNs)));
    }
  }
  for (std::size_t i = 0; i < spec.lossPercent.size(); ++i) {
    const double loss = spec.lossPercent[i];
    if (!std::isfinite(loss) || loss < 0 || loss > 100) {
      return Error(EINVAL, fmt::format("loss of link {} ({}) is outside 0 .. 100 %", i, loss));
    }
  }
  return {};
}

Result<std::uint64_t> parseDelay(std::string_view text) {
  const std::string quoted = "delay '" + std::string(text) + "'";
  if (text == "0") return 0u;
  struct Unit {
    std::string_view suffix;
    double ns;
  };
  static constexpr std::array<Unit, 4> kUnits = {{{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}}};
  for (const Unit& unit : kUnits) {
    if (text.size() <= unit.suffix.size() || text.substr(text.size() - unit.suffix.size()) != unit.suffix) {
      continue;
    }
    const std::string_view number = text.substr(0, text.size() - unit.suffix.size());
    double value = 0;
    const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (error != std::errc() || end != number.data() + number.size() || !std::isfinite(value) || value < 0 ||
        number.front() == '-' || number.front() == '+') {
      return Error(EINVAL, quoted + " is not a number followed by ns, us, ms or s");
    }
    const double ns = std::round(value * unit.ns);
    if (ns > static_cast<double>(kMaxDelayNs)) {
      return Error(EINVAL, quoted + " is above " + formatDelay(kMaxDelayNs));
    }
    return static_cast<std::uint64_t>(ns);
  }
  return Error(EINVAL, quoted + " needs a unit: ns, us, ms or s (e.g. 5ms), or is 0");
}

Result<double> parseLossPercent(std::string_view text) {
  const std::string quoted = "loss '" + std::string(text) + "'";
  std::string_view number = text;
  if (!number.empty() && number.back() == '%') number.remove_suffix(1);
  double value = 0;
  if (number.empty() || number.front() == '-' || number.front() == '+') {
    return Error(EINVAL, quoted + " is not a percentage 0..100 (e.g. 1%, 0.5%)");
  }
  const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (error != std::errc() || end != number.data() + number.size() || !std::isfinite(value) || value < 0 ||
      value > 100) {
    return Error(EINVAL, quoted + " is not a percentage 0..100 (e.g. 1%, 0.5%)");
  }
  return value;
}

std::string formatDelay(std::uint64_t ns) {
  if (ns == 0) return "none";
  if (ns % 1'000'000'000 == 0) return fmt::format("{} s", ns / 1'000'000'000);
  if (ns >= 1'000'000) return fmt::format("{:g} ms", static_cast<double>(ns) / 1e6);
  if (ns >= 1'000) return fmt::format("{:g} us", static_cast<double>(ns) / 1e3);
  return fmt::format("{} ns", ns);
}

TbfParams tbfParamsFor(std::uint64_t rateBps, std::uint32_t mtu) {
  const std::uint64_t frameBytes = mtu + kEthernetHeaderBytes;
  const std::uint64_t bytesPerSecond = rateBps / 8;
  // Burst: tbf drops any frame larger than the bucket, so it must hold at least
  // one full frame; we keep 4 so back-to-back frames pass at low rates. When the
  // bucket runs dry tbf sleeps on an hrtimer; if that timer fires late (softirq
  // and scheduling latency on a busy 2-vCPU VM reach about a millisecond), the
  // tokens for the late time are lost unless the bucket can hold them. So the
  // bucket also holds 1 ms at the rate: 37.5 KB at 300M, 125 KB at 1G, 1.25 MB at
  // 10G, while at 10M the 4-frame floor (~6 KB, ~5 ms) governs.
  const std::uint64_t burst = std::max(4 * frameBytes, bytesPerSecond / 1000);
  // Limit: bytes that may wait for tokens. A sender paced at the rate still
  // emits in batches (AF_XDP kicks of 32-64 frames) and can fall behind and
  // catch up after being descheduled, so the queue absorbs 20 ms at the rate and
  // never less than 128 frames (two full 64-frame batches). tbf drops and never
  // pushes back, so a queue that is too short loses packets of a paced sender;
  // one this size only adds delay when the sender really exceeds the rate.
  const std::uint64_t queue = std::max(128 * frameBytes, bytesPerSecond / 50);
  return {burst, burst + queue};
}

Result<std::vector<std::string>> superPacketFeaturesOn(const std::string& namespaceName,
                                                       const std::string& interface) {
  auto out = runChecked({"ip", "netns", "exec", namespaceName, "ethtool", "-k", interface});
  if (!out) return out.error();
  std::vector<std::string> on;
  std::string_view rest(*out);
  while (!rest.empty()) {
    const auto end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
    while (!line.empty() && (line.front() == '\t' || line.front() == ' ')) line.remove_prefix(1);
    const auto colon = line.find(": ");
    if (colon == std::string_view::npos) continue;
    const std::string_view feature = line.substr(0, colon);
    const std::string_view state = line.substr(colon + 2);
    // "on", "on [fixed]", "on [requested off]": all still make super-packets.
    if (state.substr(0, 2) == "on" && isSuperPacketFeature(feature)) on.emplace_back(feature);
  }
  return on;
}

Result<TestbedInfo> up(const TestbedSpec& spec) {
  if (auto valid = validateSpec(spec); !valid) return valid.error();
  if (geteuid() != 0) {
    return Error(EPERM, "building test bed '" + spec.name + "' needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)");
  }
  for (const char* tool : {"ip", "tc", "ethtool"}) {
    if (auto found = findProgram(tool); !found) return found.error();
  }
  const Namespaces ns = namespacesOf(spec.name);
  for (const std::string* namespaceName : ns.all()) {
    if (namespaceExists(*namespaceName)) {
      return Error(EEXIST, fmt::format("test bed '{}' exists already (namespace {} is taken); remove it with "
                                       "'mpxdp testbed down --name {}'",
                                       spec.name, *namespaceName, spec.name));
    }
  }

  stopDelayLines(spec.name);  // left over from a test bed whose namespaces are gone
  std::vector<std::string> created;
  const auto rollBack = [&](const Error& error) {
    stopDelayLines(spec.name);
    for (auto it = created.rbegin(); it != created.rend(); ++it) {
      (void)deleteNamespace(*it);  // best effort: the original error is what matters
    }
    return error.wrap("building test bed '" + spec.name + "'");
  };
  for (const std::string* namespaceName : ns.all()) {
    if (auto done = run({"ip", "netns", "add", *namespaceName}); !done) return rollBack(done.error());
    created.push_back(*namespaceName);
  }
  if (auto done = build(spec, ns); !done) return rollBack(done.error());
  if (auto done = applyImpairments(spec, ns); !done) return rollBack(done.error());
  auto info = readTestbed(spec.name, ns);
  if (!info) return rollBack(info.error());
  return info;
}

Result<void> down(const std::string& name) {
  if (auto valid = validateName(name); !valid) return valid;
  const Namespaces ns = namespacesOf(name);
  // The delay lines hold the link namespace open: they go first.
  stopDelayLines(name);
  std::optional<Error> firstError;
  for (std::uint32_t host = 2; host <= kMaxSenderHosts; ++host) {
    if (auto done = deleteNamespace(extraSenderNamespaceName(name, host)); !done && !firstError)
      firstError = done.error();
  }
  for (const std::string* namespaceName : ns.all()) {
    if (auto done = deleteNamespace(*namespaceName); !done && !firstError) firstError = done.error();
  }
  if (firstError) return firstError->wrap("removing test bed '" + name + "'");
  return {};
}

std::string extraSenderNamespaceName(std::string_view name, std::uint32_t host) {
  return fmt::format("mpxdp-{}-tx{}", name, host);
}

std::string extraSenderAddress(std::size_t link, std::uint32_t host) {
  return fmt::format("198.18.{}.{}", link + 1, host + 1);
}

Result<std::string> addSender(const std::string& name, std::uint32_t host) {
  if (host < 2 || host > kMaxSenderHosts)
    return Error(EINVAL, fmt::format("sender host {}: expected 2..{}", host, kMaxSenderHosts));
  auto info = show(name);
  if (!info) return info.error();
  const std::string hostNs = extraSenderNamespaceName(name, host);
  if (namespaceExists(hostNs)) return Error(EEXIST, "namespace " + hostNs + " already exists");
  const Namespaces ns = namespacesOf(name);
  auto built = [&]() -> Result<void> {
    if (auto done = run({"ip", "netns", "add", hostNs}); !done) return done;
    if (auto done = run({"ip", "-n", hostNs, "link", "set", "dev", "lo", "up"}); !done) return done;
    for (std::size_t i = 0; i < info->links.size(); ++i) {
      const LinkInfo& link = info->links[i];
      const std::string outer = fmt::format("ms{}h{}", i, host);
      const std::string inner = senderDevice(i);
      if (auto done = addVethPair(ns, outer, inner, hostNs, info->mtu, info->queues); !done) return done;
      if (auto done = run({"ip", "-n", ns.link, "link", "set", "dev", outer, "addrgenmode", "none"}); !done)
        return done;
      if (auto done = run({"ip", "-n", ns.link, "link", "set", "dev", outer, "master", bridgeDevice(i)});
          !done)
        return done;
      if (auto done = turnOffSuperPackets(ns.link, outer); !done) return done;
      if (auto done = turnOffSuperPackets(hostNs, inner); !done) return done;
      const std::string address = extraSenderAddress(i, host) + "/" + std::to_string(kPrefixLength);
      if (auto done = run({"ip", "-n", hostNs, "addr", "add", address, "dev", inner}); !done) return done;
      if (link.reverseRateBps != 0) {
        if (auto done = addTbf(ns, outer, link.reverseRateBps, info->mtu); !done) return done;
      }
      if (auto done = run({"ip", "-n", ns.link, "link", "set", "dev", outer, "up"}); !done) return done;
      if (auto done = run({"ip", "-n", hostNs, "link", "set", "dev", inner, "up"}); !done) return done;
    }
    return {};
  }();
  if (!built) {
    (void)deleteNamespace(hostNs);  // its veths go with it
    return built.error().wrap(fmt::format("adding sender host {} to test bed '{}'", host, name));
  }
  return hostNs;
}

Result<TestbedInfo> show(const std::string& name) {
  if (auto valid = validateName(name); !valid) return valid.error();
  const Namespaces ns = namespacesOf(name);
  std::vector<std::string> missing;
  for (const std::string* namespaceName : ns.all()) {
    if (!namespaceExists(*namespaceName)) missing.push_back(*namespaceName);
  }
  if (missing.size() == ns.all().size()) return Error(ENOENT, "no test bed named '" + name + "'");
  if (!missing.empty()) {
    return Error(ENOENT, fmt::format("test bed '{}' is incomplete (namespace {} is missing); remove it with "
                                     "'mpxdp testbed down --name {}'",
                                     name, missing.front(), name));
  }
  auto info = readTestbed(name, ns);
  if (!info) return info.error().wrap("reading test bed '" + name + "'");
  return info;
}

namespace {

struct LinkGeometry {
  std::size_t links = 0;
  std::uint32_t mtu = 0;
};

// The number of links and the MTU from one `ip link` in the link namespace:
// setLink runs while traffic flows and must act at once (show() reads
// every device and qdisc, up to a second on a loaded machine).
Result<LinkGeometry> linkGeometry(const std::string& name, const Namespaces& ns) {
  if (!namespaceExists(ns.link)) return Error(ENOENT, "no test bed named '" + name + "'");
  auto out = runChecked({"ip", "-n", ns.link, "-j", "link", "show"});
  if (!out) return out.error().wrap("reading test bed '" + name + "'");
  const auto devices = nlohmann::json::parse(*out, nullptr, false);
  if (!devices.is_array())
    return Error(EPROTO, "reading test bed '" + name + "': unreadable `ip -j link` output");
  LinkGeometry geometry;
  while (true) {
    const std::string wanted = linkSenderSide(geometry.links);
    const auto found = std::find_if(devices.begin(), devices.end(), [&](const nlohmann::json& d) {
      return d.is_object() && d.value("ifname", "") == wanted;
    });
    if (found == devices.end()) break;
    if (geometry.links == 0) geometry.mtu = found->value("mtu", 0U);
    ++geometry.links;
  }
  if (geometry.links == 0) return Error(ENOENT, "test bed '" + name + "' has no links");
  return geometry;
}

}  // namespace

Result<void> setLink(const std::string& name, std::size_t link, const LinkChange& change) {
  if (auto valid = validateName(name); !valid) return valid;
  if (!change.rateBps && !change.delayNs && !change.lossPercent && !change.down) {
    return Error(EINVAL, "nothing to change: give a rate, delay, loss, down or up");
  }
  if (change.rateBps && *change.rateBps != 0 &&
      (*change.rateBps < kMinRateBps || *change.rateBps > kMaxRateBps)) {
    return Error(EINVAL, fmt::format("rate {} bit/s is outside {} .. {} bit/s", *change.rateBps, kMinRateBps,
                                     kMaxRateBps));
  }
  if (change.delayNs && *change.delayNs > kMaxDelayNs) {
    return Error(EINVAL,
                 fmt::format("delay {} is above {}", formatDelay(*change.delayNs), formatDelay(kMaxDelayNs)));
  }
  if (change.lossPercent &&
      (!std::isfinite(*change.lossPercent) || *change.lossPercent < 0 || *change.lossPercent > 100)) {
    return Error(EINVAL, fmt::format("loss {} is outside 0 .. 100 %", *change.lossPercent));
  }
  if (geteuid() != 0) return Error(EPERM, "changing test bed '" + name + "' needs root");
  const Namespaces ns = namespacesOf(name);
  auto info = linkGeometry(name, ns);
  if (!info) return info.error();
  if (link >= info->links) {
    return Error(EINVAL,
                 fmt::format("test bed '{}' has links 0..{}, no link {}", name, info->links - 1, link));
  }
  const std::string context = fmt::format("changing link {} of test bed '{}'", link, name);
  if (change.rateBps) {
    for (const std::string& device : {linkReceiverSide(link), linkSenderSide(link)}) {
      Result<void> done;
      if (*change.rateBps == 0) {
        const auto current = readTbfs(ns.link);
        if (!current) return current.error().wrap(context);
        if (current->count(device) != 0)
          done = run({"tc", "-n", ns.link, "qdisc", "del", "dev", device, "root"});
      } else {
        done = addTbf(ns, device, *change.rateBps, info->mtu);
      }
      if (!done) return done.error().wrap(context);
    }
  }
  if (change.lossPercent || change.down) {
    if (auto done = applyImpairment(ns, link, change.lossPercent, change.down); !done) {
      return done.error().wrap(context);
    }
  }
  if (change.delayNs) {
    if (auto done = applyDelay(name, ns, link, *change.delayNs, info->mtu); !done)
      return done.error().wrap(context);
  }
  return {};
}

nlohmann::json toJson(const TestbedInfo& info) {
  nlohmann::json links = nlohmann::json::array();
  for (std::size_t i = 0; i < info.links.size(); ++i) {
    const LinkInfo& link = info.links[i];
    links.push_back({
        {"index", i},
        {"sender",
         {{"namespace", info.senderNamespace},
          {"interface", link.senderInterface},
          {"ip", link.senderIp},
          {"prefix_len", kPrefixLength},
          {"mac", link.senderMac}}},
        {"receiver",
         {{"namespace", info.receiverNamespace},
          {"interface", link.receiverInterface},
          {"ip", link.receiverIp},
          {"prefix_len", kPrefixLength},
          {"mac", link.receiverMac}}},
        {"middle",
         {{"namespace", info.linkNamespace},
          {"bridge", bridgeDevice(i)},
          {"sender_side", linkSenderSide(i)},
          {"receiver_side", linkReceiverSide(i)}}},
        {"rate_bps", link.rateBps},
        {"reverse_rate_bps", link.reverseRateBps},
        {"delay_ns", link.delayNs},
        {"loss_percent", link.lossPercent},
        {"state", link.down ? "down" : "up"},
        {"dropped_by_loss", link.lossDropped},
        {"dropped_by_down", link.downDropped},
        {"dropped_by_shaper", link.shaperDropped},
        {"dropped_ring_full", link.ringDropped},
    });
  }
  return {
      {"name", info.name},
      {"namespaces",
       {{"sender", info.senderNamespace},
        {"receiver", info.receiverNamespace},
        {"link", info.linkNamespace}}},
      {"mtu", info.mtu},
      {"queues", info.queues},
      {"links", std::move(links)},
  };
}

std::string toText(const TestbedInfo& info) {
  std::string text = fmt::format("test bed {}: {} link(s), mtu {}, {} queue(s) per veth\n", info.name,
                                 info.links.size(), info.mtu, info.queues);
  text += fmt::format("namespaces: sender {}, receiver {}, link {}\n\n", info.senderNamespace,
                      info.receiverNamespace, info.linkNamespace);
  text += fmt::format("{:<5} {:<6} {:<15} {:<18} {:<6} {:<15} {:<18} {:<14} {}\n", "link", "tx if", "tx ip",
                      "tx mac", "rx if", "rx ip", "rx mac", "rate", "reverse rate");
  for (std::size_t i = 0; i < info.links.size(); ++i) {
    const LinkInfo& link = info.links[i];
    text += fmt::format("{:<5} {:<6} {:<15} {:<18} {:<6} {:<15} {:<18} {:<14} {}\n", i, link.senderInterface,
                        link.senderIp, link.senderMac, link.receiverInterface, link.receiverIp,
                        link.receiverMac, formatRate(link.rateBps), formatRate(link.reverseRateBps));
  }
  text += fmt::format("\n{:<5} {:<5} {:<12} {:<8} {:<16} {:<16} {:<18} {}\n", "link", "state", "delay",
                      "loss", "dropped by loss", "dropped by down", "dropped by shaper", "dropped ring full");
  for (std::size_t i = 0; i < info.links.size(); ++i) {
    const LinkInfo& link = info.links[i];
    text += fmt::format("{:<5} {:<5} {:<12} {:<8} {:<16} {:<16} {:<18} {}\n", i, link.down ? "down" : "up",
                        formatDelay(link.delayNs), fmt::format("{:g} %", link.lossPercent), link.lossDropped,
                        link.downDropped, link.shaperDropped, link.ringDropped);
  }
  return text;
}

Result<ScopedTestbed> ScopedTestbed::create(const TestbedSpec& spec) {
  auto info = up(spec);
  if (!info) return info.error();
  return ScopedTestbed(std::move(*info));
}

ScopedTestbed::ScopedTestbed(ScopedTestbed&& other) noexcept
    : info_(std::move(other.info_)), owned_(other.owned_) {
  other.owned_ = false;
}

ScopedTestbed::~ScopedTestbed() {
  if (owned_) (void)down(info_.name);  // nothing to report to from a destructor
}

Result<NetnsScope> NetnsScope::enter(const std::string& namespaceName) {
  if (namespaceName.empty() || namespaceName.find('/') != std::string::npos || namespaceName == "." ||
      namespaceName == "..") {
    return Error(EINVAL, "bad network namespace name '" + namespaceName + "'");
  }
  const int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (original < 0) return Error::fromErrno("opening the current network namespace");
  const std::string path = std::string(kNetnsDir) + namespaceName;
  const int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    const Error error = Error::fromErrno("opening network namespace " + path);
    close(original);
    return error;
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    const Error error = Error::fromErrno("entering network namespace " + namespaceName);
    close(target);
    close(original);
    return error;
  }
  close(target);
  return NetnsScope(original);
}

NetnsScope::NetnsScope(NetnsScope&& other) noexcept : originalFd_(other.originalFd_) {
  other.originalFd_ = -1;
}

NetnsScope::~NetnsScope() {
  if (originalFd_ < 0) return;
  // Going back to a namespace we came from cannot fail for lack of rights.
  (void)setns(originalFd_, CLONE_NEWNET);
  close(originalFd_);
}

}  // namespace mpxdp::testbed
