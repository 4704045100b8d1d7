"""The HTTP transport's errors in plain words: requests, urllib3 and socket failures translated.

:func:`translate` turns an exception of requests, urllib3 or the socket layer
into the :mod:`openai_ws.errors` type a caller catches, saying what happened
the way a user reads it: "could not connect to 127.0.0.1:9 (connection
refused)", not urllib3's ``HTTPConnectionPool(host=...): Max retries exceeded
... NewConnectionError``. The original stays chained as the cause; the
transport scrubs secrets out of both before they leave (:mod:`.messages`).

This module must never do I/O or decide a retry.
"""

from __future__ import annotations

from typing import Optional
from urllib.parse import urlsplit

import requests.exceptions
import urllib3.exceptions
from urllib3.exceptions import MaxRetryError, ReadTimeoutError

from ..errors import (
    ConnectError,
    ConnectionClosedError,
    OpenAIWSError,
    ProtocolError,
    ReplayUnsafeError,
    RequestTimeoutError,
    TransportError,
)
from .http_retry import is_certificate_error
from .messages import os_reason

__all__ = ["innermost_text", "proxy_error", "root_reason", "stream_error", "translate"]


def translate(
    exc: BaseException,
    method: str,
    url: str,
    *,
    connect_timeout: float,
    proxy: Optional[str],
) -> OpenAIWSError:
    """Our error, in plain words, for an exception of requests, urllib3 or the socket layer.

    ``url`` is the request's (its host and port name the server); ``proxy`` is
    named instead when the proxy failed.
    """
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    where = f"{parts.hostname}:{parts.port or (443 if secure else 80)}"
    what = f"{method} {parts.path}"
    reason = os_reason(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return RequestTimeoutError(
            f"could not connect to {where} within connect_timeout ({connect_timeout:g}s)"
        )
    if isinstance(exc, (requests.exceptions.Timeout, ReadTimeoutError, TimeoutError)):
        return RequestTimeoutError(f"{what}: timed out waiting for the server")
    if isinstance(exc, requests.exceptions.ProxyError):
        return proxy_error(exc, proxy, where, reason)
    if isinstance(exc, requests.exceptions.SSLError):
        if is_certificate_error(exc):
            return ConnectError(
                f"could not connect to {where}: the server's TLS certificate failed "
                f"verification ({innermost_text(exc)})",
                retryable=False,
            )
        detail = innermost_text(exc)
        return ConnectError(f"could not connect to {where}: TLS failed ({detail})")
    if isinstance(exc, requests.exceptions.ConnectionError):
        root = root_reason(exc)
        if isinstance(root, (urllib3.exceptions.ProtocolError, ConnectionResetError)):
            return ConnectionClosedError(
                f"{what}: the connection was lost ({reason or innermost_text(exc)})"
            )
        return ConnectError(f"could not connect to {where} ({reason or innermost_text(exc)})")
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return ConnectionClosedError(
            f"{what}: the connection was lost ({reason or innermost_text(exc)})"
        )
    return TransportError(f"{what}: {type(exc).__name__}: {exc}")


def stream_error(
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


def root_reason(exc: BaseException) -> Optional[BaseException]:
    """The innermost ``reason`` of a requests ``ConnectionError`` (through ``MaxRetryError``)."""
    reason: Optional[BaseException] = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return reason if isinstance(reason, BaseException) else None


def innermost_text(exc: BaseException) -> str:
    """The text of the innermost exception wrapped in ``exc`` (urllib3 nests a few levels)."""
    current: BaseException = exc
    for _ in range(8):
        inner = root_reason(current) if current.args else None
        if inner is None:
            inner = current.__cause__ or current.__context__
        if inner is None or inner is current:
            break
        current = inner
    text = str(current.args[-1]) if isinstance(current, OSError) and current.args else str(current)
    return text or type(current).__name__


def proxy_error(
    exc: BaseException, proxy: Optional[str], where: str, reason: Optional[str]
) -> ConnectError:
    """The error for a proxy that failed us: not reachable, or it refused the tunnel."""
    via = "the proxy"
    if proxy:
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        via = f"the proxy {parts.hostname}:{parts.port or 80}"
    text = innermost_text(exc)
    marker = "Tunnel connection failed:"
    if marker in text:
        answer = text.split(marker, 1)[1].strip()
        status = answer[:3]
        retryable = not status.isdigit() or int(status) >= 500 or status in ("408", "429")
        return ConnectError(
            f"{via} refused the tunnel to {where} (HTTP {answer[:200]})", retryable=retryable
        )
    return ConnectError(f"could not connect to {via} ({reason or text})")
