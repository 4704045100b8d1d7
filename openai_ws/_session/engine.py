"""The session's machinery: its sockets, register-then-send, routing, and close.

The :class:`Engine` owns the session's connections (a pool of up to
``max_sockets`` sockets in use, plus retiring ones finishing their last
requests), opens them through a transport factory (``WSTransport`` by default;
tests pass a scripted fake), and is the
:class:`~openai_ws._session.connection.Sink` its reader threads feed: each
decoded event is routed by the connection's sans-IO core and put in the inbox
of the request that owns it. The per-request logic (what to do with each
item, recovery) runs in the caller's thread, in :mod:`.attempt`.

Lock discipline:

* ``_lock`` guards ``_conn``, ``_connections``, ``_closed``, ``_stats``,
  ``_http_calls`` and every :class:`Connection`'s ``core``, ``requests`` and
  flags. Held briefly, never across I/O or a wait.
* ``_send_lock`` orders "register in the core, then send the frame" so frames
  leave in the order the core saw them; it is also held while the first socket
  is opened (not an extra one: see :meth:`Engine._open_extra`). Take it before
  ``_lock``, never the other way round.

What this module must never do: let an exception escape a reader thread, block
a reader on a caller, hold ``_lock`` across I/O, or reference the public
:class:`~openai_ws.Session` (whose finalizer closes the engine).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import random
import threading
import time
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Set,
    Tuple,
    Union,
)

import attrs

from .._protocol import retry
from .._protocol.routing import (
    STEER_EVENT_TYPES,
    CloseKind,
    ConnectionCore,
    Pending,
    classify_close,
    is_connection_limit,
)
from .._transports.ws import Closed, WSTransport
from ..errors import (
    ConnectError,
    ConnectionClosedError,
    RequestTimeoutError,
    SessionClosedError,
    SteeringUnavailableError,
    SteerResponseCompletedError,
    SteerTimeoutError,
)
from ..events import FINAL_RESPONSE_EVENTS
from ..models import UsageTotals
from . import pool
from .connection import Connection, TransportFactory
from .fallback import ConnectVerdict, FallbackPolicy, connect_verdict
from .inbox import Inbox, Lost, Rejected, Settled, Settling
from .options import SessionOptions, SessionStats
from .request import Mode, RequestState
from .steering import Steer, SteerBook, check_steer_input

if TYPE_CHECKING:
    from .._transports.http import HTTPTransport
    from .._transports.http_cancel import Cancellation

__all__ = ["Engine"]

log = logging.getLogger(__name__)


class _NoRoom:
    """The type of :data:`NO_ROOM`."""

    def __repr__(self) -> str:
        return "NO_ROOM"


NO_ROOM = _NoRoom()
"""What :meth:`Engine._connect` returns when every open socket is full and another
may be opened (by :meth:`Engine._open_extra`, without ``_send_lock``)."""


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
        self.fallback = FallbackPolicy(
            cooldown=options.fallback_cooldown, cooldown_max=options.fallback_cooldown_max
        )
        self._transport_factory: TransportFactory = transport or WSTransport
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        # The sockets new requests may go to, oldest first (at most max_sockets).
        self._pool: List[Connection] = []
        self._last_busy: Dict[int, float] = {}  # id(conn) -> when it last had a request
        # Opening sockets beyond the first (guarded by _lock); _extra_done is notified
        # when an attempt ends, for requests waiting for that socket.
        self._extra = pool.ExtraSockets(
            cooldown=options.fallback_cooldown, cooldown_max=options.fallback_cooldown_max
        )
        self._extra_done = threading.Condition(self._lock)
        self._connections: Set[Connection] = set()
        self._closed = False
        self._closed_event = threading.Event()  # set with _closed; wakes pause()
        self._use_lanes = options.use_lanes
        # What earlier sockets taught about lanes, for the next socket's core.
        self._lanes_ignored = False
        self._lanes_rejected = False
        # Set, without a lock, by the finalizer of a session nobody holds any
        # more (see signal_close); the reader and later calls do the closing.
        self._close_signalled = False
        self._keys = itertools.count(1)
        self._stats: Dict[str, int] = dict.fromkeys(attrs.fields_dict(SessionStats), 0)
        self._usage = UsageTotals()
        # Tokens of the HTTP calls running now; close() cancels them.
        self._http_calls: Set[Cancellation] = set()
        # Steers whose outcome the server still owes (guarded by _lock).
        self._steers = SteerBook()
        _ENGINES.add(self)

    # -- state ----------------------------------------------------------------

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._stats[name] += n

    def stats(self) -> SessionStats:
        with self._lock:
            return SessionStats(**self._stats)

    def count_answer(self, event: Any) -> None:
        """Add the usage of a final response event to the session's totals.

        Called once per answer a caller receives (socket, HTTP fallback or a
        resumed stream alike), so replays and retries are counted once.
        """
        if isinstance(event, FINAL_RESPONSE_EVENTS):
            with self._lock:
                self._usage = self._usage.add(event.response)

    @property
    def usage(self) -> UsageTotals:
        return self._usage

    @property
    def closed(self) -> bool:
        return self._closed or self._close_signalled

    def _check_open(self) -> None:
        """Raise :class:`SessionClosedError` once the session is closed (``_lock`` held)."""
        if self._closed or self._close_signalled:
            raise SessionClosedError("the session is closed")

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
        thread = conn.start(self, ping_interval=opts.ping_interval, ping_timeout=opts.ping_timeout)
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
        requests on the open ones (see :class:`.pool.ExtraSockets`).
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
            with self._lock:
                delay = self._extra.failed(time.monotonic())
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
        """Register ``request`` on the socket and send its frame, as one unit.

        The frame is serialised first, so a body that is not JSON raises
        before anything is registered. If sending is interrupted (an exception
        other than a closed socket, ``KeyboardInterrupt`` included), part of the
        frame may have left: the socket is poisoned (shut down, so every other
        request on it is recovered like on a lost socket) and this request is
        abandoned; the exception propagates. Returns False when the session has
        switched to HTTP instead.
        """
        context = request.context
        if context is None:
            choices = [(request.body, _frame_text(request.body))]
        else:
            # Both ways of sending the turn are serialised before anything is
            # registered; the socket decides which one leaves. A turn that can
            # only go whole (a first turn, a parent not found) is serialised once.
            full = (context.full, _frame_text(context.full))
            if context.whole or context.delta is context.full:
                choices = [full, full]
            else:
                choices = [(context.delta, _frame_text(context.delta)), full]
        while True:
            with self._sending(deadline):
                conn = self._connect_or_fallback(deadline, request)
                if conn is None:
                    return False
                if not isinstance(conn, _NoRoom):
                    text = self._register(conn, request, choices)
                    if text is None:
                        continue  # it ended between connect() and now: choose again
                    try:
                        self._write(conn, text, deadline, f"request {request.key}")
                    except BaseException:
                        self.abandon(request)
                        raise
                    return True
            # Every open socket is full: open one more, letting others send meanwhile.
            self._open_extra(deadline)

    def _register(
        self,
        conn: Connection,
        request: RequestState,
        choices: List[Tuple[Dict[str, Any], str]],
    ) -> Optional[str]:
        """Register ``request`` in ``conn``'s core and return the frame to send, or
        ``None`` if ``conn`` ended meanwhile (``_send_lock`` held).

        ``choices`` is the body to send and its frame, then the whole-context
        one: a turn sent as a delta needs its parent in this socket's cache.
        """
        context = request.context
        with self._lock:
            self._check_open()
            if conn.dead or conn.retiring:
                return None
            body, text = choices[0]
            if context is not None and (
                context.whole
                or not (context.parent_stored or conn.core.caches(context.parent_id))
            ):
                body, text = choices[1]
            request.body = body
            pending = conn.core.open(
                request.key,
                previous_response_id=body.get("previous_response_id"),
                stream_id=body.get("stream_id"),
                unstored=body.get("store") is False,
            )
            request.pending = pending
            request.started.clear()
            request.answered = False
            conn.requests[request.key] = request
            self._last_busy[id(conn)] = time.monotonic()
            names = len(conn.core.lane_names)
            self._stats["lanes_used"] = max(self._stats["lanes_used"], names)
        if pending.lane is not None:
            text = f'{text[:-1]}, "stream_id": {json.dumps(pending.lane)}}}'
        return text

    def _write(self, conn: Connection, text: str, deadline: Optional[float], what: str) -> None:
        """Send one frame on ``conn`` (``_send_lock`` held), as one unit.

        A socket found closed is left to its reader, which hands every request
        on it a note (so nothing is lost here). A write that is interrupted or
        out of time may have left part of the frame: the socket is shut down
        (every request on it is recovered as on a lost socket) and the
        exception propagates. While the frame is being written, ``close()``
        shuts the socket down instead of sending a close frame after half a frame.
        """
        done = False
        with self._lock:
            conn.sending += 1
        try:
            conn.transport.send_text(text, deadline)
            done = True
        except ConnectionClosedError:
            log.debug("sending %s failed: the socket is closed; its reader hands it on", what)
            conn.transport.abort()
            done = True
        finally:
            with self._lock:
                conn.sending -= 1
            if not done:
                log.warning("sending %s was cut short; closing its socket", what)
                conn.transport.abort()

    @contextlib.contextmanager
    def _sending(self, deadline: Optional[float]) -> Iterator[None]:
        """Hold ``_send_lock``, waiting for it no later than ``deadline``.

        Another request may hold it while it opens a socket to a server that
        is slow to answer: each waiting request still ends at its own deadline.
        """
        wait = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._send_lock.acquire(timeout=wait):
            raise RequestTimeoutError(
                "timed out waiting to send: another request is still opening the socket"
            )
        try:
            yield
        finally:
            self._send_lock.release()

    @staticmethod
    def abandon(request: RequestState) -> None:
        """The caller stopped listening: drop the rest of the request's events.

        No lock: the flag only ever goes from False to True, and the reader
        reads it under ``_lock`` as it routes each event, so at worst the rest of
        one socket read is queued to an inbox nobody reads (it is bounded and
        then collected).
        """
        request.abandoned = True

    # -- the reader's side (the Sink of every connection) ----------------------

    def deliver(
        self,
        conn: Connection,
        events: List[Dict[str, Any]],
        costs: List[int],
        wake: Set[Inbox],
    ) -> None:
        """Route a batch of decoded events to their requests' inboxes (reader thread).

        Plain events (:meth:`ConnectionCore.route_plain`) are routed under one
        hold of the lock and queued in runs, one :meth:`Inbox.put_events` per
        inbox; any other event goes through :meth:`_deliver_slow` after the
        runs before it are queued, so each inbox gets its events in order.
        The inboxes that got events are added to ``wake``.
        """
        requests = conn.requests
        route_plain = conn.core.route_plain
        result = Mode.RESULT
        count = len(events)
        i = 0
        while i < count:
            runs: Dict[Inbox, Tuple[RequestState, List[Any], List[int]]] = {}
            dropped = 0
            with self._lock:
                while i < count:
                    event = events[i]
                    pending = route_plain(event)
                    if pending is None:
                        break  # not plain: the slow path, once the runs are queued
                    request = requests.get(pending.key)
                    i += 1
                    if request is None or request.abandoned:
                        dropped += request is not None  # abandoned: routed and dropped
                        continue
                    if request.mode is result and event["type"] != "response.output_item.done":
                        continue  # send() keeps only finished items and the end
                    run = runs.get(request.inbox)
                    if run is None:
                        run = runs[request.inbox] = (request, [], [])
                    run[1].append(event)
                    run[2].append(costs[i - 1])
                if dropped:
                    self._stats["dropped_events"] += dropped
            for inbox, (request, items, sizes) in runs.items():
                if inbox.put_events(items, sizes):
                    wake.add(inbox)
                else:
                    self.abandon(request)
            if i < count:
                woken = self._deliver_slow(conn, events[i], costs[i])
                if woken is not None:
                    wake.add(woken)
                i += 1

    def _deliver_slow(
        self, conn: Connection, event: Dict[str, Any], nbytes: int
    ) -> Optional[Inbox]:
        """Every event that is not plain: lifecycle, terminal, steer, unroutable."""
        close_now = False
        with self._lock:
            core = conn.core
            route = core.route(event)
            if core.ended:
                self._end_settled(conn, core.take_ended())
            if route is None:
                self._stats["unroutable_events"] += 1
                request = None
            else:
                request = conn.requests.get(route.pending.key)
                if route.steer is not None or route.applied or route.pending.steers:
                    self._steers.news(route, event, request)
                if route.terminal:
                    conn.requests.pop(route.pending.key, None)
                    if not conn.requests:
                        self._last_busy[id(conn)] = time.monotonic()
                    if request is not None:
                        request.answered = True
                        request.started.set()  # a thread waiting to steer it: it is over
                if request is not None:
                    if (
                        not request.started.is_set()
                        and route.pending.response_id is not None
                        and request.pending is route.pending
                    ):
                        request.started.set()
                    if request.abandoned:
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
        if route.settling:
            # The response ended, but a steer of it is open: a successor may follow.
            if not request.inbox.put(Settling(event), nbytes, urgent=True):
                self.abandon(request)
            return None
        if event["type"] in STEER_EVENT_TYPES:
            if route.terminal:
                request.inbox.put(Settled(event), terminal=True)
                return None
            if request.mode is Mode.RESULT:
                return None
        elif (
            request.mode is Mode.RESULT
            and not route.terminal
            and event["type"] != "response.output_item.done"
        ):
            # send() needs only the finished items and the terminal event;
            # the rest is not queued, so a long answer costs no more memory.
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
        signalled = self._close_signalled
        if signalled:
            self._finish_signalled_close()
        with self._lock:
            if conn in self._pool:
                self._pool.remove(conn)
            self._last_busy.pop(id(conn), None)
            conn.dead = True
            kind = classify_close(closed.code, initiated_by_us=conn.closing or signalled)
            if kind is CloseKind.SILENT and conn.limit_reached:
                kind = CloseKind.ABNORMAL  # announced by an error event: not silent
            if conn.core.lanes_ignored:
                self._lanes_ignored = True
            if conn.core.lanes_rejected:
                self._lanes_rejected = True
            if conn.core.lanes_rejected or conn.core.lanes_ignored:
                self._use_lanes = False
            drained = conn.core.drain()
            for pending in drained:
                self._steers.lose(pending.steers, "the connection closed before an answer")
            orphans = [conn.requests.pop(p.key, None) for p in drained]
            conn.requests.clear()
            for orphan in orphans:
                if orphan is not None:
                    orphan.started.set()  # a thread waiting to steer it: its socket is gone
            session_closed = self._closed
        culprit = None
        if kind is CloseKind.PROTOCOL:
            culprit = _culprit(drained, local=closed.error is not None)
        if kind is not CloseKind.OURS:
            log.info(
                "the connection ended (code=%s, reason=%r, %s); %d request(s) in flight",
                closed.code,
                closed.reason,
                kind.value,
                sum(1 for r in orphans if r is not None and not r.abandoned),
            )
        for pending, request in zip(drained, orphans):
            if request is None or request.abandoned:
                continue
            if session_closed:
                request.inbox.fail(SessionClosedError("the session was closed"))
            else:
                note = Lost(
                    kind, closed.code, closed.reason, closed.error, culprit=pending is culprit
                )
                request.inbox.put(note, urgent=True)

    # -- steering --------------------------------------------------------------

    def steer(self, request: RequestState, input: Any, timeout: Optional[float]) -> Steer:
        """Send a steer for ``request``'s running response; return its handle.

        Waits (at most ``timeout``) for the response to start: a steer names
        the running response's id, which ``response.created`` brings. The
        frame goes on the socket that runs the response (the server routes it
        to the response's lane; a steer carries no ``stream_id``). Raises
        :class:`SteeringUnavailableError` when the request is not on a socket
        now (over HTTP, or between two attempts after its socket closed) and
        :class:`SteerResponseCompletedError` when it is over.
        """
        check_steer_input(input)
        input_text = json.dumps(input)  # before anything is registered
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not request.over_http and not request.started.wait(wait):
                raise SteerTimeoutError(
                    f"the response did not start within {timeout}s; nothing was sent",
                    input=input,
                )
            with self._sending(deadline):
                with self._lock:
                    self._check_open()
                    pending = request.pending
                    conn = self._holder(request)
                    response_id = pending.response_id if pending else None
                    if request.over_http:
                        raise SteeringUnavailableError(
                            "the request went over HTTP, which cannot be steered", input=input
                        )
                    if request.done or request.answered or (pending and pending.settling):
                        raise SteerResponseCompletedError(
                            "the response has already completed; nothing was sent",
                            input=input,
                            response_id=response_id,
                        )
                    if conn is None or conn.dead or pending is None:
                        raise SteeringUnavailableError(
                            "the request's socket closed and it has not been sent again yet; "
                            "nothing was sent",
                            input=input,
                            response_id=response_id,
                        )
                    if response_id is None:
                        request.started.clear()  # registered again, not started yet
                        continue
                    record = conn.core.steer(pending, self._steers.next_key())
                    handle = self._steers.add(record, input)
                    self._stats["steers"] += 1
                request.telemetry.event("steer", response_id=response_id)
                text = (
                    '{"type": "response.steer", "previous_response_id": '
                    f"{json.dumps(response_id)}, \"input\": {input_text}}}"
                )
                # A closed socket's reader fails the steer as lost (it is registered).
                self._write(conn, text, deadline, f"a steer of request {request.key}")
                return handle

    def _holder(self, request: RequestState) -> Optional[Connection]:
        """The connection ``request`` is registered on now (``_lock`` held)."""
        for conn in self._connections:
            if conn.requests.get(request.key) is request:
                return conn
        return None

    def _end_settled(self, conn: Connection, ended: List[Pending]) -> None:
        """Settling requests the server moved on from: end them as they are (``_lock`` held)."""
        for pending in ended:
            self._steers.lose(pending.steers, "the server moved on without answering the steer")
            request = conn.requests.pop(pending.key, None)
            if request is not None:
                request.answered = True
                if not request.abandoned:
                    request.inbox.put(Settled(None), terminal=True)

    def settle(self, request: RequestState) -> None:
        """End a settling request whose steer's answer did not come in time (caller's thread)."""
        with self._lock:
            conn = self._holder(request)
            pending = request.pending
            if conn is None or pending is None or not pending.settling:
                return
            self._steers.time_out(pending.steers)
            conn.core.end_settling(pending)
            conn.requests.pop(request.key, None)
            request.answered = True

    def released(self, conn: Connection) -> None:
        with self._lock:
            self._connections.discard(conn)

    # -- HTTP calls -----------------------------------------------------------

    def begin_http_call(self) -> Cancellation:
        """A token for one HTTP call, which :meth:`close` cancels."""
        from .._transports import load_http

        load_http()  # requests and urllib3, imported once, under a lock
        from .._transports.http_cancel import Cancellation

        token = Cancellation(lambda: SessionClosedError("the session was closed"))
        with self._lock:
            self._check_open()
            self._http_calls.add(token)
        return token

    def end_http_call(self, token: Cancellation) -> None:
        with self._lock:
            self._http_calls.discard(token)

    # -- shutting down --------------------------------------------------------

    def signal_close(self) -> None:
        """Close without taking a lock or joining a thread: what a finalizer may do.

        A session reachable only through a reference cycle can be collected in
        any thread at any allocation, also in a reader thread that holds
        ``_lock``; its finalizer then runs here. This only sets a flag and shuts
        the sockets down at the OS level (which wakes their readers); each
        reader then fails its requests with :class:`SessionClosedError` and
        stops, and every later call refuses to start.
        """
        self._close_signalled = True
        for _ in range(3):  # the set may change under us: try again, never block
            try:
                connections = tuple(self._connections)
                break
            except RuntimeError:
                continue
        else:  # pragma: no cover - three concurrent changes in a row
            connections = ()
        for conn in connections:
            conn.transport.abort()

    def _finish_signalled_close(self) -> None:
        """After :meth:`signal_close`: the bookkeeping of close(), in a reader thread."""
        with self._lock:
            self._closed = True
            http_calls = list(self._http_calls)
            for conn in self._connections:
                conn.closing = True
        self._closed_event.set()
        for token in http_calls:
            token.cancel()


    def close(self) -> None:
        """Fail pending requests, cancel HTTP calls, close every socket, join every reader."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_signalled = True
            self._closed_event.set()
            self._extra_done.notify_all()  # requests waiting for a socket to open: closed
            http_calls = list(self._http_calls)
            connections = list(self._connections)
            self._pool.clear()
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
            if conn.sending:
                # A frame is half written (a peer that stopped reading holds its
                # write): no close frame can follow it, so shut the socket down.
                conn.transport.abort()
            else:
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

    def forked(self) -> None:
        """In a forked child: forget the parent's sockets and threads, never touch them.

        The child inherits the parent's sockets (shared with the parent, which
        goes on using them) but none of its threads. Nothing is sent or shut
        down on them: they are dropped, and the child opens its own socket on
        first use. Locks are made anew (a parent thread may have held one at
        the fork).
        """
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self.fallback.forked()
        self._pool = []
        self._last_busy = {}
        self._connections = set()
        self._http_calls = set()
        if self._closed_event.is_set():
            self._closed_event = threading.Event()
            self._closed_event.set()
        else:
            self._closed_event = threading.Event()


