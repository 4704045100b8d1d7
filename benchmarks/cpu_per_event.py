"""How much CPU does the client spend per streamed event, next to ``json.loads`` + typing?

Run from the repository root::

    python benchmarks/cpu_per_event.py [--events 20000] [--concurrent-events 2000]
                                       [--streams 16] [--rounds 5] [--json OUT]
                                       [--callgrind-events 2000] [--no-callgrind]

The emulator runs in a child process, so its CPU is not counted. Two workloads:

* one ``Session.stream`` of ``--events`` text deltas;
* ``--streams`` threads streaming at once on one session (lanes), each
  ``--concurrent-events`` deltas.

Client CPU per event is the process CPU time (``time.process_time``: every
thread of this process, the reader thread included) from the request to the
terminal event, over the events delivered. The floor is the CPU per frame of
``structure_event(json.loads(frame))`` in a tight loop over the very frames the
emulator sent (captured with a bare websocket-client socket): what any Python
client that hands out typed events must spend. The ratio client / floor has a
goal of <= 1.5 for both workloads. Each figure is the median of ``--rounds``.

The client's reader does not call ``json.loads``: it calls the C scanner that
``json.loads`` wraps (``openai_ws._protocol.decode``), which is cheaper. So the
script also prints, as information, the ratio to a stricter floor that decodes
the same way (``structure_event`` of the scanner's value): what the client
spends beyond the decoding and typing it cannot avoid.

Process CPU time still drifts with the machine's load (caches, frequency), so
the same ratios are also measured in instructions, which do not: valgrind's
callgrind counts the instructions of a worker process (this script with
``--worker``; the emulator stays outside it) for two event counts, and the
difference over the difference in events is the per-event count, start-up and
imports cancelled out. The floor is counted the same way. Callgrind is slow
(about 50 times), so it uses ``--callgrind-events``; under it the client
thread and the reader take turns, so batches are larger than natively (a lower
bound of the per-event work). ``perf stat -e instructions`` is tried first and
is used instead when the machine exposes the counter.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from _common import (
    MODEL,
    REPO,
    TERMINAL,
    EmulatorProcess,
    Goal,
    load_note,
    machine_summary,
    print_goals,
    write_json,
)

SCRIPT = "cpu_per_event"
GOAL = 1.5


def body(tokens: int, i: int = 0) -> Dict[str, Any]:
    """A request for a response of ``tokens`` text deltas."""
    return {
        "model": MODEL,
        "input": f"cpu benchmark {i}",
        "store": False,
        "metadata": {"emulator_output_tokens": str(tokens)},
    }


# -- the client side ---------------------------------------------------------------------


def run_streams(session: Any, tokens: int, streams: int) -> Tuple[int, float]:
    """``streams`` concurrent ``session.stream`` calls of ``tokens`` deltas: (events, CPU s).

    One stream runs in this thread; more run in one thread each, started
    together. The CPU is this process's, from just before the requests to the
    last terminal event.
    """
    if streams == 1:
        started = time.process_time()
        n = 0
        for _ in session.stream(**body(tokens)):
            n += 1
        return n, time.process_time() - started
    counts = [0] * streams
    errors: List[BaseException] = []
    barrier = threading.Barrier(streams + 1)

    def worker(w: int) -> None:
        barrier.wait()
        try:
            n = 0
            for _ in session.stream(**body(tokens, w)):
                n += 1
            counts[w] = n
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(streams)]
    for t in threads:
        t.start()
    started = time.process_time()
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.process_time() - started
    if errors:
        raise errors[0]
    return sum(counts), elapsed


def capture_frames(emu: EmulatorProcess, tokens: int) -> List[str]:
    """The text frames of one response of ``tokens`` deltas, as a bare socket receives them."""
    import websocket

    ws = websocket.create_connection(
        emu.ws_url,
        header=[f"Authorization: Bearer {emu.api_key}"],
        skip_utf8_validation=True,
        suppress_origin=True,
    )
    try:
        ws.send(json.dumps({"type": "response.create", **body(tokens)}))
        frames = []
        while True:
            frame = ws.recv()
            frames.append(frame)
            if json.loads(frame)["type"] in TERMINAL:
                return frames
    finally:
        ws.close()


def _decoder(scanner: bool) -> Any:
    """``json.loads``, or (``scanner``) the C scanner the client's reader calls directly."""
    if not scanner:
        return json.loads
    from openai_ws._protocol.decode import SCAN_ONCE

    return lambda frame: SCAN_ONCE(frame, 0)[0]


