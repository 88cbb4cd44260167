#!/usr/bin/python3
"""Path-control scenarios of issue 8 (failover, rate change, capacity estimation, delay skew), side by side:
mpxdp with estimated rates, mpxdp with configured rates, MPTCP and kernel round-robin UDP, on the local test bed,
with link changes (`mpxdp testbed set`) fired while traffic flows. Run as root:

    python3 bench/e2e/pathctl.py [--quick] [--scenarios a,b] [--systems a,b] [--repeats N] [--duration S]

See bench/README.md ("Path control").
"""
import argparse
import datetime
import json
import os
import shlex
import statistics
import sys
import time

sys.dont_write_bytecode = True  # keep bench/e2e/ free of __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import driver  # noqa: E402  (the scenario loop)
import metrics  # noqa: E402
import procs  # noqa: E402
import systems as systems_mod  # noqa: E402
import testbeds  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
NAME_PREFIX = "e2e-"  # test bed names; namespaces mpxdp-e2e-<bed>-{tx,rx,link}
NAMESPACE_PREFIX = "mpxdp-" + NAME_PREFIX
M = 1_000_000
PAYLOAD = 1024
RX_INTERVAL_S = 0.01     # mpxdp's interval reports (recv -i / send -i)
IPERF_INTERVAL_S = 0.1   # iperf3's finest interval
WINDOW_S = 0.1           # windows the convergence rules look at (10 intervals of mpxdp, one of iperf3)
# The receiver's interval clock starts up to this long after the client's launch (AF_XDP set-up and handshake:
# 0.1-0.3 s seen on a busy machine).
LAUNCH_SLACK_S = 0.5
RECOVERED_PCT = 90.0     # goodput back to this share of the (remaining / new) header ceiling
MAX_LOSS_PCT = 1.0       # and loss at most this in each window (ratechange, auto-hetero)
SETTLED_FOR_S = 0.5      # and it must hold at least this long before the span ends to count as settled

# Link changes fire at these fractions of the run: 3 s and 6 s of a 10 s run.
CUT_AT, RESTORE_AT = 0.3, 0.6
# tcp-share: link 1's byte counters are read at these fractions of the run (after the system's start-up, before
# its end); the shares are taken between them.
SHARE_FROM, SHARE_TO = 0.3, 0.9
SHARE_GOAL_PCT = 100.0 / 3  # issue 8: each keeps at least a third of the shared link
COMPETITOR_PORT = 5251
TCP_FRAME, TCP_MSS = 1514, 1448  # a full-size TCP segment on the wire (Ethernet + IPv4 + TCP with timestamps)

SCENARIOS = [
    {"name": "failover", "bed": "pc-fail", "rates": [300 * M] * 3, "delays": None,
     "events": [(CUT_AT, 1, ["--down"]), (RESTORE_AT, 1, ["--up"])], "reset": [(1, ["--up"])],
     "describe": "3 x 300 Mbit/s, link 1 cut at 30 % of the run, restored at 60 %"},
    {"name": "failover-rtt10", "bed": "pc-fail10", "rates": [300 * M] * 3, "delays": "5ms,5ms,5ms",
     "events": [(CUT_AT, 1, ["--down"]), (RESTORE_AT, 1, ["--up"])], "reset": [(1, ["--up"])],
     "describe": "as failover, 5 ms one-way delay on every link (RTT ~10 ms)"},
    {"name": "ratechange", "bed": "pc-rate", "rates": [300 * M] * 3, "delays": None,
     "events": [(CUT_AT, 1, ["--rate", "50M"]), (RESTORE_AT, 1, ["--rate", "300M"])],
     "event_rates": [[300 * M, 50 * M, 300 * M], [300 * M] * 3], "reset": [(1, ["--rate", "300M"])],
     "describe": "3 x 300 Mbit/s, link 1 shaped to 50 Mbit/s at 30 % of the run, back to 300 at 60 %"},
    {"name": "auto-hetero", "bed": "pc-hetero", "rates": [100 * M, 300 * M, 600 * M], "delays": None,
     "events": [], "reset": [], "describe": "100 + 300 + 600 Mbit/s, nothing changes"},
    {"name": "tcp-share", "bed": "pc-share", "rates": [100 * M] * 3, "delays": None, "events": [], "reset": [],
     "competitor": {"link": 1, "lead_s": 1.0}, "samples": [SHARE_FROM, SHARE_TO],
     "describe": "3 x 100 Mbit/s, one iperf3 TCP flow (cubic) on link 1 alone, from 1 s before the system's launch "
                 "to after its end"},
    {"name": "delay-skew", "bed": "pc-skew", "rates": [300 * M] * 2, "delays": "5ms,40ms", "events": [],
     "reset": [], "offered": [250 * M, 450 * M, 0],
     "describe": "2 x 300 Mbit/s, one-way delay 5 ms and 40 ms; offered 250M (one path suffices), 450M (needs "
                 "both), unlimited"},
]
FULL = {"scenarios": ["failover", "failover-rtt10", "ratechange", "auto-hetero", "tcp-share", "delay-skew"],
        "repeats": 3, "duration": 10}
QUICK = {"scenarios": ["failover", "ratechange", "auto-hetero", "tcp-share", "delay-skew"], "repeats": 1,
         "duration": 5}


class PathSystem:
    """kind: ceiling model (mpxdp/tcp); runner: 'mpxdp' or 'mptcp'; params as the runner reads them."""

    def __init__(self, name, label, kind, runner, scenarios, **params):
        self.name = name
        self.label = label
        self.kind = kind
        self.runner = runner
        self.scenarios = scenarios  # the scenarios it runs in
        self.params = params


EVENTFUL = ("failover", "failover-rtt10", "ratechange", "auto-hetero", "tcp-share")
SYSTEMS = [
    PathSystem("mpxdp-est", "mpxdp AF_XDP, window, rates estimated (--link IFACE=PEER, no @RATE)", "mpxdp",
               "mpxdp", EVENTFUL, rates=False, backend="xdp", reorder="window"),
    PathSystem("mpxdp-rates", "mpxdp AF_XDP, window, configured rates (--testbed: @RATE caps)", "mpxdp", "mpxdp",
               EVENTFUL, rates=True, backend="xdp", reorder="window"),
    PathSystem("mptcp", "MPTCP, iperf3 via mptcpize, 1 subflow/link, -i 0.1", "tcp", "mptcp", EVENTFUL),
    # Path control on the kernel-UDP backend (what the default backend, auto, takes on veth); run when named.
    PathSystem("mpxdp-est-udp", "mpxdp kernel UDP (GSO/GRO), window, rates estimated", "mpxdp", "mpxdp",
               EVENTFUL, rates=False, backend="udp", reorder="window", default=False),
    PathSystem("mpxdp-est-udp-nogro", "as mpxdp-est-udp with --no-udp-gro at both ends", "mpxdp", "mpxdp",
               EVENTFUL, rates=False, backend="udp", reorder="window", default=False, extra=["--no-udp-gro"]),
    PathSystem("mpxdp-est-udp-nogso", "as mpxdp-est-udp with --no-udp-gso --no-udp-gro at both ends", "mpxdp",
               "mpxdp", EVENTFUL, rates=False, backend="udp", reorder="window", default=False,
               extra=["--no-udp-gso", "--no-udp-gro"]),
    # Only where blind spraying means something: a cut link and a link shaped under its share.
    PathSystem("kernel-rr-udp", "kernel UDP round-robin (mpxdp udp, rr, no reorder, --testbed rates, offered the "
               "header ceiling)", "mpxdp", "mpxdp", ("failover", "failover-rtt10", "ratechange"), rates=True,
               backend="udp", reorder="off", scheduler="rr", offered="ceiling", pacing="fixed"),
    # No feedback at all: one iperf3 UDP flow per link, each at its link's ceiling (keeps sending into a cut link).
    PathSystem("udp-blind", "iperf3 UDP, one flow per link at its ceiling, no feedback (-i 0.1)", "udp",
               "udp-blind", ("failover", "failover-rtt10", "ratechange")),
    PathSystem("mpxdp-eaf", "mpxdp AF_XDP, window, --scheduler eaf, rates estimated", "mpxdp", "mpxdp",
               ("delay-skew",), rates=False, backend="xdp", reorder="window", scheduler="eaf"),
    PathSystem("mpxdp-wrr", "mpxdp AF_XDP, window, --scheduler wrr, rates estimated", "mpxdp", "mpxdp",
               ("delay-skew",), rates=False, backend="xdp", reorder="window", scheduler="wrr"),
    PathSystem("mpxdp-eaf-rates", "mpxdp AF_XDP, window, --scheduler eaf, configured rates", "mpxdp", "mpxdp",
               ("delay-skew",), rates=True, backend="xdp", reorder="window", scheduler="eaf"),
    PathSystem("mpxdp-wrr-rates", "mpxdp AF_XDP, window, --scheduler wrr, configured rates", "mpxdp", "mpxdp",
               ("delay-skew",), rates=True, backend="xdp", reorder="window", scheduler="wrr"),
    PathSystem("mpxdp-eaf-udp", "mpxdp kernel UDP (GSO/GRO), window, --scheduler eaf, rates estimated", "mpxdp",
               "mpxdp", ("delay-skew",), rates=False, backend="udp", reorder="window", scheduler="eaf",
               default=False),
    PathSystem("mpxdp-wrr-udp", "mpxdp kernel UDP (GSO/GRO), window, --scheduler wrr, rates estimated", "mpxdp",
               "mpxdp", ("delay-skew",), rates=False, backend="udp", reorder="window", scheduler="wrr",
               default=False),
]


