"""The WebSocket transport: the only module that imports ``websocket``.

It opens one connection with websocket-client, sends text frames, and turns
whatever arrives into a few plain values: a ``str`` for a text message (the hot
path, so no wrapper object), :class:`Binary` or :class:`Closed` (plus
:class:`Pong` and :class:`Idle` for keepalive). Incoming bytes are read 64 KiB
at a time and cut into messages by the sans-IO
:class:`~openai_ws._protocol.frames.FrameParser`; :meth:`WSTransport.recv`
returns the messages of one socket read together, so the reader thread can
wake its consumers once per batch. Pings are answered here. A peer that breaks
RFC 6455 (see the parser: bad framing, bad UTF-8, a message over
``max_message_size``, a bad close frame) gets the connection failed with the
close code the RFC names (1002, 1007, 1009), never an invalid code echoed
back; the resulting :class:`Closed` carries a
:class:`~openai_ws.errors.ProtocolError`. A read that runs out of memory drops
what the parser held and closes with 1009; :meth:`WSTransport.recv` never
raises. Every websocket-client or socket exception is translated into an
``openai_ws.errors`` type here, chained from the original.

websocket-client (with ssl) and :mod:`.dial` are imported when the first
transport is made (:func:`~openai_ws._transports.load_ws`), not with the
module: the session and its reader import this module's frame values, and
``import openai_ws`` must not pay for a socket library it may never use.

It must never parse event frames (only the JSON body of a refused upgrade, for
its error message), know about requests or lanes, or start a thread: the
session's reader thread calls :meth:`WSTransport.recv` in a loop.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, List, Mapping, Optional, Union

import attrs

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
from ..errors import (
    ConnectError,
    ConnectionClosedError,
    MessageTooLargeError,
    ProtocolError,
    RequestTimeoutError,
    upgrade_error_from_payload,
)
from . import load_ws

if TYPE_CHECKING:
    import ssl

    from . import dial

__all__ = ["Binary", "Closed", "Frame", "Idle", "Pong", "WSTransport"]

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
"""Bytes asked of the socket per read."""
_WRITE_CHUNK = 64 * 1024
"""Bytes handed to the socket per write (so a deadline is checked between pieces)."""

websocket: Any = None
"""The websocket-client module, bound when the first :class:`WSTransport` is made
(every use of it below is in a method of one, or in the connect path)."""


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
    """The connection ended. ``code`` is ``None`` when no close frame came.

    When we failed the connection ourselves, ``code`` is the code we sent and
    ``error`` a :class:`~openai_ws.errors.ProtocolError` saying why (chained from
    the parser's :class:`~openai_ws._protocol.frames.FrameError`).
    """

    code: Optional[int]
    reason: str = ""
    error: Optional[BaseException] = None


Frame = Union[str, Binary, Pong, Idle, Closed]


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
        global websocket  # noqa: PLW0603 - bound once, to the same module every time
        if websocket is None:
            websocket = load_ws()
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
        self._full = False  # the last read filled its chunk: more may be waiting

    def connect(self) -> None:
        """Open the socket and upgrade within ``connect_timeout``; raises :class:`ConnectError`.

        One deadline bounds resolving, connecting, the proxy tunnel, TLS and
        the upgrade (:mod:`.dial`): websocket-client runs the upgrade on a
        :class:`~.dial.HandshakeSocket`, reads at most a few KiB of a refusal's
        body and never follows a redirect (it would take the API key to
        another host). A refusal raises the
        :class:`~openai_ws.errors.UpgradeRefusedError` subclass for its status
        (a 401 is also an ``AuthenticationError``). No message or chained
        exception holds a secret the client sent (:class:`~.messages.Scrubber`).
        """
        from . import dial  # imported by load_ws() with the first transport
        from .messages import Scrubber

        scrubber = Scrubber(self._headers, self._proxy)
        deadline = dial.Deadline(self._connect_timeout)
        try:
            target = dial.Target.from_url(self.url)
            proxy = dial.proxy_for(target, self._proxy)
        except ValueError as exc:
            error = ConnectError(f"cannot connect: {exc}", retryable=False)
            raise scrubber.exception(error) from None
        # The context given to the constructor (websocket-client keeps it in sock_opt).
        context = getattr(getattr(self._ws, "sock_opt", None), "sslopt", {}).get("context")
        try:
            sock = dial.open_socket(
                target, proxy=proxy, ssl_context=context, deadline=deadline, scrubber=scrubber
            )
        except ConnectError as exc:
            raise scrubber.exception(exc) from exc.__cause__
        handshake = dial.HandshakeSocket(sock, deadline)
        failure: Optional[BaseException] = None
        try:
            self._ws.connect(
                self.url,
                socket=handshake,
                header=[f"{k}: {v}" for k, v in self._headers.items()],
                suppress_origin=True,
                redirect_limit=0,
            )
        except (websocket.WebSocketException, dial.AnswerTooLarge, OSError, ValueError) as exc:
            failure = exc
        else:
            # Some websocket-client versions (1.9.0) return from connect() on a
            # redirect when redirect_limit is 0, without raising: refuse it here.
            answered = getattr(getattr(self._ws, "handshake_response", None), "status", 101)
            if answered != 101:
                failure = ValueError(f"the upgrade was answered with HTTP {answered}")
        if failure is not None:
            handshake.close()
            # Raised here, outside the except block, so that websocket-client's
            # exception (whose text quotes the answer) is not its __context__.
            raise scrubber.exception(_upgrade_failure(failure, handshake, target, deadline))
        self._ws.sock = sock  # the plain socket from now on: no per-read deadline
        # Block in recv from now on; keepalive uses set_recv_timeout().
        self._ws.settimeout(None)
        self._parser = FrameParser(self._max_message_size)
        self._read = self._ws.frame_buffer.recv

    def set_recv_timeout(self, seconds: Optional[float]) -> None:
        """Make :meth:`recv` return :class:`Idle` after ``seconds`` of silence."""
        self._ws.settimeout(seconds)

    def send_text(self, data: str, deadline: Optional[float] = None) -> None:
        """Send one text frame, by ``deadline`` (a ``time.monotonic()`` value) at the latest.

        The frame is built by websocket-client and written here, in pieces of
        at most 64 KiB, each after ``select`` says the socket can take more, so a
        peer that stops reading cannot hold the caller past its deadline (over
        TLS one piece may wait up to the socket's timeout). Raises
        :class:`ConnectionClosedError` when the socket is closed, and
        :class:`RequestTimeoutError` when the deadline passes first: part of the
        frame may have left, so the caller must drop the socket.
        """
        frame = websocket.ABNF.create_frame(data, websocket.ABNF.OPCODE_TEXT).format()
        ws = self._ws
        wait = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not ws.lock.acquire(timeout=wait):  # websocket-client's own send lock
            raise RequestTimeoutError("timed out waiting to write the request")
        try:
            sock = ws.sock
            if sock is None:
                raise ConnectionClosedError("the connection is closed")
            view = memoryview(frame)
            total = len(view)
            sent = 0
            while sent < total:
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise RequestTimeoutError(
                            f"timed out writing the request ({sent} of {total} bytes sent)"
                        )
                    _, writable, _ = select.select([], [sock], [], remaining)
                    if not writable:
                        continue
                sent += sock.send(view[sent : sent + _WRITE_CHUNK])
        except (OSError, ValueError) as exc:
            from .messages import os_reason

            reason = os_reason(exc) or type(exc).__name__
            raise ConnectionClosedError(f"the connection is closed: {reason}") from exc
        finally:
            ws.lock.release()

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
            self._full = False  # (stays so after a timeout or an error)
            data = read(_CHUNK)
            self._full = len(data) >= _CHUNK
            parser.feed(data)
            self._drain(parser, frames)
        except websocket.WebSocketTimeoutException:
            frames.append(Idle())
        except FrameError as exc:
            # Fail the connection (RFC 6455 section 7.1.7) with the code the rule names.
            log.warning("closing the connection with %d: %s", exc.code, exc)
            self.send_close(exc.code)
            frames.append(Closed(exc.code, str(exc), _protocol_error(exc)))
        except (websocket.WebSocketException, OSError, ValueError, AttributeError) as exc:
            frames.append(Closed(None, "", exc))
        except MemoryError as exc:
            # Free what the parser holds first, so that closing has memory to work with.
            self._parser = None
            parser = None
            frames.clear()
            with contextlib.suppress(Exception):
                log.error("out of memory while reading a message; closing with 1009")
            self._fail(1009)
            frames.append(Closed(1009, "out of memory while reading a message", exc))
        except Exception as exc:  # recv never raises: a bug must not kill the reader
            with contextlib.suppress(Exception):
                log.exception("unexpected error while reading")
            self._fail(1011)
            frames.append(Closed(None, f"unexpected error while reading: {exc!r}", exc))
        return frames

    def backlog(self) -> bool:
        """Whether the next :meth:`recv` will not block: bytes are waiting that it returns.

        Over TLS: bytes the TLS layer has decrypted and not handed out (a record
        waiting in the kernel may be incomplete, so it does not count). Over
        plain TCP: the last read filled its chunk and the socket is still
        readable (``select`` with no wait). Never raises.
        """
        try:
            sock = self._ws.sock
            if sock is None:
                return False
            pending = getattr(sock, "pending", None)  # an SSLSocket
            if pending is not None:
                return bool(pending())
            if not self._full:
                return False
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable)
        except (OSError, ValueError, AttributeError):
            return False

    def _fail(self, code: int) -> None:
        """Send a close with ``code`` and shut the socket, whatever goes wrong doing it."""
        with contextlib.suppress(Exception):
            self.send_close(code)
        with contextlib.suppress(Exception):
            self.abort()

    def _drain(self, parser: FrameParser, frames: List[Frame]) -> None:
        """Append the messages ``parser`` holds to ``frames``, up to a close."""
        append = frames.append
        while True:
            message = parser.texts(append)  # runs of small text frames, in one loop
            if message is None:
                return
            opcode, payload = message
            if opcode == OP_TEXT:
                frames.append(payload)  # type: ignore[arg-type]  # str, checked UTF-8
            elif opcode == OP_PING:
                self._pong(payload)  # type: ignore[arg-type]
            elif opcode == OP_BINARY:
                frames.append(Binary(payload))  # type: ignore[arg-type]
            elif opcode == OP_PONG:
                frames.append(Pong())
            else:
                # A close: answer with the same code, as RFC 6455 section 5.5.1 asks;
                # parse_close raises FrameError (answered with 1002/1007) for a bad one.
                code, reason = parse_close(payload)  # type: ignore[arg-type]
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
            import socket  # loaded with websocket-client already

            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def release(self) -> None:
        """Free the socket; call after the reader stopped using it."""
        with contextlib.suppress(websocket.WebSocketException, OSError, AttributeError):
            self._ws.shutdown()


def _protocol_error(exc: FrameError) -> ProtocolError:
    """The typed error for a connection we failed with ``exc.code`` (chained from ``exc``);
    a message over ``max_message_size`` (1009) is a :class:`MessageTooLargeError`."""
    error: ProtocolError
    if exc.code == 1009:
        error = MessageTooLargeError(
            f"an incoming message is larger than max_message_size: {exc} (the connection "
            "was closed with 1009; raise max_message_size to accept it)"
        )
    else:
        error = ProtocolError(f"the connection was closed with {exc.code}: {exc}")
    error.__cause__ = exc
    return error


def _upgrade_failure(
    exc: BaseException,
    handshake: dial.HandshakeSocket,
    target: dial.Target,
    deadline: dial.Deadline,
) -> ConnectError:
    """The error for an upgrade that failed with ``exc``, from what ``handshake`` read.

    A refusal is described by its status, headers and the part of its body
    that was read, and is not chained (websocket-client's exception only
    repeats the answer); other failures are chained from ``exc``.
    """
    import socket

    from . import dial
    from .messages import error_payload, os_reason

    where = target.where
    answer = None
    if handshake.head_end is not None:
        received = bytes(handshake.received)
        answer = dial.parse_answer(received[: handshake.head_end], received[handshake.head_end :])
    if isinstance(exc, dial.AnswerTooLarge) and exc.head:
        return ConnectError(
            f"the upgrade answer from {where} has more than "
            f"{dial.MAX_UPGRADE_HEAD // 1024} KiB of head (status line and headers)"
        )
    if answer is not None and 300 <= answer.status < 400:
        location = answer.headers.get("location", "")
        return ConnectError(
            f"the server answered the WebSocket upgrade with a redirect (HTTP {answer.status}"
            f"{' to ' + location[:200] if location else ''}); redirects are not followed, "
            "since they would send the API key to another address",
            status=answer.status,
            retryable=False,
        )
    if answer is not None and answer.status != 101:
        fallback = f"HTTP {answer.status} {answer.reason}".strip()
        return upgrade_error_from_payload(
            error_payload(answer.body, fallback), status=answer.status, headers=answer.headers
        )
    timed_out = isinstance(exc, (socket.timeout, websocket.WebSocketTimeoutException))
    if timed_out or deadline.expired:
        error = deadline.timed_out(where, "waiting for the answer to the WebSocket upgrade")
    elif answer is not None:
        error = ConnectError(
            f"the answer from {where} to the WebSocket upgrade is not a valid handshake "
            "(RFC 6455 section 4.1: Upgrade, Connection, Sec-WebSocket-Accept)"
        )
    else:
        reason = os_reason(exc) or f"{type(exc).__name__}: {exc}"
        error = ConnectError(f"could not connect to {where}: the upgrade failed ({reason})")
    error.__cause__ = exc
    return error
