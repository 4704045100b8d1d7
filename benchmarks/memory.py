"""How much memory does a session hold: idle, and per request waiting for its answer?

Run from the repository root::

    python benchmarks/memory.py [--inflight 1,16,64] [--ttft 3] [--json OUT]

The emulator runs in a child process (its memory is not counted). This process
reads its own resident set (``VmRSS`` of ``/proc/self/status``; ``ru_maxrss``
where there is no ``/proc``) at each step:

* after ``import openai_ws`` and making a client;
* an idle session: one request answered, its socket open, nothing in flight;
* ``N`` requests in flight (``Session.submit``; every answer held back
  ``--ttft`` seconds by the emulator, so they all wait at once), for each ``N``
  of ``--inflight``: the growth over the idle session, and that over ``N``.

RSS moves in pages and allocator arenas, so the per-request figure of a small
``N`` is coarse; the same steps are therefore repeated with ``tracemalloc``
(started just before the requests are submitted, so it counts only what they
allocate), which gives the Python heap per request to the byte. More than 16
requests open extra sockets (16 responses run at once per socket), whose cost
is included. No goal: the rows are info for ``run_all.py``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from typing import Any, Dict, List, Optional, Tuple

from _common import (
    MODEL,
    EmulatorProcess,
    Goal,
    load_note,
    machine_summary,
    print_goals,
    write_json,
)

SCRIPT = "memory"


def rss() -> int:
    """This process's resident set, in bytes."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak if sys.platform == "darwin" else peak * 1024


def body(i: int, ttft: float) -> Dict[str, Any]:
    """A small request whose answer the emulator holds back ``ttft`` seconds."""
    return {
        "model": MODEL,
        "input": f"memory {i}",
        "store": False,
        "metadata": {"emulator_ttft": str(ttft), "emulator_output_tokens": "4"},
    }


def in_flight(session: Any, count: int, ttft: float, traced: bool) -> Tuple[int, int]:
    """Submit ``count`` slow requests; return (bytes grown, sockets open) while all wait.

    ``traced``: the growth is what ``tracemalloc`` saw allocated, not RSS.
    """
    before = rss()
    if traced:
        tracemalloc.start()
    pending = [session.submit(**body(i, ttft)) for i in range(count)]
    time.sleep(min(0.5, ttft / 3))  # every frame sent, every socket open, nothing answered
    if any(p.done() for p in pending):
        raise RuntimeError("an answer arrived before the measurement; raise --ttft")
    grown = tracemalloc.get_traced_memory()[0] if traced else rss() - before
    sockets = session.stats.connects
    if traced:
        tracemalloc.stop()
    for p in pending:
        p.result()
    return grown, sockets


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--inflight", default="1,16,64", help="requests in flight, comma-separated (1,16,64)"
    )
    parser.add_argument("--ttft", type=float, default=3.0, help="seconds each answer is held")
    parser.add_argument("--json", metavar="OUT", help="write the info rows here (run_all.py)")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.inflight.split(",") if n.strip()]

    print(f"Machine: {machine_summary()}")
    print(f"Before: {load_note()}")
    start = rss()
    import openai_ws

    goals: List[Goal] = []
    with EmulatorProcess() as emu:
        client = openai_ws.OpenAI(api_key=emu.api_key, base_url=emu.base_url)
        made = rss()
        try:
            with client.ws_session() as session:
                session.send(model=MODEL, input="warm up", store=False)  # socket, converters
                idle = rss()
                sockets = session.stats.connects
                print(
                    f"\nRSS: {start / 2**20:.1f} MiB at start, {made / 2**20:.1f} MiB with the "
                    f"package and a client (+{(made - start) / 2**20:.1f}), {idle / 2**20:.1f} "
                    f"MiB with an idle session (+{(idle - made) / 2**20:.1f}, "
                    f"{sockets} socket open)"
                )
                goals.append(
                    Goal(
                        SCRIPT,
                        "idle session RSS (MiB over a client)",
                        None,
                        "info",
                        0.0,
                        detail=f"{(idle - made) / 2**20:.2f} MiB; {idle / 2**20:.1f} MiB in all",
                    )
                )
                for p in [session.submit(**body(i, 0.0)) for i in range(max(counts))]:
                    p.result()  # every socket and lane the largest N needs, made once
                print(
                    f"\nrequests in flight (answers held {args.ttft:g} s; "
                    f"{session.stats.connects} sockets opened for {max(counts)})"
                )
                print(f"{'N':>5} {'RSS growth':>12} {'per request':>12} {'traced/request':>15}")
                seen: List[Tuple[int, int, int]] = []
                for count in counts:
                    grown, _ = in_flight(session, count, args.ttft, traced=False)
                    traced, _ = in_flight(session, count, args.ttft, traced=True)
                    seen.append((count, grown, traced))
                    print(
                        f"{count:>5} {grown / 1024:>9.0f} KiB {grown / count / 1024:>8.1f} KiB "
                        f"{traced / count / 1024:>11.1f} KiB"
                    )
                    goals.append(
                        Goal(
                            SCRIPT,
                            f"memory per in-flight request, N={count}",
                            None,
                            "info",
                            0.0,
                            detail=(
                                f"RSS {grown / count / 1024:.1f} KiB, "
                                f"Python heap {traced / count / 1024:.1f} KiB"
                            ),
                        )
                    )
                if len(seen) > 1:
                    (n0, r0, t0), (n1, r1, t1) = seen[0], seen[-1]
                    slope = f"RSS {(r1 - r0) / (n1 - n0) / 1024:.1f} KiB, "
                    slope += f"Python heap {(t1 - t0) / (n1 - n0) / 1024:.1f} KiB"
                    print(f"each request beyond {n0} (N={n0} to N={n1}): {slope}")
                    goals.append(
                        Goal(
                            SCRIPT,
                            "memory per extra in-flight request",
                            None,
                            "info",
                            0.0,
                            detail=f"{slope} (N={n0} to {n1})",
                        )
                    )
        finally:
            client.close()
    print_goals(goals, title="Rows (info)")
    write_json(args.json, goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
