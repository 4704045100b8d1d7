"""Proof of context: ``metadata.emulator_reply = "context_digest"`` answers with a digest of
everything the server saw for that response (parent chain + input + instructions)."""

from __future__ import annotations

import re
from typing import Any, Dict, List

import pytest
from emutools import MODEL, ask, connect, create, frames_until_close, http, text_of

from openai_ws.emulator import Emulator, context_digest
from openai_ws.emulator._context import EMPTY_CONTEXT, canonical_item, fold

DIGEST = {"emulator_reply": "context_digest"}
DIGEST_RE = re.compile(r"^ctx:(\d+):[0-9a-f]{16}$")


def _final(events: List[Dict[str, Any]]) -> Dict[str, Any]:
    assert events[-1]["type"] == "response.completed", events[-1]
    response: Dict[str, Any] = events[-1]["response"]
    return response


def _user(text: str) -> Dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _post(emu: Emulator, **body: Any) -> Dict[str, Any]:
    body.setdefault("model", MODEL)
    response = http(emu).post(emu.base_url + "/responses", json=body, timeout=5)
    assert response.status_code == 200, response.text
    result: Dict[str, Any] = response.json()
    return result


def _reply(response: Dict[str, Any]) -> str:
    texts = [
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
    ]
    return "".join(texts)


def test_delta_chain_and_whole_history_resend_give_the_same_digest(emulator: Emulator) -> None:
    """Three turns chained by previous_response_id equal one resend of the whole history."""
    ws = connect(emulator)
    try:
        first = ask(ws, input="hello there", store=False, metadata=DIGEST)
        r1 = _final(first)
        r2 = _final(
            ask(
                ws,
                input=[_user("second turn")],
                previous_response_id=r1["id"],
                store=False,
                metadata=DIGEST,
            )
        )
        third = ask(ws, input="third", previous_response_id=r2["id"], store=False, metadata=DIGEST)
        chained = text_of(third)
    finally:
        ws.close()
    assert text_of(first) == _reply(r1) and DIGEST_RE.match(text_of(first))
    assert DIGEST_RE.match(chained)
    assert chained.startswith("ctx:5:")
    history = (
        [{"role": "user", "content": "hello there"}]
        + r1["output"]
        + [_user("second turn")]
        + r2["output"]
        + [_user("third")]
    )
    ws = connect(emulator)  # a new socket: nothing cached, the whole context is sent
    try:
        resent = text_of(ask(ws, input=history, store=False, metadata=DIGEST))
    finally:
        ws.close()
    assert resent == chained
    over_http = _reply(_post(emulator, input=history, store=False, metadata=DIGEST))
    assert over_http == chained


def test_digest_counts_items_and_tracks_input_and_instructions(emulator: Emulator) -> None:
    """The count is the number of canonical items; input and instructions change the hash."""
    ws = connect(emulator)
    try:
        one = text_of(ask(ws, input="a", store=False, metadata=DIGEST))
        other = text_of(ask(ws, input="b", store=False, metadata=DIGEST))
        instructed = ask(ws, input="a", instructions="be brief", store=False, metadata=DIGEST)
        child = text_of(
            ask(
                ws,
                input="next",
                previous_response_id=_final(instructed)["id"],
                store=False,
                metadata=DIGEST,
            )
        )
        plain_child = text_of(
            ask(
                ws,
                input=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "x"}],
                store=False,
                metadata=DIGEST,
            )
        )
    finally:
        ws.close()
    assert one.startswith("ctx:1:") and other.startswith("ctx:1:") and one != other
    assert text_of(instructed).startswith("ctx:1:") and text_of(instructed) != one
    # instructions are not inherited: the child's context is [a, reply, next], no instructions
    reply = _reply(_final(instructed))
    expected = context_digest(
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": reply}, _user("next")]
    )
    assert child == expected
    assert plain_child.startswith("ctx:2:")


def test_string_input_ids_statuses_and_part_types_do_not_matter(emulator: Emulator) -> None:
    """A string input equals a one-message list, whatever the part types, ids and statuses."""
    variants: List[Any] = [
        "hi there",
        [{"role": "user", "content": "hi there"}],
        [
            {
                "type": "message",
                "id": "msg_client",
                "status": "completed",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "hi "},
                    {"type": "text", "text": "there", "annotations": [{"x": 1}]},
                ],
            }
        ],
    ]
    ws = connect(emulator)
    try:
        replies = {text_of(ask(ws, input=v, store=False, metadata=DIGEST)) for v in variants}
    finally:
        ws.close()
    assert len(replies) == 1
    assert replies == {context_digest("hi there")}


def test_digest_with_function_call_turns(emulator: Emulator) -> None:
    """Tool-call turns answer with calls; the turn after the tool output replies the digest."""
    call = '{"name": "lookup", "arguments": {"q": "x"}, "call_id": "call_1"}'
    ws = connect(emulator)
    try:
        calling = _final(
            ask(
                ws,
                input="use the tool",
                store=False,
                metadata={"emulator_function_call": call, **DIGEST},
            )
        )
        output = {"type": "function_call_output", "call_id": "call_1", "output": "42"}
        answered = ask(
            ws,
            input=[output],
            previous_response_id=calling["id"],
            store=False,
            metadata={"emulator_function_call": call, **DIGEST},
        )
    finally:
        ws.close()
    assert [item["type"] for item in calling["output"]] == ["function_call"]
    digest = text_of(answered)
    assert digest.startswith("ctx:3:")
    history = [{"role": "user", "content": "use the tool"}] + calling["output"] + [output]
    assert digest == context_digest(history)
    resent = _reply(_post(emulator, input=history, store=False, metadata=DIGEST))
    assert resent == digest


