"""One request across its attempts, run in the caller's thread: decide, then act.

:func:`decide` looks at one item taken from the request's inbox (a decoded
event, or a note such as :class:`~openai_ws._session.inbox.Lost`) and returns
what to do with it: deliver it, collect it, skip it, raise, send the request
again after a delay, or complete it over HTTP. It reads the request's state
and the options but changes nothing and does no I/O, so every recovery rule is
unit-tested on plain values (the shape of urllib3's ``Retry.increment``).
:func:`events` is the small loop that acts on those decisions: it waits on the
inbox, counts, logs, sleeps, re-submits through the engine, and falls back to
HTTP through :func:`over_http`. :func:`result` is what ``send()`` runs.

Events are typed here and nowhere else: the reader thread only decodes JSON.
In :attr:`Mode.RESULT` only the terminal event is typed; finished output items
are kept untyped until the response needs them.

This module must never run in the reader thread, hold the engine's locks, or
edit the caller's request (an HTTP attempt drops only ``stream_id``, a lane
name that has no meaning over HTTP).
"""

from __future__ import annotations

import collections
import logging
import random
import time
from typing import (
    TYPE_CHECKING,
    Any,
    Deque,
    Dict,
    Generator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Union,
    cast,
)

import attrs

from .._convert import structure_event
from .._protocol import retry
from .._protocol.routing import (
    CONNECTION_LIMIT,
    PROTOCOL_CLOSES,
    STEER_EVENT_TYPES,
    CloseKind,
)
from ..errors import (
    APIError,
    ConnectError,
    ConnectionClosedError,
    MessageTooLargeError,
    OpenAIWSError,
    PreviousResponseNotFoundError,
    ProtocolError,
    ReplayUnsafeError,
    RequestTimeoutError,
)
from ..events import (
    FINAL_RESPONSE_EVENTS,
    TERMINAL_EVENT_TYPES,
    ErrorEvent,
    ResponseCompleted,
    ResponseFailed,
    ResponseIncomplete,
    ResponseOutputItemDone,
    ServerEvent,
)
from ..models import Response
from .inbox import Failure, Lost, Rejected, Settled, Settling
from .options import SessionOptions
from .request import Mode, RequestState

if TYPE_CHECKING:
    from .engine import Engine

__all__ = [
    "Collect",
    "Deliver",
    "End",
    "Fallback",
    "Raise",
    "Resend",
    "Resume",
    "Skip",
    "decide",
    "events",
    "over_http",
    "result",
]

log = logging.getLogger(__name__)

_NOT_PLAIN = TERMINAL_EVENT_TYPES | STEER_EVENT_TYPES
"""Event types that :func:`decide` must see: they end, or steer, the request."""

# -- decisions ------------------------------------------------------------------


class Deliver(NamedTuple):
    """Hand ``event`` to the caller; ``final`` ends the request."""

    event: ServerEvent
    final: bool


class Collect(NamedTuple):
    """Keep a finished output item for the response (``send()`` only)."""

    item: Dict[str, Any]


class Skip(NamedTuple):
    """Nothing for the caller; ``malformed`` says why, if the event was bad."""

    malformed: Optional[str] = None


class Raise(NamedTuple):
    """The request ends with ``error``, chained from ``cause`` (the transport's, if any)."""

    error: BaseException
    cause: Optional[BaseException] = None


class Resend(NamedTuple):
    """Send the request again, after ``delay`` seconds.

    ``counter`` names the request's and the session's counter to add one to
    (``"replays"`` or ``"retries"``; ``None`` for a lane refusal, which is no
    new attempt of the request's own; ``"context"``: a conversation turn whose
    parent was not found goes again with its whole history).
    """

    delay: float
    counter: Optional[str]
    why: str


class Fallback(NamedTuple):
    """Complete the request over HTTP; ``remember`` its shape for later requests."""

    reason: str
    remember: bool


