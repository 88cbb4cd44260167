#!/usr/bin/env python3
"""A/B of two sets of mpxdp options, alternating in one run on one test bed.

Each repeat runs variant A, then B (then A, B, ...), one `mpxdp recv` and one
`mpxdp send` per run, and prints per variant the medians of goodput, loss,
and CPU time of the sender and the receiver: whole seconds and per delivered
packet (user space alone and user + system), so a change's effect on the
per-packet cost is visible beside its goodput. Run as root:

    sudo bench/ab.py --links 3 --repeats 5 --common "--key K" --a "--udp-checksum on" --b "--udp-checksum auto"

Options in --common go to both send and recv, --a and --b as well; --a-send and --b-send
to send only.
The test bed is removed at the end whatever happens.
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mpxdp", default=os.path.join(ROOT, "build", "apps", "mpxdp", "mpxdp"))
    p.add_argument("--links", type=int, default=3)
    p.add_argument("--rate", default="", help="shape every link (e.g. 300M); default unshaped")
    p.add_argument("--payload", type=int, default=1024)
    p.add_argument("--seconds", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--common", default="", help="options for both variants (send and recv)")
    p.add_argument("--a", default="", help="options of variant A")
    p.add_argument("--b", default="", help="options of variant B")
    p.add_argument("--a-send", default="", help="options of variant A for send only (e.g. -b, --scheduler)")
    p.add_argument("--b-send", default="", help="options of variant B for send only")
    p.add_argument("--name", default="ab{}".format(os.getpid() % 100000))
    return p.parse_args()


def run_once(args, variant, send_only):
    extra = shlex.split(args.common) + shlex.split(variant)
    recv = subprocess.Popen([args.mpxdp, "recv", "--testbed", args.name, "-1", "-J"] + extra,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # the receiver attaches its links; it says "ready" on stderr, read at the end
        if recv.poll() is not None:
            raise RuntimeError("recv exited at start: " + recv.stderr.read().strip()[-300:])
        send = subprocess.run([args.mpxdp, "send", "--testbed", args.name, "-J", "-t", str(args.seconds),
                               "-l", str(args.payload)] + extra + shlex.split(send_only),
                              capture_output=True, text=True, timeout=args.seconds + 30)
        out, err = recv.communicate(timeout=30)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
    if send.returncode != 0 or recv.returncode != 0:
        raise RuntimeError("send exit {} ({}), recv exit {} ({})".format(
            send.returncode, send.stderr.strip()[-300:], recv.returncode, err.strip()[-300:]))
    return json.loads(send.stdout), json.loads(out)


def figures(s, r):
    packets = max(r["delivered_packets"], 1)
    return {
        "goodput Gbit/s": r["goodput_bps"] / 1e9,
        "lost": r["lost_packets"],
        "send cpu s": s["cpu_user_s"] + s["cpu_system_s"],
        "recv cpu s": r["cpu_user_s"] + r["cpu_system_s"],
        "send user ns/pkt": s["cpu_user_s"] * 1e9 / packets,
        "send ns/pkt": (s["cpu_user_s"] + s["cpu_system_s"]) * 1e9 / packets,
        "recv user ns/pkt": r["cpu_user_s"] * 1e9 / packets,
        "recv ns/pkt": (r["cpu_user_s"] + r["cpu_system_s"]) * 1e9 / packets,
    }


def main():
    args = parse_args()
    up = [args.mpxdp, "testbed", "up", "--name", args.name, "--links", str(args.links)]
    if args.rate:
        up += ["--rate", args.rate]
    subprocess.run(up, check=True, stdout=subprocess.DEVNULL, timeout=120)
    runs = {"A": [], "B": []}
    modes = {}
    try:
        print("load average at start: {}".format(open("/proc/loadavg").read().split()[:3]))
        for repeat in range(args.repeats):
            for label, variant, send_only in (("A", args.a, args.a_send), ("B", args.b, args.b_send)):
                try:
                    s, r = run_once(args, variant, send_only)
                except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
                    print("{} repeat {}: failed: {}".format(label, repeat + 1, e))
                    continue
                f = figures(s, r)
                runs[label].append(f)
                modes[label] = s["paths"][0]["mode"]
                print("{} repeat {}: {}".format(label, repeat + 1,
                                                ", ".join("{} {:.2f}".format(k, v) for k, v in f.items())))
    finally:
        subprocess.run([args.mpxdp, "testbed", "down", "--name", args.name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
    if not runs["A"] or not runs["B"]:
        print("no comparison: a variant has no successful run")
        return 1
    print()
    print("| figure (median of {} / {} runs) | A: {} | B: {} | B / A |".format(
        len(runs["A"]), len(runs["B"]), " ".join([args.a, args.a_send]).strip() or "(none)",
        " ".join([args.b, args.b_send]).strip() or "(none)"))
    print("| --- | ---: | ---: | ---: |")
    for key in runs["A"][0]:
        a = statistics.median(f[key] for f in runs["A"])
        b = statistics.median(f[key] for f in runs["B"])
        ratio = "{:.2f}".format(b / a) if a else "-"
        print("| {} | {:.2f} | {:.2f} | {} |".format(key, a, b, ratio))
    print()
    print("link 0 of A: {}; of B: {}".format(modes.get("A"), modes.get("B")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
