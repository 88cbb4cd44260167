#!/usr/bin/python3
"""Unmodified TCP applications through `mpxdp tun` (issue 10), side by side with MPTCP and single-link TCP, on
the local test bed. Run as root:

    python3 bench/e2e/tunnel.py [--scenarios a,b] [--systems a,b] [--repeats N] [--duration S]

Every run is one iperf3 TCP test (1 stream, or 4 with -P 4) from the sender namespace to the receiver namespace:
through a pair of `mpxdp tun` ends (10.99.0.1 -> 10.99.0.2, one per namespace, all links of the test bed), through
MPTCP (mptcpize, one subflow per link) or over link 0 alone. `failover` cuts link 1 (`mpxdp testbed set --down`)
at a third of the run and restores it at two thirds; the longest stall comes from the server's 0.1 s intervals.
Figures: goodput (iperf3 server sum_received), % of the header ceiling, machine CPU per GB (/proc/stat busy time
over the transfer), retransmissions, the receiver's out-of-order queue counters and the tun ends' JSON counters.
The report (results/<time>-tunnel/report.md, also printed) is a section ready for BENCHMARKS.md.
"""
import atexit
import datetime
import json
import os
import shlex
import sys
import time

sys.dont_write_bytecode = True  # keep bench/e2e/ free of __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import driver  # noqa: E402  (the scenario loop)
import filexfer  # noqa: E402  (TCP transfers with CPU and link counters, clean-up, report helpers)
import metrics  # noqa: E402
import pathctl  # noqa: E402  (PathTestbed, link changes while traffic flows, receiver intervals)
import procs  # noqa: E402
import systems as systems_mod  # noqa: E402
import testbeds  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
M = 1_000_000
G = 1_000_000_000
TUN_NAME = "mpx0"
TUN_ADDRESSES = ("10.99.0.1", "10.99.0.2")  # sender end, receiver end
TUN_PREFIX = 24
# Inner TCP headers per segment: IPv4 20 + TCP 20 + timestamps 12, so inner MSS = tun MTU - 52.
INNER_TCP_HEADERS = 52
# What the shaper counts on top of the tun MTU: Ethernet 14 + IPv4 20 + UDP 8 + mpxdp 40 (docs/wire-format.md).
TUN_FRAME_OVERHEAD = metrics.UDP_OVERHEAD + metrics.MPXDP_HEADER_V2
TUN_STOP_GRACE_S = 5.0   # SIGTERM to exit: the tun ends close the connection and print their report
REACH_TIMEOUT_S = 15.0   # the two ends find each other (ping through the tunnel answers)
CUT_AT, RESTORE_AT = 1.0 / 3.0, 2.0 / 3.0
STALL_GOAL_S = 1.0
LOW_FRACTION = 0.1       # "low" goodput in the failover table: under a tenth of the goodput before the cut
CEILING_GOAL_PCT = 90.0
MPTCP_GOAL_MODERATE = 0.95
# Seconds a run takes beyond --duration (measured on the 2-core VM): iperf3 start and report; tun ends start,
# connect and stop on top.
OVERHEAD_S = {"tun": 1.5, "mptcp": 0.8, "tcp": 0.5}
SCENARIO_SETUP_S = 3.0

ALL = ("tun", "mptcp", "tcp")
SCENARIOS = [
    {"name": "moderate", "bed": "tun-mod", "rates": [300 * M] * 3, "tun_rates": True, "runners": ALL,
     "describe": "3 x 300 Mbit/s, the tun ends told the rates (@RATE on every link)"},
    {"name": "hetero", "bed": "tun-het", "rates": [100 * M, 300 * M, 600 * M], "tun_rates": True, "runners": ALL,
     "describe": "100 + 300 + 600 Mbit/s, rates told (@RATE)"},
    {"name": "hetero-auto", "bed": "tun-heta", "rates": [100 * M, 300 * M, 600 * M], "tun_rates": False,
     "runners": ("tun",), "mptcp_from": "hetero",
     "describe": "100 + 300 + 600 Mbit/s, rates estimated (no @RATE); MPTCP and TCP as in `hetero` (same links)"},
    {"name": "paper", "bed": "tun-pap", "rates": [G] * 3, "tun_rates": True, "runners": ALL,
     "describe": "3 x 1 Gbit/s, rates told (@RATE)"},
    {"name": "failover", "bed": "tun-fail", "rates": [300 * M] * 3, "tun_rates": True, "runners": ("tun", "mptcp"),
     "events": [(CUT_AT, 1, ["--down"]), (RESTORE_AT, 1, ["--up"])], "reset": [(1, ["--up"])],
     "describe": "3 x 300 Mbit/s, rates told; link 1 cut (`testbed set --down`) at 1/3 of the run, restored at "
                 "2/3; iperf3 -i 0.1"},
]


