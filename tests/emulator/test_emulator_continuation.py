"""Continuation: the per-connection, per-lane cache, the store, reconnects and eviction."""

from __future__ import annotations

import json
import time

from emutools import ask, collect_lanes, connect, create, http, text_of

from openai_ws.emulator import Emulator


def test_store_false_parent_hits_the_connection_cache(emulator: Emulator) -> None:
    """A store=false parent that is the lane's latest continues on the same socket (cached)."""
    ws = connect(emulator)
    try:
        parent = ask(ws, input="first turn", store=False)[-1]["response"]
        child = ask(ws, input="second", store=False, previous_response_id=parent["id"])
    finally:
        ws.close()
    final = child[-1]["response"]
    assert child[-1]["type"] == "response.completed"
    assert final["previous_response_id"] == parent["id"]
    parent_total = parent["usage"]["total_tokens"]
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == parent_total
    assert final["usage"]["input_tokens"] == parent_total + 1
    assert emulator.stats.cache_hits == 1
    assert emulator.stored(parent["id"]) is None


def test_store_false_parent_is_lost_on_reconnect(emulator: Emulator) -> None:
    """A new socket has an empty cache: a store=false parent is previous_response_not_found."""
    ws = connect(emulator)
    try:
        parent = ask(ws, input="x", store=False)[-1]["response"]
    finally:
        ws.close()
    ws = connect(emulator)
    try:
        error = ask(ws, input="y", store=False, previous_response_id=parent["id"])[-1]
    finally:
        ws.close()
    assert error == {
        "type": "error",
        "status": 400,
        "error": {
            "type": "invalid_request_error",
            "code": "previous_response_not_found",
            "message": f"Previous response with id '{parent['id']}' not found.",
            "param": "previous_response_id",
        },
    }


