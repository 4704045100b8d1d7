"""Steering a running response (``response.steer``), against scripted servers.

The fake server of ``fake_transport.py`` plays each outcome the service documents
(applied by a successor after ``response.incomplete``/``steered`` or after a normal
completion, pending for tool output, each failure code) and the ways a peer can
break the promise (no answer, a lost socket, moving on without a word, answers
tagged with another lane). Every case checks both sides: what the steering
thread gets from its :class:`~openai_ws.Steer`, and what the request's own
caller gets (its events or its response), with nothing leaking to another
request. The emulator's own steering is tested in ``tests/emulator``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Optional

import pytest
from fake_transport import FakeHTTP, FakeServer, FakeTransport, answer, options, response

from openai_ws import ResponseCreateRequest
from openai_ws._session.steering import Steer
from openai_ws.errors import (
    ReplayUnsafeError,
    SteerError,
    SteerFailedError,
    SteeringNotSupportedError,
    SteeringUnavailableError,
    SteerInvalidInputError,
    SteerLostError,
    SteerResponseCompletedError,
    SteerResponseNotActiveError,
    SteerResponseNotFoundError,
    SteerSuccessorFailedError,
    SteerTimeoutError,
    TooManyPendingSteersError,
)
from openai_ws.events import (
    ResponseCompleted,
    ResponseCreated,
    ResponseIncomplete,
    ResponseSteerFailed,
    ResponseSteerPending,
)
from openai_ws.session import Session


def ask(text: str) -> ResponseCreateRequest:
    return ResponseCreateRequest(model="gpt-6", input=text)


def delta(rid: str, text: str, lane: Optional[str]) -> Dict[str, Any]:
    event: Dict[str, Any] = {
        "type": "response.output_text.delta",
        "item_id": f"msg_{rid}",
        "output_index": 0,
        "content_index": 0,
        "delta": text,
    }
    if lane is not None:
        event["stream_id"] = lane
    return event


def tagged(event: Dict[str, Any], lane: Optional[str]) -> Dict[str, Any]:
    if lane is not None:
        event["stream_id"] = lane
    return event


def steer_event(
    kind: str, rid: str, steer_id: Optional[str] = "steer_1", **extra: Any
) -> Dict[str, Any]:
    steer: Dict[str, Any] = {"previous_response_id": rid}
    if steer_id is not None:
        steer["id"] = steer_id
    return {"type": f"response.steer.{kind}", "sequence_number": 5, "steer": steer, **extra}


def failed(rid: str, code: str, steer_input: Any) -> Dict[str, Any]:
    event = steer_event("failed", rid, None)
    event["error"] = {"type": "invalid_request_error", "code": code, "message": f"no: {code}"}
    event["steer"]["input"] = steer_input
    return event


class SteeringServer:
    """A fake server whose responses wait for a steer, then play ``outcome``.

    A create gets ``response.created`` and one delta at once; the rest waits
    for the steer frame (or for :meth:`finish`). Outcomes: ``"successor"``
    (accepted, incomplete/steered, successor), ``"after"`` (accepted, completed,
    successor), ``"pending"`` (accepted, completed with a function call, pending),
    ``"fail:<code>"``, ``"accept_fail"`` (accepted, incomplete/steered, failed
    ``successor_creation_failed``), ``"silent"`` (no answer), ``"close"``
    (accepted, then the socket drops), ``"close_before"`` (the socket drops
    before any answer), ``"accept_only"`` (accepted, then nothing: the test
    finishes the response itself).
    """

    def __init__(self, outcome: str, *, steer_lane: Optional[str] = "own") -> None:
        self.outcome = outcome
        self.steer_lane = steer_lane
        self.server = FakeServer(self.script)
        self.steers: List[Dict[str, Any]] = []
        self.creates: List[Dict[str, Any]] = []
        self.lanes: Dict[str, Optional[str]] = {}
        self.ready = threading.Event()

    def script(self, transport: FakeTransport, frame: Dict[str, Any]) -> None:
        if frame["type"] == "response.create":
            rid = f"resp_{len(self.creates) + 1}"
            self.creates.append(frame)
            lane = frame.get("stream_id")
            self.lanes[rid] = lane
            transport.push(
                tagged(
                    {"type": "response.created", "response": response(rid, "in_progress")}, lane
                ),
                delta(rid, "part ", lane),
            )
            self.ready.set()
            return
        self.steers.append(frame)
        rid = frame["previous_response_id"]
        lane = self.lanes.get(rid)
        steer_lane = lane if self.steer_lane == "own" else self.steer_lane
        new = f"{rid}_next"
        text = frame["input"] if isinstance(frame["input"], str) else "items"
        successor = [
            tagged(
                {
                    "type": "response.created",
                    "response": {**response(new, "in_progress"), "previous_response_id": rid},
                },
                lane,
            ),
            delta(new, text, lane),
            tagged({"type": "response.completed", "response": response(new, text=text)}, lane),
        ]
        incomplete = tagged(
            {
                "type": "response.incomplete",
                "response": {
                    **response(rid, "incomplete", text="part "),
                    "incomplete_details": {"reason": "steered"},
                },
            },
            lane,
        )
        accepted = tagged(steer_event("accepted", rid), steer_lane)
        outcome = self.outcome
        if outcome == "successor":
            transport.push(accepted, incomplete, *successor)
        elif outcome == "after":
            done = tagged(
                {"type": "response.completed", "response": response(rid, text="part ")}, lane
            )
            transport.push(accepted, done, *successor)
        elif outcome == "pending":
            call = {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_9",
                "name": "lookup",
                "arguments": "{}",
                "status": "completed",
            }
            done_response = response(rid)
            done_response["output"] = [call]
            pending = tagged(
                steer_event(
                    "pending",
                    rid,
                    reason="waiting_for_required_input",
                    required_input=[
                        {"type": "function_call_output", "call_id": "call_9", "name": "lookup"}
                    ],
                ),
                steer_lane,
            )
            transport.push(
                accepted,
                tagged({"type": "response.completed", "response": done_response}, lane),
                pending,
            )
        elif outcome.startswith("fail:"):
            transport.push(tagged(failed(rid, outcome[5:], frame["input"]), steer_lane))
            self.finish(transport, rid)
        elif outcome == "accept_fail":
            fail = failed(rid, "successor_creation_failed", frame["input"])
            fail["steer"]["id"] = "steer_1"
            transport.push(accepted, incomplete, tagged(fail, steer_lane))
        elif outcome == "silent":
            self.finish(transport, rid)
        elif outcome == "close":
            transport.push(accepted)
            transport.close_with(None)
        elif outcome == "close_before":
            transport.close_with(None)
        elif outcome == "accept_only":
            transport.push(accepted)

    def finish(self, transport: FakeTransport, rid: str) -> None:
        lane = self.lanes.get(rid)
        transport.push(
            tagged({"type": "response.completed", "response": response(rid, text="part ")}, lane)
        )


def session_for(server: SteeringServer, **overrides: Any) -> Session:
    return Session(options(**overrides), transport=server.server.factory)


def types(events: List[Any]) -> List[str]:
    return [event.type for event in events]


# -- applied ----------------------------------------------------------------


def test_a_steered_stream_goes_on_with_its_successor() -> None:
    """A steer ends the response early; the same stream yields the successor and ends after it."""
    server = SteeringServer("successor")
    with session_for(server) as session:
        stream = session.stream(ask("long task"))
        first = next(stream)
        assert isinstance(first, ResponseCreated)
        steer = stream.steer("Be brief.")
        events = [first, *stream]
        assert steer.result(timeout=2) == "applied"
    assert types(events) == [
        "response.created",
        "response.output_text.delta",
        "response.steer.accepted",
        "response.incomplete",
        "response.created",
        "response.output_text.delta",
        "response.completed",
    ]
    incomplete = events[3]
    assert isinstance(incomplete, ResponseIncomplete)
    assert incomplete.response.incomplete_details is not None
    assert incomplete.response.incomplete_details.reason == "steered"
    assert isinstance(events[-1], ResponseCompleted) and events[-1].response.id == "resp_1_next"
    assert steer.successor_id == "resp_1_next" and steer.steer_id == "steer_1"
    # Exactly the three fields the protocol allows; the response decides the lane.
    assert server.steers == [
        {"type": "response.steer", "previous_response_id": "resp_1", "input": "Be brief."}
    ]


@pytest.mark.parametrize("outcome", ["successor", "after"])
def test_submit_returns_the_successor_that_carried_the_steer(outcome: str) -> None:
    """send()'s answer is the successor's, whether it followed an incomplete or a completed one."""
    server = SteeringServer(outcome)
    with session_for(server) as session:
        pending = session.submit(ask("long task"))
        steer = pending.steer("Mention the DB.", timeout=2)
        result = pending.result()
        assert result.id == "resp_1_next" and result.output_text == "Mention the DB."
        assert steer.result(timeout=2) == "applied"
        assert pending.result() is result  # the same answer again, from any thread
        # Both responses were answered and billed: each counted once.
        assert session.usage.responses == 2
        assert session.stats.steers == 1


def test_steer_waits_for_the_response_to_start() -> None:
    """A steer sent before ``response.created`` waits for it, then names the running response."""
    server = SteeringServer("successor")
    gate = threading.Event()
    original = server.script

    def late_created(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        if frame["type"] == "response.create":
            threading.Timer(0.2, lambda: (original(transport, frame), gate.set())).start()
            return
        original(transport, frame)

    server.server.script = late_created
    with session_for(server) as session:
        pending = session.submit(ask("task"))
        started = time.monotonic()
        steer = pending.steer("x", timeout=2)
        assert gate.is_set() and time.monotonic() - started >= 0.15
        assert server.steers[0]["previous_response_id"] == "resp_1"
        assert pending.result().id == "resp_1_next"
        assert steer.result(timeout=2) == "applied"


# -- pending and failed -----------------------------------------------------


def test_a_pending_steer_ends_the_request_with_its_response() -> None:
    """``response.steer.pending`` after the response completed: the answer is that response,
    the steer says what tool output the continuation must bring."""
    server = SteeringServer("pending")
    with session_for(server) as session:
        stream = session.stream(ask("use a tool"))
        next(stream)
        steer = stream.steer("Also check prod.")
        events = list(stream)
        assert steer.result(timeout=2) == "pending"
    assert isinstance(events[-1], ResponseSteerPending)
    assert isinstance(events[-2], ResponseCompleted) and events[-2].response.id == "resp_1"
    assert steer.required_input == [
        {"type": "function_call_output", "call_id": "call_9", "name": "lookup"}
    ]


CODES = {
    "response_not_found": SteerResponseNotFoundError,
    "invalid_input": SteerInvalidInputError,
    "steering_not_supported": SteeringNotSupportedError,
    "too_many_pending_steers": TooManyPendingSteersError,
    "response_already_completed": SteerResponseCompletedError,
    "response_not_active": SteerResponseNotActiveError,
    "some_future_code": SteerFailedError,
}


@pytest.mark.parametrize("code", sorted(CODES))
def test_each_failure_code_raises_its_error_and_the_request_goes_on(code: str) -> None:
    """A refused steer raises its code's class (an unknown code the base class) with the
    input given back; the response itself completes as if nothing happened."""
    server = SteeringServer(f"fail:{code}")
    with session_for(server) as session:
        pending = session.submit(ask("task"))
        steer = pending.steer([{"role": "user", "content": "hi"}], timeout=2)
        with pytest.raises(CODES[code]) as info:
            steer.result(timeout=2)
        assert type(info.value) is CODES[code]
        assert info.value.code == code
        assert info.value.input == [{"role": "user", "content": "hi"}]
        assert info.value.response_id == "resp_1"
        assert steer.status == "failed"
        assert pending.result().id == "resp_1"


def test_a_successor_that_cannot_be_created_ends_the_request_with_the_steered_response() -> None:
    """Accepted, the response stopped for it, then ``successor_creation_failed``: the stream
    ends with the failure event, send() returns the steered (incomplete) response."""
    server = SteeringServer("accept_fail")
    with session_for(server) as session:
        stream = session.stream(ask("task"))
        next(stream)
        steer = stream.steer("x")
        events = list(stream)
        with pytest.raises(SteerSuccessorFailedError):
            steer.result(timeout=2)
        assert isinstance(events[-1], ResponseSteerFailed)
        assert isinstance(events[-2], ResponseIncomplete)
        pending = session.submit(ask("again"))
        pending.steer("y", timeout=2)
        assert pending.result().status == "incomplete"


# -- faults -----------------------------------------------------------------


def test_a_steer_never_answered_ends_the_request_after_the_settle_timeout() -> None:
    """A server that never answers a steer: the request ends with its completed response
    once the settle timeout passes, and the steer fails with a timeout."""
    server = SteeringServer("silent")
    with session_for(server, steer_settle_timeout=0.3) as session:
        pending = session.submit(ask("task"))
        steer = pending.steer("x", timeout=2)
        started = time.monotonic()
        assert pending.result().id == "resp_1"
        assert time.monotonic() - started < 3
        with pytest.raises(SteerTimeoutError):
            steer.result(timeout=2)
        server.server.script = lambda t, f: t.push(*answer("resp_2", "ok", f.get("stream_id")))
        assert session.send(ask("next")).id == "resp_2"


@pytest.mark.parametrize("mode", ["send", "stream"])
def test_an_accepted_steer_whose_socket_closes_is_lost_and_not_replayed(mode: str) -> None:
    """The socket drops after the server took a steer: the steer fails as lost, and the
    request is not sent again (its answer would lack the steer): a typed error."""
    server = SteeringServer("close")
    with session_for(server) as session:
        if mode == "send":
            pending = session.submit(ask("task"))
            steer = pending.steer("x", timeout=2)
            with pytest.raises(ReplayUnsafeError):
                pending.result()
        else:
            stream = session.stream(ask("task"))
            next(stream)
            steer = stream.steer("x")
            with pytest.raises(ReplayUnsafeError):
                list(stream)
        with pytest.raises(SteerLostError):
            steer.result(timeout=2)
        assert len(server.creates) == 1


def test_a_steer_lost_before_any_answer_fails_and_the_request_is_replayed() -> None:
    """The socket drops before the steer was answered: the steer fails as lost (never sent
    again), the request itself is replayed as any other and answered."""
    server = SteeringServer("close_before")
    with session_for(server) as session:
        pending = session.submit(ask("task"))
        steer = pending.steer("x", timeout=2)
        server.outcome = "silent"
        with pytest.raises(SteerLostError):
            steer.result(timeout=2)
        server.server.script = lambda t, f: t.push(
            *answer("resp_replay", "again", f.get("stream_id"))
        )
        assert pending.result().id == "resp_replay"
        assert len(server.steers) == 1


def test_a_server_that_moves_on_ends_the_settling_request_without_misrouting() -> None:
    """A steer accepted, the response completed, and then the next request's answer
    arrives instead of a successor: the steered request ends with its own response,
    the next one gets exactly its own answer, and the steer fails as lost."""
    server = SteeringServer("accept_only")
    with session_for(server, use_lanes=False) as session:
        first = session.submit(ask("task"))
        steer = first.steer("x", timeout=2)
        transport = server.server.last
        second_frames: List[Dict[str, Any]] = []

        def second_script(t: FakeTransport, frame: Dict[str, Any]) -> None:
            second_frames.append(frame)
            # The server completes the first response, then runs the second one.
            server.finish(t, "resp_1")
            t.push(*answer("resp_2", "second answer", None))

        server.server.script = second_script
        second = session.submit(ask("second"))
        assert second.result().output_text == "second answer"
        assert first.result().id == "resp_1"
        with pytest.raises(SteerLostError):
            steer.result(timeout=2)
        assert transport is server.server.last


def test_steer_answers_tagged_with_another_lane_still_reach_their_steer() -> None:
    """A peer that tags steer events with a wrong lane: they are matched by the response
    they name, and the other lane's request sees none of them."""
    server = SteeringServer("successor", steer_lane="ows-9")
    with session_for(server) as session:
        stream_a = session.stream(ask("a"))
        next(stream_a)
        server.ready.clear()
        stream_b = session.stream(ask("b"))
        next(stream_b)
        steer = stream_a.steer("x")
        events_a = list(stream_a)
        assert steer.result(timeout=2) == "applied"
        assert "response.steer.accepted" in types(events_a)
        server.finish(server.server.last, "resp_2")
        events_b = list(stream_b)
        assert types(events_b) == ["response.output_text.delta", "response.completed"]