class Resume(NamedTuple):
    """Read the rest of a stored response over HTTP, after event ``after``.

    For a stream cut mid-answer: ``GET /responses/{id}?stream=true&starting_after=N``
    continues it without answering twice; ``unsafe`` is raised if that fails.
    """

    response_id: str
    after: int
    unsafe: ReplayUnsafeError
    cause: Optional[BaseException]


class End(NamedTuple):
    """The request is over with what was delivered: a steered response ended and
    no successor followed (the steer's socket closed, or the server moved on)."""


Action = Union[Deliver, Collect, Skip, Raise, Resend, Fallback, Resume, End]


def decide(
    item: Any,
    request: RequestState,
    opts: SessionOptions,
    *,
    now: float,
    deadline: Optional[float],
    has_http: bool,
    jitter: float,
    wall_time: Optional[float] = None,
) -> Action:
    """What to do with one inbox ``item`` of ``request`` (pure; see the module docstring).

    ``request.delivered`` already counts ``item`` if it is an event (not an
    ``error``). ``now`` and ``deadline`` are ``time.monotonic()`` values;
    ``wall_time`` (``time.time()``) lets a ``retry-after`` HTTP date count.
    ``jitter`` is a number in ``[0, 1)`` for the backoff.
    """
    if type(item) is dict:
        if item["type"] != "error":
            return _decide_event(item, request.mode)
        return _decide_error(
            item, request, opts, now=now, deadline=deadline, jitter=jitter, wall_time=wall_time
        )
    if isinstance(item, Settling):
        # A terminal event that does not end the request: its steer may go on.
        action = _decide_event(item.event, Mode.EVENTS)
        return Deliver(action.event, False) if isinstance(action, Deliver) else action
    if isinstance(item, Settled):
        if item.event is None or request.mode is Mode.RESULT:
            return End()
        action = _decide_event(item.event, Mode.EVENTS)
        return Deliver(action.event, True) if isinstance(action, Deliver) else End()
    if isinstance(item, Failure):
        return Raise(item.exc)
    if isinstance(item, Rejected):
        return Resend(0.0, None, "the server refused the stream_id field")
    if isinstance(item, Lost):
        return _decide_lost(item, request, opts, has_http=has_http, jitter=jitter)
    raise AssertionError(f"unexpected inbox item {item!r}")  # pragma: no cover


def _decide_event(item: Dict[str, Any], mode: Mode) -> Action:
    event_type = item["type"]
    terminal = event_type in TERMINAL_EVENT_TYPES
    if mode is Mode.RESULT and not terminal:
        return Collect(item) if event_type == "response.output_item.done" else Skip()
    try:
        event = structure_event(item)
    except ProtocolError as exc:
        if terminal:
            return Raise(exc)
        return Skip(malformed=str(exc))
    return Deliver(event, terminal)


def _decide_error(
    item: Dict[str, Any],
    request: RequestState,
    opts: SessionOptions,
    *,
    now: float,
    deadline: Optional[float],
    jitter: float,
    wall_time: Optional[float],
) -> Action:
    try:
        event = cast(ErrorEvent, structure_event(item))
    except ProtocolError as exc:
        return Raise(exc)
    error = error_from_event(event, request.body)
    fresh = request.delivered == 0  # the caller has seen nothing of this request yet
    context = request.context
    if (
        isinstance(error, PreviousResponseNotFoundError)
        and context is not None
        and not context.whole
        and fresh
    ):
        # The conversation holds the whole history: send it instead, once.
        return Resend(0.0, "context", "the parent response is not available")
    if error.code == CONNECTION_LIMIT and fresh and request.replays < opts.max_replays:
        # The answer to a create the server refused: it never ran.
        return Resend(0.0, "replays", "the connection reached its age limit")
    if not fresh or request.retries >= opts.max_retries:
        return Raise(error)
    rule = retry.verdict(
        status=error.status,
        code=error.code,
        headers=error.headers,
        message=error.message,
        attempt=request.retries,
        jitter=jitter,
        now=wall_time,
    )
    if rule.delay is None:
        if rule.hint is not None and rule.hint > retry.MAX_RETRY_AFTER:
            error.retry_after = rule.hint
        return Raise(error)
    if deadline is not None and now + rule.delay > deadline:
        return Raise(error)
    return Resend(rule.delay, "retries", f"the server answered {error.code or error.status}")


