"""WebSocket protocol of the emulator: handshake, auth, event sequences, request errors, quirks."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Dict, List

import aiohttp
import pytest
import requests
import websocket
from emutools import (
    RESPONSE_KEYS,
    ask,
    connect,
    create,
    frames_until_close,
    http,
    recv,
    text_of,
    types,
    until_terminal,
)

from openai_ws.emulator import Emulator

TEXT_SEQUENCE = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
TEXT_TAIL = [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def _assert_text_sequence(events: List[Dict[str, Any]], text: str) -> None:
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert types(events) == TEXT_SEQUENCE + [d["type"] for d in deltas] + TEXT_TAIL
    assert text_of(events) == text
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


# -- handshake and auth ------------------------------------------------------------------------


def test_upgrade_without_key_is_401_json(emulator: Emulator) -> None:
    """A WebSocket upgrade without a bearer token is refused with 401 and the JSON error body."""
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(emulator.ws_url, timeout=5)
    assert info.value.status_code == 401
    body = json.loads(info.value.resp_body)
    assert body["error"]["type"] == "invalid_request_error"
    assert emulator.stats.ws_connections == 0
    assert emulator.stats.ws_rejected == 1


def test_upgrade_with_wrong_key_is_401_and_never_echoes_the_key(emulator: Emulator) -> None:
    """A wrong key gets 401 invalid_api_key whose message shows only a redacted key."""
    wrong = "sk-this-is-a-wrong-secret-key-1234"
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(
            emulator.ws_url, header=[f"Authorization: Bearer {wrong}"], timeout=5
        )
    assert info.value.status_code == 401
    error = json.loads(info.value.resp_body)["error"]
    assert error["code"] == "invalid_api_key"
    assert error["param"] is None
    assert error["message"].startswith("Incorrect API key provided: sk-")
    assert wrong not in error["message"]
    assert emulator.api_key not in error["message"]


def test_http_without_or_with_wrong_key_is_401(emulator: Emulator) -> None:
    """HTTP endpoints answer 401 with the service's error body for a missing or wrong key."""
    url = emulator.base_url + "/responses"
    missing = requests.post(url, json={"model": "m", "input": "x"}, timeout=5)
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    wrong = requests.post(
        url,
        json={"model": "m", "input": "x"},
        headers={"Authorization": "Bearer sk-nope-nope-nope"},
        timeout=5,
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert "sk-nope-nope-nope" not in wrong.text
    assert emulator.stats.auth_failures == 2


def test_auth_can_be_switched_off(emulator: Emulator) -> None:
    """With require_auth False any client may connect."""
    emulator.config.require_auth = False
    ws = websocket.create_connection(emulator.ws_url, timeout=5)
    try:
        assert text_of(ask(ws, input="open door")) == "open door"
    finally:
        ws.close()


def test_beta_headers_unknown_headers_and_query_are_ignored(emulator: Emulator) -> None:
    """OpenAI-Beta/Organization/Project, unknown headers and query parameters do not matter."""
    ws = websocket.create_connection(
        emulator.ws_url + "?foo=bar&beta=1",
        header=[
            f"Authorization: Bearer {emulator.api_key}",
            "OpenAI-Beta: responses_websockets=2026-02-06",
            "OpenAI-Organization: org-x",
            "OpenAI-Project: proj-y",
            "X-Whatever: 1",
        ],
        timeout=5,
    )
    try:
        assert text_of(ask(ws, input="still fine")) == "still fine"
    finally:
        ws.close()


def test_permessage_deflate_is_negotiated_when_offered(emulator: Emulator) -> None:
    """A client offering permessage-deflate gets it and still receives every event in order."""

    async def run() -> List[Dict[str, Any]]:
        headers = {"Authorization": f"Bearer {emulator.api_key}"}
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(emulator.ws_url, headers=headers, compress=15) as ws,
        ):
            assert ws.compress == 15
            request = {
                "type": "response.create",
                "model": "m",
                "input": "squeeze me please",
                "metadata": {"emulator_output_tokens": "300"},
            }
            await ws.send_str(json.dumps(request))
            events = []
            while True:
                event = json.loads(await ws.receive_str())
                events.append(event)
                if event["type"] == "response.completed":
                    return events

    events = asyncio.run(run())
    assert sum(1 for e in events if e["type"] == "response.output_text.delta") == 300
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_get_without_upgrade_is_a_json_400(emulator: Emulator) -> None:
    """A plain GET on /v1/responses is not an upgrade and gets a JSON error."""
    response = http(emulator).get(emulator.base_url + "/responses", timeout=5)
    assert response.status_code == 400
    assert "error" in response.json()


