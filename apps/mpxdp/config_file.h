// `--config FILE` of a command (mpxdp tun): a TOML file whose keys are the
// command's long option names, e.g.
//   name = "mpx0"
//   link = ["eth1=192.0.2.2", "eth2=198.51.100.2@100M"]
// turned into the arguments they stand for before the command line is
// parsed, so the file is checked exactly like the flags. An option given on
// the command line replaces the file's value (all of it, for repeatable ones).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "mpxdp/error.h"

namespace mpxdp::cli {

// args: the command line without the program name (args[0] is the command).
// When args[0] names a subcommand of root that has a --config option and the
// command line gives one, returns args with the file's options inserted after
// the command; otherwise args unchanged. EINVAL naming the file on a missing
// or unreadable file, a syntax error, a [section], an unknown key, a flag
// with a value other than true / false, or --config given twice.
Result<std::vector<std::string>> expandConfigFile(const CLI::App& root, const std::vector<std::string>& args);

}  // namespace mpxdp::cli
