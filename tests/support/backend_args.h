// The backend an integration test's `mpxdp send|recv|tun` runs on.
//
// The CLI's default is auto, which takes kernel UDP on veth (no AF_XDP
// zero-copy there). The integration tests were written for the AF_XDP data
// path and keep testing it: their helpers add `--backend xdp` unless the
// test names a backend itself. Tests of the default leave it to them.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

namespace mpxdp::test {

inline constexpr const char* kTestBackend = "xdp";

// args with `--backend kTestBackend` appended unless they name a backend.
inline std::vector<std::string> withTestBackend(std::vector<std::string> args) {
  const bool named = std::any_of(args.begin(), args.end(), [](const std::string& arg) {
    return arg == "--backend" || arg.rfind("--backend=", 0) == 0;
  });
  if (!named) {
    args.emplace_back("--backend");
    args.emplace_back(kTestBackend);
  }
  return args;
}

}  // namespace mpxdp::test
