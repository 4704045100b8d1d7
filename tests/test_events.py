"""Tests of the typed server events (openai_ws.events) and of parse_event."""

import copy
import json
import sys
from types import MappingProxyType
from typing import Any, Dict, List, Tuple

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openai_ws._convert import parse_event, structure_event, unstructure
from openai_ws.errors import (
    PreviousResponseNotFoundError,
    ProtocolError,
    RateLimitError,
)
from openai_ws.events import (
    KNOWN_EVENT_CLASSES,
    TERMINAL_EVENT_TYPES,
    ErrorEvent,
    ErrorPayload,
    ResponseCompleted,
    ResponseContentPartAdded,
    ResponseContentPartDone,
    ResponseCreated,
    ResponseDone,
    ResponseFailed,
    ResponseFunctionCallArgumentsDelta,
    ResponseFunctionCallArgumentsDone,
    ResponseIncomplete,
    ResponseInProgress,
    ResponseOutputItemAdded,
    ResponseOutputItemDone,
    ResponseOutputTextAnnotationAdded,
    ResponseOutputTextDelta,
    ResponseOutputTextDone,
    ResponseQueued,
    ResponseReasoningSummaryPartAdded,
    ResponseReasoningSummaryPartDone,
    ResponseReasoningSummaryTextDelta,
    ResponseReasoningSummaryTextDone,
    ResponseReasoningTextDelta,
    ResponseReasoningTextDone,
    ResponseRefusalDelta,
    ResponseRefusalDone,
    ResponseSteerAccepted,
    ResponseSteerFailed,
    ResponseSteerPending,
    ServerEvent,
    SteerInfo,
    UnknownEvent,
)
from openai_ws.models import (
    FunctionCall,
    OutputMessage,
    OutputRefusal,
    OutputText,
    ReasoningItem,
    ReasoningText,
    Response,
    ResponseErrorInfo,
    SummaryText,
    UnknownOutputItem,
    Usage,
)


def response_obj(status: str = "completed", **changes: Any) -> Dict[str, Any]:
    """A Response object as the lifecycle events carry it (docs/protocol.md §3.4 shape)."""
    body: Dict[str, Any] = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1741476542,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "model": "gpt-5.5",
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "store": False,
        "temperature": 1.0,
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "usage": None,
        "metadata": {},
    }
    body.update(changes)
    return body


MESSAGE_DONE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "status": "completed",
    "content": [{"type": "output_text", "text": "Hi there!", "annotations": [], "logprobs": []}],
}
USAGE = {
    "input_tokens": 10,
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens": 3,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 13,
}
STEER = {"id": "steer_1", "previous_response_id": "resp_active"}

