"""A steer in flight: the handle :meth:`EventStream.steer <openai_ws.EventStream.steer>`
returns, resolved by the reader thread as the server answers.

A steer (``response.steer``, docs/protocol.md §2.4 and §3.5) adds input to a
response that is still running, on the socket that runs it. The server answers
``response.steer.accepted`` (it owns the input now), then the steer is
*applied* (a successor response's ``response.created`` carries it), *pending*
(``response.steer.pending``: the response stopped for tool output, and the
input waits for the continuation that brings it) or *failed*
(``response.steer.failed``). When no answer can come any more (the socket
closed, the response ended with an error, the server moved on) it fails with
:class:`~openai_ws.errors.SteerLostError`: a steer is never sent twice.

This module must never do I/O or know about sockets: the engine calls the
``_``-methods below (from the reader thread, or a caller's thread that gave up
waiting), and users call :meth:`Steer.result`.
"""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Type

from ..errors import SteerError, SteerLostError, SteerTimeoutError, steer_error_from_payload

if TYPE_CHECKING:
    from .._protocol.routing import Route, SteerRecord
    from .request import RequestState

__all__ = ["Steer", "SteerBook", "check_steer_input"]


class Steer:
    """One steer sent for a running response; :meth:`result` waits for its outcome.

    ``status`` is ``"sent"``, ``"accepted"`` (the server owns the input), then
    ``"applied"`` (a successor response carries it: ``successor_id``),
    ``"pending"`` (the response waits for tool output first: fill
    ``required_input`` and continue ``response_id`` on the same session; the
    server prepends the steering input) or ``"failed"`` (``error``).
    ``steer_id`` is the server's id of the steer, ``input`` what was sent and
    ``response_id`` the response it steers. Safe to read from any thread.
    """

    def __init__(self, input: Any, response_id: str) -> None:
        self.input = input
        self.response_id = response_id
        self.status = "sent"
        self.steer_id: Optional[str] = None
        self.successor_id: Optional[str] = None
        self.required_input: List[Dict[str, Any]] = []
        self.error: Optional[SteerError] = None
        self._done = threading.Event()

    def __repr__(self) -> str:
        return (
            f"<openai_ws.Steer {self.status} response_id={self.response_id!r} "
            f"steer_id={self.steer_id!r}>"
        )

    def done(self) -> bool:
        """True once the steer is applied, pending or failed."""
        return self._done.is_set()

    def result(self, timeout: Optional[float] = None) -> str:
        """Wait for the outcome; return ``"applied"`` or ``"pending"``.

        Raises the :class:`~openai_ws.errors.SteerError` the steer failed with
        (a :class:`~openai_ws.errors.SteerFailedError` subclass per server code,
        or :class:`~openai_ws.errors.SteerLostError`), or
        :class:`~openai_ws.errors.SteerTimeoutError` when ``timeout`` seconds
        pass first (the steer may still be applied later).
        """
        if not self._done.wait(timeout):
            raise SteerTimeoutError(
                f"no outcome for the steer of {self.response_id} within {timeout}s "
                f"(status: {self.status})",
                input=self.input,
                steer_id=self.steer_id,
                response_id=self.response_id,
            )
        if self.error is not None:
            raise self.error
        return self.status

    # -- the engine's side ------------------------------------------------------

    def _accepted(self, steer_id: Optional[str]) -> None:
        if self.status == "sent":
            self.status = "accepted"
        if steer_id:
            self.steer_id = steer_id

    def _applied(self, successor_id: Optional[str]) -> None:
        self.successor_id = successor_id
        self._finish("applied")

    def _pending(self, steer_id: Optional[str], required_input: List[Dict[str, Any]]) -> None:
        if steer_id:
            self.steer_id = steer_id
        self.required_input = required_input
        self._finish("pending")

    def _failed(self, error: SteerError) -> None:
        if self._done.is_set():
            return
        if error.steer_id:
            self.steer_id = error.steer_id
        self.error = error
        self._finish("failed")

    def _finish(self, status: str) -> None:
        if self._done.is_set():
            return
        self.status = status
        self._done.set()


