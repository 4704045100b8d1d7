"""The session on a scripted fake transport: the attempt loop and the engine, no sockets.

Each test plugs :class:`tests.fake_transport.FakeServer` into a real
:class:`~openai_ws.Session` through its transport seam and scripts what the
"server" sends; the session's own reader thread runs as in production.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest
from fake_transport import (
    FakeHTTP,
    FakeServer,
    FakeTransport,
    answer,
    echo_script,
    error_event,
    options,
)

from openai_ws import (
    ConnectionClosedError,
    RateLimitError,
    ReplayUnsafeError,
    ResponseCompleted,
    ResponseOutputTextDelta,
    SessionClosedError,
)
from openai_ws._transports.ws import Binary
from openai_ws.errors import ConnectError
from openai_ws.session import Session


@pytest.fixture
def server() -> FakeServer:
    return FakeServer(echo_script)


@pytest.fixture
def session(server: FakeServer) -> Iterator[Session]:
    with Session(options(), transport=server.factory) as s:
        yield s


def test_send_returns_the_scripted_answer(server: FakeServer, session: Session) -> None:
    """send() writes one response.create with a lane and returns the typed response."""
    result = session.send(model="m", input="hello")
    assert result.output_text == "hello"
    assert server.sent[0]["type"] == "response.create"
    assert server.sent[0]["input"] == "hello"
    assert server.sent[0]["stream_id"].startswith("ows-")
    assert server.connect_attempts == 1


def test_send_rebuilds_output_from_finished_items() -> None:
    """A terminal response without output is rebuilt from response.output_item.done events."""

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        transport.push(*answer("resp_1", "built", frame.get("stream_id"), omit_output=True))

    server = FakeServer(script)
    with Session(options(), transport=server.factory) as session:
        assert session.send(model="m", input="x").output_text == "built"


def test_stream_yields_typed_events_in_order(session: Session) -> None:
    """stream() yields every event of the request, typed, ending with the terminal one."""
    with session.stream(model="m", input="abc") as events:
        kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "ResponseCreated",
        "ResponseOutputTextDelta",
        "ResponseOutputItemDone",
        "ResponseCompleted",
    ]


def test_interleaved_lanes_reach_their_own_requests() -> None:
    """Two requests on two lanes, answered interleaved in one batch, each get their own text."""
    held: List[Dict[str, Any]] = []
    both = threading.Event()

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        held.append(frame)
        if len(held) == 2:
            a = answer("resp_a", str(held[0]["input"]), held[0]["stream_id"])
            b = answer("resp_b", str(held[1]["input"]), held[1]["stream_id"])
            mixed = [event for pair in zip(b, a) for event in pair]
            transport.push(*mixed)
            both.set()

    server = FakeServer(script)
    with Session(options(), transport=server.factory) as session:
        results: Dict[str, str] = {}

        def ask(text: str) -> None:
            results[text] = session.send(model="m", input=text).output_text

        threads = [threading.Thread(target=ask, args=(t,)) for t in ("first", "second")]
        for thread in threads:
            thread.start()
            time.sleep(0.05)  # frames leave in this order
        for thread in threads:
            thread.join(5)
    assert both.is_set()
    assert results == {"first": "first", "second": "second"}
    assert held[0]["stream_id"] != held[1]["stream_id"]


def test_abnormal_close_before_any_event_replays_on_a_new_socket() -> None:
    """A socket dropped (no close frame) before any event is replaced; the request goes again."""

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        if len(transport.server.transports) == 1:
            transport.close_with(None)
        else:
            echo_script(transport, frame)

    server = FakeServer(script)
    with Session(options(), transport=server.factory) as session:
        assert session.send(model="m", input="again").output_text == "again"
        stats = session.stats
    assert len(server.transports) == 2
    assert stats.replays == 1 and stats.reconnects == 1


def test_silent_close_completes_over_http_and_remembers_the_shape() -> None:
    """A 1000 close before any event sends the request over HTTP, then routes its shape there."""

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        transport.close_with(1000)

    server = FakeServer(script)
    http = FakeHTTP()
    with Session(options(), http=lambda: http, transport=server.factory) as session:  # type: ignore[arg-type,return-value]
        first = session.send(model="m", input="q", temperature=0.7)
        assert first.output_text == "http:q"
        sent_on_socket = len(server.sent)
        second = session.send(model="m", input="r", temperature=0.3)
        assert second.output_text == "http:r"
        assert len(server.sent) == sent_on_socket  # went straight to HTTP
        assert session.stats.http_fallbacks == 2
    assert "stream_id" not in http.bodies[0]
    assert http.bodies[0]["temperature"] == 0.7  # never edited


def test_stream_that_received_events_is_not_replayed() -> None:
    """A socket lost after events reached a stream raises ReplayUnsafeError with the count."""

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        events = answer("resp_1", "partial", frame.get("stream_id"))
        transport.push(*events[:2])
        transport.close_with(1011)

    server = FakeServer(script)
    with Session(options(), transport=server.factory) as session:
        stream = session.stream(model="m", input="x")
        seen = []
        with pytest.raises(ReplayUnsafeError) as info:
            for event in stream:
                seen.append(event)
    assert [type(e) for e in seen][1] is ResponseOutputTextDelta
    assert info.value.events_received == 2
    assert len(server.sent) == 1


def test_rate_limit_error_is_retried_after_the_hint() -> None:
    """An error event 429 before any output is retried once, after the server's hint."""

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        if len(transport.server.sent) == 1:
            transport.push(
                error_event(
                    429,
                    "rate_limit_exceeded",
                    "Please try again in 20ms.",
                    kind="rate_limit_error",
                    lane=frame.get("stream_id"),
                )
            )
        else:
            echo_script(transport, frame)

    server = FakeServer(script)
    with Session(options(), transport=server.factory) as session:
        assert session.send(model="m", input="ok").output_text == "ok"
        assert session.stats.retries == 1
    assert len(server.transports) == 1  # same socket


