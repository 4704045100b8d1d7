"""Retry decisions: which failures are retried, and after how long.

Numbers in, numbers out. The session (for ``error`` events on the socket, and
for reconnects and replays) and the HTTP transport's urllib3 ``Retry`` adapter
both ask this module; neither keeps rules of its own.

The two paths still differ in one rule, on purpose until they are unified:
over HTTP a server hint longer than :data:`MAX_RETRY_AFTER` means "do not
retry" (the error is returned with its headers for the caller to decide); on
the socket such a hint is ignored and the plain backoff is used.

This module must never do I/O, read a clock, draw random numbers, sleep, start
a thread, take a lock or log: jitter and the current time are arguments.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, Optional

__all__ = [
    "BACKOFF_MAX",
    "ERROR_BACKOFF_INITIAL",
    "MAX_RETRY_AFTER",
    "RETRY_STATUSES",
    "backoff",
    "header_hint",
    "http_refusal",
    "message_hint",
    "socket_error_delay",
    "usable_hint",
]

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
"""HTTP statuses retried (the official SDK's list)."""
MAX_RETRY_AFTER = 60.0
"""Longest server hint, in seconds, that is waited on."""
ERROR_BACKOFF_INITIAL = 0.5
"""First wait before retrying an error that came without a hint, in seconds."""
BACKOFF_MAX = 8.0
"""Longest wait of the exponential backoff, in seconds."""

_RETRY_IN = re.compile(r"try again in\s+([0-9.]+)\s*(ms|s)\b", re.IGNORECASE)


def backoff(step: int, *, initial: float, cap: float, jitter: float) -> float:
    """``initial * 2**step`` seconds, capped at ``cap``, less up to 25 % jitter.

    ``jitter`` is a number in ``[0, 1)`` (``random.random()``): 0 waits the full
    delay, values near 1 a quarter less.
    """
    # 2**step overflows a float from step 1024 on; long before that it is past any cap.
    delay = cap if step >= 64 else min(cap, initial * 2**step)
    return float(delay * (1.0 - 0.25 * jitter))


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


def socket_error_delay(
    *,
    status: Optional[int],
    code: Optional[str],
    headers: Mapping[str, str],
    message: Optional[str],
    attempt: int,
    jitter: float,
) -> Optional[float]:
    """Seconds to wait before sending again after an ``error`` event; ``None``: do not.

    Retried: 429 (unless ``insufficient_quota``) and 5xx. The wait is the
    server's hint (headers, then the message) when it is between 0 and
    :data:`MAX_RETRY_AFTER` seconds, else the backoff for ``attempt``.
    """
    if code == "insufficient_quota":
        return None
    value = status or 0
    if value != 429 and value < 500:
        return None
    hint = header_hint(headers)
    if hint is None:
        hint = message_hint(message)
    if hint is not None and 0 <= hint <= MAX_RETRY_AFTER:
        return hint
    return backoff(attempt, initial=ERROR_BACKOFF_INITIAL, cap=BACKOFF_MAX, jitter=jitter)


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
    if status not in RETRY_STATUSES:
        return f"HTTP {status} is not retryable"
    if status == 429 and error_code() == "insufficient_quota":
        return "insufficient_quota is not retryable"
    if hint is not None and hint > MAX_RETRY_AFTER:
        return f"the server asks to wait {hint:.0f} s"
    return None
