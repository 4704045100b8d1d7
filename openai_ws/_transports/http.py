"""The HTTP transport: with :mod:`.http_cancel`, the only importer of ``requests``/``urllib3``.

It speaks the plain HTTP Responses API (docs/protocol.md §6): ``POST /responses``
answered with one JSON :class:`~openai_ws.models.Response` (:meth:`HTTPTransport.create`)
or with a ``text/event-stream`` of server events (:meth:`HTTPTransport.stream`),
``GET`` and ``DELETE /responses/{id}``. The session uses it as the WebSocket
fallback; ``client.responses`` uses it directly.

What it must never do: let an exception of requests, urllib3 or the socket
layer escape (every one is translated into :mod:`openai_ws.errors` and chained
``from`` the original); put the API key into a message, a ``repr`` or a log line;
edit the caller's request body; know anything about lanes, sessions or fallback
policy; read more of a peer's answer than its limits (below).

Connections
    One pooled :class:`requests.Session` per transport (pools of up to 32
    connections per host), safe to use from many threads at once. ``close()``
    is idempotent, closes every pooled socket at once and also runs when the
    transport is garbage collected. A stream read to its terminal event gives
    its connection back to the pool; one closed early drops its connection.
    ``verify``, ``cert`` and ``proxy`` are passed with every request, because
    requests lets the environment override them when they are set on the
    session; so ``https_proxy``/``no_proxy`` apply only without ``proxy``, and
    ``REQUESTS_CA_BUNDLE`` only with ``verify=True``. A no-op ``auth`` object
    stops requests from replacing our ``Authorization`` header with
    ``~/.netrc`` credentials.

Timeouts
    ``timeout`` (the call's, else the transport's) is a total deadline for
    the whole call: connecting, retries and their waits, the answer's headers
    and all of its body, including a stream's events however slowly they come
    and the time the caller spends between them. Each socket read waits at
    most the time left when the call started, and the
    :class:`~.http_cancel.Watchdog` shuts the call's socket down when the
    deadline passes, so a server that trickles a byte at a time (which keeps
    every single read within its timeout) cannot stretch it; the call then
    raises :class:`~openai_ws.errors.RequestTimeoutError`. A retry whose wait
    would end past the deadline is not attempted (the error that asked for it
    is raised). ``connect_timeout`` bounds opening each connection. A timeout
    is *not* retried: it is the caller's deadline, and the server may still be
    running the request.

Limits
    A peer cannot make a call hold unbounded memory: an SSE line or event,
    and a JSON answer, may be at most ``max_event_size`` bytes
    (:data:`~openai_ws._protocol.sse.DEFAULT_MAX_EVENT_SIZE`, 16 MiB, the
    WebSocket ``max_message_size`` default; a larger one raises
    :class:`~openai_ws.errors.MessageTooLargeError`); of an error answer's
    body at most :data:`MAX_ERROR_BODY` bytes are read (the 429 body the retry
    policy peeks at included), and after a stream's terminal event at most
    :data:`MAX_TAIL` more (a body that goes on is dropped with its
    connection). HTTP chunks are read 64 KiB at a time, whatever size they
    announce.

Retries (:mod:`.http_retry`: urllib3's ``Retry`` taught OpenAI's signals)
    Up to ``max_retries`` retries of connection failures and of the statuses
    408, 409, 429 and 5xx, honouring ``retry-after-ms``/``Retry-After``,
    ``x-should-retry`` and ``insufficient_quota``, never past the call's
    deadline. Only what happens before the response headers is retried:
    once :meth:`HTTPTransport.stream` has yielded an event, nothing is
    replayed.

Cancelling from another thread
    A call given a ``cancel`` token (:mod:`.http_cancel`) is cut short when
    another thread cancels the token; it then raises the token's error and is
    never retried.

Errors
    A non-2xx answer becomes the :class:`~openai_ws.errors.APIError` subclass
    for its status, built from ``body["error"]`` (or from the text of a body
    that is not JSON) with the response headers, lower-cased. An SSE ``error``
    event, in the nested shape the service sends or the flat one of the spec,
    raises the same way. Connection failures (refused, DNS, TLS, proxy) raise
    :class:`~openai_ws.errors.ConnectError` in plain words ("could not connect
    to 127.0.0.1:9 (connection refused)"), timeouts
    :class:`~openai_ws.errors.RequestTimeoutError`, a connection lost
    mid-answer :class:`~openai_ws.errors.ConnectionClosedError` (or
    :class:`~openai_ws.errors.ReplayUnsafeError` once events were delivered),
    anything else :class:`~openai_ws.errors.TransportError`; a body that breaks
    the protocol (also JSON nested too deep to parse) raises
    :class:`~openai_ws.errors.ProtocolError`. Every error leaves through a
    :class:`~.messages.Scrubber`: no secret header the transport sent (or
    the proxy's credentials), however a peer echoes it, stays in its message,
    its fields or its chain.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    Iterator,
    Mapping,
    Optional,
    Tuple,
    Union,
)
from urllib.parse import quote, urlsplit

import requests
import requests.adapters
import requests.auth
import requests.exceptions
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions

from .._convert import parse_event, parse_response
from .._protocol import retry as retry_rules
from .._protocol.sse import DEFAULT_MAX_EVENT_SIZE, SSEDecoder
from ..errors import (
    APIError,
    MessageTooLargeError,
    OpenAIWSError,
    ProtocolError,
    RequestTimeoutError,
    TransportError,
    api_error_from_payload,
)
from ..events import TERMINAL_EVENT_TYPES, ErrorEvent, ServerEvent
from ..models import Response
from .http_cancel import (
    Adapter,
    Cancellation,
    Cancelled,
    calling,
    guard,
    raise_if_cancelled,
)
from .http_errors import stream_error, translate
from .http_retry import (
    MAX_ERROR_BODY,
    MAX_RETRY_AFTER,
    PEEKED,
    RetryPolicy,
)
from .messages import Scrubber, error_payload

if TYPE_CHECKING:
    pass

__all__ = [
    "MAX_ERROR_BODY",
    "MAX_RETRY_AFTER",
    "MAX_TAIL",
    "Cancellation",
    "HTTPTransport",
    "SSEDecoder",
]

log = logging.getLogger(__name__)

MAX_TAIL = 64 * 1024
"""Bytes read after a stream's terminal event to end the body and reuse the connection."""
POOL_MAXSIZE = 32
_READ = 64 * 1024  # bytes asked of the body per read
_Retry = RetryPolicy  # the name the tests know

