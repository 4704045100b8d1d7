"""Every request gets exactly its own answer, and recovery decides right (end to end).

Against the emulator (``stream_id_mode="ignore"`` plays a server that ignores
lanes), the scripted fake transport of ``fake_transport.py`` (faults at exact
moments) and raw servers from ``servers.py`` (frames no real server sends).
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any, Dict, List, Optional

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
from servers import SilentServer, frame

import openai_ws
from openai_ws import (
    ConnectionClosedError,
    PermissionDeniedError,
    RateLimitError,
    ResponseCreateRequest,
)
from openai_ws._transports.ws import Closed
from openai_ws.emulator import Emulator, EmulatorConfig
from openai_ws.errors import ConnectError
from openai_ws.session import Session

KEY = "sk-routing-test"
EMULATOR_API_KEY = "sk-emulator-test-key"  # the conftest emulator fixture's key


def ask(text: str, **metadata: str) -> ResponseCreateRequest:
    return ResponseCreateRequest(
        model="gpt-4o-mini", input=text, metadata=dict(metadata) if metadata else None
    )


def concurrently(*calls: Any, gap: float = 0.05) -> List[Any]:
    """Run each call in its own thread, started ``gap`` seconds apart; their results."""
    results: List[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
        time.sleep(gap)
    for thread in threads:
        thread.join(10)
    return results


# -- 1. servers that ignore stream_id ---------------------------------------------


def test_caller_stream_id_on_a_lane_ignoring_server_without_lanes() -> None:
    """lanes=False, A tagged by its caller (slow), B untagged: each gets its own text."""
    config = EmulatorConfig(stream_id_mode="ignore")
    with Emulator(api_key=KEY, config=config) as emu:
        client = openai_ws.OpenAI(api_key=KEY, base_url=emu.base_url)
        with client.ws_session(lanes=False) as session:
            slow = attrs_evolve(ask("alpha " * 8, emulator_token_interval="0.01"), "mine")
            a, b = concurrently(
                lambda: session.send(slow).output_text,
                lambda: session.send(ask("bravo")).output_text,
            )
    assert a == ("alpha " * 8).strip() or a.startswith("alpha"), a
    assert b == "bravo", b


def attrs_evolve(request: ResponseCreateRequest, stream_id: str) -> ResponseCreateRequest:
    import attrs

    return attrs.evolve(request, stream_id=stream_id)


def test_lanes_ignored_is_remembered_on_the_next_socket() -> None:
    """Learned on one socket, "lanes ignored" holds on the next: tagged and untagged share a FIFO."""
    config = EmulatorConfig(stream_id_mode="ignore")
    with Emulator(api_key=KEY, config=config) as emu:
        client = openai_ws.OpenAI(api_key=KEY, base_url=emu.base_url)
        with client.ws_session() as session:
            assert session.send(ask("learn")).output_text == "learn"
            session.send(ask("drop", emulator_close_code="1011", emulator_close_times="1"))
            assert session.stats.reconnects == 1
            slow = attrs_evolve(ask("charlie " * 8, emulator_token_interval="0.01"), "mine")
            a, b = concurrently(
                lambda: session.send(slow).output_text,
                lambda: session.send(ask("delta")).output_text,
            )
    assert isinstance(a, str) and a.startswith("charlie"), a
    assert b == "delta", b


def test_lane_ignoring_server_scripted_raw() -> None:
    """A raw server that runs one FIFO and never tags: answers go to their own requests."""
    held: List[Dict[str, Any]] = []

    def script(text: str) -> List[bytes]:
        import json

        held.append(json.loads(text))
        if len(held) < 2:
            return []  # the first answer is slow: it comes once the second create arrived
        frames = []
        for i, create in enumerate(held):
            for event in answer(f"resp_{i}", str(create["input"]), None):
                frames.append(frame(0x1, json.dumps(event).encode()))
        held.clear()
        return frames

    with SilentServer(script) as server:
        client = openai_ws.OpenAI(api_key=KEY, base_url=server.url)
        with client.ws_session(lanes=False) as session:
            tagged = ResponseCreateRequest(model="m", input="echo", stream_id="mine")
            a, b = concurrently(
                lambda: session.send(tagged).output_text,
                lambda: session.send(model="m", input="foxtrot").output_text,
            )
    assert (a, b) == ("echo", "foxtrot")


def test_lanes_ignored_is_remembered_on_the_next_socket_scripted_raw() -> None:
    """Learned on one socket, "lanes ignored" holds after a reconnect, for caller tags too."""
    import json

    held: List[Dict[str, Any]] = []
    state = {"dropped": False}

    def answer_frames(rid: str, text: str) -> List[bytes]:
        return [frame(0x1, json.dumps(e).encode()) for e in answer(rid, text, None)]

    def script(text: str) -> List[bytes]:
        create = json.loads(text)
        if create["input"] == "learn":
            return answer_frames("resp_learn", "learn")  # untagged: lanes are ignored
        if create["input"] == "drop" and not state["dropped"]:
            state["dropped"] = True
            return [frame(0x8, (1011).to_bytes(2, "big"))]
        if create["input"] == "drop":
            return answer_frames("resp_drop", "drop")
        held.append(create)
        if len(held) < 2:
            return []
        frames = [f for i, c in enumerate(held) for f in answer_frames(f"r{i}", str(c["input"]))]
        held.clear()
        return frames

    with SilentServer(script) as server:
        client = openai_ws.OpenAI(api_key=KEY, base_url=server.url)
        with client.ws_session() as session:
            assert session.send(model="m", input="learn").output_text == "learn"
            assert session.send(model="m", input="drop").output_text == "drop"
            assert session.stats.reconnects == 1
            tagged = ResponseCreateRequest(model="m", input="lima", stream_id="mine")
            a, b = concurrently(
                lambda: session.send(tagged).output_text,
                lambda: session.send(model="m", input="mike").output_text,
            )
    assert (a, b) == ("lima", "mike")


# -- 2. a request that fails before its frame leaves ---------------------------------


def test_unserialisable_body_leaves_no_ghost() -> None:
    """A body that is not JSON raises TypeError and registers nothing: the next answers are right."""
    server = FakeServer(echo_script)
    with Session(options(use_lanes=False), transport=server.factory) as session:
        for _ in range(40):
            with pytest.raises(TypeError, match="cannot be sent"):
                session.send(ask("bad", when=datetime.datetime.now()))  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="JSON"):
            session.send(model="m", input="nan", temperature=float("nan"))
        assert session.send(model="m", input="golf").output_text == "golf"
        assert session.send(model="m", input="hotel").output_text == "hotel"
    assert [f["input"] for f in server.sent] == ["golf", "hotel"]


def test_interrupted_send_drops_the_socket_and_leaves_no_ghost() -> None:
    """Ctrl-C while a frame is written poisons that socket; later requests get their own answers."""
    server = FakeServer(echo_script)
    interrupts = {"left": 35}
    original = FakeTransport.send_text

    def flaky_send(self: FakeTransport, data: str, deadline: Optional[float] = None) -> None:
        if interrupts["left"]:
            interrupts["left"] -= 1
            raise KeyboardInterrupt
        original(self, data, deadline)

    FakeTransport.send_text = flaky_send  # type: ignore[method-assign]
    try:
        with Session(options(), transport=server.factory) as session:
            for _ in range(35):
                with pytest.raises(KeyboardInterrupt):
                    session.send(model="m", input="lost")
            assert session.send(model="m", input="india").output_text == "india"
            assert session.send(model="m", input="juliet").output_text == "juliet"
    finally:
        FakeTransport.send_text = original  # type: ignore[method-assign]


# -- 3. fork -----------------------------------------------------------------------

_FORK_SCRIPT = """
import os, sys, threading, time
import openai_ws
from openai_ws.emulator import Emulator

