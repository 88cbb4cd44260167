"""The systems under test. Each run returns one result dict; a failure is a result with ok=False."""
import json
import os
import subprocess
import time

import metrics
import procs
import testbeds

IPERF_PORT = 5201
START_TIMEOUT_S = 15.0   # for a receiver to get ready
END_SLACK_S = 20.0       # beyond the run time, for a side to finish and report


class System:
    """name: stable id; kind: ceiling model (mpxdp/udp/tcp); multipath: uses all links."""

    def __init__(self, name, label, kind, multipath, runner, payload_sensitive, **params):
        self.name = name
        self.label = label
        self.kind = kind
        self.multipath = multipath
        self.runner = runner
        self.payload_sensitive = payload_sensitive
        self.params = params


def catalogue(bonding, baseline=False):
    """baseline: add `mpxdp-baseline`, the same as mpxdp-xdp-window on the --baseline-mpxdp build."""
    systems = [
        System("mpxdp-xdp-window", "mpxdp AF_XDP, window reorder", "mpxdp", True, run_mpxdp, True,
               backend="xdp", reorder="window", scheduler="wrr"),
        System("mpxdp-xdp-sort", "mpxdp AF_XDP, sort reorder", "mpxdp", True, run_mpxdp, True,
               backend="xdp", reorder="sort", scheduler="wrr"),
        System("mpxdp-xdp-off", "mpxdp AF_XDP, no reorder", "mpxdp", True, run_mpxdp, True,
               backend="xdp", reorder="off", scheduler="wrr"),
        System("mpxdp-udp", "mpxdp kernel UDP, window reorder", "mpxdp", True, run_mpxdp, True,
               backend="udp", reorder="window", scheduler="wrr"),
        # The kernel UDP path datagram by datagram (issue 12's "mpxdp-udp without GSO").
        System("mpxdp-udp-nogso", "mpxdp kernel UDP without UDP GSO/GRO, window reorder", "mpxdp", True, run_mpxdp,
               True, backend="udp", reorder="window", scheduler="wrr", extra=["--no-udp-gso", "--no-udp-gro"]),
        # Issue 12's receive threads: the receiver reads each link on a thread of its own (--rx-threads).
        System("mpxdp-xdp-rxt", "mpxdp AF_XDP, window reorder, receiver --rx-threads (one per link)", "mpxdp",
               True, run_mpxdp, True, backend="xdp", reorder="window", scheduler="wrr", rx_thread_per_link=True,
               default=False),
        System("mpxdp-udp-rxt", "mpxdp kernel UDP, window reorder, receiver --rx-threads (one per link)", "mpxdp",
               True, run_mpxdp, True, backend="udp", reorder="window", scheduler="wrr", rx_thread_per_link=True,
               default=False),
        # Busy polling (issue 12) needs a NAPI context to poll, which veth has only with GRO on: both run with GRO
        # on at the receiving veths (r<i>), the second with --busy-poll at both ends.
        System("mpxdp-udp-gro", "mpxdp kernel UDP, window reorder, GRO on at the receiving veths", "mpxdp", True,
               run_mpxdp, True, backend="udp", reorder="window", scheduler="wrr", rx_gro=True, default=False),
        System("mpxdp-udp-busypoll", "as mpxdp-udp-gro with --busy-poll 50 at both ends", "mpxdp", True, run_mpxdp,
               True, backend="udp", reorder="window", scheduler="wrr", rx_gro=True, extra=["--busy-poll", "50"],
               default=False),
        System("mpxdp-xdp-gro", "mpxdp AF_XDP, window reorder, GRO on at the receiving veths", "mpxdp", True,
               run_mpxdp, True, backend="xdp", reorder="window", scheduler="wrr", rx_gro=True, default=False),
        System("mpxdp-xdp-busypoll", "as mpxdp-xdp-gro with --busy-poll 50 at both ends", "mpxdp", True, run_mpxdp,
               True, backend="xdp", reorder="window", scheduler="wrr", rx_gro=True, extra=["--busy-poll", "50"],
               default=False),
        # Keyed (issue 11): every packet sealed; the default cipher of this CPU, and ChaCha20-Poly1305.
        System("mpxdp-xdp-key", "mpxdp AF_XDP, window reorder, --key (default cipher)", "mpxdp", True, run_mpxdp,
               True, backend="xdp", reorder="window", scheduler="wrr", keyed=True),
        System("mpxdp-xdp-key-chacha", "mpxdp AF_XDP, window reorder, --key --cipher chacha20-poly1305", "mpxdp",
               True, run_mpxdp, True, backend="xdp", reorder="window", scheduler="wrr", keyed=True,
               cipher="chacha20-poly1305"),
        # Data both ways at once (send --bidir); tbf shapes each direction, so the sum can exceed one-way.
        System("mpxdp-bidir", "mpxdp AF_XDP, window reorder, --bidir (both directions)", "mpxdp", True, run_mpxdp,
               True, backend="xdp", reorder="window", scheduler="wrr", bidir=True),
    ]
    if baseline:  # right after mpxdp-xdp-window, so the two builds run back to back in each repeat
        systems.insert(1, System("mpxdp-baseline", "mpxdp AF_XDP, window reorder, baseline build (--baseline-mpxdp)",
                              "mpxdp", True, run_mpxdp, True, backend="xdp", reorder="window", scheduler="wrr",
                              baseline=True))
    if bonding:
        systems += [
            System("bond-udp-1", "bonding balance-rr, iperf3 UDP x1", "udp", True, run_iperf3, True,
                   proto="udp", flows=1, bond=True),
            System("bond-udp-n", "bonding balance-rr, iperf3 UDP x links", "udp", True, run_iperf3, True,
                   proto="udp", flows="links", bond=True),
            System("bond-tcp-1", "bonding balance-rr, iperf3 TCP x1", "tcp", True, run_iperf3, False,
                   proto="tcp", flows=1, bond=True),
            System("bond-tcp-n", "bonding balance-rr, iperf3 TCP x links", "tcp", True, run_iperf3, False,
                   proto="tcp", flows="links", bond=True),
        ]
    # The kernel round-robin UDP sender (stands in for bonding balance-rr when the kernel lacks it).
    systems.append(System("kernel-rr-udp", "kernel UDP round-robin (mpxdp udp, rr, no reorder)", "mpxdp", True,
                          run_mpxdp, True, backend="udp", reorder="off", scheduler="rr"))
    systems += [
        System("mptcp", "MPTCP, iperf3 via mptcpize, 1 subflow/link", "tcp", True, run_iperf3, False,
               proto="tcp", flows=1, mptcp=True),
        System("single-tcp", "iperf3 TCP, one link", "tcp", False, run_iperf3, False, proto="tcp", flows=1),
        System("single-udp", "iperf3 UDP, one link", "udp", False, run_iperf3, True, proto="udp", flows=1),
    ]
    return systems