class PathTestbed(testbeds.Testbed):
    """A suite test bed with per-link one-way delays, random loss and live link changes (`mpxdp testbed set`).
    delays / loss: as `testbed up --delays` / `--loss` take them ("5ms,40ms", "0,1%,0"), or None."""

    def __init__(self, mpxdp, name, rates_bps, delays=None, loss=None):
        super().__init__(mpxdp, name, rates_bps)
        self.delays = delays
        self.loss = loss

    def up(self):
        argv = [self.mpxdp, "testbed", "up", "--name", self.name, "-J", "--rates",
                ",".join(str(r) for r in self.rates_bps)]
        if self.delays:
            argv += ["--delays", self.delays]
        if self.loss:
            argv += ["--loss", self.loss]
        self.info = json.loads(procs.run(argv, timeout=60).stdout)
        return self.info

    def set_link(self, link, args):
        return procs.run([self.mpxdp, "testbed", "set", "--name", self.name, "--link", str(link)] + list(args),
                         timeout=20, check=False)


class Cli(systems_mod.MpxdpCli):
    """The build's send/recv as read from --help: which schedulers and options it has."""

    def __init__(self, path):
        super().__init__(path)
        text = procs.run([path, "send", "--help"], check=False, timeout=10).stdout
        self.send_help = text
        self.has_eaf = "eaf" in text
        self.has_pacing = "--pacing" in text
        self.fine_interval = "0.001" in text  # new builds document -i down to 1 ms


# ---------------------------------------------------------------------------------------------- running


def _files(run_dir, tag, role):
    base = os.path.join(run_dir, "{}.{}".format(tag, role))
    return base + ".out", base + ".err"


def _drive(client, server, bed, events, duration, t_launch, record, samples=(), sample_record=None):
    """Waits for the client(s) while firing the link changes at their times after the launch. Every change is
    recorded with the monotonic times around `testbed set` and its outcome. At each fraction of `samples` the
    links' byte counters are read into `sample_record` (with the monotonic time)."""
    samples = sorted(samples)
    clients = client if isinstance(client, list) else [client]
    servers = server if isinstance(server, list) else [server]
    deadline = t_launch + duration + systems_mod.END_SLACK_S
    pending = sorted(events, key=lambda e: e[0])
    fire_at = pending[0][0] * duration if pending else None  # seconds after launch
    while any(c.poll() is None for c in clients):
        now = time.monotonic()
        if samples and now - t_launch >= samples[0] * duration:
            samples.pop(0)
            counters = bed.link_bytes()
            sample_record.append({"monotonic": (now + time.monotonic()) / 2, "link_bytes": counters})
            continue
        if pending and now - t_launch >= fire_at:
            frac, link, args = pending.pop(0)
            before = time.monotonic()
            done = bed.set_link(link, args)
            after = time.monotonic()
            record.append({"planned_s": frac * duration, "link": link, "args": args,
                           "clock_s": (before + after) / 2 - t_launch, "before_s": before - t_launch,
                           "after_s": after - t_launch, "set_took_s": after - before,
                           "returncode": done.returncode, "stderr": done.stderr.strip()[-500:]})
            if pending:  # a late change (testbed set is slow on a busy machine) keeps its phase's planned length
                fire_at = max(pending[0][0] * duration, after - t_launch + (pending[0][0] - frac) * duration)
            continue
        if now >= deadline:
            for c in clients:
                if c.poll() is None:
                    c.timed_out = True
                    c.kill()
            break
        wake = deadline if not pending else min(deadline, t_launch + fire_at)
        if samples:
            wake = min(wake, t_launch + samples[0] * duration)
        time.sleep(max(0.0, min(0.005, wake - time.monotonic())))
    for s in servers:
        s.wait(systems_mod.END_SLACK_S)


def _check_ended(result, client, server, names=("sender", "receiver")):
    if client.timed_out or server.timed_out:
        return _fail(result, "timed out ({} {}, {} {})".format(names[0], client.timed_out, names[1],
                                                              server.timed_out), client, server)
    if client.returncode != 0 or server.returncode != 0:
        return _fail(result, "exit codes: {} {}, {} {}".format(names[0], client.returncode, names[1],
                                                              server.returncode), client, server)
    return None


def _fail(result, why, *children):
    result["ok"] = False
    result["error"] = why
    result["stderr_tails"] = {os.path.basename(c.err_path): c.stderr_tail() for c in children if c is not None}
    return result


def _num(value):
    """5.0 -> "5" (iperf3 takes whole seconds), 2.5 -> "2.5"."""
    return str(int(value)) if float(value).is_integer() else str(value)


def mpxdp_argv(system, cli, bed, duration, offered):
    """(recv argv, send argv) of one mpxdp run."""
    p = system.params
    n = bed.links
    if p["rates"]:
        recv = [cli.path, "recv", "-1", "--testbed", bed.name]
        send = [cli.path, "send", "--testbed", bed.name]
    else:  # the links without @RATE: every path's rate is estimated
        recv = bed.netns(bed.rx, cli.path, "recv", "-1") + sum((["--link", "r{}".format(i)] for i in range(n)), [])
        send = bed.netns(bed.tx, cli.path, "send") + sum(
            (["--link", "s{}={}".format(i, bed.receiver_ip(i))] for i in range(n)), [])
    recv += ["--backend", p["backend"], "--reorder", p["reorder"], "-i", RX_INTERVAL_S, "-J"]
    send += ["-t", _num(duration), "-l", PAYLOAD, "--backend", p["backend"], "-i", RX_INTERVAL_S, "-J"]
    recv += p.get("extra", [])
    send += p.get("extra", [])
    if p.get("scheduler"):
        send += ["--scheduler", p["scheduler"]]
    if p.get("pacing") and cli.has_pacing:
        send += ["--pacing", p["pacing"]]
    if offered:
        send += ["-b", int(offered)]
    return recv, send


