"""Tests of the request and response models (openai_ws.models) and their wire forms."""

import copy
import json
from types import MappingProxyType
from typing import Any, Dict, List

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openai_ws import models
from openai_ws._convert import parse_response, unstructure
from openai_ws.errors import ProtocolError
from openai_ws.models import (
    FunctionCall,
    FunctionCallOutput,
    IncompleteDetails,
    InputMessage,
    InputTokensDetails,
    OutputMessage,
    OutputRefusal,
    OutputText,
    OutputTokensDetails,
    ReasoningItem,
    ReasoningText,
    Response,
    ResponseCreateRequest,
    ResponseErrorInfo,
    SummaryText,
    UnknownContent,
    UnknownOutputItem,
    Usage,
)

# The create-body fields of docs/protocol.md §2.1 (without the event's own "type").
SPEC_REQUEST_FIELDS = {
    "model",
    "input",
    "instructions",
    "previous_response_id",
    "conversation",
    "store",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "max_tool_calls",
    "temperature",
    "top_p",
    "top_logprobs",
    "truncation",
    "reasoning",
    "text",
    "include",
    "metadata",
    "prompt",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "safety_identifier",
    "user",
    "service_tier",
    "context_management",
    "moderation",
    "image",
    "access_programs",
    "stream_id",
    "generate",
    "stream",
    "stream_options",
    "background",
}

MESSAGE_ITEM: Dict[str, Any] = {
    "type": "message",
    "id": "msg_1",
    "role": "assistant",
    "status": "completed",
    "phase": "final_answer",
    "content": [
        {"type": "output_text", "text": "Paris is ", "annotations": [], "logprobs": []},
        {"type": "output_text", "text": "the capital.", "annotations": []},
    ],
}
REFUSAL_ITEM: Dict[str, Any] = {
    "type": "message",
    "id": "msg_2",
    "role": "assistant",
    "status": "completed",
    "content": [{"type": "refusal", "refusal": "I can't help with that."}],
}
CALL_ITEM: Dict[str, Any] = {
    "type": "function_call",
    "id": "fc_1",
    "call_id": "call_1",
    "name": "get_weather",
    "arguments": '{"city":"Paris"}',
    "status": "completed",
}
REASONING_ITEM: Dict[str, Any] = {
    "type": "reasoning",
    "id": "rs_1",
    "summary": [{"type": "summary_text", "text": "Thinking about capitals."}],
    "content": [{"type": "reasoning_text", "text": "France -> Paris."}],
    "encrypted_content": "gAAAA-opaque",
    "status": "completed",
}
COMPACTION_ITEM: Dict[str, Any] = {"type": "compaction", "id": "cmp_1", "encrypted_content": "xyz"}

USAGE: Dict[str, Any] = {
    "input_tokens": 36,
    "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 2},
    "output_tokens": 87,
    "output_tokens_details": {"reasoning_tokens": 5},
    "total_tokens": 123,
}


def full_response(**changes: Any) -> Dict[str, Any]:
    """The Response object of docs/protocol.md §3.4 with realistic output items."""
    body: Dict[str, Any] = {
        "id": "resp_123",
        "object": "response",
        "created_at": 1741476542,
        "completed_at": 1741476543,
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "max_tool_calls": None,
        "model": "gpt-5.5",
        "output": [REASONING_ITEM, MESSAGE_ITEM, CALL_ITEM],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "conversation": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": USAGE,
        "user": None,
        "safety_identifier": None,
        "prompt_cache_key": None,
        "metadata": {},
    }
    body.update(changes)
    return copy.deepcopy(body)


def json_round_trip(obj: Any) -> Any:
    """Send ``obj.to_dict()`` through JSON text and build the same class again."""
    wire = json.loads(json.dumps(obj.to_dict()))
    return type(obj).from_dict(wire)


# --------------------------------------------------------------------------
# ResponseCreateRequest
# --------------------------------------------------------------------------


