"""The HTTP transport's retry policy: urllib3's ``Retry``, taught OpenAI's retry signals.

:class:`RetryPolicy` is mounted on the transport's adapter; the rules
themselves (statuses, hints, backoff) are :mod:`openai_ws._protocol.retry`'s.

Up to ``max_retries`` retries of connection failures (but not of a failed
certificate check, which no retry can fix) and of the statuses 408, 409, 429,
500, 502, 503 and 504, for GET, POST and DELETE. Four things urllib3 does not
know are added, all decided in ``increment()``, the one hook that sees the
whole response (``is_retry()`` only gets the status):

* ``insufficient_quota``: a 429 that means "out of credit" must fail at once,
  but it differs from a rate limit only in its JSON body (``error.code``). For
  a 429 only, the policy reads at most :data:`MAX_ERROR_BODY` bytes of the body
  before deciding and keeps them in :data:`PEEKED`, so that the error raised
  later still has them. Headers are no substitute: a rate-limit 429 may also
  come without ``Retry-After``.
* ``retry-after-ms``: OpenAI's precise hint, preferred over ``Retry-After``
  (whole seconds or an HTTP date), both read in ``get_retry_after()``. A hint
  longer than :data:`MAX_RETRY_AFTER` seconds is not slept on: the error is
  returned at once, with the server's headers, for the caller to decide.
* ``x-should-retry: true|false``: the server's explicit verdict overrides the
  status list (as in the official SDK). To see it on any error status,
  ``is_retry()`` answers yes for every status >= 400 and ``increment()`` gives
  up, by raising urllib3's ``MaxRetryError``, when the policy says no; with
  ``raise_on_status=False`` urllib3 then hands the response back as it does
  when retries are exhausted.
* The call's deadline (:func:`.http_cancel.guard`): a retry whose wait would
  end past it is not attempted; the answer (or error) that asked for it is
  the result.

Without a server hint the wait is ``0.5 s * 2**n`` (n = retries so far),
capped at 8 s, minus up to 25 % jitter; a cancelled call stops waiting at once.

This module must never read more than :data:`MAX_ERROR_BODY` bytes of a body,
sleep past a call's deadline, or retry a read timeout (the caller's deadline,
while the server may still be running the request).
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import time
import weakref
from typing import TYPE_CHECKING, Any, List, Optional

import urllib3.exceptions
from urllib3.exceptions import MaxRetryError, ReadTimeoutError, ResponseError
from urllib3.util.retry import Retry

from .._protocol import retry as retry_rules
from .http_cancel import current_token

if TYPE_CHECKING:
    from urllib3.response import BaseHTTPResponse

__all__ = ["MAX_ERROR_BODY", "MAX_RETRY_AFTER", "PEEKED", "RetryPolicy", "is_certificate_error"]

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = retry_rules.MAX_RETRY_AFTER
MAX_ERROR_BODY = 64 * 1024
"""Bytes of an error answer's body read (for its message, or by the retry policy)."""
PEEKED: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()
"""What the policy read of a 429's body, by urllib3 response, for the error raised later."""




class RetryPolicy(Retry):
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
    ) -> RetryPolicy:
        if isinstance(error, ReadTimeoutError):
            # The caller's deadline passed and the server may still be working
            # on the request: report it rather than run it again.
            raise error
        if error is not None and is_certificate_error(error):
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
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        token = current_token()
        if token is not None and token.deadline is not None:
            wait = (retry.get_retry_after(response) if response is not None else None) or 0.0
            wait = wait or retry.get_backoff_time()
            if time.monotonic() + wait >= token.deadline:
                # No time left to wait and try again: give up now, with this
                # answer (or error), rather than fail with a timeout later.
                raise MaxRetryError(_pool, url or "", error or ResponseError("no time to retry"))
        return retry

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


def is_certificate_error(error: BaseException) -> bool:
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
    """``error.code`` of a small JSON error body (at most :data:`MAX_ERROR_BODY` bytes read).

    What was read is kept in ``PEEKED`` for the error raised later.
    """
    length = response.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_ERROR_BODY):
        return None
    try:
        body = response.read(amt=MAX_ERROR_BODY + 1, decode_content=True)
    except (urllib3.exceptions.HTTPError, OSError):
        return None
    PEEKED[response] = PEEKED.get(response, b"") + body
    if len(body) > MAX_ERROR_BODY:
        return None  # not a small body: not an insufficient_quota answer
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None
