"""Hostile peers on the WebSocket connect path (issue 10 "Time", issue 9 item 9, issue 12 item 10).

Every peer is a :class:`servers.RawPeer` on 127.0.0.1 port 0 (or the
emulator): it trickles the upgrade answer or the proxy's answer, refuses the
upgrade with a 40 MB body, answers with endless headers or a redirect. The
connect runs in a helper thread so that a hang fails the test instead of
blocking it (the peer is stopped, which ends the call, and the thread joined).
"""

from __future__ import annotations

import pickle
import socket
import ssl
import threading
import time
from typing import Any, Callable, Iterator, Optional, Tuple

import pytest
from servers import RawPeer

import openai_ws
from openai_ws import OpenAI
from openai_ws._transports.ws import WSTransport
from openai_ws.emulator import Emulator, EmulatorConfig
from openai_ws.errors import (
    APIError,
    AuthenticationError,
    ConnectError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)

KEY = "sk-hostile-connect-0123456789abcdef"


def bounded(call: Callable[[], Any], limit: float, stop: Callable[[], None]) -> Tuple[float, Any]:
    """Run ``call`` in a thread; return (seconds, result or exception).

    Fails the test when ``call`` is still running after ``limit`` seconds
    (after ``stop()`` has ended it, so that no thread is left behind).
    """
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
        stop()
        thread.join(10)
        pytest.fail(f"still running after {limit:.1f}s")
    return elapsed, outcome[0]


def transport(url: str, *, connect_timeout: float = 0.5, **options: Any) -> WSTransport:
    return WSTransport(
        url, headers={"Authorization": f"Bearer {KEY}"}, connect_timeout=connect_timeout, **options
    )


def connect_to(peer: RawPeer, **options: Any) -> Tuple[float, Any]:
    """Connect a WSTransport to ``peer`` (bounded to 5 s); release it if it opened."""
    ws = transport(f"ws://127.0.0.1:{peer.port}/v1/responses", **options)

    def call() -> Any:
        ws.connect()
        ws.release()
        return "connected"

    return bounded(call, 5.0, lambda: peer.__exit__(None, None, None))


@pytest.fixture
def emu_401() -> Iterator[Emulator]:
    with Emulator(api_key="sk-the-right-key-000000") as server:
        yield server


# -- time: connect_timeout is a total deadline ---------------------------------------


def test_upgrade_answer_trickled_times_out_at_connect_timeout() -> None:
    """An upgrade answered one byte every 0.05 s, forever, fails at connect_timeout (0.5 s)."""
    answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
    with RawPeer(RawPeer.trickle(b"", 0.05, then=answer + b"X-Pad: " + b"a" * 4096)) as peer:
        elapsed, error = connect_to(peer, connect_timeout=0.5)
    assert isinstance(error, ConnectError), error
    assert error.retryable
    assert "connect_timeout" in str(error) and "0.5" in str(error)
    assert elapsed < 3.0


def test_proxy_answer_trickled_times_out_at_connect_timeout() -> None:
    """A proxy that trickles its CONNECT answer fails the connect at connect_timeout."""
    answer = b"HTTP/1.1 200 Connection established\r\nX: " + b"b" * 999
    behave = RawPeer.trickle(b"", 0.05, then=answer)
    with RawPeer(behave) as proxy:
        ws = transport("ws://127.0.0.1:9/v1/responses", proxy=proxy.proxy_url)
        elapsed, error = bounded(ws.connect, 5.0, lambda: proxy.__exit__(None, None, None))
    assert isinstance(error, ConnectError), error
    assert "connect_timeout" in str(error)
    assert proxy.heads and proxy.heads[0].startswith(b"CONNECT 127.0.0.1:9 HTTP/1.1")
    assert elapsed < 3.0


def test_tls_handshake_trickled_times_out_at_connect_timeout() -> None:
    """A wss server that trickles bytes instead of a TLS ServerHello fails at connect_timeout."""
    context = ssl.create_default_context()
    with RawPeer(RawPeer.trickle(b"", 0.05, then=b"\x16\x03\x03\x40\x00" + b"\x02" * 512)) as peer:
        ws = transport(f"wss://127.0.0.1:{peer.port}/v1/responses", ssl_context=context)
        elapsed, error = bounded(ws.connect, 5.0, lambda: peer.__exit__(None, None, None))
    assert isinstance(error, ConnectError), error
    assert "connect_timeout" in str(error)
    assert elapsed < 3.0