class TunSystem:
    """runner: 'tun', 'mptcp' or 'tcp' (link 0 only); streams: iperf3 -P; extra: more `mpxdp tun` flags;
    default: in the set run without --systems."""

    def __init__(self, name, label, runner, streams, default=True, extra=()):
        self.name = name
        self.label = label
        self.runner = runner
        self.streams = streams
        self.default = default
        self.extra = list(extra)


SYSTEMS = [
    TunSystem("tun-1", "iperf3 TCP through `mpxdp tun` (AF_XDP, offloads on), 1 stream", "tun", 1),
    TunSystem("tun-4", "iperf3 TCP through `mpxdp tun` (AF_XDP, offloads on), -P 4", "tun", 4),
    TunSystem("mptcp-1", "iperf3 TCP via mptcpize, one subflow per link, 1 stream", "mptcp", 1),
    TunSystem("mptcp-4", "iperf3 TCP via mptcpize, one subflow per link, -P 4", "mptcp", 4),
    TunSystem("tcp-1", "iperf3 TCP on link 0 alone, 1 stream", "tcp", 1),
    TunSystem("tcp-4", "iperf3 TCP on link 0 alone, -P 4", "tcp", 4),
    TunSystem("tun-nooff-1", "as tun-1 with `mpxdp tun --no-offload`", "tun", 1, default=False,
              extra=["--no-offload"]),
    TunSystem("tun-nooff-4", "as tun-4 with `mpxdp tun --no-offload`", "tun", 4, default=False,
              extra=["--no-offload"]),
    TunSystem("tun-t2-1", "as tun-1 with `mpxdp tun --threads 2` (a transmit thread) at both ends", "tun", 1,
              default=False, extra=["--threads", "2"]),
    TunSystem("tun-t2-4", "as tun-4 with `mpxdp tun --threads 2` at both ends", "tun", 4, default=False,
              extra=["--threads", "2"]),
    TunSystem("tun-q2-1", "as tun-1 with `mpxdp tun --queues 2` (a reader thread per TUN queue) at both ends",
              "tun", 1, default=False, extra=["--queues", "2"]),
    TunSystem("tun-q2-4", "as tun-4 with `mpxdp tun --queues 2` at both ends", "tun", 4, default=False,
              extra=["--queues", "2"]),
    TunSystem("tun-q2t2-4", "as tun-4 with `mpxdp tun --queues 2 --threads 2` at both ends", "tun", 4,
              default=False, extra=["--queues", "2", "--threads", "2"]),
    TunSystem("tun-udp-1", "as tun-1 with `mpxdp tun --backend udp` (kernel UDP, GSO and GRO) at both ends", "tun",
              1, default=False, extra=["--backend", "udp"]),
    TunSystem("tun-udp-4", "as tun-4 with `mpxdp tun --backend udp` at both ends", "tun", 4, default=False,
              extra=["--backend", "udp"]),
    TunSystem("tun-rel-1", "as tun-1 with `mpxdp tun --reliable` (retransmission across paths)", "tun", 1,
              default=False, extra=["--reliable"]),
]


def runs_in(system, scenario):
    return system.runner in scenario["runners"]


# ---------------------------------------------------------------------------------------------- helpers


def netstat_counters(bed, ns):
    """Every counter of the namespace's /proc/net/netstat under nstat's names ("TcpExtTCPOFOQueue")."""
    lines = procs.run(bed.netns(ns, "cat", "/proc/net/netstat"), timeout=10).stdout.splitlines()
    out = {}
    for head, values in zip(lines[::2], lines[1::2]):
        names, numbers = head.split(), values.split()
        for name, number in zip(names[1:], numbers[1:]):
            out[names[0].rstrip(":") + name] = int(number)
    return out


def tun_fraction(mtu):
    """Inner TCP payload per byte the shaper counts: (tun MTU - 52) / (tun MTU + 82)."""
    return (mtu - INNER_TCP_HEADERS) / (mtu + TUN_FRAME_OVERHEAD)


def tun_argv(cli_path, bed, side, with_rates, extra):
    """One end of the tunnel: side 0 in the sender namespace (links s<i> to r<i>'s address), 1 in the receiver's."""
    links = []
    for i in range(bed.links):
        iface, peer = ("s{}".format(i), bed.receiver_ip(i)) if side == 0 else ("r{}".format(i), bed.sender_ip(i))
        rate = "@{}".format(bed.rates_bps[i]) if with_rates and bed.rates_bps[i] else ""
        links += ["--link", "{}={}{}".format(iface, peer, rate)]
    backend = [] if "--backend" in extra else ["--backend", "xdp"]  # a system may name another
    return bed.netns(bed.tx if side == 0 else bed.rx, cli_path, "tun", "--name", TUN_NAME, "--address",
                     "{}/{}".format(TUN_ADDRESSES[side], TUN_PREFIX), *links, *backend, "-J", *extra)