with Emulator(api_key="k") as emu:
    client = openai_ws.OpenAI(api_key="k", base_url=emu.base_url)
    session = client.ws_session()
    assert session.send(model="m", input="warm").output_text == "warm"
    slow = {}
    def parent_request():
        slow["text"] = session.send(
            model="m", input="parent " * 20, metadata={"emulator_token_interval": "0.02"}
        ).output_text
    worker = threading.Thread(target=parent_request)
    worker.start()
    time.sleep(0.1)
    pid = os.fork()
    if pid == 0:
        answer = session.send(model="m", input="child").output_text
        sys.stdout.write(f"child:{answer}\\n")
        sys.stdout.flush()
        sys.exit(0)  # a normal exit: finalizers and atexit run in the child
    _, status = os.waitpid(pid, 0)
    worker.join(10)
    print(f"child-exit:{os.waitstatus_to_exitcode(status)}")
    print(f"parent:{slow.get('text', '').split()[0]}")
    print(f"after:{session.send(model='m', input='after').output_text}")
    print(f"connects:{session.stats.connects}")
    session.close()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_forked_child_uses_its_own_socket() -> None:
    """A forked child opens its own socket; the parent's request and socket are untouched."""
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", _FORK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))},
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert "child:child" in out, out
    assert "child-exit:0" in out
    assert "parent:parent" in out, out
    assert "after:after" in out
    assert "connects:1" in out, out  # the parent never lost its socket


