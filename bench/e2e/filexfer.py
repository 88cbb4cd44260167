#!/usr/bin/python3
"""Reliable mode and file transfer (issue 9) on the local test bed, run as root:

    python3 bench/e2e/filexfer.py [--scenarios a,b] [--systems a,b] [--repeats N] [--duration S] [--file-mb MB]

File scenarios: one random file (--file-mb, made once per run under its results directory) carried by
`mpxdp send -F` / `recv -F` (reliable), by one MPTCP connection (one subflow per link) and by one TCP
connection on link 0, on 3 x 300 Mbit/s and 3 x 1 Gbit/s with 0 % and 1 % random loss on link 1: time,
goodput, CPU per GB, retransmissions and whether the received file is byte-identical.
Stream scenarios (the test pattern, no file): `send --reliable` under 1 % loss and under a link cut,
`send --redundant` under 10 % loss against `--reliable` on the same links.
See bench/README.md ("Reliable mode and file transfer").
"""
import atexit
import datetime
import glob
import hashlib
import json
import os
import shlex
import shutil
import statistics
import sys
import time

sys.dont_write_bytecode = True  # keep bench/e2e/ free of __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import driver  # noqa: E402  (the scenario loop)
import metrics  # noqa: E402
import pathctl  # noqa: E402  (PathTestbed, link changes while traffic flows)
import procs  # noqa: E402
import systems as systems_mod  # noqa: E402
import testbeds  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TCPFILE = os.path.join(HERE, "tcpfile.py")
M = 1_000_000
G = 1_000_000_000
MB = 1_000_000
STREAM_PAYLOAD = 1024     # the pattern scenarios' payload, as in the other suites
PORT = 5301               # tcpfile.py (iperf3 keeps systems_mod.IPERF_PORT)
CUT_AT, RESTORE_AT = 0.3, 0.6
MAX_STALL_GOAL_MS = 200.0
MIN_FILE_MB = 10
DISK_MARGIN = 1 << 30     # free bytes left over after the file and one received copy


def _loss_text(loss):
    """[0, 0.01, 0] -> "0,1%,0" (testbed up --loss)."""
    return ",".join("0" if not p else "{:g}%".format(100.0 * p) for p in loss)


FILE_SYSTEMS = ("mpxdp-file", "mptcp-file", "tcp-file", "mptcp-iperf3", "tcp-iperf3")
SCENARIOS = [
    {"name": "file-300", "kind": "file", "bed": "fx-300", "rates": [300 * M] * 3, "loss": [0, 0, 0],
     "describe": "3 x 300 Mbit/s, no loss"},
    {"name": "file-300-loss", "kind": "file", "bed": "fx-300l", "rates": [300 * M] * 3, "loss": [0, 0.01, 0],
     "describe": "3 x 300 Mbit/s, 1 % random loss on link 1 (each direction)"},
    {"name": "file-1g", "kind": "file", "bed": "fx-1g", "rates": [G] * 3, "loss": [0, 0, 0],
     "describe": "3 x 1 Gbit/s, no loss"},
    {"name": "file-1g-loss", "kind": "file", "bed": "fx-1gl", "rates": [G] * 3, "loss": [0, 0.01, 0],
     "describe": "3 x 1 Gbit/s, 1 % random loss on link 1 (each direction)"},
    {"name": "reliable-loss", "kind": "stream", "bed": "fx-rloss", "rates": [300 * M] * 3, "loss": [0, 0.01, 0],
     "describe": "3 x 300 Mbit/s, 1 % random loss on link 1; the pattern stream for --duration s, offered "
                 "unlimited (each path paced at its test bed rate)"},
    {"name": "reliable-cut", "kind": "stream", "bed": "fx-rcut", "rates": [300 * M] * 3, "loss": [0, 0, 0],
     "events": [(CUT_AT, 1, ["--down"]), (RESTORE_AT, 1, ["--up"])], "reset": [(1, ["--up"])],
     "describe": "3 x 300 Mbit/s, link 1 cut (`testbed set --down`) at 30 % of the run, restored at 60 %; "
                 "offered unlimited"},
    {"name": "redundant-loss", "kind": "stream", "bed": "fx-rdup", "rates": [300 * M] * 2, "loss": [0, 0.10],
     "offered_bps": 200 * M,
     "describe": "2 x 300 Mbit/s, 10 % random loss on link 1; every system offered 200 Mbit/s of payload (what "
                 "redundant mode, each payload on both links, can carry)"},
]


class FxSystem:
    """runner: 'mpxdp-file', 'tcpfile', 'iperf3-file' or 'mpxdp-stream'; scenarios: the kinds or names it runs in;
    default: in the set run without --systems."""

    def __init__(self, name, label, runner, scenarios, default=True, **params):
        self.name = name
        self.label = label
        self.runner = runner
        self.scenarios = scenarios
        self.default = default
        self.params = params


STREAMS = ("reliable-loss", "reliable-cut", "redundant-loss")
SYSTEMS = [
    FxSystem("mpxdp-file", "mpxdp send -F / recv -F (reliable, AF_XDP, test bed rates, MTU-size payload)",
             "mpxdp-file", ("file",)),
    FxSystem("mptcp-file", "MPTCP, one subflow per link: tcpfile.py (sendfile, receiver writes + fsyncs)",
             "tcpfile", ("file",), mptcp=True),
    FxSystem("tcp-file", "TCP on link 0: tcpfile.py (sendfile, receiver writes + fsyncs)", "tcpfile", ("file",),
             mptcp=False),
    FxSystem("mptcp-iperf3", "iperf3 -F through mptcpize (3.12 drops the bytes in flight at the end: reference only)",
             "iperf3-file", ("file",), default=False, mptcp=True),
    FxSystem("tcp-iperf3", "iperf3 -F on link 0 (3.12 drops the bytes in flight at the end: reference only)",
             "iperf3-file", ("file",), default=False, mptcp=False),
    FxSystem("mpxdp-reliable", "mpxdp send --reliable (recv --reliable), AF_XDP, window reorder", "mpxdp-stream",
             STREAMS, mode="reliable"),
    FxSystem("mpxdp-redundant", "mpxdp send --redundant (not reliable), AF_XDP, window reorder", "mpxdp-stream",
             ("redundant-loss",), mode="redundant"),
    FxSystem("mpxdp-plain", "mpxdp send without --reliable (reference: what the loss costs unprotected)",
             "mpxdp-stream", STREAMS, mode="plain"),
]


