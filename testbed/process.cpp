#include "process.h"

#include "subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>

extern char** environ;

namespace mpxdp::testbed {

namespace {

constexpr std::array<std::string_view, 4> kFallbackDirs = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};

std::string packageHint(const std::string& program) {
  if (program == "ip" || program == "tc" || program == "bridge") return "iproute2";
  if (program == "ethtool") return "ethtool";
  return {};
}

// Picks the errno that a failed ip/tc/ethtool run most likely stands for, from
// the strerror text these tools print; EIO when none matches.
int errnoFromStderr(const std::string& err) {
  static constexpr std::array<int, 10> kCandidates = {EEXIST, ENOENT, EPERM,  EACCES,     EBUSY,
                                                      ENODEV, ENOMEM, ERANGE, EOPNOTSUPP, EINVAL};
  for (int code : kCandidates) {
    if (err.find(std::strerror(code)) != std::string::npos) return code;
  }
  return EIO;
}

std::string trimmed(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  return std::string(text);
}

}  // namespace

std::string commandLine(const std::vector<std::string>& argv) {
  std::string line;
  for (const auto& arg : argv) {
    if (!line.empty()) line += ' ';
    line += arg;
  }
  return line;
}

Result<std::string> findProgram(const std::string& program) {
  if (program.empty()) return Error(EINVAL, "empty program name");
  if (program.find('/') != std::string::npos) {
    if (access(program.c_str(), X_OK) == 0) return program;
    return Error::fromErrno("cannot execute " + program);
  }
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::string_view rest(path);
    while (!rest.empty()) {
      const auto colon = rest.find(':');
      const auto dir = rest.substr(0, colon);
      if (!dir.empty()) dirs.emplace_back(dir);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  for (auto dir : kFallbackDirs) dirs.emplace_back(dir);
  for (const auto& dir : dirs) {
    std::string candidate = dir;
    candidate += "/";
    candidate += program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  std::string context = "program '" + program + "' not found in PATH or /usr/sbin";
  if (auto package = packageHint(program); !package.empty()) {
    context += " (install the Debian package " + package + ")";
  }
  return Error(ENOENT, context);
}

Result<ProgramOutput> runProgram(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  if (argv.empty()) return Error(EINVAL, "runProgram: empty argv");
  auto path = findProgram(argv[0]);
  if (!path) return path.error();
  std::vector<std::string> resolved = argv;
  resolved[0] = *path;
  auto child = Subprocess::spawn(resolved);
  if (!child) return child.error().wrap("cannot start " + *path);
  const auto status = child->wait(timeout);
  if (!status) {
    // The handle kills and reaps the child when it goes out of scope.
    return Error(ETIMEDOUT,
                 commandLine(argv) + " did not finish within " + std::to_string(timeout.count()) + " ms");
  }
  return ProgramOutput{*status, child->out(), child->err()};
}

Result<std::string> runChecked(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  auto result = runProgram(argv, timeout);
  if (!result) return result.error();
  if (result->exitStatus != 0) {
    std::string context =
        "'" + commandLine(argv) + "' failed (exit " + std::to_string(result->exitStatus) + ")";
    const std::string err = trimmed(result->err);
    if (!err.empty()) context += ": " + err;
    return Error(errnoFromStderr(result->err), context);
  }
  return std::move(result->out);
}

}  // namespace mpxdp::testbed