def test_request_models_every_create_field_of_the_spec() -> None:
    """ResponseCreateRequest has a keyword for every §2.1 field, plus extra_body."""
    names = {a.name for a in attrs.fields(ResponseCreateRequest)}
    assert names == SPEC_REQUEST_FIELDS | {"extra_body"}
    assert ResponseCreateRequest.FIELD_NAMES == SPEC_REQUEST_FIELDS


def test_empty_request_sends_nothing() -> None:
    """A request with no field set has an empty body: no type, no stream, no nulls."""
    assert ResponseCreateRequest().to_dict() == {}


def test_request_sends_only_fields_that_were_set() -> None:
    """to_dict contains exactly the fields given, never None, never type or stream."""
    request = ResponseCreateRequest(
        model="gpt-5.5", input="Hi", max_output_tokens=256, previous_response_id=None
    )
    body = request.to_dict()
    assert body == {"model": "gpt-5.5", "input": "Hi", "max_output_tokens": 256}
    assert "type" not in body and "stream" not in body


def test_request_all_fields_are_keyword_only() -> None:
    """Passing a field positionally is refused."""
    with pytest.raises(TypeError):
        ResponseCreateRequest("gpt-5.5")  # type: ignore[misc]


@pytest.mark.parametrize("value", [1.2, 1.0, 0.0, 2])
def test_request_numbers_are_sent_exactly_as_given(value: float) -> None:
    """A float temperature stays a float (1.0 is not turned into 1) and ints stay ints."""
    body = ResponseCreateRequest(temperature=value, top_p=value).to_dict()
    assert type(body["temperature"]) is type(value)
    assert body["temperature"] == value
    assert json.loads(json.dumps(body))["top_p"] == value
    assert json.dumps(body["temperature"]) == json.dumps(value)


def test_extra_body_is_merged_and_wins() -> None:
    """extra_body keys are merged into the body, override same-named fields, may be null."""
    request = ResponseCreateRequest(
        model="gpt-5.5",
        temperature=0.5,
        extra_body={"new_field": {"a": 1}, "temperature": "0.5", "previous_response_id": None},
    )
    assert request.to_dict() == {
        "model": "gpt-5.5",
        "temperature": "0.5",
        "new_field": {"a": 1},
        "previous_response_id": None,
    }


def test_typed_input_items_become_wire_dicts() -> None:
    """InputMessage, FunctionCallOutput and plain dicts in input serialise to wire items."""
    request = ResponseCreateRequest(
        model="gpt-5.5",
        previous_response_id="resp_abc",
        input=[
            FunctionCallOutput(call_id="call_1", output='{"ok":true}'),
            InputMessage(role="user", content=[{"type": "input_text", "text": "Now optimize it."}]),
            {"type": "message", "role": "user", "content": "plain dict"},
        ],
    )
    assert request.to_dict()["input"] == [
        {"type": "function_call_output", "call_id": "call_1", "output": '{"ok":true}'},
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Now optimize it."}],
        },
        {"type": "message", "role": "user", "content": "plain dict"},
    ]


def test_output_items_can_be_sent_back_as_input() -> None:
    """Items of a parsed response serialise back to the dicts the server sent."""
    response = parse_response(full_response(output=[REASONING_ITEM, CALL_ITEM, COMPACTION_ITEM]))
    body = ResponseCreateRequest(input=list(response.output)).to_dict()
    assert body["input"] == [REASONING_ITEM, CALL_ITEM, COMPACTION_ITEM]


def test_request_to_dict_is_a_deep_plain_copy() -> None:
    """to_dict copies mappings and tuples into new dicts and lists; editing it changes nothing."""
    tools = ({"type": "function", "name": "f", "parameters": MappingProxyType({"type": "object"})},)
    request = ResponseCreateRequest(tools=tools, metadata=MappingProxyType({"k": "v"}))  # type: ignore[arg-type]
    body = request.to_dict()
    assert body == {
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "metadata": {"k": "v"},
    }
    json.dumps(body)
    body["tools"][0]["name"] = "changed"
    assert request.tools[0]["name"] == "f"  # type: ignore[index]


