"""What does OpenTelemetry cost ``session.stream()``: not installed, not configured, configured?

Run from the repository root::

    python benchmarks/telemetry_cost.py [--rounds 7] [--streams 5] [--tokens 10000]

One emulator (in a child process, so it does not share the client's GIL), and
for every measurement a fresh client process in one of three modes:

* ``absent``: OpenTelemetry made unimportable (``sys.modules["opentelemetry"] =
  None`` before ``openai_ws`` is imported), as if it were not installed;
* ``idle``: installed, nothing configured (the API's proxies; every request gets
  the shared no-op recorder);
* ``traced``: an SDK ``TracerProvider`` with a ``SimpleSpanProcessor`` into an
  ``InMemorySpanExporter`` and a ``MeterProvider`` with an ``InMemoryMetricReader``,
  set as the global providers: one span and the four histograms per request.

Each client process opens a session, reads one warm-up stream, then
``--streams`` streams of ``--tokens`` text deltas, and reports each stream's
events per second (wall clock) and the process's CPU time per event (reader
thread included). The modes run in rotated order, ``--rounds`` times, so drift
and noise hit all three alike; a ratio is the median over rounds of (mode
events/s) / (absent events/s) in the same round (a round's three processes run
back to back, so a slow spell of the machine hits a round's modes together).
The goal is the issue's "the hot path pays nothing measurable": idle / absent
>= 0.97. traced / absent is shown with no goal (it pays for the spans and
histograms it records, once per request). The CPU time per event of
each mode, over absent's, is shown too: on a shared machine it is steadier than
the wall clock (other processes slow a stream down, not its own CPU use), and it
still counts the client's work when the emulator is the bottleneck. The traced
process checks that it recorded exactly one span per stream.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

from _common import (
    MODEL,
    REPO,
    EmulatorProcess,
    Goal,
    load_note,
    machine_summary,
    median,
    print_goals,
    write_json,
)

SCRIPT = "telemetry_cost"
MODES = ("absent", "idle", "traced")
IDLE_GOAL = 0.97


# -- one client process -------------------------------------------------------------------


def child(mode: str, base_url: str, api_key: str, streams: int, tokens: int) -> Dict[str, Any]:
    """Measure ``streams`` streams in this process, OpenTelemetry set up as ``mode`` says."""
    exporter: Any = None
    if mode == "absent":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]
    elif mode == "traced":
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    import openai_ws

    body = {
        "model": MODEL,
        "input": "telemetry cost",
        "store": False,
        "metadata": {"emulator_output_tokens": str(tokens)},
    }
    client = openai_ws.OpenAI(api_key=api_key, base_url=base_url)
    rates: List[float] = []
    cpu: List[float] = []
    with client.ws_session() as session:
        for i in range(streams + 1):
            wall, used = time.perf_counter(), time.process_time()
            n = sum(1 for _ in session.stream(**body))
            wall, used = time.perf_counter() - wall, time.process_time() - used
            if i:  # the first one is the warm-up
                rates.append(n / wall)
                cpu.append(used / n)
    spans = len(exporter.get_finished_spans()) if exporter is not None else 0
    loaded = "opentelemetry" in sys.modules and sys.modules["opentelemetry"] is not None
    if mode == "traced" and spans != streams + 1:
        raise RuntimeError(f"expected {streams + 1} spans, got {spans}")
    return {"mode": mode, "rates": rates, "cpu": cpu, "spans": spans, "otel_loaded": loaded}


def run_child(mode: str, emu: EmulatorProcess, args: argparse.Namespace) -> Dict[str, Any]:
    """One fresh client process in ``mode``; its measurements."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", None)
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        mode,
        "--base-url",
        emu.base_url,
        "--api-key",
        emu.api_key,
        "--streams",
        str(args.streams),
        "--tokens",
        str(args.tokens),
    ]
    proc = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=300, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the {mode} client failed:\n{proc.stderr}")
    result: Dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- the parent ---------------------------------------------------------------------------


def paired(values: List[float], baseline: List[float]) -> float:
    """The median over rounds of ``values[r] / baseline[r]`` (a round's modes ran back to back)."""
    return median([v / b for v, b in zip(values, baseline)])


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="rotations of the three modes")
    parser.add_argument("--streams", type=int, default=5, help="timed streams per process")
    parser.add_argument("--tokens", type=int, default=10000, help="text deltas per stream")
    parser.add_argument("--json", help="write the goal rows to this file (run_all.py)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--api-key", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.base_url, args.api_key, args.streams, args.tokens)))
        return 0

    print(f"Machine: {machine_summary()}; {load_note()}")
    print(
        f"{args.rounds} rounds x {len(MODES)} modes, each a fresh process: 1 warm-up + "
        f"{args.streams} streams of {args.tokens} deltas"
    )
    rates: Dict[str, List[float]] = {m: [] for m in MODES}
    cpu: Dict[str, List[float]] = {m: [] for m in MODES}
    with EmulatorProcess() as emu:
        for r in range(args.rounds):
            order = MODES[r % len(MODES) :] + MODES[: r % len(MODES)]
            for mode in order:
                result = run_child(mode, emu, args)
                if result["otel_loaded"] != (mode != "absent"):
                    raise RuntimeError(f"{mode}: OpenTelemetry loaded = {result['otel_loaded']}")
                rates[mode].append(median(result["rates"]))
                cpu[mode].append(median(result["cpu"]))
    for mode in MODES:
        figures = ", ".join(f"{v:,.0f}" for v in rates[mode])
        print(
            f"  {mode:<6} events/s: {figures}; median {median(rates[mode]):,.0f}/s, "
            f"CPU {median(cpu[mode]) * 1e6:.2f} us/event"
        )
    absent = median(rates["absent"])
    goals: List[Goal] = []
    for mode, label, op in (
        ("idle", "not configured", ">="),
        ("traced", "traced (in-memory)", "info"),
    ):
        goals.append(
            Goal(
                SCRIPT,
                f"stream events/s: {label} / not installed",
                paired(rates[mode], rates["absent"]),
                op,
                IDLE_GOAL if op == ">=" else 0.0,
                detail=f"medians {median(rates[mode]):,.0f} vs {absent:,.0f} events/s",
            )
        )
    for mode, label in (("idle", "not configured"), ("traced", "traced (in-memory)")):
        goals.append(
            Goal(
                SCRIPT,
                f"CPU per event: {label} / not installed",
                paired(cpu[mode], cpu["absent"]),
                "info",
                0.0,
                detail=f"{median(cpu[mode]) * 1e6:.2f} vs {median(cpu['absent']) * 1e6:.2f} us",
            )
        )
    print(f"\nAfter the run: {load_note()}")
    print_goals(goals, title="Ratios (median of rotated rounds)")
    write_json(args.json, goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
