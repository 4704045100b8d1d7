"""Proof of context: canonical items, the chained context hash, compaction contents.

With ``metadata.emulator_reply = "context_digest"`` the text answer of a
response is a digest of the whole context the server sees for it: every input
and output item of the parent chain (reachable through ``previous_response_id``,
from the connection cache or the store), then this request's input, plus this
request's ``instructions`` (never inherited, as on the service). Continuing
with ``previous_response_id`` and only the new items, or resending the whole
history as ``input``, gives the same digest when the client resends exactly
what it sent and what came back. Tests compute the expected value with
``openai_ws.emulator.context_digest(items, instructions)``.

The canonical form of one item (anything else about the item is ignored:
``id``, ``status``, ``annotations``, ``logprobs``, part types):

============================  ==============================================================
item                          canonical form
============================  ==============================================================
``message`` (or no ``type``)  ``["message", role, text]``; ``role`` defaults to ``"user"``;
                              ``text`` is a string ``content`` itself, else the concatenation
                              of each content part's ``text`` (``input_text``, ``output_text``,
                              ``text``, ...) or ``refusal`` string; other parts add nothing
``function_call``             ``["function_call", call_id, name, arguments]``
``function_call_output``      ``["function_call_output", call_id, output text]`` (a list
                              ``output`` joins its parts' ``text`` as above)
``reasoning``                 ``["reasoning", encrypted_content]`` when that is a non-empty
                              string, else ``["reasoning", joined summary texts]``
``compaction``                not an item: it *replaces* the running state and count with the
                              ones it was made from (so compacting never changes a digest)
``compaction_trigger``        nothing (a control signal)
any other ``type``            ``[type, {every other key but id, status}]``
============================  ==============================================================

A string ``input`` is one user message. The state starts as ``b""`` with count
0; each canonical item ``c`` makes ``state = sha256(state + J(c)).digest()`` and
``count += 1``, where ``J`` is ``json.dumps(c, ensure_ascii=False,
separators=(",", ":"), sort_keys=True)`` encoded as UTF-8. The reply is
``"ctx:<count>:<h>"`` with ``h`` the first 16 hex digits of
``sha256(state + J(["instructions", instructions or None]))``, for example
``ctx:5:3f9a0c1d2e4b5a69``. A compaction item's ``encrypted_content`` is
``emu-cmp:v1:`` plus the base64url JSON ``{"n": count, "s": state hex}``.

This module is pure: it must never perform I/O, hold server state, or raise
anything but ``ValueError`` (callers turn that into the service's 400).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

__all__ = [
    "COMPACTION_PREFIX",
    "EMPTY_CONTEXT",
    "Context",
    "canonical_item",
    "context_digest",
    "decode_compaction",
    "digest_reply",
    "encode_compaction",
    "ends_with_trigger",
    "fold",
    "part_text",
    "request_items",
]

COMPACTION_PREFIX = "emu-cmp:v1:"
"""How every compaction content the emulator makes begins."""

_IGNORED_KEYS = frozenset({"id", "status", "type"})


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode(
        "utf-8"
    )


@dataclass(frozen=True)
class Context:
    """The running context hash (``state``) and the number of canonical items folded in."""

    state: bytes = b""
    count: int = 0

    def add(self, canonical: Any) -> Context:
        """The context with one more canonical item."""
        return Context(hashlib.sha256(self.state + _json(canonical)).digest(), self.count + 1)


EMPTY_CONTEXT = Context()
"""The context of a request without parent and input."""


def part_text(content: Any) -> str:
    """The text of a string or of a list of content parts (``text``/``refusal`` strings)."""
    if isinstance(content, str):
        return content
    texts: List[str] = []
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            text = part.get("text")
            if not isinstance(text, str):
                text = part.get("refusal")
            if isinstance(text, str):
                texts.append(text)
    return "".join(texts)


def canonical_item(item: Mapping[str, Any]) -> Optional[List[Any]]:
    """The canonical form of one item (module docstring); None when it is no context item.

    A compaction item also answers None: :func:`fold` handles it.
    """
    item_type = item.get("type")
    if item_type in (None, "message"):
        role = item.get("role")
        text = part_text(item.get("content"))
        return ["message", role if isinstance(role, str) else "user", text]
    if item_type == "function_call":
        return ["function_call", item.get("call_id"), item.get("name"), item.get("arguments")]
    if item_type == "function_call_output":
        return ["function_call_output", item.get("call_id"), part_text(item.get("output"))]
    if item_type == "reasoning":
        encrypted = item.get("encrypted_content")
        if isinstance(encrypted, str) and encrypted:
            return ["reasoning", encrypted]
        return ["reasoning", part_text(item.get("summary"))]
    if item_type in ("compaction", "compaction_trigger"):
        return None
    rest = {key: value for key, value in item.items() if key not in _IGNORED_KEYS}
    return [item_type, rest]


def encode_compaction(context: Context) -> str:
    """The opaque ``encrypted_content`` of a compaction item standing for ``context``."""
    payload = _json({"n": context.count, "s": context.state.hex()})
    return COMPACTION_PREFIX + base64.urlsafe_b64encode(payload).decode("ascii")


def decode_compaction(content: Any) -> Context:
    """The context a compaction content stands for; ``ValueError`` unless the emulator made it."""
    if not isinstance(content, str) or not content.startswith(COMPACTION_PREFIX):
        raise ValueError("not a compaction content made by this server")
    try:
        raw = base64.urlsafe_b64decode(content[len(COMPACTION_PREFIX) :].encode("ascii"))
        decoded = json.loads(raw.decode("utf-8"))
        count, state = decoded["n"], bytes.fromhex(decoded["s"])
    except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error):
        raise ValueError("the compaction content is damaged") from None
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError("the compaction content is damaged")
    if len(state) not in (0, 32) or (len(state) == 0) != (count == 0):
        raise ValueError("the compaction content is damaged")
    return Context(state, count)


def fold(context: Context, items: Iterable[Any]) -> Context:
    """``context`` followed by ``items`` (non-dict entries are skipped).

    A compaction item replaces the running context with the one it encodes;
    ``ValueError`` when its content was not made by the emulator.
    """
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "compaction":
            context = decode_compaction(item.get("encrypted_content"))
            continue
        canonical = canonical_item(item)
        if canonical is not None:
            context = context.add(canonical)
    return context


def request_items(body: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The request's ``input`` as a list of item dicts (a string is one user message)."""
    value = body.get("input")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


def ends_with_trigger(body: Mapping[str, Any]) -> bool:
    """Whether the input list ends with a ``compaction_trigger`` item."""
    value = body.get("input")
    return (
        isinstance(value, list)
        and bool(value)
        and isinstance(value[-1], dict)
        and value[-1].get("type") == "compaction_trigger"
    )


def digest_reply(context: Context, instructions: Any) -> str:
    """``ctx:<count>:<16 hex>`` for ``context`` and this request's ``instructions``."""
    text = instructions if isinstance(instructions, str) and instructions else None
    final = hashlib.sha256(context.state + _json(["instructions", text])).hexdigest()
    return f"ctx:{context.count}:{final[:16]}"


def context_digest(
    items: Union[str, Sequence[Mapping[str, Any]]], instructions: Optional[str] = None
) -> str:
    """The reply a ``context_digest`` request whose whole context is ``items`` gets.

    ``items`` is the whole history as plain item dicts (what was sent, what
    came back, then the new input) or a string (one user message).
    """
    listed = request_items({"input": items if isinstance(items, str) else list(items)})
    return digest_reply(fold(EMPTY_CONTEXT, listed), instructions)