def test_rate_limit_error_out_of_retries_raises() -> None:
    """With max_retries=0 a 429 error event raises RateLimitError at once."""

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        transport.push(
            error_event(
                429,
                "rate_limit_exceeded",
                "slow",
                kind="rate_limit_error",
                lane=frame.get("stream_id"),
            )
        )

    server = FakeServer(script)
    with Session(options(max_retries=0), transport=server.factory) as session:
        with pytest.raises(RateLimitError):
            session.send(model="m", input="x")
        assert session.stats.retries == 0


def test_lane_rejection_replays_on_the_default_lane() -> None:
    """A server refusing stream_id makes the request go again without one."""

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        if "stream_id" in frame:
            transport.push(
                error_event(
                    400,
                    "unknown_parameter",
                    "Unknown parameter: 'stream_id'.",
                    kind="invalid_request_error",
                    param="stream_id",
                )
            )
        else:
            echo_script(transport, frame)

    server = FakeServer(script)
    with Session(options(), transport=server.factory) as session:
        assert session.send(model="m", input="plain").output_text == "plain"
        assert session.send(model="m", input="later").output_text == "later"
    assert "stream_id" in server.sent[0]
    assert all("stream_id" not in frame for frame in server.sent[1:])


def test_replays_are_bounded() -> None:
    """A socket that always drops gives up after max_replays with ConnectionClosedError."""
    server = FakeServer(lambda transport, frame: transport.close_with(1011))
    session = Session(options(max_replays=2), transport=server.factory)
    with session, pytest.raises(ConnectionClosedError, match="3 times"):
        session.send(model="m", input="x")
    assert len(server.sent) == 3