def _decide_lost(
    lost: Lost, request: RequestState, opts: SessionOptions, *, has_http: bool, jitter: float
) -> Action:
    pending = request.pending
    code = lost.code
    if request.settling:
        # Its response had ended; only a steer's successor was still possible.
        return End()
    if lost.culprit and isinstance(lost.error, MessageTooLargeError):
        # We refused this request's answer for its size (max_message_size, or an
        # event over max_queue_bytes): it would be as large on any attempt.
        return Raise(
            ConnectionClosedError(
                f"the connection was closed with 1009 (message too big): {lost.error}",
                code=code,
                reason=lost.reason,
            ),
            lost.error,
        )
    if request.mode is Mode.EVENTS and request.delivered:
        # The consumer has seen part of the answer: sending the request again
        # could answer it twice. A send() caller has seen nothing: it goes on.
        unsafe = ReplayUnsafeError(
            f"the connection closed (code={code}) after the stream had delivered "
            f"{request.delivered} event(s); it was not replayed, to avoid answering it twice",
            code=code,
            reason=lost.reason,
            events_received=request.delivered,
            response_id=pending.response_id if pending else None,
        )
        response_id = pending.response_id if pending else None
        stored = request.body.get("store") is not False
        if has_http and stored and response_id and request.last_sequence is not None:
            # A stored response goes on without its socket: read the rest of it.
            return Resume(response_id, request.last_sequence, unsafe, lost.error)
        return Raise(unsafe, lost.error)
    if request.steered:
        # The server took a steer of this request; the steer lived on that socket
        # only. Sending the request again would answer it without the steer.
        return Raise(
            ReplayUnsafeError(
                f"the connection closed (code={code}) after a steer of the request was "
                "accepted; it was not sent again, since the answer would lack the steer",
                code=code,
                reason=lost.reason,
                events_received=request.delivered,
                response_id=pending.response_id if pending else None,
            ),
            lost.error,
        )
    answered_before = bool(pending is not None and pending.events)
    if lost.kind is CloseKind.SILENT and has_http:
        return Fallback("the socket closed silently", remember=not answered_before)
    if lost.kind is CloseKind.PROTOCOL and lost.culprit:
        meaning = PROTOCOL_CLOSES.get(code or 0, "protocol error")
        # HTTP may carry what the socket refused, except an answer larger than
        # our own max_message_size: it would be as large over HTTP.
        too_big_for_us = code == 1009 and lost.error is not None
        if has_http and not too_big_for_us:
            return Fallback(f"the socket closed with {code} ({meaning})", remember=False)
        return Raise(
            ConnectionClosedError(
                f"the connection closed with {code} ({meaning}) because of this request; "
                "it is not sent on a socket again",
                code=code,
                reason=lost.reason,
            ),
            lost.error,
        )
    if request.replays >= opts.max_replays:
        return Raise(
            ConnectionClosedError(
                f"the connection closed (code={code}) {request.replays + 1} times before "
                "the request was answered; giving up",
                code=code,
                reason=lost.reason,
            ),
            lost.error,
        )
    # Sockets that keep dying under this request: slow down from the second replay on.
    delay = 0.0
    if request.replays:
        delay = retry.backoff(
            request.replays - 1, initial=opts.backoff_initial, cap=opts.backoff_max, jitter=jitter
        )
    return Resend(delay, "replays", f"the connection ended (code={code})")


