"""Server-wide state shared by every connection and request of one emulator.

Holds the API key check, the live ``EmulatorConfig``, the counters, the store
of ``store: true`` responses (which outlives connections and restarts until the
``Emulator`` object goes away) and the attempt counter behind
``emulator_*_times``. The store is guarded by a lock because other threads read
it through ``Emulator.stored``; everything else is touched only on the event
loop. This module must never perform network I/O and never hold sockets.
"""

from __future__ import annotations

import asyncio
import copy
import hmac
import json
import threading
from typing import Any, Dict, Mapping, Optional, Set

from ._config import EmulatorConfig
from ._errors import ApiError, incorrect_api_key, missing_api_key
from ._stats import EmulatorStats

__all__ = ["ATTEMPT_IGNORED_KEYS", "ServerState"]

ATTEMPT_IGNORED_KEYS = frozenset({"stream_id", "stream", "stream_options", "type"})
"""Body keys that do not make two attempts of a request different."""


class ServerState:
    """State of one emulator; created once per ``Emulator`` and kept across restarts."""

    def __init__(self, *, api_key: str, config: EmulatorConfig) -> None:
        self._api_key = api_key
        self.config = config
        self.stats = EmulatorStats()
        self._store_lock = threading.Lock()
        self._store: Dict[str, Dict[str, Any]] = {}
        self._attempts: Dict[str, int] = {}
        # Live objects, loop thread only: open WebSocket connections and running
        # handler tasks, so that stop() can close and cancel them.
        self.connections: Set[Any] = set()
        self.handler_tasks: Set[asyncio.Task[Any]] = set()

    # -- authentication ---------------------------------------------------------

    def check_auth(self, authorization: Optional[str]) -> Optional[ApiError]:
        """None when ``authorization`` carries the right bearer token (or auth is off)."""
        if not self.config.require_auth:
            return None
        if not authorization:
            return missing_api_key()
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return missing_api_key()
        if not hmac.compare_digest(token.encode(), self._api_key.encode()):
            return incorrect_api_key(token)
        return None

    # -- store ------------------------------------------------------------------

    def store_put(self, response: Dict[str, Any]) -> None:
        """Keep ``response`` (replacing an older snapshot). Never mutated afterwards."""
        with self._store_lock:
            self._store[str(response["id"])] = response

    def store_get(self, response_id: str) -> Optional[Dict[str, Any]]:
        """The stored object itself (callers must not mutate it), or None."""
        with self._store_lock:
            return self._store.get(response_id)

    def store_copy(self, response_id: str) -> Optional[Dict[str, Any]]:
        """A deep copy of a stored response, safe to hand to another thread."""
        with self._store_lock:
            found = self._store.get(response_id)
            return None if found is None else copy.deepcopy(found)

    def store_delete(self, response_id: str) -> bool:
        """Remove a stored response; False when unknown."""
        with self._store_lock:
            return self._store.pop(response_id, None) is not None

    # -- attempts ---------------------------------------------------------------

    def next_attempt(self, body: Mapping[str, Any]) -> int:
        """Count one more attempt of ``body`` and return its 1-based number.

        Attempts are identified by the body without ``ATTEMPT_IGNORED_KEYS``, so a
        WebSocket attempt and its HTTP replay count as the same request.
        """
        key = json.dumps(
            {k: v for k, v in body.items() if k not in ATTEMPT_IGNORED_KEYS},
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        count = self._attempts.get(key, 0) + 1
        self._attempts[key] = count
        return count

    def reset_attempts(self) -> None:
        """Forget every attempt count."""
        self._attempts.clear()
