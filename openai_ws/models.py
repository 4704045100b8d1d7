"""Typed models of what we send (``ResponseCreateRequest``) and what the server returns.

Everything here is a frozen attrs class: built whole, compared by value, never
edited in place (use ``attrs.evolve`` to derive a changed copy). Turning wire
dicts into these objects and back is the job of the private converter in
``openai_ws._convert``; this module only declares shapes and small helpers.

This module must never import anything but attrs, the standard library and
``openai_ws.errors``, and must never change a value the caller gave it: a
request is sent exactly as built, a float ``temperature`` stays a float. What
cannot be sent as JSON at all (``NaN``, ``inf``: RFC 8259 §6 has no such
numbers) is refused with ``ValueError`` naming the field, never sent.
"""

import json
import math
from typing import (
    Any,
    Callable,
    ClassVar,
    Dict,
    FrozenSet,
    List,
    Mapping,
    Optional,
    Sequence,
    Type,
    TypeVar,
    Union,
)

import attrs

__all__ = [
    "ContentPart",
    "FunctionCall",
    "FunctionCallOutput",
    "IncompleteDetails",
    "InputItem",
    "InputMessage",
    "InputTokensDetails",
    "OutputItem",
    "OutputMessage",
    "OutputRefusal",
    "OutputText",
    "OutputTokensDetails",
    "ReasoningItem",
    "ReasoningText",
    "Response",
    "ResponseCreateRequest",
    "ResponseErrorInfo",
    "SummaryText",
    "UnknownContent",
    "UnknownOutputItem",
    "Usage",
    "UsageTotals",
]


_M = TypeVar("_M", bound="_Model")


class _Model:
    """Mixin giving every model ``to_dict()`` and ``from_dict()`` through the private converter."""

    __slots__ = ()

    def to_dict(self) -> Dict[str, Any]:
        """Return the wire form of this object as a new plain dict (JSON-ready)."""
        from ._convert import unstructure  # late: _convert imports this module

        return unstructure(self)

    @classmethod
    def from_dict(cls: Type[_M], obj: Mapping[str, Any]) -> _M:
        """Build this class from its wire dict; unknown keys are ignored.

        Raises :class:`~openai_ws.errors.ProtocolError` naming the failing field
        if ``obj`` does not fit (a missing required field, a mistyped value).
        """
        from ._convert import structure  # late: _convert imports this module

        return structure(obj, cls)


# --------------------------------------------------------------------------
# Content parts of output messages (and of reasoning items)
# --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class OutputText(_Model):
    """A piece of visible text in an assistant message (``type: "output_text"``).

    ``annotations`` (citations, file paths, ...) and ``logprobs`` are kept as the
    plain dicts the server sent; ``logprobs`` is ``None`` when the server omitted it.
    """

    type: str = attrs.field(default="output_text", init=False)
    text: str
    annotations: List[Dict[str, Any]] = attrs.field(factory=list)
    logprobs: Optional[List[Dict[str, Any]]] = None


@attrs.frozen(kw_only=True)
class OutputRefusal(_Model):
    """The model declined to answer (``type: "refusal"``); ``refusal`` is its explanation."""

    type: str = attrs.field(default="refusal", init=False)
    refusal: str


@attrs.frozen(kw_only=True)
class ReasoningText(_Model):
    """Raw reasoning text of a reasoning item or content part (``type: "reasoning_text"``)."""

    type: str = attrs.field(default="reasoning_text", init=False)
    text: str


@attrs.frozen(kw_only=True)
class SummaryText(_Model):
    """One reasoning summary part (``type: "summary_text"``)."""

    type: str = attrs.field(default="summary_text", init=False)
    text: str


@attrs.frozen(kw_only=True)
class UnknownContent(_Model):
    """A content part of a type this version does not model; ``raw`` is the wire dict."""

    type: str
    raw: Dict[str, Any]


#: A content part of a message, or of a ``response.content_part.*`` event.
ContentPart = Union[OutputText, OutputRefusal, ReasoningText, UnknownContent]


# --------------------------------------------------------------------------
# Output items
# --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class OutputMessage(_Model):
    """An assistant message item (``type: "message"``).

    ``content`` holds :class:`OutputText`, :class:`OutputRefusal` and, for part
    types this version does not know, :class:`UnknownContent`. ``phase`` is the
    optional ``commentary`` / ``final_answer`` marker.
    """

    type: str = attrs.field(default="message", init=False)
    id: Optional[str] = None
    role: str = "assistant"
    status: Optional[str] = None
    content: List[ContentPart] = attrs.field(factory=list)
    phase: Optional[str] = None

    @property
    def text(self) -> str:
        """All ``output_text`` parts of this message joined ("" if none)."""
        return "".join(part.text for part in self.content if isinstance(part, OutputText))


