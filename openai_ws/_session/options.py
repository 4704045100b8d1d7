"""What a session is configured with, and what it counted: the one place defaults live.

:class:`SessionOptions` is the resolved configuration a client hands to a
session; every default is a ``DEFAULT_*`` constant here, used both by
:class:`SessionOptions` and by the signature of
:meth:`openai_ws.OpenAI.ws_session`. :class:`SessionStats` is the snapshot of
counters that :attr:`openai_ws.Session.stats` returns.

This module must never do I/O or hold state beyond these frozen values.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import attrs

from .._protocol.routing import MAX_LANE_NAMES

__all__ = [
    "DEFAULT_BACKOFF_INITIAL",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_FALLBACK_COOLDOWN",
    "DEFAULT_FALLBACK_COOLDOWN_MAX",
    "DEFAULT_MAX_CONNECTION_AGE",
    "DEFAULT_MAX_LANES",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_QUEUE_BYTES",
    "DEFAULT_MAX_QUEUE_EVENTS",
    "DEFAULT_MAX_REPLAYS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MAX_SOCKETS",
    "DEFAULT_PING_INTERVAL",
    "DEFAULT_PING_TIMEOUT",
    "DEFAULT_RECONNECT_ATTEMPTS",
    "DEFAULT_SOCKET_IDLE_TIMEOUT",
    "DEFAULT_STEER_SETTLE_TIMEOUT",
    "SessionOptions",
    "SessionStats",
]

# Lanes and sockets
DEFAULT_MAX_LANES = MAX_LANE_NAMES
DEFAULT_MAX_SOCKETS = 4
"""Sockets one session opens at most: 16 responses run at once on each (64 in all)."""
DEFAULT_SOCKET_IDLE_TIMEOUT = 60.0
"""Seconds an extra socket (any but the oldest) may stay idle before it is closed."""
# Keepalive
DEFAULT_PING_INTERVAL: Optional[float] = 20.0
DEFAULT_PING_TIMEOUT = 60.0
# Limits
DEFAULT_MAX_QUEUE_EVENTS = 10_000
DEFAULT_MAX_QUEUE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_MESSAGE_SIZE: Optional[int] = 16 * 1024 * 1024
"""Largest incoming message, in bytes: 16 MiB (``None``: no limit; larger closes with 1009).

The largest event the service sends is the terminal ``response.completed``: the whole
response, all its output, plus the ``instructions`` and ``tools`` the request sent. The
emulator's answer of 128,000 output tokens (the most a model returns) is 0.78 MB, 6.2 bytes
a token; text that JSON escapes as ``\\uXXXX`` can triple that and reasoning items add
their encrypted content, so even a maximal answer stays near 3 MB. The rest leaves room for
large ``instructions`` and ``tools`` echoed back (16 MiB is also the emulator's inbound
limit). Answers with ``top_logprobs`` cost about 1 KB a token: raise the limit for those."""
# Recovery
DEFAULT_MAX_RETRIES = 2
DEFAULT_RECONNECT_ATTEMPTS = 4
DEFAULT_MAX_REPLAYS = 10
DEFAULT_BACKOFF_INITIAL = 0.25
DEFAULT_BACKOFF_MAX = 8.0
DEFAULT_FALLBACK_COOLDOWN = 30.0
DEFAULT_FALLBACK_COOLDOWN_MAX = 600.0
# Steering
DEFAULT_STEER_SETTLE_TIMEOUT = 10.0
"""Seconds a response whose steer is unanswered waits, after its terminal event, for a
successor or the server's answer (the service answers at once; this bounds a server that
never does)."""
# Lifetime
DEFAULT_CLOSE_TIMEOUT = 5.0
DEFAULT_MAX_CONNECTION_AGE = 55 * 60.0


@attrs.frozen
class SessionStats:
    """Counters of what a session did, read with :attr:`Session.stats`."""

    requests: int = 0
    """Requests submitted by callers (a replay is not a new request)."""
    connects: int = 0
    """Sockets opened (the first one included)."""
    reconnects: int = 0
    """Sockets opened to replace one that ended."""
    replays: int = 0
    """Requests sent again on a new socket because the old one ended first."""
    http_fallbacks: int = 0
    """Requests completed over HTTP instead of the socket."""
    resumed_streams: int = 0
    """Streams cut mid-answer whose rest was read from the stored response over HTTP."""
    retries: int = 0
    """Requests sent again after a retryable ``error`` event (429, 5xx)."""
    malformed_frames: int = 0
    """Text frames that were not a valid event (logged and skipped)."""
    binary_frames: int = 0
    """Binary frames (the protocol has none; logged and skipped)."""
    unroutable_events: int = 0
    """Events that belonged to no request in flight (logged and skipped)."""
    dropped_events: int = 0
    """Events of abandoned requests, dropped as they arrived."""
    lanes_used: int = 0
    """Most distinct ``stream_id`` names used on one socket."""
    sockets_max: int = 0
    """Most sockets open at once (``max_sockets`` bounds it)."""
    steers: int = 0
    """Steers sent (``EventStream.steer``, ``PendingResponse.steer``)."""


@attrs.frozen
class SessionOptions:
    """Everything a session needs from its client, resolved."""

    # Where and who
    url: str
    headers: Mapping[str, str] = attrs.field(repr=False)
    ssl_context: Any = attrs.field(repr=False)
    proxy: Optional[str] = attrs.field(repr=False)
    # Timeouts
    connect_timeout: float
    request_timeout: Optional[float]
    event_timeout: Optional[float]
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT
    # Lanes
    use_lanes: bool = True
    max_lanes: int = DEFAULT_MAX_LANES
    max_sockets: int = DEFAULT_MAX_SOCKETS
    """Sockets opened at most; more than one only when every open one is full."""
    socket_idle_timeout: float = DEFAULT_SOCKET_IDLE_TIMEOUT
    # Keepalive
    ping_interval: Optional[float] = DEFAULT_PING_INTERVAL
    ping_timeout: float = DEFAULT_PING_TIMEOUT
    # Limits
    max_queue_events: int = DEFAULT_MAX_QUEUE_EVENTS
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES
    max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE
    # Recovery
    max_retries: int = DEFAULT_MAX_RETRIES
    reconnect_attempts: int = DEFAULT_RECONNECT_ATTEMPTS
    max_replays: int = DEFAULT_MAX_REPLAYS
    backoff_initial: float = DEFAULT_BACKOFF_INITIAL
    backoff_max: float = DEFAULT_BACKOFF_MAX
    fallback_cooldown: float = DEFAULT_FALLBACK_COOLDOWN
    """Seconds on HTTP before the socket is tried again (doubling, up to the max)."""
    fallback_cooldown_max: float = DEFAULT_FALLBACK_COOLDOWN_MAX
    # Steering
    steer_settle_timeout: float = DEFAULT_STEER_SETTLE_TIMEOUT
    """Seconds a response with an unanswered steer waits for it after its terminal event."""
    # Lifetime
    max_connection_age: float = DEFAULT_MAX_CONNECTION_AGE
