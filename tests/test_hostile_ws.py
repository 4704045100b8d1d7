"""Hostile WebSocket peers against the read path: RFC 6455 sections 5, 7, 8 and the limits.

The first half is a conformance table in the spirit of the Autobahn client suite
(sections 1-7 and 9): a :class:`~servers.RecordingServer` sends raw frames right
after the upgrade, a real :class:`WSTransport` reads them, and each case checks
what the transport handed on, which pings it answered and the close code it
sent back (RFC 6455 section 7.4). The second half runs whole sessions against
scripted hostile servers (and the scripted fake transport, for failures no socket
can cause): oversized and endless messages, bad UTF-8, JSON nested too deep,
events that cost more memory than their size says, a read that runs out of memory.
Every limit in these tests is small, so each test takes milliseconds.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Dict, List, NamedTuple, Optional

import pytest
from fake_transport import FakeServer, FakeTransport, answer, echo_script, options
from servers import RecordingServer, frame, frame_header, response

from openai_ws import OpenAI, ProtocolError, Session
from openai_ws._session.options import DEFAULT_MAX_MESSAGE_SIZE
from openai_ws._transports.ws import Binary, Closed, Frame, Idle, Pong, WSTransport
from openai_ws.errors import ConnectionClosedError, ConsumerTooSlowError, OpenAIWSError

KEY = "sk-hostile-test"


def close(code: Optional[int] = 1000, reason: bytes = b"") -> bytes:
    """A server close frame (``None``: with an empty payload)."""
    return frame(0x8, b"" if code is None else code.to_bytes(2, "big") + reason)


def text(payload: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    """A text frame; ``rsv`` sets the reserved bits (RSV1 = 4, RSV2 = 2, RSV3 = 1)."""
    raw = frame(0x1, payload, fin=fin)
    return bytes([raw[0] | rsv << 4]) + raw[1:]


def cont(payload: bytes, *, fin: bool = True) -> bytes:
    return frame(0x0, payload, fin=fin)


def chunks(data: bytes, size: int) -> List[bytes]:
    """``data`` in pieces of ``size`` bytes, each written by its own ``sendall``."""
    return [data[i : i + size] for i in range(0, len(data), size)]


class Case(NamedTuple):
    """One conformance case: what the server sends, what the client must do."""

    frames: List[bytes]
    """Raw bytes, each written with its own ``sendall``."""
    messages: List[Frame]
    """What ``recv()`` hands on before its final ``Closed``."""
    close: int
    """The close code the client must send back."""
    pongs: Optional[List[bytes]] = None
    """Payloads of the pongs the client must send, in order (``None``: not checked)."""
    max_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE


T = "\u03ba\u1f79\u03c3\u03bc\u03b5"  # "kosme" in Greek, five 2- and 3-byte code points
BIN = bytes(range(256))

CASES: Dict[str, Case] = {
    # 1. Framing: every length encoding, text and binary.
    **{
        f"1.1 text {n}": Case([text(b"*" * n), close()], ["*" * n], 1000)
        for n in (0, 125, 126, 127, 128, 65535, 65536)
    },
    **{
        f"1.2 binary {n}": Case([frame(0x2, b"\xfe" * n), close()], [Binary(b"\xfe" * n)], 1000)
        for n in (0, 125, 126, 127, 128, 65535, 65536)
    },
    "1.1.8 text 65536 in 997-byte writes": Case(
        chunks(text(b"*" * 65536), 997) + [close()], ["*" * 65536], 1000
    ),
    # 2. Pings and pongs.
    "2.1 ping, no payload": Case([frame(0x9, b""), close()], [], 1000, [b""]),
    "2.2 ping with text payload": Case(
        [frame(0x9, b"Hello, world!"), close()], [], 1000, [b"Hello, world!"]
    ),
    "2.3 ping with binary payload": Case([frame(0x9, BIN[:8]), close()], [], 1000, [BIN[:8]]),
    "2.4 ping of 125 bytes": Case([frame(0x9, b"*" * 125), close()], [], 1000, [b"*" * 125]),
    "2.5 ping of 126 bytes": Case([frame(0x9, b"*" * 126), close()], [], 1002, []),
    "2.6 ping of 125 bytes, byte by byte": Case(
        chunks(frame(0x9, b"*" * 125), 1) + [close()], [], 1000, [b"*" * 125]
    ),
    "2.7 unsolicited pong": Case([frame(0xA, b""), close()], [Pong()], 1000, []),
    "2.8 unsolicited pong with payload": Case(
        [frame(0xA, b"unsolicited"), close()], [Pong()], 1000, []
    ),
    "2.9 pong then ping": Case(
        [frame(0xA, b"x"), frame(0x9, b"ping"), close()], [Pong()], 1000, [b"ping"]
    ),
    "2.10 ten pings": Case(
        [frame(0x9, b"%d" % i) for i in range(10)] + [close()],
        [],
        1000,
        [b"%d" % i for i in range(10)],
    ),
    # 3. Reserved bits: the connection fails; what came before still arrives.
    **{
        f"3.{rsv} RSV={rsv} on text": Case([text(b"ok"), text(b"x", rsv=rsv)], ["ok"], 1002)
        for rsv in range(1, 8)
    },
    "3.6 RSV on a ping": Case([bytes([0x89 | 0x40, 0])], [], 1002, []),
    "3.7 RSV on a close": Case([bytes([0x88 | 0x10, 2, 3, 232])], [], 1002),
    # 4. Opcodes: reserved ones fail the connection; later frames are not read.
    **{
        f"4.x opcode {op}": Case([text(b"ok"), frame(op, b"x"), frame(0x9, b"p")], ["ok"], 1002, [])
        for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15)
    },
    # 5. Fragmentation.
    "5.1 fragmented ping": Case([frame(0x9, b"a", fin=False), cont(b"b")], [], 1002, []),
    "5.2 fragmented pong": Case([frame(0xA, b"a", fin=False), cont(b"b")], [], 1002),
    "5.3 text in two fragments": Case(
        [text(b"frag", fin=False), cont(b"ment"), close()], ["fragment"], 1000
    ),
    "5.5 text in two fragments, byte by byte": Case(
        chunks(text(b"frag", fin=False) + cont(b"ment"), 1) + [close()], ["fragment"], 1000
    ),
    "5.6 ping between fragments": Case(
        [text(b"frag", fin=False), frame(0x9, b"p"), cont(b"ment"), close()],
        ["fragment"],
        1000,
        [b"p"],
    ),
    "5.8 ping between fragments, byte by byte": Case(
        chunks(text(b"frag", fin=False) + frame(0x9, b"p") + cont(b"ment"), 1) + [close()],
        ["fragment"],
        1000,
        [b"p"],
    ),
    "5.9 continuation, no message": Case([cont(b"x"), text(b"never")], [], 1002),
    "5.12 unfinished continuation, no message": Case([cont(b"x", fin=False)], [], 1002),
    "5.15 continuation after the end": Case(
        [text(b"a", fin=False), cont(b"b"), cont(b"c"), text(b"never")], ["ab"], 1002
    ),
    "5.18 two message starts": Case([text(b"a", fin=False), text(b"b")], [], 1002),
    "5.19 pings between five fragments": Case(
        [text(b"1", fin=False), frame(0x9, b"p1"), cont(b"2", fin=False), frame(0x9, b"p2")]
        + [cont(b"3", fin=False), cont(b"4", fin=False), cont(b"5"), close()],
        ["12345"],
        1000,
        [b"p1", b"p2"],
    ),
    # 6. UTF-8.
    "6.1.1 empty text": Case([text(b""), close()], [""], 1000),
    "6.1.2 three empty fragments": Case(
        [text(b"", fin=False), cont(b"", fin=False), cont(b""), close()], [""], 1000
    ),
    "6.1.3 empty, text, empty": Case(
        [text(b"", fin=False), cont(b"middle", fin=False), cont(b""), close()], ["middle"], 1000
    ),
    "6.2 valid, one fragment per byte": Case(
        [
            frame(0x1 if i == 0 else 0x0, bytes([b]), fin=i == len(T.encode()) - 1)
            for i, b in enumerate(T.encode())
        ]
        + [close()],
        [T],
        1000,
    ),
    "6.3 invalid in one frame": Case([text(T.encode() + b"\xed\xa0\x80edited")], [], 1007),
    "6.3.2 invalid, one fragment per byte": Case(
        [
            frame(0x1 if i == 0 else 0x0, bytes([b]), fin=i == 4)
            for i, b in enumerate(b"a\xed\xa0\x80b")
        ],
        [],
        1007,
    ),
    "6.4.1 invalid first fragment fails fast": Case(
        [text(T.encode() + b"\xf4\x90\x80\x80", fin=False), cont(b"edited")], [], 1007
    ),
    "6.x surrogate": Case([text(b"\xed\xbf\xbf")], [], 1007),
    "6.x overlong": Case([text(b"\xc0\xaf")], [], 1007),
    "6.x truncated at the end": Case([text(b"ok\xe0\xa0")], [], 1007),
    "6.x noncharacter is valid": Case([text(b"\xef\xbf\xbf"), close()], ["\uffff"], 1000),
    "6.x binary is not checked": Case([frame(0x2, b"\xff"), close()], [Binary(b"\xff")], 1000),
    # 7. Close handling.
    "7.1.1 text then close": Case([text(b"Hello"), close()], ["Hello"], 1000),
    "7.1.2 two closes": Case([close(), close(1001)], [], 1000),
    "7.1.3 ping after close": Case([close(), frame(0x9, b"late")], [], 1000, []),
    "7.1.4 text after close": Case([close(), text(b"late")], [], 1000),
    "7.1.5 close inside a fragmented message": Case(
        [text(b"frag", fin=False), close(), cont(b"ment")], [], 1000
    ),
    "7.3.1 close with no payload": Case([close(None)], [], 1000),
    "7.3.2 close with a 1-byte payload": Case([frame(0x8, b"\x03")], [], 1002),
    "7.3.3 close 1000": Case([close(1000)], [], 1000),
    "7.3.4 close 1000 with a reason": Case([close(1000, b"bye")], [], 1000),
    "7.3.5 close with a 123-byte reason": Case([close(1000, b"r" * 123)], [], 1000),
    "7.3.6 close with a 124-byte reason": Case([close(1000, b"r" * 124)], [], 1002),
    "7.5.1 close reason not UTF-8": Case([close(1000, b"\xce\xba\xed\xa0\x80")], [], 1007),
    **{
        f"7.7 valid code {code}": Case([close(code)], [], code)
        for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999)
    },
    **{
        f"7.9 invalid code {code}": Case([close(code)], [], 1002)
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535)
    },
    # 9. Large messages (scaled down) and the limits.
    "9.1 text of 1 MiB": Case([text(b"*" * (1 << 20)), close()], ["*" * (1 << 20)], 1000),
    "9.1 text of 4 MiB": Case([text(b"*" * (4 << 20)), close()], ["*" * (4 << 20)], 1000),
    "9.3 1 MiB in 64-byte fragments": Case(
        [frame(0x1 if i == 0 else 0x0, b"*" * 64, fin=i == (1 << 14) - 1) for i in range(1 << 14)]
        + [close()],
        ["*" * (1 << 20)],
        1000,
    ),
    "9.x message over the default limit": Case([frame_header(0x1, (16 << 20) + 1)], [], 1009),
    "9.x header announcing 2**62 bytes": Case([frame_header(0x2, 1 << 62)], [], 1009),
    "9.x length with the top bit set, no limit": Case(
        [frame_header(0x1, 1 << 63)], [], 1002, max_size=None
    ),
    "9.x fragments over a small limit": Case(
        [text(b"a" * 600, fin=False), cont(b"b" * 600)], [], 1009, max_size=1000
    ),
    "9.x empty fragments over a small limit": Case(
        [text(b"", fin=False)] + [cont(b"", fin=False)] * 100, [], 1009, max_size=1000
    ),
    "9.x masked server frame": Case([bytes([0x81, 0x82, 1, 2, 3, 4, 0x60, 0x6B])], [], 1002),
}


def read_all(transport: WSTransport) -> List[Frame]:
    """Everything ``recv()`` returns, up to and including its ``Closed`` (or an ``Idle``)."""
    got: List[Frame] = []
    while not got or not isinstance(got[-1], (Closed, Idle)):
        got.extend(transport.recv())
    return got


def ws_url(server: RecordingServer) -> str:
    return f"ws://127.0.0.1:{server.port}/v1/responses"


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_conformance(case: Case) -> None:
    """The client hands on the right messages, answers pings and fails with the right code."""
    with RecordingServer(greeting=case.frames) as server:
        transport = WSTransport(
            ws_url(server), headers={}, connect_timeout=3, max_message_size=case.max_size
        )
        transport.connect()
        transport.set_recv_timeout(3)
        try:
            got = read_all(transport)
            code = server.wait_close()
        finally:
            transport.release()
    assert isinstance(got[-1], Closed), got[-1]
    assert got[:-1] == case.messages
    assert code == case.close
    assert got[-1].code == (case.close if case.close != 1000 else got[-1].code)
    if case.pongs is not None:
        assert [p for op, p in server.received if op == 0xA] == case.pongs


def test_a_read_that_runs_out_of_memory_closes_with_1009() -> None:
    """MemoryError from a socket read becomes a Closed(1009), sent to the peer too; no raise."""
    with RecordingServer() as server:
        transport = WSTransport(ws_url(server), headers={}, connect_timeout=3)
        transport.connect()

        def read(n: int) -> bytes:
            raise MemoryError

        transport._read = read  # the socket read the transport uses
        try:
            got = transport.recv()
            code = server.wait_close()
        finally:
            transport.release()
    assert len(got) == 1 and isinstance(got[0], Closed) and got[0].code == 1009
    assert code == 1009


# -- whole sessions against scripted hostile servers ------------------------------------------


def event(request_text: str, **fields: Any) -> bytes:
    """A text frame with an event, tagged with the request's lane as a server does."""
    request = json.loads(request_text)
    if "stream_id" in request:
        fields["stream_id"] = request["stream_id"]
    return frame(0x1, json.dumps(fields).encode())


