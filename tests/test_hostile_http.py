"""Hostile peers on the HTTP path (issue 10 "Time" and "Memory", issue 12 item 10).

``timeout`` is a total deadline for ``create``, ``stream`` and the session's
HTTP fallback, also while headers or a body trickle, while only SSE comments
come, and while events keep coming slower than the deadline. Lines, events and
bodies are capped (small caps here, so that the tests stay fast) and a
violation is a typed ``ProtocolError``; so is JSON nested 100,000 deep. Every
peer is a :class:`servers.RawPeer` on 127.0.0.1; each call runs in a helper
thread so that a hang fails the test instead of blocking it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Callable, Tuple

import pytest
from servers import RawPeer

from openai_ws import OpenAI, ResponseCreateRequest
from openai_ws._transports.http import HTTPTransport
from openai_ws.errors import (
    APIError,
    ConnectError,
    InternalServerError,
    ProtocolError,
    RequestTimeoutError,
)

KEY = "sk-hostile-http-0123456789"
BODY = {"model": "m", "input": "hi"}
OK_JSON = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
OK_SSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
CREATED = {
    "type": "response.created",
    "sequence_number": 0,
    "response": {"id": "resp_1", "object": "response", "status": "in_progress", "output": []},
}
DELTA = {
    "type": "response.output_text.delta",
    "item_id": "msg_1",
    "output_index": 0,
    "content_index": 0,
    "delta": "x",
    "sequence_number": 1,
}


def sse(event: Any) -> bytes:
    return f"data: {json.dumps(event)}\n\n".encode()


def bounded(call: Callable[[], Any], limit: float, peer: RawPeer) -> Tuple[float, Any]:
    """Run ``call`` in a thread; return (seconds, result or exception); fail after ``limit`` s."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # the test inspects it
            outcome.append(exc)

    start = time.monotonic()
    thread = threading.Thread(target=run, name="bounded-call", daemon=True)
    thread.start()
    thread.join(limit)
    elapsed = time.monotonic() - start
    if thread.is_alive():
        peer.__exit__(None, None, None)  # ends the call
        thread.join(10)
        pytest.fail(f"still running after {limit:.1f}s")
    return elapsed, outcome[0]


def transport(peer: RawPeer, **options: Any) -> HTTPTransport:
    settings = {"timeout": 1.0, "connect_timeout": 2.0, "max_retries": 0}
    settings.update(options)
    return HTTPTransport(peer.url, headers={"Authorization": f"Bearer {KEY}"}, **settings)


def run_create(peer: RawPeer, limit: float = 4.0, **options: Any) -> Tuple[float, Any]:
    http = transport(peer, **options)
    try:
        return bounded(lambda: http.create(BODY), limit, peer)
    finally:
        http.close()


def run_stream(peer: RawPeer, limit: float = 4.0, **options: Any) -> Tuple[float, Any]:
    http = transport(peer, **options)
    got: list = []

    def call() -> Any:
        for event in http.stream(BODY):
            got.append(event)
        return got

    try:
        elapsed, outcome = bounded(call, limit, peer)
    finally:
        http.close()
    return elapsed, (outcome, got)


# -- time: timeout is a total deadline ------------------------------------------------


def test_create_with_trickled_headers_ends_at_the_timeout() -> None:
    """Response headers trickled one byte every 0.2 s end create(timeout=1) with a timeout."""
    with RawPeer(RawPeer.trickle(b"", 0.2, then=OK_JSON + b"X-Pad: " + b"a" * 500)) as peer:
        elapsed, error = run_create(peer)
    assert isinstance(error, RequestTimeoutError), error
    assert elapsed < 3.0


def test_create_with_trickled_body_ends_at_the_timeout() -> None:
    """A JSON body trickled one byte every 0.2 s ends create(timeout=1) with a timeout."""
    head = OK_JSON + b"Content-Length: 5000\r\n\r\n"
    with RawPeer(RawPeer.trickle(head, 0.2, then=b'{"id": "' + b"r" * 4990)) as peer:
        elapsed, error = run_create(peer)
    assert isinstance(error, RequestTimeoutError), error
    assert elapsed < 3.0


def test_stream_with_trickled_headers_ends_at_the_timeout() -> None:
    """SSE headers trickled one byte every 0.2 s end stream(timeout=1) with a timeout."""
    with RawPeer(RawPeer.trickle(b"", 0.2, then=OK_SSE[:-2] + b"X-Pad: " + b"a" * 500)) as peer:
        elapsed, (error, _) = run_stream(peer)
    assert isinstance(error, RequestTimeoutError), error
    assert elapsed < 3.0


def test_stream_of_keepalive_comments_ends_at_the_timeout() -> None:
    """A stream that sends only SSE comments (every 0.2 s) ends at timeout=1."""
    with RawPeer(RawPeer.every(OK_SSE, b": keep-alive\n\n", 0.2)) as peer:
        elapsed, (error, got) = run_stream(peer)
    assert isinstance(error, RequestTimeoutError), error
    assert got == []
    assert elapsed < 3.0


def test_stream_of_slow_events_ends_at_the_timeout() -> None:
    """Events that keep coming every 0.3 s, never a terminal one, end stream(timeout=1)."""
    with RawPeer(RawPeer.every(OK_SSE + sse(CREATED), sse(DELTA), 0.3)) as peer:
        elapsed, (error, got) = run_stream(peer)
    assert isinstance(error, RequestTimeoutError), error
    assert 1 <= len(got) <= 6
    assert elapsed < 3.0


