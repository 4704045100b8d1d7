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
policy.

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
    ``connect_timeout`` bounds opening a connection, ``timeout`` every read:
    the wait for the answer's headers, then for each further chunk of the
    body (so in :meth:`HTTPTransport.stream` it is the longest silence allowed
    between two events, not a total deadline). A read timeout is *not* retried:
    it is the caller's deadline, and the server may still be running the request.

Retries (:class:`_Retry`, a small subclass of urllib3's ``Retry``; the rules are
:mod:`openai_ws._protocol.retry`'s)
    Up to ``max_retries`` retries of connection failures (but not of a failed
    certificate check, which no retry can fix) and of the statuses 408, 409,
    429, 500, 502, 503 and 504, for GET, POST and DELETE. Three
    things urllib3 does not know are added, all decided in ``increment()``, the
    one hook that sees the whole response (``is_retry()`` only gets the status):

    * ``insufficient_quota``: a 429 that means "out of credit" must fail at
      once, but it differs from a rate limit only in its JSON body
      (``error.code``). For a 429 only, the retry policy reads the (small) body
      before deciding; urllib3 caches what it read (``cache_content=True``), so
      the body is still there for the error we raise (:func:`_read_body` looks
      in ``raw.data`` when the stream itself has been consumed). Headers are
      no substitute: a rate-limit 429 may also come without ``Retry-After``.
    * ``retry-after-ms``: OpenAI's precise hint, preferred over ``Retry-After``
      (whole seconds or an HTTP date), both read in ``get_retry_after()``. A hint
      longer than :data:`MAX_RETRY_AFTER` seconds is not slept on: the error is
      returned at once, with the server's headers, for the caller to decide.
    * ``x-should-retry: true|false``: the server's explicit verdict overrides
      the status list (as in the official SDK). To see it on any error status,
      ``is_retry()`` answers yes for every status >= 400 and ``increment()``
      gives up, by raising urllib3's ``MaxRetryError``, when the policy says no;
      with ``raise_on_status=False`` urllib3 then hands the response back as
      it does when retries are exhausted.

    Without a server hint the wait is ``0.5 s * 2**n`` (n = retries so far),
    capped at 8 s, minus up to 25 % jitter. Only what happens before the
    response headers is retried: once :meth:`HTTPTransport.stream` has yielded
    an event, nothing is replayed.

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
    :class:`~openai_ws.errors.ConnectError`, timeouts
    :class:`~openai_ws.errors.RequestTimeoutError`, a connection lost
    mid-answer :class:`~openai_ws.errors.ConnectionClosedError` (or
    :class:`~openai_ws.errors.ReplayUnsafeError` once events were delivered),
    anything else :class:`~openai_ws.errors.TransportError`; a body that breaks
    the protocol raises :class:`~openai_ws.errors.ProtocolError`.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import time
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
    Union,
)
from urllib.parse import quote

import requests
import requests.adapters
import requests.auth
import requests.exceptions
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from urllib3.exceptions import MaxRetryError, ReadTimeoutError, ResponseError
from urllib3.util.retry import Retry

from .._convert import parse_event, parse_response
from .._protocol import retry as retry_rules
from .._protocol.sse import SSEDecoder
from ..errors import (
    APIError,
    ConnectError,
    ConnectionClosedError,
    OpenAIWSError,
    ProtocolError,
    ReplayUnsafeError,
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
    current_token,
    raise_if_cancelled,
)

if TYPE_CHECKING:
    from urllib3.response import BaseHTTPResponse

__all__ = ["MAX_RETRY_AFTER", "Cancellation", "HTTPTransport", "SSEDecoder"]

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = retry_rules.MAX_RETRY_AFTER
#: Largest 429 body the retry policy reads to look for ``insufficient_quota``.
_MAX_PEEK = 64 * 1024
POOL_MAXSIZE = 32

_SSE_CONTENT_TYPE = "text/event-stream"
_DONE = b"[DONE]"


# --------------------------------------------------------------------------
# Retry policy
# --------------------------------------------------------------------------


