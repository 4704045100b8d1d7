"""What one response looks like on the wire: the ordered server events and the Response object.

Pure and deterministic: given a validated request body, its parsed ``Script``,
ids from the caller's ``new_id`` and the caller's clock value, produce the list
of ``(delay, event)`` steps of one response (docs/protocol.md section 3.3) and the
Response objects it refers to (section 3.4). Events carry neither
``sequence_number`` nor ``stream_id``: the runner numbers them as it sends.
This module must never sleep, read a clock, touch sockets or server state, or
mutate the body it is given.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from ._items import (
    Obfuscate,
    Planner,
    Step,
    compaction_item,
    count_tokens,
    function_call_item,
    message_item,
    reasoning_item,
    tokenize,
)
from ._script import Script

__all__ = [
    "Scenario",
    "Step",
    "build_response",
    "count_tokens",
    "fit_tokens",
    "input_token_count",
    "plan_response",
    "random_id",
    "reply_text",
    "tokenize",
    "trailing_tool_outputs",
    "wants_generation",
]

_DEFAULT_REPLY = "OK"


def random_id(prefix: str) -> str:
    """A fresh id such as ``resp_<48 hex>``; the default ``new_id`` of the server."""
    return prefix + secrets.token_hex(24)


def fit_tokens(tokens: Sequence[str], count: int) -> List[str]:
    """Truncate ``tokens`` to ``count`` items, or repeat them (space-separated) up to it."""
    if count <= len(tokens):
        return list(tokens[:count])
    base = list(tokens) or [_DEFAULT_REPLY]
    if not base[-1][-1:].isspace():
        base[-1] = base[-1] + " "
    repeats = count // len(base) + 1
    return (base * repeats)[:count]


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: List[str] = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "".join(texts)
    return ""


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    return _content_text(output)


def trailing_tool_outputs(body: Mapping[str, Any]) -> List[str]:
    """Outputs of the ``function_call_output`` items that end the input list, in order."""
    value = body.get("input")
    outputs: List[str] = []
    if isinstance(value, list):
        for item in reversed(value):
            if not isinstance(item, dict) or item.get("type") != "function_call_output":
                break
            outputs.append(_output_text(item.get("output")))
    outputs.reverse()
    return outputs


def reply_text(body: Mapping[str, Any]) -> str:
    """The default (echo) answer: the user's last input text.

    ``input`` as a string is echoed as is. When the input list ends with
    ``function_call_output`` items the answer is ``"Tool said: <output>"`` (several
    outputs joined by ``"; "``); otherwise the last user (or role-less) message is
    echoed. Without either, ``"OK"``.
    """
    value = body.get("input")
    if isinstance(value, str):
        return value
    tool_outputs = trailing_tool_outputs(body)
    if tool_outputs:
        return "Tool said: " + "; ".join(tool_outputs)
    if isinstance(value, list):
        for item in reversed(value):
            if not isinstance(item, dict):
                continue
            item_type = item.get("type")
            if item_type == "function_call_output":
                return f"Tool said: {_output_text(item.get('output'))}"
            if item_type in (None, "message") and item.get("role", "user") == "user":
                return _content_text(item.get("content"))
    return _DEFAULT_REPLY


def input_token_count(body: Mapping[str, Any]) -> int:
    """Rough ``usage.input_tokens`` of the request itself (instructions + input items)."""
    total = 0
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        total += count_tokens(instructions)
    value = body.get("input")
    if isinstance(value, str):
        return total + count_tokens(value)
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, dict):
                continue
            item_type = item.get("type")
            if item_type in (None, "message"):
                total += count_tokens(_content_text(item.get("content")))
            elif item_type == "function_call_output":
                total += count_tokens(_output_text(item.get("output")))
            elif item_type == "function_call":
                total += count_tokens(str(item.get("arguments", ""))) + 1
            else:
                total += 1
    return total


def wants_generation(body: Mapping[str, Any]) -> bool:
    """False for a warm-up (``generate: false`` or ``prompt_cache_options.prewarm``)."""
    if body.get("generate") is False:
        return False
    options = body.get("prompt_cache_options")
    return not (isinstance(options, dict) and options.get("prewarm") is True)


def _number(value: Any, default: float) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return default


def _conversation(value: Any) -> Optional[Dict[str, Any]]:
    if isinstance(value, str):
        return {"id": value}
    if isinstance(value, dict):
        return {"id": value.get("id")}
    return None


def build_response(
    body: Mapping[str, Any],
    *,
    response_id: str,
    created_at: int,
    status: str,
    output: List[Dict[str, Any]],
    usage: Optional[Dict[str, Any]],
    error: Optional[Dict[str, Any]] = None,
    incomplete_details: Optional[Dict[str, Any]] = None,
    completed_at: Optional[int] = None,
) -> Dict[str, Any]:
    """A full Response object (every key of docs/protocol.md section 3.4) echoing ``body``."""
    reasoning = body.get("reasoning")
    text = body.get("text")
    text_config: Dict[str, Any] = dict(text) if isinstance(text, dict) else {}
    text_config.setdefault("format", {"type": "text"})
    service_tier = body.get("service_tier")
    store = body.get("store")
    parallel = body.get("parallel_tool_calls")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "completed_at": completed_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": incomplete_details,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": body.get("model"),
        "output": output,
        "parallel_tool_calls": True if parallel is None else parallel,
        "previous_response_id": body.get("previous_response_id"),
        "conversation": _conversation(body.get("conversation")),
        "reasoning": {
            "effort": reasoning.get("effort") if isinstance(reasoning, dict) else None,
            "summary": reasoning.get("summary") if isinstance(reasoning, dict) else None,
        },
        "service_tier": "default" if service_tier in (None, "auto") else service_tier,
        "store": True if store is None else store,
        "temperature": _number(body.get("temperature"), 1.0),
        "text": text_config,
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": list(body.get("tools") or []),
        "top_logprobs": body.get("top_logprobs") or 0,
        "top_p": _number(body.get("top_p"), 1.0),
        "truncation": body.get("truncation") or "disabled",
        "usage": usage,
        "user": body.get("user"),
        "safety_identifier": body.get("safety_identifier"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "metadata": dict(body.get("metadata") or {}),
    }


def _usage(input_tokens: int, cached: int, output: int, reasoning: int) -> Dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output,
    }


def _fail_message(code: str) -> str:
    if code == "server_error":
        return "The model failed to generate a response. You can retry your request."
    if code == "rate_limit_exceeded":
        return "Rate limit reached while generating the response. Please try again later."
    return f"The response failed with code '{code}' (scripted by the emulator)."


@dataclass(frozen=True)
class Scenario:
    """One planned response: its steps, its in-progress snapshot and its terminal object."""

    response_id: str
    steps: List[Step]
    initial: Dict[str, Any]
    final: Dict[str, Any]
    status: str
    """Terminal status of ``final``: ``completed``, ``incomplete`` or ``failed``."""


def plan_response(
    body: Mapping[str, Any],
    script: Script,
    *,
    response_id: str,
    created_at: int,
    new_id: Callable[[str], str] = random_id,
    ttft: float = 0.0,
    token_interval: float = 0.0,
    output_tokens: Optional[int] = None,
    context_tokens: int = 0,
    cached_tokens: int = 0,
    reply: Optional[str] = None,
    compaction: Optional[Dict[str, Any]] = None,
    obfuscate: Optional[Obfuscate] = None,
) -> Scenario:
    """Plan every event of one response to ``body``.

    ``ttft``/``token_interval``/``output_tokens`` are the effective settings (the
    script's overrides already applied by the caller or here when present).
    ``context_tokens`` is the parent chain's total usage, counted into
    ``input_tokens``; ``cached_tokens`` goes into ``input_tokens_details``.
    ``reply`` replaces the text of a text answer (the context digest; tool calls
    and refusals are unaffected). ``compaction`` is the item a request ending
    with ``compaction_trigger`` answers with, alone. ``obfuscate`` pads every
    delta event (HTTP streaming, docs/protocol.md section 6.3).
    """
    if script.ttft is not None:
        ttft = script.ttft
    if script.token_interval is not None:
        token_interval = script.token_interval
    if script.output_tokens is not None:
        output_tokens = script.output_tokens
    input_tokens = input_token_count(body) + context_tokens
    initial = build_response(
        body,
        response_id=response_id,
        created_at=created_at,
        status="in_progress",
        output=[],
        usage=None,
    )
    budget = body.get("max_output_tokens")
    plan = Planner(budget if isinstance(budget, int) else None, token_interval, obfuscate)
    plan.emit({"type": "response.created", "response": initial})
    plan.emit({"type": "response.in_progress", "response": initial})

    output: List[Dict[str, Any]] = []
    status = "completed"
    error: Optional[Dict[str, Any]] = None
    terminal = "response.completed"
    if not wants_generation(body):
        pass
    elif script.fail is not None:
        plan.pending_delay = ttft
        status = "failed"
        terminal = "response.failed"
        error = {"code": script.fail, "message": _fail_message(script.fail)}
    elif compaction is not None:
        plan.pending_delay = ttft
        output.append(compaction_item(plan, 0, compaction))
    else:
        plan.pending_delay = ttft
        include = body.get("include")
        encrypted = isinstance(include, list) and "reasoning.encrypted_content" in include
        if script.reasoning is not None:
            output.append(
                reasoning_item(plan, len(output), new_id("rs_"), script.reasoning, encrypted)
            )
        if not plan.truncated:
            # A scripted model calls its tools once: when the input ends with tool
            # outputs it answers them in text instead (so agent loops terminate).
            if script.function_calls and not trailing_tool_outputs(body):
                for spec in script.function_calls:
                    if plan.truncated:
                        break
                    call_id = spec.call_id or new_id("call_")
                    output.append(
                        function_call_item(plan, len(output), new_id("fc_"), call_id, spec)
                    )
            elif script.refusal is not None:
                output.append(
                    message_item(plan, len(output), new_id("msg_"), tokenize(script.refusal), True)
                )
            else:
                if reply is not None:
                    text = reply
                elif script.text is not None:
                    text = script.text
                else:
                    text = reply_text(body)
                tokens = tokenize(text)
                if output_tokens is not None:
                    tokens = fit_tokens(tokens, output_tokens)
                output.append(message_item(plan, len(output), new_id("msg_"), tokens, False))
        if plan.truncated:
            status = "incomplete"
            terminal = "response.incomplete"

    completed_at = created_at + math.ceil(plan.total_delay + plan.pending_delay)
    final = build_response(
        body,
        response_id=response_id,
        created_at=created_at,
        status=status,
        output=output,
        usage=_usage(input_tokens, cached_tokens, plan.used, plan.reasoning_used),
        error=error,
        incomplete_details={"reason": "max_output_tokens"} if status == "incomplete" else None,
        completed_at=completed_at if status != "failed" else None,
    )
    plan.emit({"type": terminal, "response": final})
    return Scenario(
        response_id=response_id,
        steps=plan.steps,
        initial=initial,
        final=final,
        status=status,
    )