def _reachable(bed, ends, timeout=REACH_TIMEOUT_S):
    """True once a ping from the sender end reaches the receiver end through the tunnel."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in ends):
            return False
        ping = procs.run(bed.netns(bed.tx, "ping", "-c", "1", "-W", "0.2", "-q", TUN_ADDRESSES[1]),
                         timeout=5,
                         check=False)
        if ping.returncode == 0:
            return True
    return False


def _tun_mtu(bed):
    shown = procs.run(["ip", "-n", bed.rx, "-j", "link", "show", "dev", TUN_NAME], timeout=10, check=False)
    try:
        return json.loads(shown.stdout)[0]["mtu"]
    except (ValueError, IndexError, KeyError):
        return None


def _iperf3(result, bed, sc, ctx, tag, target, streams, mptcp):
    """One iperf3 TCP test to `target` with the receiver's out-of-order counters around it; fills the figures."""
    port = systems_mod.IPERF_PORT
    wrap = ["mptcpize", "run"] if mptcp else []
    interval = ["-i", pathctl.IPERF_INTERVAL_S] if sc.get("events") else []
    server_argv = bed.netns(bed.rx, *wrap, "iperf3", "-s", "-1", "-J", "-p", port, *interval)
    client_argv = bed.netns(bed.tx, *wrap, "iperf3", "-c", target, "-p", port, "-t", pathctl._num(ctx["duration"]),
                            "-J", "-P", streams, *interval)
    result["commands"] += [" ".join(map(str, server_argv)), " ".join(map(str, client_argv))]
    before = netstat_counters(bed, bed.rx)
    got = filexfer._tcp_transfer(result, bed, sc, ctx, tag, mptcp,
                                 lambda: procs.Proc(server_argv, *filexfer._files(ctx["run_dir"], tag, "server")),
                                 lambda p: systems_mod._wait_listening(bed, p, port), client_argv,
                                 ("client", "server", "client"))
    if isinstance(got, dict):
        return got
    after = netstat_counters(bed, bed.rx)
    server, client = got
    result["server_report"] = json.loads(server.stdout())
    result["client_report"] = json.loads(client.stdout())
    failed = result["server_report"].get("error") or result["client_report"].get("error")
    if failed:
        return filexfer._fail(result, "iperf3: {}".format(failed))
    received = result["server_report"]["end"]["sum_received"]
    result["received_bytes"] = received["bytes"]
    result["seconds"] = received["seconds"]
    result["goodput_bps"] = 8.0 * received["bytes"] / received["seconds"] if received["seconds"] else None
    result["retransmits"] = result["client_report"]["end"].get("sum_sent", {}).get("retransmits")
    result["tcp_ofo_queue"] = after.get("TcpExtTCPOFOQueue", 0) - before.get("TcpExtTCPOFOQueue", 0)
    if "MPTcpExtOFOQueue" in after:  # MPTCP's own (data-level) out-of-order queue
        result["mptcp_ofo_queue"] = after["MPTcpExtOFOQueue"] - before.get("MPTcpExtOFOQueue", 0)
    filexfer._cpu_per_gb(result, received["bytes"])
    result["ok"] = True
    return result


# ---------------------------------------------------------------------------------------------- runners


def run_tun(system, sc, bed, ctx, tag, result):
    ends = []
    try:
        for side, role in ((1, "tun-rx"), (0, "tun-tx")):
            argv = tun_argv(ctx["cli"].path, bed, side, sc["tun_rates"], system.extra)
            result["commands"].append(" ".join(map(str, argv)))
            ends.append(procs.Proc(argv, *filexfer._files(ctx["run_dir"], tag, role)))
        for end in ends:
            if not end.wait_for_stderr("mpxdp tun: ready", systems_mod.START_TIMEOUT_S):
                return filexfer._fail(result, "tun end not ready within {} s (exit {})".format(
                    systems_mod.START_TIMEOUT_S, end.poll()), *ends)
        t0 = time.monotonic()
        if not _reachable(bed, ends):
            return filexfer._fail(result, "no ping through the tunnel within {} s (exits {})".format(
                REACH_TIMEOUT_S, [e.poll() for e in ends]), *ends)
        result["reach_s"] = time.monotonic() - t0
        result["tun_mtu"] = _tun_mtu(bed)
        _iperf3(result, bed, sc, ctx, tag, TUN_ADDRESSES[1], system.streams, mptcp=False)
    finally:
        for end in ends:
            end.kill(grace=TUN_STOP_GRACE_S)
        _tun_reports(result, ends)
    mtu = result.get("tun_mtu") or (result.get("tun_reports") or [{}])[0].get("mtu")
    if mtu:
        result["ceiling_bps"] = bed.link_sum_bps * tun_fraction(mtu)
    return result