MTU = "MTU"  # suite payload key of the MTU-size run; each system resolves it to its own largest payload
IPERF_UDP_MTU_PAYLOAD = 1472  # 1500 - 20 IPv4 - 8 UDP


def iperf_payload(suite_payload):
    """iperf3 UDP datagram size for a suite payload: MTU maps to 1472 (UDP MTU size)."""
    return IPERF_UDP_MTU_PAYLOAD if suite_payload == MTU else suite_payload


class MpxdpCli:
    """What an mpxdp build's send/recv understand, read from their --help (never guessed from a version).

    A build whose `recv` has `--one-off` has the v2 connection (wire v2: 40-byte mpxdp overhead, payload up to
    1432 B in a 1500 MTU, `recv` serves until -1, `-b` is payload bits/s). Without it, it is a v1 build (32-byte
    header, up to 1440 B, `recv` ends after the sender's END marker, `-b` counts headers too)."""

    def __init__(self, path):
        self.path = path
        recv_help = procs.run([path, "recv", "--help"], check=False, timeout=10)
        send_help = procs.run([path, "send", "--help"], check=False, timeout=10)
        recv_text = recv_help.stdout + recv_help.stderr
        send_text = send_help.stdout + send_help.stderr
        self.has_send_recv = recv_help.returncode == 0 and send_help.returncode == 0
        self.one_off = "--one-off" in recv_text
        self.bidir = "--bidir" in send_text
        self.wire = 2 if self.one_off else 1
        self.header_bytes = metrics.MPXDP_HEADER_V2 if self.wire == 2 else metrics.MPXDP_HEADER_V1
        self.mtu_payload = 1500 - 20 - 8 - self.header_bytes
        self.payload_rate = self.wire == 2  # -b: payload bits/s (v2) or bits/s including headers (v1)
        self.version = procs.run([path, "--version"], check=False, timeout=10).stdout.strip()

    def describe(self):
        return {"path": self.path, "version": self.version, "wire": self.wire, "one_off": self.one_off,
                "bidir": self.bidir, "header_bytes": self.header_bytes, "mtu_payload": self.mtu_payload}


