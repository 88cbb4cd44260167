"""Header ceilings, per-run derived metrics, repeat statistics and the issue-4 goals.

Ceilings (what a link of rate R can carry as payload of P bytes per packet, tbf counting the
Ethernet frame without preamble/FCS, as veth does):
  mpxdp (UDP + mpxdp overhead):   R * P / (P + 82)   82 = Ethernet 14 + IPv4 20 + UDP 8 + mpxdp 40 (wire v2:
                                                   28-byte packet header + 12-byte DATA frame header)
                                  v1 builds (--baseline-mpxdp): R * P / (P + 74), 32-byte v1 header
  iperf3 UDP:                     R * P / (P + 42)   42 = Ethernet 14 + IPv4 20 + UDP 8
  TCP (offloads off, MSS 1448):   R * 1448 / (1448 + 66)   66 = Ethernet 14 + IPv4 20 + TCP 20 + timestamps 12
  MPTCP uses the TCP ceiling; its DSS option (up to 20 more bytes on some segments) is not subtracted.
`mpxdp-bidir` sends the same in each direction and tbf shapes each direction on its own, so its ceiling and
link sum are twice the one-way figures.
"""
import statistics

MPXDP_HEADER_V2 = 40
AEAD_TAG_BYTES = 16  # a keyed packet (--key) carries the AEAD tag after its frames
MPXDP_HEADER_V1 = 32
UDP_OVERHEAD = 42
TCP_MSS = 1448
TCP_OVERHEAD = 66


def ceiling_fraction(kind, payload, mpxdp_header=MPXDP_HEADER_V2):
    if kind == "mpxdp":
        return payload / (payload + UDP_OVERHEAD + mpxdp_header)
    if kind == "udp":
        return payload / (payload + UDP_OVERHEAD)
    return TCP_MSS / (TCP_MSS + TCP_OVERHEAD)


def derive(result, link_sum_bps, rate_for_system_bps):
    """Adds percent of link sum / ceiling, loss and out-of-order rates and CPU per GB to a run result."""
    goodput = result.get("goodput_bps") or 0.0
    # Runs record the payload they really used (the MTU-size run differs per system and mpxdp build).
    fraction = ceiling_fraction(result["kind"], result.get("length") or result["payload"],
                                result.get("header_bytes") or MPXDP_HEADER_V2)
    if rate_for_system_bps:
        if result.get("forward") is not None:  # bidir: each direction has the whole link sum
            one_way = rate_for_system_bps * fraction
            for side, key in (("fwd", "forward"), ("rev", "reverse")):
                if result[key].get("goodput_bps") is not None:
                    result[side + "_pct_of_ceiling"] = 100.0 * result[key]["goodput_bps"] / one_way
            rate_for_system_bps *= 2
        ceiling = rate_for_system_bps * fraction
        result["ceiling_bps"] = ceiling
        result["pct_of_link_sum"] = 100.0 * goodput / rate_for_system_bps
        result["pct_of_ceiling"] = 100.0 * goodput / ceiling
    delivered = result.get("delivered_packets")
    lost = result.get("lost_packets")
    if result.get("undelivered_packets") is not None and result.get("sent_packets"):
        result["loss_pct"] = 100.0 * result["undelivered_packets"] / result["sent_packets"]  # mpxdp: sent - delivered
    elif delivered is not None and lost is not None and delivered + lost > 0:
        result["loss_pct"] = 100.0 * lost / (delivered + lost)  # iperf3 UDP: sequence gaps
    ooo = result.get("out_of_order_delivered")
    if ooo is not None and delivered:
        result["ooo_pct"] = 100.0 * ooo / delivered
    moved = result.get("delivered_bytes") or 0
    cpu = [result.get("cpu_sender_s"), result.get("cpu_receiver_s"), result.get("softirq_s")]
    if moved > 0 and all(c is not None for c in cpu):
        result["cpu_total_s"] = sum(cpu)
        result["cpu_s_per_gb"] = sum(cpu) / (moved / 1e9)
    if delivered and all(c is not None for c in cpu):
        # Whole-machine CPU (both ends and the kernel's softirq work) per delivered packet.
        result["cpu_ns_per_pkt"] = sum(cpu) * 1e9 / delivered
    if delivered and result.get("cpu_receiver_user_s") is not None:
        result["receiver_user_ns_per_pkt"] = result["cpu_receiver_user_s"] * 1e9 / delivered
    if delivered and result.get("cpu_sender_user_s") is not None:
        result["sender_user_ns_per_pkt"] = result["cpu_sender_user_s"] * 1e9 / delivered
    if result.get("duration_s") and delivered:
        result.setdefault("pps", delivered / result["duration_s"])
    return result