def _tun_reports(result, ends):
    """The ends' final JSON objects and exit codes (receiver end first); a missing report or a non-zero exit is
    noted, not fatal: the traffic figures stand."""
    reports, problems = [], []
    for end, side in zip(ends, ("receiver", "sender")):
        try:
            reports.append(json.loads(end.stdout()))
        except ValueError:
            reports.append({})
            problems.append("{} end printed no JSON report".format(side))
        if reports[-1].get("error"):
            problems.append("{} end: {}".format(side, reports[-1]["error"]))
        if end.returncode != 0:
            problems.append("{} end exited {}".format(side, end.returncode))
    result["tun_reports"] = reports
    result["tun_exit"] = [e.returncode for e in ends]
    result["tun_cpu_s"] = [e.cpu_seconds() for e in ends]
    if problems:
        result["tun_problems"] = problems
        result.setdefault("stderr_tails", {}).update(
            {os.path.basename(e.err_path): e.stderr_tail() for e in ends})


def run_mptcp(system, sc, bed, ctx, tag, result):
    _iperf3(result, bed, sc, ctx, tag, bed.receiver_ip(0), system.streams, mptcp=True)
    result["ceiling_bps"] = bed.link_sum_bps * metrics.ceiling_fraction("tcp", metrics.TCP_MSS)
    return result


def run_tcp(system, sc, bed, ctx, tag, result):
    _iperf3(result, bed, sc, ctx, tag, bed.receiver_ip(0), system.streams, mptcp=False)
    result["ceiling_bps"] = bed.rates_bps[0] * metrics.ceiling_fraction("tcp", metrics.TCP_MSS)
    return result


RUNNERS = {"tun": run_tun, "mptcp": run_mptcp, "tcp": run_tcp}


# ---------------------------------------------------------------------------------------------- analysis


def _longest_spell(ivs, matches):
    """Longest time covered by consecutive intervals that match."""
    spell = longest = 0.0
    for iv in ivs:
        spell = spell + (iv["end"] - iv["start"]) if matches(iv) else 0.0
        longest = max(longest, spell)
    return longest


def analyse(result, bed):
    """% of the ceiling; for a run with link changes the longest stall and the goodput around the cut."""
    if result.get("goodput_bps") and result.get("ceiling_bps"):
        result["pct_of_ceiling"] = 100.0 * result["goodput_bps"] / result["ceiling_bps"]
    if not result.get("events"):
        return result
    ivs = pathctl.intervals_of(result)
    if not ivs:
        raise RuntimeError("iperf3 reported no intervals")
    result["longest_stall_s"] = _longest_spell(ivs, lambda iv: iv["bytes"] == 0)
    result["timeline"] = [(round(iv["start"], 2), round(8.0 * iv["bytes"] / (iv["end"] - iv["start"]) / 1e6, 1))
                          for iv in ivs if iv["end"] > iv["start"]]
    # iperf3 reports no per-path figures: the changes sit at the end of `testbed set` on the client's clock.
    t_cut, how = pathctl.locate_first_event(result, ivs)
    events = result["events"]
    offset = events[0].get("after_s", events[0]["clock_s"]) - t_cut
    t_restore = events[1].get("after_s", events[1]["clock_s"]) - offset if len(events) > 1 else ivs[-1]["end"]
    end = ivs[-1]["end"]
    result["cut_located_by"] = how
    result["goodput_before_bps"] = pathctl.mean_bps(ivs, max(0.5 * t_cut, t_cut - 2.0), t_cut)
    result["goodput_during_bps"] = pathctl.mean_bps(ivs, t_cut, t_restore)
    result["goodput_after_bps"] = pathctl.mean_bps(ivs, t_restore, end)
    if result["goodput_before_bps"]:  # a trickle is no stall, but hardly better: time under a tenth of before
        low = LOW_FRACTION * result["goodput_before_bps"] / 8.0
        result["longest_low_s"] = _longest_spell(ivs, lambda iv: iv["bytes"] < low * (iv["end"] - iv["start"]))
    if result.get("ceiling_bps") and bed.link_sum_bps:
        result["remaining_ceiling_bps"] = result["ceiling_bps"] * (bed.link_sum_bps - bed.rates_bps[1]) / \
            bed.link_sum_bps
    return result


# ---------------------------------------------------------------------------------------------- report

_med, _max, _f, _ratio, _oks = filexfer._med, filexfer._max, filexfer._f, filexfer._ratio, filexfer._oks


def _range(rs, key, scale):
    values = [r.get(key) for r in rs if r.get(key) is not None]
    if not values:
        return "-"
    return "{} ({}-{})".format(_f(_med(values), scale), _f(min(values), scale), _f(max(values), scale))


