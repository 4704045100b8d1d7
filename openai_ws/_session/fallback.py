"""When a request goes over HTTP instead of the socket.

Two things send a request over HTTP. For the whole session: the server refused
the WebSocket upgrade in a way that says it does not speak WebSocket there
(426, 404, 405, ...), or every connect attempt failed, and an HTTP transport is
available. For one request shape: a request with non-integer numbers in some
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
from typing import Any, FrozenSet, Mapping, Optional, Tuple

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
    """Classify a failed connect by the upgrade's HTTP ``status`` (``None``: no answer)."""
    if not retryable or status in (401, 403):
        return ConnectVerdict.RAISE
    if status is not None and status < 500 and status not in (408, 429):
        # The server (or a proxy) does not speak WebSocket here: 426, 404,
        # 405, 400... Plain HTTP may still work.
        return ConnectVerdict.HTTP if has_http else ConnectVerdict.RAISE
    return ConnectVerdict.RETRY


def decimal_shape(body: Mapping[str, Any]) -> Tuple[str, ...]:
    """The top-level fields holding non-integer numbers (what trips the 1000 close)."""
    return tuple(
        sorted(
            key
            for key, value in body.items()
            if isinstance(value, float) and not value.is_integer()
        )
    )


class FallbackPolicy:
    """What this session learned about when to use HTTP.

    Thread-safe: ``_lock`` guards the writes; both attributes are replaced,
    never mutated, so readers need no lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session_reason: Optional[str] = None
        self._shapes: FrozenSet[Tuple[str, ...]] = frozenset()

    @property
    def session_reason(self) -> Optional[str]:
        """Why the whole session uses HTTP, or ``None`` while it uses the socket."""
        return self._session_reason

    def use_http_for_session(self, reason: str) -> None:
        """Send every later request over HTTP (logged once)."""
        with self._lock:
            if self._session_reason is not None:
                return
            self._session_reason = reason
        log.warning("using HTTP for the rest of this session: %s", reason)

    def reason(self, body: Mapping[str, Any]) -> Optional[str]:
        """Why ``body`` must go over HTTP, or ``None`` to use the socket."""
        if self._session_reason is not None:
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