# -- answers ---------------------------------------------------------------------------------


def test_text_answer_event_sequence_and_response_shape(emulator: Emulator) -> None:
    """Echo answer: full SSE-identical sequence, one token per delta, full Response objects."""
    ws = connect(emulator)
    try:
        events = ask(ws, input="  Hello there,  world! ", instructions="be brief")
    finally:
        ws.close()
    _assert_text_sequence(events, "  Hello there,  world! ")
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert deltas == ["  Hello ", "there,  ", "world! "]
    created, in_progress = events[0]["response"], events[1]["response"]
    for obj in (created, in_progress):
        assert set(obj) >= RESPONSE_KEYS
        assert obj["status"] == "in_progress"
        assert obj["output"] == []
        assert obj["usage"] is None
    item_id = events[2]["item"]["id"]
    assert item_id.startswith("msg_")
    assert events[2]["item"]["status"] == "in_progress"
    for event in events[3:-2]:
        assert event["item_id"] == item_id
        assert event["output_index"] == 0
        assert event["content_index"] == 0
    for event in events:
        assert "stream_id" not in event
        if event["type"] in ("response.output_text.delta", "response.output_text.done"):
            assert event["logprobs"] == []
    final = events[-1]["response"]
    assert set(final) >= RESPONSE_KEYS
    assert final["id"] == created["id"] and final["id"].startswith("resp_")
    assert final["status"] == "completed"
    assert final["instructions"] == "be brief"
    assert final["model"] == "gpt-emulator-test"
    assert final["output"] == [events[-2]["item"]]
    assert final["output"][0]["content"][0] == {
        "type": "output_text",
        "annotations": [],
        "logprobs": [],
        "text": "  Hello there,  world! ",
    }
    usage = final["usage"]
    assert usage["output_tokens"] == 3
    assert usage["input_tokens"] > 0
    assert usage["input_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 0}
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_echo_uses_last_user_message_and_tool_output(emulator: Emulator) -> None:
    """List input echoes the last user message text; a trailing function_call_output is quoted."""
    ws = connect(emulator)
    try:
        messages = [
            {"type": "message", "role": "user", "content": "first"},
            {"role": "assistant", "content": "ignored"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "second "},
                    {"type": "input_text", "text": "part"},
                ],
            },
        ]
        assert text_of(ask(ws, input=messages)) == "second part"
        tool = [{"type": "function_call_output", "call_id": "call_1", "output": '{"ok":true}'}]
        assert text_of(ask(ws, input=tool)) == 'Tool said: {"ok":true}'
    finally:
        ws.close()


def test_output_tokens_setting_repeats_or_truncates(emulator: Emulator) -> None:
    """output_tokens (config or metadata) gives exactly N deltas."""
    emulator.config.output_tokens = 7
    ws = connect(emulator)
    try:
        events = ask(ws, input="one two three")
        assert text_of(events) == "one two three one two three one "
        assert events[-1]["response"]["usage"]["output_tokens"] == 7
        events = ask(ws, input="one two three", metadata={"emulator_output_tokens": "2"})
        assert text_of(events) == "one two "
    finally:
        ws.close()


def test_refusal_answer(emulator: Emulator) -> None:
    """emulator_refusal streams a refusal content part with refusal.delta/done events."""
    ws = connect(emulator)
    try:
        events = ask(ws, input="x", metadata={"emulator_refusal": "I can't help with that."})
    finally:
        ws.close()
    kinds = types(events)
    assert kinds[:4] == TEXT_SEQUENCE
    assert events[3]["part"] == {"type": "refusal", "refusal": ""}
    deltas = [e for e in events if e["type"] == "response.refusal.delta"]
    assert "".join(d["delta"] for d in deltas) == "I can't help with that."
    assert kinds[4 + len(deltas) :] == [
        "response.refusal.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    content = events[-1]["response"]["output"][0]["content"]
    assert content == [{"type": "refusal", "refusal": "I can't help with that."}]


def test_function_call_answer(emulator: Emulator) -> None:
    """emulator_function_call yields one function_call item with streamed arguments, no message."""
    spec = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}
    ws = connect(emulator)
    try:
        events = ask(ws, input="weather?", metadata={"emulator_function_call": json.dumps(spec)})
    finally:
        ws.close()
    added = events[2]
    assert added["type"] == "response.output_item.added"
    item = added["item"]
    assert item["type"] == "function_call" and item["name"] == "get_weather"
    assert item["id"].startswith("fc_") and item["call_id"].startswith("call_")
    assert item["arguments"] == "" and item["status"] == "in_progress"
    deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert len(deltas) >= 2
    arguments = "".join(d["delta"] for d in deltas)
    assert json.loads(arguments) == spec["arguments"]
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert done["arguments"] == arguments and done["name"] == "get_weather"
    final = events[-1]["response"]
    assert events[-1]["type"] == "response.completed"
    assert [o["type"] for o in final["output"]] == ["function_call"]
    assert final["output"][0]["status"] == "completed"


