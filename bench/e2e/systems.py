"""The systems under test. Each run returns one result dict; a failure is a result with ok=False."""
import json
import os
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


def catalogue(bonding):
    systems = [
        System("mpxdp-xdp-window", "mpxdp AF_XDP, window reorder", "mpxdp", True, run_mpxdp, True,
               backend="xdp", reorder="window", scheduler="wrr"),
        System("mpxdp-xdp-sort", "mpxdp AF_XDP, sort reorder", "mpxdp", True, run_mpxdp, True,
               backend="xdp", reorder="sort", scheduler="wrr"),
        System("mpxdp-xdp-off", "mpxdp AF_XDP, no reorder", "mpxdp", True, run_mpxdp, True,
               backend="xdp", reorder="off", scheduler="wrr"),
        System("mpxdp-udp", "mpxdp kernel UDP, window reorder", "mpxdp", True, run_mpxdp, True,
               backend="udp", reorder="window", scheduler="wrr"),
    ]
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


def iperf_payload(kind_payload):
    """iperf3 UDP datagram size for a suite payload: 1440 (mpxdp MTU size) maps to 1472 (UDP MTU size)."""
    return 1472 if kind_payload == 1440 else kind_payload


class RunContext:
    def __init__(self, mpxdp, bed, run_dir, duration):
        self.mpxdp = mpxdp
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


def run_mpxdp(system, payload, ctx, tag, result):
    p = system.params
    bed = ctx.bed
    recv_argv = [ctx.mpxdp, "recv", "-1", "--testbed", bed.name, "--backend", p["backend"], "--reorder", p["reorder"],
                 "-i", "0", "-J"]
    send_argv = [ctx.mpxdp, "send", "--testbed", bed.name, "-t", ctx.duration, "-l", payload,
                 "--backend", p["backend"], "--scheduler", p["scheduler"], "-i", "0", "-J"]
    if bed.link_sum_bps:
        send_argv += ["-b", bed.link_sum_bps]  # total rate including headers; unshaped: unlimited
    result["commands"] = [" ".join(map(str, recv_argv)), " ".join(map(str, send_argv))]
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
    for key in ("goodput_bps", "delivered_packets", "delivered_bytes", "lost_packets", "out_of_order_delivered",
                "out_of_order_arrived", "duplicate_packets", "corrupt_packets", "hold_p50_ns", "hold_p99_ns",
                "duration_s", "pps"):
        result[key] = recv.get(key)
    result["sent_packets"] = send.get("sent_packets")
    if result["sent_packets"] is not None and result["delivered_packets"] is not None:
        # Counted from the sender, so it also covers the `off` reorderer, which cannot see gaps.
        result["undelivered_packets"] = max(0, result["sent_packets"] - result["delivered_packets"])
    result["recv_report"] = recv
    result["send_report"] = send
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
        result["iperf_length"] = length
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
