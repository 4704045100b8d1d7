"""Which of a session's sockets a request goes to, and which sockets to retire.

Pure decisions over the pooled :class:`~openai_ws._session.connection.Connection`
objects (their cores and request books), made under the engine's lock: the
engine opens, retires and closes the sockets itself. This module must never do
I/O, read a clock (``now`` is an argument) or take a lock.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from .._protocol.retry import Cooldown
from .connection import Connection
from .request import RequestState

__all__ = ["ExtraSockets", "choose", "to_retire"]


def choose(
    pool: List[Connection], request: Optional[RequestState], max_sockets: int
) -> Optional[Connection]:
    """The pooled socket ``request`` goes to, or ``None`` to open another.

    A continuation goes to the socket that produced its parent (its cache
    holds it; a conversation stays on its socket so). Any other request goes to
    the least busy socket that starts it at once (a free active slot, and a
    lane: :meth:`ConnectionCore.has_room
    <openai_ws._protocol.routing.ConnectionCore.has_room>`); when none does, a
    new socket is opened while there are fewer than ``max_sockets``, else the
    least busy one takes it (the server queues it).
    """
    if not pool:
        return None
    if request is not None:
        context = request.context
        parent = context.parent_id if context is not None else None
        parent = parent or request.body.get("previous_response_id")
        if parent:
            for conn in pool:
                if conn.core.produced(parent) or conn.core.caches(parent):
                    return conn
    best = pool[0]
    if len(pool) > 1:
        best = min(pool, key=lambda conn: len(conn.requests))
    if best.core.has_room():
        return best
    room = [conn for conn in pool if conn.core.has_room()]
    if room:
        return min(room, key=lambda conn: len(conn.requests))
    return best if len(pool) >= max_sockets else None


def to_retire(
    pool: List[Connection],
    last_busy: Dict[int, float],
    now: float,
    *,
    max_age: float,
    idle_timeout: float,
) -> List[Tuple[Connection, str]]:
    """Pooled sockets to retire now, each with why: older than ``max_age``, or an
    extra one (any but the oldest) with nothing in flight since ``idle_timeout``
    seconds (``last_busy``: ``id(conn)`` -> when it last had a request)."""
    retire: List[Tuple[Connection, str]] = []
    for number, conn in enumerate(pool):
        if now - conn.opened_at >= max_age:
            retire.append((conn, f"rotating a connection older than {max_age:.0f}s"))
        elif (
            number > 0
            and not conn.requests
            and now - last_busy.get(id(conn), now) >= idle_timeout
        ):
            retire.append((conn, f"closing an extra socket idle for {idle_timeout:.0f}s"))
    return retire


class ExtraSockets:
    """Whether a session may open one more socket now, beside those it has.

    One extra socket opens at a time (``opening``); requests that find every
    socket full meanwhile wait for it rather than each opening its own. One
    that fails to open is not tried again for ``cooldown`` seconds, doubled
    for each failure in a row up to ``cooldown_max`` (a :class:`~.retry.Cooldown`):
    the requests queue on the open sockets meanwhile (the server runs them as
    slots free up). Guarded by the engine's lock.
    """

    __slots__ = ("_wait", "opening")

    def __init__(self, *, cooldown: float, cooldown_max: float) -> None:
        self.opening = False
        self._wait = Cooldown(cooldown, cooldown_max)

    def allowed(self, now: float) -> bool:
        """Whether an extra socket may be opened at ``now`` (no cooldown running)."""
        return self._wait.over(now)

    def failed(self, now: float) -> float:
        """An extra socket failed to open at ``now``: start (and return) the cooldown."""
        return self._wait.failed(now)

    def opened(self) -> None:
        """An extra socket opened: the next failure starts from ``cooldown`` again."""
        self._wait.succeeded()
