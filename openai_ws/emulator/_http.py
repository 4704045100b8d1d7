"""The HTTP side of the emulator: ``POST /v1/responses`` (JSON or SSE) and the route table.

Also the middleware every route goes through: bearer-token check (the
WebSocket upgrade included), service-style headers, and conversion of an
``ApiError`` or an aiohttp HTTP exception into the service's JSON error body.
The routes around stored responses (retrieve, input items, compact) live in
``_stored``. Streamed deltas carry ``obfuscation`` unless the request sets
``stream_options.include_obfuscation: false``; a mid-stream ``error`` is flat
unless ``EmulatorConfig.sse_error_shape`` is ``"nested"``. HTTP has no
connection cache: a ``previous_response_id`` is looked up in the store only.
This module must never touch WebSocket connections and never honour
``emulator_close_*`` (so a client that falls back to HTTP gets an answer).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import secrets
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional

from aiohttp import web

from ._context import EMPTY_CONTEXT, Context, fold, request_items
from ._errors import (
    ApiError,
    http_error_body,
    invalid_json,
    invalid_type,
    previous_response_not_found,
    response_not_found,
    scripted_error,
    sse_error_event,
)
from ._responses import (
    context_tokens_of,
    finish_response,
    start_response,
    stored_parent,
    wants_obfuscation,
)
from ._runner import Outcome, dumps, run_scenario
from ._script import parse_script
from ._state import ServerState
from ._validate import validate_create

__all__ = [
    "Handler",
    "SseSink",
    "add_routes",
    "make_middleware",
    "read_json",
    "service_headers",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# When the current request entered the middleware (for openai-processing-ms).
_STARTED: contextvars.ContextVar[float] = contextvars.ContextVar("emulator_request_started")


def service_headers() -> Dict[str, str]:
    """The headers of every answer (request id, version, rate limits, processing time)."""
    started = _STARTED.get(time.monotonic())
    return {
        "x-request-id": "req_" + secrets.token_hex(16),
        "openai-version": "2020-10-01",
        "openai-organization": "org-emulator",
        "openai-processing-ms": str(int((time.monotonic() - started) * 1000)),
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-reset-requests": "6ms",
        "x-ratelimit-limit-tokens": "30000000",
        "x-ratelimit-remaining-tokens": "29999000",
        "x-ratelimit-reset-tokens": "0s",
    }


def error_response(error: ApiError) -> web.Response:
    """The HTTP answer for ``error``: status, JSON body, service and error headers."""
    headers = service_headers()
    headers.update(error.headers)
    headers.update(error.http_headers)
    return web.json_response(http_error_body(error), status=error.status, headers=headers)


def _is_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def make_middleware(state: ServerState) -> Any:
    """Auth, headers and error conversion for every route."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        _STARTED.set(time.monotonic())
        upgrade = _is_upgrade(request)
        if not upgrade:
            state.stats.incr("http_requests")
        task = asyncio.current_task()
        if task is not None:
            state.handler_tasks.add(task)
        try:
            auth_error = state.check_auth(request.headers.get("Authorization"))
            if auth_error is not None:
                state.stats.incr("auth_failures")
                state.stats.incr("ws_rejected" if upgrade else "errors_sent")
                return error_response(auth_error)
            try:
                return await handler(request)
            except ApiError as error:
                state.stats.incr("errors_sent")
                return error_response(error)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                state.stats.incr("errors_sent")
                return error_response(
                    ApiError(exc.status, None, f"{request.method} {request.path}: {exc.reason}"),
                )
        finally:
            if task is not None:
                state.handler_tasks.discard(task)

    return middleware


class SseSink:
    """``Sink`` writing ``event:``/``data:`` blocks to a streaming HTTP response.

    ``nested`` picks the nested mid-stream ``error`` shape instead of the flat one.
    """

    supports_close = False

    def __init__(self, response: web.StreamResponse, *, nested: bool = False) -> None:
        self._response = response
        self._nested = nested

    async def send_events(self, events: List[Dict[str, Any]]) -> None:
        await self._response.write(
            "".join(
                [f"event: {event['type']}\ndata: {dumps(event)}\n\n" for event in events]
            ).encode()
        )

    async def send_error(self, error: ApiError, sequence_number: int) -> None:
        payload = dumps(
            sse_error_event(error, sequence_number=sequence_number, nested=self._nested)
        )
        await self._response.write(f"event: error\ndata: {payload}\n\n".encode())

    async def send_malformed(self) -> None:
        await self._response.write(
            b'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", '
            b'"delta": "unterminated\n\n'
        )

    async def send_binary(self) -> None:
        return None

    async def close(self, code: int) -> None:  # pragma: no cover - supports_close is False
        return None


class _NullSink:
    """``Sink`` for non-streaming requests: events are planned and timed, not sent."""

    supports_close = False

    async def send_events(self, events: List[Dict[str, Any]]) -> None:
        return None

    async def send_error(self, error: ApiError, sequence_number: int) -> None:
        return None

    async def send_malformed(self) -> None:
        return None

    async def send_binary(self) -> None:
        return None

    async def close(self, code: int) -> None:  # pragma: no cover - supports_close is False
        return None


async def read_json(request: web.Request) -> Dict[str, Any]:
    """The JSON object body of ``request`` (400 ``invalid_json``/``invalid_type`` otherwise)."""
    raw = await request.read()
    try:
        body = json.loads(raw.decode("utf-8") if raw else "")
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_json(str(exc)) from None
    if not isinstance(body, dict):
        raise invalid_type("(root)", "an object", body)
    return body


