"""The cattrs converter behind :mod:`openai_ws._convert`, built when it is first needed.

Importing this module imports cattrs, registers the strict scalar hooks and a
structure hook per class, and fills :data:`EVENT_TABLE`; the generated
functions themselves are compiled on first use of each class. It is imported
by :func:`openai_ws._convert._load` the first time an event, a response or a
model is typed or serialised (under that module's lock), never with the
package: cattrs and this setup cost about as much to import as all of
``openai_ws`` does without them.

Scalars are checked strictly (cattrs would happily turn ``5`` into ``"5"``):
a string must be a string, an int an int (never a bool), a float any JSON
number. Failures are turned into :class:`~openai_ws.errors.ProtocolError` by
:func:`protocol_error`, naming the field (a dotted path such as
``response.output[0].call_id``).

This module must never do I/O, never log, and never import anything but attrs,
cattrs, the standard library and the ``openai_ws`` models, events, errors and
:mod:`openai_ws._convert`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Optional,
    Tuple,
    Type,
    Union,
    cast,
    get_args,
    get_origin,
)

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    BaseValidationError,
    IterableValidationNote,
    StructureHandlerNotFoundError,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._convert import _json_kind
from .errors import ProtocolError
from .events import (
    KNOWN_EVENT_CLASSES,
    ErrorEvent,
    ErrorPayload,
    SteerInfo,
    UnknownEvent,
    _wire_type_of,
)
from .models import (
    ContentPart,
    FunctionCall,
    FunctionCallOutput,
    IncompleteDetails,
    InputMessage,
    InputTokensDetails,
    OutputItem,
    OutputMessage,
    OutputRefusal,
    OutputText,
    OutputTokensDetails,
    ReasoningItem,
    ReasoningText,
    Response,
    ResponseCreateRequest,
    ResponseErrorInfo,
    SummaryText,
    UnknownContent,
    UnknownOutputItem,
    Usage,
)

__all__ = ["EVENT_TABLE", "PARSE_ERRORS", "converter", "protocol_error"]

_StructureFn = Callable[[Any, Any], Any]

# Exceptions a malformed payload can cause while structuring; all become ProtocolError.
PARSE_ERRORS = (
    BaseValidationError,
    StructureHandlerNotFoundError,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    RecursionError,
)

converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)


# --------------------------------------------------------------------------
# Strict scalar and JSON-passthrough hooks
# --------------------------------------------------------------------------


class _FieldError(ValueError):
    """A problem with one named field, raised by the hand-written hooks below."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class _ItemError(ValueError):
    """Item ``index`` of an array failed; the cause is chained as ``error``."""

    def __init__(self, index: int, error: BaseException) -> None:
        super().__init__(f"[{index}]: {error}")
        self.index = index
        self.error = error


def _is_list(tp: Any) -> bool:
    return get_origin(tp) is list


def _make_list_hook(tp: Any) -> _StructureFn:
    """Structure ``List[X]`` from a JSON array only (cattrs would accept any iterable)."""
    (element,) = get_args(tp)
    resolved: List[_StructureFn] = []

    def element_hook() -> _StructureFn:
        # Resolved on first use, when every hook is registered. cattrs < 24.1 has
        # no get_structure_hook: there, go through structure() (one dispatch per item).
        if not resolved:
            get_hook = getattr(converter, "get_structure_hook", None)
            resolved.append(get_hook(element) if get_hook else converter.structure)
        return resolved[0]

    def hook(value: Any, _: Any) -> List[Any]:
        if type(value) is not list:
            raise TypeError(f"expected an array, got {_json_kind(value)}")
        structure_item = element_hook()
        result = []
        for index, item in enumerate(value):
            try:
                result.append(structure_item(item, element))
            except PARSE_ERRORS as exc:
                raise _ItemError(index, exc) from exc
        return result

    return hook


def _structure_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {_json_kind(value)}")


