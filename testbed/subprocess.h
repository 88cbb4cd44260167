// A long-running child process with stdout and stderr on pipes (for `mpxdp
// demo` and the integration tests): wait for a line on stderr, collect stdout, bounded waits.
// Killed (SIGKILL) and reaped when the handle goes out of scope.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mpxdp/error.h"

namespace mpxdp::testbed {

class Subprocess {
 public:
  // Starts argv[0] (a path) with stdin from /dev/null.
  static Result<Subprocess> spawn(const std::vector<std::string>& argv);
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&&) = delete;
  ~Subprocess();

  // Reads both pipes until stderr holds a line containing `text`, the child
  // closes stderr, or the timeout passes. True when the line arrived.
  bool waitForStderr(std::string_view text, std::chrono::milliseconds timeout);
  // Reads both pipes until the child exits; returns its exit status (128 +
  // signal when killed), nullopt on timeout (the child keeps running).
  std::optional<int> wait(std::chrono::milliseconds timeout);
  void signal(int signal) const;
  // Sends SIGTERM, waits up to grace, then SIGKILL. Returns the exit status.
  int stop(std::chrono::milliseconds grace);

  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }
  pid_t pid() const { return pid_; }

 private:
  Subprocess(pid_t pid, int outFd, int errFd) : pid_(pid), outFd_(outFd), errFd_(errFd) {}
  // Reads what the pipes hold, waiting at most timeout for the first byte.
  void pump(std::chrono::milliseconds timeout);
  bool reap(bool block);

  pid_t pid_ = -1;
  int outFd_ = -1;
  int errFd_ = -1;
  std::optional<int> status_;
  std::string out_;
  std::string err_;
};

}  // namespace mpxdp::testbed