# -- 4. the finalizer ----------------------------------------------------------------


def test_finalizer_never_waits_for_the_engine_lock() -> None:
    """A collected session's finalizer run while the engine's lock is held returns at once."""
    server = FakeServer(echo_script)
    session = Session(options(), transport=server.factory)
    engine = session._engine
    done = threading.Event()

    def collect_under_the_lock() -> None:
        with engine._lock:  # as a reader thread would hold it when the GC runs
            session._finalizer()
        done.set()

    worker = threading.Thread(target=collect_under_the_lock, daemon=True)
    worker.start()
    assert done.wait(3), "the finalizer deadlocked on the engine's lock"
    worker.join(3)
    assert session.closed
    with pytest.raises(openai_ws.SessionClosedError):
        session.send(model="m", input="x")
    assert server.last.released.wait(3)  # the reader stopped by itself
    session.close()


# -- 5. long answers -----------------------------------------------------------------


def test_send_of_a_long_answer_is_not_a_slow_consumer(emulator: Emulator) -> None:
    """send() of an answer with far more events than the queue bound returns the answer."""
    client = openai_ws.OpenAI(api_key=EMULATOR_API_KEY, base_url=emulator.base_url)
    with client.ws_session(max_queue_events=1000) as session:
        response = session.send(ask("word", emulator_output_tokens="5000"))
    assert len(response.output_text.split()) >= 1000


# -- 8. closes that would happen again ------------------------------------------------


def test_policy_close_sends_the_culprit_over_http_once_and_replays_the_other() -> None:
    """A 1008 close right after a frame: that request goes over HTTP once; the other is replayed."""
    started = threading.Event()

    def script(transport: FakeTransport, frame_: Dict[str, Any]) -> None:
        if frame_["input"] == "busy" and len(transport.server.transports) == 1:
            transport.push(*answer("resp_busy", "busy", frame_.get("stream_id"))[:2])
            started.set()
        elif frame_["input"] == "poison":
            transport.close_with(1008, "policy violation")
        else:
            echo_script(transport, frame_)

    server = FakeServer(script)
    http = FakeHTTP()
    with Session(options(), http=lambda: http, transport=server.factory) as session:  # type: ignore[arg-type,return-value]
        busy = []
        worker = threading.Thread(
            target=lambda: busy.append(session.send(model="m", input="busy").output_text)
        )
        worker.start()
        assert started.wait(3)
        assert session.send(model="m", input="poison").output_text == "http:poison"
        worker.join(5)
    assert busy == ["busy"]  # replayed on the next socket
    assert [b["input"] for b in http.bodies] == ["poison"]
    assert sum(1 for f in server.sent if f["input"] == "poison") == 1