def error_from_event(event: ErrorEvent, body: Mapping[str, Any]) -> APIError:
    """The typed error of an ``error`` event, explained where the library knows more."""
    error = event.to_api_error(request=dict(body))
    if isinstance(error, PreviousResponseNotFoundError):
        error.message = (
            f"{error.message} The parent response is not available: with store=false a "
            "response lives only in the cache of the socket that produced it, and that "
            "socket has closed or its lane moved on. Send the whole conversation again "
            "without previous_response_id, or use store=true."
        )
    return error


# -- acting ---------------------------------------------------------------------


def events(
    engine: Engine, request: RequestState, deadline: Optional[float]
) -> Generator[ServerEvent, None, None]:
    """Yield the request's events, typed; recover from a lost socket in this thread.

    In :attr:`Mode.RESULT` only the terminal event is yielded (finished output
    items are collected on ``request`` for :func:`result`).
    """
    opts = engine.options
    finished = False
    streaming = request.mode is Mode.EVENTS  # every event is handed on (not only the end)
    batch: Deque[Any] = collections.deque()
    settle_by = 0.0  # while settling: when to stop waiting for the steer's outcome
    try:
        while True:
            if not batch:
                if request.settling:
                    try:
                        batch.extend(_wait(request, deadline, opts.event_timeout, settle_by))
                    except _SettleTimeout:
                        finished = True
                        engine.settle(request)
                        return
                else:
                    batch.extend(_wait(request, deadline, opts.event_timeout))
            item = batch.popleft()
            if (
                type(item) is dict
                and streaming
                and not request.settling
                and item["type"] not in _NOT_PLAIN
            ):
                # The common case, an event that neither ends nor steers the request:
                # typed and handed on as decide() would, without its clocks and jitter.
                request.delivered += 1
                try:
                    event = structure_event(item)
                except ProtocolError as exc:
                    engine.count("malformed_frames")
                    log.warning("skipped an event that does not fit its type: %s", exc)
                    continue
                sequence = item.get("sequence_number")
                if type(sequence) is int:
                    request.last_sequence = sequence
                if request.delivered == 1:
                    request.telemetry.first_event()
                yield event
                continue
            if type(item) is dict:
                if item["type"] != "error":
                    request.delivered += 1
                    if request.settling and item["type"] == "response.created":
                        request.settling = False  # a successor goes on with the steer
            elif type(item) is Settling:
                request.delivered += 1
                request.settling = True
                settle_by = time.monotonic() + opts.steer_settle_timeout
            action = decide(
                item,
                request,
                opts,
                now=time.monotonic(),
                deadline=deadline,
                has_http=engine.http is not None,
                jitter=random.random(),
                wall_time=time.time(),
            )
            if isinstance(action, Deliver):
                finished = action.final
                sequence = getattr(action.event, "sequence_number", None)
                if isinstance(sequence, int):
                    request.last_sequence = sequence
                if isinstance(action.event, FINAL_RESPONSE_EVENTS):
                    engine.count_answer(action.event)
                    request.telemetry.answered(action.event, request)
                elif request.delivered == 1:
                    request.telemetry.first_event()
                yield action.event
                if finished:
                    return
            elif isinstance(action, End):
                finished = True
                return
            elif isinstance(action, Collect):
                request.collected.append(action.item)
            elif isinstance(action, Skip):
                if action.malformed is not None:
                    engine.count("malformed_frames")
                    log.warning("skipped an event that does not fit its type: %s", action.malformed)
            elif isinstance(action, Raise):
                finished = True
                if action.cause is not None and action.error.__cause__ is None:
                    raise action.error from action.cause
                raise action.error
            elif isinstance(action, Resume):
                finished = True
                yield from resume_over_http(engine, request, deadline, action)
                return
            elif isinstance(action, Fallback):
                finished = True
                if action.remember:
                    engine.fallback.remember_silent_close(request.body)
                yield from over_http(engine, request, deadline, action.reason)
                return
            else:
                _count_attempt(engine, request, action)
                if action.delay > 0:
                    engine.pause(action.delay)
                batch.clear()
                request.collected.clear()  # the next attempt sends its own items
                request.inbox = engine.new_inbox(request.mode)
                if not engine.submit(request, deadline):
                    finished = True
                    reason = engine.fallback.session_reason
                    yield from over_http(engine, request, deadline, reason)
                    return
    except BaseException as exc:
        request.telemetry.failed(exc)  # GeneratorExit: the caller stopped listening
        raise
    finally:
        if not finished:
            engine.abandon(request)
        request.done = True
        request.started.set()  # wakes a thread waiting to steer it: it is over
        request.telemetry.end()


