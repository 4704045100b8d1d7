"""End-to-end tests of Session against the bundled emulator (and a silent server)."""

from __future__ import annotations

import gc
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, List

import pytest
from servers import ConnectProxy, SilentServer

import openai_ws
from openai_ws import (
    ConnectError,
    ConsumerTooSlowError,
    OpenAI,
    PreviousResponseNotFoundError,
    RequestTimeoutError,
    ResponseCompleted,
    ResponseCreated,
    ResponseCreateRequest,
    ResponseOutputTextDelta,
    SessionClosedError,
    TransportError,
    UnknownEvent,
)
from openai_ws.client import websocket_url
from openai_ws.emulator import Emulator, EmulatorConfig

KEY = "sk-emulator-test-key-0123456789"


def reader_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("openai_ws-reader")]


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=KEY) as server:
        yield server


@pytest.fixture
def client(emu: Emulator) -> OpenAI:
    return OpenAI(api_key=KEY, base_url=emu.base_url, max_retries=0)


def ask(text: str, **fields: Any) -> ResponseCreateRequest:
    return ResponseCreateRequest(model="gpt-test", input=text, **fields)


# -- the seed's scenarios -------------------------------------------------------


def test_send_returns_answer_and_usage(client: OpenAI) -> None:
    """send() returns the whole response with its text and token usage."""
    with client.ws_session() as session:
        response = session.send(ask("What is the capital of France?", max_output_tokens=256))
    assert response.status == "completed"
    assert response.output_text == "What is the capital of France?"
    assert response.usage is not None
    assert response.usage.output_tokens == 6
    assert response.usage.input_tokens > 0


def test_multi_turn_follow_up_with_store_false(client: OpenAI) -> None:
    """A chain of store=false turns continues from the socket's cache."""
    with client.ws_session() as session:
        previous = None
        for turn in range(5):
            response = session.send(ask(f"turn {turn}", store=False, previous_response_id=previous))
            assert response.output_text == f"turn {turn}"
            assert response.previous_response_id == previous
            previous = response.id


def test_stream_yields_deltas_then_completed(client: OpenAI) -> None:
    """stream() yields typed events ending with ResponseCompleted; deltas rebuild the text."""
    with client.ws_session() as session:
        events = list(session.stream(ask("one two three four")))
    assert isinstance(events[0], ResponseCreated)
    assert isinstance(events[-1], ResponseCompleted)
    deltas = [e.delta for e in events if isinstance(e, ResponseOutputTextDelta)]
    assert deltas == ["one ", "two ", "three ", "four"]
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(events)))


def test_keyword_fields_and_warmup(client: OpenAI) -> None:
    """Requests can be keyword fields; warmup() returns an id to chain from."""
    with client.ws_session() as session:
        warm_id = session.warmup(model="gpt-test", instructions="be brief", input=[])
        assert warm_id.startswith("resp_")
        answer = session.send(model="gpt-test", input="hi there", previous_response_id=warm_id)
        assert answer.output_text == "hi there"
        with pytest.raises(TypeError):
            session.send(ask("x"), model="y")
        with pytest.raises(TypeError):
            session.send(model="gpt-test", no_such_field=1)


def test_close_is_idempotent_and_final(client: OpenAI) -> None:
    """close() twice is fine; a closed session refuses new requests."""
    session = client.ws_session()
    assert "open" in repr(session)
    session.close()
    session.close()
    assert session.closed
    with pytest.raises(SessionClosedError):
        session.send(ask("late"))


# -- many threads ---------------------------------------------------------------