def test_from_dict_puts_unknown_keys_in_extra_body() -> None:
    """from_dict maps known keys to fields and everything else to extra_body."""
    body = {"model": "gpt-5.5", "input": "Hi", "brand_new": [1, 2], "temperature": 0.7}
    request = ResponseCreateRequest.from_dict(body)
    assert request.model == "gpt-5.5"
    assert request.temperature == 0.7
    assert request.extra_body == {"brand_new": [1, 2]}
    assert request.to_dict() == body


@pytest.mark.parametrize(
    "field, value",
    [
        ("model", 5),
        ("max_output_tokens", True),
        ("max_output_tokens", "256"),
        ("temperature", "1.2"),
        ("temperature", False),
        ("store", "yes"),
        ("input", 3),
        ("input", ["not an item"]),
        ("metadata", ["k", "v"]),
        ("tools", {"type": "function"}),
    ],
)
def test_request_rejects_mistyped_fields(field: str, value: Any) -> None:
    """A known field of the wrong type raises TypeError at construction and in from_dict."""
    with pytest.raises(TypeError, match=field):
        ResponseCreateRequest(**{field: value})
    with pytest.raises(TypeError, match=field):
        ResponseCreateRequest.from_dict({field: value})


def test_request_is_frozen_and_evolvable() -> None:
    """Fields cannot be reassigned; attrs.evolve derives a changed copy."""
    request = ResponseCreateRequest(model="gpt-5.5")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        request.model = "other"  # type: ignore[misc]
    warm = attrs.evolve(request, generate=False)
    assert warm.to_dict() == {"model": "gpt-5.5", "generate": False}
    assert request.to_dict() == {"model": "gpt-5.5"}


def test_unstructure_of_a_request_is_its_body() -> None:
    """The converter's unstructure gives the same body as to_dict."""
    request = ResponseCreateRequest(model="m", stream_id="lane-1", stream=True)
    assert unstructure(request) == {"model": "m", "stream_id": "lane-1", "stream": True}


_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_dicts = st.dictionaries(st.text(max_size=6), _json_values, max_size=3)
_numbers = st.one_of(
    st.floats(min_value=0, max_value=2, allow_nan=False), st.integers(min_value=0, max_value=2)
)
_input_items = st.one_of(
    st.builds(InputMessage, role=st.sampled_from(["user", "developer"]), content=st.text()),
    st.builds(FunctionCallOutput, call_id=st.text(min_size=1), output=st.text()),
    _dicts,
)
_requests = st.builds(
    ResponseCreateRequest,
    model=st.none() | st.text(max_size=12),
    input=st.none() | st.text() | st.lists(_input_items, max_size=3),
    instructions=st.none() | st.text(),
    previous_response_id=st.none() | st.text(max_size=10),
    store=st.none() | st.booleans(),
    tools=st.none() | st.lists(_dicts, max_size=2),
    tool_choice=st.none() | st.text(max_size=8) | _dicts,
    max_output_tokens=st.none() | st.integers(min_value=1, max_value=10**6),
    temperature=st.none() | _numbers,
    top_p=st.none() | _numbers,
    include=st.none() | st.lists(st.text(max_size=10), max_size=2),
    metadata=st.none() | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    reasoning=st.none() | _dicts,
    stream_id=st.none() | st.text(max_size=8),
    generate=st.none() | st.booleans(),
    moderation=_json_values,
    extra_body=st.none()
    | st.dictionaries(
        st.text(max_size=6).filter(lambda k: k not in SPEC_REQUEST_FIELDS), _json_values, max_size=3
    ),
)


@settings(max_examples=200, deadline=None)
@given(_requests)
def test_request_round_trips_through_json(request: ResponseCreateRequest) -> None:
    """For any request, to_dict → JSON → from_dict → to_dict gives the same body, None-free."""
    body = request.to_dict()
    text = json.dumps(body)
    again = ResponseCreateRequest.from_dict(json.loads(text))
    assert again.to_dict() == body
    assert json.dumps(again.to_dict()) == text
    set_fields = {
        name for name in ResponseCreateRequest.FIELD_NAMES if getattr(request, name) is not None
    }
    assert set(body) == set_fields | set(request.extra_body or {})