def run_mpxdp(system, scenario, bed, cli, run_dir, tag, duration, offered, result):
    p = system.params
    if p.get("scheduler") == "eaf" and not cli.has_eaf:
        return _fail(result, "{} has no --scheduler eaf".format(cli.path))
    if offered == "ceiling":
        offered = int(bed.link_sum_bps * metrics.ceiling_fraction("mpxdp", PAYLOAD))
    recv_argv, send_argv = mpxdp_argv(system, cli, bed, duration, offered)
    result["offered_bps"] = offered or 0
    result["commands"] = [" ".join(map(str, recv_argv)), " ".join(map(str, send_argv))]
    receiver = procs.Proc(recv_argv, *_files(run_dir, tag, "recv"))
    sender = None
    try:
        if not receiver.wait_for_stderr("mpxdp recv: ready", systems_mod.START_TIMEOUT_S):
            return _fail(result, "receiver not ready within {} s (exit {})".format(
                systems_mod.START_TIMEOUT_S, receiver.poll()), receiver)
        t_launch = time.monotonic()
        sender = procs.Proc(send_argv, *_files(run_dir, tag, "send"))
        _drive(sender, receiver, bed, scenario["events"], duration, t_launch, result["events"],
               scenario.get("samples", ()), result.setdefault("samples", []))
        failure = _check_ended(result, sender, receiver)
        if failure is not None:
            return failure
        recv = json.loads(receiver.stdout())
        send = json.loads(sender.stdout())
    finally:
        for child in (sender, receiver):
            if child is not None:
                child.kill()
    result["recv_report"] = recv
    result["send_report"] = send
    result["ok"] = True
    return result


def run_mptcp(system, scenario, bed, cli, run_dir, tag, duration, offered, result):
    port = systems_mod.IPERF_PORT
    wrap = ["mptcpize", "run"]
    server_argv = bed.netns(bed.rx, *wrap, "iperf3", "-s", "-1", "-J", "-p", port, "-i", IPERF_INTERVAL_S)
    client_argv = bed.netns(bed.tx, *wrap, "iperf3", "-c", bed.receiver_ip(0), "-p", port, "-t", _num(duration),
                            "-J", "-i", IPERF_INTERVAL_S)
    result["commands"] = [" ".join(map(str, server_argv)), " ".join(map(str, client_argv))]
    bed.enable_mptcp()
    server = procs.Proc(server_argv, *_files(run_dir, tag, "server"))
    client = None
    try:
        if not systems_mod._wait_listening(bed, server, port):
            return _fail(result, "iperf3 server not listening (exit {})".format(server.poll()), server)
        t_launch = time.monotonic()
        client = procs.Proc(client_argv, *_files(run_dir, tag, "client"))
        _drive(client, server, bed, scenario["events"], duration, t_launch, result["events"],
               scenario.get("samples", ()), result.setdefault("samples", []))
        failure = _check_ended(result, client, server, ("client", "server"))
        if failure is not None:
            return failure
        server_report = json.loads(server.stdout())
        client_report = json.loads(client.stdout())
    finally:
        for child in (client, server):
            if child is not None:
                child.kill()
        bed.disable_mptcp()
    if "error" in server_report or "error" in client_report:
        return _fail(result, "iperf3: {}".format(server_report.get("error") or client_report.get("error")))
    result["server_report"] = server_report
    result["client_report"] = client_report
    result["ok"] = True
    return result


def run_udp_blind(system, scenario, bed, cli, run_dir, tag, duration, offered, result):
    """One iperf3 UDP flow per link (bound to s<i>, to r<i>'s address), each offered its link's UDP header
    ceiling: spraying with no feedback at all, what a link-blind round robin does to a dead link."""
    servers, clients = [], []
    commands = []
    try:
        for i in range(bed.links):
            port = systems_mod.IPERF_PORT + i
            server_argv = bed.netns(bed.rx, "iperf3", "-s", "-1", "-J", "-p", port, "-i", IPERF_INTERVAL_S)
            commands.append(" ".join(map(str, server_argv)))
            servers.append(procs.Proc(server_argv, *_files(run_dir, "{}.l{}".format(tag, i), "server")))
            if not systems_mod._wait_listening(bed, servers[-1], port):
                return _fail(result, "iperf3 server {} not listening (exit {})".format(i, servers[-1].poll()),
                             servers[-1])
        client_argvs = []
        for i in range(bed.links):
            rate = int(bed.rates_bps[i] * metrics.ceiling_fraction("udp", PAYLOAD))
            client_argvs.append(bed.netns(bed.tx, "iperf3", "-c", bed.receiver_ip(i), "-B", bed.sender_ip(i), "-p",
                                          systems_mod.IPERF_PORT + i, "-u", "-l", PAYLOAD, "-b", rate, "-t",
                                          _num(duration), "-J", "-i", IPERF_INTERVAL_S))
            commands.append(" ".join(map(str, client_argvs[-1])))
        result["commands"] = commands
        t_launch = time.monotonic()
        for i, argv in enumerate(client_argvs):
            clients.append(procs.Proc(argv, *_files(run_dir, "{}.l{}".format(tag, i), "client")))
        _drive(clients, servers, bed, scenario["events"], duration, t_launch, result["events"])
        for c, s in zip(clients, servers):
            failure = _check_ended(result, c, s, ("client", "server"))
            if failure is not None:
                return failure
        reports = [json.loads(s.stdout()) for s in servers]
    finally:
        for child in clients + servers:
            child.kill()
    bad = [r.get("error") for r in reports if "error" in r]
    if bad:
        return _fail(result, "iperf3: {}".format(bad[0]))
    result["server_reports"] = reports
    result["ok"] = True
    return result


RUNNERS = {"mpxdp": run_mpxdp, "mptcp": run_mptcp, "udp-blind": run_udp_blind}


def run_with_competitor(run, scenario, bed, run_dir, tag, duration, result):
    """tcp-share: one plain iperf3 TCP flow on the competitor link alone (bound to its addresses), started
    lead_s before `run()` launches the system and lasting beyond the part of its run that is measured. Its
    receiver's report goes to result["competitor"]."""
    spec = scenario["competitor"]
    link = spec["link"]
    server_argv = bed.netns(bed.rx, "iperf3", "-s", "-1", "-J", "-B", bed.receiver_ip(link), "-p", COMPETITOR_PORT,
                            "-i", IPERF_INTERVAL_S)
    client_argv = bed.netns(bed.tx, "iperf3", "-c", bed.receiver_ip(link), "-B", bed.sender_ip(link), "-p",
                            COMPETITOR_PORT, "-t", _num(int(spec["lead_s"] + duration + 2)), "-J", "-i",
                            IPERF_INTERVAL_S)
    competitor = {"link": link, "commands": [" ".join(map(str, server_argv)), " ".join(map(str, client_argv))]}
    result["competitor"] = competitor
    server = procs.Proc(server_argv, *_files(run_dir, tag + ".tcp", "server"))
    client = None
    try:
        if not systems_mod._wait_listening(bed, server, COMPETITOR_PORT):
            return _fail(result, "competitor iperf3 server not listening (exit {})".format(server.poll()), server)
        competitor["launch_monotonic"] = time.monotonic()
        client = procs.Proc(client_argv, *_files(run_dir, tag + ".tcp", "client"))
        time.sleep(spec["lead_s"])
        if client.poll() is not None:
            return _fail(result, "competitor iperf3 client ended early (exit {})".format(client.returncode), client)
        run()
        client.wait(spec["lead_s"] + duration + systems_mod.END_SLACK_S)
        server.wait(systems_mod.END_SLACK_S)
        if client.returncode != 0 or server.returncode != 0:
            if result.get("ok"):
                _fail(result, "competitor iperf3 exit codes: client {}, server {}".format(
                    client.returncode, server.returncode), client, server)
            return result
        competitor["server_report"] = json.loads(server.stdout())
    finally:
        for child in (client, server):
            if child is not None:
                child.kill()
    return result


# ---------------------------------------------------------------------------------------------- analysis


