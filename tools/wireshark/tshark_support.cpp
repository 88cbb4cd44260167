#include "tshark_support.h"

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <system_error>

#include "process.h"

namespace mpxdp::test {

namespace {

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, separator)) parts.push_back(part);
  if (!text.empty() && text.back() == separator) parts.emplace_back();
  return parts;
}

// tshark with the dissector loaded; it refuses nothing as root but says so on stderr.
std::vector<std::string> tsharkArgs(const std::string& pcap) {
  return {"tshark", "-n", "-X", std::string("lua_script:") + MPXDP_DISSECTOR, "-r", pcap};
}

Result<std::string> runTshark(std::vector<std::string> argv) {
  auto out = testbed::runProgram(argv, std::chrono::seconds(120));
  if (!out) return out.error();
  // tshark exits 0 on a bad filter too, but prints the reason; Lua errors also go to stderr.
  if (out->exitStatus != 0 || out->err.find("rror") != std::string::npos) {
    return Error(EIO,
                 testbed::commandLine(argv) + " exited " + std::to_string(out->exitStatus) + ": " + out->err);
  }
  return std::move(out->out);
}

}  // namespace

std::optional<std::string> tsharkMissing() {
  auto path = testbed::findProgram("tshark");
  if (!path)
    return "tshark not found (apt-get install tshark, or scripts/install-deps.sh): " + path.error().message();
  return std::nullopt;
}

Result<std::vector<FieldRow>> tsharkFields(const std::string& pcap, const std::vector<std::string>& fields,
                                           const std::string& filter) {
  auto argv = tsharkArgs(pcap);
  if (!filter.empty()) {
    argv.push_back("-Y");
    argv.push_back(filter);
  }
  for (const char* arg : {"-T", "fields", "-E", "separator=/t", "-E", "aggregator=|", "-E", "occurrence=a"}) {
    argv.push_back(arg);
  }
  for (const auto& field : fields) {
    argv.push_back("-e");
    argv.push_back(field);
  }
  auto out = runTshark(argv);
  if (!out) return out.error();
  std::vector<FieldRow> rows;
  for (const auto& line : split(*out, '\n')) {
    if (line.empty()) continue;
    auto columns = split(line, '\t');
    if (columns.size() != fields.size()) {
      return Error(EPROTO, "tshark printed " + std::to_string(columns.size()) + " columns for " +
                               std::to_string(fields.size()) + " fields: " + line);
    }
    FieldRow row;
    for (const auto& column : columns)
      row.push_back(column.empty() ? std::vector<std::string>{} : split(column, '|'));
    rows.push_back(std::move(row));
  }
  return rows;
}

Result<std::vector<int>> tsharkMatching(const std::string& pcap, const std::string& filter) {
  auto rows = tsharkFields(pcap, {"frame.number"}, filter);
  if (!rows) return rows.error();
  std::vector<int> numbers;
  for (const auto& row : *rows) {
    if (row[0].size() != 1) return Error(EPROTO, "frame.number missing in tshark output");
    numbers.push_back(std::stoi(row[0][0]));
  }
  return numbers;
}

Result<TempDir> TempDir::create(const std::string& prefix) {
  std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) return Error::fromErrno("mkdtemp " + pattern);
  return TempDir(pattern);
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace mpxdp::test
