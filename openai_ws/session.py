"""The public :class:`Session`: one WebSocket, one reader thread, many callers.

A session owns a socket to ``/v1/responses`` and a background reader thread. A
caller registers a request (it gets an inbox and a lane in the sans-IO core),
then its frame is sent; the reader decodes every incoming frame (JSON only),
asks the core which request it belongs to and hands it to that request's inbox.
Callers block on their own inbox only and type the events they take, so the
reader does the least work per frame. When the socket ends, the reader hands every
unfinished request a :class:`_Lost` note and the *caller's* thread decides what
to do: replay on a new socket, complete over HTTP, or raise.

What this module must never do: block the reader thread on a caller, let an
exception escape the reader thread, hold a lock while waiting on the network
(except ``_send_lock``, which orders registration and sending), or keep a
strong reference from the reader thread to the :class:`Session` object (so a
forgotten session is collected and its thread stopped by ``weakref.finalize``).
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import random
import re
import threading
import time
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Deque,
    Dict,
    FrozenSet,
    Generator,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Set,
    Tuple,
    Union,
    cast,
)

import attrs

from . import _protocol
from ._convert import structure_event
from ._inbox import Failure, Inbox
from ._loops import RunResult, map_requests, run_tools
from ._protocol import CloseKind, ConnectionCore, Pending
from ._ws import Binary, Closed, Idle, Pong, WSTransport
from .errors import (
    APIError,
    ConnectError,
    ConnectionClosedError,
    PreviousResponseNotFoundError,
    ProtocolError,
    ReplayUnsafeError,
    RequestTimeoutError,
    SessionClosedError,
)
from .events import (
    TERMINAL_EVENT_TYPES,
    ErrorEvent,
    ResponseCompleted,
    ResponseDone,
    ResponseFailed,
    ResponseIncomplete,
    ResponseOutputItemDone,
    ServerEvent,
)
from .models import Response, ResponseCreateRequest

if TYPE_CHECKING:
    from ._http import Cancellation, HTTPTransport

__all__ = ["Session", "SessionStats"]

log = logging.getLogger(__name__)

_STREAM_ID = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
_CONNECTION_LIMIT = "websocket_connection_limit_reached"


def _error_code(event: Mapping[str, Any]) -> Any:
    """``error.code`` of a decoded ``error`` event, if it has one."""
    error = event.get("error")
    return error.get("code") if isinstance(error, dict) else None


_WITH_RESPONSE = (ResponseCompleted, ResponseIncomplete, ResponseFailed, ResponseDone)
"""The terminal events that carry a whole response."""
_TERMINAL_BY_STATUS = {"incomplete": ResponseIncomplete, "failed": ResponseFailed}
"""The terminal event that stands for an HTTP response of that status."""
_RETRY_IN = re.compile(r"try again in\s+([0-9.]+)\s*(ms|s)\b", re.IGNORECASE)


@attrs.frozen
class SessionStats:
    """Counters of what a session did, read with :attr:`Session.stats`."""

    requests: int = 0
    """Requests submitted by callers (a replay is not a new request)."""
    connects: int = 0
    """Sockets opened (the first one included)."""
    reconnects: int = 0
    """Sockets opened to replace one that ended."""
    replays: int = 0
    """Requests sent again on a new socket because the old one ended first."""
    http_fallbacks: int = 0
    """Requests completed over HTTP instead of the socket."""
    retries: int = 0
    """Requests sent again after a retryable ``error`` event (429, 5xx)."""
    malformed_frames: int = 0
    """Text frames that were not a valid event (logged and skipped)."""
    binary_frames: int = 0
    """Binary frames (the protocol has none; logged and skipped)."""
    unroutable_events: int = 0
    """Events that belonged to no request in flight (logged and skipped)."""
    dropped_events: int = 0
    """Events of abandoned requests, dropped as they arrived."""
    lanes_used: int = 0
    """Most distinct ``stream_id`` names used on one socket."""


@attrs.frozen
class _Lost:
    """Note to a caller: its socket ended before its request finished."""

    kind: CloseKind
    code: Optional[int]
    reason: str


@attrs.frozen
class _Rejected:
    """Note to a caller: the server refused the request's lane; replay it."""