def runs_in(system, scenario):
    return scenario["kind"] in system.scenarios or scenario["name"] in system.scenarios


class Cli(pathctl.Cli):
    """The build's send/recv: reliable mode, redundant mode and -F read from --help."""

    def __init__(self, path):
        super().__init__(path)
        self.has_reliable = "--reliable" in self.send_help
        self.has_redundant = "--redundant" in self.send_help
        self.has_file = "--file" in self.send_help


# ---------------------------------------------------------------------------------------------- helpers


def busy_seconds(delta):
    """Whole-machine busy CPU seconds of a /proc/stat delta (everything but idle, iowait and steal)."""
    return sum(v for k, v in delta.items() if k not in ("idle", "iowait", "steal"))


def sha256_of(path, chunk=4 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                return h.hexdigest()
            h.update(block)


def make_file(path, size):
    """`size` random bytes at `path`; returns their SHA-256."""
    h = hashlib.sha256()
    left = size
    with open(path, "wb") as f:
        while left:
            block = os.urandom(min(left, 4 << 20))
            h.update(block)
            f.write(block)
            left -= len(block)
    return h.hexdigest()


def file_size_for(out_dir, wanted_mb):
    """The file size that fits: the source and one received copy plus DISK_MARGIN. Returns (bytes, note)."""
    free = shutil.disk_usage(out_dir).free
    wanted = wanted_mb * MB
    fits = (free - DISK_MARGIN) // 2
    if fits >= wanted:
        return wanted, None
    if fits < MIN_FILE_MB * MB:
        raise RuntimeError("{:.1f} GB free under {}: not enough for a {} MB file and its received copy".format(
            free / 1e9, out_dir, MIN_FILE_MB))
    size = fits // MB * MB
    return size, "only {:.1f} GB free under {}: file shrunk from {} MB to {} MB".format(
        free / 1e9, out_dir, wanted_mb, size // MB)


def disk_check(path, size, out_dir):
    """How fast this disk reads the file (`dd` to /dev/null: page cache, as the transfers read it) and writes
    the same size with fsync (as the receivers do). Bytes per second, or None when dd failed."""
    out = {}
    t = time.monotonic()
    r = procs.run(["dd", "if=" + path, "of=/dev/null", "bs=1M"], timeout=300, check=False)
    out["read_s"] = time.monotonic() - t
    out["read_Bps"] = size / out["read_s"] if r.returncode == 0 else None
    probe = os.path.join(out_dir, "disk-write-probe.bin")
    t = time.monotonic()
    w = procs.run(["dd", "if=/dev/zero", "of=" + probe, "bs=1M", "count={}".format(max(1, size // (1 << 20))),
                   "conv=fsync"], timeout=300, check=False)
    out["write_s"] = time.monotonic() - t
    out["write_Bps"] = (size // (1 << 20) << 20) / out["write_s"] if w.returncode == 0 else None
    if os.path.exists(probe):
        os.unlink(probe)
    return out


def tcp_retrans(bed):
    """TcpRetransSegs of the sender namespace (MPTCP subflows are TCP and count here)."""
    text = procs.run(bed.netns(bed.tx, "cat", "/proc/net/snmp"), timeout=10).stdout.splitlines()
    rows = [line.split() for line in text if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("RetransSegs")])


def _tool_error(proc):
    """What a failed side says in its JSON report (mpxdp's file error, how it ended), or None."""
    try:
        report = json.loads(proc.stdout())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict):
        return None
    why = (report.get("file") or {}).get("error") or report.get("error")
    if why:
        return "{}: {}".format(report.get("role", "?"), why)
    if report.get("ended_by") not in (None,) + systems_mod.NORMAL_ENDINGS:
        return "{} ended by {}".format(report.get("role", "?"), report["ended_by"])
    return None


def _fail(result, why, *children):
    return pathctl._fail(result, why, *children)


def _files(run_dir, tag, role):
    return pathctl._files(run_dir, tag, role)


def _transfer(result, bed, events, budget_s, start_server, server_ready, client_argv, run_dir, tag, names):
    """Starts the server, waits until it is ready, launches the client and waits for both (firing the link
    changes), all under `budget_s`. Fills wall time, CPU (rusage and the machine's /proc/stat) and link byte
    counters. Returns (server, client) or a failed result."""
    server = start_server()
    client = None
    try:
        if not server_ready(server):
            return _fail(result, "{} not ready (exit {})".format(names[1], server.poll()), server)
        links_before = bed.link_bytes()
        cpu_before = procs.read_cpu_times()
        t_launch = time.monotonic()
        client = procs.Proc(client_argv, *_files(run_dir, tag, names[2]))
        pathctl._drive(client, server, bed, events, budget_s, t_launch, result["events"])
        t_end = time.monotonic()
        cpu_delta = procs.cpu_delta(cpu_before, procs.read_cpu_times())
        failure = pathctl._check_ended(result, client, server, names[:2])
        if failure is not None:
            why = [w for w in (_tool_error(client), _tool_error(server)) if w]
            if why:
                failure["error"] += "; " + "; ".join(why)
            return failure
    finally:
        for child in (client, server):
            if child is not None:
                child.kill()
    result["wall_s"] = t_end - t_launch
    result["machine_cpu_s"] = {k: round(v, 3) for k, v in cpu_delta.items()}
    result["busy_s"] = busy_seconds(cpu_delta)
    result["cpu_sender_s"] = client.cpu_seconds()
    result["cpu_receiver_s"] = server.cpu_seconds()
    links_after = bed.link_bytes()
    delta = {side: [a - b for a, b in zip(links_after[side], links_before[side])] for side in links_after}
    result["link_bytes"] = delta
    total = sum(delta["tx"])
    if total:
        result["link_share_pct"] = [100.0 * b / total for b in delta["tx"]]
        # As run.py flags it: a multipath run where a link carried under 1 % of the bytes (e.g. an MPTCP subflow
        # that never joined).
        result["all_links_used"] = all(b > 0.01 * total for b in delta["tx"])
    return server, client


# ---------------------------------------------------------------------------------------------- runners


def _reports(result, receiver, sender):
    """The JSON reports the receiver and the sender of a transfer printed, kept in `result`."""
    recv = json.loads(receiver.stdout())
    send = json.loads(sender.stdout())
    result["recv_report"] = recv
    result["send_report"] = send
    return recv, send


def _run_mpxdp_pair(result, bed, sc, ctx, tag, recv_argv, send_argv, budget_s):
    """Runs `mpxdp recv` then `mpxdp send` on the test bed; their JSON reports, or the failed result."""
    result["commands"] = [" ".join(map(str, recv_argv)), " ".join(map(str, send_argv))]
    got = _transfer(result, bed, sc.get("events", []), budget_s,
                    lambda: procs.Proc(recv_argv, *_files(ctx["run_dir"], tag, "recv")),
                    lambda p: p.wait_for_stderr("mpxdp recv: ready", systems_mod.START_TIMEOUT_S),
                    send_argv, ctx["run_dir"], tag, ("sender", "receiver", "send"))
    if isinstance(got, dict):
        return got
    return _reports(result, *got)


def run_mpxdp_file(system, sc, bed, ctx, tag, result):
    cli = ctx["cli"]
    out = ctx["recv_path"]
    recv_argv = [cli.path, "recv", "--testbed", bed.name, "-F", out, "--backend", "xdp", "-i", "0", "-J"]
    send_argv = [cli.path, "send", "--testbed", bed.name, "-F", ctx["file"], "-l", cli.mtu_payload,
                 "--backend", "xdp", "-i", "0", "-J"]
    result["payload"] = cli.mtu_payload
    got = _run_mpxdp_pair(result, bed, sc, ctx, tag, recv_argv, send_argv, ctx["budget_s"])
    if isinstance(got, dict):
        return got
    recv, send = got
    rf, sf = recv.get("file") or {}, send.get("file") or {}
    result["tool_s"] = recv.get("duration_s")
    result["retransmitted"] = send.get("retransmitted")
    result["tool_verified"] = rf.get("verified")
    result["received_bytes"] = rf.get("bytes")
    result["read_io_s"] = (sf.get("io_ns") or 0) / 1e9 if sf.get("io_ns") is not None else None
    result["write_io_s"] = (rf.get("io_ns") or 0) / 1e9 if rf.get("io_ns") is not None else None
    result["sync_s"] = rf["sync_ns"] / 1e9 if rf.get("sync_ns") is not None else None
    result["max_stall_ms"] = recv.get("max_stall_ms")
    result["flow_blocked_ms"] = send.get("flow_blocked_ms")
    return _verify(result, ctx, out)


def _tcp_transfer(result, bed, sc, ctx, tag, mptcp, start_server, server_ready, client_argv, names):
    """A TCP (or MPTCP) transfer with the sender namespace's retransmissions counted; the two processes
    (server, client), or the failed result."""
    if mptcp:
        bed.enable_mptcp()
    try:
        retrans_before = tcp_retrans(bed)
        got = _transfer(result, bed, sc.get("events", []), ctx["budget_s"], start_server, server_ready,
                        client_argv, ctx["run_dir"], tag, names)
        if not isinstance(got, dict):
            result["retransmitted"] = tcp_retrans(bed) - retrans_before
        return got
    finally:
        if mptcp:
            bed.disable_mptcp()


def run_tcpfile(system, sc, bed, ctx, tag, result):
    mptcp = system.params["mptcp"]
    out = ctx["recv_path"]
    py = sys.executable or "/usr/bin/python3"
    timeout = ["--timeout", str(int(ctx["budget_s"]))] + (["--mptcp"] if mptcp else [])
    recv_argv = bed.netns(bed.rx, py, TCPFILE, "recv", "--port", PORT, "--out", out, *timeout)
    send_argv = bed.netns(bed.tx, py, TCPFILE, "send", "--host", bed.receiver_ip(0), "--port", PORT, "--file",
                          ctx["file"], *timeout)
    result["commands"] = [" ".join(map(str, recv_argv)), " ".join(map(str, send_argv))]
    got = _tcp_transfer(result, bed, sc, ctx, tag, mptcp,
                        lambda: procs.Proc(recv_argv, *_files(ctx["run_dir"], tag, "recv")),
                        lambda p: p.wait_for_stderr("tcpfile: ready", systems_mod.START_TIMEOUT_S),
                        send_argv, ("sender", "receiver", "send"))
    if isinstance(got, dict):
        return got
    recv, send = _reports(result, *got)
    result["tool_s"] = recv.get("seconds")
    result["received_bytes"] = recv.get("bytes")
    result["write_io_s"] = recv["io_ns"] / 1e9
    result["sync_s"] = recv["sync_ns"] / 1e9
    return _verify(result, ctx, out)


def run_iperf3_file(system, sc, bed, ctx, tag, result):
    """iperf3 -F on both sides (reference only: 3.12 ends the test before the bytes in flight are written)."""
    mptcp = system.params["mptcp"]
    out = ctx["recv_path"]
    port = systems_mod.IPERF_PORT
    wrap = ["mptcpize", "run"] if mptcp else []
    server_argv = bed.netns(bed.rx, *wrap, "iperf3", "-s", "-1", "-J", "-p", port, "-F", out)
    client_argv = bed.netns(bed.tx, *wrap, "iperf3", "-c", bed.receiver_ip(0), "-p", port, "-J", "-F", ctx["file"])
    result["commands"] = [" ".join(map(str, server_argv)), " ".join(map(str, client_argv))]
    got = _tcp_transfer(result, bed, sc, ctx, tag, mptcp,
                        lambda: procs.Proc(server_argv, *_files(ctx["run_dir"], tag, "server")),
                        lambda p: systems_mod._wait_listening(bed, p, port), client_argv,
                        ("client", "server", "client"))
    if isinstance(got, dict):
        return got
    server, client = got
    server_report = json.loads(server.stdout())
    result["server_report"] = server_report
    result["client_report"] = json.loads(client.stdout())
    if "error" in server_report:
        return _fail(result, "iperf3: {}".format(server_report["error"]))
    result["tool_s"] = server_report["end"]["sum_received"]["seconds"]
    result["received_bytes"] = server_report["end"]["sum_received"]["bytes"]
    return _verify(result, ctx, out)


def _verify(result, ctx, out):
    """Byte-identical? The received file's size and SHA-256 against the source's; the received copy is removed."""
    try:
        if os.path.exists(out):
            result["out_bytes"] = os.path.getsize(out)
            result["out_sha256"] = sha256_of(out)
        else:
            result["out_bytes"] = 0
            result["out_sha256"] = None
    finally:
        for path in (out,):
            if os.path.exists(path):
                os.unlink(path)
    result["identical"] = result["out_sha256"] == ctx["sha256"] and result["out_bytes"] == ctx["file_bytes"]
    seconds = result["wall_s"]
    result["goodput_bps"] = 8.0 * ctx["file_bytes"] / seconds if seconds and result["identical"] else None
    result["delivered_bps"] = 8.0 * result["out_bytes"] / seconds if seconds else None
    result["goodput_tool_bps"] = 8.0 * ctx["file_bytes"] / result["tool_s"] if result.get("tool_s") and \
        result["identical"] else None
    _cpu_per_gb(result, ctx["file_bytes"])
    result["ok"] = True
    return result


def _cpu_per_gb(result, moved):
    """CPU seconds per GB moved: the whole machine's busy time (what the brief asks for; it includes other users'
    work on a shared machine) and, as metrics.derive does for the other suites, the two processes' own time
    (rusage) plus the machine's softirq time (veth delivery runs there)."""
    if not moved:
        return
    result["cpu_s_per_gb"] = result["busy_s"] / (moved / 1e9)
    own = [result.get("cpu_sender_s"), result.get("cpu_receiver_s"), result["machine_cpu_s"].get("softirq")]
    if all(v is not None for v in own):
        result["cpu_procs_s_per_gb"] = sum(own) / (moved / 1e9)


def _cut_figures(result):
    """Goodput before and during the cut from the receiver's 0.1 s intervals, the cut located on its clock as
    pathctl.py does (its clock starts after the handshake, not at the sender's launch)."""
    ivs = pathctl.intervals_of(result)
    if not ivs:
        return
    t_cut, how = pathctl.locate_first_event(result, ivs)
    events = result["events"]
    offset = events[0].get("after_s", events[0]["clock_s"]) - t_cut
    t_restore = events[1].get("after_s", events[1]["clock_s"]) - offset if len(events) > 1 else ivs[-1]["end"]
    result["cut_located_by"] = how
    result["goodput_before_cut_bps"] = pathctl.mean_bps(ivs, max(0.5 * t_cut, t_cut - 2.0), t_cut)
    result["goodput_during_cut_bps"] = pathctl.mean_bps(ivs, t_cut, t_restore)
    result["lost_during_cut"] = pathctl.lost_between(ivs, t_cut, t_restore)


def run_mpxdp_stream(system, sc, bed, ctx, tag, result):
    cli = ctx["cli"]
    mode = system.params["mode"]
    interval = "0.1" if sc.get("events") else "0"
    recv_argv = [cli.path, "recv", "-1", "--testbed", bed.name, "--backend", "xdp", "--reorder", "window", "-i",
                 interval, "-J"]
    send_argv = [cli.path, "send", "--testbed", bed.name, "-t", pathctl._num(ctx["duration"]), "-l", STREAM_PAYLOAD,
                 "--backend", "xdp", "-i", interval, "-J"]
    if mode == "reliable":
        recv_argv.append("--reliable")
        send_argv.append("--reliable")
    elif mode == "redundant":
        send_argv.append("--redundant")
    if sc.get("offered_bps"):
        send_argv += ["-b", int(sc["offered_bps"])]
    result["payload"] = STREAM_PAYLOAD
    got = _run_mpxdp_pair(result, bed, sc, ctx, tag, recv_argv, send_argv, ctx["duration"])
    if isinstance(got, dict):
        return got
    recv, send = got
    result["goodput_bps"] = recv.get("goodput_bps")
    result["delivered_packets"] = recv.get("delivered_packets")
    result["lost_packets"] = recv.get("lost_packets")
    result["duplicates"] = recv.get("duplicate_packets", recv.get("duplicates"))
    result["hold_p99_ns"] = recv.get("hold_p99_ns")
    result["max_stall_ms"] = recv.get("max_stall_ms")
    result["flow_blocked_ms"] = send.get("flow_blocked_ms")
    result["retransmitted"] = send.get("retransmitted")
    result["redundant_copies"] = send.get("redundant_copies")
    result["sent_packets"] = send.get("sent_packets")
    sent = send.get("sent_packets")
    if sent is not None and result["delivered_packets"] is not None:
        # sent_packets counts retransmissions and redundant copies: each payload once is the rest.
        unique = sent - (result["retransmitted"] or 0) - (result["redundant_copies"] or 0)
        result["unique_sent_packets"] = unique
        result["undelivered_packets"] = max(0, unique - result["delivered_packets"])
    _cpu_per_gb(result, recv.get("delivered_bytes") or 0)
    if result["events"]:
        _cut_figures(result)
    fraction = metrics.ceiling_fraction("mpxdp", STREAM_PAYLOAD)
    result["ceiling_bps"] = bed.link_sum_bps * fraction
    # What the links carry once the loss (and the cut) is taken off: each link's rate x (1 - loss), link 1 less
    # for the share of the run it was down.
    usable = sum(r * (1 - p) for r, p in zip(bed.rates_bps, sc["loss"]))
    for (frac, link, args), nxt in zip(sc.get("events", []), sc.get("events", [])[1:] + [(1.0, None, None)]):
        if "--down" in args:
            usable -= bed.rates_bps[link] * (1 - sc["loss"][link]) * (nxt[0] - frac)
    result["ceiling_less_loss_bps"] = usable * fraction
    if result["goodput_bps"]:
        result["pct_of_ceiling"] = 100.0 * result["goodput_bps"] / result["ceiling_bps"]
        result["pct_of_ceiling_less_loss"] = 100.0 * result["goodput_bps"] / result["ceiling_less_loss_bps"]
    result["ok"] = True
    return result


RUNNERS = {"mpxdp-file": run_mpxdp_file, "tcpfile": run_tcpfile, "iperf3-file": run_iperf3_file,
           "mpxdp-stream": run_mpxdp_stream}


# ---------------------------------------------------------------------------------------------- report


def _med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _max(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


def _f(value, scale=1.0, digits=0):
    return "-" if value is None else "{:.{d}f}".format(value / scale, d=digits)


def _ratio(a, b):
    return "{:.2f}".format(a / b) if a is not None and b else "-"


def _shares(rs):
    """Median share of the bytes each sender interface carried, "a/b/c"."""
    shares = [r["link_share_pct"] for r in rs if r.get("link_share_pct")]
    text = "/".join(_f(_med(list(c))) for c in zip(*shares)) if shares else "-"
    missed = sum(1 for r in rs if r.get("all_links_used") is False and not r["system"].startswith("tcp-"))
    return text + (" ({} run(s) missed a link)".format(missed) if missed else "")


def _oks(rs):
    return [r for r in rs if r.get("ok")]


def goals(by):
    """The issue-9 benchmark goals as figures: (goal, PASS/MISS/n/a, figures)."""
    out = []

    def runs(sc, system):
        return _oks(by.get((sc, system), []))

    rs = runs("reliable-loss", "mpxdp-reliable")
    name = "reliable-loss: --reliable under 1 % loss on link 1 loses nothing"
    if rs:
        lost = _max([(r.get("lost_packets") or 0) + (r.get("undelivered_packets") or 0) for r in rs])
        out.append((name, "PASS" if lost == 0 else "MISS", "lost + undelivered: max {} per run; goodput {} Mbit/s = "
                    "{} % of the header ceiling less the loss ({} Mbit/s); retransmitted {}".format(
                        lost, _f(_med([r.get("goodput_bps") for r in rs]), 1e6),
                        _f(_med([r.get("pct_of_ceiling_less_loss") for r in rs]), digits=1),
                        _f(_med([r.get("ceiling_less_loss_bps") for r in rs]), 1e6),
                        _f(_med([r.get("retransmitted") for r in rs])))))
    else:
        out.append((name, "n/a", "no data"))
    rs = runs("reliable-cut", "mpxdp-reliable")
    name = "reliable-cut: --reliable through a link cut loses nothing, longest stall < {:.0f} ms".format(
        MAX_STALL_GOAL_MS)
    if rs:
        lost = _max([(r.get("lost_packets") or 0) + (r.get("undelivered_packets") or 0) for r in rs])
        stall = _max([r.get("max_stall_ms") for r in rs])
        ok = lost == 0 and stall is not None and stall < MAX_STALL_GOAL_MS
        out.append((name, "PASS" if ok else "MISS", "lost + undelivered: max {} per run; max_stall_ms: max {} "
                    "(median {})".format(lost, _f(stall, digits=1), _f(_med([r.get("max_stall_ms") for r in rs]),
                                                                        digits=1))))
    else:
        out.append((name, "n/a", "no data"))
    red, rel = runs("redundant-loss", "mpxdp-redundant"), runs("redundant-loss", "mpxdp-reliable")
    name = "redundant-loss: --redundant under 10 % loss on link 1 loses nothing, drops the duplicates"
    if red:
        lost = _max([(r.get("lost_packets") or 0) + (r.get("undelivered_packets") or 0) for r in red])
        dup = _med([r.get("duplicates") for r in red])
        out.append((name, "PASS" if lost == 0 and dup else "MISS", "lost + undelivered: max {} per run; duplicates "
                    "dropped {} (median), redundant copies {}".format(
                        lost, _f(dup), _f(_med([r.get("redundant_copies") for r in red])))))
    else:
        out.append((name, "n/a", "no data"))
    name = "redundant-loss: hold p99 of --redundant below --reliable's (no retransmission delay)"
    h_red, h_rel = _med([r.get("hold_p99_ns") for r in red]), _med([r.get("hold_p99_ns") for r in rel])
    if h_red is not None and h_rel is not None:
        out.append((name, "PASS" if h_red < h_rel else "MISS", "{} ms vs {} ms ({} x)".format(
            _f(h_red, 1e6, 3), _f(h_rel, 1e6, 3), _ratio(h_red, h_rel))))
    else:
        out.append((name, "n/a", "no data"))
    for sc in (s["name"] for s in SCENARIOS if s["kind"] == "file"):
        keys = [k for k in by if k[0] == sc]
        if not keys:
            continue
        bad = [(k[1], r["repeat"] + 1) for k in keys for r in by[k] if r.get("ok") and not r.get("identical")
               and not k[1].endswith("-iperf3")]
        failed = sum(1 for k in keys for r in by[k] if not r.get("ok"))
        mp, ref = _med([r.get("goodput_bps") for r in runs(sc, "mpxdp-file")]), \
            _med([r.get("goodput_bps") for r in runs(sc, "mptcp-file")])
        text = "mpxdp {} Mbit/s vs MPTCP {} Mbit/s = {} x".format(_f(mp, 1e6), _f(ref, 1e6), _ratio(mp, ref))
        if bad:
            text += "; NOT identical: " + ", ".join("{} r{}".format(*b) for b in bad)
        if failed:
            text += "; {} failed run(s)".format(failed)
        out.append(("{}: every received file byte-identical (sha256)".format(sc),
                    "PASS" if not bad and not failed else "MISS", text))
    return out


def report_tables(runs, meta):
    lines = ["## Reliable mode and file transfer (issue 9)", "",
             "Command: `{}`  ".format(meta["command"]),
             "mpxdp: `{}` ({}); date {}; {} repeat(s); medians over the repeats (max where a goal needs the worst "
             "run). Load average at start: {}.{}".format(meta["mpxdp"], meta["mpxdp_version"], meta["date"],
                                                         meta["repeats"], " ".join(meta["loadavg"]),
                                                         " INTERRUPTED: the runs done so far." if
                                                         meta.get("interrupted") else "")]
    if meta.get("file_bytes"):
        disk = meta.get("disk") or {}
        lines.append("File: {} MB of random bytes, sha256 `{}`{}. Disk: `dd` reads it at {} MB/s (page cache, as "
                     "the senders read it), writes the same size with fsync at {} MB/s.".format(
                         meta["file_bytes"] // MB, meta["sha256"][:16] + "...",
                         " ({})".format(meta["file_note"]) if meta.get("file_note") else "",
                         _f(disk.get("read_Bps"), MB), _f(disk.get("write_Bps"), MB)))
    if meta.get("stream_duration"):
        lines.append("Stream scenarios: {} s per run, {} B payload.".format(meta["stream_duration"], STREAM_PAYLOAD))
    lines.append("")
    by = {}
    for r in runs:
        by.setdefault((r["scenario"], r["system"]), []).append(r)
    ok = lambda rs: "{}/{}".format(len(_oks(rs)), len(rs))  # noqa: E731

    lines += ["### Goals", "", "| goal | status | figures |", "| --- | --- | --- |"]
    lines += ["| {} | {} | {} |".format(*g) for g in goals(by)] + [""]

    for sc in SCENARIOS:
        keys = [k for k in by if k[0] == sc["name"]]
        if not keys:
            continue
        lines += ["### {}".format(sc["name"]), "", sc["describe"], ""]
        if sc["kind"] == "file":
            lines += ["| system | time s (tool s) | goodput Mbit/s (by tool s) | x MPTCP | CPU s/GB machine (procs) | "
                      "retransmitted | identical (sha256) | read / write / fsync s | link shares % | ok |",
                      "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: |"]
            ref = _med([r.get("goodput_bps") for r in _oks(by.get((sc["name"], "mptcp-file"), []))])
            for k in keys:
                rs = _oks(by[k])
                g = lambda key: _med([r.get(key) for r in rs])  # noqa: E731
                ident = sum(1 for r in rs if r.get("identical"))
                got = _med([r.get("out_bytes") for r in rs])
                ident_text = "{}/{}".format(ident, len(rs))
                if rs and ident < len(rs) and got is not None:
                    ident_text += " (received {} of {} B)".format(int(got), meta["file_bytes"])
                lines.append("| {} | {} ({}) | {} ({}) | {} | {} ({}) | {} | {} | {} / {} / {} | {} | {} |".format(
                    k[1], _f(g("wall_s"), digits=2), _f(g("tool_s"), digits=2), _f(g("goodput_bps"), 1e6),
                    _f(g("goodput_tool_bps"), 1e6), _ratio(g("goodput_bps"), ref), _f(g("cpu_s_per_gb"), digits=2),
                    _f(g("cpu_procs_s_per_gb"), digits=2), _f(g("retransmitted")),
                    ident_text, _f(g("read_io_s"), digits=2), _f(g("write_io_s"), digits=2), _f(g("sync_s"), digits=2),
                    _shares(rs), ok(by[k])))
        else:
            cut_lines = []
            lines += ["| system | goodput Mbit/s | % header ceiling | % ceiling less loss | lost (max) | undelivered "
                      "(max) | retransmitted | redundant copies | duplicates | max stall ms (max) | flow blocked ms | "
                      "hold p99 ms | CPU s/GB machine (procs) | link shares % | ok |",
                      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- "
                      "| ---: |"]
            cut = [k for k in keys if any(r.get("goodput_during_cut_bps") is not None for r in by[k])]
            for k in keys:
                rs = _oks(by[k])
                g = lambda key: _med([r.get(key) for r in rs])  # noqa: E731
                mx = lambda key: _max([r.get(key) for r in rs])  # noqa: E731
                if cut:
                    cut_lines.append("| {} | {} | {} | {} | {} |".format(
                        k[1], _f(g("goodput_before_cut_bps"), 1e6), _f(g("goodput_during_cut_bps"), 1e6),
                        _f(mx("lost_during_cut")), ", ".join(sorted({r.get("cut_located_by") for r in rs} - {None}))
                        or "-"))
                lines.append(("| {} | {} | {} | {} | {} ({}) | {} ({}) | {} | {} | {} | {} ({}) | {} | {} | {} | {} "
                              "| {} |").format(k[1], _f(g("goodput_bps"), 1e6, 1), _f(g("pct_of_ceiling"), digits=1),
                                     _f(g("pct_of_ceiling_less_loss"), digits=1), _f(g("lost_packets")),
                                     _f(mx("lost_packets")), _f(g("undelivered_packets")),
                                     _f(mx("undelivered_packets")), _f(g("retransmitted")), _f(g("redundant_copies")),
                                     _f(g("duplicates")), _f(g("max_stall_ms"), digits=1),
                                     _f(mx("max_stall_ms"), digits=1), _f(g("flow_blocked_ms"), digits=0),
                                     _f(g("hold_p99_ns"), 1e6, 3), "{} ({})".format(
                                         _f(g("cpu_s_per_gb"), digits=2), _f(g("cpu_procs_s_per_gb"), digits=2)),
                                     _shares(rs), ok(by[k])))
            if cut_lines:
                lines += ["", "Around the cut (the receiver's 0.1 s intervals; the cut located on its clock as in "
                          "pathctl.py):", "", "| system | goodput before cut Mbit/s | during cut Mbit/s | lost in cut "
                          "(max) | cut located by |", "| --- | ---: | ---: | ---: | --- |"] + cut_lines
        lines.append("")
    lines += driver.failed_runs(runs)
    lines += ["Definitions: bench/README.md, \"Reliable mode and file transfer\".", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv):
    parser = driver.suite_parser(__doc__, SCENARIOS, SYSTEMS, "send/recv", " (default: all but the iperf3 ones)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per (scenario, system); default 3")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per stream run; default 10")
    parser.add_argument("--file-mb", type=int, default=500, help="size of the random file in MB (10^6 B); "
                        "default 500, shrunk to what the disk holds")
    driver.add_closing_options(parser, "fx")
    args = parser.parse_args(argv)
    args.testbed_mpxdp = args.testbed_mpxdp or args.mpxdp
    driver.select(parser, args, SCENARIOS, SYSTEMS, [s["name"] for s in SCENARIOS],
                  [s.name for s in SYSTEMS if s.default])
    if args.repeats < 1 or args.duration < 2 or args.file_mb < MIN_FILE_MB:
        parser.error("--repeats must be at least 1, --duration at least 2, --file-mb at least {}".format(MIN_FILE_MB))
    if len(args.bed_prefix) + max(len(s["bed"]) for s in SCENARIOS) > 24:
        parser.error("--bed-prefix too long: test bed names have at most 24 characters")
    return args


def plan(scenario, systems):
    return [s for s in systems if runs_in(s, scenario)]


def run_budget(scenario, system, file_bytes, duration):
    """Seconds a run may take beyond start-up: a file run at a fifth of its path's rate, plus slack."""
    if scenario["kind"] == "stream":
        return duration
    multipath = system.name.startswith(("mpxdp", "mptcp"))
    rate = sum(scenario["rates"]) if multipath else scenario["rates"][0]
    return 30.0 + 5.0 * 8.0 * file_bytes / rate


def estimate(scenarios, systems, args, file_bytes):
    total = 0.0
    for sc in scenarios:
        total += 3.0
        for s in plan(sc, systems):
            if sc["kind"] == "stream":
                total += args.repeats * (args.duration + 2.0)
            else:
                multipath = s.name.startswith(("mpxdp", "mptcp"))
                rate = 0.85 * (sum(sc["rates"]) if multipath else sc["rates"][0])
                total += args.repeats * (8.0 * file_bytes / min(rate, 2.5 * G) + 3.0 + file_bytes / 1e9)
    return total


class Cleanup:
    """What must not outlive the run, removed on any exit (also atexit): test bed, source file, received copy."""

    def __init__(self):
        self.bed = None
        self.paths = []

    def __call__(self):
        procs.kill_all()
        if self.bed is not None:
            self.bed.down()
            self.bed = None
        for path in self.paths:
            remove_with_temps(path)
        self.paths = []


def remove_with_temps(path):
    """Removes `path` and the temporary files a receiver killed mid-transfer leaves beside it
    (`mpxdp recv -F` writes `.<name>.mpxdp-XXXXXX` and renames it only once verified)."""
    folder, name = os.path.split(path)
    for p in [path] + glob.glob(os.path.join(folder, "." + glob.escape(name) + ".*")):
        if os.path.exists(p):
            os.unlink(p)


def preflight(args, cli, scenarios):
    problems = driver.common_problems((args.mpxdp, args.testbed_mpxdp), ("ip", "iperf3", "mptcpize", "ss", "dd"))
    if problems:
        return problems
    up_help = procs.run([args.testbed_mpxdp, "testbed", "up", "--help"], check=False, timeout=10).stdout
    set_help = procs.run([args.testbed_mpxdp, "testbed", "set", "--help"], check=False, timeout=10).stdout
    if any(any(sc["loss"]) for sc in scenarios) and "--loss" not in up_help:
        problems.append("{} has no `testbed up --loss`".format(args.testbed_mpxdp))
    if any(sc.get("events") for sc in scenarios) and "--down" not in set_help:
        problems.append("{} has no `testbed set --down`".format(args.testbed_mpxdp))
    need = {"mpxdp-file": cli.has_file, "mpxdp-reliable": cli.has_reliable, "mpxdp-redundant": cli.has_redundant,
            "mpxdp-plain": cli.has_send_recv}
    lacking = [s.name for s in args.system_list if not need.get(s.name, True)]
    if lacking:
        problems.append("{} lacks what {} need (`send -F`, `--reliable`, `--redundant`): a build with issue 9, or "
                        "--systems without them".format(cli.path, ", ".join(lacking)))
    problems += driver.leftover_problems("mpxdp-" + args.bed_prefix + "fx-")
    return problems


def main(argv):
    args = parse_args(argv)
    if args.list:
        for s in SCENARIOS:
            print("scenario {:15s} {}".format(s["name"], s["describe"]))
        for s in SYSTEMS:
            print("system   {:16s} {}{} [{}]".format(s.name, s.label, "" if s.default else " (not by default)",
                                                    ",".join(s.scenarios)))
        return 0
    scenarios = [s for s in SCENARIOS if s["name"] in args.scenario_names and plan(s, args.system_list)]
    if not scenarios:
        print("filexfer.py: no system of --systems runs in these scenarios", file=sys.stderr)
        return 2
    cli = Cli(os.path.abspath(args.mpxdp)) if os.access(args.mpxdp, os.X_OK) else None
    problems = preflight(args, cli, scenarios) if cli else ["no mpxdp binary at {}".format(args.mpxdp)]
    if problems:
        for p in problems:
            print("filexfer.py: " + p, file=sys.stderr)
        return 2
    has_files = any(sc["kind"] == "file" for sc in scenarios)
    if args.dry_run:
        total = estimate(scenarios, args.system_list, args, args.file_mb * MB)
        for sc in scenarios:
            print("{:15s} {}".format(sc["name"], ", ".join(s.name for s in plan(sc, args.system_list))))
        print("{} repeats, {} s stream runs, {} MB file: estimated {:.0f} s ({:.1f} min)".format(
            args.repeats, args.duration, args.file_mb, total, total / 60))
        return 0

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = os.path.join(args.results, stamp + "-filexfer")
    os.makedirs(out_dir, exist_ok=True)
    cleanup = Cleanup()
    atexit.register(cleanup)
    driver.interrupt_on_signals()
    loadavg = open("/proc/loadavg").read().split()[:3]
    started = time.monotonic()
    runs = []
    interrupted = False
    meta = {"command": " ".join(shlex.quote(a) for a in ["python3", "bench/e2e/filexfer.py"] + argv),
            "mpxdp": os.path.relpath(cli.path, ROOT) if cli.path.startswith(ROOT + os.sep) else cli.path,
            "mpxdp_version": cli.version, "testbed_mpxdp": args.testbed_mpxdp,
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "repeats": args.repeats,
            "loadavg": loadavg, "machine": testbeds.machine_description(),
            "stream_duration": args.duration if any(sc["kind"] == "stream" for sc in scenarios) else None}
    ctx = {"cli": cli, "duration": args.duration, "file_bytes": 0, "recv_path": os.path.join(out_dir, "received.bin")}
    cleanup.paths.append(ctx["recv_path"])
    try:
        if has_files:
            size, note = file_size_for(out_dir, args.file_mb)
            ctx["file"] = os.path.join(out_dir, "source.bin")
            cleanup.paths.append(ctx["file"])
            print("bench/e2e/filexfer: making {} MB of random bytes: {}".format(size // MB, ctx["file"]), flush=True)
            if note:
                print("bench/e2e/filexfer: " + note, flush=True)
            ctx["sha256"] = make_file(ctx["file"], size)
            ctx["file_bytes"] = size
            meta.update(file_bytes=size, sha256=ctx["sha256"], file_note=note)
            meta["disk"] = disk_check(ctx["file"], size, out_dir)
            print("bench/e2e/filexfer: disk: read {} MB/s, write+fsync {} MB/s".format(
                _f(meta["disk"]["read_Bps"], MB), _f(meta["disk"]["write_Bps"], MB)), flush=True)
        total = estimate(scenarios, args.system_list, args, ctx["file_bytes"])
        print("bench/e2e/filexfer: {} scenarios, {} repeats; estimated {:.0f} s ({:.1f} min)".format(
            len(scenarios), args.repeats, total, total / 60))
        print("bench/e2e/filexfer: mpxdp {} ({}); test beds by {}".format(cli.path, cli.version, args.testbed_mpxdp))
        print("bench/e2e/filexfer: results in {}".format(out_dir), flush=True)
        for sc in scenarios:
            run_scenario(sc, args, ctx, out_dir, runs, cleanup)
    except KeyboardInterrupt:
        interrupted = True
        print("\nbench/e2e/filexfer: interrupted; cleaning up", file=sys.stderr)
    finally:
        cleanup()
    meta["wall_s"] = time.monotonic() - started
    meta["interrupted"] = interrupted
    text = report_tables(runs, meta)
    driver.write_outputs(out_dir, text, meta, runs, ("recv_report", "send_report", "server_report", "client_report"))
    print("\n" + text)
    print("{} runs, {} failed, wall {:.0f} s. Report: {}".format(len(runs), sum(1 for r in runs if not r.get("ok")),
                                                                meta["wall_s"], os.path.join(out_dir, "report.md")))
    return 130 if interrupted else 0


def run_scenario(sc, args, ctx, out_dir, runs, cleanup):
    """Every repeat of one scenario on its own test bed, removed afterwards whatever happens."""
    bed = pathctl.PathTestbed(args.testbed_mpxdp, args.bed_prefix + sc["bed"], sc["rates"],
                              loss=_loss_text(sc["loss"]) if any(sc["loss"]) else None)
    run_dir = os.path.join(out_dir, sc["name"])
    os.makedirs(run_dir, exist_ok=True)

    def run_one(system, repeat):
        tag = "{}-r{}".format(system.name, repeat + 1)
        result = {"scenario": sc["name"], "system": system.name, "label": system.label, "repeat": repeat,
                  "testbed": bed.name, "rates_bps": bed.rates_bps, "loss": sc["loss"], "ok": False, "events": []}
        ctx["run_dir"] = run_dir
        ctx["budget_s"] = run_budget(sc, system, ctx["file_bytes"], args.duration)
        result["run_wall_s"] = driver.guarded_run(
            result, bed, lambda: RUNNERS[system.runner](system, sc, bed, ctx, tag, result), sc.get("reset", []),
            _fail, after=lambda: remove_with_temps(ctx["recv_path"]))
        return tag, result

    driver.drive_scenario(sc["name"], bed, [plan(sc, args.system_list)], args.repeats, run_one, print_run, run_dir,
                          runs, 15, cleanup=cleanup)


def print_run(r):
    head = "  {:15s} {:16s} r{}".format(r["scenario"], r["system"], r["repeat"] + 1)
    if not r.get("ok"):
        print(head + "  FAILED: " + str(r.get("error")), flush=True)
        return
    parts = []
    if "identical" in r:
        parts.append("{} s".format(_f(r.get("wall_s"), digits=2)))
        parts.append("{} Mbit/s".format(_f(r.get("goodput_bps") or r.get("delivered_bps"), 1e6)))
        parts.append("identical" if r["identical"] else "NOT IDENTICAL ({} of {} B)".format(
            r.get("out_bytes"), r.get("received_bytes")))
    else:
        parts.append("{} Mbit/s".format(_f(r.get("goodput_bps"), 1e6, 1)))
        parts.append("lost {} undelivered {}".format(_f(r.get("lost_packets")), _f(r.get("undelivered_packets"))))
        for key, label, scale, digits in (("max_stall_ms", "max stall ms", 1, 1), ("duplicates", "duplicates", 1, 0),
                                          ("hold_p99_ns", "hold p99 ms", 1e6, 3)):
            if r.get(key) is not None:
                parts.append("{} {}".format(label, _f(r[key], scale, digits)))
    parts.append("retransmitted {}".format(_f(r.get("retransmitted"))))
    parts.append("CPU {} s/GB".format(_f(r.get("cpu_s_per_gb"), digits=2)))
    if r.get("all_links_used") is False and not r["system"].startswith("tcp-"):
        parts.append("NOT ALL LINKS USED ({} %)".format("/".join(_f(v) for v in r["link_share_pct"])))
    print(head + "  " + ", ".join(parts), flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
