"""Does opening an extra socket hold up requests that have one? A turn's latency during a spill.

Run from the repository root::

    python benchmarks/spill_stall.py [--rtt 0.2] [--ttft 0.3] [--rounds 5]

The emulator (TLS, in a child process) is reached through ``netproxy.NetProxy``
at ``--rtt`` seconds of round trip, so opening a socket costs what it does on
such a network: TCP, TLS and the upgrade, about three round trips. A session
with ``max_sockets=2`` runs the first turns of 32 ``store: false``
conversations on its first socket: each of its 32 lane names then caches a
response that exists nowhere else, so that socket has no room for a new
request. Measured, alternating, in each round:

* quiet: the next turn of one of those conversations (it goes to the first
  socket, whose cache holds its parent), time from ``stream()`` to its first
  event (``response.created``: one round trip after the frame leaves, so any
  wait to send shows in full);
* spill: the same, sent right after a new conversation's first turn, which
  finds no room and opens the second socket.

The continuation needs no new socket, so it should not wait for the second
one's handshake: goal, spill / quiet <= 1.1 (median of ``--rounds``).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any, List

from _common import (
    EmulatorProcess,
    Goal,
    load_note,
    machine_summary,
    median,
    print_goals,
    write_json,
)

SCRIPT = "spill_stall"


def first_event_after(session: Any, body: Any) -> float:
    """Seconds from ``session.stream(body)`` to its first event (the rest is drained)."""
    started = time.perf_counter()
    with session.stream(body) as events:
        next(events)
        elapsed = time.perf_counter() - started
        for _ in events:
            pass
    return elapsed


def one_round(endpoint: Any, spill: bool) -> float:
    """One session: 32 conversations' first turns, then one's next turn (after a spill or not)."""
    import openai_ws

    def ask(text: str, **fields: Any) -> Any:
        return openai_ws.ResponseCreateRequest(
            model="gpt-4o-mini", input=text, store=False, **fields
        )

    client = endpoint.client()
    try:
        with client.ws_session(max_sockets=2) as session:
            # 32 store=false first turns, 16 at a time: every lane name of the first
            # socket now caches a response that exists nowhere else, so a new request
            # finds no room there (reusing a lane would lose one) and opens a socket.
            parents = []
            for batch in range(2):
                pending = [session.submit(ask(f"first {batch}.{i}")) for i in range(16)]
                parents += [p.result() for p in pending]
            if session.stats.sockets_max != 1:
                raise RuntimeError("the first turns used more than one socket")
            thread = None
            if spill:
                # A new conversation opens the second socket: its submit() blocks in
                # that thread for the handshake; the next turn is sent right after.
                thread = threading.Thread(target=lambda: session.send(ask("a new one")))
                thread.start()
                time.sleep(0.01)
            elapsed = first_event_after(
                session, ask("next turn", previous_response_id=parents[0].id)
            )
            if thread is not None:
                thread.join()
                if session.stats.sockets_max != 2:
                    raise RuntimeError("the new conversation did not open a second socket")
            return elapsed
    finally:
        client.close()


def main(argv: List[str] = sys.argv[1:]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt", type=float, default=0.2, help="round trip, seconds")
    parser.add_argument("--ttft", type=float, default=0.3, help="seconds to the first event")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="write the goal rows to this file (run_all.py)")
    args = parser.parse_args(argv)
    from netproxy import NetProxy

    print(f"Machine: {machine_summary()}; {load_note()}")
    print(f"RTT {args.rtt * 1e3:.0f} ms, TLS, time to first event {args.ttft * 1e3:.0f} ms")
    quiet: List[float] = []
    spill: List[float] = []
    config = {"ttft": args.ttft}
    with EmulatorProcess(tls=True, **config) as emu:
        proxy = NetProxy("127.0.0.1", emu.port, rtt=args.rtt).start()
        try:
            endpoint = emu.via(proxy.port)
            for number in range(args.rounds):
                for kind in ("quiet", "spill") if number % 2 == 0 else ("spill", "quiet"):
                    elapsed = one_round(endpoint, kind == "spill")
                    (spill if kind == "spill" else quiet).append(elapsed)
                    print(f"  round {number + 1} {kind:<5}: {elapsed * 1e3:6.0f} ms to first event")
        finally:
            proxy.stop()
    ratio = median(spill) / median(quiet)
    goals = [
        Goal(
            SCRIPT,
            "a turn during an extra socket's handshake / without "
            f"(RTT {args.rtt * 1e3:.0f} ms)",
            ratio,
            "<=",
            1.1,
            detail=f"{median(spill) * 1e3:.0f} vs {median(quiet) * 1e3:.0f} ms to first event",
        )
    ]
    print(f"After the run: {load_note()}")
    print_goals(goals, title="Ratio (medians)")
    write_json(args.json, goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
