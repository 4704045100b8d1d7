"""Per-request scripting through metadata: every emulator_* key, over WebSocket and HTTP."""

from __future__ import annotations

import json
import time
from typing import Any, Dict

import pytest
import websocket
from emutools import (
    MODEL,
    ask,
    connect,
    create,
    frames_until_close,
    http,
    recv,
    text_of,
    types,
)

from openai_ws.emulator import Emulator


def _post(emu: Emulator, **body: Any) -> Any:
    body.setdefault("model", MODEL)
    return http(emu).post(emu.base_url + "/responses", json=body, timeout=5)


def test_emulator_text_replaces_the_echo(emulator: Emulator) -> None:
    """emulator_text is streamed exactly, one token per delta."""
    ws = connect(emulator)
    try:
        events = ask(ws, input="ignored", metadata={"emulator_text": "Fixed reply, here."})
    finally:
        ws.close()
    assert text_of(events) == "Fixed reply, here."
    assert [e["delta"] for e in events if "delta" in e] == ["Fixed ", "reply, ", "here."]


def test_emulator_ttft_and_token_interval_pace_the_stream(emulator: Emulator) -> None:
    """emulator_ttft delays the first output item; emulator_token_interval spaces the deltas."""
    ws = connect(emulator)
    try:
        started = time.monotonic()
        create(
            ws,
            input="a b c d",
            metadata={"emulator_ttft": "0.15", "emulator_token_interval": "0.03"},
        )
        arrivals: Dict[str, float] = {}
        while True:
            event = recv(ws)
            arrivals.setdefault(event["type"], time.monotonic() - started)
            if event["type"] == "response.completed":
                arrivals["end"] = time.monotonic() - started
                break
    finally:
        ws.close()
    assert arrivals["response.in_progress"] < 0.1
    assert arrivals["response.output_item.added"] >= 0.15
    assert arrivals["end"] - arrivals["response.output_text.delta"] >= 3 * 0.03 - 0.005


def test_rate_limit_error_over_websocket_carries_headers(emulator: Emulator) -> None:
    """rate_limit_exceeded: 429 error event with error.headers and a retry hint in the message."""
    ws = connect(emulator)
    try:
        events = ask(
            ws,
            input="x",
            stream_id="rl",
            metadata={"emulator_error": "rate_limit_exceeded", "emulator_retry_after": "0.25"},
        )
    finally:
        ws.close()
    assert len(events) == 1
    error = events[0]
    assert error["status"] == 429 and error["stream_id"] == "rl"
    assert error["error"]["code"] == "rate_limit_exceeded"
    assert "Please try again in 0.25s." in error["error"]["message"]
    headers = error["error"]["headers"]
    assert headers["retry-after-ms"] == "250"
    assert headers["x-ratelimit-reset-requests"] == "250ms"
    assert "sequence_number" not in error


def test_rate_limit_error_over_http_has_retry_headers(emulator: Emulator) -> None:
    """Over HTTP the 429 carries Retry-After and retry-after-ms plus the JSON body."""
    response = _post(emulator, input="x", metadata={"emulator_error": "rate_limit_exceeded"})
    assert response.status_code == 429
    assert response.headers["retry-after-ms"] == "50"
    assert response.headers["Retry-After"] == "1"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    body = response.json()
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert "Please try again in 0.05s." in body["error"]["message"]


@pytest.mark.parametrize(
    ("code", "status", "wire_code", "error_type"),
    [
        ("insufficient_quota", 429, "insufficient_quota", "insufficient_quota"),
        ("server_error", 500, None, "server_error"),
        ("server_is_overloaded", 503, "server_is_overloaded", "server_error"),
        ("invalid_prompt", 400, "invalid_prompt", "invalid_request_error"),
        ("context_length_exceeded", 400, "context_length_exceeded", "invalid_request_error"),
    ],
)
def test_scripted_errors_have_their_status_and_code(
    emulator: Emulator, code: str, status: int, wire_code: Any, error_type: str
) -> None:
    """Each emulator_error code maps to the service's status/type/code, on WS and HTTP."""
    ws = connect(emulator)
    try:
        error = ask(ws, input="x", metadata={"emulator_error": code})[-1]
    finally:
        ws.close()
    assert error["type"] == "error" and error["status"] == status
    assert error["error"]["code"] == wire_code and error["error"]["type"] == error_type
    assert "headers" not in error["error"]
    response = _post(emulator, input="x", metadata={"emulator_error": code})
    assert response.status_code == status
    assert response.json()["error"]["code"] == wire_code
    assert "Retry-After" not in response.headers


def test_error_times_counts_attempts_across_websocket_and_http(emulator: Emulator) -> None:
    """emulator_error_times=2: the first two attempts fail (WS then HTTP), the third succeeds."""
    metadata = {"emulator_error": "server_is_overloaded", "emulator_error_times": "2"}
    ws = connect(emulator)
    try:
        first = ask(ws, input="same", metadata=metadata, stream_id="a")[-1]
    finally:
        ws.close()
    second = _post(emulator, input="same", metadata=metadata, stream=True)
    ws = connect(emulator)
    try:
        third = ask(ws, input="same", metadata=metadata)[-1]
        other = ask(ws, input="different", metadata=metadata)[-1]
    finally:
        ws.close()
    assert first["status"] == 503
    assert second.status_code == 503
    assert third["type"] == "response.completed"
    assert other["type"] == "error"
    emulator.reset_attempts()
    ws = connect(emulator)
    try:
        assert ask(ws, input="same", metadata=metadata)[-1]["type"] == "error"
    finally:
        ws.close()


