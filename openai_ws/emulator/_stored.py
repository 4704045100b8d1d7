"""HTTP routes around stored responses: retrieve (JSON or replayed SSE), input items, compact.

- ``GET /v1/responses/{id}``: the stored Response; with ``stream=true`` its
  events again as SSE (``_replay``), after ``starting_after=N`` only the events
  numbered above N, with ``obfuscation`` unless ``include_obfuscation=false``
  (docs/protocol.md section 6.1). A response still running is streamed once it
  has finished.
- ``GET /v1/responses/{id}/input_items``: the items used to generate a stored
  response (its parent chain's inputs and outputs, then its own input; a
  compaction output item of a parent replaces what came before it), with the
  service's cursor pagination: ``after`` (an item id), ``limit`` (1-100,
  default 20), ``order`` (``asc``/``desc``, default ``desc``), answered as
  ``{object: "list", data, first_id, last_id, has_more}``.
- ``POST /v1/responses/compact``: ``{model, input, previous_response_id?,
  instructions?}`` → ``{id, object: "response.compaction", created_at, output,
  usage}`` where ``output`` is the user messages of the context followed by
  one ``compaction`` item standing for the whole context (section 5). Nothing
  is stored: the id cannot be continued from.

Only the store is consulted (HTTP has no connection cache). This module must
never touch WebSocket connections and never mutate a stored object.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Dict, List, Optional, Tuple

from aiohttp import web

from ._context import EMPTY_CONTEXT, encode_compaction, fold, request_items
from ._errors import (
    ApiError,
    invalid_type,
    invalid_value,
    previous_response_not_found,
    response_not_found,
    unknown_parameter,
)
from ._http import read_json, service_headers
from ._replay import replay_events
from ._responses import context_tokens_of, input_record, obfuscation, stored_parent
from ._runner import dumps
from ._scenario import input_token_count, random_id
from ._state import ServerState
from ._validate import validate_create

__all__ = ["compact_response", "get_response", "list_input_items"]

_RUNNING = frozenset({"in_progress", "queued"})
_FINISH_WAIT = 300.0  # seconds a replay waits for a running response to finish
_POLL = 0.01
_COMPACT_FIELDS = frozenset({"model", "input", "previous_response_id", "instructions"})


def _integer(raw: str, param: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise invalid_type(param, "an integer", raw) from None


def _flag(raw: Optional[str], default: bool) -> bool:
    if raw is None:
        return default
    return raw.strip().lower() not in ("false", "0", "no")


async def _finished(state: ServerState, response_id: str) -> Optional[Dict[str, Any]]:
    """The stored response once it is no longer running (or after a long bound)."""
    found = state.store_get(response_id)
    deadline = time.monotonic() + _FINISH_WAIT
    while found is not None and found.get("status") in _RUNNING:
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(_POLL)
        found = state.store_get(response_id)
    return found


async def get_response(state: ServerState, request: web.Request) -> web.StreamResponse:
    """``GET /v1/responses/{id}``: a stored response (JSON, or SSE with ``stream=true``)."""
    response_id = request.match_info["response_id"]
    found = state.store_get(response_id)
    if found is None:
        raise response_not_found(response_id)
    query = request.query
    if not _flag(query.get("stream"), False):
        return web.json_response(found, headers=service_headers(), dumps=dumps)
    after = query.get("starting_after")
    starting_after = -1 if after is None else _integer(after, "starting_after")
    pad = obfuscation if _flag(query.get("include_obfuscation"), True) else None
    finished = await _finished(state, response_id)
    if finished is None:
        raise response_not_found(response_id)
    events = [
        event
        for event in replay_events(finished, obfuscate=pad)
        if event["sequence_number"] > starting_after
    ]
    headers = service_headers()
    headers["Content-Type"] = "text/event-stream; charset=utf-8"
    headers["Cache-Control"] = "no-cache"
    stream = web.StreamResponse(status=200, headers=headers)
    await stream.prepare(request)
    body = "".join(f"event: {event['type']}\ndata: {dumps(event)}\n\n" for event in events)
    if state.config.sse_done:
        body += "data: [DONE]\n\n"
    state.stats.incr("events_sent", len(events))
    await stream.write(body.encode("utf-8"))
    await stream.write_eof()
    return stream


def _unique(items: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """``items`` with a repeated id made unique (``<id>_<n>``), so cursors stay unambiguous."""
    seen: Dict[str, int] = {}
    unique: List[Dict[str, Any]] = []
    for item in items:
        item_id = str(item.get("id"))
        if item_id in seen:
            seen[item_id] += 1
            unique.append(dict(item, id=f"{item_id}_{seen[item_id]}"))
        else:
            seen[item_id] = 0
            unique.append(item)
    return unique


def chain_items(state: ServerState, response_id: str) -> List[Dict[str, Any]]:
    """Inputs and outputs of the stored chain ending with ``response_id`` (oldest first).

    The walk stops at a parent that is not stored; a compaction output item
    replaces everything before it.
    """
    chain: List[Dict[str, Any]] = []
    seen = set()
    current = state.store_get(response_id)
    while current is not None and current["id"] not in seen:
        seen.add(current["id"])
        chain.append(current)
        parent_id = current.get("previous_response_id")
        current = state.store_get(str(parent_id)) if parent_id else None
    items: List[Dict[str, Any]] = []
    for response in reversed(chain):
        items.extend(state.stored_inputs(str(response["id"])))
        for output in response.get("output") or []:
            if isinstance(output, dict) and output.get("type") == "compaction":
                items = [output]
            elif isinstance(output, dict):
                items.append(output)
    return items


def _page(query: Any, items: List[Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], bool]:
    """One page of ``items`` (oldest first) for the query, and whether more follow."""
    raw_limit = query.get("limit")
    limit = 20 if raw_limit is None else _integer(raw_limit, "limit")
    if limit < 1:
        raise invalid_value(
            "limit",
            "Invalid 'limit': integer below minimum value. Expected a value >= 1, "
            f"but got {limit} instead.",
            code="integer_below_min_value",
        )
    if limit > 100:
        raise invalid_value(
            "limit",
            "Invalid 'limit': integer above maximum value. Expected a value <= 100, "
            f"but got {limit} instead.",
            code="integer_above_max_value",
        )
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid_value(
            "order",
            f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.",
        )
    ordered = items if order == "asc" else list(reversed(items))
    start = 0
    after = query.get("after")
    if after is not None:
        positions = [index for index, item in enumerate(ordered) if item.get("id") == after]
        if not positions:
            raise invalid_value(
                "after", f"Invalid 'after': no input item with id '{after}' in this response."
            )
        start = positions[0] + 1
    return ordered[start : start + limit], start + limit < len(ordered)


async def list_input_items(state: ServerState, request: web.Request) -> web.StreamResponse:
    """``GET /v1/responses/{id}/input_items`` with cursor pagination."""
    response_id = request.match_info["response_id"]
    found = state.store_get(response_id)
    if found is None:
        raise response_not_found(response_id)
    parent_id = found.get("previous_response_id")
    items = chain_items(state, str(parent_id)) if parent_id else []
    items = _unique(items + list(state.stored_inputs(response_id)))
    data, has_more = _page(request.query, items)
    body = {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
    return web.json_response(body, headers=service_headers(), dumps=dumps)


def _user_message(item: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "id": item["id"],
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": item.get("content"),
    }


async def compact_response(state: ServerState, request: web.Request) -> web.StreamResponse:
    """``POST /v1/responses/compact``: a new input window for the whole context."""
    body = await read_json(request)
    if state.config.strict_parameters:
        for key in body:
            if key not in _COMPACT_FIELDS:
                raise unknown_parameter(key)
    validate_create(body, websocket=False, strict=False)
    parent_id = body.get("previous_response_id")
    context = EMPTY_CONTEXT
    context_tokens = 0
    earlier: List[Dict[str, Any]] = []
    if parent_id is not None:
        parent = await stored_parent(state, str(parent_id))
        if parent is None:
            raise previous_response_not_found(str(parent_id))
        context = state.stored_context(str(parent_id)) or EMPTY_CONTEXT
        context_tokens = context_tokens_of(parent)
        earlier = chain_items(state, str(parent_id))
    try:
        context = fold(context, request_items(body))
    except ValueError:  # pragma: no cover - validate_create checked compaction items
        raise ApiError(400, "invalid_encrypted_content", "Bad compaction item.") from None
    kept = [
        _user_message(item)
        for item in earlier + input_record(body)
        if item.get("type") == "message" and item.get("role") == "user"
    ]
    compaction = {
        "type": "compaction",
        "id": random_id("cmp_"),
        "encrypted_content": encode_compaction(context),
    }
    input_tokens = context_tokens + input_token_count(body)
    answer = {
        "id": random_id("resp_"),
        "object": "response.compaction",
        "created_at": int(time.time()),
        "output": [*kept, compaction],
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 1,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + 1,
        },
    }
    return web.json_response(answer, headers=service_headers(), dumps=dumps)