def test_sixteen_threads_fifty_requests_each(client: OpenAI) -> None:
    """16 threads x 50 requests: each gets exactly its own events, in order; lanes reused."""

    def worker(t: int) -> int:
        checked = 0
        for i in range(50):
            text = f"thread {t} request {i} payload"
            if i % 2:
                events = list(session.stream(ask(text)))
                assert [e.sequence_number for e in events] == list(range(len(events)))
                deltas = "".join(e.delta for e in events if isinstance(e, ResponseOutputTextDelta))
                assert deltas == text
                assert isinstance(events[-1], ResponseCompleted)
                assert events[-1].response.output_text == text
            else:
                assert session.send(ask(text)).output_text == text
            checked += 1
        return checked

    with client.ws_session() as session, ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(worker, range(16))) == 800
        stats = session.stats
    assert stats.requests == 800
    assert 1 < stats.lanes_used <= 32
    assert stats.unroutable_events == 0 and stats.dropped_events == 0
    assert stats.connects == 1


# -- abandoning -----------------------------------------------------------------


@pytest.mark.parametrize("lanes", [True, False])
def test_breaking_out_of_stream_never_leaks_old_events(client: OpenAI, lanes: bool) -> None:
    """After breaking out of a stream, the next request gets its own answer only."""
    with client.ws_session(lanes=lanes) as session:
        slow = ask("old " * 30, metadata={"emulator_token_interval": "0.005"})
        for n, _event in enumerate(session.stream(slow)):
            if n == 1:
                break
        fresh = session.send(ask("brand new answer"))
        assert fresh.output_text == "brand new answer"
        streamed = list(session.stream(ask("third one")))
        assert streamed[-1].response.output_text == "third one"
        deadline = time.monotonic() + 5
        while session.stats.dropped_events == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert session.stats.dropped_events > 0
        assert session.stats.unroutable_events == 0


def test_timeout_raises_and_never_leaks(client: OpenAI) -> None:
    """A request timeout raises a TimeoutError subclass; its late events reach nobody."""
    with client.ws_session(lanes=False) as session:
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError) as info:
            session.send(ask("too slow", metadata={"emulator_ttft": "0.5"}), timeout=0.1)
        assert isinstance(info.value, TimeoutError)
        assert time.monotonic() - started < 0.45
        assert session.send(ask("next please")).output_text == "next please"


def test_event_timeout_bounds_the_wait_for_each_event(client: OpenAI) -> None:
    """event_timeout fails a request whose next event is late.

    The bound is generous enough (0.5 s) for the quick request's events to
    arrive in time on a loaded CI machine; the slow one's tokens come 5 s apart.
    """
    with client.ws_session(event_timeout=0.5) as session:
        slow = ask("a b c", metadata={"emulator_token_interval": "5"})
        with pytest.raises(RequestTimeoutError, match="next event"):
            session.send(slow)
        assert session.send(ask("quick")).output_text == "quick"


def test_consumer_exception_abandons_request(client: OpenAI) -> None:
    """An exception in the consuming loop abandons only that request."""
    with client.ws_session() as session:
        with pytest.raises(KeyError):
            for _event in session.stream(ask("boom " * 20)):
                raise KeyError("consumer failed")
        assert session.send(ask("still fine")).output_text == "still fine"


def test_slow_consumer_fails_only_itself(client: OpenAI) -> None:
    """A consumer that stops reading overflows its bound and fails alone."""
    with client.ws_session(max_queue_events=40) as session:
        stream = session.stream(ask("word " * 200))
        time.sleep(0.3)  # the reader keeps going; this request's queue overflows
        with pytest.raises(ConsumerTooSlowError):
            list(stream)
        assert session.send(ask("other request")).output_text == "other request"


# -- closing --------------------------------------------------------------------


def test_close_from_another_thread_fails_all_waiters(client: OpenAI) -> None:
    """close() while 8 requests wait makes all 8 raise promptly."""
    session = client.ws_session()
    errors: List[BaseException] = []

    def wait_for_answer(i: int) -> None:
        try:
            session.send(ask(f"waiting {i}", metadata={"emulator_ttft": "30"}))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wait_for_answer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    started = time.monotonic()
    session.close()
    for t in threads:
        t.join(5)
    assert time.monotonic() - started < 2.0
    assert not any(t.is_alive() for t in threads)
    assert len(errors) == 8
    assert all(isinstance(e, SessionClosedError) for e in errors)