def test_emulator_fail_ends_with_response_failed(emulator: Emulator) -> None:
    """emulator_fail: created, in_progress, then response.failed with response.error."""
    ws = connect(emulator)
    try:
        events = ask(ws, input="x", metadata={"emulator_fail": "server_error"})
    finally:
        ws.close()
    assert types(events) == ["response.created", "response.in_progress", "response.failed"]
    final = events[-1]["response"]
    assert final["status"] == "failed"
    assert final["error"]["code"] == "server_error" and final["error"]["message"]
    assert final["output"] == []


def test_error_after_sends_a_mid_stream_error(emulator: Emulator) -> None:
    """emulator_error_after=N: N events, then an error event (server_error) that ends it."""
    ws = connect(emulator, timeout=0.3)
    try:
        events = ask(ws, input="a b c d", stream_id="mid", metadata={"emulator_error_after": "5"})
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv()
    finally:
        ws.close()
    assert len(events) == 6
    error = events[-1]
    assert error["type"] == "error" and error["status"] == 500
    assert error["sequence_number"] == 5 and error["stream_id"] == "mid"
    assert error["error"]["type"] == "server_error"
    final_id = events[0]["response"]["id"]
    stored = emulator.stored(final_id)
    assert stored is not None and stored["status"] == "failed"


@pytest.mark.parametrize(("code", "after"), [(1011, 3), (1001, 0), (4000, 1)])
def test_close_code_closes_after_n_events(emulator: Emulator, code: int, after: int) -> None:
    """emulator_close_code closes with that code and an empty reason after N events."""
    ws = connect(emulator)
    try:
        create(
            ws,
            input="a b c d",
            metadata={"emulator_close_code": str(code), "emulator_close_after": str(after)},
        )
        frames, got = frames_until_close(ws)
    finally:
        ws.close()
    assert got == code
    assert len(frames) == after
    assert emulator.stats.closes_sent == {code: 1}


def test_close_1006_drops_tcp_without_close_frame(emulator: Emulator) -> None:
    """emulator_close_code=1006 aborts the TCP connection: no close frame arrives."""
    ws = connect(emulator)
    try:
        create(ws, input="x", metadata={"emulator_close_code": "1006", "emulator_close_after": "2"})
        assert recv(ws)["type"] == "response.created"
        assert recv(ws)["type"] == "response.in_progress"
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            ws.recv_data(control_frame=True)
    finally:
        ws.close()


def test_close_times_only_hits_the_first_attempts_and_http_ignores_it(emulator: Emulator) -> None:
    """emulator_close_times=1 closes the first attempt only; HTTP ignores close scripting."""
    metadata = {"emulator_close_code": "1011", "emulator_close_times": "1"}
    ws = connect(emulator)
    try:
        create(ws, input="retry me", metadata=metadata)
        frames, code = frames_until_close(ws)
    finally:
        ws.close()
    assert (frames, code) == ([], 1011)
    ws = connect(emulator)
    try:
        assert ask(ws, input="retry me", metadata=metadata)[-1]["type"] == "response.completed"
    finally:
        ws.close()
    always = {"emulator_close_code": "1011"}
    response = _post(emulator, input="over http", metadata=always)
    assert response.status_code == 200
    assert response.json()["status"] == "completed"


def test_malformed_binary_and_unknown_frames_are_injected(emulator: Emulator) -> None:
    """emulator_malformed/binary/unknown_after inject one odd frame each and the stream goes on."""
    ws = connect(emulator)
    try:
        create(
            ws,
            input="a b",
            stream_id="odd",
            metadata={
                "emulator_malformed_after": "1",
                "emulator_binary_after": "2",
                "emulator_unknown_after": "3",
            },
        )
        frames = []
        while True:
            opcode, data = ws.recv_data()
            frames.append((opcode, data))
            if b'"response.completed"' in data[:40]:
                break
    finally:
        ws.close()
    assert frames[1][0] == websocket.ABNF.OPCODE_TEXT
    with pytest.raises(ValueError):
        json.loads(frames[1][1])
    assert frames[3][0] == websocket.ABNF.OPCODE_BINARY
    unknown = json.loads(frames[5][1])
    assert unknown["type"] == "response.future_thing" and unknown["stream_id"] == "odd"
    events = [json.loads(data) for index, (_, data) in enumerate(frames) if index not in (1, 3)]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert text_of(events) == "a b"
    assert emulator.stats.faults_injected == 3


def test_unknown_emulator_key_and_bad_values_are_400(emulator: Emulator) -> None:
    """A misspelt emulator_* key or an unparsable value is rejected, naming metadata.<key>."""
    ws = connect(emulator)
    try:
        typo = ask(ws, input="x", metadata={"emulator_txt": "hi"})[-1]
        bad_int = ask(ws, input="x", metadata={"emulator_output_tokens": "many"})[-1]
        bad_close = ask(ws, input="x", metadata={"emulator_close_code": "1005"})[-1]
        bad_json = ask(ws, input="x", metadata={"emulator_function_call": "{nope"})[-1]
    finally:
        ws.close()
    assert typo["error"]["param"] == "metadata.emulator_txt"
    assert bad_int["error"]["param"] == "metadata.emulator_output_tokens"
    assert bad_close["error"]["param"] == "metadata.emulator_close_code"
    assert bad_json["error"]["param"] == "metadata.emulator_function_call"
    assert {e["status"] for e in (typo, bad_int, bad_close, bad_json)} == {400}
