"""The scenario loop the end-to-end suites share: one test bed per scenario, every (item, repeat) on it,
each run recorded as it ends, a failed set-up recorded as the runs it prevented, the bed removed whatever
happens. What differs between the suites (how one run goes, how it prints) comes in as callbacks."""
import argparse
import json
import os
import shutil
import signal
import sys
import time

import procs
import testbeds

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt("signal {}".format(signum))


def interrupt_on_signals():
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt, so the suite cleans up (SIGINT also when started
    in the background, where it is ignored)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)


def ensure_matplotlib(argv, script):
    """Debian's matplotlib lives in /usr/bin/python3; re-runs `script` there when another python3 is first on
    PATH, or warns that plots are skipped."""
    try:
        import matplotlib  # noqa: F401
        return
    except ImportError:
        pass
    system_python = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(system_python) and os.access(system_python, os.X_OK):
        os.execv(system_python, [system_python, os.path.abspath(script)] + argv)
    print("{}: WARNING: no matplotlib (apt-get install python3-matplotlib); plots are skipped".format(
        os.path.basename(script)), file=sys.stderr)


def suite_parser(doc, scenarios, systems, mpxdp_for, systems_note):
    """A suite's parser with the options that lead its --help: --mpxdp (the binary for `mpxdp_for`),
    --testbed-mpxdp, --scenarios, --systems (its default said by `systems_note`)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mpxdp", default=os.path.join(ROOT, "build", "apps", "mpxdp", "mpxdp"),
                        help="mpxdp binary for {} (default: build/apps/mpxdp/mpxdp)".format(mpxdp_for))
    parser.add_argument("--testbed-mpxdp", metavar="PATH",
                        help="mpxdp binary for `testbed up/set/down` (default: --mpxdp)")
    parser.add_argument("--scenarios", help="comma-separated subset of: " + ",".join(s["name"] for s in scenarios))
    parser.add_argument("--systems", help="comma-separated subset of: " + ",".join(s.name for s in systems) +
                        systems_note)
    return parser


def add_closing_options(parser, bed_kind=None):
    """The options that close a suite's --help: --results, --bed-prefix (when its test beds are named
    mpxdp-<prefix><bed_kind>-*), --list, --dry-run."""
    parser.add_argument("--results", default=os.path.join(ROOT, "results"), help="results root (git-ignored)")
    if bed_kind is not None:
        parser.add_argument("--bed-prefix", default="e2e-", help="test bed name prefix (namespaces "
                            "mpxdp-<prefix>{}-*); default e2e-, as the other suites".format(bed_kind))
    parser.add_argument("--list", action="store_true", help="print scenarios and systems and exit")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the time estimate, run nothing")


def select(parser, args, scenarios, systems, default_scenarios, default_systems):
    """args.scenario_names and args.system_list from --scenarios and --systems (lists of names, or the
    defaults); an unknown name is a usage error."""
    args.scenario_names = args.scenarios.split(",") if args.scenarios else default_scenarios
    known = {s["name"] for s in scenarios}
    for name in args.scenario_names:
        if name not in known:
            parser.error("unknown scenario '{}' (known: {})".format(name, ", ".join(sorted(known))))
    wanted = args.systems.split(",") if args.systems else default_systems
    unknown = [w for w in wanted if w not in {s.name for s in systems}]
    if unknown:
        parser.error("unknown systems: {}".format(", ".join(unknown)))
    args.system_list = [s for s in systems if s.name in wanted]


def common_problems(binaries, tools):
    """What every suite needs before it starts: root, the mpxdp binaries it names, the tools on PATH."""
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (test beds are network namespaces)")
    for path in binaries:
        if not os.access(path, os.X_OK):
            problems.append("no mpxdp binary at {} (cmake --build build --target mpxdp, or pass --mpxdp)".format(path))
    for tool in tools:
        if shutil.which(tool) is None:
            problems.append("missing tool: {}".format(tool))
    return problems


def leftover_problems(prefix):
    """A suite whose namespaces (names starting `prefix`) already exist must not start."""
    left = testbeds.existing_namespaces(prefix)
    if not left:
        return []
    return ["namespaces of this suite exist ({}): another run is active or one was killed; remove them "
            "with `mpxdp testbed down --name <name>`".format(", ".join(left))]


def guarded_run(result, bed, run, resets, fail, kill=True, after=None):
    """Runs `run()`, whose exception fails `result` rather than the scenario; afterwards puts the links of
    `resets` ((link, setting) pairs) back so the next run starts on intact links, and fails a run that
    looked ok when a `testbed set` of its events failed. Returns the seconds it took."""
    t0 = time.monotonic()
    try:
        run()
    except Exception as error:  # a broken run is recorded, the scenario goes on
        fail(result, "{}: {}".format(type(error).__name__, error))
    finally:
        if kill:
            procs.kill_all()
        for link, reset in resets:
            bed.set_link(link, reset)
        if after is not None:
            after()
    bad = [e for e in result["events"] if e["returncode"] != 0]
    if bad and result.get("ok"):
        fail(result, "testbed set failed: {}".format(bad[0]["stderr"]))
    return time.monotonic() - t0


def drive_scenario(name, bed, phases, repeats, run_one, print_run, run_dir, runs, name_width, key=None,
                   prevented=None, json_indent=1, cleanup=None, phase_start=None):
    """Every repeat of every item of `phases` (lists of plan items) on `bed`, repeats interleaved within a
    phase so background load spreads over the systems. run_one(item, repeat) -> (tag, result) runs one;
    its result goes to `runs`, to run_dir/<tag>.json and through print_run. When the bed (or
    phase_start(phase)) fails, every run not done is recorded as prevented(item, repeat, why), keyed by
    (key(item), repeat); by default an item is a system and the record names scenario, system and repeat.
    `cleanup.bed` (when given) names the bed while it may be up."""
    if key is None:
        key = lambda system: system.name  # noqa: E731
    if prevented is None:
        prevented = lambda system, repeat, why: {"scenario": name, "system": system.name,  # noqa: E731
                                                 "repeat": repeat, "ok": False, "error": why}
    done = set()
    try:
        if cleanup is not None:
            cleanup.bed = bed
        bed.up()
        for phase in phases:
            if not phase:
                continue
            if phase_start is not None:
                phase_start(phase)
            for repeat in range(repeats):
                for item in phase:
                    tag, result = run_one(item, repeat)
                    runs.append(result)
                    done.add((key(item), repeat))
                    with open(os.path.join(run_dir, tag + ".json"), "w") as f:
                        json.dump(result, f, indent=json_indent, default=str)
                    print_run(result)
    except Exception as error:  # test bed set-up: record every run it prevented
        why = "scenario set-up failed: {}: {}".format(type(error).__name__, error)
        print("  {} {}".format(name.ljust(name_width), why), flush=True)
        for phase in phases:
            for item in phase:
                for repeat in range(repeats):
                    if (key(item), repeat) not in done:
                        runs.append(prevented(item, repeat, why))
    finally:
        procs.kill_all()
        bed.down()
        if cleanup is not None:
            cleanup.bed = None


def write_outputs(out_dir, text, meta, runs, bulky):
    """report.md and summary.json (the runs without their `bulky` keys) in out_dir."""
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump({"meta": meta, "runs": [{k: v for k, v in r.items() if k not in bulky} for r in runs]}, f,
                  indent=2, default=str)


def run_scenarios(scenarios, run_scenario, suite, cleanup=procs.kill_all):
    """run_scenario(sc) for each scenario until done or interrupted (then says so on stderr); cleanup()
    whatever happens. True when interrupted."""
    try:
        for sc in scenarios:
            run_scenario(sc)
    except KeyboardInterrupt:
        print("\n{}: interrupted; cleaning up".format(suite), file=sys.stderr)
        return True
    finally:
        cleanup()
    return False


def failed_runs(runs, most=None):
    """The report's list of failed runs (the first `most` of them when given)."""
    failures = [r for r in runs if not r.get("ok")]
    if not failures:
        return []
    return ["### Failed runs", ""] + ["- {} {} r{}: {}".format(r["scenario"], r["system"], r["repeat"] + 1,
                                                              r.get("error")) for r in failures[:most]] + [""]
