"""Sending one planned response through a transport, with scripted mid-stream faults.

``run_scenario`` walks the steps of a ``Scenario``: it honours their delays,
numbers events (``sequence_number`` from 0, per response), tags them with the
lane's ``stream_id`` and hands them to a ``Sink`` (a WebSocket, an SSE stream or
nothing for plain JSON). When exactly N events have gone out it fires the
``emulator_*_after`` faults of the request's ``Script``. An optional ``Control``
(steering, ``_steer``) may stop the run at a safe boundary and number its own
events in the same sequence. It must never decide what a response contains
(``_scenario`` does) nor which transport it runs on.
"""

from __future__ import annotations

import asyncio
import enum
import json
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

from ._errors import ApiError, mid_stream_error
from ._scenario import Scenario
from ._script import Script

__all__ = ["Control", "Numbering", "Outcome", "Sink", "dumps", "run_scenario"]

_compact: Callable[[Any], str] = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_quote: Callable[[str], str] = json.encoder.encode_basestring
_TEXT_DELTA = "response.output_text.delta"


def dumps(event: Any) -> str:
    """Compact JSON, the way every frame and SSE ``data:`` line is written.

    ``response.output_text.delta`` events, the bulk of every stream, are built
    by string concatenation (the same bytes ``json`` would produce for the key
    order ``_scenario`` uses) because a generic encode costs several times more
    per event; anything else, or a delta of another shape, goes through ``json``.
    """
    if (
        type(event) is dict
        and event.get("type") == _TEXT_DELTA
        and len(event) in (7, 8)
        and event.get("logprobs") == []
    ):
        stream_id = event.get("stream_id")
        if len(event) == 7 or type(stream_id) is str:
            try:
                text = (
                    '{"type":"response.output_text.delta","item_id":'
                    + _quote(event["item_id"])
                    + ',"output_index":'
                    + str(int(event["output_index"]))
                    + ',"content_index":'
                    + str(int(event["content_index"]))
                    + ',"delta":'
                    + _quote(event["delta"])
                    + ',"logprobs":[],"sequence_number":'
                    + str(int(event["sequence_number"]))
                )
            except (KeyError, TypeError, ValueError):
                return _compact(event)
            if stream_id is not None:
                text += ',"stream_id":' + _quote(stream_id)
            return text + "}"
    return _compact(event)


# Most events handed to a sink at once (and between two yields to the loop).
_BATCH = 64


class Outcome(enum.Enum):
    """How a response run ended."""

    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    FAILED = "failed"
    ERROR = "error"  # a scripted mid-stream error event ended it
    CLOSED = "closed"  # a scripted close ended it
    DISCONNECTED = "disconnected"  # the peer went away while sending
    STOPPED = "stopped"  # the control stopped it at a safe boundary (steering); no terminal sent


class Sink(Protocol):
    """Where the events of one response go."""

    supports_close: bool
    """Whether ``emulator_close_*`` applies (WebSocket only)."""

    async def send_events(self, events: List[Dict[str, Any]]) -> None:
        """Send numbered events in order (``ConnectionError`` when the peer is gone)."""

    async def send_error(self, error: ApiError, sequence_number: int) -> None:
        """Send a mid-stream ``error`` event in the transport's shape."""

    async def send_malformed(self) -> None:
        """Send one frame that is not JSON."""

    async def send_binary(self) -> None:
        """Send one binary frame (no-op where the transport has none)."""

    async def close(self, code: int) -> None:
        """Close the transport with ``code`` and an empty reason (1006: drop TCP)."""


class Numbering(Protocol):
    """The running ``sequence_number`` of one response (the next number to give)."""

    sequence: int


class Control(Protocol):
    """A hook into one run: may stop it at a safe boundary, shares its numbering.

    ``lock`` is held by the runner while it hands events to the sink, so that an
    event the control sends itself (numbered with ``Numbering.sequence`` under the
    same lock) never overtakes numbered events still on their way. ``stop_here``
    is consulted only while ``stop_wanted`` is true (one attribute read per step
    otherwise), before the step's delay and again after it.
    """

    lock: asyncio.Lock
    stop_wanted: bool

    def bind(self, numbering: Numbering) -> None:
        """Called once, before the first event: the sequence the run numbers with."""

    def stop_here(self, index: int, event: Dict[str, Any]) -> bool:
        """Whether to stop before step ``index`` (``event``, not numbered yet)."""


_ORDER = ("malformed", "binary", "unknown", "error", "close")