def test_connection_limit_error_replays_on_a_new_socket() -> None:
    """websocket_connection_limit_reached retires the socket and the request goes on a new one."""

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        if len(transport.server.transports) == 1:
            transport.push(
                error_event(
                    400,
                    "websocket_connection_limit_reached",
                    "Responses websocket connection limit reached (60 minutes).",
                    kind="invalid_request_error",
                    lane=frame.get("stream_id"),
                )
            )
            transport.close_with(1000)
        else:
            echo_script(transport, frame)

    server = FakeServer(script)
    with Session(options(), transport=server.factory) as session:
        assert session.send(model="m", input="fresh").output_text == "fresh"
        assert session.stats.http_fallbacks == 0  # an announced close is not silent
    assert len(server.transports) == 2


def test_close_fails_a_waiting_request_and_sends_a_close_frame() -> None:
    """close() from another thread ends a waiting send() with SessionClosedError."""
    server = FakeServer(lambda transport, frame: None)  # never answers
    session = Session(options(request_timeout=10.0), transport=server.factory)
    errors: List[BaseException] = []

    def wait() -> None:
        try:
            session.send(model="m", input="x")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    while not server.sent:
        time.sleep(0.005)
    session.close()
    thread.join(5)
    assert len(errors) == 1 and isinstance(errors[0], SessionClosedError)
    assert server.last.closes_sent == [1000]
    assert server.last.released.wait(1)


def test_bad_frames_are_counted_and_skipped(session: Session, server: FakeServer) -> None:
    """Non-JSON, non-event and binary frames are counted; the request still completes."""

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        transport.push("not json", "[1, 2]")
        transport.push_frames(Binary(b"\x00"))
        echo_script(transport, frame)

    server.script = script
    assert session.send(model="m", input="fine").output_text == "fine"
    stats = session.stats
    assert stats.malformed_frames == 2 and stats.binary_frames == 1


def test_an_event_nobody_owns_is_counted(session: Session, server: FakeServer) -> None:
    """An event on a lane with no request in flight is dropped and counted."""
    session.send(model="m", input="x")
    server.last.push({"type": "response.output_text.delta", "delta": "x", "stream_id": "nobody"})
    deadline = time.monotonic() + 2
    while session.stats.unroutable_events == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert session.stats.unroutable_events == 1


def test_refused_upgrade_switches_to_http() -> None:
    """A 426 on the upgrade makes the session answer over HTTP."""
    server = FakeServer(echo_script)
    server.refuse_next.append(ConnectError("upgrade refused", status=426))
    http = FakeHTTP()
    with Session(options(), http=lambda: http, transport=server.factory) as session:  # type: ignore[arg-type,return-value]
        assert session.send(model="m", input="q").output_text == "http:q"
    assert server.transports and not server.sent


def test_stream_over_http_fallback_yields_typed_events() -> None:
    """A stream completed over HTTP yields the same typed events."""
    server = FakeServer(lambda transport, frame: transport.close_with(1000))
    http = FakeHTTP()
    with Session(options(), http=lambda: http, transport=server.factory) as session:  # type: ignore[arg-type,return-value]
        events = list(session.stream(model="m", input="s"))
    assert isinstance(events[-1], ResponseCompleted)
    assert events[-1].response.output_text == "http:s"


def _never(transport: FakeTransport, frame: Dict[str, Any]) -> Optional[None]:
    return None


def test_request_timeout_abandons_the_request() -> None:
    """A request past its timeout raises and its late events reach nobody."""
    server = FakeServer(_never)
    with Session(options(), transport=server.factory) as session:
        from openai_ws import RequestTimeoutError

        with pytest.raises(RequestTimeoutError):
            session.send(model="m", input="x", timeout=0.1)
        lane = server.sent[0]["stream_id"]
        server.last.push(*answer("resp_late", "late", lane))
        server.script = echo_script
        assert session.send(model="m", input="next").output_text == "next"
        deadline = time.monotonic() + 2
        while session.stats.dropped_events < 4 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert session.stats.dropped_events == 4
