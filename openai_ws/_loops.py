"""Conveniences built on ``send``: the tool calls of ``run`` and ``map``.

``call_tools`` runs the function calls the model asked for with the caller's
Python callables (in parallel threads) and makes their output items; the loop
itself is :meth:`Conversation.run <openai_ws.Conversation.run>`, which
:meth:`Session.run` uses. ``map_requests`` runs independent requests
concurrently on the session's lanes and yields their results in input order.

This module must never touch the socket or the reader thread: it only calls
``send`` of a :class:`Sender` (a :class:`~openai_ws.Session`, or anything with
the same ``send``), so it is tested and reused without a socket.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import (
    Any,
    Callable,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Protocol,
    Union,
)

import attrs

from .models import FunctionCall, FunctionCallOutput, Response, ResponseCreateRequest

__all__ = ["RunResult", "Sender", "call_tools", "map_requests"]

log = logging.getLogger(__name__)

Tool = Callable[..., Any]


class Sender(Protocol):
    """What the loops need: ``send`` a request, block, return its response."""

    def send(
        self, request: Optional[ResponseCreateRequest] = None, /, *, timeout: Optional[float] = None
    ) -> Response: ...


@attrs.frozen
class RunResult:
    """What :meth:`Session.run` did."""

    response: Response
    """The last response: the answer, or the last calls when ``max_turns`` ran out."""
    turns: int
    """Requests sent, the first one included."""
    responses: List[Response] = attrs.field(repr=False)
    """Every response of the loop, in order."""

    @property
    def finished(self) -> bool:
        """True when the last response asked for no more function calls."""
        return not self.response.function_calls


def _tool_output(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)


def _call_tool(call: FunctionCall, tools: Mapping[str, Tool], tool_errors: str) -> str:
    function = tools.get(call.name)
    try:
        if function is None:
            raise LookupError(f"no tool named {call.name!r}")
        arguments = json.loads(call.arguments) if call.arguments.strip() else {}
        if not isinstance(arguments, dict):
            raise TypeError("tool arguments must be a JSON object")
        return _tool_output(function(**arguments))
    except Exception as exc:
        if tool_errors == "raise":
            raise
        log.info("tool %s failed: %r", call.name, exc)
        return json.dumps({"error": f"{type(exc).__name__}: {exc}"})


def call_tools(
    calls: List[FunctionCall], tools: Mapping[str, Tool], tool_errors: str
) -> List[FunctionCallOutput]:
    """Run one turn's function calls (several in parallel threads); their output items.

    What :meth:`Conversation.run <openai_ws.Conversation.run>` (and so
    :meth:`Session.run`) sends back to the model.
    """
    if tool_errors not in ("output", "raise"):
        raise ValueError("tool_errors must be 'output' or 'raise'")
    if len(calls) == 1:
        outputs = [_call_tool(calls[0], tools, tool_errors)]
    else:
        with ThreadPoolExecutor(min(len(calls), 8)) as pool:
            outputs = list(pool.map(lambda c: _call_tool(c, tools, tool_errors), calls))
    return [FunctionCallOutput(call_id=c.call_id, output=o) for c, o in zip(calls, outputs)]


def map_requests(
    session: Sender,
    requests: Iterable[ResponseCreateRequest],
    *,
    concurrency: int,
    timeout: Optional[float],
    return_exceptions: bool,
    progress: bool,
) -> Iterator[Union[Response, Exception]]:
    """The generator behind :meth:`Session.map` (exceptions are yielded only with
    ``return_exceptions``)."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    items = list(requests)
    bar = _progress_bar(len(items)) if progress else None

    def one(request: ResponseCreateRequest) -> Union[Response, Exception]:
        try:
            return session.send(request, timeout=timeout)
        except Exception as exc:
            if not return_exceptions:
                raise
            return exc
        finally:
            if bar is not None:
                bar.update(1)

    pool = ThreadPoolExecutor(concurrency, thread_name_prefix="openai_ws-map")
    futures: List[Any] = []
    try:
        futures.extend(pool.submit(one, request) for request in items)
        for future in futures:
            yield future.result()
    finally:
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True)
        if bar is not None:
            bar.close()


def _progress_bar(total: int) -> Any:
    try:
        from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        log.info("progress=True needs tqdm; install it to see a progress bar")
        return None
    return tqdm(total=total, unit="req")
