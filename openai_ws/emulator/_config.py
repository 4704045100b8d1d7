"""Server-wide settings of the emulator (``EmulatorConfig``).

This module only describes knobs and their defaults. The object is mutable on
purpose: tests flip attributes while the emulator runs, and handlers read the
live values when a connection opens or a request starts. It must never hold
per-connection or per-request state, and it must never perform I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Tuple

__all__ = [
    "DECIMAL_RULES",
    "SSE_ERROR_SHAPES",
    "STREAM_ID_MODES",
    "DecimalRule",
    "EmulatorConfig",
    "SseErrorShape",
    "StreamIdMode",
]

StreamIdMode = Literal["support", "reject", "ignore"]
"""How the emulator treats ``stream_id`` on WebSocket ``response.create``."""

STREAM_ID_MODES = ("support", "reject", "ignore")

DecimalRule = Literal["non_integer", "any_fraction"]
"""Which sampling numbers trip the decimal quirk (``EmulatorConfig.decimal_sampling_rule``)."""

DECIMAL_RULES = ("non_integer", "any_fraction")

SseErrorShape = Literal["flat", "nested"]
"""The JSON shape of a mid-stream SSE ``error`` event (``EmulatorConfig.sse_error_shape``)."""

SSE_ERROR_SHAPES = ("flat", "nested")


@dataclass
class EmulatorConfig:
    """Live, mutable settings of an :class:`~openai_ws.emulator.Emulator`.

    Connection-level settings (``max_connection_age``, ``max_message_size``,
    ``server_ping_interval``, ``max_active_responses``, ``max_stream_ids``,
    ``stream_id_mode``) are read when a WebSocket connection opens; everything else
    is read when a request arrives or starts.
    """

    require_auth: bool = True
    """Check ``Authorization: Bearer <api_key>`` on every HTTP request and upgrade."""

    ttft: float = 0.0
    """Seconds before the first output item of a response (time to first token)."""

    token_interval: float = 0.0
    """Seconds between two consecutive delta events."""

    output_tokens: Optional[int] = None
    """Exact number of output tokens (deltas) of a text reply; ``None`` echoes the input."""

    max_connection_age: float = 3600.0
    """Seconds a WebSocket may live; the next ``response.create`` after that is refused
    with ``websocket_connection_limit_reached``."""

    close_on_connection_limit: bool = True
    """Close the socket right after the ``websocket_connection_limit_reached`` error."""

    connection_limit_close_code: int = 1000
    """Close code used after ``websocket_connection_limit_reached`` (the real code is
    undocumented, docs/protocol.md section 9.1; 1000 with an empty reason is our choice)."""

    decimal_sampling_quirk: bool = True
    """Reproduce the service bug: a WebSocket ``response.create`` whose ``temperature``
    or ``top_p`` is a "decimal" (see ``decimal_sampling_rule``) closes the socket with
    1000 and no event."""

    decimal_sampling_rule: DecimalRule = "non_integer"
    """What counts as a decimal for the quirk: ``"non_integer"`` (0.7 closes, ``1`` and
    ``1.0`` do not) or ``"any_fraction"`` (any JSON number written with a fraction or an
    exponent, i.e. a float after ``json.loads``: ``1.0`` and ``1e0`` close too, only an
    integer such as ``1`` passes; docs/protocol.md section 10)."""

    reject_background: bool = True
    """Refuse ``background: true`` over WebSocket with a 400 error event."""

    stream_id_mode: StreamIdMode = "support"
    """``"support"`` lanes; ``"reject"`` any ``stream_id`` with a 400 error event;
    ``"ignore"`` drop it (everything runs on the default lane, no echo)."""

    max_active_responses: int = 16
    """Responses that may run at once on one connection; later ones are queued."""

    max_stream_ids: int = 32
    """Distinct named lanes per connection; one more is ``websocket_stream_limit_reached``."""

    upgrade_status: Optional[int] = None
    """When set (for example 426), refuse every WebSocket upgrade with this HTTP status."""

    max_message_size: int = 16 * 1024 * 1024
    """Largest inbound WebSocket message in bytes; a bigger one closes the socket with 1009."""

    server_ping_interval: Optional[float] = None
    """Ping an idle WebSocket this often (seconds).

    A pong later than half the interval drops the connection (aiohttp's heartbeat).
    """

    sse_error_shape: SseErrorShape = "flat"
    """Mid-stream SSE ``error`` events: ``"flat"`` ``{type, code, message, param,
    sequence_number}`` as the spec and the SDK's ``ResponseErrorEvent`` have it, or
    ``"nested"`` ``{type, error: {type, code, message, param}, sequence_number}`` as some
    captures of the live service show (docs/protocol.md section 4.2)."""

    sse_done: bool = False
    """Append ``data: [DONE]`` after the terminal event of an SSE stream."""

    store_lookup_delay: float = 0.0
    """Extra seconds when a parent response is loaded from the store (cache miss)."""

    strict_parameters: bool = True
    """Reject unknown request body parameters with ``unknown_parameter`` (as the service
    does); over HTTP this includes the WebSocket-only ``type`` and ``stream_id``."""

    # -- steering (docs/protocol.md sections 2.4, 3.5 and 10) -------------------------------

    steering_models: Tuple[str, ...] = ("gpt-6",)
    """Model name prefixes whose responses accept ``response.steer`` (the steering guide
    names only the GPT-6 family); a steer of any other model's response, or of one that
    uses ``conversation`` or ``context_management``, fails with ``steering_not_supported``.
    Read when the steer arrives."""

    max_pending_steers: int = 4
    """Accepted steers not yet committed (by a successor's ``response.created``, or by the
    continuation of a response waiting for tool output) per response; one more fails with
    ``too_many_pending_steers``. The service does not publish its limit: 4 is our choice."""

    steering_token_interval: float = 0.02
    """Seconds between two deltas of a steerable model's WebSocket response when
    ``token_interval`` is 0 and the request sets no ``emulator_token_interval``: a real
    response of such a model runs for seconds, so a steer sent after its first delta
    finds it still running (0: as fast as other models)."""

    # -- cost model of a store load (benchmarks; docs/protocol.md sections 5 and 10) --------
    #
    # A continuation whose parent is loaded from the store (always over HTTP; over a
    # WebSocket when the socket's cache does not hold the parent) waits, before its
    # first event, store_lookup_delay + history_rebuild_base + history_rebuild_per_item
    # * N, N being every input and output item of the parent's chain (its context
    # count, which compaction does not lower). A WebSocket continuation found in the
    # socket's cache pays none of it. Time to first token is ``ttft``, time per token
    # ``token_interval``. Both defaults are 0 (no test pays); benchmarks/network.py sets
    # its own values and says where they come from.

    history_rebuild_base: float = 0.0
    """Seconds every store load of a parent costs, whatever the chain's length: the
    fixed part of rebuilding (rehydrating) the history server-side. Only the difference
    between transports is published: the WebSocket-mode guide's 20-turn demo took 14.54 s
    over WebSocket against 19.56 s over HTTP, about 250 ms per turn, the guide crediting
    part of it to pinning a session to one engine (docs/protocol.md section 10)."""

    history_rebuild_per_item: float = 0.0
    """Seconds more per item of the parent's chain: the part that grows with the history.
    Gateways that rebuild the history on every HTTP turn measured the WebSocket gain
    growing with chain length, -28 % at 8 turns to -41 % at 40 (smg-project PR #1770,
    sglang PR #22366; docs/protocol.md section 10)."""
