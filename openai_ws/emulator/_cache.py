"""The connection-local continuation cache: the latest response of each lane.

docs/protocol.md section 5: each WebSocket connection keeps, per lane, the most
recent successful response; a ``previous_response_id`` that is the latest of
any lane on this connection is a fast cache hit. A same-lane continuation that
fails evicts its parent; a failed cross-lane fork does not. The cache dies with
its connection. Each entry also keeps the response's context hash (``_context``)
for the proof-of-context digest. This module is pure bookkeeping on the event loop: it must never
perform I/O and never consult the server-wide store.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ._context import EMPTY_CONTEXT, Context

__all__ = ["ConnectionCache"]


class ConnectionCache:
    """Latest response per lane (``None`` is the default lane) of one connection."""

    def __init__(self) -> None:
        self._latest: Dict[Optional[str], Dict[str, Any]] = {}
        self._contexts: Dict[Optional[str], Context] = {}

    def __len__(self) -> int:
        return len(self._latest)

    def latest_id(self, lane: Optional[str]) -> Optional[str]:
        """Id of the latest response cached for ``lane``, if any."""
        response = self._latest.get(lane)
        return None if response is None else str(response["id"])

    def find(self, response_id: str) -> Optional[Tuple[Optional[str], Dict[str, Any]]]:
        """``(lane, response)`` when ``response_id`` is the latest of some lane."""
        for lane, response in self._latest.items():
            if response["id"] == response_id:
                return lane, response
        return None

    def remember(
        self, lane: Optional[str], response: Dict[str, Any], context: Context = EMPTY_CONTEXT
    ) -> None:
        """Make ``response`` (whose whole context is ``context``) the latest of ``lane``."""
        self._latest[lane] = response
        self._contexts[lane] = context

    def context_of(self, response_id: str) -> Optional[Context]:
        """The context of ``response_id`` when it is the latest of some lane."""
        for lane, response in self._latest.items():
            if response["id"] == response_id:
                return self._contexts.get(lane, EMPTY_CONTEXT)
        return None

    def evict(self, lane: Optional[str], response_id: str) -> bool:
        """Drop ``response_id`` if it is the latest of ``lane``; True when dropped."""
        response = self._latest.get(lane)
        if response is not None and response["id"] == response_id:
            del self._latest[lane]
            self._contexts.pop(lane, None)
            return True
        return False

    def clear(self) -> None:
        """Forget everything (the connection closed)."""
        self._latest.clear()
        self._contexts.clear()
