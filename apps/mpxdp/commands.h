// The table of mpxdp subcommands. A new command is one row in commands.cpp
// plus one cmd_<name>.cpp that defines its declare and run functions.
#pragma once

#include <CLI/CLI.hpp>

#include <span>
#include <string>
#include <string_view>

#include "mpxdp/error.h"

namespace mpxdp::cli {

// Exit codes of the tool.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntimeError = 1;
inline constexpr int kExitUsageError = 2;

struct Command {
  std::string_view name;
  std::string_view summary;
  // Adds the command's options (and its own subcommands) to `app`, which CLI11
  // has already created under the command's name. Option values live in the
  // command's file until run() reads them.
  void (*declare)(CLI::App* app);
  // Runs the command after a successful parse; `app` is the same CLI::App.
  // Returns the process exit code.
  int (*run)(CLI::App* app);
};

std::span<const Command> commands();

// Prints "mpxdp <what>: <error message>" to stderr (what starts with the command: "recv", "testbed up") and
// returns kExitRuntimeError.
int reportError(std::string_view what, const Error& error);

}  // namespace mpxdp::cli
