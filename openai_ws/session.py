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

import re
import time
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Optional,
    Tuple,
    Union,
)

import attrs

from ._loops import RunResult, map_requests, run_tools
from ._protocol.routing import MAX_ACTIVE_RESPONSES
from ._session import attempt
from ._session.connection import TransportFactory
from ._session.engine import Engine
from ._session.options import SessionOptions, SessionStats
from ._session.request import Mode, RequestState
from .errors import SessionClosedError
from .events import ServerEvent
from .models import Response, ResponseCreateRequest

if TYPE_CHECKING:
    from ._transports.http import HTTPTransport

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
    ) -> None:
        self._engine = Engine(options, http, transport)
        self._finalizer = weakref.finalize(self, self._engine.close)
        try:
            self._engine.open()
        except BaseException:
            self._finalizer()
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
        self._finalizer()

    def send(
        self,
        request: Optional[ResponseCreateRequest] = None,
        /,
        *,
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> Response:
        """Send a request and block until its terminal event; return the response.

        ``completed``, ``incomplete`` and ``failed`` responses are returned
        (check :attr:`Response.status`); an ``error`` event raises the matching
        :class:`~openai_ws.errors.APIError`. ``timeout`` bounds the whole
        request (default: the client's ``timeout``); it raises
        :class:`~openai_ws.errors.RequestTimeoutError`.
        """
        state, events = self._run(coerce_request(request, fields), timeout, Mode.RESULT)
        return attempt.result(self._engine, state, events)

    def stream(
        self,
        request: Optional[ResponseCreateRequest] = None,
        /,
        *,
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> EventStream:
        """Send a request and return an iterator of its events.

        The request leaves at once; the generator yields every event in order
        and stops after the terminal one (``response.completed``, ``.failed``,
        ``.incomplete``). An ``error`` event raises the matching
        :class:`~openai_ws.errors.APIError`. Breaking out of the loop, closing
        the stream or dropping it abandons the request: its remaining
        events are dropped and never reach another request.
        """
        state, events = self._run(coerce_request(request, fields), timeout, Mode.EVENTS)
        return EventStream(self._engine, state, events)

    def warmup(
        self,
        request: Optional[ResponseCreateRequest] = None,
        /,
        *,
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> str:
        """Prepare a request without generating (``generate: false``); return its id.

        Chain the real turn from it with ``previous_response_id``.
        """
        warm = attrs.evolve(coerce_request(request, fields), generate=False)
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
        **fields: Any,
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
        :attr:`RunResult.finished` tells whether the model was done.
        """
        return run_tools(
            self,
            coerce_request(request, fields),
            tools,
            max_turns=max_turns,
            tool_errors=tool_errors,
            timeout=timeout,
        )

    def map(
        self,
        requests: Iterable[ResponseCreateRequest],
        *,
        concurrency: int = MAX_ACTIVE_RESPONSES,
        timeout: Optional[float] = None,
        return_exceptions: bool = False,
        progress: bool = False,
    ) -> Iterator[Union[Response, BaseException]]:
        """Send independent requests concurrently; yield responses in input order.

        At most ``concurrency`` requests run at once (the server runs 16 per
        socket). A failed request raises when its turn comes, or is yielded as
        the exception with ``return_exceptions=True``. ``progress=True`` shows
        a tqdm progress bar when tqdm is installed.
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
        self, request: ResponseCreateRequest, timeout: Optional[float], mode: Mode
    ) -> Tuple[RequestState, Optional[float], bool]:
        """Check the request, register and send it; ``True`` if it went out on the socket."""
        engine = self._engine
        if engine.closed:
            raise SessionClosedError("the session is closed")
        body = request.to_dict()
        stream_id = body.get("stream_id")
        if stream_id is not None and not (
            isinstance(stream_id, str) and _STREAM_ID.match(stream_id)
        ):
            raise ValueError("stream_id must be 1-256 characters of A-Z, a-z, 0-9, '_', '.', '-'")
        limit = engine.options.request_timeout if timeout is None else timeout
        deadline = None if limit is None else time.monotonic() + limit
        state = engine.new_request(body, mode)
        try:
            sent = engine.fallback.reason(body) is None and engine.submit(state, deadline)
        except BaseException:
            engine.abandon(state)  # e.g. Ctrl-C while reconnecting
            raise
        return state, deadline, sent

    def _run(
        self, request: ResponseCreateRequest, timeout: Optional[float], mode: Mode
    ) -> Tuple[RequestState, Generator[ServerEvent, None, None]]:
        engine = self._engine
        state, deadline, sent = self._start(request, timeout, mode)
        if sent:
            return state, attempt.events(engine, state, deadline)
        reason = engine.fallback.reason(state.body)
        return state, attempt.over_http(engine, state, deadline, reason)


class EventStream(Iterator[ServerEvent]):
    """The events of one request, as returned by :meth:`Session.stream`.

    An iterator (and a context manager) that yields typed events and stops
    after the terminal one. :meth:`close` (or leaving the ``with`` block, or
    dropping the last reference, even before the first ``next()``) abandons
    the request: its remaining events are dropped as they arrive.
    """

    def __init__(
        self, engine: Engine, request: RequestState, events: Generator[ServerEvent, None, None]
    ) -> None:
        self._events = events
        self._finalizer = weakref.finalize(self, engine.abandon, request)

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> ServerEvent:
        event: ServerEvent = next(self._events)
        return event

    def close(self) -> None:
        """Stop listening; the request is abandoned if it has not finished."""
        self._events.close()
        self._finalizer()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def coerce_request(
    request: Optional[ResponseCreateRequest], fields: Dict[str, Any]
) -> ResponseCreateRequest:
    """The request a caller meant: a :class:`ResponseCreateRequest` or keyword fields."""
    if request is None:
        return ResponseCreateRequest(**fields)
    if fields:
        raise TypeError("pass either a ResponseCreateRequest or keyword fields, not both")
    if not isinstance(request, ResponseCreateRequest):
        raise TypeError(f"expected a ResponseCreateRequest, got {type(request).__name__}")
    return request
