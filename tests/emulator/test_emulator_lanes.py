"""Lanes (stream_id): validation, limits, per-lane FIFO, concurrency, the 16-active cap, modes."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from emutools import ask, collect_lanes, connect, create, text_of, until_terminal

from openai_ws.emulator import Emulator


def _by_lane(events: List[Dict[str, Any]]) -> Dict[Any, List[Dict[str, Any]]]:
    lanes: Dict[Any, List[Dict[str, Any]]] = {}
    for event in events:
        lanes.setdefault(event.get("stream_id"), []).append(event)
    return lanes


def test_two_lanes_run_concurrently_with_interleaved_events(emulator: Emulator) -> None:
    """Responses on two lanes overlap; each event carries its lane's stream_id."""
    emulator.config.token_interval = 0.005
    ws = connect(emulator)
    try:
        create(ws, input="a1 a2 a3 a4 a5 a6", stream_id="alpha")
        create(ws, input="b1 b2 b3 b4 b5 b6", stream_id="beta")
        events = collect_lanes(ws, 2)
    finally:
        ws.close()
    lanes = _by_lane(events)
    assert set(lanes) == {"alpha", "beta"}
    assert text_of(lanes["alpha"]) == "a1 a2 a3 a4 a5 a6"
    assert text_of(lanes["beta"]) == "b1 b2 b3 b4 b5 b6"
    for lane_events in lanes.values():
        assert [e["sequence_number"] for e in lane_events] == list(range(len(lane_events)))
    order = [e["stream_id"] for e in events if e["type"] == "response.output_text.delta"]
    switches = sum(1 for a, b in zip(order, order[1:]) if a != b)
    assert switches >= 3, order


def test_same_lane_is_fifo(emulator: Emulator) -> None:
    """A second create on a busy lane starts only after the first one's terminal event."""
    emulator.config.token_interval = 0.002
    ws = connect(emulator)
    try:
        create(ws, input="first answer here", stream_id="one")
        create(ws, input="second answer", stream_id="one")
        events = collect_lanes(ws, 2)
    finally:
        ws.close()
    kinds = [e["type"] for e in events]
    first_terminal = kinds.index("response.completed")
    assert kinds.count("response.created") == 2
    assert kinds.index("response.created", 1) == first_terminal + 1
    assert all(e["stream_id"] == "one" for e in events)
    assert text_of(events[: first_terminal + 1]) == "first answer here"
    assert text_of(events[first_terminal + 1 :]) == "second answer"


def test_default_lane_is_fifo_and_untagged(emulator: Emulator) -> None:
    """Without stream_id requests queue in order and no event carries stream_id."""
    emulator.config.token_interval = 0.002
    ws = connect(emulator)
    try:
        for word in ("one two", "three four", "five six"):
            create(ws, input=word)
        events = collect_lanes(ws, 3)
    finally:
        ws.close()
    assert all("stream_id" not in e for e in events)
    texts = []
    current: List[Dict[str, Any]] = []
    for event in events:
        current.append(event)
        if event["type"] == "response.completed":
            texts.append(text_of(current))
            current = []
    assert texts == ["one two", "three four", "five six"]


def test_default_lane_runs_beside_named_lanes(emulator: Emulator) -> None:
    """The default lane is a lane of its own: it does not wait for named lanes."""
    emulator.config.ttft = 0.15
    ws = connect(emulator)
    try:
        create(ws, input="named", stream_id="n1")
        create(ws, input="default")
        events = collect_lanes(ws, 2)
    finally:
        ws.close()
    kinds = [(e["type"], e.get("stream_id")) for e in events]
    assert kinds.index(("response.created", None)) < kinds.index(("response.completed", "n1"))


def test_sixteen_active_cap_queues_the_seventeenth(emulator: Emulator) -> None:
    """At most 16 responses run at once per connection; the 17th waits but is not rejected."""
    emulator.config.ttft = 0.2
    ws = connect(emulator)
    try:
        for index in range(17):
            create(ws, input=f"lane {index}", stream_id=f"lane-{index}")
        events = collect_lanes(ws, 17)
    finally:
        ws.close()
    assert not [e for e in events if e["type"] == "error"]
    created_order = [e["stream_id"] for e in events if e["type"] == "response.created"]
    assert len(created_order) == 17
    first_terminal = next(i for i, e in enumerate(events) if e["type"] == "response.completed")
    late = next(i for i, e in enumerate(events) if e.get("stream_id") == "lane-16")
    assert late > first_terminal
    assert set(created_order[:16]) == {f"lane-{i}" for i in range(16)}


def test_active_cap_is_configurable(emulator: Emulator) -> None:
    """max_active_responses=1 serialises even distinct lanes."""
    emulator.config.max_active_responses = 1
    emulator.config.ttft = 0.05
    ws = connect(emulator)
    try:
        create(ws, input="x", stream_id="a")
        create(ws, input="y", stream_id="b")
        events = collect_lanes(ws, 2)
    finally:
        ws.close()
    kinds = [e["type"] for e in events]
    assert kinds.index("response.created", 1) > kinds.index("response.completed")


