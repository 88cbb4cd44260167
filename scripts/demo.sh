#!/usr/bin/env bash
# The main job on a local test bed: installs dependencies, builds mpxdp and
# runs `mpxdp demo` (3 shaped links, each reorderer and the kernel-UDP
# backend side by side). Needs root for namespaces, XDP and AF_XDP.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "demo.sh: needs root (network namespaces, XDP programs, AF_XDP sockets); run it with sudo" >&2
  exit 1
fi
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target mpxdp
exec ./build/apps/mpxdp/mpxdp demo "$@"