# (wire dict, expected class, expected attribute values) for every modelled event.
CASES: List[Tuple[Dict[str, Any], type, Dict[str, Any]]] = [
    (
        {
            "type": "response.created",
            "sequence_number": 0,
            "response": response_obj("in_progress"),
        },
        ResponseCreated,
        {"sequence_number": 0, "stream_id": None},
    ),
    (
        {"type": "response.queued", "sequence_number": 0, "response": response_obj("queued")},
        ResponseQueued,
        {},
    ),
    (
        {
            "type": "response.in_progress",
            "sequence_number": 1,
            "stream_id": "agent_1",
            "response": response_obj("in_progress"),
        },
        ResponseInProgress,
        {"stream_id": "agent_1"},
    ),
    (
        {
            "type": "response.completed",
            "sequence_number": 9,
            "response": response_obj(output=[MESSAGE_DONE], usage=USAGE),
        },
        ResponseCompleted,
        {"sequence_number": 9},
    ),
    (
        {
            "type": "response.failed",
            "sequence_number": 5,
            "response": response_obj(
                "failed", error={"code": "server_error", "message": "The server had an error."}
            ),
        },
        ResponseFailed,
        {},
    ),
    (
        {
            "type": "response.incomplete",
            "sequence_number": 7,
            "response": response_obj(
                "incomplete", incomplete_details={"reason": "max_output_tokens"}
            ),
        },
        ResponseIncomplete,
        {},
    ),
    (
        {"type": "response.done", "response": response_obj(output=[MESSAGE_DONE])},
        ResponseDone,
        {"sequence_number": None},
    ),
    (
        {
            "type": "response.output_item.added",
            "sequence_number": 2,
            "output_index": 0,
            "item": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            },
        },
        ResponseOutputItemAdded,
        {
            "output_index": 0,
            "item": OutputMessage(id="msg_1", status="in_progress", content=[]),
        },
    ),
    (
        {
            "type": "response.output_item.done",
            "sequence_number": 8,
            "output_index": 1,
            "item": {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
                "status": "completed",
            },
        },
        ResponseOutputItemDone,
        {
            "output_index": 1,
            "item": FunctionCall(
                id="fc_1",
                call_id="call_1",
                name="get_weather",
                arguments='{"city":"Paris"}',
                status="completed",
            ),
        },
    ),
    (
        {
            "type": "response.content_part.added",
            "sequence_number": 3,
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []},
        },
        ResponseContentPartAdded,
        {
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "part": OutputText(text=""),
        },
    ),
    (
        {
            "type": "response.content_part.done",
            "sequence_number": 6,
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 1,
            "part": {"type": "refusal", "refusal": "No."},
        },
        ResponseContentPartDone,
        {"content_index": 1, "part": OutputRefusal(refusal="No.")},
    ),
    (
        {
            "type": "response.output_text.delta",
            "item_id": "msg_0123456789abcdef",
            "output_index": 0,
            "content_index": 0,
            "delta": "Hello ",
            "logprobs": [],
            "sequence_number": 42,
            "stream_id": "lane-3",
        },
        ResponseOutputTextDelta,
        {
            "item_id": "msg_0123456789abcdef",
            "output_index": 0,
            "content_index": 0,
            "delta": "Hello ",
            "logprobs": [],
            "obfuscation": None,
            "sequence_number": 42,
            "stream_id": "lane-3",
        },
    ),
    (
        {
            "type": "response.output_text.done",
            "sequence_number": 5,
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "text": "Hi there!",
            "logprobs": [],
        },
        ResponseOutputTextDone,
        {"text": "Hi there!", "logprobs": []},
    ),
    (
        {
            "type": "response.output_text.annotation.added",
            "sequence_number": 5,
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "annotation_index": 2,
            "annotation": {"type": "url_citation", "url": "https://example.com"},
        },
        ResponseOutputTextAnnotationAdded,
        {
            "annotation_index": 2,
            "annotation": {"type": "url_citation", "url": "https://example.com"},
        },
    ),
    (
        {
            "type": "response.refusal.delta",
            "sequence_number": 4,
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": "I can",
        },
        ResponseRefusalDelta,
        {"delta": "I can"},
    ),
    (
        {
            "type": "response.refusal.done",
            "sequence_number": 5,
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "refusal": "I can't help.",
        },
        ResponseRefusalDone,
        {"refusal": "I can't help."},
    ),
    (
        {
            "type": "response.function_call_arguments.delta",
            "sequence_number": 4,
            "item_id": "fc_1",
            "output_index": 1,
            "delta": '{"city":',
            "obfuscation": "x1",
        },
        ResponseFunctionCallArgumentsDelta,
        {"item_id": "fc_1", "output_index": 1, "delta": '{"city":', "obfuscation": "x1"},
    ),
    (
        {
            "type": "response.function_call_arguments.done",
            "sequence_number": 6,
            "item_id": "fc_1",
            "output_index": 1,
            "arguments": '{"city":"Paris"}',
            "name": "get_weather",
        },
        ResponseFunctionCallArgumentsDone,
        {"arguments": '{"city":"Paris"}', "name": "get_weather"},
    ),
    (
        {
            "type": "response.reasoning_summary_part.added",
            "sequence_number": 3,
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 0,
            "part": {"type": "summary_text", "text": ""},
        },
        ResponseReasoningSummaryPartAdded,
        {"summary_index": 0, "part": SummaryText(text="")},
    ),
    (
        {
            "type": "response.reasoning_summary_part.done",
            "sequence_number": 7,
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 0,
            "part": {"type": "summary_text", "text": "Thinking."},
            "status": "incomplete",
        },
        ResponseReasoningSummaryPartDone,
        {"part": SummaryText(text="Thinking."), "status": "incomplete"},
    ),
    (
        {
            "type": "response.reasoning_summary_text.delta",
            "sequence_number": 4,
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 1,
            "delta": "Think",
        },
        ResponseReasoningSummaryTextDelta,
        {"summary_index": 1, "delta": "Think"},
    ),
    (
        {
            "type": "response.reasoning_summary_text.done",
            "sequence_number": 6,
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 1,
            "text": "Thinking.",
        },
        ResponseReasoningSummaryTextDone,
        {"text": "Thinking."},
    ),
    (
        {
            "type": "response.reasoning_text.delta",
            "sequence_number": 4,
            "item_id": "rs_1",
            "output_index": 0,
            "content_index": 0,
            "delta": "France",
        },
        ResponseReasoningTextDelta,
        {"content_index": 0, "delta": "France"},
    ),
    (
        {
            "type": "response.reasoning_text.done",
            "sequence_number": 5,
            "item_id": "rs_1",
            "output_index": 0,
            "content_index": 0,
            "text": "France -> Paris",
        },
        ResponseReasoningTextDone,
        {"text": "France -> Paris"},
    ),
    (
        {
            "type": "error",
            "status": 400,
            "stream_id": "agent_1",
            "sequence_number": 5,
            "error": {
                "type": "invalid_request_error",
                "code": "previous_response_not_found",
                "message": "Previous response with id 'resp_abc' not found.",
                "param": "previous_response_id",
                "headers": {"x-ratelimit-remaining-tokens": "0"},
            },
        },
        ErrorEvent,
        {
            "status": 400,
            "stream_id": "agent_1",
            "sequence_number": 5,
            "error": ErrorPayload(
                type="invalid_request_error",
                code="previous_response_not_found",
                message="Previous response with id 'resp_abc' not found.",
                param="previous_response_id",
                headers={"x-ratelimit-remaining-tokens": "0"},
            ),
        },
    ),
    (
        {
            "type": "response.steer.accepted",
            "sequence_number": 7,
            "steer": STEER,
            "stream_id": "main",
        },
        ResponseSteerAccepted,
        {"steer": SteerInfo(id="steer_1", previous_response_id="resp_active"), "stream_id": "main"},
    ),
    (
        {
            "type": "response.steer.pending",
            "sequence_number": 12,
            "reason": "waiting_for_required_input",
            "required_input": [
                {"type": "function_call_output", "call_id": "call_9", "name": "lookup"}
            ],
            "steer": STEER,
        },
        ResponseSteerPending,
        {
            "reason": "waiting_for_required_input",
            "required_input": [
                {"type": "function_call_output", "call_id": "call_9", "name": "lookup"}
            ],
        },
    ),
    (
        {
            "type": "response.steer.failed",
            "sequence_number": 3,
            "error": {
                "type": "invalid_request_error",
                "code": "response_not_active",
                "message": "The response is not active.",
            },
            "steer": {
                "id": "steer_1",
                "previous_response_id": "resp_active",
                "input": [{"type": "message", "role": "user", "content": "Go."}],
            },
        },
        ResponseSteerFailed,
        {
            "error": ErrorPayload(
                type="invalid_request_error",
                code="response_not_active",
                message="The response is not active.",
            ),
            "steer": SteerInfo(
                id="steer_1",
                previous_response_id="resp_active",
                input=[{"type": "message", "role": "user", "content": "Go."}],
            ),
        },
    ),
]

