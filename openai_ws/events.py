"""Typed server events of the Responses API stream (WebSocket and HTTP/SSE alike).

One frozen attrs class per event type a client acts on, named after its wire
``type`` in CamelCase (``response.output_text.delta`` → ``ResponseOutputTextDelta``),
plus :class:`UnknownEvent`, which keeps the raw dict of every other type so that
new server events pass through instead of failing. Every event has ``type``
(the wire string, filled in by the class), ``sequence_number`` and
``stream_id`` (``None`` when absent), and works with ``isinstance`` and with
``match`` class patterns: ``__match_args__`` starts with the field a caller
means (``delta``, ``text``, ``refusal``, ``arguments``, ``part``, ``item``,
``response``, ``error``, ``steer``), then lists the other required fields, so
``case ResponseOutputTextDelta(delta):`` binds the text piece.

Parsing lives in the private ``openai_ws._convert`` (``parse_event``); this
module declares shapes only and imports nothing but attrs, the standard
library, ``openai_ws.errors`` and ``openai_ws.models``.
"""

from types import MappingProxyType
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Union, get_args

import attrs

from .errors import APIError, api_error_from_payload
from .models import ContentPart, OutputItem, Response, SummaryText, _Model

__all__ = [
    "FINAL_RESPONSE_EVENTS",
    "KNOWN_EVENT_CLASSES",
    "RESPONSE_EVENTS",
    "RESPONSE_EVENT_TYPES",
    "TERMINAL_EVENT_TYPES",
    "ErrorEvent",
    "ErrorPayload",
    "ResponseCompleted",
    "ResponseContentPartAdded",
    "ResponseContentPartDone",
    "ResponseCreated",
    "ResponseDone",
    "ResponseFailed",
    "ResponseFunctionCallArgumentsDelta",
    "ResponseFunctionCallArgumentsDone",
    "ResponseInProgress",
    "ResponseIncomplete",
    "ResponseOutputItemAdded",
    "ResponseOutputItemDone",
    "ResponseOutputTextAnnotationAdded",
    "ResponseOutputTextDelta",
    "ResponseOutputTextDone",
    "ResponseQueued",
    "ResponseReasoningSummaryPartAdded",
    "ResponseReasoningSummaryPartDone",
    "ResponseReasoningSummaryTextDelta",
    "ResponseReasoningSummaryTextDone",
    "ResponseReasoningTextDelta",
    "ResponseReasoningTextDone",
    "ResponseRefusalDelta",
    "ResponseRefusalDone",
    "ResponseSteerAccepted",
    "ResponseSteerFailed",
    "ResponseSteerPending",
    "ServerEvent",
    "SteerInfo",
    "UnknownEvent",
]

#: Event types that end a response: nothing more arrives for it afterwards.
#: ``response.done`` is the legacy beta terminal event (docs/protocol.md §3.1).
TERMINAL_EVENT_TYPES: FrozenSet[str] = frozenset(
    {"response.completed", "response.failed", "response.incomplete", "response.done", "error"}
)


class _Event(_Model):
    """Mixin of every server event: ``is_terminal`` and ``to_dict()``."""

    __slots__ = ()
    type: str

    @property
    def is_terminal(self) -> bool:
        """True if this event ends its response (see :data:`TERMINAL_EVENT_TYPES`)."""
        return self.type in TERMINAL_EVENT_TYPES


def _wire_type(name: str) -> Any:
    """The ``type`` attribute: fixed to the wire string, not a constructor argument."""
    return attrs.field(default=name, init=False)


# --------------------------------------------------------------------------
# Lifecycle events: carry a whole Response
# --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ResponseCreated(_Event):
    """``response.created``: the server accepted the request; ``response.status`` is in progress."""

    __match_args__ = ("response",)
    type: str = _wire_type("response.created")
    response: Response
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseQueued(_Event):
    """``response.queued``: the response waits for a slot (mainly background mode)."""

    __match_args__ = ("response",)
    type: str = _wire_type("response.queued")
    response: Response
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseInProgress(_Event):
    """``response.in_progress``: generation has started."""

    __match_args__ = ("response",)
    type: str = _wire_type("response.in_progress")
    response: Response
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseCompleted(_Event):
    """``response.completed`` (terminal): the finished response with its output and usage."""

    __match_args__ = ("response",)
    type: str = _wire_type("response.completed")
    response: Response
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseFailed(_Event):
    """``response.failed`` (terminal): ``response.error`` says why."""

    __match_args__ = ("response",)
    type: str = _wire_type("response.failed")
    response: Response
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseIncomplete(_Event):
    """``response.incomplete`` (terminal): ``response.incomplete_details.reason`` says why."""

    __match_args__ = ("response",)
    type: str = _wire_type("response.incomplete")
    response: Response
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseDone(_Event):
    """``response.done`` (terminal, legacy beta): treat like :class:`ResponseCompleted`."""

    __match_args__ = ("response",)
    type: str = _wire_type("response.done")
    response: Response
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