def _structure_int(value: Any, _: Any) -> int:
    if type(value) is int:
        return value
    raise TypeError(f"expected an integer, got {_json_kind(value)}")


def _structure_float(value: Any, _: Any) -> float:
    # JSON has one number type: 1 and 1.0 are both valid floats. Kept as sent.
    if type(value) is float or type(value) is int:
        return value
    raise TypeError(f"expected a number, got {_json_kind(value)}")


def _structure_bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"expected a boolean, got {_json_kind(value)}")


def _structure_object(value: Any, _: Any) -> Dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise TypeError(f"expected an object, got {_json_kind(value)}")


def _structure_object_list(value: Any, _: Any) -> List[Dict[str, Any]]:
    if not isinstance(value, list):
        raise TypeError(f"expected an array, got {_json_kind(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise TypeError(f"expected an array of objects, item {index} is {_json_kind(item)}")
    return value


def _structure_str_dict(value: Any, _: Any) -> Dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {_json_kind(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise TypeError(f"expected string values, {key!r} is {_json_kind(item)}")
    return value


_JSON_LEAVES: Dict[Any, Tuple[type, ...]] = {
    str: (str,),
    type(None): (type(None),),
    Dict[str, Any]: (dict,),
    List[Dict[str, Any]]: (list,),
}


def _is_json_union(tp: Any) -> bool:
    return get_origin(tp) is Union and all(arg in _JSON_LEAVES for arg in get_args(tp))


def _make_json_union_hook(tp: Any) -> _StructureFn:
    """Structure a union of JSON shapes (e.g. ``str | object``) by checking the value's kind."""
    classes = tuple(cls for arg in get_args(tp) for cls in _JSON_LEAVES[arg])
    kinds = " or ".join(
        {str: "a string", type(None): "null", dict: "an object", list: "an array"}[cls]
        for cls in classes
    )

    def hook(value: Any, _: Any) -> Any:
        if isinstance(value, classes):
            if isinstance(value, list):
                return _structure_object_list(value, None)
            return value
        raise TypeError(f"expected {kinds}, got {_json_kind(value)}")

    return hook


converter.register_structure_hook_factory(_is_list, _make_list_hook)
converter.register_structure_hook(str, _structure_str)
converter.register_structure_hook(int, _structure_int)
converter.register_structure_hook(float, _structure_float)
converter.register_structure_hook(bool, _structure_bool)
converter.register_structure_hook_func(lambda t: t == Dict[str, Any], _structure_object)
converter.register_structure_hook_func(lambda t: t == List[Dict[str, Any]], _structure_object_list)
converter.register_structure_hook_func(lambda t: t == Dict[str, str], _structure_str_dict)
converter.register_structure_hook_factory(_is_json_union, _make_json_union_hook)


# Each scalar's hook, and the exact types it returns unchanged (see the hooks above).
_SCALARS: Dict[Any, Tuple[Tuple[type, ...], _StructureFn]] = {
    str: ((str,), _structure_str),
    int: ((int,), _structure_int),
    float: ((float, int), _structure_float),
    bool: ((bool,), _structure_bool),
}


def _is_optional(tp: Any) -> bool:
    args = get_args(tp)
    return get_origin(tp) is Union and len(args) == 2 and type(None) in args


def _make_optional_hook(tp: Any) -> _StructureFn:
    """``Optional[X]``: None, or X's own hook called directly.

    Equivalent to cattrs' generic optional handling, without its per-value
    dispatch (a Response has some twenty optional fields).
    """
    (inner,) = [arg for arg in get_args(tp) if arg is not type(None)]
    scalar_entry = _SCALARS.get(inner)
    if scalar_entry is not None:
        # A scalar: one type test in this function, no second call.
        accepted, check = scalar_entry

        def scalar(value: Any, _: Any) -> Any:
            if value is None or type(value) in accepted:
                return value
            return check(value, inner)  # a str or bool subclass passes; the rest raise

        return scalar

    resolved: List[_StructureFn] = []

    def hook(value: Any, _: Any) -> Any:
        if value is None:
            return None
        if not resolved:
            get_hook = getattr(converter, "get_structure_hook", None)
            resolved.append(get_hook(inner) if get_hook else converter.structure)
        return resolved[0](value, inner)

    return hook


converter.register_structure_hook_factory(_is_optional, _make_optional_hook)


# --------------------------------------------------------------------------
# Class hooks
# --------------------------------------------------------------------------


def _null_means_default(cls: type) -> Tuple[str, ...]:
    """Fields with a non-None default: a JSON null there means "use the default".

    This is what lets a terminal response with ``"output": null`` parse (docs/protocol.md
    §3.1), and likewise ``"annotations": null`` or ``"summary": null``.
    """
    return tuple(
        a.name
        for a in attrs.fields(cls)
        if a.init and a.default is not attrs.NOTHING and a.default is not None
    )


def _generate(cls: type, **overrides: Any) -> _StructureFn:
    """The cattrs-generated structure function of ``cls``, wrapped only when needed.

    Two variants are compiled, each on first use (so ``import openai_ws`` stays
    cheap and classes a program never receives cost nothing): a fast one
    without cattrs' detailed validation, used for every object, and a detailed
    one, run only after the fast one failed, to name the failing field. Both
    accept exactly the same inputs.
    """
    nullable = _null_means_default(cls)
    variants: Dict[bool, _StructureFn] = {}

    def compile_variant(detailed: bool) -> _StructureFn:
        fn = variants.get(detailed)
        if fn is None:
            fn = variants[detailed] = cast(
                _StructureFn,
                make_dict_structure_fn(
                    cls,
                    converter,
                    _cattrs_forbid_extra_keys=False,
                    _cattrs_detailed_validation=detailed,
                    **overrides,
                ),
            )
        return fn

    def generated(obj: Any, tp: Any) -> Any:
        fast = variants.get(False) or compile_variant(False)
        try:
            return fast(obj, tp)
        except PARSE_ERRORS:
            return compile_variant(True)(obj, tp)  # raises, naming the field

    if not nullable:
        return generated

    def structure(obj: Any, tp: Any) -> Any:
        for name in nullable:
            if name in obj and obj[name] is None:
                obj = {k: v for k, v in obj.items() if v is not None or k not in nullable}
                break
        return generated(obj, tp)

    return structure


def _object_hook(fn: _StructureFn) -> _StructureFn:
    """Guard a nested class's structure function: its value must be a JSON object."""

    def hook(obj: Any, tp: Any) -> Any:
        if not isinstance(obj, Mapping):
            raise TypeError(f"expected an object, got {_json_kind(obj)}")
        return fn(obj, tp)

    return hook


def _register_class(cls: type, fn: Optional[_StructureFn] = None) -> _StructureFn:
    fn = fn if fn is not None else _generate(cls)
    converter.register_structure_hook(cls, _object_hook(fn))
    return fn


def _tagged_union(
    name: str, classes: Tuple[type, ...], unknown: Callable[[str, Dict[str, Any]], Any]
) -> _StructureFn:
    """Structure a union tagged on ``"type"``: dict lookup, then the class's function.

    A type not in ``classes`` becomes ``unknown(type, raw_dict)``.
    """
    table: Dict[str, Tuple[_StructureFn, type]] = {}
    for cls in classes:
        table[_wire_type_of(cls)] = (_generate(cls), cls)

    def hook(obj: Any, _: Any) -> Any:
        if not isinstance(obj, Mapping):
            raise TypeError(f"expected {name} object, got {_json_kind(obj)}")
        tag = obj.get("type")
        if not isinstance(tag, str):
            reason = "is missing" if tag is None else f"must be a string, got {_json_kind(tag)}"
            raise _FieldError("type", reason)
        entry = table.get(tag)
        if entry is None:
            return unknown(tag, dict(obj))
        fn, cls = entry
        return fn(obj, cls)

    return hook


_structure_content_part = _tagged_union(
    "a content part",
    (OutputText, OutputRefusal, ReasoningText),
    lambda tag, raw: UnknownContent(type=tag, raw=raw),
)
converter.register_structure_hook_func(lambda t: t == ContentPart, _structure_content_part)
_register_class(SummaryText)
_register_class(ReasoningText)

_structure_output_item = _tagged_union(
    "an output item",
    (OutputMessage, FunctionCall, ReasoningItem),
    lambda tag, raw: UnknownOutputItem(type=tag, raw=raw),
)
converter.register_structure_hook_func(lambda t: t == OutputItem, _structure_output_item)

_DETAIL_CLASSES: Tuple[type, ...] = (
    InputTokensDetails,
    OutputTokensDetails,
    Usage,
    ResponseErrorInfo,
    IncompleteDetails,
)
for _detail_cls in _DETAIL_CLASSES:
    _register_class(_detail_cls)


def _make_response_hook() -> _StructureFn:
    generated = _generate(Response, raw=override(omit=True))

    def structure(obj: Any, tp: Any) -> Response:
        response = cast(Response, generated(obj, tp))
        # ``raw`` is not a wire field: attach the original dict, as attrs documents
        # for setting attributes of a frozen instance after construction.
        object.__setattr__(response, "raw", obj if isinstance(obj, dict) else dict(obj))
        return response

    return structure


_structure_response = _register_class(Response, _make_response_hook())


def _string_headers(headers: Any) -> Any:
    """Header maps with non-string scalar values get them as strings; nulls are dropped."""
    if not isinstance(headers, Mapping) or all(isinstance(v, str) for v in headers.values()):
        return headers
    return {
        str(key): value if isinstance(value, str) else json.dumps(value)
        for key, value in headers.items()
        if value is not None and not isinstance(value, (Mapping, list))
    }


def _make_error_payload_hook() -> _StructureFn:
    generated = _generate(ErrorPayload)

    def structure(obj: Any, tp: Any) -> ErrorPayload:
        headers = obj.get("headers")
        if headers is not None and _string_headers(headers) is not headers:
            obj = {**obj, "headers": _string_headers(headers)}
        return cast(ErrorPayload, generated(obj, tp))

    return structure


_register_class(ErrorPayload, _make_error_payload_hook())
_register_class(SteerInfo)
_register_class(InputMessage)
_register_class(FunctionCallOutput)


def _make_unknown_hook(
    cls: Union[Type[UnknownOutputItem], Type[UnknownContent]],
) -> _StructureFn:
    def structure(obj: Any, _: Any) -> Any:
        tag = obj.get("type")
        if not isinstance(tag, str):
            raise _FieldError("type", "is missing" if tag is None else "must be a string")
        return cls(type=tag, raw=dict(obj))

    return structure


_register_class(UnknownOutputItem, _make_unknown_hook(UnknownOutputItem))
_register_class(UnknownContent, _make_unknown_hook(UnknownContent))

_FLAT_ERROR_KEYS = ("code", "message", "param")


def _make_error_event_hook() -> _StructureFn:
    generated = _generate(ErrorEvent)

    def structure(obj: Any, tp: Any) -> ErrorEvent:
        patch: Dict[str, Any] = {}
        inner = obj.get("error")
        if inner is None:
            # The flat SSE shape: {"type": "error", "code", "message", "param", ...}.
            patch["error"] = {key: obj[key] for key in _FLAT_ERROR_KEYS if obj.get(key) is not None}
        elif isinstance(inner, str):
            # Some proxies send the message alone: {"type": "error", "error": "..."}.
            patch["error"] = {"message": inner}
        if obj.get("status") is None and obj.get("status_code") is not None:
            patch["status"] = obj["status_code"]
        headers = obj.get("headers")
        if headers is not None and _string_headers(headers) is not headers:
            patch["headers"] = _string_headers(headers)
        if patch:
            obj = {**obj, **patch}
        return cast(ErrorEvent, generated(obj, tp))

    return structure


#: Wire type → (structure function, class) of every modelled event.
EVENT_TABLE: Dict[str, Tuple[_StructureFn, type]] = {
    wire_type: (_make_error_event_hook() if cls is ErrorEvent else _generate(cls), cls)
    for wire_type, cls in KNOWN_EVENT_CLASSES.items()
}


# --------------------------------------------------------------------------
# Unstructuring (models → wire dicts)
# --------------------------------------------------------------------------


def _register_unstructure(cls: type, *, omit_none: bool = True) -> None:
    """Generate ``cls``'s unstructure function: ``type`` included, unset (None) fields left out.

    With ``omit_none=False`` every field is written, ``None`` as ``null`` (the
    Response object, whose spec lists many required-but-nullable keys).
    """
    overrides: Dict[str, Any] = {}
    for a in attrs.fields(cls):
        if a.name == "raw":
            overrides["raw"] = override(omit=True)
        elif omit_none and a.default is None:
            overrides[a.name] = override(omit_if_default=True)
    compiled: Optional[Callable[[Any], Dict[str, Any]]] = None

    def unstructure(obj: Any) -> Dict[str, Any]:
        # Compiled on first use, like the structure functions (import stays cheap).
        nonlocal compiled
        if compiled is None:
            compiled = make_dict_unstructure_fn(
                cls, converter, _cattrs_include_init_false=True, **overrides
            )
        return compiled(obj)

    converter.register_unstructure_hook(cls, unstructure)


def _unstructure_raw(obj: Union[UnknownEvent, UnknownOutputItem, UnknownContent]) -> Any:
    return converter.unstructure(obj.raw)


_PLAIN_MODELS: Tuple[type, ...] = (
    OutputText,
    OutputRefusal,
    ReasoningText,
    SummaryText,
    OutputMessage,
    FunctionCall,
    ReasoningItem,
    InputMessage,
    FunctionCallOutput,
    InputTokensDetails,
    OutputTokensDetails,
    Usage,
    ResponseErrorInfo,
    IncompleteDetails,
    ErrorPayload,
    SteerInfo,
    *KNOWN_EVENT_CLASSES.values(),
)
for _model_cls in _PLAIN_MODELS:
    _register_unstructure(_model_cls)
_register_unstructure(Response, omit_none=False)
converter.register_unstructure_hook(UnknownEvent, _unstructure_raw)
converter.register_unstructure_hook(UnknownOutputItem, _unstructure_raw)
converter.register_unstructure_hook(UnknownContent, _unstructure_raw)
converter.register_unstructure_hook(ResponseCreateRequest, ResponseCreateRequest.to_dict)


# --------------------------------------------------------------------------
# Errors → ProtocolError
# --------------------------------------------------------------------------


def _describe(exc: BaseException) -> Tuple[str, str]:
    """The dotted path of the first failing field in ``exc``, and what was wrong with it."""
    path = ""
    while True:
        if isinstance(exc, BaseValidationError) and exc.exceptions:
            sub = exc.exceptions[0]
            for note in getattr(sub, "__notes__", ()):
                if isinstance(note, AttributeValidationNote):
                    path += f".{note.name}"
                    break
                if isinstance(note, IterableValidationNote):
                    path += f"[{note.index}]"
                    break
            exc = sub
            continue
        if isinstance(exc, _ItemError):
            path += f"[{exc.index}]"
            exc = exc.error
            continue
        if isinstance(exc, _FieldError):
            return f"{path}.{exc.field}".lstrip("."), exc.reason
        if isinstance(exc, KeyError):
            return path.lstrip("."), "is missing"
        return path.lstrip("."), f"is invalid: {exc}"


def protocol_error(exc: BaseException, event_type: Optional[str], what: str) -> ProtocolError:
    field, reason = _describe(exc)
    where = f"field {field!r} " if field else ""
    return ProtocolError(
        f"malformed {what}: {where}{reason}", event_type=event_type, field=field or None
    )