CASE_IDS = [case[0]["type"] for case in CASES]


def test_cases_cover_every_event_class() -> None:
    """The table below has one realistic frame for every modelled event type."""
    assert {case[1] for case in CASES} == set(KNOWN_EVENT_CLASSES.values())
    assert set(CASE_IDS) == set(KNOWN_EVENT_CLASSES)


@pytest.mark.parametrize("wire, cls, expected", CASES, ids=CASE_IDS)
def test_event_parses_into_its_class(
    wire: Dict[str, Any], cls: type, expected: Dict[str, Any]
) -> None:
    """Each wire frame parses into its class, with event.type the wire type and the fields set."""
    event = parse_event(json.dumps(wire))
    assert type(event) is cls
    assert event.type == wire["type"]
    for name, value in expected.items():
        assert getattr(event, name) == value, name
    assert event.sequence_number == wire.get("sequence_number")
    assert event.stream_id == wire.get("stream_id")


@pytest.mark.parametrize("wire, cls, expected", CASES, ids=CASE_IDS)
def test_event_round_trips_through_json(
    wire: Dict[str, Any], cls: type, expected: Dict[str, Any]
) -> None:
    """event.to_dict() → JSON text → parse_event gives an equal event of the same type."""
    event = parse_event(wire)
    again = parse_event(json.dumps(event.to_dict()))
    assert again == event
    assert event.to_dict()["type"] == wire["type"]
    assert unstructure(event) == event.to_dict()


