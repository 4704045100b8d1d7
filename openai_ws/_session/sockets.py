"""The sockets of a session: opening the first and the extra ones, choosing, retiring.

:class:`SocketPool` is the part of the :class:`~openai_ws._session.engine.Engine`
that decides which socket a request goes to (:func:`.pool.choose`) and opens
sockets: the first under ``_send_lock`` (every request needs it, with
bounded backoff, or the session switches to HTTP), an extra one without it
(:meth:`SocketPool._open_extra`: the requests that have a socket keep sending
during its handshake; one opens at a time; one that fails leaves the requests
on the open sockets for a cooldown). It also retires sockets too old to use
and closes extra ones left idle.

The base part of the engine, not an object of its own: it shares the engine's locks,
pool and counters (declared below for the type checker). It must never hold
``_lock`` across a connect, or open a socket the session may no longer use.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set, Union, cast

from .._protocol import retry
from .._protocol.routing import ConnectionCore
from ..errors import ConnectError, RequestTimeoutError, SessionClosedError
from . import pool
from .connection import Connection, Sink, TransportFactory
from .fallback import ConnectVerdict, FallbackPolicy, connect_verdict
from .options import SessionOptions
from .request import RequestState

if TYPE_CHECKING:
    from .._transports.http import HTTPTransport

__all__ = ["NO_ROOM", "SocketPool"]

log = logging.getLogger(__name__)


class _NoRoom:
    """The type of :data:`NO_ROOM`."""

    def __repr__(self) -> str:
        return "NO_ROOM"


NO_ROOM = _NoRoom()
"""What :meth:`Engine._connect` returns when every open socket is full and another
may be opened (by :meth:`Engine._open_extra`, without ``_send_lock``)."""


class SocketPool:
    """Opening, choosing and retiring the engine's sockets (the base of ``Engine``)."""

    if TYPE_CHECKING:  # the engine's, set in Engine.__init__
        options: SessionOptions
        http: Optional[Callable[[], HTTPTransport]]
        fallback: FallbackPolicy
        _transport_factory: TransportFactory
        _lock: threading.Lock
        _send_lock: threading.Lock
        _pool: List[Connection]
        _last_busy: Dict[int, float]
        _connections: Set[Connection]
        _extra: pool.ExtraSockets
        _extra_done: threading.Condition
        _closed: bool
        _close_signalled: bool
        _use_lanes: bool
        _lanes_ignored: bool
        _lanes_rejected: bool
        _stats: Dict[str, int]

        def _check_open(self) -> None: ...
        def backoff(self, step: int) -> float: ...
        def pause(self, seconds: float) -> None: ...


    def _connect(
        self, deadline: Optional[float] = None, request: Optional[RequestState] = None
    ) -> Union[Connection, _NoRoom]:
        """Return the connection for ``request``, opening the first one if needed
        (``_send_lock`` held).

        See :meth:`_choose`. Opening takes at most ``connect_timeout``, and never
        past ``deadline``. :data:`NO_ROOM` means every open socket is full and
        one more may be opened: the caller releases ``_send_lock`` and calls
        :meth:`_open_extra`, so requests that fit elsewhere are not held up by
        the handshake.
        """
        with self._lock:
            self._check_open()
            closing = self._rotate_and_reap()
            conn = self._choose(request)
        for retired in closing:
            retired.transport.send_close(1000)
        if conn is not None:
            return conn
        if self._pool:
            return NO_ROOM
        return self._open_socket(deadline)

    def _open_socket(self, deadline: Optional[float]) -> Connection:
        """Open a socket, start its reader and add it to the pool; raises
        :class:`ConnectError` (and :class:`SessionClosedError` if the session closed)."""
        opts = self.options
        connect_timeout = opts.connect_timeout
        if deadline is not None:
            connect_timeout = max(0.001, min(connect_timeout, deadline - time.monotonic()))
        transport = self._transport_factory(
            opts.url,
            headers=opts.headers,
            connect_timeout=connect_timeout,
            ssl_context=opts.ssl_context,
            proxy=opts.proxy,
            max_message_size=opts.max_message_size,
        )
        transport.connect()
        conn = Connection(
            transport,
            ConnectionCore(
                use_lanes=self._use_lanes,
                max_names=opts.max_lanes,
                lanes_ignored=self._lanes_ignored,
                lanes_rejected=self._lanes_rejected,
            ),
            time.monotonic(),
            max_event_cost=opts.max_queue_bytes,
        )
        sink = cast(Sink, self)  # the engine: SocketPool is one of its parts
        thread = conn.start(sink, ping_interval=opts.ping_interval, ping_timeout=opts.ping_timeout)
        with self._lock:
            if self._closed or self._close_signalled:
                transport.send_close()
                transport.abort()
                transport.release()
                raise SessionClosedError("the session is closed")
            reconnect = self._stats["connects"] > 0
            self._stats["connects"] += 1
            if reconnect:
                self._stats["reconnects"] += 1
            self._pool.append(conn)
            self._last_busy[id(conn)] = time.monotonic()
            self._connections.add(conn)
            self._stats["sockets_max"] = max(self._stats["sockets_max"], len(self._pool))
        thread.start()
        log.info("connected to %s%s", opts.url, " (reconnect)" if reconnect else "")
        return conn

    def _open_extra(self, deadline: Optional[float]) -> None:
        """Open one more socket for a request that found every open one full
        (``_send_lock`` not held: requests that fit on the open sockets go on meanwhile).

        One opens at a time: a thread that finds one opening waits for that
        attempt to end (until ``deadline``: then :class:`RequestTimeoutError`),
        and its caller chooses again. A socket that fails to open leaves the
        requests on the open ones (see :class:`.pool.ExtraSockets`), unless the
        request's own deadline cut the handshake short: then it raises
        :class:`RequestTimeoutError` and no cooldown starts.
        """
        with self._lock:
            self._check_open()
            if self._extra.opening:
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    raise RequestTimeoutError(
                        "timed out waiting to send: every socket is full and another "
                        "one is still opening"
                    )
                self._extra_done.wait(wait)
                return
            self._extra.opening = True
        try:
            self._open_socket(deadline)
        except ConnectError as exc:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                # The request ran out of time during the handshake: no fault of the
                # server's, so no cooldown; the request times out as it would anyway.
                raise RequestTimeoutError(
                    "timed out opening another socket for the request (every open one "
                    "was full)"
                ) from exc
            with self._lock:
                delay = self._extra.failed(now)
            log.warning(
                "could not open another socket (%s); requests share the open ones "
                "for %.0fs",
                exc,
                delay,
            )
        else:
            with self._lock:
                self._extra.opened()
        finally:
            with self._lock:
                self._extra.opening = False
                self._extra_done.notify_all()

    def _retire(self, conn: Connection) -> Optional[Connection]:
        """Stop sending to ``conn`` (``_lock`` held); return it if it can close now."""
        conn.retiring = True
        if conn in self._pool:
            self._pool.remove(conn)
        self._last_busy.pop(id(conn), None)
        if not conn.requests and not conn.closing:
            conn.closing = True
            return conn
        return None

    def _choose(self, request: Optional[RequestState]) -> Optional[Connection]:
        """The pooled socket for ``request``, ``None`` to open one (``_lock`` held; see
        :func:`.pool.choose`). While an extra socket may not be tried (it failed to
        open a moment ago), the sockets open now are all there is."""
        limit = self.options.max_sockets
        if self._pool and not self._extra.allowed(time.monotonic()):
            limit = len(self._pool)
        return pool.choose(self._pool, request, limit)

    def _rotate_and_reap(self) -> List[Connection]:
        """Retire pooled sockets too old to use, and extra ones idle too long (``_lock``
        held); return those that can be closed now."""
        opts = self.options
        closing: List[Connection] = []
        for conn, why in pool.to_retire(
            self._pool,
            self._last_busy,
            time.monotonic(),
            max_age=opts.max_connection_age,
            idle_timeout=opts.socket_idle_timeout,
        ):
            log.info(why)
            retired = self._retire(conn)
            if retired is not None:
                closing.append(retired)
        return closing

    def idle(self, conn: Connection) -> None:
        """The reader of ``conn`` saw nothing for a while: close it if it is an extra
        socket idle for ``socket_idle_timeout`` (reader thread)."""
        with self._lock:
            closing = self._rotate_and_reap() if conn in self._pool[1:] else []
        for retired in closing:
            retired.transport.send_close(1000)

    def _connect_or_fallback(
        self, deadline: Optional[float], request: Optional[RequestState] = None
    ) -> Union[Connection, _NoRoom, None]:
        """The socket for ``request`` (see :meth:`_connect`), opening the first one with
        bounded exponential backoff and jitter (``_send_lock`` held).

        Returns ``None`` when the session switched to HTTP for good: the
        upgrade was refused in a way that says the server does not speak
        WebSocket, or every attempt failed and an HTTP transport is available.
        Raises :class:`ConnectError` otherwise. :data:`NO_ROOM` passes through.
        """
        opts = self.options
        attempt = 0
        while True:
            probing = False
            if self.fallback.session_reason is not None:
                if not self.fallback.probe_due(time.monotonic()):
                    return None
                probing = True  # one attempt, then HTTP again for a longer while
            try:
                conn = self._connect(deadline, request)
            except ConnectError as exc:
                attempt += 1
                verdict = connect_verdict(
                    exc.status, retryable=exc.retryable, has_http=self.http is not None
                )
                if verdict is ConnectVerdict.RAISE:
                    raise
                if verdict is ConnectVerdict.HTTP:
                    self.fallback.use_http_for_session(
                        f"the server refused the WebSocket upgrade with HTTP {exc.status}",
                        now=time.monotonic(),
                    )
                    return None
                delay = self.backoff(attempt - 1)
                headers = getattr(exc, "headers", None)  # an upgrade refused with a hint
                if headers:
                    hint = retry.usable_hint(retry.header_hint(headers, now=time.time()))
                    delay = hint if hint is not None else delay
                out_of_time = deadline is not None and time.monotonic() + delay > deadline
                if probing or attempt > opts.reconnect_attempts or out_of_time:
                    if self.http is not None:
                        self.fallback.use_http_for_session(
                            f"{attempt} WebSocket connect(s) failed ({exc})", now=time.monotonic()
                        )
                        return None
                    raise
                log.info("connect failed (%s); retrying in %.2fs", exc, delay)
                self.pause(delay)
            else:
                if probing:
                    self.fallback.socket_recovered()
                return conn

    def http_reason(self, body: Dict[str, Any]) -> Optional[str]:
        """Why ``body`` goes over HTTP now, or ``None`` to send it on the socket."""
        return self.fallback.reason(body, now=time.monotonic())

    def open(self) -> None:
        """Connect now, so a wrong key or URL fails at creation."""
        with self._send_lock:
            self._connect_or_fallback(None)
