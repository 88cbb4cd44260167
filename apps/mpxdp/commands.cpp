#include "commands.h"

#include <fmt/core.h>

#include <array>
#include <cstdio>

namespace mpxdp::cli {

// Defined in cmd_<name>.cpp.
void declareTestbed(CLI::App* app);
int runTestbed(CLI::App* app);

namespace {

constexpr std::array kCommands = {
    Command{"testbed", "Build, show and remove a local multi-link test bed (network namespaces)", declareTestbed,
            runTestbed},
};

}  // namespace

std::span<const Command> commands() { return kCommands; }

int reportError(std::string_view what, const Error& error) {
  fmt::print(stderr, "mpxdp: {}: {}\n", what, error.message());
  return kExitRuntimeError;
}

}  // namespace mpxdp::cli
