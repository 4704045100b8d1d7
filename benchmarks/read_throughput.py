"""Is reading a large WebSocket message linear in its size, and what memory does it cost?

Run from the repository root::

    python benchmarks/read_throughput.py [--sizes 1,10,100] [--rounds 3]
                                         [--skip-session] [--skip-rss] [--events 20000]

A raw server runs in a child process (so it does not share this process's GIL):
it upgrades, and answers each ``response.create`` frame with one text frame of
exactly the size named in the request's ``metadata.size``, a ``response.completed``
event whose output text fills it (plain words, as an answer would). ``--tls``
variants use a throw-away CA (trustme, via the emulator's TLS helper), so every
figure is given for ``ws`` and ``wss``. It prints:

1. Transport throughput: MB/s (10**6 bytes) that ``WSTransport.recv`` reads one
   message of 1, 10 and 100 MB at (socket reads, framing, UTF-8 decoding), median
   of ``--rounds``, by the wall clock and per CPU second of this process (``cpu``;
   waiting for the server, whose TLS encryption limits wss at 100 MB, is not
   counted). Linear cost means flat MB per CPU second: the ratio fastest/slowest
   size is shown per scheme, the goal is <= 2.
2. Session throughput (unless ``--skip-session``): the same messages through
   ``session.send()``, whose terminal event is also decoded as JSON, estimated for
   memory, routed and typed into a ``Response``; ``max_message_size`` and
   ``max_queue_bytes`` are raised to fit.
3. Peak RSS (unless ``--skip-rss``, run first): a fresh interpreter per case (peak RSS
   after the call, and before it: ``VmHWM``, since on Linux ``getrusage``'s ``ru_maxrss``
   is inherited across ``exec``; ``ru_maxrss`` elsewhere) with a session asking for
   a 100 MB message: under the default ``max_message_size`` (refused from the frame
   header with close 1009: fast, nothing read) and with the limit raised to fit.
4. The parser alone (row ``parser only``): the same messages fed in 16 KiB pieces to a
   :class:`FrameParser`, with no socket at all: the cost the library's code adds.
5. The reader's per-event cost on small frames (no socket): parsing a 64 KiB read of
   ``--events`` delta events, then ``json.loads``, then the memory estimate the
   session adds (``event_cost``), in ns per event, so its share can be seen.

Figures depend on the machine; on 2 shared cores the server and the client get
about one each.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import multiprocessing
import os
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

MB = 10**6
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_WORDS = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "


# -- the server (child process) --------------------------------------------------------------


def _frame(payload: bytes) -> bytes:
    """One unmasked FIN text frame."""
    n = len(payload)
    if n < 126:
        return bytes([0x81, n]) + payload
    if n < 1 << 16:
        return bytes([0x81, 126]) + n.to_bytes(2, "big") + payload
    return bytes([0x81, 127]) + n.to_bytes(8, "big") + payload


def completed_event(size: int, stream_id: Optional[str]) -> bytes:
    """A ``response.completed`` event of exactly ``size`` bytes of JSON."""
    event: Dict[str, Any] = {
        "type": "response.completed",
        "response": {
            "id": "resp_big",
            "object": "response",
            "created_at": 1,
            "status": "completed",
            "model": "m",
            "output": [
                {
                    "type": "message",
                    "id": "msg_big",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "@", "annotations": []}],
                }
            ],
        },
    }
    if stream_id is not None:
        event["stream_id"] = stream_id
    head, tail = json.dumps(event).encode().split(b'"@"')
    fill = max(0, size - len(head) - len(tail) - 2)
    text = (_WORDS * (fill // len(_WORDS) + 1))[:fill]
    return b"".join([head, b'"', text, b'"', tail])


def _read_exact(sock: socket.socket, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 16))
        if not chunk:
            raise ConnectionError("peer closed")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _client_frame(sock: socket.socket) -> Tuple[int, bytes]:
    first, second = _read_exact(sock, 2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(_read_exact(sock, 2), "big")
    elif length == 127:
        length = int.from_bytes(_read_exact(sock, 8), "big")
    key = _read_exact(sock, 4) if second & 0x80 else b"\0\0\0\0"
    data = _read_exact(sock, length)
    mask = int.from_bytes((key * (length // 4 + 1))[:length], "big")
    return first & 0x0F, (int.from_bytes(data, "big") ^ mask).to_bytes(length, "big")


def _handle(sock: socket.socket, context: Optional[ssl.SSLContext]) -> None:
    """Upgrade one client, then answer each create with a message of the size it asks."""
    with contextlib.suppress(OSError, ConnectionError, ssl.SSLError, ValueError):
        if context is not None:
            sock = context.wrap_socket(sock, server_side=True)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return
            data += chunk
        key = ""
        for line in data.decode("latin-1").split("\r\n"):
            if line.lower().startswith("sec-websocket-key:"):
                key = line.split(":", 1)[1].strip()
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        cache: Dict[Tuple[int, Optional[str]], bytes] = {}
        while True:
            opcode, payload = _client_frame(sock)
            if opcode == 0x8:
                sock.sendall(bytes([0x88, 2]) + payload[:2])
                return
            if opcode == 0x9:
                sock.sendall(bytes([0x8A, len(payload)]) + payload)
            if opcode != 0x1:
                continue
            request = json.loads(payload)
            size = int(request.get("metadata", {}).get("size", "1000"))
            lane = request.get("stream_id")
            if (size, lane) not in cache:
                cache.clear()
                cache[(size, lane)] = _frame(completed_event(size, lane))
            sock.sendall(cache[(size, lane)])
    with contextlib.suppress(OSError):
        sock.close()


def _serve(conn: Any, tls: bool) -> None:
    """Child process: serve until the parent says stop (or goes away)."""
    context, ca_file, material = None, None, None
    if tls:
        from openai_ws.emulator._tls import TlsMaterial

        material = TlsMaterial()
        context, ca_file = material.server_context(), material.ca_file
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_handle, args=(sock, context), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    conn.send((listener.getsockname()[1], ca_file))
    with contextlib.suppress(EOFError):
        conn.recv()
    listener.close()
    if material is not None:
        material.cleanup()


class Server:
    """The size-on-demand server in a child process."""

    def __init__(self, tls: bool) -> None:
        self.tls = tls
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, tls), daemon=True)
        self._proc.start()
        child.close()
        if not self._conn.poll(60):
            self._proc.kill()
            raise RuntimeError("the server process did not start within 60 s")
        self.port, self.ca_file = self._conn.recv()

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/v1/responses"

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/v1"

    def ssl_context(self) -> Optional[ssl.SSLContext]:
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)


# -- measurements ----------------------------------------------------------------------------


Speed = Tuple[float, float]
"""(MB per wall-clock second, MB per CPU second of this process), medians."""


def _medians(size: int, walls: List[float], cpus: List[float]) -> Speed:
    return size / MB / statistics.median(walls), size / MB / statistics.median(cpus)


def transport_mbps(server: Server, size: int, rounds: int) -> Speed:
    """Median MB/s of ``WSTransport.recv`` reading one ``size``-byte message."""
    from openai_ws._transports.ws import Closed, WSTransport

    transport = WSTransport(
        server.ws_url,
        headers={},
        connect_timeout=30,
        ssl_context=server.ssl_context(),
        max_message_size=2 * size,
    )
    transport.connect()
    transport.set_recv_timeout(120)
    request = json.dumps({"type": "response.create", "metadata": {"size": str(size)}})
    walls, cpus = [], []
    try:
        for _ in range(rounds):
            transport.send_text(request)
            start, cpu = time.perf_counter(), time.process_time()
            got: List[Any] = []
            while not any(isinstance(f, str) for f in got):
                got = transport.recv()
                if any(isinstance(f, Closed) for f in got):
                    raise RuntimeError(f"closed: {got}")
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
    finally:
        transport.send_close()
        transport.release()
    return _medians(size, walls, cpus)


def parser_mbps(size: int, rounds: int, chunk: int = 16 * 1024) -> Speed:
    """Median MB/s of the sans-IO parser alone fed one ``size``-byte message in ``chunk``s
    (16 KiB: what one TLS record gives a read), with no socket, TLS or server involved."""
    from openai_ws._protocol.frames import FrameParser

    data = _frame(completed_event(size, None))
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    walls, cpus = [], []
    for _ in range(rounds):
        parser = FrameParser(2 * size)
        start, cpu = time.perf_counter(), time.process_time()
        for piece in pieces:
            parser.feed(piece)
            message = parser.next()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
        assert message is not None
        del message, parser
    return _medians(size, walls, cpus)


def session_client(server: Server) -> Any:
    import openai_ws

    return openai_ws.OpenAI(
        api_key="sk-bench", base_url=server.base_url, ca_bundle=server.ca_file, max_retries=0
    )


def session_mbps(server: Server, size: int, rounds: int) -> Speed:
    """Median MB/s of ``session.send()`` returning a ``size``-byte terminal event."""
    client = session_client(server)
    walls, cpus = [], []
    with client.ws_session(
        ping_interval=None, max_message_size=2 * size, max_queue_bytes=4 * size
    ) as session:
        for _ in range(rounds):
            start, cpu = time.perf_counter(), time.process_time()
            result = session.send(model="m", input="x", metadata={"size": str(size)}, timeout=300)
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
            assert len(result.output_text) > size // 2
            del result
    client.close()
    return _medians(size, walls, cpus)


def _peak_kb() -> int:
    """Peak resident memory of this process in KiB.

    ``VmHWM`` of ``/proc/self/status`` where there is one: on Linux ``getrusage``'s
    ``ru_maxrss`` survives ``exec`` and would report the parent's peak.
    """
    with contextlib.suppress(OSError, IndexError, ValueError), open("/proc/self/status") as f:
        return int(f.read().split("VmHWM:")[1].split()[0])
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def rss_child(args: argparse.Namespace) -> None:
    """In a fresh interpreter: ask for one message, print peak RSS and time as JSON."""
    import openai_ws

    size = args.size
    client = openai_ws.OpenAI(
        api_key="sk-bench", base_url=args.base_url, ca_bundle=args.ca or None, max_retries=0
    )
    kwargs: Dict[str, Any] = {"ping_interval": None}
    if args.rss_child == "raised":
        kwargs.update(max_message_size=2 * size, max_queue_bytes=4 * size)
    with client.ws_session(**kwargs) as session:
        baseline = _peak_kb()
        start = time.perf_counter()
        try:
            result = session.send(model="m", input="x", metadata={"size": str(size)}, timeout=300)
            outcome = f"read {len(result.output_text) / MB:.0f} MB of text"
        except openai_ws.OpenAIWSError as exc:
            outcome = f"{type(exc).__name__}: {str(exc)[:90]}"
        elapsed = time.perf_counter() - start
        peak = _peak_kb()
    print(json.dumps({"baseline_kb": baseline, "peak_kb": peak, "s": elapsed, "outcome": outcome}))


def peak_rss(server: Server, size: int, case: str) -> Dict[str, Any]:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--rss-child",
        case,
        "--size",
        str(size),
        "--base-url",
        server.base_url,
        "--ca",
        server.ca_file or "",
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def per_event(count: int) -> Dict[str, float]:
    """ns per event of the reader's steps on small delta frames (pure, no socket)."""
    from openai_ws._protocol.frames import FrameParser
    from openai_ws._session.connection import event_cost

    event = json.dumps(
        {
            "type": "response.output_text.delta",
            "sequence_number": 5,
            "item_id": "msg_0123456789abcdef",
            "output_index": 0,
            "content_index": 0,
            "delta": " hello",
            "logprobs": [],
        }
    ).encode()
    one = _frame(event)
    batch = one * max(1, (64 * 1024) // len(one))
    per_batch = len(batch) // len(one)
    batches = max(1, count // per_batch)

    def parse() -> List[str]:
        parser = FrameParser(16 << 20)
        parser.feed(batch)
        texts = []
        while True:
            message = parser.next()
            if message is None:
                return texts
            texts.append(message[1])  # type: ignore[arg-type]

    def best(step: Any) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(batches):
                step()
            times.append(time.perf_counter() - start)
        return min(times) / (batches * per_batch) * 1e9

    texts = parse()
    loads = json.loads
    return {
        "parse": best(parse),
        "loads": best(lambda: [loads(t) for t in texts]),
        "event_cost": best(lambda: [event_cost(t) for t in texts]),
    }


def _print_row(scheme: str, label: str, speeds: List[Speed], sizes: List[int]) -> None:
    cells = "  ".join(
        f"{n // MB:>3} MB {wall:6.0f} ({cpu:5.0f} cpu)" for n, (wall, cpu) in zip(sizes, speeds)
    )
    rates = [cpu for _, cpu in speeds]
    print(
        f"{scheme:<3} {label:<12} MB/s {cells}  cpu fastest/slowest "
        f"{max(rates) / min(rates):.2f}x (goal <= 2)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,10,100", help="message sizes in MB, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="messages read per size (median)")
    parser.add_argument("--skip-session", action="store_true", help="no session.send() figures")
    parser.add_argument("--skip-rss", action="store_true", help="no peak-RSS subprocesses")
    parser.add_argument("--rss-size", type=int, default=100, help="message size (MB) for RSS")
    parser.add_argument("--events", type=int, default=20000, help="events for the per-event part")
    parser.add_argument("--rss-child", choices=("default", "raised"), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args)
        return
    sizes = [int(s) * MB for s in args.sizes.split(",")]
    _print_row("-  ", "parser only", [parser_mbps(size, args.rounds) for size in sizes], sizes)
    for tls in (False, True):
        server = Server(tls)
        scheme = "wss" if tls else "ws"
        try:
            if not args.skip_rss:  # first, while this process is still small
                size = args.rss_size * MB
                for case in ("default", "raised"):
                    got = peak_rss(server, size, case)
                    print(
                        f"{scheme:<3} peak RSS, {size // MB} MB message, {case + ' limit:':<15}"
                        f"{got['peak_kb'] / 1024:6.0f} MiB (before the call "
                        f"{got['baseline_kb'] / 1024:.0f} MiB), {got['s']:.2f} s; {got['outcome']}",
                        flush=True,
                    )
            rows = [("transport", transport_mbps)]
            if not args.skip_session:
                rows.append(("session.send", session_mbps))
            for label, measure in rows:
                _print_row(scheme, label, [measure(server, n, args.rounds) for n in sizes], sizes)
        finally:
            server.stop()
    costs = per_event(args.events)
    total = costs["parse"] + costs["loads"]
    print(
        "reader per small event: parse {parse:.0f} ns, json.loads {loads:.0f} ns, "
        "event_cost {event_cost:.0f} ns".format(**costs)
        + f" (+{costs['event_cost'] / total:.0%} over parse + loads)"
    )


if __name__ == "__main__":
    main()