def _tun_cell(rs):
    """Median tun counters: the sender end's packets read from its TUN (read calls, super-packets split), the
    receiver end's packets written (write calls), every drop counter of both ends added up, ICMP sent and
    connections made (the most of either end)."""
    pairs = [(r["tun_reports"][1], r["tun_reports"][0]) for r in rs if len(r.get("tun_reports") or []) == 2]
    tun = [(a.get("tun") or {}, b.get("tun") or {}) for a, b in pairs]
    if not tun or not any(t for pair in tun for t in pair):
        return "-"
    g = lambda side, key: _med([p[side].get(key) for p in tun])  # noqa: E731
    drops = _med([sum(v for t in p for k, v in t.items() if k.startswith("dropped") or k.endswith("_dropped"))
                  for p in tun])
    return "read {} pkts / {} reads ({} split); written {} / {} writes; drops {}; ICMP {}; connections {}".format(
        _f(g(0, "packets_read")), _f(g(0, "reads")), _f(g(0, "super_packets")), _f(g(1, "packets_written")),
        _f(g(1, "writes")), _f(drops), _f(_med([sum(t.get("icmp_sent") or 0 for t in p) for p in tun])),
        _f(_max([max(a.get("connections") or 0, b.get("connections") or 0) for a, b in pairs])))


def _row(by, sc, k, ref_key):
    """For the report row of group `k`: its ok runs, the median of a key over them, its system, and the
    median `ref_key` of MPTCP with as many streams in the scenario (the x MPTCP reference)."""
    rs = _oks(by[k])
    system = next(s for s in SYSTEMS if s.name == k[1])
    ref = _med([r.get(ref_key) for r in _mptcp_runs(by, sc, system.streams)])
    return rs, lambda key: _med([r.get(key) for r in rs]), system, ref


def _mptcp_runs(by, sc, streams):
    """The MPTCP runs a tunnel figure compares with: the scenario's own, or those of its `mptcp_from`."""
    own = _oks(by.get((sc["name"], "mptcp-{}".format(streams)), []))
    return own or _oks(by.get((sc.get("mptcp_from"), "mptcp-{}".format(streams)), []))


def group(runs):
    by = {}
    for r in runs:
        by.setdefault((r["scenario"], r["system"]), []).append(r)
    return by


def goals(by, scenarios):
    """(goal, PASS/FAIL/n/a, figures) for 1 and 4 streams."""
    out = []
    names = {sc["name"]: sc for sc in SCENARIOS}
    ran = {sc["name"] for sc in scenarios}

    def med(sc, system, key):
        return _med([r.get(key) for r in _oks(by.get((sc, system), []))])

    for streams in (1, 4):
        tun = "tun-{}".format(streams)
        for sc in ("moderate", "hetero"):
            name = "{}, {} stream(s): tunnel >= {:.0f} % of its header ceiling".format(sc, streams, CEILING_GOAL_PCT)
            pct = med(sc, tun, "pct_of_ceiling")
            if pct is None:
                out.append((name, "n/a", "no data" if sc in ran else "not run"))
                continue
            out.append((name, "PASS" if pct >= CEILING_GOAL_PCT else "FAIL", "{} % ({} of {} Mbit/s)".format(
                _f(pct, digits=1), _f(med(sc, tun, "goodput_bps"), M), _f(med(sc, tun, "ceiling_bps"), M))))
        for sc, need, text in (("moderate", MPTCP_GOAL_MODERATE, ">= {:.0f} % of MPTCP".format(
                100 * MPTCP_GOAL_MODERATE)), ("hetero-auto", None, "> MPTCP"), ("paper", None, "> MPTCP"),
                ("failover", None, "> MPTCP")):
            name = "{}, {} stream(s): tunnel goodput {}".format(sc, streams, text)
            mine = med(sc, tun, "goodput_bps")
            ref = _med([r.get("goodput_bps") for r in _mptcp_runs(by, names[sc], streams)])
            if mine is None or not ref:
                why = "not run" if sc not in ran else "no MPTCP run to compare with" if mine else "no data"
                out.append((name, "n/a", why))
                continue
            ok = mine >= need * ref if need else mine > ref
            out.append((name, "PASS" if ok else "FAIL", "{} vs {} Mbit/s = {} x".format(
                _f(mine, M), _f(ref, M), _ratio(mine, ref))))
        name = "failover, {} stream(s): tunnel's longest stall < {:.0f} s (worst run)".format(streams, STALL_GOAL_S)
        rs = _oks(by.get(("failover", tun), []))
        worst = _max([r.get("longest_stall_s") for r in rs])
        if worst is None:
            out.append((name, "n/a", "no data" if "failover" in ran else "not run"))
        else:
            ref = _max([r.get("longest_stall_s") for r in _oks(by.get(("failover", "mptcp-{}".format(streams)), []))])
            out.append((name, "PASS" if worst < STALL_GOAL_S else "FAIL", "{} ms (median {} ms); MPTCP {} ms".format(
                _f(worst, 1e-3), _f(med("failover", tun, "longest_stall_s"), 1e-3), _f(ref, 1e-3))))
    return out