def created(request_text: str) -> bytes:
    return event(request_text, type="response.created", response=response("r", "in_progress"))


def completed(request_text: str, text: str = "done") -> bytes:
    return event(request_text, type="response.completed", response=response("r", "completed", text))


def session_for(server: RecordingServer, **kw: Any) -> Session:
    """A session on ``server`` with the real transport and no HTTP to fall back to."""
    return Session(options(url=ws_url(server), **kw))


def failure_of(session: Session, timeout: float = 10.0) -> BaseException:
    """The error ``send()`` raises, checking it comes well before ``timeout``."""
    start = time.monotonic()
    with pytest.raises(OpenAIWSError) as info:
        session.send(model="m", input="hi", timeout=timeout)
    assert time.monotonic() - start < 3.0, f"took {time.monotonic() - start:.1f}s"
    return info.value


def test_invalid_utf8_in_a_terminal_event_fails_the_request_fast_with_1007() -> None:
    """A terminal event that is not UTF-8 closes with 1007; the request sees it at once."""

    def script(request: str) -> List[bytes]:
        done = {"type": "response.completed", "response": response("r", "completed", "@@")}
        if "stream_id" in json.loads(request):
            done["stream_id"] = json.loads(request)["stream_id"]
        payload = json.dumps(done).encode().replace(b"@@", b"\xed\xa0\x80")  # a surrogate
        return [created(request), frame(0x1, payload)]

    with RecordingServer(script) as server:
        with session_for(server) as session:
            error = failure_of(session, timeout=5.0)
        assert server.wait_close() == 1007
    assert isinstance(error, ConnectionClosedError) and error.code == 1007


