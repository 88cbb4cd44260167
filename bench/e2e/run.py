#!/usr/bin/python3
"""End-to-end benchmark suite (issue 4): mpxdp against kernel round-robin UDP (or bonding), MPTCP and
single-path TCP/UDP on the local test bed. Run as root:

    python3 bench/e2e/run.py [--quick] [--publish] [--mpxdp PATH] [--repeats N] [--duration S] ...

See bench/README.md.
"""
import argparse
import datetime
import json
import os
import shlex
import shutil
import sys
import time

sys.dont_write_bytecode = True  # keep bench/e2e/ free of __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import driver  # noqa: E402  (the scenario loop)
import metrics  # noqa: E402
import procs  # noqa: E402
import report  # noqa: E402
import systems as systems_mod  # noqa: E402
import testbeds  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
NAME_PREFIX = "e2e-"                 # test bed names; namespaces are mpxdp-e2e-<scenario>-{tx,rx,link}
NAMESPACE_PREFIX = "mpxdp-" + NAME_PREFIX
G = 1_000_000_000
M = 1_000_000

SCENARIOS = [
    {"name": "paper", "rates": [G] * 3, "describe": "3 x 1 Gbit/s"},
    {"name": "paper2", "rates": [G] * 2, "describe": "2 x 1 Gbit/s"},
    {"name": "moderate", "rates": [300 * M] * 3, "describe": "3 x 300 Mbit/s"},
    {"name": "hetero", "rates": [100 * M, 300 * M, 600 * M], "describe": "100 + 300 + 600 Mbit/s"},
    {"name": "unshaped", "rates": [0, 0, 0], "describe": "3 unshaped veth links"},
] + [
    # The links sweep (issue 12): the cost per packet must not grow with the number of links.
    {"name": "links{}".format(n), "rates": [300 * M] * n, "describe": "{} x 300 Mbit/s".format(n)}
    for n in (2, 4, 8, 16)
]
MTU_PAYLOAD = systems_mod.MTU  # each system's largest payload in a 1500-byte MTU (mpxdp v2 1432, v1 1440, UDP 1472)
# Systems that also run with MTU-size payloads (TCP/MPTCP do not depend on the payload size).
MTU_SYSTEMS = ["mpxdp-xdp-window", "mpxdp-xdp-off", "mpxdp-udp", "kernel-rr-udp", "single-udp", "bond-udp-1",
               "bond-udp-n", "mpxdp-baseline", "mpxdp-udp-nogso"]
# Seconds a run takes beyond its duration (start-up, reports, teardown), measured on the 2-core VM.
OVERHEAD_S = {"mpxdp": 0.4, "iperf3": 0.4}
SCENARIO_SETUP_S = 2.0

FULL = {"scenarios": ["paper", "paper2", "moderate", "hetero", "unshaped"], "mtu_scenarios": ["moderate", "paper"],
        "repeats": 5, "duration": 5}
QUICK = {"scenarios": ["moderate", "paper", "unshaped"], "mtu_scenarios": ["moderate"], "repeats": 2, "duration": 2}
SWEEP = {"scenarios": ["links2", "links4", "links8", "links16"], "mtu_scenarios": [], "repeats": 3, "duration": 4}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    preset_group = parser.add_mutually_exclusive_group()
    preset_group.add_argument("--quick", action="store_true",
                              help="3 scenarios, 2 repeats of 2 s (about 3 minutes)")
    preset_group.add_argument("--sweep", action="store_true",
                              help="the links sweep: 2, 4, 8 and 16 links of 300 Mbit/s, 3 repeats of 4 s")
    parser.add_argument("--mpxdp", default=os.path.join(ROOT, "build", "apps", "mpxdp", "mpxdp"),
                        help="mpxdp binary (default: build/apps/mpxdp/mpxdp)")
    parser.add_argument("--baseline-mpxdp", metavar="PATH",
                        help="an older mpxdp build, run as the extra system mpxdp-baseline (xdp, window) beside "
                             "the build under test; its CLI generation (v1/v2) is read from its --help")
    parser.add_argument("--scenarios", help="comma-separated subset of: " + ",".join(s["name"] for s in SCENARIOS))
    parser.add_argument("--mtu-scenarios", help="scenarios that also run MTU-size payloads ('' for none)")
    parser.add_argument("--systems", help="comma-separated subset of the systems (see --list)")
    parser.add_argument("--repeats", type=int, help="runs per (scenario, system, payload); default 5, quick 2")
    parser.add_argument("--duration", type=int, help="seconds per run; default 5, quick 2")
    parser.add_argument("--results", default=os.path.join(ROOT, "results"), help="results root (git-ignored)")
    publish = parser.add_mutually_exclusive_group()
    publish.add_argument("--publish", dest="publish", action="store_true", default=None,
                         help="write BENCHMARKS.md and docs/img/ (default for the full set)")
    publish.add_argument("--no-publish", dest="publish", action="store_false")
    parser.add_argument("--list", action="store_true", help="print scenarios and systems and exit")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the time estimate, run nothing")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else SWEEP if args.sweep else FULL
    args.scenario_names = args.scenarios.split(",") if args.scenarios else preset["scenarios"]
    if args.mtu_scenarios is None:
        args.mtu_scenario_names = preset["mtu_scenarios"]
    else:
        args.mtu_scenario_names = [s for s in args.mtu_scenarios.split(",") if s]
    args.repeats = args.repeats or preset["repeats"]
    args.duration = args.duration or preset["duration"]
    if args.publish is None:
        args.publish = not args.quick and not args.sweep
    known = {s["name"] for s in SCENARIOS}
    for name in args.scenario_names + args.mtu_scenario_names:
        if name not in known:
            parser.error("unknown scenario '{}' (known: {})".format(name, ", ".join(sorted(known))))
    if args.repeats < 1 or args.duration < 1:
        parser.error("--repeats and --duration must be at least 1")
    return args


