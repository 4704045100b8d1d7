"""Steering in the emulator: ``response.steer`` and the ``response.steer.*`` events (WS only).

Wire facts: docs/protocol.md sections 2.4, 3.5 and 10 (the official SDK's
``response_steer_event.py`` / ``response_steer_*_event.py`` types and the
steering guide). These tests speak raw JSON over ``websocket.create_connection``
(``emutools``), never through the ``openai_ws`` client.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any, Callable, Dict, List, Optional

import pytest
import websocket
from emutools import TERMINAL, collect_lanes, connect, create, http, recv, text_of, until_terminal

from openai_ws.emulator import Emulator, context_digest

STEERABLE = "gpt-6"
TOKENS = 30
LONG = {"emulator_output_tokens": str(TOKENS), "emulator_token_interval": "0.02"}
"""Metadata of a response that runs long enough to be steered (30 deltas, 0.6 s)."""

Event = Dict[str, Any]
STEER_TYPES = ("response.steer.accepted", "response.steer.pending", "response.steer.failed")


def _steer(ws: websocket.WebSocket, target: Any, text: Any = "Steer now.", **extra: Any) -> None:
    payload: Dict[str, Any] = {"type": "response.steer", "previous_response_id": target}
    if text is not None:
        payload["input"] = text
    payload.update(extra)
    ws.send(json.dumps(payload))


def _read_until(ws: websocket.WebSocket, done: Callable[[Event], bool]) -> List[Event]:
    events: List[Event] = []
    while True:
        event = recv(ws)
        events.append(event)
        if done(event):
            return events


def _start(ws: websocket.WebSocket, **fields: Any) -> List[Event]:
    """Send a long-running create and read up to its ``response.created``."""
    fields.setdefault("model", STEERABLE)
    fields.setdefault("input", "alpha beta gamma")
    fields.setdefault("metadata", dict(LONG))
    create(ws, **fields)
    return _read_until(ws, lambda e: e["type"] == "response.created")


def _of_type(events: List[Event], kind: str) -> List[Event]:
    return [e for e in events if e["type"] == kind]


def _numbers(events: List[Event]) -> List[int]:
    return [e["sequence_number"] for e in events]


def _input_items(emu: Emulator, response_id: str) -> List[Event]:
    with http(emu) as session:
        answer = session.get(
            f"{emu.base_url}/responses/{response_id}/input_items", params={"order": "asc"}
        )
    assert answer.status_code == 200, answer.text
    items: List[Event] = answer.json()["data"]
    return items


def _user_texts(items: List[Event]) -> List[str]:
    texts = []
    for item in items:
        if item.get("type") == "message" and item.get("role") == "user":
            texts.append("".join(part.get("text", "") for part in item["content"]))
    return texts


def _failed(ws: websocket.WebSocket) -> Event:
    event = _read_until(ws, lambda e: e["type"] in STEER_TYPES)[-1]
    assert event["type"] == "response.steer.failed", event
    return event


# -- accepted, steered, successor -------------------------------------------------------------


def test_steer_ends_the_response_steered_and_a_successor_answers(emulator: Emulator) -> None:
    """An accepted steer ends the response incomplete/steered; a successor echoes the steer."""
    ws = connect(emulator)
    try:
        head = _start(ws, instructions="Be brief.", store=True)
        first = head[-1]["response"]["id"]
        head += _read_until(ws, lambda e: e["type"] == "response.output_text.delta")
        head += [recv(ws)]  # a second delta: the steer lands mid-answer
        _steer(ws, first, "Focus on the DB rollout.")
        tail = collect_lanes(ws, 2)
    finally:
        ws.close()
    events = head + tail
    created = _of_type(events, "response.created")
    assert len(created) == 2
    split = events.index(created[1])
    steered, successor = events[:split], events[split:]

    accepted = _of_type(steered, "response.steer.accepted")
    assert len(accepted) == 1
    steer = accepted[0]["steer"]
    assert steer["previous_response_id"] == first and steer["id"].startswith("steer_")
    assert "stream_id" not in accepted[0]
    assert _numbers(steered) == list(range(len(steered)))  # steer events share the numbering

    end = steered[-1]
    assert end["type"] == "response.incomplete"
    response = end["response"]
    assert response["id"] == first and response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "steered"}
    partial = text_of(steered)
    assert partial and len(partial.split()) < TOKENS
    [message] = response["output"]
    assert message["type"] == "message" and message["status"] == "incomplete"
    assert message["content"][0]["text"] == partial
    assert response["usage"]["output_tokens"] == len(
        _of_type(steered, "response.output_text.delta")
    )

    assert _numbers(successor) == list(range(len(successor)))
    born = successor[0]["response"]
    assert born["previous_response_id"] == first and born["id"] != first
    assert born["instructions"] == "Be brief." and born["model"] == STEERABLE
    done = successor[-1]
    assert done["type"] == "response.completed"
    assert text_of(successor) == "Focus on the DB rollout."
    assert done["response"]["usage"]["input_tokens"] > response["usage"]["total_tokens"]
    assert done["response"]["usage"]["input_tokens_details"]["cached_tokens"] > 0

    stored = emulator.stored(first)
    assert stored is not None and stored["incomplete_details"] == {"reason": "steered"}
    assert _user_texts(_input_items(emulator, born["id"]))[-1] == "Focus on the DB rollout."


def test_the_successor_continues_the_steered_context_without_store(emulator: Emulator) -> None:
    """store: false: continuing the successor sees input, partial answer, steer, successor reply."""
    ws = connect(emulator)
    try:
        head = _start(ws, store=False)
        first = head[-1]["response"]["id"]
        head += _read_until(ws, lambda e: e["type"] == "response.output_text.delta")
        _steer(ws, first, "Change course.")
        events = head + collect_lanes(ws, 2)
        successor = events[-1]["response"]
        create(
            ws,
            model=STEERABLE,
            store=False,
            previous_response_id=successor["id"],
            input="And now?",
            metadata={"emulator_reply": "context_digest"},
        )
        proof = until_terminal(ws)
    finally:
        ws.close()
    steered = _of_type(events, "response.incomplete")[0]["response"]
    expected = context_digest(
        [
            {"role": "user", "content": "alpha beta gamma"},
            *steered["output"],
            {"role": "user", "content": "Change course."},
            *successor["output"],
            {"role": "user", "content": "And now?"},
        ]
    )
    assert proof[-1]["type"] == "response.completed"
    assert text_of(proof) == expected
    assert emulator.stored(first) is None and emulator.stored(successor["id"]) is None


def test_steer_with_no_boundary_left_completes_then_starts_the_successor(
    emulator: Emulator,
) -> None:
    """Accepted after the last text boundary: the response completes, then the successor runs."""
    ws = connect(emulator)
    try:
        metadata = {"emulator_refusal": " ".join(["No."] * TOKENS), **LONG}
        head = _start(ws, metadata=metadata)
        first = head[-1]["response"]["id"]
        head += _read_until(ws, lambda e: e["type"] == "response.refusal.delta")
        _steer(ws, first, "Then say hello.")
        tail = collect_lanes(ws, 2)
    finally:
        ws.close()
    events = head + tail
    kinds = [e["type"] for e in events]
    terminal = kinds.index("response.completed")
    assert kinds.index("response.steer.accepted") < terminal
    assert events[terminal]["response"]["id"] == first
    assert events[terminal]["response"]["incomplete_details"] is None
    assert kinds[terminal + 1] == "response.created"
    successor = events[terminal + 1 :]
    assert successor[0]["response"]["previous_response_id"] == first
    assert successor[-1]["type"] == "response.completed"
    assert text_of(successor) == "Then say hello."
    assert _numbers(events[: terminal + 1]) == list(range(terminal + 1))


def test_steers_accepted_before_one_boundary_share_one_successor(emulator: Emulator) -> None:
    """Two steers accepted during the wait for the first token are committed by one successor."""
    ws = connect(emulator)
    try:
        head = _start(ws, metadata={"emulator_ttft": "0.5"})
        first = head[-1]["response"]["id"]
        _steer(ws, first, "One.")
        _steer(ws, first, [{"role": "user", "content": [{"type": "input_text", "text": "Two."}]}])
        tail = collect_lanes(ws, 2)
    finally:
        ws.close()
    events = head + tail
    accepted = _of_type(events, "response.steer.accepted")
    assert len(accepted) == 2 and accepted[0]["steer"]["id"] != accepted[1]["steer"]["id"]
    assert len(_of_type(events, "response.created")) == 2
    steered = [e for e in events if e["type"] == "response.incomplete"]
    assert steered[0]["response"]["output"] == []  # stopped before the first output item
    successor = _of_type(events, "response.created")[1]["response"]
    assert _user_texts(_input_items(emulator, successor["id"])) == [
        "alpha beta gamma",
        "One.",
        "Two.",
    ]
    assert text_of(events[events.index(_of_type(events, "response.created")[1]) :]) == "Two."


def test_a_steer_during_the_successor_steers_the_successor(emulator: Emulator) -> None:
    """The successor is the new running response: steering it gives a third response."""
    ws = connect(emulator)
    try:
        head = _start(ws)
        first = head[-1]["response"]["id"]
        _steer(ws, first, " ".join(f"w{n}" for n in range(1, TOKENS + 1)))
        events = _read_until(
            ws,
            lambda e: (
                e["type"] == "response.created" and e["response"]["previous_response_id"] == first
            ),
        )
        second = events[-1]["response"]["id"]
        events += _read_until(ws, lambda e: e["type"] == "response.output_text.delta")
        _steer(ws, second, "Final answer.")
        events += collect_lanes(ws, 2)
        _steer(ws, first, "Too late.")
        late = _failed(ws)
    finally:
        ws.close()
    ends = [e for e in events if e["type"] in TERMINAL]
    kinds = [e["type"] for e in ends]
    assert kinds == ["response.incomplete", "response.incomplete", "response.completed"]
    assert [e["response"]["id"] for e in ends[:2]] == [first, second]
    third = ends[2]["response"]
    assert third["previous_response_id"] == second
    assert "".join(p["text"] for p in third["output"][0]["content"]) == "Final answer."
    assert late["error"]["code"] == "response_not_active"
    assert late["steer"]["previous_response_id"] == first and "id" not in late["steer"]


def test_steer_events_keep_wire_order_when_deltas_are_batched(emulator: Emulator) -> None:
    """With no token interval (batched frames) every event of the response is numbered 0..n-1.

    No timing is relied on: with a 64 KiB receive buffer the server can run at most
    a few MB (its send buffer, 1 MiB of transport buffer) ahead of this reader, far
    less than the ~13 MB of 100000 deltas, so the steer is read before the end.
    """
    ws = connect(emulator, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 65536),))
    try:
        head = _start(ws, metadata={"emulator_output_tokens": "100000"})
        first = head[-1]["response"]["id"]
        _steer(ws, first, "Stop.")
        tail = collect_lanes(ws, 2)
    finally:
        ws.close()
    events = head + tail
    created = _of_type(events, "response.created")
    split = events.index(created[1])
    assert _numbers(events[:split]) == list(range(split))
    assert events[split - 1]["type"] == "response.incomplete"
    assert text_of(events[split:]) == "Stop."


# -- pending: waiting for client-owned tool output ---------------------------------------------


def test_steer_of_a_tool_call_response_is_pending_then_prepended(emulator: Emulator) -> None:
    """A function-call response completes, then steer.pending; the continuation gets the input."""
    call = json.dumps({"name": "lookup", "arguments": {"q": "status of rollout"}, "call_id": "c1"})
    metadata = {"emulator_function_call": call, "emulator_token_interval": "0.2"}
    question = "what is the rollout status"
    ws = connect(emulator)
    try:
        head = _start(ws, input=question, metadata=metadata, stream_id="tools")
        first = head[-1]["response"]["id"]
        head += _read_until(ws, lambda e: e["type"] == "response.function_call_arguments.delta")
        _steer(ws, first, "Also check the DB.")
        events = head + _read_until(ws, lambda e: e["type"] == "response.steer.pending")
        output = json.dumps({"ok": True})
        fco = {"type": "function_call_output", "call_id": "c1", "output": output}
        digest = {"emulator_reply": "context_digest"}
        create(ws, previous_response_id=first, input=[fco], metadata=digest, stream_id="tools")
        continued = until_terminal(ws)
        create(ws, previous_response_id=first, input=[fco], metadata=digest, stream_id="tools")
        again = until_terminal(ws)
        _steer(ws, first, "Late.")
        late = _failed(ws)
    finally:
        ws.close()
    kinds = [e["type"] for e in events]
    assert kinds[-2:] == ["response.completed", "response.steer.pending"]
    assert kinds.index("response.steer.accepted") < kinds.index("response.completed")
    assert _of_type(events, "response.incomplete") == []
    pending = events[-1]
    accepted = _of_type(events, "response.steer.accepted")[0]
    assert pending["reason"] == "waiting_for_required_input"
    assert pending["required_input"] == [
        {"type": "function_call_output", "call_id": "c1", "name": "lookup"}
    ]
    assert pending["steer"] == {"id": accepted["steer"]["id"], "previous_response_id": first}
    assert pending["stream_id"] == "tools" and accepted["stream_id"] == "tools"
    assert _numbers(events) == list(range(len(events)))

    final_call = _of_type(events, "response.completed")[0]["response"]["output"][0]
    steer_message = {"type": "message", "role": "user", "content": "Also check the DB."}
    expected = context_digest(
        [{"role": "user", "content": question}, final_call, steer_message, fco]
    )
    assert continued[-1]["type"] == "response.completed"
    assert text_of(continued) == expected
    # The queue is emptied by the first continuation: a second one sees no steering input.
    plain = context_digest([{"role": "user", "content": question}, final_call, fco])
    assert text_of(again) == plain
    assert late["error"]["code"] == "response_already_completed"
    assert late["stream_id"] == "tools"


def test_steer_of_a_waiting_tool_call_response_is_accepted_and_pending(emulator: Emulator) -> None:
    """A completed tool-call response still waits for its output: a steer is queued at once."""
    call = json.dumps({"name": "lookup", "arguments": {"q": "x"}, "call_id": "c7"})
    ws = connect(emulator)
    try:
        create(ws, model=STEERABLE, input="q", metadata={"emulator_function_call": call})
        events = until_terminal(ws)
        first = events[-1]["response"]["id"]
        _steer(ws, first, "Queue me.")
        accepted = recv(ws)
        pending = recv(ws)
    finally:
        ws.close()
    assert accepted["type"] == "response.steer.accepted"
    assert pending["type"] == "response.steer.pending"
    assert pending["steer"]["id"] == accepted["steer"]["id"]
    assert pending["required_input"][0]["call_id"] == "c7"
    assert [accepted["sequence_number"], pending["sequence_number"]] == [
        len(events),
        len(events) + 1,
    ]


# -- failures ----------------------------------------------------------------------------------


def test_steer_of_an_unknown_response_fails_with_response_not_found(emulator: Emulator) -> None:
    """An id this connection never ran (even one stored by another connection) is not found."""
    other = connect(emulator)
    try:
        stored = until_terminal_of(other, model=STEERABLE, input="hi", store=True)
    finally:
        other.close()
    ws = connect(emulator)
    try:
        _steer(ws, "resp_nope", "hi")
        unknown = _failed(ws)
        _steer(ws, stored, "hi")
        foreign = _failed(ws)
    finally:
        ws.close()
    for event in (unknown, foreign):
        assert event["error"]["code"] == "response_not_found"
        assert event["error"]["type"] == "invalid_request_error"
        assert "id" not in event["steer"] and event["steer"]["input"] == "hi"
        assert "stream_id" not in event
    assert unknown["steer"]["previous_response_id"] == "resp_nope"
    assert foreign["steer"]["previous_response_id"] == stored


def until_terminal_of(ws: websocket.WebSocket, **fields: Any) -> str:
    """Run one response to its end and return its id."""
    create(ws, **fields)
    return str(until_terminal(ws)[-1]["response"]["id"])


BAD_INPUTS = [
    pytest.param([], id="empty-list"),
    pytest.param("", id="empty-string"),
    pytest.param(42, id="number"),
    pytest.param(None, id="missing"),
    pytest.param([{"type": "function_call_output", "call_id": "c", "output": "x"}], id="tool"),
    pytest.param([{"role": "assistant", "content": "x"}], id="assistant"),
    pytest.param([{"role": "user", "content": [{"type": "output_text", "text": "x"}]}], id="part"),
    pytest.param([{"role": "user", "content": 7}], id="content-type"),
]


@pytest.mark.parametrize("bad", BAD_INPUTS)
def test_steer_with_bad_input_fails_with_invalid_input(emulator: Emulator, bad: Any) -> None:
    """A steer input that is not text or user messages fails; the response runs on."""
    ws = connect(emulator)
    try:
        head = _start(ws, stream_id="lane-a")
        first = head[-1]["response"]["id"]
        _steer(ws, first, bad)
        events = head + collect_lanes(ws, 1)
    finally:
        ws.close()
    [failed] = _of_type(events, "response.steer.failed")
    assert failed["error"]["code"] == "invalid_input"
    assert failed["steer"] == {"previous_response_id": first, "input": bad}
    assert failed["stream_id"] == "lane-a"
    assert events[-1]["type"] == "response.completed"
    assert _numbers(events) == list(range(len(events)))


@pytest.mark.parametrize("extra", [{"stream_id": "lane-a"}, {"metadata": {}}])
def test_steer_with_an_extra_field_fails_with_invalid_input(
    emulator: Emulator, extra: Dict[str, Any]
) -> None:
    """Only type, previous_response_id and input are allowed (stream_id included)."""
    ws = connect(emulator)
    try:
        head = _start(ws, stream_id="lane-a")
        first = head[-1]["response"]["id"]
        _steer(ws, first, "x", **extra)
        failed = _failed(ws)
        until_terminal(ws)
    finally:
        ws.close()
    assert failed["error"]["code"] == "invalid_input"
    assert next(iter(extra)) in failed["error"]["message"]
    assert failed["steer"]["input"] == "x" and "id" not in failed["steer"]


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"model": "gpt-5.5"}, id="model"),
        pytest.param(
            {"context_management": [{"type": "compaction", "compact_threshold": 1000}]},
            id="context_management",
        ),
    ],
)
def test_steer_of_an_unsteerable_response_fails_with_steering_not_supported(
    emulator: Emulator, fields: Dict[str, Any]
) -> None:
    """A model outside steering_models, or context_management, is not steerable."""
    ws = connect(emulator)
    try:
        head = _start(ws, **fields)
        first = head[-1]["response"]["id"]
        _steer(ws, first, "x")
        events = head + collect_lanes(ws, 1)
    finally:
        ws.close()
    [failed] = _of_type(events, "response.steer.failed")
    assert failed["error"]["code"] == "steering_not_supported"
    assert events[-1]["type"] == "response.completed"
    assert len(text_of(events).split()) == TOKENS


def test_steering_models_setting_chooses_the_steerable_models(emulator: Emulator) -> None:
    """EmulatorConfig.steering_models lists model prefixes that accept steering."""
    emulator.config.steering_models = ("gpt-emulator",)
    ws = connect(emulator)
    try:
        head = _start(ws, model="gpt-emulator-test")
        _steer(ws, head[-1]["response"]["id"], "x")
        event = _read_until(ws, lambda e: e["type"] in STEER_TYPES)[-1]
        collect_lanes(ws, 2)
    finally:
        ws.close()
    assert event["type"] == "response.steer.accepted"


def test_one_steer_over_the_limit_fails_with_too_many_pending_steers(emulator: Emulator) -> None:
    """max_pending_steers accepted-but-uncommitted steers per response; one more fails."""
    emulator.config.max_pending_steers = 2
    ws = connect(emulator)
    try:
        head = _start(ws, metadata={"emulator_ttft": "0.5"})
        first = head[-1]["response"]["id"]
        for text in ("s1", "s2", "s3"):
            _steer(ws, first, text)
        events = head + collect_lanes(ws, 2)
    finally:
        ws.close()
    steers = [e for e in events if e["type"] in STEER_TYPES]
    assert [e["type"] for e in steers] == [
        "response.steer.accepted",
        "response.steer.accepted",
        "response.steer.failed",
    ]
    assert steers[2]["error"]["code"] == "too_many_pending_steers"
    assert steers[2]["steer"]["input"] == "s3" and "id" not in steers[2]["steer"]


def test_steer_of_a_completed_response_fails_with_response_already_completed(
    emulator: Emulator,
) -> None:
    """A response that finished on this connection (and waits for nothing) cannot be steered."""
    ws = connect(emulator)
    try:
        create(ws, model=STEERABLE, input="short", stream_id="s")
        events = until_terminal(ws)
        _steer(ws, events[-1]["response"]["id"], "x")
        failed = _failed(ws)
    finally:
        ws.close()
    assert failed["error"]["code"] == "response_already_completed"
    assert failed["stream_id"] == "s"
    assert failed["sequence_number"] == len(events)  # the response's numbering goes on


def test_steer_fail_knob_answers_response_not_active(emulator: Emulator) -> None:
    """metadata.emulator_steer_fail makes every steer of that response fail with the code."""
    ws = connect(emulator)
    try:
        head = _start(ws, metadata={"emulator_steer_fail": "response_not_active", **LONG})
        _steer(ws, head[-1]["response"]["id"], "x")
        events = head + collect_lanes(ws, 1)
    finally:
        ws.close()
    [failed] = _of_type(events, "response.steer.failed")
    assert failed["error"]["code"] == "response_not_active"
    assert events[-1]["type"] == "response.completed"


def test_successor_creation_failed_ends_steered_without_a_successor(emulator: Emulator) -> None:
    """With the knob the steer is accepted, the response ends steered, then steer.failed."""
    ws = connect(emulator)
    try:
        head = _start(ws, metadata={"emulator_steer_fail": "successor_creation_failed", **LONG})
        first = head[-1]["response"]["id"]
        _steer(ws, first, "Go elsewhere.")
        events = head + collect_lanes(ws, 1)
        events.append(recv(ws))
        create(ws, model=STEERABLE, input="next")
        after = until_terminal(ws)
    finally:
        ws.close()
    accepted = _of_type(events, "response.steer.accepted")[0]
    assert events[-2]["type"] == "response.incomplete"
    assert events[-2]["response"]["incomplete_details"] == {"reason": "steered"}
    failed = events[-1]
    assert failed["type"] == "response.steer.failed"
    assert failed["error"]["code"] == "successor_creation_failed"
    assert failed["steer"] == {
        "id": accepted["steer"]["id"],
        "previous_response_id": first,
        "input": "Go elsewhere.",
    }
    assert _numbers(events) == list(range(len(events)))
    assert after[0]["response"]["previous_response_id"] is None  # no successor ran
    assert text_of(after) == "next"


def test_steers_of_a_response_cut_by_an_error_fail_without_a_successor(
    emulator: Emulator,
) -> None:
    """A mid-stream error ends the response: its accepted steers get successor_creation_failed."""
    metadata = {
        "emulator_refusal": " ".join(["No."] * TOKENS),
        "emulator_token_interval": "0.05",
        "emulator_error_after": "12",  # 7 deltas (0.35 s) after the first one
    }
    ws = connect(emulator)
    try:
        head = _start(ws, metadata=metadata)
        first = head[-1]["response"]["id"]
        head += _read_until(ws, lambda e: e["type"] == "response.refusal.delta")
        _steer(ws, first, "Never applied.")
        events = head + collect_lanes(ws, 1)
        failed = _failed(ws)
    finally:
        ws.close()
    assert events[-1]["type"] == "error"
    accepted = _of_type(events, "response.steer.accepted")[0]
    assert failed["error"]["code"] == "successor_creation_failed"
    assert failed["steer"]["id"] == accepted["steer"]["id"]
    assert failed["sequence_number"] > events[-1]["sequence_number"]


def test_steer_fail_knob_must_be_a_code(emulator: Emulator) -> None:
    """An empty emulator_steer_fail is a 400 naming the metadata key."""
    ws = connect(emulator)
    try:
        create(ws, model=STEERABLE, input="x", metadata={"emulator_steer_fail": " "})
        error = until_terminal(ws)[-1]
    finally:
        ws.close()
    assert error["type"] == "error"
    assert error["error"]["param"] == "metadata.emulator_steer_fail"
    assert "non-empty error code" in error["error"]["message"]


# -- lanes and shutdown ------------------------------------------------------------------------


def test_steer_events_stay_on_the_target_lane(emulator: Emulator) -> None:
    """With two lanes running, steer events carry the target's stream_id only."""
    ws = connect(emulator)
    try:
        create(ws, model=STEERABLE, input="a b c", metadata=dict(LONG), stream_id="A")
        create(ws, model=STEERABLE, input="x y z", metadata=dict(LONG), stream_id="B")
        events = _read_until(ws, lambda e: e["type"] == "response.created")
        events += _read_until(ws, lambda e: e["type"] == "response.created")
        ids = {e["stream_id"]: e["response"]["id"] for e in _of_type(events, "response.created")}
        _steer(ws, ids["A"], "Redirect A.")
        _steer(ws, ids["B"], [])  # a failure for B
        events += collect_lanes(ws, 3)
    finally:
        ws.close()
    by_lane: Dict[Optional[str], List[Event]] = {}
    for event in events:
        by_lane.setdefault(event.get("stream_id"), []).append(event)
    assert set(by_lane) == {"A", "B"}
    lane_a, lane_b = by_lane["A"], by_lane["B"]
    assert [e["type"] for e in lane_a if e["type"] in STEER_TYPES] == ["response.steer.accepted"]
    assert [e["type"] for e in lane_b if e["type"] in STEER_TYPES] == ["response.steer.failed"]
    assert lane_b[-1]["type"] == "response.completed" and len(text_of(lane_b).split()) == TOKENS
    ends_a = [e["type"] for e in lane_a if e["type"] in TERMINAL]
    assert ends_a == ["response.incomplete", "response.completed"]
    assert text_of(lane_a[lane_a.index(_of_type(lane_a, "response.created")[1]) :]) == "Redirect A."
    assert _numbers(lane_b) == list(range(len(lane_b)))


def test_closing_the_socket_mid_steer_stops_everything(emulator: Emulator) -> None:
    """A client that steers and vanishes leaves no task behind; the emulator serves on."""
    ws = connect(emulator)
    head = _start(ws, store=True)
    first = head[-1]["response"]["id"]
    _steer(ws, first, "Bye.")
    assert _read_until(ws, lambda e: e["type"] in STEER_TYPES)[-1]["type"] == (
        "response.steer.accepted"
    )
    ws.close()
    again = connect(emulator)
    try:
        create(again, model=STEERABLE, input="still here")
        assert text_of(until_terminal(again)) == "still here"
    finally:
        again.close()
    deadline = time.monotonic() + 3.0
    stored = emulator.stored(first)
    while stored is not None and stored["status"] == "in_progress":
        assert time.monotonic() < deadline, "the steered response never ended"
        time.sleep(0.01)
        stored = emulator.stored(first)
    assert stored is not None
