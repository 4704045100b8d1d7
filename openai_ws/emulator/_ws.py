"""The WebSocket side of the emulator: ``GET /v1/responses`` upgraded, one connection each.

A ``WsConnection`` reads client frames, answers request errors at once, puts
valid ``response.create`` events on their lane (``_lanes``), and runs each
started response as its own task that writes frames straight to the socket.
It owns the connection-local continuation cache (with each cached response's
context hash for the proof-of-context digest), the connection's steering state
(``_steer``: a ``response.steer`` may end the running response ``steered`` and
start its successor in the same task, on the same lane) and the
connection-level quirks (age limit, decimal sampling close, size limit,
scripted closes). It must never block the event loop, never send a frame for a
request that belongs to another lane, and never outlive its socket: when the
reader stops, every task of the connection is cancelled or awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set

from aiohttp import WSMessage, WSMsgType, web

from ._cache import ConnectionCache
from ._context import EMPTY_CONTEXT, Context, fold, request_items
from ._errors import (
    ApiError,
    background_not_supported,
    connection_limit_reached,
    http_error_body,
    invalid_json,
    invalid_stream_id,
    invalid_type,
    invalid_value,
    missing_parameter,
    previous_response_not_found,
    scripted_error,
    stream_limit_reached,
    unknown_parameter,
    upgrade_refused,
    ws_error_event,
)
from ._lanes import LaneScheduler, is_valid_stream_id
from ._responses import context_tokens_of, finish_response, start_response, stored_parent
from ._runner import Outcome, dumps, run_scenario
from ._scenario import Scenario
from ._script import Script, parse_script
from ._state import ServerState
from ._steer import (
    SteerBook,
    SteerControl,
    pending_event,
    prepend_input,
    steered_final,
    successor_body,
    successor_failed_event,
    successor_script,
)
from ._validate import has_decimal_sampling, validate_create

__all__ = ["WsConnection", "websocket_handler"]

log = logging.getLogger(__name__)

_CLOSE_WAIT = 2.0  # seconds to wait for the peer's close frame
_CLIENT_EVENTS = ("response.create", "response.steer")
_END_TYPES = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR})


@dataclass
class _Job:
    """One accepted ``response.create`` waiting for, or holding, its lane."""

    body: Dict[str, Any]
    lane: Optional[str]
    script: Script


@dataclass
class _Turn:
    """One started response of a job: the client's, or a steered response's successor."""

    body: Dict[str, Any]
    lane: Optional[str]
    script: Script
    scenario: Scenario
    context: Context
    close_active: bool
    evict_parent: Optional[str]
    """The parent to evict from the lane's cache if this response fails (same lane)."""
    final: Optional[Dict[str, Any]] = None
    after: Context = EMPTY_CONTEXT