@attrs.frozen(kw_only=True)
class FunctionCall(_Model):
    """A call of one of the caller's function tools (``type: "function_call"``).

    Run the tool and answer with a :class:`FunctionCallOutput` carrying the same
    ``call_id``. ``arguments`` is the JSON text exactly as the model wrote it.
    """

    type: str = attrs.field(default="function_call", init=False)
    id: Optional[str] = None
    call_id: str
    name: str
    arguments: str
    status: Optional[str] = None

    def parsed_arguments(self) -> Any:
        """Decode ``arguments`` as JSON (raises ``json.JSONDecodeError`` if it is not)."""
        return json.loads(self.arguments)


@attrs.frozen(kw_only=True)
class ReasoningItem(_Model):
    """A reasoning item (``type: "reasoning"``).

    ``summary`` holds the visible summary parts, ``content`` the raw reasoning
    text when the server returns it, ``encrypted_content`` the opaque blob sent
    back on later turns when ``store`` is false.
    """

    type: str = attrs.field(default="reasoning", init=False)
    id: Optional[str] = None
    summary: List[SummaryText] = attrs.field(factory=list)
    content: Optional[List[ReasoningText]] = None
    encrypted_content: Optional[str] = None
    status: Optional[str] = None


@attrs.frozen(kw_only=True)
class UnknownOutputItem(_Model):
    """An output item of a type this version does not model (tool calls, compaction, ...).

    ``raw`` is the item exactly as the server sent it, so it can be passed back as
    input on a later turn.
    """

    type: str
    raw: Dict[str, Any]


#: One element of ``Response.output``, tagged on its ``"type"``.
OutputItem = Union[OutputMessage, FunctionCall, ReasoningItem, UnknownOutputItem]


# --------------------------------------------------------------------------
# Input items (what the caller sends)
# --------------------------------------------------------------------------


def _check_content(_inst: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, Mapping) for p in value):
        raise TypeError(f"{attribute.name} must be a str or a list of dicts, got {value!r}")


@attrs.frozen(kw_only=True)
class InputMessage(_Model):
    """A message item of the request ``input``: ``{"type": "message", "role", "content"}``.

    ``content`` is a string or a list of content-part dicts such as
    ``{"type": "input_text", "text": "..."}``.
    """

    type: str = attrs.field(default="message", init=False)
    role: str = attrs.field(validator=attrs.validators.instance_of(str))
    content: Union[str, List[Dict[str, Any]]] = attrs.field(validator=_check_content)


@attrs.frozen(kw_only=True)
class FunctionCallOutput(_Model):
    """A function tool's result: ``{"type": "function_call_output", "call_id", "output"}``.

    ``output`` is usually a string (often JSON text); a list of content-part dicts
    is passed through as given.
    """

    type: str = attrs.field(default="function_call_output", init=False)
    call_id: str = attrs.field(validator=attrs.validators.instance_of(str))
    output: Union[str, List[Dict[str, Any]]] = attrs.field(validator=_check_content)


#: An item of the request ``input``: a typed helper, an output item sent back, or a dict.
InputItem = Union[
    InputMessage,
    FunctionCallOutput,
    OutputMessage,
    FunctionCall,
    ReasoningItem,
    UnknownOutputItem,
    Mapping[str, Any],
]

_INPUT_ITEM_CLASSES = (
    InputMessage,
    FunctionCallOutput,
    OutputMessage,
    FunctionCall,
    ReasoningItem,
    UnknownOutputItem,
    Mapping,
)