def test_fallback_with_trickled_answer_ends_at_the_timeout() -> None:
    """A session whose upgrade gets 426 and whose HTTP answer trickles ends send(timeout=1)."""
    refuse = RawPeer.send(
        b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    trickle = RawPeer.trickle(b"", 0.2, then=OK_JSON + b"X-Pad: " + b"a" * 500)
    with RawPeer(RawPeer.by_kind(refuse, trickle)) as peer:
        client = OpenAI(api_key=KEY, base_url=peer.url, max_retries=0, timeout=30.0)
        session = client.ws_session()
        try:
            request = ResponseCreateRequest(model="m", input="hi")
            elapsed, error = bounded(lambda: session.send(request, timeout=1.0), 4.0, peer)
        finally:
            session.close()
    assert isinstance(error, RequestTimeoutError), error
    assert elapsed < 3.0


def test_deadline_thread_is_gone_after_the_call() -> None:
    """The watchdog that enforces deadlines does not outlive the calls (no thread leak)."""
    with RawPeer(RawPeer.trickle(b"", 0.2, then=OK_JSON + b"X-Pad: " + b"a" * 500)) as peer:
        run_create(peer, timeout=0.3)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if not [t for t in threading.enumerate() if t.name == "openai_ws-http-deadlines"]:
            break
        time.sleep(0.02)
    assert not [t for t in threading.enumerate() if t.name == "openai_ws-http-deadlines"]


# -- memory: lines, events and bodies are capped -----------------------------------------


def test_sse_line_without_newline_is_capped() -> None:
    """A data line that never ends is a ProtocolError once it passes the event cap."""
    with RawPeer(RawPeer.every(OK_SSE + b"data: ", b"y" * 65536, 0.001)) as peer:
        _, (error, _) = run_stream(peer, timeout=10.0, max_event_size=256 * 1024)
    assert isinstance(error, ProtocolError), error
    assert "256 KiB" in str(error) or "262144" in str(error)


def test_sse_data_lines_without_blank_line_are_capped() -> None:
    """data: lines that never end their event are a ProtocolError once they pass the cap."""
    with RawPeer(RawPeer.every(OK_SSE, b"data: " + b"z" * 1000 + b"\n", 0.0005)) as peer:
        _, (error, _) = run_stream(peer, timeout=10.0, max_event_size=256 * 1024)
    assert isinstance(error, ProtocolError), error


def test_endless_json_body_is_capped() -> None:
    """A create() answer whose JSON body never ends is a ProtocolError at the body cap."""
    chunked = OK_JSON + b"Transfer-Encoding: chunked\r\n\r\n"
    piece = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    with RawPeer(RawPeer.every(chunked + b"1\r\n[\r\n", piece, 0.001)) as peer:
        _, error = run_create(peer, timeout=10.0, max_event_size=256 * 1024)
    assert isinstance(error, ProtocolError), error


@pytest.mark.parametrize("status", [500, 429])
def test_endless_error_body_is_read_only_in_part(status: int) -> None:
    """A 500 or 429 whose chunked body never ends raises its APIError after reading a little."""
    head = b"HTTP/1.1 %d Oops\r\nTransfer-Encoding: chunked\r\n\r\n" % status
    piece = b"%x\r\n%s\r\n" % (65536, b"<p>" * 21845 + b"x")
    with RawPeer(RawPeer.every(head, piece, 0.001)) as peer:
        elapsed, error = run_create(peer, timeout=20.0, limit=5.0)
    assert isinstance(error, APIError) and error.status == status, error
    assert len(error.message) <= 500
    assert elapsed < 4.0


def _deep(depth: int) -> bytes:
    return b'{"type": "response.created", "x": ' + b"[" * depth + b"]" * depth + b"}"


def test_deeply_nested_sse_data_is_protocol_error() -> None:
    """An SSE data payload nested 100,000 deep is a ProtocolError, not a RecursionError."""
    with RawPeer(RawPeer.send(OK_SSE + b"data: " + _deep(100_000) + b"\n\n")) as peer:
        _, (error, _) = run_stream(peer)
    assert isinstance(error, ProtocolError), error


def test_deeply_nested_json_answer_is_protocol_error() -> None:
    """A create() answer nested 100,000 deep is a ProtocolError, not a RecursionError."""
    body = _deep(100_000)
    answer = OK_JSON + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    with RawPeer(RawPeer.send(answer)) as peer:
        _, error = run_create(peer)
    assert isinstance(error, ProtocolError), error


def test_deeply_nested_error_body_is_still_the_api_error() -> None:
    """A 500 whose body is nested 100,000 deep raises InternalServerError, not RecursionError."""
    body = b'{"error": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    answer = b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with RawPeer(RawPeer.send(answer)) as peer:
        _, error = run_create(peer)
    assert isinstance(error, InternalServerError), error


# -- plain words for an unreachable server ----------------------------------------------


def test_unreachable_server_message_is_plain() -> None:
    """Nothing listening: "could not connect to 127.0.0.1:PORT (connection refused)"."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    http = HTTPTransport(
        f"http://127.0.0.1:{port}/v1",
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=2.0,
        connect_timeout=2.0,
        max_retries=0,
    )
    try:
        with pytest.raises(ConnectError) as info:
            http.create(BODY)
    finally:
        http.close()
    assert str(info.value) == f"could not connect to 127.0.0.1:{port} (connection refused)"
    assert "Pool" not in str(info.value) and "Max retries" not in str(info.value)
