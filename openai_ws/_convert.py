"""The private conversion between wire dicts and the typed models.

Incoming events are dispatched by a dict lookup on their ``"type"`` to the
cattrs-generated structure function of their class; unknown types become
``UnknownEvent`` with the raw dict. Scalars are checked strictly (cattrs would
happily turn ``5`` into ``"5"``): a string must be a string, an int an int
(never a bool), a float any JSON number. Nothing from cattrs leaks out: every
failure to parse is raised as :class:`~openai_ws.errors.ProtocolError` naming
the event type and the field (a dotted path such as
``response.output[0].call_id``), chained ``from`` the cause.

The one cattrs ``Converter`` and its hooks live in :mod:`._convert_cattrs`,
imported the first time something is typed or serialised (:func:`_load`), not
with the package; this module holds only the entry points, so that importing
the session (which imports them) costs no cattrs.

This module must never do I/O, never log, and never import anything but attrs,
cattrs, the standard library and the ``openai_ws`` models and errors.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any, Callable, Dict, Optional, Tuple, Type, TypeVar, Union, cast

from .errors import ProtocolError
from .events import KNOWN_EVENT_CLASSES, ServerEvent, UnknownEvent, _wire_type_of
from .models import Response, ResponseCreateRequest

__all__ = ["parse_event", "parse_response", "structure", "structure_event", "unstructure"]

_StructureFn = Callable[[Any, Any], Any]
_T = TypeVar("_T")

_EVENT_CLASSES = frozenset(KNOWN_EVENT_CLASSES.values())

_EVENT_TABLE: Dict[str, Tuple[_StructureFn, type]] = {}
"""Wire type -> (structure function, class) of every modelled event: empty until
:func:`_load` binds the converter's table (non-empty means everything is bound)."""

_PARSE_ERRORS: Tuple[Type[BaseException], ...] = ()
"""The exceptions a malformed payload can cause while structuring (bound by :func:`_load`)."""

_lock = threading.Lock()


def _load() -> Dict[str, Tuple[_StructureFn, type]]:
    """Build the cattrs converter on first use (once, whatever the threads); return the table."""
    global _EVENT_TABLE, _PARSE_ERRORS  # noqa: PLW0603 - bound once, under _lock
    with _lock:
        if not _EVENT_TABLE:
            from . import _convert_cattrs as built

            _PARSE_ERRORS = built.PARSE_ERRORS
            _EVENT_TABLE = built.EVENT_TABLE  # last: the sign that all is bound
    return _EVENT_TABLE


def _json_kind(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _protocol_error(exc: BaseException, event_type: Optional[str], what: str) -> ProtocolError:
    """The :class:`ProtocolError` for a failure to structure (the converter is loaded)."""
    from ._convert_cattrs import protocol_error

    return protocol_error(exc, event_type, what)


# --------------------------------------------------------------------------
# Public (package-internal) API
# --------------------------------------------------------------------------


def _unknown_event(event_type: str, obj: Dict[str, Any]) -> UnknownEvent:
    sequence_number = obj.get("sequence_number")
    stream_id = obj.get("stream_id")
    return UnknownEvent(
        type=event_type,
        raw=obj,
        sequence_number=sequence_number if type(sequence_number) is int else None,
        stream_id=stream_id if isinstance(stream_id, str) else None,
    )


def structure_event(obj: Mapping[str, Any]) -> ServerEvent:
    """Turn one decoded event object into its typed event.

    Unknown ``type`` values give an :class:`UnknownEvent` holding ``obj``. Raises
    :class:`ProtocolError` when ``obj`` is not an object, has no string ``type``,
    or a known event lacks a required field or has a mistyped one.
    """
    if type(obj) is not dict:
        if not isinstance(obj, Mapping):
            raise ProtocolError(f"event is not a JSON object but {_json_kind(obj)}")
        obj = dict(obj)
    event_type = obj.get("type")
    if type(event_type) is not str:
        if event_type is None:
            raise ProtocolError("event has no 'type' field", field="type")
        raise ProtocolError(
            f"event 'type' must be a string, got {_json_kind(event_type)}", field="type"
        )
    entry = (_EVENT_TABLE or _load()).get(event_type)
    if entry is None:
        return _unknown_event(event_type, obj)
    fn, cls = entry
    try:
        return cast(ServerEvent, fn(obj, cls))
    except _PARSE_ERRORS as exc:
        raise _protocol_error(exc, event_type, f"{event_type!r} event") from exc


def parse_event(data: Union[str, bytes, bytearray, Mapping[str, Any]]) -> ServerEvent:
    """Parse one frame (JSON text or bytes) or an already-decoded object into a typed event.

    Raises :class:`ProtocolError` if the frame is not JSON, not a JSON object, or
    does not match its event type (see :func:`structure_event`).
    """
    if type(data) is str or isinstance(data, (bytes, bytearray)):
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"frame is not valid JSON: {exc}") from exc
    elif isinstance(data, Mapping):
        obj = data
    else:
        raise ProtocolError(f"cannot parse a {type(data).__name__} as an event")
    if type(obj) is not dict and not isinstance(obj, Mapping):
        raise ProtocolError(f"frame is not a JSON object but {_json_kind(obj)}")
    return structure_event(obj)


def parse_response(obj: Mapping[str, Any]) -> Response:
    """Turn a decoded Response object (HTTP body or ``event["response"]``) into a :class:`Response`.

    Raises :class:`ProtocolError` (``event_type`` None, ``field`` the failing path).
    """
    return structure(obj, Response)


def structure(obj: Mapping[str, Any], cls: Type[_T]) -> _T:
    """Turn a decoded object into the model or event class ``cls``.

    For an event class the ``"type"`` in ``obj`` is not checked (use
    :func:`structure_event` to dispatch on it). Raises :class:`ProtocolError`
    (``field`` the failing path) if ``obj`` does not fit ``cls``.
    """
    what = f"{cls.__name__} object"
    if not isinstance(obj, Mapping):
        raise ProtocolError(f"{what} is not a JSON object but {_json_kind(obj)}")
    if cls is ResponseCreateRequest:
        try:
            return cast(_T, ResponseCreateRequest.from_dict(obj))
        except (TypeError, ValueError) as exc:  # a mistyped field; a NaN or infinity
            raise ProtocolError(f"malformed {what}: {exc}") from exc
    if cls is UnknownEvent:
        event = structure_event(obj)
        if not isinstance(event, UnknownEvent):
            raise ProtocolError(f"{event.type!r} is a known event type", field="type")
        return cast(_T, event)
    table = _EVENT_TABLE or _load()
    from ._convert_cattrs import converter

    entry = table.get(_wire_type_of(cls)) if cls in _EVENT_CLASSES else None
    try:
        if entry is not None:
            return cast(_T, entry[0](obj, cls))
        return converter.structure(obj, cls)
    except _PARSE_ERRORS as exc:
        event_type = _wire_type_of(cls) if entry is not None else None
        raise _protocol_error(exc, event_type, what) from exc


def unstructure(obj: Any) -> Dict[str, Any]:
    """The wire dict of a model or event (a new, plain, JSON-ready dict)."""
    if not _EVENT_TABLE:
        _load()
    from ._convert_cattrs import converter

    result = converter.unstructure(obj)
    if not isinstance(result, dict):
        raise TypeError(f"{type(obj).__name__} is not a model")
    return result
