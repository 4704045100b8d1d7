"""Pure parts of the emulator, without sockets: tokens, scenarios, lanes, validation, scripts."""

from __future__ import annotations

import itertools
import json
from typing import Callable, List, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openai_ws.emulator._cache import ConnectionCache
from openai_ws.emulator._errors import ApiError, redact_key
from openai_ws.emulator._lanes import LaneScheduler, is_valid_stream_id
from openai_ws.emulator._runner import dumps
from openai_ws.emulator._scenario import (
    build_response,
    fit_tokens,
    plan_response,
    reply_text,
    tokenize,
)
from openai_ws.emulator._script import Script, parse_script
from openai_ws.emulator._validate import has_decimal_sampling, validate_create


def _ids() -> Callable[[str], str]:
    counter = itertools.count()
    return lambda prefix: f"{prefix}{next(counter)}"


@given(st.text())
def test_tokens_concatenate_to_the_exact_text(text: str) -> None:
    """Joining the tokens of any text gives the text back, and no token is empty."""
    tokens = tokenize(text)
    assert "".join(tokens) == text
    assert all(tokens)


@given(st.lists(st.sampled_from(["a ", "b", " c ", "d\n"]), max_size=6), st.integers(0, 50))
def test_fit_tokens_gives_exactly_n(tokens: List[str], count: int) -> None:
    """fit_tokens returns exactly N tokens, a prefix of the input when N is small."""
    fitted = fit_tokens(tokens, count)
    assert len(fitted) == count
    if count <= len(tokens):
        assert fitted == tokens[:count]


def test_plan_is_deterministic_for_fixed_ids_and_clock() -> None:
    """Same body, script, ids and clock give the same steps."""
    body = {"model": "m", "input": "one two", "metadata": {"emulator_reasoning": "why"}}
    script = parse_script(body["metadata"])  # type: ignore[arg-type]
    first = plan_response(body, script, response_id="resp_1", created_at=100, new_id=_ids())
    second = plan_response(body, script, response_id="resp_1", created_at=100, new_id=_ids())
    assert first.steps == second.steps
    assert first.final["output"][0]["id"] == "rs_0"
    assert first.final["output"][1]["id"] == "msg_1"


def test_plan_places_ttft_and_token_interval_delays() -> None:
    """ttft sits before the first output item; token_interval between deltas only."""
    scenario = plan_response(
        {"model": "m", "input": "a b c"},
        Script(),
        response_id="resp_1",
        created_at=0,
        new_id=_ids(),
        ttft=0.5,
        token_interval=0.1,
    )
    delays = [(delay, event["type"]) for delay, event in scenario.steps]
    assert delays[:3] == [
        (0.0, "response.created"),
        (0.0, "response.in_progress"),
        (0.5, "response.output_item.added"),
    ]
    assert [d for d, t in delays if t == "response.output_text.delta"] == [0.0, 0.1, 0.1]
    assert scenario.final["completed_at"] == 1


def test_plan_does_not_mutate_the_body() -> None:
    """Planning leaves the request body untouched."""
    body = {"model": "m", "input": [{"role": "user", "content": "hi"}], "metadata": {}}
    snapshot = repr(body)
    plan_response(body, Script(), response_id="r", created_at=0, new_id=_ids())
    assert repr(body) == snapshot


def test_reply_text_fallbacks() -> None:
    """Echo rules: string input, last user message, tool output, otherwise OK."""
    assert reply_text({"input": "x"}) == "x"
    assert reply_text({"input": []}) == "OK"
    assert reply_text({}) == "OK"
    assert reply_text({"input": [{"type": "reasoning"}]}) == "OK"
    items = [{"type": "function_call_output", "output": [{"type": "input_text", "text": "42"}]}]
    assert reply_text({"input": items}) == "Tool said: 42"


def test_response_defaults_follow_the_service() -> None:
    """build_response fills the service's defaults for omitted request fields."""
    response = build_response(
        {"model": "m", "conversation": "conv_1", "service_tier": "auto"},
        response_id="resp_1",
        created_at=5,
        status="in_progress",
        output=[],
        usage=None,
    )
    assert response["temperature"] == 1.0 and response["top_p"] == 1.0
    assert response["store"] is True and response["parallel_tool_calls"] is True
    assert response["conversation"] == {"id": "conv_1"}
    assert response["service_tier"] == "default"
    assert response["text"] == {"format": {"type": "text"}}
    assert response["tool_choice"] == "auto" and response["truncation"] == "disabled"


def test_lane_scheduler_fifo_per_lane_and_global_cap() -> None:
    """Per-lane FIFO, distinct lanes concurrent, at most max_active running, arrival order kept."""
    lanes: LaneScheduler[str] = LaneScheduler(max_active=2, max_names=32)
    assert lanes.submit("a", "a1") == ["a1"]
    assert lanes.submit("a", "a2") == []
    assert lanes.submit("b", "b1") == ["b1"]
    assert lanes.submit("c", "c1") == []
    assert lanes.submit(None, "d1") == []
    assert (lanes.active, lanes.queued) == (2, 3)
    # a2 cannot start while a1 runs: the freed slot goes to the next runnable job, c1.
    assert lanes.finish("b") == ["c1"]
    assert lanes.finish("a") == ["a2"]
    assert lanes.finish("c") == ["d1"]
    assert lanes.queued == 0
    lanes.submit("e", "e1")
    assert lanes.drain() == ["e1"]


