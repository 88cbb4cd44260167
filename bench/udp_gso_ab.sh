#!/usr/bin/env bash
# A/B of the kernel-UDP backend with and without UDP GSO, alternating in one
# run: 3 unshaped veth links, one 4 s transfer of 1400-byte payloads each.
#   sudo bench/udp_gso_ab.sh [REPEATS] [MPXDP]
set -euo pipefail
repeats=${1:-3}
mpxdp=${2:-build/apps/mpxdp/mpxdp}
bed=gsoab
"$mpxdp" testbed up --name "$bed" --links 3 >/dev/null
out=$(mktemp -d)
trap '"$mpxdp" testbed down --name "$bed" >/dev/null 2>&1 || true; rm -rf "$out"' EXIT
for ((t = 1; t <= repeats; t++)); do
  for gso in on off; do
    flag=()
    [ "$gso" = off ] && flag=(--no-udp-gso)
    timeout 30 "$mpxdp" recv --testbed "$bed" -1 -J --backend udp "${flag[@]}" >"$out/r.json" 2>"$out/r.err" &
    receiver=$!
    sleep 1
    timeout 20 "$mpxdp" send --testbed "$bed" -t 4 -l 1400 -J --backend udp "${flag[@]}" >"$out/s.json" 2>"$out/s.err" || true
    wait "$receiver" || true
    python3 - "$gso" "$out" <<'EOF'
import json, sys
gso, out = sys.argv[1], sys.argv[2]
try:
    r = json.load(open(f"{out}/r.json"))
    s = json.load(open(f"{out}/s.json"))
except (OSError, ValueError) as e:
    print(f"gso={gso} failed: {e}: {open(f'{out}/s.err').read()[-300:]}")
    sys.exit(0)
print(f"gso={gso:3} goodput {r['goodput_bps'] / 1e9:.2f} Gbit/s lost {r['lost_packets']} "
      f"sender cpu {s['cpu_user_s'] + s['cpu_system_s']:.2f} s receiver cpu {r['cpu_user_s'] + r['cpu_system_s']:.2f} s "
      f"({s['paths'][0]['mode']})")
EOF
  done
done