@attrs.define(eq=False)
class _Request:
    """One caller's request across every attempt (socket, replay, HTTP)."""

    key: int
    body: Dict[str, Any]
    """The caller's fields, exactly as they go over HTTP (no ``type``)."""
    inbox: Inbox
    pending: Optional[Pending] = None
    abandoned: bool = False
    delivered: int = 0
    """Events handed to the caller so far, over every attempt."""
    replays: int = 0
    """Times the request was sent again because its socket ended first."""
    whole: bool = False
    """The caller wants only the final response (``send()``), not each event."""


@attrs.define(eq=False)
class _Connection:
    """A socket, its reader thread and its sans-IO core."""

    transport: WSTransport
    core: ConnectionCore
    opened_at: float
    requests: Dict[int, _Request] = attrs.Factory(dict)
    thread: Optional[threading.Thread] = None
    closing: bool = False
    """We started closing it; its end is not a fault."""
    retiring: bool = False
    """No new requests go to it; it closes when its last request ends."""
    limit_reached: bool = False
    """The server said the connection is too old; its close is expected."""
    dead: bool = False
    """Its reader has handed every request back; nothing may register on it."""
    to_wake: Set[Inbox] = attrs.Factory(set)
    """Inboxes given events whose consumers have not been woken yet (reader only)."""


@attrs.frozen
class SessionOptions:
    """Everything a session needs from its client, resolved."""

    url: str
    headers: Mapping[str, str] = attrs.field(repr=False)
    connect_timeout: float
    request_timeout: Optional[float]
    event_timeout: Optional[float]
    ssl_context: Any = attrs.field(repr=False)
    proxy: Optional[str] = attrs.field(repr=False)
    use_lanes: bool = True
    max_lanes: int = _protocol.MAX_LANE_NAMES
    ping_interval: Optional[float] = 20.0
    ping_timeout: float = 60.0
    max_queue_events: int = 10_000
    max_queue_bytes: int = 64 * 1024 * 1024
    max_retries: int = 2
    reconnect_attempts: int = 4
    max_replays: int = 10
    backoff_initial: float = 0.25
    backoff_max: float = 8.0
    close_timeout: float = 5.0
    max_connection_age: float = 55 * 60.0
    max_message_size: Optional[int] = None


