"""The session's machinery: its sockets, register-then-send, routing, and close.

The :class:`Engine` owns the session's connections (one socket in use at a
time, plus retiring ones finishing their last requests), opens them through a
transport factory (``WSTransport`` by default; tests pass a scripted fake), and
is the :class:`~openai_ws._session.connection.Sink` its reader threads feed:
each decoded event is routed by the connection's sans-IO core and put in the
inbox of the request that owns it. The per-request logic (what to do with each
item, recovery) runs in the caller's thread, in :mod:`.attempt`.

Lock discipline:

* ``_lock`` guards ``_conn``, ``_connections``, ``_closed``, ``_stats``,
  ``_http_calls`` and every :class:`Connection`'s ``core``, ``requests`` and
  flags. Held briefly, never across I/O or a wait.
* ``_send_lock`` orders "register in the core, then send the frame" so frames
  leave in the order the core saw them; it is also held while a new socket is
  opened. Take it before ``_lock``, never the other way round.

What this module must never do: let an exception escape a reader thread, block
a reader on a caller, hold ``_lock`` across I/O, or reference the public
:class:`~openai_ws.Session` (whose finalizer closes the engine).
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Set

import attrs

from .._protocol import retry
from .._protocol.routing import CloseKind, ConnectionCore, classify_close, is_connection_limit
from .._transports.ws import Closed, WSTransport
from ..errors import ConnectError, ConnectionClosedError, SessionClosedError
from .connection import Connection, TransportFactory
from .fallback import ConnectVerdict, FallbackPolicy, connect_verdict
from .inbox import Inbox, Lost, Rejected
from .options import SessionOptions, SessionStats
from .request import Mode, RequestState

if TYPE_CHECKING:
    from .._transports.http import HTTPTransport
    from .._transports.http_cancel import Cancellation

__all__ = ["Engine"]

log = logging.getLogger(__name__)


class Engine:
    """The session's state and threads; :class:`~openai_ws.Session` is only a face."""

    def __init__(
        self,
        options: SessionOptions,
        http: Optional[Callable[[], HTTPTransport]] = None,
        transport: Optional[TransportFactory] = None,
    ) -> None:
        self.options = options
        self.http = http
        self.fallback = FallbackPolicy()
        self._transport_factory: TransportFactory = transport or WSTransport
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._conn: Optional[Connection] = None
        self._connections: Set[Connection] = set()
        self._closed = False
        self._closed_event = threading.Event()  # set with _closed; wakes pause()
        self._use_lanes = options.use_lanes
        self._keys = itertools.count(1)
        self._stats: Dict[str, int] = dict.fromkeys(attrs.fields_dict(SessionStats), 0)
        # Tokens of the HTTP calls running now; close() cancels them.
        self._http_calls: Set[Cancellation] = set()

    # -- state ----------------------------------------------------------------

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._stats[name] += n

    def stats(self) -> SessionStats:
        with self._lock:
            return SessionStats(**self._stats)

    @property
    def closed(self) -> bool:
        return self._closed

    def backoff(self, step: int) -> float:
        """The wait before reconnect or replay number ``step + 1``."""
        opts = self.options
        return retry.backoff(
            step, initial=opts.backoff_initial, cap=opts.backoff_max, jitter=random.random()
        )

    def pause(self, seconds: float) -> None:
        """Wait before a retry; :meth:`close` cuts the wait short with an error."""
        if self._closed_event.wait(seconds):
            raise SessionClosedError("the session was closed")

    # -- connecting -----------------------------------------------------------

    def _connect(self) -> Connection:
        """Return the open connection, opening one if needed (``_send_lock`` held)."""
        retired: Optional[Connection] = None
        with self._lock:
            if self._closed:
                raise SessionClosedError("the session is closed")
            conn = self._conn
            if conn is not None and (
                time.monotonic() - conn.opened_at >= self.options.max_connection_age
            ):
                log.info("rotating a connection older than %.0fs", self.options.max_connection_age)
                retired = self._retire(conn)
                conn = None
        if retired is not None:
            retired.transport.send_close(1000)
        if conn is not None:
            return conn
        opts = self.options
        transport = self._transport_factory(
            opts.url,
            headers=opts.headers,
            connect_timeout=opts.connect_timeout,
            ssl_context=opts.ssl_context,
            proxy=opts.proxy,
            max_message_size=opts.max_message_size,
        )
        transport.connect()
        conn = Connection(
            transport,
            ConnectionCore(use_lanes=self._use_lanes, max_names=opts.max_lanes),
            time.monotonic(),
        )
        thread = conn.start(self, ping_interval=opts.ping_interval, ping_timeout=opts.ping_timeout)
        with self._lock:
            if self._closed:
                transport.send_close()
                transport.abort()
                transport.release()
                raise SessionClosedError("the session is closed")
            reconnect = self._stats["connects"] > 0
            self._stats["connects"] += 1
            if reconnect:
                self._stats["reconnects"] += 1
            self._conn = conn
            self._connections.add(conn)
        thread.start()
        log.info("connected to %s%s", opts.url, " (reconnect)" if reconnect else "")
        return conn

    def _retire(self, conn: Connection) -> Optional[Connection]:
        """Stop sending to ``conn`` (``_lock`` held); return it if it can close now."""
        conn.retiring = True
        if self._conn is conn:
            self._conn = None
        if not conn.requests and not conn.closing:
            conn.closing = True
            return conn
        return None

    def _connect_or_fallback(self, deadline: Optional[float]) -> Optional[Connection]:
        """Open a socket with bounded exponential backoff and jitter (``_send_lock`` held).

        Returns ``None`` when the session switched to HTTP for good: the
        upgrade was refused in a way that says the server does not speak
        WebSocket, or every attempt failed and an HTTP transport is available.
        Raises :class:`ConnectError` otherwise.
        """
        opts = self.options
        attempt = 0
        while True:
            if self.fallback.session_reason is not None:
                return None
            try:
                return self._connect()
            except ConnectError as exc:
                attempt += 1
                verdict = connect_verdict(
                    exc.status, retryable=exc.retryable, has_http=self.http is not None
                )
                if verdict is ConnectVerdict.RAISE:
                    raise
                if verdict is ConnectVerdict.HTTP:
                    self.fallback.use_http_for_session(
                        f"the server refused the WebSocket upgrade with HTTP {exc.status}"
                    )
                    return None
                delay = self.backoff(attempt - 1)
                out_of_time = deadline is not None and time.monotonic() + delay > deadline
                if attempt > opts.reconnect_attempts or out_of_time:
                    if self.http is not None:
                        self.fallback.use_http_for_session(
                            f"{attempt} WebSocket connects failed ({exc})"
                        )
                        return None
                    raise
                log.info("connect failed (%s); retrying in %.2fs", exc, delay)
                self.pause(delay)

    def open(self) -> None:
        """Connect now, so a wrong key or URL fails at creation."""
        with self._send_lock:
            self._connect_or_fallback(None)

    # -- submitting -----------------------------------------------------------

    def new_request(self, body: Dict[str, Any], mode: Mode) -> RequestState:
        """A request's state, with the inbox of its first attempt."""
        request = RequestState(next(self._keys), body, mode, self.new_inbox(mode))
        self.count("requests")
        return request

    def new_inbox(self, mode: Mode) -> Inbox:
        """An inbox for one attempt of a request in ``mode``."""
        opts = self.options
        # A caller that wants only the result is woken once, by the terminal
        # event, unless it bounds the wait for each event.
        return Inbox(
            max_events=opts.max_queue_events,
            max_bytes=opts.max_queue_bytes,
            wake_on_terminal=mode is Mode.RESULT and opts.event_timeout is None,
        )

    def submit(self, request: RequestState, deadline: Optional[float]) -> bool:
        """Register ``request`` on the socket and send its frame.

        Returns False when the session has switched to HTTP instead.
        """
        with self._send_lock:
            body = request.body
            while True:
                conn = self._connect_or_fallback(deadline)
                if conn is None:
                    return False
                with self._lock:
                    if self._closed:
                        raise SessionClosedError("the session is closed")
                    if conn.dead or conn.retiring:
                        continue  # it ended between connect() and now: open another
                    pending = conn.core.open(
                        request.key,
                        previous_response_id=body.get("previous_response_id"),
                        stream_id=body.get("stream_id"),
                        unstored=body.get("store") is False,
                    )
                    request.pending = pending
                    conn.requests[request.key] = request
                    names = len(conn.core.lane_names)
                    self._stats["lanes_used"] = max(self._stats["lanes_used"], names)
                break
            frame: Dict[str, Any] = {"type": "response.create", **body}
            if pending.lane is not None:
                frame["stream_id"] = pending.lane
            try:
                conn.transport.send_text(json.dumps(frame))
            except ConnectionClosedError:
                # The reader sees the same dead socket and hands this request
                # a Lost note (it has no event yet), so nothing is lost here.
                log.debug("send failed; request %d waits for the reader", request.key)
                conn.transport.abort()
            return True

    @staticmethod
    def abandon(request: RequestState) -> None:
        """The caller stopped listening: drop the rest of the request's events.

        No lock: the flag only ever goes from False to True, and the reader
        reads it under ``_lock`` before each put, so at worst one more event is
        queued to an inbox nobody reads (it is bounded and then collected).
        """
        request.abandoned = True

    # -- the reader's side (the Sink of every connection) ----------------------

    def deliver(self, conn: Connection, event: Dict[str, Any], nbytes: int) -> Optional[Inbox]:
        """Route one decoded event to its request's inbox (reader thread)."""
        close_now = False
        with self._lock:
            route = conn.core.route(event)
            if route is None:
                self._stats["unroutable_events"] += 1
                request = None
            else:
                request = conn.requests.get(route.pending.key)
                if route.terminal:
                    conn.requests.pop(route.pending.key, None)
                if request is not None and request.abandoned:
                    self._stats["dropped_events"] += 1
                    request = None
            if is_connection_limit(event):
                # Decided here, before the reader reads the close that follows,
                # so that close counts as announced rather than silent.
                conn.limit_reached = True
                self._retire(conn)
            if conn.retiring and not conn.requests and not conn.closing:
                conn.closing = True
                close_now = True
        if close_now:
            conn.transport.send_close(1000)
        if route is None:
            log.warning(
                "dropped an event no request owns: type=%s stream_id=%s",
                event["type"],
                event.get("stream_id"),
            )
            return None
        if request is None:
            return None
        if route.rejected:
            log.info("the server refused the stream_id field; using the default lane")
            request.inbox.put(Rejected(), urgent=True)
            return None
        inbox = request.inbox
        if inbox.put(event, nbytes, terminal=route.terminal, defer=True):
            # A non-terminal event is woken for with the rest of its batch.
            return None if route.terminal else inbox
        # The inbox overflowed (the consumer is too slow) or already ended.
        self.abandon(request)
        return None

    def ended(self, conn: Connection, closed: Closed) -> None:
        """Hand every unfinished request of ``conn`` a note (reader thread)."""
        with self._lock:
            if self._conn is conn:
                self._conn = None
            conn.dead = True
            kind = classify_close(closed.code, initiated_by_us=conn.closing)
            if kind is CloseKind.SILENT and conn.limit_reached:
                kind = CloseKind.ABNORMAL  # announced by an error event: not silent
            if conn.core.lanes_rejected or conn.core.lanes_ignored:
                self._use_lanes = False
            orphans = [conn.requests.pop(p.key, None) for p in conn.core.drain()]
            conn.requests.clear()
            session_closed = self._closed
        if kind is not CloseKind.OURS:
            log.info(
                "the connection ended (code=%s, reason=%r, %s); %d request(s) in flight",
                closed.code,
                closed.reason,
                kind.value,
                sum(1 for r in orphans if r is not None and not r.abandoned),
            )
        for request in orphans:
            if request is None or request.abandoned:
                continue
            if session_closed:
                request.inbox.fail(SessionClosedError("the session was closed"))
            else:
                request.inbox.put(Lost(kind, closed.code, closed.reason), urgent=True)

    def released(self, conn: Connection) -> None:
        with self._lock:
            self._connections.discard(conn)

    # -- HTTP calls -----------------------------------------------------------

    def begin_http_call(self) -> Cancellation:
        """A token for one HTTP call, which :meth:`close` cancels."""
        from .._transports.http_cancel import Cancellation  # loaded with requests, on first use

        token = Cancellation(lambda: SessionClosedError("the session was closed"))
        with self._lock:
            if self._closed:
                raise SessionClosedError("the session is closed")
            self._http_calls.add(token)
        return token

    def end_http_call(self, token: Cancellation) -> None:
        with self._lock:
            self._http_calls.discard(token)

    # -- shutting down --------------------------------------------------------

    def close(self) -> None:
        """Fail pending requests, cancel HTTP calls, close every socket, join every reader."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._closed_event.set()
            http_calls = list(self._http_calls)
            connections = list(self._connections)
            self._conn = None
            waiting = [r for c in connections for r in c.requests.values()]
            for conn in connections:
                conn.closing = True
        for request in waiting:
            request.inbox.fail(SessionClosedError("the session was closed"))
        for token in http_calls:
            token.cancel()
        current = threading.current_thread()
        deadline = time.monotonic() + self.options.close_timeout
        for conn in connections:
            conn.transport.send_close(1000)
        for conn in connections:
            thread = conn.thread
            if thread is None or thread is current:
                continue
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                conn.transport.abort()
                thread.join(1.0)
            if thread.is_alive():  # pragma: no cover - a wedged socket library
                log.warning("reader thread %s did not stop", thread.name)
