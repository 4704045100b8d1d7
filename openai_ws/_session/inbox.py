"""The handoff between the reader thread and one waiting caller, and its items.

One :class:`Inbox` exists per attempt of a request: a request sent again (a
replay, a retry) gets a fresh one, so nothing of the old attempt can reach the
new one. The reader thread *puts* items; exactly one caller thread *gets*
them. The items are decoded events (``dict``), and the notes below. An inbox
is closed by at most one terminal item: the request's terminal event or a
:class:`Failure` (an exception to re-raise in the caller) or
:class:`Settled` (a steered request is over); after it, further puts are
ignored. :class:`Settling` marks a terminal event that does not end its
request yet (a steer of it is open). :class:`Lost` and :class:`Rejected` are *urgent* notes: they
wake the consumer, which then stops reading this inbox and decides what to do.

This module must never block the producer: :meth:`Inbox.put` returns at once,
whatever the consumer does. A consumer that falls too far behind (more than
``max_events`` items or ``max_bytes`` bytes queued) gets its inbox failed with
:class:`~openai_ws.errors.ConsumerTooSlowError`; the queued events are dropped
so memory stays bounded. The bytes are what each item costs in memory, as the
producer estimates it; one item costing more than ``max_bytes`` alone fails the
inbox with :class:`~openai_ws.errors.ProtocolError` (too big, not too slow).
A consumer that asked to be woken only by the terminal item is still woken
once half a bound is queued, so that a long answer never trips a bound while
its consumer sleeps by choice. It knows nothing about sockets, events or lanes.

Lock discipline: ``_cond`` (its lock, ``_held``) guards every attribute below
it. It is held only for deque operations and flag flips, never while calling
out of this module.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Deque, Dict, List, Optional

import attrs

from .._protocol.routing import CloseKind
from ..errors import ConsumerTooSlowError, ProtocolError, RequestTimeoutError

__all__ = ["Failure", "Inbox", "Lost", "Rejected", "Settled", "Settling"]


@attrs.frozen
class Lost:
    """Note to a caller: its socket ended before its request finished."""

    kind: CloseKind
    code: Optional[int]
    reason: str
    error: Optional[BaseException] = None
    """What the transport saw, if anything (the cause to chain errors from)."""
    culprit: bool = False
    """For a protocol-error close: this request is the one that caused it."""


@attrs.frozen
class Rejected:
    """Note to a caller: the server refused the request's lane; send it again."""


@attrs.frozen
class Settling:
    """Note to a caller: ``event`` (a decoded terminal event) ended its response, but
    the request goes on while a steer of it is open (a successor response may follow)."""

    event: Dict[str, Any]


@attrs.frozen
class Settled:
    """Terminal note: a settling request is over. ``event`` is the decoded
    ``response.steer.*`` event that settled it, or ``None`` when the server moved
    on (or the caller stopped waiting) without a word about the steer."""

    event: Optional[Dict[str, Any]] = None


