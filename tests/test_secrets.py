"""No secret leaks (issue 10 "Secrets"): peers that echo the request headers back.

A gateway's 401 page, a proxy's 407 page, a 500 that quotes the request, a
reason phrase and a response header that repeat it: whatever a peer echoes, no
exception message, ``repr``, chained exception (``__cause__``/``__context__``,
also those of websocket-client and requests), formatted traceback or log line
(caplog at DEBUG, every logger) may hold the API key, another secret header,
or the proxy's credentials. Peers are :class:`servers.RawPeer` on 127.0.0.1.
"""

from __future__ import annotations

import base64
import logging
import traceback
from typing import Any, Iterator, List

import pytest
from servers import RawPeer

from openai_ws import OpenAI
from openai_ws._transports.http import HTTPTransport
from openai_ws._transports.ws import WSTransport
from openai_ws.errors import APIError, AuthenticationError, ConnectError, InternalServerError

KEY = "sk-secret-key-DO-NOT-LEAK-0123456789"
GATEWAY_TOKEN = "gw-token-DO-NOT-LEAK-abcdef"
PROXY_USER, PROXY_PASSWORD = "alice", "proxy-pass-DO-NOT-LEAK"
PROXY_BASIC = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
SECRETS = [KEY, GATEWAY_TOKEN, PROXY_PASSWORD, PROXY_BASIC]
HEADERS = {
    "Authorization": f"Bearer {KEY}",
    "X-Gateway-Token": GATEWAY_TOKEN,
    "OpenAI-Organization": "org-visible",
}


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception reachable through __cause__ and __context__."""
    seen: List[int] = []
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.append(id(current))
        yield current
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def assert_clean(exc: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    """No secret in any text the error, its chain, its traceback or the log can show."""
    texts = [
        "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        *(f"{e}\n{e!r}\n{getattr(e, '__notes__', '')}" for e in chain(exc)),
        *(record.getMessage() for record in caplog.records),
        *(record.exc_text or "" for record in caplog.records),
        caplog.text,
    ]
    if isinstance(exc, APIError):
        texts.append(repr(dict(exc.headers)))
    for secret in SECRETS:
        for text in texts:
            assert secret not in text, f"{secret!r} leaked into: {text[:300]!r}"


@pytest.fixture(autouse=True)
def debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


def ws(url: str, **options: Any) -> WSTransport:
    return WSTransport(url, headers=HEADERS, connect_timeout=3.0, **options)


def http(url: str, **options: Any) -> HTTPTransport:
    settings = {"timeout": 3.0, "connect_timeout": 3.0, "max_retries": 0}
    settings.update(options)
    return HTTPTransport(url, headers=HEADERS, **settings)


BODY = {"model": "m", "input": "hi"}

# -- WebSocket upgrade --------------------------------------------------------------


@pytest.mark.parametrize("as_json", [True, False])
@pytest.mark.parametrize("status", [401, 500])
def test_upgrade_refusal_echoing_headers_leaks_nothing(
    caplog: pytest.LogCaptureFixture, status: int, as_json: bool
) -> None:
    """A 401/500 upgrade answer quoting the request (body, header, reason) leaks no secret."""
    with RawPeer(RawPeer.echo(status, as_json=as_json)) as peer:
        transport = ws(f"ws://127.0.0.1:{peer.port}/v1/responses")
        with pytest.raises(ConnectError) as info:
            transport.connect()
        assert KEY.encode() in peer.heads[0]  # the key was sent, and echoed
    assert info.value.status == status
    assert "you sent" in str(info.value) or "pre" in str(info.value)
    assert_clean(info.value, caplog)


def test_proxy_407_echoing_headers_leaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A proxy that refuses the tunnel with 407 and quotes Proxy-Authorization leaks nothing."""
    with RawPeer(RawPeer.echo(407, reason="Proxy Authentication Required")) as proxy:
        url = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}"
        transport = ws("ws://api.example.invalid/v1/responses", proxy=url)
        with pytest.raises(ConnectError) as info:
            transport.connect()
        assert PROXY_BASIC.encode() in proxy.heads[0]
    assert "407" in str(info.value)
    assert_clean(info.value, caplog)


