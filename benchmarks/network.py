"""Per-turn latency of a tool-calling loop over simulated networks: loopback, 20, 80, 200 ms RTT.

Run from the repository root::

    python benchmarks/network.py [--turns 20] [--rounds 3] [--profiles loopback,20,80,200]
                                 [--clients session,new,pooled,bare,sdk-ws,sdk-session]
                                 [--ttft 300] [--warmup 1] [--quick] [--no-official]
                                 [--plot PATH | --no-plot] [--json PATH]

What runs: one emulator over TLS (in a child process) with the cost model
below, and for every profile x client one worker process that puts its own
``netproxy.NetProxy`` (latency-injecting TCP proxy, RTT/2 each way, one more
RTT for a new connection's TCP handshake) between its client and the
emulator; the loopback profile talks to the emulator directly. TLS is on in
every profile (the proxy forwards TCP, the certificate is for 127.0.0.1). The
workers open their connections and warm up (``--warmup`` 2-turn loops, not
timed), wait for each other at a barrier, then, their starts spread over one
turn, run ``--rounds`` loops of ``--turns`` turns at the same time (clients
that spend most of their time waiting do not disturb each other much, and all
of them see the same background load; a default run takes about 90 s). Profiles:

=========  ======  ==================================
profile    RTT     stands for
=========  ======  ==================================
loopback   0       the emulator on the same machine
20         20 ms   a client in the same cloud region
80         80 ms   across a continent
200        200 ms  the other side of the world
=========  ======  ==================================

The loop (the same requests for every client): turn 1 asks, the model calls a
tool ``step`` (three argument deltas); each next turn sends the tool's output
plus a short user message, chained with ``previous_response_id`` and
``store: true``, and the model calls the tool again; the last turn sends only
the tool's output and gets a 5-token answer. Clients: ``openai_ws`` ``Session``
(``send``), plain HTTP with a new connection per turn (``requests.post``: TCP +
TLS handshakes every turn), plain HTTP over one pooled keep-alive connection
(``requests.Session``), a bare websocket-client loop (the floor), and, when
the official ``openai`` package (``realtime`` extra) imports, its WebSocket
connection and its session helper; the client code is ``peers.py``'s.

The emulator's cost model (``EmulatorConfig``; ``openai_ws.emulator._responses.
store_load_delay``), with the sources of each number (docs/protocol.md
section 10 "Performance"):

* time to first event ``ttft`` = 300 ms: typical API time to first token is
  250-800 ms (p50-p95);
* time per token ``token_interval`` = 20 ms (50 tokens/s): our choice, the
  sources give none; a tool-calling turn streams only a few tokens;
* a continuation loaded from the store (every HTTP turn; a WebSocket turn only
  when its socket's cache misses the parent) waits ``history_rebuild_base`` =
  150 ms + ``history_rebuild_per_item`` = 5 ms per item of the parent's chain.
  Fitted, not measured: gateways that rehydrate the history every HTTP turn saw
  the WebSocket gain grow from -28 % at 8 turns to -41 % at 40 (smg-project PR
  #1770, sglang PR #22366), which a fixed + per-item cost reproduces with a
  fixed part of about 34 items' worth; scaled so that a 20-turn chain of two
  items per turn saves about 250 ms per turn on average, the figure of the
  WebSocket-mode guide's demo (14.54 s against 19.56 s, which the guide partly
  credits to pinning a session to one engine, so this is an upper bound).
  This loop adds three items per turn, so its last HTTP turn rebuilds 56 items.

How to read it: "ideal" is what a client with no overhead of its own would
see, one RTT plus the emulator's own time for the turn from the cost model
(ttft + (deltas - 1) x token interval, plus the store load for clients that
load from the store: the HTTP ones). The goal is ``Session`` within 3 % of
its ideal at every RTT (``x ideal`` <= 1.03); the emulator's own timer
lateness (asyncio sleeps) is inside that 3 %, and the bare websocket-client
loop shows how much of it. "saving" is 1 - Session / HTTP-new-connection at
that RTT. Figures are the mean of the turns of a loop, median of the rounds.
The plot (``--plot``, default ``benchmarks/out/per_turn_latency_rtt.png``;
the README's copy ``benchmarks/per_turn_latency_rtt.png`` is redrawn only by
``run_all.py --update-plot``) shows latency per turn against RTT, one line
per client and the two ideals dashed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from _common import (
    MODEL,
    EmulatorProcess,
    Endpoint,
    Goal,
    load_note,
    machine_summary,
    median,
    print_goals,
    write_json,
)

SCRIPT = "network"
GOAL = 1.03
HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "out")
PLOT_NAME = "per_turn_latency_rtt.png"

PROFILES: Dict[str, Tuple[float, str]] = {
    "loopback": (0.0, "loopback"),
    "20": (0.020, "20 ms (same region)"),
    "80": (0.080, "80 ms (cross-continent)"),
    "200": (0.200, "200 ms (far)"),
}
"""Profile name -> (RTT in seconds, label)."""

TTFT = 0.300
TOKEN_INTERVAL = 0.020
REBUILD_BASE = 0.150
REBUILD_PER_ITEM = 0.005
FINAL_TOKENS = 5
BARRIER_TIMEOUT = 180.0

TOOL = {
    "type": "function",
    "name": "step",
    "description": "Carry out one step of the task.",
    "parameters": {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
    },
}


# -- the workload ----------------------------------------------------------------------


def call_id(k: int) -> str:
    return f"call_step_{k}"


def arguments(k: int) -> str:
    """The JSON arguments of turn ``k``'s tool call, as the emulator streams them."""
    return json.dumps({"n": k + 1}, separators=(",", ":"))


