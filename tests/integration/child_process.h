// Child processes for integration tests: spawned with an argv vector, killed
// and reaped when the handle goes out of scope.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace mpxdp::test {

class ChildProcess {
 public:
  // Starts argv[0] with its stdout on a pipe.
  static std::optional<ChildProcess> spawn(const std::vector<std::string>& argv);
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ~ChildProcess();

  // Reads stdout until a full line arrives or the timeout passes.
  std::optional<std::string> readLine(std::chrono::milliseconds timeout);
  void kill(int signal);
  // Waits for exit; returns the wait status, or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }

 private:
  ChildProcess(pid_t pid, int stdoutFd) : pid_(pid), stdoutFd_(stdoutFd) {}
  pid_t pid_ = -1;
  int stdoutFd_ = -1;
  std::string buffered_;
};

}  // namespace mpxdp::test
