"""The content of a request and its answer as the GenAI semantic conventions shape it.

Pure functions over wire dicts, used by :mod:`.telemetry` only when content
capture is on (and for the finish reason, always): the request body's
``instructions`` and ``input`` become ``gen_ai.system_instructions`` and
``gen_ai.input.messages`` (``gen-ai-system-instructions.json``,
``gen-ai-input-messages.json`` of the semantic conventions), the response's
output items ``gen_ai.output.messages`` (``gen-ai-output-messages.json``: one
message, the one choice of a Responses API answer). Items the conventions have
no part for keep only their ``type``; items they have no message for (item
references, compaction) are left out.

What this module must never do: I/O, logging, or import OpenTelemetry.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Dict, List

__all__ = ["finish_reason", "input_content", "output_items", "output_messages"]

# finish reasons of gen-ai-output-messages.json for the Responses API's status.
_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


def input_content(body: Dict[str, Any]) -> Dict[str, Any]:
    """``gen_ai.system_instructions`` and ``gen_ai.input.messages`` of a request body."""
    instructions = body.get("instructions")
    system: List[Dict[str, Any]] = []
    if isinstance(instructions, str):
        system = [{"type": "text", "content": instructions}]
    elif isinstance(instructions, list):
        for message in _messages(instructions):
            system.extend(message["parts"])
    raw = body.get("input")
    if isinstance(raw, str):
        messages = [{"role": "user", "parts": [{"type": "text", "content": raw}]}]
    else:
        messages = _messages(raw if isinstance(raw, list) else [])
    return {"gen_ai.system_instructions": system, "gen_ai.input.messages": messages}


def _messages(items: List[Any]) -> List[Dict[str, Any]]:
    """Input items as semconv messages (gen-ai-input-messages.json); other items left out."""
    messages: List[Dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            role = "system" if role == "developer" else role
            parts = _parts(item.get("content"))
            if isinstance(role, str) and parts:
                messages.append({"role": role, "parts": parts})
        elif kind == "function_call":
            messages.append({"role": "assistant", "parts": [_tool_call(item)]})
        elif kind == "function_call_output":
            part = {"type": "tool_call_response", "id": item.get("call_id")}
            part["response"] = item.get("output")
            messages.append({"role": "tool", "parts": [part]})
        elif kind == "reasoning":
            messages.append({"role": "assistant", "parts": _reasoning(item)})
    return messages


def _parts(content: Any) -> List[Dict[str, Any]]:
    """A message's content as semconv parts: text as text, other parts by their type."""
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: List[Dict[str, Any]] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "content": part.get("text", "")})
        elif kind == "refusal":
            parts.append({"type": "text", "content": part.get("refusal", "")})
        elif isinstance(kind, str):
            parts.append({"type": kind})
    return parts


def _tool_call(item: Dict[str, Any]) -> Dict[str, Any]:
    """A ``function_call`` item as a ``tool_call`` part (its arguments parsed if JSON)."""
    arguments = item.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments)
    return {
        "type": "tool_call",
        "id": item.get("call_id"),
        "name": item.get("name"),
        "arguments": arguments,
    }


def _reasoning(item: Dict[str, Any]) -> List[Dict[str, Any]]:
    """A ``reasoning`` item's summary as one ``reasoning`` part."""
    summary = item.get("summary")
    texts = [s.get("text", "") for s in summary if isinstance(s, dict)] if summary else []
    return [{"type": "reasoning", "content": "".join(texts)}]


def output_items(response: Any, request: Any) -> List[Dict[str, Any]]:
    """The response's output as wire dicts (from the items collected if it came without)."""
    raw = response.raw.get("output") if isinstance(response.raw, dict) else None
    if isinstance(raw, list) and raw:
        return [item for item in raw if isinstance(item, dict)]
    collected = [event.get("item") for event in request.collected]
    return [item for item in collected if isinstance(item, dict)]


def finish_reason(response: Any, items: List[Dict[str, Any]]) -> str:
    """The semconv finish reason of a response's ``status`` and ``incomplete_details``."""
    status = response.status
    if status == "completed":
        calls = any(item.get("type") == "function_call" for item in items)
        return "tool_call" if calls else "stop"
    if status == "incomplete":
        details = response.incomplete_details
        reason = details.reason if details is not None else None
        return _INCOMPLETE_REASONS.get(reason or "", reason or "incomplete")
    if status == "failed":
        return "error"
    return status if isinstance(status, str) else "unknown"


def output_messages(items: List[Dict[str, Any]], reason: str) -> List[Dict[str, Any]]:
    """The one output message (one choice) of a response (gen-ai-output-messages.json)."""
    parts: List[Dict[str, Any]] = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            parts.extend(_parts(item.get("content")))
        elif kind == "function_call":
            parts.append(_tool_call(item))
        elif kind == "reasoning":
            parts.extend(_reasoning(item))
    if not parts:
        return []
    return [{"role": "assistant", "parts": parts, "finish_reason": reason}]
