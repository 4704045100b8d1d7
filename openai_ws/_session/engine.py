"""The session's machinery: its sockets, register-then-send, routing, and close.

The :class:`Engine` owns the session's connections (a pool of up to
``max_sockets`` sockets in use, plus retiring ones finishing their last
requests), opens them through a transport factory (``WSTransport`` by default;
tests pass a scripted fake), and is the
:class:`~openai_ws._session.connection.Sink` its reader threads feed: each
decoded event is routed by the connection's sans-IO core and put in the inbox
of the request that owns it. The per-request logic (what to do with each
item, recovery) runs in the caller's thread, in :mod:`.attempt`.

It is made of three parts that share its state and locks: this module
(register-then-send, steers, HTTP calls, close, fork), :mod:`.sockets`
(opening, choosing and retiring sockets) and :mod:`.delivery` (the reader's
side: routing into inboxes, a socket's end).

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
)

import attrs

from .._protocol import retry
from .._transports.ws import WSTransport
from ..errors import (
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
from .delivery import Delivery
from .fallback import FallbackPolicy
from .inbox import Inbox
from .options import SessionOptions, SessionStats
from .request import Mode, RequestState
from .sockets import _NoRoom
from .steering import Steer, SteerBook, check_steer_input

if TYPE_CHECKING:
    from .._transports.http import HTTPTransport
    from .._transports.http_cancel import Cancellation

__all__ = ["Engine"]

log = logging.getLogger(__name__)


class Engine(Delivery):
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
        # No extra socket is opening in the child (that thread stayed in the parent), and
        # its waiters wait on the new lock.
        self._extra.opening = False
        self._extra_done = threading.Condition(self._lock)
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


_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
"""Every live engine, so a forked child can make each forget its parent's sockets."""


def _after_fork_in_child() -> None:
    for engine in list(_ENGINES):
        engine.forked()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)