# --------------------------------------------------------------------------
# Input items
# --------------------------------------------------------------------------


def test_input_message_and_function_call_output_wire_shapes() -> None:
    """The typed input items serialise to the documented item dicts and back."""
    message = InputMessage(role="user", content="Find fizz_buzz()")
    output = FunctionCallOutput(call_id="call_9", output="42")
    assert message.to_dict() == {"type": "message", "role": "user", "content": "Find fizz_buzz()"}
    assert output.to_dict() == {"type": "function_call_output", "call_id": "call_9", "output": "42"}
    assert json_round_trip(message) == message
    assert json_round_trip(output) == output


def test_input_items_check_their_fields() -> None:
    """Input items refuse a non-string role or call_id and content that is not str/list of dicts."""
    with pytest.raises(TypeError):
        InputMessage(role=1, content="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        InputMessage(role="user", content=["not a part"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        FunctionCallOutput(call_id=None, output="x")  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Response
# --------------------------------------------------------------------------


def test_full_response_parses_into_typed_fields() -> None:
    """The §3.4 Response object parses into typed fields and items."""
    response = parse_response(full_response())
    assert response.id == "resp_123"
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "gpt-5.5"
    assert response.created_at == 1741476542
    assert response.completed_at == 1741476543
    assert response.store is True
    assert response.temperature == 1.0 and response.top_p == 1.0
    assert response.tool_choice == "auto"
    assert response.metadata == {}
    assert response.error is None and response.incomplete_details is None
    assert response.usage == Usage(
        input_tokens=36,
        output_tokens=87,
        total_tokens=123,
        input_tokens_details=InputTokensDetails(cached_tokens=4, cache_write_tokens=2),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=5),
    )
    reasoning, message, call = response.output
    assert reasoning == ReasoningItem(
        id="rs_1",
        summary=[SummaryText(text="Thinking about capitals.")],
        content=[ReasoningText(text="France -> Paris.")],
        encrypted_content="gAAAA-opaque",
        status="completed",
    )
    assert isinstance(message, OutputMessage)
    assert message.phase == "final_answer"
    assert message.content[0] == OutputText(text="Paris is ", annotations=[], logprobs=[])
    assert message.content[1] == OutputText(text="the capital.")
    assert call == FunctionCall(
        id="fc_1",
        call_id="call_1",
        name="get_weather",
        arguments='{"city":"Paris"}',
        status="completed",
    )


def test_output_text_joins_all_text_parts_of_all_messages() -> None:
    """output_text concatenates every output_text part of every message, skipping other items."""
    second = {
        "type": "message",
        "id": "msg_3",
        "role": "assistant",
        "content": [{"type": "output_text", "text": " Bye."}],
    }
    response = parse_response(full_response(output=[REASONING_ITEM, MESSAGE_ITEM, second]))
    assert response.output_text == "Paris is the capital. Bye."
    assert response.refusal is None


def test_output_text_is_empty_without_messages() -> None:
    """output_text is "" and function_calls [] when output has neither."""
    response = parse_response(full_response(output=[]))
    assert response.output_text == ""
    assert response.function_calls == []


def test_function_calls_and_parsed_arguments() -> None:
    """function_calls lists FunctionCall items in order; parsed_arguments decodes the JSON."""
    second = dict(CALL_ITEM, id="fc_2", call_id="call_2", arguments='{"city":"Rome"}')
    response = parse_response(full_response(output=[MESSAGE_ITEM, CALL_ITEM, second]))
    calls = response.function_calls
    assert [c.call_id for c in calls] == ["call_1", "call_2"]
    assert calls[1].parsed_arguments() == {"city": "Rome"}


