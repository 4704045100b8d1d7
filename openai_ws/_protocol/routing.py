"""The sans-IO core of one WebSocket connection: lanes and routing.

Given the requests a session has put on one socket, in the order their frames
left, this module decides which ``stream_id`` lane a new request goes to, which
request an incoming event belongs to, which events are terminal, and how a close
is classified. It is plain state and pure decisions.

It must never do I/O, start threads, read clocks, take locks or log: the session
calls it under its own lock, and the tests drive it with hand-made events.

Routing rules (see docs/architecture.md, "Lanes"):

* A tagged event (``stream_id`` set) belongs to the oldest unfinished request of
  that lane: the server runs a lane FIFO, one response at a time. It also
  proves that this server honours lanes.
* An untagged event belongs to the oldest unfinished request of the default
  lane while the server is known to honour lanes. Until then, it belongs to
  the oldest unfinished request of the whole socket (what both kinds of server
  agree on); if that request is tagged, the server (or a proxy) is ignoring
  ``stream_id``: it runs every request, tagged or not, on one FIFO in the
  order the frames were sent, and so does the routing from then on. A session
  carries that knowledge to its next sockets (``lanes_ignored=True``).
* A ``response.steer.*`` event belongs to the request whose response it names
  (``steer.previous_response_id``), wherever it arrives: a steer's answer may
  come after its response's terminal event. A request with a steer still
  unanswered (or accepted and not yet carried by a successor) does not end
  at its response's terminal event: the server may follow it with a
  successor response (``response.created`` whose ``previous_response_id`` is
  that response) that carries the steer, or answer the steer
  (``response.steer.pending`` / ``.failed``); either settles it. Any other
  event on its lane means the server moved on: the request ends there, and the
  event is routed as if it had already ended.
* An untagged ``error`` naming ``stream_id`` means the server rejects lanes. It
  belongs to the oldest tagged request that has not started (the server answers
  creates in order); that request never ran and is handed back for a replay on
  the default lane. Later requests, even those whose caller chose a
  ``stream_id``, go on the default lane.
"""

from __future__ import annotations

import enum
import itertools
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import attrs

from ..events import RESPONSE_EVENT_TYPES, TERMINAL_EVENT_TYPES

STEER_EVENT_TYPES = frozenset(
    {"response.steer.accepted", "response.steer.pending", "response.steer.failed"}
)
"""The server's answers to a ``response.steer`` (WebSocket only)."""

_NOT_PLAIN = RESPONSE_EVENT_TYPES | TERMINAL_EVENT_TYPES | STEER_EVENT_TYPES
"""Event types that only :meth:`ConnectionCore.route` handles (lifecycle, end, steer)."""

__all__ = [
    "CONNECTION_LIMIT",
    "MAX_ACTIVE_RESPONSES",
    "MAX_LANE_NAMES",
    "PROTOCOL_CLOSES",
    "STEER_EVENT_TYPES",
    "CloseKind",
    "ConnectionCore",
    "Pending",
    "Route",
    "SteerRecord",
    "classify_close",
    "error_code",
    "is_connection_limit",
    "is_lane_rejection",
]

_PRODUCED_KEPT = 4096  # response ids a core remembers having answered (see produced())

MAX_LANE_NAMES = 32
"""Distinct named lanes the service allows per socket."""

MAX_ACTIVE_RESPONSES = 16
"""Responses the service runs at once per socket; more are queued server-side."""

CONNECTION_LIMIT = "websocket_connection_limit_reached"
"""``error.code`` of the service's "this socket is too old" error (docs/protocol.md §8)."""


class CloseKind(enum.Enum):
    """Why a connection ended, as far as the requests on it are concerned."""

    OURS = "ours"
    """We closed it (``close()``, rotation): nothing to recover."""
    SILENT = "silent"
    """The server sent close code 1000 with no ``error`` event for the request."""
    ABNORMAL = "abnormal"
    """A close that may not happen again: 1001, 1006, 1011-1014, no close frame, EOF."""
    PROTOCOL = "protocol"
    """A close that will happen again if the same frame is sent: see :data:`PROTOCOL_CLOSES`."""


PROTOCOL_CLOSES = {
    1002: "protocol error",
    1003: "unsupported data",
    1007: "invalid frame payload data",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
}
"""Close codes (RFC 6455 section 7.4.1) that blame what was sent or received, not the network."""


