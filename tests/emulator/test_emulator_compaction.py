"""Compaction: the ``compaction_trigger`` input item and ``POST /v1/responses/compact``."""

from __future__ import annotations

from typing import Any, Dict, List

from emutools import MODEL, ask, connect, http, text_of, types

from openai_ws.emulator import Emulator, context_digest

DIGEST = {"emulator_reply": "context_digest"}
TRIGGER = {"type": "compaction_trigger"}


def _final(events: List[Dict[str, Any]]) -> Dict[str, Any]:
    assert events[-1]["type"] == "response.completed", events[-1]
    response: Dict[str, Any] = events[-1]["response"]
    return response


def _user(text: str) -> Dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _compact(emu: Emulator, **body: Any) -> Any:
    body.setdefault("model", MODEL)
    return http(emu).post(emu.base_url + "/responses/compact", json=body, timeout=5)


def test_trigger_over_websocket_yields_one_compaction_item(emulator: Emulator) -> None:
    """A final compaction_trigger answers with exactly one compaction output item."""
    ws = connect(emulator)
    try:
        first = _final(ask(ws, input="remember this", store=False))
        events = ask(ws, input=[TRIGGER], previous_response_id=first["id"], store=False)
    finally:
        ws.close()
    assert types(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.output_item.done",
        "response.completed",
    ]
    output = _final(events)["output"]
    assert len(output) == 1
    item = output[0]
    assert set(item) == {"type", "id", "encrypted_content"}
    assert item["type"] == "compaction" and item["id"].startswith("cmp_")
    assert isinstance(item["encrypted_content"], str) and item["encrypted_content"]
    assert events[3]["item"] == item


def test_context_after_compaction_equals_the_context_it_replaced(emulator: Emulator) -> None:
    """Continuing from a compaction (by id or by resending it) keeps the digest; tokens drop."""
    ws = connect(emulator)
    try:
        r1 = _final(ask(ws, input="one two three four", store=False))
        r2 = _final(ask(ws, input="five six", previous_response_id=r1["id"], store=False))
        plain = ask(
            ws,
            input="next",
            previous_response_id=r2["id"],
            store=False,
            metadata=DIGEST,
            stream_id="plain",  # a fork on another lane: r2 stays the default lane's latest
        )
        compacted = _final(ask(ws, input=[TRIGGER], previous_response_id=r2["id"], store=False))
        after = ask(
            ws, input="next", previous_response_id=compacted["id"], store=False, metadata=DIGEST
        )
    finally:
        ws.close()
    assert text_of(after) == text_of(plain)
    resent = [compacted["output"][0], _user("next")]
    ws = connect(emulator)
    try:
        again = ask(ws, input=resent, store=False, metadata=DIGEST)
    finally:
        ws.close()
    assert text_of(again) == text_of(plain)
    assert text_of(plain) == context_digest(
        [{"role": "user", "content": "one two three four"}]
        + r1["output"]
        + [_user("five six")]
        + r2["output"]
        + [_user("next")]
    )
    full_tokens = _final(plain)["usage"]["input_tokens"]
    assert _final(after)["usage"]["input_tokens"] < full_tokens
    assert _final(again)["usage"]["input_tokens"] < full_tokens


def test_trigger_with_an_id_is_rejected(emulator: Emulator) -> None:
    """An id on the trigger is a 400 invalid_request_error naming input[N].id; socket stays."""
    ws = connect(emulator)
    try:
        error = ask(ws, input=[_user("x"), {"type": "compaction_trigger", "id": "ct_1"}])[-1]
        still = ask(ws, input="ok")[-1]
    finally:
        ws.close()
    assert error["type"] == "error" and error["status"] == 400
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["code"] == "unknown_parameter"
    assert error["error"]["param"] == "input[1].id"
    assert error["error"]["message"] == "Unknown parameter: 'input[1].id'."
    assert still["type"] == "response.completed"