def _frame_text(body: Dict[str, Any]) -> str:
    """The ``response.create`` frame of ``body``, without ``stream_id`` (the core adds the lane).

    Raises ``TypeError`` for a value that is not JSON (a ``datetime``, a set)
    and ``ValueError`` for NaN or infinity, which JSON cannot carry.
    """
    fields = {key: value for key, value in body.items() if key != "stream_id"}
    try:
        return json.dumps({"type": "response.create", **fields}, allow_nan=False)
    except TypeError as exc:
        raise TypeError(f"the request cannot be sent: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"the request cannot be sent as JSON: {exc}") from None


def _culprit(drained: List[Pending], *, local: bool) -> Optional[Pending]:
    """Which request a protocol-error close blames (``drained`` in send order).

    We closed (``local``): the peer sent a frame we refuse, most likely part of
    the oldest answer under way. The peer closed: it refused what we sent, most
    likely the newest frame, which it has not answered yet.
    """
    if not drained:
        return None
    if local:
        return next((p for p in drained if p.events), drained[0])
    return next((p for p in reversed(drained) if not p.events), drained[-1])


_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
"""Every live engine, so a forked child can make each forget its parent's sockets."""


def _after_fork_in_child() -> None:
    for engine in list(_ENGINES):
        engine.forked()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)