def test_parallel_function_calls(emulator: Emulator) -> None:
    """A JSON list in emulator_function_call produces several function_call items in order."""
    specs = [
        {"name": "a", "arguments": {"x": 1}, "call_id": "call_fixed"},
        {"name": "b", "arguments": "{}"},
    ]
    ws = connect(emulator)
    try:
        events = ask(ws, input="go", metadata={"emulator_function_call": json.dumps(specs)})
    finally:
        ws.close()
    output = events[-1]["response"]["output"]
    assert [o["name"] for o in output] == ["a", "b"]
    assert output[0]["call_id"] == "call_fixed"
    assert output[1]["arguments"] == "{}"
    indexes = {e["output_index"] for e in events if "output_index" in e}
    assert indexes == {0, 1}


def test_scripted_calls_are_answered_in_text_once_tool_outputs_come_back(
    emulator: Emulator,
) -> None:
    """An agent loop ends: input ending with tool outputs gets text even if calls are scripted."""
    calls = [{"name": "f", "arguments": {"n": 1}}, {"name": "g", "arguments": {"n": 2}}]
    metadata = {"emulator_function_call": json.dumps(calls)}
    ws = connect(emulator)
    try:
        first = ask(ws, input="go", store=False, metadata=metadata)[-1]["response"]
        outputs = [
            {"type": "function_call_output", "call_id": item["call_id"], "output": f"out-{i}"}
            for i, item in enumerate(first["output"])
        ]
        second = ask(
            ws, input=outputs, store=False, previous_response_id=first["id"], metadata=metadata
        )
    finally:
        ws.close()
    assert [o["type"] for o in first["output"]] == ["function_call", "function_call"]
    assert [o["type"] for o in second[-1]["response"]["output"]] == ["message"]
    assert text_of(second) == "Tool said: out-0; out-1"


def test_reasoning_summary_before_message(emulator: Emulator) -> None:
    """emulator_reasoning adds a reasoning item with summary events before the message."""
    ws = connect(emulator)
    try:
        events = ask(
            ws,
            input="answer",
            include=["reasoning.encrypted_content"],
            metadata={"emulator_reasoning": "Thinking hard about it."},
        )
    finally:
        ws.close()
    kinds = types(events)
    assert kinds[2:4] == ["response.output_item.added", "response.reasoning_summary_part.added"]
    summary = "".join(
        e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta"
    )
    assert summary == "Thinking hard about it."
    assert kinds.index("response.reasoning_summary_part.done") < kinds.index(
        "response.content_part.added"
    )
    output = events[-1]["response"]["output"]
    assert [o["type"] for o in output] == ["reasoning", "message"]
    assert output[0]["id"].startswith("rs_")
    assert output[0]["summary"] == [{"type": "summary_text", "text": summary}]
    assert output[0]["encrypted_content"]
    usage = events[-1]["response"]["usage"]
    assert usage["output_tokens_details"]["reasoning_tokens"] == 4
    assert usage["output_tokens"] == 4 + 1


def test_max_output_tokens_truncates_to_incomplete(emulator: Emulator) -> None:
    """max_output_tokens cuts the answer and ends with response.incomplete (max_output_tokens)."""
    ws = connect(emulator)
    try:
        events = ask(ws, input="a b c d e f", max_output_tokens=3)
    finally:
        ws.close()
    assert text_of(events) == "a b c "
    assert events[-1]["type"] == "response.incomplete"
    final = events[-1]["response"]
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete"
    assert final["usage"]["output_tokens"] == 3


def test_generate_false_is_a_full_empty_lifecycle_and_a_parent(emulator: Emulator) -> None:
    """generate:false gives created/in_progress/completed, empty output, and is a valid parent."""
    ws = connect(emulator)
    try:
        warm = ask(ws, generate=False, store=False, instructions="sys", input=[])
        assert types(warm) == ["response.created", "response.in_progress", "response.completed"]
        final = warm[-1]["response"]
        assert final["output"] == [] and final["usage"]["output_tokens"] == 0
        follow = ask(ws, store=False, previous_response_id=final["id"], input="next")
        assert follow[-1]["type"] == "response.completed"
        assert text_of(follow) == "next"
    finally:
        ws.close()