@pytest.mark.parametrize("wire, cls, expected", CASES, ids=CASE_IDS)
def test_event_ignores_unknown_fields(
    wire: Dict[str, Any], cls: type, expected: Dict[str, Any]
) -> None:
    """Fields the model does not know (new server additions) are ignored."""
    noisy = dict(copy.deepcopy(wire), brand_new_field={"x": 1}, obfuscation_v2="pad")
    assert parse_event(noisy) == parse_event(wire)


@pytest.mark.parametrize("wire, cls, expected", CASES, ids=CASE_IDS)
def test_event_type_is_fixed_by_the_class(
    wire: Dict[str, Any], cls: type, expected: Dict[str, Any]
) -> None:
    """type is an instance attribute with the wire default; the constructor does not take it."""
    event = parse_event(wire)
    assert attrs.evolve(event).type == wire["type"]
    assert attrs.fields_dict(cls)["type"].init is False
    with pytest.raises(TypeError):
        cls(type="something.else")


def test_lifecycle_events_carry_a_typed_response() -> None:
    """response.completed carries a Response with output, usage and output_text."""
    event = parse_event(CASES[3][0])
    assert isinstance(event, ResponseCompleted)
    assert isinstance(event.response, Response)
    assert event.response.output_text == "Hi there!"
    assert event.response.usage == Usage(
        input_tokens=10,
        output_tokens=3,
        total_tokens=13,
        input_tokens_details=event.response.usage.input_tokens_details,  # type: ignore[union-attr]
        output_tokens_details=event.response.usage.output_tokens_details,  # type: ignore[union-attr]
    )
    failed = parse_event(CASES[4][0])
    assert isinstance(failed, ResponseFailed)
    assert failed.response.error == ResponseErrorInfo(
        code="server_error", message="The server had an error."
    )
    incomplete = parse_event(CASES[5][0])
    assert isinstance(incomplete, ResponseIncomplete)
    assert incomplete.response.incomplete_details is not None
    assert incomplete.response.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize("output", [None, "missing"])
def test_terminal_event_with_null_or_missing_output(output: Any) -> None:
    """A response.completed whose response.output is null or absent parses with output []."""
    body = response_obj(usage=USAGE)
    if output is None:
        body["output"] = None
    else:
        del body["output"]
    event = parse_event({"type": "response.completed", "response": body})
    assert isinstance(event, ResponseCompleted)
    assert event.response.output == []


def test_output_items_in_item_events() -> None:
    """output_item events carry typed items: reasoning, and unknown types with their raw dict."""
    reasoning = parse_event(
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"type": "reasoning", "id": "rs_1", "summary": []},
        }
    )
    assert isinstance(reasoning, ResponseOutputItemAdded)
    assert reasoning.item == ReasoningItem(id="rs_1", summary=[])
    web = {"type": "web_search_call", "id": "ws_1", "status": "in_progress"}
    unknown = parse_event({"type": "response.output_item.added", "output_index": 1, "item": web})
    assert isinstance(unknown, ResponseOutputItemAdded)
    assert unknown.item == UnknownOutputItem(type="web_search_call", raw=web)


def test_reasoning_text_content_part() -> None:
    """A reasoning_text content part parses into ReasoningText."""
    event = parse_event(
        {
            "type": "response.content_part.added",
            "item_id": "rs_1",
            "output_index": 0,
            "content_index": 0,
            "part": {"type": "reasoning_text", "text": ""},
        }
    )
    assert isinstance(event, ResponseContentPartAdded)
    assert event.part == ReasoningText(text="")


# --------------------------------------------------------------------------
# Unknown events
# --------------------------------------------------------------------------


def test_unknown_type_becomes_unknown_event_with_raw() -> None:
    """An unmodelled type gives UnknownEvent keeping the raw dict, sequence_number, stream_id."""
    wire = {
        "type": "response.web_search_call.searching",
        "item_id": "ws_1",
        "output_index": 0,
        "sequence_number": 4,
        "stream_id": "lane-2",
    }
    event = parse_event(json.dumps(wire))
    assert event == UnknownEvent(
        type="response.web_search_call.searching",
        raw=wire,
        sequence_number=4,
        stream_id="lane-2",
    )
    assert event.is_terminal is False
    assert event.to_dict() == wire


