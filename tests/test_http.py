"""Tests of the HTTP transport (``_transports/http.py`` and ``http_cancel.py``).

Two layers: the transport against a tiny scripted HTTP server in this file
(exact bytes, status codes, headers, drops), and the transport end to end
against the emulator on port 0. The SSE decoder has its own pure tests
(``test_sse.py``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional

import pytest

from openai_ws._transports.http import HTTPTransport
from openai_ws._transports.http_cancel import Cancellation
from openai_ws.errors import (
    APIError,
    AuthenticationError,
    ConnectError,
    ConnectionClosedError,
    InternalServerError,
    NotFoundError,
    ProtocolError,
    RateLimitError,
    ReplayUnsafeError,
    RequestTimeoutError,
    TransportError,
)
from openai_ws.events import (
    ResponseCompleted,
    ResponseCreated,
    ResponseOutputTextDelta,
)

API_KEY = "sk-emulator"
SECRET = "sk-test-0123456789abcdefSECRET"

# --------------------------------------------------------------------------
# A scripted HTTP/1.1 server for exact bytes and faults
# --------------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted answer: status, headers, body pieces (one HTTP chunk each)."""

    status: int = 200
    headers: Dict[str, str] = field(default_factory=dict)
    chunks: List[bytes] = field(default_factory=list)
    chunked: bool = True
    pause: float = 0.0  # seconds before each chunk
    drop: bool = False  # close the socket instead of ending the body


@dataclass
class Seen:
    """One request the scripted server received."""

    method: str
    path: str
    headers: Dict[str, str]
    body: bytes


