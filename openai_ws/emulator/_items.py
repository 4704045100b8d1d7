"""The event sequences of single output items, shared by live responses and replays.

A ``Planner`` collects ``(delay, event)`` steps, spends the output-token budget,
spaces deltas by the token interval and, when given an ``obfuscate`` function,
adds the ``obfuscation`` padding string to every delta event (docs/protocol.md
section 6.3). The item functions emit the events of one ``message``,
``function_call``, ``reasoning`` or ``compaction`` item (section 3.3) and return
the finished item. Pure: this module must never sleep, read a clock, draw
random numbers itself (the caller's ``obfuscate`` does), touch sockets or
server state.
"""

from __future__ import annotations

import base64
import math
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ._script import FunctionCallSpec

__all__ = [
    "Obfuscate",
    "Planner",
    "Step",
    "chunks",
    "compaction_item",
    "count_tokens",
    "function_call_item",
    "message_item",
    "plain_item",
    "reasoning_item",
    "tokenize",
]

Step = Tuple[float, Dict[str, Any]]
"""``(seconds to wait before sending, event without sequence_number/stream_id)``."""

Obfuscate = Callable[[str], str]
"""Given a delta's text, the ``obfuscation`` padding string to send with it."""

_TOKEN_RE = re.compile(r"\s*\S+\s*|\s+")


def tokenize(text: str) -> List[str]:
    """Split ``text`` into word tokens whose concatenation is exactly ``text``.

    Each token is a run of non-space characters with its trailing whitespace; the
    first token also keeps any leading whitespace.
    """
    return _TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """Rough token count used for ``usage``: the number of ``tokenize`` tokens."""
    return len(_TOKEN_RE.findall(text))


