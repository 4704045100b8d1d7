"""Hostile and odd peers for the tests: small raw-socket servers on 127.0.0.1 that misbehave on cue.

* :class:`SilentServer`: a WebSocket server that upgrades, then says nothing
  (never answers pings) unless a ``script`` answers each text frame with raw
  frames built with :func:`frame`: mistyped events, fragmented messages,
  server pings, what no well-behaved server would send. It records the
  handshake headers it received.
* :class:`ConnectProxy`: a minimal HTTP CONNECT proxy that tunnels and counts
  (``tunnels`` lists its targets, so a test can prove a client went through it).
* :class:`RecordingServer`: a :class:`SilentServer` that sends raw ``greeting`` frames
  right after the upgrade and records every frame the client sends (its close code above
  all); :func:`frame_header` builds headers announcing any length, even illegal ones.

Each listens on port 0 and stops itself, closing every socket and joining
every thread.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

Script = Callable[[str], List[bytes]]


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One unmasked server frame (RFC 6455 section 5.2)."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return bytes([first, n]) + payload
    if n < 1 << 16:
        return bytes([first, 126]) + n.to_bytes(2, "big") + payload
    return bytes([first, 127]) + n.to_bytes(8, "big") + payload


def response(rid: str, status: str, text: str = "") -> Dict[str, Any]:
    """A minimal Response object for a scripted server's events (``text``: one message)."""
    output = []
    if text:
        output = [
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ]
    return {
        "id": rid,
        "object": "response",
        "created_at": 1,
        "status": status,
        "model": "m",
        "output": output,
    }


def _read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


def _client_frame(conn: socket.socket) -> tuple:
    """Read one (masked) client frame: ``(opcode, payload)``."""
    first, second = _read_exact(conn, 2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(_read_exact(conn, 2), "big")
    elif length == 127:
        length = int.from_bytes(_read_exact(conn, 8), "big")
    key = _read_exact(conn, 4) if second & 0x80 else b"\0\0\0\0"
    data = _read_exact(conn, length)
    return first & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(data))