def test_parsed_arguments_raises_on_bad_json() -> None:
    """parsed_arguments raises JSONDecodeError when the model wrote invalid JSON."""
    call = FunctionCall(call_id="c", name="f", arguments="{not json")
    with pytest.raises(json.JSONDecodeError):
        call.parsed_arguments()


def test_refusal_joins_refusal_parts() -> None:
    """refusal returns the joined refusal parts; output_text ignores them."""
    response = parse_response(full_response(output=[REFUSAL_ITEM]))
    assert response.refusal == "I can't help with that."
    assert response.output_text == ""
    assert response.output[0].content == [OutputRefusal(refusal="I can't help with that.")]  # type: ignore[union-attr]


@pytest.mark.parametrize("output", ["null", "missing"])
def test_response_with_null_or_missing_output_is_tolerated(output: str) -> None:
    """A terminal response whose output is null or absent parses with output == []."""
    body = full_response()
    if output == "null":
        body["output"] = None
    else:
        del body["output"]
    response = parse_response(body)
    assert response.output == []
    assert response.output_text == ""


def test_minimal_response_needs_only_an_id() -> None:
    """Everything but id may be absent; absent fields are None (usage too)."""
    response = parse_response({"id": "resp_min"})
    assert response == Response(id="resp_min")
    assert response.usage is None and response.status is None


def test_response_ignores_unknown_fields_but_keeps_them_in_raw() -> None:
    """Unknown response fields are ignored; raw is the original dict, outside eq and repr."""
    body = full_response(tool_usage={"image_gen": 1}, prompt_cache_options={"prewarm": False})
    response = parse_response(body)
    assert response.raw is body
    assert response.raw["tool_usage"] == {"image_gen": 1}
    assert response == parse_response(full_response())
    assert "raw" not in repr(response)
    assert "tool_usage" not in response.to_dict()


def test_unknown_output_items_and_parts_keep_their_raw_dict() -> None:
    """Unknown item and content-part types become Unknown* objects holding the raw dict."""
    message = {
        "type": "message",
        "id": "m",
        "role": "assistant",
        "content": [{"type": "output_audio", "data": "AAA"}],
    }
    response = parse_response(full_response(output=[COMPACTION_ITEM, message]))
    assert response.output[0] == UnknownOutputItem(type="compaction", raw=COMPACTION_ITEM)
    assert response.output[1].content == [  # type: ignore[union-attr]
        UnknownContent(type="output_audio", raw={"type": "output_audio", "data": "AAA"})
    ]
    assert response.to_dict()["output"] == [COMPACTION_ITEM, message]


