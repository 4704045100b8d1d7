"""The WebSocket transport: the only module that imports ``websocket``.

It opens one connection with websocket-client, sends text frames, and turns
whatever arrives into a few plain values: a ``str`` for a text message (the hot
path, so no wrapper object), :class:`Binary` or :class:`Closed` (plus
:class:`Pong` and :class:`Idle` for keepalive). Incoming bytes are read 64 KiB
at a time and cut into messages by the sans-IO
:class:`~openai_ws._protocol.frames.FrameParser`; :meth:`WSTransport.recv`
returns the messages of one socket read together, so the reader thread can
wake its consumers once per batch. Pings are answered here. Every
websocket-client or socket exception is translated into an ``openai_ws.errors``
type here, chained from the original.

It must never parse event frames (only the JSON body of a refused upgrade, for
its error message), know about requests or lanes, or start a thread: the
session's reader thread calls :meth:`WSTransport.recv` in a loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Union
from urllib.parse import urlsplit

import attrs
import websocket

from .._protocol.frames import (
    OP_BINARY,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    FrameParser,
    parse_close,
    sendable_close_code,
)
from ..errors import ConnectError, ConnectionClosedError

__all__ = ["Binary", "Closed", "Frame", "Idle", "Pong", "WSTransport"]

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
"""Bytes asked of the socket per read."""


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
        self._parser: Optional[FrameParser] = None
        self._read: Optional[Callable[[int], bytes]] = None

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
        self._parser = FrameParser(self._max_message_size)
        self._read = self._ws.frame_buffer.recv

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

    def recv(self) -> List[Frame]:
        """The frames of one socket read (waiting for it); never raises.

        Returns every message that the bytes received so far complete, in
        order: possibly none (a large message still arriving), ``[Idle()]``
        after the receive timeout, and at most one :class:`Closed`, last.
        """
        parser, read = self._parser, self._read
        if parser is None or read is None:
            return [Closed(None, "not connected")]
        frames: List[Frame] = []
        try:
            parser.feed(read(_CHUNK))
            self._drain(parser, frames)
        except websocket.WebSocketTimeoutException:
            frames.append(Idle())
        except FrameError as exc:
            log.warning("closing the connection: %s", exc)
            self.send_close(exc.code)
            frames.append(Closed(exc.code, str(exc), exc))
        except (websocket.WebSocketException, OSError, ValueError, AttributeError) as exc:
            frames.append(Closed(None, "", exc))
        return frames

    def _drain(self, parser: FrameParser, frames: List[Frame]) -> None:
        """Append the messages ``parser`` holds to ``frames``, up to a close."""
        while True:
            message = parser.next()
            if message is None:
                return
            opcode, payload = message
            if opcode == OP_TEXT:
                try:
                    frames.append(payload.decode("utf-8"))
                except UnicodeDecodeError:
                    frames.append(Binary(payload))
            elif opcode == OP_PING:
                self._pong(payload)
            elif opcode == OP_BINARY:
                frames.append(Binary(payload))
            elif opcode == OP_PONG:
                frames.append(Pong())
            else:
                # A close: answer with the same code, as RFC 6455 section 5.5.1 asks.
                code, reason = parse_close(payload)
                self.send_close(code if sendable_close_code(code) else 1000)
                frames.append(Closed(code, reason))
                return

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
