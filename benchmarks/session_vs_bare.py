"""What does ``Session`` cost over a bare websocket-client loop (throughput, latency, threads)?

Run from the repository root::

    python benchmarks/session_vs_bare.py [--tokens 20000] [--rounds 5] [--turns 20]
                                         [--threads 16] [--per-thread 4]

One run, one emulator (in a child process, so it does not share this process's
GIL; ``--in-process`` puts it in a thread here instead), three measurements, each
repeated in alternating rounds (bare, session, bare, session, ...) so that drift
and noise hit both sides alike:

(a) streaming throughput: events per second that ``session.stream()`` hands to
    its caller, over a bare loop (``websocket.create_connection`` + ``recv()``
    + ``json.loads`` in one thread) reading the same long response
    (``emulator_output_tokens``). Both sockets use ``skip_utf8_validation=True``
    (the session's transport always does; the bare socket is given the same,
    ``--bare-utf8-validation`` turns it back on for the bare side only). The
    ratio is median(session events/s) / median(bare events/s): 1.0 means the
    session is free, the goal is >= 0.8.
(b) chained latency: a ``--turns``-turn loop where each turn waits for the
    terminal event and sends the next with ``previous_response_id`` (store=false,
    small answers), ``session.send()`` vs the same loop on the bare socket. The
    ratio is median(session loop time) / median(bare loop time); goal <= 1.15.
(c) concurrency: ``--threads`` threads sharing one session, each sending
    ``--per-thread`` requests one after another, vs the same requests sent one
    after another on one session, every response with 50 ms to first token
    (metadata ``emulator_ttft``). The ratio is sequential time / threaded time
    ("how many times faster"); the goal is >= 12 (the service runs 16 responses
    at once per socket, so 16 is the ceiling).

Raw figures are printed as well as the ratios. A ratio depends on the machine:
on 2 cores the emulator and the client each get about one.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from _common import (
    MODEL,
    BareSocket,
    EmulatorProcess,
    Goal,
    load_note,
    machine_summary,
    median,
    print_goals,
    write_json,
)

import openai_ws

SCRIPT = "session_vs_bare"
STREAM_GOAL = 0.8
CHAIN_GOAL = 1.15
THREADS_GOAL = 12.0


def _alternate(rounds: int, sides: Dict[str, Callable[[], float]]) -> Dict[str, List[float]]:
    """Run each side once per round, alternating the order every round."""
    results: Dict[str, List[float]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            results[name].append(sides[name]())
    return results


# -- (a) streaming throughput --------------------------------------------------------


def stream_rates(emu: EmulatorProcess, args: argparse.Namespace) -> Dict[str, List[float]]:
    body = {
        "model": MODEL,
        "input": "benchmark tokens flow",
        "store": False,
        "metadata": {"emulator_output_tokens": str(args.tokens)},
    }
    client = emu.client()
    bare = BareSocket(emu, skip_utf8_validation=not args.bare_utf8_validation)
    session = client.ws_session()
    counts: Dict[str, int] = {}

    def bare_side() -> float:
        started = time.perf_counter()
        bare.send(body)
        n = bare.count_until_terminal()
        elapsed = time.perf_counter() - started
        counts["bare"] = n
        return n / elapsed

    def session_side() -> float:
        started = time.perf_counter()
        n = 0
        for _ in session.stream(**body):
            n += 1
        elapsed = time.perf_counter() - started
        counts["session"] = n
        return n / elapsed

    try:
        bare_side(), session_side()  # warm-up: caches, generated converters
        rates = _alternate(args.rounds, {"bare": bare_side, "session": session_side})
    finally:
        session.close()
        bare.close()
    if counts["bare"] != counts["session"]:
        raise RuntimeError(f"the two sides saw different event counts: {counts}")
    print(f"(a) {counts['session']} events per response, {args.rounds} alternating rounds")
    return rates


# -- (b) chained latency -------------------------------------------------------------


def chain_times(emu: EmulatorProcess, args: argparse.Namespace) -> Dict[str, List[float]]:
    client = emu.client()
    bare = BareSocket(emu, skip_utf8_validation=not args.bare_utf8_validation)
    session = client.ws_session()

    def bare_side() -> float:
        previous: Optional[str] = None
        started = time.perf_counter()
        for turn in range(args.turns):
            body: Dict[str, Any] = {
                "model": MODEL,
                "input": f"turn {turn}: a short answer please",
                "store": False,
            }
            if previous is not None:
                body["previous_response_id"] = previous
            bare.send(body)
            terminal = bare.until_terminal()
            if terminal["type"] != "response.completed":
                raise RuntimeError(f"bare turn {turn} ended with {terminal['type']}")
            previous = terminal["response"]["id"]
        return time.perf_counter() - started

    def session_side() -> float:
        previous: Optional[str] = None
        started = time.perf_counter()
        for turn in range(args.turns):
            response = session.send(
                model=MODEL,
                input=f"turn {turn}: a short answer please",
                store=False,
                previous_response_id=previous,
            )
            if response.status != "completed":
                raise RuntimeError(f"session turn {turn} ended with {response.status}")
            previous = response.id
        return time.perf_counter() - started

    try:
        bare_side(), session_side()
        times = _alternate(args.rounds, {"bare": bare_side, "session": session_side})
    finally:
        session.close()
        bare.close()
    return times


# -- (c) threads on one session --------------------------------------------------------


def thread_times(emu: EmulatorProcess, args: argparse.Namespace) -> Dict[str, List[float]]:
    client = emu.client()
    session = client.ws_session()
    metadata = {"emulator_ttft": str(args.ttft)}
    total = args.threads * args.per_thread

    def request(i: int) -> Dict[str, Any]:
        return {"model": MODEL, "input": f"request {i}", "store": False, "metadata": metadata}

    def sequential() -> float:
        started = time.perf_counter()
        for i in range(total):
            session.send(**request(i))
        return time.perf_counter() - started

    def threaded() -> float:
        barrier = threading.Barrier(args.threads + 1)
        errors: List[BaseException] = []

        def worker(w: int) -> None:
            barrier.wait()
            try:
                for k in range(args.per_thread):
                    session.send(**request(w * args.per_thread + k))
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=worker, args=(w,)) for w in range(args.threads)]
        for t in workers:
            t.start()
        barrier.wait()
        started = time.perf_counter()
        for t in workers:
            t.join()
        elapsed = time.perf_counter() - started
        if errors:
            raise errors[0]
        return elapsed

    try:
        threaded()  # warm-up: opens the lanes
        times = _alternate(args.rounds_c, {"sequential": sequential, "threaded": threaded})
        # The public helper for the same job, for reference (no goal).
        requests = [openai_ws.ResponseCreateRequest(**request(i)) for i in range(total)]
        started = time.perf_counter()
        done = sum(1 for _ in session.map(requests, concurrency=args.threads))
        times["map"] = [time.perf_counter() - started]
        assert done == total
        times["lanes_used"] = [float(session.stats.lanes_used)]
    finally:
        session.close()
    return times


# -- main --------------------------------------------------------------------------------


def _fmt(values: List[float], scale: float, unit: str, digits: int = 1) -> str:
    return ", ".join(f"{v * scale:,.{digits}f}" for v in values) + f" {unit}"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=20000, help="deltas of the long response")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds for (a), (b)")
    parser.add_argument("--turns", type=int, default=20, help="turns of the chained loop (b)")
    parser.add_argument("--threads", type=int, default=16, help="threads for (c)")
    parser.add_argument("--per-thread", type=int, default=4, help="requests per thread (c)")
    parser.add_argument("--rounds-c", type=int, default=2, help="alternating rounds for (c)")
    parser.add_argument("--ttft", type=float, default=0.05, help="time to first token (c), s")
    parser.add_argument(
        "--bare-utf8-validation",
        action="store_true",
        help="let the bare socket validate UTF-8 (the session never does)",
    )
    parser.add_argument("--in-process", action="store_true", help="emulator in this process")
    parser.add_argument("--only", choices=("a", "b", "c"), action="append", help="run a part")
    parser.add_argument("--json", help="write the goal rows to this file (run_all.py)")
    args = parser.parse_args(argv)
    parts = set(args.only or ("a", "b", "c"))

    print(f"Machine: {machine_summary()}; {load_note()}")
    utf8 = "bare: default UTF-8 validation" if args.bare_utf8_validation else "both"
    print(
        f"Sockets: skip_utf8_validation=True ({utf8}); emulator in "
        f"{'this process' if args.in_process else 'a child process'}"
    )
    goals: List[Goal] = []
    with EmulatorProcess(in_process=args.in_process) as emu:
        if "a" in parts:
            rates = stream_rates(emu, args)
            bare, sess = median(rates["bare"]), median(rates["session"])
            best = max(rates["session"]) / max(rates["bare"])
            print("    bare    events/s: " + _fmt(rates["bare"], 1, "", 0))
            print("    session events/s: " + _fmt(rates["session"], 1, "", 0))
            print(
                f"    median: bare {bare:,.0f}/s, session {sess:,.0f}/s; best-of ratio {best:.2f}"
            )
            goals.append(
                Goal(
                    SCRIPT,
                    "(a) stream events/s: session / bare",
                    sess / bare,
                    ">=",
                    STREAM_GOAL,
                    detail=f"{sess:,.0f} vs {bare:,.0f} events/s",
                )
            )
        if "b" in parts:
            times = chain_times(emu, args)
            bare, sess = median(times["bare"]), median(times["session"])
            print(f"(b) {args.turns}-turn previous_response_id loop, {args.rounds} rounds")
            print("    bare    loop: " + _fmt(times["bare"], 1e3, "ms"))
            print("    session loop: " + _fmt(times["session"], 1e3, "ms"))
            per_turn = f"{sess / args.turns * 1e3:.2f} vs {bare / args.turns * 1e3:.2f} ms/turn"
            goals.append(
                Goal(
                    SCRIPT,
                    f"(b) {args.turns}-turn chain: session / bare",
                    sess / bare,
                    "<=",
                    CHAIN_GOAL,
                    detail=per_turn,
                )
            )
        if "c" in parts:
            times = thread_times(emu, args)
            seq, thr = median(times["sequential"]), median(times["threaded"])
            total = args.threads * args.per_thread
            print(f"(c) {total} requests, ttft {args.ttft * 1e3:.0f} ms, {args.rounds_c} rounds")
            print("    sequential: " + _fmt(times["sequential"], 1e3, "ms"))
            print(f"    {args.threads} threads: " + _fmt(times["threaded"], 1e3, "ms"))
            print(f"    lanes (stream_id names) the session used: {times['lanes_used'][0]:.0f}")
            print(
                f"    session.map(concurrency={args.threads}): "
                + _fmt(times["map"], 1e3, "ms")
                + f" ({seq / times['map'][0]:.1f}x, no goal)"
            )
            goals.append(
                Goal(
                    SCRIPT,
                    f"(c) {args.threads} threads: speed-up",
                    seq / thr,
                    ">=",
                    THREADS_GOAL,
                    detail=f"{seq * 1e3:.0f} ms vs {thr * 1e3:.0f} ms",
                )
            )
    print(f"\nAfter the run: {load_note()}")
    print_goals(goals, title="Ratios (median of alternating rounds)")
    write_json(args.json, goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
