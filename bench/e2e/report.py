"""Markdown table and the figure-3/figure-4 style plots of one suite run."""
import os

import metrics

BEGIN = "<!-- bench/e2e:begin (written by bench/e2e/run.py; edits between the markers are replaced) -->"
END = "<!-- bench/e2e:end -->"

HOW_TO_RUN = """# Benchmarks

## How to run

```sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build build --target mpxdp
sudo python3 bench/e2e/run.py            # full set, about 23 minutes on 2 cores, updates this file
sudo python3 bench/e2e/run.py --quick    # about 3 minutes, results/<time>/ only (add --publish to update here)
```

Options, formulas and caveats: [bench/README.md](bench/README.md). Raw JSON per run: `results/<time>/`.
"""


def _fmt(value, scale=1.0, digits=0):
    if value is None:
        return "-"
    return "{:.{d}f}".format(value / scale, d=digits)


def _range(entry, key, scale=1.0, digits=0):
    if key not in entry:
        return "-"
    v = entry[key]
    return "{} ({}-{})".format(_fmt(v["median"], scale, digits), _fmt(v["min"], scale, digits),
                               _fmt(v["max"], scale, digits))


def _median(entry, key):
    return entry[key]["median"] if entry.get(key) else None


def table(scenarios, systems, summaries):
    lines = ["| scenario | system | payload B | goodput Mbit/s median (min-max) | % link sum | % ceiling | kpps | "
             "loss % | out-of-order % | CPU s/GB | CPU ns/pkt (user ns/pkt tx/rx) | hold p99 us | link shares % | "
             "ok/runs |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    names = {s.name: s for s in systems}
    for scenario in scenarios:
        for (sc, system, payload), entry in summaries.items():
            if sc != scenario["name"]:
                continue
            shares = "/".join("{:.0f}".format(v) for v in entry.get("link_share_pct", [])) or "-"
            if entry.get("runs_missing_a_link"):
                shares += " ({} runs missed a link)".format(entry["runs_missing_a_link"])
            lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} |".format(
                scenario["name"], names[system].name if system in names else system,
                payload if payload != "MTU" else "MTU ({})".format(entry.get("length", "?")),
                _range(entry, "goodput_bps", 1e6), _fmt(_median(entry, "pct_of_link_sum"), digits=1),
                _fmt(_median(entry, "pct_of_ceiling"), digits=1), _fmt(_median(entry, "pps"), 1e3),
                _fmt(_median(entry, "loss_pct"), digits=2), _fmt(_median(entry, "ooo_pct"), digits=2),
                _fmt(_median(entry, "cpu_s_per_gb"), digits=2),
                "{} ({}/{})".format(_fmt(_median(entry, "cpu_ns_per_pkt")),
                                    _fmt(_median(entry, "sender_user_ns_per_pkt")),
                                    _fmt(_median(entry, "receiver_user_ns_per_pkt"))),
                _fmt(_median(entry, "hold_p99_ns"), 1e3, 1),
                shares, entry["ok"], entry["repeats"]))
    return "\n".join(lines)


def _baseline_line(meta):
    b = meta.get("baseline")
    if not b:
        return "- Baseline build: none (no --baseline-mpxdp)"
    return ("- Baseline build (`mpxdp-baseline`): `{}` ({}), read from its --help as a wire v{} CLI: recv {}, "
            "MTU payload {} B, mpxdp header {} B".format(
                b["path"], b["version"], b["wire"], "-1" if b["one_off"] else "without -1 (ends after END)",
                b["mtu_payload"], b["header_bytes"]))


def _mbit(entry):
    return "{:.1f} ({:.1f}-{:.1f})".format(entry["median"] / 1e6, entry["min"] / 1e6, entry["max"] / 1e6)


def comparison_section(summaries):
    rows = metrics.baseline_comparison(summaries)
    if not rows:
        return []
    out = ["### Build under test against the baseline build (same run)", "",
           "`mpxdp-xdp-window` (this build) and `mpxdp-baseline` (the --baseline-mpxdp build), the same system "
           "(AF_XDP, window reorder, wrr), interleaved repeat by repeat on the same test bed. MTU size is each "
           "build's largest payload, so the v2 run carries 8 bytes less payload per packet than v1.", "",
           "| scenario | payload B (new / base) | new Mbit/s median (min-max) | base Mbit/s median (min-max) | "
           "new / base | % ceiling new / base | loss % new / base | CPU s/GB new / base |",
           "| --- | --- | ---: | ---: | ---: | --- | --- | --- |"]
    for r in rows:
        out.append("| {} | {} / {} | {} | {} | {} | {} / {} | {} / {} | {} / {} |".format(
            r["scenario"], r["length"], r["baseline_length"], _mbit(r["goodput_bps"]),
            _mbit(r["baseline_goodput_bps"]), _fmt(r["ratio"], digits=3), _fmt(r["pct_of_ceiling"], digits=1),
            _fmt(r["baseline_pct_of_ceiling"], digits=1), _fmt(_median(r, "loss_pct"), digits=3),
            _fmt(_median(r, "baseline_loss_pct"), digits=3), _fmt(r["cpu_s_per_gb"], digits=2),
            _fmt(r["baseline_cpu_s_per_gb"], digits=2)))
    return out + [""]