class _SettleTimeout(Exception):
    """The wait for a steer's outcome after its response ended is over."""


def _wait(
    request: RequestState,
    deadline: Optional[float],
    event_timeout: Optional[float],
    settle_by: Optional[float] = None,
) -> List[Any]:
    """The next batch of inbox items, within the request's and the event's deadline
    (and, for a settling request, ``settle_by``: then :class:`_SettleTimeout`)."""
    wait = deadline
    if event_timeout is not None:
        event_deadline = time.monotonic() + event_timeout
        wait = event_deadline if wait is None else min(wait, event_deadline)
    if settle_by is not None and (wait is None or settle_by < wait):
        wait = settle_by
    try:
        return request.inbox.get_all(wait)
    except RequestTimeoutError:
        if settle_by is not None and wait == settle_by:
            raise _SettleTimeout from None
        what = "the request" if wait == deadline else "the next event"
        raise RequestTimeoutError(
            f"timed out waiting for {what} after {request.delivered} event(s)"
        ) from None


def _count_attempt(engine: Engine, request: RequestState, action: Resend) -> None:
    opts = engine.options
    request.telemetry.resend(action.counter, action.why, action.delay)
    if action.counter == "retries":
        request.retries += 1
        engine.count("retries")
        log.info(
            "retrying after %s in %.2fs (attempt %d of %d)",
            action.why.replace("the server answered ", ""),
            action.delay,
            request.retries,
            opts.max_retries,
        )
    elif action.counter == "context":
        assert request.context is not None
        request.context.whole = True
        log.info("request %d: %s; sending the whole context", request.key, action.why)
    elif action.counter == "replays":
        request.replays += 1
        engine.count("replays")
        log.info("replaying request %d on a new connection: %s", request.key, action.why)
    else:
        log.info("%s; using the default lane", action.why)


def result(
    engine: Engine, request: RequestState, stream: Generator[ServerEvent, None, None]
) -> Response:
    """Run ``stream`` (the request's :func:`events` or :func:`over_http`) to its
    terminal event and return the whole response (what ``send()`` does)."""
    answer: Optional[Response] = None
    try:
        # A steered response is followed by its successor: the answer is the last one.
        for event in stream:
            if isinstance(event, FINAL_RESPONSE_EVENTS):
                answer = event.response
                if not answer.output and request.collected:
                    # Over WebSocket a terminal response may omit its output:
                    # rebuild it from the finished items.
                    items = [
                        cast(ResponseOutputItemDone, structure_event(d)) for d in request.collected
                    ]
                    answer = attrs.evolve(answer, output=[i.item for i in items])
                request.collected.clear()  # a successor's items are its own
                request.answers.append(answer)
    finally:
        stream.close()
    if answer is None:
        raise ProtocolError("the stream ended without a terminal event")
    return answer


