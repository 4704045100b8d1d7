"""Stored responses over HTTP: ``GET /v1/responses/{id}?stream=true`` and ``/input_items``."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest
from emutools import MODEL, ask, connect, http, sse_events

from openai_ws.emulator import Emulator


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


def _get(emu: Emulator, path: str, **params: Any) -> Any:
    return http(emu).get(emu.base_url + path, params=params, timeout=5)


def test_retrieve_with_stream_replays_the_stored_events(emulator: Emulator) -> None:
    """stream=true on a stored response streams its events again; starting_after skips some."""
    live = _sse(
        _post(
            emulator,
            input="replay these words",
            stream=True,
            stream_options={"include_obfuscation": False},
            metadata={"emulator_reasoning": "think a bit"},
        )
    )
    response_id = live[0]["response"]["id"]
    replay = _get(emulator, f"/responses/{response_id}", stream="true", include_obfuscation="false")
    assert replay.status_code == 200
    assert replay.headers["Content-Type"].startswith("text/event-stream")
    replayed = _sse(replay)
    assert replayed == live
    tail = _sse(
        _get(
            emulator,
            f"/responses/{response_id}",
            stream="true",
            starting_after="3",
            include_obfuscation="false",
        )
    )
    assert tail == live[4:]
    plain = _get(emulator, f"/responses/{response_id}")
    assert plain.headers["Content-Type"].startswith("application/json")
    assert plain.json() == live[-1]["response"]


def test_replay_of_a_websocket_response_has_no_stream_id(emulator: Emulator) -> None:
    """A response made on a named lane replays over SSE without stream_id, with obfuscation."""
    ws = connect(emulator)
    try:
        events = ask(ws, input="lane words here", stream_id="lane-a")
    finally:
        ws.close()
    response_id = events[0]["response"]["id"]
    replayed = _sse(_get(emulator, f"/responses/{response_id}", stream="true"))
    assert [e["type"] for e in replayed] == [e["type"] for e in events]
    assert all("stream_id" not in e for e in replayed)
    deltas = [e for e in replayed if e["type"] == "response.output_text.delta"]
    assert deltas and all(isinstance(e["obfuscation"], str) for e in deltas)
    assert "".join(e["delta"] for e in deltas) == "lane words here"
    assert replayed[-1]["response"] == events[-1]["response"]


def test_replay_of_unknown_or_unstored_responses_is_404(emulator: Emulator) -> None:
    """stream=true on an id that is not stored answers 404 like the plain GET."""
    unstored = _post(emulator, input="x", store=False).json()
    for response_id in (unstored["id"], "resp_unknown"):
        response = _get(emulator, f"/responses/{response_id}", stream="true")
        assert response.status_code == 404
        assert response.json()["error"]["message"] == f"Response with id '{response_id}' not found."


def test_bad_retrieve_query_is_400(emulator: Emulator) -> None:
    """starting_after must be an integer."""
    stored = _post(emulator, input="x").json()
    response = _get(emulator, f"/responses/{stored['id']}", stream="true", starting_after="a")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "starting_after"


def _chain(emu: Emulator) -> List[Dict[str, Any]]:
    """Three stored turns: a string, a list with two messages, then a tool-less string."""
    first = _post(emu, input="turn one").json()
    second = _post(
        emu,
        input=[
            {"role": "developer", "content": "dev note"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "two"}]},
        ],
        previous_response_id=first["id"],
    ).json()
    third = _post(emu, input="turn three", previous_response_id=second["id"]).json()
    return [first, second, third]


def test_input_items_list_the_context_newest_first(emulator: Emulator) -> None:
    """input_items: the chain's inputs and outputs plus this input, desc by default."""
    first, second, third = _chain(emulator)
    listing = _get(emulator, f"/responses/{third['id']}/input_items")
    assert listing.status_code == 200
    body = listing.json()
    assert set(body) == {"object", "data", "first_id", "last_id", "has_more"}
    assert body["object"] == "list" and body["has_more"] is False
    data = body["data"]
    assert len(data) == 6
    assert body["first_id"] == data[0]["id"] and body["last_id"] == data[-1]["id"]
    oldest_first = list(reversed(data))
    assert oldest_first[0]["content"] == [{"type": "input_text", "text": "turn one"}]
    assert oldest_first[0]["role"] == "user" and oldest_first[0]["type"] == "message"
    assert oldest_first[1] == first["output"][0]
    assert oldest_first[2]["role"] == "developer"
    assert oldest_first[4] == second["output"][0]
    assert oldest_first[5]["content"][0]["text"] == "turn three"
    assert len({item["id"] for item in data}) == 6
    assert all(item["id"].startswith("msg_") for item in data)
    asc = _get(emulator, f"/responses/{third['id']}/input_items", order="asc").json()
    assert asc["data"] == oldest_first
    first_items = _get(emulator, f"/responses/{first['id']}/input_items").json()["data"]
    assert [item["content"][0]["text"] for item in first_items] == ["turn one"]