class _Engine:
    """The session's state and threads; the :class:`Session` is only a face.

    Lock discipline:
    * ``_lock`` guards ``_conn``, ``_connections``, ``_closed``, ``_stats`` and
      every ``_Connection``'s ``core`` and ``requests``. Held briefly, never
      across I/O or a wait.
    * ``_send_lock`` orders "register in the core, then send the frame" so the
      frames leave in the order the core saw them; it is also held while a new
      socket is opened. Take it before ``_lock``, never the other way round.
    """

    def __init__(
        self, options: SessionOptions, http: Optional[Callable[[], HTTPTransport]]
    ) -> None:
        self.options = options
        self.http = http
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._conn: Optional[_Connection] = None
        self._connections: Set[_Connection] = set()
        self._closed = False
        self._closed_event = threading.Event()  # set with _closed; wakes pause()
        self._use_lanes = options.use_lanes
        self._keys = itertools.count(1)
        self._stats: Dict[str, int] = dict.fromkeys(attrs.fields_dict(SessionStats), 0)
        self._http_only_reason: Optional[str] = None
        # Tokens of the HTTP calls running now; close() cancels them.
        self._http_calls: Set[Cancellation] = set()
        # Replaced, never mutated, so callers may read it without the lock.
        self._http_shapes: FrozenSet[Tuple[str, ...]] = frozenset()

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

    # -- connecting -----------------------------------------------------------

    def connect(self) -> _Connection:
        """Return the open connection, opening one if needed (``_send_lock`` held)."""
        retired: Optional[_Connection] = None
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
        transport = WSTransport(
            opts.url,
            headers=opts.headers,
            connect_timeout=opts.connect_timeout,
            ssl_context=opts.ssl_context,
            proxy=opts.proxy,
            max_message_size=opts.max_message_size,
        )
        transport.connect()
        conn = _Connection(
            transport,
            ConnectionCore(use_lanes=self._use_lanes, max_names=opts.max_lanes),
            time.monotonic(),
        )
        thread = threading.Thread(
            target=_read_loop,
            args=(self, conn),
            name=f"openai_ws-reader-{id(conn):x}",
            daemon=True,
        )
        conn.thread = thread
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

    def _retire(self, conn: _Connection) -> Optional[_Connection]:
        """Stop sending to ``conn`` (``_lock`` held); return it if it can close now."""
        conn.retiring = True
        if self._conn is conn:
            self._conn = None
        if not conn.requests and not conn.closing:
            conn.closing = True
            return conn
        return None

    def connect_or_fallback(self, deadline: Optional[float]) -> Optional[_Connection]:
        """Open a socket with bounded exponential backoff and jitter.

        Returns ``None`` when the session switched to HTTP for good: the
        upgrade was refused with 426, or every attempt failed and an HTTP
        transport is available. Raises :class:`ConnectError` otherwise.
        """
        opts = self.options
        attempt = 0
        while True:
            if self._http_only_reason is not None:
                return None
            try:
                return self.connect()
            except ConnectError as exc:
                attempt += 1
                status = exc.status
                if not exc.retryable or status in (401, 403):
                    raise
                if status is not None and status < 500 and status not in (408, 429):
                    # The server (or a proxy) does not speak WebSocket here: 426,
                    # 404, 405, 400... Plain HTTP may still work.
                    if self.http is None:
                        raise
                    self.use_http_for_session(
                        f"the server refused the WebSocket upgrade with HTTP {status}"
                    )
                    return None
                delay = _backoff(opts, attempt - 1)
                out_of_time = deadline is not None and time.monotonic() + delay > deadline
                if attempt > opts.reconnect_attempts or out_of_time:
                    if self.http is not None:
                        self.use_http_for_session(f"{attempt} WebSocket connects failed ({exc})")
                        return None
                    raise
                log.info("connect failed (%s); retrying in %.2fs", exc, delay)
                self.pause(delay)

    def pause(self, seconds: float) -> None:
        """Wait before a retry; :meth:`close` cuts the wait short with an error."""
        if self._closed_event.wait(seconds):
            raise SessionClosedError("the session was closed")

    def open(self) -> None:
        """Connect now, so a wrong key or URL fails at creation."""
        with self._send_lock:
            self.connect_or_fallback(None)

    def use_http_for_session(self, reason: str) -> None:
        with self._lock:
            if self._http_only_reason is not None:
                return
            self._http_only_reason = reason
        log.warning("using HTTP for the rest of this session: %s", reason)

    def http_reason(self, body: Mapping[str, Any]) -> Optional[str]:
        """Why ``body`` must go over HTTP, or ``None`` to use the socket."""
        if self._http_only_reason is not None:
            return self._http_only_reason
        shape = set(_shape(body))
        for poisoned in self._http_shapes:
            if shape.issuperset(poisoned):
                return f"a request with decimal {', '.join(poisoned)} closed the socket before"
        return None

    def remember_silent_close(self, body: Mapping[str, Any]) -> None:
        """Send requests shaped like ``body`` over HTTP from now on."""
        shape = _shape(body)
        if shape:
            with self._lock:
                self._http_shapes = self._http_shapes | {shape}
            log.info("requests with decimal %s will use HTTP for this session", ", ".join(shape))

    # -- submitting -----------------------------------------------------------

    def new_request(self, body: Dict[str, Any], *, wake_on_terminal: bool = False) -> _Request:
        opts = self.options
        inbox = Inbox(
            max_events=opts.max_queue_events,
            max_bytes=opts.max_queue_bytes,
            wake_on_terminal=wake_on_terminal,
        )
        request = _Request(next(self._keys), body, inbox)
        self.count("requests")
        return request

    def submit(self, request: _Request, deadline: Optional[float]) -> bool:
        """Register ``request`` on the socket and send its frame.

        Returns False when the session has switched to HTTP instead.
        """
        with self._send_lock:
            body = request.body
            while True:
                conn = self.connect_or_fallback(deadline)
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
                # a _Lost note (it has no event yet), so nothing is lost here.
                log.debug("send failed; request %d waits for the reader", request.key)
                conn.transport.abort()
            return True

    def abandon(self, request: _Request) -> None:
        """The caller stopped listening: drop the rest of the request's events.

        No lock: the flag only ever goes from False to True, and the reader
        reads it under ``_lock`` before each put, so at worst one more event is
        queued to an inbox nobody reads (it is bounded and then collected).
        """
        request.abandoned = True

    # -- the reader's side ----------------------------------------------------

    def deliver(self, conn: _Connection, event: Dict[str, Any], nbytes: int) -> None:
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
            if event["type"] == "error" and _error_code(event) == _CONNECTION_LIMIT:
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
            return
        if request is None:
            return
        if route.rejected:
            log.info("the server refused the stream_id field; using the default lane")
            request.inbox.put(_Rejected(), urgent=True)
            return
        inbox = request.inbox
        if inbox.put(event, nbytes, terminal=route.terminal, defer=True):
            if not route.terminal:
                # Woken in one go when the reader runs out of received data
                # (see _read_loop): one wake-up per burst, not per event.
                conn.to_wake.add(inbox)
        else:
            # The inbox overflowed (the consumer is too slow) or already ended.
            self.abandon(request)

    @staticmethod
    def wake_consumers(conn: _Connection) -> None:
        """Wake the consumers that got events since the last call (reader thread)."""
        if conn.to_wake:
            for inbox in conn.to_wake:
                inbox.wake()
            conn.to_wake.clear()

    def connection_ended(self, conn: _Connection, closed: Closed) -> None:
        """Hand every unfinished request of ``conn`` a note (reader thread)."""
        with self._lock:
            if self._conn is conn:
                self._conn = None
            conn.dead = True
            kind = _protocol.classify_close(closed.code, initiated_by_us=conn.closing)
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
                request.inbox.put(_Lost(kind, closed.code, closed.reason), urgent=True)

    def forget_connection(self, conn: _Connection) -> None:
        with self._lock:
            self._connections.discard(conn)

    def begin_http_call(self) -> Cancellation:
        """A token for one HTTP call, which :meth:`close` cancels."""
        from ._http import Cancellation  # loaded with requests, on first HTTP use

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


