"""More than 16 at once: ``session.map(concurrency=64)`` over several sockets vs one.

Run from the repository root::

    python benchmarks/pool_throughput.py [--requests 256] [--concurrency 64]
                                         [--ttft 0.2] [--tokens 20] [--interval 0.01]
                                         [--rounds 3]

The emulator (in a child process) runs at most 16 responses at once per socket,
as the service does, and queues the rest; every response takes the same service
time: ``ttft`` to the first event, then ``tokens`` deltas ``interval`` apart.
Measured, side by side in each round (the order alternates):

* pool: ``ws_session(max_sockets=4).map(requests, concurrency=64)``;
* one socket: the same with ``max_sockets=1`` (64 threads, 16 run at a time).

The ideal throughput is ``concurrency / service time`` requests per second
(every slot always busy, nothing lost between responses). Goals: the pool's
throughput >= 0.9x the ideal, and >= 3.5x that of one socket (which can reach
at most 16 / service time: 4x less at concurrency 64).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Dict, List

from _common import EmulatorProcess, Goal, load_note, machine_summary, median, print_goals, write_json

SCRIPT = "pool_throughput"


def run_map(emu: EmulatorProcess, args: argparse.Namespace, sockets: int) -> float:
    """Seconds to answer every request with ``map`` on a session of ``sockets`` sockets."""
    import openai_ws

    client = emu.client()
    requests = [
        openai_ws.ResponseCreateRequest(model="gpt-4o-mini", input=f"request {i}", store=False)
        for i in range(args.requests)
    ]
    try:
        with client.ws_session(max_sockets=sockets) as session:
            started = time.perf_counter()
            answers = list(session.map(requests, concurrency=args.concurrency))
            elapsed = time.perf_counter() - started
            opened = session.stats.sockets_max
        if len(answers) != args.requests or any(a.status != "completed" for a in answers):
            raise RuntimeError("a request was not answered")
        print(f"  max_sockets={sockets}: {elapsed:.3f} s, {opened} socket(s) opened")
        return elapsed
    finally:
        client.close()


def main(argv: List[str] = sys.argv[1:]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--ttft", type=float, default=0.2, help="seconds to the first event")
    parser.add_argument("--tokens", type=int, default=20, help="deltas per answer")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between deltas")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the goal rows to this file (run_all.py)")
    args = parser.parse_args(argv)

    print(f"Machine: {machine_summary()}; {load_note()}")
    service = args.ttft + args.tokens * args.interval
    ideal = args.concurrency / service
    print(
        f"{args.requests} requests, concurrency {args.concurrency}, service time "
        f"{service * 1e3:.0f} ms (ttft {args.ttft * 1e3:.0f} ms + {args.tokens} x "
        f"{args.interval * 1e3:.0f} ms): ideal {ideal:.1f} requests/s"
    )
    times: Dict[int, List[float]] = {4: [], 1: []}
    config = {"ttft": args.ttft, "token_interval": args.interval, "output_tokens": args.tokens}
    with EmulatorProcess(**config) as emu:
        run_map(emu, argparse.Namespace(**{**vars(args), "requests": 16}), 4)  # warm up
        for number in range(args.rounds):
            print(f"round {number + 1}")
            for sockets in (4, 1) if number % 2 == 0 else (1, 4):
                times[sockets].append(run_map(emu, args, sockets))
    pool = args.requests / median(times[4])
    single = args.requests / median(times[1])
    print(f"\npool {pool:.1f} requests/s, one socket {single:.1f} requests/s, ideal {ideal:.1f}")
    goals = [
        Goal(
            SCRIPT,
            f"map(concurrency={args.concurrency}) over 4 sockets / ideal",
            pool / ideal,
            ">=",
            0.9,
            detail=f"{pool:.1f} vs {ideal:.1f} requests/s",
        ),
        Goal(
            SCRIPT,
            "4 sockets / 1 socket (same map)",
            pool / single,
            ">=",
            3.5,
            detail=f"{pool:.1f} vs {single:.1f} requests/s",
        ),
    ]
    print(f"After the run: {load_note()}")
    print_goals(goals, title="Ratios (medians)")
    write_json(args.json, goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