def classify_close(code: Optional[int], *, initiated_by_us: bool) -> CloseKind:
    """Classify a connection end by its close code (``None``: no close frame).

    ``initiated_by_us`` means we started the closing handshake for our own
    reasons (``close()``, rotation); a close we send because the peer broke
    the protocol is classified by its code like the peer's.
    """
    if initiated_by_us:
        return CloseKind.OURS
    if code == 1000:
        return CloseKind.SILENT
    if code in PROTOCOL_CLOSES:
        return CloseKind.PROTOCOL
    return CloseKind.ABNORMAL


def error_code(event: Mapping[str, Any]) -> Any:
    """``error.code`` of a decoded ``error`` event, if it has one."""
    error = event.get("error")
    return error.get("code") if isinstance(error, dict) else None


def is_connection_limit(event: Mapping[str, Any]) -> bool:
    """True when ``event`` says the socket reached the service's age limit."""
    return event.get("type") == "error" and error_code(event) == CONNECTION_LIMIT


def _text(value: Any) -> Optional[str]:
    return value if type(value) is str else None


def is_lane_rejection(event: Mapping[str, Any]) -> bool:
    """True when ``event`` is an untagged ``error`` refusing the ``stream_id`` field."""
    if event.get("type") != "error" or event.get("stream_id"):
        return False
    error = event.get("error")
    if not isinstance(error, dict):
        return False
    if error.get("code") == "websocket_stream_limit_reached":
        return False
    message = _text(error.get("message")) or ""
    return error.get("param") == "stream_id" or "stream_id" in message


@attrs.define(eq=False)
class SteerRecord:
    """One steer sent for a request, as the core sees it."""

    key: int
    """The session's id of the steer."""
    response_id: str
    """The response it was sent to steer."""
    status: str = "sent"
    """``sent`` (no answer yet), ``accepted``, then ``applied`` (a successor carries
    it), ``pending`` (it waits for tool output), ``failed`` or ``lost``."""
    steer_id: Optional[str] = None
    """The server's id of the steer, once it gave one."""

    @property
    def open(self) -> bool:
        """The server still owes an outcome: sent, or accepted and not yet applied."""
        return self.status in ("sent", "accepted")


@attrs.define(eq=False)
class Pending:
    """One request in flight on a connection, as the core sees it."""

    key: int
    """The session's id of the request (stable across replays)."""
    lane: Optional[str]
    """The ``stream_id`` the frame carried, ``None`` for the default lane."""
    unstored: bool = False
    """The request has ``store: false``: its response lives only in this socket's cache."""
    events: int = 0
    """Events routed to this request so far."""
    response_id: Optional[str] = None
    """The response id once ``response.created`` (or any lifecycle event) arrived."""
    order: int = 0
    """Position in the socket's send order."""
    steers: List[SteerRecord] = attrs.Factory(list)
    """Steers sent for this request whose outcome the server still owes."""
    settling: bool = False
    """Its response's terminal event arrived while a steer was open: the request
    ends when the steers settle (or a successor response goes on with them)."""
    settled_completed: bool = False
    """That terminal event completed the response (for the lane's cache)."""
    earlier_ids: List[str] = attrs.Factory(list)
    """Ids of the responses this request had before a steered successor."""


@attrs.define
class Route:
    """Where an incoming event goes."""

    pending: Pending
    terminal: bool
    """The event ends its request: the request is no longer in flight."""
    rejected: bool = False
    """The event refused the request's lane; it never ran and may be replayed."""
    steer: Optional[SteerRecord] = None
    """The steer a ``response.steer.*`` event answered (its status already updated)."""
    applied: Sequence[SteerRecord] = ()
    """Steers that the successor response this event creates carries."""
    settling: bool = False
    """The event is its response's terminal event, but the request goes on until its
    open steers settle (``terminal`` is False)."""


@attrs.define(eq=False)
class _Lane:
    name: str
    queue: List[Pending] = attrs.Factory(list)
    latest_response_id: Optional[str] = None
    keep: bool = False
    """The latest response was made with ``store: false``: only this lane has it."""
    last_used: int = 0