def _read_loop(engine: _Engine, conn: _Connection) -> None:
    """The reader thread: frames in, events routed. Never raises."""
    transport = conn.transport
    ping_interval = engine.options.ping_interval
    ping_timeout = engine.options.ping_timeout
    awaiting_pong = False
    transport.set_recv_timeout(ping_interval)
    transport.set_before_read(lambda: engine.wake_consumers(conn))
    closed: Optional[Closed] = None
    try:
        while closed is None:
            frame = transport.recv()
            if type(frame) is str:
                if awaiting_pong:
                    awaiting_pong = False
                    transport.set_recv_timeout(ping_interval)
                _handle_text(engine, conn, frame)
            elif isinstance(frame, Closed):
                closed = frame
            elif isinstance(frame, Idle):
                if awaiting_pong:
                    log.warning("no pong within %.1fs; the connection is dead", ping_timeout)
                    transport.abort()
                    closed = Closed(None, "keepalive ping timeout")
                else:
                    transport.ping()
                    awaiting_pong = True
                    transport.set_recv_timeout(ping_timeout)
            elif isinstance(frame, Pong):
                if awaiting_pong:
                    awaiting_pong = False
                    transport.set_recv_timeout(ping_interval)
            elif isinstance(frame, Binary):
                engine.count("binary_frames")
                log.warning("skipped a binary frame of %d bytes", len(frame.data))
    except BaseException:  # pragma: no cover - a bug; keep the callers alive
        log.exception("the reader thread failed")
        closed = Closed(None, "reader failure")
        transport.abort()
    finally:
        try:
            engine.connection_ended(conn, closed or Closed(None, ""))
        finally:
            transport.release()
            engine.forget_connection(conn)


def _handle_text(engine: _Engine, conn: _Connection, data: str) -> None:
    """Decode one text frame and route it; typing waits for the consumer."""
    try:
        event = json.loads(data)
    except ValueError as exc:
        engine.count("malformed_frames")
        log.warning("skipped a frame that is not JSON: %s", exc)
        return
    if type(event) is not dict or type(event.get("type")) is not str:
        engine.count("malformed_frames")
        log.warning("skipped a frame that is not an event object: %.80r", data)
        return
    engine.deliver(conn, event, len(data))


