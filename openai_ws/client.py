"""The public :class:`OpenAI` client: configuration, and the factory of sessions.

It resolves settings (API key, base URLs, organization, project, timeouts, TLS,
proxy) once, builds the handshake headers, and hands them to a :class:`Session`
(WebSocket) or to the HTTP transport behind :attr:`OpenAI.responses`. Settings
not given as arguments come from the official SDK's environment variables
(``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_ORG_ID``,
``OPENAI_PROJECT_ID``, plus ``OPENAI_WEBSOCKET_BASE_URL``). The CA that both
transports trust is resolved here once (:func:`resolve_ca`), so the WebSocket
and HTTP never disagree about a certificate.

It must never log, print or ``repr`` the API key (it logs one warning, without
the key, when the key would travel unencrypted to a host that is not
loopback), and it opens no connection by itself: only
:meth:`OpenAI.ws_session` and :attr:`OpenAI.responses` do.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

from ._session.options import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_FALLBACK_COOLDOWN,
    DEFAULT_MAX_CONNECTION_AGE,
    DEFAULT_MAX_LANES,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_QUEUE_BYTES,
    DEFAULT_MAX_QUEUE_EVENTS,
    DEFAULT_MAX_REPLAYS,
    DEFAULT_MAX_SOCKETS,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    DEFAULT_RECONNECT_ATTEMPTS,
    DEFAULT_SOCKET_IDLE_TIMEOUT,
    SessionOptions,
)
from ._stream import _StreamClosed
from ._types import RequestFields
from ._version import __version__
from .conversation import Conversation
from .errors import ConnectError, OpenAIWSError
from .models import Response, ResponseCreateRequest
from .session import EventStream, Extras, Session, coerce_request

if TYPE_CHECKING:  # requests and ssl are imported on first use, not with the package
    import ssl

    from ._transports.http import HTTPTransport
    from ._types import Unpack

__all__ = ["CA_ENVIRONMENT_VARIABLES", "DEFAULT_BASE_URL", "OpenAI", "Responses", "resolve_ca"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
USER_AGENT = f"openai-ws/{__version__} Python/{platform.python_version()}"

#: The variables that name the CAs to trust, in the order they are looked at
#: (after the ``ca_bundle`` option, before the system store).
CA_ENVIRONMENT_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")

ClientCert = Union[str, Tuple[str, str]]


def _env(name: str) -> Optional[str]:
    """An environment variable's value; an empty one counts as unset."""
    return os.environ.get(name) or None


def _ca_source(
    ca_bundle: Optional[str], env: Mapping[str, str]
) -> Tuple[Optional[str], str]:
    """The CA file or directory to trust and where the choice came from."""
    if ca_bundle:
        return ca_bundle, "ca_bundle"
    for name in CA_ENVIRONMENT_VARIABLES:
        value = env.get(name)
        if value:
            return value, name
    import ssl

    paths = ssl.get_default_verify_paths()
    if paths.openssl_cafile and os.path.isfile(paths.openssl_cafile):
        return paths.openssl_cafile, "the system store"
    if paths.openssl_capath and os.path.isdir(paths.openssl_capath):
        return paths.openssl_capath, "the system store"
    return None, "the system store"


def resolve_ca(
    ca_bundle: Optional[str] = None, env: Optional[Mapping[str, str]] = None
) -> Optional[str]:
    """The CA file or directory that both transports trust.

    In order: ``ca_bundle``, then ``SSL_CERT_FILE``, ``SSL_CERT_DIR``,
    ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` (from ``env``, default
    ``os.environ``; empty values are skipped), then the system store (the file
    or directory OpenSSL was built to use, if it exists). ``None`` when there is
    no system store: the WebSocket then uses Python's default context and HTTP
    the ``certifi`` bundle of requests.
    """
    return _ca_source(ca_bundle, os.environ if env is None else env)[0]


def _is_loopback(host: Optional[str]) -> bool:
    """Whether ``host`` (a URL's hostname) is this machine: 127.0.0.0/8, ::1 or localhost.

    ``localhost`` and its subdomains are loopback names by RFC 6761 §6.3.
    """
    if not host:
        return False
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    import ipaddress  # only for plain http/ws URLs

    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _clear_text_origins(*urls: str) -> List[str]:
    """``scheme://host[:port]`` of each ``http``/``ws`` URL whose host is not loopback."""
    origins: List[str] = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("http", "ws") and not _is_loopback(parts.hostname):
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in origins:
                origins.append(origin)
    return origins


def websocket_url(base_url: str) -> str:
    """``https://host/v1`` → ``wss://host/v1/responses`` (``http`` → ``ws``)."""
    base = base_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    elif not base.startswith(("ws://", "wss://")):
        raise ValueError(f"unsupported URL scheme in {base_url!r}")
    return f"{base}/responses"