def test_failed_and_incomplete_details() -> None:
    """error and incomplete_details parse into their typed objects."""
    failed = parse_response(
        full_response(
            status="failed",
            output=[],
            usage=None,
            error={"code": "server_error", "message": "boom"},
        )
    )
    assert failed.error == ResponseErrorInfo(code="server_error", message="boom")
    incomplete = parse_response(
        full_response(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
    )
    assert incomplete.incomplete_details == IncompleteDetails(reason="max_output_tokens")


def test_usage_details_default_when_absent() -> None:
    """Usage without details has None details; detail fields default to 0 / None."""
    usage = Usage.from_dict({"input_tokens": 1, "output_tokens": 2, "total_tokens": 3})
    assert usage.input_tokens_details is None and usage.output_tokens_details is None
    details = InputTokensDetails.from_dict({})
    assert details.cached_tokens == 0 and details.cache_write_tokens is None
    assert OutputTokensDetails.from_dict({}).reasoning_tokens == 0


def test_response_to_dict_round_trips() -> None:
    """Response.to_dict gives back the wire dict; from_dict of it equals the original."""
    body = full_response()
    response = parse_response(body)
    rebuilt = response.to_dict()
    assert rebuilt == {**body, "prompt_cache_retention": None}
    assert Response.from_dict(json.loads(json.dumps(rebuilt))) == response


@pytest.mark.parametrize(
    "model",
    [
        OutputText(text="hi", annotations=[{"type": "url_citation", "url": "u"}], logprobs=[]),
        OutputText(text="hi"),
        OutputRefusal(refusal="no"),
        ReasoningText(text="think"),
        SummaryText(text="summary"),
        UnknownContent(type="output_audio", raw={"type": "output_audio", "data": "x"}),
        OutputMessage(id="m", status="completed", content=[OutputText(text="a")]),
        OutputMessage(),
        FunctionCall(id="fc", call_id="c", name="n", arguments="{}", status="completed"),
        ReasoningItem(id="rs", summary=[SummaryText(text="s")], encrypted_content="e"),
        UnknownOutputItem(type="web_search_call", raw={"type": "web_search_call", "id": "ws"}),
        InputMessage(role="user", content=[{"type": "input_text", "text": "t"}]),
        FunctionCallOutput(call_id="c", output="o"),
        Usage(input_tokens=1, output_tokens=2, total_tokens=3),
        InputTokensDetails(cached_tokens=3, cache_write_tokens=1),
        OutputTokensDetails(reasoning_tokens=2),
        ResponseErrorInfo(code="server_error", message="m", param="p", type="t"),
        IncompleteDetails(reason="content_filter"),
        Response(id="r"),
        Response(
            id="r",
            output=[
                OutputMessage(content=[OutputText(text="x")]),
                UnknownOutputItem(type="t", raw={"type": "t"}),
            ],
            usage=Usage(input_tokens_details=InputTokensDetails()),
            temperature=0.7,
            instructions=[{"type": "message", "role": "developer", "content": "be brief"}],
            tool_choice={"type": "function", "name": "f"},
            metadata={"k": "v"},
        ),
    ],
    ids=lambda m: type(m).__name__,
)
def test_every_model_round_trips_through_json(model: Any) -> None:
    """model.to_dict() → JSON text → Class.from_dict() gives an equal model."""
    assert json_round_trip(model) == model


def test_response_request_round_trip_through_json() -> None:
    """A request with typed items round-trips as its body through JSON."""
    request = ResponseCreateRequest(
        model="m", input=[InputMessage(role="user", content="x")], temperature=1.5
    )
    assert json_round_trip(request).to_dict() == request.to_dict()


# --------------------------------------------------------------------------
# Malformed responses
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, field",
    [
        ({"id": None}, "id"),
        ({"id": 7}, "id"),
        ({"status": 1}, "status"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"store": "true"}, "store"),
        ({"store": 1}, "store"),
        ({"max_output_tokens": True}, "max_output_tokens"),
        ({"max_output_tokens": 2.0}, "max_output_tokens"),
        ({"temperature": "0.5"}, "temperature"),
        ({"temperature": False}, "temperature"),
        ({"previous_response_id": 5}, "previous_response_id"),
        ({"usage": {"input_tokens": "36"}}, "usage.input_tokens"),
        ({"usage": {"input_tokens": 1.5}}, "usage.input_tokens"),
        ({"usage": []}, "usage"),
        ({"output": {"type": "message"}}, "output"),
        ({"output": [CALL_ITEM, {"type": "function_call", "name": "f"}]}, "output[1].call_id"),
        ({"output": [{"id": "x"}]}, "output[0].type"),
        ({"output": ["text"]}, "output[0]"),
        (
            {"output": [{"type": "message", "content": [{"type": "output_text", "text": 3}]}]},
            "output[0].content[0].text",
        ),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"tool_choice": 3}, "tool_choice"),
    ],
)
def test_malformed_response_raises_protocol_error_naming_the_field(
    change: Dict[str, Any], field: str
) -> None:
    """A missing or mistyped response field raises ProtocolError with its dotted path."""
    body = full_response(**change)
    if change.get("id", 0) is None:
        del body["id"]
    with pytest.raises(ProtocolError) as info:
        parse_response(body)
    assert info.value.field == field
    assert repr(field) in str(info.value)
    assert info.value.__cause__ is not None