# -- the caller's side ---------------------------------------------------------


def _backoff(opts: SessionOptions, step: int, *, first: Optional[float] = None) -> float:
    """Exponential backoff with jitter: ``first * 2**step``, capped, minus up to 25 %.

    ``first`` defaults to ``backoff_initial`` (reconnects and replays); error
    retries without a server hint start at 0.5 s.
    """
    base = opts.backoff_initial if first is None else first
    delay: float = min(opts.backoff_max, base * 2**step)
    return delay * random.uniform(0.75, 1.0)


def _retry_delay(error: APIError, attempt: int, opts: SessionOptions) -> Optional[float]:
    """Seconds to wait before retrying ``error``, or ``None`` if not retryable."""
    status = error.status or 0
    if error.code == "insufficient_quota":
        return None
    if status != 429 and status < 500:
        return None
    headers = error.headers
    hint: Optional[float] = None
    try:
        if "retry-after-ms" in headers:
            hint = float(headers["retry-after-ms"]) / 1000.0
        elif "retry-after" in headers:
            hint = float(headers["retry-after"])
    except ValueError:
        hint = None
    if hint is None:
        match = _RETRY_IN.search(error.message or "")
        if match:
            hint = float(match.group(1)) / (1000.0 if match.group(2).lower() == "ms" else 1.0)
    if hint is not None and 0 <= hint <= 60:
        return hint
    return _backoff(opts, attempt, first=0.5)


def _error_from_event(event: ErrorEvent, body: Mapping[str, Any]) -> APIError:
    error = event.to_api_error(request=dict(body))
    if isinstance(error, PreviousResponseNotFoundError):
        error.message = (
            f"{error.message} The parent response is not available: with store=false a "
            "response lives only in the cache of the socket that produced it, and that "
            "socket has closed or its lane moved on. Send the whole conversation again "
            "without previous_response_id, or use store=true."
        )
    return error