def bidir_section(scenarios, summaries):
    rows = [(sc, payload, entry) for sc in scenarios for (name, system, payload), entry in summaries.items()
            if name == sc["name"] and system == "mpxdp-bidir"]
    if not rows:
        return []
    out = ["### Both directions (`mpxdp-bidir`)", "",
           "`mpxdp send --bidir`: the client and the server each send for the run time while receiving. tbf "
           "shapes every link per direction (on both m_s<i> and m_r<i> egress), so each direction has the whole "
           "link sum and the sum of the two directions can exceed the one-way ceiling; its % link sum and % ceiling "
           "in the table above are against twice the one-way figures. Loss is packets sent but not delivered, per "
           "direction.", "",
           "| scenario | payload B | forward Mbit/s (client -> server) | reverse Mbit/s | sum Mbit/s | "
           "% one-way ceiling fwd / rev | loss % fwd / rev (median, max) |",
           "| --- | --- | ---: | ---: | ---: | --- | --- |"]
    for sc, payload, e in rows:
        if "fwd_goodput_bps" not in e:
            out.append("| {} | {} | - | - | - | - | - |".format(sc["name"], payload))
            continue
        out.append("| {} | {} | {} | {} | {} | {} / {} | {} ({}) / {} ({}) |".format(
            sc["name"], payload, _mbit(e["fwd_goodput_bps"]), _mbit(e["rev_goodput_bps"]), _mbit(e["goodput_bps"]),
            _fmt(_median(e, "fwd_pct_of_ceiling"), digits=1), _fmt(_median(e, "rev_pct_of_ceiling"), digits=1),
            _fmt(_median(e, "fwd_loss_pct"), digits=3), _fmt(e.get("fwd_loss_pct", {}).get("max"), digits=3),
            _fmt(_median(e, "rev_loss_pct"), digits=3), _fmt(e.get("rev_loss_pct", {}).get("max"), digits=3)))
    return out + [""]


def section(meta, scenarios, systems, summaries, goals, failures, plot_paths):
    m = meta["machine"]
    out = [BEGIN, "## End-to-end suite: {} run of {}".format(meta["mode"], meta["date"]), "",
           "- Command: `{}`".format(meta["command"]),
           "- Machine: {} x {}, {} GiB, kernel {}; load average at start {}".format(
               m["nproc"], m["cpu_model"], m["memory_gib"], m["kernel"], " ".join(m["loadavg_at_start"])),
           "- mpxdp: `{}` ({}); {}".format(meta["mpxdp"], meta.get("mpxdp_version", "?"), m["iperf3"]),
           _baseline_line(meta),
           "- Bonding: {}".format(meta["bonding"]),
           "- {} s per run, {} repeats, payload 1024 B and MTU size (each system's largest payload in a 1500-byte IP "
           "packet: mpxdp wire v2 1432 B, v1 1440 B, iperf3 UDP 1472 B; the table shows the bytes used). Wall time "
           "{:.0f} s (estimated {:.0f} s).".format(meta["duration"], meta["repeats"], meta["wall_s"],
                                                   meta["estimate_s"]),
           "- Scenarios: " + "; ".join("`{}` {}".format(s["name"], s["describe"]) for s in scenarios),
           "- Raw results: `{}`".format(meta["results_dir"]), "",
           "### Goals (issues 4 and 12)", "", "| goal | status | figures |", "| --- | --- | --- |"]
    for g in goals:
        out.append("| {} | {} | {} |".format(g["goal"], g["status"], g["figures"]))
    out += ["", "### Results", "",
            "Goodput is payload bytes delivered at the receiver (in order for mpxdp with a reorderer); "
            "% ceiling is against link sum x payload / (payload + header) (see bench/README.md); "
            "CPU s/GB is sender + receiver process time + whole-machine softirq time over the run, per GB delivered; "
            "link shares are the bytes each sender interface carried (median over repeats).",
            "", table(scenarios, systems, summaries), ""]
    out += comparison_section(summaries) + bidir_section(scenarios, summaries)
    if failures:
        out += ["### Failed runs", ""]
        for f in failures[:40]:
            out.append("- {} / {} / {} B: {}".format(f["scenario"], f["system"], f["payload"], f.get("error", "?")))
        out.append("")
    for title, path in plot_paths:
        out += ["![{}]({})".format(title, path), ""]
    out.append(END)
    return "\n".join(out)