def test_forgotten_session_stops_its_thread(client: OpenAI) -> None:
    """A session dropped without close() is collected and its reader stops."""
    session = client.ws_session()
    assert session.send(ask("hello")).output_text == "hello"
    assert reader_threads()
    del session
    gc.collect()
    deadline = time.monotonic() + 5
    while reader_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reader_threads() == []


# -- errors ---------------------------------------------------------------------


def test_error_event_fails_only_its_request(client: OpenAI) -> None:
    """previous_response_not_found fails its own request; others and the session go on."""
    with client.ws_session() as session:
        other = session.stream(
            ask("concurrent " * 10, metadata={"emulator_token_interval": "0.002"})
        )
        with pytest.raises(PreviousResponseNotFoundError) as info:
            session.send(ask("orphan", store=False, previous_response_id="resp_nope"))
        assert info.value.status == 400
        assert info.value.code == "previous_response_not_found"
        assert info.value.param == "previous_response_id"
        assert "store" in str(info.value)
        events = list(other)
        assert events[-1].response.output_text == "concurrent " * 9 + "concurrent "
        assert session.send(ask("after")).output_text == "after"


def test_failed_and_incomplete_are_returned(client: OpenAI) -> None:
    """send() returns failed and incomplete responses; status tells which."""
    with client.ws_session() as session:
        failed = session.send(ask("x", metadata={"emulator_fail": "server_error"}))
        assert failed.status == "failed"
        assert failed.error is not None and failed.error.code == "server_error"
        cut = session.send(ask("one two three four five", max_output_tokens=2))
        assert cut.status == "incomplete"
        assert cut.output_text == "one two "


# -- bad frames -----------------------------------------------------------------


def test_bad_frames_never_kill_the_reader(client: OpenAI) -> None:
    """Malformed, binary and unknown frames are counted or passed through; requests finish."""
    with client.ws_session() as session:
        bad = session.send(ask("a b c d", metadata={"emulator_malformed_after": "2"}))
        assert bad.output_text == "a b c d"
        binary = session.send(ask("e f", metadata={"emulator_binary_after": "1"}))
        assert binary.output_text == "e f"
        events = list(session.stream(ask("g h", metadata={"emulator_unknown_after": "1"})))
        unknown = [e for e in events if isinstance(e, UnknownEvent)]
        assert len(unknown) == 1 and unknown[0].type == "response.future_thing"
        assert isinstance(events[-1], ResponseCompleted)
        stats = session.stats
    assert stats.malformed_frames == 1
    assert stats.binary_frames == 1


# -- servers without lanes ------------------------------------------------------


@pytest.mark.parametrize("mode", ["reject", "ignore"])
def test_servers_without_lanes(mode: str) -> None:
    """A server that rejects or ignores stream_id still answers every request correctly."""
    with Emulator(api_key=KEY, config=EmulatorConfig(stream_id_mode=mode)) as server:
        client = OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
        with client.ws_session() as session, ThreadPoolExecutor(6) as pool:
            texts = [f"request number {i}" for i in range(30)]
            answers = list(pool.map(lambda t: session.send(ask(t)).output_text, texts))
            assert answers == texts
            assert session.stats.unroutable_events == 0


# -- connection details ---------------------------------------------------------


def test_handshake_headers_and_secrets() -> None:
    """The upgrade carries auth, organization, project, user agent and extra headers."""
    with SilentServer() as server:
        client = OpenAI(
            api_key=KEY,
            base_url=server.url,
            organization="org-1",
            project="proj-1",
            default_headers={"X-Extra": "yes"},
        )
        assert KEY not in repr(client)
        with client.ws_session(ping_interval=None) as session:
            assert KEY not in repr(session)
        sent = server.headers[0]
    assert sent["authorization"] == f"Bearer {KEY}"
    assert sent["openai-organization"] == "org-1"
    assert sent["openai-project"] == "proj-1"
    assert sent["user-agent"].startswith(f"openai-ws/{openai_ws.__version__}")
    assert sent["x-extra"] == "yes"