def test_policy_close_without_http_is_a_typed_error_fast() -> None:
    """Without HTTP the culprit of a 1008 close fails at once, naming the code; not 10 replays."""
    server = FakeServer(lambda transport, frame_: transport.close_with(1008, "policy"))
    with Session(options(), transport=server.factory) as session:
        started = time.monotonic()
        with pytest.raises(ConnectionClosedError, match="1008") as info:
            session.send(model="m", input="x")
        assert time.monotonic() - started < 2
    assert info.value.code == 1008
    assert len(server.sent) == 1


def test_refused_frame_is_not_replayed() -> None:
    """A server frame the reader refuses (an RSV bit) fails its request fast, sent once."""
    sent: List[str] = []

    def script(text: str) -> List[bytes]:
        sent.append(text)
        return [bytes([0x80 | 0x40 | 0x1, 2]) + b"{}"]  # RSV1 set: 1002

    with SilentServer(script) as server:
        client = openai_ws.OpenAI(api_key=KEY, base_url=server.url)
        with client.ws_session(reconnect_attempts=0) as session:
            started = time.monotonic()
            with pytest.raises(openai_ws.OpenAIWSError) as info:
                session.send(model="m", input="x")
            elapsed = time.monotonic() - started
    assert elapsed < 3, elapsed
    assert len(sent) == 1, sent
    # HTTP was tried once (the silent server does not speak it): a typed error, not a hang.
    assert not isinstance(info.value, openai_ws.ReplayUnsafeError)


def test_our_size_limit_fails_the_request_without_replays(emulator: Emulator) -> None:
    """A message over max_message_size fails its request at once: not re-sent ten times."""
    client = openai_ws.OpenAI(api_key=EMULATOR_API_KEY, base_url=emulator.base_url)
    with client.ws_session(max_message_size=2000) as session:
        with pytest.raises(ConnectionClosedError, match="1009") as info:
            session.send(ask("word " * 1000))
        assert type(info.value) is ConnectionClosedError  # not "replay unsafe": a send() caller
        assert "max_message_size" in str(info.value)
        assert session.stats.replays == 0  # saw nothing, but the same answer would not fit again
        assert session.send(ask("small")).output_text == "small"


# -- 9. refused upgrades ---------------------------------------------------------------


def test_forbidden_upgrade_is_decided_by_the_http_answer() -> None:
    """A 403 upgrade sends the request over HTTP; a 403 there too raises PermissionDeniedError."""
    server = FakeServer(echo_script)
    server.refuse_next.append(ConnectError("refused", status=403))
    denied = PermissionDeniedError("forbidden", status=403, code="forbidden")
    http = FakeHTTP(error=denied)
    with Session(options(), http=lambda: http, transport=server.factory) as session:  # type: ignore[arg-type,return-value]
        with pytest.raises(PermissionDeniedError):
            session.send(model="m", input="x")
    assert len(http.bodies) == 1


# -- 10. back to the socket --------------------------------------------------------------


def test_socket_is_used_again_after_the_cooldown() -> None:
    """After connects failed the session uses HTTP, then the socket again once it is back."""
    server = FakeServer(echo_script)
    server.refuse_next.extend(ConnectError("down") for _ in range(3))
    http = FakeHTTP()
    opts = options(reconnect_attempts=1, fallback_cooldown=0.2, fallback_cooldown_max=0.4)
    with Session(opts, http=lambda: http, transport=server.factory) as session:  # type: ignore[arg-type,return-value]
        assert session.send(model="m", input="a").output_text == "http:a"
        time.sleep(0.25)
        # The first try after the cooldown fails again: HTTP, and a longer cooldown.
        assert session.send(model="m", input="b").output_text == "http:b"
        assert session.send(model="m", input="c").output_text == "http:c"
        time.sleep(0.45)
        assert session.send(model="m", input="d").output_text == "d"  # the socket is back
        assert session.send(model="m", input="e").output_text == "e"
    assert [b["input"] for b in http.bodies] == ["a", "b", "c"]