class _Retry(Retry):
    """urllib3 ``Retry`` that also knows OpenAI's retry signals (see the module docstring).

    urllib3 rebuilds the object through ``new()`` with its own constructor
    arguments, so this class adds behaviour only, no state.
    """

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        # Every error status goes on to increment(), which sees the headers and
        # body and decides; increment() gives up when the policy says no.
        if self.allowed_methods and method.upper() not in self.allowed_methods:
            return False
        return status_code >= 400

    def increment(
        self,
        method: Optional[str] = None,
        url: Optional[str] = None,
        response: Optional[BaseHTTPResponse] = None,
        error: Optional[Exception] = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> _Retry:
        if isinstance(error, ReadTimeoutError):
            # The caller's deadline passed and the server may still be working
            # on the request: report it rather than run it again.
            raise error
        if error is not None and _is_certificate_error(error):
            raise error  # an untrusted certificate does not heal by retrying
        if error is None and response is not None:
            verdict = self._verdict(response)
            if verdict is not None:
                raise MaxRetryError(_pool, url or "", ResponseError(verdict))
            log.debug(
                "retrying %s after HTTP %d (retry %d)",
                method,
                response.status,
                len(self.history) + 1,
            )
        elif error is not None:
            log.debug("retrying %s after %s", method, type(error).__name__)
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def _verdict(self, response: BaseHTTPResponse) -> Optional[str]:
        """Why this response must not be retried, or ``None`` to retry it."""
        return retry_rules.http_refusal(
            response.status,
            should_retry=response.headers.get("x-should-retry", ""),
            hint=_hint(response),
            error_code=lambda: _error_code(response),
        )

    def get_retry_after(self, response: BaseHTTPResponse) -> Optional[float]:
        return retry_rules.usable_hint(_hint(response))

    def get_backoff_time(self) -> float:
        retries = len(self.history)
        if retries == 0:
            return 0.0
        return retry_rules.backoff(
            retries - 1,
            initial=retry_rules.ERROR_BACKOFF_INITIAL,
            cap=retry_rules.BACKOFF_MAX,
            jitter=random.random(),
        )

    def sleep(self, response: Optional[BaseHTTPResponse] = None) -> None:
        # As urllib3's: the server's hint, else the backoff; but a cancelled
        # call stops waiting at once.
        delay = None
        if self.respect_retry_after_header and response is not None:
            delay = self.get_retry_after(response)
        if not delay:
            delay = self.get_backoff_time()
        if delay <= 0:
            return
        token = current_token()
        if token is None:
            time.sleep(delay)
        else:
            token.pause(delay)


def _hint(response: BaseHTTPResponse) -> Optional[float]:
    """The server's delay hint in seconds (``retry-after-ms``, then ``Retry-After``)."""
    headers = {key.lower(): value for key, value in response.headers.items()}
    return retry_rules.header_hint(headers, now=time.time())


def _is_certificate_error(error: BaseException) -> bool:
    """Whether ``error`` (as urllib3 wraps it) is a failed certificate check."""
    pending: List[BaseException] = [error]
    for _ in range(8):  # a few levels of wrapping; never loop on odd exceptions
        if not pending:
            break
        current = pending.pop()
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
    return False


def _error_code(response: BaseHTTPResponse) -> Optional[str]:
    """``error.code`` of a small JSON error body, read and cached on ``response``."""
    length = response.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > _MAX_PEEK):
        return None
    try:
        body = response.read(decode_content=True, cache_content=True)
        payload = json.loads(body)
    except (ValueError, urllib3.exceptions.HTTPError, OSError):
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


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
    the read timeout, ``connect_timeout`` the connect timeout (seconds);
    ``max_retries`` bounds retries (see the module docstring). ``verify`` is
    ``True`` (system CAs), ``False`` (no TLS checks) or the path of a CA bundle;
    ``cert`` a client certificate (path, or ``(cert, key)``); ``proxy`` a proxy
    URL for both schemes. Every method may be called from many threads.
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
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self._responses_url = f"{self.base_url}/responses"
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._secret = _bearer_secret(headers)
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
    ) -> Response:
        """``POST /responses`` and return the whole :class:`Response`.

        ``body`` is sent exactly as given. It must not ask for ``stream: true``
        (:class:`ValueError`); use :meth:`stream` for that. ``cancel`` lets
        another thread abort the call (it then raises ``cancel.error()``).
        """
        if body.get("stream"):
            raise ValueError("create() expects a body without stream=true; use stream()")
        return parse_response(self._json("POST", self._responses_url, body, timeout, cancel))

    def stream(
        self,
        body: Mapping[str, Any],
        *,
        timeout: Optional[float] = None,
        cancel: Optional[Cancellation] = None,
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
        first ``next()``; closing the generator early closes the connection.
        After the terminal event the rest of the body (which the server ends
        there) is read, so that the connection can be reused. ``cancel`` lets
        another thread abort the stream (it then raises ``cancel.error()``).
        """
        payload = dict(body)
        payload["stream"] = True
        return self._stream(payload, timeout, cancel)

    def retrieve(self, response_id: str) -> Response:
        """``GET /responses/{id}``: a stored response."""
        url = f"{self._responses_url}/{quote(response_id, safe='')}"
        return parse_response(self._json("GET", url, None, None))

    def delete(self, response_id: str) -> None:
        """``DELETE /responses/{id}``."""
        url = f"{self._responses_url}/{quote(response_id, safe='')}"
        response = self._send("DELETE", url, None, None, stream=False, cancel=None)
        try:
            if response.status_code >= 300:
                raise self._api_error(response)
        finally:
            response.close()

    def close(self) -> None:
        """Close every pooled connection. Idempotent; later calls raise ``TransportError``."""
        self._closed = True
        self._finalizer()

    # -- internals --------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        body: Optional[Mapping[str, Any]],
        timeout: Optional[float],
        *,
        stream: bool,
        cancel: Optional[Cancellation],
    ) -> requests.Response:
        """Send one request (with retries) and return the response, headers read.

        With ``cancel``, the connection stays recorded on the token until the
        caller calls ``cancel.release()`` (after reading the body).
        """
        if self._closed:
            raise TransportError("the HTTP transport is closed")
        headers: Dict[str, str] = {}
        data: Optional[bytes] = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if stream:
            headers["Accept"] = _SSE_CONTENT_TYPE
        read_timeout = self._timeout if timeout is None else timeout
        try:
            with calling(cancel):
                return self._session.request(
                    method,
                    url,
                    data=data,
                    headers=headers,
                    timeout=(self._connect_timeout, read_timeout),
                    stream=True,
                    allow_redirects=False,
                    verify=self._verify,
                    cert=self._cert,
                    proxies=self._proxies,
                )
        except Cancelled:
            assert cancel is not None
            raise cancel.error() from None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise_if_cancelled(cancel, exc)
            raise self._translate(exc, f"{method} {url}") from exc

    def _json(
        self,
        method: str,
        url: str,
        body: Optional[Mapping[str, Any]],
        timeout: Optional[float],
        cancel: Optional[Cancellation] = None,
    ) -> Mapping[str, Any]:
        response = self._send(method, url, body, timeout, stream=False, cancel=cancel)
        try:
            if response.status_code >= 300:
                raise self._api_error(response)
            raw = self._body(response, cancel)
            raise_if_cancelled(cancel)  # the body may have been cut short
        finally:
            if cancel is not None:
                cancel.release()
            response.close()
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise ProtocolError(f"{method} {url}: the answer is not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise ProtocolError(f"{method} {url}: the answer is not a JSON object")
        return obj

    def _stream(
        self, body: Mapping[str, Any], timeout: Optional[float], cancel: Optional[Cancellation]
    ) -> Iterator[ServerEvent]:
        url = self._responses_url
        response = self._send("POST", url, body, timeout, stream=True, cancel=cancel)
        finished = False  # the body was (or will be) read to its end
        count = 0  # events yielded
        response_id: Optional[str] = None
        try:
            if response.status_code >= 300:
                finished = True
                raise self._api_error(response)
            content_type = response.headers.get("content-type", "")
            if content_type and not content_type.lower().startswith(_SSE_CONTENT_TYPE):
                raise ProtocolError(f"expected {_SSE_CONTENT_TYPE}, got {content_type!r}")
            decoder = SSEDecoder()
            chunks = _chunks(response.raw)
            while True:
                try:
                    chunk = next(chunks, None)
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    raise_if_cancelled(cancel, exc)
                    raise _stream_error(exc, count, response_id) from exc
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
                    raise_if_cancelled(cancel)
                    raise _stream_error(None, count, response_id)
        finally:
            if finished:
                # The server ends the body right after the terminal event; read
                # that last bit so the connection goes back to the pool.
                response.raw.drain_conn()
            if cancel is not None:
                cancel.release()
            response.close()

    def _body(self, response: requests.Response, cancel: Optional[Cancellation] = None) -> bytes:
        try:
            return _read_body(response)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise_if_cancelled(cancel, exc)
            raise self._translate(exc, "reading the answer") from exc

    def _api_error(self, response: requests.Response) -> APIError:
        """The typed error for a non-2xx response (reads and closes it)."""
        headers = {key.lower(): value for key, value in response.headers.items()}
        try:
            body = _read_body(response)
        except (urllib3.exceptions.HTTPError, OSError):
            body = b""
        payload: Dict[str, Any] = {}
        try:
            obj = json.loads(body) if body else None
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            inner = obj.get("error")
            if isinstance(inner, dict):
                payload = dict(inner)
            elif isinstance(inner, str):
                payload = {"message": inner}
            elif isinstance(obj.get("message"), str):
                payload = {"message": obj["message"]}
        if not payload.get("message"):
            text = body.decode("utf-8", "replace").strip()
            reason = response.reason or ""
            payload["message"] = (
                text[:500]
                if text and obj is None
                else f"HTTP {response.status_code} {reason}".strip()
            )
        if self._secret and isinstance(payload.get("message"), str):
            payload["message"] = payload["message"].replace(self._secret, "***")
        return api_error_from_payload(payload, status=response.status_code, headers=headers)

    def _translate(self, exc: BaseException, what: str) -> OpenAIWSError:
        """Our error for an exception of requests, urllib3 or the socket layer."""
        detail = str(exc)
        if self._secret:
            detail = detail.replace(self._secret, "***")
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return RequestTimeoutError(f"{what}: timed out connecting: {detail}")
        if isinstance(exc, (requests.exceptions.Timeout, ReadTimeoutError, TimeoutError)):
            return RequestTimeoutError(f"{what}: timed out waiting for the server: {detail}")
        if isinstance(exc, (requests.exceptions.SSLError, requests.exceptions.ProxyError)):
            return ConnectError(f"{what}: could not connect: {detail}")
        if isinstance(exc, requests.exceptions.ConnectionError):
            reason = _root_reason(exc)
            if isinstance(reason, (urllib3.exceptions.ProtocolError, ConnectionResetError)):
                return ConnectionClosedError(f"{what}: the connection was lost: {detail}")
            return ConnectError(f"{what}: could not connect: {detail}")
        if isinstance(exc, urllib3.exceptions.ProtocolError):
            return ConnectionClosedError(f"{what}: the connection was lost: {detail}")
        return TransportError(f"{what}: {type(exc).__name__}: {detail}")


def _chunks(raw: Any) -> Iterator[bytes]:
    """The body's bytes as they arrive (one piece per HTTP chunk when chunked)."""
    if raw.chunked and raw.supports_chunked_reads():
        yield from raw.stream(None, decode_content=True)
        return
    read1 = getattr(raw, "read1", None)  # returns what has arrived, never waits for more
    if read1 is None:  # urllib3 < 2: blocks per 1 KiB (only for streams without chunking)
        yield from raw.stream(1024, decode_content=True)
        return
    while True:
        chunk = read1(65536, decode_content=True)
        if not chunk:
            return
        yield chunk


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
    except ProtocolError:
        _raise_if_error_object(data)
        raise


def _stream_error(
    exc: Optional[BaseException], count: int, response_id: Optional[str]
) -> Exception:
    """The error for a stream that broke off (``exc``) or ended before a terminal event."""
    got = f"{count} events received"
    if isinstance(exc, (ReadTimeoutError, TimeoutError)):
        return RequestTimeoutError(f"no event within the read timeout ({got})")
    if isinstance(exc, urllib3.exceptions.DecodeError):
        return ProtocolError(f"could not decode the event stream: {exc}")
    why = f" ({exc})" if exc is not None else ""
    if count:
        return ReplayUnsafeError(
            f"the HTTP stream ended before a terminal event, after {got}{why}",
            events_received=count,
            response_id=response_id,
        )
    return ConnectionClosedError(f"the HTTP stream ended before any event{why}")


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


def _read_body(response: requests.Response) -> bytes:
    """The whole (decoded) body, also when the retry policy already read it."""
    raw = response.raw
    body = raw.read(decode_content=True, cache_content=True)
    if not body:
        body = raw.data or b""  # cached by _error_code() during the retry decision
    return bytes(body)


def _root_reason(exc: BaseException) -> Optional[BaseException]:
    """The innermost ``reason`` of a requests ``ConnectionError`` (through ``MaxRetryError``)."""
    reason: Optional[BaseException] = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return reason if isinstance(reason, BaseException) else None


def _raise_if_error_object(data: bytes) -> None:
    """Raise the API error of a data payload ``{"error": {...}}`` that has no ``type``."""
    try:
        obj = json.loads(data)
    except ValueError:
        return
    if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
        raise api_error_from_payload(obj["error"], status=_int_or_none(obj.get("status")))


def _int_or_none(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bearer_secret(headers: Mapping[str, str]) -> Optional[str]:
    """The token of the ``Authorization`` header, to scrub it from messages."""
    for key, value in headers.items():
        if key.lower() == "authorization":
            token = value.split(" ", 1)[1] if " " in value else value
            return token.strip() or None
    return None
