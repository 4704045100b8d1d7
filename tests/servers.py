"""Hostile and odd peers for the tests: small raw-socket servers on 127.0.0.1 that misbehave on cue.

* :class:`SilentServer`: a WebSocket server that upgrades, then says nothing
  (never answers pings) unless a ``script`` answers each text frame with raw
  frames built with :func:`frame`: mistyped events, fragmented messages,
  server pings, what no well-behaved server would send. It records the
  handshake headers it received.
* :class:`ConnectProxy`: a minimal HTTP CONNECT proxy that tunnels and counts
  (``tunnels`` lists its targets, so a test can prove a client went through it).

Each listens on port 0 and stops itself, closing every socket and joining
every thread.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import threading
from typing import Callable, Dict, List, Optional

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