def test_session_with_echoing_gateway_leaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Through the client, a 401 echoing gateway raises AuthenticationError with nothing leaked."""
    with RawPeer(RawPeer.echo(401)) as peer:
        client = OpenAI(api_key=KEY, base_url=peer.url, max_retries=0, default_headers=HEADERS)
        with pytest.raises(AuthenticationError) as info:
            client.ws_session()
    assert_clean(info.value, caplog)


# -- HTTP ---------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [True, False])
@pytest.mark.parametrize("status", [401, 500])
@pytest.mark.parametrize("call", ["create", "stream"])
def test_http_error_echoing_headers_leaks_nothing(
    caplog: pytest.LogCaptureFixture, status: int, as_json: bool, call: str
) -> None:
    """A 401/500 HTTP answer quoting the request (body, header, reason) leaks no secret."""
    with RawPeer(RawPeer.echo(status, as_json=as_json)) as peer:
        transport = http(peer.url)
        try:
            with pytest.raises((AuthenticationError, InternalServerError)) as info:
                if call == "create":
                    transport.create(BODY)
                else:
                    list(transport.stream(BODY))
        finally:
            transport.close()
        assert KEY.encode() in peer.heads[0]
    assert info.value.status == status
    assert_clean(info.value, caplog)


def test_http_proxy_407_echoing_headers_leaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A forwarding proxy's 407 quoting Authorization and Proxy-Authorization leaks nothing."""
    with RawPeer(RawPeer.echo(407, reason="Proxy Authentication Required")) as proxy:
        url = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}"
        transport = http("http://api.example.invalid/v1", proxy=url)
        try:
            with pytest.raises(APIError) as info:
                transport.create(BODY)
        finally:
            transport.close()
        assert PROXY_BASIC.encode() in proxy.heads[0] and KEY.encode() in proxy.heads[0]
    assert info.value.status == 407
    assert_clean(info.value, caplog)


def test_https_tunnel_407_echoing_in_reason_leaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A CONNECT refused with a reason phrase quoting Proxy-Authorization leaks nothing."""
    with RawPeer(RawPeer.echo(407, reason="Proxy Authentication Required")) as proxy:
        url = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}"
        transport = http("https://api.example.invalid/v1", proxy=url)
        try:
            with pytest.raises(ConnectError) as info:
                transport.create(BODY)
        finally:
            transport.close()
        assert PROXY_BASIC.encode() in proxy.heads[0]
    assert "407" in str(info.value)
    assert_clean(info.value, caplog)


# -- the Scrubber itself ------------------------------------------------------------------


def test_scrubber_finds_escaped_forms() -> None:
    """A secret is scrubbed raw, JSON-escaped, HTML-escaped and URL-encoded."""
    import html
    import json
    from urllib.parse import quote

    from openai_ws._transports.messages import Scrubber

    secret = "sk-a/b+c<d>&e'f\"g"
    scrubber = Scrubber({"Authorization": f"Bearer {secret}"})

    for form in (
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
        html.escape(secret),
        quote(secret, safe=""),
    ):
        assert scrubber.text(f"before {form} after") == "before *** after", form
    assert secret not in repr(scrubber)


def test_scrubber_replaces_a_leaking_library_cause() -> None:
    """A library exception in the chain whose text shows the key becomes a RedactedError."""
    from openai_ws._transports.messages import RedactedError, Scrubber

    scrubber = Scrubber({"Authorization": f"Bearer {KEY}"})
    inner = ValueError(f"server said: Authorization: Bearer {KEY}")
    harmless = OSError("connection refused")
    inner.__context__ = harmless
    error = ConnectError(f"failed with {KEY}")
    error.__cause__ = inner
    scrubber.exception(error)
    assert KEY not in str(error)
    assert isinstance(error.__cause__, RedactedError)
    assert "ValueError" in str(error.__cause__) and "***" in str(error.__cause__)
    assert error.__cause__.__context__ is harmless


def test_scrubber_ignores_short_and_public_values() -> None:
    """Values under 4 characters and headers that are not secret are left alone."""
    from openai_ws._transports.messages import Scrubber

    scrubber = Scrubber({"Authorization": "abc", "OpenAI-Organization": "org-visible-1234"})
    assert scrubber.text("abc org-visible-1234") == "abc org-visible-1234"


def test_scrubber_knows_proxy_credentials() -> None:
    """A proxy URL's password, user:password pair and its Base64 are secrets."""
    from openai_ws._transports.messages import Scrubber

    scrubber = Scrubber({}, f"http://{PROXY_USER}:{PROXY_PASSWORD}@proxy:3128")
    text = f"Proxy-Authorization: Basic {PROXY_BASIC} pw={PROXY_PASSWORD}"
    assert scrubber.text(text) == "Proxy-Authorization: Basic *** pw=***"