class SteerBook:
    """The session's steers whose outcome the server still owes, by key.

    Not thread-safe by itself: the engine calls it under its lock.
    """

    def __init__(self) -> None:
        self._open: Dict[int, Steer] = {}
        self._keys = itertools.count(1)

    def next_key(self) -> int:
        return next(self._keys)

    def add(self, record: SteerRecord, input: Any) -> Steer:
        """The handle of a steer about to be sent (``record`` is the core's)."""
        handle = Steer(input, record.response_id)
        self._open[record.key] = handle
        return handle

    def __len__(self) -> int:
        return len(self._open)

    def news(self, route: Route, event: Dict[str, Any], request: Optional[RequestState]) -> None:
        """Tell the handles what ``event`` (just routed as ``route``) meant for them."""
        record = route.steer
        if record is not None:
            handle = self._open.get(record.key)
            if handle is not None:
                self._answer(handle, record, event, request)
        for applied in route.applied:
            handle = self._open.pop(applied.key, None)
            if handle is not None:
                handle._applied(route.pending.response_id)
                if request is not None:
                    request.steer_inputs.append((route.pending.response_id, handle.input))
        if route.terminal and route.pending.steers:
            self.lose(route.pending.steers, "the response ended with an error")

    def _answer(
        self,
        handle: Steer,
        record: SteerRecord,
        event: Dict[str, Any],
        request: Optional[RequestState],
    ) -> None:
        steer = event.get("steer")
        steer = steer if isinstance(steer, dict) else {}
        steer_id = steer.get("id") if isinstance(steer.get("id"), str) else None
        if record.status == "accepted":
            handle._accepted(steer_id)
            if request is not None:
                request.steered = True
            return
        del self._open[record.key]
        if record.status == "pending":
            required = event.get("required_input")
            items = required if isinstance(required, list) else []
            handle._pending(steer_id, [item for item in items if isinstance(item, dict)])
            return
        error = event.get("error")
        handle._failed(
            steer_error_from_payload(
                error if isinstance(error, dict) else {},
                input=steer.get("input", handle.input),
                steer_id=steer_id,
                response_id=record.response_id,
            )
        )

    def lose(self, records: List[SteerRecord], why: str) -> None:
        """Fail the handles of ``records`` still open: no answer can come any more."""
        self._fail(
            records, SteerLostError, f"{why}; the steer was not applied and is not sent again"
        )

    def time_out(self, records: List[SteerRecord]) -> None:
        """Fail the handles of ``records`` still open: the answer was not waited for."""
        self._fail(
            records,
            SteerTimeoutError,
            "the server did not say what became of the steer after its response ended; "
            "the request ended with that response",
        )

    def _fail(self, records: List[SteerRecord], cls: Type[SteerError], message: str) -> None:
        for record in records:
            handle = self._open.pop(record.key, None)
            if handle is not None:
                handle._failed(
                    cls(
                        message,
                        input=handle.input,
                        steer_id=record.steer_id,
                        response_id=record.response_id,
                    )
                )


def check_steer_input(input: Any) -> None:
    """Refuse, before anything is sent, a steering input of the wrong shape.

    The wire allows a non-empty string or a non-empty list of input items
    (user messages; the server judges their content and answers
    ``invalid_input`` itself).
    """
    if isinstance(input, str):
        if not input:
            raise ValueError("steering input must not be empty")
        return
    if isinstance(input, (list, tuple)):
        if not input:
            raise ValueError("steering input must not be an empty list")
        if not all(isinstance(item, dict) for item in input):
            raise TypeError("steering input items must be dicts (input items such as messages)")
        return
    raise TypeError(f"steering input must be a str or a list of items, not {type(input).__name__}")