def test_endless_upgrade_headers_are_cut() -> None:
    """An upgrade answer whose headers never end is refused after 64 KiB, before the timeout."""
    endless = b"HTTP/1.1 101 Switching Protocols\r\nX-Pad: " + b"c" * (1 << 20)
    with RawPeer(RawPeer.send(endless)) as peer:
        elapsed, error = connect_to(peer, connect_timeout=30.0)
    assert isinstance(error, ConnectError), error
    assert "head" in str(error) and "KiB" in str(error)
    assert elapsed < 4.0


# -- a refusal is read in bounded time and memory ------------------------------------


def test_refused_upgrade_with_40_mb_body_fails_fast() -> None:
    """A 401 on the upgrade announcing a 40 MB body fails after reading a few KiB of it."""
    with RawPeer(RawPeer.huge(401, 40 * 1024 * 1024)) as peer:
        elapsed, error = connect_to(peer, connect_timeout=30.0)
    assert isinstance(error, AuthenticationError), error
    assert isinstance(error, ConnectError)
    assert error.status == 401
    assert elapsed < 4.0


# -- upgrade refusals speak the HTTP error classes -------------------------------------


def test_wrong_key_over_websocket_is_authentication_error(emu_401: Emulator) -> None:
    """except openai_ws.AuthenticationError catches a bad key on the upgrade, code and message."""
    from openai_ws.errors import UpgradeRefusedError

    client = OpenAI(api_key="sk-wrong-key-for-this-test", base_url=emu_401.base_url, max_retries=0)
    try:
        client.ws_session()
    except openai_ws.AuthenticationError as exc:
        error: Optional[BaseException] = exc
    else:  # pragma: no cover - the test fails below
        error = None
    assert isinstance(error, AuthenticationError)
    assert isinstance(error, ConnectError) and isinstance(error, UpgradeRefusedError)
    assert error.status == 401
    assert error.code == "invalid_api_key"
    assert error.message.startswith("Incorrect API key provided")
    assert "WebSocket upgrade" in str(error)
    assert "sk-wrong-key-for-this-test" not in str(error)


@pytest.mark.parametrize(
    ("status", "cls"),
    [(403, PermissionDeniedError), (404, NotFoundError), (500, InternalServerError)],
)
def test_upgrade_status_maps_to_its_api_error_class(status: int, cls: type) -> None:
    """403, 404 and 500 on the upgrade raise PermissionDenied/NotFound/InternalServer errors."""
    with Emulator(api_key=KEY, config=EmulatorConfig(upgrade_status=status)) as server:
        ws = WSTransport(
            server.ws_url, headers={"Authorization": f"Bearer {KEY}"}, connect_timeout=5.0
        )
        with pytest.raises(cls) as info:
            ws.connect()
    error = info.value
    assert isinstance(error, ConnectError) and isinstance(error, APIError)
    assert error.status == status
    assert error.code == "websocket_not_available"
    assert error.retryable


def test_upgrade_426_is_upgrade_refused_not_a_subclass() -> None:
    """A 426 has no class of its own: it is an UpgradeRefusedError (APIError and ConnectError)."""
    from openai_ws.errors import UpgradeRefusedError

    with Emulator(api_key=KEY, config=EmulatorConfig(upgrade_status=426)) as server:
        ws = WSTransport(
            server.ws_url, headers={"Authorization": f"Bearer {KEY}"}, connect_timeout=5.0
        )
        with pytest.raises(UpgradeRefusedError) as info:
            ws.connect()
    assert type(info.value) is UpgradeRefusedError
    assert info.value.code == "upgrade_required"


def test_upgrade_429_is_rate_limit_error_with_its_hint() -> None:
    """A 429 on the upgrade raises RateLimitError carrying the retry headers; it pickles."""
    body = b'{"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}'
    answer = (
        b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
        b"Retry-After-Ms: 1500\r\nRetry-After: 2\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with RawPeer(RawPeer.send(answer)) as peer:
        _, error = connect_to(peer)
    assert isinstance(error, RateLimitError) and isinstance(error, ConnectError), error
    assert error.code == "rate_limit_exceeded" and error.message == "slow down"
    assert error.headers["retry-after-ms"] == "1500"
    assert error.retryable
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.status, copy.code, copy.retryable, dict(copy.headers)) == (
        429,
        "rate_limit_exceeded",
        True,
        dict(error.headers),
    )


