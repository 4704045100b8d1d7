"""The response lifecycle shared by the WebSocket and HTTP sides of the emulator.

Looking up a stored parent for ``previous_response_id`` (with the configured
store delay, counted as a store hit), the context tokens a continuation
inherits, planning and storing a new response with the server-wide settings,
and recording its end in the counters and the store. Both ``_ws`` and ``_http``
call these, so a response is started and finished the same way over either
transport. This module must never perform network I/O, never send an event or
touch a socket or HTTP response, and never consult a connection-local cache
(cache hits are the WebSocket side's business).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Dict, Optional

from ._runner import Outcome
from ._scenario import Scenario, plan_response, random_id
from ._script import Script
from ._state import ServerState

__all__ = ["context_tokens_of", "finish_response", "start_response", "stored_parent"]


async def stored_parent(state: ServerState, parent_id: str) -> Optional[Dict[str, Any]]:
    """A stored parent response, after ``store_lookup_delay`` and counted as a store hit.

    ``None`` when the store does not have it (the caller answers
    ``previous_response_not_found``).
    """
    parent = state.store_get(parent_id)
    if parent is None:
        return None
    if state.config.store_lookup_delay > 0:
        await asyncio.sleep(state.config.store_lookup_delay)
    state.stats.incr("store_hits")
    return parent


def context_tokens_of(parent: Optional[Dict[str, Any]]) -> int:
    """The parent's total token usage, which its continuation counts as input."""
    usage = parent.get("usage") if parent is not None else None
    return int(usage.get("total_tokens") or 0) if isinstance(usage, dict) else 0


def start_response(
    state: ServerState,
    body: Dict[str, Any],
    script: Script,
    *,
    context_tokens: int,
    cached_tokens: int = 0,
) -> Scenario:
    """Plan a response with the server-wide settings, store it, count it as started."""
    config = state.config
    scenario = plan_response(
        body,
        script,
        response_id=random_id("resp_"),
        created_at=int(time.time()),
        ttft=config.ttft,
        token_interval=config.token_interval,
        output_tokens=config.output_tokens,
        context_tokens=context_tokens,
        cached_tokens=cached_tokens,
    )
    if body.get("store") is not False:
        state.store_put(scenario.initial)
    state.stats.incr("responses_started")
    return scenario


def finish_response(
    state: ServerState,
    body: Dict[str, Any],
    final: Dict[str, Any],
    outcome: Outcome,
) -> Dict[str, Any]:
    """Record the end of a response in stats and store; return its final object."""
    stats = state.stats
    if outcome is Outcome.COMPLETED:
        stats.incr("responses_completed")
    elif outcome is Outcome.INCOMPLETE:
        stats.incr("responses_incomplete")
    elif outcome is Outcome.FAILED:
        stats.incr("responses_failed")
    else:
        stats.incr("responses_interrupted")
    if outcome is Outcome.ERROR:
        final = dict(
            final,
            status="failed",
            output=[],
            completed_at=None,
            error={
                "code": "server_error",
                "message": "The server had an error while processing your request.",
            },
        )
    if body.get("store") is not False:
        state.store_put(final)
    return final
