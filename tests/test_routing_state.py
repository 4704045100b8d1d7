"""A hypothesis state machine over the routing core: no event is ever given to another request.

A model server runs the requests the core registered, in one of three ways: it
honours ``stream_id`` lanes (a FIFO per lane, lanes concurrent, untagged events
for the default lane), it ignores them (one FIFO in send order, every event
untagged), or it rejects them (an untagged ``error`` naming ``stream_id`` for
each tagged create, in send order; the default lane runs as usual). Every event
it emits is labelled with the request that caused it; the core must route each
one to exactly that request. Rules also open requests with caller-chosen
stream ids, continue lanes with ``previous_response_id``, abandon requests (the
core keeps routing their events to them, the session drops them), and replace
the socket (a new core that carries what the old one learned; requests without
events are opened again, in order).

Steering: a rule steers a running request (once), and the server plays one of
the documented outcomes on that request's lane: accepted then a successor after
``response.incomplete`` (``"successor"``) or after the completion (``"after"``),
``response.steer.pending`` after the completion (``"pending"``), an immediate
``response.steer.failed`` (``"fail"``), or accepted and then nothing
(``"silent"``: the server moves on; the request ends when the next event on its
lane, another request's, arrives). Steer events are tagged with the lane, with
a wrong lane, or not at all: the core must route them by the response they name.

What a real server guarantees and the model keeps: a lane answers one request
at a time, in order; ``response.created`` events leave in the order the creates
arrived (the server handles frames in order); rejections too.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from openai_ws._protocol.routing import ConnectionCore, Pending


class _Job:
    """One request as the model server sees it."""

    def __init__(
        self,
        key: int,
        pending: Pending,
        wire_lane: Optional[str],
        order: int,
        caller_lane: Optional[str],
    ) -> None:
        self.key = key
        self.caller_lane = caller_lane  # the stream_id in the caller's request, if any
        self.pending = pending
        self.wire_lane = wire_lane  # the stream_id its frame carried
        self.order = order
        self.emitted = 0  # events of ``script`` emitted so far
        self.rid = f"resp_{key}_{order}"
        response = {"id": self.rid, "object": "response", "status": "in_progress"}
        self.script: List[Dict[str, Any]] = [
            {"type": "response.created", "response": response},
            {"type": "response.output_text.delta", "delta": "x"},
            {"type": "response.completed", "response": dict(response, status="completed")},
        ]
        self.steer: Optional[Any] = None  # the core's SteerRecord, once steered
        self.outcome = ""
        self.settling = False  # every event emitted, the steer left unanswered

    def steer_events(self, outcome: str, steer_lane: Optional[str]) -> None:
        """Rewrite the rest of the script for a steer with ``outcome``."""
        rid, successor = self.rid, f"{self.rid}_next"
        steer = {"id": f"steer_{rid}", "previous_response_id": rid}

        def answer(kind: str, **extra: Any) -> Dict[str, Any]:
            event: Dict[str, Any] = {"type": f"response.steer.{kind}", "steer": steer, **extra}
            if steer_lane is not None:
                event["stream_id"] = steer_lane
            return event

        later = [
            {"type": "response.created", "response": {"id": successor, "previous_response_id": rid}},
            {"type": "response.output_text.delta", "delta": "y"},
            {"type": "response.completed", "response": {"id": successor, "status": "completed"}},
        ]
        done = {"type": "response.completed", "response": {"id": rid, "status": "completed"}}
        rest = [e for e in self.script[self.emitted :] if e["type"].endswith("delta")]
        if outcome == "successor":
            cut = {"type": "response.incomplete", "response": {"id": rid, "status": "incomplete"}}
            tail = [answer("accepted"), cut, *later]
        elif outcome == "after":
            tail = [answer("accepted"), *rest, done, *later]
        elif outcome == "pending":
            tail = [answer("accepted"), *rest, done, answer("pending", required_input=[])]
        elif outcome == "fail":
            error = {"code": "invalid_input", "message": "no"}
            tail = [answer("failed", error=error), *rest, done]
        else:  # silent
            tail = [answer("accepted"), *rest, done]
        self.script[self.emitted :] = tail
        self.outcome = outcome


class RoutingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.mode = "honour"
        self.use_lanes = True
        self.core = ConnectionCore(use_lanes=True)
        self.jobs: List[_Job] = []  # in flight, in send order
        self.keys = 0
        self.orders = 0
        self.routed = 0

    # -- set-up ---------------------------------------------------------------

    @precondition(lambda self: self.keys == 0)
    @rule(mode=st.sampled_from(["honour", "ignore", "reject"]), lanes=st.booleans())
    def configure(self, mode: str, lanes: bool) -> None:
        self.mode = mode
        self.use_lanes = lanes
        self.core = ConnectionCore(use_lanes=lanes)

    # -- the session's side ---------------------------------------------------

    @precondition(lambda self: len(self.jobs) < 12)
    @rule(
        caller_lane=st.one_of(st.none(), st.sampled_from(["mine", "yours", "ows-1"])),
        continue_latest=st.booleans(),
    )
    def open(self, caller_lane: Optional[str], continue_latest: bool) -> None:
        self.keys += 1
        previous = None
        if continue_latest and self.jobs:
            previous = self.jobs[-1].rid
        self._register(self.keys, caller_lane, previous)

    def _register(self, key: int, caller_lane: Optional[str], previous: Optional[str]) -> None:
        pending = self.core.open(key, previous_response_id=previous, stream_id=caller_lane)
        # The frame carries the lane the core chose (the engine sends no stream_id
        # when the core put the request on the default lane).
        self.orders += 1
        self.jobs.append(_Job(key, pending, pending.lane, self.orders, caller_lane))

    @precondition(lambda self: bool(self.jobs))
    @rule()
    def reconnect(self) -> None:
        """The socket is replaced; requests that received nothing are sent again."""
        old = self.core
        self.core = ConnectionCore(
            use_lanes=self.use_lanes,
            lanes_ignored=old.lanes_ignored,
            lanes_rejected=old.lanes_rejected,
        )
        survivors = [job for job in self.jobs if job.emitted == 0]
        old.drain()
        self.jobs = []
        for job in survivors:
            self._register(job.key, job.caller_lane, None)

    # -- the server's side ----------------------------------------------------

    def _emittable(self) -> List[_Job]:
        """Jobs whose next event the server may send now."""
        if self.mode == "ignore":
            return [job for job in self.jobs if not job.settling][:1]
        ready: List[_Job] = []
        heads: Dict[Any, _Job] = {}
        for job in self.jobs:
            if job.settling:
                continue  # the server is done with it
            lane: Any = job.wire_lane if self.mode == "honour" else None
            if self.mode == "reject" and job.wire_lane is not None:
                lane = ("refused", job.key)  # refused at once: its own "lane"
            if lane not in heads:
                heads[lane] = job
        # The answer to each create (response.created, or a refusal) leaves in
        # send order: a head that has not started may go only once every
        # older head has started.
        for job in sorted(heads.values(), key=lambda j: j.order):
            ready.append(job)
            if job.emitted == 0:
                break
        return ready

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data())
    def server_emits(self, data: Any) -> None:
        candidates = self._emittable()
        if not candidates:
            return
        job = data.draw(st.sampled_from(candidates))
        event = self._next_event(job)
        route = self.core.route(event)
        assert route is not None, f"event of request {job.key} was unroutable: {event}"
        assert route.pending.key == job.key, (
            f"event of request {job.key} ({event['type']}) went to request {route.pending.key}"
        )
        self.routed += 1
        ended = self.core.take_ended()
        for other in ended:
            # Only a request left waiting for a steer answer that never came is ended so.
            settled = next(j for j in self.jobs if j.key == other.key)
            assert settled.settling, f"request {other.key} was ended by another's event"
            assert settled.steer is not None and settled.steer.status == "lost"
            self.jobs.remove(settled)
        if route.rejected:
            self.jobs.remove(job)
            self._register(job.key, job.caller_lane, None)  # replayed; the core picks the lane
            return
        last = job.emitted == len(job.script)
        if event["type"] == "response.created" and job.steer is not None and job.emitted > 1:
            assert route.applied == [job.steer] and job.steer.status == "applied"
        if last and job.outcome == "silent":
            assert not route.terminal and route.pending.settling
            job.settling = True
            return
        assert route.terminal == last, f"{event['type']} of request {job.key}: terminal={route.terminal}"
        if route.terminal:
            self.jobs.remove(job)

    @precondition(lambda self: any(j.emitted >= 1 and j.steer is None for j in self.jobs))
    @rule(
        data=st.data(),
        outcome=st.sampled_from(["successor", "after", "pending", "fail", "silent"]),
        steer_lane=st.sampled_from(["own", "none", "wrong"]),
    )
    def steer(self, data: Any, outcome: str, steer_lane: str) -> None:
        """A caller steers a running request; the server will answer with ``outcome``."""
        running = [
            j
            for j in self.jobs
            if j.emitted >= 1 and j.steer is None and j.emitted < len(j.script) and not j.settling
        ]
        if not running or self.mode == "reject" and any(j.wire_lane for j in running):
            return
        job = data.draw(st.sampled_from(running))
        job.steer = self.core.steer(job.pending, job.key)
        lane = {"own": job.wire_lane if self.mode == "honour" else None, "none": None}.get(
            steer_lane, "ows-31"
        )
        job.steer_events(outcome, lane)

    def _next_event(self, job: _Job) -> Dict[str, Any]:
        if self.mode == "reject" and job.wire_lane is not None:
            return {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": "unknown_parameter",
                    "message": "Unknown parameter: 'stream_id'.",
                    "param": "stream_id",
                },
            }
        event = dict(job.script[job.emitted])
        job.emitted += 1
        steering = event["type"].startswith("response.steer.")
        if self.mode == "honour" and job.wire_lane is not None and not steering:
            event["stream_id"] = job.wire_lane
        return event

    @invariant()
    def books_match(self) -> None:
        assert [p.key for p in self.core.inflight] == [job.key for job in self.jobs]


TestRouting = RoutingMachine.TestCase
TestRouting.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