def floor_cpu(frames: List[str], repeat: int, scanner: bool = False) -> float:
    """CPU seconds per frame of ``structure_event(json.loads(frame))``, best of ``repeat``
    (``scanner``: the C scanner instead of ``json.loads``)."""
    from openai_ws._convert import structure_event

    loads = _decoder(scanner)
    for frame in frames:  # warm-up: compiles every structure function used
        structure_event(loads(frame))
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for frame in frames:
            structure_event(loads(frame))
        best = min(best, time.process_time() - started)
    return best / len(frames)


# -- instruction counts ------------------------------------------------------------------


def perf_works() -> bool:
    """Whether ``perf stat -e instructions:u`` counts anything here."""
    if not shutil.which("perf"):
        return False
    result = subprocess.run(
        ["perf", "stat", "-x,", "-e", "instructions:u", sys.executable, "-c", "pass"],
        capture_output=True,
        text=True,
        check=False,
    )
    first = (result.stderr.strip().splitlines() or [""])[-1].split(",")[0]
    return result.returncode == 0 and first.isdigit()


def count_instructions(tool: str, worker_args: List[str]) -> Tuple[int, Dict[str, Any]]:
    """Instructions of one worker process under ``tool`` (perf or callgrind), and its report."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", *worker_args]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    env["PYTHONHASHSEED"] = "0"  # the same dict and set layouts in every run: counts repeat
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        if tool == "perf":
            command = ["perf", "stat", "-x,", "-e", "instructions:u", "-o", out, *command]
        else:
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command]
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} worker failed: {result.stderr.strip()[-500:]}")
        report = json.loads(result.stdout.strip().splitlines()[-1])
        with open(out, encoding="utf-8") as f:
            text = f.read()
    if tool == "perf":
        match = re.search(r"^(\d+),[^,]*,instructions", text, re.M)
    else:
        match = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if not match:
        raise RuntimeError(f"no instruction count in the {tool} output")
    return int(match.group(1)), report


def instructions_per_event(
    tool: str, emu: EmulatorProcess, events: int, streams: int
) -> Tuple[float, int]:
    """Client instructions per event (difference of two runs) and the events counted."""
    common = ["--url", emu.base_url, "--key", emu.api_key, "--streams", str(streams)]
    small, small_report = count_instructions(tool, [*common, "--events", str(events // 4)])
    large, large_report = count_instructions(tool, [*common, "--events", str(events)])
    extra = large_report["events"] - small_report["events"]
    return (large - small) / extra, extra


def floor_instructions(tool: str, frames_file: str, frames: int, scanner: bool = False) -> float:
    """Floor instructions per frame (difference of 1 and 3 passes over the frames)."""
    extra = ["--scanner"] if scanner else []
    one, _ = count_instructions(tool, ["--floor", frames_file, "--passes", "1", *extra])
    three, _ = count_instructions(tool, ["--floor", frames_file, "--passes", "3", *extra])
    return (three - one) / (2 * frames)


def worker(args: argparse.Namespace) -> int:
    """The measured process: one warm-up stream, then the workload; prints a JSON report."""
    if args.floor:
        from openai_ws._convert import structure_event

        with open(args.floor, encoding="utf-8") as f:
            frames = json.load(f)
        loads = _decoder(args.scanner)
        for _ in range(args.passes):
            for frame in frames:
                structure_event(loads(frame))
        print(json.dumps({"frames": len(frames) * args.passes}))
        return 0
    import openai_ws

    client = openai_ws.OpenAI(api_key=args.key, base_url=args.url)
    try:
        with client.ws_session(max_queue_events=100_000) as session:  # as in main()
            run_streams(session, 20, min(args.streams, 2))  # socket, lanes, converters
            events, cpu = run_streams(session, args.events // args.streams, args.streams)
    finally:
        client.close()
    print(json.dumps({"events": events, "cpu": cpu}))
    return 0


# -- main --------------------------------------------------------------------------------


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="deltas of the single stream")
    parser.add_argument(
        "--concurrent-events", type=int, default=2000, help="deltas of each concurrent stream"
    )
    parser.add_argument("--streams", type=int, default=16, help="concurrent streams (threads)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each workload")
    parser.add_argument(
        "--callgrind-events", type=int, default=2000, help="events per instruction-count run"
    )
    parser.add_argument("--no-callgrind", action="store_true", help="skip instruction counts")
    parser.add_argument("--json", metavar="OUT", help="write the goal rows here (run_all.py)")
    # The measured child of the instruction counts (not for direct use).
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--floor", help=argparse.SUPPRESS)
    parser.add_argument("--passes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--scanner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    print(f"Machine: {machine_summary()}")
    print(f"Before: {load_note()}")

    goals: List[Goal] = []
    workloads = {
        "1 stream": (args.events, 1),
        f"{args.streams} streams": (args.concurrent_events, args.streams),
    }
    with EmulatorProcess() as emu:
        frames = capture_frames(emu, args.concurrent_events)
        floor = floor_cpu(frames, max(3, args.rounds))
        strict = floor_cpu(frames, max(3, args.rounds), scanner=True)
        size = statistics.mean(len(f) for f in frames)
        print(
            f"\nfloor: structure_event(json.loads(frame)) = {floor * 1e6:.2f} us CPU per frame "
            f"({len(frames)} frames of a {args.concurrent_events}-delta response, "
            f"{size:.0f} chars on average)"
        )
        client = emu.client()
        per_event: Dict[str, List[float]] = {}
        try:
            # The emulator sends as fast as it can, and the reader decodes faster than a
            # caller types, so a caller may fall thousands of events behind (about 4,000
            # here) and, rarely, past the default bound of 10,000 (ConsumerTooSlowError, as
            # documented). The bound is raised so that such a run is measured, not aborted.
            with client.ws_session(max_queue_events=100_000) as session:
                run_streams(session, 50, args.streams)  # warm-up: socket, lanes, converters
                for r in range(args.rounds):
                    names = list(workloads) if r % 2 == 0 else list(workloads)[::-1]
                    for name in names:
                        tokens, streams = workloads[name]
                        events, cpu = run_streams(session, tokens, streams)
                        per_event.setdefault(name, []).append(cpu / events)
                lanes = session.stats.lanes_used
        finally:
            client.close()
        print(
            f"stricter floor (info): structure_event of the C scanner's value, as the reader "
            f"decodes = {strict * 1e6:.2f} us CPU per frame"
        )
        print(f"client: median of {args.rounds} rounds ({lanes} lanes used)")
        for name, values in per_event.items():
            cpu = statistics.median(values)
            ratio = cpu / floor
            print(
                f"  {name:<12} {cpu * 1e6:6.2f} us CPU per event (min {min(values) * 1e6:.2f}), "
                f"{ratio:.2f}x the floor"
            )
            goals.append(
                Goal(
                    SCRIPT,
                    f"CPU/event, {name}: client / (json.loads + typing)",
                    ratio,
                    "<=",
                    GOAL,
                    detail=f"{cpu * 1e6:.2f} vs {floor * 1e6:.2f} us",
                )
            )
            goals.append(
                Goal(
                    SCRIPT,
                    f"CPU/event, {name}: client / (C scanner + typing)",
                    cpu / strict,
                    "info",
                    0.0,
                    detail=f"{cpu * 1e6:.2f} vs {strict * 1e6:.2f} us",
                )
            )

        tool = "perf" if perf_works() else "callgrind" if shutil.which("valgrind") else None
        if args.no_callgrind or tool is None:
            print("\ninstruction counts: skipped" + ("" if tool else " (no perf, no valgrind)"))
        else:
            if tool == "callgrind":
                print("\nperf stat -e instructions:u counts nothing here; using callgrind")
            goals += instruction_goals(tool, emu, frames, args)
    print_goals(goals, title="Goals")
    write_json(args.json, goals)
    return 0


def instruction_goals(
    tool: str, emu: EmulatorProcess, frames: List[str], args: argparse.Namespace
) -> List[Goal]:
    """The two ratios again, in instructions counted by ``tool``."""
    goals = []
    with tempfile.TemporaryDirectory() as tmp:
        frames_file = os.path.join(tmp, "frames.json")
        sample = frames[: max(50, args.callgrind_events)]
        with open(frames_file, "w", encoding="utf-8") as f:
            json.dump(sample, f)
        floor = floor_instructions(tool, frames_file, len(sample))
        strict = floor_instructions(tool, frames_file, len(sample), scanner=True)
    print(
        f"{tool}: floor {floor:,.0f} instructions per frame "
        f"(stricter, with the C scanner: {strict:,.0f})"
    )
    for name, streams in (("1 stream", 1), (f"{args.streams} streams", args.streams)):
        events = max(args.callgrind_events, 4 * streams * 10)  # >= 10 deltas per stream
        per_event, counted = instructions_per_event(tool, emu, events, streams)
        ratio = per_event / floor
        print(
            f"{tool}: {name:<12} {per_event:,.0f} instructions per event ({counted} events), "
            f"{ratio:.2f}x the floor"
        )
        goals.append(
            Goal(
                SCRIPT,
                f"instructions/event, {name}: client / floor",
                ratio,
                "<=",
                GOAL,
                detail=f"{per_event:,.0f} vs {floor:,.0f} ({tool})",
            )
        )
        goals.append(
            Goal(
                SCRIPT,
                f"instructions/event, {name}: client / (C scanner + typing)",
                per_event / strict,
                "info",
                0.0,
                detail=f"{per_event:,.0f} vs {strict:,.0f} ({tool})",
            )
        )
    return goals


if __name__ == "__main__":
    sys.exit(main())
