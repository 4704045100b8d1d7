"""The response lifecycle shared by the WebSocket and HTTP sides of the emulator.

Looking up a stored parent for ``previous_response_id`` (after the cost model
of a store load, ``store_load_delay``; counted as a store hit), the context
tokens a continuation inherits, planning and storing a new response with the
server-wide settings (its input items and context hash too, for
``input_items`` and the proof-of-context digest), and recording its end in the
counters and the store.
Both ``_ws`` and ``_http`` call these, so a response is started and finished
the same way over either transport. This module must never perform network
I/O, never send an event or touch a socket or HTTP response, and never consult
a connection-local cache (cache hits are the WebSocket side's business).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ._config import EmulatorConfig
from ._context import (
    Context,
    digest_reply,
    encode_compaction,
    ends_with_trigger,
    fold,
    request_items,
)
from ._runner import Outcome
from ._scenario import Scenario, plan_response, random_id, wants_generation
from ._script import Script
from ._state import ServerState

__all__ = [
    "context_tokens_of",
    "finish_response",
    "input_record",
    "obfuscation",
    "start_response",
    "store_load_delay",
    "stored_parent",
    "wants_obfuscation",
]

_PAD_POOL = secrets.token_urlsafe(768)  # 1024 URL-safe characters
_PAD_RANDOM = random.Random()

_ITEM_PREFIXES = {
    "message": "msg_",
    "function_call": "fc_",
    "function_call_output": "fco_",
    "reasoning": "rs_",
    "compaction": "cmp_",
}


def store_load_delay(config: EmulatorConfig, items: int) -> float:
    """Seconds a continuation waits when its parent is loaded from the store: the cost model.

    ``store_lookup_delay + history_rebuild_base + history_rebuild_per_item * items``,
    ``items`` being every input and output item of the parent's chain (its context
    count, ``_context``; a compaction does not lower it). Only store loads pay it:
    every HTTP continuation, and a WebSocket one whose socket's cache does not hold
    the parent; a cache hit rebuilds nothing (docs/protocol.md section 5: chaining
    is fast when the parent still sits in the socket's own in-memory cache).

    The rest of a response's time is ``ttft`` (time to first token) and
    ``token_interval`` between deltas (``_scenario``). These knobs default to 0; the
    network benchmark sets them from docs/protocol.md section 10: time to first token
    250-800 ms p50-p95 (it uses 300 ms); about 250 ms saved per turn over WebSocket in
    the guide's 20-turn demo (14.54 s against 19.56 s); a gain growing with the chain,
    -28 % at 8 turns to -41 % at 40, on gateways that rebuild the history every HTTP
    turn (smg-project PR #1770, sglang PR #22366). A model, not a measurement of the
    service, which publishes no rebuild cost.
    """
    return (
        config.store_lookup_delay
        + config.history_rebuild_base
        + config.history_rebuild_per_item * max(0, items)
    )


async def stored_parent(state: ServerState, parent_id: str) -> Optional[Dict[str, Any]]:
    """A stored parent response, after the cost of a store load, counted as a store hit.

    The cost is :func:`store_load_delay` of the parent's chain length (nothing with
    the default config). ``None`` at once when the store does not have it (the
    caller answers ``previous_response_not_found``). The WebSocket side calls this
    only on a cache miss.
    """
    parent = state.store_get(parent_id)
    if parent is None:
        return None
    context = state.stored_context(parent_id)
    delay = store_load_delay(state.config, context.count if context is not None else 0)
    if delay > 0:
        await asyncio.sleep(delay)
    state.stats.incr("store_hits")
    return parent


def context_tokens_of(parent: Optional[Dict[str, Any]]) -> int:
    """The parent's total token usage, which its continuation counts as input.

    A parent whose output holds a compaction item passes on only that item
    (one token): the compaction replaced everything before it.
    """
    if parent is None:
        return 0
    output = parent.get("output")
    if isinstance(output, list) and any(
        isinstance(item, dict) and item.get("type") == "compaction" for item in output
    ):
        return 1
    usage = parent.get("usage")
    return int(usage.get("total_tokens") or 0) if isinstance(usage, dict) else 0


def obfuscation(delta: str) -> str:
    """Random padding for one delta: 1 to 16 characters, so that delta + padding is a
    multiple of 16 characters long (the service's padding scheme is not documented).

    A slice of a random pool at a random offset: padding, not a secret.
    """
    start = _PAD_RANDOM.randrange(len(_PAD_POOL) - 16)
    return _PAD_POOL[start : start + 16 - len(delta) % 16]


def wants_obfuscation(body: Mapping[str, Any]) -> bool:
    """Whether an HTTP streaming request gets ``obfuscation`` on its deltas (default on)."""
    options = body.get("stream_options")
    return not (isinstance(options, dict) and options.get("include_obfuscation") is False)


def input_record(body: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The input items as ``input_items`` lists them: ids assigned, string content as parts.

    ``compaction_trigger`` items are control signals and are not kept.
    """
    record: List[Dict[str, Any]] = []
    for item in request_items(body):
        item_type = item.get("type") or "message"
        if item_type == "compaction_trigger":
            continue
        entry = dict(item)
        entry["type"] = item_type
        if item_type == "message":
            role = entry.get("role") if isinstance(entry.get("role"), str) else "user"
            entry["role"] = role
            content = entry.get("content")
            if isinstance(content, str):
                if role == "assistant":
                    part: Dict[str, Any] = {"type": "output_text", "text": content}
                    part["annotations"] = []
                else:
                    part = {"type": "input_text", "text": content}
                entry["content"] = [part]
        if item_type in ("message", "function_call", "function_call_output"):
            entry.setdefault("status", "completed")
        if not isinstance(entry.get("id"), str) or not entry["id"]:
            entry["id"] = random_id(_ITEM_PREFIXES.get(item_type, "item_"))
        record.append(entry)
    return record


def start_response(
    state: ServerState,
    body: Dict[str, Any],
    script: Script,
    *,
    context: Context,
    context_tokens: int,
    cached_tokens: int = 0,
    obfuscate: bool = False,
    token_interval: Optional[float] = None,
) -> Scenario:
    """Plan a response with the server-wide settings, store it, count it as started.

    ``token_interval`` replaces ``config.token_interval`` (the request's own
    ``emulator_token_interval`` still wins).

    ``context`` is everything the server sees for it (parent chain + input): it
    becomes the digest of a ``context_digest`` reply and the content of the
    compaction item that a final ``compaction_trigger`` asks for.
    """
    config = state.config
    reply = digest_reply(context, body.get("instructions")) if script.reply else None
    compaction: Optional[Dict[str, Any]] = None
    if ends_with_trigger(body) and wants_generation(body):
        compaction = {
            "type": "compaction",
            "id": random_id("cmp_"),
            "encrypted_content": encode_compaction(context),
        }
    scenario = plan_response(
        body,
        script,
        response_id=random_id("resp_"),
        created_at=int(time.time()),
        ttft=config.ttft,
        token_interval=config.token_interval if token_interval is None else token_interval,
        output_tokens=config.output_tokens,
        context_tokens=context_tokens,
        cached_tokens=cached_tokens,
        reply=reply,
        compaction=compaction,
        obfuscate=obfuscation if obfuscate else None,
    )
    if body.get("store") is not False:
        state.store_put(scenario.initial)
        state.store_inputs(scenario.response_id, input_record(body))
        state.store_context(scenario.response_id, context)
    state.stats.incr("responses_started")
    return scenario


def finish_response(
    state: ServerState,
    body: Dict[str, Any],
    final: Dict[str, Any],
    outcome: Outcome,
    context: Context,
) -> Tuple[Dict[str, Any], Context]:
    """Record the end of a response in stats and store.

    Returns its final object and its whole context (``context`` followed by its
    output items), which a continuation of it starts from.
    """
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
    after = fold(context, final.get("output") or [])
    if body.get("store") is not False:
        state.store_put(final)
        state.store_context(str(final["id"]), after)
    return final, after