def test_thirty_third_lane_name_is_rejected_with_echo(emulator: Emulator) -> None:
    """The 33rd distinct stream_id gets websocket_stream_limit_reached echoing it; old ones work."""
    ws = connect(emulator)
    try:
        for index in range(32):
            assert ask(ws, input="x", stream_id=f"s{index}")[-1]["type"] == "response.completed"
        error = ask(ws, input="x", stream_id="s32")[-1]
        assert error["type"] == "error" and error["status"] == 400
        assert error["error"]["code"] == "websocket_stream_limit_reached"
        assert error["error"]["param"] == "stream_id"
        assert error["stream_id"] == "s32"
        assert ask(ws, input="x", stream_id="s5")[-1]["type"] == "response.completed"
        assert ask(ws, input="x")[-1]["type"] == "response.completed"
    finally:
        ws.close()


@pytest.mark.parametrize("bad", ["", "a" * 257, "has space", "naïve", "semi;colon", 42, True])
def test_invalid_stream_ids_are_rejected_without_echo(emulator: Emulator, bad: Any) -> None:
    """stream_id outside 1-256 chars of [A-Za-z0-9_.-] gets invalid_stream_id and no echo."""
    ws = connect(emulator)
    try:
        error = ask(ws, input="x", stream_id=bad)[-1]
        assert error["type"] == "error" and error["status"] == 400
        assert error["error"]["code"] == "invalid_stream_id"
        assert error["error"]["param"] == "stream_id"
        assert "stream_id" not in error
        assert ask(ws, input="x", stream_id="A-z_0.9" + "x" * 249)[-1]["type"] == (
            "response.completed"
        )
    finally:
        ws.close()


def test_request_errors_on_a_lane_echo_its_stream_id(emulator: Emulator) -> None:
    """A request-scoped error of a named lane carries that lane's stream_id."""
    ws = connect(emulator)
    try:
        error = ask(ws, input="x", stream_id="lane-e", temperature="hot")[-1]
        assert error["stream_id"] == "lane-e" and error["error"]["code"] == "invalid_type"
        error = ask(ws, input="x", stream_id="lane-e", previous_response_id="resp_nope")[-1]
        assert error["stream_id"] == "lane-e"
        assert error["error"]["code"] == "previous_response_not_found"
    finally:
        ws.close()


def test_stream_id_mode_reject(emulator: Emulator) -> None:
    """stream_id_mode=reject: any stream_id gets a 400 unknown_parameter error without echo."""
    emulator.config.stream_id_mode = "reject"
    ws = connect(emulator)
    try:
        error = ask(ws, input="x", stream_id="lane")[-1]
        assert error["type"] == "error" and error["status"] == 400
        assert error["error"]["code"] == "unknown_parameter"
        assert error["error"]["param"] == "stream_id"
        assert "stream_id" in error["error"]["message"]
        assert "stream_id" not in error
        assert text_of(ask(ws, input="plain works")) == "plain works"
    finally:
        ws.close()


def test_stream_id_mode_ignore(emulator: Emulator) -> None:
    """stream_id_mode=ignore: stream_id is dropped, events are untagged and strictly FIFO."""
    emulator.config.stream_id_mode = "ignore"
    emulator.config.token_interval = 0.002
    ws = connect(emulator)
    try:
        create(ws, input="one one", stream_id="a")
        create(ws, input="two two", stream_id="b")
        first = until_terminal(ws)
        second = until_terminal(ws)
    finally:
        ws.close()
    assert all("stream_id" not in e for e in first + second)
    assert (text_of(first), text_of(second)) == ("one one", "two two")


def test_lane_reuse_without_parent_starts_fresh(emulator: Emulator) -> None:
    """Reusing a lane without previous_response_id starts a new conversation."""
    ws = connect(emulator)
    try:
        first = ask(ws, input="x", stream_id="r")[-1]["response"]
        second = ask(ws, input="y", stream_id="r")[-1]["response"]
    finally:
        ws.close()
    assert second["previous_response_id"] is None
    assert second["usage"]["input_tokens_details"]["cached_tokens"] == 0
    assert first["id"] != second["id"]


def test_events_of_many_lanes_each_start_at_sequence_zero(emulator: Emulator) -> None:
    """sequence_number restarts at 0 for every response, on every lane."""
    ws = connect(emulator)
    try:
        for lane in ("x", "y", "z"):
            create(ws, input="a b c", stream_id=lane)
        events = collect_lanes(ws, 3)
    finally:
        ws.close()
    for lane_events in _by_lane(events).values():
        assert lane_events[0]["sequence_number"] == 0
        assert lane_events[0]["type"] == "response.created"
