#include "config_file.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

namespace mpxdp::cli {
namespace {

constexpr std::string_view kConfigOption = "--config";

// Whether the command line gives `option` (by any of its names, as --name VALUE or --name=VALUE).
bool givenOnCommandLine(const CLI::Option& option, const std::vector<std::string>& args) {
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    for (const std::string& name : option.get_lnames()) {
      const std::string flag = "--" + name;
      if (arg == flag || arg.rfind(flag + "=", 0) == 0) return true;
    }
    for (const std::string& name : option.get_snames()) {
      if (arg.size() >= 2 && arg[0] == '-' && arg[1] != '-' && arg.substr(1, name.size()) == name)
        return true;
    }
  }
  return false;
}

}  // namespace

Result<std::vector<std::string>> expandConfigFile(const CLI::App& root,
                                                  const std::vector<std::string>& args) {
  if (args.empty()) return args;
  const CLI::App* command = nullptr;
  for (const CLI::App* sub : root.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_name() == args[0]) command = sub;
  }
  if (command == nullptr || command->get_option_no_throw(std::string(kConfigOption)) == nullptr) return args;

  std::optional<std::string> path;
  for (std::size_t i = 1; i < args.size(); ++i) {
    std::optional<std::string> value;
    if (args[i] == kConfigOption) {
      if (i + 1 >= args.size()) return args;  // CLI11 reports the missing value
      value = args[i + 1];
    } else if (args[i].rfind(std::string(kConfigOption) + "=", 0) == 0) {
      value = args[i].substr(kConfigOption.size() + 1);
    }
    if (!value) continue;
    if (path) return Error(EINVAL, "--config given twice");
    path = *value;
  }
  if (!path) return args;

  std::vector<CLI::ConfigItem> items;
  try {
    items = CLI::ConfigTOML().from_file(*path);
  } catch (const CLI::FileError&) {
    return Error(ENOENT, fmt::format("--config {}: cannot read the file", *path));
  } catch (const CLI::ParseError& e) {
    return Error(EINVAL, fmt::format("--config {}: {}", *path, e.what()));
  }
  std::vector<std::string> fromFile;
  for (const CLI::ConfigItem& item : items) {
    if (!item.parents.empty() || item.name == "++" || item.name == "--") {
      return Error(EINVAL, fmt::format("--config {}: sections are not supported (found [{}])", *path,
                                       item.parents.empty() ? item.name : item.parents.front()));
    }
    const std::string flag = "--" + item.name;
    const CLI::Option* option = command->get_option_no_throw(flag);
    if (option == nullptr || item.name == kConfigOption.substr(2) || option->get_lnames().empty()) {
      return Error(EINVAL,
                   fmt::format("--config {}: unknown key '{}' (the keys are the long options of 'mpxdp "
                               "{}')",
                               *path, item.name, command->get_name()));
    }
    if (givenOnCommandLine(*option, args)) continue;
    if (option->get_expected_max() == 0) {
      // A flag: true or false.
      const std::string value = item.inputs.size() == 1 ? item.inputs.front() : "";
      if (value == "true" || value == "1") {
        fromFile.push_back(flag);
      } else if (value != "false" && value != "0") {
        return Error(EINVAL, fmt::format("--config {}: '{}' is a flag: true or false, not '{}'", *path,
                                         item.name, fmt::join(item.inputs, ", ")));
      }
      continue;
    }
    for (const std::string& input : item.inputs) {
      fromFile.push_back(flag);
      fromFile.push_back(input);
    }
  }
  std::vector<std::string> expanded;
  expanded.reserve(args.size() + fromFile.size());
  expanded.push_back(args[0]);
  expanded.insert(expanded.end(), fromFile.begin(), fromFile.end());
  expanded.insert(expanded.end(), args.begin() + 1, args.end());
  return expanded;
}

}  // namespace mpxdp::cli
