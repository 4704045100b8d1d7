"""Validation of ``response.create`` bodies, shared by the WebSocket and HTTP paths.

Pure functions: given a decoded JSON body, either return normally or raise an
``ApiError`` (400, ``invalid_request_error``) naming the offending ``param``, as
the service does. Also the one place that knows which numbers trip the
decimal-sampling quirk. This module must never perform I/O, never mutate the
body it checks, and never know about lanes, caches or sockets.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from ._context import decode_compaction
from ._errors import (
    invalid_compaction,
    invalid_type,
    invalid_value,
    missing_parameter,
    mutually_exclusive,
    trigger_not_last,
    unknown_parameter,
)

__all__ = [
    "has_decimal_sampling",
    "validate_create",
]

# kind name -> (expected wording, accepted python types). bool is excluded from
# numbers explicitly below because it subclasses int.
_KINDS: Dict[str, Tuple[str, Tuple[type, ...]]] = {
    "string": ("a string", (str,)),
    "boolean": ("a boolean", (bool,)),
    "integer": ("an integer", (int,)),
    "number": ("a decimal", (int, float)),
    "object": ("an object", (dict,)),
    "array": ("an array", (list,)),
    "string_or_array": ("one of a string or array of input items", (str, list)),
    "string_or_object": ("one of a string or object", (str, dict)),
    "any": ("any value", (object,)),
}

# Body parameters common to both transports (docs/protocol.md section 2.1).
_COMMON_FIELDS: Dict[str, str] = {
    "model": "string",
    "input": "string_or_array",
    "instructions": "string",
    "previous_response_id": "string",
    "conversation": "string_or_object",
    "store": "boolean",
    "tools": "array",
    "tool_choice": "string_or_object",
    "parallel_tool_calls": "boolean",
    "max_output_tokens": "integer",
    "max_tool_calls": "integer",
    "temperature": "number",
    "top_p": "number",
    "top_logprobs": "integer",
    "truncation": "string",
    "reasoning": "object",
    "text": "object",
    "include": "array",
    "metadata": "object",
    "prompt": "object",
    "prompt_cache_key": "string",
    "prompt_cache_options": "object",
    "prompt_cache_retention": "string",
    "safety_identifier": "string",
    "user": "string",
    "service_tier": "string",
    "context_management": "array",
    "moderation": "any",
    "image": "any",
    "access_programs": "any",
    "generate": "boolean",
    "stream": "boolean",
    "stream_options": "object",
    "background": "boolean",
}

_WS_ONLY_FIELDS: Dict[str, str] = {"stream_id": "string"}

# (param, minimum, maximum) for numeric ranges; None means unbounded. The service
# requires max_output_tokens >= 16; the emulator accepts >= 1 so tests can truncate
# short answers.
_RANGES: Tuple[Tuple[str, Optional[float], Optional[float]], ...] = (
    ("temperature", 0, 2),
    ("top_p", 0, 1),
    ("max_output_tokens", 1, None),
    ("max_tool_calls", 1, None),
    ("top_logprobs", 0, 20),
)


def _is_kind(value: object, kind: str) -> bool:
    if kind == "any":
        return True
    types = _KINDS[kind][1]
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    return isinstance(value, types)


def _check_range(param: str, value: Any, low: Optional[float], high: Optional[float]) -> None:
    noun = "integer" if isinstance(value, int) else "decimal"
    if low is not None and value < low:
        raise invalid_value(
            param,
            f"Invalid '{param}': {noun} below minimum value. Expected a value >= {low:g}, "
            f"but got {value} instead.",
            code=f"{noun}_below_min_value",
        )
    if high is not None and value > high:
        raise invalid_value(
            param,
            f"Invalid '{param}': {noun} above maximum value. Expected a value <= {high:g}, "
            f"but got {value} instead.",
            code=f"{noun}_above_max_value",
        )


def _check_input(items: List[Any]) -> None:
    for index, item in enumerate(items):
        param = f"input[{index}]"
        if not isinstance(item, dict):
            raise invalid_type(param, "an object", item)
        item_type = item.get("type")
        if item_type is not None and not isinstance(item_type, str):
            raise invalid_type(f"{param}.type", "a string", item_type)
        if item_type in (None, "message"):
            content = item.get("content")
            if content is not None and not isinstance(content, (str, list)):
                raise invalid_type(f"{param}.content", "one of a string or array", content)
            if isinstance(content, list):
                for part_index, part in enumerate(content):
                    if not isinstance(part, dict):
                        raise invalid_type(f"{param}.content[{part_index}]", "an object", part)
        elif item_type == "compaction_trigger":
            # docs/protocol.md section 10: no id, and only as the final input item.
            if "id" in item:
                raise unknown_parameter(f"{param}.id")
            if index != len(items) - 1:
                raise trigger_not_last()
        elif item_type == "compaction":
            try:
                decode_compaction(item.get("encrypted_content"))
            except ValueError:
                raise invalid_compaction(f"{param}.encrypted_content") from None


def validate_create(body: Mapping[str, Any], *, websocket: bool, strict: bool) -> None:
    """Raise ``ApiError`` when ``body`` is not an acceptable create request.

    ``body`` excludes the WebSocket envelope's ``type``. With ``strict`` an
    unknown parameter is rejected (over HTTP, ``stream_id`` and ``type`` are
    unknown); without it unknown parameters are ignored.
    """
    for key in body:
        known = key in _COMMON_FIELDS or (websocket and key in _WS_ONLY_FIELDS)
        if not known and strict:
            raise unknown_parameter(key)
    if "model" not in body:
        raise missing_parameter("model")
    for key, value in body.items():
        kind = _COMMON_FIELDS.get(key) or (_WS_ONLY_FIELDS.get(key) if websocket else None)
        if kind is None:
            continue
        if value is None and key != "model":
            continue
        if not _is_kind(value, kind):
            raise invalid_type(key, _KINDS[kind][0], value)
    for param, low, high in _RANGES:
        value = body.get(param)
        if value is not None:
            _check_range(param, value, low, high)
    if body.get("previous_response_id") is not None and body.get("conversation") is not None:
        raise mutually_exclusive("previous_response_id", "conversation")
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        for key, value in metadata.items():
            if not isinstance(value, str):
                raise invalid_type(f"metadata.{key}", "a string", value)
    include = body.get("include")
    if isinstance(include, list):
        for index, entry in enumerate(include):
            if not isinstance(entry, str):
                raise invalid_type(f"include[{index}]", "a string", entry)
    tools = body.get("tools")
    if isinstance(tools, list):
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise invalid_type(f"tools[{index}]", "an object", tool)
    input_value = body.get("input")
    if isinstance(input_value, list):
        _check_input(input_value)


def has_decimal_sampling(body: Mapping[str, Any], rule: str = "non_integer") -> bool:
    """True when ``temperature`` or ``top_p`` counts as a decimal under ``rule``.

    ``"non_integer"``: a number with a fractional part (``1`` and ``1.0`` pass).
    ``"any_fraction"``: any JSON number written with a fraction or exponent, that
    is a ``float`` after ``json.loads`` (``1.0`` and ``1e0`` trip; only integers
    pass). docs/protocol.md sections 7 (item 1), 9.6 and 10. Strings are left to
    ``validate_create`` (a proper ``invalid_type`` error, as observed on the service).
    """
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if isinstance(value, float) and (rule == "any_fraction" or not value.is_integer()):
            return True
    return False