def report_tables(runs, meta, scenarios):
    m = meta["machine"]
    lines = ["## TUN mode: unmodified TCP through `mpxdp tun` (issue 10)", "",
             "- Command: `{}`".format(meta["command"]),
             "- Machine: {} x {}, {} GiB, kernel {}; load average at start {}".format(
                 m["nproc"], m["cpu_model"], m["memory_gib"], m["kernel"], " ".join(meta["loadavg"])),
             "- mpxdp: `{}` ({}); {}; date {}".format(meta["mpxdp"], meta["mpxdp_version"], m["iperf3"], meta["date"]),
             "- {} repeat(s) x {} s per (scenario, system), interleaved; medians over the repeats (min-max). Wall time "
             "{:.0f} s (estimated {:.0f} s).{}".format(meta["repeats"], meta["duration"], meta["wall_s"],
                                                       meta["estimate_s"], " INTERRUPTED: the runs done so far."
                                                       if meta.get("interrupted") else ""),
             "- Raw results: `{}`".format(meta["results_dir"]), "",
             "Systems: `tun-P`: iperf3 TCP with P streams from 10.99.0.1 to 10.99.0.2 through two `mpxdp tun` ends "
             "(one per namespace, every link of the test bed, `--backend xdp`, offloads on, the kernel's own "
             "scheduling: nothing pinned); `mptcp-P`: iperf3 via `mptcpize run`, one subflow per link; `tcp-P`: "
             "iperf3 over link 0 alone. Goodput: the iperf3 server's `end.sum_received`. Header ceiling: tunnel "
             "link sum x (tun MTU - 52) / (tun MTU + 82) (inner MSS with TCP timestamps per frame the shaper counts: "
             "Ethernet 14 + IPv4 20 + UDP 8 + mpxdp 40 around each inner packet); MPTCP link sum x 1448 / 1514, "
             "TCP link 0 x 1448 / 1514 (MPTCP's DSS option not subtracted). CPU s/GB: the whole machine's busy time "
             "(/proc/stat, all but idle/iowait/steal) from the client's launch to the end of both iperf3 processes, "
             "per GB received (includes the tun ends, and anything else the machine ran meanwhile). Retransmits: "
             "iperf3 `sum_sent.retransmits` (0 for MPTCP: iperf3 cannot read its subflows) and the sender "
             "namespace's `TcpRetransSegs` over the run (counts MPTCP subflows and the tunnel's inner TCP). OFO: "
             "`TcpExtTCPOFOQueue` (and `MPTcpExtOFOQueue` for MPTCP) in the receiver namespace over the run. "
             "x MPTCP: against `mptcp-P` with the same P (`hetero-auto`: `hetero`'s).", ""]
    by = group(runs)
    lines += ["### Goals", "", "| goal | status | figures |", "| --- | --- | --- |"]
    lines += ["| {} | {} | {} |".format(*g) for g in goals(by, scenarios)] + [""]
    for sc in scenarios:
        keys = [k for k in by if k[0] == sc["name"]]
        if not keys:
            continue
        mtus = sorted({r.get("tun_mtu") for k in keys for r in by[k] if r.get("tun_mtu")})
        lines += ["### {}".format(sc["name"]), "", sc["describe"] + (". Tun MTU {}.".format(
            "/".join(map(str, mtus))) if mtus else "."), "",
                  "| system | goodput Mbit/s median (min-max) | % header ceiling | x MPTCP | CPU s/GB | retransmits "
                  "iperf3 (TcpRetransSegs) | OFO queue TCP (MPTCP) | link shares % | tun counters (sender end read, "
                  "receiver end written) | ok |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |"]
        for k in keys:
            rs, g, system, ref = _row(by, sc, k, "goodput_bps")
            ofo = _f(g("tcp_ofo_queue"))
            if g("mptcp_ofo_queue") is not None and system.runner == "mptcp":
                ofo += " ({})".format(_f(g("mptcp_ofo_queue")))
            problems = sorted({p for r in by[k] for p in r.get("tun_problems", [])})
            lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{}{} |".format(
                k[1], _range(rs, "goodput_bps", M), _f(g("pct_of_ceiling"), digits=1),
                _ratio(g("goodput_bps"), ref), _f(g("cpu_s_per_gb"), digits=2),
                "{} ({})".format(_f(g("retransmits")), _f(g("retransmitted"))), ofo,
                filexfer._shares(rs) if system.runner != "tcp" else "-",
                _tun_cell(rs) if system.runner == "tun" else "-", len(rs), len(by[k]),
                " ({})".format("; ".join(problems)) if problems else ""))
        if sc.get("events"):
            lines += ["", "Around the cut (the iperf3 server's 0.1 s intervals; the cut and the restore at the end "
                      "of `testbed set` on the client's clock; a stall is consecutive intervals with no byte "
                      "received; after: from the restore to the end):", "",
                      "| system | longest stall ms median (max) | longest under 10 % of before ms median (max) | "
                      "goodput before / during / after Mbit/s | during / remaining ceiling % | during x MPTCP |",
                      "| --- | ---: | ---: | ---: | ---: | ---: |"]
            for k in keys:
                rs, g, _, ref = _row(by, sc, k, "goodput_during_bps")
                during, remaining = g("goodput_during_bps"), g("remaining_ceiling_bps")
                lines.append("| {} | {} ({}) | {} ({}) | {} / {} / {} | {} | {} |".format(
                    k[1], _f(g("longest_stall_s"), 1e-3), _f(_max([r.get("longest_stall_s") for r in rs]), 1e-3),
                    _f(g("longest_low_s"), 1e-3), _f(_max([r.get("longest_low_s") for r in rs]), 1e-3),
                    _f(g("goodput_before_bps"), M), _f(during, M), _f(g("goodput_after_bps"), M),
                    _f(100.0 * during / remaining if during and remaining else None, digits=1),
                    _ratio(during, ref)))
        lines.append("")
    lines += driver.failed_runs(runs, 40)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv):
    parser = driver.suite_parser(__doc__, SCENARIOS, SYSTEMS, "`tun`", " (default: all but the --no-offload ones)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per (scenario, system); default 3")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per iperf3 run (-t); default 10")
    driver.add_closing_options(parser, "tun")
    args = parser.parse_args(argv)
    args.testbed_mpxdp = args.testbed_mpxdp or args.mpxdp
    driver.select(parser, args, SCENARIOS, SYSTEMS, [s["name"] for s in SCENARIOS],
                  [s.name for s in SYSTEMS if s.default])
    if args.repeats < 1 or args.duration < 2:
        parser.error("--repeats must be at least 1 and --duration at least 2")
    if len(args.bed_prefix) + max(len(s["bed"]) for s in SCENARIOS) > 24:
        parser.error("--bed-prefix too long: test bed names have at most 24 characters")
    return args


