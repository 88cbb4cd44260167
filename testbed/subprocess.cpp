#include "subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

extern char** environ;

namespace mpxdp::testbed {
namespace {

// Keeps memory bounded when a child is chatty: only the tail of stderr stays.
constexpr std::size_t kMaxStderr = 1 << 20;

}  // namespace

Result<Subprocess> Subprocess::spawn(const std::vector<std::string>& argv) {
  if (argv.empty()) return Error(EINVAL, "spawn: empty command");
  int outPipe[2];
  int errPipe[2];
  if (pipe2(outPipe, O_CLOEXEC) != 0) return Error::fromErrno("spawn: pipe");
  if (pipe2(errPipe, O_CLOEXEC) != 0) {
    const Error error = Error::fromErrno("spawn: pipe");
    close(outPipe[0]);
    close(outPipe[1]);
    return error;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, outPipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, errPipe[1], STDERR_FILENO);
  // The child starts with default SIGINT/SIGTERM handling and nothing blocked.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &actions, &attributes, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  close(outPipe[1]);
  close(errPipe[1]);
  if (rc != 0) {
    close(outPipe[0]);
    close(errPipe[0]);
    return Error(rc, "spawn " + argv[0]);
  }
  return Subprocess(pid, outPipe[0], errPipe[0]);
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(other.pid_),
      outFd_(other.outFd_),
      errFd_(other.errFd_),
      status_(other.status_),
      out_(std::move(other.out_)),
      err_(std::move(other.err_)) {
  other.pid_ = -1;
  other.outFd_ = -1;
  other.errFd_ = -1;
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !status_) {
    kill(pid_, SIGKILL);
    reap(true);
  }
  if (outFd_ >= 0) close(outFd_);
  if (errFd_ >= 0) close(errFd_);
}

void Subprocess::pump(std::chrono::milliseconds timeout) {
  pollfd fds[2] = {{outFd_, POLLIN, 0}, {errFd_, POLLIN, 0}};
  if (outFd_ < 0 && errFd_ < 0) return;
  if (poll(fds, 2, static_cast<int>(timeout.count())) <= 0) return;
  char chunk[4096];
  for (int i = 0; i < 2; ++i) {
    if (fds[i].fd < 0 || fds[i].revents == 0) continue;
    const ssize_t n = read(fds[i].fd, chunk, sizeof(chunk));
    std::string& buffer = i == 0 ? out_ : err_;
    int& fd = i == 0 ? outFd_ : errFd_;
    if (n > 0) {
      buffer.append(chunk, static_cast<std::size_t>(n));
      if (i == 1 && err_.size() > kMaxStderr) err_.erase(0, err_.size() - kMaxStderr / 2);
    } else if (n == 0 || errno != EINTR) {
      close(fd);
      fd = -1;
    }
  }
}

bool Subprocess::reap(bool block) {
  if (status_) return true;
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t done;
  do {
    done = waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (done < 0 && errno == EINTR);
  if (done != pid_) return false;
  status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

bool Subprocess::waitForStderr(std::string_view text, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (err_.find(text) != std::string::npos) return true;
    if (errFd_ < 0) return false;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pump(std::min(left, std::chrono::milliseconds(100)));
  }
}

std::optional<int> Subprocess::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // Drain the pipes first so a child blocked on a full pipe can finish.
    if (outFd_ >= 0 || errFd_ >= 0) {
      pump(std::chrono::milliseconds(20));
    } else {
      usleep(10'000);
    }
    if (reap(false)) {
      // Collect what is left; bounded in case something else holds the pipes.
      const auto drainUntil = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while ((outFd_ >= 0 || errFd_ >= 0) && std::chrono::steady_clock::now() < drainUntil) {
        pump(std::chrono::milliseconds(100));
      }
      return status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
  }
}

void Subprocess::signal(int signal) const {
  if (pid_ > 0 && !status_) kill(pid_, signal);
}

int Subprocess::stop(std::chrono::milliseconds grace) {
  signal(SIGTERM);
  if (auto status = wait(grace)) return *status;
  signal(SIGKILL);
  reap(true);
  return *status_;
}

}  // namespace mpxdp::testbed
