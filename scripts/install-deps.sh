#!/usr/bin/env bash
# Installs everything mpxdp needs to build, test and benchmark on Debian 12.
# Safe to run again: apt-get skips what is already there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  clang llvm clang-format clang-tidy libclang-rt-dev
  libbpf-dev libxdp-dev xdp-tools bpftool libelf-dev zlib1g-dev linux-libc-dev
  libcli11-dev nlohmann-json3-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev libssl-dev
  libcpp-httplib-dev
  iproute2 ethtool iputils-ping iperf3 mptcpd mptcpize procps kmod
  tshark tcpdump
  python3 python3-matplotlib valgrind
  help2man
)

# As root directly; otherwise through sudo when there is one.
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  SUDO=()
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
  echo "install-deps: missing ${missing[*]}; installing needs root and sudo is not installed: run it as root" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
# tshark's package asks whether non-root users may capture; answer no up front.
echo "wireshark-common wireshark-common/install-setuid boolean false" | "${SUDO[@]}" debconf-set-selections
"${SUDO[@]}" apt-get update -qq
# Through env: sudo drops the caller's environment.
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