class RunContext:
    def __init__(self, mpxdp, bed, run_dir, duration, baseline=None):
        self.mpxdp = mpxdp          # MpxdpCli of the build under test
        self.baseline = baseline    # MpxdpCli of --baseline-mpxdp, or None
        self.bed = bed
        self.run_dir = run_dir
        self.duration = duration


def _base_result(system, payload, ctx):
    return {"system": system.name, "label": system.label, "kind": system.kind, "payload": payload,
            "testbed": ctx.bed.name, "rates_bps": ctx.bed.rates_bps, "duration_req_s": ctx.duration,
            "ok": False, "commands": []}


def _fail(result, why, *children):
    result["ok"] = False
    result["error"] = why
    result["stderr_tails"] = {os.path.basename(c.err_path): c.stderr_tail() for c in children if c is not None}
    return result


def _link_delta(before, after):
    return {side: [a - b for a, b in zip(after[side], before[side])] for side in before}


def run_system(system, payload, ctx, tag):
    """Runs one repeat; never raises for a failed run (returns ok=False with the reason)."""
    result = _base_result(system, payload, ctx)
    try:
        before_links = ctx.bed.link_bytes()
        system.runner(system, payload, ctx, tag, result)
        if before_links is not None:
            delta = _link_delta(before_links, ctx.bed.link_bytes())
            result["link_bytes"] = delta
            total = sum(delta["tx"])
            if system.multipath and total > 0:
                result["all_links_used"] = all(b > 0.01 * total for b in delta["tx"])
    except Exception as error:  # a broken run is recorded, the suite goes on
        _fail(result, "{}: {}".format(type(error).__name__, error))
    return result


def _files(ctx, tag, role):
    base = os.path.join(ctx.run_dir, "{}.{}".format(tag, role))
    return base + ".out", base + ".err"


def _finish_cpu(result, sender, receiver, cpu_before, cpu_after):
    result["cpu_sender_s"] = sender.cpu_seconds()
    result["cpu_receiver_s"] = receiver.cpu_seconds()
    result["cpu_sender_user_s"] = sender.cpu_user_seconds()
    result["cpu_receiver_user_s"] = receiver.cpu_user_seconds()
    delta = procs.cpu_delta(cpu_before, cpu_after)
    result["softirq_s"] = delta["softirq"]
    result["machine_cpu_s"] = {k: round(v, 3) for k, v in delta.items()}


def _drive(ctx, tag, result, server, server_label, client_argv, client_role, client_label, children):
    """Starts the client against a ready server, waits for both to end and checks that both exited 0 in
    time. The client joins `children` so the caller's clean-up kills it. Returns (client, cpu_before,
    cpu_after, failure); failure is the failed result, or None."""
    cpu_before = procs.read_cpu_times()
    client = procs.Proc(client_argv, *_files(ctx, tag, client_role))
    children.append(client)
    client.wait(ctx.duration + END_SLACK_S)
    server.wait(END_SLACK_S)
    cpu_after = procs.read_cpu_times()
    failure = None
    if client.timed_out or server.timed_out:
        failure = _fail(result, "timed out ({} {}, {} {})".format(client_label, client.timed_out, server_label,
                                                                  server.timed_out), client, server)
    elif client.returncode != 0 or server.returncode != 0:
        failure = _fail(result, "exit codes: {} {}, {} {}".format(client_label, client.returncode, server_label,
                                                                  server.returncode), client, server)
    return client, cpu_before, cpu_after, failure


RECV_KEYS = ("goodput_bps", "delivered_packets", "delivered_bytes", "lost_packets", "out_of_order_delivered",
             "out_of_order_arrived", "duplicate_packets", "corrupt_packets", "hold_p50_ns", "hold_p99_ns",
             "duration_s", "pps", "ended_by")


# `ended_by` of a run that ended as planned: v2 receiver / sender, and v1's receiver (a baseline build).
NORMAL_ENDINGS = ("end of stream", "time", "end marker")


def _direction(send, recv):
    """One direction's figures from its sender's and receiver's reports."""
    out = {key: recv.get(key) for key in RECV_KEYS}
    out["sent_packets"] = send.get("sent_packets")
    out["sender_ended_by"] = send.get("ended_by")
    odd = [e for e in (out["ended_by"], out["sender_ended_by"]) if e not in NORMAL_ENDINGS]
    if odd:
        out["odd_ending"] = "/".join(map(str, odd))  # e.g. "peer" (the peer timed out) or "signal"
    if out["sent_packets"] is not None and out["delivered_packets"] is not None:
        # Counted from the sender, so it also covers the `off` reorderer, which cannot see gaps.
        out["undelivered_packets"] = max(0, out["sent_packets"] - out["delivered_packets"])
        if out["sent_packets"]:
            out["loss_pct"] = 100.0 * out["undelivered_packets"] / out["sent_packets"]
    return out


