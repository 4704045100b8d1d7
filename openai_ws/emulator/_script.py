"""Per-request scripting: parse the ``emulator_*`` keys of a request's ``metadata``.

Tests drive answers and faults through the real protocol by putting string
values under ``metadata`` (the table is in the package docstring). This module
turns those strings into a typed, frozen ``Script`` or raises a 400 ``ApiError``
naming ``metadata.<key>``. It is pure: it must never perform I/O, never touch
server state and never decide *when* a fault fires (the runner does).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from ._errors import ApiError, invalid_value

__all__ = ["REPLY_MODES", "SCRIPT_KEYS", "FunctionCallSpec", "Script", "parse_script"]


@dataclass(frozen=True)
class FunctionCallSpec:
    """One scripted function call: tool name, JSON arguments text, optional call id."""

    name: str
    arguments: str
    call_id: Optional[str] = None


@dataclass(frozen=True)
class Script:
    """Everything the ``emulator_*`` metadata keys of one request ask for."""

    text: Optional[str] = None
    reply: Optional[str] = None
    """``"context_digest"``: the text answer is the digest of the context (``_context``)."""
    output_tokens: Optional[int] = None
    ttft: Optional[float] = None
    token_interval: Optional[float] = None
    refusal: Optional[str] = None
    function_calls: Optional[Tuple[FunctionCallSpec, ...]] = None
    reasoning: Optional[str] = None
    error: Optional[str] = None
    retry_after: float = 0.05
    error_times: Optional[int] = None
    fail: Optional[str] = None
    error_after: Optional[int] = None
    close_code: Optional[int] = None
    close_after: int = 0
    close_times: Optional[int] = None
    malformed_after: Optional[int] = None
    binary_after: Optional[int] = None
    unknown_after: Optional[int] = None
    steer_fail: Optional[str] = None
    """A steer failure code: every ``response.steer`` of this response fails with it, except
    ``successor_creation_failed``, which is accepted and fails at the commit point."""

    def error_applies(self, attempt: int) -> bool:
        """Whether ``emulator_error`` fires on this (1-based) attempt."""
        return self.error is not None and (self.error_times is None or attempt <= self.error_times)

    def close_applies(self, attempt: int) -> bool:
        """Whether ``emulator_close_code`` fires on this (1-based) attempt."""
        return self.close_code is not None and (
            self.close_times is None or attempt <= self.close_times
        )


# Close codes a server may put in a close frame (RFC 6455 section 7.4), plus 1006
# which the emulator implements as an abrupt TCP drop without a close frame.
_SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})
_EXTRA_CLOSE_CODES = frozenset({1012, 1013, 1014})


def _bad(key: str, expected: str, raw: str) -> ApiError:
    return invalid_value(
        f"metadata.{key}",
        f"Invalid value for 'metadata.{key}': expected {expected}, got {raw!r}.",
    )


def _int(key: str, raw: str, *, minimum: int = 0) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise _bad(key, "an integer", raw) from None
    if value < minimum:
        raise _bad(key, f"an integer >= {minimum}", raw)
    return value


def _seconds(key: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise _bad(key, "a number of seconds", raw) from None
    if not math.isfinite(value) or value < 0:
        raise _bad(key, "a finite number of seconds >= 0", raw)
    return value


def _text(_key: str, raw: str) -> str:
    return raw


def _code(key: str, raw: str) -> str:
    if not raw.strip():
        raise _bad(key, "a non-empty error code", raw)
    return raw.strip()


def _close_code(key: str, raw: str) -> int:
    value = _int(key, raw, minimum=1000)
    allowed = (
        value in _SENDABLE_CLOSE_CODES
        or value in _EXTRA_CLOSE_CODES
        or value == 1006
        or 3000 <= value <= 4999
    )
    if not allowed:
        raise _bad(key, "a close code a server can send (or 1006 for a TCP drop)", raw)
    return value


def _one_call(key: str, raw: str, spec: Any) -> FunctionCallSpec:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise _bad(key, 'an object {"name": ..., "arguments": ...}', raw)
    arguments = spec.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)
    call_id = spec.get("call_id")
    if call_id is not None and not isinstance(call_id, str):
        raise _bad(key, "a string call_id", raw)
    return FunctionCallSpec(name=spec["name"], arguments=arguments, call_id=call_id)


def _function_calls(key: str, raw: str) -> Tuple[FunctionCallSpec, ...]:
    try:
        decoded = json.loads(raw)
    except ValueError:
        raise _bad(key, "JSON", raw) from None
    specs = decoded if isinstance(decoded, list) else [decoded]
    if not specs:
        raise _bad(key, "at least one function call", raw)
    return tuple(_one_call(key, raw, spec) for spec in specs)


REPLY_MODES = ("echo", "context_digest")
"""Values of ``metadata.emulator_reply``."""


def _reply_mode(key: str, raw: str) -> Optional[str]:
    mode = raw.strip()
    if mode not in REPLY_MODES:
        raise _bad(key, " or ".join(repr(m) for m in REPLY_MODES), raw)
    return None if mode == "echo" else mode


def _nonnegative_int(key: str, raw: str) -> int:
    return _int(key, raw, minimum=0)


# metadata key -> (Script field, parser)
_PARSERS: Dict[str, Tuple[str, Callable[[str, str], Any]]] = {
    "emulator_text": ("text", _text),
    "emulator_reply": ("reply", _reply_mode),
    "emulator_output_tokens": ("output_tokens", _nonnegative_int),
    "emulator_ttft": ("ttft", _seconds),
    "emulator_token_interval": ("token_interval", _seconds),
    "emulator_refusal": ("refusal", _text),
    "emulator_function_call": ("function_calls", _function_calls),
    "emulator_reasoning": ("reasoning", _text),
    "emulator_error": ("error", _code),
    "emulator_retry_after": ("retry_after", _seconds),
    "emulator_error_times": ("error_times", _nonnegative_int),
    "emulator_fail": ("fail", _code),
    "emulator_error_after": ("error_after", _nonnegative_int),
    "emulator_close_code": ("close_code", _close_code),
    "emulator_close_after": ("close_after", _nonnegative_int),
    "emulator_close_times": ("close_times", _nonnegative_int),
    "emulator_malformed_after": ("malformed_after", _nonnegative_int),
    "emulator_binary_after": ("binary_after", _nonnegative_int),
    "emulator_unknown_after": ("unknown_after", _nonnegative_int),
    "emulator_steer_fail": ("steer_fail", _code),
}

SCRIPT_KEYS = tuple(_PARSERS)
"""Every metadata key the emulator understands."""

_EMPTY = Script()


def parse_script(metadata: Optional[Mapping[str, Any]]) -> Script:
    """Parse the ``emulator_*`` keys of ``metadata`` (already checked to be strings).

    Other keys are ignored; an unknown ``emulator_*`` key is an error so that a
    typo in a test fails loudly instead of silently doing nothing.
    """
    if not metadata:
        return _EMPTY
    values: Dict[str, Any] = {}
    for key, raw in metadata.items():
        if not key.startswith("emulator_"):
            continue
        entry = _PARSERS.get(key)
        if entry is None:
            raise invalid_value(
                f"metadata.{key}",
                f"Unknown emulator scripting key 'metadata.{key}'. Known keys: "
                f"{', '.join(SCRIPT_KEYS)}.",
            )
        field, parser = entry
        values[field] = parser(key, str(raw))
    if not values:
        return _EMPTY
    return Script(**values)