def turn_inputs(k: int, turns: int) -> Any:
    """The input of turn ``k`` (0-based) of a ``turns``-turn loop."""
    if k == 0:
        return "Run the task: call the step tool once per step, then sum up."
    items: List[Dict[str, Any]] = [
        {"type": "function_call_output", "call_id": call_id(k - 1), "output": f"step {k} done"}
    ]
    if k < turns - 1:
        items.append({"role": "user", "content": "Next step."})
    return items


def turn_body(k: int, turns: int, previous: Optional[str]) -> Dict[str, Any]:
    """The request of turn ``k``: a tool call on cue (``metadata``), or the final answer."""
    body: Dict[str, Any] = {
        "model": MODEL,
        "input": turn_inputs(k, turns),
        "tools": [TOOL],
        "store": True,
    }
    if k < turns - 1:
        call = {"name": "step", "arguments": arguments(k), "call_id": call_id(k)}
        body["metadata"] = {"emulator_function_call": json.dumps(call)}
    else:
        body["metadata"] = {"emulator_output_tokens": str(FINAL_TOKENS)}
    if previous is not None:
        body["previous_response_id"] = previous
    return body


def expected_deltas(k: int, turns: int) -> int:
    """Delta events (= output tokens) of turn ``k``: the argument pieces, or the answer."""
    from openai_ws.emulator._items import chunks  # how the emulator cuts arguments

    return FINAL_TOKENS if k == turns - 1 else len(chunks(arguments(k)))


def items_before(k: int, turns: int) -> int:
    """Items in the parent chain of turn ``k``: every earlier input item and output item."""
    total = 0
    for j in range(k):
        inputs = turn_inputs(j, turns)
        total += (1 if isinstance(inputs, str) else len(inputs)) + 1
    return total


def emulator_config(ttft: float) -> Dict[str, float]:
    """The ``EmulatorConfig`` fields of the cost model."""
    return {
        "ttft": ttft,
        "token_interval": TOKEN_INTERVAL,
        "history_rebuild_base": REBUILD_BASE,
        "history_rebuild_per_item": REBUILD_PER_ITEM,
    }


def ideal_turns(turns: int, rtt: float, ttft: float, store_loads: bool) -> List[float]:
    """Per turn: one RTT + the emulator's time from the cost model (+ the store load)."""
    from openai_ws.emulator import EmulatorConfig
    from openai_ws.emulator._responses import store_load_delay

    config = EmulatorConfig(**emulator_config(ttft))
    ideal = []
    for k in range(turns):
        seconds = rtt + config.ttft + (expected_deltas(k, turns) - 1) * config.token_interval
        if store_loads and k > 0:
            seconds += store_load_delay(config, items_before(k, turns))
        ideal.append(seconds)
    return ideal


# -- the clients (peers.py's, one per worker process) -------------------------------------


