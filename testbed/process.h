// Runs the test bed's helper programs (ip, tc, ethtool) without a shell:
// argv vectors only, stdout and stderr captured, bounded run time.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "mpxdp/error.h"

namespace mpxdp::testbed {

struct ProgramOutput {
  int exitStatus = 0;  // exit code, or 128 + signal number when killed by a signal
  std::string out;
  std::string err;
};

// Full path of a program found in PATH or the usual sbin/bin directories.
// ENOENT names the Debian package to install when it is one of ours.
Result<std::string> findProgram(const std::string& program);

// Runs argv (argv[0] looked up with findProgram) and waits for it. Fails only
// when the program cannot be started or exceeds the timeout (ETIMEDOUT, it is
// killed); a non-zero exit is reported in ProgramOutput::exitStatus.
Result<ProgramOutput> runProgram(const std::vector<std::string>& argv,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(20));

// Like runProgram, but a non-zero exit is an error whose context holds the
// command line and its stderr. Returns stdout.
Result<std::string> runChecked(const std::vector<std::string>& argv,
                               std::chrono::milliseconds timeout = std::chrono::seconds(20));

// "ip -n x link add ..." for messages.
std::string commandLine(const std::vector<std::string>& argv);

}  // namespace mpxdp::testbed
