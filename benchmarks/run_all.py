"""Every benchmark in one command, and one table of ratios with goal/met columns.

Run from the repository root::

    python benchmarks/run_all.py [--skip peers] [--quiet] [--out DIR] [--update-plot]

It runs, each in a fresh Python process (so one benchmark's threads, imports
and sockets cannot slow down the next), with the repository on ``PYTHONPATH``:

* ``parse_events.py``: typed parse of a text delta / ``json.loads`` (goal <= 2.0);
* ``emulator_throughput.py``: events/s of the emulator to a bare reader (no
  goal: it bounds what any client can show);
* ``session_vs_bare.py``: Session vs a bare websocket-client loop;
* ``fallback_cost.py``: the silent-close HTTP fallback vs plain HTTP;
* ``peers.py``: Session vs HTTP, the official ``openai`` package, import time;
  it draws the per-turn latency plot;
* ``telemetry_cost.py``: ``stream()`` events/s with OpenTelemetry not installed,
  installed but not configured (goal >= 0.97 of not installed), and tracing into
  memory (info);
* ``network.py``: a 20-turn tool-calling loop through a latency-injecting proxy
  at loopback, 20, 80 and 200 ms RTT over TLS (goal: ``Session`` within 3 % of
  its ideal at every RTT); it draws the latency-vs-RTT plot.
* ``import_time.py``: ``import openai_ws`` / ``import openai`` (goal <= 0.12;
  n/a unless the official package imports), ``from openai_ws import OpenAI`` (info);
* ``cpu_per_event.py``: client CPU per streamed event / (``json.loads`` + typing)
  of the same frames, one stream and 16 at once, in process CPU time and in
  callgrind instructions (goal <= 1.5 each);
* ``memory.py``: RSS of an idle session and per request in flight (info);
* ``pool_throughput.py``: ``map(concurrency=64)`` of 256 requests over 4 sockets
  vs the ideal (goal >= 0.9) and vs one socket (goal >= 3.5);
* ``spill_stall.py``: a conversation's next turn while another request opens an
  extra socket at 200 ms RTT, vs without (goal <= 1.1: the handshake holds up
  no request that has a socket).

Each script's own output is shown as it runs (``--quiet`` hides it), then the
combined table: one row per ratio, its value, its goal and whether the goal is
met ("info" rows have no goal). The exit status is 0 even when goals are
missed (1 only when a script failed): the table, not the status, is the result.

Everything a run produces goes to the output folder, ``--out`` (default
``benchmarks/out/``, which git ignores): ``NAME.txt`` (each script's output),
``NAME.json`` (its goal rows), ``results.txt`` (the combined table) and the
plots, ``per_turn_latency.png`` (``peers.py``) and ``per_turn_latency_rtt.png``
(``network.py``). The README shows the copies in ``benchmarks/``, which git
tracks; ``--update-plot`` replaces each with the new plot once its script
succeeded, and nothing else does.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from _common import REPO, Goal, load_note, machine_summary, print_goals

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "out")
PLOT_NAME = "per_turn_latency.png"
COMMITTED_PLOT = os.path.join(HERE, PLOT_NAME)
PLOTS = {"peers": PLOT_NAME, "network": "per_turn_latency_rtt.png"}
"""Script -> the plot it draws (into the output folder; the README's copy is in benchmarks/)."""
OURS = ("session_vs_bare", "fallback_cost", "peers", "telemetry_cost", "network")
ALL = ("parse_events", "emulator_throughput", *OURS)
# What the client costs against the limit (issue 13 section 3); each writes rows with --json.
COST = ("import_time", "cpu_per_event", "memory")
OURS += COST
ALL += COST
OURS += ("pool_throughput", "spill_stall")
ALL += ("pool_throughput", "spill_stall")


def run(name: str, args: List[str], quiet: bool) -> Tuple[int, str, float]:
    """Run ``benchmarks/NAME.py``; return its exit status, stdout and seconds."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    command = [sys.executable, os.path.join(HERE, f"{name}.py"), *args]
    print(f"\n=== {name}.py {' '.join(args)}", flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if not quiet:
            print(line, end="", flush=True)
    status = proc.wait()
    elapsed = time.perf_counter() - started
    print(f"=== {name}.py: exit {status} in {elapsed:.1f} s", flush=True)
    return status, "".join(lines), elapsed


def parse_events_goals(output: str) -> List[Goal]:
    match = re.search(
        r"output_text\.delta: structure/json\.loads = ([0-9.]+) \(goal <= ([0-9.]+)\)", output
    )
    if not match:
        return [
            Goal(
                "parse_events",
                "structure / json.loads (text delta)",
                None,
                "<=",
                2.0,
                detail="no result line found",
            )
        ]
    return [
        Goal(
            "parse_events",
            "structure / json.loads (text delta)",
            float(match.group(1)),
            "<=",
            float(match.group(2)),
        )
    ]


def emulator_goals(output: str) -> List[Goal]:
    goals = []
    for label, rate in re.findall(r"^(wss|ws)\s*: .*?best ([0-9,]+) events/s", output, re.M):
        goals.append(
            Goal(
                "emulator_throughput",
                f"emulator -> bare reader over {label}",
                None,
                "info",
                0.0,
                detail=f"{rate} events/s (bounds every client)",
            )
        )
    return goals


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--skip", action="append", choices=ALL, default=[], help="leave one out")
    parser.add_argument("--quiet", action="store_true", help="show only the combined table")
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=OUT_DIR,
        help="folder for the results and the plot (default: benchmarks/out, ignored by git)",
    )
    parser.add_argument(
        "--update-plot",
        action="store_true",
        help=(
            "also replace the plots the README shows, "
            + " and ".join(f"benchmarks/{n}" for n in PLOTS.values())
            + " (tracked by git)"
        ),
    )
    args = parser.parse_args(argv)
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)

    print(f"Machine: {machine_summary()}")
    print(f"Before: {load_note()}")
    goals: List[Goal] = []
    failures: Dict[str, int] = {}
    durations: Dict[str, float] = {}
    pngs: Dict[str, str] = {}
    for name in ALL:
        if name in args.skip:
            continue
        out_json = os.path.join(out_dir, f"{name}.json")
        with contextlib.suppress(FileNotFoundError):
            os.remove(out_json)  # never read the rows of an earlier run
        extra = ["--json", out_json] if name in OURS else []
        if name in PLOTS:
            extra += ["--plot", os.path.join(out_dir, PLOTS[name])]
        status, output, durations[name] = run(name, extra, args.quiet)
        with open(os.path.join(out_dir, f"{name}.txt"), "w", encoding="utf-8") as f:
            f.write(output)
        if status != 0:
            failures[name] = status
        if name == "parse_events":
            goals += parse_events_goals(output)
        elif name == "emulator_throughput":
            goals += emulator_goals(output)
        elif os.path.exists(out_json):
            with open(out_json, encoding="utf-8") as f:
                payload = json.load(f)
            goals += [Goal.from_dict(d) for d in payload["goals"]]
            if payload.get("png"):
                pngs[name] = payload["png"]
        else:
            goals.append(Goal(name, "(no result: the script failed)", None, "info", 0.0))

    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        print("\n" + "=" * 100)
        print(f"Machine: {machine_summary()}")
        print(f"After: {load_note()}")
        print("Durations: " + ", ".join(f"{k} {v:.0f} s" for k, v in durations.items()))
        print_goals(goals, title="All ratios", show_script=True)
        met = sum(1 for g in goals if g.met is True)
        missed = [g for g in goals if g.met is False]
        print(
            f"\nGoals met: {met}, missed: {len(missed)}"
            + (" (" + "; ".join(f"{g.script}: {g.name}" for g in missed) + ")" if missed else "")
        )
        for name, status in failures.items():
            print(f"FAILED: {name}.py exited with {status}")
    print(summary.getvalue(), end="")
    with open(os.path.join(out_dir, "results.txt"), "w", encoding="utf-8") as f:
        f.write(summary.getvalue().lstrip("\n"))
    for name, png in pngs.items():
        print(f"\nPlot: {png}")
        if args.update_plot and name not in failures:
            committed = os.path.join(HERE, PLOTS[name])
            shutil.copyfile(png, committed)
            print(f"Updated the README's plot: {committed}")
    if args.update_plot and not pngs:
        print("\n--update-plot: no new plot was drawn; the README's plots are unchanged")
    print(f"Results: {out_dir}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