# --------------------------------------------------------------------------
# Output items and content parts
# --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ResponseOutputItemAdded(_Event):
    """``response.output_item.added``: a new (in-progress) output item at ``output_index``."""

    __match_args__ = ("item", "output_index")
    type: str = _wire_type("response.output_item.added")
    output_index: int
    item: OutputItem
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseOutputItemDone(_Event):
    """``response.output_item.done``: the final form of the output item at ``output_index``."""

    __match_args__ = ("item", "output_index")
    type: str = _wire_type("response.output_item.done")
    output_index: int
    item: OutputItem
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseContentPartAdded(_Event):
    """``response.content_part.added``: a new content part of a message or reasoning item."""

    __match_args__ = ("part", "item_id", "output_index", "content_index")
    type: str = _wire_type("response.content_part.added")
    item_id: str
    output_index: int
    content_index: int
    part: ContentPart
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseContentPartDone(_Event):
    """``response.content_part.done``: the final form of a content part."""

    __match_args__ = ("part", "item_id", "output_index", "content_index")
    type: str = _wire_type("response.content_part.done")
    item_id: str
    output_index: int
    content_index: int
    part: ContentPart
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


# --------------------------------------------------------------------------
# Text, refusal and function-call argument streams
# --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ResponseOutputTextDelta(_Event):
    """``response.output_text.delta``: the next piece of visible text."""

    __match_args__ = ("delta", "item_id", "output_index", "content_index")
    type: str = _wire_type("response.output_text.delta")
    item_id: str
    output_index: int
    content_index: int
    delta: str
    logprobs: Optional[List[Dict[str, Any]]] = None
    obfuscation: Optional[str] = None
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseOutputTextDone(_Event):
    """``response.output_text.done``: the whole ``text`` of one output text part."""

    __match_args__ = ("text", "item_id", "output_index", "content_index")
    type: str = _wire_type("response.output_text.done")
    item_id: str
    output_index: int
    content_index: int
    text: str
    logprobs: Optional[List[Dict[str, Any]]] = None
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseOutputTextAnnotationAdded(_Event):
    """``response.output_text.annotation.added``: a citation or file annotation, as a dict."""

    __match_args__ = (
        "annotation",
        "item_id",
        "output_index",
        "content_index",
        "annotation_index",
    )
    type: str = _wire_type("response.output_text.annotation.added")
    item_id: str
    output_index: int
    content_index: int
    annotation_index: int
    annotation: Dict[str, Any]
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseRefusalDelta(_Event):
    """``response.refusal.delta``: the next piece of a refusal."""

    __match_args__ = ("delta", "item_id", "output_index", "content_index")
    type: str = _wire_type("response.refusal.delta")
    item_id: str
    output_index: int
    content_index: int
    delta: str
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseRefusalDone(_Event):
    """``response.refusal.done``: the whole ``refusal`` text."""

    __match_args__ = ("refusal", "item_id", "output_index", "content_index")
    type: str = _wire_type("response.refusal.done")
    item_id: str
    output_index: int
    content_index: int
    refusal: str
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseFunctionCallArgumentsDelta(_Event):
    """``response.function_call_arguments.delta``: the next piece of a call's JSON arguments."""

    __match_args__ = ("delta", "item_id", "output_index")
    type: str = _wire_type("response.function_call_arguments.delta")
    item_id: str
    output_index: int
    delta: str
    obfuscation: Optional[str] = None
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseFunctionCallArgumentsDone(_Event):
    """``response.function_call_arguments.done``: a call's complete ``arguments`` (and ``name``)."""

    __match_args__ = ("arguments", "item_id", "output_index")
    type: str = _wire_type("response.function_call_arguments.done")
    item_id: str
    output_index: int
    arguments: str
    name: Optional[str] = None
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