def test_store_true_parent_survives_reconnect_and_works_over_http(emulator: Emulator) -> None:
    """store=true (the default) responses load from the store on any socket and over HTTP."""
    emulator.config.store_lookup_delay = 0.05
    ws = connect(emulator)
    try:
        parent = ask(ws, input="keep me")[-1]["response"]
    finally:
        ws.close()
    assert parent["store"] is True
    ws = connect(emulator)
    try:
        started = time.monotonic()
        child = ask(ws, input="again", previous_response_id=parent["id"])[-1]
        elapsed = time.monotonic() - started
    finally:
        ws.close()
    assert child["type"] == "response.completed"
    assert child["response"]["usage"]["input_tokens_details"]["cached_tokens"] == 0
    assert elapsed >= 0.05
    assert emulator.stats.store_hits == 1
    response = http(emulator).post(
        emulator.base_url + "/responses",
        json={"model": "m", "input": "http turn", "previous_response_id": child["response"]["id"]},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.json()["previous_response_id"] == child["response"]["id"]


def test_only_the_latest_response_of_a_lane_is_cached(emulator: Emulator) -> None:
    """An older store=false response of a lane is no longer in the cache."""
    ws = connect(emulator)
    try:
        old = ask(ws, input="a", store=False)[-1]["response"]
        ask(ws, input="b", store=False)
        error = ask(ws, input="c", store=False, previous_response_id=old["id"])[-1]
    finally:
        ws.close()
    assert error["error"]["code"] == "previous_response_not_found"


def test_any_lanes_latest_is_a_cache_hit_for_a_fork(emulator: Emulator) -> None:
    """A new lane may fork from the latest response of another lane on the same socket."""
    ws = connect(emulator)
    try:
        parent = ask(ws, input="root", store=False, stream_id="main")[-1]["response"]
        fork = ask(
            ws, input="branch", store=False, stream_id="fork", previous_response_id=parent["id"]
        )
        again = ask(
            ws,
            input="main goes on",
            store=False,
            stream_id="main",
            previous_response_id=parent["id"],
        )
    finally:
        ws.close()
    assert fork[-1]["type"] == "response.completed" and fork[-1]["stream_id"] == "fork"
    assert again[-1]["type"] == "response.completed"


def test_failed_same_lane_continuation_evicts_the_parent(emulator: Emulator) -> None:
    """A same-lane continuation that fails (4xx/5xx) evicts its store=false parent."""
    ws = connect(emulator)
    try:
        parent = ask(ws, input="root", store=False, stream_id="l")[-1]["response"]
        failed = ask(
            ws,
            input="boom",
            store=False,
            stream_id="l",
            previous_response_id=parent["id"],
            metadata={"emulator_error": "server_error"},
        )[-1]
        assert failed["type"] == "error" and failed["status"] == 500
        retry = ask(
            ws, input="retry", store=False, stream_id="l", previous_response_id=parent["id"]
        )
    finally:
        ws.close()
    assert retry[-1]["error"]["code"] == "previous_response_not_found"


def test_failed_cross_lane_fork_keeps_the_parent(emulator: Emulator) -> None:
    """A failed fork from another lane does not evict the shared parent."""
    ws = connect(emulator)
    try:
        parent = ask(ws, input="root", store=False, stream_id="main")[-1]["response"]
        failed = ask(
            ws,
            input="boom",
            store=False,
            stream_id="fork",
            previous_response_id=parent["id"],
            metadata={"emulator_fail": "server_error"},
        )[-1]
        assert failed["type"] == "response.failed"
        ok = ask(ws, input="fine", store=False, stream_id="main", previous_response_id=parent["id"])
    finally:
        ws.close()
    assert ok[-1]["type"] == "response.completed"


def test_failed_response_does_not_become_the_lanes_latest(emulator: Emulator) -> None:
    """After a response.failed on a fresh request, the lane's previous latest is still cached."""
    ws = connect(emulator)
    try:
        parent = ask(ws, input="root", store=False)[-1]["response"]
        ask(ws, input="x", store=False, metadata={"emulator_fail": "server_error"})
        ok = ask(ws, input="y", store=False, previous_response_id=parent["id"])
    finally:
        ws.close()
    assert ok[-1]["type"] == "response.completed"


def test_queued_continuation_sees_the_parent_that_finished_before_it(emulator: Emulator) -> None:
    """A create queued behind its parent on the same lane resolves the parent when it starts."""
    emulator.config.token_interval = 0.01
    ws = connect(emulator)
    try:
        create(ws, input="a b c d e", store=False, stream_id="q")
        created = None
        while created is None:
            event = ws.recv()
            if '"response.created"' in event:
                created = json.loads(event)["response"]["id"]
        create(ws, input="child", store=False, stream_id="q", previous_response_id=created)
        events = collect_lanes(ws, 2)
    finally:
        ws.close()
    assert events[-1]["type"] == "response.completed"
    second = [e["type"] for e in events].index("response.created")
    assert events[second]["response"]["previous_response_id"] == created
    assert text_of(events[second:]) == "child"


def test_stored_responses_are_retrievable(emulator: Emulator) -> None:
    """emulator.stored() and GET /v1/responses/{id} return store=true responses only."""
    ws = connect(emulator)
    try:
        kept = ask(ws, input="kept")[-1]["response"]
        dropped = ask(ws, input="dropped", store=False)[-1]["response"]
    finally:
        ws.close()
    stored = emulator.stored(kept["id"])
    assert stored == kept
    assert stored is not None
    stored["status"] = "mutated"
    assert emulator.stored(kept["id"])["status"] == "completed"  # type: ignore[index]
    session = http(emulator)
    got = session.get(f"{emulator.base_url}/responses/{kept['id']}", timeout=5)
    assert got.status_code == 200 and got.json() == kept
    missing = session.get(f"{emulator.base_url}/responses/{dropped['id']}", timeout=5)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == f"Response with id '{dropped['id']}' not found."


def test_store_survives_a_restart_but_caches_do_not(emulator: Emulator) -> None:
    """Stopping and starting the emulator keeps stored responses (same port)."""
    ws = connect(emulator)
    try:
        kept = ask(ws, input="kept")[-1]["response"]
    finally:
        ws.close()
    port = emulator.port
    emulator.stop()
    emulator.start()
    assert emulator.port == port
    ws = connect(emulator)
    try:
        child = ask(ws, input="after restart", previous_response_id=kept["id"])[-1]
    finally:
        ws.close()
    assert child["type"] == "response.completed"