def _session_factory() -> Callable[[Endpoint], Any]:
    import peers

    class ToolSession(peers.SessionClient):
        """``Session.send``, recording each answer's output tokens and cached tokens."""

        def __init__(self, emu: Endpoint) -> None:
            super().__init__(emu)
            self.usage: List[Tuple[int, int]] = []

        def turn(self, body: Dict[str, Any]) -> str:
            response = self.session.send(**body)
            usage = response.usage
            details = usage.input_tokens_details if usage is not None else None
            self.usage.append(
                (
                    usage.output_tokens if usage is not None else -1,
                    details.cached_tokens if details is not None else 0,
                )
            )
            return str(response.id)

    return ToolSession


CLIENT_KEYS = ("session", "new", "pooled", "bare", "sdk-ws", "sdk-session")
"""``--clients`` names, in the order of the table."""


def client_names(keys: Sequence[str], with_official: bool) -> List[str]:
    """The clients' display names (``peers.py``'s) for ``--clients`` keys."""
    import peers

    names = {
        "session": peers.SESSION,
        "new": peers.NEW_HTTP,
        "pooled": peers.POOLED_HTTP,
        "bare": peers.BARE,
        "sdk-ws": peers.OFFICIAL_WS,
        "sdk-session": peers.OFFICIAL_SESSION,
    }
    official = {"sdk-ws", "sdk-session"}
    return [names[k] for k in CLIENT_KEYS if k in keys and (with_official or k not in official)]


def factory(name: str) -> Callable[[Endpoint], Any]:
    import peers

    if name == peers.SESSION:
        return _session_factory()
    table = {
        peers.NEW_HTTP: peers.NewConnectionHTTP,
        peers.POOLED_HTTP: peers.PooledHTTP,
        peers.BARE: peers.BareClient,
        peers.OFFICIAL_WS: peers.OfficialConnection,
        peers.OFFICIAL_SESSION: peers.OfficialSession,
    }
    return table[name]


def loads_from_store(name: str) -> bool:
    """HTTP clients load every parent from the store; WebSocket clients hit the socket's cache."""
    import peers

    return name in (peers.NEW_HTTP, peers.POOLED_HTTP)


def run_loop(client: Any, turns: int) -> List[float]:
    """One loop of ``turns`` chained turns; the latency of each (seconds)."""
    previous: Optional[str] = None
    times = []
    for k in range(turns):
        body = turn_body(k, turns, previous)
        started = time.perf_counter()
        previous = client.turn(body)
        times.append(time.perf_counter() - started)
    return times


# -- one worker: one client at one RTT -----------------------------------------------------


def worker(conn: Any, job: Dict[str, Any], barrier: Any) -> None:
    """Child process: proxy + client, warm up, wait for all, run the loops, send the result.

    ``job``: ``endpoint`` (``Endpoint.state()``), ``client`` (name), ``rtt``
    (seconds), ``turns``, ``rounds``, ``warmup_loops``, ``offset`` (seconds to
    wait after the barrier, so that workers do not all read at the same instant).
    """
    from netproxy import NetProxy

    name, rtt = job["client"], job["rtt"]
    result: Dict[str, Any] = {"client": name, "rtt": rtt}
    proxy: Optional[NetProxy] = None
    client: Any = None
    try:
        try:
            endpoint = Endpoint(**job["endpoint"])
            if rtt > 0:
                proxy = NetProxy("127.0.0.1", endpoint.port, rtt=rtt).start()
                endpoint = endpoint.via(proxy.port)
            client = factory(name)(endpoint)
            for _ in range(job["warmup_loops"]):
                run_loop(client, 2)
            if hasattr(client, "usage"):
                client.usage = []
        except Exception as exc:  # a peer that cannot talk to the emulator: skipped
            result["skipped"] = f"{type(exc).__name__}: {exc}"
        try:
            barrier.wait(BARRIER_TIMEOUT)
        except threading.BrokenBarrierError:  # some worker never got ready
            result.setdefault("skipped", "the other workers never got ready")
        if "skipped" not in result:
            time.sleep(job["offset"])
            result["rounds"] = [run_loop(client, job["turns"]) for _ in range(job["rounds"])]
            result["usage"] = getattr(client, "usage", None)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if client is not None:
            try:
                client.close()
            except Exception as exc:
                result.setdefault("error", f"close: {type(exc).__name__}: {exc}")
        if proxy is not None:
            proxy.stop()
        conn.send(result)
        conn.close()


