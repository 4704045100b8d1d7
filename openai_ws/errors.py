"""Every exception ``openai_ws`` raises, in one place.

Errors from websocket-client, requests, urllib3 and cattrs are translated into
these at the boundary where they happen (the transports and the converter), and
chained ``from`` the original so the root cause stays visible in a traceback.
No exception here ever holds or prints the API key.

The tree::

    OpenAIWSError
    ├── ProtocolError                a frame or event that breaks the wire protocol
    │   └── MessageTooLargeError     a message, SSE line/event or body over its size limit
    ├── TransportError               the connection itself failed
    │   ├── ConnectError             could not open the socket / upgrade refused
    │   │   └── UpgradeRefusedError  the upgrade got an HTTP error (also an APIError, below)
    │   └── ConnectionClosedError    the socket closed while a request needed it
    │       └── ReplayUnsafeError    closed after the request had received events
    ├── SessionClosedError           the session was closed (by you or by GC)
    ├── ConsumerTooSlowError         a request's bounded queue overflowed
    ├── RequestTimeoutError          also a builtin ``TimeoutError``
    ├── SteerError                   a steer was not applied (see below)
    └── APIError                     the server answered with an error
        ├── BadRequestError          400
        │   └── PreviousResponseNotFoundError
        ├── AuthenticationError      401
        ├── PermissionDeniedError    403
        ├── NotFoundError            404
        ├── ConflictError            409
        ├── UnprocessableEntityError 422
        ├── RateLimitError           429
        └── InternalServerError      >= 500

A refused WebSocket upgrade raises the same class as the same answer over HTTP
*and* a :class:`ConnectError`: a 401 on the upgrade is an
:class:`UpgradeAuthenticationError`, which ``except AuthenticationError`` and
``except ConnectError`` both catch (likewise 400, 403, 404, 409, 422, 429 and
5xx); other statuses (426, 405, ...) raise :class:`UpgradeRefusedError`
itself, which is both a ``ConnectError`` and an ``APIError``.

A steer (:meth:`EventStream.steer <openai_ws.EventStream.steer>`) that is not
applied raises a :class:`SteerError` from :meth:`Steer.result
<openai_ws.Steer.result>`: :class:`SteerFailedError` when the server answered
``response.steer.failed`` (one subclass per documented ``error.code``; an
unknown code raises ``SteerFailedError`` itself), :class:`SteerLostError` when
no answer can come any more (the socket closed, the response ended with an
error), :class:`SteerTimeoutError` (also a ``TimeoutError``) when the wait
ended first, and :class:`SteeringUnavailableError` when the request is not on
a WebSocket (an HTTP stream or fallback cannot be steered).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "ConnectError",
    "ConnectionClosedError",
    "ConsumerTooSlowError",
    "InternalServerError",
    "MessageTooLargeError",
    "NotFoundError",
    "OpenAIWSError",
    "PermissionDeniedError",
    "PreviousResponseNotFoundError",
    "ProtocolError",
    "RateLimitError",
    "ReplayUnsafeError",
    "RequestTimeoutError",
    "SessionClosedError",
    "SteerError",
    "SteerFailedError",
    "SteerInvalidInputError",
    "SteerLostError",
    "SteerResponseCompletedError",
    "SteerResponseNotActiveError",
    "SteerResponseNotFoundError",
    "SteerSuccessorFailedError",
    "SteerTimeoutError",
    "SteeringNotSupportedError",
    "SteeringUnavailableError",
    "TooManyPendingSteersError",
    "TransportError",
    "UnprocessableEntityError",
    "UpgradeAuthenticationError",
    "UpgradeBadRequestError",
    "UpgradeConflictError",
    "UpgradeInternalServerError",
    "UpgradeNotFoundError",
    "UpgradePermissionDeniedError",
    "UpgradeRateLimitError",
    "UpgradeRefusedError",
    "UpgradeUnprocessableEntityError",
    "api_error_from_payload",
    "steer_error_from_payload",
    "upgrade_error_from_payload",
]


class OpenAIWSError(Exception):
    """Base class of every error raised by ``openai_ws``."""


class ProtocolError(OpenAIWSError):
    """A frame or event that does not follow the wire protocol.

    ``event_type`` is the ``"type"`` of the offending event when it had one,
    ``field`` the field that was missing or mistyped, if known.
    """

    def __init__(
        self,
        message: str,
        *,
        event_type: Optional[str] = None,
        field: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.event_type = event_type
        self.field = field


class MessageTooLargeError(ProtocolError):
    """A message, SSE line or event, or HTTP body larger than its size limit.

    ``limit`` is the bound in bytes; ``size`` the size seen when the bound was
    crossed (at least ``limit + 1``; the rest is never read), when known.
    """

    def __init__(
        self,
        message: str,
        *,
        limit: Optional[int] = None,
        size: Optional[int] = None,
        event_type: Optional[str] = None,
        field: Optional[str] = None,
    ) -> None:
        super().__init__(message, event_type=event_type, field=field)
        self.limit = limit
        self.size = size


class TransportError(OpenAIWSError):
    """The connection to the server failed."""


class ConnectError(TransportError):
    """The socket could not be opened, or the server refused the upgrade.

    ``status`` is the HTTP status of a refused upgrade (401, 426, ...), if any.
    ``retryable`` is False when trying again cannot help (a certificate that
    fails verification, an invalid URL).
    """

    def __init__(
        self, message: str, *, status: Optional[int] = None, retryable: bool = True
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class ConnectionClosedError(TransportError):
    """The socket closed while a request still needed it.

    ``code`` and ``reason`` are the WebSocket close code and reason when a close
    frame arrived; ``code`` is ``None`` when the connection simply dropped.
    """

    def __init__(self, message: str, *, code: Optional[int] = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class ReplayUnsafeError(ConnectionClosedError):
    """The socket closed after the request had already received events.

    Replaying would risk answering the request twice, so it is failed instead.
    ``events_received`` counts the events the request got, ``response_id`` is
    the id of its response if ``response.created`` had arrived.
    """

    def __init__(
        self,
        message: str,
        *,
        code: Optional[int] = None,
        reason: str = "",
        events_received: int = 0,
        response_id: Optional[str] = None,
    ) -> None:
        super().__init__(message, code=code, reason=reason)
        self.events_received = events_received
        self.response_id = response_id


class SessionClosedError(OpenAIWSError):
    """The session was closed before or while the request ran."""


class ConsumerTooSlowError(OpenAIWSError):
    """A request's event queue overflowed because its consumer stopped reading.

    Only that request fails; the reader thread and the other requests go on.
    """


class RequestTimeoutError(OpenAIWSError, TimeoutError):
    """A deadline passed: connecting, the whole request, or the next event.

    No event is lost: a timed-out request is abandoned and its remaining events
    are dropped by the session, never delivered to another request.
    """


class APIError(OpenAIWSError):
    """The server answered a request with an error.

    Every field the server may send is kept and may be ``None``: ``status``
    (the HTTP status, or the one the WebSocket ``error`` event names), ``code``,
    ``type``, ``param``, ``headers`` (e.g. ``x-ratelimit-*`` or ``retry-after``)
    and ``request``, the request the error belongs to, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        code: Optional[str] = None,
        type: Optional[str] = None,
        param: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        request: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.type = type
        self.param = param
        self.headers: Mapping[str, str] = dict(headers or {})
        self.request = request
        self.retry_after: Optional[float] = None
        """Seconds the server asked to wait before a retry, when that was too long
        to wait for (the request was not retried); ``None`` otherwise."""

    def __str__(self) -> str:
        parts = [f"status={self.status}"] if self.status is not None else []
        if self.code:
            parts.append(f"code={self.code}")
        if self.param:
            parts.append(f"param={self.param}")
        suffix = f" ({', '.join(parts)})" if parts else ""
        return f"{self.message}{suffix}"

    def __reduce__(self) -> Any:
        return (
            _rebuild_api_error,
            (
                type(self),
                self.message,
                {
                    "status": self.status,
                    "code": self.code,
                    "type": self.type,
                    "param": self.param,
                    "headers": dict(self.headers),
                },
            ),
        )


