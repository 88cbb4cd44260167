// The steps `mpxdp send` and `mpxdp recv` share around a transfer: link
// specs from the checked --link plans, waiting for the handshake or the next
// client, and the final reports.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "link_args.h"
#include "metrics.h"
#include "mpxdp/connection.h"
#include "mpxdp/endpoint.h"
#include "mpxdp/links.h"
#include "mpxdp/security.h"
#include "report.h"
#include "transfer.h"

namespace mpxdp::cli {

std::vector<LinkSpec> toLinkSpecs(const std::vector<LinkPlan>& plans);
// EINVAL naming the first link without a rate (--pacing fixed needs one on every link).
Result<void> requireLinkRates(const std::vector<LinkPlan>& plans);

// Polls until the connection is established; its error (no answer, refused,
// other version) otherwise. A stop signal aborts with EINTR.
Result<void> waitForHandshake(Endpoint& endpoint, Connection& connection);

// The error of a connection that closed before its handshake completed. A
// timeout while the links dropped packets as malformed says so, since that
// is most often an xdp end facing a udp end on veth (docs/architecture.md).
Error handshakeFailure(const Endpoint& endpoint, const Connection& connection);

// What the server already told the user about (refusals, other versions).
struct ServerNotices {
  std::uint64_t refusals = 0;
  std::uint32_t refusedConnId = 0;  // a client repeats its HELLO: say each refusal once
  std::uint64_t versionMismatches = 0;
};

// Prints (stderr) each refused HELLO and each peer of another wire version
// not told about yet.
void printServerNotices(const Endpoint& endpoint, ServerNotices& notices);

// The run header: links with their modes (xdp queues, copy/zero-copy), backend, CPU.
RunDescription describeRun(const Endpoint& endpoint, const std::vector<LinkPlan>& plans, Backend backend,
                           int cpu);

// --scheduler and --pacing of send and recv (recv sends with -R / --bidir).
struct PathControlArgs {
  std::string scheduler = "eaf";
  std::string pacing = "auto";
};
// Checks both names (EINVAL, naming the option) and sets them in `config`;
// --pacing fixed also needs a rate on every link.
Result<void> applyPathControl(const PathControlArgs& args, const std::vector<LinkPlan>& plans,
                              ConnectionConfig& config);

// --reliable, --redundant, --reliable-window and --abort-timeout of send and recv.
struct ReliabilityArgs {
  bool reliable = false;
  bool redundant = false;
  std::uint32_t windowPackets = 0;  // 0: the library's default (ConnectionConfig::reliableWindowPackets)
  double abortTimeoutS = 3.0;       // ConnectionConfig::peerTimeoutNs
};
// Checks the values (EINVAL naming the option) and sets them in `config`.
// The reliable window needs reliable mode and fits in the reorder window
// (config.reorder.windowPackets); the sender raises its own to fit.
Result<void> applyReliability(const ReliabilityArgs& args, ConnectionConfig& config, bool sender);

// --key and --cipher of send, recv and tun (issue 11).
struct SecurityArgs {
  std::vector<std::string> keyFiles;  // a server (recv, tun) takes several: one per peer
  std::string cipher;                 // "" : the faster one on this CPU
};
// many: --key may repeat (a server serving several peers).
void declareSecurity(CLI::App* app, SecurityArgs& args, bool many);
// Loads the key files (EINVAL/EPERM/ENOENT naming the file and what to do)
// and checks --cipher; sets `security`.
Result<void> applySecurity(const SecurityArgs& args, SecurityOptions& security);

// The data path's options, the same for send, recv and tun:
// --no-udp-gso / --no-udp-gro (the UDP backend datagram by datagram),
// --udp-checksum auto|on|off, --threads 1|2, --rx-threads N, --rx-usecs N (receive
// coalescing of the run loop, FdWaiter; rxUsecs stays negative when not
// given: kDefaultRxUsecs where this side receives data, 0 on a sender that
// only hears ACKs, where it gains nothing, measured).
inline constexpr std::uint32_t kDefaultRxUsecs = 50;
// --backend, the same for send, recv and tun.
inline constexpr const char* kBackendHelp =
    "auto: per link AF_XDP where its driver runs it zero-copy, else kernel UDP with GSO and GRO, which is "
    "faster than AF_XDP's copy mode (veth, and drivers without AF_XDP zero-copy); kernel UDP everywhere "
    "without root. xdp: AF_XDP on every link (zero-copy or copy mode) with the steering program, needs "
    "root. udp: kernel UDP sockets on every link. The link description says which each link got "
    "(xdp:... or udp:...); on veth both ends must get the same";
struct DataPathArgs {
  bool noUdpGso = false;
  bool noUdpGro = false;
  UdpChecksum udpChecksum = UdpChecksum::kAuto;
  std::uint32_t threads = 1;
  std::uint32_t rxThreads = 0;
  std::int64_t rxUsecs = -1;
  std::uint32_t busyPollUsecs = 0;
};
void declareDataPath(CLI::App* app, DataPathArgs& args);
// EINVAL naming the option when it does not go with the backend.
Result<void> checkDataPath(const DataPathArgs& args, Backend backend);
// EINVAL when --rx-threads asks for more threads than there are links.
Result<void> checkRxThreads(const DataPathArgs& args, std::size_t links);
// Sets the backend and these options in `link` (ports and peers stay the caller's).
void applyDataPath(const DataPathArgs& args, Backend backend, LinkOptions& link);
std::uint64_t rxHoldoffNs(const DataPathArgs& args, bool receivesData) noexcept;

// --metrics ADDR:PORT (Prometheus, metrics.h).
void declareMetrics(CLI::App* app, std::string& address);
// Starts the server when address is set (null otherwise). EINVAL for a bad
// address, EADDRINUSE when it cannot listen. Call it before entering a test
// bed's namespace, so that the port is on this host.
Result<std::unique_ptr<MetricsServer>> startMetrics(const std::string& address, const char* command);
// "authenticated and encrypted, aes-256-gcm (1 pre-shared key)" or that nothing is; a side that
// accepts (connects false) names no cipher: its client chooses.
std::string securityText(const SecurityOptions& security, bool connects);

// Final reports of both directions; with `combined` one JSON object
// {"send": {...}, "recv": {...}} on stdout.
void finishReports(const Endpoint& endpoint, const Connection& connection, const TransferResult& result,
                   Reporter* sendReporter, Reporter* receiveReporter, bool combined);

}  // namespace mpxdp::cli