class Failure:
    """A terminal item carrying an exception to raise in the consumer."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __repr__(self) -> str:
        return f"Failure({self.exc!r})"


class Inbox:
    """A bounded single-consumer queue with an explicit terminal item."""

    def __init__(self, *, max_events: int, max_bytes: int, wake_on_terminal: bool = False) -> None:
        self._max_events = max_events
        self._max_bytes = max_bytes
        self.wake_on_terminal = wake_on_terminal
        """Wake the consumer only for the terminal item or a note (a caller that
        wants the whole result, not each event, is woken once)."""
        # ``with self._held`` takes the condition's own lock without the Python-level
        # Condition.__enter__/__exit__ frames (the reader puts every event through it).
        self._held = threading.Lock()
        self._cond = threading.Condition(self._held)
        # Guarded by _cond:
        self._items: Deque[Any] = collections.deque()  # their cost is summed in _bytes
        self._bytes = 0
        self._closed = False  # a terminal item has been queued
        self._waiting = False  # the consumer is blocked in get_all()

    @property
    def closed(self) -> bool:
        """True once the terminal item is queued (it may not be consumed yet)."""
        return self._closed

    def put(
        self,
        item: Any,
        nbytes: int = 0,
        *,
        terminal: bool = False,
        urgent: bool = False,
        defer: bool = False,
    ) -> bool:
        """Queue ``item``; never blocks. Returns False if it was not queued.

        ``urgent`` wakes a ``wake_on_terminal`` consumer for a non-terminal
        item. ``defer`` leaves the wake-up of a non-terminal, non-urgent item to
        a later :meth:`wake` (the producer batches them), until half a bound is
        queued. ``nbytes`` is what the item costs in memory (the reader's
        estimate of the decoded event). An item is refused when the inbox is
        already closed, or when it would exceed a bound; then the inbox is
        failed and its queued items are discarded: with
        :class:`~openai_ws.errors.ProtocolError` when the item alone costs more
        than ``max_bytes`` (terminal or not: the event is too big), else with
        :class:`ConsumerTooSlowError`.
        """
        with self._held:
            if self._closed:
                return False
            if nbytes > self._max_bytes:
                # No consumer could take it, however fast: the event is too big.
                self._fail_with(
                    ProtocolError(
                        f"an event of about {nbytes} bytes in memory (its decoded size, "
                        f"estimated) exceeds max_queue_bytes={self._max_bytes}; the request "
                        "was abandoned (raise max_queue_bytes to accept such events)"
                    )
                )
                return False
            if not terminal and (
                len(self._items) >= self._max_events or self._bytes + nbytes > self._max_bytes
            ):
                queued, size = len(self._items), self._bytes
                self._fail_with(
                    ConsumerTooSlowError(
                        f"the consumer fell behind: {queued} events ({size} bytes) "
                        f"were waiting (limits: {self._max_events} events, "
                        f"{self._max_bytes} bytes); the request was abandoned"
                    )
                )
                return False
            self._items.append(item)
            self._bytes += nbytes
            if terminal:
                self._closed = True
            if self._waiting and (
                terminal
                or urgent
                or not (self.wake_on_terminal or defer)
                or len(self._items) * 2 >= self._max_events
                or self._bytes * 2 >= self._max_bytes
            ):
                # Half a bound queued wakes even a consumer that wants only the end: it
                # is asleep by choice, not slow, and must drain before the bound trips.
                self._cond.notify()
            return True

    def put_events(self, items: List[Any], costs: List[int]) -> bool:
        """Queue non-terminal events, in order, as one ``put(item, cost, defer=True)``
        each would: the reader's hot path, one lock round for a run of events.

        Returns False if the inbox was failed (or already closed) on the way; the
        events before the one that tripped a bound are then dropped with the rest.
        """
        total = sum(costs)
        with self._held:
            queue = self._items
            # Every put would succeed exactly when the whole run fits (the bounds are
            # monotone), so this one check stands for each of theirs.
            if (
                not self._closed
                and len(queue) + len(items) <= self._max_events
                and self._bytes + total <= self._max_bytes
            ):
                queue.extend(items)
                self._bytes += total
                if self._waiting and (
                    len(queue) * 2 >= self._max_events or self._bytes * 2 >= self._max_bytes
                ):
                    self._cond.notify()
                return True
        # A bound trips within the run, or the inbox is closed: put() says where and how.
        return all(self.put(item, cost, defer=True) for item, cost in zip(items, costs))

    def _fail_with(self, exc: BaseException) -> None:
        """Drop what is queued and close the inbox with ``exc`` (``_cond`` held)."""
        self._items.clear()
        self._bytes = 0
        self._items.append(Failure(exc))
        self._closed = True
        self._cond.notify()

    def wake(self) -> None:
        """Wake a waiting consumer if items are queued (ends a deferred batch)."""
        with self._held:
            if self._waiting and self._items and not self.wake_on_terminal:
                self._cond.notify()

    def fail(self, exc: BaseException) -> bool:
        """Queue ``exc`` as the terminal item (after what is already queued)."""
        return self.put(Failure(exc), terminal=True)

    def get_all(self, deadline: Optional[float] = None) -> List[Any]:
        """Return every queued item (at least one), waiting until ``deadline``.

        ``deadline`` is a ``time.monotonic()`` value (``None``: no limit). Raises
        :class:`RequestTimeoutError` when it passes first; the queue is left
        untouched, so nothing is lost by a timeout. Taking a batch costs one lock
        round and at most one wake-up however many events were queued meanwhile.
        """
        with self._held:
            self._wait(deadline)
            items = list(self._items)
            self._items.clear()
            self._bytes = 0
            return items

    def _wait(self, deadline: Optional[float]) -> None:
        """Block until an item is queued (``_cond`` held)."""
        if self._items:
            return
        self._waiting = True
        try:
            while not self._items:
                if deadline is None:
                    self._cond.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RequestTimeoutError("no event arrived before the deadline")
                self._cond.wait(remaining)
        finally:
            self._waiting = False

    def __len__(self) -> int:
        with self._held:
            return len(self._items)