def _rebuild_api_error(cls: type[APIError], message: str, fields: dict[str, Any]) -> APIError:
    return cls(message, **fields)


class BadRequestError(APIError):
    """400: the request is invalid."""


class PreviousResponseNotFoundError(BadRequestError):
    """400 ``previous_response_not_found``: the parent response is unknown.

    With ``store: false`` a parent lives only in the cache of the socket that
    produced it; once that socket closes (or a same-lane continuation failed) it
    is gone. Continue by sending the whole context again with no
    ``previous_response_id``, or use ``store: true`` so the server keeps parents.
    """


class AuthenticationError(APIError):
    """401: the API key is missing or wrong."""


class PermissionDeniedError(APIError):
    """403: the key may not use this resource."""


class NotFoundError(APIError):
    """404: the resource does not exist."""


class ConflictError(APIError):
    """409: the request conflicts with the resource's state."""


class UnprocessableEntityError(APIError):
    """422: the request is well-formed but cannot be processed."""


class RateLimitError(APIError):
    """429: rate limited (retryable) or out of quota (``code='insufficient_quota'``)."""


class InternalServerError(APIError):
    """5xx: the server failed."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def _error_class(status: Optional[int], code: Optional[str]) -> type[APIError]:
    if code == "previous_response_not_found":
        return PreviousResponseNotFoundError
    if code in ("rate_limit_exceeded", "insufficient_quota") and status is None:
        return RateLimitError
    if status is None:
        return APIError
    if status >= 500:
        return InternalServerError
    return _BY_STATUS.get(status, APIError)


def api_error_from_payload(
    payload: Mapping[str, Any],
    *,
    status: Optional[int] = None,
    headers: Optional[Mapping[str, str]] = None,
    request: Any = None,
) -> APIError:
    """Build the right :class:`APIError` subclass from an error object.

    ``payload`` is the inner error object (``{"type", "code", "message", "param",
    "headers"}``); every field is optional, as real payloads omit some.
    """

    def text(key: str) -> Optional[str]:
        value = payload.get(key)
        return None if value is None else str(value)

    code = text("code")
    merged: dict[str, str] = {}
    inner_headers = payload.get("headers")
    if isinstance(inner_headers, Mapping):
        merged.update({str(k).lower(): str(v) for k, v in inner_headers.items()})
    if headers:
        merged.update({str(k).lower(): str(v) for k, v in headers.items()})
    message = text("message") or (f"API error {code}" if code else "API error")
    cls = _error_class(status, code)
    return cls(
        message,
        status=status,
        code=code,
        type=text("type"),
        param=text("param"),
        headers=merged,
        request=request,
    )


# --------------------------------------------------------------------------
# A refused WebSocket upgrade: a ConnectError that speaks the HTTP error classes
# --------------------------------------------------------------------------


class UpgradeRefusedError(ConnectError, APIError):
    """The server answered the WebSocket upgrade with an HTTP error status.

    It is a :class:`ConnectError` (``status``, ``retryable``: what the session's
    connect logic reads) and an :class:`APIError` (``message``, ``code``,
    ``type``, ``param`` from the JSON error body, as over HTTP, and the answer's
    ``headers``, lower-cased, e.g. ``retry-after-ms``). A status with a class of
    its own raises the subclass that is also that class
    (:class:`UpgradeAuthenticationError` for 401, ...); ``message`` is the
    server's message, ``str()`` says that it was the upgrade.
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        retryable: bool = True,
        code: Optional[str] = None,
        type: Optional[str] = None,
        param: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        request: Any = None,
    ) -> None:
        # APIError's fields (its super() chain skips ConnectError.__init__),
        # then ConnectError's one extra field.
        APIError.__init__(
            self,
            message,
            status=status,
            code=code,
            type=type,
            param=param,
            headers=headers,
            request=request,
        )
        self.retryable = retryable

    def __str__(self) -> str:
        parts = [f"code={self.code}"] if self.code else []
        if self.param:
            parts.append(f"param={self.param}")
        suffix = f" ({', '.join(parts)})" if parts else ""
        lead = f"the server refused the WebSocket upgrade with HTTP {self.status}"
        return f"{lead}: {self.message}{suffix}"

    def __reduce__(self) -> Any:
        return (
            _rebuild_api_error,
            (
                type(self),
                self.message,
                {
                    "status": self.status,
                    "retryable": self.retryable,
                    "code": self.code,
                    "type": self.type,
                    "param": self.param,
                    "headers": dict(self.headers),
                },
            ),
        )