def intervals_of(result):
    """The receiver's timeline: list of dicts start, end, bytes, packets, lost (None when unknown), path_packets
    (list, or None). mpxdp: its 10 ms intervals; iperf3: the server's 0.1 s intervals."""
    out = []
    if "recv_report" in result:
        for iv in result["recv_report"].get("intervals", []):
            paths = iv.get("paths")
            out.append({"start": iv["start_s"], "end": iv["end_s"], "bytes": iv.get("bytes", 0),
                        "packets": iv.get("packets", 0), "lost": iv.get("lost_packets"),
                        "path_packets": [q.get("packets", 0) for q in paths] if paths else None})
    elif "server_reports" in result:  # one iperf3 UDP flow per link: merged by interval index
        per_link = [r.get("intervals", []) for r in result["server_reports"]]
        for k in range(min(len(x) for x in per_link)):
            sums = [x[k]["sum"] for x in per_link]
            out.append({"start": sums[0]["start"], "end": sums[0]["end"], "bytes": sum(q["bytes"] for q in sums),
                        "packets": sum(q.get("packets", 0) - q.get("lost_packets", 0) for q in sums),
                        "lost": sum(q.get("lost_packets", 0) for q in sums),
                        "path_packets": [q.get("packets", 0) - q.get("lost_packets", 0) for q in sums]})
    elif "server_report" in result:
        for iv in result["server_report"].get("intervals", []):
            s = iv["sum"]
            out.append({"start": s["start"], "end": s["end"], "bytes": s["bytes"], "packets": None, "lost": None,
                        "path_packets": None})
    return out


def interval_span(ivs):
    """The reports' interval (median: the first and a starved one can be longer)."""
    return statistics.median(iv["end"] - iv["start"] for iv in ivs) if ivs else None


def windows(ivs, width=WINDOW_S):
    """10 ms intervals merged into `width` windows aligned on the run clock (iperf3's 0.1 s pass through)."""
    if not ivs:
        return []
    span = interval_span(ivs)
    if span >= width * 0.9:  # iperf3's own: its last one can be a few ms long
        return [dict(iv, bps=8.0 * iv["bytes"] / (iv["end"] - iv["start"])) for iv in ivs
                if iv["end"] - iv["start"] >= 0.5 * span]
    out = {}
    for iv in ivs:
        k = int(iv["start"] / width + 1e-9)
        w = out.setdefault(k, {"start": k * width, "end": (k + 1) * width, "bytes": 0, "packets": 0, "lost": 0,
                               "span": 0.0})
        w["bytes"] += iv["bytes"]
        w["packets"] += iv["packets"] or 0
        w["lost"] = None if iv["lost"] is None or w["lost"] is None else w["lost"] + iv["lost"]
        w["span"] += iv["end"] - iv["start"]
    result = []
    for k in sorted(out):
        w = out[k]
        if w["span"] < width * 0.5:  # the last, cut-short window
            continue
        w["bps"] = 8.0 * w["bytes"] / w["span"]
        result.append(w)
    return result


def mean_bps(ivs, t0, t1):
    span = sum(iv["end"] - iv["start"] for iv in ivs if iv["start"] >= t0 and iv["end"] <= t1)
    moved = sum(iv["bytes"] for iv in ivs if iv["start"] >= t0 and iv["end"] <= t1)
    return 8.0 * moved / span if span > 0 else None


def lost_between(ivs, t0, t1):
    values = [iv["lost"] for iv in ivs if iv["start"] >= t0 and iv["start"] < t1]
    if not values or any(v is None for v in values):
        return None
    return sum(values)


def settle_time(wins, t0, t1, ceiling, check_loss):
    """Seconds from t0 until every window in [t0, t1) has goodput >= RECOVERED_PCT of `ceiling` (and loss <=
    MAX_LOSS_PCT when check_loss): the end of the last window that misses, minus t0. None ("never") when
    the windows after the last miss cover less than SETTLED_FOR_S (not settled by t1)."""
    inside = [w for w in wins if w["start"] >= t0 - 1e-9 and w["end"] <= t1 + 1e-9]
    if not inside:
        return None
    last_miss = None
    for w in inside:
        ok = w["bps"] >= ceiling * RECOVERED_PCT / 100.0
        if check_loss and w.get("lost") is not None and w.get("packets") is not None:
            total = w["packets"] + w["lost"]
            ok = ok and (total == 0 or 100.0 * w["lost"] / total <= MAX_LOSS_PCT)
        if not ok:
            last_miss = w
    if last_miss is None:
        return 0.0
    if inside[-1]["end"] - last_miss["end"] < SETTLED_FOR_S:
        return None
    return last_miss["end"] - t0


def locate_first_event(result, ivs):
    """The first link change on the receiver's timeline. The change takes effect while `testbed set` runs
    (`before_s`..`after_s` after the client's launch); mpxdp's and iperf3's interval clocks start later than
    the launch (after the handshake), by up to LAUNCH_SLACK_S, so the change lies in [before - slack, after] on
    the receiver's clock. Where the receiver reports per-path packets the change shows on link 1 itself: a cut,
    of the 10 ms intervals in that span from which link 1 delivers nothing for 100 ms, the one with the most
    packets on link 1 in the 100 ms before; a rate cut, the interval where link 1's packets over the next
    100 ms fall furthest below those over the 100 ms before.
    Otherwise, for a cut, the first interval with loss in the span; else the end of `testbed set` (it reads the
    whole test bed back first and changes the link last; MPTCP: 0.1 s intervals, and iperf3's clock starts a few
    ms after launch). Returns (time, how)."""
    events = result.get("events") or []
    if not events:
        return None, None
    ev = events[0]
    link = ev["link"]
    lo, hi = ev.get("before_s", ev["clock_s"]) - LAUNCH_SLACK_S, ev.get("after_s", ev["clock_s"]) + 0.02
    cut = "--down" in ev["args"]
    span = [i for i, iv in enumerate(ivs) if lo <= iv["start"] <= hi]
    if span and all(ivs[i]["path_packets"] is not None and len(ivs[i]["path_packets"]) > link for i in span):
        pk = lambda i: ivs[i]["path_packets"][link] if 0 <= i < len(ivs) and ivs[i]["path_packets"] else 0  # noqa
        width = max(1, int(round(WINDOW_S / max(1e-6, interval_span(ivs)))))
        before = lambda i: sum(pk(j) for j in range(max(0, i - width), i))  # noqa: E731
        after = lambda i: sum(pk(j) for j in range(i, min(len(ivs), i + width)))  # noqa: E731
        if cut:
            # Link 1 empty for the next 100 ms (a busy machine leaves single 10 ms intervals empty, and a path
            # the sender already shuns carries next to nothing): the candidate with the most traffic before.
            candidates = [i for i in span if pk(i - 1) > 0 and after(i) == 0]
            if candidates:
                best = max(candidates, key=before)
                return ivs[best]["start"], "link {} per-path packets".format(link)
        else:
            best = max(span, key=lambda i: before(i) - after(i))
            if before(best) > 1.5 * after(best):
                return ivs[best]["start"], "link {} per-path packets".format(link)
    if cut:
        for iv in ivs:
            if lo <= iv["start"] <= hi and iv["lost"]:
                return iv["start"], "first interval with loss"
    return ev.get("after_s", ev["clock_s"]), "end of testbed set"  # its duration: events[].set_took_s


