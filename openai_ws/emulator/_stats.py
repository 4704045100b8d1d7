"""Thread-safe counters of what the emulator has seen and sent (``Emulator.stats``).

The event loop thread increments; any thread may read. Increments happen per
connection, request or response, never per delta event, so the lock is cheap.
This module must never perform I/O or hold references to connections.
"""

from __future__ import annotations

import threading
from typing import Dict

__all__ = ["COUNTER_NAMES", "EmulatorStats"]

COUNTER_NAMES = (
    "ws_connections",
    "ws_rejected",
    "ws_messages",
    "ws_creates",
    "http_requests",
    "http_creates",
    "auth_failures",
    "responses_started",
    "responses_completed",
    "responses_incomplete",
    "responses_failed",
    "responses_interrupted",
    "events_sent",
    "errors_sent",
    "faults_injected",
    "cache_hits",
    "store_hits",
)


class EmulatorStats:
    """Counters; read them as attributes, or all at once with ``snapshot()``.

    ``ws_connections``: accepted upgrades. ``ws_rejected``: upgrades refused (401,
    ``upgrade_status``). ``ws_messages``: inbound text/binary frames.
    ``ws_creates``/``http_creates``: ``response.create`` received per transport.
    ``http_requests``: every HTTP request. ``auth_failures``: 401 answers.
    ``responses_started``: responses that sent ``response.created``.
    ``responses_completed|incomplete|failed``: terminal events sent.
    ``responses_interrupted``: responses cut short by a close, a drop or a
    mid-stream ``error``. ``events_sent``: response events sent (WS and SSE).
    ``errors_sent``: ``error`` events plus HTTP error statuses.
    ``faults_injected``: scripted faults that fired. ``cache_hits``/``store_hits``:
    parents found in a connection cache / loaded from the store.
    ``closes_sent``: close codes the server initiated, ``{code: count}`` (1006
    counts abrupt drops).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        self._closes: Dict[int, int] = {}

    def incr(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to counter ``name``."""
        with self._lock:
            self._counts[name] += amount

    def record_close(self, code: int) -> None:
        """Count one server-initiated close with ``code``."""
        with self._lock:
            self._closes[code] = self._closes.get(code, 0) + 1

    def get(self, name: str) -> int:
        """Current value of counter ``name``."""
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> Dict[str, object]:
        """Every counter plus ``closes_sent``, copied under the lock."""
        with self._lock:
            data: Dict[str, object] = dict(self._counts)
            data["closes_sent"] = dict(self._closes)
        return data

    def reset(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            for name in self._counts:
                self._counts[name] = 0
            self._closes.clear()

    @property
    def closes_sent(self) -> Dict[int, int]:
        """Server-initiated closes by code (a copy)."""
        with self._lock:
            return dict(self._closes)

    @property
    def ws_connections(self) -> int:
        """Accepted WebSocket upgrades."""
        return self.get("ws_connections")

    @property
    def ws_rejected(self) -> int:
        """Refused WebSocket upgrades (401 or ``upgrade_status``)."""
        return self.get("ws_rejected")

    @property
    def ws_messages(self) -> int:
        """Inbound WebSocket data frames."""
        return self.get("ws_messages")

    @property
    def ws_creates(self) -> int:
        """``response.create`` events received over WebSocket."""
        return self.get("ws_creates")

    @property
    def http_requests(self) -> int:
        """HTTP requests of any kind (upgrades excluded)."""
        return self.get("http_requests")

    @property
    def http_creates(self) -> int:
        """``POST /v1/responses`` requests."""
        return self.get("http_creates")

    @property
    def auth_failures(self) -> int:
        """401 answers (HTTP and upgrade)."""
        return self.get("auth_failures")

    @property
    def responses_started(self) -> int:
        """Responses that sent ``response.created``."""
        return self.get("responses_started")

    @property
    def responses_completed(self) -> int:
        """``response.completed`` terminals sent."""
        return self.get("responses_completed")

    @property
    def responses_incomplete(self) -> int:
        """``response.incomplete`` terminals sent."""
        return self.get("responses_incomplete")

    @property
    def responses_failed(self) -> int:
        """``response.failed`` terminals sent."""
        return self.get("responses_failed")

    @property
    def responses_interrupted(self) -> int:
        """Responses cut short by a close, a drop or a mid-stream error."""
        return self.get("responses_interrupted")

    @property
    def events_sent(self) -> int:
        """Response events sent over WebSocket and SSE."""
        return self.get("events_sent")

    @property
    def errors_sent(self) -> int:
        """WebSocket/SSE ``error`` events plus HTTP error answers."""
        return self.get("errors_sent")

    @property
    def faults_injected(self) -> int:
        """Scripted faults that fired."""
        return self.get("faults_injected")

    @property
    def cache_hits(self) -> int:
        """Parents found in a connection cache."""
        return self.get("cache_hits")

    @property
    def store_hits(self) -> int:
        """Parents loaded from the store."""
        return self.get("store_hits")
