"""The OpenAI client face: settings from the environment, TLS trust, per-call options, warnings.

Everything runs against servers started here on 127.0.0.1 (the emulator, over
TLS where trust is tested, and a small recording HTTP server for what a call
puts on the wire).
"""

from __future__ import annotations

import http.server
import json
import logging
import os
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

import pytest
import trustme

import openai_ws
from openai_ws import ConnectError, OpenAI, Response, ResponseCreateRequest, TransportError
from openai_ws.client import Responses
from openai_ws.emulator import Emulator, EmulatorConfig
from openai_ws.session import EventStream

KEY = "sk-client-test-key-0123456789"

_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_WEBSOCKET_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
)
_TLS_ENV = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without the client's and TLS's environment variables."""
    for name in (*_ENV, *_TLS_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def tls_emu() -> Iterator[Emulator]:
    with Emulator(api_key=KEY, tls=True) as server:
        yield server


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A CA file that did not sign the emulator's certificate."""
    path = tmp_path_factory.mktemp("other-ca") / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


def ask(text: str, **fields: Any) -> ResponseCreateRequest:
    return ResponseCreateRequest(model="gpt-test", input=text, **fields)


# -- item 1: the official SDK's environment variables ---------------------------


def test_client_without_arguments_reads_the_sdk_environment(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenAI() reads OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_ORG_ID, OPENAI_PROJECT_ID."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", emu.base_url)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-env")
    client = OpenAI()
    assert client.base_url == emu.base_url
    assert client.websocket_url == emu.ws_url
    assert (client.organization, client.project) == ("org-env", "proj-env")
    assert KEY not in repr(client)
    with client.ws_session() as session:
        assert session.send(ask("from the env")).output_text == "from the env"
    assert client.responses.create(ask("over http")).output_text == "over http"
    client.close()


def test_arguments_win_over_the_environment(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit arguments are used as given, whatever the environment says."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    client = OpenAI(api_key=KEY, base_url=emu.base_url, organization="org-arg", max_retries=0)
    assert client.organization == "org-arg"
    with client.ws_session() as session:
        assert session.send(ask("explicit")).output_text == "explicit"


def test_websocket_base_url_from_the_environment_goes_with_the_base_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OPENAI_WEBSOCKET_BASE_URL applies when base_url is not given; an explicit base_url wins."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_WEBSOCKET_BASE_URL", "wss://ws.example/v2")
    assert OpenAI().websocket_url == "wss://ws.example/v2/responses"
    assert OpenAI().base_url == openai_ws.client.DEFAULT_BASE_URL
    explicit = OpenAI(base_url="https://gateway.example/v1")
    assert explicit.websocket_url == "wss://gateway.example/v1/responses"
    both = OpenAI(base_url="https://gateway.example/v1", websocket_base_url="wss://w.example/v1")
    assert both.websocket_url == "wss://w.example/v1/responses"


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exported but empty OPENAI_BASE_URL or OPENAI_ORG_ID is ignored, like an unset one."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "")
    monkeypatch.setenv("OPENAI_ORG_ID", "")
    client = OpenAI()
    assert client.base_url == "https://api.openai.com/v1"
    assert client.organization is None


def test_missing_key_names_both_ways_to_give_it() -> None:
    """With no api_key and no OPENAI_API_KEY the error says how to pass one."""
    with pytest.raises(openai_ws.OpenAIWSError, match=r"api_key=.*OPENAI_API_KEY"):
        OpenAI()


def test_from_env_still_works_with_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """from_env() reads the same variables; its keyword arguments override them."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-env")
    client = OpenAI.from_env(project="proj-arg", timeout=3.0)
    assert (client.project, client.timeout) == ("proj-arg", 3.0)


# -- plain-text transport warning (issue 10) ------------------------------------


@pytest.mark.parametrize(
    ("base_url", "websocket_base_url", "warned"),
    [
        ("http://api.example/v1", None, "http://api.example"),
        ("https://api.example/v1", "ws://ws.example:8080/v1", "ws://ws.example:8080"),
        ("http://10.0.0.7:8000/v1", None, "http://10.0.0.7:8000"),
        ("http://[2001:db8::1]:80/v1", None, "http://[2001:db8::1]:80"),
        ("http://0.0.0.0:8000/v1", None, "http://0.0.0.0:8000"),
    ],
)
def test_a_key_sent_in_clear_text_to_a_remote_host_warns_once(
    caplog: pytest.LogCaptureFixture,
    base_url: str,
    websocket_base_url: Optional[str],
    warned: str,
) -> None:
    """http:// or ws:// to a non-loopback host logs one WARNING per client, without the key."""
    caplog.set_level(logging.WARNING, logger="openai_ws")
    client = OpenAI(api_key=KEY, base_url=base_url, websocket_base_url=websocket_base_url)
    client.responses  # noqa: B018 - touching it must not warn again
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert warned in message and "unencrypted" in message
    assert KEY not in message
    OpenAI(api_key=KEY, base_url=base_url, websocket_base_url=websocket_base_url)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2  # one per client


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8000/v1",
        "http://127.3.4.5/v1",
        "http://localhost:8000/v1",
        "http://LOCALHOST./v1",
        "http://api.localhost/v1",
        "http://[::1]:8000/v1",
        "https://api.example/v1",
    ],
)
def test_loopback_and_tls_urls_do_not_warn(caplog: pytest.LogCaptureFixture, base_url: str) -> None:
    """A loopback host (127.0.0.0/8, ::1, localhost) or an https/wss URL logs no warning."""
    caplog.set_level(logging.WARNING, logger="openai_ws")
    OpenAI(api_key=KEY, base_url=base_url)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- item 13: one TLS trust setting for both transports -------------------------