def test_lane_names_limit_and_validation() -> None:
    """admit_name refuses the (max+1)-th distinct name; names follow the spec pattern."""
    lanes: LaneScheduler[str] = LaneScheduler(max_names=2)
    assert lanes.admit_name("x") and lanes.admit_name("y") and lanes.admit_name("x")
    assert not lanes.admit_name("z")
    assert is_valid_stream_id("a.B-c_9")
    assert not is_valid_stream_id("")
    assert not is_valid_stream_id("a" * 257)
    assert not is_valid_stream_id("a/b")
    assert not is_valid_stream_id(None)


def test_connection_cache_find_remember_evict() -> None:
    """The cache keeps one latest response per lane and evicts only a matching id."""
    cache = ConnectionCache()
    cache.remember("a", {"id": "r1"})
    cache.remember(None, {"id": "r2"})
    assert cache.find("r1") == ("a", {"id": "r1"})
    assert cache.latest_id(None) == "r2"
    assert not cache.evict("a", "r2")
    assert cache.evict("a", "r1")
    assert cache.find("r1") is None and len(cache) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"model": "m", "top_p": -0.5}, "decimal_below_min_value"),
        ({"model": "m", "max_output_tokens": 0}, "integer_below_min_value"),
        ({"model": "m", "store": "yes"}, "invalid_type"),
        ({"model": "m", "input": [1]}, "invalid_type"),
        ({"model": "m", "input": [{"type": "message", "content": 5}]}, "invalid_type"),
        ({"model": "m", "tools": ["x"]}, "invalid_type"),
        ({"model": "m", "include": [1]}, "invalid_type"),
        ({"model": "m", "max_output_tokens": True}, "invalid_type"),
    ],
)
def test_validation_errors(body: dict, code: str) -> None:  # type: ignore[type-arg]
    """validate_create raises the service's error code for each bad body."""
    with pytest.raises(ApiError) as info:
        validate_create(body, websocket=True, strict=True)
    assert info.value.code == code
    assert info.value.status == 400


def test_validation_accepts_nulls_and_ws_only_fields() -> None:
    """Null optional fields pass; stream_id/generate are fine over WS, stream_id not over HTTP."""
    body = {"model": "m", "temperature": None, "generate": False, "stream_id": "s"}
    validate_create(body, websocket=True, strict=True)
    with pytest.raises(ApiError):
        validate_create(body, websocket=False, strict=True)
    validate_create(body, websocket=False, strict=False)


def test_decimal_sampling_detection() -> None:
    """Only non-integral numbers in temperature/top_p trip the quirk."""
    assert has_decimal_sampling({"temperature": 0.2})
    assert has_decimal_sampling({"top_p": 0.9})
    assert not has_decimal_sampling({"temperature": 1, "top_p": 1.0})
    assert not has_decimal_sampling({"temperature": "1.2"})


def test_script_parsing_and_attempt_windows() -> None:
    """parse_script reads every key; *_times limit which attempts a fault applies to."""
    script = parse_script(
        {
            "user": "kept out",
            "emulator_error": "server_error",
            "emulator_error_times": "2",
            "emulator_close_code": "1011",
            "emulator_function_call": '[{"name": "f"}, {"name": "g", "arguments": "{}"}]',
        }
    )
    assert script.error_applies(1) and script.error_applies(2) and not script.error_applies(3)
    assert script.close_applies(99)
    assert script.function_calls is not None
    assert [c.arguments for c in script.function_calls] == ["{}", "{}"]
    assert parse_script(None) == Script()


def test_redacted_keys_never_contain_the_middle() -> None:
    """redact_key keeps a short prefix and the last four characters only."""
    assert redact_key("sk-abcdefghijklmnop") == "sk-************mnop"
    assert redact_key("short") == "sk-***"


@pytest.mark.parametrize("stream_id", [None, "lane-1"])
@pytest.mark.parametrize("delta", ["plain ", 'quo"te\\ ', "ünïcode ✓ ", "\n\t\x00"])
def test_fast_delta_encoding_matches_json(stream_id: Optional[str], delta: str) -> None:
    """The hand-built text-delta frame is byte-identical to compact json for the same dict."""
    event = {
        "type": "response.output_text.delta",
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 2,
        "delta": delta,
        "logprobs": [],
        "sequence_number": 17,
    }
    if stream_id is not None:
        event["stream_id"] = stream_id
    expected = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    assert dumps(event) == expected
    odd = dict(event, extra=True)
    assert json.loads(dumps(odd)) == odd