def test_unknown_event_with_oddly_typed_routing_fields() -> None:
    """UnknownEvent drops a sequence_number or stream_id of the wrong type but keeps raw."""
    wire = {"type": "responsesapi.websocket_timing", "sequence_number": "7", "stream_id": 3}
    event = parse_event(wire)
    assert isinstance(event, UnknownEvent)
    assert event.sequence_number is None and event.stream_id is None
    assert event.raw == wire


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def test_error_event_with_only_code_and_message() -> None:
    """An error whose payload has only code and message parses; the rest is None."""
    event = parse_event(
        {
            "type": "error",
            "error": {"code": "previous_response_not_found", "message": "Not found."},
        }
    )
    assert isinstance(event, ErrorEvent)
    assert event.status is None
    assert event.error == ErrorPayload(code="previous_response_not_found", message="Not found.")
    assert isinstance(event.to_api_error(), PreviousResponseNotFoundError)


def test_error_event_accepts_status_code_alias_and_top_level_headers() -> None:
    """status_code stands in for status; top-level headers are kept and merged with the inner."""
    event = parse_event(
        {
            "type": "error",
            "status_code": 429,
            "headers": {"Retry-After": "2", "x-ratelimit-reset-tokens": "6s"},
            "error": {
                "type": "tokens",
                "code": "rate_limit_exceeded",
                "message": "Slow down.",
                "headers": {"x-ratelimit-remaining-tokens": "0", "retry-after": "9"},
            },
        }
    )
    assert isinstance(event, ErrorEvent)
    assert event.status == 429
    assert event.headers == {"Retry-After": "2", "x-ratelimit-reset-tokens": "6s"}
    assert event.all_headers == {
        "x-ratelimit-remaining-tokens": "0",
        "retry-after": "2",
        "x-ratelimit-reset-tokens": "6s",
    }
    error = event.to_api_error(request={"model": "m"})
    assert isinstance(error, RateLimitError)
    assert error.status == 429 and error.code == "rate_limit_exceeded"
    assert error.headers["retry-after"] == "2"
    assert error.request == {"model": "m"}


def test_status_wins_over_status_code() -> None:
    """When both status and status_code are present, status is used."""
    event = parse_event({"type": "error", "status": 500, "status_code": 429, "error": {}})
    assert isinstance(event, ErrorEvent)
    assert event.status == 500


def test_error_event_in_flat_sse_shape() -> None:
    """The flat SSE error (code/message/param at the top level) lands in event.error."""
    event = parse_event(
        {
            "type": "error",
            "code": "insufficient_quota",
            "message": "You exceeded your current quota.",
            "param": None,
            "sequence_number": 3,
        }
    )
    assert isinstance(event, ErrorEvent)
    assert event.error == ErrorPayload(
        code="insufficient_quota", message="You exceeded your current quota."
    )
    assert event.sequence_number == 3


def test_error_event_with_a_bare_message_string() -> None:
    """An error whose "error" is a plain string keeps it as the message."""
    event = parse_event({"type": "error", "status": 502, "error": "Bad gateway"})
    assert isinstance(event, ErrorEvent)
    assert event.error == ErrorPayload(message="Bad gateway")
    assert event.to_api_error().status == 502


def test_error_event_without_details_still_parses() -> None:
    """A bare error frame gives an ErrorEvent with an empty payload, not a ProtocolError."""
    event = parse_event({"type": "error", "stream_id": "lane-1"})
    assert isinstance(event, ErrorEvent)
    assert event.error == ErrorPayload()
    assert event.stream_id == "lane-1"
    assert event.is_terminal


def test_error_header_values_become_strings() -> None:
    """Non-string header values (numbers) are turned into strings; nulls are dropped."""
    event = parse_event(
        {
            "type": "error",
            "error": {"code": "rate_limit_exceeded", "headers": {"retry-after": 2, "x": None}},
        }
    )
    assert isinstance(event, ErrorEvent)
    assert event.error.headers == {"retry-after": "2"}


# --------------------------------------------------------------------------
# Terminal events
# --------------------------------------------------------------------------


def test_terminal_event_types() -> None:
    """TERMINAL_EVENT_TYPES is completed, failed, incomplete, done and error."""
    assert (
        frozenset(
            {
                "response.completed",
                "response.failed",
                "response.incomplete",
                "response.done",
                "error",
            }
        )
        == TERMINAL_EVENT_TYPES
    )