def test_json_nested_100000_deep_is_a_malformed_frame_and_the_reader_lives() -> None:
    """A frame nested 100,000 deep is counted and skipped; the request completes on one socket."""

    def script(request: str) -> List[bytes]:
        nested = b"[" * 100_000 + b"]" * 100_000
        return [created(request), frame(0x1, nested), completed(request, "alive")]

    with RecordingServer(script) as server, session_for(server) as session:
        assert session.send(model="m", input="hi", timeout=5).output_text == "alive"
        assert session.stats.malformed_frames == 1
        assert session.stats.connects == 1


def test_an_oversized_message_closes_with_1009_and_fails_the_request_fast() -> None:
    """A message over max_message_size is refused with 1009; the request gets a typed error."""

    def script(request: str) -> List[bytes]:
        return [created(request), frame(0x1, b" " * 5000), completed(request)]

    with RecordingServer(script) as server:
        with session_for(server, max_message_size=1000) as session:
            error = failure_of(session)
        assert server.wait_close() == 1009
    assert isinstance(error, ConnectionClosedError) and error.code == 1009


def test_the_default_limit_refuses_a_header_announcing_2_62_bytes() -> None:
    """Under the default max_message_size a 2**62-byte header is refused at once (1009)."""

    def script(request: str) -> List[bytes]:
        return [created(request), frame_header(0x1, 1 << 62)]

    with RecordingServer(script) as server:
        with session_for(server) as session:
            error = failure_of(session, timeout=5.0)
        assert server.wait_close() == 1009
    assert isinstance(error, ConnectionClosedError) and error.code == 1009