def run_workers(
    emu: EmulatorProcess, jobs: List[Tuple[str, str]], options: Dict[str, Any]
) -> List[Dict[str, Any]]:
    """Start one worker per (profile, client) job, all at once; collect their results."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(jobs))
    running = []
    # Spread the workers' starts over one turn: clients with the same turn time
    # would otherwise read their events at the same instants, every turn.
    spread = options["ttft"] + 0.04
    for i, (profile, name) in enumerate(jobs):
        job = dict(
            options,
            endpoint=emu.state(),
            client=name,
            rtt=PROFILES[profile][0],
            offset=spread * i / len(jobs),
        )
        parent, child = ctx.Pipe(duplex=False)
        process = ctx.Process(
            target=worker,
            args=(child, job, barrier),
            name=f"bench-{profile}-{name}",
            daemon=True,
        )
        process.start()
        child.close()
        running.append((profile, name, parent, process))
    per_loop = options["turns"] * (2.0 + 4 * max(PROFILES[p][0] for p, _ in jobs))
    budget = BARRIER_TIMEOUT + 60 + options["rounds"] * per_loop
    deadline = time.monotonic() + budget
    results = []
    for profile, name, parent, process in running:
        result: Dict[str, Any] = {"client": name, "profile": profile}
        if parent.poll(max(0.0, deadline - time.monotonic())):
            try:
                result.update(parent.recv(), profile=profile)
            except EOFError:
                result["error"] = "the worker died without a result"
        else:
            result["error"] = f"no result within {budget:.0f} s"
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)
        parent.close()
        results.append(result)
    return results


# -- figures ----------------------------------------------------------------------------------


def loop_means(rounds: Sequence[Sequence[float]]) -> List[float]:
    """The mean turn latency of each round (seconds)."""
    return [statistics.fmean(r) for r in rounds]


def over_ideal(rounds: Sequence[Sequence[float]], ideal: Sequence[float]) -> float:
    """Median over every turn of every round of latency / that turn's ideal.

    A median, so that a turn delayed by another process on a shared machine
    does not move the figure; the latency columns are means.
    """
    return median([t / i for r in rounds for t, i in zip(r, ideal)])


def check_session(usage: Sequence[Tuple[int, int]], turns: int) -> List[str]:
    """Where the Session's answers disagree with the model: deltas, or a parent not cached."""
    problems = []
    for i, (output_tokens, cached) in enumerate(usage):
        k = i % turns
        if output_tokens != expected_deltas(k, turns):
            problems.append(
                f"turn {k + 1}: {output_tokens} output tokens, model says "
                f"{expected_deltas(k, turns)}"
            )
        if k > 0 and cached <= 0:
            problems.append(f"turn {k + 1}: parent not from the socket's cache")
    return problems


def plot_title(turns: int, rounds: int, machine: str) -> str:
    """The plot's heading: what was measured, how often, and how to read it."""
    return (
        f"{turns}-turn tool-calling loop over TLS through a latency-injecting proxy\n"
        f"mean latency per turn, median of {rounds} rounds; lower is better\n{machine}"
    )