class Session:
    """A persistent WebSocket to the Responses API, shared by many threads.

    Create one with :meth:`openai_ws.OpenAI.ws_session`; use it as a context
    manager or call :meth:`close`. Every method is thread-safe. Requests from
    different threads run concurrently on their own ``stream_id`` lanes (at
    most 16 run at once per socket; the server queues the rest).
    """

    def __init__(
        self,
        options: SessionOptions,
        *,
        http: Optional[Callable[[], HTTPTransport]] = None,
    ) -> None:
        self._engine = _Engine(options, http)
        self._finalizer = weakref.finalize(self, self._engine.close)
        try:
            self._engine.open()
        except BaseException:
            self._finalizer()
            raise

    # -- context manager ------------------------------------------------------

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._engine.closed else "open"
        return f"<openai_ws.Session {state} url={self._engine.options.url!r}>"

    # -- public API -----------------------------------------------------------

    @property
    def stats(self) -> SessionStats:
        """A snapshot of the session's counters."""
        return self._engine.stats()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (or the session was collected)."""
        return self._engine.closed

    def close(self) -> None:
        """Close the session; idempotent.

        Requests still waiting in other threads fail at once with
        :class:`~openai_ws.errors.SessionClosedError`, also those running over
        HTTP (their sockets are shut down); a 1000 close frame is sent; the
        reader thread is joined (bounded by ``close_timeout``).
        """
        self._finalizer()

    def send(
        self,
        request: Optional[ResponseCreateRequest] = None,
        /,
        *,
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> Response:
        """Send a request and block until its terminal event; return the response.

        ``completed``, ``incomplete`` and ``failed`` responses are returned
        (check :attr:`Response.status`); an ``error`` event raises the matching
        :class:`~openai_ws.errors.APIError`. ``timeout`` bounds the whole
        request (default: the client's ``timeout``); it raises
        :class:`~openai_ws.errors.RequestTimeoutError`.
        """
        done: List[Dict[str, Any]] = []
        run = self._run(coerce_request(request, fields), timeout, collect=done)
        with run as events:
            for event in events:
                if isinstance(event, _WITH_RESPONSE):
                    response = event.response
                    if not response.output and done:
                        # Over WebSocket a terminal response may omit its output:
                        # rebuild it from the finished items.
                        items = [cast(ResponseOutputItemDone, structure_event(d)) for d in done]
                        response = attrs.evolve(response, output=[i.item for i in items])
                    return response
        raise ProtocolError("the stream ended without a terminal event")

    def stream(
        self,
        request: Optional[ResponseCreateRequest] = None,
        /,
        *,
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> EventStream:
        """Send a request and return an iterator of its events.

        The request leaves at once; the generator yields every event in order
        and stops after the terminal one (``response.completed``, ``.failed``,
        ``.incomplete``). An ``error`` event raises the matching
        :class:`~openai_ws.errors.APIError`. Breaking out of the loop, closing
        the stream or dropping it abandons the request: its remaining
        events are dropped and never reach another request.
        """
        return self._run(coerce_request(request, fields), timeout)

    def warmup(
        self,
        request: Optional[ResponseCreateRequest] = None,
        /,
        *,
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> str:
        """Prepare a request without generating (``generate: false``); return its id.

        Chain the real turn from it with ``previous_response_id``.
        """
        warm = attrs.evolve(coerce_request(request, fields), generate=False)
        return self.send(warm, timeout=timeout).id

    def run(
        self,
        request: Optional[ResponseCreateRequest] = None,
        /,
        *,
        tools: Mapping[str, Callable[..., Any]],
        max_turns: int = 10,
        tool_errors: str = "output",
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> RunResult:
        """Run a tool-calling loop until the model answers without calls.

        Each function call the model makes is run with ``tools[call.name]``,
        called with the call's JSON arguments as keyword arguments (several
        calls of one turn run in parallel threads). The results (``str`` as is,
        anything else as JSON) go back as ``function_call_output`` items chained
        with ``previous_response_id``, with the rest of ``request`` unchanged.
        A tool that raises, or a name with no tool, becomes an error output the
        model sees (``tool_errors="output"``) or propagates
        (``tool_errors="raise"``). Stops after ``max_turns`` requests at most;
        :attr:`RunResult.finished` tells whether the model was done.
        """
        return run_tools(
            self,
            coerce_request(request, fields),
            tools,
            max_turns=max_turns,
            tool_errors=tool_errors,
            timeout=timeout,
        )

    def map(
        self,
        requests: Iterable[ResponseCreateRequest],
        *,
        concurrency: int = _protocol.MAX_ACTIVE_RESPONSES,
        timeout: Optional[float] = None,
        return_exceptions: bool = False,
        progress: bool = False,
    ) -> Iterator[Union[Response, BaseException]]:
        """Send independent requests concurrently; yield responses in input order.

        At most ``concurrency`` requests run at once (the server runs 16 per
        socket). A failed request raises when its turn comes, or is yielded as
        the exception with ``return_exceptions=True``. ``progress=True`` shows
        a tqdm progress bar when tqdm is installed.
        """
        return map_requests(
            self,
            requests,
            concurrency=concurrency,
            timeout=timeout,
            return_exceptions=return_exceptions,
            progress=progress,
        )

    # -- internals ------------------------------------------------------------

    def _run(
        self,
        request: ResponseCreateRequest,
        timeout: Optional[float],
        *,
        collect: Optional[List[Dict[str, Any]]] = None,
    ) -> EventStream:
        engine = self._engine
        if engine.closed:
            raise SessionClosedError("the session is closed")
        body = request.to_dict()
        stream_id = body.get("stream_id")
        if stream_id is not None and not (
            isinstance(stream_id, str) and _STREAM_ID.match(stream_id)
        ):
            raise ValueError("stream_id must be 1-256 characters of A-Z, a-z, 0-9, '_', '.', '-'")
        opts = engine.options
        limit = opts.request_timeout if timeout is None else timeout
        deadline = None if limit is None else time.monotonic() + limit
        # A caller that wants only the result is woken once, by the terminal
        # event, unless it bounds the wait for each event.
        wake_on_terminal = collect is not None and opts.event_timeout is None
        state = engine.new_request(body, wake_on_terminal=wake_on_terminal)
        state.whole = collect is not None
        reason = engine.http_reason(body)
        try:
            sent = reason is None and engine.submit(state, deadline)
        except BaseException:
            engine.abandon(state)  # e.g. Ctrl-C while reconnecting
            raise
        if sent:
            return EventStream(engine, state, _events(engine, state, deadline, collect))
        events = _over_http(engine, state, deadline, reason or engine.http_reason(body))
        return EventStream(engine, state, events)


class EventStream(Iterator[ServerEvent]):
    """The events of one request, as returned by :meth:`Session.stream`.

    An iterator (and a context manager) that yields typed events and stops
    after the terminal one. :meth:`close` (or leaving the ``with`` block, or
    dropping the last reference, even before the first ``next()``) abandons
    the request: its remaining events are dropped as they arrive.
    """

    def __init__(
        self, engine: _Engine, request: _Request, events: Generator[Any, None, None]
    ) -> None:
        self._events = events
        self._finalizer = weakref.finalize(self, engine.abandon, request)

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> ServerEvent:
        event: ServerEvent = next(self._events)
        return event

    def close(self) -> None:
        """Stop listening; the request is abandoned if it has not finished."""
        self._events.close()
        self._finalizer()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def coerce_request(
    request: Optional[ResponseCreateRequest], fields: Dict[str, Any]
) -> ResponseCreateRequest:
    """The request a caller meant: a :class:`ResponseCreateRequest` or keyword fields."""
    if request is None:
        return ResponseCreateRequest(**fields)
    if fields:
        raise TypeError("pass either a ResponseCreateRequest or keyword fields, not both")
    if not isinstance(request, ResponseCreateRequest):
        raise TypeError(f"expected a ResponseCreateRequest, got {type(request).__name__}")
    return request


def _shape(body: Mapping[str, Any]) -> Tuple[str, ...]:
    """The top-level fields holding non-integer numbers (what trips the 1000 close)."""
    return tuple(
        sorted(
            key
            for key, value in body.items()
            if isinstance(value, float) and not value.is_integer()
        )
    )


def _over_http(
    engine: _Engine, request: _Request, deadline: Optional[float], reason: Optional[str]
) -> Generator[Any, None, None]:
    """Complete ``request`` over HTTP with exactly the caller's fields."""
    http = engine.http
    if http is None:
        raise ConnectError(f"cannot use the WebSocket ({reason}) and no HTTP transport is set")
    engine.count("http_fallbacks")
    log.info("request %d goes over HTTP: %s", request.key, reason)
    # stream_id names a WebSocket lane; it has no meaning over HTTP.
    body = {k: v for k, v in request.body.items() if k != "stream_id"}
    timeout = None if deadline is None else max(0.001, deadline - time.monotonic())
    transport = http()
    token = engine.begin_http_call()  # close() aborts the call through it
    try:
        if request.whole:
            # send() wants the response, not its events: one JSON answer is
            # cheaper than a stream (measured by benchmarks/fallback_cost.py).
            response = transport.create(body, timeout=timeout, cancel=token)
            request.delivered += 1
            terminal = _TERMINAL_BY_STATUS.get(response.status or "", ResponseCompleted)
            yield terminal(response=response)
            return
        for event in transport.stream(body, timeout=timeout, cancel=token):
            request.delivered += 1
            yield event
            # Each read waits at most the time that was left when the call
            # started; this also bounds a stream that keeps sending events.
            late = deadline is not None and time.monotonic() > deadline
            if late and event.type not in TERMINAL_EVENT_TYPES:
                raise RequestTimeoutError(
                    f"timed out over HTTP after {request.delivered} event(s): the request ran late"
                )
    finally:
        engine.end_http_call(token)


