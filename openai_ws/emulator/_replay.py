"""The events of a stored response, rebuilt for ``GET /v1/responses/{id}?stream=true``.

The store keeps Response objects, not their events (a long benchmark would
otherwise keep every delta alive). A replay rebuilds the event sequence of
docs/protocol.md section 3.3 from the final object: ``response.created`` and
``response.in_progress`` with the in-progress snapshot, each output item with
its stored id and text cut into deltas the same way the live stream cut them,
its ``output_item.done`` carrying the stored item itself, then the terminal
event with the stored response; numbered from 0 and without ``stream_id``.
Pure: this module must never perform I/O, mutate the stored object, or draw
random numbers itself (the caller's ``obfuscate`` does).
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping, Optional

from ._context import part_text
from ._items import (
    Obfuscate,
    Planner,
    function_call_item,
    message_item,
    plain_item,
    reasoning_item,
    tokenize,
)
from ._script import FunctionCallSpec

__all__ = ["TERMINAL_BY_STATUS", "replay_events"]

TERMINAL_BY_STATUS = {
    "completed": "response.completed",
    "incomplete": "response.incomplete",
    "failed": "response.failed",
    "cancelled": "response.failed",
}
"""The terminal event type of a finished response, by its ``status``."""


def _snapshot(response: Mapping[str, Any]) -> Dict[str, Any]:
    """The in-progress Response object that ``response.created`` carried."""
    snapshot = dict(response)
    snapshot.update(
        status="in_progress",
        output=[],
        usage=None,
        completed_at=None,
        error=None,
        incomplete_details=None,
    )
    return snapshot


def _replay_item(plan: Planner, index: int, item: Dict[str, Any]) -> None:
    item_type = item.get("type")
    item_id = str(item.get("id") or "")
    if item_type == "message":
        content = item.get("content") or []
        part = content[0] if content and isinstance(content[0], dict) else {}
        refusal = part.get("type") == "refusal"
        text = part.get("refusal" if refusal else "text")
        message_item(plan, index, item_id, tokenize(text if isinstance(text, str) else ""), refusal)
    elif item_type == "function_call":
        spec = FunctionCallSpec(
            name=str(item.get("name") or ""), arguments=str(item.get("arguments") or "")
        )
        function_call_item(plan, index, item_id, str(item.get("call_id") or ""), spec)
    elif item_type == "reasoning":
        reasoning_item(plan, index, item_id, part_text(item.get("summary")), False)
    else:
        plain_item(plan, index, copy.deepcopy(item))
    # The done event carries the stored item itself (status, encrypted content...).
    plan.steps[-1][1]["item"] = copy.deepcopy(item)


def replay_events(
    response: Mapping[str, Any], *, obfuscate: Optional[Obfuscate] = None
) -> List[Dict[str, Any]]:
    """Every event of the finished ``response``, numbered from 0.

    ``obfuscate`` pads the delta events as on a live HTTP stream.
    """
    plan = Planner(None, 0.0, obfuscate)
    snapshot = _snapshot(response)
    plan.emit({"type": "response.created", "response": snapshot})
    plan.emit({"type": "response.in_progress", "response": snapshot})
    output = response.get("output")
    for index, item in enumerate(output if isinstance(output, list) else []):
        if isinstance(item, dict):
            _replay_item(plan, index, item)
    terminal = TERMINAL_BY_STATUS.get(str(response.get("status")), "response.completed")
    plan.emit({"type": terminal, "response": response})
    events = [event for _, event in plan.steps]
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events