def test_input_items_cursor_pagination(emulator: Emulator) -> None:
    """limit and after page through the list; has_more tells when to stop."""
    third = _chain(emulator)[-1]
    everything = _get(emulator, f"/responses/{third['id']}/input_items", order="asc").json()
    pages: List[Dict[str, Any]] = []
    after = None
    while True:
        params: Dict[str, Any] = {"limit": 4, "order": "asc"}
        if after is not None:
            params["after"] = after
        page = _get(emulator, f"/responses/{third['id']}/input_items", **params).json()
        pages.append(page)
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert [len(p["data"]) for p in pages] == [4, 2]
    assert pages[0]["has_more"] is True
    assert [i for p in pages for i in p["data"]] == everything["data"]
    last = _get(
        emulator,
        f"/responses/{third['id']}/input_items",
        after=everything["data"][0]["id"],
        order="desc",
    ).json()
    assert last["data"] == [] and last["has_more"] is False
    assert last["first_id"] is None and last["last_id"] is None


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"order": "up"}, "order"),
        ({"after": "msg_nope"}, "after"),
    ],
)
def test_input_items_bad_query_is_400(
    emulator: Emulator, params: Dict[str, str], param: str
) -> None:
    """limit outside 1-100, an unknown order or an unknown cursor are 400 naming the param."""
    stored = _post(emulator, input="x").json()
    response = _get(emulator, f"/responses/{stored['id']}/input_items", **params)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_input_items_only_for_stored_responses(emulator: Emulator) -> None:
    """store:false and unknown ids are 404."""
    unstored = _post(emulator, input="x", store=False).json()
    for response_id in (unstored["id"], "resp_nope"):
        response = _get(emulator, f"/responses/{response_id}/input_items")
        assert response.status_code == 404


def test_replay_of_a_running_response_waits_for_its_end(emulator: Emulator) -> None:
    """stream=true on a response still generating streams all its events once it ends."""
    ws = connect(emulator)
    try:
        ws.send(
            json.dumps(
                {
                    "type": "response.create",
                    "model": MODEL,
                    "input": "slow words",
                    "metadata": {"emulator_ttft": "0.3"},
                }
            )
        )
        created = json.loads(ws.recv())
        replay = _sse(_get(emulator, f"/responses/{created['response']['id']}", stream="true"))
    finally:
        ws.close()
    assert replay[0]["type"] == "response.created"
    assert replay[-1]["type"] == "response.completed"
    assert replay[-1]["response"]["output"][0]["content"][0]["text"] == "slow words"


def test_input_items_after_a_compaction_start_at_the_compaction(emulator: Emulator) -> None:
    """A parent's compaction output replaces the items before it in the listing."""
    first = _post(emulator, input="old turn").json()
    compacted = _post(
        emulator, input=[{"type": "compaction_trigger"}], previous_response_id=first["id"]
    ).json()
    child = _post(emulator, input="new turn", previous_response_id=compacted["id"]).json()
    data = _get(emulator, f"/responses/{child['id']}/input_items", order="asc").json()["data"]
    assert [item["type"] for item in data] == ["compaction", "message"]
    assert data[0] == compacted["output"][0]
    listed = _get(emulator, f"/responses/{compacted['id']}/input_items").json()["data"]
    assert all(item["type"] != "compaction_trigger" for item in listed)