def _events(
    engine: _Engine,
    request: _Request,
    deadline: Optional[float],
    collect: Optional[List[Dict[str, Any]]] = None,
) -> Generator[Any, None, None]:
    """Yield the request's events, typed; recover from a lost socket in this thread.

    Events arrive decoded but untyped and are typed here, in the consumer's
    thread. With ``collect`` (what ``send()`` uses) only the terminal event is
    typed and yielded; the ``response.output_item.done`` events are appended
    to ``collect`` untyped, and the others skipped. A non-terminal event that
    does not fit its type is counted and skipped; a terminal one raises
    :class:`ProtocolError`.
    """
    opts = engine.options
    finished = False
    retries = 0
    batch: Deque[Any] = collections.deque()
    try:
        while True:
            if not batch:
                wait = deadline
                if opts.event_timeout is not None:
                    event_deadline = time.monotonic() + opts.event_timeout
                    wait = event_deadline if wait is None else min(wait, event_deadline)
                try:
                    batch.extend(request.inbox.get_all(wait))
                except RequestTimeoutError:
                    what = "the request" if wait == deadline else "the next event"
                    raise RequestTimeoutError(
                        f"timed out waiting for {what} after {request.delivered} event(s)"
                    ) from None
            item = batch.popleft()
            resend = False
            if type(item) is dict:
                event_type = item["type"]
                if event_type != "error":
                    request.delivered += 1
                    terminal = event_type in TERMINAL_EVENT_TYPES
                    if collect is not None and not terminal:
                        if event_type == "response.output_item.done":
                            collect.append(item)
                        continue
                    try:
                        event = structure_event(item)
                    except ProtocolError as exc:
                        if terminal:
                            finished = True
                            raise
                        engine.count("malformed_frames")
                        log.warning("skipped an event that does not fit its type: %s", exc)
                        continue
                    finished = terminal
                    yield event
                    if finished:
                        return
                    continue
                error = _error_from_event(cast(ErrorEvent, structure_event(item)), request.body)
                if error.code == _CONNECTION_LIMIT and request.replays < opts.max_replays:
                    log.info("the connection reached its age limit; replaying on a new one")
                    request.replays += 1
                    engine.count("replays")
                    resend = True
                else:
                    delay = None
                    if request.delivered == 0 and retries < opts.max_retries:
                        delay = _retry_delay(error, retries, opts)
                    if delay is None or (
                        deadline is not None and time.monotonic() + delay > deadline
                    ):
                        finished = True
                        raise error
                    retries += 1
                    engine.count("retries")
                    log.info(
                        "retrying after %s in %.2fs (attempt %d of %d)",
                        error.code or error.status,
                        delay,
                        retries,
                        opts.max_retries,
                    )
                    engine.pause(delay)
                    resend = True
            elif isinstance(item, Failure):
                finished = True
                raise item.exc
            elif isinstance(item, _Rejected):
                resend = True
            elif isinstance(item, _Lost):
                resend = _recover(engine, request, item)
                if not resend:
                    finished = True
                    yield from _over_http(engine, request, deadline, "the socket closed silently")
                    return
            if not resend:  # pragma: no cover - every inbox item is handled above
                raise AssertionError(f"unexpected inbox item {item!r}")
            batch.clear()
            request.inbox = Inbox(
                max_events=opts.max_queue_events,
                max_bytes=opts.max_queue_bytes,
                wake_on_terminal=request.inbox.wake_on_terminal,
            )
            if not engine.submit(request, deadline):
                finished = True
                yield from _over_http(engine, request, deadline, engine.http_reason({}))
                return
    finally:
        if not finished:
            engine.abandon(request)


def _recover(engine: _Engine, request: _Request, lost: _Lost) -> bool:
    """The socket ended under ``request``: True to resend it on a new socket,
    False to complete it over HTTP; raises when neither is safe."""
    if request.delivered or (request.pending is not None and request.pending.events):
        raise ReplayUnsafeError(
            f"the connection closed (code={lost.code}) after the request had received "
            f"{request.delivered} event(s); it was not replayed, to avoid answering it twice",
            code=lost.code,
            reason=lost.reason,
            events_received=request.delivered,
            response_id=request.pending.response_id if request.pending else None,
        )
    if lost.kind is CloseKind.SILENT and engine.http is not None:
        engine.remember_silent_close(request.body)
        return False
    opts = engine.options
    if request.replays >= opts.max_replays:
        raise ConnectionClosedError(
            f"the connection closed (code={lost.code}) {request.replays + 1} times before "
            "the request received any event; giving up",
            code=lost.code,
            reason=lost.reason,
        )
    if request.replays:
        # Sockets keep dying under this request: slow down before the next try.
        engine.pause(_backoff(opts, request.replays - 1))
    request.replays += 1
    engine.count("replays")
    log.info("replaying request %d on a new connection (code=%s)", request.key, lost.code)
    return True
