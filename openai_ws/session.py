"""The public :class:`Session` and :class:`EventStream`: the face of one WebSocket session.

A session owns sockets to ``/v1/responses`` and a reader thread per socket
(in :mod:`openai_ws._session`); this module only checks what callers pass,
starts each request, and hands back a :class:`~openai_ws.models.Response` or
an :class:`EventStream`. ``send()`` and ``stream()`` run in the caller's
thread: the attempt loop (:mod:`openai_ws._session.attempt`) waits on the
request's inbox and does any recovery there.

What this module must never do: hold wire strings or recovery policy (they
live in :mod:`openai_ws._protocol` and :mod:`openai_ws._session`), or be
referenced by a reader thread (a forgotten session is collected and closed by
its ``weakref.finalize``).
"""

from __future__ import annotations

import functools
import re
import time
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Literal,
    Mapping,
    Optional,
    Tuple,
    Union,
    overload,
)

import attrs

from ._loops import RunResult, map_requests
from ._pending import PendingResponse
from ._protocol.routing import MAX_ACTIVE_RESPONSES
from ._session import attempt
from ._session.connection import TransportFactory
from ._session.engine import Engine
from ._session.options import SessionOptions, SessionStats
from ._session.request import Mode, RequestState, TurnContext
from ._session.telemetry import SessionTelemetry
from ._stream import EventStream, _StreamClosed
from ._types import RequestFields, RunFields
from .conversation import Conversation
from .errors import OpenAIWSError, SessionClosedError
from .events import ServerEvent
from .models import Response, ResponseCreateRequest, UsageTotals

if TYPE_CHECKING:
    from ._transports.http import HTTPTransport
    from ._types import Unpack

#: A mapping of extra HTTP headers or query parameters for one call.
Extras = Optional[Mapping[str, str]]

__all__ = ["EventStream", "Session", "SessionOptions", "SessionStats", "coerce_request"]

_STREAM_ID = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")