def plan_runs(scenario, systems, args):
    """(system, payload) pairs of one scenario, in the order each repeat runs them."""
    plan = [(s, 1024) for s in systems]
    if scenario["name"] in args.mtu_scenario_names:
        plan += [(s, MTU_PAYLOAD) for s in systems if s.name in MTU_SYSTEMS and s.payload_sensitive]
    return plan


def estimate_seconds(scenarios, systems, args):
    total = 0.0
    for sc in scenarios:
        total += SCENARIO_SETUP_S
        for system, _ in plan_runs(sc, systems, args):
            overhead = OVERHEAD_S["mpxdp"] if system.runner is systems_mod.run_mpxdp else OVERHEAD_S["iperf3"]
            total += args.repeats * (args.duration + overhead)
    return total


def preflight(args):
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (test beds are network namespaces)")
    if not os.access(args.mpxdp, os.X_OK):
        problems.append("no mpxdp binary at {} (build it: cmake --build build --target mpxdp, or pass --mpxdp)"
                        .format(args.mpxdp))
    for tool in ("ip", "tc", "ethtool", "iperf3", "mptcpize", "ss"):
        if shutil.which(tool) is None:
            problems.append("missing tool: {}".format(tool))
    if not problems:
        left = testbeds.existing_namespaces(NAMESPACE_PREFIX)
        if left:
            problems.append("namespaces of this suite already exist ({}): another run is active or one was killed. "
                            "Remove them with `mpxdp testbed down --name <name>` (names: {})".format(
                                ", ".join(left), ", ".join(sorted({n[len("mpxdp-"):].rsplit("-", 1)[0]
                                                                   for n in left}))))
    return problems


def _mode(args):
    if args.quick:
        return "quick"
    return "partial" if args.scenarios or args.systems else "full"