def test_metadata_is_echoed(emulator: Emulator) -> None:
    """The request's metadata comes back on the Response."""
    ws = connect(emulator)
    try:
        metadata = {"user_tag": "abc", "emulator_text": "fixed"}
        events = ask(ws, input="x", metadata=metadata)
    finally:
        ws.close()
    assert events[-1]["response"]["metadata"] == metadata
    assert text_of(events) == "fixed"


# -- request errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code", "param"),
    [
        ("{not json", "invalid_json", None),
        ("[1, 2]", "invalid_type", "(root)"),
        ('{"model": "m"}', "missing_required_parameter", "type"),
        ('{"type": "response.cancel"}', "invalid_value", "type"),
        ('{"type": "response.create", "input": "x"}', "missing_required_parameter", "model"),
        (
            '{"type": "response.create", "model": "m", "temperature": "1.2"}',
            "invalid_type",
            "temperature",
        ),
        ('{"type": "response.create", "model": "m", "input": 5}', "invalid_type", "input"),
        ('{"type": "response.create", "model": 5}', "invalid_type", "model"),
        ('{"type": "response.create", "model": "m", "bogus": 1}', "unknown_parameter", "bogus"),
        (
            '{"type": "response.create", "model": "m", "temperature": 3}',
            "integer_above_max_value",
            "temperature",
        ),
        (
            '{"type": "response.create", "model": "m", "metadata": {"k": 1}}',
            "invalid_type",
            "metadata.k",
        ),
        (
            '{"type": "response.create", "model": "m", "previous_response_id": "resp_1", '
            '"conversation": "conv_1"}',
            "mutually_exclusive_parameters",
            "previous_response_id",
        ),
    ],
)
def test_bad_client_frames_get_an_error_event_and_the_socket_stays_open(
    emulator: Emulator, frame: str, code: str, param: Any
) -> None:
    """Malformed JSON, non-objects, unknown types and mistyped fields: 400 error, socket usable."""
    ws = connect(emulator)
    try:
        ws.send(frame)
        error = recv(ws)
        assert error["type"] == "error"
        assert error["status"] == 400
        assert error["error"]["type"] == "invalid_request_error"
        assert error["error"]["code"] == code
        assert error["error"]["param"] == param
        assert "stream_id" not in error and "sequence_number" not in error
        assert text_of(ask(ws, input="still here")) == "still here"
    finally:
        ws.close()


def test_stream_and_stream_options_are_tolerated(emulator: Emulator) -> None:
    """stream:true and stream_options in a WS create are accepted and ignored."""
    ws = connect(emulator)
    try:
        events = ask(ws, input="ok", stream=True, stream_options={"include_obfuscation": False})
    finally:
        ws.close()
    assert events[-1]["type"] == "response.completed"


def test_background_is_rejected_over_websocket(emulator: Emulator) -> None:
    """background:true gets a 400 error event with param background."""
    ws = connect(emulator)
    try:
        error = ask(ws, input="x", background=True)[-1]
        assert error["type"] == "error" and error["status"] == 400
        assert error["error"]["param"] == "background"
        emulator.config.reject_background = False
        assert ask(ws, input="x", background=True)[-1]["type"] == "response.completed"
    finally:
        ws.close()


def test_steer_of_an_unknown_response_is_answered_with_steer_failed(emulator: Emulator) -> None:
    """A steer for an id this connection never ran gets response_not_found with the input back.

    The rest of steering is in test_emulator_steering.py.
    """
    ws = connect(emulator)
    try:
        ws.send(
            json.dumps({"type": "response.steer", "previous_response_id": "resp_x", "input": "hi"})
        )
        event = recv(ws)
    finally:
        ws.close()
    assert event["type"] == "response.steer.failed"
    assert event["error"]["code"] == "response_not_found"
    assert event["steer"] == {"previous_response_id": "resp_x", "input": "hi"}


