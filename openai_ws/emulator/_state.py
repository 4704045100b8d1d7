"""Server-wide state shared by every connection and request of one emulator.

Holds the API key check, the live ``EmulatorConfig``, the counters, the store
of ``store: true`` responses (which outlives connections and restarts until the
``Emulator`` object goes away) with, per stored response, its input items and
its context hash (``_context``), and the attempt counter behind
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
from typing import Any, Dict, List, Mapping, Optional, Set

from ._config import EmulatorConfig
from ._context import Context
from ._errors import ApiError, incorrect_api_key, missing_api_key
from ._stats import EmulatorStats

__all__ = ["ATTEMPT_IGNORED_KEYS", "ServerState"]

ATTEMPT_IGNORED_KEYS = frozenset({"stream_id", "stream", "stream_options", "type"})
"""Body keys that do not make two attempts of a request different."""

_CONTEXT_IGNORED_KEYS = ATTEMPT_IGNORED_KEYS | {"input", "previous_response_id"}


class ServerState:
    """State of one emulator; created once per ``Emulator`` and kept across restarts."""

    def __init__(self, *, api_key: str, config: EmulatorConfig) -> None:
        self._api_key = api_key
        self.config = config
        self.stats = EmulatorStats()
        self._store_lock = threading.Lock()
        self._store: Dict[str, Dict[str, Any]] = {}
        self._inputs: Dict[str, List[Dict[str, Any]]] = {}
        self._contexts: Dict[str, Context] = {}
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
        """Remove a stored response (with its input items and context); False when unknown."""
        with self._store_lock:
            self._inputs.pop(response_id, None)
            self._contexts.pop(response_id, None)
            return self._store.pop(response_id, None) is not None

    def store_inputs(self, response_id: str, items: List[Dict[str, Any]]) -> None:
        """Keep the input items (ids assigned) of a stored response; never mutated afterwards."""
        with self._store_lock:
            self._inputs[response_id] = items

    def stored_inputs(self, response_id: str) -> List[Dict[str, Any]]:
        """The input items of a stored response (callers must not mutate them)."""
        with self._store_lock:
            return self._inputs.get(response_id, [])

    def store_context(self, response_id: str, context: Context) -> None:
        """Keep the context hash of a stored response (everything up to its output)."""
        with self._store_lock:
            self._contexts[response_id] = context

    def stored_context(self, response_id: str) -> Optional[Context]:
        """The context hash of a stored response, if known."""
        with self._store_lock:
            return self._contexts.get(response_id)

    # -- attempts ---------------------------------------------------------------

    def next_attempt(self, body: Mapping[str, Any], context: Optional[Context] = None) -> int:
        """Count one more attempt of ``body`` and return its 1-based number.

        Attempts are identified by the body without ``ATTEMPT_IGNORED_KEYS``, so a
        WebSocket attempt and its HTTP replay count as the same request. With the
        request's whole ``context`` (parent chain + input) given, ``input`` and
        ``previous_response_id`` are replaced by it: a continuation sent as
        ``previous_response_id`` + new items and its resend with the whole
        history as ``input`` are attempts of the same request.
        """
        ignored = ATTEMPT_IGNORED_KEYS if context is None else _CONTEXT_IGNORED_KEYS
        keyed: Dict[str, Any] = {k: v for k, v in body.items() if k not in ignored}
        if context is not None:
            keyed["(context)"] = f"{context.count}:{context.state.hex()}"
        key = json.dumps(keyed, sort_keys=True, separators=(",", ":"), default=str)
        count = self._attempts.get(key, 0) + 1
        self._attempts[key] = count
        return count

    def reset_attempts(self) -> None:
        """Forget every attempt count."""
        self._attempts.clear()