@pytest.mark.parametrize("wire, cls, expected", CASES, ids=CASE_IDS)
def test_is_terminal(wire: Dict[str, Any], cls: type, expected: Dict[str, Any]) -> None:
    """is_terminal is true exactly for the terminal event classes."""
    event = parse_event(wire)
    assert event.is_terminal is (wire["type"] in TERMINAL_EVENT_TYPES)
    assert event.is_terminal is (
        cls in (ResponseCompleted, ResponseFailed, ResponseIncomplete, ResponseDone, ErrorEvent)
    )


# --------------------------------------------------------------------------
# Malformed frames
# --------------------------------------------------------------------------

DELTA = CASES[11][0]


def delta_with(**changes: Any) -> Dict[str, Any]:
    """The typical text delta frame with some fields changed (None removes a field)."""
    frame = dict(DELTA)
    for key, value in changes.items():
        if value is None:
            frame.pop(key, None)
        else:
            frame[key] = value
    return frame


@pytest.mark.parametrize(
    "frame",
    [
        "not json at all",
        "{",
        "",
        b"\xff\xfe\xfa garbage",
        bytearray(b"\x00\x01\x02"),
        b'{"type": "response.output_text.delta", "delta": "\xff"}',
    ],
)
def test_frames_that_are_not_json_raise_protocol_error(frame: Any) -> None:
    """Text or bytes that do not decode as JSON raise ProtocolError, chained from the cause."""
    with pytest.raises(ProtocolError) as info:
        parse_event(frame)
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("frame", ["[]", '[{"type": "error"}]', "42", '"text"', "null"])
def test_json_that_is_not_an_object_raises_protocol_error(frame: str) -> None:
    """A JSON array, number, string or null is not an event."""
    with pytest.raises(ProtocolError, match="not a JSON object"):
        parse_event(frame)


@pytest.mark.parametrize("frame", ['{"delta": "x"}', '{"type": null}', '{"type": 5}'])
def test_missing_or_non_string_type_raises_protocol_error(frame: str) -> None:
    """An object without a string type raises ProtocolError with field 'type'."""
    with pytest.raises(ProtocolError) as info:
        parse_event(frame)
    assert info.value.field == "type"
    assert info.value.event_type is None


@pytest.mark.parametrize(
    "frame, field",
    [
        (delta_with(delta=None), "delta"),
        (delta_with(delta=5), "delta"),
        (delta_with(item_id=None), "item_id"),
        (delta_with(output_index="0"), "output_index"),
        (delta_with(output_index=True), "output_index"),
        (delta_with(output_index=1.5), "output_index"),
        (delta_with(content_index=None), "content_index"),
        (delta_with(sequence_number="42"), "sequence_number"),
        (delta_with(stream_id=3), "stream_id"),
        (delta_with(logprobs="none"), "logprobs"),
        (delta_with(logprobs=["x"]), "logprobs"),
    ],
)
def test_bad_delta_raises_protocol_error_naming_type_and_field(
    frame: Dict[str, Any], field: str
) -> None:
    """A delta missing or mistyping a field raises ProtocolError naming the event type and field."""
    with pytest.raises(ProtocolError) as info:
        parse_event(json.dumps(frame))
    error = info.value
    assert error.event_type == "response.output_text.delta"
    assert error.field == field
    assert "response.output_text.delta" in str(error)
    assert repr(field) in str(error)
    assert error.__cause__ is not None


@pytest.mark.parametrize(
    "frame, field",
    [
        ({"type": "response.completed"}, "response"),
        ({"type": "response.completed", "response": "resp_1"}, "response"),
        ({"type": "response.completed", "response": {"status": "completed"}}, "response.id"),
        (
            {
                "type": "response.completed",
                "response": response_obj(output=[{"type": "function_call", "name": "f"}]),
            },
            "response.output[0].call_id",
        ),
        ({"type": "response.output_item.added", "item": MESSAGE_DONE}, "output_index"),
        (
            {"type": "response.output_item.added", "output_index": 0, "item": {"id": "x"}},
            "item.type",
        ),
        (
            {
                "type": "response.content_part.added",
                "item_id": "m",
                "output_index": 0,
                "content_index": 0,
                "part": {"type": "output_text"},
            },
            "part.text",
        ),
        ({"type": "error", "error": {"code": 429}}, "error.code"),
        ({"type": "error", "status": "429", "error": {}}, "status"),
        ({"type": "response.steer.accepted"}, "steer"),
        (
            {"type": "response.function_call_arguments.done", "item_id": "f", "output_index": 0},
            "arguments",
        ),
    ],
)
def test_other_malformed_events_name_the_field_path(frame: Dict[str, Any], field: str) -> None:
    """Nested failures report a dotted path such as response.output[0].call_id."""
    with pytest.raises(ProtocolError) as info:
        structure_event(frame)
    assert info.value.event_type == frame["type"]
    assert info.value.field == field