def test_cache_hit_and_store_hit_see_the_same_context(emulator: Emulator) -> None:
    """A stored parent continued from another socket or over HTTP gives the cached digest."""
    ws = connect(emulator)
    try:
        parent = _final(ask(ws, input="stored turn", metadata=DIGEST))
        cached = text_of(ask(ws, input="more", previous_response_id=parent["id"], metadata=DIGEST))
    finally:
        ws.close()
    ws = connect(emulator)
    try:
        from_store = text_of(
            ask(ws, input="more", previous_response_id=parent["id"], metadata=DIGEST)
        )
    finally:
        ws.close()
    over_http = _reply(
        _post(emulator, input="more", previous_response_id=parent["id"], metadata=DIGEST)
    )
    assert cached == from_store == over_http
    assert emulator.stats.cache_hits == 1 and emulator.stats.store_hits == 2


def test_digest_mode_wins_over_emulator_text_and_unknown_mode_is_400(emulator: Emulator) -> None:
    """emulator_reply=context_digest replaces emulator_text; an unknown mode is a 400."""
    ws = connect(emulator)
    try:
        both = text_of(
            ask(ws, input="q", store=False, metadata={"emulator_text": "fixed", **DIGEST})
        )
        echo = text_of(ask(ws, input="q", store=False, metadata={"emulator_reply": "echo"}))
        bad = ask(ws, input="q", metadata={"emulator_reply": "digest"})[-1]
    finally:
        ws.close()
    assert both == context_digest("q")
    assert echo == "q"
    assert bad["type"] == "error" and bad["status"] == 400
    assert bad["error"]["param"] == "metadata.emulator_reply"


def test_canonical_forms() -> None:
    """Canonical items drop ids/statuses; reasoning is its opaque content; triggers vanish."""
    assert canonical_item({"role": "assistant", "content": "x", "id": "a"}) == [
        "message",
        "assistant",
        "x",
    ]
    assert canonical_item(
        {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]}
    ) == ["message", "assistant", "no"]
    assert canonical_item(
        {"type": "function_call", "id": "fc_1", "call_id": "c", "name": "n", "arguments": "{}"}
    ) == ["function_call", "c", "n", "{}"]
    assert canonical_item(
        {
            "type": "function_call_output",
            "call_id": "c",
            "output": [{"type": "input_text", "text": "ok"}],
        }
    ) == ["function_call_output", "c", "ok"]
    assert canonical_item(
        {"type": "reasoning", "id": "rs", "summary": [{"type": "summary_text", "text": "s"}]}
    ) == ["reasoning", "s"]
    assert canonical_item({"type": "reasoning", "summary": [], "encrypted_content": "opaque"}) == [
        "reasoning",
        "opaque",
    ]
    assert canonical_item({"type": "compaction_trigger"}) is None
    assert canonical_item({"type": "item_reference", "id": "msg_1"}) == ["item_reference", {}]
    two = fold(EMPTY_CONTEXT, [{"role": "user", "content": "a"}, {"type": "compaction_trigger"}])
    assert two.count == 1


@pytest.mark.parametrize("where", ["ws", "http"])
def test_warm_up_parent_counts_its_input(emulator: Emulator, where: str) -> None:
    """A generate:false parent's input is part of the child's context."""
    if where == "ws":
        ws = connect(emulator)
        try:
            warm = _final(ask(ws, input="setup", generate=False, metadata=DIGEST))
            child = text_of(ask(ws, input="go", previous_response_id=warm["id"], metadata=DIGEST))
        finally:
            ws.close()
    else:
        warm = _post(emulator, input="setup", generate=False)
        answer = _post(emulator, input="go", previous_response_id=warm["id"], metadata=DIGEST)
        child = _reply(answer)
    assert warm["output"] == []
    assert child == context_digest([_user("setup"), _user("go")])


def test_whole_context_resend_is_the_next_attempt_of_the_delta_request(
    emulator: Emulator,
) -> None:
    """A fault scripted for the first attempt does not fire again on the whole-context resend."""
    once = {"emulator_close_code": "1011", "emulator_close_times": "1", **DIGEST}
    ws = connect(emulator)
    try:
        parent = _final(ask(ws, input="before the fault", store=False))
        create(ws, input="after", previous_response_id=parent["id"], store=False, metadata=once)
        frames, code = frames_until_close(ws)
    finally:
        ws.close()
    assert frames == [] and code == 1011
    history = [{"role": "user", "content": "before the fault"}, *parent["output"], _user("after")]
    ws = connect(emulator)
    try:
        answered = ask(ws, input=history, store=False, metadata=once)
    finally:
        ws.close()
    assert answered[-1]["type"] == "response.completed"
    assert text_of(answered) == context_digest(history)
    rate = {"emulator_error": "server_error", "emulator_error_times": "1", **DIGEST}
    stored = _post(emulator, input="kept")
    failed = http(emulator).post(
        emulator.base_url + "/responses",
        json={
            "model": MODEL,
            "input": "more",
            "previous_response_id": stored["id"],
            "metadata": rate,
        },
        timeout=5,
    )
    assert failed.status_code == 500
    whole = [{"role": "user", "content": "kept"}, *stored["output"], _user("more")]
    assert _reply(_post(emulator, input=whole, metadata=rate)) == context_digest(whole)