SUMMARY_KEYS = ["goodput_bps", "pps", "pct_of_link_sum", "pct_of_ceiling", "loss_pct", "ooo_pct", "cpu_s_per_gb",
                "cpu_ns_per_pkt", "sender_user_ns_per_pkt", "receiver_user_ns_per_pkt",
                "hold_p99_ns", "lost_packets", "undelivered_packets", "fwd_goodput_bps", "rev_goodput_bps",
                "fwd_loss_pct", "rev_loss_pct", "fwd_pct_of_ceiling", "rev_pct_of_ceiling"]


def summarize(runs):
    """Median, min and max over the successful repeats of one (scenario, system, payload)."""
    ok = [r for r in runs if r.get("ok")]
    summary = {"repeats": len(runs), "ok": len(ok), "failed": len(runs) - len(ok)}
    lengths = sorted({r["length"] for r in ok if r.get("length")})
    if lengths:
        summary["length"] = lengths[0] if len(lengths) == 1 else lengths
    for key in SUMMARY_KEYS:
        values = [r[key] for r in ok if r.get(key) is not None]
        if values:
            summary[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    # Share of the bytes each sender interface carried (median per link): proves MPTCP's subflows and the
    # schedulers' split.
    shares = []
    for r in ok:
        tx = r.get("link_bytes", {}).get("tx")
        if tx and sum(tx) > 0:
            shares.append([100.0 * b / sum(tx) for b in tx])
    if shares:
        summary["link_share_pct"] = [statistics.median(column) for column in zip(*shares)]
        summary["runs_missing_a_link"] = sum(1 for r in ok if r.get("all_links_used") is False)
    return summary


def _med(summaries, scenario, system, payload, key):
    entry = summaries.get((scenario, system, payload))
    if not entry or key not in entry:
        return None
    return entry[key]["median"]


def goals(summaries, kernel_udp_system):
    """The issue-4 goals as figures: list of dicts with name, status (PASS/MISS/n/a) and the numbers."""
    out = []

    def add(name, ok, figures):
        out.append({"goal": name, "status": "n/a" if ok is None else ("PASS" if ok else "MISS"),
                    "figures": figures})

    pct = _med(summaries, "moderate", "mpxdp-xdp-window", 1024, "pct_of_ceiling")
    entry = summaries.get(("moderate", "mpxdp-xdp-window", 1024), {})
    max_lost = entry.get("undelivered_packets", entry.get("lost_packets", {})).get("max")
    if pct is None or max_lost is None:
        add("moderate: window in-order goodput >= 98 % of header ceiling, zero loss", None, "no data")
    else:
        add("moderate: window in-order goodput >= 98 % of header ceiling, zero loss", pct >= 98.0 and max_lost == 0,
            "{:.1f} % of ceiling (median), packets sent but not delivered: max {} per run".format(pct, int(max_lost)))

    raw = _med(summaries, "moderate", "mpxdp-xdp-off", "MTU", "goodput_bps")
    mptcp = _med(summaries, "moderate", "mptcp", 1024, "goodput_bps")
    if raw is None or mptcp is None:
        add("moderate: MTU-size raw goodput >= MPTCP", None, "no data")
    else:
        add("moderate: MTU-size raw goodput >= MPTCP", raw >= mptcp,
            "mpxdp xdp off MTU-size {:.0f} Mbit/s vs MPTCP {:.0f} Mbit/s".format(raw / 1e6, mptcp / 1e6))

    for scenario in ("paper", "paper2"):
        mp = _med(summaries, scenario, "mpxdp-xdp-window", 1024, "goodput_bps")
        mptcp = _med(summaries, scenario, "mptcp", 1024, "goodput_bps")
        name = "{}: mpxdp (window, in order) >= 1.5 x MPTCP".format(scenario)
        if mp is None or mptcp is None:
            if scenario == "paper":
                add(name, None, "no data")
            continue
        add(name, mp >= 1.5 * mptcp, "{:.0f} vs {:.0f} Mbit/s = {:.2f} x".format(mp / 1e6, mptcp / 1e6, mp / mptcp))

    mp = _med(summaries, "unshaped", "mpxdp-xdp-window", 1024, "pps")
    kernel = _med(summaries, "unshaped", kernel_udp_system, 1024, "pps")
    name = "unshaped: mpxdp pps >= 2 x kernel-UDP pps ({})".format(kernel_udp_system)
    if mp is None or kernel is None:
        add(name, None, "no data")
    else:
        add(name, mp >= 2 * kernel, "{:.0f} vs {:.0f} kpps = {:.2f} x".format(mp / 1e3, kernel / 1e3, mp / kernel))

    # Issue 12's unshaped goals (MTU-size payloads; MPTCP sizes its own segments): only when they ran.
    mp = _med(summaries, "unshaped", "mpxdp-xdp-window", "MTU", "goodput_bps")
    for other, label in (("mptcp", "MPTCP"), ("mpxdp-udp-nogso", "the kernel UDP path without GSO")):
        # MPTCP's segments do not follow -l: its 1024 B runs are its MTU-size runs.
        ref = _med(summaries, "unshaped", other, "MTU" if other != "mptcp" else 1024, "goodput_bps")
        if mp is not None and ref is not None:
            add("unshaped, MTU-size: mpxdp goodput >= 1.5 x {} ({})".format(label, other), mp >= 1.5 * ref,
                "{:.0f} vs {:.0f} Mbit/s = {:.2f} x".format(mp / 1e6, ref / 1e6, mp / ref))
    cpu = _med(summaries, "unshaped", "mpxdp-xdp-window", "MTU", "cpu_s_per_gb")
    ref = _med(summaries, "unshaped", "mptcp", 1024, "cpu_s_per_gb")
    if cpu is not None and ref is not None:
        add("unshaped, MTU-size: CPU per GB (both ends + softirq) <= 2/3 of MPTCP's", cpu <= ref * 2 / 3,
            "{:.2f} vs {:.2f} s/GB = {:.2f} x".format(cpu, ref, cpu / ref))

    # Issue 12's links sweep: only when it ran.
    pct = _med(summaries, "links8", "mpxdp-xdp-window", 1024, "pct_of_ceiling")
    if pct is not None:
        add("links8: mpxdp (window, in order) >= 95 % of the header ceiling", pct >= 95.0,
            "{:.1f} % of ceiling (median)".format(pct))
    costs = [(n, _med(summaries, "links{}".format(n), "mpxdp-xdp-window", 1024, "cpu_ns_per_pkt"))
             for n in (2, 4, 8, 16)]
    costs = [(n, c) for n, c in costs if c is not None]
    if len(costs) >= 2:
        # "Does not grow": no case costs more than a tenth (about the machine's noise) above the cheapest
        # case with fewer links. Fewer links run at fewer packets per second, where the fixed cost of
        # waking up weighs more: the cheapest, not the first, is the reference.
        grows = [(n, c, min(c0 for n0, c0 in costs if n0 < n)) for n, c in costs[1:]]
        add("links sweep: whole-machine CPU per packet does not grow with the links (<= 1.1 x the cheapest "
            "case with fewer links)", all(c <= 1.1 * ref for _, c, ref in grows),
            ", ".join("{} links {:.0f} ns".format(n, c) for n, c in costs))

    # The same issue-12 figures for the kernel-UDP backend with GSO/GRO, which `--backend auto` takes on links
    # without zero-copy AF_XDP (veth): shown beside the AF_XDP goals above, never instead of them.
    udp = "mpxdp-udp"
    prefix = "kernel-UDP backend ({}, what --backend auto takes on veth)".format(udp)
    mp = _med(summaries, "paper", udp, 1024, "goodput_bps")
    mptcp = _med(summaries, "paper", "mptcp", 1024, "goodput_bps")
    if mp is not None and mptcp is not None:
        add("{}: paper >= 1.5 x MPTCP".format(prefix), mp >= 1.5 * mptcp,
            "{:.0f} vs {:.0f} Mbit/s = {:.2f} x".format(mp / 1e6, mptcp / 1e6, mp / mptcp))
    mp = _med(summaries, "unshaped", udp, "MTU", "goodput_bps")
    for other, label in (("mptcp", "MPTCP"), ("mpxdp-udp-nogso", "the kernel UDP path without GSO")):
        ref = _med(summaries, "unshaped", other, "MTU" if other != "mptcp" else 1024, "goodput_bps")
        if mp is not None and ref is not None:
            add("{}: unshaped, MTU-size, goodput >= 1.5 x {} ({})".format(prefix, label, other), mp >= 1.5 * ref,
                "{:.0f} vs {:.0f} Mbit/s = {:.2f} x".format(mp / 1e6, ref / 1e6, mp / ref))
    cpu = _med(summaries, "unshaped", udp, "MTU", "cpu_s_per_gb")
    ref = _med(summaries, "unshaped", "mptcp", 1024, "cpu_s_per_gb")
    if cpu is not None and ref is not None:
        add("{}: unshaped, MTU-size, CPU per GB <= 2/3 of MPTCP's".format(prefix), cpu <= ref * 2 / 3,
            "{:.2f} vs {:.2f} s/GB = {:.2f} x".format(cpu, ref, cpu / ref))
    pct = _med(summaries, "links8", udp, 1024, "pct_of_ceiling")
    if pct is not None:
        add("{}: links8 >= 95 % of the header ceiling".format(prefix), pct >= 95.0,
            "{:.1f} % of ceiling (median)".format(pct))
    return out


def baseline_comparison(summaries, system="mpxdp-xdp-window", baseline="mpxdp-baseline"):
    """Build under test against the --baseline-mpxdp build, per (scenario, payload): medians and their ratio."""
    out = []
    for (scenario, name, payload), entry in summaries.items():
        if name != system:
            continue
        base = summaries.get((scenario, baseline, payload))
        if not base or "goodput_bps" not in entry or "goodput_bps" not in base:
            continue
        new_g, old_g = entry["goodput_bps"], base["goodput_bps"]
        out.append({"scenario": scenario, "payload": payload, "length": entry.get("length"),
                    "baseline_length": base.get("length"), "goodput_bps": new_g, "baseline_goodput_bps": old_g,
                    "ratio": new_g["median"] / old_g["median"] if old_g["median"] else None,
                    "pct_of_ceiling": _med(summaries, scenario, system, payload, "pct_of_ceiling"),
                    "baseline_pct_of_ceiling": _med(summaries, scenario, baseline, payload, "pct_of_ceiling"),
                    "loss_pct": entry.get("loss_pct"), "baseline_loss_pct": base.get("loss_pct"),
                    "cpu_s_per_gb": _med(summaries, scenario, system, payload, "cpu_s_per_gb"),
                    "baseline_cpu_s_per_gb": _med(summaries, scenario, baseline, payload, "cpu_s_per_gb")})
    return out