def test_missing_pong_means_a_dead_socket() -> None:
    """A socket that answers no ping is declared dead and its request fails promptly."""
    with SilentServer() as server:
        client = OpenAI(api_key=KEY, base_url=server.url, max_retries=0)
        session = client.ws_session(ping_interval=0.1, ping_timeout=0.2, max_replays=1)
        started = time.monotonic()
        with pytest.raises(openai_ws.OpenAIWSError):
            session.send(ask("anyone?"), timeout=10)
        assert time.monotonic() - started < 5
        session.close()


def test_pings_keep_an_idle_session_alive(client: OpenAI) -> None:
    """Pings between turns are answered; the session stays usable."""
    with client.ws_session(ping_interval=0.05, ping_timeout=1.0) as session:
        assert session.send(ask("before")).output_text == "before"
        time.sleep(0.3)
        assert session.send(ask("after")).output_text == "after"
        assert session.stats.connects == 1


def test_wrong_key_is_refused_without_leaking_it(emu: Emulator) -> None:
    """A wrong key fails the upgrade with status 401 and the key appears nowhere."""
    secret = "sk-wrong-secret-value-123456"
    client = OpenAI(api_key=secret, base_url=emu.base_url, max_retries=0)
    with pytest.raises(ConnectError) as info:
        client.ws_session()
    assert info.value.status == 401
    assert secret not in str(info.value)


def test_logs_never_contain_the_key(client: OpenAI, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing logged during a session's life mentions the API key."""
    caplog.set_level(logging.DEBUG, logger="openai_ws")
    with client.ws_session() as session:
        session.send(ask("log me"))
    assert caplog.records
    assert all(KEY not in r.getMessage() for r in caplog.records)


def test_tls_session_with_the_emulator_ca() -> None:
    """wss works with the emulator's CA and fails without it."""
    with Emulator(api_key=KEY, tls=True) as server:
        trusted = OpenAI(api_key=KEY, base_url=server.base_url, ca_bundle=server.ca_file)
        with trusted.ws_session() as session:
            assert session.send(ask("secure")).output_text == "secure"
        untrusted = OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
        with pytest.raises(ConnectError):
            untrusted.ws_session()


def test_url_mapping_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """https maps to wss, http to ws; from_env reads the documented variables."""
    assert websocket_url("https://api.openai.com/v1") == "wss://api.openai.com/v1/responses"
    assert websocket_url("http://127.0.0.1:8000/v1/") == "ws://127.0.0.1:8000/v1/responses"
    with pytest.raises(ValueError):
        websocket_url("ftp://x")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:1/v1")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-env")
    client = OpenAI.from_env()
    assert client.websocket_url == "ws://localhost:1/v1/responses"
    assert client.organization == "org-env" and client.project == "proj-env"
    assert "sk-env" not in repr(client)
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(openai_ws.OpenAIWSError):
        OpenAI.from_env()
    custom = OpenAI(api_key="k", base_url="https://a/v1", websocket_base_url="wss://b/v2")
    assert custom.websocket_url == "wss://b/v2/responses"


def test_stream_dropped_before_reading_is_abandoned(client: OpenAI) -> None:
    """A stream dropped before its first next() abandons its request; nothing piles up."""
    with client.ws_session(lanes=False) as session:
        stream = session.stream(ask("unread " * 30, metadata={"emulator_token_interval": "0.002"}))
        del stream
        gc.collect()
        assert session.send(ask("next in line")).output_text == "next in line"
        assert session.stats.dropped_events > 0


