"""openai_ws next to its peers over loopback, with and without TLS: latency, events/s, import time.

Run from the repository root::

    python benchmarks/peers.py [--turns 20] [--rounds 9] [--tokens 5000]
                               [--stream-rounds 3] [--import-runs 5]
                               [--plot PATH | --no-plot]

Everything talks to the emulator (in a child process, one per transport:
``http``/``ws`` and ``https``/``wss`` with a throw-away CA that every client is
told to trust). It measures, in one run:

1. An agent loop: ``--turns`` turns chained with ``previous_response_id``,
   small answers, ``store: true`` for every client (plain HTTP cannot chain
   otherwise; the WebSocket clients find the parent in the socket's cache, as
   on the service). Clients: ``openai_ws.Session.send``; plain HTTP with a
   *new* connection per turn (``requests.post``, no session: a TCP + TLS
   handshake each turn); plain HTTP over one pooled keep-alive connection
   (``requests.Session``); ``openai_ws``'s own HTTP (``client.responses.create``);
   a bare websocket-client loop (the floor); and, when the official ``openai``
   package (with its ``realtime`` extra) is importable, its WebSocket
   connection (``client.responses.connect()``, ``ResponsesConnection``), its
   session helper (``openai.lib.responses_websocket.ResponsesWebSocketSession``,
   one lane) and its HTTP client. Connections are opened before the loop and
   not timed (except, by design, for the new-connection row). Rounds rotate
   the client order; the figure per client is the median latency of all its
   turns in all rounds.
2. Streaming throughput of one long response (``--tokens`` deltas, ws only):
   ``Session.stream`` vs the official connection's ``recv()`` loop and its
   session lane's ``recv()`` loop, and the bare websocket-client loop.
3. Import time: ``python -c "import X"`` minus ``python -c "pass"`` in fresh
   processes, median of ``--import-runs``, for ``openai_ws`` and ``openai``.

How to read the ratios: "% lower per-turn latency" is 1 - Session / new-conn
HTTP (the README claims 37% over TLS); "peer / openai_ws" above 1 means
openai_ws is faster; "openai_ws / peer events/s" above 1 likewise; the import
ratio is openai_ws / openai (goal <= 0.25). It draws the per-turn latency of
each client over the turns (TLS) into ``--plot PATH`` (default
``benchmarks/out/per_turn_latency.png``; the README's copy,
``benchmarks/per_turn_latency.png``, is redrawn only by ``run_all.py
--update-plot``) unless ``--no-plot``, and says so when matplotlib is missing.
The official package's clients are labelled "openai SDK ..." so that no line
can be mistaken for one of openai_ws's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import requests
from _common import (
    MODEL,
    REPO,
    TERMINAL,
    BareSocket,
    EmulatorProcess,
    Endpoint,
    Goal,
    load_note,
    machine_summary,
    median,
    print_goals,
    write_json,
)

SCRIPT = "peers"
CLAIM = 37.0
IMPORT_GOAL = 0.25
HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "out")
"""Where results go by default (git ignores it); see ``run_all.py --out``."""
PLOT_NAME = "per_turn_latency.png"

SESSION = "openai_ws Session"
NEW_HTTP = "HTTP new conn/turn"
POOLED_HTTP = "HTTP pooled (requests)"
OWS_HTTP = "openai_ws HTTP"
BARE = "bare websocket-client"
OFFICIAL_WS = "openai SDK WebSocket connection"
OFFICIAL_SESSION = "openai SDK session helper"
OFFICIAL_HTTP = "openai SDK HTTP"


def official_available() -> Tuple[bool, str]:
    """Whether the official package and its WebSocket dependency import."""
    try:
        import openai
        import websockets  # noqa: F401  (the ``realtime`` extra)
        from openai.lib.responses_websocket import ResponsesWebSocketSession  # noqa: F401
    except ImportError as exc:
        return False, f"not importable ({exc}); pip install 'openai[realtime]'"
    return True, f"openai {openai.__version__}"


# -- the clients of the agent loop ---------------------------------------------------
#
# Each client is (setup, turn, close): setup opens what stays open (not timed),
# turn(body) sends one request and returns the response id once it finished.


class LoopClient:
    name = ""

    def __init__(self, emu: Endpoint) -> None:
        self.emu = emu

    def turn(self, body: Dict[str, Any]) -> str:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SessionClient(LoopClient):
    name = SESSION

    def __init__(self, emu: Endpoint) -> None:
        super().__init__(emu)
        self.client = emu.client()
        self.session = self.client.ws_session()

    def turn(self, body: Dict[str, Any]) -> str:
        return str(self.session.send(**body).id)

    def stream(self, body: Dict[str, Any]) -> int:
        n = 0
        for _ in self.session.stream(**body):
            n += 1
        return n

    def close(self) -> None:
        self.session.close()
        self.client.close()


class NewConnectionHTTP(LoopClient):
    name = NEW_HTTP

    def __init__(self, emu: Endpoint) -> None:
        super().__init__(emu)
        self.url = f"{emu.base_url}/responses"
        self.headers = {"Authorization": f"Bearer {emu.api_key}"}
        self.verify: Any = emu.ca_file or True

    def turn(self, body: Dict[str, Any]) -> str:
        # requests.post() builds (and closes) a Session per call: a new TCP+TLS connection.
        r = requests.post(self.url, json=body, headers=self.headers, verify=self.verify, timeout=30)
        r.raise_for_status()
        return str(r.json()["id"])


class PooledHTTP(NewConnectionHTTP):
    name = POOLED_HTTP

    def __init__(self, emu: Endpoint) -> None:
        super().__init__(emu)
        self.http = requests.Session()
        self.http.headers.update(self.headers)
        self.turn({"model": MODEL, "input": "warm the pool", "store": False})

    def turn(self, body: Dict[str, Any]) -> str:
        # verify per request: REQUESTS_CA_BUNDLE would override a session-level one.
        r = self.http.post(self.url, json=body, verify=self.verify, timeout=30)
        r.raise_for_status()
        return str(r.json()["id"])

    def close(self) -> None:
        self.http.close()


class OwsHTTP(LoopClient):
    name = OWS_HTTP

    def __init__(self, emu: Endpoint) -> None:
        super().__init__(emu)
        self.client = emu.client()
        self.client.responses.create(model=MODEL, input="warm the pool", store=False)

    def turn(self, body: Dict[str, Any]) -> str:
        return str(self.client.responses.create(**body).id)

    def close(self) -> None:
        self.client.close()


class BareClient(LoopClient):
    name = BARE

    def __init__(self, emu: Endpoint) -> None:
        super().__init__(emu)
        self.bare = BareSocket(emu)

    def turn(self, body: Dict[str, Any]) -> str:
        self.bare.send(body)
        terminal = self.bare.until_terminal()
        if terminal["type"] != "response.completed":
            raise RuntimeError(f"bare: {terminal['type']}")
        return str(terminal["response"]["id"])

    def stream(self, body: Dict[str, Any]) -> int:
        self.bare.send(body)
        return self.bare.count_until_terminal()

    def close(self) -> None:
        self.bare.close()


def _official_client(emu: Endpoint) -> Any:
    import openai

    http_client = openai.DefaultHttpxClient(verify=emu.ssl_context() or True)
    return openai.OpenAI(api_key=emu.api_key, base_url=emu.base_url, http_client=http_client)


class OfficialConnection(LoopClient):
    name = OFFICIAL_WS

    def __init__(self, emu: Endpoint) -> None:
        super().__init__(emu)
        self.client = _official_client(emu)
        options: Dict[str, Any] = {}
        context = emu.ssl_context()
        if context is not None:
            options["ssl"] = context  # passed through to websockets.sync.client.connect
        self.conn = self.client.responses.connect(websocket_connection_options=options).enter()

    def turn(self, body: Dict[str, Any]) -> str:
        self.conn.send({"type": "response.create", **body})
        while True:
            event = self.conn.recv()
            if event.type in TERMINAL:
                if event.type != "response.completed":
                    raise RuntimeError(f"openai connection: {event.type}")
                return str(event.response.id)

    def stream(self, body: Dict[str, Any]) -> int:
        self.conn.send({"type": "response.create", **body})
        n = 0
        while True:
            n += 1
            if self.conn.recv().type in TERMINAL:
                return n

    def close(self) -> None:
        self.conn.close()
        self.client.close()


class OfficialSession(OfficialConnection):
    name = OFFICIAL_SESSION

    def __init__(self, emu: Endpoint) -> None:
        super().__init__(emu)
        from openai.lib.responses_websocket import (
            ResponsesWebSocketLimits,
            ResponsesWebSocketSession,
        )

        # Budgets large enough never to trip in this benchmark (they have no defaults).
        limits = ResponsesWebSocketLimits(
            max_lanes=8,
            max_events_per_lane=1_000_000,
            max_events=1_000_000,
            max_bytes_per_lane=1 << 30,
            max_bytes=1 << 30,
        )
        self.helper = ResponsesWebSocketSession(self.conn, limits=limits).__enter__()
        self.lane: Any = self.helper.lane("agent")  # send() takes a plain dict at runtime

    def turn(self, body: Dict[str, Any]) -> str:
        self.lane.send({"type": "response.create", **body})
        response = self.lane.get_final_response()
        if response.status != "completed":
            raise RuntimeError(f"openai session: {response.status}")
        return str(response.id)

    def stream(self, body: Dict[str, Any]) -> int:
        self.lane.send({"type": "response.create", **body})
        n = 0
        while True:
            n += 1
            if self.lane.recv().type in TERMINAL:
                return n

    def close(self) -> None:
        self.helper.close()  # closes the connection too
        self.client.close()


class OfficialHTTP(LoopClient):
    name = OFFICIAL_HTTP

    def __init__(self, emu: Endpoint) -> None:
        super().__init__(emu)
        self.client = _official_client(emu)
        self.client.responses.create(model=MODEL, input="warm the pool", store=False)

    def turn(self, body: Dict[str, Any]) -> str:
        return str(self.client.responses.create(**body).id)

    def close(self) -> None:
        self.client.close()


# -- 1. the agent loop ---------------------------------------------------------------------


def agent_loop(
    emu: EmulatorProcess,
    factories: List[Callable[[EmulatorProcess], LoopClient]],
    args: argparse.Namespace,
    skipped: Dict[str, str],
) -> Dict[str, List[List[float]]]:
    """Per client, per round, the latency of every turn (seconds)."""
    clients: List[LoopClient] = []
    for factory in factories:
        try:
            clients.append(factory(emu))
        except Exception as exc:  # a peer that cannot talk to the emulator
            skipped[getattr(factory, "name", str(factory))] = f"{type(exc).__name__}: {exc}"
    latencies: Dict[str, List[List[float]]] = {c.name: [] for c in clients}

    def chain(client: LoopClient) -> List[float]:
        previous: Optional[str] = None
        turns: List[float] = []
        for turn in range(args.turns):
            body: Dict[str, Any] = {"model": MODEL, "input": f"turn {turn}: ok", "store": True}
            if previous is not None:
                body["previous_response_id"] = previous
            started = time.perf_counter()
            previous = client.turn(body)
            turns.append(time.perf_counter() - started)
        return turns

    try:
        for client in list(clients):  # warm-up round, not recorded
            try:
                chain(client)
            except Exception as exc:
                skipped[client.name] = f"{type(exc).__name__}: {exc}"
                clients.remove(client)
                latencies.pop(client.name)
                client.close()
        for r in range(args.rounds):
            k = r % len(clients)
            order = clients[k:] + clients[:k]  # rotate who goes first
            for client in order:
                latencies[client.name].append(chain(client))
    finally:
        for client in clients:
            client.close()
    return latencies


def per_turn(latencies: List[List[float]]) -> float:
    """Median of every turn of every round (seconds)."""
    return median([t for r in latencies for t in r])


def spread(latencies: List[List[float]]) -> Tuple[float, float]:
    """10th and 90th percentiles of every turn of every round (seconds)."""
    flat = sorted(t for r in latencies for t in r)
    return flat[len(flat) // 10], flat[min(len(flat) - 1, len(flat) * 9 // 10)]


# -- 2. streaming throughput -------------------------------------------------------------


def streaming(
    emu: EmulatorProcess,
    factories: List[Callable[[EmulatorProcess], LoopClient]],
    args: argparse.Namespace,
    skipped: Dict[str, str],
) -> Dict[str, List[float]]:
    body = {
        "model": MODEL,
        "input": "benchmark tokens flow",
        "store": False,
        "metadata": {"emulator_output_tokens": str(args.tokens)},
    }
    clients: List[Any] = []
    for factory in factories:
        try:
            clients.append(factory(emu))
        except Exception as exc:
            skipped[getattr(factory, "name", str(factory))] = f"{type(exc).__name__}: {exc}"
    rates: Dict[str, List[float]] = {c.name: [] for c in clients}
    counts: Dict[str, int] = {}
    try:
        warm = dict(body, metadata={"emulator_output_tokens": "500"})
        for client in clients:
            client.stream(warm)  # warm-up
        for r in range(args.stream_rounds):
            k = r % len(clients)
            for client in clients[k:] + clients[:k]:
                started = time.perf_counter()
                n = client.stream(body)
                rates[client.name].append(n / (time.perf_counter() - started))
                counts[client.name] = n
    finally:
        for client in clients:
            client.close()
    if len(set(counts.values())) > 1:
        raise RuntimeError(f"clients saw different event counts: {counts}")
    return rates


# -- 3. import time -------------------------------------------------------------------------


def import_times(runs: int, with_openai: bool) -> Dict[str, List[float]]:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # let the warm-up run write the bytecode caches
    snippets = {"pass": "pass", "openai_ws": "import openai_ws"}
    if with_openai:
        snippets["openai"] = "import openai"
    for code in snippets.values():  # warm the bytecode caches and the page cache
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
    times: Dict[str, List[float]] = {name: [] for name in snippets}
    for r in range(runs):
        names = list(snippets) if r % 2 == 0 else list(snippets)[::-1]
        for name in names:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", snippets[name]], env=env, check=True)
            times[name].append(time.perf_counter() - started)
    return times


# -- output ------------------------------------------------------------------------------


def plot_title(turns: int, rounds: int, machine: str) -> str:
    """The plot's heading: what was measured, how often, and how to read it."""
    return (
        f"{turns}-turn agent loop over TLS (loopback emulator), median of {rounds} rounds; "
        f"lower is better\n{machine}"
    )