def test_a_length_with_the_top_bit_set_is_refused_even_without_a_limit() -> None:
    """With max_message_size=None a length over 2**63-1 is still refused, with 1002."""

    def script(request: str) -> List[bytes]:
        return [created(request), frame_header(0x1, 1 << 63)]

    with RecordingServer(script) as server:
        with session_for(server, max_message_size=None) as session:
            error = failure_of(session, timeout=5.0)
        assert server.wait_close() == 1002
    assert isinstance(error, ConnectionClosedError) and error.code == 1002


def test_endless_empty_fragments_are_bounded_like_a_large_message() -> None:
    """100,000 empty fragments under a 64 KiB limit are refused with 1009 after about 1,000."""

    def script(request: str) -> List[bytes]:
        return [created(request), frame(0x1, b"", fin=False) + frame(0x0, b"", fin=False) * 100_000]

    with RecordingServer(script) as server:
        with session_for(server, max_message_size=64 * 1024) as session:
            error = failure_of(session)
        assert server.wait_close() == 1009
    assert isinstance(error, ConnectionClosedError) and error.code == 1009


def test_an_event_costing_more_than_max_queue_bytes_is_reported_too_big() -> None:
    """A 20 KB event of {} objects costs ~0.5 MB decoded: too big for a 100 kB bound, and
    the stream says so (ProtocolError naming the bound), not that its consumer was slow."""

    def script(request: str) -> List[bytes]:
        empties = [{}] * 7000
        return [
            created(request),
            event(
                request,
                type="response.output_text.delta",
                item_id="msg_1",
                output_index=0,
                content_index=0,
                delta="x",
                padding=empties,
            ),
            completed(request),
        ]

    with RecordingServer(script) as server:
        with session_for(server, max_queue_bytes=100_000) as session:
            start = time.monotonic()
            with pytest.raises(OpenAIWSError) as info:
                list(session.stream(model="m", input="hi", timeout=10))
            assert time.monotonic() - start < 3.0
    error = info.value
    # Refused before decoding: the socket closes with 1009, naming the bound.
    assert isinstance(error, ConnectionClosedError) and error.code == 1009
    assert not isinstance(error, ConsumerTooSlowError)
    assert "max_queue_bytes=100000" in str(error)
    assert isinstance(error.__cause__, ProtocolError)


