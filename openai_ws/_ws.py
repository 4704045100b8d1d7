"""The WebSocket transport: the only module that imports ``websocket``.

It opens one connection with websocket-client, sends text frames, and turns
whatever arrives into one of a few plain values: a ``str`` for a text frame
(the hot path, so no wrapper object), :class:`Binary` or :class:`Closed` (plus
:class:`Pong` and :class:`Idle` for keepalive). Every
websocket-client or socket exception is translated into an ``openai_ws.errors``
type here, chained from the original.

It must never parse JSON, know about requests or lanes, or start a thread: the
session's reader thread calls :meth:`WSTransport.recv` in a loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

import attrs
import websocket

from .errors import ConnectError, ConnectionClosedError

__all__ = ["Binary", "Closed", "Frame", "Idle", "Pong", "WSTransport"]

log = logging.getLogger(__name__)


@attrs.frozen
class Binary:
    """A binary frame (the protocol never sends one; the session counts it)."""

    data: bytes


@attrs.frozen
class Pong:
    """A pong control frame, the answer to our ping."""


@attrs.frozen
class Idle:
    """Nothing arrived within the receive timeout; the socket is still open."""


@attrs.frozen
class Closed:
    """The connection ended. ``code`` is ``None`` when no close frame came."""

    code: Optional[int]
    reason: str = ""
    error: Optional[BaseException] = None


Frame = Union[str, Binary, Pong, Idle, Closed]


def _proxy_options(proxy: Optional[str]) -> Dict[str, Any]:
    """websocket-client's proxy keyword arguments for a proxy URL."""
    if not proxy:
        return {}
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    options: Dict[str, Any] = {
        "http_proxy_host": parts.hostname,
        "http_proxy_port": parts.port or (443 if parts.scheme == "https" else 80),
        "proxy_type": parts.scheme if parts.scheme in ("socks4", "socks5", "socks5h") else "http",
    }
    if parts.username:
        options["http_proxy_auth"] = (parts.username, parts.password or "")
    return options


_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class _FrameError(Exception):
    """The peer broke RFC 6455 framing; the connection must close with ``code``."""

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