_SSE_CONTENT_TYPE = "text/event-stream"
_DONE = b"[DONE]"


# --------------------------------------------------------------------------
# The transport
# --------------------------------------------------------------------------


class _KeepAuthorization(requests.auth.AuthBase):
    """An ``auth`` that changes nothing, so requests never applies ``~/.netrc``."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


class HTTPTransport:
    """The Responses API over HTTP, with pooled connections and retries.

    ``base_url`` is the API base (``https://api.openai.com/v1``); ``headers``
    are sent with every request (``Authorization`` and friends). ``timeout`` is
    the default total deadline of a call, ``connect_timeout`` the connect
    timeout (seconds); ``max_retries`` bounds retries (see the module
    docstring). ``verify`` is ``True`` (system CAs), ``False`` (no TLS checks)
    or the path of a CA bundle; ``cert`` a client certificate (path, or
    ``(cert, key)``); ``proxy`` a proxy URL for both schemes.
    ``max_event_size`` caps an SSE line or event and a JSON answer, in bytes
    (``None``: no cap). Every method may be called from many threads.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        timeout: float,
        connect_timeout: float,
        max_retries: int,
        verify: Union[bool, str] = True,
        cert: Union[str, Tuple[str, str], None] = None,
        proxy: Optional[str] = None,
        max_event_size: Optional[int] = DEFAULT_MAX_EVENT_SIZE,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self._responses_url = f"{self.base_url}/responses"
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._max_event_size = max_event_size
        self._headers = dict(headers)
        self._proxy = proxy
        self._scrubber = Scrubber(headers, proxy)
        retry = _Retry(
            total=max_retries,
            redirect=0,
            allowed_methods=frozenset({"GET", "POST", "DELETE"}),
            status_forcelist=retry_rules.RETRY_STATUSES,
            backoff_factor=retry_rules.ERROR_BACKOFF_INITIAL,  # get_backoff_time() applies the cap
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
        )
        adapter = Adapter(pool_connections=4, pool_maxsize=POOL_MAXSIZE, max_retries=retry)
        session = requests.Session()
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update(headers)
        session.auth = _KeepAuthorization()
        self._session = session
        # Passed with every request, not set on the session: requests lets the
        # environment (REQUESTS_CA_BUNDLE, https_proxy) override session-level
        # verify and proxies, but never per-request ones.
        self._verify = verify
        self._cert = cert
        self._proxies = {"http": proxy, "https": proxy} if proxy else None
        self._closed = False
        self._finalizer = weakref.finalize(self, _close_session, session)

    def __repr__(self) -> str:
        return f"HTTPTransport(base_url={self.base_url!r})"

    # -- public ---------------------------------------------------------------

    def create(
        self,
        body: Mapping[str, Any],
        *,
        timeout: Optional[float] = None,
        cancel: Optional[Cancellation] = None,
        headers: Optional[Mapping[str, str]] = None,
        query: Optional[Mapping[str, Any]] = None,
    ) -> Response:
        """``POST /responses`` and return the whole :class:`Response`.

        ``body`` is sent exactly as given. It must not ask for ``stream: true``
        (:class:`ValueError`); use :meth:`stream` for that. ``timeout`` is the
        call's total deadline (default: the transport's); ``headers`` and
        ``query`` are added to this request only. ``cancel`` lets another
        thread abort the call (it then raises ``cancel.error()``).
        """
        if body.get("stream"):
            raise ValueError("create() expects a body without stream=true; use stream()")
        scrubber = self._scrubber_for(headers)
        try:
            obj = self._json(
                "POST", self._responses_url, body, timeout, cancel, headers=headers, query=query
            )
            return _response(obj)
        except OpenAIWSError as exc:
            scrubber.exception(exc)
            raise

    def stream(
        self,
        body: Mapping[str, Any],
        *,
        timeout: Optional[float] = None,
        cancel: Optional[Cancellation] = None,
        headers: Optional[Mapping[str, str]] = None,
        query: Optional[Mapping[str, Any]] = None,
    ) -> Iterator[ServerEvent]:
        """``POST /responses`` with ``stream: true``; yield typed events.

        Events come in server order up to and including the terminal one
        (``response.completed``/``failed``/``incomplete``/``done``); a
        ``data: [DONE]`` line also ends the stream. An ``error`` event raises
        its :class:`~openai_ws.errors.APIError` after the events before it were
        yielded. A stream that ends before a terminal event raises
        :class:`~openai_ws.errors.ConnectionClosedError`
        (:class:`~openai_ws.errors.ReplayUnsafeError` once events were
        yielded); a ``data`` payload that is not a valid event raises
        :class:`~openai_ws.errors.ProtocolError`. The request is sent on the
        first ``next()``; ``timeout`` (default: the transport's) is a total
        deadline from then on, the time the caller spends between events
        included. Closing the generator early closes the connection. After
        the terminal event the rest of the body (which the server ends there)
        is read, so that the connection can be reused. ``headers`` and
        ``query`` are added to this request only; ``cancel`` lets another
        thread abort the stream (it then raises ``cancel.error()``).
        """
        payload = dict(body)
        payload["stream"] = True
        return self._stream(payload, timeout, cancel, headers, query)

    def resume(
        self,
        response_id: str,
        *,
        starting_after: int,
        timeout: Optional[float] = None,
        cancel: Optional[Cancellation] = None,
    ) -> Iterator[ServerEvent]:
        """``GET /responses/{id}?stream=true&starting_after=N``: the rest of a stored
        response's events, after sequence number ``N``, as :meth:`stream` yields them."""
        url = f"{self._responses_url}/{quote(response_id, safe='')}"
        query = {"stream": "true", "starting_after": str(starting_after)}
        return self._stream(None, timeout, cancel, None, query, method="GET", url=url)

    def compact(
        self,
        body: Mapping[str, Any],
        *,
        timeout: Optional[float] = None,
        cancel: Optional[Cancellation] = None,
    ) -> Response:
        """``POST /responses/compact``: the context of ``body`` (``model``, ``input``,
        ``instructions``, ...) compacted into a new input window, returned as its
        ``output`` (user messages and one ``compaction`` item)."""
        try:
            obj = self._json("POST", f"{self._responses_url}/compact", body, timeout, cancel)
            return _response(obj)
        except OpenAIWSError as exc:
            self._scrubber.exception(exc)
            raise

    def retrieve(self, response_id: str) -> Response:
        """``GET /responses/{id}``: a stored response."""
        url = f"{self._responses_url}/{quote(response_id, safe='')}"
        try:
            return _response(self._json("GET", url, None, None))
        except OpenAIWSError as exc:
            self._scrubber.exception(exc)
            raise

    def delete(self, response_id: str) -> None:
        """``DELETE /responses/{id}``."""
        url = f"{self._responses_url}/{quote(response_id, safe='')}"
        try:
            with self._call("DELETE", url, None, None) as token:
                response = self._send("DELETE", url, None, token, stream=False)
                try:
                    if response.status_code >= 300:
                        raise self._api_error(response)
                finally:
                    response.close()
        except OpenAIWSError as exc:
            self._scrubber.exception(exc)
            raise

    def close(self) -> None:
        """Close every pooled connection. Idempotent; later calls raise ``TransportError``."""
        self._closed = True
        self._finalizer()

    # -- internals --------------------------------------------------------------

    def _scrubber_for(self, headers: Optional[Mapping[str, str]]) -> Scrubber:
        """The scrubber for a call that adds ``headers`` to the transport's."""
        if not headers:
            return self._scrubber
        return Scrubber({**self._headers, **headers}, self._proxy)

    def _call(
        self,
        method: str,
        url: str,
        timeout: Optional[float],
        cancel: Optional[Cancellation],
    ) -> Any:
        """The guard (:func:`~.http_cancel.guard`) of one call: its token and deadline."""
        seconds = self._timeout if timeout is None else timeout
        path = urlsplit(url).path

        def expired() -> OpenAIWSError:
            return RequestTimeoutError(
                f"timed out over HTTP: {method} {path} did not finish within "
                f"the timeout ({seconds:.3g}s)"
            )

        return guard(cancel, time.monotonic() + seconds, expired)

    def _send(
        self,
        method: str,
        url: str,
        body: Optional[Mapping[str, Any]],
        token: Cancellation,
        *,
        stream: bool,
        headers: Optional[Mapping[str, str]] = None,
        query: Optional[Mapping[str, Any]] = None,
    ) -> requests.Response:
        """Send one request (with retries) and return the response, headers read.

        ``token`` (from :meth:`_call`) holds the deadline: each read waits at
        most the time left, and the watchdog cuts the call at the deadline.
        """
        if self._closed:
            raise TransportError("the HTTP transport is closed")
        extra: Dict[str, str] = dict(headers or {})
        data: Optional[bytes] = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            extra["Content-Type"] = "application/json"
        if stream:
            extra["Accept"] = _SSE_CONTENT_TYPE
        assert token.deadline is not None
        left = max(0.001, token.deadline - time.monotonic())
        try:
            with calling(token):
                return self._session.request(
                    method,
                    url,
                    data=data,
                    headers=extra,
                    params=dict(query) if query else None,
                    timeout=(min(self._connect_timeout, left), left),
                    stream=True,
                    allow_redirects=False,
                    verify=self._verify,
                    cert=self._cert,
                    proxies=self._proxies,
                )
        except Cancelled:
            raise token.error() from None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise_if_cancelled(token, exc)
            raise self._translate(exc, method, url) from exc

    def _json(
        self,
        method: str,
        url: str,
        body: Optional[Mapping[str, Any]],
        timeout: Optional[float],
        cancel: Optional[Cancellation] = None,
        *,
        headers: Optional[Mapping[str, str]] = None,
        query: Optional[Mapping[str, Any]] = None,
    ) -> Mapping[str, Any]:
        path = urlsplit(url).path
        with self._call(method, url, timeout, cancel) as token:
            response = self._send(
                method, url, body, token, stream=False, headers=headers, query=query
            )
            try:
                if response.status_code >= 300:
                    raise self._api_error(response)
                raw = self._body(response, token)
                raise_if_cancelled(token)  # the body may have been cut short
            finally:
                response.close()
        limit = self._max_event_size
        if limit is not None and len(raw) > limit:
            raise MessageTooLargeError(
                f"{method} {path}: the answer is larger than {limit} bytes (max_event_size)",
                limit=limit,
                size=len(raw),
            )
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"{method} {path}: the answer is not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise ProtocolError(f"{method} {path}: the answer is not a JSON object")
        return obj

    def _stream(
        self,
        body: Optional[Mapping[str, Any]],
        timeout: Optional[float],
        cancel: Optional[Cancellation],
        headers: Optional[Mapping[str, str]],
        query: Optional[Mapping[str, Any]],
        *,
        method: str = "POST",
        url: Optional[str] = None,
    ) -> Iterator[ServerEvent]:
        scrubber = self._scrubber_for(headers)
        url = url or self._responses_url
        try:
            with self._call(method, url, timeout, cancel) as token:
                yield from self._events(body, token, headers, query, method=method, url=url)
        except OpenAIWSError as exc:
            scrubber.exception(exc)
            raise

    def _events(
        self,
        body: Optional[Mapping[str, Any]],
        token: Cancellation,
        headers: Optional[Mapping[str, str]],
        query: Optional[Mapping[str, Any]],
        *,
        method: str,
        url: str,
    ) -> Iterator[ServerEvent]:
        """The events of one streamed call (the body of :meth:`_stream`, inside its guard)."""
        response = self._send(method, url, body, token, stream=True, headers=headers, query=query)
        finished = False  # the body was (or will be) read to its end
        count = 0  # events yielded
        response_id: Optional[str] = None
        chunks: Optional[Iterator[bytes]] = None
        try:
            if response.status_code >= 300:
                finished = True
                raise self._api_error(response)
            content_type = response.headers.get("content-type", "")
            if content_type and not content_type.lower().startswith(_SSE_CONTENT_TYPE):
                raise ProtocolError(f"expected {_SSE_CONTENT_TYPE}, got {content_type!r}")
            decoder = SSEDecoder(self._max_event_size)
            chunks = _chunks(response.raw)
            while True:
                raise_if_cancelled(token)  # the deadline passed between two chunks
                try:
                    chunk = next(chunks, None)
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    raise_if_cancelled(token, exc)
                    raise stream_error(exc, count, response_id) from exc
                for _name, data in decoder.feed(chunk) if chunk is not None else decoder.flush():
                    event = _parse_data(data)
                    if event is None:
                        if data.strip() == _DONE:
                            finished = True
                            return
                        continue
                    kind = event.type
                    if kind in TERMINAL_EVENT_TYPES:
                        finished = True
                        if isinstance(event, ErrorEvent):
                            raise event.to_api_error()
                        yield event
                        return
                    if kind == "response.created" and response_id is None:
                        response_id = getattr(getattr(event, "response", None), "id", None)
                    count += 1
                    yield event
                if chunk is None:
                    raise_if_cancelled(token)
                    raise stream_error(None, count, response_id)
        finally:
            if finished and chunks is not None:
                # The server ends the body right after the terminal event; read
                # that last bit so the connection goes back to the pool.
                _finish(chunks)
            response.close()

    def _body(self, response: requests.Response, token: Cancellation) -> bytes:
        limit = self._max_event_size
        try:
            return _read_body(response, None if limit is None else limit + 1)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise_if_cancelled(token, exc)
            raise self._translate(exc, "reading the answer to", response.url) from exc

    def _api_error(self, response: requests.Response) -> APIError:
        """The typed error for a non-2xx response (reads at most MAX_ERROR_BODY of it)."""
        headers = {key.lower(): value for key, value in response.headers.items()}
        try:
            body = _read_body(response, MAX_ERROR_BODY)
        except (urllib3.exceptions.HTTPError, OSError):
            body = b""
        fallback = f"HTTP {response.status_code} {response.reason or ''}".strip()
        payload = error_payload(body, fallback)
        return api_error_from_payload(payload, status=response.status_code, headers=headers)

    def _translate(self, exc: BaseException, method: str, url: str) -> OpenAIWSError:
        """Our error, in plain words, for an exception of requests, urllib3 or the socket layer."""
        return translate(exc, method, url, connect_timeout=self._connect_timeout, proxy=self._proxy)


def _chunks(raw: Any) -> Iterator[bytes]:
    """The body's bytes as they arrive: one piece per HTTP chunk when chunked (at most 64 KiB).

    Never asks for more than 64 KiB at once: a chunk announcing gigabytes is
    read in pieces, not into one buffer of that size.
    """
    if raw.chunked and raw.supports_chunked_reads():
        yield from raw.stream(_READ, decode_content=True)
        return
    read1 = getattr(raw, "read1", None)  # returns what has arrived, never waits for more
    if read1 is None:  # urllib3 < 2: blocks per 1 KiB (only for streams without chunking)
        yield from raw.stream(1024, decode_content=True)
        return
    while True:
        chunk = read1(_READ, decode_content=True)
        if not chunk:
            return
        yield chunk

    def _translate(self, exc: BaseException, method: str, url: str) -> OpenAIWSError:
        """Our error, in plain words, for an exception of requests, urllib3 or the socket layer."""
        return translate(exc, method, url, connect_timeout=self._connect_timeout, proxy=self._proxy)


def _finish(chunks: Iterator[bytes]) -> None:
    """Read what follows a terminal event, at most :data:`MAX_TAIL` bytes.

    A body that ends there gives its connection back to the pool; one that
    goes on is left unread, and closing the response drops its connection.
    """
    budget = MAX_TAIL
    with contextlib.suppress(urllib3.exceptions.HTTPError, OSError):
        for chunk in chunks:
            budget -= len(chunk)
            if budget <= 0:
                return


def _response(obj: Mapping[str, Any]) -> Response:
    """``parse_response(obj)``; a structure too deep to convert is a :class:`ProtocolError`."""
    try:
        return parse_response(obj)
    except RecursionError as exc:
        raise ProtocolError(f"the answer is nested too deeply to convert: {exc}") from exc


def _parse_data(data: bytes) -> Optional[ServerEvent]:
    """Parse one SSE data payload; ``None`` for ``[DONE]`` and empty data."""
    if data[:1] != b"{":
        stripped = data.strip()
        if not stripped or stripped == _DONE:
            return None
    try:
        # A str skips json's encoding detection, a measurable cost per event.
        return parse_event(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"event data is not UTF-8: {exc}") from exc
    except RecursionError as exc:
        raise ProtocolError(f"event data is nested too deeply to parse: {exc}") from exc
    except ProtocolError:
        _raise_if_error_object(data)
        raise


def _close_session(session: requests.Session) -> None:
    """Close every pooled connection now, then the session.

    ``Session.close()`` alone only forgets the pools (urllib3 2 closes their
    sockets when a pool is garbage collected, which a traceback can delay).
    """
    for adapter in set(session.adapters.values()):
        if isinstance(adapter, requests.adapters.HTTPAdapter):
            for manager in (adapter.poolmanager, *adapter.proxy_manager.values()):
                for key in list(manager.pools.keys()):
                    pool = manager.pools.get(key)
                    if pool is not None:
                        pool.close()
    session.close()


def _read_body(response: requests.Response, limit: Optional[int]) -> bytes:
    """The (decoded) body, at most ``limit`` bytes of it, with what the retry policy read."""
    raw = response.raw
    body = PEEKED.pop(raw, b"")  # read by _error_code() during the retry decision
    if limit is None:
        return body + bytes(raw.read(decode_content=True))
    if len(body) < limit:
        body += bytes(raw.read(amt=limit - len(body), decode_content=True))
    return body[:limit]


def _raise_if_error_object(data: bytes) -> None:
    """Raise the API error of a data payload ``{"error": {...}}`` that has no ``type``."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return
    if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
        raise api_error_from_payload(obj["error"], status=_int_or_none(obj.get("status")))


def _int_or_none(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
