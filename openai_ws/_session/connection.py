"""One socket of a session: its transport, its routing core and its reader thread.

The reader thread is the only reader of the socket. It takes the frames of one
socket read at a time from the transport, decodes each text frame (JSON only:
typing waits for the consumer), and hands the read's events together to a
:class:`Sink` (the engine), which routes them under its lock, queues them in
one run per inbox and says which inboxes to wake. The reader then wakes those
consumers, one wake-up per burst rather than per event, and reads again. It
answers keepalive itself: after ``ping_interval`` seconds of silence it pings,
and a socket with no pong within ``ping_timeout`` is declared dead. When the
socket ends, the sink is told once (:meth:`Sink.ended`), the transport is
released, and the sink is told that too (:meth:`Sink.released`).

This module must never import the engine (it knows only the :class:`Sink`
protocol), let an exception escape the reader thread, block on a consumer, or
keep a reference to the public :class:`~openai_ws.Session` (so a forgotten
session is collected and its thread stopped by its finalizer).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Protocol,
    Set,
    Tuple,
    Union,
)

import attrs

from .._protocol.decode import SCAN_ONCE, scan
from .._protocol.routing import ConnectionCore
from .._transports.ws import Binary, Closed, Frame, Idle, Pong
from ..errors import MessageTooLargeError

if TYPE_CHECKING:
    import ssl

    from .inbox import Inbox
    from .request import RequestState

__all__ = ["Connection", "Sink", "Transport", "TransportFactory"]

log = logging.getLogger(__name__)


class Transport(Protocol):
    """What a session needs of one WebSocket (``WSTransport``, or a test's fake)."""

    url: str

    def connect(self) -> None: ...
    def send_text(self, data: str, deadline: Optional[float] = None) -> None: ...
    def recv(self) -> List[Frame]: ...
    def backlog(self) -> bool: ...
    def set_recv_timeout(self, seconds: Optional[float]) -> None: ...
    def ping(self) -> None: ...
    def send_close(self, code: int = 1000) -> None: ...
    def abort(self) -> None: ...
    def release(self) -> None: ...


class TransportFactory(Protocol):
    """Makes an unconnected :class:`Transport` (the ``WSTransport`` constructor's shape)."""

    def __call__(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        connect_timeout: float,
        ssl_context: Optional[ssl.SSLContext] = None,
        proxy: Optional[str] = None,
        max_message_size: Optional[int] = None,
    ) -> Transport: ...


class Sink(Protocol):
    """Where the reader thread hands what it reads (the engine implements it)."""

    def deliver(
        self,
        conn: Connection,
        events: List[Dict[str, Any]],
        costs: List[int],
        wake: Set[Inbox],
    ) -> None:
        """Route decoded events (in order; ``costs[i]`` is what ``events[i]`` costs in
        memory) and add the inboxes to wake after the batch to ``wake``."""

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the session counter ``name``."""

    def ended(self, conn: Connection, closed: Closed) -> None:
        """The socket ended: hand every unfinished request a note (called once)."""

    def released(self, conn: Connection) -> None:
        """The reader freed the socket and is about to stop (called once, last)."""

    def idle(self, conn: Connection) -> None:
        """Nothing arrived for ``ping_interval`` seconds (the socket may be closed)."""


@attrs.define(eq=False)
class Connection:
    """A socket, its reader thread and its sans-IO core.

    ``core`` and ``requests`` are guarded by the engine's lock; the flags are
    set under it too.
    """

    transport: Transport
    core: ConnectionCore
    opened_at: float
    requests: Dict[int, RequestState] = attrs.Factory(dict)
    thread: Optional[threading.Thread] = None
    closing: bool = False
    """We started closing it; its end is not a fault."""
    retiring: bool = False
    """No new requests go to it; it closes when its last request ends."""
    limit_reached: bool = False
    """The server said the connection is too old; its close is expected."""
    dead: bool = False
    """Its reader has handed every request back; nothing may register on it."""
    sending: int = 0
    """Frames being written now: a close frame cannot go out before they are done."""
    max_event_cost: Optional[int] = None
    """Largest memory charge of one event (``max_queue_bytes``): a frame costing more
    is refused before it is decoded, closing the socket with 1009."""

    def start(
        self, sink: Sink, *, ping_interval: Optional[float], ping_timeout: float
    ) -> threading.Thread:
        """Create the reader thread (not started: the caller starts it)."""
        thread = threading.Thread(
            target=_read_loop,
            args=(sink, self, ping_interval, ping_timeout),
            name=f"openai_ws-reader-{id(self):x}",
            daemon=True,
        )
        self.thread = thread
        return thread


def _read_loop(
    sink: Sink, conn: Connection, ping_interval: Optional[float], ping_timeout: float
) -> None:
    """The reader thread: frames in, events routed, consumers woken. Never raises."""
    transport = conn.transport
    awaiting_pong = False
    transport.set_recv_timeout(ping_interval)
    closed: Optional[Closed] = None
    failure = Closed(None, "reader failure")  # made now: the except clause must not fail
    to_wake: Set[Inbox] = set()
    deferred = 0  # reads handed on since the last wake-up (see MAX_DEFERRED_READS)
    # The events of one socket read, decoded, go to the sink together (sink.deliver):
    # the events and what each costs in memory, in two lists (no tuple per event).
    events: List[Dict[str, Any]] = []
    costs: List[int] = []
    deliver, scan_once = sink.deliver, SCAN_ONCE
    add_event, add_cost = events.append, costs.append
    # The charge of a small frame may not trip the bound: then it is decoded right here.
    limit = conn.max_event_cost
    small = SMALL_EVENT if limit is None else min(SMALL_EVENT, limit // SMALL_FACTOR)
    try:
        while closed is None:
            for frame in transport.recv():
                if type(frame) is str:
                    if awaiting_pong:
                        awaiting_pong = False
                        transport.set_recv_timeout(ping_interval)
                    size = len(frame)
                    if size <= small:
                        # The common case, what _decode_text does for it, without its frame
                        # (and decode.scan(), inlined: the C scanner, not json.loads).
                        try:
                            event, end = scan_once(frame, 0)
                        except Exception:
                            event = end = None  # _decode_text decides (counts and logs)
                        if end == size and type(event) is dict and type(event.get("type")) is str:
                            add_event(event)
                            add_cost(size * SMALL_FACTOR)
                            continue
                    decoded = _decode_text(sink, conn, frame)
                    if type(decoded) is tuple:
                        add_event(decoded[0])
                        add_cost(decoded[1])
                    elif isinstance(decoded, Closed):  # an event over max_queue_bytes
                        transport.send_close(1009)
                        closed = decoded
                        break
                    continue
                if isinstance(frame, Closed):
                    closed = frame
                    break
                elif isinstance(frame, Idle):
                    if not awaiting_pong:
                        sink.idle(conn)  # an idle extra socket may be closed now
                    if awaiting_pong:
                        log.warning("no pong within %.1fs; the connection is dead", ping_timeout)
                        transport.abort()
                        closed = Closed(None, "keepalive ping timeout")
                        break
                    transport.ping()
                    awaiting_pong = True
                    transport.set_recv_timeout(ping_timeout)
                elif isinstance(frame, Pong):
                    if awaiting_pong:
                        awaiting_pong = False
                        transport.set_recv_timeout(ping_interval)
                elif isinstance(frame, Binary):
                    sink.count("binary_frames")
                    log.warning("skipped a binary frame of %d bytes", len(frame.data))
            if events:
                # Also when the read ended in a close: its events go before the sink
                # hears of the end. (Idle comes alone; pongs and binary frames carry
                # nothing the events' order depends on.)
                deliver(conn, events, costs, to_wake)
                events.clear()
                costs.clear()
            if to_wake:
                if deferred < MAX_DEFERRED_READS and transport.backlog():
                    # More is waiting already, so the next read will not block: hand
                    # it on first and wake these consumers once for both (fewer
                    # wake-ups and thread switches when the reader is behind).
                    deferred += 1
                    continue
                # The batch is handed on: wake its consumers once, before the
                # next read may block.
                for inbox in to_wake:
                    inbox.wake()
                to_wake.clear()
                deferred = 0
    except BaseException:  # a bug, MemoryError, a signal: keep the callers alive
        closed = failure
        _guarded(log.exception, "the reader thread failed")
        _guarded(transport.abort)
    finally:
        # Every step runs whatever the one before did, and nothing leaves the thread:
        # the requests get their Lost note (a typed error in their thread), the socket
        # is freed, and the engine forgets the connection.
        for inbox in to_wake:
            _guarded(inbox.wake)
        _guarded(sink.ended, conn, closed or Closed(None, ""))
        _guarded(transport.release)
        _guarded(sink.released, conn)


def _guarded(call: Callable[..., Any], *args: Any) -> None:
    """Run ``call(*args)``; log (if even that is possible) and swallow anything it raises."""
    try:
        call(*args)
    except BaseException:  # the reader thread must not die, whatever a step raises
        with contextlib.suppress(BaseException):
            log.exception("the reader thread could not finish a step (%r)", call)


MAX_DEFERRED_READS = 3
"""Reads whose consumers' wake-up may wait for the next read, when that read will not block
(:meth:`Transport.backlog`): a reader that is behind wakes each consumer at most once per
four reads (256 KiB) rather than per read, and never before a read that may block."""

CONTAINER_COST = 64
"""Bytes an event is charged per ``{`` or ``[`` in its frame: an empty ``dict`` is 64 bytes
and an empty ``list`` 56 (CPython 3.11), plus the slot that holds it."""

ITEM_COST = 24
"""Bytes an event is charged per ``,`` and per ``"``: a list slot or dict entry per item, a
``str`` header (49 bytes) per two quotes."""

SMALL_EVENT = 256
"""Frames up to this many characters are charged :data:`SMALL_FACTOR` bytes per character
instead of being scanned (most events are deltas of 150-300 characters)."""

SMALL_FACTOR = 24
"""About the most any JSON costs decoded per character (a list of ``{}``: 24 bytes), so the
charge of a small frame is never below its real cost; 10,000 frames of 256 characters are
charged 61 MiB, so the default event bound still trips before the byte bound for them."""


def event_cost(data: str) -> int:
    """What the decoded form of the text frame ``data`` costs in memory, estimated cheaply.

    A small frame (:data:`SMALL_EVENT`) is charged :data:`SMALL_FACTOR` per character.
    A larger one is charged ``len(data)`` plus :data:`CONTAINER_COST` per ``{`` and ``[``
    and :data:`ITEM_COST` per ``,`` and ``"``: four C-speed scans, no parsing. Characters
    inside strings count too, so text full of commas, quotes or braces is overestimated
    (CSV or JSON inside a string: 10-14 times). Against ``tracemalloc`` measures of
    ``json.loads`` the charge was at least 0.75 of the real cost for every shape tried (a
    list of ``{"a":1}`` is the lowest; ``{}`` objects 1.26, floats 0.87, logprobs 1.43,
    plain text 1.0), so a per-request bound of N bytes holds at most about 1.33 N bytes of
    decoded events.
    """
    size = len(data)
    if size <= SMALL_EVENT:
        return size * SMALL_FACTOR
    count = data.count
    return size + CONTAINER_COST * (count("{") + count("[")) + ITEM_COST * (count(",") + count('"'))


def _decode_text(
    sink: Sink, conn: Connection, data: str
) -> Union[Tuple[Dict[str, Any], int], Closed, None]:
    """Decode one text frame: ``(event, cost)``, or ``None`` for a malformed frame
    (counted and skipped). Typing waits for the consumer.

    Any exception from decoding (``ValueError``, ``RecursionError`` for JSON nested
    deeper than the interpreter's recursion limit, ``MemoryError``) makes the frame
    malformed: counted and skipped. If it was a request's terminal event, nothing can
    say so (its routing fields are in the part that failed): that request waits for
    its ``timeout`` (or ``event_timeout``) and raises ``RequestTimeoutError``.

    A frame whose memory charge alone is over ``conn.max_event_cost`` is not
    decoded at all (that could cost many times its size): the socket is closed
    with 1009, as for a message over ``max_message_size``, and the returned
    :class:`Closed` says why.
    """
    size = len(data)
    cost = size * SMALL_FACTOR if size <= SMALL_EVENT else event_cost(data)  # event_cost, inlined
    limit = conn.max_event_cost
    if limit is not None and cost > limit:
        error = MessageTooLargeError(
            f"an event would cost about {cost} bytes in memory, more than "
            f"max_queue_bytes={limit}; raise max_queue_bytes to accept it",
            limit=limit,
            size=cost,
        )
        return Closed(1009, "an event over max_queue_bytes", error)
    event = scan(data)
    try:
        if event is None:  # not one bare JSON value: json.loads gives its usual result
            event = json.loads(data)
    except Exception as exc:  # any failure to decode makes the frame malformed
        sink.count("malformed_frames")
        log.warning("skipped a frame that is not JSON: %s", _describe(exc))
        return None
    if type(event) is not dict or type(event.get("type")) is not str:
        sink.count("malformed_frames")
        log.warning("skipped a frame that is not an event object: %.80r", data)
        return None
    return event, cost


def _describe(exc: BaseException) -> str:
    """A short, bounded description of a decoding error (its text may quote the frame)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}"