# --------------------------------------------------------------------------
# Reasoning
# --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ResponseReasoningSummaryPartAdded(_Event):
    """``response.reasoning_summary_part.added``: a new summary part of a reasoning item."""

    __match_args__ = ("part", "item_id", "output_index", "summary_index")
    type: str = _wire_type("response.reasoning_summary_part.added")
    item_id: str
    output_index: int
    summary_index: int
    part: SummaryText
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseReasoningSummaryPartDone(_Event):
    """``response.reasoning_summary_part.done``: a finished summary part (``status`` optional)."""

    __match_args__ = ("part", "item_id", "output_index", "summary_index")
    type: str = _wire_type("response.reasoning_summary_part.done")
    item_id: str
    output_index: int
    summary_index: int
    part: SummaryText
    status: Optional[str] = None
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseReasoningSummaryTextDelta(_Event):
    """``response.reasoning_summary_text.delta``: the next piece of a reasoning summary."""

    __match_args__ = ("delta", "item_id", "output_index", "summary_index")
    type: str = _wire_type("response.reasoning_summary_text.delta")
    item_id: str
    output_index: int
    summary_index: int
    delta: str
    obfuscation: Optional[str] = None
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseReasoningSummaryTextDone(_Event):
    """``response.reasoning_summary_text.done``: the whole text of one summary part."""

    __match_args__ = ("text", "item_id", "output_index", "summary_index")
    type: str = _wire_type("response.reasoning_summary_text.done")
    item_id: str
    output_index: int
    summary_index: int
    text: str
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseReasoningTextDelta(_Event):
    """``response.reasoning_text.delta``: the next piece of raw reasoning text."""

    __match_args__ = ("delta", "item_id", "output_index", "content_index")
    type: str = _wire_type("response.reasoning_text.delta")
    item_id: str
    output_index: int
    content_index: int
    delta: str
    obfuscation: Optional[str] = None
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseReasoningTextDone(_Event):
    """``response.reasoning_text.done``: the whole raw reasoning text of one content part."""

    __match_args__ = ("text", "item_id", "output_index", "content_index")
    type: str = _wire_type("response.reasoning_text.done")
    item_id: str
    output_index: int
    content_index: int
    text: str
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ErrorPayload(_Model):
    """The inner error object of an ``error`` event or a failed steer (docs/protocol.md §4.1).

    Every field is optional: real payloads omit ``type`` or ``param``. Header
    values are kept as strings (non-string scalars are turned into strings).
    ``misalignment`` holds policy-block details as a dict, when present.
    """

    type: Optional[str] = None
    code: Optional[str] = None
    message: Optional[str] = None
    param: Optional[str] = None
    headers: Optional[Dict[str, str]] = None
    misalignment: Optional[Dict[str, Any]] = None


@attrs.frozen(kw_only=True)
class ErrorEvent(_Event):
    """``error`` (terminal for its request): the server refused or aborted a request.

    ``status`` is the HTTP status the error stands for (read from ``status`` or,
    as some backends send it, ``status_code``). ``headers`` are top-level headers
    some backends send beside ``error.headers``. The flat SSE shape
    (``code``/``message``/``param`` at the top level) is accepted as well and
    lands in ``error``; a frame with no error details at all gets an empty
    :class:`ErrorPayload` rather than being rejected.
    """

    __match_args__ = ("error",)
    type: str = _wire_type("error")
    error: ErrorPayload = attrs.field(factory=ErrorPayload)
    status: Optional[int] = None
    headers: Optional[Dict[str, str]] = None
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None

    @property
    def all_headers(self) -> Dict[str, str]:
        """``error.headers`` and top-level ``headers`` merged (keys lower-cased; top level wins)."""
        merged: Dict[str, str] = {}
        for source in (self.error.headers, self.headers):
            if source:
                merged.update({key.lower(): value for key, value in source.items()})
        return merged

    def to_api_error(self, *, request: Any = None) -> APIError:
        """The :class:`~openai_ws.errors.APIError` subclass this error stands for."""
        payload: Mapping[str, Any] = {
            "type": self.error.type,
            "code": self.error.code,
            "message": self.error.message,
            "param": self.error.param,
        }
        return api_error_from_payload(
            payload, status=self.status, headers=self.all_headers, request=request
        )