def main(argv):
    args = parse_args(argv)
    if not args.list:
        driver.ensure_matplotlib(argv, __file__)
    bonding, bonding_reason = (False, "not probed")
    all_systems = systems_mod.catalogue(bonding=True, baseline=True)
    if args.list:
        for s in SCENARIOS:
            print("scenario {:10s} {}".format(s["name"], s["describe"]))
        for s in all_systems:
            print("system   {:18s} {}".format(s.name, s.label))
        return 0
    problems = preflight(args)
    if problems:
        for p in problems:
            print("run.py: " + p, file=sys.stderr)
        return 2

    bonding, bonding_reason = testbeds.bonding_available()
    systems = systems_mod.catalogue(bonding, baseline=bool(args.baseline_mpxdp))
    if args.systems:
        wanted = args.systems.split(",")
        unknown = [w for w in wanted if w not in {s.name for s in all_systems}]
        if unknown:
            print("run.py: unknown systems: {} (see --list)".format(", ".join(unknown)), file=sys.stderr)
            return 2
        systems = [s for s in systems if s.name in wanted]
    else:
        systems = [s for s in systems if s.params.get("default", True)]
    cli = systems_mod.MpxdpCli(args.mpxdp)
    needs_tools = [s.name for s in systems if s.runner is systems_mod.run_mpxdp and not s.params.get("baseline")]
    if not cli.has_send_recv and needs_tools:
        print("run.py: {} has no `send`/`recv` commands (an old build? rebuild the mpxdp target); they are needed "
              "by {}. Pass --systems without them to run only the baselines.".format(
                  args.mpxdp, ", ".join(needs_tools)), file=sys.stderr)
        return 2
    if any(s.params.get("bidir") for s in systems) and not cli.bidir:
        print("run.py: {} has no `send --bidir`; leave mpxdp-bidir out of --systems".format(args.mpxdp),
              file=sys.stderr)
        return 2
    baseline_cli = None
    if args.baseline_mpxdp:
        if not os.access(args.baseline_mpxdp, os.X_OK):
            print("run.py: no baseline binary at {}".format(args.baseline_mpxdp), file=sys.stderr)
            return 2
        baseline_cli = systems_mod.MpxdpCli(os.path.abspath(args.baseline_mpxdp))
        if not baseline_cli.has_send_recv:
            print("run.py: baseline {} has no `send`/`recv`".format(args.baseline_mpxdp), file=sys.stderr)
            return 2
    args.cli = cli
    args.baseline_cli = baseline_cli
    scenarios = [dict(s, link_sum_bps=sum(s["rates"]) if all(s["rates"]) else 0)
                 for s in SCENARIOS if s["name"] in args.scenario_names]

    if args.dry_run:
        for sc in scenarios:
            print("{:9s} {}".format(sc["name"], ", ".join("{}@{}".format(s.name, p) for s, p in
                                                         plan_runs(sc, systems, args))))
        estimate = estimate_seconds(scenarios, systems, args)
        print("{} repeats x {} s: estimated total {:.0f} s ({:.1f} min)".format(args.repeats, args.duration, estimate,
                                                                              estimate / 60))
        return 0
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = os.path.join(args.results, stamp)
    os.makedirs(out_dir, exist_ok=True)
    estimate = estimate_seconds(scenarios, systems, args)
    print("bench/e2e: {} mode, {} scenarios, {} systems, {} repeats x {} s; estimated total {:.0f} s ({:.1f} min)"
          .format(_mode(args), len(scenarios), len(systems), args.repeats, args.duration,
                  estimate, estimate / 60))
    print("bench/e2e: bonding: {}".format(bonding_reason))
    if not bonding:
        print("bench/e2e: kernel round-robin UDP sender (kernel-rr-udp) stands in for bonding balance-rr")
    for label, c in (("mpxdp", cli), ("baseline", baseline_cli)):
        if c is not None:
            print("bench/e2e: {}: {} ({}), wire v{} CLI, MTU payload {} B".format(label, c.path, c.version, c.wire,
                                                                              c.mtu_payload))
    print("bench/e2e: results in {}".format(out_dir))

    driver.interrupt_on_signals()
    started = time.monotonic()
    runs = []
    interrupted = driver.run_scenarios(scenarios, lambda sc: run_scenario(sc, systems, args, out_dir, runs),
                                       "bench/e2e")
    wall = time.monotonic() - started

    summaries = {}
    keys = []
    for r in runs:
        key = (r["scenario"], r["system"], r["payload"])
        if key not in keys:
            keys.append(key)
    for key in keys:
        summaries[key] = metrics.summarize([r for r in runs if (r["scenario"], r["system"], r["payload"]) == key])
    kernel_udp = "mpxdp-udp" if any(s.name == "mpxdp-udp" for s in systems) else "kernel-rr-udp"
    goal_list = metrics.goals(summaries, kernel_udp)
    failures = [r for r in runs if not r.get("ok")]

    meta = {"mode": _mode(args), "date": datetime.datetime.now().astimezone().isoformat(
        timespec="seconds"), "command": " ".join(shlex.quote(a) for a in ["python3", "bench/e2e/run.py"] + argv),
            "machine": testbeds.machine_description(), "mpxdp": os.path.relpath(args.mpxdp, ROOT),
            "mpxdp_version": procs.run([args.mpxdp, "--version"], check=False).stdout.strip(),
            "mpxdp_cli": cli.describe(),
            "baseline": baseline_cli.describe() if baseline_cli else None,
            "bonding": bonding_reason, "duration": args.duration, "repeats": args.repeats, "wall_s": wall,
            "estimate_s": estimate, "results_dir": os.path.relpath(out_dir, ROOT), "interrupted": interrupted}
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump({"meta": meta, "goals": goal_list,
                   "summaries": [dict(scenario=k[0], system=k[1], payload=k[2], **v) for k, v in summaries.items()]},
                  f, indent=2)

    plot_paths = []
    try:
        plot_paths = report.plots(out_dir, scenarios, systems, summaries, runs)
    except Exception as error:  # plots are a convenience; the table and JSON stand without them
        print("bench/e2e: plotting failed: {}".format(error), file=sys.stderr)
    publish = args.publish and not interrupted
    if publish:
        img_dir = os.path.join(ROOT, "docs", "img")
        os.makedirs(img_dir, exist_ok=True)
        published = []
        for title, path in plot_paths:
            target = os.path.join(img_dir, os.path.basename(path))
            shutil.copyfile(path, target)
            published.append((title, os.path.relpath(target, ROOT)))
        plot_paths = published
    else:
        plot_paths = [(t, os.path.relpath(p, ROOT)) for t, p in plot_paths]
    text = report.section(meta, scenarios, systems, summaries, goal_list, failures, plot_paths)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(text + "\n")
    if publish:
        report.write_benchmarks(os.path.join(ROOT, "BENCHMARKS.md"), text)

    print("\nGoals (issues 4 and 12):")
    for g in goal_list:
        print("  {:5s} {}: {}".format(g["status"], g["goal"], g["figures"]))
    print("\n{} runs, {} failed, wall {:.0f} s (estimated {:.0f} s). Report: {}{}".format(
        len(runs), len(failures), wall, estimate, os.path.join(out_dir, "report.md"),
        "; BENCHMARKS.md updated" if publish else ""))
    return 130 if interrupted else 0