def share_figures(result, scenario, system, bed, fraction):
    """tcp-share: what the TCP flow and the system each carried on the shared link between the two counter
    samples (SHARE_FROM and SHARE_TO of the run), as % of the link's rate in frames on the wire. TCP: its
    receiver's 0.1 s intervals inside that span, payload x TCP_FRAME / TCP_MSS. mpxdp: its receiver's per-path
    packets in the span (its clock mapped through start_monotonic_ns), x the frame / payload ratio. MPTCP (no
    per-path counts): the link's received bytes (r<link> rx_bytes) minus TCP's frames."""
    comp = result.get("competitor") or {}
    samples = result.get("samples") or []
    report = comp.get("server_report")
    if len(samples) < 2 or not report:
        raise RuntimeError("tcp-share: {} counter samples, competitor report {}".format(
            len(samples), "present" if report else "missing"))
    link = comp["link"]
    rate = bed.rates_bps[link]
    t0, t1 = samples[0]["monotonic"], samples[-1]["monotonic"]
    out = {"share_span_s": t1 - t0}
    c0, c1 = t0 - comp["launch_monotonic"], t1 - comp["launch_monotonic"]
    inside = [iv["sum"] for iv in report.get("intervals", []) if iv["sum"]["start"] >= c0 - 1e-3 and
              iv["sum"]["end"] <= c1 + 1e-3]
    span = sum(q["end"] - q["start"] for q in inside)
    if span <= 0:
        raise RuntimeError("tcp-share: no TCP interval inside the measured span")
    tcp_bps = 8.0 * sum(q["bytes"] for q in inside) / span
    tcp_wire_bps = tcp_bps * TCP_FRAME / TCP_MSS
    out["tcp_bps"] = tcp_bps
    out["tcp_link_pct"] = 100.0 * tcp_wire_bps / rate
    link_bps = 8.0 * (samples[-1]["link_bytes"]["rx"][link] - samples[0]["link_bytes"]["rx"][link]) / (t1 - t0)
    out["link_rx_pct"] = 100.0 * link_bps / rate
    recv = result.get("recv_report")
    if recv and recv.get("start_monotonic_ns"):
        r0 = t0 - recv["start_monotonic_ns"] / 1e9
        r1 = t1 - recv["start_monotonic_ns"] / 1e9
        ivs = [iv for iv in intervals_of(result) if iv["start"] >= r0 and iv["end"] <= r1 and iv["path_packets"]]
        rx_span = sum(iv["end"] - iv["start"] for iv in ivs)
        if rx_span <= 0:
            raise RuntimeError("tcp-share: no receiver interval inside the measured span")
        packets = sum(iv["path_packets"][link] for iv in ivs)
        out["system_link_bps"] = 8.0 * packets * PAYLOAD / fraction / rx_span
        out["system_link_from"] = "per-path packets"
        out["system_goodput_in_span_bps"] = 8.0 * sum(iv["bytes"] for iv in ivs) / rx_span
    else:
        out["system_link_bps"] = max(0.0, link_bps - tcp_wire_bps)
        out["system_link_from"] = "link rx bytes - TCP"
    out["system_link_pct"] = 100.0 * out["system_link_bps"] / rate
    out["neither_starves"] = out["tcp_link_pct"] >= SHARE_GOAL_PCT and out["system_link_pct"] >= SHARE_GOAL_PCT
    return out


def analyse(result, scenario, system, bed):
    """Adds the scenario's figures to a successful run (keys documented in bench/README.md)."""
    ivs = intervals_of(result)
    result["timeline"] = [(round(w["start"], 3), round(w["bps"] / 1e6, 2)) for w in windows(ivs)]
    fraction = metrics.ceiling_fraction(system.kind, PAYLOAD)
    a = {}
    end = ivs[-1]["end"] if ivs else 0.0
    recv = result.get("recv_report", {})
    send = result.get("send_report", {})
    if "recv_report" in result:
        a["goodput_bps"] = recv.get("goodput_bps")
        a["lost_packets"] = recv.get("lost_packets")
        if system.params.get("reorder") != "off":  # nothing is held without a reorderer
            a["hold_p99_ns"] = recv.get("hold_p99_ns")
        sent = send.get("sent_packets")
        if sent and recv.get("delivered_packets") is not None:
            a["undelivered_packets"] = max(0, sent - recv["delivered_packets"])
            a["loss_pct"] = 100.0 * a["undelivered_packets"] / sent
        a["has_rx_path_intervals"] = any(iv["path_packets"] is not None for iv in ivs)
        a["has_path_events"] = "path_events" in send
    elif "server_reports" in result:
        ends = [r["end"].get("sum_received") or r["end"]["sum"] for r in result["server_reports"]]
        a["goodput_bps"] = sum(8.0 * q["bytes"] / (q["seconds"] or 1) for q in ends)
        a["lost_packets"] = sum(q.get("lost_packets", 0) for q in ends)
        total = sum(q.get("packets", 0) for q in ends)
        a["loss_pct"] = 100.0 * a["lost_packets"] / total if total else None
    else:
        rep = result["server_report"]["end"]["sum_received"]
        a["goodput_bps"] = 8.0 * rep["bytes"] / (rep["seconds"] or 1)
        a["retransmits"] = result["client_report"]["end"].get("sum_sent", {}).get("retransmits")
    a["interval_s"] = interval_span(ivs)
    wins = windows(ivs)
    # The last window holds the transfer's end (the sender stops inside it, the receiver's last report runs
    # past it), so it says nothing about convergence: with it, runs that had settled read "never".
    settle_wins = wins[:-1]
    name = scenario["name"]
    if scenario["events"]:
        if not result.get("events") or not ivs:
            raise RuntimeError("no link change fired or no interval reported (the client ended first?)")
        t1, how = locate_first_event(result, ivs)
        end_of = lambda e: e.get("after_s", e["clock_s"])  # noqa: E731
        offset = end_of(result["events"][0]) - t1  # client launch clock to receiver clock
        # Later changes keep their distance to the first, taken between the ends of `testbed set`.
        times = [t1] + [end_of(e) - offset for e in result["events"][1:]]
        a["event_rx_s"] = times
        a["event_located_by"] = how
        a["launch_to_rx_clock_s"] = offset
        t_restore = times[1] if len(times) > 1 else end
    if name.startswith("failover"):
        t_cut = times[0]
        remaining = sum(r for i, r in enumerate(bed.rates_bps) if i != 1) * fraction
        a["goodput_before_bps"] = mean_bps(ivs, max(0.5 * t_cut, t_cut - 2.0), t_cut)
        a["goodput_during_bps"] = mean_bps(ivs, t_cut, t_restore)
        a["goodput_after_bps"] = mean_bps(ivs, t_restore + 0.5 * (end - t_restore), end)
        a["remaining_ceiling_bps"] = remaining
        a["lost_during_cut"] = lost_between(ivs, t_cut, t_restore)
        lossy = [iv for iv in ivs if t_cut <= iv["start"] < t_restore and iv["lost"]]
        if lost_between(ivs, t_cut, t_restore) is not None:
            a["loss_free_after_s"] = (lossy[-1]["end"] - t_cut) if lossy else 0.0
            # The cut's own burst: lossy intervals from the first one (within 0.5 s of the cut) until 100 ms
            # pass without loss (a later, unrelated loss, e.g. a full tbf queue, does not extend it).
            # Its first interval may come a little late: a receiver sees a gap only once later packets arrive.
            burst_end = lossy[0]["end"] if lossy and lossy[0]["start"] - t_cut < 0.5 else t_cut
            for iv in lossy:
                if iv["start"] - burst_end >= WINDOW_S:
                    break
                burst_end = max(burst_end, iv["end"])
            a["loss_burst_s"] = burst_end - t_cut
        a["goodput_back_s"] = settle_time(settle_wins, t_cut, t_restore, remaining, check_loss=False)
        events = send.get("path_events")
        if events is not None:
            back = [e for e in events if e.get("path") == 1 and e.get("to") == "active" and
                    e.get("time_s", 0) > t_restore]
            a["restored_active_s"] = back[0]["time_s"] - t_restore if back else None
            a["path1_events"] = [(round(e["time_s"], 3), e.get("from"), e.get("to")) for e in events
                                 if e.get("path") == 1]
        final = send.get("paths")
        if final and len(final) > 1 and final[1].get("pacing_bps") is not None:
            a["link1_pacing_end_bps"] = final[1]["pacing_bps"]  # has the restored path ramped up again?
        # Restored link carrying traffic again, seen at the receiver (per-path packets).
        carried = [iv for iv in ivs if iv["path_packets"] and iv["start"] >= t_restore and
                   len(iv["path_packets"]) > 1 and iv["path_packets"][1] > 0]
        if any(iv["path_packets"] for iv in ivs):
            a["restored_carries_s"] = carried[0]["start"] - t_restore if carried else None
        # Did the sender keep sending into the dead link? Its per-path packets during the cut.
        s_ivs = send.get("intervals") or []
        into_dead = [q["paths"][1].get("packets", 0) for q in s_ivs if q.get("paths") and
                     t_cut + 0.1 <= q["start_s"] < t_restore]
        if s_ivs and into_dead:
            a["sent_into_dead_link"] = sum(into_dead)
    elif name == "ratechange":
        a["changes"] = []
        for k, t in enumerate(times):
            t_next = times[k + 1] if k + 1 < len(times) else end
            ceiling = sum(scenario["event_rates"][k]) * fraction
            a["changes"].append({"at_rx_s": t, "ceiling_bps": ceiling,
                                 "settle_s": settle_time(settle_wins, t, t_next, ceiling, check_loss=True),
                                 "lost": lost_between(ivs, t, t_next),
                                 "goodput_bps": mean_bps(ivs, t + 0.5 * (t_next - t), t_next)})
            for key in ("settle_s", "lost", "goodput_bps"):  # flat copies for the table; settle None: never
                if key == "settle_s" or a["changes"][-1][key] is not None:
                    a["change{}_{}".format(k + 1, key)] = a["changes"][-1][key]
        a["goodput_before_bps"] = mean_bps(ivs, max(0.5 * times[0], times[0] - 2.0), times[0])
    elif name == "auto-hetero":
        ceiling = bed.link_sum_bps * fraction
        a["ceiling_bps"] = ceiling
        a["converged_s"] = settle_time(settle_wins, 0.0, end, ceiling, check_loss=True)
        a["steady_goodput_bps"] = mean_bps(ivs, 0.5 * end, end)
        a["steady_pct_of_ceiling"] = 100.0 * a["steady_goodput_bps"] / ceiling if a["steady_goodput_bps"] else None
    elif name == "delay-skew":
        a["ceiling_bps"] = bed.link_sum_bps * fraction
    elif name == "tcp-share":
        a.update(share_figures(result, scenario, system, bed, fraction))
    if send.get("paths"):
        a["final_paths"] = [{k: q.get(k) for k in ("state", "pacing_bps", "estimate_bps", "delivery_bps", "srtt_ns",
                                                   "loss_rate", "queue_delay_ns", "rate_phase", "packets")}
                            for q in send["paths"]]
    result["analysis"] = a
    return result


