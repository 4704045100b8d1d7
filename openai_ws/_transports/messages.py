"""What the transports say: secrets scrubbed out of text and exceptions, plain words for failures.

A peer can echo what the client sent: a gateway's 401 page that quotes the
request headers, a proxy's 407 page, a reason phrase, a response header, the
text of a websocket-client or requests exception that quotes the answer. A
:class:`Scrubber` is made from the headers a transport sends (and its proxy
URL); every message either transport builds from what a peer sent, and every
exception it raises, passes through it, so the API key and the proxy
credentials never reach a message, a ``repr``, a chained exception or a log
line. :func:`os_reason` words a socket failure the way a user reads it
("connection refused"), instead of urllib3's pool internals.

What counts as a secret: the value of every header whose name mentions
authorisation, a key, a token, a secret, a password, a cookie or a session
(``Authorization``, ``Proxy-Authorization``, ``api-key``, ``X-Api-Key``...),
the credential after ``Bearer``/``Basic``, and the password of a proxy URL
(with its ``user:password`` pair and that pair's Base64, which is what a
proxy receives), each also as it looks JSON-, HTML- or URL-escaped. Values
shorter than :data:`MIN_SECRET` characters are not treated as secrets (they
would garble every message and protect nothing).

This module must never log, print or keep a secret anywhere but in its
compiled pattern (``repr(scrubber)`` shows only how many it knows).
"""

from __future__ import annotations

import base64
import errno
import json
import re
import socket
from typing import Any, Dict, List, Mapping, Optional, Set, TypeVar
from urllib.parse import quote, quote_plus, unquote, urlsplit

from ..errors import APIError, OpenAIWSError

__all__ = ["MIN_SECRET", "REDACTED", "RedactedError", "Scrubber", "error_payload", "os_reason"]

REDACTED = "***"
"""What a secret is replaced with."""

MIN_SECRET = 4
"""Shorter header values are not scrubbed (see the module docstring)."""

_SECRET_NAME = re.compile(r"auth|key|token|secret|passw|cookie|session", re.IGNORECASE)
_MAX_CHAIN = 32  # exceptions visited in one chain, at most

_E = TypeVar("_E", bound=BaseException)


class RedactedError(Exception):
    """Stands in, in an exception chain, for a library exception whose text showed a secret.

    Its text is the original's type and message with every secret replaced by
    ``***``; it keeps the original's traceback and (scrubbed) chain.
    """


def _variants(secret: str) -> Set[str]:
    """``secret`` as it may appear in an echo: raw, JSON-, HTML- and URL-escaped."""
    import html  # when a scrubber is made, not with the package

    found = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
        html.escape(secret),
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    }
    return {v for v in found if len(v) >= MIN_SECRET}


def _header_secrets(headers: Mapping[str, str]) -> List[str]:
    secrets: List[str] = []
    for name, raw in headers.items():
        if not _SECRET_NAME.search(name) or not isinstance(raw, str):
            continue
        value = raw.strip()
        secrets.append(value)
        scheme, _, credential = value.partition(" ")
        if credential.strip():
            secrets.append(credential.strip())
            if scheme.lower() == "basic":
                try:
                    decoded = base64.b64decode(credential.strip(), validate=True).decode()
                except (ValueError, UnicodeDecodeError):
                    continue
                secrets.append(decoded)
                secrets.append(decoded.partition(":")[2])
    return secrets


def _proxy_secrets(proxy: Optional[str]) -> List[str]:
    if not proxy:
        return []
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if not parts.password:
        return []
    user, password = unquote(parts.username or ""), unquote(parts.password)
    pair = f"{user}:{password}"
    return [
        password,
        parts.password,
        pair,
        base64.b64encode(pair.encode()).decode(),
        parts.netloc.rpartition("@")[0],
    ]