# -- what cannot be steered ---------------------------------------------------


def test_steering_an_http_stream_or_a_fallback_is_refused() -> None:
    """A request that went over HTTP cannot be steered: a typed error, nothing sent."""
    server = SteeringServer("successor")
    http = FakeHTTP()
    with Session(options(), transport=server.server.factory, http=lambda: http) as session:
        session._engine.fallback.remember_silent_close({"model": "gpt-6", "temperature": 0.5})
        stream = session.stream(model="gpt-6", input="x", temperature=0.5)
        with pytest.raises(SteeringUnavailableError):
            stream.steer("y", timeout=1)
        list(stream)
    assert server.steers == []


def test_steering_a_finished_request_or_with_bad_input_sends_nothing() -> None:
    """After the answer, a steer is refused as completed; a malformed input raises at once."""
    server = SteeringServer("fail:invalid_input")
    with session_for(server) as session:
        stream = session.stream(ask("task"))
        next(stream)
        with pytest.raises(ValueError):
            stream.steer("")
        with pytest.raises(TypeError):
            stream.steer(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            stream.steer([object()])  # type: ignore[list-item]
        server.finish(server.server.last, "resp_1")
        list(stream)
        with pytest.raises(SteerResponseCompletedError):
            stream.steer("late")
    assert server.steers == []


def test_a_steer_that_cannot_start_in_time_sends_nothing() -> None:
    """A response that does not start within the steer's timeout: SteerTimeoutError."""
    server = SteeringServer("successor")
    server.server.script = lambda t, f: None  # never answers the create
    with session_for(server, request_timeout=1.0) as session:
        pending = session.submit(ask("task"))
        with pytest.raises(SteerTimeoutError):
            pending.steer("x", timeout=0.2)
        pending.cancel()
        with pytest.raises(Exception, match="cancelled"):
            pending.result()
    assert server.steers == []


def test_every_steer_error_is_a_steer_error() -> None:
    """The tree: one base class to catch them all, timeouts also TimeoutError."""
    for cls in [
        *CODES.values(),
        SteerLostError,
        SteeringUnavailableError,
        SteerSuccessorFailedError,
    ]:
        assert issubclass(cls, SteerError)
    assert issubclass(SteerTimeoutError, TimeoutError)
    assert str(SteerInvalidInputError("bad", code="invalid_input")) == "bad (code=invalid_input)"
    assert repr(Steer("x", "resp_1")) == "<openai_ws.Steer sent response_id='resp_1' steer_id=None>"


# -- conversations ----------------------------------------------------------


def test_a_steered_conversation_turn_keeps_the_whole_chain_in_its_history() -> None:
    """The history of a steered turn: the input, the steered response's partial output,
    the steering input, then the successor's output; the next turn continues the successor."""
    server = SteeringServer("successor")
    with session_for(server) as session:
        conv = session.conversation(model="gpt-6")
        stream = conv.stream("long task")
        next(stream)
        stream.steer("Be brief.")
        list(stream)
        texts = [getattr(item, "content", None) for item in conv.items]
        assert conv.last_response is not None and conv.last_response.id == "resp_1_next"
        assert len(conv.items) == 4
        assert texts[0] == "long task" and texts[2] == "Be brief."
        assert conv.usage.responses == 2
        server.server.script = lambda t, f: t.push(*answer("resp_9", "ok", f.get("stream_id")))
        conv.send("next")
        assert server.server.sent[-1]["previous_response_id"] == "resp_1_next"


def test_a_dropped_pending_response_abandons_its_request() -> None:
    """A handle dropped before result() leaves nobody to read its events: the request is
    abandoned (its events are dropped), and the session goes on."""
    import gc

    server = SteeringServer("silent")
    with session_for(server) as session:
        pending = session.submit(ask("never read"))
        server.ready.wait(2)
        requests = [r for c in session._engine._connections for r in c.requests.values()]
        assert len(requests) == 1 and not requests[0].abandoned
        del pending
        gc.collect()
        assert requests[0].abandoned
        server.finish(server.server.last, "resp_1")
        server.server.script = lambda t, f: t.push(*answer("resp_2", "ok", f.get("stream_id")))
        assert session.send(ask("next")).output_text == "ok"
        assert session.stats.dropped_events >= 1