def chunks(text: str, parts: int = 3) -> List[str]:
    """``text`` cut into at most ``parts`` pieces (the argument deltas of a function call)."""
    if not text:
        return []
    size = max(1, math.ceil(len(text) / parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


class Planner:
    """Accumulates steps, spends the output-token budget and places the delays."""

    def __init__(
        self,
        budget: Optional[int],
        token_interval: float,
        obfuscate: Optional[Obfuscate] = None,
    ) -> None:
        self.obfuscate = obfuscate
        self.steps: List[Step] = []
        self.budget = budget
        self.used = 0
        self.reasoning_used = 0
        self.truncated = False
        self.pending_delay = 0.0
        self.token_interval = token_interval
        self.deltas = 0
        self.total_delay = 0.0

    def emit(self, event: Dict[str, Any]) -> None:
        """Append ``event`` after the delay accumulated so far."""
        delay = self.pending_delay
        self.pending_delay = 0.0
        self.total_delay += delay
        self.steps.append((delay, event))

    def spend(self) -> bool:
        """Take one output token from the budget; False (and truncated) when exhausted."""
        if self.budget is not None and self.used >= self.budget:
            self.truncated = True
            return False
        self.used += 1
        return True

    def delta(self, event: Dict[str, Any]) -> None:
        """Emit a delta event: spaced by the token interval, padded when obfuscating."""
        if self.obfuscate is not None:
            event["obfuscation"] = self.obfuscate(str(event.get("delta", "")))
        if self.deltas:
            self.pending_delay += self.token_interval
        self.deltas += 1
        self.emit(event)


def message_item(
    plan: Planner, output_index: int, item_id: str, tokens: Sequence[str], refusal: bool
) -> Dict[str, Any]:
    """A ``message`` item (text or refusal): added, part added, deltas, done events."""
    plan.emit(
        {
            "type": "response.output_item.added",
            "output_index": output_index,
            "item": {
                "id": item_id,
                "type": "message",
                "status": "in_progress",
                "content": [],
                "role": "assistant",
            },
        }
    )
    empty_part: Dict[str, Any] = (
        {"type": "refusal", "refusal": ""}
        if refusal
        else {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    )
    plan.emit(
        {
            "type": "response.content_part.added",
            "item_id": item_id,
            "output_index": output_index,
            "content_index": 0,
            "part": empty_part,
        }
    )
    sent: List[str] = []
    delta_type = "response.refusal.delta" if refusal else "response.output_text.delta"
    for token in tokens:
        if not plan.spend():
            break
        event: Dict[str, Any] = {
            "type": delta_type,
            "item_id": item_id,
            "output_index": output_index,
            "content_index": 0,
            "delta": token,
        }
        if not refusal:
            event["logprobs"] = []
        plan.delta(event)
        sent.append(token)
    text = "".join(sent)
    part: Dict[str, Any]
    if refusal:
        plan.emit(
            {
                "type": "response.refusal.done",
                "item_id": item_id,
                "output_index": output_index,
                "content_index": 0,
                "refusal": text,
            }
        )
        part = {"type": "refusal", "refusal": text}
    else:
        plan.emit(
            {
                "type": "response.output_text.done",
                "item_id": item_id,
                "output_index": output_index,
                "content_index": 0,
                "text": text,
                "logprobs": [],
            }
        )
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    plan.emit(
        {
            "type": "response.content_part.done",
            "item_id": item_id,
            "output_index": output_index,
            "content_index": 0,
            "part": part,
        }
    )
    item = {
        "id": item_id,
        "type": "message",
        "status": "incomplete" if plan.truncated else "completed",
        "content": [part],
        "role": "assistant",
    }
    plan.emit({"type": "response.output_item.done", "output_index": output_index, "item": item})
    return item


def function_call_item(
    plan: Planner, output_index: int, item_id: str, call_id: str, spec: FunctionCallSpec
) -> Dict[str, Any]:
    """A ``function_call`` item whose JSON arguments stream in a few deltas."""
    plan.emit(
        {
            "type": "response.output_item.added",
            "output_index": output_index,
            "item": {
                "id": item_id,
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": call_id,
                "name": spec.name,
            },
        }
    )
    sent: List[str] = []
    for chunk in chunks(spec.arguments):
        if not plan.spend():
            break
        plan.delta(
            {
                "type": "response.function_call_arguments.delta",
                "item_id": item_id,
                "output_index": output_index,
                "delta": chunk,
            }
        )
        sent.append(chunk)
    arguments = "".join(sent)
    plan.emit(
        {
            "type": "response.function_call_arguments.done",
            "item_id": item_id,
            "output_index": output_index,
            "arguments": arguments,
            "name": spec.name,
        }
    )
    item = {
        "id": item_id,
        "type": "function_call",
        "status": "incomplete" if plan.truncated else "completed",
        "arguments": arguments,
        "call_id": call_id,
        "name": spec.name,
    }
    plan.emit({"type": "response.output_item.done", "output_index": output_index, "item": item})
    return item


def reasoning_item(
    plan: Planner, output_index: int, item_id: str, summary: str, encrypted: bool
) -> Dict[str, Any]:
    """A ``reasoning`` item with one summary part (``encrypted_content`` on request)."""
    plan.emit(
        {
            "type": "response.output_item.added",
            "output_index": output_index,
            "item": {"id": item_id, "type": "reasoning", "summary": []},
        }
    )
    plan.emit(
        {
            "type": "response.reasoning_summary_part.added",
            "item_id": item_id,
            "output_index": output_index,
            "summary_index": 0,
            "part": {"type": "summary_text", "text": ""},
        }
    )
    sent: List[str] = []
    for token in tokenize(summary):
        if not plan.spend():
            break
        plan.reasoning_used += 1
        plan.delta(
            {
                "type": "response.reasoning_summary_text.delta",
                "item_id": item_id,
                "output_index": output_index,
                "summary_index": 0,
                "delta": token,
            }
        )
        sent.append(token)
    text = "".join(sent)
    plan.emit(
        {
            "type": "response.reasoning_summary_text.done",
            "item_id": item_id,
            "output_index": output_index,
            "summary_index": 0,
            "text": text,
        }
    )
    part = {"type": "summary_text", "text": text}
    plan.emit(
        {
            "type": "response.reasoning_summary_part.done",
            "item_id": item_id,
            "output_index": output_index,
            "summary_index": 0,
            "part": part,
        }
    )
    item: Dict[str, Any] = {
        "id": item_id,
        "type": "reasoning",
        "summary": [part],
        "status": "incomplete" if plan.truncated else "completed",
    }
    if encrypted:
        item["encrypted_content"] = base64.b64encode(
            f"emulator-reasoning:{item_id}:{text}".encode()
        ).decode("ascii")
    plan.emit({"type": "response.output_item.done", "output_index": output_index, "item": item})
    return item


def compaction_item(plan: Planner, output_index: int, item: Dict[str, Any]) -> Dict[str, Any]:
    """The ``compaction`` output item: ``output_item.added`` then ``.done``, no deltas.

    Both events carry the whole item (its opaque content is known at once);
    it costs one output token (docs/protocol.md section 10).
    """
    plan.spend()
    plan.emit({"type": "response.output_item.added", "output_index": output_index, "item": item})
    plan.emit({"type": "response.output_item.done", "output_index": output_index, "item": item})
    return item


def plain_item(plan: Planner, output_index: int, item: Dict[str, Any]) -> Dict[str, Any]:
    """Any other stored item, replayed as ``output_item.added`` then ``.done``."""
    plan.emit({"type": "response.output_item.added", "output_index": output_index, "item": item})
    plan.emit({"type": "response.output_item.done", "output_index": output_index, "item": item})
    return item