def test_stream_is_a_context_manager(client: OpenAI) -> None:
    """Leaving a with-block around a stream abandons the rest of it."""
    with client.ws_session() as session:
        slow = ask("a b c d e f g", metadata={"emulator_token_interval": "0.01"})
        with session.stream(slow) as events:
            assert isinstance(next(events), ResponseCreated)
        assert session.send(ask("after the block")).output_text == "after the block"


def test_explicit_proxy_is_used(emu: Emulator) -> None:
    """proxy= sends the WebSocket through an HTTP CONNECT proxy."""
    with ConnectProxy() as proxy:
        client = OpenAI(api_key=KEY, base_url=emu.base_url, proxy=proxy.url, max_retries=0)
        with client.ws_session() as session:
            assert session.send(ask("through the proxy")).output_text == "through the proxy"
        assert proxy.tunnels == [f"127.0.0.1:{emu.port}"]


def test_proxy_from_the_environment_is_used(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without proxy=, the http_proxy variable applies to the WebSocket."""
    with ConnectProxy() as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        client = OpenAI(api_key=KEY, base_url=emu.base_url, max_retries=0)
        with client.ws_session() as session:
            assert session.send(ask("env proxy")).output_text == "env proxy"
        assert proxy.tunnels == [f"127.0.0.1:{emu.port}"]


def test_server_pings_are_answered_between_turns() -> None:
    """A server that pings an idle session keeps it open: the reader answers.

    aiohttp drops a connection whose pong is late by half the ping interval, so
    the interval is wide enough (150 ms to answer) for a loaded 2-core CI box.
    """
    with Emulator(api_key=KEY, config=EmulatorConfig(server_ping_interval=0.3)) as server:
        client = OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
        with client.ws_session(ping_interval=None) as session:
            assert session.send(ask("first")).output_text == "first"
            time.sleep(1.1)  # three server pings, no traffic of ours
            assert session.send(ask("second")).output_text == "second"
            assert session.stats.connects == 1
        assert server.stats.get("ws_connections") == 1


def test_tls_verification_can_be_turned_off(tmp_path: Any) -> None:
    """verify=False accepts an unknown CA; an unreadable client_cert is a ConnectError."""
    with Emulator(api_key=KEY, tls=True) as server:
        client = OpenAI(api_key=KEY, base_url=server.base_url, verify=False, max_retries=0)
        with client.ws_session() as session:
            assert session.send(ask("unverified")).output_text == "unverified"
    with pytest.raises(ConnectError, match="TLS settings"):
        OpenAI(api_key=KEY, base_url="https://h/v1", client_cert="/nope.pem").ws_session()


def test_client_certificate_reaches_the_server_over_ws_and_http(tmp_path: Any) -> None:
    """Mutual TLS: with client_cert the WebSocket and HTTP both work; without it neither does."""
    with Emulator(api_key=KEY, tls=True, client_auth=True) as server:
        pem = tmp_path / "client.pem"
        pem.write_bytes(server.client_cert_pem())
        trusted = {"api_key": KEY, "base_url": server.base_url, "ca_bundle": server.ca_file}
        client = OpenAI(**trusted, client_cert=str(pem), max_retries=0)
        with client.ws_session() as session:
            assert session.send(ask("mutual")).output_text == "mutual"
            assert (session.stats.connects, session.stats.http_fallbacks) == (1, 0)
        assert client.responses.create(ask("over https")).output_text == "over https"
        client.close()
        assert server.stats.get("ws_connections") == 1

        anonymous = OpenAI(**trusted, max_retries=0)
        with anonymous.ws_session(reconnect_attempts=1) as session, pytest.raises(TransportError):
            session.send(ask("who are you"))
        with pytest.raises(TransportError):
            anonymous.responses.create(ask("who are you"))
        anonymous.close()
        assert server.stats.get("ws_connections") == 1


def test_oversized_message_closes_the_socket_not_the_reader(client: OpenAI) -> None:
    """A message above max_message_size closes with 1009; the session reconnects for the next."""
    with client.ws_session(max_message_size=2000, max_replays=0) as session:
        big = ask("word " * 1000)  # its terminal event carries the whole text
        with pytest.raises(openai_ws.ConnectionClosedError):
            session.send(big)
        assert session.send(ask("small again")).output_text == "small again"
        assert session.stats.reconnects == 1


def test_store_false_chain_survives_concurrent_traffic(client: OpenAI, emu: Emulator) -> None:
    """Continuations go to the lane that caches their parent, even while 24 threads reuse lanes."""
    stop = threading.Event()
    errors: List[BaseException] = []

    def noise(n: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                session.send(ask(f"noise {n} {i}"))
            except BaseException as exc:
                errors.append(exc)
                return
            i += 1

    hits_before = emu.stats.get("cache_hits")
    with client.ws_session() as session:
        threads = [threading.Thread(target=noise, args=(n,)) for n in range(24)]
        for t in threads:
            t.start()
        try:
            previous = None
            for turn in range(40):
                response = session.send(
                    ask(f"turn {turn}", store=False, previous_response_id=previous)
                )
                assert response.output_text == f"turn {turn}"
                previous = response.id
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        assert errors == []
        assert session.stats.lanes_used == 32  # the noise did fill and reuse every name
    assert emu.stats.get("cache_hits") - hits_before >= 39


# -- issue 9 item 11, issue 10, issue 12: the face's own checks ------------------


def test_two_threads_iterating_one_stream_get_a_clear_error(client: OpenAI) -> None:
    """A second thread's next() while the first waits inside it raises RuntimeError saying so;
    the first thread's iteration goes on undisturbed."""
    with client.ws_session() as session:
        slow = ask("a b c", metadata={"emulator_ttft": "0.6"})
        with session.stream(slow) as events:
            first = next(events)
            assert isinstance(first, ResponseCreated)
            texts: List[str] = []
            reader = threading.Thread(
                target=lambda: texts.extend(
                    e.delta for e in events if isinstance(e, ResponseOutputTextDelta)
                )
            )
            reader.start()
            time.sleep(0.2)  # the reader waits inside next() for the first output item
            with pytest.raises(RuntimeError, match="another thread is iterating this EventStream"):
                next(events)
            reader.join(5.0)
        assert "".join(texts) == "a b c"


def test_closing_a_stream_from_another_thread_stops_its_reader(client: OpenAI) -> None:
    """close() from another thread while one waits inside next() ends that loop within 3 s,
    and the session stays usable."""
    with client.ws_session() as session:
        events = session.stream(ask("x", metadata={"emulator_ttft": "30"}))
        seen: List[Any] = []
        reader = threading.Thread(target=lambda: seen.extend(events))
        reader.start()
        time.sleep(0.3)
        started = time.monotonic()
        events.close()
        reader.join(5.0)
        assert not reader.is_alive()
        assert time.monotonic() - started < 3.0
        assert isinstance(seen[0], ResponseCreated)
        assert not any(isinstance(e, ResponseOutputTextDelta) for e in seen)
        assert session.send(ask("after")).output_text == "after"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_json_numbers_never_reach_the_wire(client: OpenAI, emu: Emulator, value: float) -> None:
    """temperature=NaN/inf raises ValueError in the caller; no frame is sent, the session works."""
    with client.ws_session() as session:
        before = emu.stats.ws_creates
        with pytest.raises(ValueError, match="temperature"):
            session.send(model="gpt-test", input="x", temperature=value)
        with pytest.raises(ValueError, match=r"extra_body\.sampling\.t"):
            session.send(ask("x"), extra_body={"sampling": {"t": value}})
        assert emu.stats.ws_creates == before
        assert session.send(ask("fine")).output_text == "fine"
        assert session.stats.requests == 1
