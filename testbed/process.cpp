#include "process.h"

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

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

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

  int outPipe[2];
  int errPipe[2];
  if (pipe2(outPipe, O_CLOEXEC) != 0) return Error::fromErrno("pipe2");
  Fd outRead(outPipe[0]);
  Fd outWrite(outPipe[1]);
  if (pipe2(errPipe, O_CLOEXEC) != 0) return Error::fromErrno("pipe2");
  Fd errRead(errPipe[0]);
  Fd errWrite(errPipe[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, outWrite.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, errWrite.get(), STDERR_FILENO);

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);

  pid_t pid = -1;
  const int spawnError = posix_spawn(&pid, path->c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawnError != 0) return Error(spawnError, "cannot start " + *path);
  outWrite.reset();
  errWrite.reset();

  ProgramOutput output;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timedOut = false;
  std::array<pollfd, 2> fds = {pollfd{outRead.get(), POLLIN, 0}, pollfd{errRead.get(), POLLIN, 0}};
  std::array<std::string*, 2> sinks = {&output.out, &output.err};
  int open = 2;
  char buffer[4096];
  while (open > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timedOut = true;
      break;
    }
    const int ready = poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (ready < 0) {
      if (errno == EINTR) continue;
      const Error error = Error::fromErrno("poll on output of " + argv[0]);
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return error;
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        fds[i].fd = -1;  // EOF (or a read error): stop watching this pipe
        --open;
      }
    }
  }
  if (timedOut) kill(pid, SIGKILL);

  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return Error::fromErrno("waitpid for " + argv[0]);
  }
  if (timedOut) {
    return Error(ETIMEDOUT, commandLine(argv) + " did not finish within " + std::to_string(timeout.count()) +
                                " ms");
  }
  output.exitStatus = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return output;
}

Result<std::string> runChecked(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  auto result = runProgram(argv, timeout);
  if (!result) return result.error();
  if (result->exitStatus != 0) {
    std::string context = "'" + commandLine(argv) + "' failed (exit " + std::to_string(result->exitStatus) + ")";
    const std::string err = trimmed(result->err);
    if (!err.empty()) context += ": " + err;
    return Error(errnoFromStderr(result->err), context);
  }
  return std::move(result->out);
}

}  // namespace mpxdp::testbed