# -- a reconnect that never answers (issue: every timeout is a total deadline) ---------------


def test_waiting_senders_end_at_their_own_deadline_while_a_reconnect_hangs() -> None:
    """4 senders with timeout=1 behind a reconnect that never answers all end within ~1 s."""
    server = FakeServer(echo_script)
    with Session(options(connect_timeout=5.0), transport=server.factory) as session:
        assert session.send(model="m", input="first").output_text == "first"
        server.hang_connects = True
        server.last.close_with(1011)
        while not server.last.released.is_set():
            time.sleep(0.005)
        started = time.monotonic()
        outcomes = concurrently(
            *[lambda: session.send(model="m", input="x", timeout=1.0) for _ in range(4)], gap=0
        )
        elapsed = time.monotonic() - started
        server.hung.set()
    assert elapsed < 2.0, elapsed
    assert all(isinstance(o, (openai_ws.RequestTimeoutError, ConnectError)) for o in outcomes), (
        outcomes
    )


# -- 11. root causes --------------------------------------------------------------------


def test_connection_closed_error_chains_the_transport_cause() -> None:
    """Giving up after replays raises ConnectionClosedError from what the transport saw."""
    reset = ConnectionResetError(104, "Connection reset by peer")

    def script(transport: FakeTransport, frame_: Dict[str, Any]) -> None:
        transport.push_frames(Closed(None, "", reset))

    server = FakeServer(script)
    with Session(options(max_replays=1), transport=server.factory) as session:
        with pytest.raises(ConnectionClosedError) as info:
            session.send(model="m", input="x")
    assert info.value.__cause__ is reset


# -- 7. one retry rule ---------------------------------------------------------------------


def test_long_retry_hint_on_the_socket_raises_with_retry_after() -> None:
    """A 429 asking for 120 s is not slept on: RateLimitError with retry_after at once."""

    def script(transport: FakeTransport, frame_: Dict[str, Any]) -> None:
        event = error_event(
            429,
            "rate_limit_exceeded",
            "slow down",
            kind="rate_limit_error",
            lane=frame_.get("stream_id"),
        )
        event["error"]["headers"] = {"retry-after": "120"}
        transport.push(event)

    server = FakeServer(script)
    with Session(options(), transport=server.factory) as session:
        started = time.monotonic()
        with pytest.raises(RateLimitError) as info:
            session.send(model="m", input="x")
        assert time.monotonic() - started < 1
    assert info.value.retry_after == 120.0
    assert len(server.sent) == 1


def test_status_less_overloaded_error_is_retried() -> None:
    """An error event naming server_is_overloaded but no status is retried like a 503."""

    def script(transport: FakeTransport, frame_: Dict[str, Any]) -> None:
        if len(transport.server.sent) == 1:
            transport.push(
                error_event(
                    None,
                    "server_is_overloaded",
                    "try again in 10ms",
                    kind="server_error",
                    lane=frame_.get("stream_id"),
                )
            )
        else:
            echo_script(transport, frame_)

    server = FakeServer(script)
    with Session(options(), transport=server.factory) as session:
        assert session.send(model="m", input="kilo").output_text == "kilo"
        assert session.stats.retries == 1


if __name__ == "__main__":  # pragma: no cover
    print(textwrap.dedent(__doc__ or ""))


def test_learned_decimal_shape_counts_a_written_fraction_of_one() -> None:
    """After 1.0 closed the socket silently, later requests with a float there go over HTTP."""
    from openai_ws._session.fallback import FallbackPolicy

    policy = FallbackPolicy()
    policy.remember_silent_close({"model": "m", "temperature": 1.0})
    assert policy.reason({"model": "m", "temperature": 1.0}, now=0.0) is not None
    assert policy.reason({"model": "m", "temperature": 0.2, "top_p": 0.5}, now=0.0) is not None
    assert policy.reason({"model": "m", "temperature": 1}, now=0.0) is None  # the integer 1


