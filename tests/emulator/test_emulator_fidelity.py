"""Fidelity against the official SDK's types: flat SSE ``error``, ``obfuscation`` on deltas,
and what counts as a "decimal" sampling number for the silent-close quirk."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest
import websocket
from emutools import MODEL, ask, connect, create, frames_until_close, http, sse_events

from openai_ws import OpenAI
from openai_ws.emulator import Emulator
from openai_ws.emulator._validate import has_decimal_sampling
from openai_ws.errors import APIError
from openai_ws.events import (
    ResponseFunctionCallArgumentsDelta,
    ResponseOutputTextDelta,
    ResponseReasoningSummaryTextDelta,
    ResponseRefusalDelta,
)

DELTAS = (
    "response.output_text.delta",
    "response.refusal.delta",
    "response.function_call_arguments.delta",
    "response.reasoning_summary_text.delta",
)


def _post(emu: Emulator, **body: Any) -> Any:
    body.setdefault("model", MODEL)
    return http(emu).post(emu.base_url + "/responses", json=body, timeout=5)


def _sse(response: Any) -> List[Dict[str, Any]]:
    return [json.loads(data) for _, data in sse_events(response)]


def test_mid_stream_sse_error_is_flat_by_default(emulator: Emulator) -> None:
    """The SSE error event is {type, code, message, param, sequence_number} as in the SDK type."""
    scripted = {"emulator_error_after": "3"}
    events = _sse(_post(emulator, input="a b c", stream=True, metadata=scripted))
    error = events[-1]
    assert error == {
        "type": "error",
        "code": "server_error",
        "message": "The server had an error while processing your request. Sorry about that!",
        "param": None,
        "sequence_number": 3,
    }


def _client(emu: Emulator) -> OpenAI:
    return OpenAI(api_key=emu.api_key, base_url=emu.base_url, max_retries=0)


def test_client_stream_raises_the_flat_error_after_the_events(emulator: Emulator) -> None:
    """client.responses.stream yields the events before a flat error, then raises APIError."""
    client = _client(emulator)
    got: List[Any] = []
    try:
        with (
            pytest.raises(APIError) as info,
            client.responses.stream(
                model=MODEL, input="x y z", metadata={"emulator_error_after": "3"}
            ) as stream,
        ):
            for event in stream:
                got.append(event)
    finally:
        client.close()
    assert len(got) == 3
    assert info.value.code == "server_error"


def test_http_deltas_carry_obfuscation_unless_turned_off(emulator: Emulator) -> None:
    """Every delta event over SSE has a random obfuscation string by default; false drops it."""
    call = '{"name": "f", "arguments": {"a": 1}}'
    bodies = [
        {"input": "some text here", "metadata": {"emulator_reasoning": "hmm ok"}},
        {"input": "x", "metadata": {"emulator_refusal": "No way."}},
        {"input": "x", "metadata": {"emulator_function_call": call}},
    ]
    seen = set()
    for body in bodies:
        on = [e for e in _sse(_post(emulator, stream=True, **body)) if e["type"] in DELTAS]
        off = [
            e
            for e in _sse(
                _post(emulator, stream=True, stream_options={"include_obfuscation": False}, **body)
            )
            if e["type"] in DELTAS
        ]
        assert on and all(isinstance(e["obfuscation"], str) and e["obfuscation"] for e in on)
        assert off and all("obfuscation" not in e for e in off)
        seen.update(e["type"] for e in on)
    assert seen == set(DELTAS)
    pads = [
        e["obfuscation"]
        for e in _sse(_post(emulator, stream=True, input="a a a a"))
        if e["type"] in DELTAS
    ]
    assert len(set(pads)) > 1


def test_websocket_deltas_have_no_obfuscation(emulator: Emulator) -> None:
    """Over WebSocket the emulator sends no obfuscation (stream_options is ignored there)."""
    ws = connect(emulator)
    try:
        events = ask(ws, input="ws words", stream_options={"include_obfuscation": True})
    finally:
        ws.close()
    deltas = [e for e in events if e["type"] in DELTAS]
    assert deltas and all("obfuscation" not in e for e in deltas)


def test_client_typed_events_tolerate_obfuscation(emulator: Emulator) -> None:
    """The client parses obfuscated deltas of every kind into its typed events."""
    client = _client(emulator)
    call = '{"name": "f", "arguments": {"a": 1}}'
    try:
        with client.responses.stream(
            model=MODEL, input="typed words", metadata={"emulator_reasoning": "r s"}
        ) as stream:
            texts = list(stream)
        with client.responses.stream(
            model=MODEL, input="x", metadata={"emulator_refusal": "No."}
        ) as stream:
            refusals = list(stream)
        with client.responses.stream(
            model=MODEL, input="x", metadata={"emulator_function_call": call}
        ) as stream:
            calls = list(stream)
    finally:
        client.close()
    text_deltas = [e for e in texts if isinstance(e, ResponseOutputTextDelta)]
    assert "".join(e.delta for e in text_deltas) == "typed words"
    assert all(e.obfuscation for e in text_deltas)
    assert [e for e in texts if isinstance(e, ResponseReasoningSummaryTextDelta)]
    assert [e for e in refusals if isinstance(e, ResponseRefusalDelta)]
    assert [e for e in calls if isinstance(e, ResponseFunctionCallArgumentsDelta)]
    assert texts[-1].type == "response.completed"


def test_decimal_rules() -> None:
    """non_integer: 0.7 trips, 1.0 does not; any_fraction: any float (1.0, 1e0) trips."""
    assert has_decimal_sampling({"temperature": 0.7})
    assert not has_decimal_sampling({"temperature": 1.0})
    assert has_decimal_sampling({"top_p": 1.0}, rule="any_fraction")
    assert has_decimal_sampling({"temperature": json.loads("1e0")}, rule="any_fraction")
    assert not has_decimal_sampling({"temperature": 1, "top_p": 0}, rule="any_fraction")
    assert not has_decimal_sampling({"temperature": True}, rule="any_fraction")


def test_any_fraction_rule_closes_on_1_0(emulator: Emulator) -> None:
    """With decimal_sampling_rule="any_fraction" a JSON 1.0 closes the socket with 1000."""
    emulator.config.decimal_sampling_rule = "any_fraction"
    ws = connect(emulator)
    try:
        assert ask(ws, input="x", temperature=1)[-1]["type"] == "response.completed"
        ws.send('{"type": "response.create", "model": "m", "input": "x", "temperature": 1.0}')
        frames, code = frames_until_close(ws)
    finally:
        ws.close()
    assert frames == [] and code == 1000
    emulator.config.decimal_sampling_rule = "non_integer"
    ws = connect(emulator)
    try:
        create(ws, input="x", temperature=1.0)
        assert ask(ws, input="y")[-1]["type"] == "response.completed"
    except websocket.WebSocketException:  # pragma: no cover - would be the failure
        pytest.fail("1.0 closed the socket under the non_integer rule")
    finally:
        ws.close()
