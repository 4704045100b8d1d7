"""When a request goes over HTTP instead of the socket.

Two things send a request over HTTP. For the whole session, for a while: the
server refused the WebSocket upgrade in a way that says it does not speak
WebSocket there (403, 404, 405, 426, ...: the HTTP answer to the request then
decides), or every connect attempt failed, and an HTTP transport is available.
After a cooldown (``fallback_cooldown`` seconds, doubling after each failed try
up to ``fallback_cooldown_max``) one request tries the socket again, with a
single connect attempt: a server that was down at start-up and came back is
used over WebSocket again. For one request shape: a request with non-integer numbers in some
top-level fields (for example ``temperature=0.7``) once made the server close
the socket silently with code 1000 (a known server bug); later requests with
decimals in the same fields, or a superset of them, go straight to HTTP. The
caller's request is never edited.

This module decides and remembers; it does no I/O and never sends anything.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from typing import Any, FrozenSet, Mapping, Optional, Tuple

from .._protocol.retry import Cooldown

__all__ = ["ConnectVerdict", "FallbackPolicy", "connect_verdict", "decimal_shape"]

log = logging.getLogger(__name__)


class ConnectVerdict(enum.Enum):
    """What to do after a failed connect attempt."""

    RAISE = "raise"
    """Tell the caller: retrying or HTTP cannot help (bad key, bad certificate...)."""
    HTTP = "http"
    """Use HTTP for the rest of the session: the server does not speak WebSocket here."""
    RETRY = "retry"
    """Try the socket again after a backoff."""


def connect_verdict(status: Optional[int], *, retryable: bool, has_http: bool) -> ConnectVerdict:
    """Classify a failed connect by the upgrade's HTTP ``status`` (``None``: no answer).

    A 401 is a bad key: HTTP would refuse it too. Other 4xx but 408 and 429
    (403, 404, 405, 426, 400, ...) may come from a gateway that serves the API
    over HTTP but not WebSocket: the request goes over HTTP, whose own answer
    (an answer, or the same refusal as a typed error) decides.
    """
    if not retryable or status == 401:
        return ConnectVerdict.RAISE
    if status is not None and status < 500 and status not in (408, 429):
        return ConnectVerdict.HTTP if has_http else ConnectVerdict.RAISE
    return ConnectVerdict.RETRY


def decimal_shape(body: Mapping[str, Any]) -> Tuple[str, ...]:
    """The top-level fields holding numbers written with a fraction (what trips the 1000 close).

    Every ``float`` counts, ``1.0`` too: reports say a JSON ``1.0`` may trip the
    close as well as ``0.7``, and only the integer ``1`` is safe. A shape is
    remembered only after a silent close, so counting more fields costs at most
    an HTTP request that the socket would have carried.
    """
    return tuple(sorted(key for key, value in body.items() if isinstance(value, float)))


class FallbackPolicy:
    """What this session learned about when to use HTTP.

    Thread-safe: ``_lock`` guards the writes. ``_session_reason`` and ``_shapes``
    are replaced, never mutated, and the cooldown's ``retry_at`` is one float, so
    readers need no lock.
    """

    def __init__(self, *, cooldown: float = 30.0, cooldown_max: float = 600.0) -> None:
        self._lock = threading.Lock()
        self._session_reason: Optional[str] = None
        self._shapes: FrozenSet[Tuple[str, ...]] = frozenset()
        self._wait = Cooldown(cooldown, cooldown_max)  # before the socket is tried again

    def forked(self) -> None:
        """In a forked child: a new lock (a parent thread may have held the old one)."""
        self._lock = threading.Lock()

    @property
    def session_reason(self) -> Optional[str]:
        """Why the session uses HTTP for now, or ``None`` while it uses the socket."""
        return self._session_reason

    def use_http_for_session(self, reason: str, *, now: float) -> None:
        """Send later requests over HTTP, until the cooldown from ``now`` has passed."""
        with self._lock:
            first = self._session_reason is None
            self._session_reason = reason
            wait = self._wait.failed(now)
        if first:
            log.warning("using HTTP for this session: %s; trying the WebSocket again in %.0fs",
                        reason, wait)
        else:
            log.info("the WebSocket is still unusable (%s); next try in %.0fs", reason, wait)

    def probe_due(self, now: float) -> bool:
        """True when the session uses HTTP but may try the socket again now."""
        return self._session_reason is not None and self._wait.over(now)

    def socket_recovered(self) -> None:
        """A socket opened again: the session is back on the WebSocket."""
        with self._lock:
            if self._session_reason is None:
                return
            self._session_reason = None
            self._wait.succeeded()
        log.warning("the WebSocket works again; the session uses it from now on")

    def reason(self, body: Mapping[str, Any], *, now: Optional[float] = None) -> Optional[str]:
        """Why ``body`` must go over HTTP, or ``None`` to use the socket.

        ``now`` is a ``time.monotonic()`` value (read here when not given).
        """
        if now is None:
            now = time.monotonic()
        if self._session_reason is not None and not self._wait.over(now):
            return self._session_reason
        shape = set(decimal_shape(body))
        for poisoned in self._shapes:
            if shape.issuperset(poisoned):
                return f"a request with decimal {', '.join(poisoned)} closed the socket before"
        return None

    def remember_silent_close(self, body: Mapping[str, Any]) -> None:
        """Send requests shaped like ``body`` over HTTP from now on."""
        shape = decimal_shape(body)
        if shape:
            with self._lock:
                self._shapes = self._shapes | {shape}
            log.info("requests with decimal %s will use HTTP for this session", ", ".join(shape))
