"""Per-connection lane scheduling: which queued ``response.create`` may start now.

A WebSocket connection multiplexes responses over ``stream_id`` lanes
(docs/protocol.md section 2.2): each lane (the default lane is ``None``) is FIFO and
never runs two responses at once, different lanes run concurrently, at most
``max_active`` responses run per connection (the rest wait, in arrival order)
and at most ``max_names`` distinct named lanes may ever be used. This module is
pure bookkeeping: it must never perform I/O, never create tasks and never look
at request contents beyond the lane name.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Deque, Generic, List, Optional, Set, Tuple, TypeVar

__all__ = ["LaneScheduler", "is_valid_stream_id"]

_STREAM_ID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,256}")

JobT = TypeVar("JobT")


def is_valid_stream_id(value: object) -> bool:
    """True for a string of 1-256 characters from ``[A-Za-z0-9_.-]``."""
    return isinstance(value, str) and _STREAM_ID_RE.fullmatch(value) is not None


class LaneScheduler(Generic[JobT]):
    """Admission and start order of the jobs of one connection.

    Not thread-safe: it lives on the event loop of its connection. Callers
    ``submit`` a job and start every job returned; when a started job ends they
    call ``finish`` with its lane and start every job returned again.
    """

    def __init__(self, *, max_active: int = 16, max_names: int = 32) -> None:
        self._max_active = max(1, max_active)
        self._max_names = max_names
        self._names: Set[str] = set()
        self._busy: Set[Optional[str]] = set()
        self._waiting: Deque[Tuple[Optional[str], JobT]] = deque()

    @property
    def active(self) -> int:
        """Number of lanes running a job (equals running jobs)."""
        return len(self._busy)

    @property
    def queued(self) -> int:
        """Number of accepted jobs that have not started yet."""
        return len(self._waiting)

    @property
    def names(self) -> int:
        """Number of distinct named lanes used so far on this connection."""
        return len(self._names)

    def admit_name(self, stream_id: str) -> bool:
        """Record a lane name; False when it would be one distinct name too many."""
        if stream_id in self._names:
            return True
        if len(self._names) >= self._max_names:
            return False
        self._names.add(stream_id)
        return True

    def submit(self, lane: Optional[str], job: JobT) -> List[JobT]:
        """Queue ``job`` on ``lane``; return the jobs that may start now."""
        self._waiting.append((lane, job))
        return self._pump()

    def finish(self, lane: Optional[str]) -> List[JobT]:
        """Mark the running job of ``lane`` as ended; return the jobs that may start now."""
        self._busy.discard(lane)
        return self._pump()

    def drain(self) -> List[JobT]:
        """Forget every queued job (the connection is closing) and return them."""
        jobs = [job for _, job in self._waiting]
        self._waiting.clear()
        return jobs

    def _pump(self) -> List[JobT]:
        started: List[JobT] = []
        if not self._waiting or len(self._busy) >= self._max_active:
            return started
        keep: Deque[Tuple[Optional[str], JobT]] = deque()
        # Lanes seen waiting in this pass: a later job of the same lane must stay
        # behind an earlier one even if that earlier one could not start.
        blocked: Set[Optional[str]] = set()
        for lane, job in self._waiting:
            if lane in self._busy or lane in blocked or len(self._busy) >= self._max_active:
                blocked.add(lane)
                keep.append((lane, job))
                continue
            self._busy.add(lane)
            started.append(job)
        self._waiting = keep
        return started