def test_trigger_that_is_not_last_is_rejected(emulator: Emulator) -> None:
    """A trigger before another item gets the service's 'must be the final input item' 400."""
    ws = connect(emulator)
    try:
        error = ask(ws, input=[TRIGGER, _user("after")])[-1]
    finally:
        ws.close()
    response = http(emulator).post(
        emulator.base_url + "/responses",
        json={"model": MODEL, "input": [TRIGGER, _user("after")]},
        timeout=5,
    )
    expected = "The 'compaction_trigger' item must be the final input item."
    assert error["status"] == 400 and error["error"]["message"] == expected
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["param"] == "input"
    assert response.status_code == 400 and response.json()["error"]["message"] == expected


def test_bad_compaction_content_is_rejected(emulator: Emulator) -> None:
    """A compaction item whose opaque content the server did not make is a 400."""
    ws = connect(emulator)
    try:
        bad = {"type": "compaction", "id": "cmp_x", "encrypted_content": "not ours"}
        error = ask(ws, input=[bad, _user("next")])[-1]
    finally:
        ws.close()
    assert error["type"] == "error" and error["status"] == 400
    assert error["error"]["param"] == "input[0].encrypted_content"


def test_compact_endpoint_returns_a_new_input_window(emulator: Emulator) -> None:
    """POST /v1/responses/compact: user messages kept, one compaction item, usage; not an id."""
    history: List[Dict[str, Any]] = [
        {"role": "user", "content": "first question"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "A"}]},
        _user("second question"),
    ]
    response = _compact(emulator, input=history)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"id", "object", "created_at", "output", "usage"}
    assert body["object"] == "response.compaction" and isinstance(body["created_at"], int)
    output = body["output"]
    assert [item["type"] for item in output] == ["message", "message", "compaction"]
    assert [item["role"] for item in output[:2]] == ["user", "user"]
    assert output[0]["content"] == [{"type": "input_text", "text": "first question"}]
    assert output[1]["content"] == [{"type": "input_text", "text": "second question"}]
    assert all(item["id"] for item in output)
    usage = body["usage"]
    assert usage["input_tokens"] > 0 and usage["total_tokens"] >= usage["input_tokens"]
    ws = connect(emulator)
    try:
        continued = ask(ws, input=[*output, _user("third")], store=False, metadata=DIGEST)
        missing = ask(ws, input="x", previous_response_id=body["id"])[-1]
    finally:
        ws.close()
    assert text_of(continued) == context_digest([*history, _user("third")])
    assert missing["error"]["code"] == "previous_response_not_found"


def test_compact_endpoint_with_a_stored_parent(emulator: Emulator) -> None:
    """previous_response_id folds the stored chain in; unknown parents and bad bodies are 400."""
    ws = connect(emulator)
    try:
        r1 = _final(ask(ws, input="stored one"))
        r2 = _final(ask(ws, input="stored two", previous_response_id=r1["id"]))
        unstored = _final(ask(ws, input="gone", store=False))
    finally:
        ws.close()
    body = _compact(emulator, input="three", previous_response_id=r2["id"]).json()
    texts = [item["content"][0]["text"] for item in body["output"] if item["type"] == "message"]
    assert texts == ["stored one", "stored two", "three"]
    history = (
        [{"role": "user", "content": "stored one"}]
        + r1["output"]
        + [_user("stored two")]
        + r2["output"]
        + [_user("three")]
    )
    compaction = body["output"][-1]
    ws = connect(emulator)
    try:
        continued = ask(ws, input=[compaction, _user("four")], metadata=DIGEST)
    finally:
        ws.close()
    assert text_of(continued) == context_digest([*history, _user("four")])
    lost = _compact(emulator, input="x", previous_response_id=unstored["id"])
    assert lost.status_code == 400
    assert lost.json()["error"]["code"] == "previous_response_not_found"
    no_model = http(emulator).post(
        emulator.base_url + "/responses/compact", json={"input": "x"}, timeout=5
    )
    assert no_model.status_code == 400
    assert no_model.json()["error"]["code"] == "missing_required_parameter"
    unknown = _compact(emulator, input="x", stream=True)
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "stream"


def test_trigger_over_http_create(emulator: Emulator) -> None:
    """POST /v1/responses with a final trigger also answers with one compaction item."""
    response = http(emulator).post(
        emulator.base_url + "/responses",
        json={"model": MODEL, "input": [_user("hi"), TRIGGER], "store": False},
        timeout=5,
    )
    assert response.status_code == 200
    assert [item["type"] for item in response.json()["output"]] == ["compaction"]