def plan(scenario, systems):
    return [s for s in systems if runs_in(s, scenario)]


def estimate(scenarios, systems, args):
    return sum(SCENARIO_SETUP_S + args.repeats * sum(args.duration + OVERHEAD_S[s.runner] for s in plan(sc, systems))
               for sc in scenarios)


def preflight(args):
    problems = driver.common_problems((args.mpxdp, args.testbed_mpxdp), ("ip", "iperf3", "mptcpize", "ss", "ping"))
    if problems:
        return problems
    tun_help = procs.run([args.mpxdp, "tun", "--help"], check=False, timeout=10)
    wants_tun = any(s.runner == "tun" for s in args.system_list)
    if wants_tun and (tun_help.returncode != 0 or "--address" not in tun_help.stdout):
        problems.append("{} has no `tun` command (a build with issue 10)".format(args.mpxdp))
    set_help = procs.run([args.testbed_mpxdp, "testbed", "set", "--help"], check=False, timeout=10).stdout
    if "--down" not in set_help:
        problems.append("{} has no `testbed set --down`".format(args.testbed_mpxdp))
    problems += driver.leftover_problems("mpxdp-" + args.bed_prefix + "tun-")
    return problems


def main(argv):
    args = parse_args(argv)
    if args.list:
        for s in SCENARIOS:
            print("scenario {:12s} {}".format(s["name"], s["describe"]))
        for s in SYSTEMS:
            print("system   {:12s} {}{}".format(s.name, s.label, "" if s.default else " (not by default)"))
        return 0
    scenarios = [s for s in SCENARIOS if s["name"] in args.scenario_names and plan(s, args.system_list)]
    if not scenarios:
        print("tunnel.py: no system of --systems runs in these scenarios", file=sys.stderr)
        return 2
    total = estimate(scenarios, args.system_list, args)
    if args.dry_run:
        for sc in scenarios:
            print("{:12s} {}".format(sc["name"], ", ".join(s.name for s in plan(sc, args.system_list))))
        print("{} repeats x {} s: estimated {:.0f} s ({:.1f} min)".format(args.repeats, args.duration, total,
                                                                         total / 60))
        return 0
    problems = preflight(args)
    if problems:
        for p in problems:
            print("tunnel.py: " + p, file=sys.stderr)
        return 2
    cli = pathctl.Cli(os.path.abspath(args.mpxdp))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = os.path.join(args.results, stamp + "-tunnel")
    os.makedirs(out_dir, exist_ok=True)
    cleanup = filexfer.Cleanup()
    atexit.register(cleanup)
    driver.interrupt_on_signals()
    meta = {"command": " ".join(shlex.quote(a) for a in ["python3", "bench/e2e/tunnel.py"] + argv),
            "mpxdp": os.path.relpath(cli.path, ROOT) if cli.path.startswith(ROOT + os.sep) else cli.path,
            "mpxdp_version": cli.version, "testbed_mpxdp": args.testbed_mpxdp,
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "repeats": args.repeats,
            "duration": args.duration, "loadavg": open("/proc/loadavg").read().split()[:3],
            "machine": testbeds.machine_description(), "estimate_s": total,
            "results_dir": os.path.relpath(out_dir, ROOT) if out_dir.startswith(ROOT + os.sep) else out_dir}
    print("bench/e2e/tunnel: {} scenarios, {} repeats x {} s; estimated {:.0f} s ({:.1f} min)".format(
        len(scenarios), args.repeats, args.duration, total, total / 60))
    print("bench/e2e/tunnel: mpxdp {} ({}); test beds by {}".format(cli.path, cli.version, args.testbed_mpxdp))
    print("bench/e2e/tunnel: results in {}".format(out_dir), flush=True)
    runs = []
    started = time.monotonic()
    interrupted = driver.run_scenarios(scenarios, lambda sc: run_scenario(sc, args, cli, out_dir, runs, cleanup),
                                       "bench/e2e/tunnel", cleanup)
    meta["wall_s"] = time.monotonic() - started
    meta["interrupted"] = interrupted
    text = report_tables(runs, meta, scenarios)
    driver.write_outputs(out_dir, text, meta, runs, ("server_report", "client_report", "timeline"))
    print("\n" + text)
    for goal, status, figures in goals(group(runs), scenarios):
        print("{:4s} {}: {}".format(status, goal, figures))
    print("{} runs, {} failed, wall {:.0f} s. Report: {}".format(len(runs), sum(1 for r in runs if not r.get("ok")),
                                                                meta["wall_s"], os.path.join(out_dir, "report.md")))
    return 130 if interrupted else 0


