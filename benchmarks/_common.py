"""Shared helpers of the benchmark scripts (not a benchmark itself).

* :class:`EmulatorProcess` runs an :class:`openai_ws.emulator.Emulator` in a
  child process, so the server does not share the client's GIL: on a
  2-core machine the emulator gets one core and the client under test the
  other. ``in_process=True`` starts it in a thread of this process instead.
  It is an :class:`Endpoint` (URLs, CA file, API key, client factories);
  ``endpoint.via(port)`` is the same server reached through another port of
  127.0.0.1, such as ``netproxy.NetProxy``'s (the certificate still matches).
* A bare websocket-client reader (:class:`BareSocket`): the floor every client
  is compared with.
* Small statistics helpers, a description of the machine, and :class:`Goal`,
  one row of the ratio tables that ``run_all.py`` collects (each script writes
  its rows as JSON with ``--json PATH``).

Nothing here measures anything; it must never hide work from a timed section.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import platform
import ssl
import statistics
import sys
import time
from typing import Any, Dict, List, Optional, Sequence
from urllib.parse import urlsplit, urlunsplit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

__all__ = [
    "REPO",
    "BareSocket",
    "EmulatorProcess",
    "Endpoint",
    "Goal",
    "load_note",
    "machine_summary",
    "median",
    "print_goals",
    "write_json",
]

TERMINAL = frozenset(
    {"response.completed", "response.incomplete", "response.failed", "response.done", "error"}
)
MODEL = "gpt-emulator"


# -- the emulator in a child process ---------------------------------------------


def _serve(conn: Any, tls: bool, config: Dict[str, Any]) -> None:
    """Child process: run one emulator until the parent says stop (or goes away)."""
    from openai_ws.emulator import Emulator, EmulatorConfig

    try:
        emu = Emulator(tls=tls, config=EmulatorConfig(**config)).start()
    except BaseException as exc:
        conn.send(("error", repr(exc)))
        return
    try:
        conn.send(("ok", emu.base_url, emu.ws_url, emu.ca_file, emu.api_key))
        with contextlib.suppress(EOFError):
            conn.recv()
    finally:
        emu.stop()


class Endpoint:
    """Where a client finds the emulator: ``base_url``, ``ws_url``, ``ca_file``, ``api_key``.

    Plain strings, so an endpoint can be handed to a child process (``state()``
    and ``Endpoint(**state)``).
    """

    def __init__(
        self, base_url: str = "", ws_url: str = "", ca_file: Optional[str] = None, api_key: str = ""
    ) -> None:
        self.base_url = base_url
        self.ws_url = ws_url
        self.ca_file = ca_file
        self.api_key = api_key

    def state(self) -> Dict[str, Any]:
        """The constructor's arguments (picklable)."""
        return {
            "base_url": self.base_url,
            "ws_url": self.ws_url,
            "ca_file": self.ca_file,
            "api_key": self.api_key,
        }

    @property
    def port(self) -> int:
        """The TCP port of ``base_url``."""
        port = urlsplit(self.base_url).port
        if port is None:
            raise ValueError(f"no port in {self.base_url!r}")
        return port

    def via(self, port: int) -> Endpoint:
        """The same server reached through ``127.0.0.1:port`` (a proxy in front of it)."""

        def moved(url: str) -> str:
            parts = urlsplit(url)
            return urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))

        return Endpoint(moved(self.base_url), moved(self.ws_url), self.ca_file, self.api_key)

    def ssl_context(self) -> Optional[ssl.SSLContext]:
        """A verifying client context trusting the emulator's CA (``None`` without TLS)."""
        if not self.ca_file:
            return None
        return ssl.create_default_context(cafile=self.ca_file)

    def client(self, **options: Any) -> Any:
        """An ``openai_ws.OpenAI`` client for this endpoint."""
        import openai_ws

        return openai_ws.OpenAI(
            api_key=self.api_key, base_url=self.base_url, ca_bundle=self.ca_file, **options
        )


class EmulatorProcess(Endpoint):
    """An emulator on 127.0.0.1, port 0, in a child process (or in this one).

    Use as a context manager. Exposes ``base_url``, ``ws_url``, ``ca_file`` and
    ``api_key`` like :class:`~openai_ws.emulator.Emulator`.
    """

    def __init__(self, *, tls: bool = False, in_process: bool = False, **config: Any) -> None:
        super().__init__()
        self.tls = tls
        self.in_process = in_process
        self.config = config
        self._emu: Any = None
        self._proc: Any = None
        self._conn: Any = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> EmulatorProcess:
        if self.in_process:
            from openai_ws.emulator import Emulator, EmulatorConfig

            self._emu = Emulator(tls=self.tls, config=EmulatorConfig(**self.config)).start()
            emu = self._emu
            self.base_url, self.ws_url = emu.base_url, emu.ws_url
            self.ca_file, self.api_key = emu.ca_file, emu.api_key
            return self
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve, args=(child, self.tls, self.config), name="bench-emulator", daemon=True
        )
        self._proc.start()
        child.close()
        if not parent.poll(60):
            self._proc.kill()
            raise RuntimeError("the emulator process did not start within 60 s")
        reply = parent.recv()
        if reply[0] != "ok":
            self._proc.join(5)
            raise RuntimeError(f"the emulator process failed: {reply[1]}")
        _, self.base_url, self.ws_url, self.ca_file, self.api_key = reply
        self._conn = parent
        return self

    def stop(self) -> None:
        if self._emu is not None:
            self._emu.stop()
            self._emu = None
        if self._proc is not None:
            with contextlib.suppress(OSError):
                self._conn.send("stop")
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
            self._conn.close()
            self._proc = None