def _key_file(cli, ctx):
    """One pre-shared key per suite run, made by `mpxdp genkey -o` (mode 600) in the run directory."""
    key = os.path.join(ctx.run_dir, "bench.key")
    if not os.path.exists(key):
        subprocess.run([cli.path, "genkey", "-o", key], check=True)
    return key


def _receiver_gro(bed, state):
    """GRO on or off at the receiving veths; the test bed keeps it off (wire-like links) for every other system."""
    for i in range(bed.links):
        procs.run(bed.netns(bed.rx, "ethtool", "-K", "r{}".format(i), "gro", state), timeout=10)


def run_mpxdp(system, payload, ctx, tag, result):
    p = system.params
    bed = ctx.bed
    cli = ctx.baseline if p.get("baseline") else ctx.mpxdp
    bidir = bool(p.get("bidir"))
    if cli is None:
        raise RuntimeError("no --baseline-mpxdp build given")
    if bidir and not cli.bidir:
        raise RuntimeError("{} has no `send --bidir`".format(cli.path))
    keyed = bool(p.get("keyed"))
    # A keyed packet carries a 16-byte AEAD tag after its frames.
    header_bytes = cli.header_bytes + (metrics.AEAD_TAG_BYTES if keyed else 0)
    length = (cli.mtu_payload - (metrics.AEAD_TAG_BYTES if keyed else 0)) if payload == MTU else payload
    result["length"] = length
    result["header_bytes"] = header_bytes
    result["wire"] = cli.wire
    recv_argv = [cli.path, "recv"] + (["-1"] if cli.one_off else []) + [
        "--testbed", bed.name, "--backend", p["backend"], "--reorder", p["reorder"], "-i", "0", "-J"]
    send_argv = [cli.path, "send", "--testbed", bed.name, "-t", ctx.duration, "-l", length,
                 "--backend", p["backend"], "--scheduler", p["scheduler"], "-i", "0", "-J"]
    if bidir:
        send_argv.append("--bidir")
    recv_argv += p.get("extra", [])
    send_argv += p.get("extra", [])
    if p.get("rx_thread_per_link"):
        recv_argv += ["--rx-threads", str(len(bed.rates_bps))]
    if keyed:
        key = _key_file(cli, ctx)
        recv_argv += ["--key", key]
        send_argv += ["--key", key] + (["--cipher", p["cipher"]] if p.get("cipher") else [])
    if bed.link_sum_bps:
        if cli.payload_rate:
            # v2: -b is payload bits/s: offer what fills the links (the header ceiling), as for iperf3 UDP.
            send_argv += ["-b", int(bed.link_sum_bps * metrics.ceiling_fraction("mpxdp", length, header_bytes))]
        else:
            send_argv += ["-b", bed.link_sum_bps]  # v1: total rate including headers
    # unshaped: no -b, unlimited
    result["commands"] = [" ".join(map(str, recv_argv)), " ".join(map(str, send_argv))]
    if p.get("rx_gro"):
        _receiver_gro(bed, "on")
    receiver = procs.Proc(recv_argv, *_files(ctx, tag, "recv"))
    children = [receiver]
    try:
        if not receiver.wait_for_stderr("mpxdp recv: ready", START_TIMEOUT_S):
            return _fail(result, "receiver not ready within {} s (exit {})".format(START_TIMEOUT_S,
                                                                                    receiver.poll()), receiver)
        sender, cpu_before, cpu_after, failure = _drive(ctx, tag, result, receiver, "receiver", send_argv, "send",
                                                        "sender", children)
        if failure is not None:
            return failure
        recv = json.loads(receiver.stdout())
        send = json.loads(sender.stdout())
    finally:
        for child in reversed(children):
            child.kill()
        if p.get("rx_gro"):
            _receiver_gro(bed, "off")
    result["recv_report"] = recv
    result["send_report"] = send
    if bidir:
        # Each side prints {"send": ..., "recv": ...}: forward is client -> server, reverse server -> client.
        forward = _direction(send["send"], recv["recv"])
        reverse = _direction(recv["send"], send["recv"])
        result["forward"] = forward
        result["reverse"] = reverse
        for key in ("goodput_bps", "delivered_packets", "delivered_bytes", "sent_packets", "undelivered_packets",
                    "out_of_order_delivered", "pps"):
            if forward.get(key) is not None and reverse.get(key) is not None:
                result[key] = forward[key] + reverse[key]
        result["lost_packets"] = (forward.get("lost_packets") or 0) + (reverse.get("lost_packets") or 0)
        result["hold_p99_ns"] = forward.get("hold_p99_ns")
        result["duration_s"] = forward.get("duration_s")
        result["fwd_goodput_bps"] = forward.get("goodput_bps")
        result["rev_goodput_bps"] = reverse.get("goodput_bps")
        result["fwd_loss_pct"] = forward.get("loss_pct")
        result["rev_loss_pct"] = reverse.get("loss_pct")
        odd = [d["odd_ending"] for d in (forward, reverse) if d.get("odd_ending")]
        if odd:
            result["odd_ending"] = ", ".join(odd)
    else:
        one = _direction(send, recv)
        one.pop("loss_pct", None)  # metrics.derive computes it
        result.update(one)
    _finish_cpu(result, sender, receiver, cpu_before, cpu_after)
    result["ok"] = True
    return result


