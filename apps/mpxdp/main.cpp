// mpxdp: command line front end. Subcommands come from the table in commands.cpp.
#include <bpf/libbpf.h>
#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "commands.h"
#include "config_file.h"

namespace {

using mpxdp::cli::kExitOk;
using mpxdp::cli::kExitRuntimeError;
using mpxdp::cli::kExitUsageError;

// libbpf's print callback is the application's to set: the tool shows
// warnings (which carry the verifier's log) and drops debug and info chatter.
int printLibbpfWarnings(enum libbpf_print_level level, const char* format, va_list args) {
  if (level != LIBBPF_WARN) return 0;
  return std::vfprintf(stderr, format, args);
}

// "mpxdp testbed up": the tool and the (sub)commands parsed so far, the prefix of every error line.
std::string commandPath(const CLI::App& app) {
  std::string path = app.get_name();
  const CLI::App* at = &app;
  for (;;) {
    const auto parsed = at->get_subcommands();
    if (parsed.empty()) return path;
    at = parsed.front();
    path += " " + at->get_name();
  }
}

// `mpxdp help [command [subcommand...]]`: help for the tool or for one command.
int printHelp(CLI::App& app, const std::vector<std::string>& topic) {
  CLI::App* target = &app;
  std::string path = app.get_name();
  for (const auto& word : topic) {
    CLI::App* next = nullptr;
    for (CLI::App* sub : target->get_subcommands([](CLI::App*) { return true; })) {
      if (sub->get_name() == word) next = sub;
    }
    if (next == nullptr) {
      fmt::print(stderr, "mpxdp help: no command '{}'; run 'mpxdp help' for the list\n", word);
      return kExitUsageError;
    }
    target = next;
    path += " " + word;
  }
  // Not App::help(): that would describe the selected subcommand, "help" itself.
  fmt::print("{}", target->get_formatter()->make_help(target, path, CLI::AppFormatMode::Normal));
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mpxdp: bond several network links into one connection, data path on AF_XDP", "mpxdp"};
  app.set_version_flag("--version", std::string("mpxdp ") + MPXDP_VERSION);
  app.require_subcommand(1);
  // One line per error, led by the command it is about, like the commands' own errors.
  app.failure_message([](const CLI::App* root, const CLI::Error& e) {
    const std::string path = commandPath(*root);
    // "mpxdp testbed up" -> "mpxdp help testbed up"
    const std::string help = "mpxdp help" + path.substr(root->get_name().size());
    return fmt::format("{}: {} (see '{}')\n", path, e.what(), help);
  });
  libbpf_set_print(printLibbpfWarnings);

  std::vector<std::pair<CLI::App*, const mpxdp::cli::Command*>> bound;
  for (const auto& command : mpxdp::cli::commands()) {
    CLI::App* sub = app.add_subcommand(std::string(command.name), std::string(command.summary));
    command.declare(sub);
    bound.emplace_back(sub, &command);
  }
  std::vector<std::string> helpTopic;
  CLI::App* help = app.add_subcommand("help", "Show help for mpxdp or for one command");
  help->add_option("command", helpTopic, "command (and subcommand) to explain");

  // A command's --config FILE becomes the arguments it stands for, checked like the flags.
  std::vector<std::string> args(argv + 1, argv + argc);
  auto expanded = mpxdp::cli::expandConfigFile(app, args);
  if (!expanded) {
    fmt::print(stderr, "mpxdp {}: {}\n", args.front(), expanded.error().context());
    return kExitUsageError;
  }
  // CLI11 takes a vector of arguments last first.
  std::reverse(expanded->begin(), expanded->end());
  try {
    app.parse(std::move(*expanded));
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive here too, with exit code 0.
    return app.exit(e) == 0 ? kExitOk : kExitUsageError;
  }

  try {
    if (help->parsed()) return printHelp(app, helpTopic);
    for (const auto& [sub, command] : bound) {
      if (sub->parsed()) return command->run(sub);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: {}\n", commandPath(app), e.what());
    return kExitRuntimeError;
  }
  fmt::print(stderr, "mpxdp: no command given; run 'mpxdp help'\n");
  return kExitUsageError;
}
