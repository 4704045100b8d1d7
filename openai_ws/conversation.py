"""Conversations: multi-turn chats and agent loops whose history lives in the client.

A :class:`Conversation` keeps every item of the exchange, typed: what was sent
(messages, function call outputs) and what came back (messages, function
calls, reasoning and compaction items). Each turn is sent one of two ways, and
the session chooses per attempt, at send time:

* **delta**: only the new items, with ``previous_response_id``, when the parent
  response is available where the turn goes: stored server-side (the parent was
  made with ``store`` not false), or in the cache of the socket and lane that
  produced it (still open, lane not reused since);
* **whole context**: the whole history as ``input``, without
  ``previous_response_id``, in every other case.

So every recovery path works for ``store: false`` chains too: a turn replayed on
a new socket, completed over HTTP after a silent close, moved by connection-age
rotation, or answered with ``previous_response_not_found`` goes again with the
whole context, once, automatically. A stream that already delivered events
still raises :class:`~openai_ws.errors.ReplayUnsafeError`; the history then keeps
the last complete turn, and the caller may send the turn again.

Memory: the history is held whole, as the typed items plus their wire dicts
(about two to three times the JSON size of the conversation); a whole-context
turn serialises all of it. :meth:`Conversation.compact` replaces the history
by the server's compacted form (``compaction_trigger`` over WebSocket,
``POST /v1/responses/compact`` over HTTP), and ``compact_threshold`` does it
automatically once a turn's ``usage.input_tokens`` passes it.

What this module must never do: edit the caller's items or defaults, be used by
two threads at once (a clear error says so), or lose a complete turn.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import attrs

from ._convert import structure
from ._loops import RunResult, call_tools
from ._session.request import Mode, RequestState, TurnContext
from .errors import PreviousResponseNotFoundError
from .events import FINAL_RESPONSE_EVENTS, ResponseCreated, ServerEvent
from .models import (
    FunctionCallOutput,
    InputItem,
    InputMessage,
    OutputItem,
    OutputMessage,
    Response,
    ResponseCreateRequest,
    UnknownOutputItem,
    UsageTotals,
)

if TYPE_CHECKING:
    from ._session.engine import Engine
    from .client import OpenAI
    from .session import EventStream, Session

__all__ = ["Conversation"]

FORMAT = "openai_ws.conversation/1"
"""The ``format`` of :meth:`Conversation.to_dict`."""

_MANAGED = ("input", "previous_response_id")
"""Request fields the conversation sets itself."""

TurnInput = Union[str, InputItem, Sequence[InputItem]]
"""What one turn adds: a user message as text, one item, or a list of items."""


class _Parent(NamedTuple):
    id: str
    stored: bool


class Conversation:
    """The history of one conversation, and the turns that extend it.

    Made by :meth:`Session.conversation <openai_ws.Session.conversation>` (over
    the session's WebSocket) or :meth:`OpenAI.conversation
    <openai_ws.OpenAI.conversation>` (HTTP only); many conversations may share
    one session. One thread at a time may use a conversation: a second thread
    gets ``RuntimeError``. ``defaults`` are request fields sent with every turn
    (``model``, ``instructions``, ``tools``, ``store``, ...); a turn's keyword
    ``overrides`` replace them for that turn.
    """

    def __init__(
        self,
        owner: Union[Session, OpenAI],
        defaults: Mapping[str, Any],
        *,
        compact_threshold: Optional[int] = None,
    ) -> None:
        for name in _MANAGED:
            if name in defaults:
                raise ValueError(f"{name} is managed by the conversation; pass it per turn")
        ResponseCreateRequest(**defaults)  # fail now, not at the first turn
        self._owner = owner
        self._defaults: Dict[str, Any] = dict(defaults)
        self.compact_threshold = compact_threshold
        """Compact after a turn whose ``usage.input_tokens`` is above this (``None``: never)."""
        self._items: List[InputItem] = []
        self._wire: List[Dict[str, Any]] = []  # the wire dict of each item, made once
        self._responses: List[Response] = []
        self._usage = UsageTotals()
        self._parent: Optional[_Parent] = None
        self._busy = threading.Lock()

    # -- what it holds ----------------------------------------------------------

    @property
    def items(self) -> List[InputItem]:
        """The whole history, in order: what was sent and what came back (a copy)."""
        return list(self._items)

    @property
    def responses(self) -> List[Response]:
        """Every response of the conversation, in order (a copy)."""
        return list(self._responses)

    @property
    def last_response(self) -> Optional[Response]:
        """The latest response, or ``None`` before the first turn."""
        return self._responses[-1] if self._responses else None

    @property
    def usage(self) -> UsageTotals:
        """Token totals over every turn (compaction turns included)."""
        return self._usage

    @property
    def defaults(self) -> Dict[str, Any]:
        """The request fields sent with every turn (a copy)."""
        return dict(self._defaults)

    def __repr__(self) -> str:
        return (
            f"<openai_ws.Conversation {len(self._items)} items, "
            f"{len(self._responses)} responses>"
        )

    # -- turns ------------------------------------------------------------------

    def send(
        self, input: TurnInput, *, timeout: Optional[float] = None, **overrides: Any
    ) -> Response:
        """Send one turn and block until its response; the history grows by the turn.

        ``completed`` and ``incomplete`` responses extend the history; a
        ``failed`` one is returned but leaves the history as it was.
        """
        with self._using():
            return self._send(_as_items(input), timeout, overrides)

    def stream(
        self, input: TurnInput, *, timeout: Optional[float] = None, **overrides: Any
    ) -> EventStream:
        """Send one turn and return its events; the history grows once the turn completes.

        The conversation stays busy (for other threads) until the stream ends
        or is closed.
        """
        if not self._busy.acquire(blocking=False):
            raise _busy_error()
        try:
            new = _as_items(input)
            state, events = self._turn(new, timeout, overrides, Mode.EVENTS)
        except BaseException:
            self._busy.release()
            raise
        from .session import EventStream, _stream_closed

        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                self._busy.release()

        def closed() -> None:
            # Closed or dropped, perhaps before the first event: the request is
            # abandoned (its events dropped, its span ended), the conversation freed.
            if state is not None:
                _stream_closed(self._session_engine(), state)
            release()

        def record() -> Iterator[ServerEvent]:
            try:
                items = new
                for event in events:
                    if isinstance(event, FINAL_RESPONSE_EVENTS):
                        self._record(items, event.response, overrides)
                        items = []  # a steered successor brings only its steering input
                    elif isinstance(event, ResponseCreated) and state is not None and not items:
                        items = _steering_items(state, event.response.id)
                    yield event
            finally:
                close = getattr(events, "close", None)
                if close is not None:
                    close()
                release()

        steer = None if state is None else functools.partial(self._session_engine().steer, state)
        return EventStream(record(), closed, steer=steer)

    def run(
        self,
        input: TurnInput,
        *,
        tools: Mapping[str, Callable[..., Any]],
        max_turns: int = 10,
        tool_errors: str = "output",
        timeout: Optional[float] = None,
        **overrides: Any,
    ) -> RunResult:
        """The tool-calling loop of :meth:`Session.run <openai_ws.Session.run>`, on this
        conversation: every call and its output join the history."""
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        if tool_errors not in ("output", "raise"):
            raise ValueError("tool_errors must be 'output' or 'raise'")
        with self._using():
            responses: List[Response] = []
            new = _as_items(input)
            while True:
                response = self._send(new, timeout, overrides)
                responses.append(response)
                calls = response.function_calls
                if not calls or len(responses) >= max_turns:
                    return RunResult(response, len(responses), responses)
                new = list(call_tools(calls, tools, tool_errors))

    def compact(self, *, timeout: Optional[float] = None, **overrides: Any) -> Response:
        """Ask the server to compact the context; the history becomes what it returns.

        Over WebSocket a turn ends with a ``compaction_trigger`` item and the
        response's ``compaction`` item stands for everything before; over HTTP
        (an HTTP-only conversation) ``POST /v1/responses/compact`` returns the
        new input window.
        """
        with self._using():
            return self._compact(timeout, overrides)

    # -- copies and persistence -----------------------------------------------------

    def fork(self) -> Conversation:
        """A new conversation with this one's history, to branch from here."""
        with self._using():
            twin = Conversation(
                self._owner, self._defaults, compact_threshold=self.compact_threshold
            )
            twin._items = list(self._items)
            twin._wire = list(self._wire)
            twin._responses = list(self._responses)
            twin._usage = self._usage
            twin._parent = self._parent
            return twin

    def to_dict(self) -> Dict[str, Any]:
        """The conversation as plain JSON data (resume it with :meth:`from_dict`)."""
        with self._using():
            return {
                "format": FORMAT,
                "defaults": ResponseCreateRequest(**self._defaults).to_dict(),
                "compact_threshold": self.compact_threshold,
                "items": json.loads(json.dumps(self._wire)),
                "responses": [r.to_dict() for r in self._responses],
                "parent": self._parent._asdict() if self._parent else None,
            }

    @classmethod
    def from_dict(cls, owner: Union[Session, OpenAI], data: Mapping[str, Any]) -> Conversation:
        """Resume a conversation saved with :meth:`to_dict`, on ``owner`` (a session or
        a client). The first turn goes with the whole context unless its parent
        is stored server-side: a socket-cached parent died with its socket."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a saved conversation (format {data.get('format')!r})")
        conv = cls(owner, data["defaults"], compact_threshold=data.get("compact_threshold"))
        for wire in data["items"]:
            conv._items.append(_item_from_wire(wire))
            conv._wire.append(dict(wire))
        conv._responses = [Response.from_dict(r) for r in data["responses"]]
        for response in conv._responses:
            conv._usage = conv._usage.add(response)
        parent = data.get("parent")
        if parent:
            conv._parent = _Parent(str(parent["id"]), bool(parent["stored"]))
        return conv

    @classmethod
    def _for_request(
        cls, owner: Union[Session, OpenAI], request: ResponseCreateRequest
    ) -> Conversation:
        """A conversation whose turns repeat ``request``'s fields (what ``session.run`` uses);
        a ``previous_response_id`` in it becomes the parent of the first turn."""
        defaults = {}
        for field in attrs.fields(type(request)):
            value = getattr(request, field.name)
            default = field.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory()
            if field.init and field.name not in _MANAGED and value != default:
                defaults[field.name] = value
        conv = cls(owner, defaults)
        if request.previous_response_id:
            conv._parent = _Parent(request.previous_response_id, request.store is not False)
        return conv

    # -- machinery ------------------------------------------------------------------

    @contextlib.contextmanager
    def _using(self) -> Iterator[None]:
        if not self._busy.acquire(blocking=False):
            raise _busy_error()
        try:
            yield
        finally:
            self._busy.release()

    def _send(
        self, new: List[InputItem], timeout: Optional[float], overrides: Mapping[str, Any]
    ) -> Response:
        state, result = self._turn(new, timeout, overrides, Mode.RESULT)
        assert isinstance(result, Response)
        answers = state.answers if state is not None and state.answers else [result]
        for number, answer in enumerate(answers):
            # A steered response is followed by the successor that carried the steer.
            items = new if number == 0 else _steering_items(state, answer.id)
            self._record(items, answer, overrides)
        threshold = self.compact_threshold
        usage = result.usage
        if threshold is not None and usage is not None and usage.input_tokens > threshold:
            self._compact(timeout, {})
        return result

    def _bodies(
        self, new: List[InputItem], overrides: Mapping[str, Any]
    ) -> Tuple[Dict[str, Any], Optional[TurnContext]]:
        """The whole-context body of a turn, and its context (``None`` without a parent)."""
        for name in _MANAGED:
            if name in overrides:
                raise ValueError(f"{name} is managed by the conversation")
        fields = {**self._defaults, **overrides}
        new_wire: List[InputItem] = [_wire_of(item) for item in new]
        history: List[InputItem] = [*self._wire, *new_wire]
        full = ResponseCreateRequest(**fields, input=history).to_dict()
        parent = self._parent
        if parent is None:
            return full, None
        delta = ResponseCreateRequest(
            **fields, input=new_wire, previous_response_id=parent.id
        ).to_dict()
        return full, TurnContext(delta, full, parent.id, parent.stored)

    def _turn(
        self,
        new: List[InputItem],
        timeout: Optional[float],
        overrides: Mapping[str, Any],
        mode: Mode,
    ) -> Any:
        """Send one turn: its request state (``None`` over plain HTTP) and a
        :class:`Response` (RESULT) or an iterator of events (EVENTS)."""
        full, context = self._bodies(new, overrides)
        from .session import Session

        owner = self._owner
        if isinstance(owner, Session):
            from ._session import attempt

            state, events = owner._run(None, timeout, mode, context or _plain(full))
            if mode is Mode.RESULT:
                return state, attempt.result(owner._engine, state, events)
            return state, events
        return None, _http_turn(owner, full, context, timeout, mode)

    def _session_engine(self) -> Engine:
        """The engine of the session this conversation runs on (a turn with a request state)."""
        from .session import Session

        assert isinstance(self._owner, Session)
        return self._owner._engine

    def _record(
        self, new: List[InputItem], response: Response, overrides: Mapping[str, Any]
    ) -> None:
        """A turn ended with ``response``: keep it, and its items unless it failed."""
        self._responses.append(response)
        self._usage = self._usage.add(response)
        if response.status == "failed":
            return
        for item in [*new, *response.output]:
            self._items.append(item)
            self._wire.append(_wire_of(item))
        store = {**self._defaults, **overrides}.get("store")
        self._parent = _Parent(response.id, store is not False)

    def _compact(self, timeout: Optional[float], overrides: Mapping[str, Any]) -> Response:
        from .session import Session

        if isinstance(self._owner, Session):
            trigger: Dict[str, Any] = {"type": "compaction_trigger"}
            _, response = self._turn([trigger], timeout, overrides, Mode.RESULT)
            assert isinstance(response, Response)
            self._responses.append(response)
            self._usage = self._usage.add(response)
            kept = [i for i in response.output if _item_type(i) == "compaction"]
            if response.status == "failed" or not kept:
                return response
            self._items = list(kept)
            self._wire = [_wire_of(i) for i in kept]
            store = {**self._defaults, **overrides}.get("store")
            self._parent = _Parent(response.id, store is not False)
            return response
        fields = {**self._defaults, **overrides}
        full = ResponseCreateRequest(**fields, input=list(self._wire)).to_dict()
        # The compact endpoint takes the context, not the options of a response.
        body = {k: v for k, v in full.items() if k in ("model", "input", "instructions")}
        transport = self._owner._http_transport()
        compacted: Response = transport.compact(body, timeout=timeout)
        self._responses.append(compacted)
        self._usage = self._usage.add(compacted)
        self._items = [_item_from_wire(_wire_of(i)) for i in compacted.output]
        self._wire = [_wire_of(i) for i in compacted.output]
        self._parent = None  # a new input window, not a response to continue
        return compacted


def _steering_items(state: Optional[RequestState], response_id: str) -> List[InputItem]:
    """The steering input that the successor ``response_id`` carried, as history items."""
    if state is None:
        return []
    items: List[InputItem] = []
    for successor, steer_input in state.steer_inputs:
        if successor == response_id:
            items.extend(_as_items(steer_input))
    return items


def _plain(full: Dict[str, Any]) -> TurnContext:
    """A first turn: no parent, so both ways of sending it are the whole context."""
    return TurnContext(full, full, "", parent_stored=False, whole=True)


def _http_turn(
    client: OpenAI,
    full: Dict[str, Any],
    context: Optional[TurnContext],
    timeout: Optional[float],
    mode: Mode,
) -> Any:
    """One turn of an HTTP-only conversation: the delta only for a stored parent."""
    transport = client._http_transport()
    body = context.delta if context is not None and context.parent_stored else full

    def send(payload: Dict[str, Any]) -> Any:
        if mode is Mode.RESULT:
            return transport.create(payload, timeout=timeout)
        return transport.stream(payload, timeout=timeout)

    if body is full:
        return send(full)
    try:
        if mode is Mode.RESULT:
            return send(body)
        return _first_then_rest(send(body), lambda: send(full))
    except PreviousResponseNotFoundError:
        return send(full)  # the stored parent is gone (deleted, expired): whole context


def _first_then_rest(events: Iterator[ServerEvent], fallback: Callable[[], Any]) -> Any:
    """A stream whose parent may be gone: if it fails before any event, send the whole
    context instead."""
    try:
        first = next(events)
    except PreviousResponseNotFoundError:
        return fallback()
    except StopIteration:
        return iter(())

    def chained() -> Iterator[ServerEvent]:
        yield first
        yield from events

    return chained()


def _as_items(input: TurnInput) -> List[InputItem]:
    """One turn's new items: text becomes a user message."""
    if isinstance(input, str):
        return [InputMessage(role="user", content=input)]
    if isinstance(input, (list, tuple)):
        return list(input)
    return [input]  # type: ignore[list-item]


def _wire_of(item: Any) -> Dict[str, Any]:
    """The wire dict of one history item (an output item sent back as input)."""
    if isinstance(item, UnknownOutputItem):
        return dict(item.raw)
    if isinstance(item, Mapping):
        return dict(item)
    wire: Dict[str, Any] = item.to_dict()
    return wire


def _item_type(item: Any) -> Optional[str]:
    if isinstance(item, Mapping):
        kind = item.get("type")
        return kind if isinstance(kind, str) else None
    kind = getattr(item, "type", None)
    return kind if isinstance(kind, str) else None


def _item_from_wire(wire: Mapping[str, Any]) -> InputItem:
    """The typed item of a saved wire dict."""
    kind = wire.get("type")
    if kind == "message" and wire.get("role") == "assistant":
        return OutputMessage.from_dict(wire)
    if kind == "message" or (kind is None and "role" in wire):
        content = wire.get("content")
        if isinstance(content, (str, list)):
            return InputMessage(role=str(wire.get("role")), content=content)
    if kind == "function_call_output":
        return FunctionCallOutput(call_id=str(wire["call_id"]), output=wire["output"])
    if kind in ("function_call", "reasoning"):
        item: OutputItem = structure(dict(wire), OutputItem)  # type: ignore[arg-type]
        return item
    if isinstance(kind, str):
        return UnknownOutputItem(type=kind, raw=dict(wire))
    return dict(wire)


def _busy_error() -> RuntimeError:
    return RuntimeError(
        "this Conversation is in use by another thread (or an unfinished stream): a "
        "conversation is used by one thread at a time; fork() it for a parallel branch"
    )