class SilentServer:
    """Accepts WebSocket upgrades on 127.0.0.1 and then stays silent."""

    def __init__(self, script: Optional[Script] = None) -> None:
        self._script = script
        self.pongs = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.headers: List[Dict[str, str]] = []
        self._conns: List[socket.socket] = []
        self._thread: Optional[threading.Thread] = None
        self._stopping = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> SilentServer:
        self._thread = threading.Thread(target=self._serve, name="silent-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        # Wake the blocked accept() with a connection of our own, then close.
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        if self._thread is not None:
            self._thread.join(5)
        self._listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        if self._thread is not None:
            self._thread.join(5)

    def _serve(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._conns.append(conn)
            if self._stopping:
                return
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            lines = data.decode("latin-1").split("\r\n")[1:]
            headers = {}
            for line in lines:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            self.headers.append(headers)
            accept = base64.b64encode(
                hashlib.sha1((headers.get("sec-websocket-key", "") + _GUID).encode()).digest()
            ).decode()
            conn.sendall(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                ).encode()
            )
            if self._script is not None:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        """Reply to each text frame with the script's frames until the peer closes."""
        try:
            while True:
                opcode, payload = _client_frame(conn)
                if opcode == 0x1:
                    assert self._script is not None
                    for raw in self._script(payload.decode()):
                        conn.sendall(raw)
                elif opcode == 0xA:
                    self.pongs += 1
                elif opcode == 0x8:
                    conn.sendall(frame(0x8, payload[:2]))
                    return
        except (OSError, ConnectionError):
            return


class ConnectProxy:
    """A threaded CONNECT-only proxy for one test."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.tunnels: List[str] = []
        self._sockets: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self._stopping = False
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ConnectProxy:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in list(self._threads):
            thread.join(5)
        self._listener.close()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name="connect-proxy", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._stopping:
                client.close()
                return
            self._track(client)
            self._spawn(self._tunnel, client)

    def _tunnel(self, client: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = client.recv(4096)
            if not chunk:
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n")[0].decode("latin-1").split(" ", 2)
        if method != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        self._track(upstream)
        self.tunnels.append(target)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if rest:
            upstream.sendall(rest)
        self._spawn(self._pipe, upstream, client)
        self._pipe(client, upstream)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


class RecordingServer(SilentServer):
    """A :class:`SilentServer` that also sends ``greeting`` frames right after each upgrade
    and records every frame the client sends.

    ``received`` lists the client's frames as ``(opcode, unmasked payload)``, in order, over
    every connection; ``close_codes`` the codes of its close frames (``None`` for an empty
    one), so a test can check how the client failed a connection (RFC 6455 section 7.4).
    ``closed`` is set when a client close frame arrived. Text frames still go to ``script``.
    """

    def __init__(self, script: Optional[Script] = None, *, greeting: Sequence[bytes] = ()) -> None:
        super().__init__(script or (lambda text: []))
        self.greeting = list(greeting)
        self.received: List[Tuple[int, bytes]] = []
        self.closed = threading.Event()

    @property
    def close_codes(self) -> List[Optional[int]]:
        """The status codes of the close frames the client sent."""
        return [
            int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            for opcode, payload in self.received
            if opcode == 0x8
        ]

    def wait_close(self, timeout: float = 3.0) -> Optional[int]:
        """The code of the client's first close frame, waiting for it (``None``: none came)."""
        self.closed.wait(timeout)
        codes = self.close_codes
        return codes[0] if codes else None

    def _answer(self, conn: socket.socket) -> None:
        try:
            for raw in self.greeting:
                conn.sendall(raw)
            while True:
                opcode, payload = _client_frame(conn)
                self.received.append((opcode, payload))
                if opcode == 0x1:
                    assert self._script is not None
                    for raw in self._script(payload.decode()):
                        conn.sendall(raw)
                elif opcode == 0xA:
                    self.pongs += 1
                elif opcode == 0x8:
                    self.closed.set()
                    with contextlib.suppress(OSError):
                        conn.sendall(frame(0x8, payload[:2]))
                    return
        except (OSError, ConnectionError):
            return


def frame_header(opcode: int, length: int, *, fin: bool = True, rsv: int = 0) -> bytes:
    """Only the header of an unmasked server frame announcing ``length`` bytes (64-bit form
    for anything over 65535, even lengths RFC 6455 section 5.2 forbids)."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    if length < 126:
        return bytes([first, length])
    if length < 1 << 16:
        return bytes([first, 126]) + length.to_bytes(2, "big")
    return bytes([first, 127]) + length.to_bytes(8, "big")


# --------------------------------------------------------------------------
# Raw HTTP peers that misbehave before any WebSocket frame: trickles, huge
# answers, echoed headers (issue 10, "Time" and "Secrets")
# --------------------------------------------------------------------------

Behaviour = Callable[["RawPeer", socket.socket, bytes], None]
"""What a :class:`RawPeer` does with one connection, given the request head it read."""


class RawPeer:
    """A TCP peer on 127.0.0.1 that answers each connection with a behaviour.

    It reads the request head (and a ``Content-Length`` body), records the
    head in ``heads``, then calls ``behave(peer, conn, head)`` in the
    connection's own thread. It serves as a WebSocket server, an HTTP server
    or an HTTP proxy alike: the behaviour decides. Behaviours wait with
    ``peer.stopping.wait(...)`` so that stopping the peer ends them at once;
    stopping also shuts every socket down and joins every thread.
    """

    def __init__(self, behave: Behaviour) -> None:
        self._behave = behave
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.heads: List[bytes] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._conns: List[socket.socket] = []
        self._threads: List[threading.Thread] = []

    @property
    def url(self) -> str:
        """The HTTP base URL (``/v1``) of this peer."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RawPeer:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(5)
        for conn in conns:
            conn.close()
        self._listener.close()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name="raw-peer", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if self.stopping.is_set():
                conn.close()
                return
            with self._lock:
                self._conns.append(conn)
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(rest) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                rest += chunk
            with self._lock:
                self.heads.append(head + b"\r\n\r\n")
            self._behave(self, conn, head + b"\r\n\r\n")
            # Keep the connection open until the client goes or we stop.
            while not self.stopping.is_set() and conn.recv(65536):
                pass
        except OSError:
            return

    # -- behaviours ---------------------------------------------------------

    @staticmethod
    def trickle(data: bytes, delay: float, *, then: bytes = b"") -> Behaviour:
        """Send ``data`` at once, then ``then`` one byte every ``delay`` s, repeating forever."""

        def behave(peer: RawPeer, conn: socket.socket, head: bytes) -> None:
            conn.sendall(data)
            while then and not peer.stopping.wait(delay):
                for i in range(len(then)):
                    conn.sendall(then[i : i + 1])
                    if peer.stopping.wait(delay):
                        return

        return behave

    @staticmethod
    def every(data: bytes, piece: bytes, delay: float) -> Behaviour:
        """Send ``data``, then the whole ``piece`` every ``delay`` s, forever."""

        def behave(peer: RawPeer, conn: socket.socket, head: bytes) -> None:
            conn.sendall(data)
            while not peer.stopping.wait(delay):
                conn.sendall(piece)

        return behave

    @staticmethod
    def send(data: bytes) -> Behaviour:
        """Send exactly ``data`` (then keep the connection open)."""

        def behave(peer: RawPeer, conn: socket.socket, head: bytes) -> None:
            conn.sendall(data)

        return behave

    @staticmethod
    def echo(status: int, *, as_json: bool = True, reason: str = "Refused") -> Behaviour:
        """Answer ``status`` with a body that quotes the request head (a nosy gateway).

        With ``as_json`` the head is the JSON error's message, else an HTML page;
        the head is also echoed in a response header and in the reason phrase.
        """

        def behave(peer: RawPeer, conn: socket.socket, head: bytes) -> None:
            import json

            text = head.decode("latin-1")
            if as_json:
                body = json.dumps(
                    {"error": {"message": f"you sent: {text}", "type": "x", "code": "echo"}}
                ).encode()
                kind = "application/json"
            else:
                body = f"<html><pre>{text}</pre></html>".encode("latin-1")
                kind = "text/html"
            first = text.split("\r\n")[1:]
            echoed = " | ".join(first)
            conn.sendall(
                f"HTTP/1.1 {status} {reason} {echoed[:200]}\r\nContent-Type: {kind}\r\n"
                f"X-Echo: {echoed}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode("latin-1")
                + body
            )

        return behave

    @staticmethod
    def huge(status: int, size: int) -> Behaviour:
        """Answer ``status`` announcing (and sending) a body of ``size`` bytes."""

        def behave(peer: RawPeer, conn: socket.socket, head: bytes) -> None:
            conn.sendall(
                f"HTTP/1.1 {status} Nope\r\nContent-Type: text/html\r\n"
                f"Content-Length: {size}\r\n\r\n".encode()
            )
            block = b"x" * 65536
            sent = 0
            while sent < size and not peer.stopping.is_set():
                conn.sendall(block[: size - sent])
                sent += len(block)

        return behave

    @staticmethod
    def by_kind(upgrade: Behaviour, http: Behaviour) -> Behaviour:
        """Use ``upgrade`` for WebSocket upgrade requests and ``http`` for the rest."""

        def behave(peer: RawPeer, conn: socket.socket, head: bytes) -> None:
            chosen = upgrade if b"upgrade: websocket" in head.lower() else http
            chosen(peer, conn, head)

        return behave