def plot(
    table: Dict[str, Dict[str, float]],
    ideals: Dict[str, Dict[str, float]],
    profiles: List[str],
    title: str,
    path: str,
) -> str:
    """Latency per turn against RTT, one line per client (and the ideals); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import peers

    fig, ax = plt.subplots(figsize=(10.5, 5.2), dpi=110)
    x = [PROFILES[p][0] * 1e3 for p in profiles]

    def span(values: Sequence[float]) -> str:
        return f"{values[0]:.0f} ms" if len(values) == 1 else f"{values[0]:.0f}-{values[-1]:.0f} ms"

    for (label, row), dashes in zip(ideals.items(), (":", "-.")):
        ys = [row[p] * 1e3 for p in profiles]
        ax.plot(x, ys, color="0.55", linestyle=dashes, linewidth=1.4, label=f"{label} ({span(ys)})")
    order = sorted(table, key=lambda n: -statistics.fmean(table[n].values()))
    for i, name in enumerate(order):
        style: Dict[str, Any]
        if name == peers.SESSION:
            style = {"color": "C0", "marker": "o", "linewidth": 2.6, "zorder": 5}
        elif name == peers.BARE:
            style = {"color": "0.35", "linestyle": "--", "linewidth": 1.2, "marker": "."}
        else:
            style = {"color": f"C{i + 1}", "marker": ".", "linewidth": 1.3}
        ys = [table[name][p] * 1e3 if p in table[name] else float("nan") for p in profiles]
        shown = [table[name][p] * 1e3 for p in profiles if p in table[name]]
        ax.plot(x, ys, label=f"{name} ({span(shown)})", **style)
    ax.set_xlabel("round-trip time added by the proxy, ms (0 = loopback)")
    ax.set_ylabel("latency per turn, ms (mean of the loop; lower is better)")
    ax.set_xticks(x)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(
        fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="client", title_fontsize=8
    )
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = path + ".tmp"
    fig.savefig(partial, format="png")
    plt.close(fig)
    os.replace(partial, path)
    return path


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--turns", type=int, default=None, help="turns per loop (default 20)")
    parser.add_argument("--rounds", type=int, default=None, help="loops per client (default 3)")
    parser.add_argument(
        "--profiles",
        default=None,
        help=f"comma-separated profiles (default: {','.join(PROFILES)})",
    )
    parser.add_argument(
        "--ttft", type=float, default=TTFT * 1e3, help="time to first token, ms (default 300)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed 2-turn loops per client")
    parser.add_argument(
        "--clients",
        default=",".join(CLIENT_KEYS),
        help=f"comma-separated clients (default: {','.join(CLIENT_KEYS)})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="5 turns, 1 round, loopback and 80 ms (a smoke run)"
    )
    parser.add_argument("--no-official", action="store_true", help="leave the openai package out")
    parser.add_argument(
        "--plot",
        metavar="PATH",
        default=os.path.join(OUT_DIR, PLOT_NAME),
        help=f"where to draw the plot (default: benchmarks/out/{PLOT_NAME})",
    )
    parser.add_argument("--no-plot", action="store_true", help="do not draw the plot")
    parser.add_argument("--json", help="write the goal rows to this file (run_all.py)")
    args = parser.parse_args(argv)
    turns = args.turns or (5 if args.quick else 20)
    rounds = args.rounds or (1 if args.quick else 3)
    profiles = (args.profiles or ("loopback,80" if args.quick else ",".join(PROFILES))).split(",")
    for p in profiles:
        if p not in PROFILES:
            parser.error(f"unknown profile {p!r}; known: {', '.join(PROFILES)}")
    if turns < 2:
        parser.error("--turns must be at least 2 (a tool call, then the answer)")
    keys = args.clients.split(",")
    for key in keys:
        if key not in CLIENT_KEYS:
            parser.error(f"unknown client {key!r}; known: {', '.join(CLIENT_KEYS)}")
    if "session" not in keys:
        parser.error("--clients must include session (the goal is about it)")
    ttft = args.ttft / 1e3

    import peers

    started = time.monotonic()
    machine = machine_summary()
    print(f"Machine: {machine}; {load_note()}")
    have_official, official_note = peers.official_available()
    if args.no_official:
        have_official, official_note = False, "left out (--no-official)"
    print(f"Official package: {official_note}")
    names = client_names(keys, have_official)
    print(
        f"Cost model: ttft {ttft * 1e3:.0f} ms, {TOKEN_INTERVAL * 1e3:.0f} ms per token, "
        f"store load {REBUILD_BASE * 1e3:.0f} ms + {REBUILD_PER_ITEM * 1e3:.0f} ms per item "
        "of the parent chain (HTTP: every turn; WebSocket: only on a cache miss)"
    )
    print(
        f"Workload: {turns}-turn tool-calling loop over TLS, store: true, previous_response_id; "
        f"{turns - 1} tool call(s), then a {FINAL_TOKENS}-token answer; {rounds} round(s)"
    )
    jobs = [(p, n) for p in profiles for n in names]
    print(f"Running {len(jobs)} workers at once ({len(profiles)} profiles x {len(names)} clients)")
    sys.stdout.flush()
    options = {"turns": turns, "rounds": rounds, "warmup_loops": args.warmup, "ttft": ttft}
    with EmulatorProcess(tls=True, **emulator_config(ttft)) as emu:
        results = run_workers(emu, jobs, options)

    table: Dict[str, Dict[str, float]] = {n: {} for n in names}
    ratio: Dict[str, Dict[str, float]] = {n: {} for n in names}
    ws_ideal, http_ideal = "ideal, WebSocket (cache hit)", "ideal, HTTP (store load)"
    ideals: Dict[str, Dict[str, float]] = {ws_ideal: {}, http_ideal: {}}
    notes: List[str] = []
    for profile in profiles:
        rtt = PROFILES[profile][0]
        ideals[ws_ideal][profile] = statistics.fmean(ideal_turns(turns, rtt, ttft, False))
        ideals[http_ideal][profile] = statistics.fmean(ideal_turns(turns, rtt, ttft, True))
    for result in results:
        name, profile = result["client"], result["profile"]
        if "rounds" not in result:
            why = result.get("error") or result.get("skipped") or "no result"
            notes.append(f"SKIPPED {name} at {profile}: {why}")
            continue
        if result.get("error"):
            notes.append(f"NOTE {name} at {profile}: {result['error']}")
        store = loads_from_store(name)
        table[name][profile] = median(loop_means(result["rounds"]))
        ratio[name][profile] = over_ideal(
            result["rounds"], ideal_turns(turns, PROFILES[profile][0], ttft, store)
        )
        if result.get("usage") is not None:
            problems = check_session(result["usage"], turns)
            if problems:
                notes.append(
                    f"WARNING {name} at {profile}: the emulator did not follow the "
                    f"model: {'; '.join(problems[:3])}"
                )

    labels = [PROFILES[p][1] for p in profiles]
    width = max(len(n) for n in [*names, ws_ideal, http_ideal, "Session vs new conn/turn"]) + 2
    print(
        f"\nLatency per turn, ms (mean of {turns} turns, median of {rounds} rounds), and x the "
        "client's own ideal (median over turns)"
    )
    print(f"{'':<{width}}" + "".join(f"{lab:>26}" for lab in labels))
    for label, row in ideals.items():
        print(f"{label:<{width}}" + "".join(f"{row[p] * 1e3:>26.1f}" for p in profiles))
    for name in names:
        cells = []
        for p in profiles:
            if p in table[name]:
                cells.append(f"{table[name][p] * 1e3:.1f} ({ratio[name][p]:.3f}x)")
            else:
                cells.append("-")
        print(f"{name:<{width}}" + "".join(f"{c:>26}" for c in cells))
    savings: Dict[str, float] = {}
    for p in profiles:
        if p in table[peers.SESSION] and p in table[peers.NEW_HTTP]:
            savings[p] = (1 - table[peers.SESSION][p] / table[peers.NEW_HTTP][p]) * 100
    print(
        f"{'Session vs new conn/turn':<{width}}"
        + "".join(f"{(f'{savings[p]:.0f}% lower' if p in savings else '-'):>26}" for p in profiles)
    )
    for note in notes:
        print(note)

    goals: List[Goal] = []
    for p, label in zip(profiles, labels):
        session = table[peers.SESSION].get(p)
        goals.append(
            Goal(
                SCRIPT,
                f"[{label}] Session / ideal",
                ratio[peers.SESSION].get(p),
                "<=",
                GOAL,
                detail=(
                    f"{session * 1e3:.1f} vs {ideals[ws_ideal][p] * 1e3:.1f} ms/turn"
                    if session is not None
                    else "no result"
                ),
            )
        )
        if p in savings:
            goals.append(
                Goal(
                    SCRIPT,
                    f"[{label}] Session vs new-conn HTTP: lower latency",
                    savings[p],
                    "info",
                    0.0,
                    unit="%",
                    detail=f"{session * 1e3:.1f} vs {table[peers.NEW_HTTP][p] * 1e3:.1f} ms/turn",
                )
            )
        for peer in (peers.POOLED_HTTP, peers.OFFICIAL_WS, peers.OFFICIAL_SESSION):
            if p in table.get(peer, {}) and session is not None:
                goals.append(
                    Goal(
                        SCRIPT,
                        f"[{label}] {peer} / Session (latency)",
                        table[peer][p] / session,
                        "info",
                        0.0,
                        detail=f"{table[peer][p] * 1e3:.1f} vs {session * 1e3:.1f} ms/turn",
                    )
                )
    print(f"\nAfter the run: {load_note()}; {time.monotonic() - started:.0f} s in all")
    print_goals(goals, title=f"Ratios  ({machine})")
    png = None
    if not args.no_plot and importlib.util.find_spec("matplotlib") is None:
        print("\nSKIPPED plot: matplotlib is not installed (pip install -e '.[bench]')")
    elif not args.no_plot:
        shown = {n: row for n, row in table.items() if row}
        png = plot(shown, ideals, profiles, plot_title(turns, rounds, machine), args.plot)
        print(f"\nPlot: {png}")
    write_json(args.json, goals, {"png": png})
    return 0


if __name__ == "__main__":
    sys.exit(main())