class _FrameReader:
    """Incoming RFC 6455 frames, parsed from one large socket read at a time.

    websocket-client reads every frame with two or three system calls (the
    header, then exactly the payload) and builds several objects per frame;
    profiling ``benchmarks/session_vs_bare.py`` showed that as the largest cost
    of the reader thread. This parser takes up to 64 KiB per read and slices frames
    out of it. websocket-client still does the handshake, sending, pings and
    closing; this class only reads.

    ``read(n)`` is websocket-client's own socket read: it raises on timeout or
    end of stream. A frame is consumed only once it is complete, so a timeout
    in the middle of one loses nothing. Server frames are unmasked by the RFC;
    a masked one is unmasked anyway. Extensions are never negotiated, so any
    RSV bit is a protocol error.
    """

    __slots__ = (
        "_buffer",
        "_chunk",
        "_fragments",
        "_fragments_opcode",
        "_pos",
        "_read",
        "before_read",
        "max_size",
    )

    def __init__(
        self,
        read: Callable[[int], bytes],
        chunk: int = 64 * 1024,
        max_size: Optional[int] = None,
    ) -> None:
        self._read = read
        self._chunk = chunk
        self.max_size = max_size
        """Largest message accepted, in bytes (``None``: no limit)."""
        self.before_read: Optional[Callable[[], None]] = None
        """Called each time the buffered bytes run out, before the socket read
        that may block (the session wakes its consumers there)."""
        self._buffer = b""
        self._pos = 0
        self._fragments: List[bytes] = []
        self._fragments_opcode = 0

    def _fill(self, need: int) -> None:
        """Make at least ``need`` unread bytes available."""
        while len(self._buffer) - self._pos < need:
            if self.before_read is not None:
                self.before_read()
            chunk = self._read(max(self._chunk, need))
            self._buffer = self._buffer[self._pos :] + chunk
            self._pos = 0

    def frame(self) -> Tuple[int, bool, bytes]:
        """The next frame: ``(opcode, fin, payload)``."""
        self._fill(2)
        buffer, pos = self._buffer, self._pos
        first, second = buffer[pos], buffer[pos + 1]
        if first & 0x70:
            raise _FrameError("a frame used an RSV bit, but no extension was negotiated")
        length = second & 0x7F
        header = 2
        if length == 126:
            self._fill(4)
            buffer, pos = self._buffer, self._pos
            length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
            header = 4
        elif length == 127:
            self._fill(10)
            buffer, pos = self._buffer, self._pos
            length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
            header = 10
        if self.max_size is not None and length > self.max_size:
            raise _FrameError(f"a frame of {length} bytes exceeds the limit", code=1009)
        masked = second & 0x80
        if masked:
            header += 4
        self._fill(header + length)
        buffer, pos = self._buffer, self._pos
        payload = buffer[pos + header : pos + header + length]
        if masked:
            key = buffer[pos + header - 4 : pos + header]
            mask = int.from_bytes((key * (length // 4 + 1))[:length], "big")
            payload = (int.from_bytes(payload, "big") ^ mask).to_bytes(length, "big")
        self._pos = pos + header + length
        return first & 0x0F, bool(first & 0x80), payload

    def message(self, on_ping: Callable[[bytes], None]) -> Tuple[int, bytes]:
        """The next whole message or control frame (pings are answered here)."""
        while True:
            opcode, fin, payload = self.frame()
            if opcode >= _OP_CLOSE and (not fin or len(payload) > 125):
                raise _FrameError("a control frame was fragmented or too long")
            if opcode in (_OP_TEXT, _OP_BINARY):
                if self._fragments:
                    raise _FrameError("a new message started inside a fragmented one")
                if fin:
                    return opcode, payload
                self._fragments = [payload]
                self._fragments_opcode = opcode
            elif opcode == _OP_CONT:
                if not self._fragments:
                    raise _FrameError("a continuation frame without a message to continue")
                self._fragments.append(payload)
                if self.max_size is not None and (
                    sum(len(part) for part in self._fragments) > self.max_size
                ):
                    raise _FrameError("a fragmented message exceeds the size limit", code=1009)
                if fin:
                    whole = b"".join(self._fragments)
                    self._fragments = []
                    return self._fragments_opcode, whole
            elif opcode == _OP_PING:
                on_ping(payload)
            elif opcode in (_OP_PONG, _OP_CLOSE):
                return opcode, payload
            else:
                raise _FrameError(f"unknown opcode {opcode:#x}")


class WSTransport:
    """One WebSocket connection.

    ``send_text`` may be called from any thread (websocket-client serialises
    sends with its own lock); ``recv`` from one thread only.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        connect_timeout: float,
        ssl_context: Optional[ssl.SSLContext] = None,
        proxy: Optional[str] = None,
        max_message_size: Optional[int] = None,
    ) -> None:
        self.url = url
        self._headers = dict(headers)
        self._connect_timeout = connect_timeout
        self._proxy = proxy
        self._max_message_size = max_message_size
        self._ws = websocket.WebSocket(
            sslopt={"context": ssl_context} if ssl_context is not None else {},
            skip_utf8_validation=True,  # text is decoded strictly as UTF-8 anyway
            enable_multithread=True,
        )
        self._close_lock = threading.Lock()
        self._closing = False
        self._reader: Optional[_FrameReader] = None

    def connect(self) -> None:
        """Open the socket and upgrade; raises :class:`ConnectError`."""
        options: Dict[str, Any] = {
            "header": [f"{k}: {v}" for k, v in self._headers.items()],
            "timeout": self._connect_timeout,
            "suppress_origin": True,
        }
        options.update(_proxy_options(self._proxy))
        try:
            self._ws.connect(self.url, **options)
        except websocket.WebSocketBadStatusException as exc:
            status = getattr(exc, "status_code", None)
            message = _error_message(getattr(exc, "resp_body", None))
            raise ConnectError(
                f"the server refused the WebSocket upgrade with HTTP {status}"
                + (f": {message}" if message else ""),
                status=status,
            ) from exc
        except (ssl.SSLCertVerificationError, ValueError) as exc:
            raise ConnectError(f"could not connect to {self.url}: {exc}", retryable=False) from exc
        except (websocket.WebSocketException, OSError) as exc:
            raise ConnectError(f"could not connect to {self.url}: {exc}") from exc
        # Block in recv from now on; keepalive uses set_recv_timeout().
        self._ws.settimeout(None)
        self._reader = _FrameReader(self._ws.frame_buffer.recv, max_size=self._max_message_size)

    def set_before_read(self, hook: Optional[Callable[[], None]]) -> None:
        """Call ``hook`` whenever received data is used up, before reading more."""
        if self._reader is not None:
            self._reader.before_read = hook

    def set_recv_timeout(self, seconds: Optional[float]) -> None:
        """Make :meth:`recv` return :class:`Idle` after ``seconds`` of silence."""
        self._ws.settimeout(seconds)

    def send_text(self, data: str) -> None:
        """Send one text frame; raises :class:`ConnectionClosedError`."""
        try:
            self._ws.send(data, websocket.ABNF.OPCODE_TEXT)
        except (websocket.WebSocketException, OSError, AttributeError) as exc:
            raise ConnectionClosedError(f"the connection is closed: {exc}") from exc

    def ping(self) -> None:
        """Send a ping; a failure surfaces as a close in :meth:`recv`."""
        try:
            self._ws.ping()
        except (websocket.WebSocketException, OSError, AttributeError) as exc:
            log.debug("ping failed: %s", exc)

    def recv(self) -> Frame:
        """Wait for the next message or control frame; never raises."""
        reader = self._reader
        if reader is None:
            return Closed(None, "not connected")
        try:
            opcode, payload = reader.message(self._pong)
        except websocket.WebSocketTimeoutException:
            return Idle()
        except _FrameError as exc:
            log.warning("closing the connection: %s", exc)
            self.send_close(exc.code)
            return Closed(exc.code, str(exc), exc)
        except (websocket.WebSocketException, OSError, ValueError, AttributeError) as exc:
            return Closed(None, "", exc)
        if opcode == _OP_TEXT:
            try:
                text: str = payload.decode("utf-8")
                return text
            except UnicodeDecodeError:
                return Binary(payload)
        if opcode == _OP_BINARY:
            return Binary(payload)
        if opcode == _OP_PONG:
            return Pong()
        # _OP_CLOSE: answer with the same code, as RFC 6455 section 5.5.1 asks.
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        reason = payload[2:].decode("utf-8", "replace")
        self.send_close(code if _sendable(code) else 1000)
        return Closed(code, reason)

    def _pong(self, payload: bytes) -> None:
        try:
            self._ws.pong(payload)
        except (websocket.WebSocketException, OSError, AttributeError) as exc:
            log.debug("pong failed: %s", exc)

    def send_close(self, code: int = 1000) -> None:
        """Start the closing handshake; the reader sees the server's answer."""
        with self._close_lock:
            if self._closing:
                return
            self._closing = True
        try:
            if self._ws.connected:
                self._ws.send_close(code, b"")
        except (websocket.WebSocketException, OSError, AttributeError) as exc:
            log.debug("close frame not sent: %s", exc)

    def abort(self) -> None:
        """Shut the socket down at once (wakes the reader)."""
        sock = self._ws.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def release(self) -> None:
        """Free the socket; call after the reader stopped using it."""
        with contextlib.suppress(websocket.WebSocketException, OSError, AttributeError):
            self._ws.shutdown()


def _sendable(code: int) -> bool:
    """Whether ``code`` may appear in a close frame (RFC 6455 section 7.4)."""
    return 1000 <= code < 5000 and code not in (1004, 1005, 1006, 1015)


def _error_message(body: Any) -> Optional[str]:
    """The ``error.message`` of a JSON error body, if there is one."""
    if not body:
        return None
    try:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        payload = json.loads(text)
        message = payload.get("error", {}).get("message")
        return str(message) if message else None
    except (ValueError, AttributeError):
        return None
