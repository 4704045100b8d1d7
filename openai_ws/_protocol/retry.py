"""Retry decisions: which failures are retried, and after how long.

Numbers in, numbers out. The session (for ``error`` events on the socket, and
for reconnects and replays) and the HTTP transport's urllib3 ``Retry`` adapter
both ask this module; neither keeps rules of its own. One policy for both:

* retried: 408, 409, 429 (unless ``insufficient_quota``) and 5xx; an ``error``
  event without a status is classified by its code (:data:`STATUS_BY_CODE`);
* the server's verdict ``x-should-retry: true|false`` overrides the status;
* the wait is the server's hint: ``retry-after-ms``, then ``retry-after``
  (seconds or an HTTP date), then "try again in 1.5s" in the message; without
  one, exponential backoff from 0.5 s, capped at 8 s, less up to 25 % jitter;
* a hint longer than :data:`MAX_RETRY_AFTER` (60 s) is not waited on: the
  error is raised at once, with the hint as its ``retry_after``;
* something that keeps failing (the socket, for a session on HTTP; an extra
  socket of the pool) is tried again after a :class:`Cooldown` that doubles
  with each failure in a row, up to a cap.

This module must never do I/O, read a clock, draw random numbers, sleep, start
a thread, take a lock or log: jitter and the current time are arguments.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, NamedTuple, Optional

__all__ = [
    "BACKOFF_MAX",
    "ERROR_BACKOFF_INITIAL",
    "MAX_RETRY_AFTER",
    "RETRY_STATUSES",
    "STATUS_BY_CODE",
    "Cooldown",
    "Verdict",
    "backoff",
    "header_hint",
    "http_refusal",
    "message_hint",
    "retryable_status",
    "usable_hint",
    "verdict",
]

RETRY_STATUSES = frozenset({408, 409, 429, *range(500, 600)})
"""Statuses retried (the official SDK's list: 408, 409, 429 and every 5xx)."""
MAX_RETRY_AFTER = 60.0
"""Longest server hint, in seconds, that is waited on."""
ERROR_BACKOFF_INITIAL = 0.5
"""First wait before retrying an error that came without a hint, in seconds."""
BACKOFF_MAX = 8.0
"""Longest wait of the exponential backoff, in seconds."""

STATUS_BY_CODE = {
    "rate_limit_exceeded": 429,
    "server_error": 500,
    "server_is_overloaded": 503,
}
"""The status an ``error`` event stands for when it names none, by its code."""

_RETRY_IN = re.compile(r"try again in\s+([0-9.]+)\s*(ms|s)\b", re.IGNORECASE)


def backoff(step: int, *, initial: float, cap: float, jitter: float) -> float:
    """``initial * 2**step`` seconds, capped at ``cap``, less up to 25 % jitter.

    ``jitter`` is a number in ``[0, 1)`` (``random.random()``): 0 waits the full
    delay, values near 1 a quarter less.
    """
    # 2**step overflows a float from step 1024 on; long before that it is past any cap.
    delay = cap if step >= 64 else min(cap, initial * 2**step)
    return float(delay * (1.0 - 0.25 * jitter))


class Cooldown:
    """A wait after a failure: ``first`` seconds, doubled after each failure in a row up
    to ``cap``, back to ``first`` after a success. ``now`` is a ``time.monotonic()``
    value; the caller keeps the object under its own lock."""

    __slots__ = ("_next", "cap", "first", "retry_at")

    def __init__(self, first: float, cap: float) -> None:
        self.first = first
        self.cap = cap
        self._next = first  # the wait after the next failure
        self.retry_at = 0.0
        """From when the failed thing may be tried again."""

    def failed(self, now: float) -> float:
        """A failure at ``now``: start the wait (and return it)."""
        wait = self._next
        self.retry_at = now + wait
        self._next = min(self.cap, wait * 2)
        return wait

    def succeeded(self) -> None:
        """It worked: no wait, and the next failure starts from ``first`` again."""
        self._next = self.first
        self.retry_at = 0.0

    def over(self, now: float) -> bool:
        """Whether the wait has passed at ``now`` (or none was started)."""
        return now >= self.retry_at


def header_hint(headers: Mapping[str, str], *, now: Optional[float] = None) -> Optional[float]:
    """The server's delay hint in seconds: ``retry-after-ms``, then ``retry-after``.

    ``retry-after`` is whole seconds or, when ``now`` (a ``time.time()`` value)
    is given, also an HTTP date. Header names are lower-case. A hint that does
    not parse is no hint.
    """
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return float(millis) / 1000.0
        except ValueError:
            pass
    seconds = headers.get("retry-after")
    if seconds:
        try:
            return float(seconds)
        except ValueError:
            pass
        if now is not None:
            import email.utils  # an HTTP date is rare; keep it off the import path

            try:
                when = email.utils.parsedate_to_datetime(seconds)
            except (TypeError, ValueError, IndexError):
                return None
            return max(0.0, when.timestamp() - now)
    return None


def message_hint(message: Optional[str]) -> Optional[float]:
    """A delay written in an error message ("Please try again in 1.5s"), in seconds."""
    match = _RETRY_IN.search(message or "")
    if match is None:
        return None
    try:
        value = float(match.group(1))
    except ValueError:
        return None
    return value / (1000.0 if match.group(2).lower() == "ms" else 1.0)


def usable_hint(hint: Optional[float]) -> Optional[float]:
    """``hint`` if it is worth sleeping on (positive, at most :data:`MAX_RETRY_AFTER`)."""
    if hint is None or hint <= 0 or hint > MAX_RETRY_AFTER:
        return None
    return hint


def retryable_status(status: Optional[int]) -> bool:
    """408, 409, 429 and 5xx are worth retrying."""
    return status is not None and (status in (408, 409, 429) or 500 <= status <= 599)


class Verdict(NamedTuple):
    """Whether to retry an error, and after how long."""

    delay: Optional[float]
    """Seconds to wait before trying again; ``None``: do not retry."""
    why: str
    """Why, in a few words (for the log and for the error)."""
    hint: Optional[float]
    """The server's hint in seconds, if it gave one."""


def verdict(
    *,
    status: Optional[int],
    code: Optional[str],
    headers: Mapping[str, str],
    message: Optional[str],
    attempt: int,
    jitter: float,
    now: Optional[float] = None,
) -> Verdict:
    """The one retry rule (see the module docstring) for an error answer.

    ``headers`` have lower-case names; ``attempt`` counts retries so far;
    ``now`` (a ``time.time()`` value) lets ``retry-after`` be an HTTP date.
    """
    if status is None and code is not None:
        status = STATUS_BY_CODE.get(code)
    hint = header_hint(headers, now=now)
    if hint is None:
        hint = message_hint(message)
    should = headers.get("x-should-retry", "").strip().lower()
    if should == "false":
        return Verdict(None, "the server said x-should-retry: false", hint)
    if should != "true":
        if not retryable_status(status):
            return Verdict(None, f"status {status} is not retryable", hint)
        if code == "insufficient_quota":
            return Verdict(None, "insufficient_quota is not retryable", hint)
    if hint is not None and hint > MAX_RETRY_AFTER:
        return Verdict(None, f"the server asks to wait {hint:.0f} s", hint)
    usable = usable_hint(hint)
    if usable is not None:
        return Verdict(usable, f"the server asked to wait {usable:.2f} s", hint)
    delay = backoff(attempt, initial=ERROR_BACKOFF_INITIAL, cap=BACKOFF_MAX, jitter=jitter)
    return Verdict(delay, f"backoff {delay:.2f} s", hint)


def http_refusal(
    status: int,
    *,
    should_retry: str,
    hint: Optional[float],
    error_code: Callable[[], Optional[str]],
) -> Optional[str]:
    """Why an HTTP error answer must not be retried, or ``None`` to retry it.

    ``should_retry`` is the ``x-should-retry`` header ("" when absent): the
    server's explicit verdict wins. ``error_code`` reads ``error.code`` of the
    body; it is called only for a 429, where it tells ``insufficient_quota``
    (out of credit) from a rate limit.
    """
    verdict = should_retry.strip().lower()
    if verdict == "true":
        return None
    if verdict == "false":
        return "the server said x-should-retry: false"
    if not retryable_status(status):
        return f"HTTP {status} is not retryable"
    if status == 429 and error_code() == "insufficient_quota":
        return "insufficient_quota is not retryable"
    if hint is not None and hint > MAX_RETRY_AFTER:
        return f"the server asks to wait {hint:.0f} s"
    return None