def write_benchmarks(path, text):
    if os.path.exists(path):
        with open(path) as f:
            current = f.read()
    else:
        current = HOW_TO_RUN + "\n"
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        updated = head + text + tail
    else:
        updated = current.rstrip("\n") + "\n\n" + text + "\n"
    with open(path, "w") as f:
        f.write(updated)


COLORS = {"mpxdp-bidir": "#ff9896", "mpxdp-baseline": "#393b79", "mpxdp-xdp-window": "#d62728", "mpxdp-xdp-sort": "#ff7f0e", "mpxdp-xdp-off": "#2ca02c",
          "mpxdp-udp": "#9467bd", "kernel-rr-udp": "#8c564b", "bond-udp-1": "#1f77b4", "bond-udp-n": "#17becf",
          "bond-tcp-1": "#aec7e8", "bond-tcp-n": "#c49c94", "mptcp": "#e377c2", "single-tcp": "#7f7f7f",
          "single-udp": "#bcbd22"}


def plots(out_dir, scenarios, systems, summaries, runs):
    """Figure 4 style (grouped bars) and figure 3 style (reorder on/off per repeat vs link sum). Returns paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    # Figure 4: goodput per system per scenario, 1024-byte payload, error bars min..max.
    names = [s.name for s in systems if any((sc["name"], s.name, 1024) in summaries for sc in scenarios)]
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(scenarios) + 4), 5))
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        xs, ys, lo, hi = [], [], [], []
        for i, sc in enumerate(scenarios):
            entry = summaries.get((sc["name"], name, 1024))
            if not entry or "goodput_bps" not in entry:
                continue
            g = entry["goodput_bps"]
            xs.append(i - 0.4 + width * (j + 0.5))
            ys.append(g["median"] / 1e6)
            lo.append((g["median"] - g["min"]) / 1e6)
            hi.append((g["max"] - g["median"]) / 1e6)
        label = name + " (sum of both directions)" if name == "mpxdp-bidir" else name
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=label, color=COLORS.get(name))
    for i, sc in enumerate(scenarios):
        if sc["link_sum_bps"]:
            ax.hlines(sc["link_sum_bps"] / 1e6, i - 0.45, i + 0.45, colors="black", linestyles="dashed")
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels(["{}\n{}".format(sc["name"], sc["describe"]) for sc in scenarios], fontsize=8)
    ax.set_ylabel("goodput (Mbit/s, payload only)")
    ax.set_title("Goodput per system and scenario, 1024-byte payload (dashed: link sum; bars: median, min-max)")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out_dir, "e2e-goodput-by-system.png")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    paths.append(("Goodput per system per scenario (figure 4 style)", path))

    # Figure 3: goodput with reordering on and off, per repeat, against the link sum and header ceiling.
    shaped = [sc for sc in scenarios if sc["link_sum_bps"]]
    if shaped:
        fig, axes = plt.subplots(1, len(shaped), figsize=(4.2 * len(shaped), 4), squeeze=False)
        for ax, sc in zip(axes[0], shaped):
            for name in ("mpxdp-xdp-off", "mpxdp-xdp-window", "mpxdp-xdp-sort"):
                series = sorted((r["repeat"], r["goodput_bps"] / 1e6) for r in runs
                                if r["scenario"] == sc["name"] and r["system"] == name and r["payload"] == 1024
                                and r.get("ok"))
                if series:
                    ax.plot([s[0] + 1 for s in series], [s[1] for s in series], marker="o", label=name,
                            color=COLORS[name])
            ax.axhline(sc["link_sum_bps"] / 1e6, color="black", linestyle="--", label="link sum")
            ax.axhline(sc["link_sum_bps"] * metrics.ceiling_fraction("mpxdp", 1024) / 1e6, color="grey",
                       linestyle=":", label="header ceiling")
            ax.set_title("{} ({})".format(sc["name"], sc["describe"]), fontsize=9)
            ax.set_xlabel("run")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_ylabel("goodput (Mbit/s)")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.suptitle("mpxdp goodput with reordering on and off (figure 3 style), 1024-byte payload")
        fig.tight_layout()
        path = os.path.join(out_dir, "e2e-reorder-on-off.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(("Goodput with reordering on and off vs link sum (figure 3 style)", path))
    return paths