class Session:
    """A persistent WebSocket to the Responses API, shared by many threads.

    Create one with :meth:`openai_ws.OpenAI.ws_session`; use it as a context
    manager or call :meth:`close`. Every method is thread-safe. Requests from
    different threads run concurrently on their own ``stream_id`` lanes (at
    most 16 run at once per socket; the server queues the rest).
    """

    def __init__(
        self,
        options: SessionOptions,
        *,
        http: Optional[Callable[[], HTTPTransport]] = None,
        transport: Optional[TransportFactory] = None,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        capture_content: Optional[bool] = None,
    ) -> None:
        # OpenTelemetry (if installed): the given providers, else the global ones.
        self._telemetry = SessionTelemetry(
            options.url,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            capture_content=capture_content,
        )
        self._engine = Engine(options, http, transport)
        # A finalizer may run in any thread, even one holding the engine's
        # lock: it only signals (no lock, no join); close() does the rest.
        self._finalizer = weakref.finalize(self, self._engine.signal_close)
        try:
            self._engine.open()
        except BaseException:
            self.close()
            raise

    # -- context manager ------------------------------------------------------

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._engine.closed else "open"
        return f"<openai_ws.Session {state} url={self._engine.options.url!r}>"

    # -- public API -----------------------------------------------------------

    @property
    def stats(self) -> SessionStats:
        """A snapshot of the session's counters."""
        return self._engine.stats()

    @property
    def usage(self) -> UsageTotals:
        """Token totals over every answer this session delivered: over the socket, the
        HTTP fallback or a resumed stream, each answer once (replays and retries are
        not counted twice)."""
        return self._engine.usage

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (or the session was collected)."""
        return self._engine.closed

    def close(self) -> None:
        """Close the session; idempotent.

        Requests still waiting in other threads fail at once with
        :class:`~openai_ws.errors.SessionClosedError`, also those running over
        HTTP (their sockets are shut down); a 1000 close frame is sent; the
        reader thread is joined (bounded by ``close_timeout``).
        """
        self._finalizer.detach()
        self._engine.close()

    def send(
        self,
        request: Optional[ResponseCreateRequest] = None,
        /,
        *,
        timeout: Optional[float] = None,
        extra_headers: Extras = None,
        extra_query: Extras = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **fields: Unpack[RequestFields],
    ) -> Response:
        """Send a request and block until its terminal event; return the response.

        Pass a :class:`ResponseCreateRequest`, or its fields as keywords.
        ``completed``, ``incomplete`` and ``failed`` responses are returned
        (check :attr:`Response.status`); an ``error`` event raises the matching
        :class:`~openai_ws.errors.APIError`. ``timeout`` bounds the whole
        request (default: the client's ``timeout``); it raises
        :class:`~openai_ws.errors.RequestTimeoutError`. ``extra_body`` is
        merged into the body (over the request's own fields, as the official
        SDK does). A WebSocket message has no headers and no query string, so
        a non-empty ``extra_headers`` or ``extra_query`` raises ``ValueError``
        (use the client's ``default_headers``, or ``client.responses.create``).
        """
        _refuse_per_message_http_options(extra_headers, extra_query)
        meant = coerce_request(request, fields, extra_body)
        state, events = self._run(meant, timeout, Mode.RESULT)
        return attempt.result(self._engine, state, events)

    def stream(
        self,
        request: Optional[ResponseCreateRequest] = None,
        /,
        *,
        timeout: Optional[float] = None,
        extra_headers: Extras = None,
        extra_query: Extras = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **fields: Unpack[RequestFields],
    ) -> EventStream:
        """Send a request and return an :class:`EventStream` of its events.

        The request leaves at once; the stream yields every event in order
        and stops after the terminal one (``response.completed``, ``.failed``,
        ``.incomplete``). An ``error`` event raises the matching
        :class:`~openai_ws.errors.APIError`. Breaking out of the loop, closing
        the stream or dropping it abandons the request: its remaining
        events are dropped and never reach another request. ``timeout``,
        ``extra_body``, ``extra_headers`` and ``extra_query`` are as in :meth:`send`.
        """
        _refuse_per_message_http_options(extra_headers, extra_query)
        meant = coerce_request(request, fields, extra_body)
        state, events = self._run(meant, timeout, Mode.EVENTS)
        engine = self._engine
        return EventStream(
            events,
            functools.partial(_stream_closed, engine, state),
            interrupt=functools.partial(_interrupt, state),
            steer=functools.partial(engine.steer, state),
        )

    def submit(
        self,
        request: Optional[ResponseCreateRequest] = None,
        /,
        *,
        timeout: Optional[float] = None,
        extra_headers: Extras = None,
        extra_query: Extras = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **fields: Unpack[RequestFields],
    ) -> PendingResponse:
        """Send a request now and return a :class:`~openai_ws.PendingResponse` for it.

        ``handle.result()`` waits for the response as :meth:`send` does (in
        the thread that calls it); meanwhile ``handle.steer(input)`` adds input
        to the running response from any thread. Arguments as in :meth:`send`.
        """
        _refuse_per_message_http_options(extra_headers, extra_query)
        meant = coerce_request(request, fields, extra_body)
        state, events = self._run(meant, timeout, Mode.RESULT)
        engine = self._engine

        def response_id() -> Optional[str]:
            pending = state.pending
            return pending.response_id if pending is not None else None

        return PendingResponse(
            functools.partial(attempt.result, engine, state, events),
            functools.partial(engine.steer, state),
            functools.partial(_cancel, engine, state),
            response_id,
        )

    def conversation(
        self, *, compact_threshold: Optional[int] = None, **defaults: Any
    ) -> Conversation:
        """A :class:`~openai_ws.Conversation` on this session: its history lives in the
        client, so a chain survives lost sockets and HTTP fallbacks, ``store=False``
        included. ``defaults`` are request fields sent with every turn (``model``,
        ``instructions``, ``tools``, ``store``, ...)."""
        return Conversation(self, defaults, compact_threshold=compact_threshold)

    def warmup(
        self,
        request: Optional[ResponseCreateRequest] = None,
        /,
        *,
        timeout: Optional[float] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **fields: Unpack[RequestFields],
    ) -> str:
        """Prepare a request without generating (``generate: false``); return its id.

        Chain the real turn from it with ``previous_response_id``.
        """
        warm = attrs.evolve(coerce_request(request, fields, extra_body), generate=False)
        return self.send(warm, timeout=timeout).id

    def run(
        self,
        request: Optional[ResponseCreateRequest] = None,
        /,
        *,
        tools: Mapping[str, Callable[..., Any]],
        max_turns: int = 10,
        tool_errors: str = "output",
        timeout: Optional[float] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **fields: Unpack[RunFields],
    ) -> RunResult:
        """Run a tool-calling loop until the model answers without calls.

        Each function call the model makes is run with ``tools[call.name]``,
        called with the call's JSON arguments as keyword arguments (several
        calls of one turn run in parallel threads). The results (``str`` as is,
        anything else as JSON) go back as ``function_call_output`` items chained
        with ``previous_response_id``, with the rest of ``request`` unchanged.
        A tool that raises, or a name with no tool, becomes an error output the
        model sees (``tool_errors="output"``) or propagates
        (``tool_errors="raise"``). Stops after ``max_turns`` requests at most;
        :attr:`RunResult.finished` tells whether the model was done. The
        request's fields may be given as keywords, except ``tools`` (this
        keyword is the callables): put tool definitions in a request object.
        """
        first = coerce_request(request, fields, extra_body)
        conv = Conversation._for_request(self, first)
        return conv.run(
            first.input or [],
            tools=tools,
            max_turns=max_turns,
            tool_errors=tool_errors,
            timeout=timeout,
        )

    @overload
    def map(
        self,
        requests: Iterable[ResponseCreateRequest],
        *,
        concurrency: int = ...,
        timeout: Optional[float] = ...,
        return_exceptions: Literal[False] = ...,
        progress: bool = ...,
    ) -> Iterator[Response]: ...

    @overload
    def map(
        self,
        requests: Iterable[ResponseCreateRequest],
        *,
        concurrency: int = ...,
        timeout: Optional[float] = ...,
        return_exceptions: bool,
        progress: bool = ...,
    ) -> Iterator[Union[Response, Exception]]: ...

    def map(
        self,
        requests: Iterable[ResponseCreateRequest],
        *,
        concurrency: int = MAX_ACTIVE_RESPONSES,
        timeout: Optional[float] = None,
        return_exceptions: bool = False,
        progress: bool = False,
    ) -> Iterator[Union[Response, Exception]]:
        """Send independent requests concurrently; yield responses in input order.

        At most ``concurrency`` requests run at once (the server runs 16 per
        socket). A failed request raises when its turn comes, or is yielded as
        the exception with ``return_exceptions=True``. ``progress=True`` shows
        a tqdm progress bar when tqdm is installed. Type checkers see
        ``Iterator[Response]`` unless ``return_exceptions`` may be true.
        """
        return map_requests(
            self,
            requests,
            concurrency=concurrency,
            timeout=timeout,
            return_exceptions=return_exceptions,
            progress=progress,
        )

    # -- internals ------------------------------------------------------------

    def _start(
        self,
        request: Optional[ResponseCreateRequest],
        timeout: Optional[float],
        mode: Mode,
        context: Optional[TurnContext] = None,
    ) -> Tuple[RequestState, Optional[float], bool]:
        """Check the request, register and send it; ``True`` if it went out on the socket.

        A conversation turn passes its ``context`` (the two bodies it may be
        sent with) instead of a request.
        """
        engine = self._engine
        if engine.closed:
            raise SessionClosedError("the session is closed")
        if context is not None:
            body = context.full
        else:
            assert request is not None
            body = request.to_dict()
        stream_id = body.get("stream_id")
        if stream_id is not None and not (
            isinstance(stream_id, str) and _STREAM_ID.match(stream_id)
        ):
            raise ValueError("stream_id must be 1-256 characters of A-Z, a-z, 0-9, '_', '.', '-'")
        limit = engine.options.request_timeout if timeout is None else timeout
        deadline = None if limit is None else time.monotonic() + limit
        state = engine.new_request(body, mode)
        state.context = context
        state.telemetry = self._telemetry.start(state)
        try:
            sent = engine.http_reason(body) is None and engine.submit(state, deadline)
        except BaseException:
            state.telemetry.abort()
            engine.abandon(state)  # e.g. Ctrl-C while reconnecting
            raise
        return state, deadline, sent

    def _run(
        self,
        request: Optional[ResponseCreateRequest],
        timeout: Optional[float],
        mode: Mode,
        context: Optional[TurnContext] = None,
    ) -> Tuple[RequestState, Generator[ServerEvent, None, None]]:
        engine = self._engine
        state, deadline, sent = self._start(request, timeout, mode, context)
        if sent:
            return state, attempt.events(engine, state, deadline)
        reason = engine.http_reason(state.body)
        state.over_http = True  # known now, before the generator runs: it cannot be steered
        return state, attempt.over_http(engine, state, deadline, reason)


def _stream_closed(engine: Engine, request: RequestState) -> None:
    """The caller closed or dropped ``request``'s stream: drop its events, end its span."""
    engine.abandon(request)
    request.telemetry.abandon()