def _wait_listening(bed, server, port, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        listening = procs.run(bed.netns(bed.rx, "ss", "-Hlnt", "sport", "=", ":{}".format(port)), check=False)
        if listening.stdout.strip():
            return True
        listening = procs.run(bed.netns(bed.rx, "ss", "-HlnM", "sport", "=", ":{}".format(port)), check=False)
        if listening.stdout.strip():
            return True
        time.sleep(0.05)
    return False


def run_iperf3(system, payload, ctx, tag, result):
    p = system.params
    bed = ctx.bed
    flows = bed.links if p.get("flows") == "links" else p.get("flows", 1)
    if p.get("bond"):
        target = "198.18.100.2"
        rate = bed.link_sum_bps
    elif system.multipath:
        target = bed.receiver_ip(0)
        rate = bed.link_sum_bps
    else:
        target = bed.receiver_ip(0)
        rate = bed.rates_bps[0]
    wrap = ["mptcpize", "run"] if p.get("mptcp") else []
    server_argv = bed.netns(bed.rx, *wrap, "iperf3", "-s", "-1", "-J", "-p", IPERF_PORT)
    client_argv = bed.netns(bed.tx, *wrap, "iperf3", "-c", target, "-p", IPERF_PORT, "-t", ctx.duration, "-J",
                            "-P", flows)
    if p["proto"] == "udp":
        length = iperf_payload(payload)
        result["payload"] = payload
        result["length"] = length
        # -b counts payload and is per stream: offer the payload rate that fills the links (the UDP header
        # ceiling), split over the flows; 0 means unlimited.
        offered = int(rate * metrics.ceiling_fraction("udp", length)) // flows
        client_argv += ["-u", "-l", length, "-b", str(offered) if rate else "0"]
    result["commands"] = [" ".join(map(str, server_argv)), " ".join(map(str, client_argv))]
    if p.get("mptcp"):
        bed.enable_mptcp()
    server = procs.Proc(server_argv, *_files(ctx, tag, "server"))
    children = [server]
    try:
        if not _wait_listening(bed, server, IPERF_PORT):
            return _fail(result, "iperf3 server not listening (exit {})".format(server.poll()), server)
        client, cpu_before, cpu_after, failure = _drive(ctx, tag, result, server, "server", client_argv, "client",
                                                        "client", children)
        if failure is not None:
            return failure
        server_report = json.loads(server.stdout())
        client_report = json.loads(client.stdout())
    finally:
        for child in reversed(children):
            child.kill()
        if p.get("mptcp"):
            bed.disable_mptcp()
    if "error" in server_report or "error" in client_report:
        return _fail(result, "iperf3: {}".format(server_report.get("error") or client_report.get("error")))
    received = server_report["end"]["sum_received"]
    seconds = received["seconds"] or ctx.duration
    result["duration_s"] = seconds
    result["delivered_bytes"] = received["bytes"]
    result["goodput_bps"] = 8.0 * received["bytes"] / seconds
    if p["proto"] == "udp":
        total = received.get("packets", 0)
        lost = received.get("lost_packets", 0)
        result["delivered_packets"] = total - lost
        result["lost_packets"] = lost
        result["out_of_order_delivered"] = sum(s["udp"].get("out_of_order", 0)
                                               for s in server_report["end"]["streams"] if "udp" in s)
        result["sent_packets"] = client_report["end"]["sum"].get("packets")
    else:
        result["retransmits"] = client_report["end"].get("sum_sent", {}).get("retransmits")
        result["delivered_packets"] = None
    result["iperf3_cpu"] = client_report["end"].get("cpu_utilization_percent")
    _finish_cpu(result, client, server, cpu_before, cpu_after)
    result["ok"] = True
    return result