# --------------------------------------------------------------------------
# The request
# --------------------------------------------------------------------------

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _opt(kinds: Any, what: str, *, allow_bool: bool = True) -> _Validator:
    """Validator: the value is None or an instance of ``kinds`` (bools refused if asked)."""

    def check(_inst: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
        if value is None:
            return
        if isinstance(value, kinds) and (allow_bool or not isinstance(value, bool)):
            return
        raise TypeError(f"{attribute.name} must be {what} or None, got {value!r}")

    return check


def _check_input(_inst: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if value is None or isinstance(value, str):
        return
    if isinstance(value, (list, tuple)) and all(
        isinstance(item, _INPUT_ITEM_CLASSES) for item in value
    ):
        return
    raise TypeError(
        f"{attribute.name} must be a str or a list of input items (dicts or typed items), "
        f"got {value!r}"
    )


def _finite_number(_inst: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    """Validator: None, an int, or a finite float (NaN and infinities are not JSON)."""
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be a number or None, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(
            f"{attribute.name} must be a finite number, got {value!r} "
            "(NaN and infinities are not JSON numbers)"
        )


_STR = _opt(str, "a str")
_INT = _opt(int, "an int", allow_bool=False)
_NUM = _finite_number
_BOOL = _opt(bool, "a bool")
_MAP = _opt(Mapping, "a mapping")
_SEQ = _opt((list, tuple), "a list")
_STR_OR_MAP = _opt((str, Mapping), "a str or a mapping")


class _NotJSON(Exception):
    """A NaN or infinite float inside a value; ``where`` collects its path, innermost first."""

    def __init__(self, value: float) -> None:
        super().__init__(value)
        self.value = value
        self.where: List[str] = []

    def error(self, name: str) -> ValueError:
        """The caller's error, naming the place (``extra_body.x.y[1]``) of the value."""
        path = name + "".join(reversed(self.where))
        return ValueError(f"{path} is {self.value!r}, which is not a JSON number (RFC 8259 §6)")


def _wire(value: Any) -> Any:
    """Copy a value into plain JSON types: models to dicts, mappings to dicts, tuples to lists.

    Scalars are returned unchanged (a float stays a float, an int stays an int).
    A NaN or infinite float raises :class:`_NotJSON`, which records where it was
    on its way out (the path is only built when that happens).
    """
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotJSON(value)
        return value
    if isinstance(value, _Model):
        return _wire(value.to_dict())
    if isinstance(value, Mapping):
        copied: Dict[Any, Any] = {}
        for key, item in value.items():
            try:
                copied[key] = _wire(item)
            except _NotJSON as exc:
                exc.where.append(f".{key}")
                raise
        return copied
    if isinstance(value, (list, tuple)):
        items: List[Any] = []
        for index, item in enumerate(value):
            try:
                items.append(_wire(item))
            except _NotJSON as exc:
                exc.where.append(f"[{index}]")
                raise
        return items
    return value


@attrs.frozen(kw_only=True)
class ResponseCreateRequest(_Model):
    """The body of a ``response.create`` (WebSocket) or ``POST /v1/responses`` (HTTP).

    Every field is keyword-only and defaults to ``None``, meaning "not sent".
    :meth:`to_dict` returns only the fields that were set, exactly as given: it
    never adds a field (not ``type``, not ``stream``), never rounds a number and
    never drops a value. Fields this version does not know go in ``extra_body``,
    which is merged last (and so wins over a same-named field); ``extra_body`` is
    also the way to send an explicit JSON ``null``.

    ``stream_id`` and ``generate`` are WebSocket-only; ``stream``,
    ``stream_options`` and ``background`` are HTTP fields (see docs/protocol.md §2.1).
    The scalar fields are type-checked on construction (``TypeError``), and
    ``temperature``/``top_p`` must be finite (``ValueError``: NaN is not JSON).
    """

    model: Optional[str] = attrs.field(default=None, validator=_STR)
    input: Optional[Union[str, Sequence[InputItem]]] = attrs.field(
        default=None, validator=_check_input
    )
    instructions: Optional[str] = attrs.field(default=None, validator=_STR)
    previous_response_id: Optional[str] = attrs.field(default=None, validator=_STR)
    conversation: Optional[Union[str, Mapping[str, Any]]] = attrs.field(
        default=None, validator=_STR_OR_MAP
    )
    store: Optional[bool] = attrs.field(default=None, validator=_BOOL)
    tools: Optional[Sequence[Mapping[str, Any]]] = attrs.field(default=None, validator=_SEQ)
    tool_choice: Optional[Union[str, Mapping[str, Any]]] = attrs.field(
        default=None, validator=_STR_OR_MAP
    )
    parallel_tool_calls: Optional[bool] = attrs.field(default=None, validator=_BOOL)
    max_output_tokens: Optional[int] = attrs.field(default=None, validator=_INT)
    max_tool_calls: Optional[int] = attrs.field(default=None, validator=_INT)
    temperature: Optional[float] = attrs.field(default=None, validator=_NUM)
    top_p: Optional[float] = attrs.field(default=None, validator=_NUM)
    top_logprobs: Optional[int] = attrs.field(default=None, validator=_INT)
    truncation: Optional[str] = attrs.field(default=None, validator=_STR)
    reasoning: Optional[Mapping[str, Any]] = attrs.field(default=None, validator=_MAP)
    text: Optional[Mapping[str, Any]] = attrs.field(default=None, validator=_MAP)
    include: Optional[Sequence[str]] = attrs.field(default=None, validator=_SEQ)
    metadata: Optional[Mapping[str, str]] = attrs.field(default=None, validator=_MAP)
    prompt: Optional[Mapping[str, Any]] = attrs.field(default=None, validator=_MAP)
    prompt_cache_key: Optional[str] = attrs.field(default=None, validator=_STR)
    prompt_cache_options: Optional[Mapping[str, Any]] = attrs.field(default=None, validator=_MAP)
    prompt_cache_retention: Optional[str] = attrs.field(default=None, validator=_STR)
    safety_identifier: Optional[str] = attrs.field(default=None, validator=_STR)
    user: Optional[str] = attrs.field(default=None, validator=_STR)
    service_tier: Optional[str] = attrs.field(default=None, validator=_STR)
    context_management: Optional[Sequence[Mapping[str, Any]]] = attrs.field(
        default=None, validator=_SEQ
    )
    #: Passed through as given (its shape is newer than this version).
    moderation: Any = None
    #: Passed through as given (its shape is newer than this version).
    image: Any = None
    #: Passed through as given (its shape is newer than this version).
    access_programs: Any = None
    background: Optional[bool] = attrs.field(default=None, validator=_BOOL)
    stream: Optional[bool] = attrs.field(default=None, validator=_BOOL)
    stream_options: Optional[Mapping[str, Any]] = attrs.field(default=None, validator=_MAP)
    stream_id: Optional[str] = attrs.field(default=None, validator=_STR)
    generate: Optional[bool] = attrs.field(default=None, validator=_BOOL)
    extra_body: Optional[Mapping[str, Any]] = attrs.field(default=None, validator=_MAP)

    #: Names of the wire fields this class models (everything except ``extra_body``).
    FIELD_NAMES: ClassVar[FrozenSet[str]]

    def to_dict(self) -> Dict[str, Any]:
        """Return the request body: only the fields that were set, plus ``extra_body``.

        ``None`` fields are left out; typed input items become their wire dicts;
        mappings and tuples are copied into plain dicts and lists, so the result
        can be changed without touching this object. ``type`` is never added.
        A NaN or infinite float anywhere in the body raises ``ValueError``
        naming where it is (``extra_body.sampling.t``, ``tools[0].strict``).
        """
        body: Dict[str, Any] = {}
        for name in _REQUEST_FIELD_ORDER:
            value = getattr(self, name)
            if value is not None:
                try:
                    body[name] = _wire(value)
                except _NotJSON as exc:
                    raise exc.error(name) from None
        if self.extra_body:
            for key, value in self.extra_body.items():
                try:
                    body[key] = _wire(value)
                except _NotJSON as exc:
                    raise exc.error(f"extra_body.{key}") from None
        return body

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> "ResponseCreateRequest":
        """Build a request from a body dict; keys this class does not model go to ``extra_body``.

        A ``None`` value for a known field means "not sent", as in the constructor.
        Raises ``TypeError`` if a known field has the wrong type, ``ValueError`` if
        ``temperature`` or ``top_p`` is NaN or infinite.
        """
        if not isinstance(body, Mapping):
            raise TypeError(f"expected a mapping, got {type(body).__name__}")
        known: Dict[str, Any] = {}
        extra: Dict[str, Any] = {}
        for key, value in body.items():
            if key in cls.FIELD_NAMES:
                known[key] = value
            else:
                extra[key] = value
        return cls(**known, extra_body=extra or None)


_REQUEST_FIELD_ORDER = tuple(
    a.name for a in attrs.fields(ResponseCreateRequest) if a.name != "extra_body"
)
ResponseCreateRequest.FIELD_NAMES = frozenset(_REQUEST_FIELD_ORDER)


# --------------------------------------------------------------------------
# The Response object
# --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class InputTokensDetails(_Model):
    """Breakdown of ``Usage.input_tokens``: prompt-cache hits and cache writes."""

    cached_tokens: int = 0
    cache_write_tokens: Optional[int] = None


@attrs.frozen(kw_only=True)
class OutputTokensDetails(_Model):
    """Breakdown of ``Usage.output_tokens``: tokens spent on reasoning."""

    reasoning_tokens: int = 0


@attrs.frozen(kw_only=True)
class Usage(_Model):
    """Token accounting of a finished response (``null`` until the terminal event)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_tokens_details: Optional[InputTokensDetails] = None
    output_tokens_details: Optional[OutputTokensDetails] = None


@attrs.frozen(kw_only=True)
class ResponseErrorInfo(_Model):
    """Why a response failed (``Response.error``): a ``code`` like ``server_error``, a message."""

    code: Optional[str] = None
    message: str = ""
    param: Optional[str] = None
    type: Optional[str] = None


@attrs.frozen(kw_only=True)
class IncompleteDetails(_Model):
    """Why a response is incomplete: ``max_output_tokens``, ``content_filter``, ``steered``, ..."""

    reason: Optional[str] = None


@attrs.frozen(kw_only=True)
class Response(_Model):
    """A response object, as carried by the lifecycle events and returned over HTTP.

    Only ``id`` is required; everything the server may leave out defaults to
    ``None`` (``output`` to an empty list: a terminal event whose ``output`` is
    null or missing is accepted). Fields this version does not model are ignored
    but kept in ``raw``, the original dict, which takes no part in ``==`` or
    ``repr``. :meth:`to_dict` rebuilds the wire form from the typed fields.
    """

    id: str
    object: str = "response"
    created_at: Optional[float] = None
    completed_at: Optional[float] = None
    status: Optional[str] = None
    model: Optional[str] = None
    output: List[OutputItem] = attrs.field(factory=list)
    usage: Optional[Usage] = None
    error: Optional[ResponseErrorInfo] = None
    incomplete_details: Optional[IncompleteDetails] = None
    previous_response_id: Optional[str] = None
    conversation: Optional[Union[str, Dict[str, Any]]] = None
    instructions: Optional[Union[str, List[Dict[str, Any]]]] = None
    metadata: Optional[Dict[str, str]] = None
    store: Optional[bool] = None
    background: Optional[bool] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_logprobs: Optional[int] = None
    max_output_tokens: Optional[int] = None
    max_tool_calls: Optional[int] = None
    parallel_tool_calls: Optional[bool] = None
    tool_choice: Optional[Union[str, Dict[str, Any]]] = None
    tools: Optional[List[Dict[str, Any]]] = None
    reasoning: Optional[Dict[str, Any]] = None
    text: Optional[Dict[str, Any]] = None
    truncation: Optional[str] = None
    service_tier: Optional[str] = None
    user: Optional[str] = None
    safety_identifier: Optional[str] = None
    prompt_cache_key: Optional[str] = None
    prompt_cache_retention: Optional[str] = None
    raw: Dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def output_text(self) -> str:
        """The text of all ``output_text`` parts of all message items, joined ("" if none)."""
        return "".join(item.text for item in self.output if isinstance(item, OutputMessage))

    @property
    def function_calls(self) -> List[FunctionCall]:
        """The function-call items of ``output``, in order."""
        return [item for item in self.output if isinstance(item, FunctionCall)]

    @property
    def refusal(self) -> Optional[str]:
        """All refusal parts of all message items joined; ``None`` if the model did not refuse."""
        parts = [
            part.refusal
            for item in self.output
            if isinstance(item, OutputMessage)
            for part in item.content
            if isinstance(part, OutputRefusal)
        ]
        return "".join(parts) if parts else None


@attrs.frozen(kw_only=True)
class UsageTotals:
    """Token totals over many responses: :attr:`Session.usage <openai_ws.Session.usage>`,
    :attr:`Conversation.usage <openai_ws.Conversation.usage>`."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    """Input tokens served from the prompt cache."""
    reasoning_tokens: int = 0
    """Output tokens spent on reasoning."""
    responses: int = 0
    """Responses counted."""

    def add(self, response: Response) -> "UsageTotals":
        """These totals plus ``response``'s usage (a response without usage counts as one)."""
        usage = response.usage
        if usage is None:
            return attrs.evolve(self, responses=self.responses + 1)
        cached = usage.input_tokens_details.cached_tokens if usage.input_tokens_details else 0
        reasoning = (
            usage.output_tokens_details.reasoning_tokens if usage.output_tokens_details else 0
        )
        return UsageTotals(
            input_tokens=self.input_tokens + usage.input_tokens,
            output_tokens=self.output_tokens + usage.output_tokens,
            total_tokens=self.total_tokens + usage.total_tokens,
            cached_tokens=self.cached_tokens + cached,
            reasoning_tokens=self.reasoning_tokens + reasoning,
            responses=self.responses + 1,
        )