class UpgradeBadRequestError(UpgradeRefusedError, BadRequestError):
    """400 on the upgrade."""


class UpgradeAuthenticationError(UpgradeRefusedError, AuthenticationError):
    """401 on the upgrade: the API key is missing or wrong."""


class UpgradePermissionDeniedError(UpgradeRefusedError, PermissionDeniedError):
    """403 on the upgrade."""


class UpgradeNotFoundError(UpgradeRefusedError, NotFoundError):
    """404 on the upgrade."""


class UpgradeConflictError(UpgradeRefusedError, ConflictError):
    """409 on the upgrade."""


class UpgradeUnprocessableEntityError(UpgradeRefusedError, UnprocessableEntityError):
    """422 on the upgrade."""


class UpgradeRateLimitError(UpgradeRefusedError, RateLimitError):
    """429 on the upgrade; the hint is in ``headers`` (``retry-after-ms``, ``retry-after``)."""


class UpgradeInternalServerError(UpgradeRefusedError, InternalServerError):
    """5xx on the upgrade."""


_UPGRADE_BY_CLASS: dict[type[APIError], type[UpgradeRefusedError]] = {
    BadRequestError: UpgradeBadRequestError,
    AuthenticationError: UpgradeAuthenticationError,
    PermissionDeniedError: UpgradePermissionDeniedError,
    NotFoundError: UpgradeNotFoundError,
    ConflictError: UpgradeConflictError,
    UnprocessableEntityError: UpgradeUnprocessableEntityError,
    RateLimitError: UpgradeRateLimitError,
    InternalServerError: UpgradeInternalServerError,
}


