"""The public :class:`OpenAI` client: configuration, and the factory of sessions.

It resolves settings (API key, base URLs, organization, project, timeouts, TLS,
proxy) once, builds the handshake headers, and hands them to a :class:`Session`
(WebSocket) or to the HTTP transport behind :attr:`OpenAI.responses`.

It must never log, print or ``repr`` the API key, and it opens no connection by
itself: only :meth:`OpenAI.ws_session` and :attr:`OpenAI.responses` do.
"""

from __future__ import annotations

import os
import platform
import ssl
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Mapping, Optional, Tuple, Union

from ._session.options import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_CONNECTION_AGE,
    DEFAULT_MAX_LANES,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_QUEUE_BYTES,
    DEFAULT_MAX_QUEUE_EVENTS,
    DEFAULT_MAX_REPLAYS,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    DEFAULT_RECONNECT_ATTEMPTS,
    SessionOptions,
)
from ._version import __version__
from .errors import ConnectError, OpenAIWSError
from .events import ServerEvent
from .models import Response, ResponseCreateRequest
from .session import Session, coerce_request

if TYPE_CHECKING:  # requests is imported on first HTTP use, not with the package
    from ._transports.http import HTTPTransport

__all__ = ["DEFAULT_BASE_URL", "OpenAI", "Responses"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
USER_AGENT = f"openai-ws/{__version__} Python/{platform.python_version()}"

ClientCert = Union[str, Tuple[str, str]]


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

    ``api_key`` is required (see :meth:`from_env`). ``base_url`` is the HTTP
    base (``https://api.openai.com/v1``); the WebSocket URL is derived from it
    (``https`` → ``wss``, ``http`` → ``ws``, plus ``/responses``) unless
    ``websocket_base_url`` is given. ``timeout`` bounds one request (seconds),
    ``connect_timeout`` one connection attempt. ``max_retries`` bounds retries
    of rate-limited (429) and server (5xx) errors. TLS is verified by default:
    ``ca_bundle`` names a PEM file of CAs to trust, ``client_cert`` a client
    certificate (a path, or ``(cert, key)``), ``verify=False`` turns checking
    off. ``proxy`` is an ``http://`` (or ``socks5://``) URL; when it is not
    given, the usual ``https_proxy`` / ``no_proxy`` variables apply.
    """

    def __init__(
        self,
        *,
        api_key: Optional[str] = None,
        base_url: str = DEFAULT_BASE_URL,
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
        if not api_key:
            raise OpenAIWSError("an API key is required: pass api_key=... or set OPENAI_API_KEY")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.websocket_url = websocket_url(websocket_base_url or self.base_url)
        self.organization = organization
        self.project = project
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

    @classmethod
    def from_env(cls, **overrides: Any) -> OpenAI:
        """Build a client from ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
        ``OPENAI_WEBSOCKET_BASE_URL``, ``OPENAI_ORG_ID`` and ``OPENAI_PROJECT_ID``;
        keyword arguments override them."""
        env = {
            "api_key": os.environ.get("OPENAI_API_KEY"),
            "base_url": os.environ.get("OPENAI_BASE_URL"),
            "websocket_base_url": os.environ.get("OPENAI_WEBSOCKET_BASE_URL"),
            "organization": os.environ.get("OPENAI_ORG_ID"),
            "project": os.environ.get("OPENAI_PROJECT_ID"),
        }
        settings: Dict[str, Any] = {k: v for k, v in env.items() if v}
        settings.update(overrides)
        return cls(**settings)

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

    def _ssl_context(self) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(cafile=self.ca_bundle)
            if not self.verify:
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
                from ._transports.http import HTTPTransport

                verify: Union[bool, str] = (self.ca_bundle or True) if self.verify else False
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

    def ws_session(
        self,
        *,
        # Lanes
        lanes: bool = True,
        max_lanes: int = DEFAULT_MAX_LANES,
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
        # Lifetime
        max_connection_age: float = DEFAULT_MAX_CONNECTION_AGE,
    ) -> Session:
        """Open a WebSocket session (the socket connects now).

        ``lanes=False`` sends every request on the default lane (strict FIFO,
        one response at a time). ``max_lanes`` caps the ``stream_id`` names per
        socket (at most 32). ``event_timeout`` bounds the wait for each next
        event (``None``: only the request's ``timeout``). A ping is sent after
        ``ping_interval`` seconds of silence (``None``: never) and the socket is
        declared dead when no pong comes within ``ping_timeout``. A request
        whose consumer lets more than ``max_queue_events`` events or
        ``max_queue_bytes`` bytes pile up fails alone with
        :class:`~openai_ws.errors.ConsumerTooSlowError`. A socket older than
        ``max_connection_age`` seconds (the service allows 60 minutes) is
        replaced between requests; requests still running on it finish there.
        A lost socket is reopened up to ``reconnect_attempts`` times in a row
        (exponential backoff with jitter) before the session switches to HTTP.
        A request that had received no event when its socket ended is sent
        again on a new socket, at most ``max_replays`` times. A message larger
        than ``max_message_size`` bytes closes the socket with 1009 instead of
        being read into memory (``None``, the default, sets no limit, like the
        official SDK: terminal events carry the whole response).
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
        )
        return Session(options, http=self._http_transport)

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
    """``client.responses``: the Responses API over plain HTTP."""

    def __init__(self, transport: Callable[[], HTTPTransport]) -> None:
        self._transport = transport

    def create(
        self,
        request: Optional[ResponseCreateRequest] = None,
        /,
        *,
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> Response:
        """``POST /v1/responses`` and return the whole :class:`Response`."""
        body = _body(request, fields)
        if body.get("stream"):
            raise ValueError("use responses.stream() for stream=True")
        return self._transport().create(body, timeout=timeout)

    def stream(
        self,
        request: Optional[ResponseCreateRequest] = None,
        /,
        *,
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> Iterator[ServerEvent]:
        """``POST /v1/responses`` with ``stream: true``; yield typed events."""
        return self._transport().stream(_body(request, fields), timeout=timeout)

    def retrieve(self, response_id: str) -> Response:
        """``GET /v1/responses/{id}`` (only stored responses exist)."""
        return self._transport().retrieve(response_id)

    def delete(self, response_id: str) -> None:
        """``DELETE /v1/responses/{id}``."""
        self._transport().delete(response_id)


def _body(request: Optional[ResponseCreateRequest], fields: Dict[str, Any]) -> Dict[str, Any]:
    return coerce_request(request, fields).to_dict()