def _both_transports(client: OpenAI) -> Tuple[bool, bool]:
    """Whether the WebSocket and the HTTP transport of ``client`` each got an answer."""
    results: List[bool] = []
    try:
        with client.ws_session(reconnect_attempts=0) as session:
            results.append(session.send(ask("trusted")).output_text == "trusted")
    except ConnectError:
        results.append(False)
    try:
        results.append(client.responses.create(ask("trusted")).output_text == "trusted")
    except TransportError:
        results.append(False)
    finally:
        client.close()
    return results[0], results[1]


def _tls_client(server: Emulator, **options: Any) -> OpenAI:
    return OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0, **options)


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_a_ca_file_variable_is_trusted_by_both_transports(
    tls_emu: Emulator, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """SSL_CERT_FILE, REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE alone: both transports trust it."""
    assert tls_emu.ca_file is not None
    monkeypatch.setenv(variable, tls_emu.ca_file)
    assert _both_transports(_tls_client(tls_emu)) == (True, True)


def test_ssl_cert_dir_is_trusted_by_both_transports(
    tls_emu: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """SSL_CERT_DIR (a c_rehash-style directory) is trusted by both transports."""
    import subprocess

    assert tls_emu.ca_file is not None
    digest = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", tls_emu.ca_file],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not digest:
        pytest.skip("needs the openssl command to name a hashed CA directory")
    with open(tls_emu.ca_file, "rb") as pem:
        (tmp_path / f"{digest}.0").write_bytes(pem.read())
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    assert _both_transports(_tls_client(tls_emu)) == (True, True)


def test_ca_bundle_option_wins_over_the_environment(
    tls_emu: Emulator, monkeypatch: pytest.MonkeyPatch, other_ca: str
) -> None:
    """ca_bundle= is used by both transports even when every variable names another CA."""
    for name in _TLS_ENV:
        monkeypatch.setenv(name, other_ca)
    assert _both_transports(_tls_client(tls_emu, ca_bundle=tls_emu.ca_file)) == (True, True)
    assert _both_transports(_tls_client(tls_emu)) == (False, False)


def test_ssl_cert_file_wins_over_requests_ca_bundle(
    tls_emu: Emulator, monkeypatch: pytest.MonkeyPatch, other_ca: str
) -> None:
    """The order is SSL_CERT_FILE/SSL_CERT_DIR, then REQUESTS_CA_BUNDLE, on both transports."""
    assert tls_emu.ca_file is not None
    monkeypatch.setenv("SSL_CERT_FILE", tls_emu.ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", other_ca)
    assert _both_transports(_tls_client(tls_emu)) == (True, True)
    monkeypatch.setenv("SSL_CERT_FILE", other_ca)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_emu.ca_file)
    assert _both_transports(_tls_client(tls_emu)) == (False, False)


def test_without_any_setting_neither_transport_trusts_an_unknown_ca(tls_emu: Emulator) -> None:
    """No option and no variable: the system store, which does not know the emulator's CA."""
    assert _both_transports(_tls_client(tls_emu)) == (False, False)


def test_resolve_ca_order_and_system_store(other_ca: str, tmp_path: Any) -> None:
    """resolve_ca order: option, SSL_CERT_FILE/_DIR, REQUESTS_/CURL_CA_BUNDLE, system store."""
    from openai_ws.client import resolve_ca

    folder = str(tmp_path)
    env = {
        "SSL_CERT_FILE": other_ca,
        "SSL_CERT_DIR": folder,
        "REQUESTS_CA_BUNDLE": "/r.pem",
        "CURL_CA_BUNDLE": "/c.pem",
    }
    assert resolve_ca("/opt.pem", env) == "/opt.pem"
    assert resolve_ca(None, env) == other_ca
    del env["SSL_CERT_FILE"]
    assert resolve_ca(None, env) == folder
    del env["SSL_CERT_DIR"]
    assert resolve_ca(None, env) == "/r.pem"
    del env["REQUESTS_CA_BUNDLE"]
    assert resolve_ca(None, env) == "/c.pem"
    del env["CURL_CA_BUNDLE"]
    system = resolve_ca(None, env)
    assert system is None or os.path.exists(system)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verify_false_still_turns_checking_off_on_both(tls_emu: Emulator, other_ca: str) -> None:
    """verify=False accepts the unknown CA on both transports, whatever the CA settings."""
    client = _tls_client(tls_emu, verify=False, ca_bundle=other_ca)
    assert _both_transports(client) == (True, True)


def test_an_unreadable_ca_bundle_is_a_clear_connect_error(tls_emu: Emulator) -> None:
    """A ca_bundle that does not exist fails both transports with ConnectError, not OSError."""
    client = _tls_client(tls_emu, ca_bundle="/nonexistent/ca.pem")
    with pytest.raises(ConnectError, match="TLS settings"):
        client.ws_session()
    with pytest.raises(ConnectError):
        client.responses.create(ask("x"))
    client.close()


# -- item 3: client.responses.stream() is an EventStream -----------------------


def test_http_stream_is_an_event_stream_and_a_context_manager(emu: Emulator) -> None:
    """responses.stream() returns an EventStream usable in a with-block, events in order."""
    client = OpenAI(api_key=KEY, base_url=emu.base_url, max_retries=0)
    with client.responses.stream(ask("one two three")) as events:
        assert isinstance(events, EventStream)
        kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    client.close()


def test_leaving_an_http_stream_early_drops_its_connection() -> None:
    """Closing an HTTP EventStream mid-answer stops reading: the server sees the client go."""
    slow = EmulatorConfig(token_interval=0.02)
    with Emulator(api_key=KEY, config=slow) as server:
        client = OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
        with client.responses.stream(ask("word " * 200)) as events:
            assert next(events).type == "response.created"
        deadline = time.monotonic() + 3.0
        while server.stats.responses_interrupted == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.stats.responses_interrupted == 1
        assert client.responses.create(ask("still fine")).output_text == "still fine"
        client.close()


def test_closing_an_http_stream_from_another_thread_ends_the_reader(emu: Emulator) -> None:
    """close() from another thread while one waits inside next() ends that loop within 3 s."""
    client = OpenAI(api_key=KEY, base_url=emu.base_url, max_retries=0)
    slow = ask("slow", metadata={"emulator_ttft": "30"})
    events = client.responses.stream(slow)
    seen: List[str] = []
    errors: List[BaseException] = []

    def consume() -> None:
        try:
            seen.extend(event.type for event in events)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.3)  # the consumer is blocked waiting for the first output item
    started = time.monotonic()
    events.close()
    thread.join(5.0)
    assert not thread.is_alive()
    assert time.monotonic() - started < 3.0
    assert errors == []
    assert seen[:1] == ["response.created"]
    client.close()


# -- item 4: extra_headers, extra_query, extra_body, timeout per call ----------


class _Recorder(http.server.ThreadingHTTPServer):
    """Records (path, query, headers, body) of each POST; answers a fixed response."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecorderHandler)
        self.requests: List[Tuple[str, Dict[str, List[str]], Dict[str, str], Dict[str, Any]]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _RecorderHandler(http.server.BaseHTTPRequestHandler):
    server: _Recorder

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.requests.append((parts.path, parse_qs(parts.query), headers, body))
        if body.get("stream"):
            created = {"type": "response.created", "response": {"id": "resp_1"}}
            done = {"type": "response.completed", "response": {"id": "resp_1", "output": []}}
            payload = b"".join(
                b"data: " + json.dumps(e).encode() + b"\n\n" for e in (created, done)
            )
            kind = "text/event-stream"
        else:
            payload = json.dumps({"id": "resp_1", "status": "completed"}).encode()
            kind = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    server = _Recorder()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _keywords(timeout: Any, headers: Any, query: Any) -> Dict[str, Any]:
    return {"timeout": timeout, "headers": headers, "query": query}


class _FakeHTTP:
    """An HTTP transport with the per-call ``headers=``/``query=`` the face hands on."""

    def __init__(self) -> None:
        self.calls: List[Tuple[str, Dict[str, Any], Dict[str, Any]]] = []

    def create(
        self,
        body: Dict[str, Any],
        *,
        timeout: Optional[float] = None,
        cancel: Any = None,
        headers: Optional[Dict[str, str]] = None,
        query: Optional[Dict[str, str]] = None,
    ) -> Response:
        self.calls.append(("create", body, _keywords(timeout, headers, query)))
        return Response(id="resp_fake")

    def stream(
        self,
        body: Dict[str, Any],
        *,
        timeout: Optional[float] = None,
        cancel: Any = None,
        headers: Optional[Dict[str, str]] = None,
        query: Optional[Dict[str, str]] = None,
    ) -> Iterator[Any]:
        self.calls.append(("stream", body, _keywords(timeout, headers, query)))
        return iter([])


def test_responses_hand_per_call_options_to_the_transport() -> None:
    """create/stream pass extra_headers as headers=, extra_query as query=, timeout as given,
    and extra_body merged into the body."""
    fake = _FakeHTTP()
    responses = Responses(lambda: fake)  # type: ignore[arg-type,return-value]
    options: Dict[str, Any] = {
        "timeout": 2.5,
        "extra_headers": {"X-Trace": "t-1"},
        "extra_query": {"api-version": "1"},
        "extra_body": {"seed": 7},
    }
    assert responses.create(ask("hi"), **options).id == "resp_fake"
    with responses.stream(model="m", **options) as events:
        assert list(events) == []
    for (_name, body, keywords), model in zip(fake.calls, ("gpt-test", "m")):
        assert body["seed"] == 7 and body["model"] == model
        assert keywords == _keywords(2.5, {"X-Trace": "t-1"}, {"api-version": "1"})
    assert [name for name, _, _ in fake.calls] == ["create", "stream"]


def test_http_calls_send_extra_headers_query_and_body(recorder: _Recorder) -> None:
    """responses.create/stream put extra_headers on the request, extra_query in the URL,
    extra_body in the JSON body (over the caller's fields), as the official SDK does."""
    client = OpenAI(api_key=KEY, base_url=recorder.base_url, max_retries=0)
    options: Dict[str, Any] = {
        "extra_headers": {"X-Trace": "t-1"},
        "extra_query": {"api-version": "2025-01-01"},
        "extra_body": {"seed": 7, "model": "gpt-override"},
    }
    assert client.responses.create(ask("hi"), **options).id == "resp_1"
    with client.responses.stream(model="m", input="hi", timeout=5.0, **options) as events:
        assert [e.type for e in events] == ["response.created", "response.completed"]
    client.close()
    assert len(recorder.requests) == 2
    for path, query, headers, body in recorder.requests:
        assert path == "/v1/responses"
        assert query == {"api-version": ["2025-01-01"]}
        assert headers["x-trace"] == "t-1"
        assert headers["authorization"] == f"Bearer {KEY}"
        assert body["seed"] == 7 and body["model"] == "gpt-override"


def test_extra_body_merges_into_a_request_object_without_editing_it(emu: Emulator) -> None:
    """extra_body= next to a ResponseCreateRequest is merged into the sent body (it wins);
    the caller's request object is left as it was."""
    client = OpenAI(api_key=KEY, base_url=emu.base_url, max_retries=0)
    request = ask("echo me", extra_body={"metadata": {"emulator_text": "from the request"}})
    options = {"extra_body": {"metadata": {"emulator_text": "from the call"}}}
    assert client.responses.create(request, **options).output_text == "from the call"
    with client.ws_session() as session:
        assert session.send(request, **options).output_text == "from the call"
        with session.stream(request, **options) as events:
            final = [e for e in events if e.type == "response.completed"]
        assert final[0].response.output_text == "from the call"  # type: ignore[union-attr]
    assert request.extra_body == {"metadata": {"emulator_text": "from the request"}}
    client.close()


@pytest.mark.parametrize("option", ["extra_headers", "extra_query"])
def test_headers_and_query_per_message_over_websocket_are_refused(
    emu: Emulator, option: str
) -> None:
    """A WebSocket message has no headers or query: ValueError says so, nothing is sent."""
    client = OpenAI(api_key=KEY, base_url=emu.base_url, max_retries=0)
    with client.ws_session() as session:
        before = emu.stats.ws_creates
        with pytest.raises(ValueError, match=r"default_headers|responses\.create"):
            session.send(ask("x"), **{option: {"a": "b"}})
        with pytest.raises(ValueError, match="WebSocket"):
            session.stream(ask("x"), **{option: {"a": "b"}})
        assert emu.stats.ws_creates == before
        assert session.send(ask("x"), **{option: {}}).output_text == "x"  # empty is fine


def test_per_call_timeout_bounds_an_http_call(emu: Emulator) -> None:
    """timeout= on responses.create bounds that call (RequestTimeoutError within 3 s at 0.3 s)."""
    client = OpenAI(api_key=KEY, base_url=emu.base_url, max_retries=0)
    started = time.monotonic()
    with pytest.raises(openai_ws.RequestTimeoutError):
        client.responses.create(ask("slow", metadata={"emulator_ttft": "5"}), timeout=0.3)
    assert time.monotonic() - started < 3.0
    client.close()
