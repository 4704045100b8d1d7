"""The reader's side of the engine: routing what each socket reads, and its end.

:class:`Delivery` is the :class:`~openai_ws._session.connection.Sink` every
reader thread feeds. :meth:`Delivery.deliver` takes the decoded events of one
socket read: plain ones (deltas, item and part events) are routed by the
socket's core under one hold of the lock and queued in one run per inbox;
every other event (lifecycle, terminal, steer, unroutable) goes through
:meth:`Delivery._deliver_slow`, after the runs before it, so each inbox gets
its events in order. :meth:`Delivery.ended` hands every unfinished request of
a socket that ended a note, classified once for all of them.

A part of the engine (it shares its lock, books and counters: see
:class:`~.sockets.SocketPool` for their declarations). It must never block a
reader on a caller, raise into the reader thread, or hold ``_lock`` while it
puts into an inbox.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Set, Tuple

from .._protocol.routing import (
    STEER_EVENT_TYPES,
    CloseKind,
    Pending,
    classify_close,
    is_connection_limit,
)
from .._transports.ws import Closed
from ..errors import SessionClosedError
from .connection import Connection
from .inbox import Inbox, Lost, Rejected, Settled, Settling
from .request import Mode, RequestState
from .sockets import SocketPool
from .steering import SteerBook

__all__ = ["Delivery"]

log = logging.getLogger(__name__)


class Delivery(SocketPool):
    """The :class:`~openai_ws._session.connection.Sink` part of ``Engine`` (built on its
    :class:`~.sockets.SocketPool` part: a limit error retires its socket)."""

    if TYPE_CHECKING:  # the engine's, set in Engine.__init__ (the rest: see SocketPool)
        _steers: SteerBook

        @staticmethod
        def abandon(request: RequestState) -> None: ...
        def _finish_signalled_close(self) -> None: ...

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

    def _end_settled(self, conn: Connection, ended: List[Pending]) -> None:
        """Settling requests the server moved on from: end them as they are (``_lock`` held)."""
        for pending in ended:
            self._steers.lose(pending.steers, "the server moved on without answering the steer")
            request = conn.requests.pop(pending.key, None)
            if request is not None:
                request.answered = True
                if not request.abandoned:
                    request.inbox.put(Settled(None), terminal=True)

    def released(self, conn: Connection) -> None:
        with self._lock:
            self._connections.discard(conn)


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