# --------------------------------------------------------------------------
# Steering (WebSocket only)
# --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SteerInfo(_Model):
    """The steer a ``response.steer.*`` event is about.

    ``id`` is absent when a steer failed before an id was allocated; ``input``
    (the original steering input, returned on failure) is kept as sent.
    """

    id: Optional[str] = None
    previous_response_id: Optional[str] = None
    input: Any = None


@attrs.frozen(kw_only=True)
class ResponseSteerAccepted(_Event):
    """``response.steer.accepted``: the server took ownership of the steering input."""

    __match_args__ = ("steer",)
    type: str = _wire_type("response.steer.accepted")
    steer: SteerInfo
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseSteerPending(_Event):
    """``response.steer.pending``: the steer waits for tool output the client must send.

    ``required_input`` lists the stubs (``{"type": "function_call_output",
    "call_id": ...}``, ...) to fill in a ``response.create`` on the same lane.
    """

    __match_args__ = ("steer",)
    type: str = _wire_type("response.steer.pending")
    steer: SteerInfo
    reason: Optional[str] = None
    required_input: List[Dict[str, Any]] = attrs.field(factory=list)
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


@attrs.frozen(kw_only=True)
class ResponseSteerFailed(_Event):
    """``response.steer.failed``: the steer was rejected; ``steer.input`` is the original input."""

    __match_args__ = ("error", "steer")
    type: str = _wire_type("response.steer.failed")
    error: ErrorPayload
    steer: SteerInfo = attrs.field(factory=SteerInfo)
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


# --------------------------------------------------------------------------
# Everything else
# --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class UnknownEvent(_Event):
    """An event whose ``type`` this version does not model; ``raw`` is the whole wire dict.

    ``sequence_number`` and ``stream_id`` are copied from ``raw`` when they have
    the right type, so unknown events can still be routed to their lane.
    """

    __match_args__ = ("type", "raw")
    type: str
    raw: Dict[str, Any]
    sequence_number: Optional[int] = None
    stream_id: Optional[str] = None


#: Any event :func:`openai_ws._convert.parse_event` can return.
ServerEvent = Union[
    ResponseCreated,
    ResponseQueued,
    ResponseInProgress,
    ResponseCompleted,
    ResponseFailed,
    ResponseIncomplete,
    ResponseDone,
    ResponseOutputItemAdded,
    ResponseOutputItemDone,
    ResponseContentPartAdded,
    ResponseContentPartDone,
    ResponseOutputTextDelta,
    ResponseOutputTextDone,
    ResponseOutputTextAnnotationAdded,
    ResponseRefusalDelta,
    ResponseRefusalDone,
    ResponseFunctionCallArgumentsDelta,
    ResponseFunctionCallArgumentsDone,
    ResponseReasoningSummaryPartAdded,
    ResponseReasoningSummaryPartDone,
    ResponseReasoningSummaryTextDelta,
    ResponseReasoningSummaryTextDone,
    ResponseReasoningTextDelta,
    ResponseReasoningTextDone,
    ErrorEvent,
    ResponseSteerAccepted,
    ResponseSteerPending,
    ResponseSteerFailed,
    UnknownEvent,
]


def _wire_type_of(cls: type) -> str:
    default = attrs.fields_dict(cls)["type"].default
    if not isinstance(default, str):  # pragma: no cover - a class without a fixed type
        raise TypeError(f"{cls.__name__} has no fixed wire type")
    return default


#: The modelled event classes by wire type (every member of ServerEvent but UnknownEvent).
KNOWN_EVENT_CLASSES: Mapping[str, type] = MappingProxyType(
    {_wire_type_of(cls): cls for cls in get_args(ServerEvent) if cls is not UnknownEvent}
)

#: The events that carry a whole :class:`~openai_ws.models.Response`, in lifecycle order.
RESPONSE_EVENTS = (
    ResponseCreated,
    ResponseQueued,
    ResponseInProgress,
    ResponseCompleted,
    ResponseFailed,
    ResponseIncomplete,
    ResponseDone,
)
#: Their wire types: any of them names the response id of its request.
RESPONSE_EVENT_TYPES: FrozenSet[str] = frozenset(_wire_type_of(cls) for cls in RESPONSE_EVENTS)
#: The terminal ones: ``isinstance(event, FINAL_RESPONSE_EVENTS)`` means "the answer is here".
FINAL_RESPONSE_EVENTS = (ResponseCompleted, ResponseFailed, ResponseIncomplete, ResponseDone)