class ScriptedServer:
    """A threaded HTTP/1.1 server that answers from a list of :class:`Reply` (last one repeats)."""

    def __init__(self) -> None:
        self.replies: List[Reply] = [Reply()]
        self.seen: List[Seen] = []
        self.connections = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                with outer._lock:
                    outer.connections += 1
                super().setup()

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with outer._lock:
                    outer.seen.append(
                        Seen(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    reply = outer.replies.pop(0) if len(outer.replies) > 1 else outer.replies[0]
                self._play(reply)

            def _play(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                if reply.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                elif not reply.drop:
                    self.send_header("Content-Length", str(sum(map(len, reply.chunks))))
                self.end_headers()
                self.wfile.flush()
                for chunk in reply.chunks:
                    if reply.pause:
                        time.sleep(reply.pause)
                    if reply.chunked:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    else:
                        self.wfile.write(chunk)
                    self.wfile.flush()
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if reply.chunked:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()

            do_GET = do_POST = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.close()
    assert not server.thread.is_alive()


def _transport(url: str, *, key: str = API_KEY, **options: Any) -> HTTPTransport:
    settings: Dict[str, Any] = {"timeout": 10.0, "connect_timeout": 5.0, "max_retries": 2}
    settings.update(options)
    return HTTPTransport(url, headers={"Authorization": f"Bearer {key}"}, **settings)


def _sse(*events: Dict[str, Any]) -> List[bytes]:
    return [
        f"event: {event.get('type', 'message')}\ndata: {json.dumps(event)}\n\n".encode()
        for event in events
    ]


RESPONSE = {"id": "resp_1", "object": "response", "status": "completed", "output": []}
CREATED = {
    "type": "response.created",
    "sequence_number": 0,
    "response": {**RESPONSE, "status": "in_progress"},
}
DELTA = {
    "type": "response.output_text.delta",
    "item_id": "msg_1",
    "output_index": 0,
    "content_index": 0,
    "delta": "Hi",
    "sequence_number": 1,
}
COMPLETED = {"type": "response.completed", "sequence_number": 2, "response": RESPONSE}
SSE_HEADERS = {"Content-Type": "text/event-stream"}
JSON_HEADERS = {"Content-Type": "application/json"}


def _error_body(code: Optional[str], message: str = "boom", type_: str = "server_error") -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": type_, "param": None, "code": code}}
    ).encode()


def test_stream_sends_body_with_stream_true_and_headers(scripted: ScriptedServer) -> None:
    """stream() POSTs the body plus stream:true, JSON type, SSE accept and the bearer key."""
    scripted.replies = [Reply(headers=SSE_HEADERS, chunks=_sse(CREATED, COMPLETED))]
    transport = _transport(scripted.url, key=SECRET)
    try:
        events = list(transport.stream({"model": "m", "input": "hi", "metadata": {"k": "v"}}))
    finally:
        transport.close()
    assert [type(e) for e in events] == [ResponseCreated, ResponseCompleted]
    seen = scripted.seen[0]
    assert (seen.method, seen.path) == ("POST", "/v1/responses")
    assert json.loads(seen.body) == {
        "model": "m",
        "input": "hi",
        "metadata": {"k": "v"},
        "stream": True,
    }
    assert seen.headers["authorization"] == f"Bearer {SECRET}"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["accept"] == "text/event-stream"


def test_netrc_never_replaces_the_bearer_key(
    scripted: ScriptedServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ~/.netrc entry for the host does not override the Authorization header."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login user password pass\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    scripted.replies = [Reply(headers=JSON_HEADERS, chunks=[json.dumps(RESPONSE).encode()])]
    transport = _transport(scripted.url, key=SECRET)
    try:
        transport.create({"model": "m", "input": "hi"})
    finally:
        transport.close()
    assert scripted.seen[0].headers["authorization"] == f"Bearer {SECRET}"


def test_flat_error_shape_raises_typed_error(scripted: ScriptedServer) -> None:
    """A mid-stream error in the spec's flat shape raises the typed APIError after the events."""
    flat = {
        "type": "error",
        "code": "rate_limit_exceeded",
        "message": "slow down",
        "param": None,
        "sequence_number": 2,
    }
    scripted.replies = [Reply(headers=SSE_HEADERS, chunks=_sse(CREATED, DELTA, flat))]
    transport = _transport(scripted.url)
    got: List[Any] = []
    try:
        with pytest.raises(RateLimitError) as info:
            for event in transport.stream({"model": "m", "input": "hi"}):
                got.append(event)
    finally:
        transport.close()
    assert [type(e) for e in got] == [ResponseCreated, ResponseOutputTextDelta]
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.message == "slow down"


def test_untyped_error_object_in_stream_raises(scripted: ScriptedServer) -> None:
    """A data payload {"error": {...}} without a type (as some proxies send) raises its APIError."""
    bare = {"error": {"code": "server_error", "message": "proxy trouble"}, "status": 502}
    scripted.replies = [Reply(headers=SSE_HEADERS, chunks=_sse(CREATED, bare))]
    transport = _transport(scripted.url)
    try:
        with pytest.raises(InternalServerError, match="proxy trouble"):
            list(transport.stream({"model": "m", "input": "hi"}))
    finally:
        transport.close()


def test_done_sentinel_ends_stream(scripted: ScriptedServer) -> None:
    """data: [DONE] ends the stream without an error even before a terminal event."""
    scripted.replies = [Reply(headers=SSE_HEADERS, chunks=[*_sse(CREATED), b"data: [DONE]\n\n"])]
    transport = _transport(scripted.url)
    try:
        events = list(transport.stream({"model": "m", "input": "hi"}))
    finally:
        transport.close()
    assert [type(e) for e in events] == [ResponseCreated]


def test_events_split_across_chunks_with_crlf(scripted: ScriptedServer) -> None:
    """Events cut at arbitrary byte positions with \\r\\n line ends arrive whole and in order."""
    body = b"".join(_sse(CREATED, DELTA, COMPLETED)).replace(b"\n", b"\r\n")
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    scripted.replies = [Reply(headers=SSE_HEADERS, chunks=[b": hello\r\n\r\n", *pieces])]
    transport = _transport(scripted.url)
    try:
        events = list(transport.stream({"model": "m", "input": "hi"}))
    finally:
        transport.close()
    assert [e.type for e in events] == [
        "response.created",
        "response.output_text.delta",
        "response.completed",
    ]


def test_stream_without_chunked_encoding_is_read_as_it_arrives(scripted: ScriptedServer) -> None:
    """A stream without Transfer-Encoding yields each event before the next one arrives."""
    scripted.replies = [
        Reply(
            headers=SSE_HEADERS,
            chunks=_sse(CREATED, DELTA, COMPLETED),
            chunked=False,
            pause=0.3,
            drop=True,
        )
    ]
    transport = _transport(scripted.url)
    try:
        stream = transport.stream({"model": "m", "input": "hi"})
        start = time.monotonic()
        first = next(stream)
        assert isinstance(first, ResponseCreated)
        assert time.monotonic() - start < 0.55  # not after the whole body (0.9 s)
        assert [e.type for e in stream] == ["response.output_text.delta", "response.completed"]
    finally:
        transport.close()


def test_malformed_data_raises_protocol_error(scripted: ScriptedServer) -> None:
    """A data line that is not JSON raises ProtocolError after the events before it."""
    scripted.replies = [Reply(headers=SSE_HEADERS, chunks=[*_sse(CREATED), b"data: {not json\n\n"])]
    transport = _transport(scripted.url)
    got: List[Any] = []
    try:
        with pytest.raises(ProtocolError):
            for event in transport.stream({"model": "m", "input": "hi"}):
                got.append(event)
    finally:
        transport.close()
    assert [type(e) for e in got] == [ResponseCreated]


def test_stream_cut_before_terminal_event(scripted: ScriptedServer) -> None:
    """A stream ending before a terminal event raises ReplayUnsafeError with count and id."""
    scripted.replies = [Reply(headers=SSE_HEADERS, chunks=_sse(CREATED, DELTA))]
    transport = _transport(scripted.url)
    try:
        with pytest.raises(ReplayUnsafeError) as info:
            list(transport.stream({"model": "m", "input": "hi"}))
        assert info.value.events_received == 2
        assert info.value.response_id == "resp_1"
        scripted.replies = [Reply(headers=SSE_HEADERS, chunks=[b": nothing\n\n"], drop=True)]
        with pytest.raises(ConnectionClosedError) as closed:
            list(transport.stream({"model": "m", "input": "hi"}))
        assert not isinstance(closed.value, ReplayUnsafeError)
    finally:
        transport.close()


def test_dropped_connection_mid_stream(scripted: ScriptedServer) -> None:
    """A TCP drop inside a chunked stream raises ReplayUnsafeError (a ConnectionClosedError)."""
    scripted.replies = [Reply(headers=SSE_HEADERS, chunks=_sse(CREATED), drop=True)]
    transport = _transport(scripted.url)
    try:
        with pytest.raises(ReplayUnsafeError):
            list(transport.stream({"model": "m", "input": "hi"}))
    finally:
        transport.close()


def test_wrong_content_type_is_protocol_error(scripted: ScriptedServer) -> None:
    """A 200 answer to a stream request that is not text/event-stream raises ProtocolError."""
    scripted.replies = [Reply(headers=JSON_HEADERS, chunks=[json.dumps(RESPONSE).encode()])]
    transport = _transport(scripted.url)
    try:
        with pytest.raises(ProtocolError):
            list(transport.stream({"model": "m", "input": "hi"}))
    finally:
        transport.close()


def test_non_json_error_body_keeps_text(scripted: ScriptedServer) -> None:
    """A 502 with an HTML body raises InternalServerError whose message is the body's text."""
    scripted.replies = [
        Reply(status=502, headers={"Content-Type": "text/html"}, chunks=[b"<h1>Bad gateway</h1>"])
    ]
    transport = _transport(scripted.url, max_retries=0)
    try:
        with pytest.raises(InternalServerError) as info:
            transport.create({"model": "m", "input": "hi"})
    finally:
        transport.close()
    assert info.value.status == 502
    assert "Bad gateway" in info.value.message


def test_error_message_never_contains_the_key(scripted: ScriptedServer) -> None:
    """A server that echoes the API key in its error message gets it scrubbed."""
    scripted.replies = [
        Reply(
            status=401,
            headers=JSON_HEADERS,
            chunks=[_error_body("invalid_api_key", f"bad key {SECRET}")],
        )
    ]
    transport = _transport(scripted.url, key=SECRET)
    try:
        with pytest.raises(AuthenticationError) as info:
            transport.create({"model": "m", "input": "hi"})
    finally:
        transport.close()
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert SECRET not in repr(transport)


def test_x_should_retry_false_stops_retries(scripted: ScriptedServer) -> None:
    """A 503 with x-should-retry: false is attempted once."""
    scripted.replies = [
        Reply(
            status=503,
            headers={**JSON_HEADERS, "x-should-retry": "false"},
            chunks=[_error_body(None)],
        )
    ]
    transport = _transport(scripted.url, max_retries=3)
    try:
        with pytest.raises(InternalServerError):
            transport.create({"model": "m", "input": "hi"})
    finally:
        transport.close()
    assert len(scripted.seen) == 1


def test_x_should_retry_true_retries_any_status(scripted: ScriptedServer) -> None:
    """A 400 with x-should-retry: true is retried (the server's verdict beats the status list)."""
    scripted.replies = [
        Reply(
            status=400,
            headers={**JSON_HEADERS, "x-should-retry": "true", "retry-after-ms": "10"},
            chunks=[_error_body("x")],
        ),
        Reply(headers=JSON_HEADERS, chunks=[json.dumps(RESPONSE).encode()]),
    ]
    transport = _transport(scripted.url)
    try:
        assert transport.create({"model": "m", "input": "hi"}).id == "resp_1"
    finally:
        transport.close()
    assert len(scripted.seen) == 2


def test_retry_after_too_long_is_not_waited_for(scripted: ScriptedServer) -> None:
    """A 429 asking to wait an hour fails at once with the server's retry-after header kept."""
    scripted.replies = [
        Reply(
            status=429,
            headers={**JSON_HEADERS, "Retry-After": "3600"},
            chunks=[_error_body("rate_limit_exceeded")],
        )
    ]
    transport = _transport(scripted.url)
    start = time.monotonic()
    try:
        with pytest.raises(RateLimitError) as info:
            transport.create({"model": "m", "input": "hi"})
    finally:
        transport.close()
    assert time.monotonic() - start < 2
    assert len(scripted.seen) == 1
    assert info.value.headers["retry-after"] == "3600"


def test_retry_after_seconds_honoured(scripted: ScriptedServer) -> None:
    """Retry-After in seconds is honoured when no retry-after-ms is sent."""
    scripted.replies = [
        Reply(status=503, headers={**JSON_HEADERS, "Retry-After": "1"}, chunks=[_error_body(None)]),
        Reply(headers=JSON_HEADERS, chunks=[json.dumps(RESPONSE).encode()]),
    ]
    transport = _transport(scripted.url)
    start = time.monotonic()
    try:
        transport.create({"model": "m", "input": "hi"})
    finally:
        transport.close()
    assert 0.9 < time.monotonic() - start < 3
    assert len(scripted.seen) == 2


def test_insufficient_quota_with_chunked_body_not_retried(scripted: ScriptedServer) -> None:
    """A chunked insufficient_quota 429 is read by the retry policy and still reported in full."""
    scripted.replies = [
        Reply(
            status=429,
            headers=JSON_HEADERS,
            chunks=[_error_body("insufficient_quota", "no credit", "insufficient_quota")],
        )
    ]
    transport = _transport(scripted.url, max_retries=3)
    try:
        with pytest.raises(RateLimitError) as info:
            list(transport.stream({"model": "m", "input": "hi"}))
    finally:
        transport.close()
    assert len(scripted.seen) == 1
    assert (info.value.code, info.value.message, info.value.status) == (
        "insufficient_quota",
        "no credit",
        429,
    )


def test_completed_streams_reuse_one_connection(scripted: ScriptedServer) -> None:
    """Streams read to their terminal event give the connection back to the pool."""
    scripted.replies = [Reply(headers=SSE_HEADERS, chunks=_sse(CREATED, DELTA, COMPLETED))]
    transport = _transport(scripted.url)
    try:
        for _ in range(3):
            for event in transport.stream({"model": "m", "input": "hi"}):
                if event.is_terminal:
                    break
        for _ in range(3):
            assert len(list(transport.stream({"model": "m", "input": "hi"}))) == 3
    finally:
        transport.close()
    assert scripted.connections == 1


def test_closed_transport_refuses_requests(scripted: ScriptedServer) -> None:
    """close() is idempotent and later calls raise TransportError."""
    transport = _transport(scripted.url)
    transport.close()
    transport.close()
    with pytest.raises(TransportError):
        transport.create({"model": "m", "input": "hi"})
    with pytest.raises(TransportError):
        list(transport.stream({"model": "m", "input": "hi"}))


def test_create_refuses_stream_true() -> None:
    """create() with stream: true in the body is a ValueError (stream() is the way)."""
    transport = _transport("http://127.0.0.1:9/v1")
    try:
        with pytest.raises(ValueError, match="stream"):
            transport.create({"model": "m", "input": "hi", "stream": True})
    finally:
        transport.close()


def test_connection_refused_is_connect_error() -> None:
    """A port where nothing listens raises ConnectError, chained from the requests error."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = _transport(f"http://127.0.0.1:{port}/v1", key=SECRET, max_retries=0)
    try:
        with pytest.raises(ConnectError) as info:
            transport.create({"model": "m", "input": "hi"})
        with pytest.raises(ConnectError):
            list(transport.stream({"model": "m", "input": "hi"}))
    finally:
        transport.close()
    assert info.value.__cause__ is not None
    assert SECRET not in str(info.value)


# --------------------------------------------------------------------------
# The retry policy's reading of server hints
# --------------------------------------------------------------------------


def _hinted(headers: Dict[str, str]) -> Optional[float]:
    from urllib3.response import HTTPResponse

    from openai_ws._transports.http import _Retry

    return _Retry(total=2).get_retry_after(HTTPResponse(body=b"", headers=headers, status=429))


def test_retry_hint_prefers_retry_after_ms() -> None:
    """retry-after-ms wins over Retry-After; either alone is used; junk or huge values are not."""
    assert _hinted({"retry-after-ms": "250", "Retry-After": "3"}) == pytest.approx(0.25)
    assert _hinted({"Retry-After": "3"}) == pytest.approx(3.0)
    assert _hinted({"Retry-After": "1.5"}) == pytest.approx(1.5)
    assert _hinted({"retry-after-ms": "soon", "Retry-After": "2"}) == pytest.approx(2.0)
    assert _hinted({"Retry-After": "3600"}) is None  # too long to sleep on: not retried at all
    assert _hinted({"Retry-After": "junk"}) is None
    assert _hinted({}) is None


def test_retry_hint_http_date() -> None:
    """Retry-After as an HTTP date gives the seconds until that date."""
    from email.utils import formatdate

    hint = _hinted({"Retry-After": formatdate(time.time() + 30, usegmt=True)})
    assert hint is not None and 28 <= hint <= 31


def test_backoff_without_hint_doubles_with_jitter() -> None:
    """Without a hint the waits are 0.5 s, 1 s, 2 s ... capped at 8 s, minus at most 25 %."""
    from urllib3.util.retry import RequestHistory

    from openai_ws._transports.http import _Retry

    entry = RequestHistory("POST", "/v1/responses", None, 500, None)
    for retries, nominal in [(1, 0.5), (2, 1.0), (3, 2.0), (6, 8.0), (9, 8.0)]:
        retry = _Retry(total=10, history=(entry,) * retries)
        for _ in range(20):
            assert 0.75 * nominal <= retry.get_backoff_time() <= nominal
    assert _Retry(total=10).get_backoff_time() == 0.0


# --------------------------------------------------------------------------
# End to end against the emulator
# --------------------------------------------------------------------------

MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    from openai_ws.emulator import Emulator

    with Emulator(api_key=API_KEY) as emulator:
        yield emulator


@pytest.fixture
def http(emu: Any) -> Iterator[HTTPTransport]:
    transport = _transport(emu.base_url)
    yield transport
    transport.close()


def _creates(emu: Any) -> int:
    return int(emu.stats.get("http_creates"))


def _body(text: str, **metadata: str) -> Dict[str, Any]:
    body: Dict[str, Any] = {"model": MODEL, "input": text}
    if metadata:
        body["metadata"] = metadata
    return body


def test_create_returns_response_with_echo_and_usage(http: HTTPTransport) -> None:
    """create() returns a completed Response whose text echoes the input, with usage."""
    response = http.create(_body("The capital of France is Paris."))
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert "The capital of France is Paris." in response.output_text
    assert response.usage is not None
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0


def test_stream_yields_typed_events_in_order(http: HTTPTransport) -> None:
    """stream() yields events in sequence order, deltas = final text, last response.completed."""
    events = list(http.stream(_body("stream me please")))
    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert "response.output_text.delta" in types
    assert [event.sequence_number for event in events] == list(range(len(events)))
    final = events[-1]
    assert isinstance(final, ResponseCompleted)
    deltas = "".join(e.delta for e in events if isinstance(e, ResponseOutputTextDelta))
    assert deltas == final.response.output_text
    assert "stream me please" in deltas


def test_stream_and_create_agree(http: HTTPTransport) -> None:
    """The terminal event of stream() carries the same kind of Response that create() returns."""
    created = http.create(_body("same text either way", emulator_text="fixed answer"))
    streamed = list(http.stream(_body("same text either way", emulator_text="fixed answer")))[-1]
    assert isinstance(streamed, ResponseCompleted)
    assert created.output_text == streamed.response.output_text == "fixed answer"


def test_retrieve_and_delete(http: HTTPTransport) -> None:
    """A stored response can be retrieved by id, deleted, and is then NotFoundError."""
    response = http.create(_body("keep me"))
    assert http.retrieve(response.id).id == response.id
    http.delete(response.id)
    with pytest.raises(NotFoundError):
        http.retrieve(response.id)
    with pytest.raises(NotFoundError):
        http.delete(response.id)


def test_wrong_key_is_authentication_error_without_key(emu: Any) -> None:
    """A wrong key raises AuthenticationError (401, code) and the key appears nowhere."""
    transport = _transport(emu.base_url, key=SECRET)
    try:
        with pytest.raises(AuthenticationError) as info:
            transport.create(_body("hi"))
        with pytest.raises(AuthenticationError):
            list(transport.stream(_body("hi")))
    finally:
        transport.close()
    error = info.value
    assert error.status == 401
    assert error.code == "invalid_api_key"
    assert SECRET not in str(error) and SECRET not in repr(error)
    assert SECRET not in repr(transport)


def test_rate_limit_retried_honouring_retry_after_ms(emu: Any, http: HTTPTransport) -> None:
    """A 429 with retry-after-ms 50 and Retry-After 1 is retried after ~50 ms and succeeds."""
    before = _creates(emu)
    start = time.monotonic()
    response = http.create(
        _body(
            "rate limited once",
            emulator_error="rate_limit_exceeded",
            emulator_error_times="1",
            emulator_retry_after="0.05",
        )
    )
    elapsed = time.monotonic() - start
    assert response.status == "completed"
    assert _creates(emu) - before == 2
    assert elapsed < 0.8, "slept on Retry-After (1 s) instead of retry-after-ms (50 ms)"


def test_rate_limit_on_stream_retried(emu: Any, http: HTTPTransport) -> None:
    """A stream() that first meets a 429 is retried before any event and then streams normally."""
    before = _creates(emu)
    events = list(
        http.stream(
            _body(
                "stream rate limited once",
                emulator_error="rate_limit_exceeded",
                emulator_error_times="1",
                emulator_retry_after="0.01",
            )
        )
    )
    assert events[-1].type == "response.completed"
    assert _creates(emu) - before == 2


def test_rate_limit_exhausted_raises_with_headers(emu: Any) -> None:
    """Exhausted 429 retries raise RateLimitError with status, code and rate-limit headers."""
    transport = _transport(emu.base_url, max_retries=1)
    before = _creates(emu)
    try:
        with pytest.raises(RateLimitError) as info:
            transport.create(
                _body(
                    "always limited",
                    emulator_error="rate_limit_exceeded",
                    emulator_retry_after="0.01",
                )
            )
    finally:
        transport.close()
    assert _creates(emu) - before == 2
    assert (info.value.status, info.value.code) == (429, "rate_limit_exceeded")
    assert info.value.headers["retry-after-ms"] == "10"
    assert "x-ratelimit-remaining-requests" in info.value.headers


def test_insufficient_quota_not_retried(emu: Any, http: HTTPTransport) -> None:
    """insufficient_quota (429) is attempted exactly once and raises RateLimitError."""
    before = _creates(emu)
    with pytest.raises(RateLimitError) as info:
        http.create(
            _body("no money", emulator_error="insufficient_quota", emulator_error_times="1")
        )
    assert _creates(emu) - before == 1
    assert info.value.code == "insufficient_quota"
    assert info.value.status == 429
    with pytest.raises(RateLimitError):
        list(
            http.stream(
                _body(
                    "no money streaming",
                    emulator_error="insufficient_quota",
                    emulator_error_times="1",
                )
            )
        )
    assert _creates(emu) - before == 2


def test_server_error_retried_then_success(emu: Any, http: HTTPTransport) -> None:
    """A 500 on the first attempt is retried with backoff and the second attempt succeeds."""
    before = _creates(emu)
    response = http.create(
        _body("flaky server", emulator_error="server_error", emulator_error_times="1")
    )
    assert response.status == "completed"
    assert _creates(emu) - before == 2


def test_server_errors_exhausted_raise_internal_server_error(emu: Any) -> None:
    """503 every time: max_retries + 1 attempts, then InternalServerError (status, code)."""
    transport = _transport(emu.base_url, max_retries=1)
    before = _creates(emu)
    try:
        with pytest.raises(InternalServerError) as info:
            transport.create(_body("always overloaded", emulator_error="server_is_overloaded"))
    finally:
        transport.close()
    assert _creates(emu) - before == 2
    assert info.value.status == 503
    assert info.value.code == "server_is_overloaded"


@pytest.mark.parametrize("shape", ["flat", "nested"])
def test_mid_stream_error_raises_after_events(http: HTTPTransport, emu: Any, shape: str) -> None:
    """A mid-stream `error` event (flat, as the SDK has it, or nested) after 3 events raises
    APIError(server_error) after those 3."""
    emu.config.sse_error_shape = shape
    got: List[Any] = []
    try:
        with pytest.raises(APIError) as info:
            for event in http.stream(_body("fail midway", emulator_error_after="3")):
                got.append(event)
    finally:
        emu.config.sse_error_shape = "flat"
    assert len(got) == 3
    assert isinstance(got[0], ResponseCreated)
    assert info.value.code == "server_error"
    if shape == "nested":
        assert info.value.type == "server_error"


def test_mid_stream_malformed_event_is_protocol_error(http: HTTPTransport) -> None:
    """A malformed SSE data line from the server raises ProtocolError after the events before it."""
    got: List[Any] = []
    with pytest.raises(ProtocolError):
        for event in http.stream(_body("garble midway", emulator_malformed_after="2")):
            got.append(event)
    assert len(got) == 2


def test_read_timeout_is_request_timeout_and_not_retried(emu: Any) -> None:
    """A create() slower than the read timeout raises RequestTimeoutError after one attempt."""
    transport = _transport(emu.base_url, timeout=0.3)
    before = _creates(emu)
    start = time.monotonic()
    try:
        with pytest.raises(RequestTimeoutError) as info:
            transport.create(_body("slow thinker", emulator_ttft="2"))
    finally:
        transport.close()
    assert isinstance(info.value, TimeoutError)
    assert info.value.__cause__ is not None
    assert time.monotonic() - start < 1.5
    assert _creates(emu) - before == 1


def test_stream_read_timeout_between_events(emu: Any) -> None:
    """A stream whose next event takes longer than the read timeout raises RequestTimeoutError."""
    transport = _transport(emu.base_url, timeout=0.3)
    got: List[Any] = []
    try:
        with pytest.raises(RequestTimeoutError):
            for event in transport.stream(_body("slow stream", emulator_ttft="2")):
                got.append(event)
    finally:
        transport.close()
    assert got and isinstance(got[0], ResponseCreated)


def test_early_closed_streams_release_connections(emu: Any) -> None:
    """Twenty streams abandoned after their first event are cut off and leave the pool usable."""
    transport = _transport(emu.base_url)
    # Keep every HTTP response alive, so that only an explicit close can end it.
    kept: List[Any] = []
    send = transport._send

    def keeping(*args: Any, **kwargs: Any) -> Any:
        kept.append(send(*args, **kwargs))
        return kept[-1]

    transport._send = keeping  # type: ignore[method-assign]
    before = int(emu.stats.get("responses_interrupted"))
    try:
        for i in range(20):
            stream = transport.stream(
                _body(
                    f"abandon me {i}", emulator_output_tokens="200", emulator_token_interval="0.01"
                )
            )
            assert isinstance(next(stream), ResponseCreated)
            stream.close()  # type: ignore[attr-defined]
        assert transport.create(_body("still working")).status == "completed"
        assert list(transport.stream(_body("still streaming")))[-1].type == "response.completed"
    finally:
        transport.close()
    deadline = time.monotonic() + 5
    while int(emu.stats.get("responses_interrupted")) - before < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert int(emu.stats.get("responses_interrupted")) - before == 20  # the server saw each close
    assert all(response.raw.closed for response in kept[:20])


def test_concurrent_streams_from_many_threads(http: HTTPTransport) -> None:
    """Eight threads streaming through one transport each get their own complete, unmixed stream."""
    results: Dict[int, str] = {}
    errors: List[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                events = list(http.stream(_body(f"thread {i} says hello")))
                final = events[-1]
                assert isinstance(final, ResponseCompleted)
                results[i] = final.response.output_text
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors
    assert all(f"thread {i} says hello" in results[i] for i in range(8))


@pytest.fixture(scope="module")
def tls_emu() -> Iterator[Any]:
    from openai_ws.emulator import Emulator

    with Emulator(api_key=API_KEY, tls=True) as emulator:
        yield emulator


def test_tls_with_emulator_ca_file(tls_emu: Any) -> None:
    """https with verify=<the emulator's CA file> works for create and stream."""
    assert tls_emu.base_url.startswith("https://")
    transport = _transport(tls_emu.base_url, verify=tls_emu.ca_file)
    try:
        assert transport.create(_body("over tls")).status == "completed"
        assert list(transport.stream(_body("over tls")))[-1].type == "response.completed"
    finally:
        transport.close()


def test_tls_without_ca_file_is_connect_error(
    tls_emu: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An untrusted certificate raises ConnectError at once (no retries), naming the certificate."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    transport = _transport(tls_emu.base_url, max_retries=2)
    start = time.monotonic()
    try:
        with pytest.raises(ConnectError, match=r"(?i)certificate"):
            transport.create(_body("over untrusted tls"))
    finally:
        transport.close()
    assert time.monotonic() - start < 0.4, "a certificate failure was retried"


def test_ca_file_beats_requests_ca_bundle_env(
    tls_emu: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify=<path> is used even when REQUESTS_CA_BUNDLE names another bundle."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/bundle.pem")
    transport = _transport(tls_emu.base_url, verify=tls_emu.ca_file)
    try:
        assert transport.create(_body("env bundle ignored")).status == "completed"
    finally:
        transport.close()


def test_explicit_proxy_is_used_over_environment(
    scripted: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """proxy= sends requests through that proxy even when http_proxy names another one."""
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    scripted.replies = [Reply(headers=JSON_HEADERS, chunks=[json.dumps(RESPONSE).encode()])]
    proxy = scripted.url[: -len("/v1")]
    transport = _transport("http://api.example.invalid/v1", proxy=proxy)
    try:
        assert transport.create({"model": "m", "input": "hi"}).id == "resp_1"
    finally:
        transport.close()
    assert scripted.seen[0].path == "http://api.example.invalid/v1/responses"


# --------------------------------------------------------------------------
# Cancellation from another thread
# --------------------------------------------------------------------------


class _Stopped(TransportError):
    """The error a cancelled call raises in these tests."""


def _token() -> Cancellation:
    return Cancellation(lambda: _Stopped("stopped by another thread"))


def _cancel_after(token: Cancellation, seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, token.cancel)
    timer.start()
    return timer


@pytest.mark.parametrize("kind", ["create", "stream"])
def test_cancel_aborts_a_call_waiting_for_the_server(
    emu: Any, http: HTTPTransport, kind: str
) -> None:
    """cancel() from another thread ends a call blocked on a slow answer at once."""
    token = _token()
    body = _body("slow", emulator_ttft="10")
    timer = _cancel_after(token, 0.3)
    started = time.monotonic()
    try:
        with pytest.raises(_Stopped):
            if kind == "create":
                http.create(body, cancel=token)
            else:
                list(http.stream(body, cancel=token))
    finally:
        timer.join()
    assert time.monotonic() - started < 5, "the call waited for the server"
    assert token.cancelled
    assert http.create(_body("the pool still works")).output_text == "the pool still works"


def test_cancel_aborts_a_stream_between_events(http: HTTPTransport) -> None:
    """A stream cancelled after its first events raises on the next read, promptly."""
    token = _token()
    events = http.stream(_body("one two three four", emulator_token_interval="10"), cancel=token)
    first = next(events)
    assert first.type == "response.created"
    timer = _cancel_after(token, 0.3)
    started = time.monotonic()
    try:
        with pytest.raises(_Stopped):
            for _ in events:
                pass
    finally:
        timer.join()
    assert time.monotonic() - started < 5


def test_a_cancelled_token_sends_nothing(emu: Any, http: HTTPTransport) -> None:
    """A call whose token is already cancelled raises without reaching the server."""
    http.create(_body("warm the pool"))
    before = _creates(emu)
    token = _token()
    token.cancel()
    with pytest.raises(_Stopped):
        http.create(_body("never sent"), cancel=token)
    assert _creates(emu) == before


def test_cancel_cuts_a_retry_wait_short(emu: Any, http: HTTPTransport) -> None:
    """A call waiting out a 5 s Retry-After stops waiting when cancelled, without a retry."""
    before = _creates(emu)
    token = _token()
    timer = _cancel_after(token, 0.3)
    started = time.monotonic()
    try:
        with pytest.raises(_Stopped):
            http.create(
                _body(
                    "rate limited",
                    emulator_error="rate_limit_exceeded",
                    emulator_error_times="1",
                    emulator_retry_after="5",
                ),
                cancel=token,
            )
    finally:
        timer.join()
    assert time.monotonic() - started < 3
    assert _creates(emu) - before == 1


def test_cancel_leaves_other_calls_on_the_pool_alone(http: HTTPTransport) -> None:
    """Cancelling one thread's call never breaks another thread's call on the same pool."""
    results: List[str] = []

    def other() -> None:
        answer = http.create(_body("still here", emulator_ttft="0.6"))
        results.append(answer.output_text)

    thread = threading.Thread(target=other)
    thread.start()
    token = _token()
    timer = _cancel_after(token, 0.2)
    try:
        with pytest.raises(_Stopped):
            http.create(_body("cancel me", emulator_ttft="10"), cancel=token)
    finally:
        timer.join()
        thread.join(10)
    assert results == ["still here"]