class ConnectionCore:
    """Lane assignment and event routing for one socket."""

    def __init__(
        self,
        *,
        use_lanes: bool,
        max_names: int = MAX_LANE_NAMES,
        lanes_ignored: bool = False,
        lanes_rejected: bool = False,
    ) -> None:
        if not 1 <= max_names <= MAX_LANE_NAMES:
            raise ValueError(f"max_names must be between 1 and {MAX_LANE_NAMES}")
        self.use_lanes = use_lanes and not (lanes_ignored or lanes_rejected)
        """Whether new requests get a ``stream_id``; turns off when the server refuses."""
        self.lanes_ignored = lanes_ignored
        """The server answered a tagged request with untagged events (here or before)."""
        self.lanes_rejected = lanes_rejected
        """The server refused a ``stream_id`` with an error (here or before)."""
        self.lanes_honoured = False
        """The server tagged an event with its request's ``stream_id`` on this socket."""
        self._max_names = max_names
        self._lanes: Dict[str, _Lane] = {}
        self._default: List[Pending] = []
        self._default_latest: Optional[str] = None  # the default lane's cached response
        self._inflight: List[Pending] = []  # every unfinished request, in send order
        self._order = itertools.count()
        self._clock = itertools.count(1)  # logical time for least-recently-used lanes
        self._produced: Dict[str, None] = {}  # response ids answered here, oldest first
        self.ended: List[Pending] = []
        """Settling requests ended by events that were not theirs (see :meth:`take_ended`)."""

    # -- requests -------------------------------------------------------------

    @property
    def lane_names(self) -> List[str]:
        """Names used on this socket so far (never more than ``max_names``)."""
        return list(self._lanes)

    @property
    def inflight(self) -> List[Pending]:
        """Unfinished requests, oldest first."""
        return list(self._inflight)

    def open(
        self,
        key: int,
        *,
        previous_response_id: Optional[str] = None,
        stream_id: Optional[str] = None,
        unstored: bool = False,
    ) -> Pending:
        """Register a request about to be sent and choose its lane.

        ``unstored`` marks a ``store: false`` request, whose response only this
        socket will have: its lane is reused last once it finishes.
        ``stream_id`` is a lane the caller chose; otherwise the core picks one
        (or the default lane when lanes are off). Call this before the frame is
        sent, in the same order as the frames leave.
        """
        lane: Optional[_Lane]
        if stream_id is not None and not self.lanes_rejected:
            lane = self._lanes.get(stream_id)
            if lane is None:
                lane = self._lanes[stream_id] = _Lane(stream_id)
        elif self.use_lanes:
            lane = self._pick_lane(previous_response_id)
        else:
            lane = None
        pending = Pending(
            key,
            lane.name if lane else None,
            unstored=unstored,
            order=next(self._order),
        )
        if lane is None:
            self._default.append(pending)
        else:
            lane.queue.append(pending)
            lane.last_used = next(self._clock)
        self._inflight.append(pending)
        return pending

    def _pick_lane(self, previous_response_id: Optional[str]) -> _Lane:
        idle = [lane for lane in self._lanes.values() if not lane.queue]
        if previous_response_id is not None:
            for lane in idle:
                if lane.latest_response_id == previous_response_id:
                    return lane
        # An idle lane that caches nothing costs nothing to reuse.
        for lane in idle:
            if lane.latest_response_id is None:
                return lane
        if len(self._lanes) < self._max_names:
            number = len(self._lanes)
            while f"ows-{number}" in self._lanes:  # a caller may have chosen that name
                number += 1
            name = f"ows-{number}"
            lane = self._lanes[name] = _Lane(name)
            return lane
        if idle:
            # Reusing a lane evicts its cached response. A store=false response
            # cannot be loaded again if someone continues it, so such lanes go
            # last; among equals, take the stalest.
            return min(idle, key=lambda lane: (lane.keep, lane.last_used))
        return min(self._lanes.values(), key=lambda lane: (len(lane.queue), lane.last_used))

    def forget(self, pending: Pending) -> None:
        """Drop a request from the books (it ended without a routed event)."""
        if pending in self._inflight:
            self._inflight.remove(pending)
        queue = self._default if pending.lane is None else self._lanes[pending.lane].queue
        if pending in queue:
            queue.remove(pending)

    def drain(self) -> List[Pending]:
        """Remove and return every unfinished request (the socket is gone)."""
        pending = self._inflight
        self._inflight = []
        self._default = []
        for lane in self._lanes.values():
            lane.queue.clear()
        return pending

    # -- events ---------------------------------------------------------------

    def route_plain(self, event: Mapping[str, Any]) -> Optional[Pending]:
        """The request of a *plain* event, counted, or ``None``: then use :meth:`route`.

        Plain: an event that neither starts, ends nor steers a response (a delta,
        an item or part event), tagged with a lane of this socket, or untagged
        while the server has tagged nothing and lanes are not ignored, whose
        request is neither settling nor steered. For those :meth:`route` would
        only find the request and count the event; this does the same without
        building a :class:`Route`.
        """
        if event.get("type") in _NOT_PLAIN:
            return None
        stream_id = event.get("stream_id")
        if stream_id is None:
            if self.lanes_honoured or self.lanes_ignored or not self._inflight:
                return None
            target = self._inflight[0]
            if target.lane is not None:
                return None
        else:
            lane = self._lanes.get(stream_id) if type(stream_id) is str else None
            if lane is None or not lane.queue:
                return None
            target = lane.queue[0]
            self.lanes_honoured = True
        if target.settling or target.steers:
            return None
        target.events += 1
        return target

    def route(self, event: Mapping[str, Any]) -> Optional[Route]:
        """Find the request ``event`` belongs to; ``None`` if it belongs to none.

        ``event`` is the decoded JSON object (routing needs only ``type``,
        ``stream_id`` and the response id, so events are typed later, by the
        thread that consumes them). A terminal route also removes the request
        from the books and records the lane's latest response.
        """
        event_type = event.get("type")
        if event_type in STEER_EVENT_TYPES:
            return self._route_steer(event)
        target, rejected = self._target(event, event_type)
        while target is not None and target.settling and not self._continues(target, event):
            # The server moved on without a successor or an answer: the settling
            # request is over, and the event belongs to someone else.
            self.end_settling(target)
            self.ended.append(target)
            target, rejected = self._target(event, event_type)
        if target is None:
            return None
        if rejected:
            self._finish(target, completed=False)
            return Route(target, True, True)
        target.events += 1
        applied: List[SteerRecord] = []
        if event_type in RESPONSE_EVENT_TYPES:
            response = event.get("response")
            response_id = _text(response.get("id")) if isinstance(response, dict) else None
            if response_id:
                if target.settling and event_type == "response.created":
                    # A successor goes on with the steers accepted so far.
                    target.settling = False
                    applied = [s for s in target.steers if s.status == "accepted"]
                    for steer in applied:
                        steer.status = "applied"
                    target.steers = [s for s in target.steers if s.open]
                if target.response_id and response_id != target.response_id:
                    target.earlier_ids.append(target.response_id)
                target.response_id = response_id
            if event_type in TERMINAL_EVENT_TYPES:
                completed = event_type in ("response.completed", "response.done")
                if target.steers and any(s.open for s in target.steers):
                    target.settling = True
                    target.settled_completed = completed
                    return Route(target, False, settling=True)
                self._finish(target, completed=completed)
                return Route(target, True)
            return Route(target, False, applied=applied) if applied else Route(target, False)
        if event_type in TERMINAL_EVENT_TYPES:  # an ``error`` event
            self._finish(target, completed=False)
            return Route(target, True)
        return Route(target, False)

    def take_ended(self) -> List[Pending]:
        """Settling requests that the events routed since the last call ended
        without being theirs (the server moved on without settling their steers;
        those steers are ``lost``). Their callers still wait for an end."""
        ended, self.ended = self.ended, []
        return ended

    def _target(
        self, event: Mapping[str, Any], event_type: Any
    ) -> Tuple[Optional[Pending], bool]:
        """The request ``event`` belongs to by lane and order, and whether the event
        refuses its lane (nothing recorded yet)."""
        stream_id = event.get("stream_id")
        rejected = False
        target: Optional[Pending]
        if stream_id is not None:
            lane = self._lanes.get(stream_id) if type(stream_id) is str else None
            target = lane.queue[0] if lane and lane.queue else None
            if target is not None:
                self.lanes_honoured = True
        elif is_lane_rejection(event) and any(p.lane is not None for p in self._inflight):
            self.use_lanes = False
            self.lanes_rejected = True
            target = next((p for p in self._inflight if p.lane is not None and p.events == 0), None)
            rejected = target is not None
        elif self.lanes_ignored or (not self.lanes_honoured and event_type != "error"):
            # One FIFO in send order: what a server that ignores lanes runs, and
            # the only reading both kinds of server agree on until one tags.
            target = self._inflight[0] if self._inflight else None
            if target is not None and target.lane is not None and not self.lanes_ignored:
                self.use_lanes = False
                self.lanes_ignored = True
        elif self._default:
            target = self._default[0]
        else:
            # An untagged error while lanes are busy: the server could not tie
            # it to a lane, so it answers the oldest request that has not
            # started (the reply to a create), else the oldest one.
            target = next((p for p in self._inflight if p.events == 0), None)
            if target is None and self._inflight:
                target = self._inflight[0]
        return target, rejected

    @staticmethod
    def _continues(pending: Pending, event: Mapping[str, Any]) -> bool:
        """Whether ``event`` goes on with the settling request ``pending``: a
        successor response continuing its response, or an error about it."""
        if event.get("type") == "error":
            return True
        if event.get("type") != "response.created":
            return False
        response = event.get("response")
        parent = response.get("previous_response_id") if isinstance(response, dict) else None
        return parent is not None and parent == pending.response_id

    def end_settling(self, pending: Pending) -> None:
        """End a settling request: its open steers are lost."""
        for steer in pending.steers:
            if steer.open:
                steer.status = "lost"
        pending.settling = False
        self._finish(pending, completed=pending.settled_completed)

    # -- steering -------------------------------------------------------------

    def steer(self, pending: Pending, key: int) -> SteerRecord:
        """Register a steer about to be sent for ``pending``'s running response.

        Call it before the frame leaves (like :meth:`open`); the response id must
        be known (``response.created`` arrived).
        """
        if pending.response_id is None or pending not in self._inflight:
            raise ValueError("the request has no running response on this socket")
        record = SteerRecord(key, pending.response_id)
        pending.steers.append(record)
        return record

    def _route_steer(self, event: Mapping[str, Any]) -> Optional[Route]:
        """Route a ``response.steer.*`` event by the response it names."""
        steer = event.get("steer")
        steer = steer if isinstance(steer, dict) else {}
        response_id = _text(steer.get("previous_response_id"))
        steer_id = _text(steer.get("id"))
        target = None
        if response_id is not None:
            target = next(
                (
                    p
                    for p in self._inflight
                    if p.response_id == response_id or response_id in p.earlier_ids
                ),
                None,
            )
        if target is None:
            return None
        target.events += 1
        event_type = event.get("type")
        record = None
        if steer_id is not None:
            record = next((s for s in target.steers if s.steer_id == steer_id), None)
        if record is None:
            # Answers come in the order the steers were sent: the oldest unanswered.
            wanted = "accepted" if event_type == "response.steer.pending" else "sent"
            record = next((s for s in target.steers if s.status == wanted), None)
            if record is None and event_type != "response.steer.accepted":
                record = next((s for s in target.steers if s.open), None)
        route = Route(target, False, steer=record)
        if record is not None:
            if steer_id is not None:
                record.steer_id = steer_id
            record.status = {
                "response.steer.accepted": "accepted",
                "response.steer.pending": "pending",
            }.get(str(event_type), "failed")
            target.steers = [s for s in target.steers if s.open]
        if target.settling and not target.steers:
            target.settling = False
            route.terminal = True
            self._finish(target, completed=target.settled_completed)
        return route

    def has_room(self) -> bool:
        """Whether a new request sent now starts at once and costs no one a cache:
        fewer than :data:`MAX_ACTIVE_RESPONSES` in flight and, when lanes are in use,
        a name left or an idle lane whose cached response is not ``store: false``
        (reusing such a lane would lose that response for good). Otherwise a
        session with room for another socket opens one."""
        if len(self._inflight) >= MAX_ACTIVE_RESPONSES:
            return False
        if not self.use_lanes or len(self._lanes) < self._max_names:
            return True
        return any(not lane.queue and not lane.keep for lane in self._lanes.values())

    def produced(self, response_id: str) -> bool:
        """Whether this socket produced ``response_id`` (among its latest 4096 answers):
        a continuation of it is best sent here."""
        return response_id in self._produced

    def caches(self, response_id: str) -> bool:
        """True when a request continuing ``response_id`` sent now finds it in this
        socket's cache: the lane that produced it is idle and still holds it.

        The server keeps the latest response of each lane. A server that ignores
        lanes runs one FIFO whose cache is its latest response, and only while
        nothing else is in flight (a queued request would replace it first).
        """
        if self.lanes_ignored:
            return not self._inflight and self._default_latest == response_id
        if self._default_latest == response_id and not self._default:
            return self.use_lanes is False
        if not self.use_lanes:
            return False
        return any(
            lane.latest_response_id == response_id and not lane.queue
            for lane in self._lanes.values()
        )

    def _finish(self, pending: Pending, *, completed: bool) -> None:
        self.forget(pending)
        if pending.response_id is not None:
            produced = self._produced
            produced[pending.response_id] = None
            if len(produced) > _PRODUCED_KEPT:
                del produced[next(iter(produced))]
        if self.lanes_ignored or pending.lane is None:
            self._default_latest = pending.response_id if completed else None
            if self.lanes_ignored:
                for named in self._lanes.values():  # the server has no named lanes
                    named.latest_response_id = None
            return
        if pending.lane is not None:
            lane = self._lanes[pending.lane]
            # The server caches the latest response of a lane; a failed request
            # leaves an unknown state, so assume nothing is cached.
            lane.latest_response_id = pending.response_id if completed else None
            lane.keep = completed and pending.unstored
            lane.last_used = next(self._clock)