def _cancel(engine: Engine, request: RequestState) -> None:
    """Abandon a submitted request and end the wait of whoever waits for it."""
    engine.abandon(request)
    request.inbox.fail(OpenAIWSError("the request was cancelled"))


def _interrupt(request: RequestState) -> None:
    """Wake the thread waiting for ``request``'s next event: its stream was closed."""
    request.inbox.fail(_StreamClosed("the stream was closed"))


def _refuse_per_message_http_options(extra_headers: Extras, extra_query: Extras) -> None:
    """A WebSocket message has neither headers nor a query string: say so, send nothing."""
    for name, value in (("extra_headers", extra_headers), ("extra_query", extra_query)):
        if value:
            raise ValueError(
                f"{name} cannot be sent with one WebSocket message (a message has no headers "
                "or query string): set default_headers= on the client for the whole socket, "
                "or send this request with client.responses.create()/stream() over HTTP"
            )


def coerce_request(
    request: Optional[ResponseCreateRequest],
    fields: Mapping[str, Any],
    extra_body: Optional[Mapping[str, Any]] = None,
) -> ResponseCreateRequest:
    """The request a caller meant: a :class:`ResponseCreateRequest` or keyword fields,
    with a call's ``extra_body`` merged over the request's own (a new object; the
    caller's is never changed)."""
    if request is None:
        built = ResponseCreateRequest(**fields)
    elif fields:
        raise TypeError("pass either a ResponseCreateRequest or keyword fields, not both")
    elif not isinstance(request, ResponseCreateRequest):
        raise TypeError(f"expected a ResponseCreateRequest, got {type(request).__name__}")
    else:
        built = request
    if extra_body:
        if not isinstance(extra_body, Mapping):
            raise TypeError(f"extra_body must be a mapping, got {type(extra_body).__name__}")
        built = attrs.evolve(built, extra_body={**(built.extra_body or {}), **extra_body})
    return built