class Scrubber:
    """Replaces the secrets a transport sends with ``***``, in text and in exceptions."""

    def __init__(self, headers: Mapping[str, str], proxy: Optional[str] = None) -> None:
        variants: Set[str] = set()
        for secret in (*_header_secrets(headers), *_proxy_secrets(proxy)):
            variants |= _variants(secret)
        self._count = len(variants)
        # Longest first, so that a secret inside a longer one goes with it.
        ordered = sorted(variants, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __repr__(self) -> str:
        return f"Scrubber({self._count} secret forms)"

    def text(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def reveals(self, text: str) -> bool:
        """Whether ``text`` contains a secret."""
        return self._pattern is not None and self._pattern.search(text) is not None

    def headers(self, headers: Mapping[str, str]) -> Dict[str, str]:
        """A copy of ``headers`` with every value scrubbed."""
        return {key: self.text(value) for key, value in headers.items()}

    def exception(self, exc: _E) -> _E:
        """Scrub ``exc`` and its chain; return ``exc``.

        An ``openai_ws`` error is scrubbed in place (its arguments, its text
        fields and, for an :class:`~openai_ws.errors.APIError`, its
        ``headers``). In its ``__cause__``/``__context__`` chain, a library
        exception whose text reveals a secret is replaced by a
        :class:`RedactedError` with the scrubbed text; the others stay.
        """
        if self._pattern is not None:
            self._visit(exc, set())
        return exc

    def _visit(self, exc: BaseException, seen: Set[int]) -> BaseException:
        seen.add(id(exc))
        if isinstance(exc, OpenAIWSError):
            self._scrub_own(exc)
            result: BaseException = exc
        elif self.reveals(_render(exc)):
            result = RedactedError(
                f"{type(exc).__module__}.{type(exc).__qualname__}: {self.text(_text_of(exc))}"
            )
            result.__traceback__ = exc.__traceback__
            result.__suppress_context__ = exc.__suppress_context__
            result.__cause__, result.__context__ = exc.__cause__, exc.__context__
        else:
            result = exc
        self._scrub_notes(result)
        for link in ("__cause__", "__context__"):
            nxt = getattr(result, link)
            if nxt is None:
                continue
            if id(nxt) in seen or len(seen) >= _MAX_CHAIN:
                if self.reveals(_render(nxt)):
                    setattr(result, link, None)  # a loop or too deep: drop the link
                continue
            setattr(result, link, self._visit(nxt, seen))
        return result

    def _scrub_own(self, exc: OpenAIWSError) -> None:
        exc.args = tuple(self.text(a) if isinstance(a, str) else a for a in exc.args)
        for name, value in list(vars(exc).items()):
            if isinstance(value, str):
                setattr(exc, name, self.text(value))
        if isinstance(exc, APIError):
            exc.headers = self.headers(exc.headers)

    def _scrub_notes(self, exc: BaseException) -> None:
        notes = getattr(exc, "__notes__", None)
        if isinstance(notes, list):
            exc.__notes__ = [self.text(n) if isinstance(n, str) else n for n in notes]


def _text_of(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not hide the real error
        return "<unprintable>"


def _render(exc: BaseException) -> str:
    try:
        return f"{exc}\n{exc!r}"
    except Exception:
        return ""


# --------------------------------------------------------------------------
# Plain words for socket failures
# --------------------------------------------------------------------------

_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ECONNABORTED: "connection aborted",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ETIMEDOUT: "timed out",
    errno.EADDRNOTAVAIL: "address not available",
    errno.EPIPE: "connection closed by the peer",
}


def os_reason(exc: Optional[BaseException]) -> Optional[str]:
    """A few plain words for the socket error at the root of ``exc``, if there is one.

    Follows ``__cause__``/``__context__`` and exception arguments (urllib3 and
    requests wrap the socket error a few levels deep).
    """
    pending: List[BaseException] = [exc] if exc is not None else []
    seen: Set[int] = set()
    while pending and len(seen) < _MAX_CHAIN:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return "the host name does not resolve"
        if isinstance(current, (socket.timeout, TimeoutError)):
            return "timed out"
        if isinstance(current, OSError) and current.errno in _ERRNO_WORDS:
            return _ERRNO_WORDS[current.errno]
        pending.extend(
            e
            for e in (
                current.__cause__,
                current.__context__,
                getattr(current, "reason", None),
                *current.args,
            )
            if isinstance(e, BaseException)
        )
    return None


# --------------------------------------------------------------------------
# The error object of an HTTP error answer (both transports)
# --------------------------------------------------------------------------

_MAX_TEXT = 500  # characters of a body that is not JSON kept as the message


def error_payload(body: bytes, fallback: str) -> Dict[str, Any]:
    """The inner error object of an error answer's ``body``, for ``api_error_from_payload``.

    The service sends ``{"error": {"message", "type", "param", "code"}}``;
    gateways send ``{"error": "text"}``, ``{"message": "text"}`` or a page that
    is not JSON, whose first 500 characters become the message. ``fallback``
    (e.g. ``"HTTP 502 Bad Gateway"``) is the message when there is nothing
    better. The result is not scrubbed: the caller's scrubber does that.
    """
    text = body.decode("utf-8", "replace")
    payload: Dict[str, Any] = {}
    try:
        obj = json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):
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
        stripped = text.strip()
        payload["message"] = stripped[:_MAX_TEXT] if stripped and obj is None else fallback
    return payload
