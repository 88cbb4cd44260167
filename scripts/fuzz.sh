#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan in
# build-fuzz and runs each one, from its seeds (made by fuzz_seeds with the
# project's encoders) and its regression inputs (tests/fuzz/corpus/TARGET).
#
#   scripts/fuzz.sh [--runs N | --seconds S] [TARGET...]
#
# Default: every target for 60 s. The corpus is built afresh in
# build-fuzz/fuzz/corpus/TARGET on every run; findings (crashes, broken
# oracles, leaks, timeouts) land in build-fuzz/fuzz/findings/TARGET and make
# the script exit nonzero. Build parallelism: MPXDP_JOBS (default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: scripts/fuzz.sh [--runs N | --seconds S] [TARGET...]" >&2
  exit 2
}

runs=""
seconds=""
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) [ $# -ge 2 ] || usage; runs=$2; shift 2 ;;
    --seconds) [ $# -ge 2 ] || usage; seconds=$2; shift 2 ;;
    -h | --help) usage ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; usage ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ -n "$runs" ] && [ -n "$seconds" ]; then
  echo "fuzz.sh: give --runs or --seconds, not both" >&2
  usage
fi
for n in "$runs" "$seconds"; do
  if [ -n "$n" ] && ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz.sh: '$n' is not a positive number" >&2
    exit 2
  fi
done
if [ -z "$runs" ] && [ -z "$seconds" ]; then
  seconds=60
fi
jobs=${MPXDP_JOBS:-$(nproc)}
build="build-fuzz"
work=$build/fuzz

# Only what the fuzz targets need: no benchmarks; the targets are built by name.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DMPXDP_FUZZ=ON -DMPXDP_BUILD_BENCH=OFF >/dev/null
mapfile -t known < "$build/tests/fuzz/fuzz_targets.txt"
if [ ${#targets[@]} -eq 0 ]; then
  targets=("${known[@]}")
fi
for t in "${targets[@]}"; do
  if ! printf '%s\n' "${known[@]}" | grep -qx -- "$t"; then
    echo "fuzz.sh: no fuzz target '$t' (known: ${known[*]})" >&2
    exit 2
  fi
done
cmake --build "$build" -j "$jobs" --target fuzz_seeds "${targets[@]}"

if [ -n "$runs" ]; then
  limit=(-runs="$runs")
else
  limit=(-max_total_time="$seconds")
fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

failed=0
for t in "${targets[@]}"; do
  corpus=$work/corpus/$t
  findings=$work/findings/$t
  log=$work/$t.log
  rm -rf "$corpus"
  mkdir -p "$corpus" "$findings"
  "$build/tests/fuzz/fuzz_seeds" "$work/corpus" "$t" >/dev/null
  if [ -d "tests/fuzz/corpus/$t" ]; then
    cp tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  fi
  # -max_len: room for a jumbo-ish frame and long reorderer programs (libFuzzer
  # would otherwise cap inputs near the largest seed).
  rc=0
  "$build/tests/fuzz/$t" "${limit[@]}" -max_len=4096 -timeout=30 -print_final_stats=1 \
    -artifact_prefix="$findings/" "$corpus" >"$log" 2>&1 || rc=$?
  done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 || true)
  if [ "$rc" -ne 0 ] || [ -z "$done_line" ]; then
    echo "fuzz: $t: FINDING (exit $rc); log $log, input(s) in $findings/:" >&2
    ls -1 "$findings" >&2 || true
    grep -E -m1 -A20 'fuzz oracle failed|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|deadly signal' \
      "$log" >&2 || tail -20 "$log" >&2
    echo "fuzz: reproduce with: $build/tests/fuzz/$t $findings/<input>; keep the input as a" \
      "regression seed in tests/fuzz/corpus/$t/" >&2
    failed=1
    continue
  fi
  n=$(echo "$done_line" | awk '{print $2}')
  s=$(echo "$done_line" | awk '{print $5}')
  echo "fuzz: $t: $n runs in $s s, no finding"
done
exit $failed