def test_redirect_on_upgrade_is_not_followed() -> None:
    """A 302 on the upgrade is refused; the key is never sent to the Location host."""
    with RawPeer(RawPeer.send(b"")) as elsewhere:
        location = f"ws://127.0.0.1:{elsewhere.port}/steal"
        answer = f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
        with RawPeer(RawPeer.send(answer.encode())) as peer:
            _, error = connect_to(peer)
        time.sleep(0.1)
        assert elsewhere.heads == []
    assert isinstance(error, ConnectError), error
    assert error.status == 302 and not error.retryable
    assert "redirect" in str(error)


# -- plain words for an unreachable server ----------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_server_message_is_plain() -> None:
    """Nothing listening: "could not connect to 127.0.0.1:PORT (connection refused)"."""
    port = _free_port()
    ws = transport(f"ws://127.0.0.1:{port}/v1/responses")
    with pytest.raises(ConnectError) as info:
        ws.connect()
    assert str(info.value) == f"could not connect to 127.0.0.1:{port} (connection refused)"
    assert info.value.retryable
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


def test_unreachable_proxy_message_names_the_proxy() -> None:
    """A proxy that is not listening is named as the proxy in the message."""
    port = _free_port()
    ws = transport("ws://127.0.0.1:9/v1/responses", proxy=f"http://127.0.0.1:{port}")
    with pytest.raises(ConnectError) as info:
        ws.connect()
    expected = f"could not connect to the proxy 127.0.0.1:{port} (connection refused)"
    assert str(info.value) == expected


def test_proxy_refusing_the_tunnel_is_not_retryable() -> None:
    """A 407 from the proxy raises a ConnectError naming the proxy status, not retryable."""
    with RawPeer(RawPeer.send(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")) as proxy:
        ws = transport("ws://127.0.0.1:9/v1/responses", proxy=proxy.proxy_url)
        with pytest.raises(ConnectError) as info:
            ws.connect()
    assert "407" in str(info.value) and "proxy" in str(info.value)
    assert not info.value.retryable


# -- proxies from the environment ---------------------------------------------------------


def test_environment_proxy_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """http_proxy applies to ws://, https_proxy to wss://, and no_proxy names hosts to skip."""
    from openai_ws._transports.dial import Target, proxy_for

    monkeypatch.setenv("http_proxy", "http://u:p@plain-proxy:3128")
    monkeypatch.setenv("https_proxy", "http://tls-proxy:8080")
    monkeypatch.setenv("no_proxy", "internal.example, .corp, 10.0.0.0/8")
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    plain = proxy_for(Target.from_url("ws://api.example/v1/responses"), None)
    assert plain is not None
    assert (plain.host, plain.port, plain.username) == ("plain-proxy", 3128, "u")
    assert "p@" not in repr(plain)
    tls = proxy_for(Target.from_url("wss://api.example/v1/responses"), None)
    assert tls is not None and (tls.host, tls.port) == ("tls-proxy", 8080)
    for skipped in ("ws://internal.example/x", "ws://a.corp/x", "ws://10.1.2.3/x"):
        assert proxy_for(Target.from_url(skipped), None) is None, skipped
    explicit = proxy_for(Target.from_url("ws://internal.example/x"), "http://chosen:1")
    assert explicit is not None and explicit.host == "chosen"  # explicit wins, as over HTTP


def test_socks_proxy_without_python_socks_is_a_clear_error() -> None:
    """A socks5:// proxy without the python-socks package raises a ConnectError saying so."""
    try:
        import python_socks  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("python-socks is installed")
    ws = transport("ws://127.0.0.1:9/v1/responses", proxy="socks5://127.0.0.1:1080")
    with pytest.raises(ConnectError, match="python-socks") as info:
        ws.connect()
    assert not info.value.retryable


def test_frame_in_the_same_segment_as_the_101_is_not_lost() -> None:
    """A message sent in the same TCP segment as the 101 still reaches recv()."""
    import base64
    import hashlib

    from servers import frame

    def behave(peer: RawPeer, conn: socket.socket, head: bytes) -> None:
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        accept = base64.b64encode(hashlib.sha1(key + guid).digest())
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + frame(0x1, b'{"type": "hello"}')
        )

    with RawPeer(behave) as peer:
        ws = transport(f"ws://127.0.0.1:{peer.port}/v1/responses")
        ws.connect()
        try:
            got: list = []
            while not got:
                got = ws.recv()
        finally:
            ws.release()
    assert got[0] == '{"type": "hello"}'