# -- quirks and limits ------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["temperature", "top_p"])
def test_decimal_sampling_closes_1000_without_event_but_http_answers(
    emulator: Emulator, field: str
) -> None:
    """A decimal temperature/top_p closes with 1000, empty reason, no event; HTTP answers."""
    ws = connect(emulator)
    try:
        create(ws, input="x", **{field: 0.7})
        frames, code = frames_until_close(ws)
    finally:
        ws.close()
    assert frames == []
    assert code == 1000
    assert emulator.stats.closes_sent == {1000: 1}
    body = {"model": "m", "input": "via http", field: 0.7}
    response = http(emulator).post(emulator.base_url + "/responses", json=body, timeout=5)
    assert response.status_code == 200
    assert response.json()["output"][0]["content"][0]["text"] == "via http"


def test_integral_sampling_values_and_disabled_quirk_do_not_close(emulator: Emulator) -> None:
    """temperature 1 / 1.0 work; with the quirk off a decimal works too."""
    ws = connect(emulator)
    try:
        assert ask(ws, input="x", temperature=1)[-1]["type"] == "response.completed"
        assert ask(ws, input="x", temperature=1.0, top_p=1)[-1]["type"] == "response.completed"
        emulator.config.decimal_sampling_quirk = False
        final = ask(ws, input="x", temperature=1.2)[-1]
        assert final["type"] == "response.completed"
        assert final["response"]["temperature"] == 1.2
    finally:
        ws.close()


def test_connection_age_limit_error_then_close(emulator: Emulator) -> None:
    """After max_connection_age the next create gets connection_limit_reached, then 1000."""
    emulator.config.max_connection_age = 0.2
    ws = connect(emulator)
    try:
        assert ask(ws, input="young")[-1]["type"] == "response.completed"
        time.sleep(0.25)
        create(ws, input="old")
        frames, code = frames_until_close(ws)
    finally:
        ws.close()
    assert len(frames) == 1
    error = json.loads(frames[0][1])
    assert error == {
        "type": "error",
        "status": 400,
        "error": {
            "type": "invalid_request_error",
            "code": "websocket_connection_limit_reached",
            "message": "Responses websocket connection limit reached (60 minutes). "
            "Create a new websocket connection to continue.",
            "param": None,
        },
    }
    assert code == 1000
    fresh = connect(emulator)
    try:
        assert ask(fresh, input="new socket")[-1]["type"] == "response.completed"
    finally:
        fresh.close()


def test_connection_age_limit_without_close(emulator: Emulator) -> None:
    """With close_on_connection_limit False the socket stays open after the error."""
    emulator.config.max_connection_age = 0.0
    emulator.config.close_on_connection_limit = False
    ws = connect(emulator)
    try:
        first = ask(ws, input="x")[-1]
        second = ask(ws, input="y")[-1]
    finally:
        ws.close()
    assert first["error"]["code"] == second["error"]["code"] == "websocket_connection_limit_reached"


def test_oversized_message_closes_1009(emulator: Emulator) -> None:
    """A frame above max_message_size closes the socket with 1009."""
    emulator.config.max_message_size = 1024
    ws = connect(emulator)
    try:
        create(ws, input="x" * 4096)
        frames, code = frames_until_close(ws)
    finally:
        ws.close()
    assert frames == []
    assert code == 1009


def test_upgrade_status_refuses_websocket_but_http_works(emulator: Emulator) -> None:
    """upgrade_status=426 refuses the upgrade with a JSON body; POST still answers."""
    emulator.config.upgrade_status = 426
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(emulator)
    assert info.value.status_code == 426
    assert json.loads(info.value.resp_body)["error"]["code"] == "upgrade_required"
    response = http(emulator).post(
        emulator.base_url + "/responses", json={"model": "m", "input": "fallback"}, timeout=5
    )
    assert response.status_code == 200


def test_server_pings_when_configured(emulator: Emulator) -> None:
    """server_ping_interval makes the server send WebSocket pings."""
    emulator.config.server_ping_interval = 0.05
    ws = connect(emulator)
    try:
        opcode, _ = ws.recv_data(control_frame=True)
    finally:
        ws.close()
    assert opcode == websocket.ABNF.OPCODE_PING


def test_client_pings_are_answered(emulator: Emulator) -> None:
    """A client ping gets a pong with the same payload."""
    ws = connect(emulator)
    try:
        ws.ping("hello")
        opcode, data = ws.recv_data(control_frame=True)
    finally:
        ws.close()
    assert opcode == websocket.ABNF.OPCODE_PONG
    assert data == b"hello"


def test_nothing_is_sent_after_the_terminal_event(emulator: Emulator) -> None:
    """After a terminal event nothing else is sent for that request."""
    ws = connect(emulator, timeout=0.2)
    try:
        create(ws, input="x")
        until_terminal(ws)
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv()
    finally:
        ws.close()