# ---------------------------------------------------------------------------------------------- report


def _med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _f(value, scale=1.0, digits=0, none="-"):
    return none if value is None else "{:.{d}f}".format(value / scale, d=digits)


def _median_of(runs, getter):
    return _med([getter(r["analysis"]) for r in runs if r.get("ok") and "analysis" in r])


def _cell(runs, key, scale=1.0, digits=0):
    """Median of a time figure; runs where it is present but None ("never" within its span) are counted."""
    ok = [r for r in runs if r.get("ok") and "analysis" in r and key in r["analysis"]]
    never = sum(1 for r in ok if r["analysis"][key] is None)
    text = _f(_med([r["analysis"][key] for r in ok]), scale, digits)
    if never:
        text = "never" if never == len(ok) else "{} ({} never)".format(text, never)
    return text


def _ratio(a, b):
    return "{:.2f}".format(a / b) if a is not None and b else "-"


def report_tables(runs, meta):
    lines = ["## Path control (issue 8)", "",
             "Command: `{}`  ".format(meta["command"]),
             "mpxdp: `{}` ({}); date {}; {} repeat(s) x {} s; medians over the repeats.".format(
                 meta["mpxdp"], meta["mpxdp_version"], meta["date"], meta["repeats"], meta["duration"]),
             "Load average at start: {}. Link changes fire at {:.0f} % and {:.0f} % of the run "
             "(`mpxdp testbed set`).".format(" ".join(meta["loadavg"]), CUT_AT * 100, RESTORE_AT * 100)]
    took = [e["set_took_s"] for r in runs for e in r.get("events", [])]
    if took:
        lines[-1] += " `testbed set` took {:.0f} ms median, {:.0f} ms at most.".format(
            1000 * statistics.median(took), 1000 * max(took))
    lines.append("")
    by = {}
    for r in runs:
        by.setdefault((r["scenario"], r["system"], r.get("offered_key", "")), []).append(r)
    ok = lambda rs: "{}/{}".format(sum(1 for r in rs if r.get("ok")), len(rs))  # noqa: E731

    for sc in ("failover", "failover-rtt10"):
        keys = [k for k in by if k[0] == sc]
        if not keys:
            continue
        lines += ["### {}".format(sc), "", next(s["describe"] for s in SCENARIOS if s["name"] == sc), "",
                  "| system | goodput before / during / after Mbit/s | during x MPTCP | during / remaining ceiling % "
                  "| loss burst / last loss after cut ms | goodput >= 90 % ms | lost in cut | restored link active ms "
                  "| carries again ms | link 1 pacing at end Mbit/s | sent into dead link | cut located by | ok |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
        for k in keys:
            rs = by[k]
            g = lambda key: _median_of(rs, lambda a: a.get(key))  # noqa: E731
            during, remaining = g("goodput_during_bps"), g("remaining_ceiling_bps")
            how = sorted({r["analysis"].get("event_located_by") for r in rs if r.get("ok")} - {None})
            mptcp_during = _median_of(by.get((sc, "mptcp", ""), []), lambda a: a.get("goodput_during_bps"))
            lines.append("| {} | {} / {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                k[1], _f(g("goodput_before_bps"), 1e6), _f(during, 1e6), _f(g("goodput_after_bps"), 1e6),
                _ratio(during, mptcp_during),
                _f(100.0 * during / remaining if during and remaining else None, digits=1),
                "{} / {}".format(_cell(rs, "loss_burst_s", 1e-3), _cell(rs, "loss_free_after_s", 1e-3)),
                _cell(rs, "goodput_back_s", 1e-3), _f(g("lost_during_cut")),
                _cell(rs, "restored_active_s", 1e-3), _cell(rs, "restored_carries_s", 1e-3),
                _f(g("link1_pacing_end_bps"), 1e6, 1), _f(g("sent_into_dead_link")), ", ".join(how) or "-",
                ok(rs)))
        lines.append("")
    keys = [k for k in by if k[0] == "ratechange"]
    if keys:
        lines += ["### ratechange", "", next(s["describe"] for s in SCENARIOS if s["name"] == "ratechange"), "",
                  "| system | goodput before Mbit/s | 300->50: settled ms | lost | goodput Mbit/s (x MPTCP) | 50->300: "
                  "settled ms | lost | goodput Mbit/s (x MPTCP) | ok |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        ref = by.get(("ratechange", "mptcp", ""), [])
        for k in keys:
            rs = by[k]
            cells = []
            for c in (1, 2):
                good = _median_of(rs, lambda a: a.get("change{}_goodput_bps".format(c)))
                cells += [_cell(rs, "change{}_settle_s".format(c), 1e-3), _cell(rs, "change{}_lost".format(c)),
                          "{} ({})".format(_f(good, 1e6), _ratio(good, _median_of(
                              ref, lambda a: a.get("change{}_goodput_bps".format(c)))))]
            lines.append("| {} | {} | {} | {} |".format(k[1], _f(_median_of(rs, lambda a: a.get(
                "goodput_before_bps")), 1e6), " | ".join(cells), ok(rs)))
        lines.append("")
    keys = [k for k in by if k[0] == "auto-hetero"]
    if keys:
        lines += ["### auto-hetero", "", next(s["describe"] for s in SCENARIOS if s["name"] == "auto-hetero"), "",
                  "| system | converged to >= 90 % ceiling ms | steady goodput Mbit/s | % ceiling | loss % | "
                  "vs mpxdp-rates | ok |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        ref = _median_of(by.get(("auto-hetero", "mpxdp-rates", ""), []), lambda a: a.get("steady_goodput_bps"))
        for k in keys:
            rs = by[k]
            steady = _median_of(rs, lambda a: a.get("steady_goodput_bps"))
            lines.append("| {} | {} | {} | {} | {} | {} | {} |".format(
                k[1], _cell(rs, "converged_s", 1e-3), _f(steady, 1e6),
                _f(_median_of(rs, lambda a: a.get("steady_pct_of_ceiling")), digits=1),
                _f(_median_of(rs, lambda a: a.get("loss_pct")), digits=2), _ratio(steady, ref), ok(rs)))
        lines.append("")
    keys = [k for k in by if k[0] == "tcp-share"]
    if keys:
        sc = next(s for s in SCENARIOS if s["name"] == "tcp-share")
        lines += ["### tcp-share", "", sc["describe"] + "; shares between {:.0f} % and {:.0f} % of the run, in "
                  "frames on the wire against link {}'s rate; goal: each at least {:.0f} %".format(
                      SHARE_FROM * 100, SHARE_TO * 100, sc["competitor"]["link"], SHARE_GOAL_PCT), "",
                  "| system | TCP Mbit/s | TCP % of link | system % of link (from) | link used % | system goodput "
                  "Mbit/s | each >= a third | ok |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for k in keys:
            rs = by[k]
            g = lambda key: _median_of(rs, lambda a: a.get(key))  # noqa: E731
            good = [r for r in rs if r.get("ok") and "analysis" in r]
            held = sum(1 for r in good if r["analysis"].get("neither_starves"))
            how = sorted({r["analysis"].get("system_link_from") for r in good} - {None})
            lines.append("| {} | {} | {} | {} ({}) | {} | {} | {}/{} runs | {} |".format(
                k[1], _f(g("tcp_bps"), 1e6, 1), _f(g("tcp_link_pct"), digits=1), _f(g("system_link_pct"), digits=1),
                ", ".join(how) or "-", _f(g("link_rx_pct"), digits=1), _f(g("goodput_bps"), 1e6), held, len(good),
                ok(rs)))
        lines.append("")
    keys = [k for k in by if k[0] == "delay-skew"]
    if keys:
        lines += ["### delay-skew", "", next(s["describe"] for s in SCENARIOS if s["name"] == "delay-skew"), "",
                  "| offered | system | goodput Mbit/s | hold p99 ms | loss % | goodput eaf/wrr | hold p99 eaf/wrr "
                  "| ok |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        offered = [("unlimited" if not o else "{}M".format(o // M)) for o in next(
            s for s in SCENARIOS if s["name"] == "delay-skew")["offered"]]
        order = [s.name for s in SYSTEMS]
        for k in sorted(keys, key=lambda k: (offered.index(k[2]), order.index(k[1]))):
            rs = by[k]
            good = _median_of(rs, lambda a: a.get("goodput_bps"))
            hold = _median_of(rs, lambda a: a.get("hold_p99_ns"))
            ratio_g = ratio_h = "-"
            if "-eaf" in k[1]:
                other = by.get((k[0], k[1].replace("-eaf", "-wrr"), k[2]), [])
                ratio_g = _ratio(good, _median_of(other, lambda a: a.get("goodput_bps")))
                ratio_h = _ratio(hold, _median_of(other, lambda a: a.get("hold_p99_ns")))
            lines.append("| {} | {} | {} | {} | {} | {} | {} | {} |".format(
                k[2], k[1], _f(good, 1e6), _f(hold, 1e6, 2), _f(_median_of(rs, lambda a: a.get("loss_pct")), digits=2),
                ratio_g, ratio_h, ok(rs)))
        lines.append("")
    failures = [r for r in runs if not r.get("ok")]
    if failures:
        lines += ["### Failed runs", ""]
        lines += ["- {} {} {} r{}: {}".format(r["scenario"], r["system"], r.get("offered_key", ""), r["repeat"] + 1,
                                              r.get("error")) for r in failures]
        lines.append("")
    if meta.get("missing"):
        lines += ["### Not in this build", ""] + ["- " + m for m in meta["missing"]] + [""]
    lines += ["Definitions: bench/README.md, \"Path control\". Plots: {}".format(
        ", ".join("`{}`".format(p) for p in meta.get("plots", [])) or "none"), ""]
    return "\n".join(lines)


def plots(out_dir, runs):
    """Goodput over time (100 ms windows, repeat 1), one line per system, link changes as vertical lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = []
    for sc in ("failover", "failover-rtt10", "ratechange"):
        first = [r for r in runs if r["scenario"] == sc and r.get("ok") and r["repeat"] == 0]
        if not first:
            continue
        fig, ax = plt.subplots(figsize=(9, 4.5))
        for r in first:  # each run on its own receiver clock, shifted so that its first change is at 0
            shift = r["analysis"]["event_rx_s"][0]
            ax.plot([p[0] - shift for p in r["timeline"]], [p[1] for p in r["timeline"]], label=r["system"],
                    drawstyle="steps-post", linewidth=1.2)
        later = _med([r["analysis"]["event_rx_s"][1] - r["analysis"]["event_rx_s"][0] for r in first
                      if len(r["analysis"]["event_rx_s"]) > 1])
        for x in [0.0] + ([later] if later is not None else []):
            ax.axvline(x, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xlabel("s since the first link change (each run's own, located on its receiver clock; dashed: "
                      "the changes)")
        ax.set_ylabel("goodput Mbit/s (100 ms windows)")
        ax.set_title("{}: goodput over time".format(sc))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        path = os.path.join(out_dir, "pathctl-{}-goodput.png".format(sc))
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="failover, ratechange, auto-hetero, delay-skew; "
                        "1 repeat of 5 s")
    parser.add_argument("--mpxdp", default=os.path.join(ROOT, "build", "apps", "mpxdp", "mpxdp"),
                        help="mpxdp binary for send/recv (default: build/apps/mpxdp/mpxdp)")
    parser.add_argument("--testbed-mpxdp", metavar="PATH",
                        help="mpxdp binary for `testbed up/set/down` (default: --mpxdp)")
    parser.add_argument("--scenarios", help="comma-separated subset of: " + ",".join(s["name"] for s in SCENARIOS))
    parser.add_argument("--systems", help="comma-separated subset of: " + ",".join(s.name for s in SYSTEMS))
    parser.add_argument("--repeats", type=int, help="runs per (scenario, system, offered rate); default 3")
    parser.add_argument("--duration", type=float, help="seconds per run; default 10 (quick 5)")
    driver.add_closing_options(parser)
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    args.repeats = args.repeats or preset["repeats"]
    args.duration = args.duration or preset["duration"]
    args.testbed_mpxdp = args.testbed_mpxdp or args.mpxdp
    driver.select(parser, args, SCENARIOS, SYSTEMS, preset["scenarios"],
                  [s.name for s in SYSTEMS if s.params.get("default", True)])
    if args.repeats < 1 or args.duration < 2:
        parser.error("--repeats must be at least 1 and --duration at least 2")
    return args


def plan(scenario, systems):
    """(system, offered, offered key) of one repeat."""
    out = []
    for s in systems:
        if scenario["name"] not in s.scenarios:
            continue
        for offered in scenario.get("offered") or [s.params.get("offered")]:
            key = "" if "offered" not in scenario else ("unlimited" if not offered else "{}M".format(offered // M))
            out.append((s, offered, key))
    return out


def estimate(scenarios, systems, args):
    return sum(3.0 + args.repeats * len(plan(sc, systems)) *
               (args.duration + 1.5 + sc.get("competitor", {}).get("lead_s", 0.0)) for sc in scenarios)


def missing_features(cli, systems):
    """What the build lacks of what these scenarios read; they degrade (figures left '-'), never fail."""
    out = []
    if not cli.has_eaf and any(s.params.get("scheduler") == "eaf" for s in systems):
        out.append("`send --scheduler eaf` (the eaf systems fail)")
    if not cli.has_pacing:
        out.append("`send --pacing` (kernel-rr-udp runs with the build's own pacing)")
    if not cli.fine_interval:
        out.append("a documented `-i` under 0.1 s (10 ms reports may be refused or late)")
    return out


def main(argv):
    args = parse_args(argv)
    if args.list:
        for s in SCENARIOS:
            print("scenario {:15s} {}".format(s["name"], s["describe"]))
        for s in SYSTEMS:
            print("system   {:16s} {} [{}]".format(s.name, s.label, ",".join(s.scenarios)))
        return 0
    driver.ensure_matplotlib(argv, __file__)
    problems = driver.common_problems((args.mpxdp, args.testbed_mpxdp), ("ip", "iperf3", "mptcpize", "ss"))
    if not problems:
        set_help = procs.run([args.testbed_mpxdp, "testbed", "set", "--help"], check=False, timeout=10)
        if set_help.returncode != 0 or "--down" not in set_help.stdout:
            problems.append("{} has no `testbed set ... --down` (pass --testbed-mpxdp with a build that has it)"
                            .format(args.testbed_mpxdp))
        left = testbeds.existing_namespaces(NAMESPACE_PREFIX)
        if left:
            problems.append("namespaces of the e2e suite exist ({}): another run is active or one was killed; "
                            "remove them with `mpxdp testbed down --name <name>`".format(", ".join(left)))
    if problems:
        for p in problems:
            print("pathctl.py: " + p, file=sys.stderr)
        return 2
    cli = Cli(os.path.abspath(args.mpxdp))
    scenarios = [s for s in SCENARIOS if s["name"] in args.scenario_names]
    total = estimate(scenarios, args.system_list, args)
    if args.dry_run:
        for sc in scenarios:
            print("{:15s} {}".format(sc["name"], ", ".join(s.name + ("@" + k if k else "") for s, _, k in
                                                          plan(sc, args.system_list))))
        print("{} repeats x {} s: estimated {:.0f} s ({:.1f} min)".format(args.repeats, args.duration, total,
                                                                         total / 60))
        return 0
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = os.path.join(args.results, stamp + "-pathctl")
    os.makedirs(out_dir, exist_ok=True)
    missing = missing_features(cli, args.system_list)
    print("bench/e2e/pathctl: {} scenarios, {} repeats x {} s; estimated {:.0f} s ({:.1f} min)".format(
        len(scenarios), args.repeats, args.duration, total, total / 60))
    print("bench/e2e/pathctl: mpxdp {} ({}); test beds by {}".format(cli.path, cli.version, args.testbed_mpxdp))
    for m in missing:
        print("bench/e2e/pathctl: this build lacks {}".format(m))
    sys.stdout.flush()
    print("bench/e2e/pathctl: results in {}".format(out_dir), flush=True)

    driver.interrupt_on_signals()
    runs = []
    started = time.monotonic()
    loadavg = open("/proc/loadavg").read().split()[:3]
    interrupted = driver.run_scenarios(scenarios, lambda sc: run_scenario(sc, args, cli, out_dir, runs),
                                       "bench/e2e/pathctl")
    reported = [r["analysis"] for r in runs if r.get("ok") and "has_rx_path_intervals" in r.get("analysis", {})]
    if reported and not any(a["has_rx_path_intervals"] for a in reported):
        missing.append("per-path `paths` in the receiver's interval reports (changes located by loss or clock; "
                       "`carries again` empty)")
    if reported and not any(a["has_path_events"] for a in reported):
        missing.append("the sender's `path_events` (`restored link active` empty)")
    if reported and not any(a.get("hold_p99_ns") is not None for a in reported):
        missing.append("the receiver's `hold_p99_ns`")
    meta = {"command": " ".join(shlex.quote(a) for a in ["python3", "bench/e2e/pathctl.py"] + argv),
            "mpxdp": os.path.relpath(cli.path, ROOT) if cli.path.startswith(ROOT + os.sep) else cli.path,
            "mpxdp_version": cli.version,
            "testbed_mpxdp": args.testbed_mpxdp, "date": datetime.datetime.now().astimezone().isoformat(
                timespec="seconds"), "repeats": args.repeats, "duration": args.duration, "loadavg": loadavg,
            "machine": testbeds.machine_description(), "missing": missing, "wall_s": time.monotonic() - started,
            "interrupted": interrupted}
    try:
        meta["plots"] = [os.path.relpath(p, ROOT) for p in plots(out_dir, runs)]
    except Exception as error:  # the tables and JSON stand without plots
        print("bench/e2e/pathctl: plotting failed: {}".format(error), file=sys.stderr)
    text = report_tables(runs, meta)
    driver.write_outputs(out_dir, text, meta, runs,
                         ("recv_report", "send_report", "server_report", "client_report", "timeline"))
    print("\n" + text)
    print("{} runs, {} failed, wall {:.0f} s. Report: {}".format(len(runs), sum(1 for r in runs if not r.get("ok")),
                                                                meta["wall_s"], os.path.join(out_dir, "report.md")))
    return 130 if interrupted else 0


def run_scenario(sc, args, cli, out_dir, runs):
    """Every repeat of one scenario on its own test bed, removed afterwards whatever happens."""
    bed = PathTestbed(args.testbed_mpxdp, NAME_PREFIX + sc["bed"], sc["rates"], sc["delays"])
    run_dir = os.path.join(out_dir, sc["name"])
    os.makedirs(run_dir, exist_ok=True)

    def run_one(item, repeat):
        system, offered, key = item
        tag = "{}{}-r{}".format(system.name, "-" + key if key else "", repeat + 1)
        result = {"scenario": sc["name"], "system": system.name, "label": system.label, "repeat": repeat,
                  "offered_key": key, "testbed": bed.name, "rates_bps": bed.rates_bps,
                  "delays": sc["delays"], "duration_req_s": args.duration, "ok": False, "events": []}

        def run():
            def system_run():
                RUNNERS[system.runner](system, sc, bed, cli, run_dir, tag, args.duration, offered, result)
            if sc.get("competitor"):
                run_with_competitor(system_run, sc, bed, run_dir, tag, args.duration, result)
            else:
                system_run()
            if result.get("ok"):
                analyse(result, sc, system, bed)
        result["wall_s"] = driver.guarded_run(result, bed, run, sc["reset"], _fail, kill=False)
        return tag, result

    driver.drive_scenario(sc["name"], bed, [plan(sc, args.system_list)], args.repeats, run_one, print_run, run_dir,
                          runs, 15, key=lambda item: (item[0].name, item[2]),
                          prevented=lambda item, repeat, why: {"scenario": sc["name"], "system": item[0].name,
                                                               "offered_key": item[2], "repeat": repeat, "ok": False,
                                                               "error": why})


def print_run(r):
    head = "  {:15s} {:16s} {:9s} r{}".format(r["scenario"], r["system"], r.get("offered_key", ""), r["repeat"] + 1)
    if not r.get("ok"):
        print(head + "  FAILED: " + str(r.get("error")), flush=True)
        return
    a = r["analysis"]
    parts = ["{} Mbit/s".format(_f(a.get("goodput_bps"), 1e6, 1))]
    for key, label, scale, digits in (("loss_pct", "loss %", 1, 2), ("goodput_during_bps", "during Mbit/s", 1e6, 0),
                                      ("loss_free_after_s", "loss-free after ms", 1e-3, 0),
                                      ("goodput_back_s", ">=90 % after ms", 1e-3, 0),
                                      ("restored_active_s", "restored active after ms", 1e-3, 0),
                                      ("converged_s", "converged ms", 1e-3, 0),
                                      ("hold_p99_ns", "hold p99 ms", 1e6, 2),
                                      ("tcp_link_pct", "TCP % of link", 1, 1),
                                      ("system_link_pct", "system % of link", 1, 1)):
        if a.get(key) is not None:
            parts.append("{} {}".format(label, _f(a[key], scale, digits)))
    for c in a.get("changes", []):
        parts.append("settled {} ms".format(_f(c["settle_s"], 1e-3, none="never")))
    print(head + "  " + ", ".join(parts), flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
