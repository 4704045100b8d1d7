"""What the session does with frames no well-behaved server sends.

A scripted raw server (tests/silent_server.py) answers each request with exact
frames: mistyped events, fragmented messages, server pings, odd lane tags.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List

import pytest
from servers import SilentServer, frame, response

from openai_ws import (
    OpenAI,
    ProtocolError,
    ResponseCompleted,
    ResponseOutputTextDelta,
)

KEY = "sk-wire-test"


def text_frame(event: Dict[str, Any]) -> bytes:
    return frame(0x1, json.dumps(event).encode())


def scripted(build: Callable[[Dict[str, Any], Callable[..., Dict[str, Any]]], List[bytes]]):
    """A script that tags every event with the request's lane, as a server does."""

    def script(text: str) -> List[bytes]:
        request = json.loads(text)

        def tag(**event: Any) -> Dict[str, Any]:
            if "stream_id" in request:
                event["stream_id"] = request["stream_id"]
            return event

        return build(request, tag)

    return script


def delta(tag: Callable[..., Dict[str, Any]], text: str, **overrides: Any) -> Dict[str, Any]:
    event = tag(
        type="response.output_text.delta",
        item_id="msg_1",
        output_index=0,
        content_index=0,
        delta=text,
        sequence_number=1,
    )
    event.update(overrides)
    return event


def ask(session: Any, **kw: Any) -> Any:
    return session.send(model="m", input="hi", timeout=5, **kw)


def test_mistyped_event_is_skipped_and_counted() -> None:
    """A delta with a mistyped field is counted and skipped; the rest arrives."""

    def build(request: Dict[str, Any], tag: Any) -> List[bytes]:
        return [
            text_frame(tag(type="response.created", response=response("resp_1", "in_progress"))),
            text_frame(delta(tag, "bad", output_index="zero")),
            text_frame(delta(tag, "good")),
            text_frame(
                tag(type="response.completed", response=response("resp_1", "completed", "good"))
            ),
        ]

    with SilentServer(scripted(build)) as server:
        client = OpenAI(api_key=KEY, base_url=server.url, max_retries=0)
        with client.ws_session(ping_interval=None) as session:
            events = list(session.stream(model="m", input="hi", timeout=5))
            deltas = [e.delta for e in events if isinstance(e, ResponseOutputTextDelta)]
            assert deltas == ["good"]
            assert isinstance(events[-1], ResponseCompleted)
            assert session.stats.malformed_frames == 1


def test_mistyped_terminal_event_fails_its_request_promptly() -> None:
    """A terminal event that does not fit its type raises ProtocolError; the session goes on."""
    calls: List[int] = []

    def build(request: Dict[str, Any], tag: Any) -> List[bytes]:
        calls.append(1)
        done = response("resp_1", "completed", "ok")
        if len(calls) == 1:
            done["created_at"] = "yesterday"
        return [
            text_frame(tag(type="response.created", response=response("resp_1", "in_progress"))),
            text_frame(tag(type="response.completed", response=done)),
        ]

    with SilentServer(scripted(build)) as server:
        client = OpenAI(api_key=KEY, base_url=server.url, max_retries=0)
        with client.ws_session(ping_interval=None) as session:
            with pytest.raises(ProtocolError) as info:
                ask(session)
            assert info.value.event_type == "response.completed"
            assert "created_at" in str(info.value)
            assert ask(session).output_text == "ok"


def test_fragmented_message_and_server_ping() -> None:
    """A message split in fragments around a server ping is reassembled; the ping is answered."""

    def build(request: Dict[str, Any], tag: Any) -> List[bytes]:
        created = json.dumps(tag(type="response.created", response=response("r", "in_progress")))
        half = len(created) // 2
        return [
            frame(0x1, created[:half].encode(), fin=False),
            frame(0x9, b"are you there"),
            frame(0x0, created[half:].encode()),
            text_frame(
                tag(type="response.completed", response=response("r", "completed", "pieced"))
            ),
        ]

    with SilentServer(scripted(build)) as server:
        client = OpenAI(api_key=KEY, base_url=server.url, max_retries=0)
        with client.ws_session(ping_interval=None) as session:
            assert ask(session).output_text == "pieced"
        assert server.pongs == 1


def test_odd_lane_tags_and_binary_frames_never_kill_the_reader() -> None:
    """A stream_id that is not a string, a non-object frame and a binary frame are skipped."""

    def build(request: Dict[str, Any], tag: Any) -> List[bytes]:
        return [
            text_frame({"type": "response.created", "stream_id": ["not", "a", "name"]}),
            frame(0x1, b"[1, 2, 3]"),
            frame(0x2, b"\x00\x01binary"),
            text_frame(tag(type="response.created", response=response("r", "in_progress"))),
            text_frame(tag(type="response.completed", response=response("r", "completed", "fine"))),
        ]

    with SilentServer(scripted(build)) as server:
        client = OpenAI(api_key=KEY, base_url=server.url, max_retries=0)
        with client.ws_session(ping_interval=None) as session:
            assert ask(session).output_text == "fine"
            stats = session.stats
    assert stats.unroutable_events == 1
    assert stats.malformed_frames == 1
    assert stats.binary_frames == 1


def test_send_rebuilds_output_missing_from_the_terminal_event() -> None:
    """A terminal response without output gets the items of output_item.done events."""
    item = response("r", "completed", "from the items")["output"][0]

    def build(request: Dict[str, Any], tag: Any) -> List[bytes]:
        done = response("r", "completed")
        done["output"] = None
        return [
            text_frame(tag(type="response.created", response=response("r", "in_progress"))),
            text_frame(tag(type="response.output_item.done", output_index=0, item=item)),
            text_frame(tag(type="response.completed", response=done)),
        ]

    with SilentServer(scripted(build)) as server:
        client = OpenAI(api_key=KEY, base_url=server.url, max_retries=0)
        with client.ws_session(ping_interval=None) as session:
            assert ask(session).output_text == "from the items"
