// Test helper process: enters a network namespace, loads the steering
// program, attaches it to the given interfaces, says "ready" on stderr and
// waits to be killed. Lets tests check what happens when its owner dies.
#include <net/if.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "steering.h"
#include "testbed.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s NETNS IFACE...\n", argv[0]);
    return 2;
  }
  auto scope = mpxdp::testbed::NetnsScope::enter(argv[1]);
  if (!scope) {
    std::fprintf(stderr, "xdp_holder: %s\n", scope.error().message().c_str());
    return 1;
  }
  auto program = mpxdp::bpf::SteeringProgram::load({});
  if (!program) {
    std::fprintf(stderr, "xdp_holder: %s\n", program.error().message().c_str());
    return 1;
  }
  for (int i = 2; i < argc; ++i) {
    const int ifindex = static_cast<int>(if_nametoindex(argv[i]));
    if (ifindex == 0) {
      std::fprintf(stderr, "xdp_holder: no interface %s\n", argv[i]);
      return 1;
    }
    if (auto attached = (*program)->attach(ifindex); !attached) {
      std::fprintf(stderr, "xdp_holder: %s\n", attached.error().message().c_str());
      return 1;
    }
  }
  std::fprintf(stderr, "ready\n");
  for (;;) {
    pause();
  }
}