class OpenAI:
    """Settings shared by every session and HTTP call made with this client.

    As in the official SDK, what is not given comes from the environment:
    ``api_key`` from ``OPENAI_API_KEY`` (required one way or the other),
    ``base_url`` from ``OPENAI_BASE_URL`` (else ``https://api.openai.com/v1``),
    ``organization`` from ``OPENAI_ORG_ID``, ``project`` from
    ``OPENAI_PROJECT_ID``; empty variables count as unset. ``base_url`` is the
    HTTP base; the WebSocket URL is derived from it (``https`` → ``wss``,
    ``http`` → ``ws``, plus ``/responses``) unless ``websocket_base_url`` is
    given (or, when ``base_url`` is not given either,
    ``OPENAI_WEBSOCKET_BASE_URL``). ``timeout`` bounds one request (seconds),
    ``connect_timeout`` one connection attempt. ``max_retries`` bounds retries
    of rate-limited (429) and server (5xx) errors. TLS is verified by default,
    with one trust setting for both transports (:func:`resolve_ca`):
    ``ca_bundle`` (a PEM file or a hashed directory of CAs), else
    ``SSL_CERT_FILE``, ``SSL_CERT_DIR``, ``REQUESTS_CA_BUNDLE``,
    ``CURL_CA_BUNDLE``, else the system store. ``client_cert`` is a client
    certificate (a path, or ``(cert, key)``), ``verify=False`` turns checking
    off. ``proxy`` is an ``http://`` (or ``socks5://``) URL; when it is not
    given, the usual ``https_proxy`` / ``no_proxy`` variables apply. A client
    whose ``http://``/``ws://`` URL names a host that is not loopback logs one
    warning: the key would cross the network unencrypted.
    """

    def __init__(
        self,
        *,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        websocket_base_url: Optional[str] = None,
        organization: Optional[str] = None,
        project: Optional[str] = None,
        timeout: float = 600.0,
        connect_timeout: float = 15.0,
        max_retries: int = 2,
        default_headers: Optional[Mapping[str, str]] = None,
        proxy: Optional[str] = None,
        ca_bundle: Optional[str] = None,
        client_cert: Optional[ClientCert] = None,
        verify: bool = True,
    ) -> None:
        if api_key is None:
            api_key = _env("OPENAI_API_KEY")
        if not api_key:
            raise OpenAIWSError("an API key is required: pass api_key=... or set OPENAI_API_KEY")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if base_url is None:
            base_url = _env("OPENAI_BASE_URL")
            # The WebSocket variable goes with the HTTP one: an explicit
            # base_url is never split from its socket by the environment.
            if websocket_base_url is None:
                websocket_base_url = _env("OPENAI_WEBSOCKET_BASE_URL")
        self._api_key = api_key
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.websocket_url = websocket_url(websocket_base_url or self.base_url)
        self.organization = _env("OPENAI_ORG_ID") if organization is None else organization
        self.project = _env("OPENAI_PROJECT_ID") if project is None else project
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_retries = max_retries
        self.default_headers: Dict[str, str] = dict(default_headers or {})
        self.proxy = proxy
        self.ca_bundle = ca_bundle
        self.client_cert = client_cert
        self.verify = verify
        self._http: Optional[HTTPTransport] = None
        self._http_lock = threading.Lock()
        clear = _clear_text_origins(self.base_url, self.websocket_url)
        if clear:
            log.warning(
                "the API key will travel unencrypted to %s (plain %s to a host that is not "
                "loopback): anyone on the network path can read it; use https:// and wss://",
                " and ".join(clear),
                "/".join(sorted({origin.split(":", 1)[0] for origin in clear})),
            )

    @classmethod
    def from_env(cls, **overrides: Any) -> OpenAI:
        """Build a client from ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
        ``OPENAI_WEBSOCKET_BASE_URL``, ``OPENAI_ORG_ID`` and ``OPENAI_PROJECT_ID``;
        keyword arguments override them. The same as ``OpenAI(**overrides)``."""
        return cls(**overrides)

    def __repr__(self) -> str:
        return f"OpenAI(base_url={self.base_url!r}, api_key='***')"

    # -- what the transports need --------------------------------------------

    def _headers(self) -> Dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "User-Agent": USER_AGENT,
        }
        if self.organization:
            headers["OpenAI-Organization"] = self.organization
        if self.project:
            headers["OpenAI-Project"] = self.project
        headers.update(self.default_headers)
        return headers

    def _trust(self) -> Union[bool, str]:
        """What both transports verify against: False, a CA file or directory, or True.

        ``True`` (requests' own default, its ``certifi`` bundle) only when no
        setting names CAs and OpenSSL has no system store. Raises
        :class:`ConnectError` when the named CAs do not exist.
        """
        if not self.verify:
            return False
        where, source = _ca_source(self.ca_bundle, os.environ)
        if where is None:
            return True
        if not os.path.exists(where):
            raise ConnectError(
                f"could not load the TLS settings: the CA file or directory {where!r} "
                f"(from {source}) does not exist",
                retryable=False,
            )
        return where

    def _ssl_context(self) -> ssl.SSLContext:
        import ssl

        try:
            trust = self._trust()
            if isinstance(trust, str):
                folder = os.path.isdir(trust)
                context = ssl.create_default_context(
                    cafile=None if folder else trust, capath=trust if folder else None
                )
            else:
                context = ssl.create_default_context()
            if not trust:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if self.client_cert:
                if isinstance(self.client_cert, tuple):
                    context.load_cert_chain(*self.client_cert)
                else:
                    context.load_cert_chain(self.client_cert)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(f"could not load the TLS settings: {exc}", retryable=False) from exc
        return context

    def _http_transport(self) -> HTTPTransport:
        """The client's one HTTP connection pool, made on first use.

        ``client.responses`` and every session's HTTP fallback share it, so a
        fallback finds a warm keep-alive connection.
        """
        with self._http_lock:
            if self._http is None:
                from ._transports import load_http

                load_http()  # requests and urllib3, imported once, under a lock
                from ._transports.http import HTTPTransport

                verify = self._trust() if self.base_url.startswith("https") else self.verify
                self._http = HTTPTransport(
                    self.base_url,
                    headers=self._headers(),
                    timeout=self.timeout,
                    connect_timeout=self.connect_timeout,
                    max_retries=self.max_retries,
                    verify=verify,
                    cert=self.client_cert,
                    proxy=self.proxy,
                )
            return self._http

    # -- public ---------------------------------------------------------------

    @property
    def responses(self) -> Responses:
        """Plain HTTP access to the Responses API with the same types."""
        return Responses(self._http_transport)

    def conversation(
        self, *, compact_threshold: Optional[int] = None, **defaults: Any
    ) -> Conversation:
        """An HTTP-only :class:`~openai_ws.Conversation` (no WebSocket): each turn
        continues a stored parent with ``previous_response_id``, and sends the
        whole history when the parent is not stored (``store=False``)."""
        return Conversation(self, defaults, compact_threshold=compact_threshold)

    def ws_session(
        self,
        *,
        # Lanes
        lanes: bool = True,
        max_lanes: int = DEFAULT_MAX_LANES,
        max_sockets: int = DEFAULT_MAX_SOCKETS,
        socket_idle_timeout: float = DEFAULT_SOCKET_IDLE_TIMEOUT,
        # Timeouts
        event_timeout: Optional[float] = None,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        # Keepalive
        ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
        ping_timeout: float = DEFAULT_PING_TIMEOUT,
        # Limits
        max_queue_events: int = DEFAULT_MAX_QUEUE_EVENTS,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
        # Recovery
        reconnect_attempts: int = DEFAULT_RECONNECT_ATTEMPTS,
        max_replays: int = DEFAULT_MAX_REPLAYS,
        fallback_cooldown: float = DEFAULT_FALLBACK_COOLDOWN,
        # Lifetime
        max_connection_age: float = DEFAULT_MAX_CONNECTION_AGE,
        # Telemetry
        tracer_provider: Any = None,
        meter_provider: Any = None,
        capture_content: Optional[bool] = None,
    ) -> Session:
        """Open a WebSocket session (the socket connects now).

        ``lanes=False`` sends every request on the default lane (strict FIFO,
        one response at a time). ``max_lanes`` caps the ``stream_id`` names per
        socket (at most 32). The session opens another socket only when every
        open one runs 16 responses (or has no lane left), up to ``max_sockets``
        (``1``: one socket, later requests queue on it); a continuation goes to
        the socket that produced its parent, so a conversation stays on its
        socket; an extra socket idle for ``socket_idle_timeout`` seconds is
        closed. ``event_timeout`` bounds the wait for each next
        event (``None``: only the request's ``timeout``). A ping is sent after
        ``ping_interval`` seconds of silence (``None``: never) and the socket is
        declared dead when no pong comes within ``ping_timeout``. A request
        whose consumer lets more than ``max_queue_events`` events or
        ``max_queue_bytes`` bytes (what its events cost in memory, estimated)
        pile up fails alone with :class:`~openai_ws.errors.ConsumerTooSlowError`;
        one event costing more than ``max_queue_bytes`` closes the socket with
        1009 before it is decoded and fails its request. A socket older than
        ``max_connection_age`` seconds (the service allows 60 minutes) is
        replaced between requests; requests still running on it finish there.
        A lost socket is reopened up to ``reconnect_attempts`` times in a row
        (exponential backoff with jitter) before the session switches to HTTP.
        A request that had received no event when its socket ended is sent
        again on a new socket, at most ``max_replays`` times. After the session
        switched to HTTP, the socket is tried again after ``fallback_cooldown``
        seconds (doubling after each failed try, up to 10 minutes). A message
        larger than ``max_message_size`` bytes (default 16 MiB, a few MiB over
        the largest event the service sends; ``None``: no limit) closes the
        socket with 1009 instead of being read into memory. ``tracer_provider`` and
        ``meter_provider`` are the OpenTelemetry providers of the session's spans and
        metrics (default: the global ones; nothing is recorded without OpenTelemetry);
        ``capture_content`` records instructions, input and output on the spans
        (default: ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``).
        """
        options = SessionOptions(
            url=self.websocket_url,
            headers=self._headers(),
            connect_timeout=self.connect_timeout,
            request_timeout=self.timeout,
            event_timeout=event_timeout,
            ssl_context=self._ssl_context() if self.websocket_url.startswith("wss") else None,
            proxy=self.proxy,
            use_lanes=lanes,
            max_lanes=max_lanes,
            max_sockets=max_sockets,
            socket_idle_timeout=socket_idle_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_queue_events=max_queue_events,
            max_queue_bytes=max_queue_bytes,
            max_retries=self.max_retries,
            close_timeout=close_timeout,
            max_connection_age=max_connection_age,
            reconnect_attempts=reconnect_attempts,
            max_replays=max_replays,
            max_message_size=max_message_size,
            fallback_cooldown=fallback_cooldown,
        )
        return Session(
            options,
            http=self._http_transport,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            capture_content=capture_content,
        )

    def close(self) -> None:
        """Release the HTTP connection pool (sessions are closed on their own).

        Sessions still open keep their sockets but can no longer fall back to HTTP.
        """
        with self._http_lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()

    def __enter__(self) -> OpenAI:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Responses:
    """``client.responses``: the Responses API over plain HTTP.

    ``create`` and ``stream`` take, besides the request, the per-call options
    of the official SDK: ``timeout`` (seconds, for this call), ``extra_headers``
    (sent with this request, over the client's), ``extra_query`` (added to the
    URL) and ``extra_body`` (merged into the JSON body, over the request's
    fields).
    """

    def __init__(self, transport: Callable[[], HTTPTransport]) -> None:
        self._transport = transport

    def create(
        self,
        request: Optional[ResponseCreateRequest] = None,
        /,
        *,
        timeout: Optional[float] = None,
        extra_headers: Extras = None,
        extra_query: Extras = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **fields: Unpack[RequestFields],
    ) -> Response:
        """``POST /v1/responses`` and return the whole :class:`Response`."""
        body = coerce_request(request, fields, extra_body).to_dict()
        if body.get("stream"):
            raise ValueError("use responses.stream() for stream=True")
        return self._transport().create(
            body, timeout=timeout, headers=_copy(extra_headers), query=_copy(extra_query)
        )

    def stream(
        self,
        request: Optional[ResponseCreateRequest] = None,
        /,
        *,
        timeout: Optional[float] = None,
        extra_headers: Extras = None,
        extra_query: Extras = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **fields: Unpack[RequestFields],
    ) -> EventStream:
        """``POST /v1/responses`` with ``stream: true``; an :class:`EventStream` of typed events.

        Use it in a ``with`` block (or close it): closing stops reading and drops
        the connection, also from another thread while one waits in ``next()``.
        The request is sent on the first ``next()``.
        """
        from ._transports import load_http

        load_http()  # requests and urllib3, imported once, under a lock
        from ._transports.http_cancel import Cancellation

        body = coerce_request(request, fields, extra_body).to_dict()
        token = Cancellation(lambda: _StreamClosed("the stream was closed"))
        events = self._transport().stream(
            body,
            timeout=timeout,
            cancel=token,
            headers=_copy(extra_headers),
            query=_copy(extra_query),
        )
        return EventStream(events, interrupt=token.cancel)

    def retrieve(self, response_id: str) -> Response:
        """``GET /v1/responses/{id}`` (only stored responses exist)."""
        return self._transport().retrieve(response_id)

    def delete(self, response_id: str) -> None:
        """``DELETE /v1/responses/{id}``."""
        self._transport().delete(response_id)


def _copy(extras: Extras) -> Optional[Dict[str, str]]:
    """A call's ``extra_headers`` or ``extra_query`` as a new dict (``None`` if empty)."""
    return dict(extras) if extras else None
