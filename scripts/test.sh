#!/usr/bin/env bash
# The one command that runs every test: installs dependencies, builds, runs
# the library, its install tree and the examples against it, runs
# unit + privileged tests, repeats them all under ASan/UBSan, fuzzes each
# fuzz target briefly, checks clang-format and clang-tidy, and builds the
# microbenchmarks.
# Privileged tests need root: run it as root, or as a user with sudo (it
# re-runs itself through sudo). Under CI=true a skipped privileged test fails.
set -euo pipefail
# Run as root; otherwise re-run through sudo when there is one.
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo -- env "CI=${CI:-}" "MPXDP_JOBS=${MPXDP_JOBS:-}" bash "$(realpath "$0")" "$@"
  fi
  echo "test.sh: needs root (the privileged tests build network namespaces, XDP programs, AF_XDP sockets) and sudo is not installed; run it as root" >&2
  exit 1
fi
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=${MPXDP_JOBS:-$(nproc)}

step() { printf '\n=== %s\n' "$*"; }

step "dependencies"
bash scripts/install-deps.sh

namespaces_before=$(ip netns list 2>/dev/null | awk '{print $1}' | sort || true)
check_leftovers() {
  local now leaked
  now=$(ip netns list 2>/dev/null | awk '{print $1}' | sort || true)
  leaked=$(comm -13 <(echo "$namespaces_before") <(echo "$now") | grep '^mpxdp-' || true)
  if [ -n "$leaked" ]; then
    echo "test.sh: tests left network namespaces behind: $leaked" >&2
    for ns in $leaked; do ip netns del "$ns" 2>/dev/null || true; done
    return 1
  fi
  if ip -o link show 2>/dev/null | grep -q ' xdp'; then
    echo "test.sh: an XDP program is left attached in the root namespace" >&2
    return 1
  fi
  return 0
}
trap 'check_leftovers || true' EXIT

step "build (RelWithDebInfo)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"

step "install + examples against the installed tree"
prefix=$root/build/install-test
rm -rf "$prefix" build/examples
cmake --install build --prefix "$prefix" >/dev/null
# Every installed header compiles alone with nothing but the installed tree.
for header in "$prefix"/include/mpxdp/*.h; do
  name=mpxdp/$(basename "$header")
  if ! echo "#include <$name>" | g++ -std=c++20 -fsyntax-only -I "$prefix/include" -x c++ -; then
    echo "test.sh: installed header <$name> is not self-contained" >&2
    exit 1
  fi
done
# find_package(mpxdp) ...
cmake -S examples -B build/examples -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build build/examples -j "$jobs"
build/examples/loopback_udp 20 47100 47101
build/examples/loopback_udp_static 20 47100 47101
# ... and the pkg-config line from examples/README.md.
pkgconfig_dir=$(dirname "$(find "$prefix" -name mpxdp.pc)")
pc() { PKG_CONFIG_PATH="$pkgconfig_dir" pkg-config "$@"; }
# shellcheck disable=SC2046  # the flags are meant to split
g++ -std=c++20 examples/loopback_udp.cpp -o build/examples/loopback_udp_pc $(pc --cflags --libs mpxdp) \
  -Wl,-rpath,"$(pc --variable=libdir mpxdp)"
build/examples/loopback_udp_pc 20 47102 47103

step "Debian package (cpack), unpacked into a fresh tree"
rm -f build/mpxdp_*.deb
(cd build && cpack -G DEB >/dev/null)
deb=$(ls build/mpxdp_*.deb)
tree=$root/build/package-root
rm -rf "$tree"
dpkg-deb -x "$deb" "$tree"
echo "$(basename "$deb"): Depends: $(dpkg-deb -f "$deb" Depends)"
for f in usr/bin/mpxdp usr/lib/libmpxdp.so usr/include/mpxdp/mpxdp.h usr/lib/cmake/mpxdp/mpxdpConfig.cmake \
  usr/lib/pkgconfig/mpxdp.pc usr/share/man/man1/mpxdp.1 usr/share/doc/mpxdp/examples/mpxdp-tun@.service; do
  [ -e "$tree/$f" ] || { echo "test.sh: the package has no /$f" >&2; exit 1; }
done
"$tree/usr/bin/mpxdp" --version | grep -qx "mpxdp $(sed -n 's/^project(mpxdp VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)"
# A man page for every subcommand the program lists, made from its help text.
subcommands=$("$tree/usr/bin/mpxdp" --help | awk '/^Subcommands:/ { on = 1; next } on && NF { print $1 }' | grep -vx help)
for sub in $subcommands; do
  page=$tree/usr/share/man/man1/mpxdp-$sub.1
  if ! grep -q "^\.TH MPXDP-$(echo "$sub" | tr a-z A-Z) " "$page" 2>/dev/null; then
    echo "test.sh: the package has no man page for 'mpxdp $sub' ($page)" >&2
    exit 1
  fi
done
# The packaged library, headers and pkg-config file build and run the example.
pkg_pc() { PKG_CONFIG_PATH="$tree/usr/lib/pkgconfig" pkg-config "$@"; }
# shellcheck disable=SC2046  # the flags are meant to split
g++ -std=c++20 examples/loopback_udp.cpp -o build/examples/loopback_udp_deb $(pkg_pc --cflags --libs mpxdp) \
  -Wl,-rpath,"$(pkg_pc --variable=libdir mpxdp)"
build/examples/loopback_udp_deb 20 47104 47105

step "tests"
ctest --test-dir build --output-on-failure --timeout 300 -j 1

step "no leftovers"
check_leftovers

step "build with ASan + UBSan"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMPXDP_SANITIZE=ON -DMPXDP_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j "$jobs"

step "tests under ASan + UBSan"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-asan --output-on-failure --timeout 300 -L unit -j "$jobs"
# Privileged tests one at a time: they build test beds and move real traffic.
ctest --test-dir build-asan --output-on-failure --timeout 300 -L privileged -j 1
unset ASAN_OPTIONS UBSAN_OPTIONS
check_leftovers

step "fuzz (short)"
# Every libFuzzer target for 20 s (clang, ASan + UBSan, build-fuzz).
MPXDP_JOBS="$jobs" bash scripts/fuzz.sh --seconds 20

step "clang-format"
git ls-files '*.cpp' '*.h' '*.c' | grep -v -E '\.bpf\.c$|mpxdp_shared\.h$' | xargs clang-format --dry-run -Werror

step "clang-tidy"
if ! git ls-files 'src/*.cpp' 'apps/*.cpp' 'testbed/*.cpp' 'tests/*.cpp' |
    xargs -P "$jobs" -n 4 clang-tidy -p build --quiet >build/clang-tidy.log 2>&1; then
  grep -E -A3 '(warning|error):' build/clang-tidy.log | head -100
  echo "clang-tidy found problems (full log: build/clang-tidy.log)" >&2
  exit 1
fi
echo "clang-tidy clean"

step "done"
echo "all checks passed"