# -- the floor: a bare websocket-client loop -------------------------------------


class BareSocket:
    """One ``websocket.create_connection`` read with ``recv()`` + ``json.loads``."""

    def __init__(self, emu: Endpoint, *, skip_utf8_validation: bool = True) -> None:
        import websocket

        sslopt = {"context": emu.ssl_context()} if emu.ca_file else None
        self.ws = websocket.create_connection(
            emu.ws_url,
            header=[f"Authorization: Bearer {emu.api_key}"],
            sslopt=sslopt,
            skip_utf8_validation=skip_utf8_validation,
            suppress_origin=True,
        )

    def send(self, body: Dict[str, Any]) -> None:
        self.ws.send(json.dumps({"type": "response.create", **body}))

    def until_terminal(self) -> Dict[str, Any]:
        """Read events until the terminal one; return it."""
        recv, loads = self.ws.recv, json.loads
        while True:
            event = loads(recv())
            if event["type"] in TERMINAL:
                return event  # type: ignore[no-any-return]

    def count_until_terminal(self) -> int:
        """Read events until the terminal one; return how many arrived."""
        recv, loads = self.ws.recv, json.loads
        n = 0
        while True:
            n += 1
            if loads(recv())["type"] in TERMINAL:
                return n

    def close(self) -> None:
        self.ws.close()


# -- statistics and reporting ----------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def machine_summary() -> str:
    """Cores, CPU model and Python version, on one line."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {model}, Python {platform.python_version()} "
        f"({platform.python_implementation()}, {platform.system()})"
    )


def load_note() -> str:
    """The load averages: other processes on the same cores make the figures noisy."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


class Goal:
    """One measured ratio and its goal (``<=`` or ``>=`` a bound)."""

    def __init__(
        self,
        script: str,
        name: str,
        value: Optional[float],
        op: str,
        bound: float,
        *,
        unit: str = "x",
        detail: str = "",
    ) -> None:
        if op not in ("<=", ">=", "info"):
            raise ValueError(op)
        self.script, self.name, self.value = script, name, value
        self.op, self.bound, self.unit, self.detail = op, bound, unit, detail

    @property
    def met(self) -> Optional[bool]:
        if self.value is None or self.op == "info":
            return None
        return self.value <= self.bound if self.op == "<=" else self.value >= self.bound

    def verdict(self) -> str:
        if self.op == "info":
            return "info"
        return {True: "MET", False: "MISSED", None: "n/a"}[self.met]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "script": self.script,
            "name": self.name,
            "value": self.value,
            "op": self.op,
            "bound": self.bound,
            "unit": self.unit,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Goal:
        return cls(
            d["script"],
            d["name"],
            d["value"],
            d["op"],
            d["bound"],
            unit=d.get("unit", "x"),
            detail=d.get("detail", ""),
        )

    def value_text(self) -> str:
        if self.value is None:
            return "-"
        return f"{self.value:.0f}%" if self.unit == "%" else f"{self.value:.2f}x"

    def goal_text(self) -> str:
        if self.op == "info":
            return "-"
        bound = f"{self.bound:.0f}%" if self.unit == "%" else f"{self.bound:g}x"
        return f"{self.op} {bound}"


def print_goals(goals: List[Goal], *, title: str = "", show_script: bool = False) -> None:
    """Print a table: ratio, value, goal, met."""
    if title:
        print(f"\n{title}")
    name_width = max([len(g.name) for g in goals] + [5])
    script_width = max([len(g.script) for g in goals] + [6])
    head = f"{'script':<{script_width}}  " if show_script else ""
    head += f"{'ratio':<{name_width}}  {'value':>9}  {'goal':>9}  {'met':<6}  detail"
    print(head)
    print("-" * min(len(head) + 40, 140))
    for g in goals:
        row = f"{g.script:<{script_width}}  " if show_script else ""
        row += f"{g.name:<{name_width}}  {g.value_text():>9}  {g.goal_text():>9}  "
        row += f"{g.verdict():<6}  {g.detail}"
        print(row)


def write_json(
    path: Optional[str], goals: List[Goal], extra: Optional[Dict[str, Any]] = None
) -> None:
    """Write the goal rows (for ``run_all.py``) when ``path`` is given."""
    if not path:
        return
    payload: Dict[str, Any] = {"goals": [g.to_dict() for g in goals]}
    payload.update(extra or {})
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1)


def now() -> float:
    return time.perf_counter()
