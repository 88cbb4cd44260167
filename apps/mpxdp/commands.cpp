#include "commands.h"

#include <fmt/core.h>

#include <array>
#include <cstdio>

namespace mpxdp::cli {

// Defined in cmd_<name>.cpp.
void declareTestbed(CLI::App* app);
int runTestbed(CLI::App* app);
void declareSend(CLI::App* app);
int runSend(CLI::App* app);
void declareRecv(CLI::App* app);
int runRecv(CLI::App* app);
void declareDemo(CLI::App* app);
int runDemo(CLI::App* app);
void declareTun(CLI::App* app);
int runTun(CLI::App* app);
void declareGenkey(CLI::App* app);
int runGenkey(CLI::App* app);

namespace {

constexpr std::array kCommands = {
    Command{"testbed", "Build, show and remove a local multi-link test bed (network namespaces)",
            declareTestbed, runTestbed},
    Command{"send", "Send a stream over several links for -t seconds (like iperf3 -c)", declareSend, runSend},
    Command{"recv", "Receive, reorder and check a stream; report goodput, loss, reordering (like iperf3 -s)",
            declareRecv, runRecv},
    Command{"tun", "Bond the links into a virtual interface for unmodified applications, both directions",
            declareTun, runTun},
    Command{"genkey", "Print a new random pre-shared key for --key (base64; -o writes a mode-600 file)",
            declareGenkey, runGenkey},
    Command{"demo",
            "Build a 3-link test bed, compare the reorderers and the kernel-UDP backend, tear it down",
            declareDemo, runDemo},
};

}  // namespace

std::span<const Command> commands() { return kCommands; }

int reportError(std::string_view what, const Error& error) {
  fmt::print(stderr, "mpxdp {}: {}\n", what, error.message());
  return kExitRuntimeError;
}

}  // namespace mpxdp::cli