class _Run:
    """Mutable state of one ``run_scenario`` call: counters and pending faults."""

    def __init__(
        self,
        sink: Sink,
        stream_id: Optional[str],
        script: Script,
        close_active: bool,
        on_fault: Optional[Callable[[str], None]],
        *,
        lock: Optional[asyncio.Lock] = None,
    ) -> None:
        self.sink = sink
        self.lock = lock
        self.stream_id = stream_id
        self.close_code = script.close_code if script.close_code is not None else 1000
        self.on_fault = on_fault
        self.sequence = 0
        self.sent = 0
        wanted: Dict[str, Optional[int]] = {
            "malformed": script.malformed_after,
            "binary": script.binary_after,
            "unknown": script.unknown_after,
            "error": script.error_after,
            "close": script.close_after if close_active and sink.supports_close else None,
        }
        self.triggers: List[Tuple[int, int, str]] = sorted(
            (after, _ORDER.index(kind), kind) for kind, after in wanted.items() if after is not None
        )

    @property
    def next_at(self) -> int:
        """Event count at which the next fault fires (-1: none left)."""
        return self.triggers[0][0] if self.triggers else -1

    def number(self, event: Dict[str, Any]) -> None:
        """Give ``event`` the next sequence number and the lane's stream_id."""
        event["sequence_number"] = self.sequence
        self.sequence += 1
        if self.stream_id is not None:
            event["stream_id"] = self.stream_id

    async def flush(self, batch: List[Dict[str, Any]]) -> None:
        """Send ``batch`` and count it."""
        lock = self.lock
        if lock is None:
            await self.sink.send_events(batch)
        else:
            async with lock:
                await self.sink.send_events(batch)
        self.sent += len(batch)

    async def fire(self) -> Optional[Outcome]:
        """Fire every fault due now; return an outcome when one ended the response."""
        if self.lock is None:
            return await self._fire()
        async with self.lock:
            return await self._fire()

    async def _fire(self) -> Optional[Outcome]:
        sink = self.sink
        while self.triggers and self.triggers[0][0] == self.sent:
            _, _, kind = self.triggers.pop(0)
            if self.on_fault is not None:
                self.on_fault(kind)
            if kind == "malformed":
                await sink.send_malformed()
            elif kind == "binary":
                await sink.send_binary()
            elif kind == "unknown":
                event: Dict[str, Any] = {
                    "type": "response.future_thing",
                    "detail": "an event type this client does not know (scripted)",
                }
                self.number(event)
                await sink.send_events([event])
            elif kind == "error":
                await sink.send_error(mid_stream_error(), self.sequence)
                self.sequence += 1
                return Outcome.ERROR
            else:
                await sink.close(self.close_code)
                return Outcome.CLOSED
        return None


async def run_scenario(
    scenario: Scenario,
    sink: Sink,
    *,
    stream_id: Optional[str],
    script: Script,
    close_active: bool,
    on_fault: Optional[Callable[[str], None]] = None,
    on_terminal: Optional[Callable[[], None]] = None,
    control: Optional[Control] = None,
) -> Tuple[Outcome, int]:
    """Send ``scenario`` through ``sink``; return the outcome and the events sent.

    Consecutive events without a delay are handed to the sink in batches (one
    write for many frames), never across a delay or a due fault. The step dicts
    are consumed (numbered in place): a scenario is sent once. ``close_active``
    says whether this attempt is within ``emulator_close_times``. ``on_terminal``
    runs just before the terminal event is handed to the sink, so that whatever
    it records (store, cache, stats) is visible to a client that saw the event.
    With a ``control`` whose ``stop_here`` says so, the run stops before that step
    (everything numbered so far sent) and returns ``Outcome.STOPPED``: the caller
    ends the response itself.
    """
    lock = None if control is None else control.lock
    run = _Run(sink, stream_id, script, close_active, on_fault, lock=lock)
    if control is not None:
        control.bind(run)
    batch: List[Dict[str, Any]] = []
    last = len(scenario.steps) - 1
    try:
        for index, (delay, event) in enumerate(scenario.steps):
            if batch and (delay > 0 or run.sent + len(batch) == run.next_at):
                await run.flush(batch)
                batch = []
            if run.sent == run.next_at:
                ended = await run.fire()
                if ended is not None:
                    return ended, run.sent
            if delay > 0:
                if control is not None and control.stop_wanted and control.stop_here(index, event):
                    return Outcome.STOPPED, run.sent
                await asyncio.sleep(delay)
            if control is not None and control.stop_wanted and control.stop_here(index, event):
                if batch:
                    await run.flush(batch)
                return Outcome.STOPPED, run.sent
            run.number(event)
            if index == last and on_terminal is not None:
                on_terminal()
            batch.append(event)
            if len(batch) >= _BATCH:
                await run.flush(batch)
                batch = []
                # Let other lanes and connections run between bursts.
                await asyncio.sleep(0)
        if batch:
            await run.flush(batch)
        if run.sent == run.next_at:
            ended = await run.fire()
            if ended is not None:
                return ended, run.sent
    except ConnectionError:
        return Outcome.DISCONNECTED, run.sent
    return Outcome(scenario.status), run.sent
