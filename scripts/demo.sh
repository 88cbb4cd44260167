#!/usr/bin/env bash
# The main job on a local test bed: installs dependencies, builds mpxdp and
# runs `mpxdp demo` (3 shaped links, each reorderer and the kernel-UDP
# backend side by side). Needs root for namespaces, XDP and AF_XDP: run it
# as root, or as a user with sudo (it re-runs itself through sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
# Run as root; otherwise re-run through sudo when there is one.
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo -- bash "$(realpath "$0")" "$@"
  fi
  echo "demo.sh: needs root (network namespaces, XDP programs, AF_XDP sockets) and sudo is not installed; run it as root" >&2
  exit 1
fi
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target mpxdp
exec ./build/apps/mpxdp/mpxdp demo "$@"