def test_no_cattrs_exception_escapes() -> None:
    """Whatever the payload, parse errors are ProtocolError only (never cattrs' own classes)."""
    frames: List[Any] = [
        {"type": "response.completed", "response": {"id": "r", "output": [[]]}},
        {"type": "response.completed", "response": {"id": "r", "usage": {"input_tokens": {}}}},
        {"type": "response.output_item.done", "output_index": [], "item": []},
        {"type": "response.content_part.done", "part": None},
    ]
    for frame in frames:
        with pytest.raises(ProtocolError) as info:
            structure_event(frame)
        assert type(info.value) is ProtocolError


def test_structure_event_accepts_any_mapping() -> None:
    """A read-only mapping works like a dict."""
    event = structure_event(MappingProxyType(DELTA))
    assert isinstance(event, ResponseOutputTextDelta)
    with pytest.raises(ProtocolError):
        structure_event(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_parse_event_accepts_str_bytes_bytearray_and_dicts() -> None:
    """parse_event takes text, bytes, bytearray or an already-decoded object alike."""
    text = json.dumps(DELTA)
    expected = parse_event(text)
    assert parse_event(text.encode()) == expected
    assert parse_event(bytearray(text.encode())) == expected
    assert parse_event(dict(DELTA)) == expected
    with pytest.raises(ProtocolError):
        parse_event(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Class behaviour
# --------------------------------------------------------------------------


def test_events_are_frozen_and_compare_by_value() -> None:
    """Events cannot be changed in place and two parses of a frame are equal."""
    event = parse_event(DELTA)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.delta = "changed"  # type: ignore[union-attr,misc]
    assert event == parse_event(json.dumps(DELTA))


def test_events_can_be_built_directly() -> None:
    """Events are constructed with keyword arguments; type and optional fields are filled in."""
    event = ResponseOutputTextDelta(item_id="m", output_index=0, content_index=0, delta="d")
    assert event.type == "response.output_text.delta"
    assert event.sequence_number is None and event.stream_id is None
    assert event.to_dict() == {
        "type": "response.output_text.delta",
        "item_id": "m",
        "output_index": 0,
        "content_index": 0,
        "delta": "d",
    }
    assert ErrorEvent().error == ErrorPayload()


#: The field a user means, first in each class's ``__match_args__`` (issue 12, item 5).
MAIN_FIELD = {
    "response.created": "response",
    "response.queued": "response",
    "response.in_progress": "response",
    "response.completed": "response",
    "response.failed": "response",
    "response.incomplete": "response",
    "response.done": "response",
    "response.output_item.added": "item",
    "response.output_item.done": "item",
    "response.content_part.added": "part",
    "response.content_part.done": "part",
    "response.output_text.delta": "delta",
    "response.output_text.done": "text",
    "response.output_text.annotation.added": "annotation",
    "response.refusal.delta": "delta",
    "response.refusal.done": "refusal",
    "response.function_call_arguments.delta": "delta",
    "response.function_call_arguments.done": "arguments",
    "response.reasoning_summary_part.added": "part",
    "response.reasoning_summary_part.done": "part",
    "response.reasoning_summary_text.delta": "delta",
    "response.reasoning_summary_text.done": "text",
    "response.reasoning_text.delta": "delta",
    "response.reasoning_text.done": "text",
    "error": "error",
    "response.steer.accepted": "steer",
    "response.steer.pending": "steer",
    "response.steer.failed": "error",
}


def test_match_args_put_the_field_a_user_means_first() -> None:
    """__match_args__ starts with delta/text/response/item/part..., then the required fields."""
    assert set(MAIN_FIELD) == set(KNOWN_EVENT_CLASSES)
    for wire_type, cls in KNOWN_EVENT_CLASSES.items():
        args = cls.__match_args__
        assert args[0] == MAIN_FIELD[wire_type], wire_type
        required = {a.name for a in attrs.fields(cls) if a.init and a.default is attrs.NOTHING}
        assert required <= set(args) <= set(attrs.fields_dict(cls)), wire_type
        assert len(set(args)) == len(args)
    assert ResponseOutputTextDelta.__match_args__ == (
        "delta",
        "item_id",
        "output_index",
        "content_index",
    )
    assert ResponseCompleted.__match_args__ == ("response",)
    assert UnknownEvent.__match_args__ == ("type", "raw")


@pytest.mark.skipif(sys.version_info < (3, 10), reason="match needs Python 3.10")
def test_match_statement_on_events() -> None:
    """A match statement binds the main field with a one-argument positional pattern."""
    source = (
        "def describe(event):\n"
        "    match event:\n"
        "        case ResponseOutputTextDelta(delta):\n"
        "            return 'delta:' + delta\n"
        "        case ResponseOutputTextDone(text):\n"
        "            return 'text:' + text\n"
        "        case ResponseOutputItemDone(item):\n"
        "            return 'item:' + item.type\n"
        "        case ResponseCompleted(response):\n"
        "            return 'done:' + response.id\n"
        "        case UnknownEvent(type=kind):\n"
        "            return 'unknown:' + kind\n"
        "    return 'other'\n"
    )
    namespace: Dict[str, Any] = {
        "ResponseOutputTextDelta": ResponseOutputTextDelta,
        "ResponseOutputTextDone": ResponseOutputTextDone,
        "ResponseOutputItemDone": ResponseOutputItemDone,
        "ResponseCompleted": ResponseCompleted,
        "UnknownEvent": UnknownEvent,
    }
    exec(compile(source, "<match>", "exec"), namespace)
    describe = namespace["describe"]
    assert describe(parse_event(DELTA)) == "delta:Hello "
    assert describe(parse_event(CASES[3][0])) == "done:resp_1"
    assert describe(parse_event({"type": "x.y"})) == "unknown:x.y"
    assert describe(parse_event(CASES[0][0])) == "other"
    for wire, cls in KNOWN_EVENT_CLASSES.items():
        if cls in (ResponseOutputTextDone, ResponseOutputItemDone):
            sample = next(c[0] for c in CASES if c[0]["type"] == wire)
            assert describe(parse_event(sample)).split(":")[0] in ("text", "item")


@pytest.mark.parametrize("cls", [*KNOWN_EVENT_CLASSES.values(), UnknownEvent], ids=str)
def test_every_event_class_is_documented_frozen_and_routable(cls: type) -> None:
    """Every event class has a docstring, is frozen, and has sequence_number and stream_id."""
    assert cls.__doc__ and cls.__doc__.strip()
    fields = attrs.fields_dict(cls)
    assert fields["sequence_number"].default is None
    assert fields["stream_id"].default is None
    assert all(a.kw_only for a in attrs.fields(cls) if a.init)
    assert cls.__setattr__ is not object.__setattr__


def test_server_event_union_lists_every_class() -> None:
    """ServerEvent is the union of every known event class and UnknownEvent."""
    assert set(ServerEvent.__args__) == {*KNOWN_EVENT_CLASSES.values(), UnknownEvent}  # type: ignore[attr-defined]


_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=24)
_indexes = st.integers(min_value=0, max_value=2**31)


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        ResponseOutputTextDelta,
        item_id=_ids,
        output_index=_indexes,
        content_index=_indexes,
        delta=st.text(),
        logprobs=st.none() | st.just([]),
        obfuscation=st.none() | _ids,
        sequence_number=st.none() | _indexes,
        stream_id=st.none() | _ids,
    )
)
def test_text_delta_round_trips_for_any_values(event: ResponseOutputTextDelta) -> None:
    """Any well-typed text delta survives to_dict → JSON → parse_event unchanged."""
    assert parse_event(json.dumps(event.to_dict()).encode()) == event


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["item_id", "output_index", "content_index", "delta", "sequence_number"]),
        st.one_of(
            st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.lists(st.none())
        ),
    )
)
def test_any_delta_payload_parses_or_raises_protocol_error(payload: Dict[str, Any]) -> None:
    """Random field values raise nothing but ProtocolError; accepted ones keep their types."""
    frame = {"type": "response.output_text.delta", **payload}
    try:
        event = parse_event(frame)
    except ProtocolError as exc:
        assert exc.event_type == "response.output_text.delta"
        assert exc.field in {"item_id", "output_index", "content_index", "delta", "sequence_number"}
        return
    assert isinstance(event, ResponseOutputTextDelta)
    assert type(event.output_index) is int and type(event.content_index) is int
    assert isinstance(event.item_id, str) and isinstance(event.delta, str)
