"""The fault matrix: what a caller sees when the socket or the server misbehaves.

Every fault is driven through the real protocol by the emulator (request
metadata or server settings), for ``send()`` and ``stream()``, with one request
and with eight concurrent ones. Each test checks that nothing hangs, nothing is
lost, no request is answered twice; the autouse fixture in conftest.py checks
that no thread (reader threads included) is left behind.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterator, List, Union

import attrs
import pytest

from openai_ws import (
    ConnectError,
    InternalServerError,
    OpenAI,
    PreviousResponseNotFoundError,
    RateLimitError,
    ReplayUnsafeError,
    RequestTimeoutError,
    Response,
    ResponseCompleted,
    ResponseCreateRequest,
    ResponseOutputTextDelta,
    Session,
    SessionClosedError,
)
from openai_ws.emulator import Emulator, EmulatorConfig

KEY = "sk-emulator-resilience"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=KEY) as server:
        yield server


def make_client(emu: Emulator, **options: Any) -> OpenAI:
    options.setdefault("max_retries", 2)
    return OpenAI(api_key=KEY, base_url=emu.base_url, **options)


def ask(text: str, **metadata: str) -> ResponseCreateRequest:
    return ResponseCreateRequest(model="gpt-test", input=text, metadata=metadata or None)


Outcome = Union[Response, BaseException]


def via_send(session: Session, request: ResponseCreateRequest) -> Outcome:
    try:
        return session.send(request, timeout=20)
    except Exception as exc:
        return exc


def via_stream(session: Session, request: ResponseCreateRequest) -> Outcome:
    """Consume a stream; return the completed response, checking the deltas match it."""
    deltas: List[str] = []
    try:
        for event in session.stream(request, timeout=20):
            if isinstance(event, ResponseOutputTextDelta):
                deltas.append(event.delta)
            elif isinstance(event, ResponseCompleted):
                assert "".join(deltas) == event.response.output_text, "stream answered twice?"
                return event.response
    except Exception as exc:
        return exc
    raise AssertionError("the stream ended without a terminal event")


MODES: Dict[str, Callable[[Session, ResponseCreateRequest], Outcome]] = {
    "send": via_send,
    "stream": via_stream,
}


def run_many(session: Session, mode: str, requests: List[ResponseCreateRequest]) -> List[Outcome]:
    """Run the requests concurrently (one thread each), in a bounded time."""
    call = MODES[mode]
    with ThreadPoolExecutor(len(requests)) as pool:
        futures = [pool.submit(call, session, r) for r in requests]
        return [f.result(timeout=30) for f in futures]


def texts(n: int, fault: str) -> List[str]:
    return [f"{fault} request {i} words" for i in range(n)]


matrix = pytest.mark.parametrize(
    ("mode", "n"), [("send", 1), ("stream", 1), ("send", 8), ("stream", 8)]
)


# -- silent close -----------------------------------------------------------------


@matrix
def test_silent_close_before_any_event_is_completed_over_http(
    emu: Emulator, mode: str, n: int
) -> None:
    """Code 1000 before any event: every request is answered over HTTP, then the socket reopens."""
    client = make_client(emu)
    with client.ws_session() as session:
        inputs = texts(n, "silent")
        requests = [ask(t, emulator_close_code="1000", emulator_close_times="1") for t in inputs]
        outcomes = run_many(session, mode, requests)
        assert [getattr(o, "output_text", o) for o in outcomes] == inputs
        stats = session.stats
        # Each request is answered once: over HTTP after a clean 1000, or on a
        # new socket when the close frame was lost to a TCP reset (a request
        # sent as the server closed makes the kernel reset the connection).
        assert stats.http_fallbacks >= 1
        assert stats.http_fallbacks + stats.replays >= n
        connects = stats.connects
        after = session.send(ask("back on the socket"))
        assert after.output_text == "back on the socket"
        assert session.stats.connects == connects + 1
        assert session.stats.http_fallbacks == stats.http_fallbacks
    assert emu.stats.get("http_creates") == stats.http_fallbacks


@matrix
def test_silent_close_after_events_raises_how_far_it_got(emu: Emulator, mode: str, n: int) -> None:
    """Code 1000 after events (store=false): a stream that delivered events raises
    ReplayUnsafeError; a send(), whose caller saw nothing, is completed over HTTP; none is
    answered twice. (A stored response's stream is read to its end instead.)"""
    client = make_client(emu)
    with client.ws_session() as session:
        requests = [
            attrs.evolve(
                ask(
                    t,
                    emulator_close_code="1000",
                    emulator_close_after="4",
                    emulator_token_interval="0.01",
                ),
                store=False,
            )
            for t in texts(n, "late")
        ]
        outcomes = run_many(session, mode, requests)
        unsafe = [o for o in outcomes if isinstance(o, ReplayUnsafeError)]
        if mode == "send":
            assert not unsafe, outcomes
        else:
            assert unsafe, outcomes
        for o, text in zip(outcomes, texts(n, "late")):
            if isinstance(o, ReplayUnsafeError):
                assert o.events_received > 0
                # None when the close frame was lost to a TCP reset (see above)
                assert o.code in (1000, None)
                assert o.response_id is not None and o.response_id.startswith("resp_")
                assert "event" in str(o)
            else:
                # a send(), or a stream with no event yet: completed over HTTP
                assert isinstance(o, Response) and o.output_text == text


def test_abnormal_close_after_events_is_not_replayed(emu: Emulator) -> None:
    """An abrupt drop after a store=false stream delivered events raises ReplayUnsafeError."""
    client = make_client(emu)
    with client.ws_session() as session:
        request = attrs.evolve(
            ask("a b c d e f", emulator_close_code="1006", emulator_close_after="3"), store=False
        )
        seen = []
        with pytest.raises(ReplayUnsafeError) as info:
            for event in session.stream(request):
                seen.append(event)
        assert info.value.events_received == 3 == len(seen)
        assert info.value.code is None
        assert session.send(ask("next")).output_text == "next"


def test_abnormal_close_after_events_replays_a_send(emu: Emulator) -> None:
    """An abrupt drop after events reached a send() (whose caller saw none) is replayed."""
    client = make_client(emu)
    with client.ws_session() as session:
        request = ask(
            "a b c d e f",
            emulator_close_code="1006",
            emulator_close_after="3",
            emulator_close_times="1",
        )
        assert session.send(request).output_text == "a b c d e f"
        assert session.stats.replays == 1


# -- server errors ----------------------------------------------------------------


@matrix
def test_rate_limit_error_is_retried_after_the_hint(emu: Emulator, mode: str, n: int) -> None:
    """A 429 with a retry hint is retried after that delay and then answered."""
    client = make_client(emu)
    with client.ws_session() as session:
        inputs = texts(n, "limited")
        requests = [
            ask(
                t,
                emulator_error="rate_limit_exceeded",
                emulator_error_times="1",
                emulator_retry_after="0.2",
            )
            for t in inputs
        ]
        started = time.monotonic()
        outcomes = run_many(session, mode, requests)
        elapsed = time.monotonic() - started
        assert [getattr(o, "output_text", o) for o in outcomes] == inputs
        assert session.stats.retries == n
    assert elapsed >= 0.2  # the hint was honoured


def test_insufficient_quota_is_not_retried(emu: Emulator) -> None:
    """insufficient_quota raises RateLimitError at once, without retrying."""
    client = make_client(emu)
    with client.ws_session() as session:
        with pytest.raises(RateLimitError) as info:
            session.send(ask("broke", emulator_error="insufficient_quota"))
        assert info.value.code == "insufficient_quota" and info.value.status == 429
        assert session.stats.retries == 0


@matrix
def test_server_error_is_retried(emu: Emulator, mode: str, n: int) -> None:
    """A 500 before any output is retried with backoff and then answered."""
    client = make_client(emu)
    with client.ws_session() as session:
        inputs = texts(n, "flaky")
        requests = [ask(t, emulator_error="server_error", emulator_error_times="1") for t in inputs]
        outcomes = run_many(session, mode, requests)
        assert [getattr(o, "output_text", o) for o in outcomes] == inputs
        assert session.stats.retries == n


@pytest.mark.parametrize("mode", ["send", "stream"])
def test_server_error_gives_up_after_max_retries(emu: Emulator, mode: str) -> None:
    """A 500 that persists raises InternalServerError after max_retries retries."""
    client = make_client(emu, max_retries=2)
    with client.ws_session() as session:
        outcome = MODES[mode](session, ask("down", emulator_error="server_error"))
        assert isinstance(outcome, InternalServerError)
        assert outcome.status == 500
        assert session.stats.retries == 2


@matrix
def test_previous_response_not_found_explains_itself(emu: Emulator, mode: str, n: int) -> None:
    """previous_response_not_found raises its typed error with advice; the session goes on."""
    client = make_client(emu)
    with client.ws_session() as session:
        requests = [
            ResponseCreateRequest(
                model="m", input=t, store=False, previous_response_id=f"resp_gone{i}"
            )
            for i, t in enumerate(texts(n, "orphan"))
        ]
        outcomes = run_many(session, mode, requests)
        for o in outcomes:
            assert isinstance(o, PreviousResponseNotFoundError)
            assert "store=true" in str(o) and "without previous_response_id" in str(o)
        assert session.send(ask("fine")).output_text == "fine"
        assert session.stats.retries == 0


# -- connection age ---------------------------------------------------------------


@matrix
def test_connection_age_limit_reconnects_and_replays(mode: str, n: int) -> None:
    """websocket_connection_limit_reached: a new socket is opened and the request replayed."""
    config = EmulatorConfig(max_connection_age=0.3)
    with Emulator(api_key=KEY, config=config) as server:
        client = make_client(server)
        with client.ws_session() as session:
            assert session.send(ask("young socket")).output_text == "young socket"
            time.sleep(0.4)
            inputs = texts(n, "aged")
            outcomes = run_many(session, mode, [ask(t) for t in inputs])
            assert [getattr(o, "output_text", o) for o in outcomes] == inputs
            stats = session.stats
    assert stats.reconnects >= 1
    assert stats.http_fallbacks == 0


def test_old_socket_is_rotated_between_requests(emu: Emulator) -> None:
    """A socket older than max_connection_age is replaced; a request on it still finishes."""
    client = make_client(emu)
    with client.ws_session(max_connection_age=0.3) as session:
        slow = session.stream(ask("slow " * 40, emulator_token_interval="0.02"))
        first = next(slow)
        time.sleep(0.35)
        assert session.send(ask("on a new socket")).output_text == "on a new socket"
        rest = [first, *slow]
        assert isinstance(rest[-1], ResponseCompleted)
        assert rest[-1].response.output_text == "slow " * 39 + "slow "
        assert session.stats.connects == 2
        assert session.stats.replays == 0


# -- bad frames and lanes -----------------------------------------------------------


@matrix
def test_malformed_frames_are_skipped(emu: Emulator, mode: str, n: int) -> None:
    """A frame that is not JSON is counted and skipped; every request is answered."""
    client = make_client(emu)
    with client.ws_session() as session:
        inputs = texts(n, "garbled")
        outcomes = run_many(session, mode, [ask(t, emulator_malformed_after="3") for t in inputs])
        assert [getattr(o, "output_text", o) for o in outcomes] == inputs
        assert session.stats.malformed_frames == n


@pytest.mark.parametrize("server_mode", ["reject", "ignore"])
@matrix
def test_server_without_lanes(mode: str, n: int, server_mode: str) -> None:
    """A server that refuses or ignores stream_id still answers each request with its own text."""
    with Emulator(api_key=KEY, config=EmulatorConfig(stream_id_mode=server_mode)) as server:
        client = make_client(server)
        with client.ws_session() as session:
            inputs = texts(n, server_mode)
            outcomes = run_many(session, mode, [ask(t) for t in inputs])
            assert [getattr(o, "output_text", o) for o in outcomes] == inputs
            assert session.stats.unroutable_events == 0


# -- connecting ---------------------------------------------------------------------


def test_server_down_at_connect_then_up() -> None:
    """The session retries the connect with backoff and uses the server once it is up."""
    server = Emulator(api_key=KEY)
    server.start()
    base_url = server.base_url
    server.stop()
    timer = threading.Timer(0.6, server.start)
    timer.start()
    try:
        client = OpenAI(api_key=KEY, base_url=base_url, max_retries=0)
        with client.ws_session(reconnect_attempts=6) as session:
            assert session.send(ask("you are back")).output_text == "you are back"
            assert session.stats.http_fallbacks == 0
    finally:
        timer.join()
        server.stop()


def test_server_that_stays_down_fails_cleanly() -> None:
    """With nothing listening, the session gives up and the request raises ConnectError."""
    server = Emulator(api_key=KEY)
    server.start()
    base_url = server.base_url
    server.stop()
    client = OpenAI(api_key=KEY, base_url=base_url, max_retries=0, connect_timeout=0.5)
    started = time.monotonic()
    with client.ws_session(reconnect_attempts=2) as session, pytest.raises(ConnectError):
        session.send(ask("anyone?"))
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("status", [426, 404, 405, 403])
def test_upgrade_refused_uses_http(caplog: pytest.LogCaptureFixture, status: int) -> None:
    """An upgrade refused with 426, 404, 405 or 403 by a server that serves HTTP switches
    the session to HTTP, logged once."""
    caplog.set_level(logging.INFO, logger="openai_ws")
    with Emulator(api_key=KEY, config=EmulatorConfig(upgrade_status=status)) as server:
        client = make_client(server)
        with client.ws_session() as session:
            for i in range(3):
                assert session.send(ask(f"http {i}")).output_text == f"http {i}"
            assert session.stats.connects == 0
            assert session.stats.http_fallbacks == 3
    switches = [r for r in caplog.records if "using HTTP for this session" in r.getMessage()]
    assert len(switches) == 1
    assert str(status) in switches[0].getMessage()


def test_upgrade_unauthorized_is_raised() -> None:
    """A 401 on the upgrade is a bad key: it raises at once, no fallback."""
    with Emulator(api_key=KEY, config=EmulatorConfig(upgrade_status=401)) as server:
        client = make_client(server)
        with pytest.raises(ConnectError) as info:
            client.ws_session()
        assert info.value.status == 401


def test_counters_are_visible(emu: Emulator) -> None:
    """Reconnects, fallbacks and retries show up in session.stats."""
    client = make_client(emu)
    with client.ws_session() as session:
        session.send(ask("a", emulator_close_code="1011", emulator_close_times="1"))
        session.send(ask("b", emulator_close_code="1000", emulator_close_times="1"))
        session.send(ask("c", emulator_error="server_error", emulator_error_times="1"))
        stats = session.stats
    assert stats.reconnects >= 2
    assert stats.replays == 1
    assert stats.http_fallbacks == 1
    assert stats.retries == 1


@pytest.mark.parametrize("mode", ["send", "stream"])
def test_close_cuts_an_http_request_short(mode: str) -> None:
    """close() from another thread ends requests running over HTTP at once, with
    SessionClosedError, rather than after the server's slow answer."""
    with Emulator(api_key=KEY, config=EmulatorConfig(upgrade_status=426)) as server:
        client = OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
        session = client.ws_session()
        errors: List[BaseException] = []

        def wait(text: str) -> None:
            request = ask(text, emulator_ttft="20")
            try:
                if mode == "send":
                    session.send(request)
                else:
                    list(session.stream(request))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=wait, args=(f"slow {i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 5
        while server.stats.get("http_creates") < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert session.stats.http_fallbacks == 4
        started = time.monotonic()
        session.close()
        for thread in threads:
            thread.join(5)
        assert not any(t.is_alive() for t in threads) and time.monotonic() - started < 2
        assert len(errors) == 4 and all(isinstance(e, SessionClosedError) for e in errors)
        with pytest.raises(SessionClosedError):
            session.send(ask("after close"))
        client.close()


def test_close_cuts_a_retry_wait_short(emu: Emulator) -> None:
    """close() during a retry's backoff wakes the waiting caller with SessionClosedError."""
    client = make_client(emu, max_retries=2)
    session = client.ws_session()
    errors: List[BaseException] = []

    def wait() -> None:
        request = ask("slow hint", emulator_error="rate_limit_exceeded", emulator_retry_after="30")
        try:
            session.send(request)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.3)  # the 429 arrived; the caller now waits 30 s before retrying
    started = time.monotonic()
    session.close()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert len(errors) == 1 and isinstance(errors[0], SessionClosedError)


def test_request_timeout_bounds_a_streaming_http_fallback() -> None:
    """Over HTTP, a stream that keeps sending events still ends at the request's timeout."""
    with Emulator(api_key=KEY, config=EmulatorConfig(upgrade_status=426)) as server:
        client = OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
        with client.ws_session() as session:
            request = ask(
                "many slow words", emulator_output_tokens="200", emulator_token_interval="0.02"
            )
            received = []
            started = time.monotonic()
            with pytest.raises(RequestTimeoutError, match="over HTTP"):
                for event in session.stream(request, timeout=0.5):
                    received.append(event)
            elapsed = time.monotonic() - started
            assert 0.5 <= elapsed < 1.5, elapsed  # 200 tokens would take 4 s
            assert received and received[0].type == "response.created"
            assert session.send(ask("next one")).output_text == "next one"
        client.close()