# -- a peer that stops reading (every timeout is a total deadline) -------------------------


def _deaf_after_upgrade(peer: Any, conn: Any, head: bytes) -> None:
    """Complete the WebSocket upgrade, then never read again."""
    import base64
    import hashlib

    from servers import _GUID

    key = next(
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + _GUID.encode()).digest())
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    peer.stopping.wait(30)


def test_a_large_send_to_a_peer_that_stops_reading_ends_at_its_timeout() -> None:
    """A 20 MB request with timeout=1 to a peer that never reads returns in about 1 s."""
    from servers import RawPeer

    with RawPeer(_deaf_after_upgrade) as peer:
        client = openai_ws.OpenAI(api_key=KEY, base_url=peer.url)
        with client.ws_session(reconnect_attempts=0) as session:
            started = time.monotonic()
            with pytest.raises(openai_ws.RequestTimeoutError):
                session.send(model="m", input="x" * 20_000_000, timeout=1.0)
            elapsed = time.monotonic() - started
        client.close()
    assert elapsed < 2.5, elapsed


def test_close_while_a_send_is_stuck_returns_within_close_timeout() -> None:
    """close() from another thread while a send is blocked returns within close_timeout."""
    from servers import RawPeer

    with RawPeer(_deaf_after_upgrade) as peer:
        client = openai_ws.OpenAI(api_key=KEY, base_url=peer.url)
        session = client.ws_session(close_timeout=1.0)
        errors: List[BaseException] = []

        def stuck() -> None:
            try:
                session.send(model="m", input="y" * 20_000_000, timeout=30)
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=stuck)
        worker.start()
        time.sleep(0.5)  # the socket buffers are full by now
        started = time.monotonic()
        session.close()
        closing = time.monotonic() - started
        worker.join(5)
        client.close()
    assert closing < 1.5, closing
    assert not worker.is_alive()
    assert errors and isinstance(errors[0], openai_ws.OpenAIWSError), errors


# -- session.usage -------------------------------------------------------------------


def test_session_usage_counts_every_answer_once(emulator: Emulator) -> None:
    """session.usage sums the answers of send, stream, a replay and an HTTP fallback, once each."""
    client = openai_ws.OpenAI(api_key=EMULATOR_API_KEY, base_url=emulator.base_url)
    with client.ws_session() as session:
        answers = [
            session.send(ask("one two")),
            session.send(
                ask("a replayed one", emulator_close_code="1011", emulator_close_times="1")
            ),
            session.send(ask("over http", emulator_close_code="1000", emulator_close_times="1")),
        ]
        final = [e for e in session.stream(ask("a stream")) if e.type == "response.completed"]
        answers.append(final[0].response)  # type: ignore[attr-defined]
        usage = session.usage
        stats = session.stats
    client.close()
    assert stats.replays == 1 and stats.http_fallbacks == 1
    assert usage.responses == 4
    assert usage.input_tokens == sum(a.usage.input_tokens for a in answers if a.usage)
    assert usage.output_tokens == sum(a.usage.output_tokens for a in answers if a.usage)
    assert usage.total_tokens == sum(a.usage.total_tokens for a in answers if a.usage)


def test_session_usage_of_a_resumed_stream_counts_once(emulator: Emulator) -> None:
    """A stored stream cut mid-answer and read to its end over HTTP is one answer."""
    client = openai_ws.OpenAI(api_key=EMULATOR_API_KEY, base_url=emulator.base_url)
    with client.ws_session() as session:
        cut = ask(
            "a b c d e f g",
            emulator_close_code="1006",
            emulator_close_after="4",
            emulator_token_interval="0.01",
        )
        events = list(session.stream(cut))
        assert session.stats.resumed_streams == 1
        assert session.usage.responses == 1
        done = events[-1].response  # type: ignore[attr-defined]
        assert session.usage.output_tokens == done.usage.output_tokens
    client.close()