def over_http(
    engine: Engine, request: RequestState, deadline: Optional[float], reason: Optional[str]
) -> Generator[ServerEvent, None, None]:
    """Complete ``request`` over HTTP with exactly the caller's fields.

    A conversation turn sent as a delta to a stored parent that turns out to be
    gone (``previous_response_not_found``) goes again, once, with its whole
    history.
    """
    http = engine.http
    if http is None:
        raise ConnectError(f"cannot use the WebSocket ({reason}) and no HTTP transport is set")
    engine.count("http_fallbacks")
    request.telemetry.fallback(reason)
    request.over_http = True
    request.started.set()  # wakes a thread waiting to steer it: HTTP cannot be steered
    log.info("request %d goes over HTTP: %s", request.key, reason)
    token = None
    try:
        transport = http()
        token = engine.begin_http_call()  # close() aborts the call through it
        while True:
            # stream_id names a WebSocket lane; it has no meaning over HTTP.
            request.body = request.http_body()
            body = {k: v for k, v in request.body.items() if k != "stream_id"}
            try:
                for event in _http_attempt(transport, body, request, deadline, token):
                    engine.count_answer(event)
                    if request.delivered == 1 or isinstance(event, FINAL_RESPONSE_EVENTS):
                        request.telemetry.seen(event, request)
                    yield event
                return
            except PreviousResponseNotFoundError:
                context = request.context
                if context is None or context.whole or request.delivered:
                    raise
                context.whole = True
                log.info(
                    "request %d: the stored parent is gone; sending the whole context", request.key
                )
    except BaseException as exc:
        request.telemetry.failed(exc)  # over_http may be the request's outermost loop
        raise
    finally:
        if token is not None:
            engine.end_http_call(token)
        request.telemetry.end()


def resume_over_http(
    engine: Engine, request: RequestState, deadline: Optional[float], resume: Resume
) -> Generator[ServerEvent, None, None]:
    """The rest of a stored response whose stream lost its socket, read over HTTP.

    Raises ``resume.unsafe`` (chained from what went wrong) if the server
    cannot stream it (not stored, not found, an old server): the stream then
    ends as it would have without this attempt.
    """
    http = engine.http
    assert http is not None
    request.over_http = True
    timeout = None if deadline is None else max(0.001, deadline - time.monotonic())
    token = engine.begin_http_call()
    started = False
    try:
        events = http().resume(
            resume.response_id, starting_after=resume.after, timeout=timeout, cancel=token
        )
        for event in events:
            sequence = getattr(event, "sequence_number", None)
            if isinstance(sequence, int) and sequence <= resume.after:
                continue  # already delivered over the socket
            if not started:
                started = True
                engine.count("resumed_streams")
                log.info(
                    "request %d: reading the rest of %s over HTTP", request.key, resume.response_id
                )
                request.telemetry.resume(resume.response_id, resume.after)
            request.delivered += 1
            engine.count_answer(event)
            if isinstance(event, FINAL_RESPONSE_EVENTS):
                request.telemetry.answered(event, request)
            yield event
    except OpenAIWSError as exc:
        if started:
            raise
        raise resume.unsafe from (resume.cause or exc)
    finally:
        engine.end_http_call(token)


def _http_attempt(
    transport: Any,
    body: Dict[str, Any],
    request: RequestState,
    deadline: Optional[float],
    token: Any,
) -> Generator[ServerEvent, None, None]:
    """One HTTP call of :func:`over_http`: a JSON answer for ``send()``, SSE for ``stream()``."""
    timeout = None if deadline is None else max(0.001, deadline - time.monotonic())
    if request.mode is Mode.RESULT:
        # send() wants the response, not its events: one JSON answer is
        # cheaper than a stream (measured by benchmarks/fallback_cost.py).
        response = transport.create(body, timeout=timeout, cancel=token)
        request.delivered += 1
        terminal: ServerEvent
        if response.status == "incomplete":
            terminal = ResponseIncomplete(response=response)
        elif response.status == "failed":
            terminal = ResponseFailed(response=response)
        else:
            terminal = ResponseCompleted(response=response)
        yield terminal
        return
    for event in transport.stream(body, timeout=timeout, cancel=token):
        request.delivered += 1
        yield event  # the transport ends the call at its timeout (a total deadline)