def test_a_send_with_more_events_than_max_queue_events_completes(emulator: Any) -> None:
    """send() of a 25,000-token answer (25,000+ events, bound 10,000) returns the text."""
    client = OpenAI(api_key="sk-emulator-test-key", base_url=emulator.base_url, max_retries=0)
    with client.ws_session(ping_interval=None) as session:
        result = session.send(
            model="m", input="word", metadata={"emulator_output_tokens": "25000"}, timeout=30
        )
    assert len(result.output_text.split()) == 25000


# -- failures no socket can cause: the scripted fake transport -------------------------------


def test_a_frame_nested_too_deep_does_not_kill_the_reader() -> None:
    """json.loads raising RecursionError is a malformed frame; the next event still arrives."""

    def script(transport: FakeTransport, request: Dict[str, Any]) -> None:
        transport.push("[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000)
        echo_script(transport, request)

    server = FakeServer(script)
    with Session(options(), transport=server.factory) as session:
        assert session.send(model="m", input="fine").output_text == "fine"
        assert session.stats.malformed_frames == 2
    assert len(server.transports) == 1


def test_nothing_escapes_the_reader_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A read raising MemoryError, then an abort that raises too: the thread ends quietly,
    and the request gets a typed error instead of hanging."""
    escaped: List[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))

    def script(transport: FakeTransport, request: Dict[str, Any]) -> None:
        transport.push(answer("r", "x", request.get("stream_id"))[0])  # response.created

        def recv() -> List[Frame]:
            if transport.released.is_set():
                return [Closed(None)]
            raise MemoryError

        def abort() -> None:
            raise OSError("abort failed")

        time.sleep(0.05)  # let the reader take the created event first
        transport.recv = recv  # type: ignore[method-assign]
        transport.abort = abort  # type: ignore[method-assign]
        transport.push_frames(Pong())  # wakes the read in progress; the next one fails

    server = FakeServer(script)
    with Session(options(request_timeout=10.0, max_replays=1), transport=server.factory) as session:
        start = time.monotonic()
        with pytest.raises(ConnectionClosedError):
            session.send(model="m", input="x")
        assert time.monotonic() - start < 3.0
    for transport in server.transports:
        assert transport.released.wait(1)
    assert escaped == []