def test_optional_scalars_keep_their_values_and_types() -> None:
    """Optional numbers, strings and booleans come back as sent; an int is a valid float."""
    response = parse_response(
        full_response(temperature=1, top_p=0.25, max_output_tokens=7, store=True, user=None)
    )
    assert (response.temperature, type(response.temperature)) == (1, int)
    assert response.top_p == 0.25
    assert (response.max_output_tokens, response.store, response.user) == (7, True, None)


def test_parse_response_refuses_a_non_object() -> None:
    """parse_response of a list raises ProtocolError, not a cattrs or Python error."""
    with pytest.raises(ProtocolError):
        parse_response([])  # type: ignore[arg-type]


def test_models_are_frozen() -> None:
    """Parsed models cannot be modified in place."""
    response = parse_response(full_response())
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        response.id = "other"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        response.output[1].id = "other"  # type: ignore[misc]


def _all_model_classes() -> List[type]:
    return [getattr(models, name) for name in models.__all__ if attrs.has(getattr(models, name))]


@pytest.mark.parametrize("cls", _all_model_classes(), ids=lambda c: c.__name__)
def test_every_public_model_is_documented_frozen_and_keyword_only(cls: type) -> None:
    """Every public model class has a docstring, is frozen and takes keyword arguments only."""
    assert cls.__doc__ and cls.__doc__.strip()
    assert cls.__setattr__ is not object.__setattr__
    assert all(a.kw_only for a in attrs.fields(cls) if a.init)


# --------------------------------------------------------------------------
# Numbers that are not JSON (NaN, infinities)
# --------------------------------------------------------------------------

_NOT_JSON = [float("nan"), float("inf"), float("-inf")]


@pytest.mark.parametrize("field", ["temperature", "top_p"])
@pytest.mark.parametrize("value", _NOT_JSON, ids=["nan", "inf", "-inf"])
def test_non_finite_sampling_values_are_refused_at_construction(field: str, value: float) -> None:
    """NaN and ±inf (not JSON numbers, RFC 8259 §6) raise ValueError naming the field."""
    with pytest.raises(ValueError, match=f"{field} must be a finite number"):
        ResponseCreateRequest(**{field: value})


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"extra_body": {"x": {"y": [1.0, float("nan")]}}}, r"extra_body\.x\.y\[1\]"),
        ({"reasoning": {"budget": float("inf")}}, r"reasoning\.budget"),
        ({"tools": [{"type": "function", "strict": float("-inf")}]}, r"tools\[0\]\.strict"),
        ({"input": [{"role": "user", "content": "hi", "w": float("nan")}]}, r"input\[0\]\.w"),
        ({"text": {"format": {"scale": float("nan")}}}, r"text\.format\.scale"),
    ],
)
def test_non_finite_nested_numbers_are_refused_before_sending(
    fields: Dict[str, Any], path: str
) -> None:
    """A NaN or infinity anywhere in the body fails to_dict() with ValueError naming its path."""
    request = ResponseCreateRequest(model="m", **fields)
    with pytest.raises(ValueError, match=rf"{path} is (nan|inf|-inf), which is not a JSON number"):
        request.to_dict()


def test_finite_floats_still_pass_through_unchanged() -> None:
    """Large and tiny finite floats in nested values are sent exactly as given."""
    body = ResponseCreateRequest(extra_body={"big": 1e308, "tiny": [5e-324, -0.0]}).to_dict()
    assert body == {"big": 1e308, "tiny": [5e-324, -0.0]}
    assert json.dumps(body, allow_nan=False)


def test_non_finite_numbers_from_a_dict_are_refused_too() -> None:
    """from_dict of a body with NaN (Python's json reads it) raises ValueError; the
    converter's structure() turns that into a ProtocolError naming the field."""
    from openai_ws._convert import structure

    body = json.loads('{"model": "m", "temperature": NaN}')
    with pytest.raises(ValueError, match="temperature"):
        ResponseCreateRequest.from_dict(body)
    with pytest.raises(ProtocolError, match="temperature"):
        structure(body, ResponseCreateRequest)