async def create_response(state: ServerState, request: web.Request) -> web.StreamResponse:
    """``POST /v1/responses``."""
    state.stats.incr("http_creates")
    config = state.config
    body = await read_json(request)
    validate_create(body, websocket=False, strict=config.strict_parameters)
    if body.get("background") is True:
        raise ApiError(
            400,
            "unsupported_parameter",
            "Unsupported parameter: 'background' is not supported by the emulator.",
            param="background",
        )
    body.pop("type", None)
    body.pop("stream_id", None)
    script = parse_script(body.get("metadata"))
    parent_id = body.get("previous_response_id")
    known: Optional[Context] = EMPTY_CONTEXT
    if parent_id is not None:
        known = state.stored_context(str(parent_id))
        if state.store_get(str(parent_id)) is None:
            known = None
    attempt = state.next_attempt(body, None if known is None else fold(known, request_items(body)))
    if script.error_applies(attempt) and script.error is not None:
        state.stats.incr("faults_injected")
        raise scripted_error(script.error, retry_after=script.retry_after, model=str(body["model"]))
    context_tokens = 0
    parent_context: Optional[Context] = EMPTY_CONTEXT
    if parent_id is not None:
        parent = await stored_parent(state, str(parent_id))
        if parent is None:
            raise previous_response_not_found(str(parent_id))
        context_tokens = context_tokens_of(parent)
        parent_context = state.stored_context(str(parent_id))
    streaming = body.get("stream") is True
    scenario_context = fold(parent_context or EMPTY_CONTEXT, request_items(body))
    scenario = start_response(
        state,
        body,
        script,
        context=scenario_context,
        context_tokens=context_tokens,
        obfuscate=streaming and wants_obfuscation(body),
    )

    def on_fault(_kind: str) -> None:
        state.stats.incr("faults_injected")

    recorded: List[Dict[str, Any]] = []

    def record(outcome: Outcome) -> None:
        final, _ = finish_response(state, body, scenario.final, outcome, scenario_context)
        recorded.append(final)

    if not streaming:
        outcome = Outcome.DISCONNECTED
        try:
            outcome, _ = await run_scenario(
                scenario,
                _NullSink(),
                stream_id=None,
                script=script,
                close_active=False,
                on_fault=on_fault,
            )
        finally:
            if not recorded:
                record(outcome)
        if outcome is Outcome.ERROR:
            state.stats.incr("errors_sent")
            raise ApiError(
                500,
                None,
                "The server had an error while processing your request. Sorry about that!",
                type="server_error",
            )
        return web.json_response(recorded[0], headers=service_headers(), dumps=dumps)

    headers = service_headers()
    headers["Content-Type"] = "text/event-stream; charset=utf-8"
    headers["Cache-Control"] = "no-cache"
    response = web.StreamResponse(status=200, headers=headers)
    await response.prepare(request)
    outcome = Outcome.DISCONNECTED
    sent = 0
    try:
        outcome, sent = await run_scenario(
            scenario,
            SseSink(response, nested=config.sse_error_shape == "nested"),
            stream_id=None,
            script=script,
            close_active=False,
            on_fault=on_fault,
            on_terminal=lambda: record(Outcome(scenario.status)),
        )
        if outcome is Outcome.ERROR:
            state.stats.incr("errors_sent")
        if config.sse_done and outcome is not Outcome.DISCONNECTED:
            await response.write(b"data: [DONE]\n\n")
        if outcome is not Outcome.DISCONNECTED:
            await response.write_eof()
    except ConnectionError:
        outcome = Outcome.DISCONNECTED
    finally:
        state.stats.incr("events_sent", sent)
        if not recorded:
            record(outcome)
    return response


async def delete_response(state: ServerState, request: web.Request) -> web.StreamResponse:
    """``DELETE /v1/responses/{id}``."""
    response_id = request.match_info["response_id"]
    if not state.store_delete(response_id):
        raise response_not_found(response_id)
    return web.json_response(
        {"id": response_id, "object": "response", "deleted": True},
        headers=service_headers(),
    )


async def cancel_response(state: ServerState, request: web.Request) -> web.StreamResponse:
    """``POST /v1/responses/{id}/cancel``: 404 unknown; 400 since nothing runs in background."""
    response_id = request.match_info["response_id"]
    if state.store_get(response_id) is None:
        raise response_not_found(response_id)
    raise ApiError(
        400,
        None,
        "Only responses created with background=true can be cancelled.",
        param=None,
    )


def add_routes(
    app: web.Application,
    state: ServerState,
    websocket: Callable[[ServerState, web.Request], Awaitable[web.StreamResponse]],
) -> None:
    """Register every route of the emulated API on ``app``."""

    def bind(
        func: Callable[[ServerState, web.Request], Awaitable[web.StreamResponse]],
    ) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await func(state, request)

        return handler

    from ._stored import compact_response, get_response, list_input_items  # needs this module

    app.router.add_get("/v1/responses", bind(websocket), allow_head=False)
    app.router.add_post("/v1/responses", bind(create_response))
    app.router.add_post("/v1/responses/compact", bind(compact_response))
    app.router.add_get("/v1/responses/{response_id}", bind(get_response), allow_head=False)
    app.router.add_get(
        "/v1/responses/{response_id}/input_items", bind(list_input_items), allow_head=False
    )
    app.router.add_delete("/v1/responses/{response_id}", bind(delete_response))
    app.router.add_post("/v1/responses/{response_id}/cancel", bind(cancel_response))