_PACK_SHORT = struct.Struct("!BB").pack
_PACK_MEDIUM = struct.Struct("!BBH").pack
_PACK_LONG = struct.Struct("!BBQ").pack
_HIGH_WATER = 1024 * 1024  # bytes queued in the transport before a batch waits


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented, uncompressed server TEXT frame (RFC 6455 5.2)."""
    size = len(payload)
    if size < 126:
        return _PACK_SHORT(0x81, size) + payload
    if size < 65536:
        return _PACK_MEDIUM(0x81, 126, size) + payload
    return _PACK_LONG(0x81, 127, size) + payload


class _WsSink:
    """``Sink`` writing the events of one lane to a WebSocket.

    A batch of events is written as one transport write of ready-made frames
    (plus the last event through aiohttp, which keeps its flow control) when
    permessage-deflate was not negotiated; with compression every event goes
    through aiohttp. Either way the frames of a batch are contiguous on the wire.
    """

    supports_close = True

    def __init__(self, conn: WsConnection, stream_id: Optional[str]) -> None:
        self._conn = conn
        self._ws = conn.ws
        self._stream_id = stream_id

    async def send_events(self, events: List[Dict[str, Any]]) -> None:
        ws = self._ws
        self._check_open()
        last = len(events) - 1
        if last > 0:
            transport = self._conn.raw_transport
            if transport is not None:
                if ws.closed or transport.is_closing():
                    raise ConnectionResetError("the WebSocket is closed")
                transport.write(
                    b"".join([text_frame(dumps(event).encode("utf-8")) for event in events[:last]])
                )
            else:
                for event in events[:last]:
                    await ws.send_str(dumps(event))
        await ws.send_str(dumps(events[last]))
        transport = self._conn.raw_transport
        if transport is not None and transport.get_write_buffer_size() > _HIGH_WATER:
            await self._conn.wait_writable()

    async def send_error(self, error: ApiError, sequence_number: int) -> None:
        await self._conn.send_error(error, self._stream_id, sequence_number)

    async def send_malformed(self) -> None:
        self._check_open()
        await self._ws.send_str('{"type": "response.output_text.delta", "delta": "unterminated')

    async def send_binary(self) -> None:
        self._check_open()
        await self._ws.send_bytes(b"\x00\x01emulator binary frame\xff")

    def _check_open(self) -> None:
        if self._conn.closing:
            # A close was decided (perhaps by another lane): nothing goes out after it.
            raise ConnectionResetError("the WebSocket is closing")

    async def close(self, code: int) -> None:
        await self._conn.close(code)


class WsConnection:
    """One accepted WebSocket and everything that lives as long as it does."""

    def __init__(self, state: ServerState, request: web.Request, ws: web.WebSocketResponse) -> None:
        config = state.config
        self.state = state
        self.request = request
        self.ws = ws
        self.opened_at = time.monotonic()
        self.stream_id_mode = config.stream_id_mode
        self.lanes: LaneScheduler[_Job] = LaneScheduler(
            max_active=config.max_active_responses, max_names=config.max_stream_ids
        )
        self.cache = ConnectionCache()
        self.steering = SteerBook()
        self.tasks: Set[asyncio.Task[None]] = set()
        self.closing = False
        self._reader: Optional[asyncio.Task[Any]] = None
        self._close_requested = asyncio.Event()
        self._close_code: Optional[int] = None
        # Batched frames are written straight to the transport only when no
        # compression was negotiated (a deflate stream must go through aiohttp).
        self.raw_transport: Optional[asyncio.Transport] = None
        transport = request.transport
        if not ws.compress and isinstance(transport, asyncio.Transport):
            self.raw_transport = transport

    async def wait_writable(self) -> None:
        """Wait while the peer reads slower than we write (bounded buffering)."""
        transport = self.raw_transport
        while (
            transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() > _HIGH_WATER // 4
        ):
            await asyncio.sleep(0.005)

    # -- outbound ---------------------------------------------------------------

    async def send_json(self, payload: Dict[str, Any]) -> bool:
        """Send one JSON frame; False when the socket is closing or gone."""
        if self.closing:
            return False
        try:
            await self.ws.send_str(dumps(payload))
        except ConnectionError:
            return False
        return True

    async def send_error(
        self,
        error: ApiError,
        stream_id: Optional[str],
        sequence_number: Optional[int] = None,
    ) -> bool:
        """Send an ``error`` event in the WebSocket envelope."""
        self.state.stats.incr("errors_sent")
        return await self.send_json(
            ws_error_event(error, stream_id=stream_id, sequence_number=sequence_number)
        )

    async def close(self, code: int) -> None:
        """Close the socket with ``code`` and an empty reason; 1006 drops TCP instead.

        The close handshake always runs on the reader task: it sends the close
        frame, then keeps reading (and discarding) until the peer's close frame
        or a timeout, and only then closes TCP, so that data the peer sent in
        the meantime cannot turn into a reset that loses our close frame. Other
        tasks only ask the reader to do it and return at once.
        """
        if self.closing:
            return
        self.closing = True
        self.state.stats.record_close(code)
        if code == 1006:
            transport = self.request.transport
            if transport is not None:
                transport.abort()
            self._close_requested.set()
            return
        if asyncio.current_task() is self._reader:
            await self._close_handshake(code)
        else:
            self._close_code = code
            self._close_requested.set()

    async def _close_handshake(self, code: int) -> None:
        with contextlib.suppress(ConnectionError):  # the peer may vanish mid-close
            await self.ws.close(code=code, message=b"")

    async def _next_message(self, close_wait: asyncio.Task[Any]) -> Optional[WSMessage]:
        """The next inbound message, or None once a close was requested (and done)."""
        if self._close_requested.is_set() or self.ws.closed:
            return None
        receive = asyncio.get_running_loop().create_task(self.ws.receive())
        await asyncio.wait({receive, close_wait}, return_when=asyncio.FIRST_COMPLETED)
        if not receive.done():
            receive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receive
            return None
        return receive.result()

    # -- inbound ----------------------------------------------------------------

    async def serve(self) -> None:
        """Read frames until the socket closes, then stop every task of this connection."""
        self._reader = asyncio.current_task()
        close_wait = asyncio.get_running_loop().create_task(self._close_requested.wait())
        try:
            while True:
                message = await self._next_message(close_wait)
                if message is None:
                    if self._close_code is not None and not self.ws.closed:
                        await self._close_handshake(self._close_code)
                    break
                if message.type is WSMsgType.TEXT:
                    await self._on_frame(message.data)
                elif message.type is WSMsgType.BINARY:
                    try:
                        text = message.data.decode("utf-8")
                    except UnicodeDecodeError:
                        self.state.stats.incr("ws_messages")
                        await self.send_error(invalid_json("binary frame is not UTF-8"), None)
                        continue
                    await self._on_frame(text)
                elif message.type in _END_TYPES:
                    break
            if self.ws.close_code == 1009 and not self.closing:
                self.state.stats.record_close(1009)
        finally:
            close_wait.cancel()
            await self._shutdown()

    async def _shutdown(self) -> None:
        self.closing = True
        self.lanes.drain()
        current = asyncio.current_task()
        pending = [task for task in self.tasks if task is not current]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self.cache.clear()
        self.steering.clear()

    async def _on_frame(self, text: str) -> None:
        self.state.stats.incr("ws_messages")
        try:
            payload = json.loads(text)
        except ValueError as exc:
            await self.send_error(invalid_json(str(exc)), None)
            return
        if not isinstance(payload, dict):
            await self.send_error(invalid_type("(root)", "an object", payload), None)
            return
        event_type = payload.get("type")
        if event_type is None:
            await self.send_error(missing_parameter("type"), None)
            return
        if event_type == "response.create":
            await self._on_create(payload)
        elif event_type == "response.steer":
            await self._on_steer(payload)
        else:
            shown = event_type if isinstance(event_type, str) else json.dumps(event_type)
            await self.send_error(
                invalid_value(
                    "type",
                    f"Invalid value: '{shown}'. Supported values are: "
                    + ", ".join(f"'{name}'" for name in _CLIENT_EVENTS)
                    + ".",
                ),
                None,
            )

    async def _on_steer(self, payload: Dict[str, Any]) -> None:
        """Answer ``response.steer`` (docs/protocol.md sections 2.4 and 3.5; ``_steer``)."""
        config = self.state.config
        verdict = self.steering.decide(
            payload, models=config.steering_models, limit=config.max_pending_steers
        )
        await self._send_steer_events(verdict.control, verdict.events)

    async def _send_steer_events(
        self, control: Optional[SteerControl], events: List[Dict[str, Any]]
    ) -> int:
        """Send events numbered in ``control``'s response (0 without one); return the count.

        Under the control's lock, so that they never overtake events the
        response's run has numbered but not yet written; tagged with the target's
        ``stream_id`` (never another lane's).
        """
        sent = 0
        if control is None:
            for event in events:
                event["sequence_number"] = 0
                if not await self.send_json(event):
                    break
                sent += 1
            return sent
        async with control.lock:
            for event in events:
                event["sequence_number"] = control.next_sequence()
                if control.stream_id is not None:
                    event["stream_id"] = control.stream_id
                if not await self.send_json(event):
                    break
                sent += 1
        return sent

    async def _on_create(self, payload: Dict[str, Any]) -> None:
        state = self.state
        config = state.config
        state.stats.incr("ws_creates")
        if time.monotonic() - self.opened_at >= config.max_connection_age:
            await self.send_error(connection_limit_reached(), None)
            if config.close_on_connection_limit:
                await self.close(config.connection_limit_close_code)
            return
        if config.decimal_sampling_quirk and has_decimal_sampling(
            payload, config.decimal_sampling_rule
        ):
            log.debug("decimal sampling quirk: closing with 1000 and no event")
            await self.close(1000)
            return
        body = {key: value for key, value in payload.items() if key != "type"}
        lane: Optional[str] = None
        if "stream_id" in body:
            raw_stream_id = body.pop("stream_id")
            if self.stream_id_mode == "reject":
                await self.send_error(unknown_parameter("stream_id"), None)
                return
            if self.stream_id_mode == "support" and raw_stream_id is not None:
                if not is_valid_stream_id(raw_stream_id):
                    await self.send_error(invalid_stream_id(), None)
                    return
                lane = str(raw_stream_id)
                if not self.lanes.admit_name(lane):
                    await self.send_error(stream_limit_reached(config.max_stream_ids), lane)
                    return
        try:
            validate_create(body, websocket=True, strict=config.strict_parameters)
            if body.get("background") is True and config.reject_background:
                raise background_not_supported()
            script = parse_script(body.get("metadata"))
        except ApiError as error:
            await self.send_error(error, lane)
            return
        job = _Job(body=body, lane=lane, script=script)
        for ready in self.lanes.submit(lane, job):
            self._start(ready)

    # -- running responses ------------------------------------------------------

    def _start(self, job: _Job) -> None:
        if self.closing:
            return
        task = asyncio.get_running_loop().create_task(self._run_job(job))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run_job(self, job: _Job) -> None:
        try:
            await self._execute(job)
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - a bug must not kill the connection silently
            log.exception("emulator: response task failed")
            await self.close(1011)
        finally:
            for ready in self.lanes.finish(job.lane):
                self._start(ready)

    def _peek_context(self, parent_id: Any, body: Dict[str, Any]) -> Optional[Context]:
        """The request's whole context if its parent is at hand (no stats, no delay)."""
        parent_context: Optional[Context] = EMPTY_CONTEXT
        if parent_id is not None:
            parent_context = self.cache.context_of(str(parent_id))
            if parent_context is None and self.state.store_get(str(parent_id)) is not None:
                parent_context = self.state.stored_context(str(parent_id))
        if parent_context is None:
            return None
        return fold(parent_context, request_items(body))

    async def _execute(self, job: _Job) -> None:
        state = self.state
        body, lane, script = job.body, job.lane, job.script
        parent_id = body.get("previous_response_id")
        same_lane = parent_id is not None and self.cache.latest_id(lane) == parent_id
        attempt = state.next_attempt(body, self._peek_context(parent_id, body))
        close_active = script.close_applies(attempt)
        if close_active and script.close_after == 0 and script.close_code is not None:
            state.stats.incr("faults_injected")
            await self.close(script.close_code)
            return
        if script.error_applies(attempt) and script.error is not None:
            state.stats.incr("faults_injected")
            if same_lane:
                self.cache.evict(lane, str(parent_id))
            model = str(body.get("model"))
            await self.send_error(
                scripted_error(script.error, retry_after=script.retry_after, model=model), lane
            )
            return
        context_tokens = 0
        cached_tokens = 0
        parent_context: Optional[Context] = EMPTY_CONTEXT
        if parent_id is not None:
            found = self.cache.find(str(parent_id))
            if found is not None:
                parent: Optional[Dict[str, Any]] = found[1]
                parent_context = self.cache.context_of(str(parent_id))
                state.stats.incr("cache_hits")
            else:
                parent = await stored_parent(state, str(parent_id))
                if parent is None:
                    await self.send_error(previous_response_not_found(str(parent_id)), lane)
                    return
                parent_context = state.stored_context(str(parent_id))
            context_tokens = context_tokens_of(parent)
            if found is not None:
                cached_tokens = context_tokens
        if parent_id is not None:
            queued = self.steering.take_queued(str(parent_id))
            if queued:  # steering input waiting for this continuation goes first
                body = prepend_input(body, queued)
        context = fold(parent_context or EMPTY_CONTEXT, request_items(body))
        scenario = start_response(
            state,
            body,
            script,
            context=context,
            context_tokens=context_tokens,
            cached_tokens=cached_tokens,
            token_interval=_paced_interval(state, body),
        )
        turn: Optional[_Turn] = _Turn(
            body=body,
            lane=lane,
            script=script,
            scenario=scenario,
            context=context,
            close_active=close_active,
            evict_parent=str(parent_id) if same_lane else None,
        )
        while turn is not None:
            turn = await self._run_turn(turn)

    async def _run_turn(self, turn: _Turn) -> Optional[_Turn]:
        """Run one response; return its successor when steering asks for one."""
        state = self.state
        scenario, lane = turn.scenario, turn.lane
        control = SteerControl(scenario, lane, turn.body, turn.script)
        self.steering.begin(control)
        recorded = False

        def record(outcome: Outcome, final: Optional[Dict[str, Any]] = None) -> None:
            nonlocal recorded
            recorded = True
            turn.final, turn.after = finish_response(
                state, turn.body, final or scenario.final, outcome, turn.context
            )
            if outcome in (Outcome.COMPLETED, Outcome.INCOMPLETE):
                self.cache.remember(lane, turn.final, turn.after)
            elif outcome in (Outcome.FAILED, Outcome.ERROR) and turn.evict_parent is not None:
                self.cache.evict(lane, turn.evict_parent)

        def terminal() -> None:
            record(Outcome(scenario.status))
            self.steering.terminal(control, scenario.final)

        outcome = Outcome.DISCONNECTED
        sent = 0
        try:
            outcome, sent = await run_scenario(
                scenario,
                _WsSink(self, lane),
                stream_id=lane,
                script=turn.script,
                close_active=turn.close_active,
                on_fault=lambda _kind: state.stats.incr("faults_injected"),
                on_terminal=terminal,
                control=control,
            )
            control.cut()
            if outcome is Outcome.STOPPED and control.stopped_at is not None:
                final = steered_final(scenario, control.stopped_at, int(time.time()))
                record(Outcome.INCOMPLETE, final)
                event = {"type": "response.incomplete", "response": turn.final}
                sent += await self._send_steer_events(control, [event])
            return await self._after_turn(turn, control, outcome)
        finally:
            state.stats.incr("events_sent", sent)
            if not recorded:
                record(outcome)
            self.steering.end(control)

    async def _after_turn(
        self, turn: _Turn, control: SteerControl, outcome: Outcome
    ) -> Optional[_Turn]:
        """After the terminal event: pending events, failed steers, or the successor's turn."""
        if outcome in (Outcome.CLOSED, Outcome.DISCONNECTED) or self.closing:
            return None
        if control.to_pend:
            pend = [pending_event(steer, control.required) for steer in control.to_pend]
            await self._send_steer_events(control, pend)
        steers = control.take_accepted()
        if not steers:
            return None
        if control.fail_successor or outcome in (Outcome.FAILED, Outcome.ERROR):
            failed = [successor_failed_event(steer) for steer in steers]
            await self._send_steer_events(control, failed)
            return None
        parent = turn.final or turn.scenario.final
        body = successor_body(turn.body, turn.scenario.response_id, steers)
        script = successor_script(turn.script)
        context = fold(turn.after, request_items(body))
        tokens = context_tokens_of(parent)  # the parent is in this connection's cache
        scenario = start_response(
            self.state,
            body,
            script,
            context=context,
            context_tokens=tokens,
            cached_tokens=tokens,
            token_interval=_paced_interval(self.state, body),
        )
        return _Turn(
            body=body,
            lane=turn.lane,
            script=script,
            scenario=scenario,
            context=context,
            close_active=False,
            evict_parent=turn.scenario.response_id,
        )


def _paced_interval(state: ServerState, body: Dict[str, Any]) -> Optional[float]:
    """The token interval of a steerable model's response when none is configured
    (``EmulatorConfig.steering_token_interval``), else ``None`` (the configured one)."""
    config = state.config
    model = body.get("model")
    if config.token_interval or not isinstance(model, str):
        return None
    if any(model.startswith(prefix) for prefix in config.steering_models):
        return config.steering_token_interval
    return None


async def websocket_handler(state: ServerState, request: web.Request) -> web.StreamResponse:
    """Handle ``GET /v1/responses``: refuse, or upgrade and serve a ``WsConnection``."""
    config = state.config
    if config.upgrade_status is not None:
        state.stats.incr("ws_rejected")
        error = upgrade_refused(config.upgrade_status)
        return web.json_response(http_error_body(error), status=config.upgrade_status)
    ws = web.WebSocketResponse(
        timeout=_CLOSE_WAIT,
        max_msg_size=config.max_message_size,
        heartbeat=config.server_ping_interval,
        compress=True,
    )
    if not ws.can_prepare(request):
        error = ApiError(
            400,
            None,
            "GET /v1/responses expects a WebSocket upgrade; use POST to create a response.",
        )
        state.stats.incr("errors_sent")
        return web.json_response(http_error_body(error), status=400)
    await ws.prepare(request)
    state.stats.incr("ws_connections")
    conn = WsConnection(state, request, ws)
    state.connections.add(conn)
    try:
        await conn.serve()
    finally:
        state.connections.discard(conn)
    return ws


def open_connections(state: ServerState) -> List[WsConnection]:
    """The connections currently open (loop thread only)."""
    return [conn for conn in state.connections if isinstance(conn, WsConnection)]