def run_scenario(scenario, systems, args, out_dir, runs):
    """All repeats of one scenario on its own test bed; a broken test bed fails the scenario, not the suite."""
    bed = testbeds.Testbed(args.mpxdp, NAME_PREFIX + scenario["name"], scenario["rates"])
    scenario_dir = os.path.join(out_dir, scenario["name"])
    os.makedirs(scenario_dir, exist_ok=True)
    plan = plan_runs(scenario, [s for s in systems if not s.params.get("bond")], args)
    bond_plan = plan_runs(scenario, [s for s in systems if s.params.get("bond")], args)

    def run_one(item, repeat):
        system, payload = item
        tag = "{}-{}-r{}".format(system.name, payload, repeat + 1)
        ctx = systems_mod.RunContext(args.cli, bed, scenario_dir, args.duration, args.baseline_cli)
        t0 = time.monotonic()
        result = systems_mod.run_system(system, payload, ctx, tag)
        result.update(scenario=scenario["name"], repeat=repeat, wall_s=time.monotonic() - t0)
        rate = bed.link_sum_bps if system.multipath else bed.rates_bps[0]
        metrics.derive(result, bed.link_sum_bps, rate)
        return tag, result

    # a failed bond set-up (the second phase) counts like a failed test bed
    driver.drive_scenario(scenario["name"], bed, [plan, bond_plan], args.repeats, run_one, print_run, scenario_dir,
                          runs, 9, key=lambda item: (item[0].name, item[1]),
                          prevented=lambda item, repeat, why: {"scenario": scenario["name"], "system": item[0].name,
                                                               "payload": item[1], "repeat": repeat, "ok": False,
                                                               "error": why, "kind": item[0].kind},
                          json_indent=2,
                          phase_start=lambda phase: testbeds.make_bond(bed) if phase is bond_plan else None)


def _pct(value):
    return "-" if value is None else "{:.2f}".format(value)


def print_run(r):
    if not r.get("ok"):
        print("  {:9s} {:17s} {:>5} B r{}  FAILED: {}".format(r["scenario"], r["system"], r["payload"],
                                                             r["repeat"] + 1, r.get("error")), flush=True)
        return
    extra = []
    if r.get("pct_of_ceiling") is not None:
        extra.append("{:.1f} % ceiling".format(r["pct_of_ceiling"]))
    if r.get("loss_pct") is not None:
        extra.append("loss {:.2f} %".format(r["loss_pct"]))
    if r.get("ooo_pct") is not None:
        extra.append("ooo {:.2f} %".format(r["ooo_pct"]))
    if r.get("cpu_s_per_gb") is not None:
        extra.append("{:.2f} CPU s/GB".format(r["cpu_s_per_gb"]))
    if r.get("forward") is not None:
        extra.append("fwd {:.1f} + rev {:.1f} Mbit/s, loss {} / {} %".format(
            (r.get("fwd_goodput_bps") or 0) / 1e6, (r.get("rev_goodput_bps") or 0) / 1e6,
            _pct(r.get("fwd_loss_pct")), _pct(r.get("rev_loss_pct"))))
    if r.get("odd_ending"):
        extra.append("ENDED BY " + r["odd_ending"])
    if r.get("all_links_used") is False:
        extra.append("NOT ALL LINKS USED")
    print("  {:9s} {:17s} {:>5} B r{}  {:8.1f} Mbit/s  {}".format(r["scenario"], r["system"], r["payload"],
                                                               r["repeat"] + 1, r["goodput_bps"] / 1e6,
                                                               ", ".join(extra)), flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
