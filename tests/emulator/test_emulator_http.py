"""HTTP side of the emulator: JSON and SSE creates, headers, errors, stored-response routes."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest
from emutools import MODEL, RESPONSE_KEYS, ask, connect, http, sse_events

from openai_ws.emulator import Emulator

SERVICE_HEADERS = (
    "x-request-id",
    "openai-processing-ms",
    "openai-version",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)


def _post(emu: Emulator, **body: Any) -> Any:
    body.setdefault("model", MODEL)
    return http(emu).post(emu.base_url + "/responses", json=body, timeout=5)


def _sse(response: Any) -> List[Dict[str, Any]]:
    events = []
    for name, data in sse_events(response):
        event = json.loads(data)
        assert name == event["type"]
        events.append(event)
    return events


def test_json_create_returns_the_response_with_service_headers(emulator: Emulator) -> None:
    """POST /v1/responses without stream returns a completed Response and the usual headers."""
    response = _post(emulator, input="hello http", metadata={"k": "v"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    for header in SERVICE_HEADERS:
        assert header in response.headers
    assert response.headers["openai-version"] == "2020-10-01"
    assert response.headers["x-request-id"].startswith("req_")
    body = response.json()
    assert set(body) >= RESPONSE_KEYS
    assert body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"] == "hello http"
    assert body["metadata"] == {"k": "v"}
    assert emulator.stats.http_creates == 1


def test_sse_stream_matches_the_websocket_sequence(emulator: Emulator) -> None:
    """stream:true gives event:/data: blocks with the same events as WS and no [DONE]."""
    response = _post(emulator, input="same events", stream=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert "[DONE]" not in response.text
    assert response.text.endswith("\n\n")
    for block in response.text.strip("\n").split("\n\n"):
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ")
        assert lines[1].startswith("data: {") and ", " not in lines[1][:40]
    sse = _sse(response)
    ws = connect(emulator)
    try:
        over_ws = ask(ws, input="same events", stream=True)
    finally:
        ws.close()
    assert [e["type"] for e in sse] == [e["type"] for e in over_ws]
    assert [e["sequence_number"] for e in sse] == list(range(len(sse)))
    assert all("stream_id" not in e for e in sse)


def test_sse_done_toggle(emulator: Emulator) -> None:
    """sse_done=True appends data: [DONE] after the terminal event."""
    emulator.config.sse_done = True
    response = _post(emulator, input="x", stream=True)
    assert response.text.endswith("data: [DONE]\n\n")
    blocks = list(sse_events(response))
    assert blocks[-1] == ("", "[DONE]")
    assert json.loads(blocks[-2][1])["type"] == "response.completed"


def test_mid_stream_sse_error_has_the_nested_shape_behind_an_option(emulator: Emulator) -> None:
    """sse_error_shape="nested": event: error with {type, error{...}, sequence_number}."""
    emulator.config.sse_error_shape = "nested"
    response = _post(emulator, input="a b c", stream=True, metadata={"emulator_error_after": "3"})
    assert response.status_code == 200
    events = _sse(response)
    assert len(events) == 4
    error = events[-1]
    assert error["type"] == "error"
    assert error["sequence_number"] == 3
    assert set(error["error"]) >= {"type", "code", "message", "param"}
    assert error["error"]["type"] == "server_error"
    assert "status" not in error


def test_mid_stream_error_without_stream_is_a_500(emulator: Emulator) -> None:
    """A non-streaming request whose generation errors mid-way gets HTTP 500."""
    response = _post(emulator, input="a b c", metadata={"emulator_error_after": "3"})
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"


def test_sse_fail_and_refusal_and_incomplete(emulator: Emulator) -> None:
    """Scripted failure, refusal and truncation stream over SSE too."""
    failed = _sse(
        _post(emulator, input="x", stream=True, metadata={"emulator_fail": "server_error"})
    )
    assert failed[-1]["type"] == "response.failed"
    refusal = _sse(_post(emulator, input="x", stream=True, metadata={"emulator_refusal": "No."}))
    assert any(e["type"] == "response.refusal.delta" for e in refusal)
    cut = _post(emulator, input="a b c d", max_output_tokens=2)
    assert cut.json()["status"] == "incomplete"
    assert cut.json()["incomplete_details"] == {"reason": "max_output_tokens"}


def test_sse_malformed_line_injection(emulator: Emulator) -> None:
    """emulator_malformed_after over SSE adds a data line that is not JSON."""
    response = _post(emulator, input="x", stream=True, metadata={"emulator_malformed_after": "1"})
    blocks = list(sse_events(response))
    with pytest.raises(ValueError):
        json.loads(blocks[1][1])
    assert json.loads(blocks[-1][1])["type"] == "response.completed"


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"input": "x"}, 400, "missing_required_parameter", "model"),
        ({"model": MODEL, "temperature": "hot"}, 400, "invalid_type", "temperature"),
        ({"model": MODEL, "stream_id": "lane"}, 400, "unknown_parameter", "stream_id"),
        ({"model": MODEL, "type": "response.create"}, 400, "unknown_parameter", "type"),
        ({"model": MODEL, "background": True}, 400, "unsupported_parameter", "background"),
        (
            {"model": MODEL, "previous_response_id": "resp_x"},
            400,
            "previous_response_not_found",
            "previous_response_id",
        ),
    ],
)
def test_http_errors_before_the_stream_are_status_and_json(
    emulator: Emulator, body: Dict[str, Any], status: int, code: str, param: str
) -> None:
    """Validation errors come back as an HTTP status with {"error": {...}}, even with stream."""
    body = dict(body, stream=True)
    response = http(emulator).post(emulator.base_url + "/responses", json=body, timeout=5)
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert set(error) == {"message", "type", "param", "code"}


def test_lenient_mode_ignores_unknown_parameters(emulator: Emulator) -> None:
    """strict_parameters=False drops stream_id/type/unknown keys instead of rejecting them."""
    emulator.config.strict_parameters = False
    response = _post(emulator, input="x", stream_id="lane", type="response.create", extra=1)
    assert response.status_code == 200


def test_invalid_json_body_is_400(emulator: Emulator) -> None:
    """A body that is not JSON gets 400 invalid_json."""
    response = http(emulator).post(
        emulator.base_url + "/responses",
        data=b"{nope",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_get_delete_and_cancel_routes(emulator: Emulator) -> None:
    """GET returns stored responses, DELETE removes them, cancel is 404/400, unknown is 404."""
    session = http(emulator)
    created = _post(emulator, input="store me").json()
    url = f"{emulator.base_url}/responses/{created['id']}"
    assert session.get(url, timeout=5).json() == created
    cancel = session.post(url + "/cancel", timeout=5)
    assert cancel.status_code == 400
    deleted = session.delete(url, timeout=5)
    assert deleted.status_code == 200
    assert deleted.json() == {"id": created["id"], "object": "response", "deleted": True}
    assert session.get(url, timeout=5).status_code == 404
    assert session.delete(url, timeout=5).status_code == 404
    assert session.post(url + "/cancel", timeout=5).status_code == 404
    unknown = session.get(emulator.base_url + "/nothing/here", timeout=5)
    assert unknown.status_code == 404 and "error" in unknown.json()


def test_store_false_over_http_is_not_retrievable(emulator: Emulator) -> None:
    """store:false responses are not kept; GET gives 404."""
    created = _post(emulator, input="forget me", store=False).json()
    response = http(emulator).get(f"{emulator.base_url}/responses/{created['id']}", timeout=5)
    assert response.status_code == 404


def test_http_continuation_uses_the_store(emulator: Emulator) -> None:
    """previous_response_id over HTTP loads the stored parent and counts its tokens."""
    parent = _post(emulator, input="one two three").json()
    child = _post(emulator, input="four", previous_response_id=parent["id"]).json()
    assert child["previous_response_id"] == parent["id"]
    assert child["usage"]["input_tokens"] == parent["usage"]["total_tokens"] + 1