def upgrade_error_from_payload(
    payload: Mapping[str, Any],
    *,
    status: int,
    headers: Optional[Mapping[str, str]] = None,
    retryable: bool = True,
) -> UpgradeRefusedError:
    """The :class:`UpgradeRefusedError` (subclass) for an upgrade answered ``status``.

    ``payload`` is the inner error object of the JSON body, as for
    :func:`api_error_from_payload` (``{}`` when the body was not JSON: then
    ``message`` should hold a description); the class follows the status.
    """
    plain = api_error_from_payload(payload, status=status, headers=headers)
    cls = _UPGRADE_BY_CLASS.get(_error_class(status, None), UpgradeRefusedError)
    return cls(
        plain.message,
        status=status,
        retryable=retryable,
        code=plain.code,
        type=plain.type,
        param=plain.param,
        headers=plain.headers,
    )


# --------------------------------------------------------------------------
# Steering
# --------------------------------------------------------------------------


class SteerError(OpenAIWSError):
    """A steer was not applied to its response.

    ``code`` is the server's ``error.code`` (``None`` when the server never
    answered), ``input`` the steering input as sent (returned by the server on
    failure, so nothing is lost), ``steer_id`` the id the server gave the steer
    (``None`` if it failed before one was allocated) and ``response_id`` the
    response it was meant to steer.
    """

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        input: Any = None,
        steer_id: Optional[str] = None,
        response_id: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.input = input
        self.steer_id = steer_id
        self.response_id = response_id

    def __str__(self) -> str:
        return f"{self.message} (code={self.code})" if self.code else self.message


class SteerFailedError(SteerError):
    """The server refused the steer (``response.steer.failed``)."""


class SteerResponseNotFoundError(SteerFailedError):
    """``response_not_found``: the response is not available on this socket."""


class SteerInvalidInputError(SteerFailedError):
    """``invalid_input``: the steer or its input failed validation."""


class SteeringNotSupportedError(SteerFailedError):
    """``steering_not_supported``: the model or the response's mode cannot be steered
    (only newer model families can; a ``conversation`` or automatic compaction cannot)."""


class TooManyPendingSteersError(SteerFailedError):
    """``too_many_pending_steers``: too much steering input is waiting for this response."""


class SteerResponseCompletedError(SteerFailedError):
    """``response_already_completed``: the response finished before the steer arrived."""


class SteerResponseNotActiveError(SteerFailedError):
    """``response_not_active``: the response no longer accepts steering input."""


class SteerSuccessorFailedError(SteerFailedError):
    """``successor_creation_failed``: the steer was accepted, but the response that
    should have carried it could not be created."""


class SteerLostError(SteerError):
    """No answer to the steer can come any more: its socket closed, or its response
    ended with an error, before the server said what became of it. Steering input
    lives only on the socket it was sent on; it is never sent again."""


class SteerTimeoutError(SteerError, TimeoutError):
    """The wait for the steer's outcome ended first (the steer may still be applied)."""


class SteeringUnavailableError(SteerError):
    """The request cannot be steered: it is not running on a WebSocket (an HTTP
    stream or a fallback to HTTP), or it has not been sent."""


_STEER_BY_CODE: dict[str, type[SteerFailedError]] = {
    "response_not_found": SteerResponseNotFoundError,
    "invalid_input": SteerInvalidInputError,
    "steering_not_supported": SteeringNotSupportedError,
    "too_many_pending_steers": TooManyPendingSteersError,
    "response_already_completed": SteerResponseCompletedError,
    "response_not_active": SteerResponseNotActiveError,
    "successor_creation_failed": SteerSuccessorFailedError,
}


def steer_error_from_payload(
    error: Mapping[str, Any],
    *,
    input: Any = None,
    steer_id: Optional[str] = None,
    response_id: Optional[str] = None,
) -> SteerFailedError:
    """The :class:`SteerFailedError` (subclass, by ``code``) of a ``response.steer.failed``
    event's inner ``error`` object."""
    code = error.get("code")
    code = code if isinstance(code, str) else None
    message = error.get("message")
    text = message if isinstance(message, str) and message else "the steer failed"
    cls = _STEER_BY_CODE.get(code or "", SteerFailedError)
    return cls(text, code=code, input=input, steer_id=steer_id, response_id=response_id)