def plot(latencies: Dict[str, List[List[float]]], turns: int, title: str, path: str) -> str:
    """Draw the per-turn latency of each client into ``path`` (a PNG); return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(10.5, 5.2), dpi=110)
    x = list(range(1, turns + 1))
    curves = {
        name: [median([r[t] for r in rounds]) * 1e3 for t in range(turns)]
        for name, rounds in latencies.items()
    }
    for i, name in enumerate(sorted(curves, key=lambda n: -median(curves[n]))):
        style: Dict[str, Any]
        if name == SESSION:
            style = {"color": "C0", "marker": "o", "linewidth": 2.6, "zorder": 5}
        elif name == BARE:
            style = {"color": "0.35", "linestyle": "--", "linewidth": 1.2}
        else:
            style = {"color": f"C{i + 1}", "marker": ".", "linewidth": 1.3}
        label = f"{name} ({median(curves[name]):.2f} ms)"
        ax.plot(x, curves[name], label=label, **style)
    ax.set_yscale("log")
    ticks = [0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50, 100]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("turn (each chained to the previous one with previous_response_id)")
    ax.set_ylabel("latency of the turn, ms (median over rounds, log scale; lower is better)")
    ax.set_xticks(x)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        title="client (median)",
        title_fontsize=8,
    )
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    partial = path + ".tmp"
    fig.savefig(partial, format="png")
    plt.close(fig)
    os.replace(partial, path)
    return path


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20, help="turns of the agent loop")
    parser.add_argument("--rounds", type=int, default=9, help="rounds of the agent loop")
    parser.add_argument("--tokens", type=int, default=5000, help="deltas of the streamed answer")
    parser.add_argument("--stream-rounds", type=int, default=3, help="streaming rounds")
    parser.add_argument("--import-runs", type=int, default=5, help="fresh processes per import")
    parser.add_argument("--no-official", action="store_true", help="leave the openai package out")
    parser.add_argument(
        "--plot",
        metavar="PATH",
        default=os.path.join(OUT_DIR, PLOT_NAME),
        help=f"where to draw the per-turn latency plot (default: benchmarks/out/{PLOT_NAME})",
    )
    parser.add_argument("--no-plot", action="store_true", help="do not draw the plot")
    parser.add_argument("--in-process", action="store_true", help="emulator in this process")
    parser.add_argument("--json", help="write the goal rows to this file (run_all.py)")
    args = parser.parse_args(argv)

    machine = machine_summary()
    print(f"Machine: {machine}; {load_note()}")
    have_official, official_note = official_available()
    if args.no_official:
        have_official, official_note = False, "left out (--no-official)"
    print(f"Official package: {official_note}")

    loop_factories: List[Any] = [SessionClient, NewConnectionHTTP, PooledHTTP, OwsHTTP, BareClient]
    stream_factories: List[Any] = [SessionClient, BareClient]
    if have_official:
        loop_factories += [OfficialConnection, OfficialSession, OfficialHTTP]
        stream_factories += [OfficialConnection, OfficialSession]
    goals: List[Goal] = []
    skipped: Dict[str, str] = {}
    loops: Dict[str, Dict[str, List[List[float]]]] = {}

    for tls in (False, True):
        label = "TLS" if tls else "TCP"
        with EmulatorProcess(tls=tls, in_process=args.in_process) as emu:
            loops[label] = agent_loop(emu, loop_factories, args, skipped)
        lat = {name: per_turn(rounds) for name, rounds in loops[label].items()}
        print(
            f"\n1. [{label}] {args.turns}-turn agent loop, ms per turn "
            f"(median of {args.rounds} rounds x {args.turns} turns; p10..p90)"
        )
        for name, rounds in loops[label].items():
            low, high = spread(rounds)
            rel = lat[name] / lat[SESSION]
            print(
                f"   {name:<32} {lat[name] * 1e3:8.2f}   ({low * 1e3:.2f}..{high * 1e3:.2f})"
                f"   {rel:5.2f}x Session"
            )
        if NEW_HTTP in lat:
            lower = (1 - lat[SESSION] / lat[NEW_HTTP]) * 100
            goals.append(
                Goal(
                    SCRIPT,
                    f"[{label}] Session vs new-conn HTTP: lower latency",
                    lower,
                    ">=" if tls else "info",
                    CLAIM,
                    unit="%",
                    detail=f"{lat[SESSION] * 1e3:.2f} vs {lat[NEW_HTTP] * 1e3:.2f} ms/turn",
                )
            )
        # The official clients have a goal (Session faster); the others are context.
        for peer, op in (
            (POOLED_HTTP, "info"),
            (BARE, "info"),
            (OFFICIAL_WS, ">="),
            (OFFICIAL_SESSION, ">="),
        ):
            if peer in lat:
                goals.append(
                    Goal(
                        SCRIPT,
                        f"[{label}] {peer} / Session (latency)",
                        lat[peer] / lat[SESSION],
                        op,
                        1.0,
                        detail=f"{lat[peer] * 1e3:.2f} vs {lat[SESSION] * 1e3:.2f} ms",
                    )
                )

    with EmulatorProcess(in_process=args.in_process) as emu:
        rates = streaming(emu, stream_factories, args, skipped)
    print(
        f"\n2. [TCP] streaming {args.tokens} deltas, events/s "
        f"(median of {args.stream_rounds} rounds)"
    )
    med = {name: median(r) for name, r in rates.items()}
    for name, r in rates.items():
        print(f"   {name:<32} {med[name]:>10,.0f}   ({', '.join(f'{x:,.0f}' for x in r)})")
    for peer in (OFFICIAL_WS, OFFICIAL_SESSION, BARE):
        if peer in med:
            goals.append(
                Goal(
                    SCRIPT,
                    f"[TCP] Session / {peer} (events/s)",
                    med[SESSION] / med[peer],
                    "info" if peer == BARE else ">=",
                    1.0,
                    detail=f"{med[SESSION]:,.0f} vs {med[peer]:,.0f} events/s",
                )
            )

    with_openai = importlib.util.find_spec("openai") is not None
    times = import_times(args.import_runs, with_openai)
    base = median(times["pass"])
    ows = median(times["openai_ws"]) - base
    print(
        f"\n3. import time, ms (fresh process minus `python -c pass` = {base * 1e3:.1f} ms, "
        f"median of {args.import_runs})"
    )
    print(f"   openai_ws {ows * 1e3:8.1f}")
    if with_openai:
        oai = median(times["openai"]) - base
        print(f"   openai    {oai * 1e3:8.1f}")
        goals.append(
            Goal(
                SCRIPT,
                "import openai_ws / import openai",
                ows / oai,
                "<=",
                IMPORT_GOAL,
                detail=f"{ows * 1e3:.0f} vs {oai * 1e3:.0f} ms",
            )
        )
    else:
        skipped["import openai"] = "the openai package is not installed"

    for name, why in skipped.items():
        print(f"\nSKIPPED {name}: {why}")
    print(f"\nAfter the run: {load_note()}")
    print_goals(goals, title=f"Ratios  ({machine})")
    png = None
    if not args.no_plot and importlib.util.find_spec("matplotlib") is None:
        print("\nSKIPPED plot: matplotlib is not installed (pip install -e '.[bench]')")
    elif not args.no_plot:
        png = plot(
            loops["TLS"], args.turns, plot_title(args.turns, args.rounds, machine), args.plot
        )
        print(f"\nPlot: {png}")
    write_json(args.json, goals, {"png": png})
    return 0


if __name__ == "__main__":
    sys.exit(main())
