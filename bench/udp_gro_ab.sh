#!/usr/bin/env bash
# A/B of the kernel-UDP backend's receive with and without UDP GRO,
# alternating in one run: 3 unshaped veth links, one 4 s transfer of
# 1400-byte payloads each, the sender with UDP GSO both times. Prints each
# run, then the medians of goodput and receiver CPU time and their ratios.
#   sudo bench/udp_gro_ab.sh [REPEATS] [MPXDP]
set -euo pipefail
repeats=${1:-3}
mpxdp=${2:-build/apps/mpxdp/mpxdp}
bed=groab-$$  # unique: other runs may have test beds of their own
out=$(mktemp -d)
: >"$out/runs.tsv"
receiver=
cleanup() {
  [ -n "$receiver" ] && kill "$receiver" 2>/dev/null || true
  "$mpxdp" testbed down --name "$bed" >/dev/null 2>&1 || true
  rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
"$mpxdp" testbed up --name "$bed" --links 3 >/dev/null
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((t = 1; t <= repeats; t++)); do
  for gro in on off; do
    flag=()
    [ "$gro" = off ] && flag=(--no-udp-gro)
    timeout 30 "$mpxdp" recv --testbed "$bed" -1 -J --backend udp "${flag[@]}" >"$out/r.json" 2>"$out/r.err" &
    receiver=$!
    sleep 1
    timeout 20 "$mpxdp" send --testbed "$bed" -t 4 -l 1400 -J --backend udp "${flag[@]}" >"$out/s.json" \
      2>"$out/s.err" || true
    wait "$receiver" || true
    receiver=
    python3 - "$gro" "$out" <<'EOF'
import json, sys
gro, out = sys.argv[1], sys.argv[2]
try:
    r = json.load(open(f"{out}/r.json"))
    s = json.load(open(f"{out}/s.json"))
except (OSError, ValueError) as e:
    print(f"gro={gro} failed: {e}: {open(f'{out}/s.err').read()[-300:]}")
    sys.exit(0)
rcpu = r['cpu_user_s'] + r['cpu_system_s']
print(f"gro={gro:3} goodput {r['goodput_bps'] / 1e9:.2f} Gbit/s lost {r['lost_packets']} "
      f"sender cpu {s['cpu_user_s'] + s['cpu_system_s']:.2f} s receiver cpu {rcpu:.2f} s "
      f"({r['cpu_user_s']:.2f} user, {r['cpu_system_s']:.2f} system) ({s['paths'][0]['mode']})")
with open(f"{out}/runs.tsv", "a") as f:
    f.write(f"{gro}\t{r['goodput_bps']}\t{rcpu}\t{r['lost_packets']}\n")
EOF
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$out/runs.tsv" <<'EOF'
import statistics, sys
runs = {"on": [], "off": []}
for line in open(sys.argv[1]):
    gro, goodput, cpu, lost = line.split("\t")
    runs[gro].append((float(goodput) / 1e9, float(cpu), int(lost)))
median = {}
for gro, rows in runs.items():
    if not rows:
        continue
    g = statistics.median(r[0] for r in rows)
    c = statistics.median(r[1] for r in rows)
    median[gro] = (g, c)
    print(f"gro={gro:3} median goodput {g:.2f} Gbit/s, median receiver CPU {c:.2f} s, "
          f"{c / g:.2f} CPU s per Gbit/s of goodput ({len(rows)} runs)")
if "on" in median and "off" in median:
    (gon, con), (goff, coff) = median["on"], median["off"]
    print(f"GRO on / off: goodput {gon / goff:.2f} x, receiver CPU {con / coff:.2f} x, "
          f"receiver CPU per goodput {(con / gon) / (coff / goff):.2f} x")
EOF