def run_scenario(sc, args, cli, out_dir, runs, cleanup):
    """Every repeat of one scenario on its own test bed, removed afterwards whatever happens."""
    bed = pathctl.PathTestbed(args.testbed_mpxdp, args.bed_prefix + sc["bed"], sc["rates"])
    run_dir = os.path.join(out_dir, sc["name"])
    os.makedirs(run_dir, exist_ok=True)
    ctx = {"cli": cli, "run_dir": run_dir, "duration": args.duration, "budget_s": args.duration}

    def run_one(system, repeat):
        tag = "{}-r{}".format(system.name, repeat + 1)
        result = {"scenario": sc["name"], "system": system.name, "label": system.label, "repeat": repeat,
                  "streams": system.streams, "testbed": bed.name, "rates_bps": bed.rates_bps,
                  "tun_rates": sc["tun_rates"], "duration_req_s": args.duration, "ok": False, "events": [],
                  "commands": []}

        def run():
            RUNNERS[system.runner](system, sc, bed, ctx, tag, result)
            if result.get("ok"):
                analyse(result, bed)
        result["run_wall_s"] = driver.guarded_run(result, bed, run, sc.get("reset", []), filexfer._fail)
        return tag, result

    driver.drive_scenario(sc["name"], bed, [plan(sc, args.system_list)], args.repeats, run_one, print_run, run_dir,
                          runs, 12, cleanup=cleanup)


def print_run(r):
    head = "  {:12s} {:12s} r{}".format(r["scenario"], r["system"], r["repeat"] + 1)
    if not r.get("ok"):
        print(head + "  FAILED: " + str(r.get("error")), flush=True)
        return
    parts = ["{} Mbit/s".format(_f(r.get("goodput_bps"), M, 1)),
             "{} % ceiling".format(_f(r.get("pct_of_ceiling"), digits=1)),
             "CPU {} s/GB".format(_f(r.get("cpu_s_per_gb"), digits=2)),
             "retransmits {}".format(_f(r.get("retransmits"))), "OFO {}".format(_f(r.get("tcp_ofo_queue")))]
    if r.get("longest_stall_s") is not None:
        parts.append("longest stall {} ms".format(_f(r["longest_stall_s"], 1e-3)))
        parts.append("before/during/after {}/{}/{} Mbit/s".format(_f(r.get("goodput_before_bps"), M),
                                                                  _f(r.get("goodput_during_bps"), M),
                                                                  _f(r.get("goodput_after_bps"), M)))
    if r.get("tun_problems"):
        parts.append("TUN: " + "; ".join(r["tun_problems"]))
    print(head + "  " + ", ".join(parts), flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
